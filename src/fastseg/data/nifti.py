"""Reading and writing NIfTI volumes (``.nii``, ``.nii.gz``) through nibabel."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from fastseg import _atomic, _validate
from fastseg._optional import require
from fastseg.errors import InvalidTypeError, InvalidValueError

from .volume import Volume, VolumeSample, spacing_of

__all__ = ["load_nifti", "save_nifti", "nifti_stem", "NIFTI_SUFFIXES"]

#: File names read and written as NIfTI (lower case).
NIFTI_SUFFIXES = (".nii.gz", ".nii")
_GZIP_MAGIC = b"\x1f\x8b"
# What a damaged file raises from nibabel, the gzip module or zlib while being read.
_READ_ERRORS = (EOFError, OSError, zlib.error, ValueError)


def nifti_stem(path) -> str | None:
    """The file name without ``.nii``/``.nii.gz`` (any case), or None for other files."""
    name = Path(path).name
    low = name.lower()
    for suffix in NIFTI_SUFFIXES:
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def _one_line(exc: Exception) -> str:
    """An exception's text on one line (nibabel's messages span several)."""
    return " ".join(str(exc).split())


def _nifti_class(nib, header: bytes):
    """Nifti1Image or Nifti2Image from the first 4 bytes (``sizeof_hdr``), else None."""
    for order in ("little", "big"):
        size = int.from_bytes(header[:4], order)
        if size == 348:
            return nib.Nifti1Image
        if size == 540:
            return nib.Nifti2Image
    return None


def _open_image(nib, path: Path):
    """The nibabel image of `path`, with a ValueError that says what is wrong if it is
    not a readable NIfTI file."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic != _GZIP_MAGIC:
        try:
            img = nib.load(path)
        except (nib.filebasedimages.ImageFileError, *_READ_ERRORS) as exc:
            size = os.path.getsize(path)
            why = (f"only {size} bytes, shorter than a header" if size < 348 else _one_line(exc))
            raise InvalidValueError(f"{path}: not a NIfTI file ({why})") from None
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image, nib.Nifti1Pair)):
            raise InvalidValueError(f"{path}: not a NIfTI file (nibabel reads it as "
                                    f"{type(img).__name__})")
        return img
    # Inflate the whole stream here rather than letting nibabel read what it needs:
    # only the end of the stream carries the CRC and length, so this is what catches a
    # truncated or corrupted file instead of returning damaged voxels.
    try:
        raw = gzip.decompress(path.read_bytes())
    except (EOFError, OSError, zlib.error) as exc:
        raise InvalidValueError(f"{path}: truncated or corrupt gzip ({_one_line(exc)})") from None
    klass = _nifti_class(nib, raw)
    if klass is None:
        raise InvalidValueError(f"{path}: a gzip file that does not hold a NIfTI image")
    try:
        return klass.from_bytes(raw)
    except (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError,
            *_READ_ERRORS) as exc:
        raise InvalidValueError(f"{path}: a gzip file that does not hold a NIfTI image ({exc})") \
            from None


def _check_voxels(arr: np.ndarray, where: str) -> None:
    finite = np.isfinite(arr)
    if not finite.all():
        nan = int(np.isnan(arr).sum())
        inf = arr.size - int(finite.sum()) - nan
        raise InvalidValueError(f"{where}: {nan} NaN and {inf} infinite voxels; a scan must hold "
                                "finite values")


def _as_3d(shape, where):
    """The 3-D shape of an image, dropping trailing length-1 axes (time, components)."""
    shape = tuple(int(s) for s in shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        hint = "; pick one volume of it first" if len(shape) > 3 else ""
        raise InvalidValueError(f"{where}: a {len(shape)}-D image of shape {shape}, but a 3-D "
                                f"volume is expected{hint}")
    return shape


def load_nifti(path) -> Volume:
    """Read a 3-D NIfTI file.

    Parameters
    ----------
    path : str or Path
        A ``.nii`` or ``.nii.gz`` file (a NIfTI-1 pair ``.hdr``/``.img`` and NIfTI-2
        files are read too).

    Returns
    -------
    Volume
        ``.array`` float32 in the file's voxel order (scaling slope/intercept
        applied), ``.affine`` the voxel-to-world matrix (the sform, else the qform,
        as nibabel chooses), ``.spacing`` in mm, ``.header``, ``.name``. Trailing
        axes of length 1 (a 4-D file with one volume) are dropped.

    Raises
    ------
    ImportError
        nibabel is missing (the message gives the install command).
    FileNotFoundError
        `path` does not exist.
    ValueError
        Not a NIfTI file, a truncated or corrupt gzip, a 4-D (or 2-D) image,
        NaN or infinite voxels; the message names the file and the fault.
    """
    nib = require("nibabel", "load_nifti")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such NIfTI file: {path}")
    img = _open_image(nib, path)
    shape = _as_3d(img.shape, str(path))
    _validate.check_size(str(path), shape)
    try:
        arr = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape)
    except _READ_ERRORS as exc:
        raise InvalidValueError(f"{path}: truncated or damaged NIfTI data "
                                f"({_one_line(exc)})") from None
    _check_voxels(arr, str(path))
    affine = np.asarray(img.affine, dtype=np.float64)
    try:
        spacing = spacing_of(affine)
    except ValueError as exc:
        raise InvalidValueError(f"{path}: {exc}") from None
    name = nifti_stem(path) or path.stem
    return Volume(np.ascontiguousarray(arr), affine, spacing, img.header, name)


