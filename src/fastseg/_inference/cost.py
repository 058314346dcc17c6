"""How a dense plan runs on one image: direct or FFT per convolution, FFT sizes, the tile.

:func:`schedule` estimates the time of each convolution both ways from its
shapes, with the rates below (measured on the project's 2-core AMD EPYC; only
their ratios matter), and picks per layer:

* direct: ``2 F C prod(k) prod(O)`` flops on fastseg's GEMM;
* FFT (:mod:`fastseg._inference.fftconv`): forward transforms of the input windows, one
  complex product per frequency bin (plus a fixed cost per GEMM call, which is
  what makes tiny groups slow), inverse transforms of every output channel, the
  copies between them, and the kernel spectra once per image.

``auto`` takes the FFT where it is estimated at least ``AUTO_MARGIN`` times
faster; on lai2d that is the fully connected layer run as a 16x16 convolution
(about 40x fewer operations), not the 5x5 convolutions.

Memory limits, both stated here and kept:

* the kernel spectra of all FFT layers of a plan together take at most
  :data:`SPECTRA_BUDGET_BYTES` = 384 MiB (lai2d's 1000x50x16x16 layer: 351 MiB at
  40x45, the size chosen under it for large images; 458 MiB at 48x48 would not fit);
* one tile's working memory stays under :data:`TILE_BUDGET_BYTES` (direct
  layers only) or :data:`FFT_TILE_BUDGET_BYTES` (with an FFT layer; output
  channels are grouped to fit, groups running on ``threads`` threads at once);
* no working array of the FFT path exceeds ``fastseg._inference.fftconv.ARRAY_MAX_BYTES``.

With them, lai2d on a 4096x4096 photo peaks under 1 GB for the whole process,
image-sized planes included (scale 1, 2 threads, the AMD EPYC above, maximum RSS:
``fastseg segment`` end to end 888 MiB, ``segment`` with a fitted Segmenter 904 MiB,
with the bare network 898 MiB; bench/README.md). The spectra are the largest part.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from fastseg import backends
from fastseg._inference import fftconv as fc
from fastseg._inference.fcn import Act, Conv, DensePlan, Pool
from fastseg.errors import InvalidValueError

__all__ = ["METHODS", "Schedule", "FFTStep", "schedule", "SPECTRA_BUDGET_BYTES",
           "TILE_BUDGET_BYTES", "FFT_TILE_BUDGET_BYTES"]

METHODS = ("auto", "direct", "fft")

#: Kernel spectra kept for one plan, all FFT layers together.
SPECTRA_BUDGET_BYTES = 384 * 2**20
#: Largest intermediate array per tile that the automatic tile aims for (direct layers).
TILE_BUDGET_BYTES = 96 * 2**20
#: Working memory of one tile when a layer runs by FFT.
FFT_TILE_BUDGET_BYTES = 256 * 2**20
#: Largest automatic tile side, in output pixels.
MAX_TILE = 512

# Rates of one thread (seconds), measured on the project's AMD EPYC (Zen 5, AVX2
# micro-kernel). The choice depends on their ratios only.
_GEMM_FLOP = 1 / 100e9          # fastseg's GEMM and fused convolution
_FFT_POINT_LOG2 = 0.17e-9       # pocketfft, per point and log2(points) of a transform
_COPY_FLOAT = 0.4e-9            # a strided float32 copy or element-wise pass
_GEMM_CALL = 0.5e-6             # set-up cost of one per-bin GEMM (packing, workspace)
_FRESH_BYTE = 1.5e-9            # first touch of newly mapped memory (the kernel spectra)
#: auto takes the FFT only where it is estimated this many times faster.
AUTO_MARGIN = 1.5


@dataclass(frozen=True)
class FFTStep:
    """How one convolution runs by FFT: the transform size and output channels per group."""

    fft_shape: tuple[int, ...]
    group: int


@dataclass(frozen=True)
class Schedule:
    """The choices for one image: `tile` (output pixels per side), the conv steps that
    run by FFT (`fft`, by step index; the others run directly), FFT threads."""

    tile: int
    fft: dict = field(default_factory=dict)
    workers: int = 1
    estimate_s: float = 0.0

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


def _spectra_cost(conv: Conv, fft_shape, threads) -> float:
    f, c = conv.out_channels, conv.in_channels
    return f * c * (_transform_cost(fft_shape) + 3 * math.prod(fft_shape) * _COPY_FLOAT) \
        / threads + fc.KernelSpectra.nbytes_for(f, c, fft_shape) * _FRESH_BYTE


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
    return _shapes(conv.out_channels, conv.in_channels, conv.kernel, tuple(out), budget_bytes)


@functools.lru_cache(maxsize=4096)
def _shapes(f, c, kernel, out, budget_bytes):
    shapes, lengths = [], _candidate_lengths(max(kernel))
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


def _tile_plan(dense: DensePlan, tile: int, image_hw, method, threads, with_fft):
    """(cost in s, {step: FFTStep}, peak bytes) of running the whole image in tiles of
    `tile`; FFT shapes are chosen for a full tile's maps."""
    s = dense.stride
    n_out = tuple(-(-min(tile, n) // s) for n in image_hw)  # outputs per window, full tile
    shapes = dense.shapes(n_out)
    tiles = math.prod(-(-n // tile) for n in image_hw)
    windows = tiles * s ** len(image_hw)  # shift-and-stitch: one window per shift
    budget = SPECTRA_BUDGET_BYTES
    # The costliest convolutions get the spectra budget first.
    order = sorted((i for i, st in enumerate(dense.steps) if isinstance(st, Conv)),
                   key=lambda i: -_direct_cost(dense.steps[i],
                                               dense.steps[i].out_shape(shapes[i])))
    fft, cost, peak = {}, 0.0, 0
    for i in order:
        conv = dense.steps[i]
        out = conv.out_shape(shapes[i])
        direct = _direct_cost(conv, out) / threads
        best = None
        if with_fft and _eligible(conv):
            maps = _maps_bytes(dense, i, shapes[i])
            for shape in _fft_shape_for(conv, out, budget):
                nb = math.prod(fc.blocks(out, conv.kernel, shape))
                if fc.input_bytes(conv.in_channels, shape, nb) > fc.ARRAY_MAX_BYTES:
                    continue  # a smaller tile keeps the transformed input in one array
                group = _group_for(conv, out, shape, FFT_TILE_BUDGET_BYTES, threads, maps)
                t = _fft_cost(conv, out, shape, group, threads)
                total = t * windows + _spectra_cost(conv, shape, threads)
                if best is None or total < best[0]:
                    best = (total, shape, group)
        use_fft = best is not None and (
            method == "fft" or best[0] * AUTO_MARGIN < direct * windows)
        if use_fft:
            fft[i] = FFTStep(best[1], int(best[2]))
            budget -= fc.KernelSpectra.nbytes_for(conv.out_channels, conv.in_channels,
                                                  best[1])
            cost += best[0]
        else:
            cost += direct * windows
    fused = {j for i in fft for j in range(i + 1, dense.fused(i)[0])}
    for i, step in enumerate(dense.steps):
        if i not in fused:  # those run inside the FFT step, a group at a time
            peak = max(peak, _step_bytes(dense, i, step, shapes[i], fft.get(i), threads))
    return cost, fft, peak


def _step_bytes(dense, i, step, shape, how, threads=1) -> int:
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
        im2col = channels_in * math.prod(step.kernel) * math.prod(out)
        return 4 * max(size_in + step.out_channels * math.prod(out), im2col)
    nb = math.prod(fc.blocks(out, step.kernel, how.fft_shape))
    return _maps_bytes(dense, i, shape) + fc.input_bytes(channels_in, how.fft_shape, nb) \
        + fc.CHUNK_BYTES + threads * how.group * fc.group_bytes(how.fft_shape, step.kernel, nb)


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
        :data:`SPECTRA_BUDGET_BYTES`.
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
    key = (tuple(image_hw), method, tile, threads, backend)
    kept = dense._schedules.get(key)
    if kept is not None:
        return kept
    with_fft = method != "direct" and backend != "cuda" and bool(eligible)
    if tile is not None:
        cost, fft, _ = _tile_plan(dense, tile, image_hw, method, threads, with_fft)
        result = Schedule(tile, fft, threads, cost)
    else:
        result = _auto_tile(dense, image_hw, method, threads, with_fft)
    if method == "fft":
        missing = [i for i in eligible if i not in result.fft]
        if missing:
            conv = dense.steps[missing[0]]
            raise InvalidValueError(f"{caller}: method='fft': the kernel spectra of the "
                             f"{conv.out_channels}x{conv.in_channels}x"
                             f"{'x'.join(map(str, conv.kernel))} convolution do not fit the "
                             f"{SPECTRA_BUDGET_BYTES // 2**20} MiB kept for spectra; use "
                             "'auto' or 'direct'")
    if len(dense._schedules) >= 16:
        dense._schedules.clear()
    dense._schedules[key] = result
    return result


def _tile_candidates(dense: DensePlan, image_hw) -> list[int]:
    """Tile sides worth trying: multiples of the stride, up to the image and MAX_TILE."""
    s = dense.stride
    largest = min(MAX_TILE, max(image_hw))
    largest = -(-largest // s) * s
    sides = {largest}
    t = s
    while t < largest:
        sides.add(t)
        t = -(-int(t * 1.25 + 1) // s) * s
    return sorted(sides)


def _auto_tile(dense, image_hw, method, threads, with_fft) -> Schedule:
    if not with_fft:
        # Direct layers only: the largest tile whose biggest intermediate fits.
        best = dense.stride
        for t in range(dense.stride, MAX_TILE + 1, dense.stride):
            if _direct_peak(dense, t) > TILE_BUDGET_BYTES:
                break
            best = t
        cost, fft, _ = _tile_plan(dense, best, image_hw, method, threads, False)
        return Schedule(best, fft, threads, cost)
    # The fastest estimate among the tiles that fit their budget (the smallest tile
    # when none does).
    best = smallest = None
    for t in _tile_candidates(dense, image_hw):
        cost, fft, peak = _tile_plan(dense, t, image_hw, method, threads, True)
        candidate = Schedule(t, fft, threads, cost)
        smallest = smallest or candidate
        if peak <= (FFT_TILE_BUDGET_BYTES if fft else TILE_BUDGET_BYTES):
            if best is None or cost < best.estimate_s:
                best = candidate
        elif best is not None:
            break  # larger tiles only need more memory
    return best or smallest


def _direct_peak(dense: DensePlan, tile: int) -> int:
    n = -(-tile // dense.stride)
    shapes = dense.shapes((n,) * dense.ndim)
    return max(_step_bytes(dense, i, st, shapes[i], None) for i, st in enumerate(dense.steps))
