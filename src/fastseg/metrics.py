"""Segmentation metrics: overlap, confusion-matrix rates, ROC AUC and clDice; for volumes
also the relative volume difference and surface distances in mm (:mod:`fastseg.surface_distance`).

All metrics are computed inside the field of view when one is given, as is the
convention for DRIVE (the black surround would otherwise inflate accuracy and
specificity).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from fastseg import _validate, surface_distance
from fastseg.errors import InvalidValueError, MissingDependencyError

__all__ = ["METRICS", "evaluate", "dice", "roc_auc", "cldice", "evaluate_dataset",
           "format_table"]

#: Keys of the dict returned by :func:`evaluate`, in table order.
METRICS = ("dice", "iou", "accuracy", "sensitivity", "specificity", "precision", "auc")


def _check_prob(prob, name="prob"):
    arr = np.asarray(prob)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "fiu":
        raise InvalidValueError(f"{name} must be a real array of probabilities, got dtype "
                                f"{arr.dtype}")
    if arr.size == 0:
        raise InvalidValueError(f"{name} is empty (shape {arr.shape})")
    arr = arr.astype(np.float64, copy=False)
    if np.isnan(arr).any():
        raise InvalidValueError(f"{name} contains NaN ({int(np.isnan(arr).sum())} values)")
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi > 1:
        raise InvalidValueError(f"{name} must lie in [0, 1], got values in [{lo}, {hi}]")
    return arr


def _dice_of_counts(tp: int, fp: int, fn: int) -> float:
    """2 TP / (2 TP + FP + FN); 1.0 when neither mask has a pixel."""
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def dice(pred_mask, true_mask) -> float:
    """Dice overlap of two masks of one shape (bool or 0/1): 1.0 when both are empty.

    The formula of :func:`evaluate`'s ``dice``, without its probability checks, for
    masks already made (a threshold chosen on training volumes, say).
    """
    t = _validate.as_mask(true_mask, np.shape(pred_mask), name="true_mask", binary=True)
    p = _validate.as_mask(pred_mask, t.shape, name="pred_mask", binary=True)
    tp = int(np.count_nonzero(p & t))
    return _dice_of_counts(tp, int(np.count_nonzero(p)) - tp, int(np.count_nonzero(t)) - tp)


def roc_auc(scores, labels):
    """Area under the ROC curve, with ties handled as :func:`sklearn.metrics.roc_auc_score`.

    Scores are sorted in decreasing order, tied scores grouped into one ROC point,
    and the curve through (0, 0) and those points integrated with the trapezoid rule
    (a tie group contributes a diagonal, i.e. counts half).

    Parameters
    ----------
    scores : array_like
        Scores, any real values (1-D after flattening).
    labels : array_like of bool
        True class, same number of elements.

    Returns
    -------
    float
        The AUC, or NaN (with a ``RuntimeWarning``) when only one class is present.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=bool).ravel()
    if s.shape != y.shape:
        raise InvalidValueError(f"scores and labels differ in size: {s.size} vs {y.size}")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        warnings.warn("AUC is undefined with only one class present; returning NaN",
                      RuntimeWarning, stacklevel=2)
        return math.nan
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    # Last index of each group of tied scores = the ROC points.
    ends = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[ends].astype(np.float64)
    fps = (ends + 1) - tps
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _ratio(num, den):
    return num / den if den else math.nan


