"""The tuned choices of this CPU: read once per process from the user's cache folder.

The tuner (:mod:`fastseg.tuning.tuner`) times candidate kernel settings on this
machine and writes the winners to one JSON file per CPU model, instruction set and
fastseg version (:mod:`.files` says where and what); this module only reads them, so the
floors that consult them (the cost model of dense inference, ...) stand on nothing
above the backends. It asks the backends which instruction set the compiled kernels
run, which loads them; code below the backends (the kernels' runtime, which applies
the tuned GEMM blocks when it loads) reads the files through :mod:`.files` instead.

A choice is read with :func:`get`, which falls back to the caller's default (the
constants derived from the caches) when tuning is off (``FASTSEG_TUNE=0``), nothing
was tuned yet, or the file is corrupt, foreign or of another CPU: such a file is
ignored with a warning, never trusted.
"""
from __future__ import annotations

import threading
import warnings
from pathlib import Path

from fastseg.tuning import files
from fastseg.tuning.files import FORMAT, MAX_BYTES, VERSION, cache_dir, enabled

__all__ = ["FORMAT", "VERSION", "MAX_BYTES", "enabled", "cache_dir", "cache_path",
           "machine_key", "get", "choices", "meta", "store", "reset"]

_lock = threading.Lock()
_loaded: dict | None = None  # the choices of this process, once read
_loaded_meta: dict = {}
_loaded_generation = -1


def machine_key() -> dict:
    """What a tuning result belongs to: the CPU model, the kernels' ISA, fastseg's version."""
    from fastseg import backends

    return files.key_for(backends.runtime().isa_name())


def cache_path(key: dict | None = None) -> Path:
    """The tuning file of `key` (default: this machine's)."""
    return files.path_for(machine_key() if key is None else key)


def _read(path: Path, key: dict) -> tuple[dict, dict]:
    """The choices and meta in `path` for `key`; ({}, {}) with a warning for anything
    not to be trusted."""
    found, info, why = files.read(path, key)
    if why is not None:
        warnings.warn(f"fastseg: ignoring tuning cache {path}: {why}; using the defaults",
                      RuntimeWarning, stacklevel=4)
    return (found or {}), info


def _load() -> None:
    global _loaded, _loaded_meta, _loaded_generation
    key = machine_key()
    with _lock:
        if _loaded is None or _loaded_generation != files.generation():
            _loaded_generation = files.generation()
            _loaded, _loaded_meta = _read(files.path_for(key), key)


def choices() -> dict:
    """Every tuned choice of this machine ({} when tuning is off or nothing was tuned)."""
    if not enabled():
        return {}
    _load()
    with _lock:
        return dict(_loaded or {})


def meta() -> dict:
    """What the tuner recorded with the choices (when, the load, the table, why it kept
    a constant); {} when tuning is off or nothing was tuned."""
    if not enabled():
        return {}
    _load()
    with _lock:
        return dict(_loaded_meta)


def get(name: str, default):
    """The tuned value of `name`, or `default` (tuning off, not tuned, untrusted file).

    A value of another type than `default` (when `default` is not None) is ignored too.
    """
    value = choices().get(name, default)
    if default is not None and value is not default and type(value) is not type(default):
        return default
    return value


def store(new: dict, meta: dict | None = None) -> Path:
    """Write `new` as this machine's tuned choices (atomically) and use them from now on.

    Raises
    ------
    OSError
        The cache folder cannot be written (the caller says so and goes on).
    """
    global _loaded, _loaded_meta, _loaded_generation
    path = files.write(machine_key(), new, meta)
    with _lock:
        _loaded, _loaded_meta = dict(new), dict(meta or {})
        _loaded_generation = files.generation()
    return path


def reset() -> None:
    """Forget what was read, so the next :func:`get` reads the file again (tests)."""
    global _loaded, _loaded_meta
    with _lock:
        _loaded = None
        _loaded_meta = {}
