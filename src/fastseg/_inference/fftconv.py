"""Valid N-D cross-correlation by overlap-save FFT, for the dense network's large kernels.

:func:`correlate` computes what ``ops.conv2d`` (``ops.conv3d`` in 3-D) computes at
stride 1 and without padding, ``y[f, o] = b[f] + sum_c sum_k w[f, c, k] x[c, o + k]``,
with far fewer operations when the kernel is large: lai2d's fully connected
layer run as a 16x16 convolution over 50 channels costs 12.8 M multiply-adds
per output pixel directly and about 0.2 M here.

Overlap-save: the output is cut into blocks of ``step = fft_shape - kernel + 1``
per axis. Each block reads an input window of ``fft_shape``; the circular
correlation of that window with the kernel, ``irfftn(rfftn(window) *
conj(rfftn(w)))``, has no wrapped term in its first ``step`` outputs per axis,
which are the block's outputs.

Two ways to run it:

* 2-D, with the activations named (``"relu"``, ``"tanh"``, ``"sigmoid"``, at most
  one) -- what dense segmentation asks for -- on the current backend's ``fftconv2d``:
  the ``"c"`` backend's is one call into ``kernels/src/fftconv.c`` (vertical FFTs,
  per-bin complex products on the GEMM micro-kernel, the inverse transforms fused
  with bias, activation and the next 1x1 convolution; see there), the ``"numpy"``
  backend's its float64 reference. The weight's spectra are packed once for that
  backend (:class:`KernelSpectra`, ``fft_spectra``). Bitwise the same whatever the
  threads, ``group`` and ``chunk``; ``mults`` (3 or 4 real products per complex one)
  and the FFT shape change rounding.
* any other case (3-D, activations given as callables): the per-bin products in
  one ``gemm_batch`` per group of output channels on parallel threads, SciPy's
  FFTs (the steps below).

The general path, in this order:

1. every input window is transformed once, all channels (real FFTs from
   ``scipy.fft``, threaded with ``workers``), and reused for every output channel;
2. per frequency bin, ``Y[f, b] = sum_c conj(W)[f, c] X[c, b]`` is one complex
   matrix product, run on fastseg's own GEMM (the current backend's ``gemm_batch``:
   every bin in one call that holds no GIL) as one real product: ``W`` read as
   float32 is ``[Re Im Re Im ...]`` along c, ``(F, 2C)``; stacking ``X`` and ``iX``
   read the same way gives ``(2C, 2B)``, and their product is ``Y`` with real and
   imaginary parts interleaved, exactly the complex64 layout the inverse FFT
   reads.
3. output channels in groups, so only one group's spectra and maps exist at a
   time: inverse FFT, crop, bias, activations, and, when a 1x1 convolution
   follows (lai2d's last layer), its product, accumulated over groups.

Rounding differs from the direct path's (float32 FFTs): about 1e-6 relative to
the largest term on lai2d's layer; the tests bound it.
"""
from __future__ import annotations

import contextlib
import functools
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import as_strided

from fastseg import backends
from fastseg.errors import InvalidValueError, UnavailableError

__all__ = ["KernelSpectra", "correlate", "fast_length", "half_shape", "NAMED_ACTIVATIONS",
           "STAGES", "kernel_workspace_bytes", "profiling"]

#: Temporary memory of the forward transforms, per chunk of input channels.
CHUNK_BYTES = 16 * 2**20
#: Largest working array the schedule lets one call allocate. glibc's malloc serves
#: larger ones from fresh mmaps whose first touch costs ~1 ms per MiB (page faults,
#: measured here: 43 ms for 36 MiB); arrays up to 32 MiB are recycled from its heap.
ARRAY_MAX_BYTES = 32 * 2**20


def _fft():
    """scipy.fft, imported on first use (it is a tenth of a second of `import fastseg`)."""
    import scipy.fft

    return scipy.fft


@functools.lru_cache(maxsize=4096)
def fast_length(n: int) -> int:
    """The smallest length >= n whose real FFT is fast (a product of 2, 3 and 5)."""
    return _fft().next_fast_len(int(n), real=True)


