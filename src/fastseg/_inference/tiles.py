"""A 2-D network input's probability map, one output tile at a time.

The input is padded once by the patch cutter's rule
(:func:`fastseg.data.pad_for_patches`); each tile of the output is then one
:meth:`~fastseg._inference.fcn.DensePlan.run_block` over the window of the padded
input that holds its patches, so memory stays bounded whatever the image size. Tiles
with no field-of-view pixel are not computed at all.

:func:`image_bytes` estimates the memory that adds, from the shapes and the schedule
alone (issue 24), and :func:`tile_within` picks a smaller tile where the automatic one
does not fit a budget (``fastseg._memory``).
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from fastseg import backends
from fastseg._inference import cost, fcn, fftconv, progress_bar
from fastseg.data.patches import pad_for_patches

__all__ = ["Handover", "image_probability", "tiles", "grid_tile", "image_bytes",
           "plan_parts", "tile_within", "smaller_tiles", "block_windows"]


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


def tiles(h, w, tile, fov, unit=None):
    """``(y0, x0, th, tw)`` of the output tiles that hold at least one FOV pixel: rows
    and columns cut by :func:`~fastseg._inference.cost.axis_spans` (`unit` on the
    columns, :attr:`~fastseg._inference.cost.Schedule.unit`)."""
    x_spans = cost.axis_spans(w, tile, unit)
    for y0 in range(0, h, tile):
        th, x0 = min(tile, h - y0), 0
        for tw in x_spans:
            if fov is None or fov[y0:y0 + th, x0:x0 + tw].any():
                yield y0, x0, th, tw
            x0 += tw


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
        for y0, x0, th, tw in progress_bar.each(tiles(h, w, schedule.tile, mask, schedule.unit),
                                                progress, "tile"):
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


# ---- memory (issue 24): estimates from shapes, before any work ------------------------------

#: The compiled backend keeps the arrays of at least this many bytes it returns
#: (convolution, activation and pooling outputs) for reuse by shape, at most
#: _POOL_MAX_KEYS shapes (fastseg/_cy/_buffers.py: MIN_BYTES, MAX_KEYS): once a window
#: has run, its direct steps' outputs stay held beside the next window's work.
_POOL_MIN_BYTES = 1 << 18
_POOL_MAX_KEYS = 64


def block_windows(sizes, strides) -> set:
    """The output counts per axis of the windows :meth:`~.fcn.DensePlan.run_block`
    runs for a block of `sizes`: one per shift of the total `strides`."""
    per_axis = [sorted({len(range(d, n, s)) for d in range(min(s, n))})
                for n, s in zip(sizes, strides, strict=True)]
    return set(itertools.product(*per_axis))


def _pooled(dense, windows, plan, backend) -> int:
    """Bytes the backend's output pool holds once a window of each of `windows` has run:
    per shape, the outputs of one window's direct steps (an FFT step's come from NumPy)."""
    if backend != "c":
        return 0
    fused = {j for i in plan.fft for j in range(i + 1, dense.fused(i)[0])}
    keys: dict = {}
    for counts in windows:
        shapes = dense.shapes(tuple(counts))
        channels = dense.in_channels
        for i, step in enumerate(dense.steps):
            if i in plan.fft:
                _, proj = dense.fused(i)
                channels = (step if proj is None else dense.steps[proj]).out_channels
                continue
            if i in fused:
                continue
            out = shapes[i] if isinstance(step, fcn.Act) else step.out_shape(shapes[i])
            if isinstance(step, fcn.Conv):
                channels = step.out_channels
            made = [4] + ([8] if isinstance(step, fcn.Pool) else [])  # values, argmax
            for size in made:
                nbytes = size * channels * math.prod(out)
                if nbytes >= _POOL_MIN_BYTES:
                    key = (channels, tuple(out), size)
                    keys[key] = keys.get(key, 0) + nbytes
    return sum(sorted(keys.values(), reverse=True)[:_POOL_MAX_KEYS])


def _new_spectra(dense, plan) -> int:
    """Bytes of kernel spectra `plan` will make: those the plan does not hold yet at the
    FFT shape asked for (spectra held at another shape are freed first)."""
    total = 0
    for i, how in plan.fft.items():
        step = dense.steps[i]
        held = dense._spectra.get(i)
        if held is not None and held.fft_shape == tuple(how.fft_shape):
            continue
        made = fftconv.KernelSpectra.nbytes_for(step.out_channels, step.in_channels,
                                                 how.fft_shape)
        total += max(0, made - (0 if held is None else held.nbytes))
    return total


def plan_parts(dense, shape, plan, windows, backend=None) -> tuple[int, int]:
    """``(working, kept)`` of running `plan` over windows of an input of `shape`, besides
    the input and output planes: `working`, the largest step's memory on one window and
    one block of class scores with its softmax; `kept`, what stays held once made: the
    kernel spectra it makes and the outputs the backend keeps per window shape
    (`windows`, output counts per axis)."""
    backend = backends.get_backend() if backend is None else backend
    tile, _ = cost.memory_bytes(dense, shape, plan, backend)
    block = [min(plan.tile, n) for n in shape]
    scores = 3 * 4 * dense.num_classes * math.prod(block)
    return tile + scores, _new_spectra(dense, plan) + _pooled(dense, windows, plan, backend)


def image_bytes(dense, hw, plan, *, grid=None, own_input=False, backend=None) -> int:
    """Estimated peak memory :func:`image_probability` adds for a (C, H, W) input of
    `hw` run by `plan` (:func:`fastseg._inference.cost.schedule`'s), in bytes.

    The padded input, the probability map (of the `grid` when given) and
    :func:`plan_bytes`; with `own_input`, the input handed over (made by the caller for
    this call: a preprocessed or resized photo), held until it is padded.
    """
    c, k = dense.in_channels, dense.patch_size
    h, w = hw
    padded = 4 * c * (h + k - 1) * (w + k - 1)
    if grid is None:
        out = (h, w)
        windows = set()
        for size, _ in cost._tile_classes((h, w), min(plan.tile, max(h, w)), plan.unit):
            windows |= block_windows(size, dense.strides)
    else:
        out = tuple(-(-n // g) for n, g in zip(hw, grid, strict=True))
        cells = [grid_tile(plan.tile, g) // g for g in grid]
        windows = set()
        for size in itertools.product(*({min(t, n), n % t or t}
                                        for t, n in zip(cells, out, strict=True))):
            if tuple(grid) == tuple(dense.strides):
                windows.add(tuple(size))
            else:  # run_lattice runs the block at every position, then keeps every g-th
                full = [(n - 1) * g + 1 for n, g in zip(size, grid, strict=True)]
                windows |= block_windows(full, dense.strides)
    prob = 4 * math.prod(out)
    work = sum(plan_parts(dense, hw, plan, windows, backend))
    # At the end the FOV's complement, one byte a pixel.
    return max(padded + 4 * c * h * w * own_input, padded + prob + work + math.prod(out))


def smaller_tiles(largest: int, stride: int = 1):
    """Tile sides below `largest`, each about 4/5 of the one before, multiples of
    `stride`, down to `stride`."""
    t = largest
    while t > stride:
        t = max(stride, int(t * 0.8) // stride * stride)
        yield t


def tile_within(need_of, room, tile, method, largest, stride=1):
    """``(tile, method, need)`` to run within `room` bytes (None: no limit).

    `need_of(tile, method)` estimates the whole work. `tile` (None: the cost model's
    choice) by `method` when it fits, or `room` is None, or `tile` was given; else the
    largest of :func:`smaller_tiles` under `largest` (the automatic tile) that fits by
    `method`, then, for ``"auto"``, by direct convolution alone (no kernel spectra: the
    least memory, not the fastest). Where none fits, the least needing one: its `need`
    above `room` says to refuse.
    """
    need = need_of(tile, method)
    if room is None or need <= room or tile is not None:
        return tile, method, need
    best = (tile, method, need)
    for how in [method] + (["direct"] if method == "auto" else []):
        for t in smaller_tiles(largest, stride):
            n = need_of(t, how)
            if n <= room:
                return t, how, n
            if n < best[2]:
                best = (t, how, n)
    return best
