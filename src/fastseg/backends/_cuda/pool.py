"""Max pooling of device arrays, 2-D and 3-D.

The forward records PyTorch's flat index of each maximum inside its own plane
(``h*W + w``) or volume (``(d*H + h)*W + w``); the first maximum of a window
wins ties and a NaN counts as the maximum, exactly as ``np.argmax`` in the
reference. Forward and backward are each one kernel for both ranks (a plane is
a volume of depth 1; the indices are flat); the backward scatters with atomics,
since overlapping windows (stride < k) may route several gradients to one pixel.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from fastseg._shapes import out_sizes, per_axis
from fastseg.backends._cuda import THREADS, blocks_for, empty, launch, zeros


@cuda.jit
def _max_pool(x, kd, kh, kw, sd, sh, sw, y, indices):
    # x (P, D, H, W) volumes; y and indices (P, OD, OH, OW)
    od = y.shape[1]
    oh = y.shape[2]
    ow = y.shape[3]
    height = x.shape[2]
    width = x.shape[3]
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
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


def max_pool(x, kernel_size, stride):
    """Max pooling of device array x (N, C, H, W) or (N, C, D, H, W) by a window and
    stride each an int or one per spatial axis; returns device arrays (y, indices)."""
    n, c, *size = x.shape
    out = out_sizes(size, kernel_size, stride)
    y = empty((n, c, *out))
    indices = empty((n, c, *out), np.int64)
    # A plane is a volume of depth 1, so one kernel serves both ranks: its index
    # (d*H + h)*W + w is then h*W + w, PyTorch's 2-D one.
    depth = (1,) * (3 - len(size))
    window = depth + per_axis(kernel_size, len(size))
    steps = depth + per_axis(stride, len(size))
    launch(_max_pool, y.size, x.reshape(n * c, *depth, *size), *window, *steps,
           y.reshape(n * c, *depth, *out), indices.reshape(n * c, *depth, *out))
    return y, indices


@cuda.jit
def _max_pool_backward(dy, indices, per_plane, plane_size, dx):
    # dx is flat; indices outside [0, plane_size) are skipped, never written.
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        where = indices[i]
        if 0 <= where < plane_size:
            cuda.atomic.add(dx, (i // per_plane) * plane_size + where, dy[i])


@cuda.jit
def _count_outside(indices, limit, count):
    for i in range(cuda.grid(1), indices.size, cuda.gridsize(1)):
        if indices[i] < 0 or indices[i] >= limit:
            cuda.atomic.add(count, 0, 1)


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
