"""The :class:`Module` base class and :class:`Parameter`, shaped after ``torch.nn``.

There is no autograd: each module's ``forward`` keeps, in training mode, what
its ``backward`` needs, and ``backward(dy)`` returns the gradient with respect
to the input while *adding* the parameter gradients into ``Parameter.grad`` (as
successive ``loss.backward()`` calls do in PyTorch).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from fastseg import ops
from fastseg._arrays import host_array, host_copy
from fastseg.errors import InvalidValueError

__all__ = ["Module", "Parameter", "StateDictError", "IncompatibleKeys"]


class Parameter:
    """A trainable array: ``.data`` (float32) and ``.grad``.

    ``.grad`` is ``None`` until the first backward pass allocates it; later
    passes add into it, and ``zero_grad`` resets it. Both are NumPy arrays,
    or Numba device arrays after :meth:`Module.to` ``("cuda")``.

    Parameters
    ----------
    data : array_like
        Copied into a new C-contiguous float32 array.
    """

    def __init__(self, data):
        self.data = np.array(data, dtype=np.float32, order="C", copy=True)
        self.grad: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def device(self) -> str:
        """Where ``.data`` lives: ``"cpu"`` (NumPy) or ``"cuda"`` (a device array)."""
        return ops.device_of(self.data)

    def to(self, device: str) -> Parameter:
        """Move ``.data`` and ``.grad`` to `device` (``"cpu"`` or ``"cuda"``); returns self."""
        self.data = ops.to_device(self.data, device)
        if self.grad is not None:
            self.grad = ops.to_device(self.grad, device)
        return self

    @property
    def size(self) -> int:
        return self.data.size

    def numel(self) -> int:
        """Number of elements, as ``torch.Tensor.numel``."""
        return self.data.size

    def accumulate_grad(self, g) -> None:
        """Add `g` into ``.grad`` (allocating it on first use)."""
        if self.grad is None and not isinstance(g, np.ndarray) and ops.device_of(g) == "cuda":
            # A fresh device array from a backward op: take it, as for host arrays below.
            if tuple(g.shape) != tuple(self.data.shape):
                raise InvalidValueError(f"Parameter: gradient shape {tuple(g.shape)} differs from "
                                        f"the parameter's {tuple(self.data.shape)}")
            self.grad = g
        elif self.grad is None:
            # Take ownership of the fresh array a backward op returned instead
            # of copying it: the weight gradient of a big FC layer is ~50 MB.
            self.grad = np.require(g, dtype=self.data.dtype, requirements=["C", "W"])
            if self.grad.shape != self.data.shape:
                raise InvalidValueError(f"Parameter: gradient shape {self.grad.shape} differs from "
                                        f"the parameter's {self.data.shape}")
        elif isinstance(self.grad, np.ndarray) and isinstance(g, np.ndarray):
            self.grad += g
        else:
            ops.add_(self.grad, g)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop ``.grad`` (None, the PyTorch default) or set it to zeros where it lives."""
        if set_to_none:
            self.grad = None
        elif isinstance(self.grad, np.ndarray):
            self.grad.fill(0)  # any dtype (the float64 gradient checks use it too)
        elif self.grad is not None:
            ops.fill_(self.grad, 0)

    def __repr__(self) -> str:
        where = "" if isinstance(self.data, np.ndarray) else f", device={self.device!r}"
        return f"Parameter(shape={tuple(self.data.shape)}, dtype={self.data.dtype}{where})"


