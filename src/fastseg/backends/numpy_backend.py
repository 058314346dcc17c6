"""The ``"numpy"`` backend: plain NumPy, written to be obviously right.

It is the oracle the compiled backends are tested against, so clarity wins
over speed everywhere here. Every function keeps the dtype it is given, so the
tests can run it in float64 for finite-difference gradient checks; through
:mod:`fastseg.ops` it always sees float32. It fills the whole table of
:mod:`fastseg.backends.contract` but ``to_device``: its arrays are the host's.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fastseg import _validate
from fastseg._shapes import out_size
from fastseg.backends.numpy_conv3d import (  # noqa: F401  (this table's 3-D entries)
    conv3d,
    conv3d_backward,
    max_pool3d,
    max_pool3d_backward,
)
from fastseg.backends.numpy_fftconv import (  # noqa: F401  (dense inference's entries)
    fft_spectra,
    fftconv2d,
)

NOT_PROVIDED = {"to_device": "the host backends keep every array on the host; the \"cuda\" "
                "backend moves arrays to the GPU",
                "conv2d_packed": "it packs no weights (its conv2d_weight_packed gives None)"}

# ---- the checks of the contract: host (NumPy) arrays only ----------------------------

as_float32 = _validate.as_float32
as_indices = _validate.as_indices
as_labels = _validate.as_labels
check_finite = _validate.check_finite
as_inplace = _validate.as_inplace


def gemm(a, b, trans_a, trans_b):
    return np.matmul(a.T if trans_a else a, b.T if trans_b else b)


def gemm_batch(a, b, out):
    return np.matmul(a, b, out=out)


def im2col(x, kernel_size, stride, padding):
    n, c, h, w = x.shape
    k = kernel_size
    oh, ow = out_size(h, k, stride, padding), out_size(w, k, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((c, k, k, n, oh, ow), dtype=x.dtype)
    for ki in range(k):
        for kj in range(k):
            window = xp[:, :, ki : ki + stride * oh : stride, kj : kj + stride * ow : stride]
            cols[:, ki, kj] = window.transpose(1, 0, 2, 3)
    return cols.reshape(c * k * k, n * oh * ow)


def col2im(cols, x_shape, kernel_size, stride, padding):
    n, c, h, w = x_shape
    k = kernel_size
    oh, ow = out_size(h, k, stride, padding), out_size(w, k, stride, padding)
    cols = cols.reshape(c, k, k, n, oh, ow)
    xp = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for ki in range(k):
        for kj in range(k):
            xp[:, :, ki : ki + stride * oh : stride, kj : kj + stride * ow : stride] += cols[
                :, ki, kj
            ].transpose(1, 0, 2, 3)
    return np.ascontiguousarray(xp[:, :, padding : padding + h, padding : padding + w])


def conv2d(x, w, b, stride, padding):
    n, _, h, wd = x.shape
    f, _, k, _ = w.shape
    oh, ow = out_size(h, k, stride, padding), out_size(wd, k, stride, padding)
    cols = im2col(x, k, stride, padding)
    y = (w.reshape(f, -1) @ cols).reshape(f, n, oh, ow).transpose(1, 0, 2, 3)
    if b is not None:
        y = y + b.reshape(1, f, 1, 1)
    return np.ascontiguousarray(y)


def conv2d_weight_packed(w):
    """None: this backend packs nothing, so nothing is saved by packing once."""
    return None


def conv2d_backward(x, w, dy, stride, padding, need_dx=True):
    f, _, k, _ = w.shape
    cols = im2col(x, k, stride, padding)
    dy2 = dy.transpose(1, 0, 2, 3).reshape(f, -1)
    dw = (dy2 @ cols.T).reshape(w.shape)
    db = dy.sum(axis=(0, 2, 3))
    dx = col2im(w.reshape(f, -1).T @ dy2, x.shape, k, stride, padding) if need_dx else None
    return dx, dw, db


def linear(x, w, b):
    y = x @ w.T
    return y + b if b is not None else y


def linear_backward(x, w, dy, need_dx=True):
    return (dy @ w if need_dx else None), dy.T @ x, dy.sum(axis=0)


def max_pool2d(x, kernel_size, stride):
    n, c, h, w = x.shape
    k = kernel_size
    oh, ow = out_size(h, k, stride, 0), out_size(w, k, stride, 0)
    windows = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :oh, :ow]
    flat = windows.reshape(n, c, oh, ow, k * k)
    # np.argmax picks the first maximum and treats NaN as the maximum, as
    # PyTorch's max pooling does.
    arg = np.argmax(flat, axis=-1)
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    rows = np.arange(oh).reshape(oh, 1) * stride + arg // k
    cols = np.arange(ow).reshape(1, ow) * stride + arg % k
    return np.ascontiguousarray(y), (rows * w + cols).astype(np.int64)


def max_pool2d_backward(dy, indices, x_shape):
    n, c, h, w = x_shape
    dx = np.zeros((n * c, h * w), dtype=dy.dtype)
    planes = np.repeat(np.arange(n * c), dy.shape[2] * dy.shape[3])
    np.add.at(dx, (planes, indices.reshape(-1)), dy.reshape(-1))
    return dx.reshape(x_shape)


def relu(x):
    return np.where(x > 0, x, np.zeros((), dtype=x.dtype))


def relu_backward(x, dy):
    return np.where(x > 0, dy, np.zeros((), dtype=dy.dtype))


def tanh(x):
    return np.tanh(x)


def tanh_backward(x, dy):
    t = np.tanh(x)
    return dy * (1 - t * t)


def sigmoid(x):
    # exp of a non-positive number never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(x, dy):
    s = sigmoid(x)
    return dy * s * (1 - s)


def xsin(x):
    return x * np.sin(x)


def xsin_backward(x, dy):
    return dy * (np.sin(x) + x * np.cos(x))


def log_softmax(z, axis=1):
    """Log-softmax of z over `axis` (the classes): the one form of it, behind `softmax`,
    `softmax_cross_entropy` and segment's class-1 probability (which takes its logits'
    rows, axis 0, where they lie contiguous). Shifted by the maximum first, so no exp
    overflows; the sum over a few classes adds them one after another on either axis."""
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(x):
    return np.exp(log_softmax(x))


def softmax_cross_entropy(logits, labels, class_weights):
    n = logits.shape[0]
    log_p = log_softmax(logits)
    rows = np.arange(n)
    weight = np.ones(n, dtype=logits.dtype) if class_weights is None else class_weights[labels]
    total = weight.sum(dtype=np.float64)
    loss = -(weight * log_p[rows, labels]).sum(dtype=np.float64) / total if n else float("nan")
    dlogits = np.exp(log_p)
    dlogits[rows, labels] -= 1
    if n:
        dlogits *= (weight / total).astype(logits.dtype)[:, None]
    return float(loss), dlogits


# ---- optimizer updates: torch.optim's single-tensor rules, in place --------


def sgd_update(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step):
    d = g + weight_decay * p if weight_decay else g.copy()
    if momentum:  # buf is None without momentum
        if first_step:
            buf[...] = d
        else:
            buf *= momentum
            buf += (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    p -= lr * d


def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    d = g + weight_decay * p if weight_decay else g
    m *= beta1
    m += (1 - beta1) * d
    v *= beta2
    v += (1 - beta2) * d * d
    bias1 = 1 - beta1**step
    bias2 = 1 - beta2**step
    denom = np.sqrt(v) / np.sqrt(bias2) + eps
    p -= (lr / bias1) * m / denom


def rprop_update(p, g, prev, step_size, eta_minus, eta_plus, step_min, step_max):
    sign = np.sign(g * prev)
    step_size *= np.where(sign > 0, eta_plus, np.where(sign < 0, eta_minus, 1)).astype(p.dtype)
    np.clip(step_size, step_min, step_max, out=step_size)
    d = np.where(sign < 0, 0, g).astype(p.dtype)
    p -= np.sign(d) * step_size
    prev[...] = d


# ---- array helpers for nn and optim (host arrays; not hot) ------------------


def zeros(shape, dtype, like):
    return np.zeros(shape, dtype)


def to_host(a):
    return np.asarray(a)


def zeros_like(a):
    return np.zeros_like(a)


def full_like(a, value):
    return np.full_like(a, value)


def fill_(a, value):
    a.fill(value)


def copy_(dst, src):
    dst[...] = src


def add_(dst, src):
    dst += src


def mul(a, b):
    return a * b


def hstack(arrays):
    return np.concatenate(arrays, axis=1)


def hsplit(a, widths):
    return [np.ascontiguousarray(part)
            for part in np.split(a, np.cumsum(widths)[:-1].astype(np.intp), axis=1)]


def batch_transpose(x):
    return np.ascontiguousarray(x.transpose(0, 2, 1))


def dropout(x, keep, scale):
    mask = keep.astype(x.dtype) * x.dtype.type(scale)
    return x * mask, mask
