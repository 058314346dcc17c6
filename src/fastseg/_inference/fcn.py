"""A patch classifier rewritten as a fully convolutional network: the dense plan.

A patch network (convolutions, pooling, then ``Flatten`` and fully connected
layers) classifies one K x K patch. Sliding it over an image one patch at a
time repeats almost all of the convolution work; the fully convolutional
form does it once. The first ``Linear`` after ``Flatten`` sees the final
feature map, (F, Kf, Kf), flattened in C order, so its weight ``(out,
F*Kf*Kf)`` reshaped to ``(out, F, Kf, Kf)`` is a convolution giving the same
number at every position; each later ``Linear`` is a 1 x 1 convolution.

Layers with a stride (pooling, strided convolutions) make the dense network
produce one output per ``S`` pixels, ``S`` being the product of the strides.
:meth:`DensePlan.run` computes one such window; :meth:`DensePlan.run_block` runs it
on each of the ``S**2`` shifted windows and interleaves them (shift-and-stitch), which
fills every position.

The plan is N-D: its steps (:class:`Conv`, :class:`Pool`, :class:`Act`) carry
2-D or 3-D kernels and strides per axis (``Conv2d``/``MaxPool2d`` and
``Conv3d``/``MaxPool3d`` layers), and :mod:`fastseg._inference.fftconv` convolves in any
number of dimensions. How each convolution runs (direct or FFT) is decided per
call by :mod:`fastseg._inference.cost`; the kernel spectra an FFT step needs are
kept on the plan (:meth:`DensePlan.spectra`), and :func:`cached_plan` keeps the
plan of the model segmented last, so they are computed once per model and FFT
size.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import math
import threading
import weakref
import zlib
from dataclasses import dataclass, field

import numpy as np

from fastseg import backends, nn, ops
from fastseg._inference import fftconv
from fastseg._shapes import out_size
from fastseg.backends import numpy_backend
from fastseg.errors import InvalidTypeError, InvalidValueError

__all__ = ["Conv", "Pool", "Act", "DensePlan", "plan", "cached_plan", "infer_patch_size",
           "class1_probability", "ACTIVATIONS", "leaf_layers", "refuse", "geometry", "host",
           "fingerprint_arrays"]


# ---- the steps ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Conv:
    """A valid (unpadded) convolution: weight (F, C, *kernel), bias (F,) or None, a
    stride per spatial axis."""

    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return self.weight.ndim - 2

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(self.weight.shape[2:])

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(out_size(n, k, s) for n, k, s in zip(shape, self.kernel, self.stride,
                                                          strict=True))


@dataclass(frozen=True)
class Pool:
    """Max pooling: a window of `kernel` moved by `stride`, per spatial axis."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.kernel)

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(out_size(n, k, s) for n, k, s in zip(shape, self.kernel, self.stride,
                                                          strict=True))


@dataclass(frozen=True)
class Act:
    """An element-wise activation: ``"relu"``, ``"tanh"`` or ``"sigmoid"`` (an ``ops`` name)."""

    name: str


ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
# Spatial layer classes by dimension.
_CONVS = {2: nn.Conv2d, 3: nn.Conv3d}
_POOLS = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_CONV_OPS = {2: "conv2d", 3: "conv3d"}
_POOL_OPS = {2: "max_pool2d", 3: "max_pool3d"}
#: The activations a backend's conv2d_packed applies itself (contract.INFERENCE).
_TILE_ACTS = ("relu", "tanh", "sigmoid")


def _dims_of(layer, table) -> int | None:
    return next((d for d, cls in table.items() if isinstance(layer, cls)), None)


def _per_axis(value, dims) -> tuple[int, ...]:
    """A layer's kernel size or stride per spatial axis (2-D layers keep ints)."""
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * dims


def _op_arg(values: tuple[int, ...]):
    """What ops takes for a kernel size or stride: an int in 2-D, a triple in 3-D."""
    return values[0] if len(values) == 2 else values


