"""The functional API: every kernel of fastseg, on any backend.

Each function checks and converts its arguments once, here, then calls the
same-named entry of the chosen backend's table (:mod:`fastseg.backends`, the
entries declared in :mod:`fastseg.backends.contract`). ``backend=None`` means
the current backend (:func:`fastseg.get_backend`). Arrays go through the
backend's own checks (``as_float32``, ...), so a backend with device arrays
takes them as they are and a host backend refuses them with a clear message.

Arrays are float32, NCHW; other real dtypes and layouts are converted, and a
wrong rank, a channel mismatch or an impossible geometry is a ``ValueError``
or ``TypeError`` naming the argument. An empty batch gives an empty result.

The array helpers nn and optim use (``zeros_like``, ``to_device``, ...) live in
:mod:`fastseg._arrays` and are re-exported here.
"""
from __future__ import annotations

import math

import numpy as np

from fastseg import _arrays, backends
from fastseg import _validate as v
from fastseg._arrays import *  # noqa: F403  (the device/array helpers, re-exported)
from fastseg._shapes import out_sizes, per_axis
from fastseg.errors import InvalidTypeError, InvalidValueError

__all__ = [
    "gemm", "gemm_batch", "im2col", "col2im", "conv2d", "conv2d_backward", "linear",
    "linear_backward", "max_pool2d", "max_pool2d_backward", "conv3d", "conv3d_backward",
    "max_pool3d", "max_pool3d_backward", "relu", "relu_backward", "tanh", "tanh_backward",
    "sigmoid", "sigmoid_backward", "xsin", "xsin_backward", "softmax", "softmax_cross_entropy",
    "sgd_update", "adam_update", "rprop_update",
] + _arrays.__all__


class _Rank:
    """What differs between the 2-D and the 3-D convolution and pooling front doors;
    every check is written once, for both. What each call reads is worked out here,
    once, since the front doors run on every layer of every step."""

    def __init__(self, axes: str, conv: str, cols: str, pool: str):
        self.axes = axes    # the spatial axes' letters, "HW" or "DHW"
        self.conv = conv    # the backend entry (and the name of its output in size errors)
        self.cols = cols    # the column matrix' name in size errors
        self.pool = pool    # the pooling backend entry
        self.dims = len(axes)
        self.ndim = self.dims + 2
        self.square = self.dims == 2  # the 2-D kernels' contract: square kernels
        self.x_layout = self.layout("N", "C")
        self.w_layout = self.layout("F", "C", "K")
        self.dy_layout = self.layout("N", "F", "O")
        self.pooled_layout = self.layout("N", "C", "O")
        # kernel(name, value) and step(name, value, minimum=): an int (square) in 2-D, a
        # triple in 3-D; bound here, not looked up per call.
        self.kernel = v.kernel_size_check(self.dims)
        self.step = v.window_step_check(self.dims)

    def layout(self, batch: str, channels: str, prefix: str = "") -> str:
        """E.g. ``"(N, C, H, W)"``, ``"(F, C, KD, KH, KW)"``."""
        return f"({batch}, {channels}, " + ", ".join(prefix + a for a in self.axes) + ")"


_2D = _Rank("HW", "conv2d", "im2col", "max_pool2d")
_3D = _Rank("DHW", "conv3d", "vol2col", "max_pool3d")
_AXIS_NAMES = {"D": "depth", "H": "height", "W": "width"}


def _geometry(x_shape, k, stride, padding, x_name="x"):
    """Output size along each spatial axis of x (N, C, *spatial) for a window k moved by
    `stride` over x padded by `padding`: each an int for every axis, or a tuple per axis."""
    size = tuple(x_shape[2:])
    if min(x_shape[1:]) < 1:
        names = [_AXIS_NAMES[a] for a in "DHW"[3 - len(size):]]
        raise InvalidValueError(f"{x_name}: channels, {', '.join(names[:-1])} and {names[-1]} "
                                f"must be >= 1, got shape {tuple(x_shape)}")
    out = out_sizes(size, k, stride, padding)
    if 0 in out:  # out_size is 0 exactly where the padded extent is shorter than the window
        padded = ", ".join(f"{n}+2*{p}" for n, p in
                           zip(size, per_axis(padding, len(size)), strict=True))
        raise InvalidValueError(f"kernel_size: {k} is larger than the padded input ({padded}) "
                                f"of {x_name} {tuple(x_shape)}")
    return out


