"""The tri-planar network's dense form: three towers, each run densely over its planes.

:func:`fastseg.models.lai_triplanar` is ``Sequential(Parallel(t0, t1, t2), Linear(3F,
hidden), act, ..., Linear(hidden, classes))``: tower ``a`` sees the patch in the
plane normal to axis ``a`` and the towers meet only at the first ``Linear``. Its
input is the concatenation of the towers' flattened outputs, so its weight
``W = [W0 | W1 | W2]`` splits into one block of columns per tower and

    hidden = act(t0(p0) @ W0.T + t1(p1) @ W1.T + t2(p2) @ W2.T + b).

Each term is a 2-D patch network (the tower, then its block as a ``Linear`` without
bias) that runs densely over every plane normal to its axis
(:class:`fastseg._inference.fcn.DensePlan`); the three maps are summed voxel by voxel,
and the bias, the activation and the rest of the head (``Linear`` layers and
activations) then act on each voxel's hidden vector, exactly as the classifier
acts on one patch's.
"""
from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np

from fastseg import nn, ops
from fastseg._inference import fcn
from fastseg._shapes import out_size
from fastseg.errors import InvalidValueError

__all__ = ["TriplanarPlan", "plan", "cached_plan", "is_triplanar", "infer_patch_size"]



def is_triplanar(model) -> bool:
    """Whether `model` is ``Sequential(Parallel(...), ...)``, the tri-planar layout."""
    return isinstance(model, nn.Sequential) and len(model) > 0 and \
        isinstance(model[0], nn.Parallel)


class _ColumnBlock(nn.Linear):
    """A ``Linear`` without bias over given weights (one tower's block of the first
    ``Linear``), made without drawing initial weights from fastseg's generator."""

    def __init__(self, weight):
        nn.Module.__init__(self)
        self.out_features, self.in_features = weight.shape
        self.weight = nn.Parameter(weight)
        self.register_parameter("bias", None)
        self._x = None


@dataclass(eq=False)
class TriplanarPlan:
    """The dense form of a tri-planar classifier.

    Attributes
    ----------
    towers : tuple of DensePlan
        Tower ``a`` (the plane normal to axis ``a``) followed by its block of the first
        ``Linear``'s weight: each gives ``hidden`` pre-activation terms per voxel.
    bias : numpy.ndarray or None
        The first ``Linear``'s bias.
    head : tuple
        What follows the hidden layer's pre-activation, in order: ``("act", name)`` or
        ``("linear", weight, bias)``.
    patch_size, hidden, num_classes : int
    fingerprint : tuple
        The towers' fingerprints and a checksum of the head (:func:`cached_plan`).
    """

    towers: tuple
    bias: np.ndarray | None
    head: tuple
    patch_size: int
    hidden: int
    num_classes: int
    fingerprint: tuple = ()
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def class1_probability(self, pre: np.ndarray) -> np.ndarray:
        """Class-1 probability of voxels from their summed hidden terms (hidden, n)."""
        x = np.ascontiguousarray(pre.reshape(self.hidden, -1).T)
        if self.bias is not None:
            x += fcn.host(self.bias)
        for step in self.head:
            if step[0] == "act":
                x = getattr(ops, step[1])(x)
            else:
                x = ops.linear(x, step[1], step[2])
        return ops.to_device(ops.softmax(x), "cpu")[:, 1].reshape(pre.shape[1:])


def _tower_features(tower, patch_size, caller, model) -> int:
    """Values the tower gives for one K x K patch (its output flattened)."""
    channels, side = None, (patch_size, patch_size)
    for layer, kind, k, s, dims in fcn.geometry(tower, caller):
        if kind == "other":
            if not isinstance(layer, (nn.Dropout, *fcn.ACTIVATIONS)):
                fcn.refuse(caller, model, layer, "is not a convolution, pooling or "
                               "activation inside a tri-planar tower")
            continue
        if dims != 2:
            fcn.refuse(caller, model, layer, "is not 2-D; a tri-planar tower takes 2-D "
                           "patches")
        if any(n < kk for n, kk in zip(side, k, strict=True)):
            raise InvalidValueError(f"patch_size: {patch_size} is too small for the "
                                    f"tri-planar towers: the feature map shrinks to {side} "
                                    f"before a window of {k}")
        side = tuple(out_size(n, kk, ss) for n, kk, ss in zip(side, k, s, strict=True))
        if kind == "conv":
            channels = layer.out_channels
    if channels is None:
        raise InvalidValueError(f"{caller}: a tri-planar tower has no convolution")
    return channels * math.prod(side)


