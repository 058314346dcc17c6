"""Element-wise activations: ReLU, Tanh, Sigmoid, XSin (each keeps its input for backward)."""
from __future__ import annotations

from fastseg import ops
from fastseg.nn.module import Module

__all__ = ["Activation", "ReLU", "Tanh", "Sigmoid", "XSin"]


class Activation(Module):
    """The base of the element-wise activations: ``forward`` and ``backward`` are the
    subclass's ops pair (layer-wise pre-training tells activations apart by it)."""

    # The ops' backward functions take the forward *input*, so that is what we keep.
    _forward = None
    _backward = None

    def __init__(self):
        super().__init__()
        self._x = None

    def forward(self, x):
        y = type(self)._forward(x)
        self._x = x if self.training else None
        return y

    def backward(self, dy):
        return type(self)._backward(self._saved(self._x), dy)

    @property
    def saved_input(self):
        """The input of the last forward pass in training mode (what backward needs),
        or None (eval mode, or nothing run yet)."""
        return self._x

    def config(self) -> dict:
        return {}


class ReLU(Activation):
    """``max(x, 0)``, element-wise."""

    _forward, _backward = ops.relu, ops.relu_backward


class Tanh(Activation):
    """``tanh(x)``, element-wise."""

    _forward, _backward = ops.tanh, ops.tanh_backward


class Sigmoid(Activation):
    """``1 / (1 + exp(-x))``, element-wise."""

    _forward, _backward = ops.sigmoid, ops.sigmoid_backward


class XSin(Activation):
    """``x * sin(x)``, element-wise: a non-monotonic activation (no PyTorch counterpart).

    The report asks an activation to be monotonic; this one is not, and
    ``fastseg experiment activations`` shows what that does to training.
    """

    _forward, _backward = ops.xsin, ops.xsin_backward
