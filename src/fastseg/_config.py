"""Process-wide settings: the current backend and the kernel thread count."""
from __future__ import annotations

import os

from fastseg import _validate, backends
from fastseg.errors import InvalidTypeError

_DEFAULT_BACKEND = "c"
_current: str | None = None


def _initial_backend() -> str:
    # FASTSEG_BACKEND overrides the default; an unknown name is an error
    # rather than a silent fallback, so a typo cannot change results.
    name = os.environ.get("FASTSEG_BACKEND", "").strip()
    if name:
        backends.load(name)
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
    backends.load(name)
    _current = name


def available_backends() -> list[str]:
    """Backends usable in this process, e.g. ``["c", "numpy"]``."""
    return backends.available()


def _runtime():
    from fastseg._cy import _runtime  # compiled; absent only in a broken install

    return _runtime


def set_num_threads(n: int) -> None:
    """Set how many threads the compiled kernels use (process-wide)."""
    _runtime().set_num_threads(_validate.as_int("set_num_threads: n", n, minimum=1))


def get_num_threads() -> int:
    """Threads the compiled kernels use; defaults to OMP_NUM_THREADS or the core count."""
    return _runtime().get_num_threads()


def openmp_enabled() -> bool:
    """Whether the kernels were compiled with OpenMP."""
    return _runtime().openmp_enabled()


def isa() -> str:
    """The instruction set whose kernels run: ``"avx512"``, ``"avx2"`` or ``"generic"``.

    By default the best this CPU (and its OS) can run; the environment
    variable ``FASTSEG_ISA`` forces one, and names one the CPU cannot run
    are refused with an ImportError when the kernels load.
    """
    return _runtime().isa_name()


def supported_isas() -> list[str]:
    """The instruction sets this CPU, its OS and this build can run, best first."""
    return _runtime().supported_isas()


def blocking() -> dict:
    """The GEMM blocking in use: micro-tile ``mr`` x ``nr`` and cache blocks
    ``mc``, ``kc``, ``nc``, fitted to this CPU's caches."""
    return _runtime().blocking()


def cache_sizes() -> dict:
    """The cache bytes per core (``l1d``, ``l2``, ``l3``; 0 unknown) the blocking fits."""
    return _runtime().cache_sizes()
