"""The table of operations of each backend, chosen by name, imported lazily.

A backend is a module whose functions carry the names of :mod:`fastseg.ops`
(``gemm``, ``conv2d``, ...) and receive arguments that :mod:`fastseg.ops` has
already validated and converted. ``"numpy"`` is the reference every other
backend is tested against.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from fastseg.errors import InvalidValueError, UnavailableError

# name -> module path; import happens on first use, so a missing compiled
# extension or CUDA toolkit only matters to whoever asks for that backend.
_MODULES = {
    "c": "fastseg.backends.c",
    "numpy": "fastseg.backends.numpy_backend",
    "cuda": "fastseg.backends.cuda",
}
_loaded: dict[str, ModuleType] = {}
_unavailable: dict[str, str] = {}


def names() -> list[str]:
    """Every backend fastseg knows, usable here or not."""
    return list(_MODULES)


def load(name: str) -> ModuleType:
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
    _loaded[name] = module
    return module


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
