"""The functional API: every kernel of fastseg, on any backend.

Each function checks and converts its arguments once, here, then calls the
same-named entry of the chosen backend's table (:mod:`fastseg.backends`).
``backend=None`` means the current backend (:func:`fastseg.get_backend`).

Arrays are float32, NCHW; other real dtypes and layouts are converted, and a
wrong rank, a channel mismatch or an impossible geometry is a ``ValueError``
or ``TypeError`` naming the argument. An empty batch gives an empty result.
"""
from __future__ import annotations

import numpy as np

from fastseg import _config, _random, backends
from fastseg import _validate as v
from fastseg.errors import InvalidTypeError, InvalidValueError

__all__ = [
    "gemm", "im2col", "col2im", "conv2d", "conv2d_backward", "linear", "linear_backward",
    "max_pool2d", "max_pool2d_backward", "relu", "relu_backward", "tanh", "tanh_backward",
    "sigmoid", "sigmoid_backward", "softmax_cross_entropy",
    "sgd_update", "adam_update", "rprop_update",
    "DEVICES", "device_of", "to_device", "zeros_like", "full_like", "fill_", "copy_", "add_",
    "mul", "hstack", "hsplit", "batch_transpose", "dropout",
]


def _table(backend):
    return backends.load(_config.get_backend() if backend is None else backend)


def _array(be, name, a, ndim=None, layout=""):
    # A backend with arrays of its own (CUDA device arrays) converts them itself.
    convert = getattr(be, "as_float32", None) or v.as_float32
    return convert(name, a, ndim, layout)


def _zeros(like, shape, dtype=np.float32):
    """Zeros of `shape` where `like` lives: an empty batch's results stay on the device
    of its input, as every other result does."""
    if not isinstance(like, np.ndarray) and v.on_device(like):
        from fastseg.backends import _cuda

        return _cuda.zeros(shape, dtype)
    return np.zeros(shape, dtype)


