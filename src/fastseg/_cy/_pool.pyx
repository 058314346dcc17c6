# cython: language_level=3, boundscheck=False, wraparound=False
"""Max pooling wrappers (kernels/src/pool.c)."""
import numpy as np

from fastseg._cy._buffers import empty as _empty
from fastseg.errors import InvalidIndexError, InvalidValueError

from libc.stdint cimport int64_t

from fastseg._cy._status cimport check_status
from fastseg._cy._window cimport out_size
from fastseg._cy.kernels cimport fs_idx, fs_maxpool2d_backward, fs_maxpool2d_forward


def max_pool2d_forward(const float[:, :, :, ::1] x, Py_ssize_t kernel_size,
                       Py_ssize_t stride):
    """x (N,C,H,W) -> (y (N,C,OH,OW), argmax indices int64, flat within each plane)."""
    n, c, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    oh = out_size("max_pool2d", h, kernel_size, stride, 0)
    ow = out_size("max_pool2d", w, kernel_size, stride, 0)
    y = _empty((n, c, oh, ow))
    idx = _empty((n, c, oh, ow), np.int64)
    if y.size == 0:
        return y, idx
    cdef float[:, :, :, ::1] yv = y
    cdef int64_t[:, :, :, ::1] iv = idx
    cdef fs_idx cn = n, cc = c, ch = h, cw = w, k = kernel_size, s = stride
    with nogil:
        fs_maxpool2d_forward(&x[0, 0, 0, 0], cn, cc, ch, cw, k, s, &yv[0, 0, 0, 0],
                             &iv[0, 0, 0, 0])
    return y, idx


def max_pool2d_backward(const float[:, :, :, ::1] dy, const int64_t[:, :, :, ::1] indices,
                        tuple x_shape):
    """Scatter dy through the argmax indices into a zeroed (N,C,H,W) gradient."""
    if len(x_shape) != 4 or any(int(d) < 0 for d in x_shape):
        raise InvalidValueError(f"max_pool2d_backward: x_shape must be 4 non-negative sizes, "
                                f"got {x_shape}")
    n, c, h, w = (int(d) for d in x_shape)
    dshape = (dy.shape[0], dy.shape[1], dy.shape[2], dy.shape[3])
    ishape = (indices.shape[0], indices.shape[1], indices.shape[2], indices.shape[3])
    if dshape != ishape:
        raise InvalidValueError(f"max_pool2d_backward: indices has shape {ishape}, "
                                f"dy has shape {dshape}")
    if dshape[0] != n or dshape[1] != c:
        raise InvalidValueError(f"max_pool2d_backward: dy has shape {dshape}, which does not "
                                f"match x_shape {x_shape} in (N, C)")
    if dy.shape[2] == 0 or dy.shape[3] == 0 or n == 0 or c == 0:
        return np.zeros((n, c, h, w), dtype=np.float32)
    # The kernel zeroes dx itself before scattering (kernels.h).
    dx = _empty((n, c, h, w))
    if h == 0 or w == 0:
        raise InvalidIndexError(f"max_pool2d_backward: indices point into an empty plane "
                                f"{x_shape}")
    cdef float[:, :, :, ::1] dv = dx
    cdef fs_idx cn = n, cc = c, oh = dy.shape[2], ow = dy.shape[3], ch = h, cw = w
    cdef int st
    with nogil:
        st = fs_maxpool2d_backward(&dy[0, 0, 0, 0], &indices[0, 0, 0, 0], cn, cc, oh, ow,
                                   ch, cw, &dv[0, 0, 0, 0])
    check_status(st, "max_pool2d_backward", "indices", f"[0, H*W) = [0, {h * w})")
    return dx
