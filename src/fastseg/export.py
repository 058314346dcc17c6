"""Export fastseg networks to ONNX, for ONNX Runtime, OpenVINO and other inference engines.

:func:`to_onnx` writes a network as an ONNX model built with the ``onnx`` package's
helper API (``pip install "fastseg[onnx]"``; no PyTorch involved), in one of two forms:

* the **patch classifier** as it is (``dense=False``): patches in, class scores (logits)
  out, equal to ``net(x)`` in eval mode;
* its exact **fully convolutional form** over a whole image or volume (``dense=True``):
  at every pixel, the softmax of what the patch classifier gives for the patch that
  :func:`fastseg.data.patches_at` (or the volume's cutter) cuts around it, the very
  numbers :func:`fastseg.segment` computes.

The dense form is the "à trous" (dilated) network, which is exact at every pixel in one
graph, without the shift-and-stitch :func:`fastseg.segment` uses: a pooling of stride
``s`` runs with stride 1, and every later convolution or pooling window is dilated by
the product of the strides before it; the first ``Linear`` layer becomes a (dilated)
convolution whose kernel is its weight reshaped to ``(out, F, Kf, Kf)`` (the C-order
``Flatten`` makes this exact), later ``Linear`` layers 1x1 convolutions. The image is
mirrored at its borders inside the graph, exactly as NumPy's ``"reflect"`` padding of
:func:`fastseg.data.pad_for_patches` (see :func:`to_onnx`'s notes).

The model carries its provenance as metadata (``producer_name`` fastseg and its
version; ``metadata_props`` ``kind``, ``patch_size``, ``dense``, ``num_classes`` and,
where known, ``cutter``, ``fov_diameter`` and a Segmenter's settings), which
``onnxruntime.InferenceSession(path).get_modelmeta().custom_metadata_map`` shows.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
from dataclasses import dataclass, field

import numpy as np

from fastseg import nn
from fastseg._arrays import host_array
from fastseg._atomic import atomic_write
from fastseg._inference.fcn import leaf_layers
from fastseg._optional import require
from fastseg.errors import InvalidTypeError, InvalidValueError

__all__ = ["to_onnx", "DEFAULT_OPSET", "MIN_OPSET"]

#: The ONNX opset written when none is asked for: old enough for every engine of the
#: ``onnx`` extra (ONNX Runtime 1.18, OpenVINO 2024.0), new enough for all it needs.
DEFAULT_OPSET = 17
#: The oldest opset accepted: Softmax normalises over one axis only from opset 13 on.
MIN_OPSET = 13
#: The largest patch side tried when the network does not record its patch size.
_MAX_PATCH = 4096

_CONVS = {nn.Conv2d: 2, nn.Conv3d: 3}
_POOLS = {nn.MaxPool2d: 2, nn.MaxPool3d: 3}
_POINTWISE = {nn.ReLU: "Relu", nn.Tanh: "Tanh", nn.Sigmoid: "Sigmoid"}
_KNOWN = {*_CONVS, *_POOLS, *_POINTWISE, nn.XSin, nn.Dropout, nn.Flatten, nn.Linear,
          nn.PixelLogits, nn.Parallel}
_SPATIAL_NAMES = {2: ("height", "width"), 3: ("depth", "height", "width")}


# ---- what is exported: the network, its patch size and kind -------------------------------


@dataclass
class _Source:
    """The network to export and what is known about its patches."""

    net: nn.Module
    patch_size: int | None = None
    cutter: object = None  # a fastseg.data.PatchCutter, for volume networks
    meta: dict = field(default_factory=dict)


def _load(path) -> object:
    """A model file as a Segmenter (which knows the patch size it was trained with), or
    as a bare network where the file holds one a Segmenter cannot take (e.g. the
    whole-image network)."""
    from fastseg import Segmenter, load

    try:
        return Segmenter.load(path)
    except InvalidValueError:
        return load(path)  # raises the same error, naming the file, if it is not a model


def _source(model) -> _Source:
    from fastseg import Segmenter

    if isinstance(model, (str, os.PathLike)):
        model = _load(model)
    if isinstance(model, Segmenter):
        net = getattr(model, "model_", None)
        if net is None:
            raise InvalidValueError("model: the Segmenter is not fitted; fit it (or load a "
                                    "fitted one) before exporting it")
        settings = {k: v for k, v in model.get_params().items()
                    if v is None or isinstance(v, (str, int, float, bool))}
        cutter = getattr(model, "cutter_", None)
        return _Source(net, int(model.patch_size), cutter,
                       {"segmenter": json.dumps(settings, sort_keys=True)})
    if isinstance(model, nn.Module):
        cutter = getattr(model, "cutter", None)
        size = getattr(model, "patch_size", None)
        if not (isinstance(size, int) and size > 0):
            size = getattr(cutter, "size", None)
        return _Source(model, size, cutter)
    raise InvalidTypeError(f"model: expected a fastseg.nn.Module, a fitted fastseg.Segmenter "
                           f"or a model file path, got {type(model).__name__}")


def _per_axis(value, dims) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if np.ndim(value) else (int(value),) * dims


def _describe(layer) -> str:
    return f"{type(layer).__name__}({layer.extra_repr()})"


def _refuse(net, layer, why, dense=True) -> None:
    form = "densely" if dense else "as ONNX"
    raise InvalidValueError(f"to_onnx: cannot export {type(net).__name__} {form}: layer "
                            f"{_describe(layer)} {why}")


# ---- shapes: one walk through the layers, for one sample ----------------------------------


class _Mismatch(Exception):
    """A layer that cannot take the shape reaching it (a patch size that does not fit)."""

    def __init__(self, message, layer=None):
        super().__init__(message)
        self.layer = layer


@dataclass
class _Step:
    """One layer with the per-sample shapes around it: ``(C, *side)`` for feature maps,
    ``(F,)`` once flat; for a Parallel, `branches` holds each branch's steps."""

    layer: nn.Module
    shape_in: tuple
    shape_out: tuple
    branches: list = field(default_factory=list)


