"""Intensity normalisation of scans: MRI values have no absolute scale.

Two ways, both an affine map of the voxel values (so a bias field or an intensity
augmentation can be expressed in either's units, see :func:`normalization_zero`):

``"zscore"`` (:func:`normalize_volume`)
    ``(v - mean) / std`` over the non-zero voxels. The models trained before whole
    brains use it; kept bit for bit.
``"robust"`` (:func:`normalize_brain`)
    Percentiles of the brain (the foreground): ``(v - p50) * BRAIN_SPAN / (p99 - p1)``.
    A percentile does not move when a few voxels do (vessels, fat, a bright artefact,
    the skull left in or stripped), unlike a mean, a standard deviation or a min/max.
"""

from __future__ import annotations

import numpy as np

from fastseg import _validate
from fastseg.errors import InvalidValueError

from .volume_patches import as_volume

__all__ = ["normalize_volume", "normalize_brain", "normalize_scan", "brain_foreground",
           "normalization_zero", "NORMALIZATIONS", "BRAIN_SPAN", "FOREGROUND_LEVEL"]

#: The names of the normalisations (what a model file records).
NORMALIZATIONS = ("zscore", "robust")
#: :func:`normalize_brain` maps the brain's 1st to 99th percentile onto this many units.
#: 4 makes the brain's spread about that of a z-score (on the two built-in T1 templates
#: the brain's standard deviation becomes 0.91 and 0.96), so networks, initialisations
#: and learning rates tuned on z-scored volumes keep working.
BRAIN_SPAN = 4.0
#: The default foreground of :func:`brain_foreground`: above this fraction of the way
#: from the background level (0.5th percentile) to the bright tissue (99th percentile).
#: Air and noise outside the head lie below 5 % of bright tissue in a T1 scan, CSF at
#: 15-35 % and grey and white matter far above, so 10 % keeps the tissue and drops the
#: air, for scans with or without the skull.
FOREGROUND_LEVEL = 0.1
_BACKGROUND_PERCENTILE = 0.5
_BRIGHT_PERCENTILE = 99.0


def _zscore_params(arr) -> tuple[float, float]:
    """(mean, std) of the non-zero voxels, std 1 for a constant signal."""
    signal = arr[arr != 0].astype(np.float64)
    if signal.size == 0:
        raise InvalidValueError("volume: every voxel is 0; nothing to normalise")
    std = signal.std()
    return signal.mean(), (std if std > 0 else 1.0)


def normalize_volume(volume) -> np.ndarray:
    """A scan's intensities as z-scores over its non-zero voxels.

    ``(v - mean) / std`` with the mean and standard deviation of the voxels that are
    not exactly 0, applied to every voxel. MRI intensities have no absolute scale
    (the two built-in templates differ by a factor of about 80), and brain-extracted
    scans and crops near the brain's edge hold zeros outside the head; leaving those
    out of the statistics makes them independent of how much background a crop has,
    and the zeros stay darker than any tissue, as in the scan. A constant scan is
    only centred.

    Parameters
    ----------
    volume : array_like
        ``(D, H, W)`` finite real values.

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Raises
    ------
    ValueError
        Not 3-D, empty, NaN/infinite values, or every voxel 0.

    See Also
    --------
    normalize_brain : the robust one, by percentiles of the brain.
    """
    arr = as_volume(volume)
    mean, std = _zscore_params(arr)
    return ((arr - mean) / std).astype(np.float32)


def brain_foreground(volume) -> np.ndarray:
    """The voxels holding tissue: above :data:`FOREGROUND_LEVEL` of the way from the
    background (0.5th percentile) to bright tissue (99th percentile).

    For a skull-stripped scan (0 outside the brain) that is the brain; for a whole
    head the head, without the air around it (noisy, but far darker than tissue). A
    threshold on the histogram's own ends rather than a fitted split (Otsu): on a
    T1 brain Otsu falls between grey and white matter once the background is gone,
    while this level depends only on the background and the brightest tissue.

    Parameters
    ----------
    volume : array_like
        ``(D, H, W)`` finite real values.

    Returns
    -------
    numpy.ndarray of bool
    """
    arr = as_volume(volume)
    return _foreground(arr)


