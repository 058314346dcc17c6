"""The ``"cuda"`` backend: every op of :mod:`fastseg.ops` as Numba CUDA kernels.

It runs on an NVIDIA GPU, or on the CPU under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1`` set before numba is first imported), which is how
the tests run it where there is no GPU. Install it with ``pip install
"fastseg[cuda]"`` (numba-cuda).

Arrays in, arrays out of the same kind: an op given NumPy arrays copies them
to the GPU and returns NumPy arrays; given device arrays (Numba device
arrays, or anything with ``__cuda_array_interface__`` such as CuPy arrays and
CUDA torch tensors) it returns Numba device arrays and never touches the
host, so a whole training step can stay on the GPU. Its checks
(:func:`as_float32`, :func:`as_indices`, :func:`as_labels`,
:func:`check_finite`, :func:`as_inplace`; the ``CHECKS`` of
:mod:`fastseg.backends.contract`) let :mod:`fastseg.ops` validate device
arrays (shape, dtype, contiguity) without copying them.

The kernels live in :mod:`fastseg.backends._cuda`.
"""
from __future__ import annotations

import functools

import numpy as np

from fastseg import _validate as v
from fastseg.errors import InvalidIndexError, InvalidTypeError, InvalidValueError

try:
    from numba import config as _numba_config
    from numba import cuda as _cuda_api
except ImportError as exc:  # the registry reports this as "not available"
    raise ImportError(
        f"numba-cuda is not installed ({exc}); install it with pip install 'fastseg[cuda]'"
    ) from exc

from fastseg.backends import numpy_backend as _host
from fastseg.backends._cuda import arrays as _arrays
from fastseg.backends._cuda import as_device, fill, is_device_array
from fastseg.backends._cuda import conv as _conv
from fastseg.backends._cuda import conv3d as _conv3d
from fastseg.backends._cuda import gemm as _gemm
from fastseg.backends._cuda import loss as _loss
from fastseg.backends._cuda import optim as _optim
from fastseg.backends._cuda import pointwise as _pointwise
from fastseg.backends._cuda import pool as _pool
from fastseg.backends._cuda import zeros as _zeros


def check_available() -> None:
    """Raise RuntimeError saying why, unless a CUDA GPU or the simulator is usable."""
    if _numba_config.ENABLE_CUDASIM:
        return
    try:
        usable = _cuda_api.is_available()
    except Exception as exc:  # a broken driver install raises rather than says False
        raise RuntimeError(f"the CUDA driver could not be initialised: {exc}") from exc
    if not usable:
        raise RuntimeError(
            "no usable CUDA GPU (numba.cuda.is_available() is False); to run the CUDA kernels "
            "on the CPU simulator set NUMBA_ENABLE_CUDASIM=1 before numba is imported"
        )


# ---- the checks of the contract: device arrays as they are, host arrays as everywhere ----


def as_float32(name, a, ndim=None, layout=""):
    """A device array passes through (checked, not copied); anything else becomes a
    C-contiguous float32 ndarray as for every backend."""
    if not is_device_array(a):
        return v.as_float32(name, a, ndim, layout)
    a = as_device(a)
    if a.dtype != np.float32:
        raise InvalidTypeError(f"{name}: expected a float32 device array, got dtype {a.dtype} "
                               "(device arrays are not converted; use .astype on the device first)")
    if ndim is not None and a.ndim != ndim:
        what = f" {layout}" if layout else ""
        raise InvalidValueError(f"{name}: expected a {ndim}-D array{what}, got shape {a.shape}")
    if not a.is_c_contiguous():
        raise InvalidValueError(f"{name}: expected a C-contiguous device array, got strides "
                                f"{a.strides} for shape {a.shape}")
    return a


def as_indices(name, indices, shape, limit):
    """Integer indices of `shape`, each in ``[0, limit)``: int64 host arrays, or device
    arrays of any integer dtype (counted on the device, not copied)."""
    if not is_device_array(indices):
        return v.as_indices(name, indices, shape, limit)
    indices = as_device(indices)
    if indices.dtype.kind not in "iu":
        raise InvalidTypeError(f"{name}: expected integer indices, got dtype {indices.dtype}")
    if tuple(indices.shape) != tuple(shape):
        raise InvalidValueError(f"{name}: expected shape {tuple(shape)}, got "
                                f"{tuple(indices.shape)}")
    if not indices.is_c_contiguous():
        raise InvalidValueError(f"{name}: expected a C-contiguous device array")
    if _pool.indices_outside(indices, limit):
        raise InvalidIndexError(f"{name}: values must lie in [0, {limit})")
    return indices


