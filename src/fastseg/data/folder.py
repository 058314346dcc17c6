"""Image readers and a loader for a folder of images with a folder of masks."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from fastseg import _validate
from fastseg.errors import InvalidValueError

from .record import Sample

__all__ = ["load_folder", "read_image", "read_mask", "max_image_pixels", "IMAGE_EXTENSIONS",
           "MASK_TAGS", "MAX_IMAGE_PIXELS"]

#: File extensions read as images (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".gif")
#: The largest image read, in pixels (width x height), unless the environment variable
#: ``FASTSEG_MAX_IMAGE_PIXELS`` says otherwise: 2**26, 8192 x 8192, ample for photos
#: (DRIVE's are 565 x 584, a large fundus camera's 6000 x 4000) and far below what a
#: small file can declare (a 30 kB PNG can claim 10**10 pixels of one colour). A larger
#: image is refused, unread, with its size in the message.
MAX_IMAGE_PIXELS = 1 << 26
_MAX_PIXELS_VARIABLE = "FASTSEG_MAX_IMAGE_PIXELS"
#: Suffixes allowed after ``<stem>_`` or ``<stem>-`` in a mask or FOV file name.
MASK_TAGS = ("mask", "manual", "manual1", "label", "labels", "gt", "seg", "segmentation",
             "vessel", "vessels", "fov")


def max_image_pixels() -> int:
    """The largest image, in pixels (width x height), that the readers decode:
    ``FASTSEG_MAX_IMAGE_PIXELS`` when set, else :data:`MAX_IMAGE_PIXELS`.

    Raises
    ------
    ValueError
        The environment variable is not a positive whole number.
    """
    text = os.environ.get(_MAX_PIXELS_VARIABLE)
    if text is None or not text.strip():
        return int(MAX_IMAGE_PIXELS)
    try:
        value = int(text.strip().replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidValueError(f"{_MAX_PIXELS_VARIABLE}={text!r}: expected a positive whole "
                                "number of pixels")
    return value


def _check_pixels(path, width: int, height: int, limit: int) -> None:
    pixels = int(width) * int(height)
    if pixels > limit:
        raise InvalidValueError(f"{path}: declares {width}x{height} pixels ({pixels:,}), more "
                                f"than the {limit:,} fastseg reads (a decompression bomb? set "
                                f"{_MAX_PIXELS_VARIABLE} to read larger images)")


def _let_pillow_read(limit: int) -> None:
    """Pillow has its own bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, a warning above it,
    an error above twice it); raise it to fastseg's where a user raised fastseg's, so
    that the limit a user sets is the one that holds."""
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png_chunks(path: Path) -> None:
    """Refuse a PNG whose chunks declare more bytes than the file holds. Pillow reads the
    rest of a chunk in one call sized by its declared length (up to 2 GB), so a 100-byte
    file could make it allocate that much; every chunk is walked here first (length,
    type, data, CRC), which reads 8 bytes a chunk."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if f.read(8) != _PNG_SIGNATURE:
            return
        pos = 8
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(8)
            length, kind = int.from_bytes(head[:4], "big"), head[4:]
            if pos + 12 + length > size:
                name = kind.decode("ascii") if kind.isalpha() else repr(kind.decode("latin-1"))
                raise InvalidValueError(f"cannot read image {path}: PNG chunk {name} at byte "
                                        f"{pos} declares {length} bytes but the file holds "
                                        f"{_validate.byte_text(size)}")
            if kind == b"IEND":
                return
            pos += 12 + length


