"""The one output-size formula of a sliding window (convolution or pooling), for Python.

Every Python caller (ops' checks, the layers' ``output_size``, the dense plan, the
NumPy and CUDA backends) asks this module instead of writing the formula again; the
C kernels have theirs in ``kernels/src/window.h``.
"""
from __future__ import annotations

__all__ = ["out_size"]


def out_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Positions of a `kernel_size` window moved by `stride` over ``size + 2*padding``.

    0 when the padded extent is smaller than the window (floor mode otherwise, as
    PyTorch's convolution and pooling).
    """
    span = size + 2 * padding - kernel_size
    return 0 if span < 0 else span // stride + 1
