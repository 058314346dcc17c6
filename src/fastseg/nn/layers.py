"""The layers with weights or geometry: Conv2d, Linear, MaxPool2d, Dropout, Flatten.

Each calls :mod:`fastseg.ops`, so it runs on the current backend. In training
mode ``forward`` keeps what ``backward`` needs; in eval mode it keeps nothing.
"""
from __future__ import annotations

import math

import numpy as np

from fastseg import _validate as v
from fastseg import ops
from fastseg._shapes import out_sizes, per_axis
from fastseg.errors import InvalidValueError
from fastseg.nn import init
from fastseg.nn.module import Module, Parameter

__all__ = ["Conv2d", "Linear", "MaxPool2d", "Dropout", "Flatten", "PixelLogits"]


def _contiguous(x):
    """NumPy inputs as arrays (they may be lists); device arrays are left as they are."""
    return np.asarray(x) if isinstance(x, (list, tuple)) else x


def _shape_of(x) -> tuple[int, ...]:
    shape = getattr(x, "shape", None)
    return tuple(np.shape(x)) if shape is None else tuple(shape)


def _jsonable(value):
    """A size as a model file stores it: an int, or a list for a triple."""
    return list(value) if isinstance(value, tuple) else value


class _Weighted(Module):
    """A layer with a weight and an optional bias (Conv2d, Conv3d, Linear): both made as
    PyTorch makes them, given their gradients together."""

    def _make_parameters(self, shape, fan_in, bias) -> None:
        """The weight of `shape` (its first axis the outputs) and, if `bias`, the bias."""
        self.weight = Parameter(init.default_weight(shape, fan_in))
        if bias:
            self.bias = Parameter(init.default_bias(shape[:1], fan_in))
        else:
            self.register_parameter("bias", None)

    def _accumulate_grads(self, dw, db) -> None:
        self.weight.accumulate_grad(dw)
        if self.bias is not None:
            self.bias.accumulate_grad(db)


class _ConvNd(_Weighted):
    """What Conv2d and Conv3d share: the weight and bias made as PyTorch makes them,
    forward and backward through the rank's op pair (``ops.conv2d`` and
    ``ops.conv2d_backward``, ...), the parameter gradients accumulated.

    A subclass sets ``_dims`` (2 or 3; it decides how sizes are read and kept, see
    :func:`fastseg._validate.as_kernel_size`), ``_op`` (the ``ops`` function) and
    ``_axes`` (the spatial axes in messages).
    """

    _dims: int
    _op: str
    _axes: str

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, bias):
        super().__init__()
        self.in_channels = v.as_int("in_channels", in_channels, minimum=1)
        self.out_channels = v.as_int("out_channels", out_channels, minimum=1)
        self.kernel_size = v.as_kernel_size("kernel_size", kernel_size, self._dims)
        self.stride = v.as_window_step("stride", stride, self._dims, minimum=1)
        self.padding = v.as_window_step("padding", padding, self._dims, minimum=0)
        kernel = per_axis(self.kernel_size, self._dims)
        fan_in = self.in_channels * math.prod(kernel)
        self._make_parameters((self.out_channels, self.in_channels, *kernel), fan_in, bias)
        self._x = None

    def _output_size(self, *size) -> tuple[int, ...]:
        return out_sizes(size, self.kernel_size, self.stride, self.padding)

    def forward(self, x):
        shape = _shape_of(x)
        if len(shape) != self._dims + 2 or shape[1] != self.in_channels:
            raise InvalidValueError(f"{self._short_name()}: expected input of shape "
                                    f"(N, {self.in_channels}, {self._axes}), got {shape}")
        bias = None if self.bias is None else self.bias.data
        y = getattr(ops, self._op)(x, self.weight.data, bias, self.stride, self.padding)
        self._x = x if self.training else None
        return y

    accepts_need_dx = True

    def backward(self, dy, need_dx=True):
        x = self._saved(self._x)
        dx, dw, db = getattr(ops, self._op + "_backward")(x, self.weight.data, dy, self.stride,
                                                          self.padding, need_dx=need_dx)
        self._accumulate_grads(dw, db)
        return dx

    def config(self) -> dict:
        """The constructor arguments (for :func:`fastseg.save`)."""
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": _jsonable(self.kernel_size), "stride": _jsonable(self.stride),
                "padding": _jsonable(self.padding), "bias": self.bias is not None}

    def extra_repr(self) -> str:
        k, s, p = (per_axis(a, self._dims) for a in (self.kernel_size, self.stride,
                                                      self.padding))
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={k}, stride={s}"
        if any(p):
            text += f", padding={p}"
        return text + ("" if self.bias is not None else ", bias=False")


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation), square kernels, as ``torch.nn.Conv2d``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
        A square kernel; a pair must hold two equal numbers.
    stride, padding : int
    bias : bool

    Attributes
    ----------
    weight : Parameter, shape (out_channels, in_channels, k, k)
    bias : Parameter (out_channels,) or None
    kernel_size, stride, padding : int
    """

    _dims, _op, _axes = 2, "conv2d", "H, W"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output (height, width) for an input of (height, width)."""
        return self._output_size(height, width)