def _window_out(layer, shape, dims, kernel, stride, padding=(0, 0, 0)) -> tuple:
    if len(shape) != dims + 1:
        raise _Mismatch(f"{_describe(layer)} needs a {dims}-D feature map, gets {shape}")
    side = tuple((n + 2 * p - k) // s + 1
                 for n, k, s, p in zip(shape[1:], kernel, stride, padding, strict=False))
    if min(side) < 1:
        raise _Mismatch(f"{_describe(layer)} gets a feature map of {shape[1:]}, smaller "
                        "than its window")
    return side


def _out_shape(net, layer, shape) -> tuple:
    """The per-sample shape `layer` makes of `shape`, or :class:`_Mismatch`."""
    kind = type(layer)
    if kind in _CONVS:
        dims = _CONVS[kind]
        if len(shape) != dims + 1 or shape[0] != layer.in_channels:
            raise _Mismatch(f"{_describe(layer)} gets {shape}")
        side = _window_out(layer, shape, dims, _per_axis(layer.kernel_size, dims),
                           _per_axis(layer.stride, dims), _per_axis(layer.padding, dims))
        return (layer.out_channels, *side)
    if kind in _POOLS:
        dims = _POOLS[kind]
        side = _window_out(layer, shape, dims, _per_axis(layer.kernel_size, dims),
                           _per_axis(layer.stride, dims))
        return (shape[0], *side)
    if kind is nn.Flatten:
        if (layer.start_dim, layer.end_dim) != (1, -1):
            _refuse(net, layer, "flattens other dimensions than all but the batch; only "
                    "Flatten(1, -1) is exported", dense=False)
        return (math.prod(shape),)
    if kind is nn.Linear:
        if shape != (layer.in_features,):
            got = f"{math.prod(shape)} values {shape}" if len(shape) > 1 else \
                f"{shape[0]} features"
            raise _Mismatch(f"{_describe(layer)} takes {layer.in_features} features, gets "
                            f"{got}", layer)
        return (layer.out_features,)
    if kind is nn.PixelLogits:
        if shape != (layer.num_classes * layer.height * layer.width,):
            raise _Mismatch(f"{_describe(layer)} gets {shape}", layer)
        return (layer.num_classes,)
    return shape  # activations and dropout


