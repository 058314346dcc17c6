"""3-D convolution as vol2col + GEMM, the batch in chunks.

The 3-D twin of :mod:`.conv`: per chunk of volumes the forward pass unfolds
the input into columns (``C*KD*KH*KW x nb*OD*OH*OW``), multiplies by the
weights viewed as ``F x C*KD*KH*KW`` (bias in the GEMM epilogue) and scatters
the product into NCDHW order; the backward pass reuses the buffers for
``dW += dY2 @ cols.T`` and ``dcols = W.T @ dY2``, folded back by col2vol.
This module holds the two kernels only: the chunked unfold + GEMM drivers,
layout changes and the bias gradient are :mod:`.conv`'s (one for both ranks);
col2vol is a gather (no atomics: deterministic). The 3-D max pooling is
:mod:`.pool`'s.

Kernel sizes, strides and paddings are (depth, height, width) triples.
"""
from __future__ import annotations

import math

from numba import cuda, float32

from fastseg._shapes import out_sizes
from fastseg.backends._cuda import conv as _conv
from fastseg.backends._cuda import empty, launch


@cuda.jit
def _vol2col_kernel(x, n0, kd, kh, kw, sd, sh, sw, pd, ph, pw, od, oh, ow, cols):
    # cols[((c*KD + a)*KH + b)*KW + e, ((n*OD + z)*OH + y)*OW + q]
    #   = x[n0 + n, c, z*sd + a - pd, y*sh + b - ph, q*sw + e - pw]
    ncols = cols.shape[1]
    volume = od * oh * ow
    depth = x.shape[2]
    height = x.shape[3]
    width = x.shape[4]
    for idx in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
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
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
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


def _geometry(k, stride, padding, out):
    return (*k, *stride, *padding, *out)


def vol2col(x, k, stride, padding, n0=0, count=None, out=None):
    """Columns of volumes ``n0 .. n0+count`` of device array x: (C*KD*KH*KW, count*OD*OH*OW)."""
    n, c = x.shape[:2]
    count = n - n0 if count is None else count
    o = out_sizes(x.shape[2:], k, stride, padding)
    rows = c * k[0] * k[1] * k[2]
    cols = empty((rows, count * o[0] * o[1] * o[2])) if out is None else out
    launch(_vol2col_kernel, cols.size, x, n0, *_geometry(k, stride, padding, o), cols)
    return cols


def col2vol(cols, dx, k, stride, padding, n0=0, count=None):
    """Write the col2vol of `cols` into volumes ``n0 .. n0+count`` of device array dx."""
    n = dx.shape[0]
    count = n - n0 if count is None else count
    o = out_sizes(dx.shape[2:], k, stride, padding)
    per_volume = math.prod(dx.shape[1:])
    launch(_col2vol_kernel, count * per_volume, cols, n0, count,
           *_geometry(k, stride, padding, o), dx)
    return dx


def conv3d(x, w, b, stride, padding):
    """Forward 3-D convolution of device arrays; returns y (N, F, OD, OH, OW) on the device."""
    return _conv.unfolded_conv(vol2col, x, w, b, tuple(w.shape[2:]), stride, padding)


def conv3d_backward(x, w, dy, stride, padding, need_dx=True):
    """Gradients ``(dx, dw, db)`` of :func:`conv3d`, all device arrays (dx None when
    not `need_dx`)."""
    return _conv.unfolded_conv_backward(vol2col, col2vol, x, w, dy, tuple(w.shape[2:]), stride,
                                        padding, need_dx)
