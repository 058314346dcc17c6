"""The networks of Matthew Lai's report and of the DRIVE re-implementation, by name.

Matthew Lai, *Deep Learning for Medical Image Segmentation* (arXiv 1505.02000)
classifies the centre pixel of small patches:

* :func:`lai2d` — one 24x24 patch: conv 5x5x20, conv 5x5x50 (no pooling),
  a fully connected layer of 1000 units, 2 classes.
* :func:`lai_stacked2d` — the same network with the patch and its neighbours
  in the adjacent slices stacked as input channels.
* :func:`lai_triplanar` — three orthogonal patches, one conv tower each,
  joined only at the fully connected layer (:class:`fastseg.nn.Parallel`).
* :func:`lai3d` — a cube patch through two 3-D convolutions (with 2x2x2 max
  pooling between them, where the report has none: see its docstring), a
  fully connected layer of 1000 units, 2 classes.

Activations follow the re-implementation: ReLU after convolutions, tanh after
the hidden fully connected layer (``conv_activation``/``fc_activation``).

:func:`seo_whole_image` is the DRIVE re-implementation's whole-image network
(conv + pooling, fully connected tanh layers, one softmax per pixel), trained
with SGD at batch size 2; it is kept to show its known failure (it learns one
mask for every image) against the patch approach.

Every builder returns a :class:`fastseg.nn.Sequential`;
``get(name, **kwargs)`` builds by name and ``names()`` lists the names.
"""
from __future__ import annotations

import numpy as np

from fastseg import nn, ops
from fastseg._arrays import host_array
from fastseg._validate import as_int
from fastseg.errors import InvalidValueError

__all__ = ["lai2d", "lai_stacked2d", "lai_triplanar", "lai3d", "seo_whole_image", "get",
           "names", "whole_image_probabilities"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "xsin": nn.XSin}


def _activation(name: str, what: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name]()
    except (KeyError, TypeError):
        raise InvalidValueError(f"{what}: unknown activation {name!r}; expected one of "
                                f"{sorted(_ACTIVATIONS)}") from None


def _conv_tower(in_channels, patch_size, conv_channels, kernel_size, conv_activation):
    """Unpadded convolutions, each followed by the activation; returns (layers, out size)."""
    layers, size, channels = [], patch_size, in_channels
    for out_channels in conv_channels:
        layers += [nn.Conv2d(channels, out_channels, kernel_size),
                   _activation(conv_activation, "conv_activation")]
        size, channels = size - kernel_size + 1, out_channels
    if size < 1:
        raise InvalidValueError(f"patch_size: {patch_size} is too small for {len(conv_channels)} "
                                f"unpadded {kernel_size}x{kernel_size} convolutions")
    return layers, channels * size * size


def _head(features, hidden, num_classes, fc_activation, dropout):
    layers = [nn.Linear(features, hidden), _activation(fc_activation, "fc_activation")]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return layers + [nn.Linear(hidden, num_classes)]


def lai2d(in_channels=1, patch_size=24, conv_channels=(20, 50), kernel_size=5, hidden=1000,
          num_classes=2, conv_activation="relu", fc_activation="tanh", dropout=0.0):
    """The report's 2-D patch classifier.

    Parameters
    ----------
    in_channels : int
        1 (one grey patch) in the report.
    patch_size : int
        24: the report's 24x24 patches.
    conv_channels : sequence of int
        (20, 50): two 5x5 convolutions with 20 and 50 filters, no pooling.
    kernel_size : int
        5.
    hidden : int
        1000 units in the fully connected layer.
    num_classes : int
        2 (background, structure).
    conv_activation, fc_activation : {"relu", "tanh", "sigmoid", "xsin"}
        ReLU after the convolutions, tanh after the hidden layer.
    dropout : float
        Dropout before the output layer (0: none, as in the report).

    Returns
    -------
    Sequential
        Input (N, in_channels, patch_size, patch_size), output logits (N, num_classes).
        With the defaults: ``Conv2d(1,20,5) ReLU Conv2d(20,50,5) ReLU Flatten
        Linear(12800,1000) Tanh Linear(1000,2)``, 12,828,572 parameters.
    """
    tower, features = _conv_tower(in_channels, patch_size, conv_channels, kernel_size,
                                  conv_activation)
    return nn.Sequential(*tower, nn.Flatten(),
                         *_head(features, hidden, num_classes, fc_activation, dropout))


