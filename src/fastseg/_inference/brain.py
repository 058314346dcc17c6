"""Whole brains: find each hippocampus on a coarse grid, then exact dense inference in boxes.

A whole 1 mm brain holds about 7 million voxels, of which the two hippocampi take
about 8000. Segmenting every voxel densely costs the network's full work everywhere;
this module looks only where it matters, with the same network and no second model:

1. **Coarse pass**: the dense network on a grid of every ``S``-th voxel per axis
   (:func:`~fastseg._inference.volume.grid_step`: the total stride of a pooling
   network, one shift of shift-and-stitch, about ``1/S**3`` of the work; every 4th
   plane of an unstrided one), over the blocks that hold brain inside
   :data:`SEARCH_WINDOW`. Each grid value is exactly the full map's at its voxel.
2. **Candidates**: grid voxels at or above the threshold, split at the midline
   (``x`` of the RAS+ grid, axis 0), connected components per side; on each side
   the :data:`CANDIDATES` components of the largest summed probability (a network's
   coarse map may hold a look-alike region as probable as the hippocampus: the exact
   maps decide, the caller keeping the largest component per side), each holding at
   least :data:`CANDIDATE_SHARE` of the first's (a smaller one could not become the
   side's largest component).
3. **Fine pass**: exact dense inference over a box around each candidate (its
   extent widened by ``margin`` voxels), the rest of the map left at 0. Each box is
   cut from the volume with the context its patches need (the cutter's padding
   widths); where that context reaches the volume's edge the cut's edge is the
   volume's, whose reflection padding is then the same. So inside the boxes the map
   equals the dense map of the whole brain, voxel for voxel.

The volume must be in RAS+ voxel order (the conformed grid of
:func:`fastseg.data.conform`), so that axis 0 runs from left to right.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastseg._inference.volume import grid_step, segment_volume
from fastseg.errors import InvalidValueError

__all__ = ["BrainSearch", "SIDES", "MARGIN", "CANDIDATES", "CANDIDATE_SHARE", "SEARCH_WINDOW",
           "search_window", "segment_brain"]

#: The hippocampi, in label order (1 = left, 2 = right).
SIDES = ("left", "right")
#: Voxels added around a coarse candidate's extent before the fine pass: the grid can
#: miss a thin end of the structure by up to one step, and the boundary voxels that the
#: threshold keeps lie within a few voxels of the candidate (hippocampus at 1 mm).
MARGIN = 6
#: Candidate components per side segmented exactly, the most probable first.
CANDIDATES = 3
#: A candidate after the first is segmented only when its summed coarse probability is
#: at least this share of the first's. The caller keeps each side's largest component,
#: and a component's exact size follows its coarse mass: one of under half the first's
#: cannot win unless the first's exact map falls apart. On the held-out brain the
#: trained networks' second candidates hold 7-48 % of the first's; each box costs the
#: tri-planar network as much as the first (13 s on 2 cores), the others a few seconds.
CANDIDATE_SHARE = 0.5


#: Where the coarse pass looks, as fractions of the brain's extent along the RAS+ axes
#: (x left to right, y posterior to anterior, z inferior to superior). The hippocampi of
#: both built-in templates (MNI152 and ICBM 2009c, the consensus of three atlases) lie at
#: x 0.24-0.42 and 0.58-0.77, y 0.36-0.57, z 0.27-0.51 of their brains' extents; the
#: window adds at least 0.2 of the extent (about 35 mm) on every side in y and z, and
#: keeps all of x. It halves the coarse work (0.65 x 0.70 of the brain's box).
SEARCH_WINDOW = ((0.0, 1.0), (0.15, 0.80), (0.05, 0.75))


def search_window(brain) -> np.ndarray:
    """`brain` (a bool RAS+ volume) inside :data:`SEARCH_WINDOW` of its own extent."""
    window = np.zeros(brain.shape, bool)
    box = []
    for axis, (lo, hi) in enumerate(SEARCH_WINDOW):
        along = np.flatnonzero(brain.any(axis=tuple(a for a in range(3) if a != axis)))
        if along.size == 0:
            return window
        first, extent = along[0], along[-1] + 1 - along[0]
        box.append(slice(int(first + np.floor(lo * extent)), int(first + np.ceil(hi * extent))))
    window[tuple(box)] = True
    return window & brain


@dataclass
class BrainSearch:
    """What :func:`segment_brain` found.

    Attributes
    ----------
    prob : numpy.ndarray (D, H, W) float32
        Exact class-1 probability inside the boxes, 0 elsewhere.
    boxes : dict
        ``{side: [tuple of slice, ...]}``: the regions segmented densely on each side,
        the most probable candidate first (a side without one has no entry).
    coarse : numpy.ndarray
        The coarse grid's probabilities (every ``step``-th voxel per axis).
    step : tuple of int
    """

    prob: np.ndarray
    boxes: dict = field(default_factory=dict)
    coarse: np.ndarray | None = None
    step: tuple = (1, 1, 1)


def _candidate_boxes(coarse, side_mask, threshold, step, margin, shape, count, share):
    """The boxes (full-resolution slices) around the `count` most probable connected
    components of grid voxels at or above `threshold` inside `side_mask` whose summed
    probability is at least `share` of the first's, most probable first ([] when there
    is none)."""
    from scipy import ndimage

    hot = (coarse >= threshold) & side_mask
    labels, n = ndimage.label(hot)
    if n == 0:
        return []
    mass = ndimage.sum_labels(coarse, labels, index=np.arange(1, n + 1))
    boxes = []
    order = np.argsort(-mass, kind="stable")[:count]
    for best in order[mass[order] >= share * mass[order[0]]] + 1:
        where = np.argwhere(labels == best)
        lo, hi = where.min(axis=0), where.max(axis=0)
        boxes.append(tuple(slice(max(0, int(a) * s - margin), min(n_, int(b) * s + s + margin))
                           for a, b, s, n_ in zip(lo, hi, step, shape, strict=True)))
    return boxes


def segment_brain(model, volume, cutter, *, threshold, midline, brain=None, margin=MARGIN,
                  candidates=CANDIDATES, share=CANDIDATE_SHARE, tile=None, progress=None,
                  method="auto", caller="segment") -> BrainSearch:
    """Find and segment both hippocampi of a whole-brain volume (see the module docstring).

    Parameters
    ----------
    model, cutter
        The network and its kind's cutter (:func:`~.volume.network_cutter`).
    volume : numpy.ndarray (D, H, W)
        The normalised scan on a RAS+ grid at the model's voxel size.
    threshold : float
        Probability from which a coarse grid voxel is a candidate (the segmenter's
        decision threshold).
    midline : float
        The index along axis 0 (x) that separates the left hemisphere (below) from
        the right.
    brain : numpy.ndarray (D, H, W) of bool, optional
        Where the brain is: the coarse pass skips blocks without it. None: everywhere.
    margin : int
        Voxels added on every side of a candidate's extent for the fine pass.
    candidates : int
        Candidate components segmented per side at most, the most probable first.
    share : float
        The least share of the first candidate's summed coarse probability another
        must hold to be segmented (0: every one of the `candidates`).
    tile, progress, method, caller
        As :func:`~.volume.segment_volume`.

    Returns
    -------
    BrainSearch
    """
    arr = np.asarray(volume)
    if arr.ndim != 3:
        raise InvalidValueError(f"volume: expected a (D, H, W) brain, got shape {arr.shape}")
    step = grid_step(model, cutter, caller)
    coarse = segment_volume(model, arr, cutter, fov=brain, tile=tile, progress=progress,
                            method=method, caller=caller, grid=True)
    x = np.arange(coarse.shape[0]) * step[0]
    sides = {"left": (x < midline)[:, None, None], "right": (x >= midline)[:, None, None]}
    boxes = {}
    for side in SIDES:
        side_mask = np.broadcast_to(sides[side], coarse.shape)
        found = _candidate_boxes(coarse, side_mask, threshold, step, margin, arr.shape,
                                 candidates, share)
        if found:
            boxes[side] = found
    prob = np.zeros(arr.shape, np.float32)
    for box in (b for found in boxes.values() for b in found):
        prob[box] = _box_probability(model, arr, cutter, box, tile, progress, method, caller)
    return BrainSearch(prob, boxes, coarse, step)


def _box_probability(model, arr, cutter, box, tile, progress, method, caller):
    """The dense map inside `box`, from a cut of the volume holding its patches' context."""
    widths = cutter.pad_widths()
    cut = tuple(slice(max(0, s.start - before), min(n, s.stop + after))
                for s, (before, after), n in zip(box, widths, arr.shape, strict=True))
    prob = segment_volume(model, arr[cut], cutter, tile=tile, progress=progress, method=method,
                          caller=caller)
    return prob[tuple(slice(s.start - c.start, s.stop - c.start)
                      for s, c in zip(box, cut, strict=True))]
