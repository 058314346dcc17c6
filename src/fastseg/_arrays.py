"""Devices and the array helpers nn and optim use (re-exported by :mod:`fastseg.ops`).

What the layers and optimizers need besides the kernels, so that a model moved
to the GPU (``model.to("cuda")`` with the "cuda" backend) keeps its
parameters, gradients, optimizer state and activations there. Each helper
checks its arguments once, here, then calls the same-named entry of a
backend's table (:mod:`fastseg.backends.contract`): the host backends run
NumPy, the "cuda" backend small kernels on device arrays (and NumPy on host
arrays). With ``backend=None`` a helper given a device array runs on the
backend that owns that device, whatever the current backend; the kernels of
:mod:`fastseg.ops` do not: a device array reaching a host backend there is a
TypeError that says to set the "cuda" backend.
"""
from __future__ import annotations

import numpy as np

from fastseg import _random, backends
from fastseg import _validate as v
from fastseg.errors import InvalidValueError

# What fastseg.ops re-exports (host_array and host_copy are nn's and optim's alone).
__all__ = [
    "DEVICES", "device_of", "to_device", "zeros_like", "full_like", "fill_", "copy_", "add_",
    "mul", "hstack", "hsplit", "batch_transpose", "dropout",
]

#: The places an array can live: "cpu" (a NumPy array) or "cuda" (a device array).
DEVICES = ("cpu", "cuda")


def device_of(a) -> str:
    """``"cuda"`` for a device array (Numba, or anything with
    ``__cuda_array_interface__``), else ``"cpu"``."""
    return "cuda" if v.on_device(a) else "cpu"


def _table_for(backend, *arrays):
    """The table for an array helper: a device array goes to the backend that owns its
    device whatever the current backend (the helpers only manage arrays; the kernels
    still follow the current backend)."""
    if backend is None and any(v.on_device(a) for a in arrays):
        return backends.for_device("cuda")
    return backends.table(backend)


def _check_device(device) -> str:
    if device not in DEVICES:
        raise InvalidValueError(f"device: expected one of {list(DEVICES)}, got {device!r}")
    return device


def to_device(a, device):
    """`a` on `device`: as it is when already there, else copied.

    ``"cpu"`` gives a NumPy array, ``"cuda"`` a Numba device array (this needs the
    "cuda" backend to be usable here, whichever backend is current).
    """
    device = _check_device(device)
    if device_of(a) == device:
        return a
    owner = backends.for_device("cuda")  # the one device besides the host
    return owner.to_device(a) if device == "cuda" else owner.to_host(a)


def _is_torch_tensor(value) -> bool:
    return hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy")


def host_array(value) -> np.ndarray:
    """`value` as a NumPy array: a NumPy array as it is, a device array or a torch
    tensor (on any device, requiring grad or not) copied to the host, anything else
    through ``np.asarray``."""
    if isinstance(value, np.ndarray):
        return value
    if _is_torch_tensor(value):
        return value.detach().cpu().numpy()
    if v.on_device(value):
        return to_device(value, "cpu")
    return np.asarray(value)


def host_copy(value) -> np.ndarray:
    """A NumPy array holding `value`'s elements and sharing no memory with anything
    else (state dicts hand these out)."""
    host = host_array(value)
    if v.on_device(value) and not _is_torch_tensor(value):
        return host  # the copy from the device is already a fresh array
    return host.copy()


def zeros_like(a, *, backend=None):
    """Zeros of `a`'s shape, on `a`'s device."""
    be = _table_for(backend, a)
    return be.zeros_like(be.as_float32("a", a))


def full_like(a, value, *, backend=None):
    """An array of `a`'s shape filled with `value`, on `a`'s device."""
    be = _table_for(backend, a)
    return be.full_like(be.as_float32("a", a), float(value))


def fill_(a, value, *, backend=None):
    """Set every element of `a` (float32, host or device) to `value`, in place."""
    be = _table_for(backend, a)
    be.fill_(be.as_inplace("a", a, getattr(a, "shape", ())), float(value))


