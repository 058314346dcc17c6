"""The ``"numpy"`` backend's dense-inference entries: the FFT convolution's reference.

:func:`fftconv2d` computes what ``kernels/src/fftconv.c`` computes, written to be
obviously right: the overlap-save blocks' real FFTs in float64 (NumPy's), the per-bin
products as one stack of matrix products, the inverse transforms, then bias, activation
and the 1x1 convolution. It reads the same packed spectra (any panel rows), so it checks
the packing as well as the arithmetic. :func:`spectra_packed` is the one packer, shared
with the ``"c"`` backend (which passes SciPy's float32 FFT and its thread count).
"""
from __future__ import annotations

import concurrent.futures
import math
import queue

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["PANEL_ROWS", "spectra_packed", "fft_spectra", "fftconv2d", "unpack_spectra"]

#: The reference's panel rows: any value works; not the compiled kernels' 10 or 6, so the
#: tests see the layout's MR read from the array, never assumed.
PANEL_ROWS = 8
#: Temporary memory of the packing, per block of filters.
_CHUNK_BYTES = 16 * 2**20
#: Most threads the packing takes blocks on (each holds a block's temporaries).
_MAX_THREADS = 16


def spectra_packed(w, fft_shape, mr: int, transforms=None, threads: int = 1) -> np.ndarray:
    """``conj(rfft2(w, fft_shape)) / (th * tw)`` packed (panels, tw//2+1, th, 2, C, mr).

    Element ``[pn, v, u, part, c, i]`` is the real (part 0) or imaginary (1) part of
    filter ``pn * mr + i``'s spectrum at bin (u, v) for channel c; filters past F are 0.
    `transforms` is ``(rfft, fft)`` with ``numpy.fft.rfft``'s ``(a, n, axis)`` (default
    NumPy's, in float64). With `threads` > 1, that many threads take blocks of panels
    (the transforms then should use one thread themselves); each block is computed the
    same way whoever takes it.
    """
    w = np.asarray(w)
    f, c = w.shape[:2]
    kh, kw = w.shape[2:]
    th, tw = (int(t) for t in fft_shape)
    nv = tw // 2 + 1
    panels = -(-f // mr)
    out = np.zeros((panels, nv, th, 2, c, mr), np.float32)
    if transforms is None:
        w = w.astype(np.float64)
        transforms = (np.fft.rfft, np.fft.fft)
    rfft, fft = transforms
    scale = 1.0 / (th * tw)
    # Each thread holds a block of kernels and its spectra: blocks shrink as threads grow,
    # so that together they stay near the one block of a single thread (a block is at
    # least a panel, hence the cap on threads).
    threads = max(1, min(int(threads), _MAX_THREADS, panels))
    step = max(1, _CHUNK_BYTES // (16 * mr * c * th * nv) // threads)  # panels at a time
    starts = range(0, panels, step)

    # Each block of panels is transformed from a copy of its kernels laid out (panels,
    # kw, kh, C, mr), the real transform along axis 1 (tw) first, then axis 2 (th), so
    # that the spectra come out as (panels, nv, th, C, mr): the packed layout but for
    # the parts, copied in whole runs of C * mr. Each transform pads its own axis with
    # zeros as it reads it, so the real one runs on the kh nonzero rows only, not th
    # (the same sums as the 2-D transform of a zero-padded copy, which lai2d's 16x16
    # kernels in 45x45 made 2.8x as many real transforms; and no padded copy to fill).
    # Transforming (F, C, th, tw) and transposing the spectra after read them against
    # the grain. The copies are made once per thread and refilled.
    def one_block(p0, block):
        p1 = min(panels, p0 + step)
        block = block[:p1 - p0]
        filters = w[p0 * mr:min(f, p1 * mr)]
        if len(filters) < (p1 - p0) * mr:
            block[:] = 0
        for i in range(mr):  # row i of every panel: filters i, i + mr, ...
            rows = filters[i::mr]
            block[:len(rows), :, :, :, i] = rows.transpose(0, 3, 2, 1)
        spec = fft(rfft(block, tw, 1), th, 2)
        np.multiply(spec.real, scale, out=out[p0:p1, :, :, 0])
        np.multiply(spec.imag, -scale, out=out[p0:p1, :, :, 1])  # the conjugate

    threads = min(threads, len(starts))
    blocks = queue.SimpleQueue()
    for _ in range(threads):
        blocks.put(np.zeros((min(step, panels), kw, kh, c, mr), w.dtype))

    def task(p0):
        block = blocks.get()
        try:
            one_block(p0, block)
        finally:
            blocks.put(block)

    if threads == 1:
        for p0 in starts:
            task(p0)
    else:
        # The copies fault in the spectra's fresh pages, which threads take side by side
        # as they do the transforms: lai2d's 414 MB at 45 x 45 (Zen 4, 2 threads) in
        # 0.4-0.7 s on the first call of a process, where the transforms alone on two
        # threads took 1.1-1.5 s (0.25-0.35 s against 0.48-0.62 s again).
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(task, starts))
    return out


def unpack_spectra(spectra, filters: int) -> np.ndarray:
    """The packed spectra back as (F, C, th, tw//2+1) complex128: ``conj(rfft2(w))``."""
    panels, nv, th, _, c, mr = spectra.shape
    s = spectra[:, :, :, 0].astype(np.float64) + 1j * spectra[:, :, :, 1]
    return s.transpose(0, 4, 3, 2, 1).reshape(panels * mr, c, th, nv)[:filters]


def fft_spectra(w, fft_shape):
    return spectra_packed(w, fft_shape, PANEL_ROWS)


def _activate(name, z):
    if name is None:
        return z
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    raise ValueError(f"fftconv2d: activation {name!r} is not one of 'relu', 'tanh', "
                     "'sigmoid' or None")


def fftconv2d(x, spectra, kernel, fft_shape, filters, bias, activation, proj_w, proj_b,
              mults, group, chunk, seconds):
    c, h, w = x.shape
    kh, kw = kernel
    th, tw = fft_shape
    s1, s2 = th - kh + 1, tw - kw + 1
    oh, ow = h - kh + 1, w - kw + 1
    nb1, nb2 = math.ceil(oh / s1), math.ceil(ow / s2)
    spec = unpack_spectra(spectra, filters) * (th * tw)  # conj(rfft2(w))
    # The blocks' windows, zero past x: block (i, j) reads x[:, i*s1:i*s1+th, j*s2:j*s2+tw].
    ext = ((nb1 - 1) * s1 + th, (nb2 - 1) * s2 + tw)
    padded = np.zeros((c, max(h, ext[0]), max(w, ext[1])))
    padded[:, :h, :w] = x
    st = padded.strides
    windows = as_strided(padded, (c, nb1, nb2, th, tw),
                         (st[0], s1 * st[1], s2 * st[2], st[1], st[2]), writeable=False)
    nv = tw // 2 + 1
    # Per bin, Y = W X: (F, C) (C, blocks), as one stack of matrix products.
    right = np.fft.rfft2(windows).transpose(3, 4, 0, 1, 2).reshape(th * nv, c, nb1 * nb2)
    left = spec.transpose(2, 3, 0, 1).reshape(th * nv, filters, c)
    maps = np.empty((filters, nb1 * s1, nb2 * s2))
    step = max(1, 2**24 // max(1, 16 * nb1 * nb2 * th * nv))  # filters at a time
    for f0 in range(0, filters, step):
        f1 = min(filters, f0 + step)
        y = np.matmul(left[:, f0:f1], right).reshape(th, nv, f1 - f0, nb1, nb2)
        z = np.fft.irfft2(y.transpose(2, 3, 4, 0, 1), s=(th, tw))[..., :s1, :s2]
        maps[f0:f1] = z.transpose(0, 1, 3, 2, 4).reshape(f1 - f0, nb1 * s1, nb2 * s2)
    maps = maps[:, :oh, :ow]
    if bias is not None:
        maps = maps + np.asarray(bias, np.float64).reshape(-1, 1, 1)
    maps = _activate(activation, maps)
    if proj_w is not None:
        maps = np.tensordot(np.asarray(proj_w, np.float64), maps, axes=(1, 0))
        if proj_b is not None:
            maps += np.asarray(proj_b, np.float64).reshape(-1, 1, 1)
    if seconds is not None:
        seconds[:] = 0.0  # nothing timed: the reference is for correctness only
    return np.ascontiguousarray(maps, dtype=np.float32)
