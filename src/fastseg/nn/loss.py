"""Softmax cross-entropy loss with a ``backward()`` that returns dlogits."""
from __future__ import annotations

import numpy as np

from fastseg import ops
from fastseg.errors import InvalidValueError
from fastseg.nn.module import Module

__all__ = ["CrossEntropyLoss"]


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
