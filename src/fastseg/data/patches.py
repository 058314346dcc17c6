"""The one patch cutter: the square window around each pixel, shared by training and
dense segmentation so both see exactly the same pixels."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fastseg import _validate
from fastseg.errors import InvalidTypeError, InvalidValueError

__all__ = ["pad_for_patches", "patches_at", "patches_from_padded", "as_chw"]

#: NumPy padding mode used at image borders (mirror without repeating the edge pixel).
PAD_MODE = "reflect"


def as_chw(image, name="image"):
    """`image` as a C-contiguous float32 (C, H, W) array ((H, W) gains C = 1); a clear
    error naming `name` for another dtype, rank or an empty array."""
    arr = np.asarray(image)
    if arr.dtype.kind not in "fiub":
        raise InvalidTypeError(f"{name}: expected a real-valued array, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or 0 in arr.shape:
        raise InvalidValueError(f"{name}: expected (H, W) or (C, H, W) and non-empty, got shape "
                                f"{np.shape(image)}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def pad_for_patches(image, size):
    """Pad an image so that every pixel's ``size`` x ``size`` patch is a plain slice.

    Parameters
    ----------
    image : array_like
        ``(C, H, W)`` or ``(H, W)`` image (converted to float32; ``(H, W)`` becomes
        ``C = 1``).
    size : int
        Patch side.

    Returns
    -------
    numpy.ndarray
        ``(C, H + size - 1, W + size - 1)`` float32: the image padded by ``size // 2``
        rows/columns before and ``size - 1 - size // 2`` after, with NumPy's
        ``"reflect"`` mode (mirror about the edge pixel, which is not repeated).

    Notes
    -----
    The patch of pixel ``(r, c)`` is ``padded[:, r:r + size, c:c + size]``. A dense
    (fully convolutional) segmenter that pads the whole image with this function and
    runs a valid convolution therefore computes at every pixel exactly what the
    patch classifier gives for :func:`patches_at`. For an image smaller than the
    padding, ``np.pad`` reflects repeatedly (e.g. ``[0 1 2]`` padded by 5 on each side
    gives ``1 0 1 2 1 0 | 0 1 2 | 1 0 1 2 1``), which is still well defined; a
    dimension of length 1 is repeated.
    """
    size = _validate.as_int("size", size, minimum=1)
    arr = as_chw(image)
    before = size // 2
    after = size - 1 - before
    return np.pad(arr, ((0, 0), (before, after), (before, after)), mode=PAD_MODE)


def check_coords(coords, shape, axes="(row, col)"):
    """`coords` as an ``(N, len(shape))`` intp array of indices inside `shape` (the 2-D
    cutter's pixels, the volume cutters' voxels), or an error that names them."""
    arr = np.asarray(coords)
    if arr.ndim != 2 or arr.shape[1] != len(shape):
        raise InvalidValueError(f"coords must be an (N, {len(shape)}) array of {axes}, got "
                                f"shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise InvalidTypeError(f"coords must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.intp, copy=False)
    bad = ((arr < 0) | (arr >= np.asarray(shape, dtype=np.intp))).any(axis=1)
    if bad.any():
        shown = arr[bad][:5].tolist()
        raise InvalidValueError(f"coords out of range for shape {tuple(shape)} {axes}: "
                                f"{int(bad.sum())} bad, e.g. {shown}")
    return arr


def patches_from_padded(padded, coords, size):
    """Cut patches from an image already padded by :func:`pad_for_patches`.

    Use this when many batches come from one image (training, tiled inference):
    pad once, cut many times.

    Parameters
    ----------
    padded : numpy.ndarray
        ``(C, H + size - 1, W + size - 1)`` output of ``pad_for_patches(image, size)``.
    coords : array_like of int
        ``(N, 2)`` pixel positions ``(row, col)`` in the *unpadded* image.
    size : int
        Patch side, the same as given to :func:`pad_for_patches`.

    Returns
    -------
    numpy.ndarray
        ``(N, C, size, size)`` float32, C-contiguous.
    """
    size = _validate.as_int("size", size, minimum=1)
    padded = np.asarray(padded)
    if padded.ndim != 3 or padded.shape[1] < size or padded.shape[2] < size:
        raise InvalidValueError(f"padded must be (C, H + size - 1, W + size - 1) for size={size}, "
                                f"got shape {padded.shape}")
    h, w = padded.shape[1] - size + 1, padded.shape[2] - size + 1
    rc = check_coords(coords, (h, w))
    # (C, H, W, size, size) view without copying; fancy indexing copies only the N patches.
    windows = sliding_window_view(padded, (size, size), axis=(1, 2))
    out = windows[:, rc[:, 0], rc[:, 1]]  # (C, N, size, size)
    return np.ascontiguousarray(out.transpose(1, 0, 2, 3), dtype=np.float32)


def patches_at(image, coords, size):
    """The ``size`` x ``size`` patch around each given pixel.

    Parameters
    ----------
    image : array_like
        ``(C, H, W)`` float32 image (other real dtypes are converted); ``(H, W)`` is
        taken as ``C = 1``.
    coords : array_like of int
        ``(N, 2)`` pixel positions ``(row, col)``; each must be inside the image.
    size : int
        Patch side (odd or even).

    Returns
    -------
    numpy.ndarray
        ``(N, C, size, size)`` float32.

    Raises
    ------
    ValueError
        Bad shapes, ``size < 1``, or coordinates outside the image (listed).
    TypeError
        Non-integer coordinates or a non-numeric image.

    Notes
    -----
    The patch of ``(r, c)`` covers rows ``r - size // 2 .. r - size // 2 + size - 1``
    (columns likewise), so the pixel sits at index ``size // 2`` of its patch: the
    exact centre for odd sizes and one past the middle for even sizes. Beyond the
    border the image is mirrored with NumPy's ``"reflect"`` mode; see
    :func:`pad_for_patches`, of which this is a slice.
    """
    size = _validate.as_int("size", size, minimum=1)
    arr = as_chw(image)
    check_coords(coords, arr.shape[1:])  # fail before padding
    return patches_from_padded(pad_for_patches(arr, size), coords, size)
