"""Atomic file writing, the one way fastseg writes any file.

Everything is written to a temporary file in the destination's folder and
renamed over the destination (:func:`os.replace`), so an interrupted run never
leaves half a file under the real name.
"""
from __future__ import annotations

import contextlib
import os
import tempfile


def atomic_write(path, write) -> None:
    """Call ``write(binary_file)`` on a temporary file, then rename it to `path`."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the files private
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
