"""A patch classifier rewritten as a fully convolutional network.

A patch network (convolutions, pooling, then ``Flatten`` and fully connected
layers) classifies one K x K patch. Sliding it over an image one patch at a
time repeats almost all of the convolution work; the fully convolutional
form does it once. The first ``Linear`` after ``Flatten`` sees the final
feature map, (F, Kf, Kf), flattened in C order, so its weight ``(out,
F*Kf*Kf)`` reshaped to ``(out, F, Kf, Kf)`` is a convolution giving the same
number at every position; each later ``Linear`` is a 1 x 1 convolution.

Layers with a stride (pooling, strided convolutions) make the dense network
produce one output per ``S`` pixels, ``S`` being the product of the strides.
:func:`run` therefore expects to be called on each of the ``S**2`` shifted
windows by the caller (shift-and-stitch, see :mod:`fastseg.segment`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastseg import nn, ops
from fastseg._shapes import out_size

__all__ = ["DensePlan", "plan", "infer_patch_size"]


@dataclass
class DensePlan:
    """The fully convolutional form of a patch classifier.

    Attributes
    ----------
    steps : list of tuple
        ``("conv", w, b, stride)``, ``("pool", k, stride)`` or ``("act", name)``.
    patch_size : int
        K, the side of the patch the network classifies.
    in_channels : int
    num_classes : int
    stride : int
        S, the product of every stride: the dense output has one value per S pixels.
    """

    steps: list = field(default_factory=list)
    patch_size: int = 0
    in_channels: int = 0
    num_classes: int = 0
    stride: int = 1

    def bytes_for(self, n: int) -> int:
        """Largest intermediate (activation or im2col buffer) in bytes for n x n outputs."""
        side = self.stride * (n - 1) + self.patch_size
        channels, worst = self.in_channels, 0
        for step in self.steps:
            if step[0] == "conv":
                w, stride = step[1], step[3]
                k = w.shape[2]
                out = out_size(side, k, stride)
                worst = max(worst, channels * k * k * out * out, w.shape[0] * out * out)
                channels, side = w.shape[0], out
            elif step[0] == "pool":
                side = out_size(side, step[1], step[2])
                worst = max(worst, 3 * channels * side * side)  # values + int64 indices
        return 4 * worst

    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits (1, num_classes, h, w) of the dense network on x (1, C, H, W), as a
        NumPy array (a model on the GPU computes on the device; only the logits
        come back)."""
        for step in self.steps:
            kind = step[0]
            if kind == "conv":
                x = ops.conv2d(x, step[1], step[2], stride=step[3])
            elif kind == "pool":
                x = ops.max_pool2d(x, step[1], step[2])[0]
            else:
                x = getattr(ops, step[1])(x)
        return ops.to_device(x, "cpu")


def _layers(model):
    """The leaf layers of `model`, nested Sequentials unrolled, in order."""
    if isinstance(model, nn.Sequential):
        for child in model:
            yield from _layers(child)
    else:
        yield model


def _refuse(model, layer, why):
    raise ValueError(f"segment: cannot run {type(model).__name__} densely: layer "
                     f"{type(layer).__name__}({layer.extra_repr()}) {why}")


_ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}