def _geometry(x_shape, k, stride, padding, x_name="x"):
    """Output height and width of a k x k window sliding over padded x."""
    _, c, h, w = x_shape
    if c < 1 or h < 1 or w < 1:
        raise InvalidValueError(f"{x_name}: channels, height and width must be >= 1, got shape "
                                f"{tuple(x_shape)}")
    if h + 2 * padding < k or w + 2 * padding < k:
        raise InvalidValueError(f"kernel_size: {k} is larger than the padded input "
                                f"({h}+2*{padding}, {w}+2*{padding}) of {x_name} {tuple(x_shape)}")
    return (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1


def _window_args(kernel_size, stride, padding):
    k = v.as_square("kernel_size", kernel_size)
    return k, v.as_int("stride", stride, minimum=1), v.as_int("padding", padding, minimum=0)


# ---- dense algebra -----------------------------------------------------------


def gemm(a, b, trans_a=False, trans_b=False, *, backend=None):
    """``op(a) @ op(b)`` in float32, where op transposes when asked.

    Parameters
    ----------
    a, b : array_like, 2-D
    trans_a, trans_b : bool
        Use ``a.T`` / ``b.T`` (no copy is made in the compiled backend).

    Returns
    -------
    ndarray, shape (M, N), float32
    """
    be = _table(backend)
    a = _array(be, "a", a, 2, "(rows, cols)")
    b = _array(be, "b", b, 2, "(rows, cols)")
    ka = a.shape[0] if trans_a else a.shape[1]
    kb = b.shape[1] if trans_b else b.shape[0]
    if ka != kb:
        raise InvalidValueError(f"b: inner dimensions differ: op(a) has shape "
                                f"{a.shape[::-1] if trans_a else a.shape} and op(b) "
                                f"{b.shape[::-1] if trans_b else b.shape}")
    return be.gemm(a, b, bool(trans_a), bool(trans_b))


def linear(x, w, b=None, *, backend=None):
    """Fully connected layer: ``x @ w.T + b`` with x (N, I), w (O, I), b (O,)."""
    be = _table(backend)
    x = _array(be, "x", x, 2, "(batch, in_features)")
    w = _array(be, "w", w, 2, "(out_features, in_features)")
    if w.shape[1] != x.shape[1]:
        raise InvalidValueError(f"w: expected {x.shape[1]} in_features to match x {x.shape}, "
                                f"got shape {w.shape}")
    if b is not None:
        b = _array(be, "b", b, 1, "(out_features,)")
        if b.shape != (w.shape[0],):
            raise InvalidValueError(f"b: expected shape ({w.shape[0]},), got {b.shape}")
    return be.linear(x, w, b)


def linear_backward(x, w, dy, *, need_dx=True, backend=None):
    """Gradients of :func:`linear`: returns ``(dx, dw, db)``.

    With ``need_dx=False`` dx is not computed and comes back as None (a network's first
    layer, whose input needs no gradient, as in PyTorch).
    """
    be = _table(backend)
    x = _array(be, "x", x, 2, "(batch, in_features)")
    w = _array(be, "w", w, 2, "(out_features, in_features)")
    dy = _array(be, "dy", dy, 2, "(batch, out_features)")
    if w.shape[1] != x.shape[1]:
        raise InvalidValueError(f"w: expected {x.shape[1]} in_features to match x {x.shape}, "
                                f"got shape {w.shape}")
    if dy.shape != (x.shape[0], w.shape[0]):
        raise InvalidValueError(f"dy: expected shape {(x.shape[0], w.shape[0])}, got {dy.shape}")
    return be.linear_backward(x, w, dy, bool(need_dx))


# ---- convolution ---------------------------------------------------------------


def im2col(x, kernel_size, stride=1, padding=0, *, backend=None):
    """Unfold x (N, C, H, W) into columns of shape (C*k*k, N*OH*OW).

    Row ``(c*k + i)*k + j`` and column ``(n*OH + oh)*OW + ow`` hold
    ``x[n, c, oh*stride + i - padding, ow*stride + j - padding]``, zero where
    that falls in the padding.
    """
    be = _table(backend)
    k, stride, padding = _window_args(kernel_size, stride, padding)
    x = _array(be, "x", x, 4, "(N, C, H, W)")
    oh, ow = _geometry(x.shape, k, stride, padding)
    v.check_size("im2col", (x.shape[1] * k * k, x.shape[0] * oh * ow))
    return be.im2col(x, k, stride, padding)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, *, backend=None):
    """The adjoint of :func:`im2col`: sum the columns back into an (N, C, H, W) array."""
    be = _table(backend)
    k, stride, padding = _window_args(kernel_size, stride, padding)
    x_shape = _shape4("x_shape", x_shape)
    oh, ow = _geometry(x_shape, k, stride, padding, x_name="x_shape")
    n, c = x_shape[:2]
    cols = _array(be, "cols", cols, 2, "(C*k*k, N*OH*OW)")
    if cols.shape != (c * k * k, n * oh * ow):
        raise InvalidValueError(f"cols: expected shape {(c * k * k, n * oh * ow)} for x_shape "
                                f"{x_shape}, got {cols.shape}")
    return be.col2im(cols, x_shape, k, stride, padding)


def _shape4(name, shape):
    try:
        dims = tuple(v.as_int(name, d, minimum=0) for d in shape)
    except TypeError:
        raise InvalidTypeError(f"{name}: expected a tuple of 4 ints, got {shape!r}") from None
    if len(dims) != 4:
        raise InvalidValueError(f"{name}: expected 4 dimensions (N, C, H, W), got {dims}")
    v.check_size(name, dims)
    return dims


def _conv_args(be, x, w, stride, padding):
    x = _array(be, "x", x, 4, "(N, C, H, W)")
    w = _array(be, "w", w, 4, "(F, C, KH, KW)")
    if w.shape[2] != w.shape[3]:
        raise InvalidValueError(f"w: only square kernels are supported, got shape {w.shape}")
    if w.shape[0] < 1:
        raise InvalidValueError(f"w: needs at least one output channel, got shape {w.shape}")
    if w.shape[1] != x.shape[1]:
        raise InvalidValueError(f"w: expected {x.shape[1]} input channels to match x {x.shape}, "
                                f"got shape {w.shape}")
    stride = v.as_int("stride", stride, minimum=1)
    padding = v.as_int("padding", padding, minimum=0)
    k = w.shape[2]
    oh, ow = _geometry(x.shape, k, stride, padding)
    v.check_size("conv2d", (x.shape[0], w.shape[0], oh, ow))
    v.check_size("im2col", (x.shape[1] * k * k, oh * ow))
    return x, w, stride, padding, (x.shape[0], w.shape[0], oh, ow)


