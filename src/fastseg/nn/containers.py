"""Containers: ModuleList (a list), Sequential (a list run as a chain) and Parallel
(branches)."""
from __future__ import annotations

import math
from collections import OrderedDict

from fastseg import ops
from fastseg.errors import InvalidTypeError, InvalidValueError
from fastseg.nn.module import Module, backward_params

__all__ = ["ModuleList", "Sequential", "Parallel"]


def _check_module(module, where):
    if not isinstance(module, Module):
        raise InvalidTypeError(f"{where}: expected a fastseg.nn.Module, got "
                               f"{type(module).__name__}")
    return module


class ModuleList(Module):
    """A list of modules that registers them (children ``"0"``, ``"1"``, ...).

    Indexable (an int gives a module, a slice a new list numbered from 0, as
    PyTorch's), iterable, with ``len()`` and ``append``.
    """

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module: Module):
        """Register `module` as the next child; returns self."""
        index = len(self)
        setattr(self, str(index), _check_module(module, f"{type(self).__name__}[{index}]"))
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        values = list(self._modules.values())
        return ModuleList(values[index]) if isinstance(index, slice) else values[index]


class Sequential(ModuleList):
    """Modules applied in order; ``backward`` runs them in reverse.

    ``Sequential(m0, m1, ...)`` names the children ``"0"``, ``"1"``, ... and
    ``Sequential(OrderedDict(name=module, ...))`` uses the given names, as in
    PyTorch. A :class:`ModuleList` that runs its modules as a chain: indexable
    (an int gives a module, a slice a Sequential keeping the names), iterable,
    with ``len()`` and ``append``.
    """

    def __init__(self, *modules):
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            super().__init__()
            for name, module in modules[0].items():
                setattr(self, str(name), _check_module(module, f"Sequential[{name!r}]"))
        else:
            super().__init__(modules)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        return super().__getitem__(index)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

    accepts_need_dx = True

    def backward(self, dy, need_dx=True):
        modules = list(self._modules.values())
        if need_dx:
            for module in reversed(modules):
                dy = module.backward(dy)
            return dy
        # No gradient needs to reach the modules before the first one with parameters.
        first = next((i for i, m in enumerate(modules) if m._has_parameters()), len(modules))
        for module in reversed(modules[first + 1:]):
            dy = module.backward(dy)
        if first < len(modules):
            backward_params(modules[first], dy)
        return None


class Parallel(Module):
    """One branch per input, outputs flattened and concatenated along dim 1.

    This is the tri-planar network's joint: three conv towers, one per
    orthogonal patch, feeding one fully connected layer. Its children live in
    ``.branches`` (state dict keys ``branches.0.0.weight``, ...), as a PyTorch
    module with ``self.branches = nn.ModuleList(...)`` would name them.

    ``forward(inputs)`` takes a list or tuple with one array per branch and
    returns an array (N, sum of the branches' flattened sizes); ``backward(dy)``
    returns a list with the gradient of each input.
    """

    def __init__(self, *branches):
        super().__init__()
        if not branches:
            raise InvalidValueError("Parallel: needs at least one branch")
        self.branches = ModuleList(branches)
        self._shapes = None

    def forward(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != len(self.branches):
            got = (f"a {type(inputs).__name__} of {len(inputs)}"
                   if isinstance(inputs, (list, tuple)) else type(inputs).__name__)
            raise InvalidValueError(f"Parallel: expected a list of {len(self.branches)} inputs, "
                                    f"one per branch, got {got}")
        outputs = [branch(x) for branch, x in zip(self.branches, inputs, strict=True)]
        batch = {out.shape[0] for out in outputs}
        if len(batch) != 1:
            raise InvalidValueError(f"Parallel: the branches gave different batch sizes "
                                    f"{[out.shape[0] for out in outputs]}")
        self._shapes = [out.shape for out in outputs] if self.training else None
        return ops.hstack([out.reshape(out.shape[0], math.prod(out.shape[1:]))
                           for out in outputs])

    accepts_need_dx = True

    def backward(self, dy, need_dx=True):
        shapes = self._saved(self._shapes)
        parts = ops.hsplit(dy, [math.prod(s[1:]) for s in shapes])
        pairs = zip(self.branches, parts, shapes, strict=True)
        if not need_dx:
            for branch, part, shape in pairs:
                backward_params(branch, part.reshape(shape))
            return None
        return [branch.backward(part.reshape(shape)) for branch, part, shape in pairs]

    def extra_repr(self) -> str:
        return f"{len(self.branches)} branches"
