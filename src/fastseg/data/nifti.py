"""Reading and writing NIfTI volumes (``.nii``, ``.nii.gz``) through nibabel."""

from __future__ import annotations

import gzip
import math
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
#: The most a gzip file can inflate to per byte: DEFLATE's largest ratio (RFC 1951: one
#: 258-byte match per 2 bits) is 1032, and the 18 bytes of each member's header and
#: trailer only lower it.
GZIP_MAX_RATIO = 1032
_CHUNK = 1 << 20
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
    order = _byte_order(header)
    if order is None:
        return None
    return nib.Nifti1Image if int.from_bytes(header[:4], order) == 348 else nib.Nifti2Image


def _byte_order(header: bytes) -> str | None:
    """``"little"`` or ``"big"``: the order in which ``sizeof_hdr`` reads 348 or 540."""
    for order in ("little", "big"):
        if int.from_bytes(header[:4], order) in (348, 540):
            return order
    return None


class _Declared:
    """What a NIfTI header declares about its data: ``shape`` and ``dtype`` of the voxels,
    ``offset`` of the data in its file, ``single`` (one ``.nii``, magic ``n+1``/``n+2``)
    or a ``.hdr``/``.img`` pair, and :attr:`needed`, the bytes its data file must hold."""

    def __init__(self, shape, dtype, offset: int, single: bool, sizeof: int,
                 order: str = "little"):
        self.shape, self.dtype, self.offset = tuple(shape), np.dtype(dtype), int(offset)
        self.single, self.sizeof, self.order = single, sizeof, order

    @classmethod
    def parse(cls, nib, klass, head: bytes, where: str) -> _Declared:
        """From the header's bytes alone (nothing else of the file read)."""
        errors = (nib.spatialimages.HeaderDataError, nib.spatialimages.HeaderTypeError,
                  ValueError, TypeError, OverflowError, KeyError)
        sizeof = klass.header_class.template_dtype.itemsize
        try:
            # The byte order that sizeof_hdr gives (nibabel guesses it from dim[0], and so
            # reads a header whose dim[0] is wrong with every field swapped); no mending.
            endian = "<" if _byte_order(head) == "little" else ">"
            header = klass.header_class(head[:sizeof], endianness=endian, check=False)
            dtype = np.dtype(header.get_data_dtype())
            dims = [int(d) for d in header["dim"]]
            offset = float(header["vox_offset"])
            magic = bytes(np.asarray(header["magic"]).item()).rstrip(b"\0")
        except errors as exc:
            why = (f"header field datatype is {exc.args[0]}, not a NIfTI data type code"
                   if isinstance(exc, KeyError) else f"bad header: {_one_line(exc)}")
            raise InvalidValueError(f"{where}: not a NIfTI file ({why})") from None
        if not 0 <= dims[0] <= 7:
            raise InvalidValueError(f"{where}: header field dim[0] (the number of axes) is "
                                    f"{dims[0]}, not 0 to 7")
        shape = tuple(dims[1:dims[0] + 1])
        if any(n < 0 for n in shape):
            raise InvalidValueError(f"{where}: header field dim declares a negative size "
                                    f"{shape}")
        if not (math.isfinite(offset) and offset >= 0):
            raise InvalidValueError(f"{where}: header field vox_offset is {offset}, not a "
                                    "byte position")
        single = magic in (b"n+1", b"n+2")
        # nibabel reads a single file's data from vox_offset, never inside the header.
        return cls(shape, dtype, max(int(offset), sizeof + 4) if single else int(offset),
                   single, sizeof, _byte_order(head))

    @property
    def voxel_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def needed(self) -> int:
        return self.offset + self.voxel_bytes

    def claim(self) -> str:
        """``header declares 30000x30000x30000 float32 voxels (108 TB)``."""
        shape = "x".join(map(str, self.shape)) or "no"
        return (f"header declares {shape} {self.dtype.name} voxels "
                f"({_validate.byte_text(self.voxel_bytes)})")


def _check_extensions(path: Path, declared: _Declared) -> None:
    """Refuse header extensions (between a single file's header and its data) whose sizes
    run past the end of the file: nibabel reads each into memory at the size it declares."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(declared.sizeof)
        flag = f.read(4)
        if len(flag) < 4 or flag[:1] == b"\0":
            return
        pos, left = declared.sizeof + 4, declared.offset - declared.sizeof - 4
        order = declared.order
        while left >= 16:  # nibabel's loop, each size checked before nibabel reads it
            f.seek(pos)
            raw = f.read(8)
            if len(raw) < 8:
                break
            esize = int.from_bytes(raw[:4], order, signed=True)
            if esize < 16 or esize > size - pos:
                raise InvalidValueError(f"{path}: header extension at byte {pos} declares "
                                        f"{esize} bytes but the file holds "
                                        f"{_validate.byte_text(size)}")
            pos, left = pos + esize, left - esize


def _check_header_bytes(nib, path: Path) -> None:
    """Before nibabel reads the header of an uncompressed file: a NIfTI header whose
    sizeof_hdr is wrong is refused (nibabel would mend it and go on), and a single file's
    extensions and data must fit in the file."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(544)
    klass = _nifti_class(nib, head)
    if klass is None:
        if len(head) >= 348 and head[344:347] in (b"ni1", b"n+1"):
            raise InvalidValueError(f"{path}: header field sizeof_hdr is "
                                    f"{int.from_bytes(head[:4], 'little')}, not 348 (NIfTI-1)")
        return  # not NIfTI: nib.load says what it is
    if len(head) < klass.header_class.template_dtype.itemsize:
        return  # shorter than its header: nib.load's message says so
    declared = _Declared.parse(nib, klass, head, str(path))
    if declared.single:
        if declared.needed > size:
            raise InvalidValueError(f"{path}: {declared.claim()} from byte {declared.offset} "
                                    f"but the file holds {_validate.byte_text(size)}")
        _check_extensions(path, declared)


