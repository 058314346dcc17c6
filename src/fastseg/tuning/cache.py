"""The tuned choices of this CPU: read once per process from the user's cache folder.

The tuner (:mod:`fastseg.tuning.tuner`) times candidate kernel settings on this
machine and writes the winners to one JSON file per CPU model, instruction set and
fastseg version; this module only reads them, so the floors that consult them (the
backends, the cost model of dense inference) stand on nothing above them.

A choice is read with :func:`get`, which falls back to the caller's default (the
constants derived from the caches) when tuning is off (``FASTSEG_TUNE=0``), nothing
was tuned yet, or the file is corrupt, foreign or of another CPU: such a file is
ignored with a warning, never trusted.
"""
from __future__ import annotations

import json
import os
import threading
import warnings
from pathlib import Path

__all__ = ["FORMAT", "VERSION", "enabled", "cache_dir", "cache_path", "machine_key", "get",
           "choices", "store", "reset"]

FORMAT = "fastseg-tuning"
VERSION = 1
#: A tuning file larger than this is not a tuning file.
MAX_BYTES = 1 << 20

_lock = threading.Lock()
_loaded: dict | None = None  # the choices of this process, once read


def enabled() -> bool:
    """Whether tuned choices are used (``FASTSEG_TUNE`` unset or not ``"0"``)."""
    return os.environ.get("FASTSEG_TUNE", "").strip() != "0"


def cache_dir() -> Path:
    """The user's cache folder for fastseg: ``$FASTSEG_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/fastseg``, else ``~/.cache/fastseg``."""
    explicit = os.environ.get("FASTSEG_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastseg"


def machine_key() -> dict:
    """What a tuning result belongs to: the CPU model, the kernels' ISA, fastseg's version."""
    from fastseg import backends
    from fastseg._version import __version__

    runtime = backends.runtime()
    return {"cpu": _cpu_model(), "isa": runtime.isa_name(), "fastseg": __version__}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def cache_path(key: dict | None = None) -> Path:
    """The tuning file of `key` (default: this machine's)."""
    import hashlib

    key = machine_key() if key is None else key
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"tuning-{key['isa']}-{digest}.json"


def _read(path: Path, key: dict) -> dict:
    """The choices in `path` for `key`; {} with a warning for anything not to be trusted."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return {}
    except OSError as exc:
        warnings.warn(f"fastseg: tuning cache {path} unreadable ({exc}); using the defaults",
                      RuntimeWarning, stacklevel=3)
        return {}
    why = None
    try:
        if size > MAX_BYTES:
            why = f"{size} bytes, more than a tuning file holds"
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                why = "not a fastseg tuning file"
            elif data.get("version") != VERSION:
                why = f"format version {data.get('version')!r}, this fastseg reads {VERSION}"
            elif data.get("key") != key:
                why = "made on another CPU, instruction set or fastseg version"
            elif not isinstance(data.get("choices"), dict):
                why = "no choices in it"
            else:
                return dict(data["choices"])
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        why = f"corrupt ({type(exc).__name__}: {exc})"
    warnings.warn(f"fastseg: ignoring tuning cache {path}: {why}; using the defaults",
                  RuntimeWarning, stacklevel=3)
    return {}


def choices() -> dict:
    """Every tuned choice of this machine ({} when tuning is off or nothing was tuned)."""
    global _loaded
    if not enabled():
        return {}
    with _lock:
        if _loaded is None:
            key = machine_key()
            _loaded = _read(cache_path(key), key)
        return dict(_loaded)


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
    from fastseg._atomic import atomic_write_text

    global _loaded
    key = machine_key()
    path = cache_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "key": key, "choices": dict(new),
               "meta": dict(meta or {})}
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    with _lock:
        _loaded = dict(new)
    return path


def reset() -> None:
    """Forget what was read, so the next :func:`get` reads the file again (tests)."""
    global _loaded
    with _lock:
        _loaded = None
