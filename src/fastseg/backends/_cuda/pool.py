"""Max pooling of device arrays, 2-D and 3-D.

The forward records PyTorch's flat index of each maximum inside its own plane
(``h*W + w``) or volume (``(d*H + h)*W + w``); the first maximum of a window
wins ties and a NaN counts as the maximum, exactly as ``np.argmax`` in the
reference. The backward (one for both ranks: the indices are flat) scatters
with atomics, since overlapping windows (stride < k) may route several
gradients to one pixel.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from fastseg._shapes import out_sizes
from fastseg.backends._cuda import THREADS, blocks_for, empty, launch, zeros


@cuda.jit
def _max_pool(x, k, stride, y, indices):
    # x (P, H, W) planes; y and indices (P, OH, OW)
    oh = y.shape[1]
    ow = y.shape[2]
    width = x.shape[2]
    i = cuda.grid(1)
    while i < y.size:
        c = i % ow
        r = (i // ow) % oh
        plane = i // (ow * oh)
        h0 = r * stride
        w0 = c * stride
        best = x[plane, h0, w0]
        where = h0 * width + w0
        for ki in range(k):
            for kj in range(k):
                v = x[plane, h0 + ki, w0 + kj]
                # strictly greater: the first maximum wins; once a NaN is
                # found it stays (NaN compares false with everything).
                if best == best and (v > best or v != v):
                    best = v
                    where = (h0 + ki) * width + w0 + kj
        y[plane, r, c] = best
        indices[plane, r, c] = where
        i += cuda.gridsize(1)


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


def _pooled(kernel, x, out, *window):
    """Run a max-pooling `kernel` over the N*C planes (volumes) of device array x;
    returns device arrays (y, indices) of shape (N, C, *out)."""
    n, c = x.shape[:2]
    y = empty((n, c, *out))
    indices = empty((n, c, *out), np.int64)
    launch(kernel, y.size, x.reshape(n * c, *x.shape[2:]), *window, y.reshape(n * c, *out),
           indices.reshape(n * c, *out))
    return y, indices


def max_pool2d(x, k, stride):
    """Max pooling of device array x (N, C, H, W); returns device arrays (y, indices)."""
    return _pooled(_max_pool, x, out_sizes(x.shape[2:], k, stride), k, stride)


def max_pool3d(x, kernel_size, stride):
    """Max pooling of device array x (N, C, D, H, W) by (depth, height, width) triples;
    returns device arrays (y, indices)."""
    return _pooled(_max_pool3d, x, out_sizes(x.shape[2:], kernel_size, stride), *kernel_size,
                   *stride)


@cuda.jit
def _max_pool_backward(dy, indices, per_plane, plane_size, dx):
    # dx is flat; indices outside [0, plane_size) are skipped, never written.
    i = cuda.grid(1)
    while i < dy.size:
        where = indices[i]
        if 0 <= where < plane_size:
            cuda.atomic.add(dx, (i // per_plane) * plane_size + where, dy[i])
        i += cuda.gridsize(1)


@cuda.jit
def _count_outside(indices, limit, count):
    i = cuda.grid(1)
    while i < indices.size:
        if indices[i] < 0 or indices[i] >= limit:
            cuda.atomic.add(count, 0, 1)
        i += cuda.gridsize(1)


def indices_outside(indices, limit: int) -> int:
    """How many of the device array `indices` lie outside ``[0, limit)``."""
    count = zeros(1, np.int64)
    if indices.size:
        _count_outside[blocks_for(indices.size), THREADS](indices.reshape(indices.size), limit,
                                                          count)
    return int(count.copy_to_host()[0])


def max_pool_backward(dy, indices, x_shape):
    """Route device array dy (N, C, *out) to the positions `indices` (flat inside each
    plane or volume) of an x of `x_shape`: the backward of both max poolings."""
    dx = zeros(x_shape)
    launch(_max_pool_backward, dy.size, dy.reshape(dy.size), indices.reshape(indices.size),
           math.prod(dy.shape[2:]), math.prod(x_shape[2:]), dx.reshape(dx.size))
    return dx
