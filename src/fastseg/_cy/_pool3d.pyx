# cython: language_level=3, boundscheck=False, wraparound=False
"""3-D max pooling wrappers (kernels/src/pool3d.c). Every shape relation the C code
relies on is re-checked here, in Python integers, so no call can make it read or write
outside the arrays it is given. Kernel sizes and strides are (depth, height, width)
triples."""
import numpy as np

from fastseg._cy._buffers import empty as _empty
from fastseg.errors import InvalidIndexError, InvalidValueError

from libc.stdint cimport int64_t

from fastseg._cy._args cimport check_total, shape5, triple
from fastseg._cy._status cimport check_status
from fastseg._cy._window cimport out_sizes
from fastseg._cy.kernels cimport fs_idx, fs_maxpool3d_backward, fs_maxpool3d_forward


def max_pool3d_forward(const float[:, :, :, :, ::1] x, kernel_size, stride):
    """x (N,C,D,H,W) -> (y (N,C,OD,OH,OW), argmax indices int64, flat within each volume)."""
    k = triple("max_pool3d", "kernel_size", kernel_size, 1)
    s = triple("max_pool3d", "stride", stride, 1)
    size = (x.shape[2], x.shape[3], x.shape[4])
    out = out_sizes("max_pool3d", size, k, s, (0, 0, 0))
    shape = (x.shape[0], x.shape[1]) + out
    check_total("max_pool3d", shape)
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
    check_total("max_pool3d_backward", x_shape)
    dshape, ishape = shape5(dy), shape5(indices)
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
