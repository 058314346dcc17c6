"""The tuning files themselves: where they live, what they hold, and the lock.

This module stands under everything (the standard library, :mod:`fastseg._atomic` and
:mod:`fastseg._version` only), so the compiled kernels' runtime
(``fastseg._cy._runtime``) can read the tuned blocks when it loads, below the backends
that :mod:`.cache` asks which instruction set runs. A file is keyed by the CPU model,
the kernels' instruction set and fastseg's version::

    {"format": "fastseg-tuning", "version": 1,
     "key": {"cpu": "AMD EPYC 9R14", "isa": "avx512", "fastseg": "0.1.0"},
     "choices": {"gemm.kc": 256, ...},       # only the settings that beat the constants
     "meta": {"when": ..., "rows": [...], "notes": [...], ...}}

A file whose choices are empty is a tuning that kept every constant (or found the
machine too busy to tell): it still counts as tuned, so the first-use tuner does not run
again in every new process; ``fastseg tune`` runs it again on demand.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

__all__ = ["FORMAT", "VERSION", "MAX_BYTES", "enabled", "cache_dir", "cpu_model", "key_for",
           "path_for", "read", "write", "lock", "LockTimeout", "generation", "changed",
           "first_use_blocked", "holding_first_use"]

FORMAT = "fastseg-tuning"
VERSION = 1
#: A tuning file larger than this is not a tuning file.
MAX_BYTES = 1 << 20
#: Set in the tuner process that the first use starts, so it does not start another.
CHILD_ENV = "FASTSEG_TUNE_CHILD"

_generation = 0
_hold = threading.local()


def enabled() -> bool:
    """Whether tuned choices are used and made (``FASTSEG_TUNE`` unset or not ``"0"``)."""
    return os.environ.get("FASTSEG_TUNE", "").strip() != "0"


def cache_dir() -> Path:
    """The user's cache folder for fastseg: ``$FASTSEG_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/fastseg``, else ``~/.cache/fastseg``."""
    explicit = os.environ.get("FASTSEG_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastseg"


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what :mod:`platform` says; read
    once per process (every tuned choice's lookup asks for it)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def key_for(isa: str) -> dict:
    """What a tuning result for the kernels of `isa` on this machine belongs to."""
    from fastseg._version import __version__

    return {"cpu": cpu_model(), "isa": isa, "fastseg": __version__}


def path_for(key: dict) -> Path:
    """The tuning file of `key` in :func:`cache_dir`."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"tuning-{key['isa']}-{digest}.json"


def read(path: Path, key: dict) -> tuple[dict | None, dict, str | None]:
    """``(choices, meta, why)`` of the tuning file at `path` for `key`.

    ``choices`` is None when there is no file (``why`` None) or it is not to be trusted
    (``why`` says why: unreadable, too big, corrupt, another format or version, made
    for another CPU, instruction set or fastseg version); the caller decides whether to
    warn. Never raises.
    """
    try:
        size = path.stat().st_size
    except (FileNotFoundError, NotADirectoryError):  # no file (or no folder that holds one)
        return None, {}, None
    except OSError as exc:
        return None, {}, f"unreadable ({exc})"
    try:
        if size > MAX_BYTES:
            return None, {}, f"{size} bytes, more than a tuning file holds"
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, {}, f"corrupt ({type(exc).__name__}: {exc})"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None, {}, "not a fastseg tuning file"
    if data.get("version") != VERSION:
        return None, {}, f"format version {data.get('version')!r}, this fastseg reads {VERSION}"
    if data.get("key") != key:
        return None, {}, "made on another CPU, instruction set or fastseg version"
    if not isinstance(data.get("choices"), dict):
        return None, {}, "no choices in it"
    meta = data.get("meta")
    return dict(data["choices"]), dict(meta) if isinstance(meta, dict) else {}, None


def write(key: dict, choices: dict, meta: dict | None = None) -> Path:
    """Write the tuning file of `key` atomically and return its path.

    Raises
    ------
    OSError
        The cache folder cannot be made or written (read-only, full).
    """
    from fastseg._atomic import atomic_write_text

    path = path_for(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "key": dict(key), "choices": dict(choices),
               "meta": dict(meta or {})}
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    changed()
    return path


def generation() -> int:
    """A counter that :func:`changed` bumps: readers holding choices read again when it
    moved (a tuner wrote a file, the runtime applied a new one)."""
    return _generation


def changed() -> None:
    """Say that this process's tuning files changed (see :func:`generation`)."""
    global _generation
    _generation += 1


class LockTimeout(TimeoutError):
    """Another process held the tuning lock for longer than we would wait."""


@contextlib.contextmanager
def lock(timeout: float = 120.0):
    """Hold the tuning lock of :func:`cache_dir` (one tuner at a time on a machine).

    Raises
    ------
    OSError
        The folder cannot hold a lock file (read-only, missing and not creatable).
    LockTimeout
        Another tuner held it for `timeout` seconds.
    """
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "tune.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl
        except ImportError:  # not POSIX: one tuner per process at least
            fcntl = None
        if fcntl is not None:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LockTimeout(f"another fastseg tuner held {folder / 'tune.lock'} "
                                          f"for {timeout:g} s") from None
                    time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing releases the flock


@contextlib.contextmanager
def holding_first_use():
    """Within this block the compiled kernels' first load starts no tuner (``fastseg
    info`` and ``fastseg tune`` load them to report or tune themselves)."""
    depth = getattr(_hold, "depth", 0)
    _hold.depth = depth + 1
    try:
        yield
    finally:
        _hold.depth = depth


def first_use_blocked() -> str | None:
    """Why this process must not start the first-use tuner now, or None when it may.

    Only a main process's main thread tunes on first use: a thread of a server or a
    Dask worker, a process that multiprocessing (or a Dask nanny) started, and the tuner
    process itself read the file if one exists and otherwise run with the constants,
    so a cluster's workers never all time the machine at once (``fastseg tune`` on
    each kind of machine, or the first use in the main process, makes the file they
    read).
    """
    if not enabled():
        return "FASTSEG_TUNE=0"
    if os.environ.get(CHILD_ENV):
        return "this is the tuner's own process"
    if getattr(_hold, "depth", 0):
        return "held by the caller"
    if threading.current_thread() is not threading.main_thread():
        return "not the main thread"
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        return "a worker process"
    if getattr(sys, "frozen", False) or not sys.executable:
        return "no Python interpreter to run the tuner with"
    return None


def first_use_budget() -> float:
    """Seconds the first-use tuner may spend timing: ``FASTSEG_TUNE_BUDGET``, else 4."""
    try:
        value = float(os.environ.get("FASTSEG_TUNE_BUDGET", "4"))
    except ValueError:
        return 4.0
    return min(max(value, 0.1), 600.0) if value == value else 4.0
