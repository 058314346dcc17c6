"""Convolution as im2col + GEMM, the batch in chunks.

Per chunk of images the forward pass unfolds the input into columns
(``C*k*k x nb*OH*OW``), multiplies by the weights viewed as ``F x C*k*k``
(the bias is added in the GEMM epilogue) and scatters the ``F x nb*OH*OW``
product into NCHW order. The backward pass reuses the same buffers:
``dW += dY2 @ cols.T`` (split-K GEMM: K is the long pixel axis),
``dcols = W.T @ dY2`` and col2im back to ``dx``.

Chunking bounds the column buffer by :data:`MAX_COLS_ELEMENTS` whatever the
batch size, so a large batch never runs the GPU out of memory.

col2im is written as a gather (each input pixel sums the columns that read
it) rather than a scatter: no atomics, so it is deterministic.
"""
from __future__ import annotations

import math

from numba import cuda, float32

from fastseg._shapes import out_sizes
from fastseg.backends._cuda import THREADS, empty, launch
from fastseg.backends._cuda import gemm as _gemm
from fastseg.backends._cuda.reduce import block_sum

#: Largest column buffer (in floats) a chunk may use: 32 Mi floats = 128 MiB.
MAX_COLS_ELEMENTS = 1 << 25


@cuda.jit
def _im2col_kernel(x, n0, k, stride, pad, oh, ow, cols):
    # cols[(c*k + i)*k + j, (n*OH + y)*OW + z] = x[n0 + n, c, y*s + i - p, z*s + j - p]
    ncols = cols.shape[1]
    plane = oh * ow
    height = x.shape[2]
    width = x.shape[3]
    for idx in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
        row = idx // ncols
        col = idx - row * ncols
        c = row // (k * k)
        ki = (row // k) % k
        kj = row % k
        n = col // plane
        p = col - n * plane
        h = (p // ow) * stride + ki - pad
        w = (p % ow) * stride + kj - pad
        value = float32(0.0)
        if 0 <= h < height and 0 <= w < width:
            value = x[n0 + n, c, h, w]
        cols[row, col] = value


@cuda.jit
def _col2im_kernel(cols, n0, count, k, stride, pad, oh, ow, dx):
    # dx[n0 + n, c, h, w] = sum of the column entries that im2col read from there.
    channels = dx.shape[1]
    height = dx.shape[2]
    width = dx.shape[3]
    plane = oh * ow
    total = count * channels * height * width
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        w = idx % width
        h = (idx // width) % height
        c = (idx // (width * height)) % channels
        n = idx // (width * height * channels)
        acc = float32(0.0)
        for ki in range(k):
            hh = h + pad - ki  # = y*stride for the output row y that reads h through ki
            if hh >= 0 and hh % stride == 0 and hh // stride < oh:
                y = hh // stride
                for kj in range(k):
                    ww = w + pad - kj
                    if ww >= 0 and ww % stride == 0 and ww // stride < ow:
                        acc += cols[(c * k + ki) * k + kj, n * plane + y * ow + ww // stride]
        dx[n0 + n, c, h, w] = acc


@cuda.jit
def _rows_to_nchw(y2, n0, y3):
    # y3[n0 + n, f, p] = y2[f, n*P + p]; y3 is (N, F, P)
    filters = y3.shape[1]
    plane = y3.shape[2]
    total = y2.size
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        p = idx % plane
        f = (idx // plane) % filters
        n = idx // (plane * filters)
        y3[n0 + n, f, p] = y2[f, n * plane + p]


@cuda.jit
def _nchw_to_rows(y3, n0, y2):
    # y2[f, n*P + p] = y3[n0 + n, f, p]: the inverse of _rows_to_nchw
    plane = y3.shape[2]
    ncols = y2.shape[1]
    for idx in range(cuda.grid(1), y2.size, cuda.gridsize(1)):
        f = idx // ncols
        col = idx - f * ncols
        n = col // plane
        y2[f, col] = y3[n0 + n, f, col - n * plane]


@cuda.jit
def _sum_outer_axes(a, out):
    # out[f] = a[:, f, :].sum(); one block per f, a tree sum in shared memory.
    partial = cuda.shared.array(THREADS, float32)
    f = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    inner = a.shape[2]
    total = a.shape[0] * inner
    acc = float32(0.0)
    for i in range(tid, total, THREADS):
        acc += a[i // inner, f, i % inner]
    partial[tid] = acc
    block_sum(partial, tid)
    if tid == 0:
        out[f] = partial[0]


def sum_outer_axes(a3):
    """``a3.sum(axis=(0, 2))`` of a device array (A, F, B): the bias gradients."""
    out = empty(a3.shape[1])
    if a3.shape[1]:
        _sum_outer_axes[a3.shape[1], THREADS](a3, out)
    return out


def _chunk(n: int, per_image: int) -> int:
    """Images per chunk so that the column buffer stays under MAX_COLS_ELEMENTS."""
    return max(1, min(n, MAX_COLS_ELEMENTS // max(per_image, 1)))


def _buffer(flat, rows, cols):
    """A (rows, cols) view of the front of a flat device buffer."""
    return flat[: rows * cols].reshape(rows, cols)


def im2col(x, k, stride, padding, n0=0, count=None, out=None):
    """Columns of images ``n0 .. n0+count`` of device array x, shape (C*k*k, count*OH*OW)."""
    n, c, h, w = x.shape
    count = n - n0 if count is None else count
    oh, ow = out_sizes((h, w), k, stride, padding)
    cols = empty((c * k * k, count * oh * ow)) if out is None else out
    launch(_im2col_kernel, cols.size, x, n0, k, stride, padding, oh, ow, cols)
    return cols


def col2im(cols, dx, k, stride, padding, n0=0, count=None):
    """Write the col2im of `cols` into images ``n0 .. n0+count`` of device array dx."""
    n, c, h, w = dx.shape
    count = n - n0 if count is None else count
    oh, ow = out_sizes((h, w), k, stride, padding)
    launch(_col2im_kernel, count * c * h * w, cols, n0, count, k, stride, padding, oh, ow, dx)
    return dx


def unfolded_conv(unfold, x, w, b, k, stride, padding):
    """Forward convolution of device arrays x (N, C, *size) and w (F, C, *kernel) by
    ``unfold`` (:func:`im2col`, or :func:`.conv3d.vol2col`) and GEMM, chunk by chunk of
    the batch; `k`, `stride`, `padding` are what `unfold` takes. Returns y (N, F, *out)
    on the device."""
    n, f = x.shape[0], w.shape[0]
    out = out_sizes(x.shape[2:], k, stride, padding)
    plane, rows = math.prod(out), math.prod(w.shape[1:])
    y = empty((n, f, *out))
    if y.size == 0:
        return y
    y3 = y.reshape(n, f, plane)
    w2 = w.reshape(f, rows)
    nb = _chunk(n, rows * plane)
    cols_buf = empty(rows * nb * plane)
    y2_buf = empty(f * nb * plane)
    bias_mode = _gemm.NO_BIAS if b is None else _gemm.BIAS_PER_ROW
    for n0 in range(0, n, nb):
        count = min(nb, n - n0)
        cols = unfold(x, k, stride, padding, n0, count, _buffer(cols_buf, rows, count * plane))
        y2 = _buffer(y2_buf, f, count * plane)
        _gemm.gemm(w2, cols, out=y2, bias=b, bias_mode=bias_mode)
        launch(_rows_to_nchw, y2.size, y2, n0, y3)
    return y


def unfolded_conv_backward(unfold, fold, x, w, dy, k, stride, padding, need_dx):
    """Gradients ``(dx, dw, db)`` of :func:`unfolded_conv`, all device arrays (dx None
    when not `need_dx`); `fold` (:func:`col2im`, or :func:`.conv3d.col2vol`) is the
    adjoint of `unfold`."""
    n, f = x.shape[0], w.shape[0]
    plane, rows = math.prod(dy.shape[2:]), math.prod(w.shape[1:])
    dx = empty(x.shape) if need_dx else None
    dw = empty(w.shape)
    dw2 = dw.reshape(f, rows)
    w2 = w.reshape(f, rows)
    dy3 = dy.reshape(n, f, plane)
    db = sum_outer_axes(dy3)
    nb = _chunk(n, rows * plane)
    cols_buf = empty(rows * nb * plane)
    dcols_buf = empty(rows * nb * plane) if need_dx else None
    dy2_buf = empty(f * nb * plane)
    for n0 in range(0, n, nb):
        count = min(nb, n - n0)
        ncols = count * plane
        dy2 = _buffer(dy2_buf, f, ncols)
        launch(_nchw_to_rows, dy2.size, dy3, n0, dy2)
        cols = unfold(x, k, stride, padding, n0, count, _buffer(cols_buf, rows, ncols))
        _gemm.gemm(dy2, cols, trans_b=True, out=dw2, accumulate=n0 > 0)
        if need_dx:
            dcols = _gemm.gemm(w2, dy2, trans_a=True, out=_buffer(dcols_buf, rows, ncols))
            fold(dcols, dx, k, stride, padding, n0, count)
    return dx, dw, db


def conv2d(x, w, b, stride, padding):
    """Forward convolution of device arrays; returns y (N, F, OH, OW) on the device."""
    return unfolded_conv(im2col, x, w, b, w.shape[2], stride, padding)


def conv2d_backward(x, w, dy, stride, padding, need_dx=True):
    """Gradients ``(dx, dw, db)`` of :func:`conv2d`, all device arrays (dx None when
    not `need_dx`)."""
    return unfolded_conv_backward(im2col, col2im, x, w, dy, w.shape[2], stride, padding,
                                  need_dx)