def evaluate(prob, mask, fov=None, threshold=0.5, spacing=None):
    """Pixel (voxel) metrics of a probability map against a ground-truth mask.

    Parameters
    ----------
    prob : array_like
        Probabilities of the vessel class in [0, 1] (any shape; no NaN).
    mask : array_like of bool
        Ground truth, same shape (bool or 0/1).
    fov : array_like, optional
        Field of view, same shape; only its pixels count. Read as every FOV in fastseg
        is (:func:`fastseg._validate.as_fov`: non-zero inside, None every pixel); an
        empty one is a ValueError.
    threshold : float, optional
        A pixel is predicted vessel when ``prob >= threshold``.
    spacing : sequence of float, optional
        Voxel size in mm per axis. For 3-D arrays (or whenever it is given) the result
        adds :data:`~fastseg.surface_distance.VOLUME_METRICS`: ``rvd``, ``hd95`` and
        ``assd`` in mm, on the masks cut to the FOV; None means 1 mm voxels.

    Returns
    -------
    dict
        ``dice`` (F1), ``iou`` (Jaccard), ``accuracy``, ``sensitivity`` (recall, TPR),
        ``specificity`` (TNR), ``precision`` (PPV) from the thresholded map, and
        ``auc`` (ROC AUC of the probabilities, threshold-free); for volumes also
        ``rvd``, ``hd95``, ``assd`` (:mod:`fastseg.surface_distance`). Plain floats.

    Notes
    -----
    Degenerate cases: when neither the prediction nor the truth has a vessel pixel,
    ``dice`` and ``iou`` are 1.0 (perfect agreement). A rate whose denominator is
    zero (``sensitivity`` or ``auc`` with no true vessel, ``specificity`` with no
    background, ``precision`` with no predicted vessel) is NaN, and a
    ``RuntimeWarning`` names them. :func:`evaluate_dataset` averages ignoring NaN.
    Surface distances are 0 when both masks are empty and NaN when one is.
    """
    p = _check_prob(prob)
    m = _validate.as_mask(mask, p.shape, name="mask", binary=True)
    f = _validate.as_fov(fov, p.shape, need_inside=True)  # metrics need a pixel to count
    threshold = _validate.as_real("threshold", threshold, 0, 1)
    volume = None
    if p.ndim == 3 or spacing is not None:
        spacing = surface_distance.check_spacing(spacing, p.ndim)
        volume = surface_distance.volume_metrics((p >= threshold) & f, m & f, spacing)
    p, m = p[f], m[f]
    pred = p >= threshold
    tp = int(np.count_nonzero(pred & m))
    fp = int(np.count_nonzero(pred & ~m))
    fn = int(np.count_nonzero(~pred & m))
    tn = m.size - tp - fp - fn
    res = {
        "dice": _dice_of_counts(tp, fp, fn),
        "iou": tp / (tp + fp + fn) if tp + fp + fn else 1.0,
        "accuracy": (tp + tn) / m.size,
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res["auc"] = roc_auc(p, m)
    res.update(volume or {})
    undefined = [k for k, v in res.items() if math.isnan(v)]
    if undefined:
        warnings.warn(f"undefined metrics set to NaN: {', '.join(undefined)}", RuntimeWarning,
                      stacklevel=2)
    return {k: float(res[k]) for k in METRICS + (tuple(volume) if volume else ())}


def _skeletonize(mask):
    try:
        from skimage.morphology import skeletonize
    except ImportError as e:  # scikit-image is optional; only clDice needs it
        raise MissingDependencyError("cldice needs scikit-image: pip install scikit-image") from e
    # Copy: read-only or non-contiguous inputs trip scikit-image's Cython code.
    return skeletonize(np.ascontiguousarray(mask, dtype=bool).copy())


def cldice(pred_mask, true_mask, fov=None):
    """Centreline Dice (clDice, Shit et al. 2021), a topology-aware overlap for vessels.

    ``Tprec = |S(pred) & true| / |S(pred)|`` and ``Tsens = |S(true) & pred| / |S(true)|``
    with ``S`` the skeleton (:func:`skimage.morphology.skeletonize`); clDice is their
    harmonic mean.

    Parameters
    ----------
    pred_mask, true_mask : array_like of bool
        2-D binary masks of the same shape (bool or 0/1).
    fov : array_like, optional
        Both masks are cut to the FOV (as :func:`evaluate` reads it) before
        skeletonising.

    Returns
    -------
    float
        In [0, 1]. Both masks empty: 1.0; exactly one empty: 0.0.

    Raises
    ------
    ImportError
        When scikit-image is not installed.
    """
    p = np.asarray(pred_mask)
    if p.ndim != 2 or p.size == 0:
        raise InvalidValueError(f"pred_mask must be a non-empty 2-D mask, got shape {p.shape}")
    p = _validate.as_mask(p, p.shape, name="pred_mask", binary=True)
    t = _validate.as_mask(true_mask, p.shape, name="true_mask", binary=True)
    f = _validate.as_fov(fov, p.shape, need_inside=True)  # metrics need a pixel to count
    p, t = p & f, t & f
    if not p.any() and not t.any():
        return 1.0
    if not p.any() or not t.any():
        return 0.0
    sp, st = _skeletonize(p), _skeletonize(t)
    tprec = np.count_nonzero(sp & t) / max(np.count_nonzero(sp), 1)
    tsens = np.count_nonzero(st & p) / max(np.count_nonzero(st), 1)
    return 0.0 if tprec + tsens == 0 else float(2 * tprec * tsens / (tprec + tsens))


def evaluate_dataset(probs, masks, fovs=None, names=None, threshold=0.5, spacings=None):
    """Per-image metrics over a data set and their mean.

    Parameters
    ----------
    probs : sequence of array_like
        One probability map per image.
    masks : sequence of array_like
        Ground truths, same length.
    fovs : sequence of array_like or None, optional
        FOVs, same length (an entry may be None).
    names : sequence of str, optional
        Row names; default ``"0"``, ``"1"``, ...
    threshold : float, optional
        As in :func:`evaluate`.
    spacings : sequence or None, optional
        Voxel spacing per image for :func:`evaluate` (an entry may be None).

    Returns
    -------
    rows : list of dict
        ``{"name": ..., "dice": ..., ...}`` per image.
    mean : dict
        ``{"name": "mean", ...}``: per-metric mean over the images, ignoring NaN
        (NaN only when every image's value is NaN).
    """
    probs, masks = list(probs), list(masks)
    if not probs:
        raise InvalidValueError("probs is empty")
    if len(masks) != len(probs):
        raise InvalidValueError(f"masks has {len(masks)} entries, probs has {len(probs)}")
    fovs = [None] * len(probs) if fovs is None else list(fovs)
    if len(fovs) != len(probs):
        raise InvalidValueError(f"fovs has {len(fovs)} entries, probs has {len(probs)}")
    spacings = [None] * len(probs) if spacings is None else list(spacings)
    if len(spacings) != len(probs):
        raise InvalidValueError(f"spacings has {len(spacings)} entries, probs has {len(probs)}")
    names = [str(i) for i in range(len(probs))] if names is None else [str(n) for n in names]
    if len(names) != len(probs):
        raise InvalidValueError(f"names has {len(names)} entries, probs has {len(probs)}")
    rows = []
    for i, (p, m, f, sp) in enumerate(zip(probs, masks, fovs, spacings, strict=True)):
        try:
            metrics = evaluate(p, m, f, threshold, spacing=sp)
        except ValueError as e:
            raise InvalidValueError(f"image {i} ({names[i]}): {e}") from None
        rows.append({"name": names[i], **metrics})
    mean = {"name": "mean"}
    for k in [k for k in rows[0] if k != "name"]:
        vals = np.array([r.get(k, math.nan) for r in rows], dtype=np.float64)
        mean[k] = float(np.mean(vals[~np.isnan(vals)])) if (~np.isnan(vals)).any() else math.nan
    return rows, mean


def format_table(rows, mean=None, digits=4):
    """Format metric rows (and an optional mean row) as a fixed-width text table.

    Parameters
    ----------
    rows : list of dict
        As returned by :func:`evaluate_dataset`; columns are ``name`` and the
        metrics present in the first row, in :data:`METRICS` order.
    mean : dict, optional
        Printed after a rule.
    digits : int, optional
        Decimals.

    Returns
    -------
    str
    """
    rows = list(rows)
    if not rows:
        raise InvalidValueError("rows is empty")
    cols = [k for k in METRICS + surface_distance.VOLUME_METRICS if k in rows[0]]
    all_rows = rows + ([mean] if mean is not None else [])
    name_w = max(4, *(len(str(r.get("name", ""))) for r in all_rows))
    col_w = max(digits + 3, *(len(c) for c in cols))

    def line(r):
        cells = [f"{r[c]:>{col_w}.{digits}f}" if not math.isnan(r[c]) else f"{'nan':>{col_w}}"
                 for c in cols]
        return f"{str(r.get('name', '')):<{name_w}}  " + "  ".join(cells)

    header = f"{'name':<{name_w}}  " + "  ".join(f"{c:>{col_w}}" for c in cols)
    out = [header, "-" * len(header)] + [line(r) for r in rows]
    if mean is not None:
        out += ["-" * len(header), line(mean)]
    return "\n".join(out)
