"""Volume segmentation: the probability map of a (D, H, W) scan for each network kind.

A volume network classifies the patch its kind's cutter
(:mod:`fastseg.data.volume_patches`) cuts around a voxel. Every kind runs densely
(never cutting a patch), in blocks of bounded memory, giving at every voxel what the
classifier gives for that voxel's patch:

* ``"2d"``: the 2-D dense path of :func:`fastseg.segment` on each plane normal to the
  cutter's axis (its tiles bound the memory);
* ``"stacked2d"``: the same on each stack of ``slices`` neighbouring planes as
  channels, the volume first mirrored along the axis as the cutter mirrors it;
* ``"triplanar"``: the three towers densely over their planes, their terms of the
  hidden layer summed before its activation (:mod:`fastseg._inference.triplanar`), block by
  block so the hidden maps stay under :data:`BLOCK_BUDGET_BYTES`;
* ``"3d"``: the 3-D dense plan over cubic blocks, shift-and-stitch under pooling,
  each convolution direct or by FFT as :mod:`fastseg._inference.cost` chooses.

Padding is the cutter's (reflection, :data:`fastseg.data.patches.PAD_MODE`), which
pads axis by axis, so padding one plane or one axis at a time gives the same
values as padding the whole volume.

:func:`volume_bytes` estimates the memory :func:`segment_volume` adds for each kind from
the shapes and the schedules alone; :func:`fit_volume` picks a smaller tile (block) where
the automatic one does not fit the memory limit, or refuses (issue 24).
"""
from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from fastseg import _memory, _validate, backends
from fastseg._inference import cost, fcn, progress_bar, triplanar
from fastseg._inference.tiles import (
    Handover,
    block_windows,
    grid_tile,
    image_bytes,
    image_probability,
    plan_parts,
    tile_within,
)
from fastseg.data.patches import PAD_MODE
from fastseg.data.volume_patches import (
    CUTTER_KINDS,
    Cube3D,
    PatchCutter,
    TriPlanar,
    as_volume,
    make_cutter,
)
from fastseg.errors import InvalidTypeError, InvalidValueError

__all__ = ["network_cutter", "check_fits_network", "segment_volume", "grid_step",
           "BLOCK_BUDGET_BYTES", "volume_bytes", "fit_volume"]

#: Hidden-layer maps of one tri-planar block (and the head's copies of them) stay under this.
BLOCK_BUDGET_BYTES = cost.TILE_BUDGET_BYTES


# ---- which kind a model segments ----------------------------------------------------------


def _network_dims(model, caller) -> int:
    return next((d for *_, d in fcn.geometry(model, caller) if d is not None), 2)


def _as_cutter(cutter, patch_size) -> PatchCutter:
    if isinstance(cutter, PatchCutter):
        return cutter
    if isinstance(cutter, str):
        if patch_size is None:
            raise InvalidValueError(f"cutter: a kind name ({cutter!r}) needs patch_size; or pass "
                                    "fastseg.data.make_cutter(kind, size, ...)")
        return make_cutter(cutter, patch_size)
    raise InvalidTypeError(f"cutter: expected a PatchCutter (fastseg.data.make_cutter) or one of "
                           f"{sorted(CUTTER_KINDS)}, got {type(cutter).__name__}")