def half_shape(fft_shape) -> tuple[int, ...]:
    """Shape of the real FFT of an array of `fft_shape` (the last axis halved)."""
    return (*fft_shape[:-1], fft_shape[-1] // 2 + 1)


def _bins(fft_shape) -> int:
    return math.prod(half_shape(fft_shape))


class KernelSpectra:
    """A weight (F, C, *kernel)'s spectra at `fft_shape`, computed once per model.

    In 2-D, for a backend with ``fftconv2d``: :attr:`packed`, the backend's own layout
    (``fft_spectra``: conjugate spectra scaled by ``1 / prod(fft_shape)``, in panels of
    the micro-kernel's rows). Otherwise, and made on first use when the general path
    asks for it: :attr:`array`, ``conj(rfftn(w, fft_shape))`` laid out (bins, F, C)
    complex64, so that bin k's (F, C) block read as float32 is its GEMM operand.

    Attributes
    ----------
    fft_shape, kernel : tuple of int
    out_channels, in_channels : int
    packed : numpy.ndarray or None
        (panels, tw//2+1, th, 2, C, mr) float32.
    packed_for : str or None
        The backend `packed` was made for.
    """

    def __init__(self, weight, fft_shape, workers: int = 1, backend: str | None = None):
        w = np.asarray(weight, dtype=np.float32)
        self.out_channels, self.in_channels = w.shape[:2]
        self.kernel = tuple(w.shape[2:])
        self.fft_shape = tuple(int(t) for t in fft_shape)
        d = len(self.kernel)
        if len(self.fft_shape) != d or any(t < k for t, k in zip(self.fft_shape, self.kernel,
                                                                 strict=True)):
            raise InvalidValueError(f"fft_shape: {self.fft_shape} cannot hold the kernel "
                                    f"{self.kernel}")
        self._weight, self._workers = w, workers
        self._array = None
        self.packed = self.packed_for = None
        name = backends.get_backend() if backend is None else backend
        if d != 2 or self.pack_for(name) is None:
            self._array = self._general()

    def pack_for(self, backend: str) -> np.ndarray | None:
        """:attr:`packed` for `backend` (made again when it was packed for another); None
        when `backend` does not run the 2-D FFT convolution (cuda: the general path)."""
        if self.packed is None or self.packed_for != backend:
            self.packed = self.packed_for = None  # the old one goes before the new is made
            try:
                self.packed = backends.load(backend).fft_spectra(self._weight, self.fft_shape)
            except UnavailableError:
                return None
            self.packed_for = backend
        return self.packed

    @property
    def array(self) -> np.ndarray:
        """The general path's layout, (bins, F, C) complex64 (made on first use)."""
        if self._array is None:
            self._array = self._general()
        return self._array

    def _general(self) -> np.ndarray:
        w, d = self._weight, len(self.kernel)
        f, c = self.out_channels, self.in_channels
        nbins = _bins(self.fft_shape)
        array = np.empty((nbins, f, c), np.complex64)
        # A few output channels at a time, so the transform's temporaries stay small.
        chunk = max(1, CHUNK_BYTES // (8 * nbins * c))
        for f0 in range(0, f, chunk):
            f1 = min(f, f0 + chunk)
            block = np.moveaxis(w[f0:f1], (0, 1), (-2, -1))  # (*kernel, chunk, C)
            spec = _fft().rfftn(block, s=self.fft_shape, axes=tuple(range(d)),
                                workers=self._workers)
            np.conjugate(spec.reshape(nbins, f1 - f0, c), out=array[:, f0:f1])
        return array

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.packed, self._array) if a is not None)

    @staticmethod
    def nbytes_for(out_channels: int, in_channels: int, fft_shape) -> int:
        """Bytes the spectra of such a weight take at `fft_shape` (the packed layout
        pads F to the micro-kernel's rows: 1000 filters on 10 rows, none)."""
        return 8 * out_channels * in_channels * _bins(fft_shape)


def blocks(out_shape, kernel, fft_shape) -> tuple[int, ...]:
    """Number of overlap-save blocks per axis for an output of `out_shape`."""
    return tuple(-(-o // (t - k + 1)) for o, k, t in zip(out_shape, kernel, fft_shape,
                                                           strict=True))


def group_bytes(fft_shape, kernel, nblocks: int) -> int:
    """Working memory per output channel of one group (spectra, inverse, maps)."""
    step = [t - k + 1 for t, k in zip(fft_shape, kernel, strict=True)]
    inverse = 4 * math.prod(step[:-1]) * fft_shape[-1]
    return nblocks * (8 * _bins(fft_shape) + inverse + 8 * math.prod(step))


