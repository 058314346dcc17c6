"""The block-wide tree sum in shared memory that the reducing kernels share
(:mod:`.conv`'s bias gradients, :mod:`.loss`'s totals).

The same pairs are added in the same order on every run: deterministic, unlike
atomics.
"""
from __future__ import annotations

from numba import cuda

from fastseg.backends._cuda import THREADS


@cuda.jit(device=True)
def block_sum(partial, tid):
    """Sum the ``THREADS`` values of the shared array `partial` into ``partial[0]``.

    Every thread of the block calls it, `tid` being its index, after writing its
    own value to ``partial[tid]``; it waits for them all first. The other entries
    are left as scratch.
    """
    cuda.syncthreads()
    width = THREADS // 2
    while width > 0:
        if tid < width:
            partial[tid] += partial[tid + width]
        cuda.syncthreads()
        width //= 2