def _walk(net, layers, shape) -> list[_Step]:
    steps = []
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Parallel):
            if i != 0:
                _refuse(net, layer, "is not the first layer; only a Parallel that takes the "
                        "network's inputs is exported", dense=False)
            branches = [_walk(net, list(leaf_layers(b)), s)
                        for b, s in zip(layer.branches, shape, strict=True)]
            features = sum(math.prod(b[-1].shape_out if b else s)
                           for b, s in zip(branches, shape, strict=True))
            steps.append(_Step(layer, tuple(shape), (features,), branches))
            shape = (features,)
            continue
        out = _out_shape(net, layer, shape)
        steps.append(_Step(layer, shape, out))
        shape = out
    return steps


def _input_of(net, layers) -> tuple[int, int]:
    """(channels, dims) of the network's input, read from its first convolution (a
    Parallel's: from each branch; all branches must agree on dims)."""
    if isinstance(layers[0], nn.Parallel):
        found = [_input_of(net, list(leaf_layers(b))) for b in layers[0].branches]
        if len({d for _, d in found}) != 1:
            _refuse(net, layers[0], "mixes 2-D and 3-D branches", dense=False)
        return found[0]
    conv = next((m for m in layers if type(m) in _CONVS), None)
    if conv is None:
        raise InvalidValueError(f"to_onnx: cannot export {type(net).__name__}: it has no "
                                "convolution, so the patch it takes has no known shape")
    return conv.in_channels, _CONVS[type(conv)]


def _input_shapes(net, layers, side) -> list[tuple]:
    first = layers[0] if layers else None
    if isinstance(first, nn.Parallel):
        return [_input_shapes(net, list(leaf_layers(b)), side)[0] for b in first.branches]
    channels, dims = _input_of(net, layers)
    return [(channels, *((side,) * dims if np.ndim(side) == 0 else side))]


def _fits(steps) -> bool:
    """Whether a walk ends in one vector per sample (or a 1x1 map) of scores."""
    out = steps[-1].shape_out
    return len(out) == 1 or all(n == 1 for n in out[1:])


def _trace(net, layers, side):
    """The steps for inputs of patch side `side` (an int, or a tuple of sides)."""
    shapes = _input_shapes(net, layers, side)
    steps = _walk(net, layers, shapes if isinstance(layers[0], nn.Parallel) else shapes[0])
    if not _fits(steps):
        raise _Mismatch(f"the network ends in a feature map of {steps[-1].shape_out}")
    return shapes, steps


def _plan(src: _Source):
    """(layers, input shapes per sample, steps, patch side) of the network, the patch
    side taken from what is known of it or else the smallest one that fits."""
    net = src.net
    layers = list(leaf_layers(net))
    for layer in _leaves_deep(layers):
        if type(layer) not in _KNOWN:
            _refuse(net, layer, "has no ONNX form here (fastseg exports convolutions, max "
                    "pooling, activations, dropout, Flatten, Linear, Parallel and "
                    "PixelLogits)", dense=False)
    if not any(type(m) in _CONVS for m in _leaves_deep(layers)):
        raise InvalidValueError(f"to_onnx: cannot export {type(net).__name__}: it has no "
                                "convolution, so the patch it takes has no known shape")
    pixels = next((m for m in layers if isinstance(m, nn.PixelLogits)), None)
    if pixels is not None:  # a whole-image network: the image's size is the mask's
        candidates = [(pixels.height, pixels.width)]
    elif src.patch_size is not None:
        candidates = [int(src.patch_size)]
    else:
        candidates = range(1, _MAX_PATCH + 1)
    first = None  # the first mismatch at a fully connected layer: the telling one
    for side in candidates:
        try:
            shapes, steps = _trace(net, layers, side)
        except _Mismatch as exc:
            if first is None and exc.layer is not None:
                first = f"with a patch of {side}: {exc}"
            last = exc
            continue
        return layers, shapes, steps, side
    if pixels is not None or src.patch_size is not None:
        what = "image size" if pixels is not None else "patch_size"
        raise InvalidValueError(f"to_onnx: {type(net).__name__} cannot take its {what} "
                                f"{candidates[0]}: {last}")
    raise InvalidValueError(f"to_onnx: no square (or cubic) patch up to {_MAX_PATCH} fits "
                            f"{type(net).__name__}; {first or last}")


