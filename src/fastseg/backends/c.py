"""The ``"c"`` backend: fastseg's compiled kernels (kernels/) through the
Cython wrappers in :mod:`fastseg._cy`.

Arguments arrive validated and converted by :mod:`fastseg.ops` (float32,
C-contiguous, int64 labels/indices); the wrappers still re-check every shape
relation the C code depends on, so a caller that skips ``ops`` gets a
ValueError, never an out-of-bounds access.

Its arrays are NumPy arrays, so the checks, the array helpers (not hot), the
plain softmax (inference only, a few values per pixel) and what it does not
provide are those of the NumPy reference.
"""
from __future__ import annotations

import numpy as np

from fastseg._cy import (
    _conv,
    _conv3d,
    _fftconv,
    _gemm,
    _linear,
    _loss,
    _optim,
    _pointwise,
    _pool,
    _pool3d,
)
from fastseg._cy import _runtime as runtime  # noqa: F401  (threads, ISA: fastseg.backends)
from fastseg.backends import numpy_backend
from fastseg.backends.numpy_backend import (  # noqa: F401  (table entries)
    add_,
    as_float32,
    as_indices,
    as_inplace,
    as_labels,
    batch_transpose,
    check_finite,
    copy_,
    dropout,
    fill_,
    full_like,
    hsplit,
    hstack,
    mul,
    softmax,
    to_host,
    zeros,
    zeros_like,
)
from fastseg.backends.numpy_fftconv import spectra_packed
from fastseg.errors import InvalidValueError

#: numpy_backend's reasons, less conv2d_packed: this backend packs weights.
NOT_PROVIDED = {"to_device": numpy_backend.NOT_PROVIDED["to_device"]}


def check_available():
    """Importing this module is the check: the extensions are built or not."""


def gemm(a, b, trans_a, trans_b):
    return _gemm.sgemm(a, b, bool(trans_a), bool(trans_b))


def gemm_batch(a, b, out):
    """out[i] = a[i] @ b[i] (rows contiguous; used by the FFT convolution's per-bin products)."""
    return _gemm.sgemm_batch(a, b, out)


def fft_spectra(w, fft_shape):
    """Packed for the micro-kernel in use (its MR); SciPy's float32 FFT, blocks of
    filters on every core."""
    import scipy.fft  # on first use: a tenth of a second of `import fastseg`

    def rfft(a, n, axis):
        return scipy.fft.rfft(np.asarray(a, np.float32), n, axis, workers=1)

    def fft(a, n, axis):
        return scipy.fft.fft(a, n, axis, workers=1)

    return spectra_packed(w, fft_shape, _fftconv.panel_rows(), (rfft, fft),
                          threads=runtime.get_num_threads())


def fftconv2d(x, spectra, kernel, fft_shape, filters, bias, activation, proj_w, proj_b, mults,
              group, chunk, seconds):
    return _fftconv.fftconv2d(x, spectra, tuple(kernel), tuple(fft_shape), int(filters), bias,
                              activation, proj_w, proj_b, int(mults), int(group), int(chunk),
                              seconds)


def conv2d_packed(x, packed, b, stride, activation):
    return _conv.conv2d_forward_packed(x, packed, b, stride, 0, activation)


def col2im(cols, x_shape, kernel_size, stride, padding):
    return _conv.col2im(cols, tuple(int(d) for d in x_shape), kernel_size, stride, padding)


def max_pool2d_backward(dy, indices, x_shape):
    return _pool.max_pool2d_backward(dy, indices, tuple(int(d) for d in x_shape))


def max_pool3d_backward(dy, indices, x_shape):
    return _pool3d.max_pool3d_backward(dy, indices, tuple(int(d) for d in x_shape))


# Wrappers that take the table's parameters as they are serve as its entries; the functions
# above convert theirs first.
im2col = _conv.im2col
conv2d = _conv.conv2d_forward
conv2d_backward = _conv.conv2d_backward
conv2d_weight_packed = _conv.conv2d_pack_weight
linear = _linear.linear_forward
linear_backward = _linear.linear_backward
max_pool2d = _pool.max_pool2d_forward
conv3d = _conv3d.conv3d_forward
conv3d_backward = _conv3d.conv3d_backward
max_pool3d = _pool3d.max_pool3d_forward
relu = _pointwise.relu
relu_backward = _pointwise.relu_backward
tanh = _pointwise.tanh
tanh_backward = _pointwise.tanh_backward
sigmoid = _pointwise.sigmoid
sigmoid_backward = _pointwise.sigmoid_backward
xsin = _pointwise.xsin
xsin_backward = _pointwise.xsin_backward
softmax_cross_entropy = _loss.softmax_xent


def _flat(name, a):
    """A flat view that shares memory with `a` (in-place updates must land)."""
    if a is None:
        return None
    if not (isinstance(a, np.ndarray) and a.flags.c_contiguous):
        raise InvalidValueError(f"{name}: must be a C-contiguous ndarray to be updated in place")
    return a.reshape(-1)


def sgd_update(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step):
    _optim.sgd_update(_flat("p", p), _flat("g", g), _flat("buf", buf), lr, momentum,
                      dampening, weight_decay, nesterov, first_step)


def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    _optim.adam_update(_flat("p", p), _flat("g", g), _flat("m", m), _flat("v", v), lr,
                       beta1, beta2, eps, weight_decay, step)


def rprop_update(p, g, prev, step_size, eta_minus, eta_plus, step_min, step_max):
    _optim.rprop_update(_flat("p", p), _flat("g", g), _flat("prev", prev),
                        _flat("step_size", step_size), eta_minus, eta_plus, step_min, step_max)