# ---- the plan -------------------------------------------------------------------------------


@dataclass(eq=False)
class DensePlan:
    """The fully convolutional form of a patch classifier.

    Attributes
    ----------
    steps : list of Conv, Pool or Act
    patch_size : int
        K, the side of the (square or cubic) patch the network classifies.
    in_channels, num_classes : int
    strides : tuple of int
        S per spatial axis, the product of every stride: the dense output has one
        value per S pixels (voxels) along that axis.
    ndim : int
        Spatial dimensions (2 for images, 3 for volumes).
    caller : str
        The public function the plan serves, named in its error messages.
    fingerprint : tuple
        The steps with a checksum of every weight (:func:`cached_plan` compares it).
    """

    steps: list = field(default_factory=list)
    patch_size: int = 0
    in_channels: int = 0
    num_classes: int = 0
    strides: tuple = (1, 1)
    ndim: int = 2
    caller: str = "segment"
    fingerprint: tuple = ()
    _spectra: dict = field(default_factory=dict, repr=False)
    _packed: dict = field(default_factory=dict, repr=False)  # by (backend, step index)
    _schedules: dict = field(default_factory=dict, repr=False)  # by image shape and options
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def stride(self) -> int:
        """The total stride of a plan whose strides are equal on every axis (all 2-D
        networks; segment's tiles are square)."""
        if len(set(self.strides)) != 1:
            raise InvalidValueError(f"{self.caller}: the network's total strides "
                                    f"{self.strides} differ between axes")
        return self.strides[0]

    def input_shape(self, out: tuple[int, ...]) -> tuple[int, ...]:
        """Input window that gives `out` dense outputs (per axis)."""
        return tuple(s * (n - 1) + self.patch_size for s, n in zip(self.strides, out,
                                                                    strict=True))

    def shapes(self, out: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The spatial input shape of every step for a window of `out` outputs."""
        shape, result = self.input_shape(out), []
        for step in self.steps:
            result.append(shape)
            if not isinstance(step, Act):
                shape = step.out_shape(shape)
        return result

    def spectra(self, index: int, fft_shape: tuple[int, ...],
                workers: int) -> fftconv.KernelSpectra:
        """Kernel spectra of conv step `index` at `fft_shape`, computed once and kept.

        One FFT shape per step is kept: asking for another replaces it, so the plan
        holds at most the spectra of one schedule (:mod:`fastseg._inference.cost` keeps
        those within its spectra budget).
        """
        with self._lock:
            have = self._spectra.get(index)
            if have is None or have.fft_shape != tuple(fft_shape):
                # Free the old spectra before making new ones: both the kept copy and
                # this name (which held them through the making: 394 + 468 MB at once on
                # lai2d from 584x565 to 580x560, a process peak of 1.4 GB).
                self._spectra.pop(index, None)
                have = None
                have = fftconv.KernelSpectra(host(self.steps[index].weight), fft_shape,
                                              workers)
                self._spectra[index] = have
            return have

    def packed_weight(self, index: int, table):
        """The weight of 2-D conv step `index` packed once by backend `table` for all the
        windows the plan runs (``table.conv2d_weight_packed``), or None where the backend
        gains nothing by it: dense lai2d's first Linear as a 16x16 convolution, 51 MB the
        C backend would pack again at every window otherwise. Packed again when the
        kernels in use change (another ISA or K block: ``packed.current()``)."""
        key = (table.name, index)
        with self._lock:
            have = self._packed.get(key)
            if have is None or not have.current():
                self._packed.pop(key, None)  # free the old copy before packing a new one
                have = None
                have = table.conv2d_weight_packed(self.steps[index].weight)
                if have is None:
                    return None
                self._packed[key] = have
            return have

    def fused(self, i: int) -> tuple[int, int | None]:
        """What runs with conv step i when it runs by FFT: the activations after it
        and a 1x1 convolution after those, if any. Returns (the next step's index,
        the 1x1 convolution's index or None)."""
        j = i + 1
        while j < len(self.steps) and isinstance(self.steps[j], Act):
            j += 1
        if j < len(self.steps) and _is_pointwise(self.steps[j]):
            return j + 1, j
        return j, None

    def run(self, x: np.ndarray, schedule=None) -> np.ndarray:
        """Logits (1, num_classes, *out) of the dense network on x (1, C, *in), as a
        NumPy array (a model on the GPU computes on the device; only the logits
        come back). `schedule` (:class:`fastseg._inference.cost.Schedule`) says which
        convolutions run by FFT; None runs every one directly."""
        return ops.to_device(self._run_steps(x, schedule, 0, len(self.steps)), "cpu")

    def _run_steps(self, x, schedule, start, stop, strides=None):
        """Steps ``start`` to ``stop - 1`` on x, on the backend's device; the conv step
        ``start`` with `strides` instead of its own when given (always directly)."""
        fft = {} if schedule is None else schedule.fft
        i = start
        while i < stop:
            step = self.steps[i]
            if isinstance(step, Conv) and i in fft and not (i == start and strides):
                x, i = self._run_fft(x, i, fft[i], schedule.workers)
                continue
            if isinstance(step, Conv):
                stride = strides if i == start and strides else step.stride
                x, i = self._conv(i, x, _op_arg(stride), stop)
                continue
            if isinstance(step, Pool):
                x = getattr(ops, _POOL_OPS[step.ndim])(x, _op_arg(step.kernel),
                                                       _op_arg(step.stride))[0]
            else:
                x = getattr(ops, step.name)(x)
            i += 1
        return x

    def _conv(self, i, x, stride, stop):
        """Conv step i on x directly (`stride` as ops takes it). Returns (output, next
        step). Where the backend packs the weight (:meth:`packed_weight`), from the copy
        packed once for the plan, with the activation after it (before `stop`) applied
        to each tile of the output as it is finished."""
        step = self.steps[i]
        if step.ndim == 2 and x.shape[0] > 0:
            table = backends.table()
            packed = self.packed_weight(i, table)
            if packed is not None:
                act = self.steps[i + 1] if i + 1 < stop else None
                act = act.name if isinstance(act, Act) and act.name in _TILE_ACTS else None
                y = table.conv2d_packed(table.as_float32("x", x, 4, "(N, C, H, W)"), packed,
                                        step.bias, stride, act)
                return y, i + 1 + (act is not None)
        return getattr(ops, _CONV_OPS[step.ndim])(x, step.weight, step.bias,
                                                  stride=stride), i + 1

    def _last_window(self) -> int | None:
        """Index of the last convolution with a window larger than one pixel when only
        activations and 1x1 convolutions follow it (they act on each position alone),
        else None."""
        for i in range(len(self.steps) - 1, -1, -1):
            step = self.steps[i]
            if isinstance(step, Act) or _is_pointwise(step):
                continue
            return i if isinstance(step, Conv) else None
        return None

    def _run_strided_tail(self, padded, origin, counts, step, last, schedule):
        """:meth:`run_lattice` of an unstrided plan: the steps before conv `last` over
        the window's every position, then `last` at stride `step` (its sums only at the
        lattice's positions: in lai_triplanar's towers the block of the first Linear, 9
        tenths of the work, done ``1/prod(step)`` times), then what follows it, which
        acts on each position alone. The lattice's values are the dense map's (the
        sums of `last` in the same order, direct; to rounding where the dense map takes
        `last` by FFT)."""
        x = self._run_steps(self._window(padded, origin, step, counts), schedule, 0, last)
        x = self._run_steps(x, schedule, last, len(self.steps), strides=step)
        out = ops.to_device(x, "cpu")[0]
        return out[(slice(None),) + tuple(slice(0, c) for c in counts)]

    def run_grid(self, padded: np.ndarray, origin, counts, schedule=None) -> np.ndarray:
        """Outputs (channels, *counts) at the positions ``origin + strides * i`` (``0 <= i
        < counts`` per axis): one window of the dense network, one shift of
        shift-and-stitch, a grid of every ``strides``-th position at ``1 / prod(strides)``
        of the work of the whole block.

        `padded` is (C, *spatial) with the patch of output position ``o`` at
        ``padded[:, o:o + K]`` on every axis (the image or volume padded by its
        cutter). Returns the last step's raw output (class scores for a classifier).
        """
        out = self.run(self._window(padded, origin, self.strides, counts), schedule)[0]
        return out[(slice(None),) + tuple(slice(0, c) for c in counts)]

    def _window(self, padded, origin, steps, counts) -> np.ndarray:
        """(1, C, *spatial): the part of `padded` holding the patches of the outputs at
        ``origin + steps * i``, ``0 <= i < counts`` per axis."""
        k = self.patch_size
        return np.ascontiguousarray(padded[(None, slice(None)) + tuple(
            slice(o, o + s * (c - 1) + k) for o, s, c in zip(origin, steps, counts,
                                                           strict=True))])

    def run_lattice(self, padded: np.ndarray, origin, counts, step,
                    schedule=None) -> np.ndarray:
        """Outputs (channels, *counts) at the positions ``origin + step * i``: per axis,
        :meth:`run_grid`'s where `step` is the plan's stride there, else every position
        of the block (:meth:`run_block`, which an unstrided plan computes at no extra
        cost per position) kept every `step`-th."""
        step = tuple(int(s) for s in step)
        if step == tuple(self.strides):
            return self.run_grid(padded, origin, counts, schedule)
        last = self._last_window()
        # ops' 2-D convolutions take one stride for both axes
        if last is not None and all(s == 1 for s in self.strides) and (
                self.ndim == 3 or len(set(step)) == 1):
            return self._run_strided_tail(padded, origin, counts, step, last, schedule)
        full = tuple((c - 1) * s + 1 for c, s in zip(counts, step, strict=True))
        block = self.run_block(padded, origin, full, schedule)
        return block[(slice(None),) + tuple(slice(None, None, s) for s in step)]

    def run_block(self, padded: np.ndarray, origin, out_shape, schedule=None) -> np.ndarray:
        """Outputs (channels, *out_shape) at dense positions ``origin + out_shape``, by
        shift-and-stitch: one :meth:`run_grid` per shift of the total strides.

        With strides S, position ``o + d + S*i`` (shift ``d < S``) is output ``i`` of
        the grid that starts at ``o + d``; the ``prod(S)`` grids together fill the
        block. `padded` is :meth:`run_grid`'s.
        """
        strides = self.strides
        block = None
        for shift in itertools.product(*(range(min(s, n)) for s, n in zip(strides, out_shape,
                                                                           strict=True))):
            counts = [len(range(d, n, s)) for d, n, s in zip(shift, out_shape, strides,
                                                              strict=True)]
            out = self.run_grid(padded, [o + d for o, d in zip(origin, shift, strict=True)],
                                counts, schedule)
            if block is None:
                block = np.empty((out.shape[0], *out_shape), np.float32)
            block[(slice(None),) + tuple(slice(d, None, s) for d, s in zip(shift, strides,
                                                                            strict=True))] = out
        return block

    def _run_fft(self, x, i, how, workers):
        """Run conv step i by FFT, with the activations after it and, when a 1x1
        convolution follows them, that convolution too: its input then exists a few
        channels at a time, never whole. Returns (output, next step).

        `how` (:class:`fastseg._inference.cost.FFTStep`) gives the FFT shape and the
        kernel's settings (``fftconv.profiling`` collects its stage times)."""
        end, proj = self.fused(i)
        acts = [step.name for step in self.steps[i + 1:end if proj is None else proj]]
        project = None
        if proj is not None:
            w, b = self.steps[proj].weight, self.steps[proj].bias
            project = (host(w).reshape(w.shape[:2]), host(b))
        y = fftconv.correlate(host(x)[0], self.spectra(i, how.fft_shape, workers),
                              host(self.steps[i].bias), group=how.group, activations=acts,
                              project=project, workers=workers,
                              mults=getattr(how, "mults", None),
                              chunk=getattr(how, "chunk", None))
        return y[None], end


def host(a):
    """`a` as a NumPy array (the FFT path computes on the host), None kept."""
    return None if a is None else ops.to_device(a, "cpu")


def _is_pointwise(step) -> bool:
    return isinstance(step, Conv) and all(s == 1 for s in step.stride) and \
        all(k == 1 for k in step.kernel)


# ---- building a plan from a model -----------------------------------------------------------


def leaf_layers(model):
    """The leaf layers of `model`, nested Sequentials unrolled, in order."""
    if isinstance(model, nn.Sequential):
        for child in model:
            yield from leaf_layers(child)
    else:
        yield model


def refuse(caller, model, layer, why):
    raise InvalidValueError(f"{caller}: cannot run {type(model).__name__} densely: layer "
                            f"{type(layer).__name__}({layer.extra_repr()}) {why}")


def geometry(model, caller):
    """(layer, kind, kernel, stride, ndim) for each layer, kernel and stride per axis;
    refuses what cannot run densely."""
    if not isinstance(model, nn.Module):
        raise InvalidTypeError(f"model: expected a fastseg.nn.Module, got "
                               f"{type(model).__name__}")
    layers = list(leaf_layers(model))
    # The kind of network first: a whole-image or multi-input one fails for that
    # reason, not for whichever of its layers happens to come first.
    for layer in layers:
        if isinstance(layer, nn.Parallel):
            refuse(caller, model, layer, f"takes several inputs (tri-planar); {caller} needs "
                    "a network of one input")
        if isinstance(layer, nn.PixelLogits):
            refuse(caller, model, layer, "makes a whole-image network, not a patch "
                    "classifier; call the model on the image instead")
    out = []
    for layer in layers:
        conv_dims, pool_dims = _dims_of(layer, _CONVS), _dims_of(layer, _POOLS)
        if conv_dims:
            if any(_per_axis(layer.padding, conv_dims)):
                # Zero padding inside a patch sits at the patch border, which moves
                # with every pixel: no single convolution over the image gives it.
                refuse(caller, model, layer, "has padding > 0, which pads each patch "
                        "separately")
            out.append((layer, "conv", _per_axis(layer.kernel_size, conv_dims),
                        _per_axis(layer.stride, conv_dims), conv_dims))
        elif pool_dims:
            out.append((layer, "pool", _per_axis(layer.kernel_size, pool_dims),
                        _per_axis(layer.stride, pool_dims), pool_dims))
        elif isinstance(layer, (nn.Linear, nn.Flatten, nn.Dropout, *ACTIVATIONS)):
            out.append((layer, "other", None, None, None))
        else:
            refuse(caller, model, layer, f"is not one {caller} knows how to run densely")
    if len({d for *_, d in out if d is not None}) > 1:
        raise InvalidValueError(f"{caller}: {type(model).__name__} mixes 2-D and 3-D layers")
    return out


def infer_patch_size(model, caller: str = "segment") -> int:
    """The patch size of a patch classifier.

    ``model.patch_size`` when the model carries one; otherwise the smallest K for
    which the final feature map matches the first ``Linear`` layer's input size
    (square or cubic patches).
    """
    size = getattr(model, "patch_size", None)
    if isinstance(size, int) and size > 0:
        return size
    shapes_of = geometry(model, caller)
    channels, spatial, ndim = None, [], 2
    for layer, kind, k, s, dims in shapes_of:
        if kind != "other":
            spatial.append((k, s))
            ndim = dims
            channels = layer.out_channels if kind == "conv" else channels
        elif isinstance(layer, nn.Linear):
            if channels is None:
                break
            side = round((layer.in_features / channels) ** (1 / ndim))
            if side < 1 or channels * side**ndim != layer.in_features:
                raise InvalidValueError(
                    f"{caller}: the first Linear layer takes {layer.in_features} features, "
                    f"not channels * side**{ndim} for the {channels} channels before it; "
                    "pass patch_size")
            sides = {(side,) * ndim}
            for k, s in reversed(spatial):
                sides = {tuple((n - 1) * st + kk for n, kk, st in zip(sd, k, s, strict=True))
                         for sd in sides}
            cube = sides.pop()
            if len(set(cube)) != 1:
                raise InvalidValueError(f"{caller}: the network's patch is {cube}, not a "
                                        "square or a cube; pass patch_size")
            return cube[0]
    raise InvalidValueError("patch_size: cannot infer it from a network without convolutions "
                            "followed by a Linear layer; pass patch_size")


def plan(model, patch_size: int, caller: str = "segment") -> DensePlan:
    """Build the :class:`DensePlan` of `model` for patches of `patch_size`.

    `caller` is the public function being served (``"segment"``,
    ``"Segmenter.predict_proba"``, ...), named in error messages.

    Raises
    ------
    ValueError
        When a layer cannot run densely (padding inside the patch, several inputs,
        a whole-image network) or the network does not map one patch of
        `patch_size` to one vector of at least two class scores.
    """
    shapes_of = geometry(model, caller)
    dims = next((d for *_, d in shapes_of if d is not None), 2)
    result = DensePlan(patch_size=patch_size, ndim=dims, caller=caller)
    strides = [1] * dims
    channels, side, flat = None, (patch_size,) * dims, False
    for layer, kind, k, s, _ in shapes_of:
        if kind in ("conv", "pool") and flat:
            refuse(caller, model, layer, "comes after Flatten")
        if kind in ("conv", "pool") and any(n < kk for n, kk in zip(side, k, strict=True)):
            raise InvalidValueError(f"patch_size: {patch_size} is too small for "
                                    f"{type(model).__name__}: the feature map shrinks to "
                                    f"{side} before a window of {k}")
        if kind == "conv":
            w = layer.weight.data
            if channels is None:
                result.in_channels = w.shape[1]
            bias = None if layer.bias is None else layer.bias.data
            step = Conv(w, bias, s)
            result.steps.append(step)
            channels, side = w.shape[0], step.out_shape(side)
        elif kind == "pool":
            step = Pool(k, s)
            result.steps.append(step)
            side = step.out_shape(side)
        elif isinstance(layer, nn.Flatten):
            flat = True
        elif isinstance(layer, nn.Linear):
            w = layer.weight.data
            if channels is None:
                refuse(caller, model, layer, "comes before any convolution")
            if w.shape[1] != channels * math.prod(side):
                raise InvalidValueError(
                    f"patch_size: {patch_size} gives a final feature map of {channels} "
                    f"channels x {side} = {channels * math.prod(side)} values, but the "
                    f"Linear layer takes {w.shape[1]}; is patch_size right?")
            # (out, F*K*K) -> (out, F, K, K): C-order flattening makes this exact.
            bias = None if layer.bias is None else layer.bias.data
            result.steps.append(Conv(w.reshape(w.shape[0], channels, *side), bias,
                                     (1,) * dims))
            channels, side, flat = w.shape[0], (1,) * dims, True
        elif isinstance(layer, tuple(ACTIVATIONS)):
            result.steps.append(Act(next(n for c, n in ACTIVATIONS.items()
                                         if isinstance(layer, c))))
        # Dropout is the identity at inference.
        if kind in ("conv", "pool"):
            strides = [a * b for a, b in zip(strides, s, strict=True)]
    name = type(model).__name__
    if channels is None:
        raise InvalidValueError(f"{caller}: {name} has no convolution or Linear layer")
    if any(n != 1 for n in side):
        cube = "x".join([str(patch_size)] * dims)
        raise InvalidValueError(f"{caller}: {name} maps a {cube} patch to {channels} channels "
                                f"of {side}, not to one vector of class scores")
    if channels < 2:
        raise InvalidValueError(f"{caller}: {name} gives {channels} score per patch; need at "
                                "least 2 classes (softmax over classes, class 1 = foreground)")
    result.num_classes = channels
    result.strides = tuple(strides)
    result.fingerprint = _fingerprint(result)
    return result


#: Arrays are checksummed in pieces of this many bytes, the pieces on the kernels'
#: threads (zlib lets go of the GIL): lai2d's 51 MB first Linear took 12 ms of every
#: segment call on one thread, 5 % of a 192x192 image by FFT. A fixed piece, not one per
#: thread, so the checksum (and a kept plan) stays the same whatever the thread count.
_CHECKSUM_PIECE_BYTES = 4 << 20


def _checksum(a: np.ndarray) -> tuple:
    """CRC-32 of each `_CHECKSUM_PIECE_BYTES` piece of contiguous `a`'s bytes."""
    data = memoryview(a.reshape(-1)).cast("B")
    pieces = [data[i:i + _CHECKSUM_PIECE_BYTES]
              for i in range(0, len(data), _CHECKSUM_PIECE_BYTES)] or [data]
    threads = min(len(pieces), backends.get_num_threads())
    if threads < 2:
        return tuple(map(zlib.crc32, pieces))
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return tuple(pool.map(zlib.crc32, pieces))


def _digest(a):
    """Shape, dtype and checksum of an array (None kept)."""
    if a is None:
        return None
    a = np.ascontiguousarray(host(a))
    return a.shape, str(a.dtype), _checksum(a)


def fingerprint_arrays(arrays) -> tuple:
    """The digests of several arrays (a head's weights, say)."""
    return tuple(_digest(a) for a in arrays)


def _fingerprint(dense: DensePlan) -> tuple:
    """What the plan computes: its steps, with a checksum of every weight and bias."""
    return (dense.patch_size,) + tuple(
        ("conv", _digest(s.weight), _digest(s.bias), s.stride) if isinstance(s, Conv) else s
        for s in dense.steps)


_cache_lock = threading.Lock()
_cache: list = [None]  # (weak reference to the model, plan): the model segmented last


def cached_plan(model, patch_size: int, caller: str = "segment") -> DensePlan:
    """:func:`plan`, reusing the plan (and its kernel spectra) of the model segmented last
    while its architecture and weights are unchanged (a checksum of every weight
    decides, so weights changed in place are seen). One plan is kept, no more."""
    fresh = plan(model, patch_size, caller)
    with _cache_lock:
        entry = _cache[0]
        if entry is not None and entry[0]() is model and entry[1].fingerprint == fresh.fingerprint:
            # The same plan object (its spectra) under this call's name for messages.
            return dataclasses.replace(entry[1], caller=caller)
        try:
            _cache[0] = (weakref.ref(model), fresh)
        except TypeError:  # a module that cannot be weakly referenced: no cache
            _cache[0] = None
    return fresh


def class1_probability(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 of (classes, ...) logits, class 1 only, in float32.

    :func:`fastseg.ops.softmax`'s log-softmax (the host backends' one), so its bits, but
    along the logits' own contiguous rows and with only class 1 exponentiated: through
    ``ops.softmax`` the (pixels, classes) transpose was copied and read across its rows
    (20 ms of lai2d's 1.15 s at 584x565 by FFT, on one thread; this, under 1 ms)."""
    logits = host(logits)
    classes = logits.shape[0]
    z = np.ascontiguousarray(logits, dtype=np.float32).reshape(classes, -1)
    return np.exp(numpy_backend.log_softmax(z, axis=0)[1]).reshape(logits.shape[1:])

