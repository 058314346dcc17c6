"""Write the committed seed corpus: a few small real files per fuzz target.

``python fuzz/make_seeds.py`` rewrites ``fuzz/corpus/<target>/``; the files are made by
fastseg itself, nibabel and Pillow, so each is a valid input the fuzzer starts from and
mutates. Run it again after a file format changes (and commit the result).
"""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def _put(target: str, name: str, data: bytes) -> None:
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def _file_bytes(write, suffix: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x" + suffix)
        write(path)
        with open(path, "rb") as f:
            return f.read()


def model_seeds() -> None:
    import fastseg
    from fastseg import models, nn
    from fastseg.segmenter import Segmenter

    fastseg.seed(0)
    nets = {
        "lai2d.fseg": models.lai2d(patch_size=8, conv_channels=(2,), hidden=3),
        "lai3d.fseg": models.lai3d(patch_size=6, conv_channels=(2,), hidden=3),
        "triplanar.fseg": models.lai_triplanar(patch_size=6, conv_channels=(1,), hidden=2),
        "small.fseg": nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.ReLU(), nn.Flatten(),
                                    nn.Linear(2, 2)),
    }
    for name, net in nets.items():
        _put("model_file", name, _file_bytes(lambda p, net=net: fastseg.save(net, p), ".fseg"))
    seg = Segmenter(patch_size=8, model_kwargs={"hidden": 3, "conv_channels": (2,)})
    seg.model_ = seg._build().eval()
    _put("model_file", "segmenter.fseg", _file_bytes(seg.save, ".fseg"))


def _nifti_images():
    import nibabel as nib

    rng = np.random.default_rng(0)
    affine = np.array([[-0.9, 0, 0, 10], [0, 1.1, 0.1, -5], [0, 0, 2.0, 3], [0, 0, 0, 1]])
    plain = nib.Nifti1Image(rng.integers(-100, 100, (5, 6, 4)).astype(np.int16), affine)
    plain.header.set_xyzt_units("mm", "sec")
    scaled = nib.Nifti1Image(rng.integers(0, 255, (4, 4, 3)).astype(np.uint8), np.eye(4))
    scaled.header.set_slope_inter(0.5, -3.0)
    floats = nib.Nifti1Image(rng.random((3, 4, 5, 1)).astype(np.float32), np.diag([2, 2, 2, 1]))
    two = nib.Nifti2Image(rng.random((3, 3, 3)).astype(np.float64), np.eye(4))
    return {"int16": plain, "scaled_uint8": scaled, "float32_4d": floats, "nifti2": two}


def nifti_seeds() -> None:
    for name, img in _nifti_images().items():
        raw = img.to_bytes()
        _put("nii", name + ".nii", raw)
        _put("nii_gz", name + ".nii.gz", gzip.compress(raw, mtime=0))


