"""How a dense plan runs on one image: direct or FFT per convolution, FFT sizes, the tile.

:func:`schedule` estimates the time of each convolution both ways from its
shapes, with the rates below (measured on the project's 2-core AMD EPYC; only
their ratios matter), and picks per layer:

* direct: ``2 F C prod(k) prod(O)`` flops on fastseg's GEMM;
* FFT (:mod:`fastseg._inference.fftconv`), in 2-D the backend's fused kernel
  (``kernels/src/fftconv.c``): the forward transforms of the input windows, the
  per-bin complex products (``2 * mults`` real flops per filter, channel, bin and
  block, on the GEMM micro-kernel), the inverse transforms of every filter, the
  activation and the 1x1 convolution after it, and the kernel spectra once per image;
  elsewhere (3-D) the general path's transforms, products and copies.

``auto`` takes the FFT where it is estimated at least ``fft.margin`` times faster;
on lai2d that is the fully connected layer run as a 16x16 convolution (about 40x
fewer operations), not the 5x5 convolutions.

Measured per CPU, not only counted (:mod:`fastseg.tuning.fft` times the candidates,
``fastseg tune`` stores the winners, :func:`setting` reads them, falling back to the
defaults in :data:`SETTINGS`): :data:`TUNED`, that is ``fft.margin``, the kernel's
``fft.mults`` (3 or 4 real products per complex one) and ``fft.chunk`` (its blocking:
no result depends on it). A tuned ``fft.margin`` or ``fft.mults``
changes results at rounding level (another layer on the FFT, another product), never
run to run. ``fft.lengths`` (the FFT lengths the shapes are made of; empty: every
2-3-5 length), ``fft.group`` and the rates ``fft.rate.*`` stay at their defaults.

Memory limits, both stated here and kept:

* the kernel spectra of all FFT layers of a plan together take at most
  :data:`SPECTRA_BUDGET_BYTES` = 384 MiB on a large image (lai2d's 1000x50x16x16
  layer: 316-351 MiB at 36x45 or 40x45, the sizes chosen under it), and up to
  :data:`SPECTRA_BUDGET_MAX` where the image's planes leave the room within
  :data:`PROCESS_BYTES` beside a full tile budget (:func:`_spectra_budget`: ~461 MiB
  on a 584x565 photo, where 45x45 at 395 MiB made lai2d 7-11 % faster on Zen 4, and
  15 % at 1000x1000);
* one tile's working memory stays under :data:`TILE_BUDGET_BYTES` (direct
  layers only) or :data:`FFT_TILE_BUDGET_BYTES` (with an FFT layer: its input and
  output maps and the kernel's workspace; on the general path output channels are
  grouped to fit, groups running on ``threads`` threads at once), less on a large
  image, so that spectra, image-sized planes and tile fit :data:`PROCESS_BYTES`;
* no working array of the general path exceeds ``fastseg._inference.fftconv.ARRAY_MAX_BYTES``.

With them, lai2d on a 4096x4096 photo peaks under 1 GB for the whole process,
image-sized planes included (bench/README.md has the figures). The spectra are the
largest part.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import itertools
import math
import threading
from dataclasses import dataclass, field

from fastseg import _memory, backends
from fastseg._inference import fftconv as fc
from fastseg._inference.fcn import Act, Conv, DensePlan, Pool
from fastseg.errors import InvalidValueError
from fastseg.tuning import cache as tuned

__all__ = ["METHODS", "Schedule", "FFTStep", "schedule", "memory_bytes", "SPECTRA_BUDGET_BYTES",
           "SPECTRA_BUDGET_MAX", "TILE_BUDGET_BYTES", "FFT_TILE_BUDGET_BYTES", "PROCESS_BYTES",
           "MAX_TILE", "MAX_FFT_TILE", "SETTINGS", "setting", "overrides"]

METHODS = ("auto", "direct", "fft")

#: Kernel spectra kept for one plan, all FFT layers together, at least (a large image)...
SPECTRA_BUDGET_BYTES = 384 * 2**20
#: ...and at most, where the image is small enough to leave the room (_spectra_budget).
#: Longer transforms have fewer bins per output pixel (lai2d: 1.23 at 40x45, 1.02 at
#: 45x45), so fewer products, but larger spectra to make and to stream.
SPECTRA_BUDGET_MAX = 512 * 2**20
#: Largest intermediate array per tile that the automatic tile aims for (direct layers).
TILE_BUDGET_BYTES = 96 * 2**20
#: Working memory of one tile when a layer runs by FFT, at most; less on large images
#: (_fft_tile_budget), so that the whole process stays under PROCESS_BYTES: the kernel
#: spectra, the image-sized planes and the tile's maps add up.
FFT_TILE_BUDGET_BYTES = 256 * 2**20
FFT_TILE_BUDGET_MIN = 96 * 2**20
#: What a segmentation's process may hold at its peak, and of it what the interpreter,
#: the libraries, the model and the allocator's slack take (lai2d: ~300 MiB measured).
PROCESS_BYTES = 2**30
FIXED_BYTES = 300 * 2**20
#: Images of one model the kernel spectra's making is spread over (see _spectra_cost).
SPECTRA_REUSE = 4
#: Largest automatic tile side, in output pixels: direct layers only, and with an FFT
#: layer (whose kernel cuts its own work into chunks: a larger tile only saves the
#: overlap of the tiles' windows; its memory is bounded by FFT_TILE_BUDGET_BYTES).
MAX_TILE = 512
MAX_FFT_TILE = 1024
#: A 2-D convolution whose packed weight takes more floats than conv_fused.c's
#: FS_CONV_FUSED_WEIGHT_MAX (rows rounded to MR, at most blocking.h's FS_GEMM_MR_MAX)
#: packs that weight once per call for all threads (lai2d's fully connected layer as a
#: 16x16 convolution: 51 MB) and reads the image in place; smaller ones, 3-D ones and
#: 1x1 kernels hold no copy.
_FUSED_WEIGHT_MAX = 2**20
_MR_MAX = 16
#: Output width the fused forward reads its input in place at (conv_fused.c: whole
#: 16-pixel segments of output rows, FS_GEMM_SEG), where packing it would cost the
#: deep layer above ~5 % (bench/README.md): direct tiles are made of such widths.
_SEGMENT = 16

# Rates of one thread (seconds), measured on the project's AMD EPYC (the direct GEMM on
# Zen 5, the FFT kernel's on Zen 4, in CPU time). The choice depends on their ratios only.
_GEMM_FLOP = 1 / 100e9          # fastseg's GEMM and fused convolution
_FFT_POINT_LOG2 = 0.17e-9       # pocketfft, per point and log2(points) of a transform
_COPY_FLOAT = 0.4e-9            # a strided float32 copy or element-wise pass
_GEMM_CALL = 0.5e-6             # set-up cost of one per-bin GEMM (packing, workspace)
_FRESH_BYTE = 1.5e-9            # first touch of newly mapped memory (the kernel spectra)

#: The settings measured per CPU (fastseg.tuning.fft) and their defaults: a tuned value
#: replaces the default through fastseg.tuning.cache.get (same type, else ignored).
SETTINGS = {
    "fft.lengths": [],          # FFT lengths shapes are made of; [] = every 2-3-5 length
    "fft.margin": 1.5,          # auto takes the FFT where estimated this many times faster
    "fft.mults": 3,             # the kernel's real products per complex one (3 or 4)
    "fft.group": 0,             # the kernel's filters per group (0: its own default)
    "fft.chunk": 0,             # the kernel's blocks per task (0: its own default)
    # s per real flop of the kernel's per-bin products (Zen 4, lai2d 584x565, one thread:
    # 1.19e11 flops in 1.26-1.32 s since the micro-kernel prefetches; 1 / 57e9 before,
    # against which this plan's 192x192 and 64x64 ran 1.4-1.5 % faster, medians of 15-30)
    "fft.rate.product": 1 / 90e9,
    "fft.rate.fft": 0.235e-9,   # s per point and log2(length) of its vertical transforms
    "fft.rate.act": 0.7e-9,     # s per value of its activation (tanh)
    "fft.rate.project": 0.2e-9,  # s per value and output of its 1x1 convolution
}

#: The settings a tuned value may replace. Not ``fft.lengths``: timed as one layer's cost
#: per output pixel, it chose lengths (32, 64) that made whole images 1.2-1.5x slower on
#: Zen 4 (bench/README.md), where the kernel spectra and the tiles' waste count too. Not
#: ``fft.group``: the tuner's layer of 200 filters cannot show a group above 28
#: (kernels/src/fftconv_blocking.h). A value left in a cache by an earlier tuner is
#: ignored.
TUNED = ("fft.margin", "fft.mults", "fft.chunk")

_local = threading.local()


def setting(name: str):
    """The value of one of :data:`SETTINGS`: an override in force on this thread
    (:func:`overrides`), else this CPU's tuned value (:data:`TUNED` only), else the
    default."""
    over = getattr(_local, "values", None)
    if over and name in over:
        return over[name]
    return tuned.get(name, SETTINGS[name]) if name in TUNED else SETTINGS[name]


@contextlib.contextmanager
def overrides(values: dict):
    """Use `values` for some of :data:`SETTINGS` on this thread meanwhile (the tuner's
    candidates; tests)."""
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        raise InvalidValueError(f"overrides: unknown settings {unknown}; expected some of "
                                f"{sorted(SETTINGS)}")
    before = getattr(_local, "values", None)
    _local.values = {**(before or {}), **values}
    try:
        yield
    finally:
        _local.values = before


def _settings_key() -> tuple:
    """What a schedule depends on of the settings (schedules are kept per image shape)."""
    return tuple((n, tuple(v) if isinstance(v, list) else v)
                 for n, v in ((n, setting(n)) for n in SETTINGS))


@dataclass(frozen=True)
class FFTStep:
    """How one convolution runs by FFT: the transform size, the output channels per
    group, and (the 2-D kernel) real products per complex one and blocks per task."""

    fft_shape: tuple[int, ...]
    group: int
    mults: int = 3
    chunk: int = 0


@dataclass(frozen=True)
class Schedule:
    """The choices for one image: `tile` (output pixels per side), the conv steps that
    run by FFT (`fft`, by step index; the others run directly), FFT threads."""

    tile: int
    fft: dict = field(default_factory=dict)
    workers: int = 1
    estimate_s: float = 0.0
    #: Output columns a tile's rows are best cut into whole multiples of (the direct
    #: path's in-place width, :data:`_SEGMENT` per grid step), or None.
    unit: int | None = None

    def method_of(self, index: int) -> str:
        return "fft" if index in self.fft else "direct"


def _eligible(step) -> bool:
    """A convolution the FFT path can run: stride 1 and a kernel larger than 1x1."""
    return isinstance(step, Conv) and all(s == 1 for s in step.stride) and \
        any(k > 1 for k in step.kernel)


def _direct_cost(conv: Conv, out) -> float:
    return 2.0 * conv.out_channels * conv.in_channels * math.prod(conv.kernel) \
        * math.prod(out) * _GEMM_FLOP


def _transform_cost(shape) -> float:
    pts = math.prod(shape)
    return pts * math.log2(max(pts, 2)) * _FFT_POINT_LOG2


def _fft_cost(conv: Conv, out, fft_shape, group, threads) -> float:
    """Estimated seconds of one `correlate` call producing `out`, spectra excluded.

    Groups of output channels run on `threads` threads at once, each on one core.
    """
    f, c, k = conv.out_channels, conv.in_channels, conv.kernel
    nb = math.prod(fc.blocks(out, k, fft_shape))
    nbins = math.prod(fc.half_shape(fft_shape))
    pts = math.prod(fft_shape)
    step = math.prod(t - kk + 1 for t, kk in zip(fft_shape, k, strict=True))
    groups = math.ceil(f / group)
    # The micro-kernel computes whole 6 x 16 tiles: a group's rows and the 2B
    # columns round up to them.
    padded = groups * _round_up(group, 6) * _round_up(2 * nb, 16)
    forward = c * nb * _transform_cost(fft_shape) + c * nb * (pts + 4 * nbins) * _COPY_FLOAT
    per_group = 0.85 * f * nb * _transform_cost(fft_shape) \
        + 4.0 * nbins * c * padded * _GEMM_FLOP \
        + f * nb * (4 * nbins + 4 * step) * _COPY_FLOAT + nbins * groups * _GEMM_CALL
    return forward / threads + per_group / min(threads, groups)


def _round_up(n, m):
    return -(-n // m) * m


#: The settings :func:`_kernel_cost` reads, in the order of :func:`_kernel_rates`' tuple.
_KERNEL_RATES = ("fft.chunk", "fft.mults", "fft.rate.product", "fft.rate.fft", "fft.rate.act",
                 "fft.rate.project")


def _kernel_rates() -> tuple:
    """The settings of :func:`_kernel_cost`, read once per plan: a tuned value is looked up
    in this CPU's tuning file, which a whole-brain search's ~70 plans would otherwise do
    about 4 million times (half of lai_triplanar's 21 s whole brain, measured)."""
    return tuple(setting(name) for name in _KERNEL_RATES)


@functools.lru_cache(maxsize=1 << 16)
def _kernel_cost(f, c, kernel, out, fft_shape, threads, outputs, rates) -> float:
    """Estimated seconds of one 2-D kernel call (kernels/src/fftconv.c) of `f` filters
    over `c` channels of a `kernel`, producing `out` through a 1x1 convolution of
    `outputs` channels (0: none), spectra excluded, at `rates` (:func:`_kernel_rates`).
    Remembered: a whole-brain search plans ~70 mosaics whose tiles share most shapes.

    Its chunks of blocks are padded to whole micro-panels (32 blocks); `threads`
    threads share each chunk (its filters in slices); the products are ``2 * mults``
    real flops per filter, channel, bin and block, the transforms log-linear in their
    lengths."""
    chunk_setting, mults, rate_product, rate_fft, rate_act, rate_project = rates
    th, tw = fft_shape
    kh, kw = kernel
    s1, s2 = th - kh + 1, tw - kw + 1
    nv = tw // 2 + 1
    nb = math.prod(fc.blocks(out, kernel, fft_shape))
    chunk = max(32, _round_up(chunk_setting or 32, 32))
    tasks = max(1, -(-nb // chunk))
    parallel = max(1, threads)
    lanes = _round_up(-(-nb // tasks), 32) * tasks  # blocks, padded per chunk
    log1, log2 = math.log2(max(th, 2)), math.log2(max(tw, 2))
    products = 2.0 * mults * f * c * th * nv * lanes * rate_product
    transforms = (c * (th * tw * log2 / 2 + nv * th * log1)
                  + f * (nv * th * log1 + s1 * tw * log2 / 2)) * lanes * rate_fft
    epilogue = f * lanes * s1 * s2 * (rate_act + outputs * rate_project)
    return (products + transforms + epilogue) / parallel


def _kernel_cost_floor(f, out, outputs, rates, threads) -> float:
    """A floor under :func:`_kernel_cost` at any FFT shape: its epilogue alone (the
    activation and 1x1 layer on every one of its blocks' outputs, at least the `out`
    pixels), the same integer product times the same rate, so never above it in floating
    point either. Where even the floor, `margin` times, is no faster than the direct
    convolution, no FFT shape can be taken and none need be costed (lai2d's first 5x5
    convolution, 1 -> 20 channels: 40 % of a schedule's estimates)."""
    _, _, _, _, rate_act, rate_project = rates  # as _kernel_cost unpacks them
    return f * math.prod(out) * (rate_act + outputs * rate_project) / max(1, threads)


def _on_kernel(dense: DensePlan, i: int, backend: str) -> bool:
    """Whether FFT step i runs on the 2-D kernel: a 2-D convolution followed by at most
    one activation before its 1x1 (or the end), on a host backend."""
    end, proj = dense.fused(i)
    acts = (proj if proj is not None else end) - i - 1
    return dense.steps[i].ndim == 2 and acts <= 1 and backend != "cuda"


def _spectra_cost(conv: Conv, fft_shape, threads) -> float:
    """The kernel spectra's making, charged at 1/SPECTRA_REUSE: they are kept with the
    plan and serve every later image of the model at that FFT shape, so charging them
    whole to one image would pick the transforms that are fastest to make, not to run
    (lai2d at 192x192: 27x27 instead of 40x45, 2x slower from the second image on)."""
    return _spectra_cost_of(conv.out_channels, conv.in_channels, tuple(fft_shape), threads)


@functools.lru_cache(maxsize=1 << 12)
def _spectra_cost_of(f, c, fft_shape, threads) -> float:
    return (f * c * (_transform_cost(fft_shape) + 3 * math.prod(fft_shape) * _COPY_FLOAT)
            / threads + fc.KernelSpectra.nbytes_for(f, c, fft_shape) * _FRESH_BYTE) \
        / SPECTRA_REUSE


@functools.lru_cache(maxsize=256)
def _candidate_lengths(kernel_side: int) -> tuple[int, ...]:
    """FFT lengths worth trying for a kernel side: fast lengths up to 4 kernels or 64,
    at most 128 (past that the overlap saves little and the spectra grow)."""
    out, n = [], kernel_side + 1
    while n <= min(128, max(64, 4 * kernel_side)):
        n = fc.fast_length(n)
        out.append(n)
        n += 1
    return tuple(out)


def _fft_shape_for(conv: Conv, out, budget_bytes) -> list[tuple[int, ...]]:
    """FFT shapes that fit `out` and the spectra budget: cubes, and cubes with the last
    axis one or two fast lengths longer (the real FFT halves that axis, so it adds
    the fewest bins), each clipped to the map."""
    return _shapes(conv.out_channels, conv.in_channels, conv.kernel, tuple(out), budget_bytes,
                   tuple(int(n) for n in setting("fft.lengths")))


@functools.lru_cache(maxsize=4096)
def _shapes(f, c, kernel, out, budget_bytes, preferred=()):
    """(preferred: the tuned ``fft.lengths``; a shape clipped to a short map may still
    take another length, the smallest that holds it.)"""
    shapes, lengths = [], _candidate_lengths(max(kernel))
    if preferred:
        lengths = tuple(n for n in lengths if n in preferred) or lengths
    for i, length in enumerate(lengths):
        for last in lengths[i:i + 3]:
            sides = [length] * (len(out) - 1) + [last]
            shape = tuple(fc.fast_length(max(k, min(t, o + k - 1)))
                          for t, o, k in zip(sides, out, kernel, strict=True))
            if shape not in shapes and fc.KernelSpectra.nbytes_for(f, c, shape) <= budget_bytes:
                shapes.append(shape)
    return shapes


def _group_for(conv: Conv, out, fft_shape, budget_bytes, threads, maps_bytes) -> int:
    """Output channels per group: `threads` groups at once (each thread one), their
    working sets together, with the step's input and output maps (`maps_bytes`),
    within `budget_bytes`, and no array of a group over ``fc.ARRAY_MAX_BYTES``."""
    nb = math.prod(fc.blocks(out, conv.kernel, fft_shape))
    fixed = maps_bytes + fc.input_bytes(conv.in_channels, fft_shape, nb) + fc.CHUNK_BYTES
    per = fc.group_bytes(fft_shape, conv.kernel, nb) * threads
    fit = min((budget_bytes - fixed) // max(per, 1),
              fc.ARRAY_MAX_BYTES // fc.largest_array_per_channel(fft_shape, conv.kernel, nb))
    # A multiple of `threads` groups, so that no thread idles through the last round.
    f = conv.out_channels
    groups = _round_up(max(-(-f // max(fit, 1)), threads), threads)
    return max(1, -(-f // groups))


def axis_spans(n: int, tile: int, unit: int | None = None) -> list[int]:
    """The sizes an axis of `n` is cut into: whole tiles, then what is left. With `unit`
    (:attr:`Schedule.unit`), a remainder above it that is not a whole number of units
    is cut in two, its whole units and the few left over, so that only those few miss
    the fast path (584x565 at 96: 5 x 96, 80 and 5 columns instead of 85)."""
    full, rem = divmod(n, tile)
    spans = [tile] * full
    if unit and rem > unit and rem % unit:
        spans += [rem - rem % unit, rem % unit]
    elif rem:
        spans.append(rem)
    return spans


def _tile_classes(image_hw, tile, unit=None):
    """The tiles an image is cut into, by size: [(tile shape, count)] -- whole tiles,
    and the narrower ones at the far edges (:func:`axis_spans`; `unit` on the last
    axis, the rows' width)."""
    per_axis = []
    for a, n in enumerate(image_hw):
        spans = axis_spans(n, tile, unit if a == len(image_hw) - 1 else None)
        per_axis.append(sorted(collections.Counter(spans).items(), reverse=True))
    return [(tuple(size for size, _ in combo), math.prod(c for _, c in combo))
            for combo in itertools.product(*per_axis)]


def _tile_plan(dense: DensePlan, tile: int, image_hw, method, threads, with_fft,
               backend="c"):
    """(cost in s, {step: FFTStep}, peak bytes) of running the whole image in tiles of
    `tile`: every tile costed at its own size (the edge tiles are narrower); FFT shapes
    are chosen among those that suit a whole tile's maps, memory for a whole tile."""
    s = dense.stride
    classes = [([-(-n // s) for n in size], count * s ** len(image_hw))  # windows per size
               for size, count in _tile_classes(image_hw, min(tile, max(image_hw)))]
    shapes = [dense.shapes(tuple(n_out)) for n_out, _ in classes]
    big = max(range(len(classes)), key=lambda k: math.prod(classes[k][0]))
    budget = _spectra_budget(dense, image_hw)
    margin = setting("fft.margin")
    rates = _kernel_rates()
    chunk, mults = rates[:2]  # the kernel's settings, as its cost reads them
    group_setting = setting("fft.group")

    outs = {}  # step -> its output shape on each class of tiles

    def total(fn, i):  # fn(out) summed over the tiles
        if i not in outs:
            outs[i] = [dense.steps[i].out_shape(sh[i]) for sh in shapes]
        return sum(count * fn(o) for (_, count), o in zip(classes, outs[i], strict=True))

    # The costliest convolutions get the spectra budget first.
    order = sorted((i for i, st in enumerate(dense.steps) if isinstance(st, Conv)),
                   key=lambda i: -_direct_cost(dense.steps[i],
                                               dense.steps[i].out_shape(shapes[big][i])))
    fft, cost = {}, 0.0
    for i in order:
        conv = dense.steps[i]
        out = conv.out_shape(shapes[big][i])
        direct = total(lambda o, conv=conv: _direct_cost(conv, o), i) / threads
        best = None
        if with_fft and _eligible(conv):
            kernel = _on_kernel(dense, i, backend)
            maps = _maps_bytes(dense, i, shapes[big][i])
            proj = dense.fused(i)[1]
            outputs = 0 if proj is None else dense.steps[proj].out_channels
            hopeless = kernel and method != "fft" and total(
                lambda o, f=conv.out_channels, outputs=outputs:
                _kernel_cost_floor(f, o, outputs, rates, threads), i) * margin >= direct
            # (the spectra's cost, >= 0, only adds to each shape's)
            for shape in () if hopeless else _fft_shape_for(conv, out, budget):
                if kernel:
                    how = FFTStep(shape, group_setting, mults, chunk)
                    fck = (conv.out_channels, conv.in_channels, conv.kernel)
                    t = total(lambda o, fck=fck, shape=shape, outputs=outputs:
                              _kernel_cost(*fck, o, shape, threads, outputs, rates), i)
                else:
                    nb = math.prod(fc.blocks(out, conv.kernel, shape))
                    if fc.input_bytes(conv.in_channels, shape, nb) > fc.ARRAY_MAX_BYTES:
                        continue  # a smaller tile keeps the transformed input in one array
                    group = _group_for(conv, out, shape, FFT_TILE_BUDGET_BYTES, threads, maps)
                    how = FFTStep(shape, int(group))
                    t = total(lambda o, conv=conv, shape=shape, group=group:
                              _fft_cost(conv, o, shape, group, threads), i)
                t += _spectra_cost(conv, shape, threads)
                if best is None or t < best[0]:
                    best = (t, how)
        if best is not None and (method == "fft" or best[0] * margin < direct):
            fft[i] = best[1]
            budget -= fc.KernelSpectra.nbytes_for(conv.out_channels, conv.in_channels,
                                                  best[1].fft_shape)
            cost += best[0]
        else:
            cost += direct
    return cost, fft, _peak_bytes(dense, shapes[big], fft, threads, backend)


def _peak_bytes(dense, shapes, fft, threads, backend) -> int:
    """The largest step's working memory on a window whose steps see `shapes`."""
    fused = {j for i in fft for j in range(i + 1, dense.fused(i)[0])}
    peak = 0
    for i, step in enumerate(dense.steps):
        if i not in fused:  # those run inside the FFT step, a group at a time
            how = fft.get(i)
            kernel = how is not None and _on_kernel(dense, i, backend)
            peak = max(peak, _step_bytes(dense, i, step, shapes[i], how, threads, kernel))
    return peak


def memory_bytes(dense: DensePlan, image_hw, plan: Schedule,
                 backend: str | None = None) -> tuple[int, int]:
    """``(tile, spectra)``: the working memory of `plan`'s largest step on its largest
    tile of an image (or volume) of `image_hw`, at the plan's thread count, and the
    kernel spectra of its FFT steps (kept with the dense plan). Arithmetic on shapes:
    what :mod:`fastseg._inference`'s memory estimates start from."""
    backend = backends.get_backend() if backend is None else backend
    windows = tuple(-(-min(plan.tile, n) // s) for n, s in zip(image_hw, dense.strides,
                                                                strict=True))
    tile = _peak_bytes(dense, dense.shapes(windows), plan.fft, plan.workers, backend)
    spectra = sum(fc.KernelSpectra.nbytes_for(dense.steps[i].out_channels,
                                              dense.steps[i].in_channels, how.fft_shape)
                  for i, how in plan.fft.items())
    return tile, spectra


def _step_bytes(dense, i, step, shape, how, threads=1, kernel=False) -> int:
    """Working memory of one step on one window (input, output and temporaries)."""
    if isinstance(step, Act):
        return 0
    channels_in = _channels_before(dense, i)
    size_in = channels_in * math.prod(shape)
    if isinstance(step, Pool):
        out = step.out_shape(shape)
        return 4 * (size_in + 3 * channels_in * math.prod(out))
    out = step.out_shape(shape)
    if how is None:
        return 4 * (size_in + step.out_channels * math.prod(out)) \
            + _packed_weight_bytes(step, channels_in)
    if kernel:
        proj = dense.fused(i)[1]
        outputs = 0 if proj is None else dense.steps[proj].out_channels
        # (two threads' workspace at least, whatever the plan's count: see schedule())
        work = fc.kernel_workspace_bytes(channels_in, step.out_channels, outputs, step.kernel,
                                         how.fft_shape, out, how.group, how.chunk,
                                         max(2, threads))
        return _maps_bytes(dense, i, shape) + work
    nb = math.prod(fc.blocks(out, step.kernel, how.fft_shape))
    return _maps_bytes(dense, i, shape) + fc.input_bytes(channels_in, how.fft_shape, nb) \
        + fc.CHUNK_BYTES + threads * how.group * fc.group_bytes(how.fft_shape, step.kernel, nb)


def _packed_weight_bytes(conv: Conv, channels_in: int) -> int:
    """The copy of a huge 2-D weight a direct convolution packs for its threads (see
    _FUSED_WEIGHT_MAX), else 0."""
    ckk, f = channels_in * math.prod(conv.kernel), conv.out_channels
    fused = max(_round_up(f, _MR_MAX) * ckk, _round_up(ckk, _MR_MAX) * f) <= _FUSED_WEIGHT_MAX
    if conv.ndim != 2 or fused or all(k == 1 for k in conv.kernel):
        return 0
    return 4 * _round_up(f, _MR_MAX) * ckk


def _maps_bytes(dense, i, shape) -> int:
    """Input (and its zero-padded copy) and output maps of FFT step i on a window."""
    step = dense.steps[i]
    _, proj = dense.fused(i)
    channels_out = step.out_channels if proj is None else dense.steps[proj].out_channels
    return 4 * (2 * _channels_before(dense, i) * math.prod(shape)
                + channels_out * math.prod(step.out_shape(shape)))


def _channels_before(dense, i) -> int:
    channels = dense.in_channels
    for step in dense.steps[:i]:
        if isinstance(step, Conv):
            channels = step.out_channels
    return channels


def check_method(method) -> None:
    """Refuse a `method` that is not one of :data:`METHODS`."""
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidValueError(f"method: expected one of {list(METHODS)}, got {method!r}")


def schedule(dense: DensePlan, image_hw, method: str = "auto", tile: int | None = None,
             threads: int | None = None, backend: str | None = None) -> Schedule:
    """Choose per convolution direct or FFT, the FFT sizes and (when `tile` is None)
    the tile, for segmenting an image of `image_hw` pixels.

    Raises
    ------
    ValueError
        An unknown `method`; ``"fft"`` where no convolution can run by FFT (every one
        1x1 or strided), on the cuda backend, or where the kernel spectra cannot fit
        the spectra budget (:func:`_spectra_budget`).
    """
    caller = dense.caller
    check_method(method)
    threads = fc.configured_threads() if threads is None else threads
    backend = backends.get_backend() if backend is None else backend
    eligible = [i for i, st in enumerate(dense.steps) if _eligible(st)]
    if method == "fft":
        if not eligible:
            raise InvalidValueError(f"{caller}: method='fft' is impossible for this network: every "
                             "convolution of its dense form is 1x1 or strided; use 'direct' "
                             "or 'auto'")
        if backend == "cuda":
            raise InvalidValueError(f"{caller}: method='fft' runs on the host and the current "
                             "backend is 'cuda'; use method='direct' (or 'auto') on the GPU")
    key = (tuple(image_hw), method, tile, threads, backend, _settings_key(),
           _spectra_budget(dense, image_hw))
    kept = dense._schedules.get(key)
    if kept is not None:
        return kept
    with_fft = method != "direct" and backend != "cuda" and bool(eligible)
    # 2-D plans are made for one thread whatever the count: which layers go by FFT, their
    # shapes and the tile set the rounding, so the same image gets the same bits on any
    # number of threads (the kernel's own results do not depend on it either).
    planned = 1 if dense.ndim == 2 else threads
    if tile is not None:
        cost, fft, _ = _tile_plan(dense, tile, image_hw, method, planned, with_fft, backend)
        result = Schedule(tile, fft, threads, cost)
    else:
        result = dataclasses.replace(
            _auto_tile(dense, image_hw, method, planned, with_fft, backend), workers=threads)
    if not result.fft and backend == "c" and dense.ndim == 2:
        # direct layers only: rows of whole in-place widths where they can be
        result = dataclasses.replace(result, unit=_SEGMENT * dense.stride)
    if method == "fft":
        missing = [i for i in eligible if i not in result.fft]
        if missing:
            conv = dense.steps[missing[0]]
            raise InvalidValueError(f"{caller}: method='fft': the kernel spectra of the "
                             f"{conv.out_channels}x{conv.in_channels}x"
                             f"{'x'.join(map(str, conv.kernel))} convolution do not fit the "
                             f"{_spectra_budget(dense, image_hw) // 2**20} MiB kept for "
                             "spectra; use 'auto' or 'direct'")
    if len(dense._schedules) >= 16:
        dense._schedules.clear()
    dense._schedules[key] = result
    return result


def _tile_candidates(dense: DensePlan, image_hw, largest: int = MAX_TILE) -> list[int]:
    """Tile sides worth trying: multiples of the stride up to the image and `largest`,
    growing by a quarter, and the sides that cut the image's longer side evenly."""
    s = dense.stride
    largest = min(largest, max(image_hw))
    largest = -(-largest // s) * s
    sides = {largest}
    t = s
    while t < largest:
        sides.add(t)
        t = -(-int(t * 1.25 + 1) // s) * s
    for k in range(1, 9):  # even cuts: no narrow tile left over at the edge
        even = -(-max(image_hw) // k)
        t = -(-even // s) * s
        if t <= largest:
            sides.add(t)
    return sorted(sides)


def _auto_tile(dense, image_hw, method, threads, with_fft, backend) -> Schedule:
    if not with_fft:
        # Direct layers only: the largest tile whose biggest intermediate fits, of whole
        # input-in-place widths where one fits (and the image is wider than one).
        best = dense.stride
        for t in range(dense.stride, MAX_TILE + 1, dense.stride):
            if _direct_peak(dense, t) > TILE_BUDGET_BYTES:
                break
            best = t
        unit = _SEGMENT * dense.stride
        if best >= unit and best < max(image_hw):
            best -= best % unit
        cost, fft, _ = _tile_plan(dense, best, image_hw, method, threads, False, backend)
        return Schedule(best, fft, threads, cost)
    # The fastest estimate among the tiles that fit their budget (the smallest tile
    # when none does).
    best = smallest = None
    for t in _tile_candidates(dense, image_hw, MAX_FFT_TILE):
        cost, fft, peak = _tile_plan(dense, t, image_hw, method, threads, True, backend)
        candidate = Schedule(t, fft, threads, cost)
        smallest = smallest or candidate
        if not fft and t > MAX_TILE:
            continue  # tiles past MAX_TILE are for the FFT kernel only
        if peak <= (_fft_tile_budget(dense, image_hw) if fft else TILE_BUDGET_BYTES):
            if best is None or cost < best.estimate_s:
                best = candidate
        elif best is not None:
            break  # larger tiles only need more memory
    return best or smallest


def _planes_bytes(dense: DensePlan, image_hw) -> int:
    """The image-sized planes of a segmentation: the input, its padded copy, the
    probability map, a mask and the caller's image."""
    return 4 * math.prod(image_hw) * (3 * dense.in_channels + 2)


def _spectra_budget(dense: DensePlan, image_hw) -> int:
    """The kernel spectra's budget for an image of `image_hw`: what PROCESS_BYTES leaves
    after the fixed part, the image-sized planes and a full FFT tile budget, within
    [SPECTRA_BUDGET_BYTES, SPECTRA_BUDGET_MAX]. On lai2d: ~461 MiB at 584x565, the
    minimum from about 1000x1000 up (so a 4096x4096 photo plans as before). A memory
    limit set below PROCESS_BYTES (fastseg.set_memory_limit, FASTSEG_MEMORY_LIMIT) takes
    its place, so larger spectra never cost a limited run its whole-image tile."""
    limit = _memory.set_limit_bytes()
    process = PROCESS_BYTES if limit is None else min(PROCESS_BYTES, limit)
    left = process - FIXED_BYTES - FFT_TILE_BUDGET_BYTES - _planes_bytes(dense, image_hw)
    return max(SPECTRA_BUDGET_BYTES, min(SPECTRA_BUDGET_MAX, left))


def _fft_tile_budget(dense: DensePlan, image_hw) -> int:
    """The tile's working memory with an FFT layer: what PROCESS_BYTES leaves after the
    fixed part, the spectra budget and the image-sized planes, within
    [FFT_TILE_BUDGET_MIN, FFT_TILE_BUDGET_BYTES]. On lai2d: 256 MiB up to ~2000x2000,
    the minimum on a 4096x4096 photo, where 256 MiB tiles peaked at 1.08 GB."""
    left = PROCESS_BYTES - FIXED_BYTES - _spectra_budget(dense, image_hw) \
        - _planes_bytes(dense, image_hw)
    return max(FFT_TILE_BUDGET_MIN, min(FFT_TILE_BUDGET_BYTES, left))


def _direct_peak(dense: DensePlan, tile: int) -> int:
    n = -(-tile // dense.stride)
    shapes = dense.shapes((n,) * dense.ndim)
    return max(_step_bytes(dense, i, st, shapes[i], None) for i, st in enumerate(dense.steps))