def conv2d(x, w, b=None, stride=1, padding=0, *, backend=None):
    """2-D convolution (cross-correlation, as PyTorch's): x (N,C,H,W), w (F,C,k,k).

    Returns
    -------
    ndarray, shape (N, F, OH, OW) with ``OH = (H + 2*padding - k) // stride + 1``
    """
    be = _table(backend)
    x, w, stride, padding, y_shape = _conv_args(be, x, w, stride, padding)
    if b is not None:
        b = _array(be, "b", b, 1, "(F,)")
        if b.shape != (w.shape[0],):
            raise InvalidValueError(f"b: expected shape ({w.shape[0]},), got {b.shape}")
    if x.shape[0] == 0:
        return _zeros(x, y_shape)
    return be.conv2d(x, w, b, stride, padding)


def conv2d_backward(x, w, dy, stride=1, padding=0, *, need_dx=True, backend=None):
    """Gradients of :func:`conv2d` given dy (N, F, OH, OW): returns ``(dx, dw, db)``.

    With ``need_dx=False`` dx is not computed and comes back as None (a network's first
    layer, whose input needs no gradient, as in PyTorch).
    """
    be = _table(backend)
    x, w, stride, padding, y_shape = _conv_args(be, x, w, stride, padding)
    dy = _array(be, "dy", dy, 4, "(N, F, OH, OW)")
    if dy.shape != y_shape:
        raise InvalidValueError(f"dy: expected shape {y_shape} (the output of conv2d), got "
                                f"{dy.shape}")
    if x.shape[0] == 0:
        return (_zeros(x, x.shape) if need_dx else None, _zeros(x, w.shape),
                _zeros(x, (w.shape[0],)))
    return be.conv2d_backward(x, w, dy, stride, padding, bool(need_dx))


# ---- pooling ----------------------------------------------------------------------


def max_pool2d(x, kernel_size=2, stride=None, *, backend=None):
    """Max pooling without padding (floor mode).

    Returns
    -------
    y : ndarray (N, C, OH, OW)
    indices : ndarray of int64, same shape
        Flat index ``h*W + w`` of each maximum inside its own (H, W) plane,
        as PyTorch's ``return_indices=True`` gives.
    """
    be = _table(backend)
    k = v.as_square("kernel_size", kernel_size)
    stride = k if stride is None else v.as_int("stride", stride, minimum=1)
    x = _array(be, "x", x, 4, "(N, C, H, W)")
    oh, ow = _geometry(x.shape, k, stride, 0)
    if x.shape[0] == 0:
        shape = (0, x.shape[1], oh, ow)
        return _zeros(x, shape), _zeros(x, shape, np.int64)
    return be.max_pool2d(x, k, stride)


def max_pool2d_backward(dy, indices, x_shape, *, backend=None):
    """Gradient of :func:`max_pool2d`: dy routed to the positions in `indices`."""
    be = _table(backend)
    x_shape = _shape4("x_shape", x_shape)
    dy = _array(be, "dy", dy, 4, "(N, C, OH, OW)")
    if dy.shape[:2] != x_shape[:2]:
        raise InvalidValueError(f"dy: batch and channels {dy.shape[:2]} differ from x_shape "
                                f"{x_shape}")
    as_indices = getattr(be, "as_indices", None)
    if as_indices is not None:
        indices = as_indices("indices", indices, dy.shape)
    else:
        v.refuse_device("indices", indices)
        indices = np.asarray(indices)
        if indices.dtype.kind not in "iu":
            raise InvalidTypeError(f"indices: expected integer indices, got dtype {indices.dtype}")
        if indices.shape != dy.shape:
            raise InvalidValueError(f"indices: expected shape {dy.shape} (that of dy), "
                                    f"got {indices.shape}")
        plane = x_shape[2] * x_shape[3]
        if indices.size and (indices.min() < 0 or indices.max() >= plane):
            raise InvalidValueError(f"indices: values must lie in [0, {plane}) for x_shape "
                                    f"{x_shape}")
        indices = np.ascontiguousarray(indices, dtype=np.int64)
    if x_shape[0] == 0:
        return _zeros(dy, x_shape)
    return be.max_pool2d_backward(dy, indices, x_shape)


