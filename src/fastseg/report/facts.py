"""What a mask says about itself: its size, its connected components, whether it
touches the edge of the picture or scan; and a label map's volumes in mm³.

These are what :mod:`fastseg.report.flags` judges. Components are face-connected
(:func:`scipy.ndimage.label`'s default), as :func:`fastseg.postprocess.largest_components`
counts them.
"""
from __future__ import annotations

import numpy as np

from fastseg.errors import InvalidValueError

__all__ = ["HIPPOCAMPUS_LABELS", "mask_facts", "volume_numbers"]

#: The label map of a whole brain: ``{value: side}`` (1 = left, 2 = right hippocampus).
HIPPOCAMPUS_LABELS = {1: "left", 2: "right"}


def _label_names(labels) -> dict:
    """``{value: name}`` from a dict, or from a sequence of label values."""
    if isinstance(labels, dict):
        items = labels.items()
    else:
        items = ((v, str(v)) for v in labels)
    out = {}
    for value, name in items:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise InvalidValueError(f"labels: expected positive integer label values, got "
                                    f"{value!r}")
        out[int(value)] = str(name)
    if not out:
        raise InvalidValueError("labels: expected at least one label value")
    return out


def _touches_border(mask: np.ndarray) -> bool:
    """Whether any True element lies on the first or last index of any axis."""
    for axis in range(mask.ndim):
        if mask.shape[axis] == 0:
            continue
        if mask.take(0, axis=axis).any() or mask.take(-1, axis=axis).any():
            return True
    return False


def _one(mask: np.ndarray) -> dict:
    from scipy import ndimage

    count = int(np.count_nonzero(mask))
    components = int(ndimage.label(mask)[1]) if count else 0
    return {"foreground": count, "empty": count == 0, "components": components,
            "touches_border": bool(count) and _touches_border(mask)}


def mask_facts(mask, fov=None, labels=None) -> dict:
    """Facts about a mask or a label map, for the report's flags.

    Parameters
    ----------
    mask : array_like
        A 2-D (photo) or 3-D (scan) mask: non-zero is foreground. A label map when
        `labels` is given.
    fov : array_like of bool, optional
        The photo's field of view (same shape): adds its size and the share of it in
        the mask. The border is always the picture's (or scan's) own.
    labels : dict or sequence of int, optional
        The label values to describe one by one, as ``{value: name}`` (e.g.
        :data:`HIPPOCAMPUS_LABELS`) or a sequence of values (named by their number).

    Returns
    -------
    dict
        ``foreground`` (non-zero elements), ``empty``, ``components`` (face-connected,
        all labels together as one mask), ``touches_border``, ``ndim``; with `fov`,
        ``fov_pixels`` and ``fov_fraction`` (foreground inside it / its size); with
        `labels`, ``labels``: ``{name: {"value", "foreground", "empty", "components",
        "touches_border"}}``.
    """
    m = np.asarray(mask)
    if m.ndim not in (2, 3):
        raise InvalidValueError(f"mask: expected a 2-D or 3-D array, got shape {m.shape}")
    if not (m.dtype == np.bool_ or np.issubdtype(m.dtype, np.integer)
            or np.issubdtype(m.dtype, np.floating)):
        raise InvalidValueError(f"mask: expected a bool or numeric array, got dtype {m.dtype}")
    foreground = m != 0
    facts = {"ndim": int(m.ndim), **_one(foreground)}
    if fov is not None:
        f = np.asarray(fov)
        if f.shape != m.shape:
            raise InvalidValueError(f"fov: expected shape {m.shape} (the mask's), got {f.shape}")
        f = f != 0
        fov_pixels = int(np.count_nonzero(f))
        facts["fov_pixels"] = fov_pixels
        facts["fov_fraction"] = (int(np.count_nonzero(foreground & f)) / fov_pixels
                                 if fov_pixels else None)
    if labels is not None:
        facts["labels"] = {name: {"value": value, **_one(m == value)}
                           for value, name in _label_names(labels).items()}
    return facts


def volume_numbers(mask, spacing, labels=None) -> dict:
    """Volumes in mm³ of a scan's mask or label map, for a record's ``numbers``.

    Parameters
    ----------
    mask : array_like
        (D, H, W) mask (non-zero is the structure) or label map.
    spacing : sequence of 3 float
        Voxel size in mm along the mask's axes.
    labels : dict or sequence of int, optional
        As in :func:`mask_facts`; e.g. :data:`HIPPOCAMPUS_LABELS` gives ``left_mm3``
        and ``right_mm3``.

    Returns
    -------
    dict
        ``volume_mm3`` (every non-zero voxel), ``<name>_mm3`` per label, ``spacing_mm``.
    """
    m = np.asarray(mask)
    sp = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if m.ndim != 3 or sp.size != 3 or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InvalidValueError(f"volume_numbers: expected a 3-D mask and 3 positive voxel "
                                f"sizes, got shape {m.shape} and spacing {list(sp)}")
    voxel = float(np.prod(sp))
    numbers = {"volume_mm3": int(np.count_nonzero(m)) * voxel}
    if labels is not None:
        for value, name in _label_names(labels).items():
            numbers[f"{name}_mm3"] = int(np.count_nonzero(m == value)) * voxel
    numbers["spacing_mm"] = [float(s) for s in sp]
    return numbers
