"""Tiled, register-blocked SGEMM: ``C (+)= op(A) @ op(B) (+ bias)``.

Each block computes a ``BM x BN`` tile of C. Per step along K it stages a
``BK``-deep slice of op(A) and op(B) in shared memory, stored K-major
(``As[k, m]``, ``Bs[k, n]``) so that the inner loop reads rows of both; each
thread then keeps a ``TM x TN`` block of C in registers and does ``TM*TN``
multiply-adds for every ``TM + TN`` shared-memory loads (the register
blocking that makes the kernel compute-bound instead of shared-memory-bound).

A thread owns rows ``tr + i*(BM/TM)`` and columns ``tc + j*(BN/TN)`` of the
tile, strided rather than contiguous: neighbouring threads then read
neighbouring shared-memory words (no bank conflicts) and write neighbouring
columns of C (coalesced stores).

The transposes are compile-time constants of a kernel factory, so each of the
four cases gets its own specialised kernel whose global loads run along the
contiguous axis of its operand. Edges are handled by zero-filling the shared
tiles and masking the stores, so any M, N, K (including K = 0) works.

When the tile grid is too small to fill the GPU but K is long (the weight
gradients: M, N small, K = batch * pixels), K is split over ``gridDim.z``
blocks that add their partial tiles into C with atomics.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from numba import cuda, float32

from fastseg.backends._cuda import SIMULATOR, empty, fill, sm_count, vector_or_dummy, zeros

# bias_mode values of the epilogue.
NO_BIAS, BIAS_PER_COLUMN, BIAS_PER_ROW = 0, 1, 2

# The launch grid's y dimension is limited to 65535 blocks; taller problems
# run as several launches over slabs of rows.
_MAX_GRID_Y = 65535


class Tiles(NamedTuple):
    """Block tile ``bm x bn``, K step ``bk``, and the ``tm x tn`` registers per thread."""

    bm: int
    bn: int
    bk: int
    tm: int
    tn: int

    @property
    def threads(self) -> int:
        return (self.bm // self.tm) * (self.bn // self.tn)


#: 256 threads, 8x8 results each: the fast configuration for large products.
LARGE = Tiles(128, 128, 8, 8, 8)
#: 256 threads, 4x4 each: four times as many blocks, for products that would
#: leave most of the GPU idle with 128x128 tiles.
MEDIUM = Tiles(64, 64, 16, 4, 4)
#: 16 threads: for the simulator, where every CUDA thread is a Python thread.
SMALL = Tiles(16, 16, 4, 4, 4)


def choose_tiles(m: int, n: int) -> Tiles:
    """The tile configuration for an ``m x n`` product."""
    if SIMULATOR:
        return SMALL
    if math.ceil(m / LARGE.bm) * math.ceil(n / LARGE.bn) >= 2 * sm_count():
        return LARGE
    return MEDIUM


def choose_splits(m: int, n: int, k: int, tiles: Tiles) -> int:
    """How many blocks share the K loop of each tile (1 = no split-K)."""
    if SIMULATOR:
        return 1
    blocks = math.ceil(m / tiles.bm) * math.ceil(n / tiles.bn)
    target = 2 * sm_count()
    if blocks >= target:
        return 1
    # Keep at least 256 steps of K per split so the atomics stay negligible.
    return max(1, min(math.ceil(target / blocks), k // 256))


@functools.cache
def _tile_loader(k_major: bool, width: int, bk: int, threads: int):
    """A device function that stages a ``bk x width`` slice of op(X) in shared memory,
    K-major: ``tile[kk, xx] = op(X)[k0 + kk, x0 + xx]``, zero beyond ``x_end`` and
    ``k_end``. X is stored (K, width axis) when `k_major` (A transposed, or B not),
    else (width axis, K); either way consecutive threads walk X's contiguous axis, so
    the global loads coalesce. The block's `threads` each load ``width*bk/threads``."""
    loads = width * bk // threads

    @cuda.jit(device=True)
    def load_tile(x, tile, x0, x_end, k0, k_end, tid):
        for load in range(loads):
            e = tid + load * threads
            if k_major:  # X is stored (K, width axis): consecutive threads walk the width
                kk = e // width
                xx = e % width
            else:  # X is stored (width axis, K): consecutive threads walk K
                xx = e // bk
                kk = e % bk
            gx = x0 + xx
            gk = k0 + kk
            value = float32(0.0)
            if gx < x_end and gk < k_end:
                value = x[gk, gx] if k_major else x[gx, gk]
            tile[kk, xx] = value

    return load_tile


