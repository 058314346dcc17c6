"""``fastseg export``: a model file as an ONNX model (:func:`fastseg.export.to_onnx`)."""
from __future__ import annotations

import os


def run(args) -> int:
    from fastseg.export import _export

    path, summary = _export(args.model, args.out, dense=args.dense, opset=args.opset)
    size = os.path.getsize(path) / 1e6
    print(f"wrote {path} ({size:.1f} MB): {summary}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="write a model as ONNX, for ONNX Runtime or OpenVINO",
        description="Write the network of MODEL (a .fseg file from train or demo) as an ONNX "
        "model (pip install \"fastseg[onnx]\"). By default the patch classifier as it is: "
        "input 'patch' (N, C, K, K), or (N, C, K, K, K) for a 3-D network, or 'patch_0', "
        "'patch_1', 'patch_2' for a tri-planar one; output 'logits' (N, classes). With "
        "--dense its exact fully convolutional form: input 'image' (N, C, H, W) of any size "
        "(or (N, C, D, H, W)), preprocessed as the network takes it; output "
        "'probabilities' (N, classes, H, W), at every pixel the softmax of the classifier's "
        "scores for that pixel's patch (the image mirrored at its borders as fastseg does), "
        "so channel 1 is what fastseg segment computes before calibration. Tri-planar and "
        "whole-image networks have no dense form.")
    p.add_argument("model", metavar="MODEL", help="a model file (.fseg)")
    p.add_argument("out", metavar="OUT", help="the ONNX file to write, e.g. model.onnx")
    p.add_argument("--dense", action="store_true",
                   help="the fully convolutional form over a whole image (default: the patch "
                   "classifier)")
    p.add_argument("--opset", type=int, metavar="N",
                   help="ONNX opset (default 17; at least 13)")
    p.set_defaults(func=run)
