"""Weight initialisation, drawn from fastseg's one generator (:func:`fastseg.seed`).

The defaults reproduce PyTorch's for ``Conv2d`` and ``Linear``:
``kaiming_uniform_(w, a=sqrt(5))`` is ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``,
and the bias is drawn from the same range. (The numbers differ from torch's,
since the generators differ; the distributions are the same.)
"""
from __future__ import annotations

import math

import numpy as np

from fastseg import _random

__all__ = ["uniform", "default_weight", "default_bias"]


def uniform(shape, bound: float) -> np.ndarray:
    """A float32 array of `shape` drawn from ``U(-bound, bound)``."""
    return _random.get_rng().uniform(-bound, bound, size=shape).astype(np.float32)


def default_weight(shape, fan_in: int) -> np.ndarray:
    """PyTorch's default layer weight: ``kaiming_uniform_(a=sqrt(5))``."""
    return uniform(shape, 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0)


def default_bias(shape, fan_in: int) -> np.ndarray:
    """PyTorch's default layer bias: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    return uniform(shape, 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0)
