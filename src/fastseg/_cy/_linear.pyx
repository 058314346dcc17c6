# cython: language_level=3, boundscheck=False, wraparound=False
"""Fully connected (Linear) layer wrappers (kernels/src/linear.c)."""
import numpy as np

from fastseg._cy._buffers import empty as _empty
from fastseg.errors import InvalidValueError

from fastseg._cy._args cimport checked_bias, data_or_null
from fastseg._cy._status cimport check_status
from fastseg._cy.kernels cimport fs_idx, fs_linear_backward, fs_linear_forward


def linear_forward(const float[:, ::1] x, const float[:, ::1] w, b):
    """x (N, I), w (O, I), b (O,) or None -> x @ w.T + b, shape (N, O)."""
    n, i, o = x.shape[0], x.shape[1], w.shape[0]
    if w.shape[1] != i:
        raise InvalidValueError(f"linear: w has {w.shape[1]} input features, x has {i}")
    cdef const float[::1] bv = checked_bias("linear", b, o)
    cdef const float *pb = data_or_null(bv)
    if n == 0 or i == 0 or o == 0:
        y = np.zeros((n, o), dtype=np.float32)
        if b is not None:
            y += np.asarray(b, dtype=np.float32)
        return y
    y = _empty((n, o))
    cdef float[:, ::1] yv = y
    cdef fs_idx cn = n, ci = i, co = o
    cdef int st
    with nogil:
        st = fs_linear_forward(&x[0, 0], cn, ci, &w[0, 0], co, pb, &yv[0, 0])
    check_status(st, "linear")
    return y


def linear_backward(const float[:, ::1] x, const float[:, ::1] w, const float[:, ::1] dy,
                    bint need_dx=True):
    """Gradients of linear: returns (dx (N, I), dw (O, I), db (O,)); dx is None unless
    need_dx."""
    n, i, o = x.shape[0], x.shape[1], w.shape[0]
    if w.shape[1] != i:
        raise InvalidValueError(f"linear_backward: w has {w.shape[1]} input features, x has {i}")
    if dy.shape[0] != n or dy.shape[1] != o:
        raise InvalidValueError(f"linear_backward: dy has shape ({dy.shape[0]}, {dy.shape[1]}), "
                                f"expected ({n}, {o})")
    if n == 0 or i == 0 or o == 0:
        dx = np.zeros((n, i), dtype=np.float32)
        dw = np.zeros((o, i), dtype=np.float32)
        db = np.zeros((o,), dtype=np.float32)
        if n and o:
            db[:] = np.asarray(dy).sum(axis=0, dtype=np.float64)
        return (dx if need_dx else None), dw, db
    # The kernel overwrites all three (kernels.h): no zeroing, recycled memory
    # (dw is the big one: 51 MB for lai2d's first layer, faulted in every step).
    dx = _empty((n, i)) if need_dx else None
    dw = _empty((o, i))
    db = np.empty((o,), dtype=np.float32)
    cdef float[:, ::1] dxv
    cdef float *dxp = NULL
    if need_dx:
        dxv = dx
        dxp = &dxv[0, 0]
    cdef float[:, ::1] dwv = dw
    cdef float[::1] dbv = db
    cdef fs_idx cn = n, ci = i, co = o
    cdef int st
    with nogil:
        st = fs_linear_backward(&x[0, 0], cn, ci, &w[0, 0], co, &dy[0, 0],
                                dxp, &dwv[0, 0], &dbv[0])
    check_status(st, "linear_backward")
    return dx, dw, db
