"""Versioned JSON files: written atomically, read back with every check a file from
elsewhere needs (size, syntax, format name, version) before anything trusts it."""
from __future__ import annotations

import json
import math
import os

from fastseg._atomic import atomic_write_text
from fastseg.errors import InvalidValueError

__all__ = ["UnreadableFileError", "write_json", "read_json", "plain"]


class UnreadableFileError(InvalidValueError):
    """A file of the report (a record, the run card, evaluation.json) that cannot be used:
    missing, too large, not JSON, another program's, or from a newer fastseg. The message
    is the reason, without the file name."""


def plain(value):
    """`value` as plain JSON data: NumPy scalars and arrays to Python numbers and lists,
    tuples to lists, non-finite floats to None, keys to str."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return plain(value.tolist())  # a NumPy array or scalar
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise InvalidValueError(f"cannot store a {type(value).__name__} in a report file: {value!r}")


def write_json(path, format_name: str, version: int, body: dict) -> None:
    """Write ``{"format": format_name, "version": version, **body}`` to `path` atomically
    (a reader never sees half a file)."""
    data = {"format": format_name, "version": version, **plain(body)}
    # ASCII with \u escapes: a file name that is not valid UTF-8 (a lone surrogate from
    # os.fsdecode) still makes a valid file, read back as the same string.
    atomic_write_text(path, json.dumps(data, indent=1, allow_nan=False, ensure_ascii=True)
                      + "\n")


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def read_json(path, format_name: str, version: int, max_bytes: int) -> dict:
    """The JSON object in `path` after its checks.

    Raises
    ------
    UnreadableFileError
        The file is missing or unreadable, larger than `max_bytes`, not a JSON object,
        of another format than `format_name`, or of a version newer than `version`.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise UnreadableFileError(f"{size} bytes, more than the {max_bytes} a "
                                          "report file may have")
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise UnreadableFileError(exc.strerror or type(exc).__name__) from None
    if len(raw) > max_bytes:  # grew while we read it
        raise UnreadableFileError(f"more than the {max_bytes} bytes a report file may have")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = " ".join(str(exc).split())[:120]
        raise UnreadableFileError(f"not valid JSON ({reason})") from None
    if not isinstance(data, dict):
        raise UnreadableFileError(f"not a JSON object but a {type(data).__name__}")
    found = data.get("format")
    if found != format_name:
        shown = repr(found)[:60] if found is not None else "none"
        raise UnreadableFileError(f"not a {format_name} file (format {shown})")
    found_version = data.get("version")
    if isinstance(found_version, bool) or not isinstance(found_version, int) \
            or found_version < 1:
        raise UnreadableFileError(f"no valid version ({repr(found_version)[:30]})")
    if found_version > version:
        raise UnreadableFileError(f"version {found_version} is newer than the {version} this "
                                  "fastseg reads; upgrade fastseg")
    return data
