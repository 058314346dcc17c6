"""The one random number generator behind weight initialisation and dropout.

A single module-level :class:`numpy.random.Generator` makes a whole run
reproducible from one call to :func:`seed`, and its state is a small dict of
plain ints that a checkpoint can store as JSON (no pickle).
"""
from __future__ import annotations

import copy

import numpy as np

from fastseg import _validate
from fastseg.errors import InvalidValueError

__all__ = ["seed", "get_rng", "get_rng_state", "set_rng_state"]

_rng = np.random.default_rng()


def seed(n: int) -> None:
    """Seed fastseg's generator, used for weight initialisation and dropout.

    Parameters
    ----------
    n : int
        Any non-negative integer. The same seed, the same data stream and the
        same thread count give the same training run.
    """
    global _rng
    _rng = np.random.default_rng(_validate.as_int("seed: n", n, minimum=0))


def get_rng() -> np.random.Generator:
    """The generator itself (draw from it; do not keep it across :func:`seed` calls)."""
    return _rng


def get_rng_state() -> dict:
    """A JSON-serialisable copy of the generator's state."""
    return copy.deepcopy(_rng.bit_generator.state)


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`.

    Raises
    ------
    ValueError
        If `state` is not a state of the generator fastseg uses.
    """
    if not isinstance(state, dict) or state.get("bit_generator") != type(
        _rng.bit_generator
    ).__name__:
        raise InvalidValueError(f"set_rng_state: expected a {type(_rng.bit_generator).__name__} "
                                f"state dict from get_rng_state(), got {type(state).__name__}")
    try:
        _rng.bit_generator.state = copy.deepcopy(state)
    except (TypeError, KeyError) as exc:
        raise InvalidValueError(f"set_rng_state: malformed state: {exc}") from None
