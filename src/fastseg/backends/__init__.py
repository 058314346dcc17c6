"""The registry of backends: each one's operation table, by name, imported lazily, and
the process-wide settings that pick among them (the current backend, the kernel threads).

A backend is a module that fills the table declared in
:mod:`fastseg.backends.contract` (the kernels, the array helpers nn and optim
use, and the checks of its arrays), or says why not. Its functions receive
arguments that :mod:`fastseg.ops` / :mod:`fastseg._arrays` have already
checked. ``"numpy"`` is the reference every other backend is tested against.
"""
from __future__ import annotations

import importlib
import os

from fastseg import _validate
from fastseg.backends.contract import Table, build_table
from fastseg.errors import InvalidTypeError, InvalidValueError, UnavailableError

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
_DEFAULT_BACKEND = "c"
_current: str | None = None  # set on first use: FASTSEG_BACKEND, else the default


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
    return load(get_backend() if name is None else name)


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


# ---- the current backend ----------------------------------------------------------------


def _initial_backend() -> str:
    # FASTSEG_BACKEND overrides the default; an unknown name is an error
    # rather than a silent fallback, so a typo cannot change results.
    name = os.environ.get("FASTSEG_BACKEND", "").strip()
    if name:
        load(name)
        return name
    return _DEFAULT_BACKEND


def get_backend() -> str:
    """Name of the backend that ``fastseg.ops`` uses when given ``backend=None``."""
    global _current
    if _current is None:
        _current = _initial_backend()
    return _current


def set_backend(name: str) -> None:
    """Make `name` the current backend (``"c"``, ``"numpy"`` or ``"cuda"``).

    Raises
    ------
    ValueError
        For a name fastseg does not know.
    RuntimeError
        For a known backend that cannot run here (the message says why).
    """
    global _current
    if not isinstance(name, str):
        raise InvalidTypeError(f"set_backend: name must be a str, got {type(name).__name__}")
    load(name)
    _current = name


# ---- the compiled kernels' threads and instruction set ---------------------------------


def runtime():
    """The compiled kernels' process-wide runtime (threads, ISA, blocking), through the
    ``"c"`` backend, the one module that imports the compiled extensions."""
    from fastseg.backends import c  # the compiled library loads on first use

    return c.runtime


#: The most threads :func:`set_num_threads` accepts: more than any machine's cores, and few
#: enough that every kernel can start them (10**5 threads would exhaust the process).
MAX_THREADS = 1024


def set_num_threads(n: int) -> None:
    """Set how many threads the compiled kernels use (process-wide), 1 to
    :data:`MAX_THREADS`."""
    runtime().set_num_threads(_validate.as_int("set_num_threads: n", n, minimum=1,
                                               maximum=MAX_THREADS))


def get_num_threads() -> int:
    """Threads the compiled kernels use; defaults to OMP_NUM_THREADS or the core count."""
    return runtime().get_num_threads()
