"""Photos of any size: measure a field of view, bring it to the model's scale and back.

A patch network learns vessels at the scale of its training images. A fundus
camera's photo may be 1000-4000 px across where the training set's field of
view (FOV) was 540 px (DRIVE), so the vessels it sees are several times too
wide. A model records the FOV diameter of its training images
(``model.fov_diameter``, set by :class:`fastseg.Segmenter` and kept in model
files); :func:`auto_scale` gives the factor that brings an image's FOV to it.

The FOV diameter is the larger extent of the mask, across rows or columns,
ignoring rows/columns that hold fewer than 1 % of the fullest one's pixels
(stray pixels of an estimated mask). A circle clipped at top and bottom, as
DRIVE's is, still measures its full width.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
from PIL import Image

from fastseg.errors import InvalidTypeError, InvalidValueError

__all__ = ["fov_diameter", "estimate_fov", "auto_scale", "check_scale", "scaled_shape",
           "resize", "resize_mask", "SCALE_TOLERANCE"]

#: Auto scaling does nothing when the factor is this close to 1.
SCALE_TOLERANCE = 0.05
#: Largest side an image may be scaled to.
_MAX_SIDE = 65536


def fov_diameter(fov) -> float | None:
    """Diameter in pixels of a field of view (None for an empty one)."""
    mask = np.asarray(fov, dtype=bool)
    if not mask.any():
        return None

    def extent(counts):
        full = np.flatnonzero(counts >= max(1.0, 0.01 * counts.max()))
        return float(full[-1] - full[0] + 1)

    return max(extent(mask.sum(axis=1)), extent(mask.sum(axis=0)))


def estimate_fov(image) -> np.ndarray:
    """A field of view from a photo: pixels brighter than the dark surround.

    The brightest channel (red in a fundus photograph) is thresholded at 8 % of
    its 99th percentile, at least 10 grey levels: the camera's black surround
    falls below, the retina (even its dark macula) above. An image without a
    dark surround gets a FOV of (almost) every pixel, and one where nothing
    passes gets the whole image.
    """
    arr = np.asarray(image)
    lum = arr.max(axis=2) if arr.ndim == 3 else arr
    lum = lum.astype(np.float32)
    threshold = max(10.0, 0.08 * float(np.percentile(lum, 99)))
    fov = lum > threshold
    return fov if fov.any() else np.ones(lum.shape, bool)


def check_scale(scale) -> float | None:
    """`scale` as given to segment: None (auto) or a positive finite number."""
    if scale is None:
        return None
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise InvalidTypeError(f"scale: expected None (automatic) or a positive number, got "
                        f"{type(scale).__name__}")
    value = float(scale)
    if not (value > 0 and math.isfinite(value)):
        raise InvalidValueError(f"scale: expected None (automatic) or a positive number, got "
                                f"{scale!r}")
    return value


def auto_scale(model_diameter, fov) -> float:
    """The factor bringing `fov`'s diameter to `model_diameter` (1 when either is
    unknown, or the factor is within :data:`SCALE_TOLERANCE` of 1)."""
    if model_diameter is None or fov is None:
        return 1.0
    have = fov_diameter(fov)
    if have is None:
        return 1.0
    factor = float(model_diameter) / have
    return 1.0 if abs(factor - 1.0) <= SCALE_TOLERANCE else factor


def scaled_shape(hw, factor: float) -> tuple[int, int]:
    """(H, W) times `factor`, rounded, at least 1 pixel; a clear error past 65536."""
    out = tuple(max(1, round(n * factor)) for n in hw)
    if max(out) > _MAX_SIDE:
        raise InvalidValueError(f"scale: {factor:g} makes the {hw[0]}x{hw[1]} image "
                         f"{out[0]}x{out[1]}, larger than {_MAX_SIDE} pixels per side")
    return out


def _resize_plane(plane: np.ndarray, hw) -> np.ndarray:
    # Pillow's bilinear filter widens with the reduction: downscaling averages
    # (no aliasing of thin vessels), upscaling interpolates.
    img = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32))
    return np.array(img.resize((hw[1], hw[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def resize(array: np.ndarray, hw) -> np.ndarray:
    """(C, H, W) or (H, W) float array resampled to `hw` (bilinear, antialiased)."""
    if array.ndim == 2:
        return _resize_plane(array, hw)
    return np.stack([_resize_plane(plane, hw) for plane in array])


def resize_mask(mask, hw) -> np.ndarray:
    """A boolean mask resampled to `hw`: inside where at least half of it was."""
    return _resize_plane(np.asarray(mask, np.float32), hw) >= 0.5