def _leaves_deep(layers):
    for layer in layers:
        if isinstance(layer, nn.Parallel):
            for branch in layer.branches:
                yield from _leaves_deep(list(leaf_layers(branch)))
        else:
            yield layer


def _kind(src: _Source, layers, dims) -> str:
    if any(isinstance(m, nn.PixelLogits) for m in layers):
        return "whole-image"
    if any(isinstance(m, nn.Parallel) for m in layers):
        return "triplanar"
    if src.cutter is not None:
        return src.cutter.kind
    return "3d" if dims == 3 else "image"


# ---- the dense form's geometry ------------------------------------------------------------


def _check_dense(net, steps) -> None:
    """Refuse what has no exact fully convolutional form in one ONNX graph: the kind of
    network first, then its layers."""
    for step in steps:
        layer = step.layer
        if isinstance(layer, nn.Parallel):
            _refuse(net, layer, "makes a tri-planar network: its towers run over the three "
                    "plane orientations of a volume and meet at the hidden layer, which one "
                    "image graph does not express; export it with dense=False (three patch "
                    "inputs) or segment with fastseg.segment")
        if isinstance(layer, nn.PixelLogits):
            _refuse(net, layer, "makes a whole-image network, not a patch classifier: it has "
                    "no per-pixel dense form; export it with dense=False, which already "
                    "takes the whole image")
    for step in steps:
        layer = step.layer
        if type(layer) in _CONVS and any(_per_axis(layer.padding, _CONVS[type(layer)])):
            _refuse(net, layer, "has padding > 0, which pads each patch separately at its "
                    "own border: no single convolution over the image gives that")
    first_linear = next((s for s in steps if isinstance(s.layer, nn.Linear)), None)
    if first_linear is not None and not any(type(s.layer) in _CONVS for s in steps):
        _refuse(net, first_linear.layer, "comes before any convolution")
    out = steps[-1].shape_out
    if out[0] < 2:
        raise InvalidValueError(f"to_onnx: cannot export {type(net).__name__} densely: it "
                                f"gives {out[0]} score per patch; the dense form's softmax "
                                "needs at least 2 classes")


def _dense_extent(steps, dims) -> tuple[int, ...]:
    """The input extent the à trous network reads for one output pixel, per axis (at most
    the patch side: a pooling's floor may leave the patch's last rows unread)."""
    extent, dilation, fmap = [1] * dims, [1] * dims, None
    for step in steps:
        layer = step.layer
        if type(layer) in _CONVS or type(layer) in _POOLS:
            kernel, stride = _per_axis(layer.kernel_size, dims), _per_axis(layer.stride, dims)
            extent = [e + (k - 1) * d for e, k, d in zip(extent, kernel, dilation, strict=True)]
            dilation = [d * s for d, s in zip(dilation, stride, strict=True)]
            fmap = step.shape_out
        elif isinstance(layer, nn.Linear) and fmap is not None:
            extent = [e + (k - 1) * d for e, k, d in zip(extent, fmap[1:], dilation,
                                                          strict=True)]
            fmap = None  # later Linear layers are 1x1
    return tuple(extent)


# ---- building the graph ------------------------------------------------------------------