def network_cutter(model, cutter=None, patch_size=None, caller="segment") -> PatchCutter | None:
    """The cutter whose patches `model` classifies, or None for an image network.

    In order: `cutter` when given (a :class:`~fastseg.data.PatchCutter` or a kind
    name), the cutter the model records (``model.cutter``, set by
    :class:`fastseg.Segmenter` and kept in its model file), the tri-planar cutter
    for a network of three parallel towers, the cube for a 3-D network. A 2-D
    network of one input records no kind of its own: it segments images unless
    told (its patches could lie in any plane, alone or stacked).

    Raises
    ------
    ValueError
        A `patch_size` other than the cutter's, or a cutter that does not fit the
        network (its kind, channels or patch size).
    """
    if cutter is None:
        cutter = getattr(model, "cutter", None)
        if cutter is not None and not isinstance(cutter, PatchCutter):
            raise InvalidTypeError(f"model.cutter: expected a PatchCutter, got "
                                   f"{type(cutter).__name__}")
    if cutter is None:
        if triplanar.is_triplanar(model):
            size = patch_size if patch_size is not None else triplanar.infer_patch_size(model,
                                                                                         caller)
            return TriPlanar(size)
        if _network_dims(model, caller) == 3:
            size = patch_size if patch_size is not None else fcn.infer_patch_size(model,
                                                                                     caller)
            return Cube3D(size)
        return None
    cutter = _as_cutter(cutter, patch_size)
    if patch_size is not None and _validate.as_int("patch_size", patch_size, 1) != cutter.size:
        raise InvalidValueError(f"patch_size: {patch_size} differs from the {cutter.kind} "
                                f"cutter's patch size {cutter.size}")
    return cutter


def check_fits_network(model, cutter, caller):
    """Refuse a cutter whose patches the network does not take."""
    name = type(model).__name__
    if cutter.kind == "triplanar":
        if not triplanar.is_triplanar(model):
            raise InvalidValueError(f"{caller}: the triplanar kind needs a tri-planar network "
                                    f"(three parallel towers); {name} is not one")
        return None
    if triplanar.is_triplanar(model):
        raise InvalidValueError(f"{caller}: a tri-planar network segments with the triplanar "
                                f"kind, not {cutter.kind!r}")
    dense = fcn.cached_plan(model, cutter.size, caller)
    want_dims = 3 if cutter.kind == "3d" else 2
    if dense.ndim != want_dims:
        raise InvalidValueError(f"{caller}: the {cutter.kind} kind needs a {want_dims}-D "
                                f"network; {name} is {dense.ndim}-D")
    if dense.in_channels != cutter.in_channels:
        raise InvalidValueError(f"{caller}: the {cutter!r} cutter gives {cutter.in_channels} "
                                f"channel(s) per patch, but the network takes "
                                f"{dense.in_channels}")
    return dense


# ---- blocks -------------------------------------------------------------------------------


def _blocks(shape, block, mask):
    """(origin, block shape) of the blocks tiling `shape` that hold a voxel of `mask`."""
    for origin in itertools.product(*(range(0, n, b) for n, b in zip(shape, block,
                                                                      strict=True))):
        size = tuple(min(b, n - o) for o, b, n in zip(origin, block, shape, strict=True))
        region = tuple(slice(o, o + s) for o, s in zip(origin, size, strict=True))
        if mask is None or mask[region].any():
            yield origin, size, region


# ---- the kinds ----------------------------------------------------------------------------


