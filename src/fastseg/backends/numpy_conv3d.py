"""3-D convolution and max pooling in plain NumPy: the reference of the ``"numpy"`` backend.

Written to be obviously right, as :mod:`fastseg.backends.numpy_backend` (which
re-exports these functions into its operation table): a volume is unfolded
into columns (:func:`vol2col`) and multiplied, the gradients are the
transposed products and the adjoint fold (:func:`col2vol`). Every function
keeps the dtype it is given, so the tests run it in float64 for finite
differences. Kernel sizes, strides and paddings are (depth, height, width)
triples, as :mod:`fastseg.ops` passes them.
"""
from __future__ import annotations

import itertools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fastseg._shapes import out_size

__all__ = ["vol2col", "col2vol", "conv3d", "conv3d_backward", "max_pool3d",
           "max_pool3d_backward"]


def _out(shape, k, stride, padding):
    return tuple(out_size(shape[a], k[a], stride[a], padding[a]) for a in range(3))


def _window(k, stride, out):
    """The slices of the padded volume that kernel offset k reads, one per axis."""
    return tuple(slice(k[a], k[a] + stride[a] * out[a], stride[a]) for a in range(3))


def vol2col(x, kernel_size, stride, padding):
    """(N, C, D, H, W) -> columns (C*KD*KH*KW, N*OD*OH*OW).

    Row ``((c*KD + a)*KH + b)*KW + e`` and column ``((n*OD + z)*OH + y)*OW + x`` hold
    ``x[n, c, z*sd + a - pd, y*sh + b - ph, x*sw + e - pw]``, zero in the padding.
    """
    n, c = x.shape[:2]
    out = _out(x.shape[2:], kernel_size, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in padding))
    cols = np.empty((c, *kernel_size, n, *out), dtype=x.dtype)
    for offset in itertools.product(*(range(k) for k in kernel_size)):
        cols[(slice(None), *offset)] = xp[(slice(None), slice(None),
                                           *_window(offset, stride, out))].swapaxes(0, 1)
    return cols.reshape(c * int(np.prod(kernel_size)), n * int(np.prod(out)))


def col2vol(cols, x_shape, kernel_size, stride, padding):
    """The adjoint of :func:`vol2col`: sums the columns back into an (N, C, D, H, W) array."""
    n, c = x_shape[:2]
    size = x_shape[2:]
    out = _out(size, kernel_size, stride, padding)
    cols = cols.reshape(c, *kernel_size, n, *out)
    xp = np.zeros((n, c) + tuple(s + 2 * p for s, p in zip(size, padding, strict=True)),
                  dtype=cols.dtype)
    for offset in itertools.product(*(range(k) for k in kernel_size)):
        xp[(slice(None), slice(None), *_window(offset, stride, out))] += \
            cols[(slice(None), *offset)].swapaxes(0, 1)
    inner = tuple(slice(p, p + s) for s, p in zip(size, padding, strict=True))
    return np.ascontiguousarray(xp[(slice(None), slice(None), *inner)])


def conv3d(x, w, b, stride, padding):
    f = w.shape[0]
    n = x.shape[0]
    out = _out(x.shape[2:], w.shape[2:], stride, padding)
    cols = vol2col(x, w.shape[2:], stride, padding)
    y = (w.reshape(f, -1) @ cols).reshape(f, n, *out).swapaxes(0, 1)
    if b is not None:
        y = y + b.reshape(1, f, 1, 1, 1)
    return np.ascontiguousarray(y)


def conv3d_backward(x, w, dy, stride, padding, need_dx=True):
    f = w.shape[0]
    cols = vol2col(x, w.shape[2:], stride, padding)
    dy2 = dy.swapaxes(0, 1).reshape(f, -1)
    dw = (dy2 @ cols.T).reshape(w.shape)
    db = dy.sum(axis=(0, 2, 3, 4))
    dx = (col2vol(w.reshape(f, -1).T @ dy2, x.shape, w.shape[2:], stride, padding)
          if need_dx else None)
    return dx, dw, db


def max_pool3d(x, kernel_size, stride):
    """Max pooling without padding (floor mode); indices flat within each (D, H, W) volume."""
    n, c, d, h, w = x.shape
    kd, kh, kw = kernel_size
    out = _out(x.shape[2:], kernel_size, stride, (0, 0, 0))
    windows = sliding_window_view(x, kernel_size, axis=(2, 3, 4))
    windows = windows[:, :, ::stride[0], ::stride[1], ::stride[2]][:, :, :out[0], :out[1], :out[2]]
    flat = windows.reshape(n, c, *out, kd * kh * kw)
    # np.argmax picks the first maximum and treats NaN as the maximum, as
    # PyTorch's max pooling does.
    arg = np.argmax(flat, axis=-1)
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    grid = np.meshgrid(*(np.arange(o) * s for o, s in zip(out, stride, strict=True)),
                       indexing="ij")
    z = grid[0] + arg // (kh * kw)
    r = grid[1] + arg // kw % kh
    col = grid[2] + arg % kw
    return np.ascontiguousarray(y), ((z * h + r) * w + col).astype(np.int64)


def max_pool3d_backward(dy, indices, x_shape):
    n, c = x_shape[:2]
    volume = int(np.prod(x_shape[2:]))
    dx = np.zeros((n * c, volume), dtype=dy.dtype)
    per_volume = int(np.prod(dy.shape[2:]))
    volumes = np.repeat(np.arange(n * c), per_volume)
    np.add.at(dx, (volumes, indices.reshape(-1)), dy.reshape(-1))
    return dx.reshape(x_shape)