def _shape(name, shape, rank: _Rank):
    """An x_shape argument: `rank.ndim` non-negative ints of a size the kernels can index."""
    try:
        dims = tuple(v.as_int(name, d, minimum=0) for d in shape)
    except TypeError:
        raise InvalidTypeError(f"{name}: expected a tuple of {rank.ndim} ints, got "
                               f"{shape!r}") from None
    if len(dims) != rank.ndim:
        raise InvalidValueError(f"{name}: expected {rank.ndim} dimensions "
                                f"{rank.x_layout}, got {dims}")
    v.check_size(name, dims)
    return dims


def _window_args(kernel_size, stride, padding):
    k = _2D.kernel("kernel_size", kernel_size)
    return k, _2D.step("stride", stride, minimum=1), _2D.step("padding", padding, minimum=0)


def _bias(be, b, count: int, layout: str):
    """The optional bias of a layer with `count` outputs, checked by the backend."""
    if b is None:
        return None
    b = be.as_float32("b", b, 1, layout)
    if tuple(b.shape) != (count,):
        raise InvalidValueError(f"b: expected shape ({count},), got {tuple(b.shape)}")
    return b


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
    be = backends.table(backend)
    a = be.as_float32("a", a, 2, "(rows, cols)")
    b = be.as_float32("b", b, 2, "(rows, cols)")
    ka = a.shape[0] if trans_a else a.shape[1]
    kb = b.shape[1] if trans_b else b.shape[0]
    if ka != kb:
        raise InvalidValueError(f"b: inner dimensions differ: op(a) has shape "
                                f"{a.shape[::-1] if trans_a else a.shape} and op(b) "
                                f"{b.shape[::-1] if trans_b else b.shape}")
    return be.gemm(a, b, bool(trans_a), bool(trans_b))


def gemm_batch(a, b, out=None, *, backend=None):
    """``out[i] = a[i] @ b[i]`` for every matrix of a stack, in one call.

    Parameters
    ----------
    a : array_like, (B, M, K)
    b : array_like, (B, K, N)
    out : ndarray, (B, M, N) float32, optional
        Written in place (C-contiguous); a new array when None.

    Returns
    -------
    ndarray, shape (B, M, N), float32
    """
    be = backends.table(backend)
    a = be.as_float32("a", a, 3, "(batch, rows, cols)")
    b = be.as_float32("b", b, 3, "(batch, rows, cols)")
    if b.shape[0] != a.shape[0] or b.shape[1] != a.shape[2]:
        raise InvalidValueError(f"b: expected shape ({a.shape[0]}, {a.shape[2]}, N) to follow "
                                f"a {a.shape}, got {b.shape}")
    shape = (a.shape[0], a.shape[1], b.shape[2])
    out = np.empty(shape, np.float32) if out is None else be.as_inplace("out", out, shape)
    return be.gemm_batch(a, b, out)


def linear(x, w, b=None, *, backend=None):
    """Fully connected layer: ``x @ w.T + b`` with x (N, I), w (O, I), b (O,)."""
    be = backends.table(backend)
    x = be.as_float32("x", x, 2, "(batch, in_features)")
    w = be.as_float32("w", w, 2, "(out_features, in_features)")
    if w.shape[1] != x.shape[1]:
        raise InvalidValueError(f"w: expected {x.shape[1]} in_features to match x {x.shape}, "
                                f"got shape {w.shape}")
    return be.linear(x, w, _bias(be, b, w.shape[0], "(out_features,)"))


