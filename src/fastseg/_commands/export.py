"""``fastseg export``: a model file as an ONNX model (:func:`fastseg.export.to_onnx`)."""
from __future__ import annotations

import os


def run(args) -> int:
    from fastseg.export import _export

    path, summary = _export(args.model, args.out, dense=args.dense, opset=args.opset)
    size = os.path.getsize(path) / 1e6
    print(f"wrote {path} ({size:.1f} MB): {summary}")
    return 0

