"""A 2-D network input's probability map, one output tile at a time.

The input is padded once by the patch cutter's rule
(:func:`fastseg.data.pad_for_patches`); each tile of the output is then one
:meth:`~fastseg._inference.fcn.DensePlan.run_block` over the window of the padded
input that holds its patches, so memory stays bounded whatever the image size. Tiles
with no field-of-view pixel are not computed at all.
"""
from __future__ import annotations

import numpy as np

from fastseg._inference import cost, fcn, progress_bar
from fastseg.data.patches import pad_for_patches

__all__ = ["Handover", "image_probability", "tiles", "grid_tile"]


class Handover:
    """A network input handed over by a caller that keeps no other reference to it
    (:meth:`fastseg.Segmenter.predict_proba`'s preprocessed photo): it is let go once
    padded, so a large photo's input does not stay in memory beside its padded copy for
    the whole segmentation."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    def take(self):
        array, self.array = self.array, None
        return array


def tiles(h, w, tile, fov):
    """Top-left corners of the output tiles that hold at least one FOV pixel."""
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            if fov is None or fov[y0:y0 + tile, x0:x0 + tile].any():
                yield y0, x0


def grid_tile(tile: int, stride: int) -> int:
    """A tile side that is a whole number of grid steps (at least one)."""
    return max(stride, -(-tile // stride) * stride)


def image_probability(dense, source: Handover, mask, tile, method, progress,
                      grid=None) -> np.ndarray:
    """Class-1 probability (H, W) of a (C, H, W) network input at its own scale.

    `dense` is the network's :class:`~fastseg._inference.fcn.DensePlan`, `source` a
    :class:`Handover` of the input (let go once padded), `mask` the FOV (H, W) or None
    (pixels outside get 0), `tile` the output tile side or None (the cost model's
    choice), `method` direct/fft/auto, `progress` :func:`progress_bar.each`'s.

    With `grid` ``(sy, sx)``, only the pixels ``(sy*i, sx*j)`` are computed and returned,
    a (ceil(H/sy), ceil(W/sx)) map (`mask` is then of that shape): at the plan's
    strides, one shift of shift-and-stitch, ``1/(sy*sx)`` of the work
    (:meth:`~fastseg._inference.fcn.DensePlan.run_lattice`).
    """
    arr = source.take()
    h, w = arr.shape[1:]
    schedule = cost.schedule(dense, (h, w), method, tile)
    padded = pad_for_patches(arr, dense.patch_size)
    del arr
    if grid is None:
        prob = np.zeros((h, w), np.float32)
        for y0, x0 in progress_bar.each(tiles(h, w, schedule.tile, mask), progress, "tile"):
            th, tw = min(schedule.tile, h - y0), min(schedule.tile, w - x0)
            logits = dense.run_block(padded, (y0, x0), (th, tw), schedule)
            prob[y0:y0 + th, x0:x0 + tw] = fcn.class1_probability(logits)
    else:
        sy, sx = grid
        gh, gw = -(-h // sy), -(-w // sx)
        ty, tx = grid_tile(schedule.tile, sy) // sy, grid_tile(schedule.tile, sx) // sx
        prob = np.zeros((gh, gw), np.float32)
        corners = [(y0, x0) for y0 in range(0, gh, ty) for x0 in range(0, gw, tx)
                   if mask is None or mask[y0:y0 + ty, x0:x0 + tx].any()]
        for y0, x0 in progress_bar.each(corners, progress, "tile"):
            counts = (min(ty, gh - y0), min(tx, gw - x0))
            logits = dense.run_lattice(padded, (sy * y0, sx * x0), counts, grid, schedule)
            prob[y0:y0 + counts[0], x0:x0 + counts[1]] = fcn.class1_probability(logits)
    if mask is not None:
        prob[~mask] = 0.0
    return prob
