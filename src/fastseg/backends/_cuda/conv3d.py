"""3-D convolution as vol2col + GEMM and 3-D max pooling, the batch in chunks.

The 3-D twin of :mod:`.conv`: per chunk of volumes the forward pass unfolds
the input into columns (``C*KD*KH*KW x nb*OD*OH*OW``), multiplies by the
weights viewed as ``F x C*KD*KH*KW`` (bias in the GEMM epilogue) and scatters
the product into NCDHW order; the backward pass reuses the buffers for
``dW += dY2 @ cols.T`` and ``dcols = W.T @ dY2``, folded back by col2vol.
Layout changes, chunking, the bias gradient and the GEMM are :mod:`.conv`'s
and :mod:`.gemm`'s; col2vol is a gather (no atomics: deterministic).

Max pooling records PyTorch's flat ``(z*H + y)*W + x`` index of each maximum
(first maximum wins, NaN is the maximum, as ``np.argmax``); its backward is
:mod:`.pool`'s scatter over flat volumes.

Kernel sizes, strides and paddings are (depth, height, width) triples.
"""
from __future__ import annotations

import numpy as np
from numba import cuda, float32

from fastseg._shapes import out_size
from fastseg.backends._cuda import THREADS, blocks_for, empty, zeros
from fastseg.backends._cuda import conv as _conv
from fastseg.backends._cuda import gemm as _gemm
from fastseg.backends._cuda import pool as _pool


def _out(size, k, stride, padding):
    return tuple(out_size(size[a], k[a], stride[a], padding[a]) for a in range(3))


