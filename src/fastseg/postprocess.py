"""Post-processing of binary masks: keep the largest connected components."""
from __future__ import annotations

import numpy as np

from fastseg import _validate
from fastseg.errors import InvalidValueError

__all__ = ["largest_components"]


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