def image_seeds() -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (9, 11), dtype=np.uint8)

    def save(im, fmt, **kw):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        return buf.getvalue()

    _put("png", "rgb.png", save(Image.fromarray(rgb), "PNG"))
    _put("png", "grey.png", save(Image.fromarray(grey), "PNG"))
    _put("png", "palette.png", save(Image.fromarray(rgb).quantize(8), "PNG"))
    _put("png", "grey16.png", save(Image.fromarray(grey.astype(np.uint16) * 257), "PNG"))
    _put("png", "rgba.png", save(Image.fromarray(np.dstack([rgb, rgb[..., :1]])), "PNG"))
    _put("png", "bilevel.png", save(Image.fromarray(grey > 128), "PNG"))
    _put("tiff", "rgb.tif", save(Image.fromarray(rgb), "TIFF"))
    _put("tiff", "deflate.tif", save(Image.fromarray(grey), "TIFF",
                                     compression="tiff_adobe_deflate"))
    _put("tiff", "grey16.tif", save(Image.fromarray(grey.astype(np.uint16) * 257), "TIFF"))
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, rng.random((6, 7)).astype(np.float32))
    _put("tiff", "float32_tifffile.tif", buf.getvalue())
    buf = io.BytesIO()
    tifffile.imwrite(buf, rgb, compression="zlib")
    _put("tiff", "zlib_tifffile.tif", buf.getvalue())
    _put("gif", "palette.gif", save(Image.fromarray(rgb).quantize(4), "GIF"))
    _put("gif", "grey.gif", save(Image.fromarray(grey), "GIF"))
    frames = [Image.fromarray(np.roll(grey, i, 0)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=10)
    _put("gif", "frames.gif", buf.getvalue())
    _put("jpeg", "rgb.jpg", save(Image.fromarray(rgb), "JPEG", quality=80))
    _put("jpeg", "grey.jpg", save(Image.fromarray(grey), "JPEG"))
    _put("jpeg", "progressive.jpg", save(Image.fromarray(rgb), "JPEG", progressive=True))


def dataset_json_seeds() -> None:
    training = [{"image": "./imagesTr/a.nii.gz", "label": "./labelsTr/a.nii.gz"},
                {"image": "./imagesTr/b.nii.gz", "label": "./labelsTr/b.nii.gz"}]
    full = {"name": "Tiny", "description": "two scans", "tensorImageSize": "3D",
            "modality": {"0": "MRI"}, "labels": {"0": "background", "1": "anterior",
                                                  "2": "posterior"},
            "numTraining": 2, "numTest": 1, "training": training,
            "test": ["./imagesTs/c.nii"]}
    _put("dataset_json", "full.json", json.dumps(full, indent=4).encode())
    _put("dataset_json", "minimal.json", json.dumps({"training": training[:1],
                                                     "test": ["./imagesTs/c.nii"]}).encode())


def record_seeds() -> None:
    sys.path.insert(0, os.path.join(HERE, "targets"))
    from fastseg._files.segment_file import FileReport
    from fastseg.report import facts
    from fastseg.report.records import record_of, write_record

    with tempfile.TemporaryDirectory() as tmp:
        mask = np.zeros((8, 9), bool)
        mask[2:5, 3:6] = True
        done = FileReport(os.path.join(tmp, "img.png"), "done",
                          outputs=tuple(os.path.join(tmp, f"img_{k}.png")
                                        for k in ("prob", "mask", "overlay")),
                          shape=(8, 9), foreground=9, fov_pixels=72, seconds=0.25)
        write_record(tmp, record_of(done, kind="image", fov_estimated=True,
                                    facts=facts.mask_facts(mask), out_dir=tmp))
        vol = np.zeros((5, 6, 7), bool)
        vol[1:3, 2:4, 1:6] = True
        scan = FileReport(os.path.join(tmp, "scan.nii.gz"), "done",
                          outputs=tuple(os.path.join(tmp, f"scan_{k}") for k in
                                        ("prob.nii.gz", "mask.nii.gz", "axial.png")),
                          shape=(5, 6, 7), foreground=20, fov_pixels=210, seconds=1.5,
                          worker="tcp://127.0.0.1:4000")
        write_record(tmp, record_of(scan, kind="volume", facts=facts.mask_facts(vol),
                                    numbers=facts.volume_numbers(vol, (1.0, 1.0, 2.0)),
                                    out_dir=tmp))
        failed = FileReport(os.path.join(tmp, "bad.tif"), "failed", error="cannot read image")
        write_record(tmp, record_of(failed, kind="image", out_dir=tmp))
        from fastseg.report.card import RUN_CARD_FORMAT, RUN_CARD_NAME
        from fastseg.report.evaluation import write_evaluation

        card = {"format": RUN_CARD_FORMAT, "version": 1, "model_path": "/m/model.fseg",
                "model_name": "model.fseg", "network": "lai2d", "kind": "image",
                "patch_size": 24, "channels": "green", "training_data": "drive:DRIVE",
                "fov_diameter": 540.0, "voxel_spacing": None, "threshold": 0.5,
                "threshold_source": "model", "keep_largest": None,
                "fastseg_version": "0.1", "backend": "c", "isa": "avx2",
                "created": "2026-01-01T00:00:00Z"}
        with open(os.path.join(tmp, RUN_CARD_NAME), "w") as f:
            json.dump(card, f)
        write_evaluation(tmp, [{"name": "img", "dice": 0.8, "auc": 0.95, "hd95": None}],
                         {"dice": 0.8, "auc": 0.95}, threshold=0.5, truth_dir="truth")
        for name in sorted(os.listdir(tmp)):
            if name.endswith(("_record.json", RUN_CARD_NAME, "evaluation.json")):
                with open(os.path.join(tmp, name), "rb") as f:
                    _put("record", name, f.read())


def cli_seeds() -> None:
    lines = {
        "info.txt": ["info", "--json"],
        "info_threads.txt": ["info", "--threads", "2", "--backend", "numpy"],
        "help.txt": ["--help"],
        "segment_help.txt": ["segment", "--help"],
        "demo_help.txt": ["demo"],
        "segment.txt": ["segment", "@MODEL", "@IMAGE", "--out", "out"],
        "segment_fov.txt": ["segment", "@MODEL", "@IMAGES", "--out", "o", "--fov", "@FOV",
                            "--threshold", "0.4", "--skip-existing"],
        "segment_options.txt": ["segment", "@MODEL", "@TIFF", "--out", "o", "--method", "fft",
                                "--scale", "1", "--tile", "8", "--threads", "1"],
        "segment_volume.txt": ["segment", "@NET3D", "@SCAN", "--out", "v"],
        "segment_damaged.txt": ["segment", "@DAMAGED", "@IMAGE", "--out", "o"],
        "segment_text.txt": ["segment", "@MODEL", "@TEXT", "@IMAGE", "--out", "o"],
        "train.txt": ["train", "--out", "t", "--epochs", "1", "--model", "lai2d"],
        "train_teacher.txt": ["train", "--out", "t", "--teacher", "@MODEL", "--patch-size",
                              "10"],
        "train_resume.txt": ["train", "--out", "t", "--resume"],
        "evaluate.txt": ["evaluate", "@PRED", "@TRUTH", "--csv", "m.csv", "--json", "m.json"],
        "evaluate_fov.txt": ["evaluate", "@PRED", "@TRUTH", "--fov", "@FOV"],
        "export.txt": ["export", "@MODEL", "m.onnx"],
        "export_dense.txt": ["export", "@MODEL", "m.onnx", "--dense"],
        "report.txt": ["report", "@RECORDS", "--z-threshold", "2"],
        "report_empty.txt": ["report", "@EMPTY"],
    }
    for name, args in lines.items():
        _put("cli", name, "\n".join(args).encode())


def _dict_line(token: str) -> str:
    """One libFuzzer dictionary entry: the token quoted, with quotes, backslashes and
    unprintable bytes escaped as \\xNN."""
    out = []
    for byte in token.encode():
        char = chr(byte)
        out.append(f"\\x{byte:02X}" if char in '"\\' or not 32 <= byte < 127 else char)
    return '"' + "".join(out) + '"'


def dictionaries() -> None:
    """libFuzzer dictionaries: the words a mutation may insert whole."""
    import argparse

    from fastseg.cli import build_parser

    words = set()
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                words.add(name)
                for a in sub._actions:
                    words.update(a.option_strings)
                    words.update(str(c) for c in (a.choices or ()))
    words.update("@" + n for n in ("MODEL", "NET3D", "DAMAGED", "IMAGE", "TIFF", "IMAGES",
                                   "TRUTH", "PRED", "FOV", "SCAN", "TEXT", "RECORDS", "EMPTY",
                                   "MISSING"))
    words.update(["\n", "0", "1", "-1", "0.5", "1e9", "nan", "inf", "auto", "folder:",
                  "msd:", "nifti:", "drive:", "synthetic", "mri", "lai3d", "lai_triplanar"])
    json_words = ['"format"', '"version"', '"fastseg-record"', '"training"', '"test"',
                  '"image"', '"label"', '"labels"', '"stem"', '"input"', '"kind"', '"status"',
                  '"outputs"', '"pictures"', '"numbers"', '"facts"', '"shape"', '"seconds"',
                  '"worker"', '"error"', '"fov_estimated"', '"volume"', '"done"', '"failed"',
                  '"skipped"', '"fastseg-run"', '"fastseg-evaluation"', '"metrics"',
                  '"mean"', '"threshold"', '"voxel_spacing"', '"fov_diameter"',
                  "null", "true", "false", "1e400", "-0", "[[[[", "{}",
                  "1" + "0" * 400,
                  '"./imagesTr/a.nii.gz"', '"../"', '"/"', "1" + "0" * 30]
    folder = os.path.join(HERE, "dicts")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name, tokens in (("cli", sorted(words)), ("record", json_words),
                         ("dataset_json", json_words)):
        with open(os.path.join(folder, name + ".dict"), "w") as f:
            f.write("".join(_dict_line(t) + "\n" for t in tokens))


def main() -> None:
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    model_seeds()
    nifti_seeds()
    image_seeds()
    dataset_json_seeds()
    record_seeds()
    cli_seeds()
    dictionaries()
    for target in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, target))
        size = sum(os.path.getsize(os.path.join(CORPUS, target, f)) for f in files)
        print(f"{target:14s} {len(files):3d} files {size:7d} bytes")


if __name__ == "__main__":
    main()