@cuda.jit
def _vol2col_kernel(x, n0, kd, kh, kw, sd, sh, sw, pd, ph, pw, od, oh, ow, cols):
    # cols[((c*KD + a)*KH + b)*KW + e, ((n*OD + z)*OH + y)*OW + q]
    #   = x[n0 + n, c, z*sd + a - pd, y*sh + b - ph, q*sw + e - pw]
    ncols = cols.shape[1]
    volume = od * oh * ow
    depth = x.shape[2]
    height = x.shape[3]
    width = x.shape[4]
    idx = cuda.grid(1)
    step = cuda.gridsize(1)
    while idx < cols.size:
        row = idx // ncols
        col = idx - row * ncols
        e = row % kw
        b = (row // kw) % kh
        a = (row // (kw * kh)) % kd
        c = row // (kw * kh * kd)
        n = col // volume
        p = col - n * volume
        z = (p // (oh * ow)) * sd + a - pd
        y = ((p // ow) % oh) * sh + b - ph
        q = (p % ow) * sw + e - pw
        value = float32(0.0)
        if 0 <= z < depth and 0 <= y < height and 0 <= q < width:
            value = x[n0 + n, c, z, y, q]
        cols[row, col] = value
        idx += step


@cuda.jit(device=True)
def _source(i, k, s, pad, o):
    # The output position that reads input position i through kernel offset k,
    # or -1 when none does.
    t = i + pad - k
    if t < 0 or t % s != 0 or t // s >= o:
        return -1
    return t // s


@cuda.jit
def _col2vol_kernel(cols, n0, count, kd, kh, kw, sd, sh, sw, pd, ph, pw, od, oh, ow, dx):
    # dx[n0 + n, c, z, y, q] = the sum of the column entries vol2col read from there.
    channels = dx.shape[1]
    depth = dx.shape[2]
    height = dx.shape[3]
    width = dx.shape[4]
    volume = od * oh * ow
    total = count * channels * depth * height * width
    idx = cuda.grid(1)
    step = cuda.gridsize(1)
    while idx < total:
        q = idx % width
        y = (idx // width) % height
        z = (idx // (width * height)) % depth
        c = (idx // (width * height * depth)) % channels
        n = idx // (width * height * depth * channels)
        acc = float32(0.0)
        for a in range(kd):
            oz = _source(z, a, sd, pd, od)
            if oz >= 0:
                for b in range(kh):
                    oy = _source(y, b, sh, ph, oh)
                    if oy >= 0:
                        for e in range(kw):
                            ox = _source(q, e, sw, pw, ow)
                            if ox >= 0:
                                acc += cols[((c * kd + a) * kh + b) * kw + e,
                                            n * volume + (oz * oh + oy) * ow + ox]
        dx[n0 + n, c, z, y, q] = acc
        idx += step


def _geometry(k, stride, padding, out):
    return (*k, *stride, *padding, *out)


def vol2col(x, k, stride, padding, n0=0, count=None, out=None):
    """Columns of volumes ``n0 .. n0+count`` of device array x: (C*KD*KH*KW, count*OD*OH*OW)."""
    n, c = x.shape[:2]
    count = n - n0 if count is None else count
    o = _out(x.shape[2:], k, stride, padding)
    rows = c * k[0] * k[1] * k[2]
    cols = empty((rows, count * o[0] * o[1] * o[2])) if out is None else out
    _conv._launch(_vol2col_kernel, cols.size, x, n0, *_geometry(k, stride, padding, o), cols)
    return cols


def col2vol(cols, dx, k, stride, padding, n0=0, count=None):
    """Write the col2vol of `cols` into volumes ``n0 .. n0+count`` of device array dx."""
    n = dx.shape[0]
    count = n - n0 if count is None else count
    o = _out(dx.shape[2:], k, stride, padding)
    per_volume = int(np.prod(dx.shape[1:]))
    _conv._launch(_col2vol_kernel, count * per_volume, cols, n0, count,
                  *_geometry(k, stride, padding, o), dx)
    return dx


def conv3d(x, w, b, stride, padding):
    """Forward 3-D convolution of device arrays; returns y (N, F, OD, OH, OW) on the device."""
    n = x.shape[0]
    f, c = w.shape[:2]
    k = tuple(w.shape[2:])
    o = _out(x.shape[2:], k, stride, padding)
    volume, rows = o[0] * o[1] * o[2], c * k[0] * k[1] * k[2]
    y = empty((n, f, *o))
    if y.size == 0:
        return y
    y3 = y.reshape(n, f, volume)
    w2 = w.reshape(f, rows)
    nb = _conv._chunk(n, rows * volume)
    cols_buf = empty(rows * nb * volume)
    y2_buf = empty(f * nb * volume)
    bias_mode = _gemm.NO_BIAS if b is None else _gemm.BIAS_PER_ROW
    for n0 in range(0, n, nb):
        count = min(nb, n - n0)
        cols = vol2col(x, k, stride, padding, n0, count,
                       _conv._buffer(cols_buf, rows, count * volume))
        y2 = _conv._buffer(y2_buf, f, count * volume)
        _gemm.gemm(w2, cols, out=y2, bias=b, bias_mode=bias_mode)
        _conv._launch(_conv._rows_to_nchw, y2.size, y2, n0, y3)
    return y


def conv3d_backward(x, w, dy, stride, padding, need_dx=True):
    """Gradients ``(dx, dw, db)`` of :func:`conv3d`, all device arrays (dx None when
    not `need_dx`)."""
    n = x.shape[0]
    f, c = w.shape[:2]
    k = tuple(w.shape[2:])
    volume, rows = int(np.prod(dy.shape[2:])), c * k[0] * k[1] * k[2]
    dx = empty(x.shape) if need_dx else None
    dw = empty(w.shape)
    dw2 = dw.reshape(f, rows)
    w2 = w.reshape(f, rows)
    dy3 = dy.reshape(n, f, volume)
    db = _conv.sum_outer_axes(dy3)
    nb = _conv._chunk(n, rows * volume)
    cols_buf = empty(rows * nb * volume)
    dcols_buf = empty(rows * nb * volume) if need_dx else None
    dy2_buf = empty(f * nb * volume)
    for n0 in range(0, n, nb):
        count = min(nb, n - n0)
        ncols = count * volume
        dy2 = _conv._buffer(dy2_buf, f, ncols)
        _conv._launch(_conv._nchw_to_rows, dy2.size, dy3, n0, dy2)
        cols = vol2col(x, k, stride, padding, n0, count, _conv._buffer(cols_buf, rows, ncols))
        _gemm.gemm(dy2, cols, trans_b=True, out=dw2, accumulate=n0 > 0)
        if need_dx:
            dcols = _gemm.gemm(w2, dy2, trans_a=True, out=_conv._buffer(dcols_buf, rows, ncols))
            col2vol(dcols, dx, k, stride, padding, n0, count)
    return dx, dw, db


@cuda.jit
def _max_pool3d(x, kd, kh, kw, sd, sh, sw, y, indices):
    # x (P, D, H, W) volumes; y and indices (P, OD, OH, OW)
    od = y.shape[1]
    oh = y.shape[2]
    ow = y.shape[3]
    height = x.shape[2]
    width = x.shape[3]
    i = cuda.grid(1)
    while i < y.size:
        q = i % ow
        r = (i // ow) % oh
        z = (i // (ow * oh)) % od
        v = i // (ow * oh * od)
        z0 = z * sd
        y0 = r * sh
        x0 = q * sw
        best = x[v, z0, y0, x0]
        where = (z0 * height + y0) * width + x0
        for a in range(kd):
            for b in range(kh):
                for e in range(kw):
                    val = x[v, z0 + a, y0 + b, x0 + e]
                    # strictly greater: the first maximum wins; once a NaN is
                    # found it stays (NaN compares false with everything).
                    if best == best and (val > best or val != val):
                        best = val
                        where = ((z0 + a) * height + y0 + b) * width + x0 + e
        y[v, z, r, q] = best
        indices[v, z, r, q] = where
        i += cuda.gridsize(1)


def max_pool3d(x, kernel_size, stride):
    """Max pooling of device array x (N, C, D, H, W); returns device arrays (y, indices)."""
    n, c = x.shape[:2]
    o = _out(x.shape[2:], kernel_size, stride, (0, 0, 0))
    y = empty((n, c, *o))
    indices = empty((n, c, *o), np.int64)
    if y.size:
        _max_pool3d[blocks_for(y.size), THREADS](x.reshape(n * c, *x.shape[2:]), *kernel_size,
                                                 *stride, y.reshape(n * c, *o),
                                                 indices.reshape(n * c, *o))
    return y, indices


def max_pool3d_backward(dy, indices, x_shape):
    """Route device array dy to the positions `indices` of an x of `x_shape`
    (:mod:`.pool`'s scatter, each volume one flat plane)."""
    dx = zeros(x_shape)
    if dy.size:
        _pool._max_pool_backward[blocks_for(dy.size), THREADS](
            dy.reshape(dy.size), indices.reshape(indices.size), int(np.prod(dy.shape[2:])),
            int(np.prod(x_shape[2:])), dx.reshape(dx.size))
    return dx