# ---- activations --------------------------------------------------------------------


def _unary(name):
    def forward(x, *, backend=None):
        be = _table(backend)
        return getattr(be, name)(_array(be, "x", x))

    def backward(x, dy, *, backend=None):
        be = _table(backend)
        x = _array(be, "x", x)
        dy = _array(be, "dy", dy)
        if dy.shape != x.shape:
            raise InvalidValueError(f"dy: expected shape {x.shape} (that of x), got {dy.shape}")
        return getattr(be, name + "_backward")(x, dy)

    forward.__name__, backward.__name__ = name, name + "_backward"
    forward.__doc__ = f"Element-wise {name} of x (any shape)."
    backward.__doc__ = (f"Gradient of {name} at x: dy times {name}'(x). Takes the forward "
                        "input x, not its output.")
    return forward, backward


relu, relu_backward = _unary("relu")
tanh, tanh_backward = _unary("tanh")
sigmoid, sigmoid_backward = _unary("sigmoid")


# ---- loss ------------------------------------------------------------------------------


def softmax_cross_entropy(logits, labels, class_weights=None, *, backend=None):
    """Mean softmax cross-entropy and its gradient, fused and stable.

    Parameters
    ----------
    logits : array (N, K)
    labels : integer array (N,), values in [0, K)
    class_weights : array (K,), optional
        Weights the loss as PyTorch does: ``sum(w[y_i] * l_i) / sum(w[y_i])``.

    Returns
    -------
    loss : float
        NaN for an empty batch, as PyTorch's mean over nothing.
    dlogits : ndarray (N, K)
    """
    be = _table(backend)
    logits = _array(be, "logits", logits, 2, "(batch, classes)")
    n, k = logits.shape
    if k < 1:
        raise InvalidValueError(f"logits: needs at least one class, got shape {logits.shape}")
    if hasattr(be, "check_finite"):
        be.check_finite("logits", logits)
    else:
        v.check_finite("logits", logits)
    labels = (be.as_labels if hasattr(be, "as_labels") else v.as_labels)("labels", labels, n, k)
    if class_weights is not None:
        class_weights = _array(be, "class_weights", class_weights, 1, "(classes,)")
        if class_weights.shape != (k,):
            raise InvalidValueError(f"class_weights: expected shape ({k},), got "
                                    f"{class_weights.shape}")
        if isinstance(class_weights, np.ndarray) and (
            not np.isfinite(class_weights).all() or (class_weights < 0).any()
        ):
            raise InvalidValueError("class_weights: must be finite and non-negative")
    return be.softmax_cross_entropy(logits, labels, class_weights)


# ---- fused optimizer updates (in place; used by fastseg.optim) -------------------------


def _inplace(name, a, shape, be=None):
    if be is not None and not hasattr(be, "as_float32"):
        v.refuse_device(name, a)  # a host backend cannot update a device array
    if not (hasattr(a, "shape") and a.dtype == np.float32 and a.shape == shape):
        raise InvalidTypeError(f"{name}: expected a float32 array of shape {shape} to update in "
                               f"place, got {getattr(a, 'dtype', type(a).__name__)} "
                               f"{getattr(a, 'shape', '')}")
    flags = getattr(a, "flags", None)
    if isinstance(flags, dict):  # Numba device arrays report their flags as a dict
        contiguous, writeable = flags.get("C_CONTIGUOUS", False), flags.get("WRITEABLE", True)
    elif flags is not None:
        contiguous, writeable = flags.c_contiguous, flags.writeable
    else:
        contiguous = writeable = True
    if not (contiguous and writeable):
        raise InvalidValueError(f"{name}: must be C-contiguous and writeable to be updated in "
                                f"place")
    return a