@functools.cache
def _kernel(trans_a: bool, trans_b: bool, tiles: Tiles):
    bm, bn, bk, tm, tn = tiles
    threads = tiles.threads
    rows_step = bm // tm  # distance between the rows a thread owns
    cols_step = bn // tn  # distance between the columns a thread owns
    if (bm * bk) % threads or (bn * bk) % threads:
        raise ValueError(f"tiles {tiles}: the shared tiles must split evenly over the threads")
    # A is (K, M) when transposed, B is (K, N) when not: K-major in memory.
    load_a = _tile_loader(trans_a, bm, bk, threads)
    load_b = _tile_loader(not trans_b, bn, bk, threads)
    # Padding the shared rows spreads the K-major stores of a row-major
    # operand over more banks. Array shapes must be compile-time constants,
    # so they are computed here, not inside the kernel.
    pad = 4
    a_shape = (bk, bm + pad)
    b_shape = (bk, bn + pad)
    acc_size = tm * tn

    @cuda.jit
    def gemm_kernel(a, b, c, m, n, k, k_split, row_base, accumulate, bias, bias_mode):
        # One declaration per line: the simulator aliases shared arrays
        # declared on the same source line.
        a_tile = cuda.shared.array(a_shape, float32)
        b_tile = cuda.shared.array(b_shape, float32)
        acc = cuda.local.array(acc_size, float32)
        a_reg = cuda.local.array(tm, float32)
        b_reg = cuda.local.array(tn, float32)

        tid = cuda.threadIdx.x
        tr = tid // cols_step
        tc = tid % cols_step
        row0 = row_base + cuda.blockIdx.y * bm
        col0 = cuda.blockIdx.x * bn
        k_begin = cuda.blockIdx.z * k_split
        k_end = min(k, k_begin + k_split)

        for i in range(acc_size):
            acc[i] = float32(0.0)

        for k0 in range(k_begin, k_end, bk):
            load_a(a, a_tile, row0, m, k0, k_end, tid)
            load_b(b, b_tile, col0, n, k0, k_end, tid)
            cuda.syncthreads()

            for kk in range(bk):
                for i in range(tm):
                    a_reg[i] = a_tile[kk, tr + i * rows_step]
                for j in range(tn):
                    b_reg[j] = b_tile[kk, tc + j * cols_step]
                for i in range(tm):
                    for j in range(tn):
                        acc[i * tn + j] += a_reg[i] * b_reg[j]
            cuda.syncthreads()

        # The epilogue is three plain loop nests rather than one with branches
        # inside: small bodies let the compiler unroll them, and only fully
        # unrolled loops let the accumulators stay in registers.
        if cuda.blockIdx.z == 0 and bias_mode != NO_BIAS:  # the first split adds the bias
            for i in range(tm):
                for j in range(tn):
                    if bias_mode == BIAS_PER_ROW:
                        acc[i * tn + j] += bias[min(row0 + tr + i * rows_step, m - 1)]
                    else:
                        acc[i * tn + j] += bias[min(col0 + tc + j * cols_step, n - 1)]
        if cuda.gridDim.z > 1:  # split-K: C was zeroed, or holds what we accumulate onto
            for i in range(tm):
                for j in range(tn):
                    row = row0 + tr + i * rows_step
                    col = col0 + tc + j * cols_step
                    if row < m and col < n:
                        cuda.atomic.add(c, (row, col), acc[i * tn + j])
        elif accumulate:
            for i in range(tm):
                for j in range(tn):
                    row = row0 + tr + i * rows_step
                    col = col0 + tc + j * cols_step
                    if row < m and col < n:
                        c[row, col] += acc[i * tn + j]
        else:
            for i in range(tm):
                for j in range(tn):
                    row = row0 + tr + i * rows_step
                    col = col0 + tc + j * cols_step
                    if row < m and col < n:
                        c[row, col] = acc[i * tn + j]

    return gemm_kernel


def gemm(a, b, trans_a=False, trans_b=False, out=None, accumulate=False, bias=None,
         bias_mode=NO_BIAS, tiles=None, splits=None):
    """``op(a) @ op(b)`` on the GPU; all arrays are C-contiguous float32 device arrays.

    Parameters
    ----------
    a, b : device arrays, 2-D
    trans_a, trans_b : bool
        Read `a` / `b` transposed (no copy is made).
    out : device array (M, N), optional
        Where to write; allocated when None.
    accumulate : bool
        Add the product to `out` instead of overwriting it.
    bias : device array, optional
        Added per column (``bias_mode=BIAS_PER_COLUMN``, length N) or per row
        (``BIAS_PER_ROW``, length M) in the epilogue.
    tiles : Tiles, optional
        Force a tile configuration (tests use this); chosen by shape otherwise.
    splits : int, optional
        Force the number of K splits; chosen by shape otherwise.

    Returns
    -------
    device array (M, N)
    """
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    n = b.shape[0] if trans_b else b.shape[1]
    if out is None:
        out = zeros((m, n)) if accumulate else empty((m, n), np.float32)
    if m == 0 or n == 0:
        return out
    tiles = tiles or choose_tiles(m, n)
    splits = max(1, min(splits or choose_splits(m, n, k, tiles), max(k, 1)))
    if splits > 1 and not accumulate:
        fill(out, 0.0)  # the splits add their partial tiles into C
    k_split = math.ceil(k / splits / tiles.bk) * tiles.bk if k else 0
    splits = math.ceil(k / k_split) if k else 1
    kernel = _kernel(bool(trans_a), bool(trans_b), tiles)
    bias = vector_or_dummy(bias)
    slab = _MAX_GRID_Y * tiles.bm
    for row_base in range(0, m, slab):
        rows = min(slab, m - row_base)
        grid = (math.ceil(n / tiles.bn), math.ceil(rows / tiles.bm), splits)
        kernel[grid, tiles.threads](a, b, out, m, n, k, k_split, row_base, bool(accumulate),
                                    bias, int(bias_mode))
    return out
