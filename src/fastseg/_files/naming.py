"""Files of a segmentation run: finding input images and volumes, naming outputs, pairing,
FOVs.

Naming rule (documented in ``fastseg segment --help``): an input image ``<stem>.<ext>``
gives ``<stem>_prob.png`` (probability x 255), ``<stem>_mask.png`` (0/255) and
``<stem>_overlay.png``; an input volume ``<stem>.nii[.gz]`` gives
``<stem>_prob.nii.gz`` (float32), ``<stem>_mask.nii.gz`` (uint8: 1 left, 2 right
hippocampus), both on the scan's own grid, and ``<stem>_{left,right}.png`` (three
planes through each hippocampus, outlined); a NIfTI file's stem drops ``.nii.gz`` whole.
To pair files across folders (``fastseg evaluate``), a file's *key* is its lower-case
stem with trailing ``_<tag>``/``-<tag>`` parts removed, the tags being those of
:data:`fastseg.data.MASK_TAGS` plus ``prob``, ``pred``, ``overlay``, ``test`` and
``training``; so DRIVE's ``01_test.tif``, ``01_manual1.gif`` and ``01_test_mask.gif``
and the prediction ``01_test_prob.png`` all have the key ``01``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fastseg import _validate
from fastseg._inference.rescale import estimate_fov  # noqa: F401  (the commands' FOV estimate)
from fastseg.data import IMAGE_EXTENSIONS, MASK_TAGS, read_mask
from fastseg.data.nifti import nifti_stem
from fastseg.errors import InvalidValueError

_EXTRA_TAGS = ("prob", "probability", "pred", "prediction", "overlay", "test", "training")
_TAGS = frozenset(MASK_TAGS) | frozenset(_EXTRA_TAGS)


#: What the file suffixes fastseg segments are, for messages.
INPUT_SUFFIXES = ", ".join((*IMAGE_EXTENSIONS, ".nii", ".nii.gz"))


def stem(path) -> str:
    """A file's name without its suffix (``.nii.gz`` whole for NIfTI files)."""
    return nifti_stem(path) or Path(path).stem


def is_input(path) -> bool:
    """Whether `path` names a file fastseg segments: an image or a NIfTI volume."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS or nifti_stem(path) is not None


def image_files(inputs) -> list[Path]:
    """The image and volume files named by `inputs` (files, or folders scanned one level
    deep)."""
    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and is_input(q))
            if not found:
                raise InvalidValueError(f"no image or volume files ({INPUT_SUFFIXES}) in "
                                        f"folder {p}")
            files += found
        elif p.is_file():
            input_kind(p)  # refuses what fastseg cannot segment
            files.append(p)
        else:
            raise InvalidValueError(f"no such file or folder: {p}")
    if not files:
        raise InvalidValueError("no input images given")
    return files


def input_kind(path) -> str:
    """What kind of input a file is, by its suffix: ``"image"`` (one of IMAGE_EXTENSIONS)
    or ``"volume"`` (``.nii``, ``.nii.gz``)."""
    if nifti_stem(path) is not None:
        return "volume"
    if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
        return "image"
    raise InvalidValueError(f"{path}: not an image or volume file (expected one of "
                            f"{INPUT_SUFFIXES})")


#: What ``fastseg segment`` writes for each input image, in the order it writes them.
OUTPUT_KINDS = ("prob", "mask", "overlay")
#: ... and for each input volume: the probability and label maps (NIfTI), and a picture
#: of three planes through each hippocampus.
VOLUME_OUTPUT_KINDS = ("prob", "mask", "left", "right")


def output_paths(out, path) -> dict:
    """``{kind: path}`` of the outputs of input `path` in folder `out` (see the module
    docstring)."""
    name = stem(path)
    if nifti_stem(path) is not None:
        return {kind: Path(out) / (f"{name}_{kind}.nii.gz" if kind in ("prob", "mask") else
                                   f"{name}_{kind}.png") for kind in VOLUME_OUTPUT_KINDS}
    return {kind: Path(out) / f"{name}_{kind}.png" for kind in OUTPUT_KINDS}


def same_stem(paths):
    """The first two of `paths` with one stem (their outputs would collide), or None."""
    seen = {}
    for p in map(Path, paths):
        if stem(p) in seen:
            return seen[stem(p)], p
        seen[stem(p)] = p
    return None


def key(path) -> str:
    """The pairing key of a file name (see the module docstring)."""
    stem_ = stem(path).lower()
    for _ in range(3):
        for sep in ("_", "-"):
            head, found, tag = stem_.rpartition(sep)
            if found and head and tag in _TAGS:
                stem_ = head
                break
        else:
            break
    return stem_


def tag(path) -> str:
    """The last ``_``-separated part of a file's stem, lower case ("" when none)."""
    head, found, last = stem(path).lower().rpartition("_")
    return last if found and head else ""


def keyed(directory, what, skip_tags=()) -> dict:
    """``{key: path}`` of the image and volume files in `directory`; duplicate keys are an
    error."""
    d = Path(directory)
    if not d.is_dir():
        raise InvalidValueError(f"{what} folder not found: {d}")
    out = {}
    for p in sorted(d.iterdir()):
        if not p.is_file() or not is_input(p) or tag(p) in skip_tags:
            continue
        k = key(p)
        if k in out:
            raise InvalidValueError(f"two {what} files have the same key {k!r}: {out[k].name} "
                                    f"and {p.name}")
        out[k] = p
    if not out:
        raise InvalidValueError(f"no image or volume files ({INPUT_SUFFIXES}) in {what} folder {d}")
    return out


def read_fov(path, shape, image_name) -> np.ndarray:
    """The FOV mask file `path` for the image `image_name` of `shape` (H, W), as bool.

    The file is decoded as a mask (:func:`fastseg.data.read_mask`) and then read as
    every FOV in fastseg is (:func:`fastseg._validate.as_fov`).
    """
    path = Path(path)
    fov = read_mask(path)
    if fov.shape != tuple(shape):
        raise InvalidValueError(f"FOV {path.name} is {fov.shape[1]}x{fov.shape[0]} but "
                                f"{image_name} is {shape[1]}x{shape[0]} (W x H)")
    return _validate.as_fov(fov, shape, name=f"FOV {path.name}")
