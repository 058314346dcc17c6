"""Element-wise activations: ReLU, Tanh, Sigmoid (each keeps its input for backward)."""
from __future__ import annotations

from fastseg import ops
from fastseg.nn.module import Module

__all__ = ["ReLU", "Tanh", "Sigmoid"]


class _Activation(Module):
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

    def config(self) -> dict:
        return {}


class ReLU(_Activation):
    """``max(x, 0)``, element-wise."""

    _forward, _backward = ops.relu, ops.relu_backward


class Tanh(_Activation):
    """``tanh(x)``, element-wise."""

    _forward, _backward = ops.tanh, ops.tanh_backward


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``, element-wise."""

    _forward, _backward = ops.sigmoid, ops.sigmoid_backward