def linear_backward(x, w, dy, *, need_dx=True, backend=None):
    """Gradients of :func:`linear`: returns ``(dx, dw, db)``.

    With ``need_dx=False`` dx is not computed and comes back as None (a network's first
    layer, whose input needs no gradient, as in PyTorch).
    """
    be = backends.table(backend)
    x = be.as_float32("x", x, 2, "(batch, in_features)")
    w = be.as_float32("w", w, 2, "(out_features, in_features)")
    dy = be.as_float32("dy", dy, 2, "(batch, out_features)")
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
    be = backends.table(backend)
    k, stride, padding = _window_args(kernel_size, stride, padding)
    x = be.as_float32("x", x, 4, "(N, C, H, W)")
    oh, ow = _geometry(x.shape, k, stride, padding)
    v.check_size("im2col", (x.shape[1] * k * k, x.shape[0] * oh * ow))
    return be.im2col(x, k, stride, padding)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, *, backend=None):
    """The adjoint of :func:`im2col`: sum the columns back into an (N, C, H, W) array."""
    be = backends.table(backend)
    k, stride, padding = _window_args(kernel_size, stride, padding)
    x_shape = _shape("x_shape", x_shape, _2D)
    oh, ow = _geometry(x_shape, k, stride, padding, x_name="x_shape")
    n, c = x_shape[:2]
    cols = be.as_float32("cols", cols, 2, "(C*k*k, N*OH*OW)")
    if cols.shape != (c * k * k, n * oh * ow):
        raise InvalidValueError(f"cols: expected shape {(c * k * k, n * oh * ow)} for x_shape "
                                f"{x_shape}, got {cols.shape}")
    return be.col2im(cols, x_shape, k, stride, padding)


def _conv_args(be, rank: _Rank, x, w, stride, padding):
    x = be.as_float32("x", x, rank.ndim, rank.x_layout)
    w = be.as_float32("w", w, rank.ndim, rank.w_layout)
    if rank.square and w.shape[2] != w.shape[3]:
        raise InvalidValueError(f"w: only square kernels are supported, got shape "
                                f"{tuple(w.shape)}")
    if w.shape[0] < 1 or min(w.shape[2:]) < 1:
        raise InvalidValueError(f"w: needs at least one output channel and a kernel of at "
                                f"least {'x'.join('1' * len(rank.axes))}, got shape "
                                f"{tuple(w.shape)}")
    if w.shape[1] != x.shape[1]:
        raise InvalidValueError(f"w: expected {x.shape[1]} input channels to match x "
                                f"{tuple(x.shape)}, got shape {tuple(w.shape)}")
    stride = rank.step("stride", stride, minimum=1)
    padding = rank.step("padding", padding, minimum=0)
    k = w.shape[2] if rank.square else tuple(w.shape[2:])
    out = _geometry(x.shape, k, stride, padding)
    y_shape = (x.shape[0], w.shape[0], *out)
    v.check_size(rank.conv, y_shape)
    v.check_size(rank.cols, (x.shape[1] * math.prod(w.shape[2:]), math.prod(out)))
    return x, w, stride, padding, y_shape


def _conv(rank: _Rank, x, w, b, stride, padding, backend):
    be = backends.table(backend)
    x, w, stride, padding, y_shape = _conv_args(be, rank, x, w, stride, padding)
    b = _bias(be, b, w.shape[0], "(F,)")
    if x.shape[0] == 0:
        return be.zeros(y_shape, np.float32, x)
    return getattr(be, rank.conv)(x, w, b, stride, padding)


def _conv_backward(rank: _Rank, x, w, dy, stride, padding, need_dx, backend):
    be = backends.table(backend)
    x, w, stride, padding, y_shape = _conv_args(be, rank, x, w, stride, padding)
    dy = be.as_float32("dy", dy, rank.ndim, rank.dy_layout)
    if tuple(dy.shape) != y_shape:
        raise InvalidValueError(f"dy: expected shape {y_shape} (the output of {rank.conv}), "
                                f"got {tuple(dy.shape)}")
    if x.shape[0] == 0:
        return (be.zeros(x.shape, np.float32, x) if need_dx else None,
                be.zeros(w.shape, np.float32, x), be.zeros((w.shape[0],), np.float32, x))
    return getattr(be, rank.conv + "_backward")(x, w, dy, stride, padding, bool(need_dx))


def conv2d(x, w, b=None, stride=1, padding=0, *, backend=None):
    """2-D convolution (cross-correlation, as PyTorch's): x (N,C,H,W), w (F,C,k,k).

    Returns
    -------
    ndarray, shape (N, F, OH, OW) with ``OH = (H + 2*padding - k) // stride + 1``
    """
    return _conv(_2D, x, w, b, stride, padding, backend)


