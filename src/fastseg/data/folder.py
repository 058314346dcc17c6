"""Image readers and a loader for a folder of images with a folder of masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fastseg.errors import InvalidValueError

from .record import Sample

__all__ = ["load_folder", "read_image", "read_mask", "IMAGE_EXTENSIONS", "MASK_TAGS"]

#: File extensions read as images (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".gif")
#: Suffixes allowed after ``<stem>_`` or ``<stem>-`` in a mask or FOV file name.
MASK_TAGS = ("mask", "manual", "manual1", "label", "labels", "gt", "seg", "segmentation",
             "vessel", "vessels", "fov")


def _open(path):
    """Pixel array of an image file: Pillow first, tifffile for TIFFs Pillow can't read."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    try:
        with Image.open(path) as im:
            im.seek(0)  # first frame of multi-frame GIF/TIFF
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode in ("1", "LA", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "PA", "La"):
                im = im.convert("L" if im.mode in ("1", "LA", "La") else "RGB")
            return np.array(im)
    except (UnidentifiedImageError, OSError) as e:
        if path.suffix.lower() in (".tif", ".tiff"):
            try:
                import tifffile
            except ImportError:
                raise InvalidValueError(f"cannot read {path} with Pillow ({e}); "
                                        "pip install tifffile to read it") from None
            return np.asarray(tifffile.imread(path))
        raise InvalidValueError(f"cannot read image {path}: {e}") from None


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
