"""Recycled output arrays for the compiled backend.

Why: on the machines fastseg targets, the first write to a freshly mapped
page costs far more than the write itself (a 51 MB weight gradient of
lai2d's first fully connected layer takes ~15-20 ms to fault in, against
~6 ms to fill once mapped), and a training step allocates the same large
outputs (activations, their gradients, weight gradients) over and over.
glibc maps such sizes afresh each time, so every step paid those faults.

:func:`empty` hands out an array of the asked shape that is either new or
one it handed out before and that *nobody references any more*: the pool
keeps its own reference and reuses an array only when that is the last
one (``sys.getrefcount``). A view, a ``Parameter.grad``, a layer's saved
input or a torch tensor made with ``from_numpy`` all hold a reference, so an
array still visible anywhere is never overwritten. Its contents are
undefined, as ``np.empty``'s are; callers overwrite every element.
"""
from __future__ import annotations

import sys
import threading
from collections import OrderedDict

import numpy as np

#: Smaller arrays come from malloc's free lists without page faults.
MIN_BYTES = 1 << 18
#: Arrays kept per (shape, dtype). The pool only grows while every array it
#: holds is in use, so it settles at the peak number alive at once: in a
#: training step one shape can be a layer's output, the next layer's saved
#: input and output, the previous step's copies still held until replaced,
#: and the gradients of each (lai2d's conv2 output shape: 4-5 at once).
PER_KEY = 8
#: Distinct (shape, dtype) keys kept, least recently used dropped first.
MAX_KEYS = 64

_pool: OrderedDict = OrderedDict()
_lock = threading.Lock()


def _free_refcount() -> int:
    """sys.getrefcount of a pooled array that nobody else holds.

    Measured, not assumed: it counts the pool's list, and the loop variable and
    getrefcount's argument only where this interpreter takes references for
    them (3.14 borrows some), so it must come from the same code shape as the
    check in :func:`empty`.
    """
    arrays = [np.empty(1)]
    for a in arrays:
        return sys.getrefcount(a)
    raise AssertionError("unreachable")


_FREE_REFS = _free_refcount()


def empty(shape, dtype=np.float32) -> np.ndarray:
    """An uninitialised C-contiguous array, recycled when one is free."""
    dtype = np.dtype(dtype)
    shape = tuple(int(d) for d in shape)
    count = 1
    for d in shape:
        count *= d
    if count * dtype.itemsize < MIN_BYTES:
        return np.empty(shape, dtype)
    key = (shape, dtype.str)
    with _lock:
        arrays = _pool.get(key)
        if arrays is None:
            arrays = _pool[key] = []
            if len(_pool) > MAX_KEYS:
                _pool.popitem(last=False)
        else:
            _pool.move_to_end(key)
        for a in arrays:
            if sys.getrefcount(a) == _FREE_REFS:
                # Returned while the lock is held and `a` still referenced here,
                # so no other thread can see it as free.
                return a
        a = np.empty(shape, dtype)
        if len(arrays) < PER_KEY:
            arrays.append(a)
        return a


def clear() -> None:
    """Drop every pooled array (memory goes back once nobody else holds them)."""
    with _lock:
        _pool.clear()
