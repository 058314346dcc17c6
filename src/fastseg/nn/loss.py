"""Losses with a ``backward()`` that returns the gradient of the last call:
softmax cross-entropy on labels, and mean squared error on real targets."""
from __future__ import annotations

import numpy as np

from fastseg import _validate as v
from fastseg import ops
from fastseg.errors import InvalidValueError
from fastseg.nn.module import Module

__all__ = ["CrossEntropyLoss", "MSELoss"]


class CrossEntropyLoss(Module):
    """Mean softmax cross-entropy of logits (N, K) against integer labels (N,).

    Parameters
    ----------
    weight : array_like (K,), optional
        Class weights, applied as PyTorch does: ``sum(w[y_i] l_i) / sum(w[y_i])``.

    Examples
    --------
    >>> loss = loss_fn(logits, labels)      # a float
    >>> net.backward(loss_fn.backward())    # dlogits of the last call
    """

    def __init__(self, weight=None):
        super().__init__()
        if weight is not None:
            weight = np.array(weight, dtype=np.float32)
            if weight.ndim != 1 or not np.isfinite(weight).all() or (weight < 0).any():
                raise InvalidValueError(f"CrossEntropyLoss: weight must be a 1-D array of finite, "
                                        f"non-negative class weights, got {weight!r}")
        self.weight = weight
        self._dlogits = None

    def forward(self, logits, labels) -> float:
        loss, self._dlogits = ops.softmax_cross_entropy(logits, labels, self.weight)
        return loss

    def backward(self, grad=1.0):
        """dloss/dlogits of the last call, times `grad` (the upstream scale)."""
        if self._dlogits is None:
            raise RuntimeError("CrossEntropyLoss.backward: call the loss on (logits, labels) "
                               "first")
        return self._dlogits if grad == 1.0 else ops.mul(self._dlogits, grad)

    def config(self) -> dict:
        return {"weight": None if self.weight is None else self.weight.tolist()}


_REDUCTIONS = ("mean", "sum", "none")


class MSELoss(Module):
    """Squared error ``(input - target)**2``, reduced as ``torch.nn.MSELoss`` reduces it.

    Mimic training (:func:`fastseg.train.mimic`) uses it on logits, as Ba & Caruana
    (2014) trained shallow networks on a deep one's logits.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}
        ``"mean"`` (the default): the mean over every element, a float;
        ``"sum"``: their sum, a float; ``"none"``: the element-wise array.

    Notes
    -----
    `input` and `target` must have one shape (PyTorch broadcasts with a warning;
    here a mismatch is an error, since it is nearly always a bug). The loss is
    computed on the host: a device `input` is copied over (logits are small)
    and ``backward`` returns its gradient on the input's device. An empty input
    gives NaN for ``"mean"``, as PyTorch does.

    Examples
    --------
    >>> loss_fn = nn.MSELoss()
    >>> loss = loss_fn(student(x), teacher_logits)     # a float
    >>> student.backward(loss_fn.backward())
    """

    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise InvalidValueError(f"MSELoss: reduction must be one of {list(_REDUCTIONS)}, "
                                    f"got {reduction!r}")
        self.reduction = reduction
        self._saved_diff = None

    def forward(self, input, target):
        device = ops.device_of(input)
        x = v.as_float32("input", ops.to_device(input, "cpu"))
        t = v.as_float32("target", ops.to_device(target, "cpu"))
        if x.shape != t.shape:
            raise InvalidValueError(f"MSELoss: target has shape {t.shape}, input has {x.shape}; "
                                    "expected the same shape")
        diff = x - t
        self._saved_diff = (diff, device)
        if self.reduction == "none":
            return ops.to_device(diff * diff, device)
        total = float(np.dot(diff.ravel().astype(np.float64), diff.ravel()))
        if self.reduction == "sum":
            return total
        return total / diff.size if diff.size else float("nan")

    def backward(self, grad=1.0):
        """d(loss)/d(input) of the last call, times `grad` (the upstream gradient: a
        number, or for ``reduction="none"`` an array of the input's shape)."""
        if self._saved_diff is None:
            raise RuntimeError("MSELoss.backward: call the loss on (input, target) first")
        diff, device = self._saved_diff
        scale = 2.0 / diff.size if self.reduction == "mean" and diff.size else 2.0
        grad = ops.to_device(grad, "cpu") if not np.isscalar(grad) else grad
        grad = np.asarray(grad, dtype=np.float32)
        if grad.ndim and grad.shape != diff.shape:
            raise InvalidValueError(f"MSELoss.backward: grad has shape {grad.shape}, expected a "
                                    f"number or the input's shape {diff.shape}")
        dinput = (diff * np.float32(scale) * grad).astype(np.float32, copy=False)
        return ops.to_device(dinput, device)

    def config(self) -> dict:
        return {"reduction": self.reduction}

    def extra_repr(self) -> str:
        return f"reduction={self.reduction}" if self.reduction != "mean" else ""
