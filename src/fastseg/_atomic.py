"""Atomic file writing, the one way fastseg writes any file.

Everything is written to a temporary file in the destination's folder and
renamed over the destination (:func:`os.replace`), so an interrupted run never
leaves half a file under the real name.
"""
from __future__ import annotations

import contextlib
import os
import tempfile

_TEMPORARY_SUFFIX = ".tmp"


def _temporary_prefix(path) -> str:
    return "." + os.path.basename(path) + "."


def atomic_write(path, write) -> None:
    """Call ``write(binary_file)`` on a temporary file, then rename it to `path`.

    On any failure the temporary is removed and `path` is left as it was (absent, or
    the previous file whole). An ``OSError`` of the writing itself (a full disk, a file
    size limit, an I/O error), which would name no file or the temporary, is raised
    again naming `path`, with its errno: ``[Errno 28] No space left on device:
    'out/a_prob.png'``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=_temporary_prefix(path),
                                   suffix=_TEMPORARY_SUFFIX)
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the files private
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename in (None, tmp):
            raise _naming(exc, path) from exc
        raise


def _naming(exc: OSError, path: str) -> OSError:
    """`exc` again (its errno, its OSError subclass), naming `path`."""
    if exc.errno is None:
        return OSError(f"{exc}: {path!r}")
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), path)


def atomic_write_text(path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def remove_stale_temporaries(directory, names) -> int:
    """Delete the temporary files that writes of `names` in `directory` left behind.

    A process killed outright (SIGKILL, out of memory, a lost cluster worker) cannot
    clean up: its ``.<name>.<random>.tmp`` stays, never a file under the real name.
    Call this once no write of those names can still be running. Returns the count.
    """
    prefixes = {_temporary_prefix(name) for name in names}
    removed = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            head = entry.name[:-len(_TEMPORARY_SUFFIX)]
            if (entry.name.endswith(_TEMPORARY_SUFFIX) and "." in head[1:]
                    and head[:head.rindex(".") + 1] in prefixes):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed
