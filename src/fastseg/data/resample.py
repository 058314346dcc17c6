"""Moving a label or probability map from its grid onto another scan's grid through the affines.

Only the part of the target grid that the source's non-zero content can reach is
computed, so bringing a small structure (a hippocampus) onto a whole-brain grid
costs the structure's size, not the brain's.
"""

from __future__ import annotations

import numpy as np

from fastseg._optional import require
from fastseg.errors import InvalidValueError

from .volume import spacing_of

__all__ = ["resample_to_grid", "bounding_box"]


def bounding_box(mask) -> tuple[slice, ...] | None:
    """The smallest box of slices holding every non-zero voxel, or None if there is none."""
    arr = np.asarray(mask)
    if not arr.any():
        return None
    box = []
    for axis in range(arr.ndim):
        other = tuple(a for a in range(arr.ndim) if a != axis)
        hit = np.flatnonzero(arr.any(axis=other))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def _target_box(box, source_affine, target_affine, target_shape):
    """The target voxels that can land inside the source box (one voxel of slack for
    interpolation), as slices, or None when the box misses the target grid."""
    corners = np.array([[s.start - 1 if bit else s.stop for s, bit in zip(box, bits,
                                                                          strict=True)]
                        for bits in np.ndindex(2, 2, 2)], dtype=np.float64)
    to_target = np.linalg.inv(target_affine) @ source_affine
    ijk = corners @ to_target[:3, :3].T + to_target[:3, 3]
    lo = np.maximum(np.floor(ijk.min(axis=0)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 2, target_shape)
    if (hi <= lo).any():
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def resample_to_grid(source, source_affine, target_affine, target_shape, order):
    """Sample `source` at the centre of every voxel of a target grid.

    Parameters
    ----------
    source : array_like
        ``(I, J, K)`` map on its own grid: a label indicator (bool) or a probability.
    source_affine, target_affine : array_like
        ``(4, 4)`` voxel-to-world matrices of the two grids (any rotation, scaling,
        axis permutation or flip).
    target_shape : tuple of int
        ``(I', J', K')`` of the target grid.
    order : {0, 1}
        0: nearest neighbour (labels; a voxel takes the value of the source voxel
        whose centre is nearest); 1: trilinear (probabilities).

    Returns
    -------
    numpy.ndarray
        ``target_shape`` float32 (nearest neighbour keeps the source values); 0
        wherever the target voxel's centre falls outside the source grid.
    """
    ndimage = require("scipy.ndimage", "resample_to_grid")
    if order not in (0, 1):
        raise InvalidValueError(f"order must be 0 (nearest) or 1 (trilinear), got {order!r}")
    src = np.asarray(source)
    if src.ndim != 3:
        raise InvalidValueError(f"source must be 3-D, got shape {src.shape}")
    src = src.astype(np.float32)
    source_affine = np.asarray(source_affine, dtype=np.float64)
    target_affine = np.asarray(target_affine, dtype=np.float64)
    spacing_of(source_affine), spacing_of(target_affine)
    target_shape = tuple(int(s) for s in target_shape)
    out = np.zeros(target_shape, dtype=np.float32)
    box = bounding_box(src)
    if box is None:
        return out
    tbox = _target_box(box, source_affine, target_affine, target_shape)
    if tbox is None:
        return out
    # target voxel (box origin + o) -> world -> source voxel
    to_source = np.linalg.inv(source_affine) @ target_affine
    origin = np.array([s.start for s in tbox], dtype=np.float64)
    matrix = to_source[:3, :3]
    offset = matrix @ origin + to_source[:3, 3]
    # Nearest neighbour is rounding to the nearest source centre; scipy's order=0
    # rounds halves the same way for both grids, and on grids that coincide
    # (integer offsets, as the MNI templates and atlases here) it is an exact copy.
    out[tbox] = ndimage.affine_transform(src, matrix, offset=offset,
                                         output_shape=tuple(s.stop - s.start for s in tbox),
                                         order=order, mode="constant", cval=0.0,
                                         prefilter=False)
    return out