def as_labels(name, labels, n, num_classes):
    """Labels checked as for every backend; device labels are checked on the host
    (they are small) and returned as an int64 device array."""
    if not is_device_array(labels):
        return v.as_labels(name, labels, n, num_classes)
    labels = as_device(labels)
    checked = v.as_labels(name, labels.copy_to_host(), n, num_classes)
    if labels.dtype == np.int64 and labels.is_c_contiguous():
        return labels
    return _cuda_api.to_device(checked)


def check_finite(name, a):
    """ValueError if `a` (host or device) holds a NaN or an infinity."""
    if not is_device_array(a):
        v.check_finite(name, a)
    elif not _loss.all_finite(a):
        raise v.non_finite(name)


def as_inplace(name, a, shape):
    """`a` itself, a float32 C-contiguous array of `shape` (host or device) that an
    operation can update in place."""
    if not is_device_array(a):
        return v.as_inplace(name, a, shape)
    a = as_device(a)
    if a.dtype != np.float32 or tuple(a.shape) != tuple(shape):
        raise InvalidTypeError(f"{name}: expected a float32 array of shape {tuple(shape)} to "
                               f"update in place, got {a.dtype} {tuple(a.shape)}")
    if not a.is_c_contiguous():
        raise InvalidValueError(f"{name}: must be C-contiguous to be updated in place")
    return a


# ---- host/device plumbing --------------------------------------------------------------


class _Placement:
    """Where an op's results go: to the device if any input came from there."""

    def __init__(self, *arrays):
        self.device = any(is_device_array(a) for a in arrays if a is not None)

    @staticmethod
    def put(a):
        return None if a is None else as_device(a)

    def get(self, a):
        return a if self.device else a.copy_to_host()


def _on_device(kernel, arrays, *rest):
    """``kernel(*arrays, *rest)`` on device copies of the host `arrays` (None stays None);
    its result, an array or a tuple of arrays (or None), goes back where the inputs came
    from (:class:`_Placement`)."""
    where = _Placement(*arrays)
    result = kernel(*(where.put(a) for a in arrays), *rest)
    if isinstance(result, tuple):
        return tuple(None if r is None else where.get(r) for r in result)
    return where.get(result)


# ---- the operation table (names and signatures of numpy_backend) -----------------------


NOT_PROVIDED = {"gemm_batch": "its one caller, the FFT convolution of dense segmentation, "
                              "computes on the host (the \"c\" or \"numpy\" backend)",
                "fft_spectra": "dense segmentation's FFT convolution computes on the host (the "
                               "\"c\" or \"numpy\" backend); on the GPU it runs directly",
                "fftconv2d": "dense segmentation's FFT convolution computes on the host (the "
                             "\"c\" or \"numpy\" backend); on the GPU it runs directly",
                "conv2d_packed": "it packs no weights (its conv2d_weight_packed gives None)"}


def gemm(a, b, trans_a, trans_b):
    return _on_device(_gemm.gemm, (a, b), trans_a, trans_b)


def im2col(x, kernel_size, stride, padding):
    return _on_device(_conv.im2col, (x,), kernel_size, stride, padding)


def col2im(cols, x_shape, kernel_size, stride, padding):
    dx = _cuda_api.device_array(tuple(x_shape), dtype=np.float32)
    return _on_device(lambda c: _conv.col2im(c, dx, kernel_size, stride, padding), (cols,))


def conv2d(x, w, b, stride, padding):
    return _on_device(_conv.conv2d, (x, w, b), stride, padding)


def conv2d_weight_packed(w):
    """None: the device kernels read the weight as it is."""
    return None


def conv2d_backward(x, w, dy, stride, padding, need_dx=True):
    return _on_device(_conv.conv2d_backward, (x, w, dy), stride, padding, need_dx)


def linear(x, w, b):
    where = _Placement(x, w, b)
    mode = _gemm.NO_BIAS if b is None else _gemm.BIAS_PER_COLUMN
    y = _gemm.gemm(where.put(x), where.put(w), False, True, bias=where.put(b), bias_mode=mode)
    return where.get(y)


def linear_backward(x, w, dy, need_dx=True):
    where = _Placement(x, w, dy)
    x, w, dy = where.put(x), where.put(w), where.put(dy)
    dx = where.get(_gemm.gemm(dy, w)) if need_dx else None
    dw = _gemm.gemm(dy, x, trans_a=True)
    db = _conv.sum_outer_axes(dy.reshape(dy.shape[0], dy.shape[1], 1))
    return dx, where.get(dw), where.get(db)


def max_pool2d(x, kernel_size, stride):
    return _on_device(_pool.max_pool, (x,), kernel_size, stride)


def max_pool2d_backward(dy, indices, x_shape):
    return _on_device(_pool.max_pool_backward, (dy, indices), tuple(x_shape))


def conv3d(x, w, b, stride, padding):
    return _on_device(_conv3d.conv3d, (x, w, b), stride, padding)


def conv3d_backward(x, w, dy, stride, padding, need_dx=True):
    return _on_device(_conv3d.conv3d_backward, (x, w, dy), stride, padding, need_dx)


