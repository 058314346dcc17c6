"""Small device-array kernels that keep a training run on the GPU.

The layers and optimizers need a few array operations besides the heavy ops:
accumulating gradients, element-wise products (dropout), joining and
splitting feature columns (:class:`fastseg.nn.Parallel`) and a batched
transpose (:class:`fastseg.nn.PixelLogits`). Each is one grid-stride launch
on C-contiguous device arrays.
"""
from __future__ import annotations

from numba import cuda, float32

from fastseg.backends._cuda import THREADS, blocks_for, empty


@cuda.jit
def _add(dst, src):
    for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
        dst[i] += src[i]


@cuda.jit
def _mul(a, b, out):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        out[i] = a[i] * b[i]


@cuda.jit
def _scale(a, factor, out):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        out[i] = a[i] * factor


@cuda.jit
def _copy_columns(src, dst, offset, to_dst):
    # to_dst: dst[:, offset:offset+cols] = src; else src = dst[:, offset:offset+cols]
    cols = src.shape[1]
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        r = i // cols
        c = i - r * cols
        if to_dst:
            dst[r, offset + c] = src[r, c]
        else:
            src[r, c] = dst[r, offset + c]


@cuda.jit
def _batch_transpose(x, y):
    # x (B, R, C) -> y (B, C, R)
    rows = x.shape[1]
    cols = x.shape[2]
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        r = i % rows
        c = (i // rows) % cols
        b = i // (rows * cols)
        y[b, c, r] = x[b, r, c]


@cuda.jit
def _dropout(x, keep, scale, y, mask):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        m = scale if keep[i] != 0 else float32(0.0)
        mask[i] = m
        y[i] = x[i] * m


def _flat(a):
    return a.reshape(a.size)


def add_(dst, src):
    """``dst += src`` for device arrays of one shape."""
    if dst.size:
        _add[blocks_for(dst.size), THREADS](_flat(dst), _flat(src))


def mul(a, b):
    """``a * b``, element-wise (b a device array of a's shape) or by a scalar b."""
    out = empty(a.shape, a.dtype)
    if a.size:
        launch = blocks_for(a.size), THREADS
        if hasattr(b, "shape"):
            _mul[launch](_flat(a), _flat(b), _flat(out))
        else:
            _scale[launch](_flat(a), a.dtype.type(b), _flat(out))
    return out


def hstack(arrays):
    """Join 2-D device arrays of one row count along their columns."""
    n = arrays[0].shape[0]
    out = empty((n, sum(a.shape[1] for a in arrays)), arrays[0].dtype)
    offset = 0
    for a in arrays:
        if a.size:
            _copy_columns[blocks_for(a.size), THREADS](a, out, offset, True)
        offset += a.shape[1]
    return out


def hsplit(a, widths):
    """The column blocks of `widths` of the 2-D device array `a`, each contiguous."""
    parts, offset = [], 0
    for width in widths:
        part = empty((a.shape[0], width), a.dtype)
        if part.size:
            _copy_columns[blocks_for(part.size), THREADS](part, a, offset, False)
        parts.append(part)
        offset += width
    return parts


def batch_transpose(x):
    """(B, R, C) -> (B, C, R), contiguous."""
    b, r, c = x.shape
    y = empty((b, c, r), x.dtype)
    if y.size:
        _batch_transpose[blocks_for(y.size), THREADS](x, y)
    return y


def dropout(x, keep, scale):
    """``(x * mask, mask)`` with ``mask = keep * scale``; `keep` a uint8 device array."""
    y = empty(x.shape, x.dtype)
    mask = empty(x.shape, x.dtype)
    if x.size:
        _dropout[blocks_for(x.size), THREADS](_flat(x), _flat(keep), x.dtype.type(scale),
                                              _flat(y), _flat(mask))
    return y, mask
