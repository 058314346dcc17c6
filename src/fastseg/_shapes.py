"""The one output-size formula of a sliding window (convolution or pooling), for Python.

Every Python caller (ops' checks, the layers' ``output_size``, the dense plan, the
NumPy and CUDA backends) asks this module instead of writing the formula again; the
C kernels have theirs in ``kernels/src/window.h``.
"""
from __future__ import annotations

__all__ = ["out_size", "out_sizes", "per_axis"]


def out_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Positions of a `kernel_size` window moved by `stride` over ``size + 2*padding``.

    0 when the padded extent is smaller than the window (floor mode otherwise, as
    PyTorch's convolution and pooling).
    """
    span = size + 2 * padding - kernel_size
    return 0 if span < 0 else span // stride + 1


def per_axis(value, dims: int) -> tuple[int, ...]:
    """A kernel size, stride or padding per spatial axis: a tuple (or list) as it is,
    an int repeated for each of the `dims` axes (2-D layers keep one int)."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


def out_sizes(size, kernel_size, stride=1, padding=0) -> tuple[int, ...]:
    """:func:`out_size` along each axis of `size`; the window's kernel size, stride and
    padding are each an int for every axis or one per axis (:func:`per_axis`)."""
    if type(kernel_size) is int and type(stride) is int and type(padding) is int:
        # The 2-D ops' case, on every call of the default path: no per-axis tuples.
        return tuple([out_size(n, kernel_size, stride, padding) for n in size])
    dims = len(size)
    return tuple([out_size(n, k, s, p) for n, k, s, p in
                  zip(size, per_axis(kernel_size, dims), per_axis(stride, dims),
                      per_axis(padding, dims), strict=True)])