def conv2d_backward(x, w, dy, stride=1, padding=0, *, need_dx=True, backend=None):
    """Gradients of :func:`conv2d` given dy (N, F, OH, OW): returns ``(dx, dw, db)``.

    With ``need_dx=False`` dx is not computed and comes back as None (a network's first
    layer, whose input needs no gradient, as in PyTorch).
    """
    return _conv_backward(_2D, x, w, dy, stride, padding, need_dx, backend)


# ---- pooling ----------------------------------------------------------------------


def _max_pool(rank: _Rank, x, kernel_size, stride, backend):
    be = backends.table(backend)
    k = rank.kernel("kernel_size", kernel_size)
    stride = k if stride is None else rank.step("stride", stride, minimum=1)
    x = be.as_float32("x", x, rank.ndim, rank.x_layout)
    out = _geometry(x.shape, k, stride, 0)
    if x.shape[0] == 0:
        shape = (0, x.shape[1], *out)
        return be.zeros(shape, np.float32, x), be.zeros(shape, np.int64, x)
    return getattr(be, rank.pool)(x, k, stride)


def _max_pool_backward(rank: _Rank, dy, indices, x_shape, backend):
    be = backends.table(backend)
    x_shape = _shape("x_shape", x_shape, rank)
    dy = be.as_float32("dy", dy, rank.ndim, rank.pooled_layout)
    if tuple(dy.shape[:2]) != x_shape[:2]:
        raise InvalidValueError(f"dy: batch and channels {tuple(dy.shape[:2])} differ from "
                                f"x_shape {x_shape}")
    # Each index points into its own (H, W) plane, or (D, H, W) volume, of x.
    indices = be.as_indices("indices", indices, dy.shape, math.prod(x_shape[2:]))
    if x_shape[0] == 0:
        return be.zeros(x_shape, np.float32, dy)
    return getattr(be, rank.pool + "_backward")(dy, indices, x_shape)


def max_pool2d(x, kernel_size=2, stride=None, *, backend=None):
    """Max pooling without padding (floor mode).

    Returns
    -------
    y : ndarray (N, C, OH, OW)
    indices : ndarray of int64, same shape
        Flat index ``h*W + w`` of each maximum inside its own (H, W) plane,
        as PyTorch's ``return_indices=True`` gives.
    """
    return _max_pool(_2D, x, kernel_size, stride, backend)


def max_pool2d_backward(dy, indices, x_shape, *, backend=None):
    """Gradient of :func:`max_pool2d`: dy routed to the positions in `indices`."""
    return _max_pool_backward(_2D, dy, indices, x_shape, backend)


# ---- 3-D convolution and pooling ---------------------------------------------------
#
# Volumes are (N, C, D, H, W); kernel sizes, strides and paddings are an int or a
# (depth, height, width) triple, as in torch.nn.functional.conv3d / max_pool3d.


def conv3d(x, w, b=None, stride=1, padding=0, *, backend=None):
    """3-D convolution (cross-correlation, as PyTorch's): x (N,C,D,H,W), w (F,C,KD,KH,KW).

    Parameters
    ----------
    x : array (N, C, D, H, W)
    w : array (F, C, KD, KH, KW)
    b : array (F,), optional
    stride, padding : int or (int, int, int)
        Per axis (depth, height, width); an int applies to all three.

    Returns
    -------
    ndarray, shape (N, F, OD, OH, OW) with ``OD = (D + 2*padding - KD) // stride + 1``
    (and likewise along height and width)
    """
    return _conv(_3D, x, w, b, stride, padding, backend)


def conv3d_backward(x, w, dy, stride=1, padding=0, *, need_dx=True, backend=None):
    """Gradients of :func:`conv3d` given dy (N, F, OD, OH, OW): returns ``(dx, dw, db)``.

    With ``need_dx=False`` dx is not computed and comes back as None (a network's first
    layer, whose input needs no gradient, as in PyTorch).
    """
    return _conv_backward(_3D, x, w, dy, stride, padding, need_dx, backend)


def max_pool3d(x, kernel_size=2, stride=None, *, backend=None):
    """3-D max pooling without padding (floor mode).

    Parameters
    ----------
    x : array (N, C, D, H, W)
    kernel_size : int or (int, int, int)
    stride : int or (int, int, int), optional
        Defaults to `kernel_size`.

    Returns
    -------
    y : ndarray (N, C, OD, OH, OW)
    indices : ndarray of int64, same shape
        Flat index ``(d*H + h)*W + w`` of each maximum inside its own (D, H, W) volume,
        as PyTorch's ``return_indices=True`` gives.
    """
    return _max_pool(_3D, x, kernel_size, stride, backend)