def _grid_shape(shape, step):
    return tuple(-(-n // s) for n, s in zip(shape, step, strict=True))


def _planes(dense, arr, mask, cutter, tile, method, progress, step=None):
    """2d and stacked2d: the 2-D dense path on each plane (or stack of planes); with a
    grid `step`, every step-th plane and in it every step-th pixel."""
    axis = cutter.axis
    v = np.moveaxis(arr, axis, 0)
    depth = 1
    if cutter.kind == "stacked2d":
        depth = cutter.slices
        before = depth // 2
        v = np.pad(v, ((before, depth - 1 - before), (0, 0), (0, 0)), mode=PAD_MODE)
    along = 1 if step is None else step[axis]
    m = None if mask is None else np.moveaxis(mask, axis, 0)
    n_planes = -(-arr.shape[axis] // along)
    in_plane = None if step is None else tuple(step[a] for a in range(3) if a != axis)
    plane = m.shape[1:] if m is not None else \
        (v.shape[1:] if step is None else _grid_shape(v.shape[1:], in_plane))
    prob = np.zeros((n_planes, *plane), np.float32)
    for g in progress_bar.each(range(n_planes), progress, "slice"):
        if m is not None and not m[g].any():
            continue
        d = g * along
        prob[g] = image_probability(dense, Handover(np.ascontiguousarray(v[d:d + depth])),
                                    None if m is None else m[g], tile, method, False,
                                    grid=in_plane)
    return np.moveaxis(prob, 0, axis)


def _cubes(dense, arr, mask, cutter, tile, method, progress, step=None):
    """3d: the 3-D dense plan on cubic blocks of the volume; with a grid `step` (the
    plan's strides), one shift of each block: every step-th voxel per axis."""
    plan = cost.schedule(dense, arr.shape, method, tile)
    padded = cutter.pad(arr)[None]
    if step is None:
        prob = np.zeros(arr.shape, np.float32)
        blocks = _blocks(arr.shape, (plan.tile,) * 3, mask)
        for origin, size, region in progress_bar.each(blocks, progress, "block"):
            prob[region] = fcn.class1_probability(dense.run_block(padded, origin, size, plan))
        return prob
    shape = _grid_shape(arr.shape, step)
    block = tuple(grid_tile(plan.tile, s) // s for s in step)
    prob = np.zeros(shape, np.float32)
    for origin, size, region in progress_bar.each(_blocks(shape, block, mask), progress,
                                                  "block"):
        at = tuple(s * o for s, o in zip(step, origin, strict=True))
        prob[region] = fcn.class1_probability(dense.run_lattice(padded, at, size, step, plan))
    return prob


def _triplanar_block(shape, hidden, tile):
    """A block shape whose hidden maps fit :data:`BLOCK_BUDGET_BYTES`: the volume (or
    `tile` cubes), its longest side halved until they fit."""
    block = list(shape) if tile is None else [min(tile, n) for n in shape]
    # The summed terms, and the head's transposed copy and activations of them.
    while 3 * 4 * hidden * math.prod(block) > BLOCK_BUDGET_BYTES and max(block) > 1:
        longest = block.index(max(block))
        block[longest] = -(-block[longest] // 2)
    return tuple(block)


def _tri_planar(plan, arr, mask, cutter, tile, method, progress, step=None):
    """triplanar: each tower of `plan` (:func:`.triplanar.cached_plan`'s) over its planes
    of a block, the terms summed, then the head; with a grid `step` (the towers'
    strides), every step-th voxel per axis (each tower on every step-th plane, one shift
    within it)."""
    unit = (1, 1, 1) if step is None else step
    shape = _grid_shape(arr.shape, unit)
    block = _triplanar_block(shape, plan.hidden, tile)
    padded = cutter.pad(arr)
    prob = np.zeros(shape, np.float32)
    blocks = _blocks(shape, block, mask)
    for origin, size, region in progress_bar.each(blocks, progress, "block"):
        pre = np.zeros((plan.hidden, *size), np.float32)
        for axis, tower in enumerate(plan.towers):
            _tower_terms(tower, pre, padded, axis, origin, size, unit, cutter.size // 2,
                         method, tile, step is not None)
        prob[region] = plan.class1_probability(pre)
    return prob


#: Input pixels of one tower mosaic at most (:func:`_tower_terms`): a hippocampus box's
#: planes go 16 at a time, a whole brain's one or two; the tower's output over it
#: (lai_triplanar: 128 channels) and its FFT work stay in tens of MiB.
MOSAIC_PIXELS = 1 << 16


@dataclasses.dataclass(frozen=True)
class _Mosaic:
    """How :func:`_tower_terms` lays a block's planes normal to `axis` under one another:
    the in-plane axes `a0` (down the mosaic) and `a1`, their steps `u0`, `u1` and output
    counts `c0`, `c1`, a plane's window `h` x `w`, its `slot` of rows (`h` rounded up to
    a multiple of `u0`) and the planes `per` mosaic (at most :data:`MOSAIC_PIXELS`).
    The work and its memory estimate (:func:`_mosaic_bytes`) read the same layout."""

    a0: int
    a1: int
    u0: int
    u1: int
    c0: int
    c1: int
    h: int
    w: int
    slot: int
    per: int

    @classmethod
    def of(cls, tower, size, axis, unit):
        a0, a1 = (a for a in range(3) if a != axis)
        u0, u1, c0, c1 = unit[a0], unit[a1], size[a0], size[a1]
        h, w = u0 * (c0 - 1) + tower.patch_size, u1 * (c1 - 1) + tower.patch_size
        slot = -(-h // u0) * u0
        return cls(a0, a1, u0, u1, c0, c1, h, w, slot,
                   max(1, min(size[axis], MOSAIC_PIXELS // (slot * w))))

    def rows(self, m: int) -> int:
        """Output rows of a mosaic of `m` planes, slots included."""
        return (m - 1) * (self.slot // self.u0) + self.c0

    def image(self, m: int, k: int) -> tuple[int, int]:
        """The dense output shape a mosaic of `m` planes gives a patch of `k`."""
        return (m * self.slot - k + 1, self.w - k + 1)


def _tower_terms(tower, pre, padded, axis, origin, size, unit, before, method, tile, lattice):
    """Add tower `axis`'s terms for the block at `origin` (grid units of `unit`) of the
    padded volume to `pre` (hidden, *size): its planes normal to `axis` laid one under
    another in mosaics of at most :data:`MOSAIC_PIXELS`, each run as one image.

    Each plane takes a slot of rows holding its patches' window (a multiple of the
    in-plane step tall, so that the lattice runs on in the next slot); a patch never
    reaches into the next slot, so every kept output is that plane's own. Images of
    many planes instead of one call per plane: the FFT path takes larger tiles and the
    calls' fixed costs are shared (lai_triplanar on a hippocampus box: 1.7x faster)."""
    lay = _Mosaic.of(tower, size, axis, unit)
    o0, o1 = lay.u0 * origin[lay.a0], lay.u1 * origin[lay.a1]
    n = size[axis]
    into = np.moveaxis(pre, 1 + axis, 1)  # a view: (hidden, planes, c0, c1)
    at = [slice(None)] * 3
    at[lay.a0], at[lay.a1] = slice(o0, o0 + lay.h), slice(o1, o1 + lay.w)
    for first in range(0, n, lay.per):
        m = min(lay.per, n - first)
        mosaic = np.zeros((1, m * lay.slot, lay.w), np.float32)
        for i in range(m):
            at[axis] = unit[axis] * (origin[axis] + first + i) + before
            mosaic[0, i * lay.slot:i * lay.slot + lay.h] = padded[tuple(at)]
        counts = (lay.rows(m), lay.c1)
        schedule = cost.schedule(tower, lay.image(m, tower.patch_size), method, tile)
        if lattice:
            out = tower.run_lattice(mosaic, (0, 0), counts, (lay.u0, lay.u1), schedule)
        else:
            out = tower.run_block(mosaic, (0, 0), counts, schedule)
        keep = np.arange(m)[:, None] * (lay.slot // lay.u0) + np.arange(lay.c0)
        into[:, first:first + m] += out[:, keep]


#: The grid step of an unstrided network's coarse map (its planes every 4th; in a plane
#: its dense map, FFT or direct, costs the same per pixel whatever is kept of it).
UNSTRIDED_STEP = 4


def grid_step(model, cutter, caller="segment") -> tuple[int, int, int]:
    """The per-axis step of :func:`segment_volume`'s ``grid=True`` map: the network's
    strides where it has them (one shift of shift-and-stitch: ``1/prod(step)`` of the
    work), the same on every axis; for a network without strides
    :data:`UNSTRIDED_STEP`, which the 2-D kinds and the tri-planar towers save by
    computing every step-th plane (``1/step`` of the work)."""
    if cutter.kind == "triplanar":
        plan = triplanar.cached_plan(model, cutter.size, caller)
        strides = {s for tower in plan.towers for s in tower.strides}
    else:
        dense = check_fits_network(model, cutter, caller)
        if cutter.kind == "3d":
            return tuple(dense.strides)
        strides = set(dense.strides)
    s = strides.pop() if len(strides) == 1 else 1
    return (s if s > 1 else UNSTRIDED_STEP,) * 3


def segment_volume(model, volume, cutter, fov=None, tile=None, progress=None, method="auto",
                   caller="segment", grid=False) -> np.ndarray:
    """Class-1 probability (D, H, W) float32 of every voxel of `volume`, densely.

    Parameters are :func:`fastseg.segment`'s; `cutter` says the kind
    (:func:`network_cutter`), `fov` is a (D, H, W) mask (voxels outside get 0, blocks
    with none inside are skipped) and `tile` the side of a block (3d, triplanar) or
    of a plane's tile (2d, stacked2d).

    With `grid`, only the voxels ``step * (i, j, k)`` are computed (``step`` from
    :func:`grid_step`: the network's strides, one shift of shift-and-stitch, about
    ``1/prod(step)`` of the work): the result is the map of that grid, of shape
    ``ceil(shape / step)``, each value exactly the full map's at its voxel. A `fov`
    is then read on the grid (``fov[::s, ::s, ::s]``).
    """
    ndim = np.ndim(volume)
    if ndim != 3:
        hint = "; pick one 3-D volume (one channel, one time point) of it" if ndim > 3 else ""
        raise InvalidValueError(f"volume: the network segments (D, H, W) volumes (its kind is "
                                f"{cutter.kind}), got shape {np.shape(volume)}{hint}")
    arr = as_volume(volume)
    cutter.check_fits(arr.shape)
    cost.check_method(method)
    mask = None if fov is None else _validate.as_fov(fov, arr.shape)
    tile = None if tile is None else _validate.as_int("tile", tile, minimum=1)
    step = grid_step(model, cutter, caller) if grid else None
    if mask is not None and step is not None:
        mask = mask[tuple(slice(None, None, s) for s in step)]
    if cutter.kind == "triplanar":
        check_fits_network(model, cutter, caller)
        net = triplanar.cached_plan(model, cutter.size, caller)
    else:
        net = check_fits_network(model, cutter, caller)
    # After every check of the arguments (a bad one is named first), before any work.
    tile, method = _fit(net, arr.shape, cutter, tile, method, caller, step)
    if cutter.kind == "triplanar":
        prob = _tri_planar(net, arr, mask, cutter, tile, method, progress, step)
    else:
        run = _cubes if cutter.kind == "3d" else _planes
        prob = run(net, arr, mask, cutter, tile, method, progress, step)
    if mask is not None:
        prob[~mask] = 0.0
    return prob


# ---- memory (issue 24) ----------------------------------------------------------------------


def _padded_bytes(shape, cutter) -> int:
    return 4 * math.prod(n + a + b for n, (a, b) in zip(shape, cutter.pad_widths(), strict=True))


def _classes(shape, block):
    """The block shapes tiling `shape`: whole blocks and the narrower ones at the edges."""
    return set(itertools.product(*({min(b, n), n % b or b} for n, b in zip(shape, block,
                                                                          strict=True))))


def _lattice_windows(dense, cells, step) -> set:
    """The windows a block of `cells` grid points runs (:meth:`~.fcn.DensePlan.run_lattice`)."""
    if tuple(step) == tuple(dense.strides):
        return {tuple(cells)}
    full = [(n - 1) * s + 1 for n, s in zip(cells, step, strict=True)]
    return block_windows(full, dense.strides)


def _cubes_bytes(dense, shape, cutter, plan, step):
    out = shape if step is None else _grid_shape(shape, step)
    if step is None:
        windows = set().union(*(block_windows(size, dense.strides)
                                for size in _classes(shape, (plan.tile,) * 3)))
    else:
        block = tuple(grid_tile(plan.tile, s) // s for s in step)
        windows = set().union(*(_lattice_windows(dense, size, step)
                                for size in _classes(out, block)))
    working, kept = plan_parts(dense, shape, plan, windows)
    # The volume padded, the map, one block's window of the padded volume, the FOV's
    # complement at the end.
    window = 4 * dense.in_channels * math.prod(
        min(n, plan.tile) + dense.patch_size - 1 for n in shape)
    return _padded_bytes(shape, cutter) + 5 * math.prod(out) + working + kept + window


def _planes_bytes(dense, shape, cutter, plan, step):
    axis = cutter.axis
    plane = tuple(n for a, n in enumerate(shape) if a != axis)
    along = 1 if step is None else step[axis]
    grid = None if step is None else tuple(step[a] for a in range(3) if a != axis)
    n_planes = -(-shape[axis] // along)
    out = plane if grid is None else _grid_shape(plane, grid)
    stacked = 0
    if cutter.kind == "stacked2d":  # the volume mirrored along the axis, a copy
        stacked = 4 * (shape[axis] + cutter.slices - 1) * math.prod(plane)
    one = image_bytes(dense, plane, plan, grid=grid, own_input=True)
    return stacked + 5 * n_planes * math.prod(out) + one


def _mosaic_bytes(tower, block, axis, unit, tile, method, lattice):
    """``(working, kept)`` of :func:`_tower_terms` on a block of `block` grid cells:
    one mosaic of its planes (at most :data:`MOSAIC_PIXELS`), the tower's output over
    the mosaic's rows (slots included) and the terms copied out of it, and the tower's
    largest step on the whole mosaic (run_block does not tile it); kept, the spectra
    and recycled outputs of that schedule."""
    lay = _Mosaic.of(tower, block, axis, unit)
    n = lay.per
    rows, image = lay.rows(n), lay.image(n, tower.patch_size)
    schedule = cost.schedule(tower, image, method, tile)
    whole = dataclasses.replace(schedule, tile=max(image))
    windows = (_lattice_windows(tower, (rows, lay.c1), (lay.u0, lay.u1)) if lattice else
               block_windows((rows, lay.c1), tower.strides))
    step, _ = cost.memory_bytes(tower, image, whole)
    hidden = 4 * tower.num_classes
    working = 4 * n * lay.slot * lay.w + hidden * (rows * lay.c1 + n * lay.c0 * lay.c1) + step
    return working, plan_parts(tower, image, schedule, windows)[1]


def _tri_planar_bytes(plan, shape, cutter, tile, method, step):
    unit = (1, 1, 1) if step is None else step
    out = _grid_shape(shape, unit)
    block = _triplanar_block(out, plan.hidden, tile)
    hidden = 4 * plan.hidden
    classes = _classes(out, block)
    # The hidden layer's sums for a block; the head's transposed copy and activations,
    # the activations kept per block shape by the backend (as a tower's outputs are).
    pre = hidden * math.prod(block)
    head = 2 * pre + (hidden * sum(math.prod(c) for c in classes)
                      if backends.get_backend() == "c" else 0)
    kept = working = 0
    for axis, tower in enumerate(plan.towers):
        w, k = _mosaic_bytes(tower, block, axis, unit, tile, method, step is not None)
        working, kept = max(working, w), kept + k
    return _padded_bytes(shape, cutter) + 5 * math.prod(out) + pre + kept + max(working, head)


def _need(net, shape, cutter, tile, method, step) -> int:
    """:func:`volume_bytes` for the plan `net` (a DensePlan, or a TriplanarPlan)."""
    if cutter.kind == "triplanar":
        return _tri_planar_bytes(net, shape, cutter, tile, method, step)
    if cutter.kind == "3d":
        return _cubes_bytes(net, shape, cutter, cost.schedule(net, shape, method, tile), step)
    plane = tuple(n for a, n in enumerate(shape) if a != cutter.axis)
    return _planes_bytes(net, shape, cutter, cost.schedule(net, plane, method, tile), step)


def _plan_of(model, cutter, caller):
    if cutter.kind == "triplanar":
        check_fits_network(model, cutter, caller)
        return triplanar.cached_plan(model, cutter.size, caller)
    return check_fits_network(model, cutter, caller)


def volume_bytes(model, shape, cutter, tile=None, method="auto", caller="segment",
                 step=None) -> int:
    """Estimated peak bytes :func:`segment_volume` adds for a volume of `shape` (its
    ``grid`` map with `step`), from the shapes and the schedules alone.

    The padded volume (or, stacked, the mirrored copy), the map and the FOV's
    complement, and per kind its blocks' working memory, the kernel spectra it makes
    and what the backend keeps per block shape.
    """
    return _need(_plan_of(model, cutter, caller), tuple(shape), cutter, tile, method, step)


def _auto_tile(net, shape, cutter, method, step) -> tuple[int, int]:
    """``(tile, stride)``: the tile :func:`segment_volume` takes by itself (a 2-D kind's
    plane tile, a 3-D or tri-planar block's side) and the step smaller ones go by."""
    if cutter.kind == "triplanar":
        out = shape if step is None else _grid_shape(shape, step)
        return max(_triplanar_block(out, net.hidden, None)), 1
    hw = shape if cutter.kind == "3d" else tuple(n for a, n in enumerate(shape)
                                                   if a != cutter.axis)
    return cost.schedule(net, hw, method).tile, max(net.strides)


def _fit(net, shape, cutter, tile, method, caller, step=None, extra=0, after=0, what=None):
    """The (tile, method) to segment a volume of `shape` with the plan `net` within the
    memory limit: the asked ones when they fit (or no limit is known), else a smaller
    tile; a :class:`~fastseg.errors.MemoryBudgetError` when even the smallest does not
    fit. `extra` bytes the caller holds throughout besides, `after` those it makes once
    the segmentation's working memory is let go (a scan's map brought back)."""
    room = _memory.budget()
    if room is None:
        return tile, method
    shape = tuple(shape)

    def need_of(t, m):
        return extra + max(_need(net, shape, cutter, t, m, step), after)

    largest, stride = _auto_tile(net, shape, cutter, method, step)
    chosen, how, need = tile_within(need_of, room.room, tile, method, largest, stride)
    if need <= room.room:
        return chosen, how
    what = what or f"a {'x'.join(map(str, shape))} volume ({cutter.kind} kind)"
    advice = (f"use a smaller tile than {tile} (--tile, tile=)" if tile is not None else
              "even its smallest blocks do not fit: segment a crop of it, or at a coarser "
              "voxel size (a model trained at larger spacing)")
    raise _memory.refusal(caller, need, room, what, advice)


def fit_volume(model, shape, cutter, tile=None, method="auto", caller="segment", *,
               step=None, extra=0, after=0, what=None) -> tuple[int | None, str]:
    """The (tile, method) to segment a (D, H, W) volume of `shape` within the memory
    limit (``fastseg._memory``): the asked ones when they fit, else a smaller tile.

    For a caller that makes more than :func:`segment_volume` (which checks its own part
    again): `extra` bytes it holds besides throughout (:mod:`.scan`'s normalised copy),
    `after` those it makes once the segmentation is done (the map brought back to the
    scan's grid), `step` a ``grid`` map's step, `what` the work named in a refusal.

    Raises
    ------
    fastseg.errors.MemoryBudgetError
        Even the smallest tile does not fit, or the `tile` asked for does not.
    """
    return _fit(_plan_of(model, cutter, caller), shape, cutter, tile, method, caller, step,
                extra, after, what)
