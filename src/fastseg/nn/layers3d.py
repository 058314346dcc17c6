"""The volume layers: Conv3d and MaxPool3d, as ``torch.nn.Conv3d`` / ``torch.nn.MaxPool3d``.

Inputs are (N, C, D, H, W); kernel sizes, strides and paddings are an int or a
(depth, height, width) triple and are kept as triples, as PyTorch keeps them.
Each layer calls :mod:`fastseg.ops`, so it runs on the current backend; in
training mode ``forward`` keeps what ``backward`` needs.
"""
from __future__ import annotations

from fastseg import _validate as v
from fastseg import ops
from fastseg._shapes import out_size
from fastseg.errors import InvalidValueError
from fastseg.nn import init
from fastseg.nn.layers import _shape_of
from fastseg.nn.module import Module, Parameter

__all__ = ["Conv3d", "MaxPool3d"]


def _triple_text(t) -> str:
    return f"({t[0]}, {t[1]}, {t[2]})"


class Conv3d(Module):
    """3-D convolution (cross-correlation), as ``torch.nn.Conv3d``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int, int)
        (depth, height, width); an int is a cube.
    stride, padding : int or (int, int, int)
    bias : bool

    Attributes
    ----------
    weight : Parameter, shape (out_channels, in_channels, kd, kh, kw)
    bias : Parameter (out_channels,) or None
    kernel_size, stride, padding : (int, int, int)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.in_channels = v.as_int("in_channels", in_channels, minimum=1)
        self.out_channels = v.as_int("out_channels", out_channels, minimum=1)
        self.kernel_size = v.as_triple("kernel_size", kernel_size, minimum=1)
        self.stride = v.as_triple("stride", stride, minimum=1)
        self.padding = v.as_triple("padding", padding, minimum=0)
        kd, kh, kw = self.kernel_size
        fan_in = self.in_channels * kd * kh * kw
        shape = (self.out_channels, self.in_channels, kd, kh, kw)
        self.weight = Parameter(init.default_weight(shape, fan_in))
        if bias:
            self.bias = Parameter(init.default_bias((self.out_channels,), fan_in))
        else:
            self.register_parameter("bias", None)
        self._x = None

    def output_size(self, depth: int, height: int, width: int) -> tuple[int, int, int]:
        """Output (depth, height, width) for an input of (depth, height, width)."""
        return tuple(out_size(size, k, s, p) for size, k, s, p in
                     zip((depth, height, width), self.kernel_size, self.stride, self.padding,
                         strict=True))

    def forward(self, x):
        shape = _shape_of(x)
        if len(shape) != 5 or shape[1] != self.in_channels:
            raise InvalidValueError(f"{self._short_name()}: expected input of shape "
                                    f"(N, {self.in_channels}, D, H, W), got {shape}")
        bias = None if self.bias is None else self.bias.data
        y = ops.conv3d(x, self.weight.data, bias, self.stride, self.padding)
        self._x = x if self.training else None
        return y

    accepts_need_dx = True

    def backward(self, dy, need_dx=True):
        x = self._saved(self._x)
        dx, dw, db = ops.conv3d_backward(x, self.weight.data, dy, self.stride, self.padding,
                                         need_dx=need_dx)
        self.weight.accumulate_grad(dw)
        if self.bias is not None:
            self.bias.accumulate_grad(db)
        return dx

    def config(self) -> dict:
        """The constructor arguments (for :func:`fastseg.save`)."""
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "bias": self.bias is not None}

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, "
                f"kernel_size={_triple_text(self.kernel_size)}, "
                f"stride={_triple_text(self.stride)}")
        if any(self.padding):
            text += f", padding={_triple_text(self.padding)}"
        return text + ("" if self.bias is not None else ", bias=False")


class MaxPool3d(Module):
    """3-D max pooling without padding (floor mode), as ``torch.nn.MaxPool3d``;
    ``stride`` defaults to ``kernel_size``."""

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = v.as_triple("kernel_size", kernel_size, minimum=1)
        self.stride = self.kernel_size if stride is None else v.as_triple("stride", stride,
                                                                          minimum=1)
        self._saved_state = None

    def output_size(self, depth: int, height: int, width: int) -> tuple[int, int, int]:
        return tuple(out_size(size, k, s) for size, k, s in
                     zip((depth, height, width), self.kernel_size, self.stride, strict=True))

    def forward(self, x):
        shape = _shape_of(x)
        if len(shape) != 5:
            raise InvalidValueError(f"{self._short_name()}: expected input of shape "
                                    f"(N, C, D, H, W), got {shape}")
        y, indices = ops.max_pool3d(x, self.kernel_size, self.stride)
        self._saved_state = (indices, shape) if self.training else None
        return y

    def backward(self, dy):
        indices, shape = self._saved(self._saved_state)
        return ops.max_pool3d_backward(dy, indices, shape)

    def config(self) -> dict:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride)}

    def extra_repr(self) -> str:
        return f"kernel_size={_triple_text(self.kernel_size)}, stride={_triple_text(self.stride)}"
