# cython: language_level=3, boundscheck=False, wraparound=False
"""conv3d forward/backward wrappers (kernels/src/conv3d.c). Every shape relation the
C code relies on is re-checked here, in Python integers, so no call can make it read
or write outside the arrays it is given. Kernel sizes, strides and paddings are
(depth, height, width) triples."""
import numpy as np

from fastseg._cy._buffers import empty as _empty
from fastseg.errors import InvalidValueError

from fastseg._cy._args cimport check_total, checked_bias, data_or_null, shape5, triple
from fastseg._cy._status cimport check_status
from fastseg._cy._window cimport out_sizes
from fastseg._cy.kernels cimport fs_conv3d_backward, fs_conv3d_forward, fs_conv3d_geom


cdef tuple _conv_geometry(str what, x, w, stride, padding, fs_conv3d_geom *g):
    """Checks x against w, fills g; returns the output shape."""
    if w.shape[1] != x.shape[1]:
        raise InvalidValueError(f"{what}: w has {w.shape[1]} input channels, x has "
                                f"{x.shape[1]}")
    k = (w.shape[2], w.shape[3], w.shape[4])
    s = triple(what, "stride", stride, 1)
    p = triple(what, "padding", padding, 0)
    if min(k) < 1:
        raise InvalidValueError(f"{what}: w has an empty kernel, shape {shape5(w)}")
    size = (x.shape[2], x.shape[3], x.shape[4])
    out = out_sizes(what, size, k, s, p)
    y_shape = (x.shape[0], w.shape[0]) + out
    check_total(what, y_shape)
    g.n, g.c, g.d, g.h, g.w, g.f = x.shape[0], x.shape[1], size[0], size[1], size[2], w.shape[0]
    for a in range(3):
        g.k[a] = k[a]
        g.stride[a] = s[a]
        g.pad[a] = p[a]
    return y_shape


def conv3d_forward(const float[:, :, :, :, ::1] x, const float[:, :, :, :, ::1] w, b,
                   stride, padding):
    """x (N,C,D,H,W), w (F,C,KD,KH,KW), b (F,) or None -> y (N,F,OD,OH,OW)."""
    cdef fs_conv3d_geom g
    y_shape = _conv_geometry("conv3d", x, w, stride, padding, &g)
    n, f = x.shape[0], w.shape[0]
    cdef const float[::1] bv = checked_bias("conv3d", b, f)
    cdef const float *pb = data_or_null(bv)
    if n == 0 or f == 0 or x.shape[1] == 0 or 0 in y_shape:
        y = np.zeros(y_shape, dtype=np.float32)
        if b is not None:
            y += np.asarray(b, dtype=np.float32).reshape(1, f, 1, 1, 1)
        return y
    y = _empty(y_shape)
    cdef float[:, :, :, :, ::1] yv = y
    cdef int st
    with nogil:
        st = fs_conv3d_forward(&g, &x[0, 0, 0, 0, 0], &w[0, 0, 0, 0, 0], pb,
                               &yv[0, 0, 0, 0, 0])
    check_status(st, "conv3d")
    return y


def conv3d_backward(const float[:, :, :, :, ::1] x, const float[:, :, :, :, ::1] w,
                    const float[:, :, :, :, ::1] dy, stride, padding, bint need_dx=True):
    """Gradients of conv3d: returns (dx, dw, db); dx is None unless need_dx."""
    cdef fs_conv3d_geom g
    y_shape = _conv_geometry("conv3d_backward", x, w, stride, padding, &g)
    if shape5(dy) != y_shape:
        raise InvalidValueError(f"conv3d_backward: dy has shape {shape5(dy)}, expected "
                                f"{y_shape}")
    x_shape, w_shape = shape5(x), shape5(w)
    n, c, f = x_shape[0], x_shape[1], w_shape[0]
    if n == 0 or f == 0 or c == 0 or 0 in y_shape:
        dx = np.zeros(x_shape, dtype=np.float32)
        db = np.zeros((f,), dtype=np.float32)
        if n and f and 0 not in y_shape:
            db[:] = np.asarray(dy).sum(axis=(0, 2, 3, 4), dtype=np.float64)
        return (dx if need_dx else None), np.zeros(w_shape, dtype=np.float32), db
    # The kernel overwrites all three (kernels.h): no zeroing, recycled memory.
    dx = _empty(x_shape) if need_dx else None
    dw = _empty(w_shape)
    db = np.empty((f,), dtype=np.float32)
    cdef float[:, :, :, :, ::1] dxv
    cdef float *dxp = NULL
    if need_dx:
        dxv = dx
        dxp = &dxv[0, 0, 0, 0, 0]
    cdef float[:, :, :, :, ::1] dwv = dw
    cdef float[::1] dbv = db
    cdef int st
    with nogil:
        st = fs_conv3d_backward(&g, &x[0, 0, 0, 0, 0], &w[0, 0, 0, 0, 0], &dy[0, 0, 0, 0, 0],
                                dxp, &dwv[0, 0, 0, 0, 0], &dbv[0])
    check_status(st, "conv3d_backward")
    return dx, dw, db
