"""Post-processing of binary masks: keep the largest connected components."""
from __future__ import annotations

import numpy as np

from fastseg import _validate
from fastseg.errors import InvalidValueError

__all__ = ["largest_components", "side_labels", "side_volumes", "SIDE_LABELS"]


def largest_components(mask, n=1) -> np.ndarray:
    """The `n` largest face-connected components of a binary mask (2-D or 3-D).

    A patch network labels each voxel on its own, so a few voxels far from the
    structure that look like it (in MRI, tissue of similar contrast) come out as
    small islands; where one structure per image is known to be there (a crop
    around one hippocampus), keeping the largest component removes them, and with
    them most of the Hausdorff distance.

    Parameters
    ----------
    mask : array_like of bool
    n : int
        Components to keep (ties in size are broken by order of appearance).

    Returns
    -------
    numpy.ndarray of bool, the shape of `mask`
        Empty when `mask` is.
    """
    from scipy import ndimage

    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise InvalidValueError(f"mask: expected a bool array, got dtype {m.dtype}")
    n = _validate.as_int("n", n, minimum=1)
    labels, count = ndimage.label(m)
    if count <= n:
        return m.copy()
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.argsort(-sizes, kind="stable")[:n] + 1
    return np.isin(labels, keep)


#: The labels of a hippocampus label map, as fastseg writes it.
SIDE_LABELS = {"left": 1, "right": 2}


def side_labels(mask, sides, keep=1) -> np.ndarray:
    """A label map of one structure per side: 1 left, 2 right, 0 elsewhere.

    Parameters
    ----------
    mask : array_like of bool
        The voxels called structure (a thresholded probability map).
    sides : array_like of int, same shape
        The side of each voxel (1 left, 2 right), e.g.
        :func:`fastseg._inference.scan.side_map`.
    keep : int, optional
        Largest components kept per side (None: every voxel).

    Returns
    -------
    numpy.ndarray of uint8
    """
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise InvalidValueError(f"mask: expected a bool array, got dtype {m.dtype}")
    s = np.asarray(sides)
    if s.shape != m.shape:
        raise InvalidValueError(f"sides: expected shape {m.shape}, got {s.shape}")
    out = np.zeros(m.shape, np.uint8)
    for label in SIDE_LABELS.values():
        part = m & (s == label)
        if keep is not None:
            part = largest_components(part, keep)
        out[part] = label
    return out


def side_volumes(labels, affine) -> dict:
    """Volumes in mm³ of a side label map: ``{"left": ..., "right": ..., "total": ...}``.

    Each is the number of voxels of its label times the voxel volume,
    ``|det(affine[:3, :3])|`` (so any voxel size and axis order is counted right).
    """
    a = np.asarray(affine, np.float64)
    if a.shape != (4, 4) or not np.isfinite(a).all():
        raise InvalidValueError(f"affine: expected a finite 4x4 matrix, got shape {a.shape}")
    voxel = abs(float(np.linalg.det(a[:3, :3])))
    counts = np.bincount(np.asarray(labels, np.uint8).ravel(), minlength=3)
    out = {side: float(counts[label]) * voxel for side, label in SIDE_LABELS.items()}
    out["total"] = out["left"] + out["right"]
    return out
