"""The memory budget: how much a segmentation or a training run may take, and the refusal.

One place for the limit that dense segmentation, volume segmentation and training check
their estimated peak against before they start (issue 24). In order:

1. a limit set by :func:`fastseg.set_memory_limit` (the command line's ``--memory-limit``);
2. the environment variable ``FASTSEG_MEMORY_LIMIT``;
3. the memory available to this process now: on Linux the smaller of ``MemAvailable``
   (``/proc/meminfo``) and, under a cgroup (v2 or v1) with a limit, that limit less the
   cgroup's usage (its inactive file cache, which the kernel reclaims, not counted);
   elsewhere unknown, and nothing is checked.

An explicit call and the command line come before the environment, as
``fastseg.set_backend`` before ``FASTSEG_BACKEND`` and ``--threads`` before
``OMP_NUM_THREADS``. A limit that is set (1 or 2) is the most the whole process may
hold: the work's estimate plus what the process holds already (its resident set). The
memory available (3) already leaves out what the process holds, so the estimate alone
is compared with it. ``off`` (or ``none``) turns the check off.

Sizes are bytes or a number with a unit: ``K``, ``M``, ``G``, ``T`` and ``KiB`` ...
``TiB`` are powers of 1024 (``8G`` is 8 GiB, as Docker and Java read it); ``kB``,
``MB``, ``GB``, ``TB`` powers of 1000.

Estimates live next to what they estimate (``fastseg._inference`` for segmentation,
:mod:`fastseg.train` for training); the entry points compare them with :func:`budget`
once, before any work, and raise :class:`fastseg.errors.MemoryBudgetError` through
:func:`refusal`.
"""
from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass

from fastseg.errors import InvalidTypeError, InvalidValueError, MemoryBudgetError

__all__ = ["ENV", "Budget", "parse_size", "set_limit", "set_memory_limit", "get_memory_limit",
           "limit", "budget", "refusal", "format_bytes", "available_bytes", "resident_bytes"]

#: The environment variable that sets the limit.
ENV = "FASTSEG_MEMORY_LIMIT"
#: Words that turn the check off.
OFF = ("off", "none", "unlimited")
#: Bytes per unit (case-insensitive): binary for K/M/G/T and KiB..TiB, decimal for kB..TB.
UNITS = {"": 1, "b": 1,
         **{p: 1024 ** (i + 1) for i, p in enumerate("kmgt")},
         **{p + "i": 1024 ** (i + 1) for i, p in enumerate("kmgt")},
         **{p + "ib": 1024 ** (i + 1) for i, p in enumerate("kmgt")},
         **{p + "b": 1000 ** (i + 1) for i, p in enumerate("kmgt")}}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d+))?\s*([a-zA-Z]*)\s*$")
#: A cgroup limit at or above this is "no limit" (v1 writes 2**63 rounded to pages).
_CGROUP_UNLIMITED = 2**60

_lock = threading.Lock()
_set: list = [None]  # (bytes or None for off, source) set by set_limit, or None


def _expected(name, value) -> InvalidValueError:
    return InvalidValueError(f"{name}: expected a size such as 8G, 512M, 1.5GiB or a number "
                             f"of bytes (or 'off'), got {value!r}")


