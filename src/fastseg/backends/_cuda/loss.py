"""Softmax, and fused, numerically stable softmax cross-entropy with PyTorch's class weights.

Three small launches: one thread per row computes the row's softmax (shifted
by its maximum, so no exp overflows), its weighted loss, its weight and the
unscaled gradient ``softmax - onehot``; one block sums the losses and the
weights in float64; a last pass scales each gradient row by ``w[y_i] / sum w``.
Only the two sums come back to the host, for the Python float loss.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64

from fastseg.backends._cuda import THREADS, blocks_for, empty, vector_or_dummy, zeros
from fastseg.backends._cuda.reduce import block_sum


@cuda.jit(device=True)
def _normaliser(x, i):
    """(max, log of the sum of exp(x - max)) over row i: its softmax is
    exp(x - max - log_total), and no exp overflows."""
    classes = x.shape[1]
    top = x[i, 0]
    for j in range(1, classes):
        top = max(top, x[i, j])
    total = float32(0.0)
    for j in range(classes):
        total += math.exp(x[i, j] - top)
    return top, math.log(total)


@cuda.jit
def _softmax_rows(x, y):
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        top, log_total = _normaliser(x, i)
        for j in range(x.shape[1]):
            y[i, j] = math.exp(x[i, j] - top - log_total)


def softmax(x):
    """Row softmax of the device array x (N, K), as a device array."""
    y = empty(x.shape)
    if x.shape[0] and x.shape[1]:
        _softmax_rows[blocks_for(x.shape[0]), THREADS](x, y)
    return y


@cuda.jit
def _rows(logits, labels, weights, weighted, row_loss, row_weight, dlogits):
    classes = logits.shape[1]
    for i in range(cuda.grid(1), logits.shape[0], cuda.gridsize(1)):
        top, log_total = _normaliser(logits, i)
        label = labels[i]
        w = weights[label] if weighted else float32(1.0)
        row_loss[i] = -float64(w) * float64(logits[i, label] - top - log_total)
        row_weight[i] = w
        for j in range(classes):
            d = math.exp(logits[i, j] - top - log_total)
            dlogits[i, j] = d - float32(1.0) if j == label else d


@cuda.jit
def _sum_two(a, b, out):
    # out[0] = a.sum(), out[1] = b.sum(), in float64, by one block.
    # One shared declaration per line: the simulator aliases same-line ones.
    part_a = cuda.shared.array(THREADS, float64)
    part_b = cuda.shared.array(THREADS, float64)
    tid = cuda.threadIdx.x
    acc_a = float64(0.0)
    acc_b = float64(0.0)
    for i in range(tid, a.size, THREADS):
        acc_a += a[i]
        acc_b += b[i]
    part_a[tid] = acc_a
    part_b[tid] = acc_b
    block_sum(part_a, tid)
    block_sum(part_b, tid)
    if tid == 0:
        out[0] = part_a[0]
        out[1] = part_b[0]


@cuda.jit
def _scale_rows(dlogits, row_weight, sums):
    classes = dlogits.shape[1]
    for i in range(cuda.grid(1), dlogits.size, cuda.gridsize(1)):
        row = i // classes
        dlogits[row, i - row * classes] *= float32(row_weight[row] / sums[1])


def softmax_cross_entropy(logits, labels, class_weights):
    """Mean loss (a Python float) and dlogits (device array) of device arrays.

    `labels` is an int64 device array already checked to lie in range.
    """
    n, k = logits.shape
    dlogits = empty((n, k))
    if n == 0:
        return float("nan"), dlogits
    row_loss = empty(n, np.float64)
    row_weight = empty(n, np.float64)
    sums = zeros(2, np.float64)
    blocks = blocks_for(n)
    _rows[blocks, THREADS](logits, labels, vector_or_dummy(class_weights),
                           class_weights is not None, row_loss, row_weight, dlogits)
    _sum_two[1, THREADS](row_loss, row_weight, sums)
    _scale_rows[blocks_for(n * k), THREADS](dlogits, row_weight, sums)
    total_loss, total_weight = sums.copy_to_host()
    return float(total_loss / total_weight), dlogits


@cuda.jit
def _count_not_finite(a, count):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        if not math.isfinite(a[i]):
            cuda.atomic.add(count, 0, 1)


def all_finite(a) -> bool:
    """Whether every element of the device array `a` is finite."""
    if a.size == 0:
        return True
    count = zeros(1, np.int64)
    _count_not_finite[blocks_for(a.size), THREADS](a.reshape(a.size), count)
    return int(count.copy_to_host()[0]) == 0