class _Graph:
    """The nodes and initializers of one ONNX graph under construction."""

    def __init__(self, onnx):
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.nodes, self.initializers = [], []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value, hint: str, dtype=np.float32) -> str:
        name = self._name(hint)
        array = np.array(value, dtype=dtype, order="C")  # 0-d stays 0-d (a scalar)
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs, hint: str | None = None, **attrs) -> str:
        out = self._name(hint or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], name=out,
                                                **attrs))
        return out


def _weights(g: _Graph, layer, shape=None) -> list[str]:
    w = np.asarray(host_array(layer.weight.data), dtype=np.float32)
    names = [g.const(w if shape is None else w.reshape(shape), "weight")]
    if layer.bias is not None:
        names.append(g.const(host_array(layer.bias.data), "bias"))
    return names


def _pointwise(g: _Graph, layer, x: str) -> str:
    if isinstance(layer, nn.XSin):
        return g.op("Mul", [x, g.op("Sin", [x])], "xsin")
    return g.op(_POINTWISE[type(layer)], [x])


def _emit_patch(g: _Graph, steps, x: str, inputs: list[str]) -> str:
    """The patch classifier's layers as ONNX nodes from tensor `x` (or, for a leading
    Parallel, its branches from `inputs`); returns the output's name."""
    for step in steps:
        layer, kind = step.layer, type(step.layer)
        dims = len(step.shape_in) - 1  # of a feature map, where a window needs it
        if kind is nn.Parallel:
            parts = []
            for branch, name in zip(step.branches, inputs, strict=True):
                y = _emit_patch(g, branch, name, [])
                flat = branch[-1].shape_out if branch else None
                parts.append(y if flat is not None and len(flat) == 1 else
                             g.op("Flatten", [y], axis=1))
            x = g.op("Concat", parts, axis=1)
        elif kind in _CONVS:
            pad = _per_axis(layer.padding, dims)
            x = g.op("Conv", [x, *_weights(g, layer)], "conv",
                     kernel_shape=_per_axis(layer.kernel_size, dims),
                     strides=_per_axis(layer.stride, dims), pads=list(pad) * 2)
        elif kind in _POOLS:
            x = g.op("MaxPool", [x], "maxpool", kernel_shape=_per_axis(layer.kernel_size, dims),
                     strides=_per_axis(layer.stride, dims))
        elif kind is nn.Flatten:
            if len(step.shape_in) != 1:
                x = g.op("Flatten", [x], axis=1)
        elif kind is nn.Linear:
            x = g.op("Gemm", [x, *_weights(g, layer)], "linear", transB=1)
        elif kind is nn.PixelLogits:
            # (N, K*H*W) read as (N, K, H*W) blocks -> one row of K scores per pixel.
            k, hw = layer.num_classes, layer.height * layer.width
            y = g.op("Reshape", [x, g.const([0, k, hw], "shape", np.int64)])
            y = g.op("Transpose", [y], perm=[0, 2, 1])
            x = g.op("Reshape", [y, g.const([-1, k], "shape", np.int64)], "pixel_logits")
        elif kind is not nn.Dropout:  # dropout is the identity at inference
            x = _pointwise(g, layer, x)
    return x


def _reflect_pad(g: _Graph, x: str, widths) -> str:
    """`x` padded on its spatial axes by `widths` ((before, after) per axis) exactly as
    NumPy's ``"reflect"`` mode, at any size, as gathers of reflected indices.

    ONNX's Pad in ``"reflect"`` mode mirrors the same way but only for pads smaller than
    the axis; NumPy reflects again and again, which is the periodic extension with
    period ``2 (n - 1)`` folded back into ``[0, n)`` (checked against np.pad in the
    tests), so the index of padded position ``i`` is ``m = (i - before) mod p`` if
    ``m < n`` else ``p - m``, with ``p = max(2 (n - 1), 1)`` (an axis of 1 repeats).
    """
    shape = g.op("Shape", [x])
    one = g.const(1, "one", np.int64)
    two = g.const(2, "two", np.int64)
    for axis, (before, after) in enumerate(widths, start=2):
        if before == 0 and after == 0:
            continue
        n = g.op("Gather", [shape, g.const(axis, "axis", np.int64)], f"size{axis}", axis=0)
        limit = g.op("Add", [n, g.const(after, "after", np.int64)])
        index = g.op("Range", [g.const(-before, "before", np.int64), limit, one])
        period = g.op("Max", [g.op("Mul", [g.op("Sub", [n, one]), two]), one], "period")
        m = g.op("Mod", [index, period], fmod=0)
        folded = g.op("Where", [g.op("Less", [m, n]), m, g.op("Sub", [period, m])],
                      f"reflect{axis}")
        x = g.op("Gather", [x, folded], f"padded{axis}", axis=axis)
    return x


