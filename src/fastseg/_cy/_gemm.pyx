# cython: language_level=3, boundscheck=False, wraparound=False
"""SGEMM wrapper: the packed, blocked C GEMM (kernels/src/gemm.c)."""
import numpy as np

from fastseg.errors import InvalidValueError

from fastseg._cy._status cimport check_status
from fastseg._cy.kernels cimport fs_idx, fs_sgemm


def sgemm(const float[:, ::1] a, const float[:, ::1] b, bint trans_a=False,
          bint trans_b=False):
    """Return ``op(a) @ op(b)`` as a new C-contiguous float32 array.

    Shapes are checked here too (the Python layer checks first), so no call
    can make the kernel read or write outside the arrays.
    """
    cdef fs_idx m = a.shape[1] if trans_a else a.shape[0]
    cdef fs_idx ka = a.shape[0] if trans_a else a.shape[1]
    cdef fs_idx kb = b.shape[1] if trans_b else b.shape[0]
    cdef fs_idx n = b.shape[0] if trans_b else b.shape[1]
    if ka != kb:
        raise InvalidValueError(f"gemm: inner dimensions differ ({ka} vs {kb})")
    out = np.empty((m, n), dtype=np.float32)
    cdef float[:, ::1] c = out
    cdef int status
    if m == 0 or n == 0:
        return out
    # A zero-size dimension has no element 0, so pass a harmless pointer.
    cdef const float *pa = &a[0, 0] if a.shape[0] * a.shape[1] > 0 else <const float *>&c[0, 0]
    cdef const float *pb = &b[0, 0] if b.shape[0] * b.shape[1] > 0 else <const float *>&c[0, 0]
    cdef fs_idx lda = a.shape[1] if a.shape[1] > 0 else 1
    cdef fs_idx ldb = b.shape[1] if b.shape[1] > 0 else 1
    with nogil:
        status = fs_sgemm(trans_a, trans_b, m, n, ka, 1.0, pa, lda, pb, ldb, 0.0, &c[0, 0], n)
    check_status(status, "gemm")
    return out