class StateDictError(InvalidValueError, RuntimeError):
    """A state dict that does not fit the module (a ``RuntimeError`` in PyTorch)."""


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` returns, as in PyTorch."""

    missing_keys: list
    unexpected_keys: list


class Module:
    """Base class of every layer and container.

    Sub-classes assign :class:`Parameter` and :class:`Module` attributes in
    ``__init__`` (after calling ``super().__init__()``); they are registered in
    assignment order, which fixes the ``state_dict`` key order, as in PyTorch.

    Attributes
    ----------
    training : bool
        True after :meth:`train` (the default), False after :meth:`eval`. In
        eval mode layers keep nothing for a backward pass, so inference on
        whole images holds no activations.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration -------------------------------------------------------

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if params is None:
            if isinstance(value, (Parameter, Module)):
                raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                     f"assigning {name!r}")
            object.__setattr__(self, name, value)
            return
        modules = self.__dict__["_modules"]
        if isinstance(value, Parameter):
            modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            modules[name] = value
        elif value is None and name in params:
            params[name] = None  # e.g. bias=False keeps the slot, as torch does
        else:
            params.pop(name, None)
            modules.pop(name, None)
        object.__setattr__(self, name, value)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register `param` (or an empty slot when None) under `name`."""
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    # ---- the computation ------------------------------------------------------

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def backward(self, dy):
        """Gradient w.r.t. the input of the last forward pass; accumulates ``.grad``.

        Layers with weights and the containers also take ``need_dx=False``
        (:attr:`accepts_need_dx`): they then accumulate ``.grad`` only and return None,
        skipping the input gradient a training step throws away.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define backward()")

    #: Whether :meth:`backward` takes ``need_dx``.
    accepts_need_dx = False

    def _has_parameters(self) -> bool:
        return next(iter(self.parameters()), None) is not None

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _saved(self, value):
        """`value` stored by forward, or a clear error when there is none."""
        if value is None:
            raise RuntimeError(
                f"{self._short_name()}.backward: no forward pass to differentiate; call the "
                "module in training mode (model.train()) before backward(), since eval mode "
                "keeps no activations")
        return value

    def _short_name(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    # ---- traversal ------------------------------------------------------------

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and all below it, with dotted names (``""`` for self)."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def _all_named_parameters(self, prefix: str = ""):
        for name, param in self._parameters.items():
            if param is not None:
                yield (f"{prefix}.{name}" if prefix else name), param
        for name, child in self._modules.items():
            yield from child._all_named_parameters(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, recurse: bool = True) -> list[tuple[str, Parameter]]:
        """``(dotted name, Parameter)`` pairs, each shared parameter once; with
        ``recurse=False`` only this module's own (as in PyTorch)."""
        if not recurse:
            return [(name, p) for name, p in self._parameters.items() if p is not None]
        seen, out = set(), []
        for name, param in self._all_named_parameters():
            if id(param) not in seen:
                seen.add(id(param))
                out.append((name, param))
        return out

    def parameters(self, recurse: bool = True) -> list[Parameter]:
        """Every :class:`Parameter`, in ``state_dict`` order (a list, reusable); with
        ``recurse=False`` only this module's own."""
        return [param for _, param in self.named_parameters(recurse)]

    # ---- modes and gradients -----------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Set training mode here and below; returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Set evaluation mode (no dropout, no stored activations); returns self."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every ``.grad`` to None (the PyTorch default) or to zeros."""
        for param in self.parameters():
            param.zero_grad(set_to_none)

    # ---- devices ------------------------------------------------------------------

    def to(self, device: str) -> Module:
        """Move every parameter (``.data`` and ``.grad``) to `device`; returns self.

        ``"cuda"`` puts them in Numba device arrays, ``"cpu"`` brings them back as
        NumPy arrays. To train on the GPU, set the backend too:
        ``fastseg.set_backend("cuda"); model.to("cuda")``. Then parameters,
        gradients, optimizer state (created after the move) and activations stay
        on the device; batches may be host arrays (each op copies them over) and
        the loss comes back as a float. An optimizer's existing state does not
        move with the model: move the model before its first ``step()``.
        """
        if device not in ops.DEVICES:
            raise InvalidValueError(f"device: expected one of {list(ops.DEVICES)}, got {device!r}")
        for param in self.parameters():
            param.to(device)
        return self

    def cuda(self) -> Module:
        """``self.to("cuda")``."""
        return self.to("cuda")

    def cpu(self) -> Module:
        """``self.to("cpu")``."""
        return self.to("cpu")

    # ---- state --------------------------------------------------------------------

    def state_dict(self) -> OrderedDict:
        """Host (NumPy) copies of every parameter array, wherever the parameters live,
        keyed as PyTorch keys them (``"0.weight"``)."""
        return OrderedDict((name, host_copy(param.data))
                           for name, param in self._all_named_parameters())

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays (or torch tensors) from `state_dict` into the parameters.

        Parameters
        ----------
        state_dict : mapping of str to array_like
        strict : bool
            Refuse missing and unexpected keys (shape mismatches are always refused).

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``, as PyTorch returns.

        Raises
        ------
        StateDictError
            A ``ValueError`` (and ``RuntimeError``) listing every problem; no
            parameter is changed when it is raised.
        """
        own = OrderedDict(self._all_named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors, arrays = [], {}
        for key, param in own.items():
            if key not in state_dict:
                continue
            arr = host_array(state_dict[key])
            if arr.dtype.kind not in "fiu":
                errors.append(f"wrong dtype for {key}: {arr.dtype}, expected a real number array")
            elif arr.shape != param.data.shape:
                errors.append(f"size mismatch for {key}: copying a param with shape "
                              f"{arr.shape} from checkpoint, the shape in current model is "
                              f"{param.data.shape}.")
            else:
                arrays[key] = arr
        if strict and missing:
            errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(map(repr, missing)))
        if strict and unexpected:
            errors.insert(0, "Unexpected key(s) in state_dict: "
                          + ", ".join(map(repr, unexpected)))
        if errors:
            raise StateDictError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                                 + "\n\t".join(errors))
        for key, arr in arrays.items():
            data = own[key].data
            if isinstance(data, np.ndarray):
                data[...] = arr
            else:  # a parameter on the device: copied into it there
                ops.copy_(data, arr)
        return IncompatibleKeys(missing, unexpected)

    # ---- description ----------------------------------------------------------------

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ")
                 for name, child in self._modules.items()]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


def backward_params(module: Module, dy) -> None:
    """``module.backward(dy)`` for the parameters' sake only: the gradient with respect
    to the module's input is skipped where the module can skip it (the first layer's is
    what PyTorch skips for an input that does not require grad)."""
    if getattr(module, "accepts_need_dx", False):
        module.backward(dy, need_dx=False)
    else:
        module.backward(dy)