def _emit_dense(g: _Graph, steps, x: str, dims: int) -> str:
    """The à trous form of the patch classifier, from the padded image `x`; returns the
    logits' name, (N, classes, *spatial)."""
    dilation, fmap = [1] * dims, None
    for step in steps:
        layer, kind = step.layer, type(step.layer)
        if kind in _CONVS or kind in _POOLS:
            kernel, stride = _per_axis(layer.kernel_size, dims), _per_axis(layer.stride, dims)
            if kind in _CONVS:
                x = g.op("Conv", [x, *_weights(g, layer)], "conv", kernel_shape=kernel,
                         strides=[1] * dims, dilations=list(dilation))
            else:
                x = g.op("MaxPool", [x], "maxpool", kernel_shape=kernel, strides=[1] * dims,
                         dilations=list(dilation))
            dilation = [d * s for d, s in zip(dilation, stride, strict=True)]
            fmap = step.shape_out
        elif kind is nn.Linear:
            # The first Linear reads the final feature map (F, *side) flattened in C
            # order: its weight reshaped to (out, F, *side) is the same sum as a
            # convolution over that map, dilated by the strides before it. Later ones
            # read a vector: 1x1 convolutions.
            kernel = fmap[1:] if fmap is not None else (1,) * dims
            channels = fmap[0] if fmap is not None else layer.in_features
            x = g.op("Conv", [x, *_weights(g, layer, (layer.out_features, channels, *kernel))],
                     "linear", kernel_shape=list(kernel), strides=[1] * dims,
                     dilations=list(dilation) if fmap is not None else [1] * dims)
            fmap = None
        elif kind in _POINTWISE or kind is nn.XSin:
            x = _pointwise(g, layer, x)
        # Flatten has no dense counterpart (the Linear after it reads the map); dropout
        # is the identity at inference.
    return x


def _value_info(onnx, name, dims):
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(dims))


def _shape_text(dims) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


def _check_opset(onnx, opset) -> int:
    from fastseg._validate import as_int

    if opset is None:
        return DEFAULT_OPSET
    return as_int("opset", opset, minimum=MIN_OPSET, maximum=onnx.defs.onnx_opset_version())