def sgd_update(p, g, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
               first_step=False, *, backend=None):
    """One torch.optim.SGD step on p (in place); buf is the momentum buffer."""
    be = _table(backend)
    arrays = [_inplace(n, a, p.shape, be) for n, a in (("p", p), ("g", g), ("buf", buf))]
    be.sgd_update(*arrays, float(lr), float(momentum), float(dampening), float(weight_decay),
                  bool(nesterov), bool(first_step))


def adam_update(p, g, m, v_, lr, beta1, beta2, eps, weight_decay, step, *, backend=None):
    """One torch.optim.Adam step on p (in place); step counts from 1."""
    be = _table(backend)
    arrays = [_inplace(n, a, p.shape, be)
              for n, a in (("p", p), ("g", g), ("m", m), ("v", v_))]
    be.adam_update(*arrays, float(lr), float(beta1), float(beta2), float(eps),
                   float(weight_decay), v.as_int("step", step, minimum=1))


def rprop_update(p, g, prev, step_size, eta_minus, eta_plus, step_min, step_max, *,
                 backend=None):
    """One torch.optim.Rprop step on p (in place)."""
    be = _table(backend)
    arrays = [_inplace(n, a, p.shape, be)
              for n, a in (("p", p), ("g", g), ("prev", prev), ("step_size", step_size))]
    be.rprop_update(*arrays, float(eta_minus), float(eta_plus), float(step_min), float(step_max))


# ---- devices and array helpers for nn and optim ------------------------------------------
#
# What the layers and optimizers need besides the kernels above, so that a model
# moved to the GPU (``model.to("cuda")`` with the "cuda" backend) keeps its
# parameters, gradients, optimizer state and activations there. The host
# backends implement them with NumPy; the "cuda" backend with small kernels on
# device arrays (and NumPy for host arrays). With ``backend=None`` a helper
# given a device array runs on "cuda" whatever the current backend; the
# kernels above do not: a device array reaching a host backend there is a
# TypeError that says to set the "cuda" backend.

#: The places an array can live: "cpu" (a NumPy array) or "cuda" (a device array).
DEVICES = ("cpu", "cuda")


def device_of(a) -> str:
    """``"cuda"`` for a device array (Numba, or anything with
    ``__cuda_array_interface__``), else ``"cpu"``."""
    return "cuda" if v.on_device(a) else "cpu"


def _table_for(backend, *arrays):
    """The backend table for an array helper: a device array goes to "cuda" whatever
    the current backend (the helpers only manage arrays; the kernels above still
    follow the current backend)."""
    if backend is None and any(not isinstance(a, np.ndarray) and v.on_device(a)
                               for a in arrays):
        backend = "cuda"
    return _table(backend)


def _check_device(device) -> str:
    if device not in DEVICES:
        raise InvalidValueError(f"device: expected one of {list(DEVICES)}, got {device!r}")
    return device


def to_device(a, device):
    """`a` on `device`: as it is when already there, else copied.

    ``"cpu"`` gives a NumPy array, ``"cuda"`` a Numba device array (this needs the
    "cuda" backend to be usable here, whichever backend is current).
    """
    device = _check_device(device)
    if device_of(a) == device:
        return a
    cuda = backends.load("cuda")
    return cuda.to_device(a) if device == "cuda" else cuda.to_host(a)


def zeros_like(a, *, backend=None):
    """Zeros of `a`'s shape, on `a`'s device."""
    be = _table_for(backend, a)
    return be.zeros_like(_array(be, "a", a))


def full_like(a, value, *, backend=None):
    """An array of `a`'s shape filled with `value`, on `a`'s device."""
    be = _table_for(backend, a)
    return be.full_like(_array(be, "a", a), float(value))