def _open(path):
    """Pixel array of an image file: Pillow first, tifffile for TIFFs Pillow can't read.

    Only the decoders of :data:`IMAGE_EXTENSIONS` run (Pillow would otherwise try every
    format it knows on a file that is not what its name says), and an image whose header
    declares more than :func:`max_image_pixels` pixels is refused before it is decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    limit = max_image_pixels()
    _let_pillow_read(limit)
    _check_png_chunks(path)
    try:
        with Image.open(path, formats=_PILLOW_FORMATS) as im:
            _check_pixels(path, *im.size, limit)
            im.seek(0)  # first frame of multi-frame GIF/TIFF
            _check_pixels(path, *im.size, limit)
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode in ("1", "LA", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "PA", "La"):
                im = im.convert("L" if im.mode in ("1", "LA", "La") else "RGB")
            return np.array(im)
    except InvalidValueError:
        raise  # our own checks' messages, as they are
    except Image.DecompressionBombError as e:  # Pillow's own limit, met before ours
        raise InvalidValueError(f"{path}: {' '.join(str(e).split())} (fastseg reads at most "
                                f"{limit:,} pixels; set {_MAX_PIXELS_VARIABLE} to read "
                                "larger images)") from None
    except _PILLOW_ERRORS as e:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _read_tiff(path, limit, e)
        raise InvalidValueError(f"cannot read image {path}: {_reason(e)}") from None


#: What Pillow raises on a file it cannot decode (damaged, truncated, not an image).
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, TypeError, struct.error, IndexError,
                  EOFError, ArithmeticError)
#: Pillow's decoders for the files of IMAGE_EXTENSIONS.
_PILLOW_FORMATS = ("PNG", "TIFF", "JPEG", "GIF")


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, OSError) and text else f"{type(exc).__name__}: {text}"


def _read_tiff(path: Path, limit: int, pillow_error: BaseException):
    """A TIFF's first page with tifffile (for what Pillow cannot decode: float data,
    some compressions), its declared size checked first."""
    try:
        import tifffile
    except ImportError:
        raise InvalidValueError(f"cannot read {path} with Pillow ({_reason(pillow_error)}); "
                                "pip install tifffile to read it") from None
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            _check_pixels(path, page.imagewidth, page.imagelength * max(page.imagedepth, 1),
                          limit)
            if page.dtype is None:
                raise InvalidValueError(f"{path}: a TIFF of a pixel type tifffile cannot "
                                        "read either")
            if page.size * page.dtype.itemsize > 8 * limit:
                raise InvalidValueError(f"{path}: declares a first page of shape {page.shape} "
                                        f"{page.dtype}, more than {limit:,} pixels of 8 bytes")
            size = os.path.getsize(path)
            for offset, count in zip(page.dataoffsets, page.databytecounts, strict=False):
                if offset < 0 or count < 0 or offset + count > size:
                    raise InvalidValueError(f"cannot read image {path}: a strip or tile at "
                                            f"byte {offset} declares {count} bytes but the "
                                            f"file holds {_validate.byte_text(size)}")
            return np.asarray(page.asarray())
    except InvalidValueError:
        raise
    except _TIFFFILE_ERRORS as e:
        raise InvalidValueError(f"cannot read {path} with Pillow ({_reason(pillow_error)}) "
                                f"nor tifffile ({_reason(e)})") from None


#: What tifffile (and the codecs it calls) raise on a damaged file.
_TIFFFILE_ERRORS = (OSError, ValueError, TypeError, struct.error, IndexError, KeyError,
                    EOFError, zlib.error, NotImplementedError, ArithmeticError)


def _to_uint8(arr, path):
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16 or (arr.dtype.kind in "iu" and arr.max(initial=0) > 255):
        # 16-bit data: keep the top 8 bits (rounded) so the full range maps to 0..255.
        return np.clip(np.rint(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    if arr.dtype.kind in "iu":
        return arr.astype(np.uint8)
    raise InvalidValueError(f"{path}: unsupported pixel type {arr.dtype} (expected 8- or 16-bit)")


def read_image(path):
    """Read an image as ``(H, W, 3)`` uint8 RGB or ``(H, W)`` uint8 greyscale.

    Palette images become RGB, alpha is dropped, 16-bit data is scaled to 8 bits.
    TIFFs fall back to ``tifffile`` when Pillow cannot decode them.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file cannot be decoded or has an unsupported layout.
    """
    arr = _open(path)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise InvalidValueError(f"{path}: expected a greyscale or RGB image, got shape {arr.shape}")
    return _to_uint8(arr, path)


def read_mask(path):
    """Read a binary mask as ``(H, W)`` bool.

    Rule: a mask whose values are all 0 or 1 (a label image) is ``> 0``; otherwise a
    pixel is set when it is above half the range (``> 127`` for 8-bit, after
    converting RGB to grey).
    """
    arr = _open(path)
    if arr.ndim == 3:
        arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        arr = np.rint(arr).astype(np.uint8)
    if arr.dtype == np.bool_:
        return arr.copy()
    if arr.max(initial=0) <= 1:
        return arr > 0
    return _to_uint8(arr, path) > 127


def _images_in(directory, what):
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"{what} directory not found: {d}")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {d}")
    return files


def _base_stem(stem, stems):
    """The image stem a mask file belongs to, by the documented rule, or None."""
    low = stem.lower()
    if low in stems:
        return low
    for sep in ("_", "-"):
        head, _, tag = low.rpartition(sep)
        if head and tag in MASK_TAGS and head in stems:
            return head
    return None


def _pair(images, directory, what, list_files=None, stem_of=None):
    """``{image stem: file}`` of the `what` files in `directory`, one per image (the rule of
    :func:`load_folder`); `list_files(directory, what)` and `stem_of(path)` default to
    image files and ``Path.stem`` (the NIfTI loader passes its own)."""
    list_files = list_files or _images_in
    stem_of = stem_of or (lambda p: p.stem)
    stems = {stem_of(p).lower(): p for p in images}
    if len(stems) != len(images):
        raise InvalidValueError(f"image names differ only by extension or case in "
                                f"{images[0].parent}")
    found, unmatched = {}, []
    for p in list_files(directory, what):
        base = _base_stem(stem_of(p), stems)
        if base is None:
            unmatched.append(p.name)
        elif base in found:
            raise InvalidValueError(f"two {what} files for image {stems[base].name}: "
                                    f"{found[base].name} and {p.name}")
        else:
            found[base] = p
    if unmatched:
        raise InvalidValueError(f"{what} files that match no image in {directory}: "
                                f"{', '.join(unmatched)}")
    missing = [stems[s].name for s in stems if s not in found]
    if missing:
        raise InvalidValueError(f"images without a {what} file in {directory}: "
                                f"{', '.join(missing)}")
    return found


def load_folder(images_dir, masks_dir, fov_dir=None):
    """Load images and their vessel masks (and optional FOV masks) from folders.

    Pairing rule: an image ``<stem>.<ext>`` matches the mask file whose stem is
    ``<stem>`` or ``<stem>_<tag>`` / ``<stem>-<tag>`` with ``<tag>`` one of
    :data:`MASK_TAGS` (``mask``, ``manual``, ``manual1``, ``label``, ``labels``, ``gt``,
    ``seg``, ``segmentation``, ``vessel``, ``vessels``, ``fov``), compared
    case-insensitively; the extensions may differ (:data:`IMAGE_EXTENSIONS`). Every
    image needs exactly one mask and every mask an image; FOV files follow the same
    rule.

    Parameters
    ----------
    images_dir, masks_dir : str or Path
        Folders of images and of masks (read with :func:`read_image`/:func:`read_mask`).
    fov_dir : str or Path, optional
        Folder of FOV masks. None: the FOV is the whole image.

    Returns
    -------
    list of Sample
        Sorted by image file name; ``.name`` is the image stem. Greyscale images are
        ``(H, W)`` uint8, colour ones ``(H, W, 3)``.

    Raises
    ------
    FileNotFoundError
        A folder is missing or holds no image.
    ValueError
        Unmatched or ambiguous files (named), or a mask whose size differs from its
        image.
    """
    images = _images_in(images_dir, "image")
    masks = _pair(images, masks_dir, "mask")
    fovs = _pair(images, fov_dir, "fov") if fov_dir is not None else {}
    samples = []
    for p in images:
        image = read_image(p)
        hw = image.shape[:2]
        mask = read_mask(masks[p.stem.lower()])
        if mask.shape != hw:
            raise InvalidValueError(f"mask {masks[p.stem.lower()]} is "
                                    f"{mask.shape[1]}x{mask.shape[0]} "
                                    f"but image {p} is {hw[1]}x{hw[0]} (W x H)")
        if fov_dir is not None:
            fov = read_mask(fovs[p.stem.lower()])
            if fov.shape != hw:
                raise InvalidValueError(f"fov {fovs[p.stem.lower()]} is "
                                        f"{fov.shape[1]}x{fov.shape[0]} "
                                        f"but image {p} is {hw[1]}x{hw[0]} (W x H)")
        else:
            fov = np.ones(hw, dtype=bool)
        samples.append(Sample(image, mask, fov, name=p.stem))
    return samples