def largest_array_per_channel(fft_shape, kernel, nblocks: int) -> int:
    """Bytes per output channel of a group's largest array (spectra, inverse or maps)."""
    step = [t - k + 1 for t, k in zip(fft_shape, kernel, strict=True)]
    return nblocks * max(8 * _bins(fft_shape), 4 * math.prod(step[:-1]) * fft_shape[-1])


#: What the kernel's blocking rounds to: its filter groups to whole panels of whole
#: filter pairs (MR, or 2 MR where MR is odd: 4 on avx512 and generic, 6 on avx2's
#: 3-row panels), its chunks to the complex micro-kernel's NR (at most 32:
#: kernels/src/fft_avx512.c); and the kernel's default group and chunk
#: (kernels/src/fftconv_blocking.h), for the estimates below.
_UNITS, _NR = (4, 6), 32
_GROUP, _CHUNK, _SLICES = 80, 32, 8


def kernel_workspace_bytes(in_channels: int, filters: int, outputs: int, kernel, fft_shape,
                           out_shape, group: int = 0, chunk: int = 0, threads: int = 1) -> int:
    """An upper bound of the workspace the 2-D kernel takes on `threads` threads (its
    layout in kernels/src/fftconv.c, ``setup``; at most what it allocates, whatever the
    ISA): shared, a chunk's input spectra and the filter slices' sums; per thread, a
    frequency column and the half-inverted rows of one filter group, a row of maps,
    the transforms' scratch."""
    c, f = in_channels, filters
    th, tw = fft_shape
    s1, s2 = th - kernel[0] + 1, tw - kernel[1] + 1
    nv = tw // 2 + 1
    g = max(min(-(-f // u) * u, -(-(group or _GROUP) // u) * u) for u in _UNITS)
    nblocks = math.prod(blocks(out_shape, kernel, fft_shape))
    ch = -(-(chunk or _CHUNK) // _NR) * _NR
    if -(-nblocks // ch) < threads:
        ch = -(-nblocks // max(1, threads))
    pieces = -(-nblocks // ch)  # chunks as even as NR allows (fs_even_block)
    even = -(-nblocks // pieces)
    ch = -(-even // _NR) * _NR
    lanes, lane_block = g * ch, 256
    shared = th * nv * 2 * c * ch + _SLICES * outputs * s1 * s2 * ch
    own = (th * 2 * lanes + s1 * nv * 2 * lanes + s2 * lanes
           + 4 * max(th, tw) * max(lane_block, 2 * _NR) + tw * 2 * lane_block
           + 2 * tw * 2 * _NR + th * nv * 4 * _NR)
    return 4 * (shared + threads * own) + 64 * 16 * (threads + 1)  # and the alignment


def input_bytes(in_channels: int, fft_shape, nblocks: int) -> int:
    """Working memory of the transformed input windows (the GEMM's right operand)."""
    return 16 * in_channels * nblocks * _bins(fft_shape)


def _windows(x, kernel, fft_shape, nb):
    """View (C, *nb, *fft_shape) of the overlapping input windows (zero-padded past x)."""
    c, shape = x.shape[0], x.shape[1:]
    step = [t - k + 1 for t, k in zip(fft_shape, kernel, strict=True)]
    ext = tuple(b * s + k - 1 for b, s, k in zip(nb, step, kernel, strict=True))
    if ext != shape:
        padded = np.zeros((c, *ext), np.float32)
        padded[(slice(None),) + tuple(slice(0, n) for n in shape)] = x
        x = padded
    st = x.strides
    return as_strided(x, (c, *nb, *fft_shape),
                      (st[0], *[s * sa for s, sa in zip(step, st[1:], strict=True)], *st[1:]),
                      writeable=False)


def _input_spectra(x, kernel, fft_shape, nb, workers):
    """The GEMM's right operand for every bin: [X; iX] as float32 (bins, 2C, 2B)."""
    d, c = len(kernel), x.shape[0]
    nbins, nblocks, pts = _bins(fft_shape), math.prod(nb), math.prod(fft_shape)
    windows = _windows(x, kernel, fft_shape, nb)
    # (C, *nb, *T) -> (*T, C, *nb): the transform runs over the leading axes and
    # its output is already bins-major, the layout the per-bin products read.
    order = (*range(1 + d, 1 + 2 * d), 0, *range(1, 1 + d))
    both = np.empty((nbins, c, 2, nblocks), np.complex64)
    chunk = max(1, CHUNK_BYTES // (12 * pts * nblocks))
    for c0 in range(0, c, chunk):
        c1 = min(c, c0 + chunk)
        gathered = np.ascontiguousarray(windows[c0:c1].transpose(order))
        spec = _fft().rfftn(gathered, axes=tuple(range(d)), workers=workers)
        spec = spec.reshape(nbins, c1 - c0, nblocks)
        both[:, c0:c1, 0] = spec
        np.multiply(spec, 1j, out=both[:, c0:c1, 1])
    return both.view(np.float32).reshape(nbins, 2 * c, 2 * nblocks)


def _inverse(y, fft_shape, kernel, workers):
    """Valid outputs (*step, F, B) of the block spectra y (*half, F, B), complex64.

    The complex inverse transforms run first, over every axis but the last; only
    the `step` valid rows of them go through the last, real, inverse transform.
    """
    d = len(fft_shape)
    step = [t - k + 1 for t, k in zip(fft_shape, kernel, strict=True)]
    if d > 1:
        y = _fft().ifftn(y, axes=tuple(range(d - 1)), workers=workers, overwrite_x=True)
        y = y[tuple(slice(0, s) for s in step[:-1])]
    z = _fft().irfft(y, n=fft_shape[-1], axis=d - 1, workers=workers)
    return z[(slice(None),) * (d - 1) + (slice(0, step[-1]),)]


class _Job:
    """What every group of output channels of one `correlate` call shares."""

    def __init__(self, x, spectra, bias, activations, project, table):
        self.kernel, self.fft_shape = spectra.kernel, spectra.fft_shape
        self.out_shape = tuple(n - k + 1 for n, k in zip(x.shape[1:], self.kernel, strict=True))
        self.nb = blocks(self.out_shape, self.kernel, self.fft_shape)
        self.nblocks, self.nbins = math.prod(self.nb), _bins(self.fft_shape)
        self.step = [t - k + 1 for t, k in zip(self.fft_shape, self.kernel, strict=True)]
        self.full = tuple(b * s for b, s in zip(self.nb, self.step, strict=True))
        self.left = spectra.array.view(np.float32)  # (bins, F, 2C)
        self.bias, self.activations, self.project = bias, activations, project
        self.gemm, self.gemm_batch = table.gemm, getattr(table, "gemm_batch", None)
        self.crop = (slice(None),) + tuple(slice(0, o) for o in self.out_shape)
        self.right = None

    def block_maps(self, f0, f1, buf, workers):
        """Biased, activated outputs of channels f0..f1 in block layout (fg, *step, B)."""
        fg, nbins, nblocks, d = f1 - f0, self.nbins, self.nblocks, len(self.kernel)
        y = buf[:nbins * fg * nblocks].reshape(nbins, fg, nblocks)
        yf = y.view(np.float32)
        if self.gemm_batch is not None:  # one call, no GIL held across the bins
            self.gemm_batch(self.left[:, f0:f1], self.right, yf)
        else:
            for k in range(nbins):
                yf[k] = self.gemm(self.left[k, f0:f1], self.right[k], False, False)
        z = _inverse(y.reshape(*half_shape(self.fft_shape), fg, nblocks), self.fft_shape,
                     self.kernel, workers)  # (*step, fg, B)
        # Channels first; each block's outputs stay a contiguous run of B floats.
        z = z.transpose(d, *range(d), d + 1)
        maps = np.empty(z.shape, np.float32)
        if self.bias is None:
            np.copyto(maps, z)
        else:
            np.add(z, np.asarray(self.bias[f0:f1], np.float32).reshape(-1, *[1] * (d + 1)),
                   out=maps)
        del z
        for act in self.activations:
            maps = act(maps)
        return maps

    def to_image(self, maps):
        """Block layout (n, *step, *nb) -> image layout (n, *O)."""
        d = len(self.kernel)
        n = maps.shape[0]
        blocks_last = maps.reshape(n, *self.step, *self.nb)
        order = (0, *[a for i in range(d) for a in (1 + d + i, 1 + i)])
        return blocks_last.transpose(order).reshape(n, *self.full)[self.crop]

    def projected(self, f0, f1, maps):
        """The 1x1 convolution's share (P, *step, B) of channels f0..f1."""
        w = np.ascontiguousarray(self.project[0][:, f0:f1], dtype=np.float32)
        out = self.gemm(w, maps.reshape(f1 - f0, -1), False, False)
        return out.reshape(-1, *maps.shape[1:])


def _named(name):
    """The general path's form of a named activation (NumPy's, in place)."""
    if name == "tanh":
        return lambda a: np.tanh(a, out=a)
    if name == "relu":
        return lambda a: np.maximum(a, 0, out=a)
    return lambda a: np.divide(1.0, 1.0 + np.exp(-a, out=a), out=a)


STAGES = ("forward", "products", "inverse", "activation", "project", "copy", "sync")
_profile = threading.local()


@contextlib.contextmanager
def profiling(timings: dict):
    """Meanwhile, every 2-D kernel call on this thread adds its stages' CPU seconds to
    `timings` (``bench/fft_stages.py``), as ``correlate(timings=...)`` does for one call."""
    before = getattr(_profile, "timings", None)
    _profile.timings = timings
    try:
        yield timings
    finally:
        _profile.timings = before


def _kernel_path(x, spectra, bias, activation, project, backend, group, mults, chunk,
                 timings):
    """One call of the backend's fftconv2d (the 2-D kernel path)."""
    table = backends.load(backend)
    proj_w = proj_b = None
    if project is not None:
        proj_w = np.ascontiguousarray(project[0], dtype=np.float32)
        if project[1] is not None:
            proj_b = np.ascontiguousarray(project[1], dtype=np.float32)
    if bias is not None:
        bias = np.ascontiguousarray(bias, dtype=np.float32)
    if timings is None:
        timings = getattr(_profile, "timings", None)
    seconds = None if timings is None else np.zeros(len(STAGES))
    y = table.fftconv2d(x, spectra.packed, spectra.kernel, spectra.fft_shape,
                        spectra.out_channels, bias, activation, proj_w, proj_b,
                        3 if mults is None else int(mults), int(group or 0), int(chunk or 0),
                        seconds)
    if timings is not None:
        for stage, t in zip(STAGES, seconds, strict=True):
            timings[stage] = timings.get(stage, 0.0) + float(t)
    return y


_pin = threading.Lock()
# Guards the pin's two changes (the count, and what it replaced) against a reader between them.
_pin_state = threading.Lock()
_pinned_from: list = [None]  # the thread count a pin replaced, while it holds


def configured_threads() -> int:
    """The kernels' thread count as configured, not as a pin below holds it for a while:
    what a segmentation plans for. A plan made while another thread's FFT groups hold
    the pin would otherwise be made for one thread, and give other bits than alone."""
    with _pin_state:
        held = _pinned_from[0]
        return backends.get_num_threads() if held is None else held


@contextlib.contextmanager
def _one_kernel_thread():
    """fastseg's kernels on one thread while the FFT path's own threads run groups.

    The thread count is process-wide: fastseg kernels called from other Python
    threads meanwhile also run on one thread (slower, never wrong); plans read
    :func:`configured_threads`, which the pin does not change.
    """
    with _pin:
        with _pin_state:
            before = backends.get_num_threads()
            _pinned_from[0] = before
            backends.set_num_threads(1)
        try:
            yield
        finally:
            with _pin_state:
                backends.set_num_threads(before)
                _pinned_from[0] = None


#: Names the 2-D kernel path applies itself (at most one, after the bias).
NAMED_ACTIVATIONS = ("relu", "tanh", "sigmoid")


def correlate(x, spectra: KernelSpectra, bias=None, *, group=None, activations=(),
              project=None, workers=None, backend=None, mults=None, chunk=None,
              timings=None) -> np.ndarray:
    """Valid stride-1 cross-correlation of x (C, *S) with the kernel of `spectra`.

    Parameters
    ----------
    x : numpy.ndarray, (C, *S) float32
    spectra : KernelSpectra
        Of the weight (F, C, *kernel); S >= kernel on every axis.
    bias : numpy.ndarray (F,), optional
    group : int, optional
        Output channels transformed back together (the kernel path: its blocking,
        default its own; the general path: channels per thread at a time, default all,
        ``group * group_bytes(...)`` of memory each, `workers` groups at once).
    activations : sequence of str or of callables
        Applied in order to the maps after the bias. Names (``"relu"``, ``"tanh"``,
        ``"sigmoid"``): one runs inside the 2-D kernel; callables, which may work in
        place on the maps (this call's own arrays), and several names take the general
        path.
    project : (numpy.ndarray (P, F), numpy.ndarray (P,) or None), optional
        A 1x1 convolution applied to the activated maps; the result is its output.
    workers : int, optional
        Threads of the general path (default: fastseg's kernel thread count; the
        kernel path always uses that count).
    backend : str, optional
        Whose kernels run it (default: the current backend).
    mults : {3, 4}, optional
        The kernel path's real products per complex one (default 3).
    chunk : int, optional
        The kernel path's output blocks per task (default its own).
    timings : dict, optional
        The kernel path adds its stages' CPU seconds here (``forward``, ``products``,
        ``inverse``, ``activation``, ``project``, ``copy``).

    Returns
    -------
    numpy.ndarray, (F, *O) float32, or (P, *O) with `project`; O = S - kernel + 1.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    kernel, fft_shape = spectra.kernel, spectra.fft_shape
    d, f, c = len(kernel), spectra.out_channels, spectra.in_channels
    if x.ndim != d + 1 or x.shape[0] != c or any(n < k for n, k in zip(x.shape[1:], kernel,
                                                                       strict=True)):
        raise InvalidValueError(f"x: expected ({c}, *S) with S >= {kernel}, got {x.shape}")
    activations = tuple(activations)
    name = backends.get_backend() if backend is None else backend
    named = all(isinstance(a, str) for a in activations)
    if named:
        bad = [a for a in activations if a not in NAMED_ACTIVATIONS]
        if bad:
            raise InvalidValueError(f"activations: expected names from "
                                    f"{list(NAMED_ACTIVATIONS)} or callables, got {bad}")
        if d == 2 and len(activations) <= 1 and spectra.pack_for(name) is not None:
            return _kernel_path(x, spectra, bias, activations[0] if activations else None,
                                project, name, group, mults, chunk, timings)
        activations = tuple(_named(a) for a in activations)
    workers = configured_threads() if workers is None else max(1, int(workers))
    table = backends.load(backends.get_backend() if backend is None else backend)
    job = _Job(x, spectra, bias, activations, project, table)
    job.right = _input_spectra(x, kernel, fft_shape, job.nb, workers)
    group = f if group is None else max(1, min(f, int(group)))
    ranges = [(f0, min(f, f0 + group)) for f0 in range(0, f, group)]
    size = job.nbins * group * job.nblocks
    if project is None:
        result = np.empty((f, *job.out_shape), np.float32)
    else:
        acc = np.zeros((project[0].shape[0], *job.step, job.nblocks), np.float32)

    def run(f0, f1, buf, fft_workers):
        maps = job.block_maps(f0, f1, buf, fft_workers)
        if project is None:
            result[f0:f1] = job.to_image(maps)
            return None
        return job.projected(f0, f1, maps)

    if workers > 1 and len(ranges) > 1:
        # Groups on `workers` threads, each running fastseg's kernels single-threaded:
        # a few coarse tasks, where multi-threaded kernels would meet at a barrier
        # after every small per-bin product (and stall whenever the machine is busy).
        local = threading.local()

        def task(r):
            if getattr(local, "buf", None) is None:
                local.buf = np.empty(size, np.complex64)
            return run(*r, local.buf, 1)

        with _one_kernel_thread(), ThreadPoolExecutor(workers) as pool:
            for part in pool.map(task, ranges):
                if part is not None:
                    acc += part
    else:
        buf = np.empty(size, np.complex64)
        for f0, f1 in ranges:
            part = run(f0, f1, buf, workers)
            if part is not None:
                acc += part
    if project is None:
        return result
    out = np.ascontiguousarray(job.to_image(acc))
    if project[1] is not None:
        out += np.asarray(project[1], np.float32).reshape(-1, *[1] * d)
    return out