def _build(src: _Source, dense: bool, opset: int):
    """(ModelProto, one-line summary) of `src`'s network in the asked form."""
    onnx = require("onnx", "fastseg.export", extra="onnx")
    net = src.net
    layers, shapes, steps, side = _plan(src)
    dims = len(shapes[0]) - 1
    kind = _kind(src, layers, dims)
    num_classes = steps[-1].shape_out[0]
    g = _Graph(onnx)
    if dense:
        _check_dense(net, steps)
        channels = shapes[0][0]
        spatial = _SPATIAL_NAMES[dims]
        extent = _dense_extent(steps, dims)
        widths = [(side // 2, e - 1 - side // 2) for e in extent]
        padded = _reflect_pad(g, "image", widths)
        logits = _emit_dense(g, steps, padded, dims)
        g.nodes.append(onnx.helper.make_node("Softmax", [logits], ["probabilities"],
                                             name="probabilities", axis=1))
        inputs = [_value_info(onnx, "image", ("batch", channels, *spatial))]
        outputs = [_value_info(onnx, "probabilities", ("batch", num_classes, *spatial))]
    else:
        names = ["patch"] if len(shapes) == 1 else [f"patch_{i}" for i in range(len(shapes))]
        if kind == "whole-image":
            names = ["image"]
        inputs = [_value_info(onnx, name, ("batch", *shape))
                  for name, shape in zip(names, shapes, strict=True)]
        x = _emit_patch(g, steps, names[0], names)
        g.nodes.append(onnx.helper.make_node("Identity", [x], ["logits"], name="logits"))
        rows = "pixels" if kind == "whole-image" else "batch"
        last = steps[-1].shape_out
        outputs = [_value_info(onnx, "logits", (rows, *last))]
    form = "dense" if dense else "patch"
    graph = onnx.helper.make_graph(g.nodes, f"fastseg {kind} {form}", inputs, outputs,
                                   g.initializers)
    opsets = [onnx.helper.make_opsetid("", opset)]
    model = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="fastseg",
                                   producer_version=_version(),
                                   ir_version=onnx.helper.find_min_ir_version_for(opsets))
    model.doc_string = _doc(kind, dense, side, inputs, outputs, onnx)
    props = {"kind": kind, "dense": "true" if dense else "false",
             "patch_size": "" if kind == "whole-image" else str(side),
             "num_classes": str(num_classes), **src.meta}
    if dense:
        props["pad_mode"] = "reflect"
    if src.cutter is not None:
        props["cutter"] = json.dumps(src.cutter.config(), sort_keys=True)
    diameter = getattr(net, "fov_diameter", None)
    if diameter is not None:
        props["fov_diameter"] = repr(float(diameter))
    onnx.helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model, _summary(kind, dense, inputs, outputs, opset, onnx)


def _version() -> str:
    import fastseg

    return fastseg.__version__


def _dims_of(info) -> tuple:
    return tuple(d.dim_param or d.dim_value for d in info.type.tensor_type.shape.dim)


def _signature(inputs, outputs, onnx) -> str:
    ins = ", ".join(f"{i.name} {_shape_text(_dims_of(i))}" for i in inputs)
    outs = ", ".join(f"{o.name} {_shape_text(_dims_of(o))}" for o in outputs)
    return f"{ins} -> {outs}"


def _doc(kind, dense, side, inputs, outputs, onnx) -> str:
    if dense:
        what = (f"fastseg {kind} patch classifier (patch {side}) as its exact fully "
                "convolutional form: the softmax over classes of the classifier's scores for "
                "every pixel's patch, the image mirrored at its borders (NumPy 'reflect') "
                "inside the graph")
    elif kind == "whole-image":
        what = "fastseg whole-image network: one row of class scores per pixel"
    else:
        what = f"fastseg {kind} patch classifier (patch {side}): class scores (logits)"
    return f"{what}. {_signature(inputs, outputs, onnx)}"


def _summary(kind, dense, inputs, outputs, opset, onnx) -> str:
    form = "dense (fully convolutional)" if dense else "patch classifier"
    return f"{kind} network, {form}: {_signature(inputs, outputs, onnx)}; opset {opset}"


def _export(model, path, *, dense=False, opset=None) -> tuple[pathlib.Path, str]:
    """:func:`to_onnx`, also returning a one-line summary of what was written (for the
    command line)."""
    onnx = require("onnx", "fastseg.export", extra="onnx")
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidTypeError(f"path: expected a file path (str or os.PathLike), got "
                               f"{type(path).__name__}")
    if not isinstance(dense, (bool, np.bool_)):
        raise InvalidTypeError(f"dense: expected a bool, got {type(dense).__name__} {dense!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):  # before the work, and not as the temporary file's error
        raise FileNotFoundError(f"path: the folder {folder!r} to write {os.fspath(path)!r} "
                                "in does not exist")
    opset = _check_opset(onnx, opset)
    model, summary = _build(_source(model), bool(dense), opset)
    data = model.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return pathlib.Path(path), summary


def to_onnx(model, path, *, dense=False, opset=None) -> pathlib.Path:
    """Write a network as an ONNX model: the patch classifier, or its exact dense form.

    Parameters
    ----------
    model : fastseg.nn.Module, fastseg.Segmenter or path
        A network (e.g. ``fastseg.models.lai2d()``), a fitted
        :class:`~fastseg.Segmenter` (its ``model_`` is exported, with its patch size
        and settings as metadata; its preprocessing and calibration are not part of
        the graph) or a model file (``fastseg.save`` / ``Segmenter.save``).
    path : str or os.PathLike
        Where to write, conventionally ``*.onnx``; written atomically (never half a
        file under that name).
    dense : bool
        False: the patch classifier as it is. True: its exact fully convolutional form
        over a whole image (or volume); see Returns.
    opset : int, optional
        The ONNX opset (default :data:`DEFAULT_OPSET`, 17; at least :data:`MIN_OPSET`).

    Returns
    -------
    pathlib.Path
        `path`. The model, run by ONNX Runtime or OpenVINO:

        * ``dense=False``: input ``patch`` (N, C, K, K), or (N, C, K, K, K) for a 3-D
          network; a tri-planar network takes ``patch_0``, ``patch_1``, ``patch_2``
          (the patches normal to axes 0, 1 and 2, in the order of its towers). Output
          ``logits`` (N, classes), equal to ``net(x)`` in eval mode (dropout off). The
          whole-image network (``models.seo_whole_image``) takes ``image`` (N, C, H, W)
          and gives ``logits`` (N*H*W, classes), as it does in fastseg.
        * ``dense=True``: input ``image`` (N, C, H, W) with any H and W, or
          (N, C, D, H, W) for a 3-D network: the image as the network takes it
          (preprocessed, unpadded). Output ``probabilities`` (N, classes, H, W) (or
          (N, classes, D, H, W)): the softmax over classes at every pixel, so
          ``probabilities[0, 1]`` is what ``fastseg.segment(net, image[0], scale=1)``
          returns (the class-1 probability map), at every pixel including the
          borders. All classes are kept so that a network of more than two serves
          too.

    Raises
    ------
    MissingDependencyError
        The ``onnx`` package is not installed (``pip install "fastseg[onnx]"``).
    InvalidValueError
        A network with no such form: densely, a tri-planar network (its towers run
        over three plane orientations of a volume), the whole-image network (not a
        patch classifier), a convolution with padding (it pads each patch at its own
        border) or fewer than 2 classes; in either form a layer ONNX has no
        counterpart for here, or a patch size the network cannot take. Also an
        unfitted Segmenter, a damaged or foreign model file, an opset out of range.
    InvalidTypeError
        A `model` of another type, a non-bool `dense`, a non-integer `opset`.
    FileNotFoundError, OSError
        A model file that does not exist; a `path` that cannot be written.

    Notes
    -----
    The dense graph mirrors the image inside the graph exactly as
    :func:`fastseg.data.pad_for_patches` does (NumPy's ``"reflect"``: about the edge
    pixel, which is not repeated, reflecting again where the image is smaller than the
    padding), by gathering reflected indices: ONNX's own Pad has the same ``"reflect"``
    mode but refuses pads as large as the axis. Each pixel's patch starts ``K // 2``
    pixels before it. A Segmenter's photo preprocessing
    (:func:`fastseg.data.preprocess`) and a volume's z-scoring stay outside the graph:
    feed the network's input, as to :func:`fastseg.segment` with a bare network.

    Examples
    --------
    >>> import fastseg, fastseg.export, onnxruntime as ort   # doctest: +SKIP
    >>> net = fastseg.models.lai2d(hidden=100).eval()
    >>> fastseg.export.to_onnx(net, "lai2d.onnx", dense=True)
    >>> s = ort.InferenceSession("lai2d.onnx")
    >>> prob = s.run(None, {"image": image[None, None]})[0][0, 1]   # (H, W)
    """
    return _export(model, path, dense=dense, opset=opset)[0]