def max_pool3d_backward(dy, indices, x_shape, *, backend=None):
    """Gradient of :func:`max_pool3d`: dy routed to the positions in `indices`."""
    return _max_pool_backward(_3D, dy, indices, x_shape, backend)


# ---- activations --------------------------------------------------------------------


def _unary(name):
    def forward(x, *, backend=None):
        be = backends.table(backend)
        return getattr(be, name)(be.as_float32("x", x))

    def backward(x, dy, *, backend=None):
        be = backends.table(backend)
        x = be.as_float32("x", x)
        dy = be.as_float32("dy", dy)
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
xsin, xsin_backward = _unary("xsin")  # x*sin(x), a non-monotonic activation


# ---- loss ------------------------------------------------------------------------------


def softmax(x, *, backend=None):
    """Softmax over the classes of x (N, K): each row becomes probabilities summing to 1.

    Stable for logits of any finite size (shifted by the row maximum).

    Returns
    -------
    ndarray (N, K), float32
    """
    be = backends.table(backend)
    x = be.as_float32("x", x, 2, "(batch, classes)")
    if x.shape[1] < 1:
        raise InvalidValueError(f"x: needs at least one class, got shape {x.shape}")
    return be.softmax(x)


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
    be = backends.table(backend)
    logits = be.as_float32("logits", logits, 2, "(batch, classes)")
    n, k = logits.shape
    if k < 1:
        raise InvalidValueError(f"logits: needs at least one class, got shape {logits.shape}")
    be.check_finite("logits", logits)
    labels = be.as_labels("labels", labels, n, k)
    if class_weights is not None:
        class_weights = be.as_float32("class_weights", class_weights, 1, "(classes,)")
        if class_weights.shape != (k,):
            raise InvalidValueError(f"class_weights: expected shape ({k},), got "
                                    f"{class_weights.shape}")
        be.check_finite("class_weights", class_weights)
        if isinstance(class_weights, np.ndarray) and (class_weights < 0).any():
            raise InvalidValueError("class_weights: must be non-negative")
    return be.softmax_cross_entropy(logits, labels, class_weights)


# ---- fused optimizer updates (in place; used by fastseg.optim) -------------------------


def _updated(be, p, **others):
    """p and the other arrays an update writes or reads, each checked by the backend to
    be a float32 C-contiguous writeable array of p's shape."""
    shape = getattr(p, "shape", ())
    return [be.as_inplace("p", p, shape)] + [be.as_inplace(name, a, shape)
                                              for name, a in others.items()]


def sgd_update(p, g, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
               first_step=False, *, backend=None):
    """One torch.optim.SGD step on p (in place); buf is the momentum buffer, None without
    momentum (the kernels then neither read nor write it)."""
    be = backends.table(backend)
    p, g = _updated(be, p, g=g)
    if buf is None and momentum != 0:
        raise InvalidValueError(f"buf: momentum {momentum} needs a buffer, got None")
    buf = None if buf is None else be.as_inplace("buf", buf, p.shape)
    be.sgd_update(p, g, buf, float(lr), float(momentum), float(dampening), float(weight_decay),
                  bool(nesterov), bool(first_step))


def adam_update(p, g, m, v_, lr, beta1, beta2, eps, weight_decay, step, *, backend=None):
    """One torch.optim.Adam step on p (in place); step counts from 1."""
    be = backends.table(backend)
    arrays = _updated(be, p, g=g, m=m, v=v_)
    be.adam_update(*arrays, float(lr), float(beta1), float(beta2), float(eps),
                   float(weight_decay), v.as_int("step", step, minimum=1))


def rprop_update(p, g, prev, step_size, eta_minus, eta_plus, step_min, step_max, *,
                 backend=None):
    """One torch.optim.Rprop step on p (in place)."""
    be = backends.table(backend)
    arrays = _updated(be, p, g=g, prev=prev, step_size=step_size)
    be.rprop_update(*arrays, float(eta_minus), float(eta_plus), float(step_min), float(step_max))
