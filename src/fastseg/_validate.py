"""Argument checks shared by every public function.

Each check names the argument, what it got and what was expected, so a user
can fix the call from the message alone.
"""
from __future__ import annotations

import operator

import numpy as np

# Sizes whose element count reaches this cannot be addressed safely by the
# 64-bit index arithmetic of the kernels (products of two such values must
# still fit in int64); no real array comes anywhere near it.
MAX_ELEMENTS = 1 << 48


def as_int(name: str, value, minimum: int | None = None) -> int:
    """`value` as a Python int (bool and float refused), at least `minimum`."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an int, got bool {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        kind = type(value).__name__
        raise TypeError(f"{name}: expected an int, got {kind} {value!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return value


def as_square(name: str, value) -> int:
    """A square kernel size: an int, or a pair of equal ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"{name}: only square kernels are supported, got {tuple(value)}")
        value = value[0]
    return as_int(name, value, minimum=1)


def check_size(name: str, shape) -> None:
    """Refuse shapes whose element count would overflow the kernels' indexing."""
    total = 1
    for dim in shape:
        total *= int(dim)
    if total >= MAX_ELEMENTS:
        raise ValueError(f"{name}: a result of shape {tuple(shape)} ({total} elements) "
                         "is too large")


def on_device(a) -> bool:
    """Whether `a` is a GPU array (a Numba device array, real or simulated, or anything
    with ``__cuda_array_interface__``); NumPy arrays answer at once."""
    if isinstance(a, np.ndarray):
        return False
    return hasattr(a, "__cuda_array_interface__") or hasattr(a, "copy_to_host")


def refuse_device(name: str, a) -> None:
    """TypeError for a device array handed to a host backend."""
    if on_device(a):
        raise TypeError(f"{name}: got a CUDA device array {tuple(a.shape)}, but the current "
                        "backend runs on the host; call fastseg.set_backend(\"cuda\") (or pass "
                        "backend=\"cuda\") to compute on device arrays, or bring the model back "
                        "with model.to(\"cpu\")")


def as_float32(name: str, a, ndim: int | None = None, layout: str = "") -> np.ndarray:
    """`a` as a C-contiguous float32 ndarray of rank `ndim`.

    Other real dtypes, Fortran order, strided views and read-only arrays are
    converted (copied only when needed); complex, object and string data are
    refused with TypeError, a wrong rank with ValueError.
    """
    if not isinstance(a, np.ndarray):
        refuse_device(name, a)
        try:
            a = np.asarray(a)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: expected a float32 array, got {type(a).__name__}") from exc
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected a float32 array, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        what = f" {layout}" if layout else ""
        raise ValueError(f"{name}: expected a {ndim}-D array{what}, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float32)


def as_labels(name: str, labels, n: int, num_classes: int) -> np.ndarray:
    """Class labels as int64 of length `n`, every one in [0, num_classes)."""
    refuse_device(name, labels)
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer class labels, got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},) to match the batch, got {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"{name}: label {bad} is outside [0, {num_classes})")
    return np.ascontiguousarray(labels, dtype=np.int64)


def check_finite(name: str, a: np.ndarray) -> None:
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or infinity")
