# cython: language_level=3, boundscheck=False, wraparound=False
"""SGEMM wrapper: the packed, blocked C GEMM (kernels/src/gemm.c)."""
import numpy as np

from fastseg._cy._buffers import empty as _empty
from fastseg.errors import InvalidValueError

from fastseg._cy._status cimport check_status
from fastseg._cy.kernels cimport FS_OK, fs_idx, fs_sgemm


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
    # Recycled like the convolutions' and Linear's outputs: a fresh 51 MB C (lai2d's fc1
    # dW) is faulted in page by page on every call, ~7 ms of its 38 on one Zen 4 thread.
    out = _empty((m, n))
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


def sgemm_batch(const float[:, :, :] a, const float[:, :, :] b, float[:, :, :] out):
    """``out[i] = a[i] @ b[i]`` for every i, in one call that holds no GIL.

    A batch of independent products (the FFT convolution's one per frequency
    bin) without a Python call, a GIL hand-over or an allocation per product.
    Every matrix needs contiguous rows; the rows and the matrices themselves may
    be strided (e.g. a range of rows of every matrix of a stack). Each product
    runs on fs_sgemm with the process's thread count, one after another.
    """
    cdef fs_idx count = a.shape[0], m = a.shape[1], k = a.shape[2], n = b.shape[2]
    if b.shape[0] != count or out.shape[0] != count:
        raise InvalidValueError(f"gemm_batch: batch sizes differ (a {a.shape[0]}, "
                                f"b {b.shape[0]}, out {out.shape[0]})")
    if b.shape[1] != k or out.shape[1] != m or out.shape[2] != n:
        raise InvalidValueError(f"gemm_batch: shapes do not chain: a {tuple(a.shape)[:3]}, "
                                f"b {tuple(b.shape)[:3]}, out {tuple(out.shape)[:3]}")
    cdef Py_ssize_t f = sizeof(float)
    if ((k > 1 and a.strides[2] != f) or (n > 1 and b.strides[2] != f)
            or (n > 1 and out.strides[2] != f)):
        raise InvalidValueError("gemm_batch: every matrix needs contiguous rows")
    cdef fs_idx lda = a.strides[1] // f if m > 1 else max(k, 1)
    cdef fs_idx ldb = b.strides[1] // f if k > 1 else max(n, 1)
    cdef fs_idx ldc = out.strides[1] // f if m > 1 else max(n, 1)
    if lda < k or ldb < n or ldc < n or a.strides[1] % f or b.strides[1] % f \
            or out.strides[1] % f:
        raise InvalidValueError("gemm_batch: rows overlap (a leading dimension below the row "
                                "length)")
    if count == 0 or m == 0 or n == 0:
        return out
    cdef int status = FS_OK
    cdef fs_idx i, j
    if k == 0:
        for i in range(count):
            for j in range(m):
                out[i, j, :] = 0
        return out
    with nogil:
        for i in range(count):
            status = fs_sgemm(0, 0, m, n, k, 1.0, &a[i, 0, 0], lda, &b[i, 0, 0], ldb, 0.0,
                              &out[i, 0, 0], ldc)
            if status != FS_OK:
                break
    check_status(status, "gemm_batch")
    return out