def _like(like, shape):
    """(affine, header) from a Volume, VolumeSample, nibabel image or NIfTI path."""
    if like is None:
        return None, None
    if isinstance(like, (str, os.PathLike)):
        like = load_nifti(like)
    if isinstance(like, Volume | VolumeSample):
        like_shape, affine, header = like.shape, like.affine, like.header
    elif hasattr(like, "affine") and hasattr(like, "header") and hasattr(like, "shape"):
        like_shape, affine, header = tuple(like.shape[:3]), like.affine, like.header
    else:
        raise InvalidTypeError(f"like: expected a Volume, VolumeSample, nibabel image or path, got "
                               f"{type(like).__name__}")
    if tuple(like_shape) != tuple(shape):
        raise InvalidValueError(f"array has shape {tuple(shape)} but like has {tuple(like_shape)}; "
                                "an output must match the scan it is written like")
    return np.asarray(affine, dtype=np.float64), header


def _on_disk_dtype(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype.kind in "iu":
        if arr.size and arr.min() >= 0 and arr.max() <= 255:
            return arr.astype(np.uint8)
        if arr.size and np.iinfo(np.int32).min <= arr.min() and arr.max() <= np.iinfo(
                np.int32).max:
            return arr.astype(np.int32)
        raise InvalidValueError(f"array: integer values in [{arr.min()}, {arr.max()}] do not fit "
                                "int32")
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    raise InvalidTypeError(f"array: expected a bool, integer or float array, got dtype {arr.dtype}")


def save_nifti(path, array, like=None, affine=None) -> None:
    """Write a 3-D array as a NIfTI file, atomically, in the space of a scan.

    Parameters
    ----------
    path : str or Path
        Ends with ``.nii`` or ``.nii.gz`` (gzip-compressed).
    array : array_like
        ``(I, J, K)`` bool (written uint8), integers (uint8 or int32) or floats
        (float32), in the voxel order of `like`.
    like : Volume, VolumeSample, nibabel image or path, optional
        The scan the array belongs to: its affine and header (orientation, units,
        description, qform/sform codes) are written, with the data type, the
        scaling and the min/max display range set for `array`, so the output
        overlays on the scan in any viewer.
    affine : array_like, optional
        ``(4, 4)`` voxel-to-world matrix when there is no `like` (default: the
        identity, 1 mm voxels). Giving both is an error.

    Raises
    ------
    ImportError
        nibabel is missing (the message gives the install command).
    ValueError
        Another suffix, a non-3-D array, NaN values, a shape other than `like`'s.
    """
    nib = require("nibabel", "save_nifti")
    path = Path(path)
    if nifti_stem(path) is None:
        raise InvalidValueError(f"path: a NIfTI file name ends with .nii or .nii.gz, got "
                                f"{path.name!r}")
    arr = np.asarray(array)
    if arr.ndim != 3 or arr.size == 0:
        raise InvalidValueError(f"array: expected a non-empty 3-D array, got shape {arr.shape}")
    arr = _on_disk_dtype(arr)
    if arr.dtype.kind == "f":
        _check_voxels(arr, "array")
    if like is not None and affine is not None:
        raise InvalidValueError("give like or affine, not both")
    like_affine, header = _like(like, arr.shape)
    if like_affine is None:
        like_affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
        spacing_of(like_affine)
    header = header.copy() if header is not None else None
    # Nifti1Image drops what the header says about the old data (type, scaling) only
    # partly; set them for the new array so a reader does not rescale it.
    img = nib.Nifti1Image(arr, like_affine, header=header)
    img.header.set_data_dtype(arr.dtype)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"], img.header["cal_max"] = float(arr.min()), float(arr.max())
    data = img.to_bytes()
    if path.name.lower().endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    _atomic.atomic_write(path, lambda f: f.write(data))
