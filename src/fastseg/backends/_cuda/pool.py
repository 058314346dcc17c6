"""Max pooling of device arrays.

The forward records PyTorch's flat ``h*W + w`` index of each maximum; the
first maximum of a window wins ties and a NaN counts as the maximum, exactly
as ``np.argmax`` in the reference. The backward scatters with atomics, since
overlapping windows (stride < k) may route several gradients to one pixel.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from fastseg._shapes import out_size
from fastseg.backends._cuda import THREADS, blocks_for, empty, zeros


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


def max_pool2d(x, k, stride):
    """Max pooling of device array x (N, C, H, W); returns device arrays (y, indices)."""
    n, c, h, w = x.shape
    oh, ow = out_size(h, k, stride), out_size(w, k, stride)
    y = empty((n, c, oh, ow))
    indices = empty((n, c, oh, ow), np.int64)
    if y.size:
        _max_pool[blocks_for(y.size), THREADS](x.reshape(n * c, h, w), k, stride,
                                               y.reshape(n * c, oh, ow),
                                               indices.reshape(n * c, oh, ow))
    return y, indices


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


def max_pool2d_backward(dy, indices, x_shape):
    """Route device array dy to the positions `indices` of an x of `x_shape`."""
    n, c, h, w = x_shape
    dx = zeros(x_shape)
    if dy.size:
        _max_pool_backward[blocks_for(dy.size), THREADS](
            dy.reshape(dy.size), indices.reshape(indices.size), dy.shape[2] * dy.shape[3],
            h * w, dx.reshape(dx.size))
    return dx
