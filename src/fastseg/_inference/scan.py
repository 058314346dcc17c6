"""A scan as a user brings it: conform, normalise, segment (the whole brain or as is), map back.

:func:`segment_scan` is the volume path of :meth:`fastseg.Segmenter.predict_proba` and
of :func:`fastseg.segment` given an affine:

1. a scan with an affine (a NIfTI image, a :class:`~fastseg.data.Volume`, or an array
   with ``affine=``) is conformed to the model's grid: RAS+ voxel order, the model's
   voxel size (:func:`fastseg.data.conform`); without one, the array is taken as
   already on that grid;
2. its intensities are normalised as the model's training scans were;
3. a whole-brain model looks only where it matters (:mod:`.brain`: a coarse grid, then
   exact dense inference in a box around each hippocampus); other models run densely
   everywhere (:mod:`.volume`);
4. the probability map is brought back onto the scan's own grid (interpolated), so it
   overlays the input in any viewer.

:func:`side_map` says which hippocampus each voxel of the scan would belong to (1 left,
2 right), from the same conformed grid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fastseg import _validate
from fastseg._inference.brain import search_window, segment_brain
from fastseg._inference.volume import fit_volume, grid_step, segment_volume
from fastseg.data import Volume, brain_foreground, conform, normalize_scan
from fastseg.data.volume_patches import as_volume
from fastseg.errors import InvalidValueError

__all__ = ["ScanResult", "segment_scan", "side_map", "has_affine"]


@dataclass
class ScanResult:
    """What :func:`segment_scan` made.

    Attributes
    ----------
    prob : numpy.ndarray
        Class-1 probability on the scan's own grid (float32).
    conformed : fastseg.data.Conformed or None
        The conformed scan (None: the array was taken as on the model's grid).
    midline : float or None
        Whole brains: the index along the conformed grid's first axis (R) between the
        hemispheres (the middle of the brain's extent).
    boxes : dict
        Whole brains: ``{side: slices}`` of the conformed grid segmented densely.
    """

    prob: np.ndarray
    conformed: object = None
    midline: float | None = None
    boxes: dict = field(default_factory=dict)

    @property
    def affine(self):
        """The scan's own voxel-to-world matrix, or None."""
        return None if self.conformed is None else self.conformed.native_affine


def has_affine(volume) -> bool:
    """Whether `volume` brings its own affine (a Volume or a nibabel image)."""
    return isinstance(volume, Volume) or hasattr(volume, "affine") and \
        hasattr(volume, "dataobj")


def _midline(brain) -> float:
    """The middle of the brain's extent along the first (left-right) axis."""
    along = np.flatnonzero(brain.any(axis=(1, 2)))
    return (along[0] + along[-1] + 1) / 2.0


def segment_scan(model, volume, cutter, *, affine=None, spacing=(1.0, 1.0, 1.0),
                 normalize=None, whole_brain=False, threshold=0.5, fov=None, tile=None,
                 progress=None, method="auto", caller="segment") -> ScanResult:
    """Segment a scan end to end (see the module docstring).

    Parameters
    ----------
    model, cutter
        The network and its kind's cutter.
    volume : Volume, nibabel image or array_like (D, H, W)
    affine : array_like (4, 4), optional
        With an array: its voxel-to-world matrix; the scan is then conformed.
    spacing : sequence of 3 floats
        The model's voxel size (mm).
    normalize : {None, "zscore", "robust"}
        How the model's training scans were normalised (None: the input is used as is).
    whole_brain : bool
        Search each hippocampus (:func:`~.brain.segment_brain`) instead of segmenting
        every voxel; `threshold` finds the candidates.
    fov : array_like, optional
        Voxels to segment, on the scan's own grid (conformed with it).
    tile, progress, method, caller
        As :func:`fastseg.segment`.

    Returns
    -------
    ScanResult
    """
    conformed = None
    if affine is not None or has_affine(volume):
        conformed = conform(volume, affine, spacing)
        arr = conformed.array
        if fov is not None:
            mask = _validate.as_fov(fov, conformed.native_shape)
            fov = conform(mask.astype(np.float32), conformed.native_affine, spacing).array >= 0.5
    else:
        arr = as_volume(volume)
    cutter.check_fits(arr.shape)  # before anything slower or less to the point
    tile, method = _fit_scan(model, arr.shape, conformed, cutter, normalize, whole_brain,
                             tile, method, caller)
    x = arr if normalize is None else normalize_scan(arr, normalize)
    midline, boxes = None, {}
    if whole_brain:
        brain = brain_foreground(arr)
        if fov is not None:
            brain &= fov
        if not brain.any():
            raise InvalidValueError("volume: no brain in the field of view")
        midline = _midline(brain)
        found = segment_brain(model, x, cutter, threshold=threshold, midline=midline,
                              brain=search_window(brain), tile=tile, progress=progress,
                              method=method, caller=caller)
        prob, boxes = found.prob, found.boxes
    else:
        prob = segment_volume(model, x, cutter, fov=fov, tile=tile, progress=progress,
                              method=method, caller=caller)
    if conformed is not None:
        prob = np.clip(conformed.to_native(prob), 0.0, 1.0)
    return ScanResult(prob, conformed, midline, boxes)


def _fit_scan(model, shape, conformed, cutter, normalize, whole_brain, tile, method, caller):
    """The (tile, method) to segment a conformed scan of `shape` within the memory limit
    (:func:`~.volume.fit_volume`), counting what this module adds to the segmentation:
    the normalised copy; for a whole brain its masks (the brain, the search window:
    bytes per voxel) and the map of the coarse pass instead of the dense one (the boxes
    of the fine pass, a few hippocampi's worth, are left out); then the map brought back
    to the scan's grid (resampled, reordered, clipped: three float32 copies of the
    scan's own size) beside the conformed one."""
    n = math.prod(shape)
    native = 0 if conformed is None else math.prod(conformed.native_shape)
    extra = (0 if normalize is None else 4 * n) + (3 * n if whole_brain else 0)
    after = 4 * n + 12 * native
    step = grid_step(model, cutter, caller) if whole_brain else None
    what = (f"a {'x'.join(map(str, shape))} scan ({cutter.kind} kind"
            f"{', whole brain' if whole_brain else ''})")
    return fit_volume(model, shape, cutter, tile, method, caller, step=step, extra=extra,
                      after=after, what=what)


def side_map(result: ScanResult) -> np.ndarray:
    """uint8 (1 left, 2 right) for each voxel of the scan's own grid.

    Whole brains: the side of the midline :func:`segment_scan` found, on the conformed
    grid's left-right axis, brought back by nearest neighbour. Otherwise (a crop around
    one structure) the sign of the world ``x`` (RAS: negative is left), which is the
    midline in the standard spaces (MNI) a crop is usually cut in; without an affine,
    every voxel is 1.
    """
    shape = result.prob.shape
    if result.midline is not None:
        c_shape = result.conformed.shape if result.conformed is not None else shape
        sides = np.where(np.arange(c_shape[0]) < result.midline, 1, 2).astype(np.uint8)
        sides = np.broadcast_to(sides[:, None, None], c_shape)
        if result.conformed is None:
            return np.ascontiguousarray(sides)
        return result.conformed.labels_to_native(np.ascontiguousarray(sides))
    affine = result.affine
    if affine is None:
        return np.ones(shape, np.uint8)
    a = np.asarray(affine, np.float64)
    x = (a[0, 0] * np.arange(shape[0])[:, None, None] + a[0, 1] * np.arange(shape[1])[:, None]
         + a[0, 2] * np.arange(shape[2]) + a[0, 3])
    return np.where(x < 0, 1, 2).astype(np.uint8)