def _geometry(model):
    """(layer, kind, kernel, stride) for the spatial layers; refuses what cannot be dense."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a fastseg.nn.Module, got {type(model).__name__}")
    layers = list(_layers(model))
    # The kind of network first: a whole-image or multi-input one fails for that
    # reason, not for whichever of its layers happens to come first.
    for layer in layers:
        if isinstance(layer, nn.Parallel):
            _refuse(model, layer, "takes several inputs (tri-planar); segment() needs a "
                    "network of one 2-D input")
        if isinstance(layer, nn.PixelLogits):
            _refuse(model, layer, "makes a whole-image network, not a patch classifier; "
                    "call the model on the image instead")
    out = []
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            if layer.padding:
                # Zero padding inside a patch sits at the patch border, which moves
                # with every pixel: no single convolution over the image gives it.
                _refuse(model, layer, "has padding > 0, which pads each patch separately")
            out.append((layer, "conv", layer.kernel_size, layer.stride))
        elif isinstance(layer, nn.MaxPool2d):
            out.append((layer, "pool", layer.kernel_size, layer.stride))
        elif isinstance(layer, (nn.Linear, nn.Flatten, nn.Dropout, *_ACTIVATIONS)):
            out.append((layer, "other", 1, 1))
        else:
            _refuse(model, layer, "is not one segment() knows how to run densely")
    return out


def infer_patch_size(model) -> int:
    """The patch size of a patch classifier.

    ``model.patch_size`` when the model carries one (those of
    :mod:`fastseg.models` do); otherwise the smallest K for which the final
    feature map matches the first ``Linear`` layer's input size.
    """
    size = getattr(model, "patch_size", None)
    if isinstance(size, int) and size > 0:
        return size
    geometry = _geometry(model)
    channels, spatial = None, []
    for layer, kind, k, s in geometry:
        if kind != "other":
            spatial.append((k, s))
            channels = layer.out_channels if kind == "conv" else channels
        elif isinstance(layer, nn.Linear):
            if channels is None:
                break
            side = round((layer.in_features / channels) ** 0.5)
            if side < 1 or channels * side * side != layer.in_features:
                raise ValueError(f"segment: the first Linear layer takes {layer.in_features} "
                                 f"features, not channels * side**2 for the {channels} "
                                 "channels before it; pass patch_size")
            for k, s in reversed(spatial):
                side = (side - 1) * s + k
            return side
    raise ValueError("patch_size: cannot infer it from a network without convolutions "
                     "followed by a Linear layer; pass patch_size")


def plan(model, patch_size: int) -> DensePlan:
    """Build the :class:`DensePlan` of `model` for patches of `patch_size`.

    Raises
    ------
    ValueError
        When a layer cannot run densely (padding inside the patch, several inputs,
        a whole-image network) or the network does not map one patch of
        `patch_size` to one vector of at least two class scores.
    """
    geometry = _geometry(model)
    result = DensePlan(patch_size=patch_size)
    channels, side, flat = None, patch_size, False
    for layer, kind, k, s in geometry:
        if kind in ("conv", "pool") and flat:
            _refuse(model, layer, "comes after Flatten")
        if kind == "conv":
            w = layer.weight.data
            if channels is None:
                result.in_channels = w.shape[1]
            if side < k:
                raise ValueError(f"patch_size: {patch_size} is too small for "
                                 f"{type(model).__name__}: the feature map shrinks to "
                                 f"{side}x{side} before a {k}x{k} convolution")
            bias = None if layer.bias is None else layer.bias.data
            result.steps.append(("conv", w, bias, s))
            channels, side = w.shape[0], out_size(side, k, s)
            result.stride *= s
        elif kind == "pool":
            if side < k:
                raise ValueError(f"patch_size: {patch_size} is too small: the feature map "
                                 f"shrinks to {side}x{side} before a {k}x{k} pooling")
            result.steps.append(("pool", k, s))
            side = out_size(side, k, s)
            result.stride *= s
        elif isinstance(layer, nn.Flatten):
            flat = True
        elif isinstance(layer, nn.Linear):
            w = layer.weight.data
            if channels is None:
                _refuse(model, layer, "comes before any convolution")
            if w.shape[1] != channels * side * side:
                raise ValueError(
                    f"patch_size: {patch_size} gives a final feature map of {channels}x{side}"
                    f"x{side} = {channels * side * side} values, but the Linear layer takes "
                    f"{w.shape[1]}; is patch_size right?")
            # (out, F*K*K) -> (out, F, K, K): C-order flattening makes this exact.
            bias = None if layer.bias is None else layer.bias.data
            result.steps.append(("conv", w.reshape(w.shape[0], channels, side, side), bias, 1))
            channels, side, flat = w.shape[0], 1, True
        elif isinstance(layer, tuple(_ACTIVATIONS)):
            result.steps.append(("act", next(n for c, n in _ACTIVATIONS.items()
                                              if isinstance(layer, c))))
        # Dropout is the identity at inference.
    if channels is None:
        raise ValueError(f"segment: {type(model).__name__} has no convolution or Linear layer")
    if side != 1:
        raise ValueError(f"segment: {type(model).__name__} maps a {patch_size}x{patch_size} "
                         f"patch to a {channels}x{side}x{side} map, not to one vector of "
                         "class scores")
    if channels < 2:
        raise ValueError(f"segment: {type(model).__name__} gives {channels} score per patch; "
                         "need at least 2 classes (softmax over classes, class 1 = vessel)")
    result.num_classes = channels
    return result


def class1_probability(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 of (classes, h, w) logits, class 1 only, in float32."""
    classes, h, w = logits.shape
    return ops.softmax(logits.reshape(classes, h * w).T)[:, 1].reshape(h, w)