def parse_size(value, name: str = "limit") -> int | None:
    """Bytes of a size (``8G``, ``512M``, ``1.5GiB``, ``4000000000``), or None for ``off``.

    Raises
    ------
    fastseg.errors.InvalidValueError
        Anything else, naming `name` (the variable or option it came from).
    """
    if isinstance(value, bool):
        raise InvalidTypeError(f"{name}: expected a size in bytes or a string such as '8G', "
                               f"got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            raise _expected(name, value)
        return int(value)
    if not isinstance(value, str):
        raise InvalidTypeError(f"{name}: expected a size in bytes or a string such as '8G', "
                               f"got {type(value).__name__}")
    if value.strip().lower() in OFF:
        return None
    match = _SIZE.match(value)
    unit = UNITS.get(match.group(3).lower()) if match else None
    if unit is None:
        raise _expected(name, value)
    # One float of mantissa and exponent: "1e999" reads as infinity (refused below), where
    # 10.0 ** 999 would raise OverflowError.
    number = float(f"{match.group(1)}e{match.group(2) or 0}")
    if not math.isfinite(number) or number * unit < 1:
        raise _expected(name, value)
    return int(number * unit)


def set_limit(value, source: str = "fastseg.set_memory_limit") -> None:
    """Set the limit for this process (`value` as :func:`parse_size` reads it; None
    forgets it, back to the environment or the memory available). `source` is named in
    refusals and in the error for a bad `value`."""
    parsed = None if value is None else parse_size(
        value, "limit" if source.startswith("fastseg.") else source)
    with _lock:
        _set[0] = None if value is None else (parsed, source)


def set_memory_limit(limit) -> None:
    """Cap the memory a segmentation or a training run may bring this process to.

    Work whose estimated peak (what the process holds already plus what the work adds)
    is above the limit runs in smaller tiles where it can, or is refused with
    :class:`fastseg.errors.MemoryBudgetError` before it starts. Comes before the
    environment variable ``FASTSEG_MEMORY_LIMIT``; without either, the memory
    available now (``MemAvailable``, a cgroup's limit) is the limit.

    Parameters
    ----------
    limit : int, str or None
        Bytes, or a size such as ``"8G"``, ``"512M"``, ``"1.5GiB"`` (K, M, G, T and
        KiB ... TiB are powers of 1024; kB, MB, GB, TB of 1000); ``"off"`` checks
        nothing; None forgets an earlier call.

    Raises
    ------
    fastseg.errors.InvalidValueError
        A size that is not positive or not understood (the message names ``limit``).
    fastseg.errors.InvalidTypeError
        Neither a number nor a string.
    """
    set_limit(limit, "fastseg.set_memory_limit")


def get_memory_limit() -> int | None:
    """The memory limit in force, in bytes: :func:`set_memory_limit`'s, else
    ``FASTSEG_MEMORY_LIMIT``'s, else the memory available now; None where nothing is
    checked (``"off"``, or the memory available unknown on this system)."""
    return limit()[0]


@dataclass(frozen=True)
class Budget:
    """The limit in force: `limit` bytes from `source`; `held`, what the process holds now
    and counts against it (0 for the memory available, which leaves it out already)."""

    limit: int
    source: str
    held: int = 0

    @property
    def room(self) -> int:
        """Bytes the work may add."""
        return self.limit - self.held


def _set_limit() -> tuple[int | None, str] | None:
    """``(bytes or None for off, source)`` of a limit that is set (1 or 2 of the module
    docstring), or None where none is: reads no system file."""
    with _lock:
        chosen = _set[0]
    if chosen is not None:
        return chosen
    text = os.environ.get(ENV, "").strip()
    if text:
        return parse_size(text, ENV), ENV
    return None


def set_limit_bytes() -> int | None:
    """The limit set by :func:`set_memory_limit` or ``FASTSEG_MEMORY_LIMIT``, in bytes;
    None where none is set (or it is ``off``). Cheap enough for a planner to ask on
    every plan: unlike :func:`limit`, it never reads the memory available."""
    chosen = _set_limit()
    return None if chosen is None else chosen[0]


def limit() -> tuple[int | None, str]:
    """``(bytes or None, source)``: the limit in force, None where nothing is checked
    (``off``, or the memory available unknown)."""
    chosen = _set_limit()
    if chosen is not None:
        return chosen
    available = available_bytes()
    if available is None:
        return None, "the memory available (unknown here)"
    return available


def budget() -> Budget | None:
    """The :class:`Budget` to check an estimate against now, or None (no check)."""
    value, source = limit()
    if value is None:
        return None
    if source.startswith("the memory available"):
        return Budget(value, source)
    return Budget(value, source, resident_bytes())


def format_bytes(n: float) -> str:
    """``1.5 GiB``, ``312 MiB``, ``40 kiB``: three significant figures at most."""
    n = float(n)
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("kiB", 2**10)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.3g} {unit}" if value < 1000 else f"{value:.0f} {unit}"
    return f"{n:.0f} B"


def refusal(caller: str, need: int, room: Budget, what: str,
            advice: str) -> MemoryBudgetError:
    """The error refusing `what` (``"a 4096x4096 image"``), estimated to need `need`
    bytes more, under `room`; `advice` says what to change (``"use a smaller --tile"``),
    the message adds how to raise the limit. One line."""
    if room.held:
        have = (f"the process holds {format_bytes(room.held)} and the memory limit is "
                f"{format_bytes(room.limit)} ({room.source})")
    else:
        have = f"{format_bytes(room.limit)} is {room.source}"
    return MemoryBudgetError(
        f"{caller}: {what} needs about {format_bytes(need)} more memory (estimated before "
        f"starting) but {have}; {advice}, or raise the limit: {ENV}=SIZE or --memory-limit "
        f"SIZE (e.g. 8G; 'off' checks nothing)",
        estimate=int(need), limit=int(room.limit), source=room.source)


# ---- what this machine has ------------------------------------------------------------------


def _read_int(path) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except (OSError, ValueError):
        return None
    return int(text) if text.isdigit() else None


def _stat_value(path, key) -> int:
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key and value.strip().isdigit():
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_dirs():
    """(version, directory) of each cgroup level above this process with a memory
    controller, innermost first: its own group and its parents (each may limit)."""
    try:
        with open("/proc/self/cgroup", encoding="ascii") as f:
            lines = f.read().splitlines()
    except (OSError, ValueError):
        return []
    found = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            version, root = 2, "/sys/fs/cgroup"
        elif "memory" in controllers.split(","):
            version, root = 1, "/sys/fs/cgroup/memory"
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), -1, -1):
            found.append((version, os.path.join(root, *parts[:depth])))
    return found


def _cgroup_room() -> int | None:
    """The least room any limiting cgroup level leaves (limit - usage + inactive file
    cache), or None where no level limits memory."""
    best = None
    for version, d in _cgroup_dirs():
        if version == 2:
            cap = _read_int(os.path.join(d, "memory.max"))  # "max" reads as None
            used = _read_int(os.path.join(d, "memory.current"))
            cache = _stat_value(os.path.join(d, "memory.stat"), "inactive_file")
        else:
            cap = _read_int(os.path.join(d, "memory.limit_in_bytes"))
            used = _read_int(os.path.join(d, "memory.usage_in_bytes"))
            cache = _stat_value(os.path.join(d, "memory.stat"), "total_inactive_file")
        if cap is None or used is None or cap >= _CGROUP_UNLIMITED:
            continue
        room = max(0, cap - used + cache)
        best = room if best is None else min(best, room)
    return best


def available_bytes() -> tuple[int, str] | None:
    """``(bytes, source)`` this process could still take, or None where unknown."""
    meminfo = _meminfo_available()
    group = _cgroup_room()
    if group is not None and (meminfo is None or group < meminfo):
        return group, "the memory available (the cgroup's limit less its usage)"
    if meminfo is not None:
        return meminfo, "the memory available (MemAvailable in /proc/meminfo)"
    return None


def resident_bytes() -> int:
    """This process's resident set now (0 where unknown)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0
