"""The registry of backends: each one's operation table, by name, imported lazily.

A backend is a module that fills the table declared in
:mod:`fastseg.backends.contract` (the kernels, the array helpers nn and optim
use, and the checks of its arrays), or says why not. Its functions receive
arguments that :mod:`fastseg.ops` / :mod:`fastseg._arrays` have already
checked. ``"numpy"`` is the reference every other backend is tested against.
"""
from __future__ import annotations

import importlib

from fastseg.backends.contract import Table, build_table
from fastseg.errors import InvalidValueError, UnavailableError

# name -> module path; import happens on first use, so a missing compiled
# extension or CUDA toolkit only matters to whoever asks for that backend.
_MODULES = {
    "c": "fastseg.backends.c",
    "numpy": "fastseg.backends.numpy_backend",
    "cuda": "fastseg.backends.cuda",
}
# device -> the backend that keeps its arrays there (the host's are everyone's).
_DEVICE_BACKENDS = {"cuda": "cuda"}
_loaded: dict[str, Table] = {}
_unavailable: dict[str, str] = {}


def names() -> list[str]:
    """Every backend fastseg knows, usable here or not."""
    return list(_MODULES)


def load(name: str) -> Table:
    """Return the operation table of backend `name`, importing it on first use.

    Raises
    ------
    ValueError
        If `name` is not a backend fastseg knows.
    RuntimeError
        If the backend is known but cannot run here; the message says why.
    """
    if name in _loaded:
        return _loaded[name]
    if name not in _MODULES:
        raise InvalidValueError(f"backend: unknown backend {name!r}; expected one of {names()}")
    if name in _unavailable:
        raise UnavailableError(f"backend {name!r} is not available here: "
                               f"{_unavailable[name]}")
    try:
        module = importlib.import_module(_MODULES[name])
        check = getattr(module, "check_available", None)
        if check is not None:
            check()
    except (ImportError, RuntimeError, OSError) as exc:
        _unavailable[name] = f"{type(exc).__name__}: {exc}"
        raise UnavailableError(f"backend {name!r} is not available here: "
                               f"{_unavailable[name]}") from exc
    _loaded[name] = build_table(name, module)
    return _loaded[name]


def table(name: str | None = None) -> Table:
    """The table of backend `name`, or of the current one (:func:`fastseg.get_backend`)
    when `name` is None."""
    if name is None:
        from fastseg import _config  # _config imports this module

        name = _config.get_backend()
    return load(name)


def for_device(device: str) -> Table:
    """The table of the backend whose arrays live on `device` (``"cuda"``)."""
    return load(_DEVICE_BACKENDS[device])


def available() -> list[str]:
    """The backends that can run in this process, in preference order."""
    usable = []
    for name in _MODULES:
        try:
            load(name)
        except RuntimeError:
            continue
        usable.append(name)
    return usable