def fill_(a, value, *, backend=None):
    """Set every element of `a` (float32, host or device) to `value`, in place."""
    be = _table_for(backend, a)
    be.fill_(_inplace("a", a, getattr(a, "shape", None), be), float(value))


def _dst_src(backend, dst, src):
    """The table, and dst (updated in place) and src checked to share one shape."""
    be = _table_for(backend, dst)
    dst = _inplace("dst", dst, getattr(dst, "shape", None), be)
    src = _array(be, "src", src)
    if tuple(src.shape) != tuple(dst.shape):
        raise InvalidValueError(f"src: expected shape {tuple(dst.shape)} (that of dst), "
                                f"got {tuple(src.shape)}")
    return be, dst, src


def copy_(dst, src, *, backend=None):
    """Copy `src` (any device, same shape) into `dst` (float32, host or device), in place."""
    be, dst, src = _dst_src(backend, dst, src)
    be.copy_(dst, src)


def add_(dst, src, *, backend=None):
    """``dst += src`` in place (dst float32, host or device; src of the same shape)."""
    be, dst, src = _dst_src(backend, dst, src)
    be.add_(dst, src)
    return dst


def mul(a, b, *, backend=None):
    """``a * b`` element-wise, for `b` an array of `a`'s shape or a number."""
    be = _table_for(backend, a, b)
    a = _array(be, "a", a)
    if isinstance(b, (int, float, np.generic)) or (isinstance(b, np.ndarray) and b.ndim == 0):
        b = float(b)
    else:
        b = _array(be, "b", b)
        if tuple(b.shape) != tuple(a.shape):
            raise InvalidValueError(f"b: expected shape {tuple(a.shape)} (that of a), "
                                    f"got {tuple(b.shape)}")
    return be.mul(a, b)


def hstack(arrays, *, backend=None):
    """Join 2-D arrays (N, F_i) along their columns into (N, sum F_i)."""
    if not isinstance(arrays, (list, tuple)) or not arrays:
        raise InvalidValueError("arrays: expected a non-empty list of 2-D arrays")
    be = _table_for(backend, *arrays)
    arrays = [_array(be, f"arrays[{i}]", a, 2, "(batch, features)")
              for i, a in enumerate(arrays)]
    rows = {a.shape[0] for a in arrays}
    if len(rows) != 1:
        raise InvalidValueError(f"arrays: expected one row count, got "
                                f"{[a.shape[0] for a in arrays]}")
    return be.hstack(arrays)


def hsplit(a, widths, *, backend=None):
    """Split a 2-D array (N, sum w) into contiguous blocks (N, w) of `widths` columns."""
    be = _table_for(backend, a)
    a = _array(be, "a", a, 2, "(batch, features)")
    widths = [v.as_int("widths", w, minimum=0) for w in widths]
    if sum(widths) != a.shape[1]:
        raise InvalidValueError(f"widths: {widths} add up to {sum(widths)}, but a has "
                                f"{a.shape[1]} columns")
    return be.hsplit(a, widths)


def batch_transpose(x, *, backend=None):
    """Swap the last two axes of a 3-D array: (B, R, C) -> (B, C, R), contiguous."""
    be = _table_for(backend, x)
    return be.batch_transpose(_array(be, "x", x, 3, "(batch, rows, cols)"))


def dropout(x, p, *, backend=None):
    """Inverted dropout: ``(x * mask, mask)``, zeroing each element with probability `p`
    and scaling the rest by ``1/(1-p)``.

    The draws come from fastseg's generator (:func:`fastseg.seed`) on the host, so
    every backend gives the same mask for the same seed (and a resumed run the same
    masks); for device arrays only the keep/drop bytes go to the device.
    """
    be = _table_for(backend, x)
    x = _array(be, "x", x)
    p = v.as_real("p", p, 0, 1)
    shape = tuple(x.shape)
    if p == 1:
        keep, scale = np.zeros(shape, dtype=bool), 0.0
    else:
        keep = _random.get_rng().random(shape, dtype=np.float32) >= p
        scale = 1.0 / (1.0 - p)
    return be.dropout(x, keep, scale)
