"""Neural-network layers with a PyTorch-like API on fastseg's kernels.

Names, weight layouts, default initialisation and ``state_dict`` keys follow
``torch.nn``, so weights move both ways between the two libraries. There is no
autograd: ``net(x)`` keeps (in training mode) what ``net.backward(dy)`` needs,
and ``backward`` returns the input gradient and accumulates ``.grad``.
"""
from fastseg.nn.activation import ReLU, Sigmoid, Tanh, XSin
from fastseg.nn.containers import ModuleList, Parallel, Sequential
from fastseg.nn.layers import Conv2d, Dropout, Flatten, Linear, MaxPool2d, PixelLogits
from fastseg.nn.layers3d import Conv3d, MaxPool3d
from fastseg.nn.loss import CrossEntropyLoss, MSELoss
from fastseg.nn.module import IncompatibleKeys, Module, Parameter, StateDictError

__all__ = [
    "Module", "Parameter", "StateDictError", "IncompatibleKeys",
    "Conv2d", "Linear", "ReLU", "Tanh", "Sigmoid", "XSin", "MaxPool2d", "Dropout", "Flatten",
    "PixelLogits", "Conv3d", "MaxPool3d", "Sequential", "ModuleList", "Parallel",
    "CrossEntropyLoss", "MSELoss",
]