def lai_stacked2d(in_channels=3, patch_size=24, **kwargs):
    """The report's stacked 2-D network: :func:`lai2d` on a patch and its neighbour slices.

    Parameters
    ----------
    in_channels : int
        3: the slice of the pixel and one adjacent slice on each side, as channels.
    patch_size : int
        24.
    **kwargs
        As :func:`lai2d`.
    """
    return lai2d(in_channels=in_channels, patch_size=patch_size, **kwargs)


def lai_triplanar(in_channels=1, patch_size=24, conv_channels=(20, 50), kernel_size=5,
                  hidden=1000, num_classes=2, conv_activation="relu", fc_activation="tanh",
                  dropout=0.0, planes=3):
    """The report's tri-planar network: one conv tower per orthogonal patch.

    The towers (each as in :func:`lai2d`) share no weights; their flattened
    features are concatenated by :class:`fastseg.nn.Parallel` and meet only
    at the fully connected layer.

    Parameters
    ----------
    planes : int
        3: the axial, coronal and sagittal patches through the pixel.
    Others
        As :func:`lai2d`.

    Returns
    -------
    Sequential
        ``Sequential(Parallel(tower, tower, tower), Linear, act, Linear)``; call it on
        a list of `planes` arrays (N, in_channels, patch_size, patch_size); output
        (N, num_classes). State dict keys ``0.branches.<i>.<j>.weight``, ...
    """
    towers, features = [], 0
    for _ in range(planes):
        layers, size = _conv_tower(in_channels, patch_size, conv_channels, kernel_size,
                                   conv_activation)
        towers.append(nn.Sequential(*layers))
        features += size
    return nn.Sequential(nn.Parallel(*towers),
                         *_head(features, hidden, num_classes, fc_activation, dropout))


def lai3d(in_channels=1, patch_size=24, conv_channels=(20, 50), kernel_size=5, pool=2,
          hidden=1000, num_classes=2, conv_activation="relu", fc_activation="tanh",
          dropout=0.0):
    """The report's 3-D patch classifier, made trainable on a laptop.

    ``Conv3d(1,20,5) ReLU MaxPool3d(2) Conv3d(20,50,5) ReLU Flatten Linear(10800,1000)
    Tanh Linear(1000,2)`` on a 24x24x24 cube: 10,930,572 parameters, 43 MB of them in
    the fully connected layer.

    How it differs from the report, and why: the report's 3-D network is its 2-D
    recipe (two unpadded 5-wide convolutions with 20 and 50 filters, a fully
    connected layer of 1000 units, 2 classes) on a cube, and the report finds it
    "marginally better" than the tri-planar network at "a very significant increase
    in computational power". Without pooling, a 24-voxel cube leaves 50 x 16^3 =
    204,800 features, so the fully connected layer alone would hold 205 million
    weights (819 MB) and dominate every step. Here a 2x2x2 max pooling after the
    first convolution (``pool``) leaves 50 x 6^3 = 10,800 features: 10.8 million
    weights (43 MB), and a batch-128 training step of about a second or less on two
    cores (bench/README.md). The cube stays 24 voxels wide: in 1 mm brain MRI that is
    24 mm of context around a voxel of the hippocampus (about 40 x 20 x 20 mm).
    Nothing is padded, so the network can run densely over a volume (fully
    convolutional, shift-and-stitch under the pooling) with the same answer as
    patch by patch.

    Parameters
    ----------
    in_channels : int
        1 (one grey cube).
    patch_size : int
        24: the cube's edge in voxels.
    conv_channels : sequence of int
        (20, 50): the filters of the two convolutions, as in the 2-D network.
    kernel_size : int
        5 (a 5x5x5 kernel).
    pool : int
        2: the edge of the max pooling after the first convolution (1: none, the
        report's layout, only for small cubes).
    hidden, num_classes, conv_activation, fc_activation, dropout
        As :func:`lai2d`.

    Returns
    -------
    Sequential
        Input (N, in_channels, patch_size, patch_size, patch_size), output logits
        (N, num_classes).
    """
    pool = as_int("pool", pool, minimum=1)
    layers, size, channels = [], patch_size, in_channels
    for i, out_channels in enumerate(conv_channels):
        layers += [nn.Conv3d(channels, out_channels, kernel_size),
                   _activation(conv_activation, "conv_activation")]
        size, channels = size - kernel_size + 1, out_channels
        if i == 0 and pool > 1:
            layers.append(nn.MaxPool3d(pool))
            size //= pool
    if size < 1:
        raise InvalidValueError(f"patch_size: {patch_size} is too small for "
                                f"{len(conv_channels)} unpadded {kernel_size}x{kernel_size}x"
                                f"{kernel_size} convolutions and {pool}x pooling")
    return nn.Sequential(*layers, nn.Flatten(),
                         *_head(channels * size**3, hidden, num_classes, fc_activation,
                                dropout))