def _check_data_fits(img, path: Path, held: int | None = None) -> None:
    """What nibabel is about to read (its array proxy: shape, dtype, offset) against what
    the data file holds (or `held` bytes in memory), before anything is allocated."""
    proxy = img.dataobj
    try:
        shape, dtype, offset = tuple(proxy.shape), np.dtype(proxy.dtype), int(proxy.offset)
    except (AttributeError, TypeError, ValueError, OverflowError) as exc:
        raise InvalidValueError(f"{path}: not a NIfTI file (bad header: "
                                f"{_one_line(exc)})") from None
    declared = _Declared(shape, dtype, offset, single=True, sizeof=0)
    if any(n < 0 for n in shape) or offset < 0:
        raise InvalidValueError(f"{path}: {declared.claim()} from byte {offset}: not a "
                                "size and a position")
    where = path
    if held is None:
        where = Path(getattr(proxy, "file_like", None) or path)
        held = os.path.getsize(where) if where.is_file() else 0
    if declared.needed > held:
        raise InvalidValueError(f"{where}: {declared.claim()} from byte {offset} but the "
                                f"file holds {_validate.byte_text(held)}")


def _inflate(nib, path: Path):
    """The NIfTI bytes in a gzip file, inflated only as far as its header says, after
    checking that the file can hold that much.

    The compressed size bounds nothing exactly, but DEFLATE never inflates one byte to
    more than 1032 (and every gzip member adds a header and trailer), so a header that
    declares more than 1032 times the file's size is refused unread. The trailer's ISIZE
    is not used: it is the length modulo 2**32, of the last member only, and whatever the
    file wants it to be. Anything the stream holds after the declared data is inflated
    (to check the CRC and length of every member) and dropped, never kept.
    """
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            head = gz.read(544)
            klass = _nifti_class(nib, head)
            if klass is None or len(head) < klass.header_class.template_dtype.itemsize:
                _drain(gz)
                raise InvalidValueError(f"{path}: a gzip file that does not hold a NIfTI image")
            declared = _Declared.parse(nib, klass, head, str(path))
            if not declared.single:
                raise InvalidValueError(f"{path}: a NIfTI header of a .hdr/.img pair, "
                                        "gzipped alone; give the .hdr file")
            bound = size * GZIP_MAX_RATIO
            if declared.needed > bound:
                raise InvalidValueError(f"{path}: {declared.claim()} but the file holds "
                                        f"{_validate.byte_text(size)}, compressed, which "
                                        f"inflate to at most {_validate.byte_text(bound)}")
            data = bytearray(head)
            while len(data) < declared.needed:
                chunk = gz.read(min(_CHUNK, declared.needed - len(data)))
                if not chunk:
                    raise InvalidValueError(
                        f"{path}: {declared.claim()} from byte {declared.offset} but the "
                        f"gzip stream holds {_validate.byte_text(len(data))}")
                data += chunk
            _drain(gz)
    except (EOFError, OSError, zlib.error) as exc:
        if isinstance(exc, PermissionError):
            raise
        raise InvalidValueError(f"{path}: truncated or corrupt gzip ({_one_line(exc)})") \
            from None
    return klass, bytes(data)


def _drain(gz) -> None:
    """Read a gzip stream to its end (what checks each member's CRC and length)."""
    while gz.read(_CHUNK):
        pass


def _header_errors(nib) -> tuple:
    """What nibabel (and the file reads under it) raise on a header it cannot read."""
    return (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError,
            nib.spatialimages.HeaderTypeError, *_READ_ERRORS)


def _open_image(nib, path: Path):
    """The nibabel image of `path`, with a ValueError that says what is wrong if it is
    not a readable NIfTI file; a header that declares more data than the file holds is
    refused before any voxel is read or allocated."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic != _GZIP_MAGIC:
        _check_header_bytes(nib, path)
        try:
            img = nib.load(path)
        except _header_errors(nib) as exc:
            if isinstance(exc, PermissionError):
                raise
            size = os.path.getsize(path)
            why = (f"only {size} bytes, shorter than a header" if size < 348 else _one_line(exc))
            raise InvalidValueError(f"{path}: not a NIfTI file ({why})") from None
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image, nib.Nifti1Pair)):
            raise InvalidValueError(f"{path}: not a NIfTI file (nibabel reads it as "
                                    f"{type(img).__name__})")
        _check_data_fits(img, path)
        return img
    klass, raw = _inflate(nib, path)
    try:
        img = klass.from_bytes(raw)
    except _header_errors(nib) as exc:
        raise InvalidValueError(f"{path}: a gzip file that does not hold a NIfTI image "
                                f"({_one_line(exc)})") from None
    _check_data_fits(img, path, held=len(raw))
    return img


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