class Linear(_Weighted):
    """Fully connected layer ``y = x @ weight.T + bias``, as ``torch.nn.Linear``.

    Attributes
    ----------
    weight : Parameter, shape (out_features, in_features)
    bias : Parameter (out_features,) or None
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = v.as_int("in_features", in_features, minimum=1)
        self.out_features = v.as_int("out_features", out_features, minimum=1)
        self._make_parameters((self.out_features, self.in_features), self.in_features, bias)
        self._x = None

    def forward(self, x):
        shape = _shape_of(x)
        if len(shape) != 2 or shape[1] != self.in_features:
            raise InvalidValueError(f"{self._short_name()}: expected input of shape "
                                    f"(N, {self.in_features}), got {shape}")
        y = ops.linear(x, self.weight.data, None if self.bias is None else self.bias.data)
        self._x = x if self.training else None
        return y

    accepts_need_dx = True

    def backward(self, dy, need_dx=True):
        x = self._saved(self._x)
        dx, dw, db = ops.linear_backward(x, self.weight.data, dy, need_dx=need_dx)
        self._accumulate_grads(dw, db)
        return dx

    def config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None}

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class _MaxPoolNd(Module):
    """What MaxPool2d and MaxPool3d share; a subclass sets ``_dims``, ``_op`` and
    ``_axes`` as a :class:`_ConvNd` does."""

    _dims: int
    _op: str
    _axes: str

    def __init__(self, kernel_size, stride):
        super().__init__()
        self.kernel_size = v.as_kernel_size("kernel_size", kernel_size, self._dims)
        self.stride = (self.kernel_size if stride is None else
                       v.as_window_step("stride", stride, self._dims, minimum=1))
        self._saved_state = None

    def _output_size(self, *size) -> tuple[int, ...]:
        return out_sizes(size, self.kernel_size, self.stride)

    def forward(self, x):
        shape = _shape_of(x)
        if len(shape) != self._dims + 2:
            raise InvalidValueError(f"{self._short_name()}: expected input of shape "
                                    f"(N, C, {self._axes}), got {shape}")
        y, indices = getattr(ops, self._op)(x, self.kernel_size, self.stride)
        self._saved_state = (indices, shape) if self.training else None
        return y

    def backward(self, dy):
        indices, shape = self._saved(self._saved_state)
        return getattr(ops, self._op + "_backward")(dy, indices, shape)

    def config(self) -> dict:
        return {"kernel_size": _jsonable(self.kernel_size), "stride": _jsonable(self.stride)}

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class MaxPool2d(_MaxPoolNd):
    """Max pooling without padding (floor mode); ``stride`` defaults to ``kernel_size``."""

    _dims, _op, _axes = 2, "max_pool2d", "H, W"

    def __init__(self, kernel_size, stride=None):
        super().__init__(kernel_size, stride)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return self._output_size(height, width)


class Dropout(Module):
    """Inverted dropout: zero each input with probability `p` and scale the rest by 1/(1-p).

    The mask is drawn from fastseg's generator (:func:`fastseg.seed`), the same on
    every backend (:func:`fastseg.ops.dropout`). In eval mode it is the identity.
    """

    def __init__(self, p=0.5):
        super().__init__()
        self.p = v.as_real("p", p, 0, 1)  # the probability of zeroing an input
        self._mask = None

    def forward(self, x):
        if not self.training:
            self._mask = None
            return x
        y, self._mask = ops.dropout(x, self.p)
        return y

    def backward(self, dy):
        return ops.mul(dy, self._saved(self._mask))

    def config(self) -> dict:
        return {"p": self.p}

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Flatten(Module):
    """Merge dimensions ``start_dim..end_dim`` into one (default: all but the batch)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = v.as_int("start_dim", start_dim)
        self.end_dim = v.as_int("end_dim", end_dim)
        self._shape = None

    def forward(self, x):
        shape = _shape_of(x)
        start, end = self.start_dim % len(shape), self.end_dim % len(shape)
        if start > end:
            raise InvalidValueError(f"{self._short_name()}: start_dim comes after end_dim for an "
                                    f"input of shape {shape}")
        merged = math.prod(shape[start:end + 1])
        self._shape = shape if self.training else None
        return x.reshape(shape[:start] + (merged,) + shape[end + 1:])

    def backward(self, dy):
        return dy.reshape(self._saved(self._shape))

    def config(self) -> dict:
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class PixelLogits(Module):
    """Turn whole-image logits (N, K*H*W) into per-pixel rows (N*H*W, K).

    The input vector of each image is read as a (K, H, W) block (class-major),
    so row ``(n*H + i)*W + j`` of the output holds the K class scores of pixel
    (i, j) of image n, and ``labels = masks.reshape(-1)`` fits it directly.
    """

    def __init__(self, num_classes, height, width):
        super().__init__()
        self.num_classes = v.as_int("num_classes", num_classes, minimum=1)
        self.height = v.as_int("height", height, minimum=1)
        self.width = v.as_int("width", width, minimum=1)
        self._n = None

    def forward(self, x):
        shape = _shape_of(x)
        k, h, w = self.num_classes, self.height, self.width
        if len(shape) != 2 or shape[1] != k * h * w:
            raise InvalidValueError(f"{self._short_name()}: expected input of shape (N, "
                                    f"{k * h * w}), "
                                    f"got {shape}")
        self._n = shape[0] if self.training else None
        return ops.batch_transpose(_contiguous(x).reshape(shape[0], k, h * w)).reshape(-1, k)

    def backward(self, dy):
        n = self._saved(self._n)
        k, hw = self.num_classes, self.height * self.width
        return ops.batch_transpose(_contiguous(dy).reshape(n, hw, k)).reshape(n, k * hw)

    def config(self) -> dict:
        return {"num_classes": self.num_classes, "height": self.height, "width": self.width}

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, height={self.height}, width={self.width}"