def _head_steps(layers, caller, model):
    """The first Linear and the steps after it."""
    if not layers or not isinstance(layers[0], nn.Linear):
        raise InvalidValueError(f"{caller}: a tri-planar network needs a Linear layer right "
                                "after its Parallel towers")
    steps, width = [], layers[0].out_features
    for layer in layers[1:]:
        if isinstance(layer, nn.Dropout):
            continue  # the identity at inference
        name = next((n for c, n in fcn.ACTIVATIONS.items() if isinstance(layer, c)), None)
        if name is not None:
            steps.append(("act", name))
        elif isinstance(layer, nn.Linear):
            steps.append(("linear", layer.weight.data,
                          None if layer.bias is None else layer.bias.data))
            width = layer.out_features
        else:
            fcn.refuse(caller, model, layer, "cannot follow the towers of a tri-planar "
                           "network densely (Linear layers and activations can)")
    if width < 2:
        raise InvalidValueError(f"{caller}: {type(model).__name__} gives {width} score per "
                                "patch; need at least 2 classes")
    return layers[0], tuple(steps), width


def _branches(model, caller):
    if not is_triplanar(model):
        raise InvalidValueError(f"{caller}: {type(model).__name__} is not a tri-planar network "
                                "(Sequential(Parallel(tower, tower, tower), Linear, ...))")
    branches = list(model[0].branches)
    if len(branches) != 3:
        raise InvalidValueError(f"{caller}: a tri-planar network has 3 towers (one per plane), "
                                f"this one has {len(branches)}")
    return branches


def infer_patch_size(model, caller="segment") -> int:
    """K of a tri-planar network: ``model.patch_size`` if set, else the smallest K for
    which the three towers together give the first ``Linear``'s input size."""
    size = getattr(model, "patch_size", None)
    if isinstance(size, int) and size > 0:
        return size
    branches = _branches(model, caller)
    first, _, _ = _head_steps(list(model)[1:], caller, model)
    for k in range(1, 1025):
        try:
            total = sum(_tower_features(t, k, caller, model) for t in branches)
        except InvalidValueError:
            continue
        if total == first.in_features:
            return k
        if total > first.in_features:
            break
    raise InvalidValueError(f"{caller}: no patch size makes the tri-planar towers give the "
                            f"{first.in_features} features the first Linear takes; pass "
                            "patch_size")


def plan(model, patch_size: int, caller: str = "segment") -> TriplanarPlan:
    """The :class:`TriplanarPlan` of a tri-planar classifier for K x K patches.

    Raises
    ------
    ValueError
        Not three 2-D towers of one input channel each, a first ``Linear`` whose input
        is not the towers' outputs for K x K patches, a layer that cannot run densely.
    """
    branches = _branches(model, caller)
    first, head, classes = _head_steps(list(model)[1:], caller, model)
    sizes = [_tower_features(t, patch_size, caller, model) for t in branches]
    if sum(sizes) != first.in_features:
        raise InvalidValueError(f"patch_size: {patch_size} gives the tri-planar towers "
                                f"{' + '.join(map(str, sizes))} = {sum(sizes)} features, but the "
                                f"first Linear takes {first.in_features}; is patch_size right?")
    weight = fcn.host(first.weight.data)
    towers, start = [], 0
    for tower, n in zip(branches, sizes, strict=True):
        block = _ColumnBlock(weight[:, start:start + n])
        start += n
        dense = fcn.plan(nn.Sequential(*fcn.leaf_layers(tower), nn.Flatten(), block),
                            patch_size, caller)
        if dense.in_channels != 1:
            raise InvalidValueError(f"{caller}: a tri-planar tower takes {dense.in_channels} "
                                    "channels; the tri-planar cutter gives 1 per plane")
        towers.append(dense)
    bias = None if first.bias is None else first.bias.data
    result = TriplanarPlan(tuple(towers), bias, head, patch_size, first.out_features, classes)
    result.fingerprint = (tuple(t.fingerprint for t in towers),
                          fcn.fingerprint_arrays([bias] + [a for step in head
                                                               for a in step[1:]
                                                               if not isinstance(a, str)]))
    return result


_cache_lock = threading.Lock()
_cache: list = [None]  # (weak reference to the model, plan): the model segmented last


def cached_plan(model, patch_size: int, caller: str = "segment") -> TriplanarPlan:
    """:func:`plan`, reusing the towers' plans (and their kernel spectra) of the model
    segmented last while its weights are unchanged, as :func:`.fcn.cached_plan`."""
    fresh = plan(model, patch_size, caller)
    with _cache_lock:
        entry = _cache[0]
        if entry is not None and entry[0]() is model and entry[1].fingerprint == fresh.fingerprint:
            return entry[1]
        try:
            _cache[0] = (weakref.ref(model), fresh)
        except TypeError:
            _cache[0] = None
    return fresh
