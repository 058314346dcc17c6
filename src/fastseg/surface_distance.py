"""Distances between the surfaces of two binary masks, in mm: HD95 and ASSD.

The surface of a mask is its voxels that have a face neighbour outside it (beyond
the array counts as outside). For every surface voxel of one mask, its distance to
the other mask's surface is the Euclidean distance between voxel centres, with each
axis scaled by its voxel spacing (an exact distance transform,
:func:`scipy.ndimage.distance_transform_edt` with ``sampling=spacing``), so
anisotropic voxels are measured correctly.

* ``hd95``: the larger of the two directed 95th percentiles (prediction to truth and
  truth to prediction, NumPy's linear interpolation), as MONAI and the Decathlon's
  evaluation report the robust Hausdorff distance.
* ``assd``: the average symmetric surface distance, the mean over both surfaces'
  voxels together: ``(sum d(P->T) + sum d(T->P)) / (|S_P| + |S_T|)`` (Heimann et al.
  2009).
* ``rvd``: the relative volume difference ``(|P| - |T|) / |T|``, signed (positive:
  the prediction is too large).

Two empty masks agree perfectly (0 mm); one empty mask leaves the distances
undefined (NaN).
"""

from __future__ import annotations

import math

import numpy as np

from fastseg._optional import require
from fastseg.errors import InvalidTypeError, InvalidValueError

__all__ = ["surface", "surface_distances", "volume_metrics", "VOLUME_METRICS", "check_spacing"]

#: Keys :func:`volume_metrics` adds to :func:`fastseg.metrics.evaluate`'s result.
VOLUME_METRICS = ("rvd", "hd95", "assd")


def check_spacing(spacing, ndim: int) -> tuple[float, ...]:
    """`spacing` as `ndim` positive finite floats (None: 1 per axis)."""
    if spacing is None:
        return (1.0,) * ndim
    if isinstance(spacing, (int, float, np.number)) and not isinstance(spacing, bool):
        spacing = (spacing,) * ndim
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise InvalidTypeError(f"spacing: expected {ndim} numbers (mm per voxel along each axis), "
                               f"got {spacing!r}") from None
    if len(values) != ndim or not all(math.isfinite(s) and s > 0 for s in values):
        raise InvalidValueError(f"spacing: expected {ndim} positive finite numbers (mm per voxel "
                                f"along each axis), got {spacing!r}")
    return values


def surface(mask) -> np.ndarray:
    """The voxels of `mask` with a face neighbour outside it (or on the array's edge)."""
    m = np.asarray(mask, dtype=bool)
    interior = m.copy()
    for axis in range(m.ndim):
        n = m.shape[axis]
        lo = [slice(None)] * m.ndim
        hi = [slice(None)] * m.ndim
        lo[axis], hi[axis] = slice(0, n - 1), slice(1, n)
        interior[tuple(lo)] &= m[tuple(hi)]
        interior[tuple(hi)] &= m[tuple(lo)]
        edge = [slice(None)] * m.ndim
        edge[axis] = [0, n - 1]
        interior[tuple(edge)] = False
    return m & ~interior


def surface_distances(pred, truth, spacing=None):
    """Distances (mm) from each surface voxel of one mask to the other's surface.

    Parameters
    ----------
    pred, truth : array_like of bool
        Masks of the same shape, both non-empty.
    spacing : sequence of float, optional
        Voxel size per axis in mm (None: 1).

    Returns
    -------
    pred_to_truth, truth_to_pred : numpy.ndarray
        float64, one distance per surface voxel of `pred` (of `truth`).
    """
    ndimage = require("scipy.ndimage", "surface distances (hd95, assd)")
    p, t = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise InvalidValueError(f"pred and truth differ in shape: {p.shape} vs {t.shape}")
    if not p.any() or not t.any():
        raise InvalidValueError("surface distances need two non-empty masks")
    spacing = check_spacing(spacing, p.ndim)
    sp, st = surface(p), surface(t)
    # Only the box holding both surfaces matters: every nearest surface voxel lies in
    # it, so distance transforms of the box are exact and cost the structure's size.
    both = sp | st
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(both))
    sp, st = sp[box], st[box]
    to_truth = ndimage.distance_transform_edt(~st, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~sp, sampling=spacing)
    return to_truth[sp], to_pred[st]


def volume_metrics(pred, truth, spacing=None) -> dict:
    """``rvd``, ``hd95`` (mm) and ``assd`` (mm) of a binary prediction against the truth.

    See the module docstring for the definitions; undefined values are NaN.
    """
    p, t = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    n_p, n_t = int(np.count_nonzero(p)), int(np.count_nonzero(t))
    out = {"rvd": (n_p - n_t) / n_t if n_t else math.nan}
    if n_p == 0 and n_t == 0:
        check_spacing(spacing, p.ndim)
        out.update(hd95=0.0, assd=0.0)
    elif n_p == 0 or n_t == 0:
        check_spacing(spacing, p.ndim)
        out.update(hd95=math.nan, assd=math.nan)
    else:
        d_pt, d_tp = surface_distances(p, t, spacing)
        out["hd95"] = float(max(np.percentile(d_pt, 95), np.percentile(d_tp, 95)))
        out["assd"] = float((d_pt.sum() + d_tp.sum()) / (d_pt.size + d_tp.size))
    return {k: float(out[k]) for k in VOLUME_METRICS}
