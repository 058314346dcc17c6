# cython: language_level=3, boundscheck=False, wraparound=False
"""Element-wise activation wrappers (kernels/src/activations.c). Any shape:
the arrays are seen flat. Backward passes take the forward input x."""
import numpy as np

from fastseg._cy._buffers import empty as _empty

from fastseg.errors import InvalidValueError

from fastseg._cy.kernels cimport (
    fs_idx, fs_relu_backward, fs_relu_forward, fs_sigmoid_backward, fs_sigmoid_forward,
    fs_tanh_backward, fs_tanh_forward, fs_xsin_backward, fs_xsin_forward,
)

ctypedef void (*unary_fn)(const float *, float *, fs_idx) noexcept nogil
ctypedef void (*binary_fn)(const float *, const float *, float *, fs_idx) noexcept nogil


cdef object _forward(unary_fn fn, x):
    y = _empty(np.shape(x))
    # reshape(-1) is a view for the C-contiguous input fastseg.ops hands in.
    cdef const float[::1] xv = np.reshape(x, -1)
    cdef float[::1] yv = y.reshape(-1)
    cdef fs_idx count = xv.shape[0]
    if count == 0:
        return y
    with nogil:
        fn(&xv[0], &yv[0], count)
    return y


cdef object _backward(binary_fn fn, str what, x, dy):
    if np.shape(x) != np.shape(dy):
        raise InvalidValueError(f"{what}: dy has shape {np.shape(dy)}, x has shape "
                                f"{np.shape(x)}")
    dx = _empty(np.shape(x))
    cdef const float[::1] xv = np.reshape(x, -1)
    cdef const float[::1] gv = np.reshape(dy, -1)
    cdef float[::1] dv = dx.reshape(-1)
    cdef fs_idx count = xv.shape[0]
    if count == 0:
        return dx
    with nogil:
        fn(&xv[0], &gv[0], &dv[0], count)
    return dx


def relu(x):
    return _forward(fs_relu_forward, x)


def relu_backward(x, dy):
    return _backward(fs_relu_backward, "relu_backward", x, dy)


def tanh(x):
    return _forward(fs_tanh_forward, x)


def tanh_backward(x, dy):
    return _backward(fs_tanh_backward, "tanh_backward", x, dy)


def sigmoid(x):
    return _forward(fs_sigmoid_forward, x)


def sigmoid_backward(x, dy):
    return _backward(fs_sigmoid_backward, "sigmoid_backward", x, dy)


def xsin(x):
    return _forward(fs_xsin_forward, x)


def xsin_backward(x, dy):
    return _backward(fs_xsin_backward, "xsin_backward", x, dy)
