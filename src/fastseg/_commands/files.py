"""Files for the command line: finding input images, naming outputs, pairing, FOVs.

Naming rule (documented in ``fastseg segment --help``): an input ``<stem>.<ext>``
gives ``<stem>_prob.png`` (probability x 255), ``<stem>_mask.png`` (0/255) and
``<stem>_overlay.png``. To pair files across folders (``fastseg evaluate``), a
file's *key* is its lower-case stem with trailing ``_<tag>``/``-<tag>`` parts
removed, the tags being those of :data:`fastseg.data.MASK_TAGS` plus ``prob``,
``pred``, ``overlay``, ``test`` and ``training``; so DRIVE's ``01_test.tif``,
``01_manual1.gif`` and ``01_test_mask.gif`` and the prediction
``01_test_prob.png`` all have the key ``01``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fastseg import _validate
from fastseg._commands import CLIError
from fastseg._rescale import estimate_fov  # noqa: F401  (the commands' FOV estimate)
from fastseg.data import IMAGE_EXTENSIONS, MASK_TAGS, read_mask

_EXTRA_TAGS = ("prob", "probability", "pred", "prediction", "overlay", "test", "training")
_TAGS = frozenset(MASK_TAGS) | frozenset(_EXTRA_TAGS)


def image_files(inputs) -> list[Path]:
    """The image files named by `inputs` (files, or folders scanned one level deep)."""
    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir()
                           if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise CLIError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {p}")
            files += found
        elif p.is_file():
            input_kind(p)  # refuses what fastseg cannot segment
            files.append(p)
        else:
            raise CLIError(f"no such file or folder: {p}")
    if not files:
        raise CLIError("no input images given")
    return files


def input_kind(path) -> str:
    """What kind of input a file is, by its suffix: ``"image"`` (one of IMAGE_EXTENSIONS)."""
    if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
        return "image"
    raise CLIError(f"{path}: not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)})")


#: What ``fastseg segment`` writes for each input, in the order it writes them.
OUTPUT_KINDS = ("prob", "mask", "overlay")


def output_paths(out, path) -> dict:
    """``{kind: out/<stem>_<kind>.png}`` for the input `path` (see the module docstring)."""
    stem = Path(path).stem
    return {kind: Path(out) / f"{stem}_{kind}.png" for kind in OUTPUT_KINDS}


def same_stem(paths):
    """The first two of `paths` with one stem (their outputs would collide), or None."""
    seen = {}
    for p in map(Path, paths):
        if p.stem in seen:
            return seen[p.stem], p
        seen[p.stem] = p
    return None


def key(path) -> str:
    """The pairing key of a file name (see the module docstring)."""
    stem = Path(path).stem.lower()
    for _ in range(3):
        for sep in ("_", "-"):
            head, found, tag = stem.rpartition(sep)
            if found and head and tag in _TAGS:
                stem = head
                break
        else:
            break
    return stem


def tag(path) -> str:
    """The last ``_``-separated part of a file's stem, lower case ("" when none)."""
    head, found, last = Path(path).stem.lower().rpartition("_")
    return last if found and head else ""


def keyed(directory, what, skip_tags=()) -> dict:
    """``{key: path}`` of the image files in `directory`; duplicate keys are an error."""
    d = Path(directory)
    if not d.is_dir():
        raise CLIError(f"{what} folder not found: {d}")
    out = {}
    for p in sorted(d.iterdir()):
        if not p.is_file() or p.suffix.lower() not in IMAGE_EXTENSIONS or tag(p) in skip_tags:
            continue
        k = key(p)
        if k in out:
            raise CLIError(f"two {what} files have the same key {k!r}: {out[k].name} and "
                           f"{p.name}")
        out[k] = p
    if not out:
        raise CLIError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {what} folder {d}")
    return out


def read_fov(path, shape, image_name) -> np.ndarray:
    """The FOV mask file `path` for the image `image_name` of `shape` (H, W), as bool.

    The file is decoded as a mask (:func:`fastseg.data.read_mask`) and then read as
    every FOV in fastseg is (:func:`fastseg._validate.as_fov`).
    """
    path = Path(path)
    fov = read_mask(path)
    if fov.shape != tuple(shape):
        raise CLIError(f"FOV {path.name} is {fov.shape[1]}x{fov.shape[0]} but {image_name} is "
                       f"{shape[1]}x{shape[0]} (W x H)")
    return _validate.as_fov(fov, shape, name=f"FOV {path.name}")