def _dst_src(backend, dst, src):
    """The table, and dst (updated in place) and src checked to share one shape."""
    be = _table_for(backend, dst)
    dst = be.as_inplace("dst", dst, getattr(dst, "shape", ()))
    src = be.as_float32("src", src)
    if tuple(src.shape) != tuple(dst.shape):
        raise InvalidValueError(f"src: expected shape {tuple(dst.shape)} (that of dst), "
                                f"got {tuple(src.shape)}")
    return be, dst, src


def copy_(dst, src, *, backend=None):
    """Copy `src` (any device, same shape) into `dst` (float32, host or device), in place."""
    be, dst, src = _dst_src(backend, dst, src)
    be.copy_(dst, src)


def add_(dst, src, *, backend=None):
    """``dst += src`` in place (dst float32, host or device; src of the same shape)."""
    be, dst, src = _dst_src(backend, dst, src)
    be.add_(dst, src)
    return dst


def mul(a, b, *, backend=None):
    """``a * b`` element-wise, for `b` an array of `a`'s shape or a number."""
    be = _table_for(backend, a, b)
    a = be.as_float32("a", a)
    if isinstance(b, (int, float, np.generic)) or (isinstance(b, np.ndarray) and b.ndim == 0):
        b = float(b)
    else:
        b = be.as_float32("b", b)
        if tuple(b.shape) != tuple(a.shape):
            raise InvalidValueError(f"b: expected shape {tuple(a.shape)} (that of a), "
                                    f"got {tuple(b.shape)}")
    return be.mul(a, b)


def hstack(arrays, *, backend=None):
    """Join 2-D arrays (N, F_i) along their columns into (N, sum F_i)."""
    if not isinstance(arrays, (list, tuple)) or not arrays:
        raise InvalidValueError("arrays: expected a non-empty list of 2-D arrays")
    be = _table_for(backend, *arrays)
    arrays = [be.as_float32(f"arrays[{i}]", a, 2, "(batch, features)")
              for i, a in enumerate(arrays)]
    rows = {a.shape[0] for a in arrays}
    if len(rows) != 1:
        raise InvalidValueError(f"arrays: expected one row count, got "
                                f"{[a.shape[0] for a in arrays]}")
    return be.hstack(arrays)


def hsplit(a, widths, *, backend=None):
    """Split a 2-D array (N, sum w) into contiguous blocks (N, w) of `widths` columns."""
    be = _table_for(backend, a)
    a = be.as_float32("a", a, 2, "(batch, features)")
    widths = [v.as_int("widths", w, minimum=0) for w in widths]
    if sum(widths) != a.shape[1]:
        raise InvalidValueError(f"widths: {widths} add up to {sum(widths)}, but a has "
                                f"{a.shape[1]} columns")
    return be.hsplit(a, widths)


def batch_transpose(x, *, backend=None):
    """Swap the last two axes of a 3-D array: (B, R, C) -> (B, C, R), contiguous."""
    be = _table_for(backend, x)
    return be.batch_transpose(be.as_float32("x", x, 3, "(batch, rows, cols)"))


def dropout(x, p, *, backend=None):
    """Inverted dropout: ``(x * mask, mask)``, zeroing each element with probability `p`
    and scaling the rest by ``1/(1-p)``.

    The draws come from fastseg's generator (:func:`fastseg.seed`) on the host, so
    every backend gives the same mask for the same seed (and a resumed run the same
    masks); for device arrays only the keep/drop bytes go to the device.
    """
    be = _table_for(backend, x)
    x = be.as_float32("x", x)
    p = v.as_real("p", p, 0, 1)
    shape = tuple(x.shape)
    if p == 1:
        keep, scale = np.zeros(shape, dtype=bool), 0.0
    else:
        keep = _random.get_rng().random(shape, dtype=np.float32) >= p
        scale = 1.0 / (1.0 - p)
    return be.dropout(x, keep, scale)
