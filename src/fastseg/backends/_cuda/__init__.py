"""Numba CUDA kernels of the ``"cuda"`` backend, and the runtime helpers they share.

The kernels live in small modules (:mod:`.gemm`, :mod:`.conv`, :mod:`.conv3d`,
:mod:`.pool`, :mod:`.pointwise`, :mod:`.loss`, :mod:`.optim`, :mod:`.arrays`; the
block sum of the reducing ones in :mod:`.reduce`); this module holds what all of
them need: whether we run on Numba's CPU simulator, how to recognise and allocate
device arrays, and launch geometry for grid-stride loops.

Importing it imports ``numba.cuda`` (so it raises ImportError without
numba-cuda) but compiles nothing: every kernel is compiled on first launch.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numba import config, cuda

#: True under ``NUMBA_ENABLE_CUDASIM=1``: kernels run as Python threads on the CPU.
SIMULATOR = bool(config.ENABLE_CUDASIM)

#: Threads per block of the element-wise kernels. The simulator starts one
#: Python thread per CUDA thread, so it gets small blocks.
THREADS = 64 if SIMULATOR else 256


def is_device_array(a) -> bool:
    """Whether `a` lives on the GPU (a Numba device array, or any object with
    ``__cuda_array_interface__`` such as a CuPy array or a CUDA torch tensor)."""
    if SIMULATOR:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        return isinstance(a, FakeCUDAArray)
    return hasattr(a, "__cuda_array_interface__")


def as_device(a):
    """`a` as a Numba device array: device arrays are wrapped without a copy,
    host arrays are copied to the GPU."""
    if is_device_array(a):
        return a if SIMULATOR else cuda.as_cuda_array(a)
    return cuda.to_device(np.ascontiguousarray(a))


def empty(shape, dtype=np.float32):
    """An uninitialised device array."""
    return cuda.device_array(shape, dtype=dtype)


@functools.cache
def sm_count() -> int:
    """Streaming multiprocessors of the current GPU (1 under the simulator)."""
    if SIMULATOR:
        return 1
    return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)


def blocks_for(n: int, threads: int = THREADS) -> int:
    """Blocks for a grid-stride loop over `n` items: enough to fill the GPU,
    never more than one item per thread needs (and few under the simulator,
    where each block costs a set of Python threads)."""
    cap = 2 if SIMULATOR else 32 * sm_count()
    return max(1, min(math.ceil(n / threads), cap))


def launch(kernel, total: int, *args) -> None:
    """Run the grid-stride `kernel` over `total` items (nothing when there are none)."""
    if total:
        kernel[blocks_for(total), THREADS](*args)


@cuda.jit
def _fill(out, value):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = value


def fill(out, value) -> None:
    """Set every element of the C-contiguous device array `out` to `value`, on the GPU."""
    if out.size:
        _fill[blocks_for(out.size), THREADS](out.reshape(out.size), out.dtype.type(value))


def zeros(shape, dtype=np.float32):
    """A device array of zeros, filled on the GPU (no host copy)."""
    out = empty(shape, dtype)
    fill(out, 0)
    return out


@functools.cache
def _dummy_vector():
    # Stands in for an absent optional vector (bias, class weights), so that
    # every launch of a kernel has the same argument types: one compile.
    return cuda.to_device(np.zeros(1, np.float32))


def vector_or_dummy(v):
    """`v`, or a one-element placeholder when `v` is None."""
    return _dummy_vector() if v is None else v