def max_pool3d(x, kernel_size, stride):
    return _on_device(_pool.max_pool, (x,), kernel_size, stride)


def max_pool3d_backward(dy, indices, x_shape):
    return _on_device(_pool.max_pool_backward, (dy, indices), tuple(x_shape))


def _activation(name):
    def forward(x):
        return _on_device(functools.partial(_pointwise.activation, name), (x,))

    def backward(x, dy):
        return _on_device(functools.partial(_pointwise.activation_backward, name), (x, dy))

    forward.__name__, backward.__name__ = name, f"{name}_backward"
    return forward, backward


relu, relu_backward = _activation("relu")
tanh, tanh_backward = _activation("tanh")
sigmoid, sigmoid_backward = _activation("sigmoid")
xsin, xsin_backward = _activation("xsin")


def softmax(x):
    return _on_device(_loss.softmax, (x,))


def softmax_cross_entropy(logits, labels, class_weights):
    where = _Placement(logits, labels, class_weights)
    loss, dlogits = _loss.softmax_cross_entropy(where.put(logits), where.put(labels),
                                                where.put(class_weights))
    return loss, where.get(dlogits)


def _in_place(update, arrays, written, *hyper):
    """Run `update` on device copies of host arrays, then copy back those it wrote
    (an absent array, None, stays None)."""
    device = [None if a is None else as_device(a) for a in arrays]
    update(*device, *hyper)
    for host, dev, wrote in zip(arrays, device, written, strict=True):
        if wrote and host is not None and not is_device_array(host):
            dev.copy_to_host(host)


def sgd_update(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step):
    _in_place(_optim.sgd_update, (p, g, buf), (True, False, True), lr, momentum, dampening,
              weight_decay, nesterov, first_step)


def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    _in_place(_optim.adam_update, (p, g, m, v), (True, False, True, True), lr, beta1, beta2,
              eps, weight_decay, step)


def rprop_update(p, g, prev, step_size, eta_minus, eta_plus, step_min, step_max):
    _in_place(_optim.rprop_update, (p, g, prev, step_size), (True, False, True, True),
              eta_minus, eta_plus, step_min, step_max)


# ---- array helpers for nn and optim: kernels for device arrays, NumPy for host ones ----


def zeros(shape, dtype, like):
    """Zeros of `shape` where `like` lives (an empty batch's result stays on the device)."""
    if not is_device_array(like):
        return _host.zeros(shape, dtype, like)
    return _zeros(shape, dtype)



def to_device(a):
    """`a` on the device: device arrays as they are, host arrays copied over."""
    return as_device(a)


def to_host(a):
    """`a` as a NumPy array: host arrays as they are, device arrays copied back."""
    return as_device(a).copy_to_host() if is_device_array(a) else a


def zeros_like(a):
    if not is_device_array(a):
        return _host.zeros_like(a)
    out = _cuda_api.device_array(a.shape, dtype=a.dtype)
    fill(out, 0)
    return out


def full_like(a, value):
    if not is_device_array(a):
        return _host.full_like(a, value)
    out = _cuda_api.device_array(a.shape, dtype=a.dtype)
    fill(out, value)
    return out


def fill_(a, value):
    if not is_device_array(a):
        _host.fill_(a, value)
    else:
        fill(as_device(a), value)


def copy_(dst, src):
    if not is_device_array(dst):
        _host.copy_(dst, to_host(src))
    elif is_device_array(src):
        as_device(dst).copy_to_device(as_device(src))
    else:
        as_device(dst).copy_to_device(np.ascontiguousarray(src, dtype=dst.dtype))


def add_(dst, src):
    if not is_device_array(dst):
        _host.add_(dst, to_host(src))
    else:
        _arrays.add_(as_device(dst), as_device(src))


def mul(a, b):
    scalar = not hasattr(b, "shape")
    if not is_device_array(a) and (scalar or not is_device_array(b)):
        return _host.mul(a, b)
    return _arrays.mul(as_device(a), b if scalar else as_device(b))


def hstack(arrays):
    if not any(is_device_array(a) for a in arrays):
        return _host.hstack(arrays)
    return _arrays.hstack([as_device(a) for a in arrays])


def hsplit(a, widths):
    if not is_device_array(a):
        return _host.hsplit(a, widths)
    return _arrays.hsplit(as_device(a), widths)


def batch_transpose(x):
    if not is_device_array(x):
        return _host.batch_transpose(x)
    return _arrays.batch_transpose(as_device(x))


def dropout(x, keep, scale):
    """`keep` is a host bool array (drawn from fastseg's generator); only its bytes
    travel to the device, where the mask and the product are made."""
    if not is_device_array(x):
        return _host.dropout(x, keep, scale)
    return _arrays.dropout(as_device(x), as_device(keep.view(np.uint8)), scale)