def _foreground(arr):
    background, bright = np.percentile(arr, [_BACKGROUND_PERCENTILE, _BRIGHT_PERCENTILE])
    return arr > background + FOREGROUND_LEVEL * (bright - background)


def _robust_params(arr, brain) -> tuple[float, float]:
    """(p50, BRAIN_SPAN / (p99 - p1)) of the brain's voxels."""
    inside = _foreground(arr) if brain is None else _validate.as_mask(brain, arr.shape,
                                                                      name="brain")
    values = arr[inside]
    if values.size == 0:
        raise InvalidValueError("volume: no brain in the field of view (no foreground voxel"
                                f"{'' if brain is None else ' inside brain'})")
    p1, p50, p99 = np.percentile(values, [1.0, 50.0, 99.0])
    spread = float(p99 - p1)
    if not spread > 1e-6 * max(abs(float(p1)), abs(float(p99)), np.finfo(np.float32).tiny):
        raise InvalidValueError(f"volume: no brain in the field of view (the foreground is "
                                f"constant: 1st to 99th percentile {float(p1):.6g} to "
                                f"{float(p99):.6g})")
    return float(p50), BRAIN_SPAN / spread


def normalize_brain(volume, brain=None) -> np.ndarray:
    """A scan's intensities by percentiles of its brain: a robust normalisation.

    ``(v - p50) * BRAIN_SPAN / (p99 - p1)``, with the 1st, 50th and 99th percentiles
    of the brain's voxels, applied to every voxel: the brain's median becomes 0 and
    its 1st to 99th percentile span :data:`BRAIN_SPAN` (4) units. Two scans of one
    brain that differ by a gain (another scanner, another receive coil setting) give
    the same result; a monotone change of contrast moves tissues little, since
    percentiles follow ranks, not values.

    Parameters
    ----------
    volume : array_like
        ``(D, H, W)`` finite real values.
    brain : array_like of bool, optional
        Where the brain is (a brain mask). Default: :func:`brain_foreground`, the
        tissue above a low level (every non-zero voxel of a skull-stripped scan; the
        head without the air otherwise).

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Raises
    ------
    InvalidValueError
        "no brain in the field of view": the foreground (or `brain`) is empty, or
        constant so that nothing can be scaled; not 3-D, empty, NaN/infinite values.

    Notes
    -----
    Whole brains and crops give different statistics (a crop's median is the
    hippocampus' surroundings); normalise the scans a model segments as its training
    scans were.
    """
    arr = as_volume(volume)
    centre, gain = _robust_params(arr, brain)
    return ((arr - np.float32(centre)) * np.float32(gain)).astype(np.float32, copy=False)


def normalize_scan(volume, method="zscore") -> np.ndarray:
    """Normalise by name: ``"zscore"`` (:func:`normalize_volume`) or ``"robust"``
    (:func:`normalize_brain`), as a model file records it."""
    return _normalize(as_volume(volume), _check_method(method))[0]


def normalization_zero(volume, method="zscore") -> float:
    """The value a raw 0 takes once `volume` is normalised by `method` (``"none"``: 0).

    Both normalisations are affine maps of the values, so a multiplicative change of
    the raw scan (a bias field) is, in normalised units, a scaling about this value.
    """
    return _normalize(as_volume(volume), _check_method(method, allow_none=True))[1]


def _check_method(method, allow_none=False):
    names = NORMALIZATIONS + (("none",) if allow_none else ())
    if method not in names:
        raise InvalidValueError(f"normalize: must be one of {list(names)}, got {method!r}")
    return method


def _normalize(arr, method):
    """(normalised float32 volume, the normalised value of a raw 0) for a checked array."""
    if method == "zscore":
        mean, std = _zscore_params(arr)
        return ((arr - mean) / std).astype(np.float32), float((0.0 - mean) / std)
    if method == "robust":
        centre, gain = _robust_params(arr, None)
        out = ((arr - np.float32(centre)) * np.float32(gain)).astype(np.float32, copy=False)
        return out, float((np.float32(0) - np.float32(centre)) * np.float32(gain))
    return arr, 0.0
