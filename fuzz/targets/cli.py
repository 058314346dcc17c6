"""Fuzz target: the command line's argument handling, ``fastseg.cli.main(argv)``.

An input is a command line, one argument per line (UTF-8; bytes that are not are kept as
the surrogate escapes Python gives such argv bytes). ``@NAME`` inside an argument stands
for a prepared file (:data:`FIXTURES`: a real tiny model, a damaged one, images, a scan, a
folder of records, ...), so mutations reach past "file not found".

The rule for the command line: ``main`` returns (or argparse exits with) 0, 1 or 2, and
never prints a traceback (which is how :mod:`fastseg.cli` reports a bug, with exit 1).

No input may start long work, whatever it says:

* ``demo``, ``bench``, ``experiment`` are only ever run as ``CMD --help``;
* ``train`` always ends with ``--data folder:<a missing folder>`` (the last ``--data``
  wins), and ``Segmenter.fit`` is replaced by :class:`LongWork` in case any input gets by;
* ``segment`` on a Dask cluster (``--workers``, ``--scheduler``) is replaced by
  :class:`LongWork`, and so is a ``predict_proba`` asked to scale a tiny image past
  :data:`MAX_SIDE` pixels or to cut it into tiles of fewer than 4 pixels.

An input that reaches :class:`LongWork` is set aside, not a finding. Arguments are kept
inside this process's scratch folder: a ``/`` becomes ``_`` and ``~`` at the start is
dropped, so no input writes elsewhere.
"""
import contextlib
import io
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import instrumented, run, scratch_dir  # noqa: E402

with instrumented("argparse"):
    import fastseg.cli
    from fastseg._commands import export, report, segment, train  # noqa: F401
    from fastseg.segmenter import Segmenter

#: Subcommands run with whatever arguments the input gives.
CHEAP = ("info", "segment", "train", "evaluate", "export", "report")
#: Subcommands that only ever get ``--help``.
HEAVY = ("demo", "bench", "experiment")
#: Largest image side a ``predict_proba`` may be asked to segment here.
MAX_SIDE = 96
MAX_ARGS = 24


class LongWork(Exception):
    """Raised where an input would start work too long for a fuzz run."""


_long = {"hit": False}


def _refuse_long(*args, **kwargs):
    _long["hit"] = True
    raise LongWork("long work is not run while fuzzing")


_predict = Segmenter.predict_proba


def _cheap_predict(self, image, fov=None, **kwargs):
    scale, tile = kwargs.get("scale"), kwargs.get("tile")
    side = max(getattr(image, "shape", (0,))[:2] or (0,))
    if (scale not in (None, 1) and scale * side > MAX_SIDE) or (tile is not None and tile < 4):
        _refuse_long()
    return _predict(self, image, fov, **kwargs)


Segmenter.fit = _refuse_long
Segmenter.predict_proba = _cheap_predict
segment._run_distributed = _refuse_long


def _fixtures(root: str) -> dict:
    """The files an input names with ``@NAME``."""
    import nibabel as nib
    import numpy as np
    from PIL import Image

    import fastseg
    from fastseg import models

    def path(*parts):
        return os.path.join(root, *parts)

    for sub in ("imgs", "truth", "pred", "fov", "records", "empty"):
        os.makedirs(path(sub), exist_ok=True)
    fastseg.seed(0)
    seg = Segmenter(patch_size=10, model_kwargs={"hidden": 4, "conv_channels": (2, 2)})
    seg.model_ = seg._build().eval()
    seg.save(path("model.fseg"))
    fastseg.save(models.lai3d(patch_size=6, conv_channels=(2,), hidden=4), path("net3d.fseg"))
    with open(path("model.fseg"), "rb") as f:
        good = f.read()
    with open(path("damaged.fseg"), "wb") as f:
        f.write(good[: len(good) // 2])
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path("imgs", "a.png"))
    Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8)).save(path("imgs", "b.tif"))
    mask = (rng.random((16, 16)) > 0.5).astype(np.uint8) * 255
    Image.fromarray(mask).save(path("truth", "a_manual1.png"))
    Image.fromarray(mask).save(path("pred", "a_mask.png"))
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(path("fov", "a_mask.png"))
    nib.save(nib.Nifti1Image(rng.random((8, 8, 8)).astype(np.float32), np.eye(4)),
             path("scan.nii.gz"))
    with open(path("notes.txt"), "w") as f:
        f.write("not an image\n")
    from fastseg._files.segment_file import FileReport
    from fastseg.report.records import record_of, write_record

    done = FileReport(path("imgs", "a.png"), "done", outputs=(path("records", "a_prob.png"),),
                      shape=(16, 16), foreground=3, fov_pixels=256, seconds=0.1)
    write_record(path("records"), record_of(done, kind="image", out_dir=path("records")))
    return {"MODEL": path("model.fseg"), "NET3D": path("net3d.fseg"),
            "DAMAGED": path("damaged.fseg"), "IMAGE": path("imgs", "a.png"),
            "TIFF": path("imgs", "b.tif"), "IMAGES": path("imgs"), "TRUTH": path("truth"),
            "PRED": path("pred"), "FOV": path("fov"), "SCAN": path("scan.nii.gz"),
            "TEXT": path("notes.txt"), "RECORDS": path("records"), "EMPTY": path("empty"),
            "MISSING": path("no-such-file")}


FIXTURE_ROOT = scratch_dir()
FIXTURES = _fixtures(FIXTURE_ROOT)
WORK = scratch_dir()
os.chdir(WORK)


def _argument(text: str) -> str:
    text = text.replace("\0", "").replace("/", "_")
    if text.startswith("~"):
        text = text[1:]
    for name, where in FIXTURES.items():  # longest names are not prefixes of others here
        text = text.replace("@" + name, where)
    return text


def argv_of(data: bytes) -> list:
    """The command line an input stands for (see the module docstring)."""
    args = [_argument(a) for a in data.decode("utf-8", "surrogateescape").split("\n")]
    args = args[:MAX_ARGS]
    if not args or args == [""]:
        return []
    if args[0] in HEAVY:
        return [args[0], "--help"]
    if args[0] == "train":
        args += ["--data", "folder:" + FIXTURES["MISSING"]]
    return args


def _clean_work() -> None:
    for name in os.listdir(WORK):
        full = os.path.join(WORK, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(full)


class CliBug(Exception):
    """The command line broke its rule (see the module docstring)."""


def one_input(data: bytes) -> None:
    argv = argv_of(data)
    out, err = io.StringIO(), io.StringIO()
    _long["hit"] = False
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = fastseg.cli.main(argv)
            except SystemExit as exc:  # argparse: usage errors and --help
                code = exc.code
    finally:
        _clean_work()
    if _long["hit"]:
        return
    text = err.getvalue()
    if code not in (0, 1, 2) or "Traceback (most recent call last)" in text \
            or "internal error" in text:
        raise CliBug(f"argv {argv!r} exited {code!r}:\n{text[-3000:]}")


if __name__ == "__main__":
    run(one_input)
