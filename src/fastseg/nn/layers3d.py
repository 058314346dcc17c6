"""The volume layers: Conv3d and MaxPool3d, as ``torch.nn.Conv3d`` / ``torch.nn.MaxPool3d``.

Inputs are (N, C, D, H, W); kernel sizes, strides and paddings are an int or a
(depth, height, width) triple and are kept as triples, as PyTorch keeps them.
Each layer calls :mod:`fastseg.ops`, so it runs on the current backend; in
training mode ``forward`` keeps what ``backward`` needs.
"""
from __future__ import annotations

from fastseg.nn.layers import _ConvNd, _MaxPoolNd

__all__ = ["Conv3d", "MaxPool3d"]


class Conv3d(_ConvNd):
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

    _dims, _op, _axes = 3, "conv3d", "D, H, W"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias)

    def output_size(self, depth: int, height: int, width: int) -> tuple[int, int, int]:
        """Output (depth, height, width) for an input of (depth, height, width)."""
        return self._output_size(depth, height, width)


class MaxPool3d(_MaxPoolNd):
    """3-D max pooling without padding (floor mode), as ``torch.nn.MaxPool3d``;
    ``stride`` defaults to ``kernel_size``."""

    _dims, _op, _axes = 3, "max_pool3d", "D, H, W"

    def __init__(self, kernel_size, stride=None):
        super().__init__(kernel_size, stride)

    def output_size(self, depth: int, height: int, width: int) -> tuple[int, int, int]:
        return self._output_size(depth, height, width)
