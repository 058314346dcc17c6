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

The work of one call, in this order:

1. every input window is transformed once, all channels (real FFTs from
   ``scipy.fft``, threaded with ``workers``), and reused for every output channel;
2. per frequency bin, ``Y[f, b] = sum_c conj(W)[f, c] X[c, b]`` is one complex
   matrix product, run on fastseg's own GEMM (the current backend's ``gemm_batch``:
   every bin in one call that holds no GIL) as one real product: ``W`` read as
   float32 is ``[Re Im Re Im ...]`` along c, ``(F, 2C)``; stacking ``X`` and ``iX``
   read the same way gives ``(2C, 2B)``, and their product is ``Y`` with real and
   imaginary parts interleaved, exactly the complex64 layout the inverse FFT
   reads. (Four real multiplications per complex one; the three-multiplication
   form measured 1.0-1.36x slower on these shapes -- three GEMMs of half the
   depth -- and would keep 1.5x the kernel spectra.)
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
from fastseg.errors import InvalidValueError

__all__ = ["KernelSpectra", "correlate", "fast_length", "half_shape"]

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
    """``conj(rfftn(w, fft_shape))`` of a weight (F, C, *kernel), laid out (bins, F, C)
    complex64, so that bin k's (F, C) block read as float32 is its GEMM operand.

    Attributes
    ----------
    fft_shape, kernel : tuple of int
    out_channels, in_channels : int
    array : numpy.ndarray, (bins, F, C) complex64
    """

    def __init__(self, weight, fft_shape, workers: int = 1):
        w = np.asarray(weight, dtype=np.float32)
        self.out_channels, self.in_channels = w.shape[:2]
        self.kernel = tuple(w.shape[2:])
        self.fft_shape = tuple(int(t) for t in fft_shape)
        d = len(self.kernel)
        if len(self.fft_shape) != d or any(t < k for t, k in zip(self.fft_shape, self.kernel,
                                                                 strict=True)):
            raise InvalidValueError(f"fft_shape: {self.fft_shape} cannot hold the kernel "
                                    f"{self.kernel}")
        f, c = self.out_channels, self.in_channels
        nbins = _bins(self.fft_shape)
        self.array = np.empty((nbins, f, c), np.complex64)
        # A few output channels at a time, so the transform's temporaries stay small.
        chunk = max(1, CHUNK_BYTES // (8 * nbins * c))
        for f0 in range(0, f, chunk):
            f1 = min(f, f0 + chunk)
            block = np.moveaxis(w[f0:f1], (0, 1), (-2, -1))  # (*kernel, chunk, C)
            spec = _fft().rfftn(block, s=self.fft_shape, axes=tuple(range(d)),
                                   workers=workers)
            np.conjugate(spec.reshape(nbins, f1 - f0, c), out=self.array[:, f0:f1])

    @property
    def nbytes(self) -> int:
        return self.array.nbytes

    @staticmethod
    def nbytes_for(out_channels: int, in_channels: int, fft_shape) -> int:
        """Bytes the spectra of such a weight take at `fft_shape`."""
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


def correlate(x, spectra: KernelSpectra, bias=None, *, group=None, activations=(),
              project=None, workers=None, backend=None) -> np.ndarray:
    """Valid stride-1 cross-correlation of x (C, *S) with the kernel of `spectra`.

    Parameters
    ----------
    x : numpy.ndarray, (C, *S) float32
    spectra : KernelSpectra
        Of the weight (F, C, *kernel); S >= kernel on every axis.
    bias : numpy.ndarray (F,), optional
    group : int, optional
        Output channels computed at a time by one thread (default all): the memory
        of one group is ``group * group_bytes(...)``, and `workers` groups run at once.
    activations : sequence of callables
        Applied in order to each group's maps (after the bias); they may work in place,
        the maps being this call's own arrays.
    project : (numpy.ndarray (P, F), numpy.ndarray (P,) or None), optional
        A 1x1 convolution applied to the activated maps; the result is its output.
    workers : int, optional
        Threads (default: fastseg's kernel thread count).
    backend : str, optional
        Whose GEMM runs the per-bin products (default: the current backend).

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
