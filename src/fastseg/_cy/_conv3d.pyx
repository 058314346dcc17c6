# cython: language_level=3, boundscheck=False, wraparound=False
"""conv3d forward/backward and 3-D max pooling wrappers (kernels/src/conv3d.c,
pool3d.c). Every shape relation the C code relies on is re-checked here, in
Python integers, so no call can make it read or write outside the arrays it
is given. Kernel sizes, strides and paddings are (depth, height, width)
triples."""
import numpy as np

from fastseg._cy._buffers import empty as _empty
from fastseg.errors import InvalidIndexError, InvalidValueError

from libc.stdint cimport int64_t

from fastseg._cy._status cimport check_status
from fastseg._cy._window cimport out_size
from fastseg._cy.kernels cimport (
    fs_conv3d_backward, fs_conv3d_forward, fs_conv3d_geom, fs_idx, fs_maxpool3d_backward,
    fs_maxpool3d_forward,
)

# Element counts beyond this cannot be addressed in bytes with 64-bit sizes.
cdef object _MAX_ELEMS = (1 << 62) // 4


cdef tuple _triple(str what, str name, object value, int minimum):
    t = tuple(int(v) for v in value)
    if len(t) != 3 or any(v < minimum for v in t):
        raise InvalidValueError(f"{what}: {name} must be 3 ints >= {minimum}, got {value!r}")
    return t


cdef tuple _extents(str what, tuple size, tuple k, tuple stride, tuple pad):
    """Output (depth, height, width) of a window over the padded volume."""
    return tuple(out_size(what, size[a], k[a], stride[a], pad[a]) for a in range(3))


cdef _check_total(str what, object shape):
    count = 1
    for d in shape:
        count *= d
    if count > _MAX_ELEMS:
        raise InvalidValueError(f"{what}: a result of shape {shape} would have {count} "
                                "elements, too many")


cdef tuple _shape5(object a):
    return (a.shape[0], a.shape[1], a.shape[2], a.shape[3], a.shape[4])


cdef tuple _conv_geometry(str what, x, w, stride, padding, fs_conv3d_geom *g):
    """Checks x against w, fills g; returns the output shape."""
    if w.shape[1] != x.shape[1]:
        raise InvalidValueError(f"{what}: w has {w.shape[1]} input channels, x has "
                                f"{x.shape[1]}")
    k = (w.shape[2], w.shape[3], w.shape[4])
    s = _triple(what, "stride", stride, 1)
    p = _triple(what, "padding", padding, 0)
    if min(k) < 1:
        raise InvalidValueError(f"{what}: w has an empty kernel, shape {_shape5(w)}")
    size = (x.shape[2], x.shape[3], x.shape[4])
    out = _extents(what, size, k, s, p)
    y_shape = (x.shape[0], w.shape[0]) + out
    _check_total(what, y_shape)
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
    cdef const float[::1] bv
    cdef const float *pb = NULL
    if b is not None:
        bv = b
        if bv.shape[0] != f:
            raise InvalidValueError(f"conv3d: b has {bv.shape[0]} entries, expected {f}")
        if f > 0:
            pb = &bv[0]
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
    if _shape5(dy) != y_shape:
        raise InvalidValueError(f"conv3d_backward: dy has shape {_shape5(dy)}, expected "
                                f"{y_shape}")
    x_shape, w_shape = _shape5(x), _shape5(w)
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


def max_pool3d_forward(const float[:, :, :, :, ::1] x, kernel_size, stride):
    """x (N,C,D,H,W) -> (y (N,C,OD,OH,OW), argmax indices int64, flat within each volume)."""
    k = _triple("max_pool3d", "kernel_size", kernel_size, 1)
    s = _triple("max_pool3d", "stride", stride, 1)
    size = (x.shape[2], x.shape[3], x.shape[4])
    out = _extents("max_pool3d", size, k, s, (0, 0, 0))
    shape = (x.shape[0], x.shape[1]) + out
    _check_total("max_pool3d", shape)
    y = _empty(shape)
    idx = _empty(shape, np.int64)
    if y.size == 0:
        return y, idx
    cdef float[:, :, :, :, ::1] yv = y
    cdef int64_t[:, :, :, :, ::1] iv = idx
    cdef fs_idx csize[3]
    cdef fs_idx ck[3]
    cdef fs_idx cs[3]
    for a in range(3):
        csize[a], ck[a], cs[a] = size[a], k[a], s[a]
    cdef fs_idx cn = x.shape[0], cc = x.shape[1]
    cdef int st
    with nogil:
        st = fs_maxpool3d_forward(&x[0, 0, 0, 0, 0], cn, cc, csize, ck, cs, &yv[0, 0, 0, 0, 0],
                                  &iv[0, 0, 0, 0, 0])
    check_status(st, "max_pool3d")
    return y, idx


def max_pool3d_backward(const float[:, :, :, :, ::1] dy,
                        const int64_t[:, :, :, :, ::1] indices, tuple x_shape):
    """Scatter dy through the argmax indices into a zeroed (N,C,D,H,W) gradient."""
    if len(x_shape) != 5 or any(int(d) < 0 for d in x_shape):
        raise InvalidValueError(f"max_pool3d_backward: x_shape must be 5 non-negative sizes, "
                                f"got {x_shape}")
    x_shape = tuple(int(d) for d in x_shape)
    _check_total("max_pool3d_backward", x_shape)
    dshape, ishape = _shape5(dy), _shape5(indices)
    if dshape != ishape:
        raise InvalidValueError(f"max_pool3d_backward: indices has shape {ishape}, "
                                f"dy has shape {dshape}")
    if dshape[:2] != x_shape[:2]:
        raise InvalidValueError(f"max_pool3d_backward: dy has shape {dshape}, which does not "
                                f"match x_shape {x_shape} in (N, C)")
    n, c = x_shape[:2]
    in_count = x_shape[2] * x_shape[3] * x_shape[4]
    out_count = dshape[2] * dshape[3] * dshape[4]
    if n == 0 or c == 0 or out_count == 0:
        return np.zeros(x_shape, dtype=np.float32)
    if in_count == 0:
        raise InvalidIndexError(f"max_pool3d_backward: indices point into an empty volume "
                                f"{x_shape}")
    # The kernel zeroes dx itself before scattering (kernels.h).
    dx = _empty(x_shape)
    cdef float[:, :, :, :, ::1] dv = dx
    cdef fs_idx cn = n, cc = c, co = out_count, ci = in_count
    cdef int st
    with nogil:
        st = fs_maxpool3d_backward(&dy[0, 0, 0, 0, 0], &indices[0, 0, 0, 0, 0], cn, cc, co, ci,
                                   &dv[0, 0, 0, 0, 0])
    check_status(st, "max_pool3d_backward", "indices", f"[0, D*H*W) = [0, {in_count})")
    return dx
