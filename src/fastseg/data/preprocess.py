"""Per-image preprocessing: a fundus photograph to the normalised network input."""

from __future__ import annotations

import numpy as np

from fastseg import _validate
from fastseg._row_blocks import row_blocks
from fastseg.errors import InvalidValueError

__all__ = ["CHANNELS", "preprocess"]

#: The network inputs :func:`preprocess` makes, and how many channels each has.
CHANNELS = {"green": 1, "grey": 1, "rgb": 3}
# ITU-R BT.601 luma, the weights Pillow uses for convert("L").
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def check_channels(channels) -> str:
    """`channels` if it names an input :func:`preprocess` makes, else InvalidValueError."""
    if channels not in CHANNELS:
        raise InvalidValueError(f"channels: expected one of {sorted(CHANNELS)}, got "
                                f"{channels!r}")
    return channels


def preprocess(image, fov=None, channels="green"):
    """Turn a fundus image into the normalised network input.

    Parameters
    ----------
    image : array_like
        ``(H, W, 3)`` RGB or ``(H, W)`` greyscale image (any real dtype, typically uint8).
    fov : array_like, optional
        ``(H, W)`` field of view, read as every FOV in fastseg is
        (:func:`fastseg._validate.as_fov`: non-zero inside, None the whole image). It
        must hold at least one pixel: the statistics are taken over it.
    channels : {"green", "grey", "rgb"}
        ``"green"``: the green channel, where vessels have the most contrast (a
        greyscale image is used as is). ``"grey"``: BT.601 luma. ``"rgb"``: all three
        channels (needs an RGB image).

    Returns
    -------
    numpy.ndarray
        ``(C, H, W)`` float32 with C = 1 or 3. Each channel is scaled to zero mean and
        unit standard deviation over the FOV (a constant channel is only centred), and
        pixels outside the FOV are set to 0, the FOV mean, so the black surround does
        not look like a huge dark structure to the network.
    """
    check_channels(channels)
    img = np.asarray(image)
    if img.dtype.kind not in "fiub" or not (
        img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)
    ) or img.size == 0:
        raise InvalidValueError(f"image: expected a non-empty (H, W, 3) or (H, W) real array, "
                                f"got shape {img.shape} dtype {img.dtype}")
    fov = _validate.as_fov(fov, img.shape[:2], need_inside=True)
    if img.ndim == 2 and channels == "rgb":
        raise InvalidValueError("channels: 'rgb' needs an (H, W, 3) image, got a greyscale one")
    h, w = img.shape[:2]
    out = np.empty((CHANNELS[channels], h, w), dtype=np.float32)
    # One float32 plane at a time, made in `out` itself: never the whole image in float.
    for c in range(out.shape[0]):
        plane = out[c]
        _float_plane(img, channels, c, plane)
        mean, std = _mean_and_std(plane[fov].astype(np.float64))
        scale = std if std > 0 else 1.0
        for rows in row_blocks(h, 8 * w):  # the arithmetic promotes to float64
            plane[rows] = (plane[rows] - mean) / scale
        plane[~fov] = 0.0
    return out


def _mean_and_std(vals):
    """``vals.mean()`` and ``vals.std()`` of a float64 array of our own, without std's
    array-sized temporary: the same sums, with ``(vals - mean)**2`` made in place."""
    mean = vals.mean()
    vals -= mean
    np.multiply(vals, vals, out=vals)
    return mean, np.sqrt(vals.sum() / vals.size)


def _float_plane(img, channels, c, plane):
    """Write input channel `c` of `img` into the float32 `plane`: the values
    ``img.astype(np.float32)`` would give, taken a block of rows at a time."""
    if img.ndim == 2:
        plane[...] = img
    elif channels == "grey":
        for rows in row_blocks(img.shape[0], 12 * img.shape[1]):
            plane[rows] = img[rows].astype(np.float32) @ _LUMA
    else:
        plane[...] = img[:, :, 1 if channels == "green" else c]