def seo_whole_image(image_size=(64, 64), in_channels=1, conv_channels=(16, 32), kernel_size=5,
                    hidden=(256,), num_classes=2, conv_activation="relu",
                    fc_activation="tanh"):
    """The DRIVE re-implementation's whole-image network (vectorised per-pixel softmax).

    Each "same"-padded convolution is followed by the activation and 2x2 max
    pooling; fully connected tanh layers follow, then one linear layer with
    ``num_classes * H * W`` outputs read as a (num_classes, H, W) block per image
    and rearranged by :class:`fastseg.nn.PixelLogits` into one row per pixel.
    The re-implementation trained it with SGD at batch size 2, on downscaled
    images, and it converges to the same mask for every image.

    Parameters
    ----------
    image_size : (int, int)
        (H, W) of the (downscaled) input image and of the output mask.
    in_channels : int
    conv_channels : sequence of int
    kernel_size : int
        Odd; padding ``kernel_size // 2`` keeps the size before each pooling.
    hidden : sequence of int
        Sizes of the hidden fully connected (tanh) layers.
    num_classes : int
    conv_activation, fc_activation : str

    Returns
    -------
    Sequential
        Input (N, in_channels, H, W); output logits (N*H*W, num_classes), row
        ``(n*H + i)*W + j`` for pixel (i, j) of image n, so the loss takes
        ``masks.reshape(-1)`` as labels. :func:`whole_image_probabilities`
        turns the output back into (N, H, W) maps.
    """
    h, w = (int(s) for s in image_size)
    layers, channels, size = [], in_channels, (h, w)
    for out_channels in conv_channels:
        conv = nn.Conv2d(channels, out_channels, kernel_size, padding=kernel_size // 2)
        pool = nn.MaxPool2d(2)
        size = pool.output_size(*conv.output_size(*size))
        if min(size) < 1:
            raise InvalidValueError(f"image_size: {image_size} is too small for "
                                    f"{len(conv_channels)} conv + 2x2 pooling stages")
        layers += [conv, _activation(conv_activation, "conv_activation"), pool]
        channels = out_channels
    layers.append(nn.Flatten())
    features = channels * size[0] * size[1]
    for units in hidden:
        layers += [nn.Linear(features, units), _activation(fc_activation, "fc_activation")]
        features = units
    layers += [nn.Linear(features, num_classes * h * w), nn.PixelLogits(num_classes, h, w)]
    return nn.Sequential(*layers)


def whole_image_probabilities(logits, image_size, cls: int = 1) -> np.ndarray:
    """Per-pixel softmax probability of class `cls` from :func:`seo_whole_image` output.

    Parameters
    ----------
    logits : ndarray (N*H*W, num_classes)
    image_size : (int, int)

    Returns
    -------
    ndarray (N, H, W), float32
    """
    h, w = image_size
    return host_array(ops.softmax(logits))[:, cls].reshape(-1, h, w)


_REGISTRY = {
    "lai2d": lai2d,
    "lai_stacked2d": lai_stacked2d,
    "lai_triplanar": lai_triplanar,
    "lai3d": lai3d,
    "seo_whole_image": seo_whole_image,
}


def names() -> list[str]:
    """The names :func:`get` knows."""
    return list(_REGISTRY)


def get(name: str, **kwargs) -> nn.Sequential:
    """Build the network called `name` (see :func:`names`) with `kwargs` for its builder.

    Raises
    ------
    ValueError
        For an unknown name.
    """
    try:
        builder = _REGISTRY[name]
    except (KeyError, TypeError):
        raise InvalidValueError(f"models.get: unknown model {name!r}; expected one of "
                                f"{names()}") from None
    return builder(**kwargs)
