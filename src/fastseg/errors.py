"""The exceptions fastseg raises on purpose.

Every error fastseg raises for a bad argument, a bad file or a missing
capability derives from :class:`FastsegError` and also from the built-in
exception a caller expects (``ValueError``, ``TypeError``, ...), so
``except ValueError`` keeps working. The command line prints a
``FastsegError`` as one line; any other exception escaping fastseg is a bug,
and it shows its traceback.
"""
from __future__ import annotations

__all__ = [
    "FastsegError", "InvalidValueError", "InvalidTypeError", "InvalidIndexError",
    "NonFiniteError", "UnavailableError", "MissingDependencyError", "DivergedError",
    "MemoryBudgetError", "USER_ERRORS",
]


class FastsegError(Exception):
    """Base of every error fastseg raises on purpose; its message says what to fix."""


class InvalidValueError(FastsegError, ValueError):
    """An argument (or a file's content) of the right type but a wrong value, shape or size."""


class InvalidTypeError(FastsegError, TypeError):
    """An argument of the wrong type or dtype."""


class InvalidIndexError(InvalidValueError, IndexError):
    """An index or label outside its range (both a ``ValueError`` and an ``IndexError``)."""


class NonFiniteError(InvalidValueError):
    """An array holds NaN or infinity where only finite values make sense."""


class UnavailableError(FastsegError, RuntimeError):
    """Something that cannot run here: a backend, or an operation a backend lacks."""


class MissingDependencyError(FastsegError, ImportError):
    """An optional package a feature needs is not installed; the message says which."""


class DivergedError(FastsegError, FloatingPointError):
    """Training stopped because its loss (or the network's output) became NaN or infinite:
    the run diverged, typically from too high a learning rate."""


class MemoryBudgetError(FastsegError, MemoryError):
    """Work refused before it started: its estimated peak memory is above the limit
    (``FASTSEG_MEMORY_LIMIT``, ``fastseg.set_memory_limit``, ``--memory-limit``, or the
    memory available). The message gives the estimate, the limit and where the limit came
    from, and what to change.

    Attributes
    ----------
    estimate : int or None
        Bytes the work was estimated to add.
    limit : int or None
        The limit in bytes.
    source : str or None
        Where the limit came from.
    """

    def __init__(self, message="", *, estimate=None, limit=None, source=None):
        super().__init__(message)
        self.estimate, self.limit, self.source = estimate, limit, source


#: What a command or a file job expects to go wrong, each fixable by the user: fastseg's own
#: errors and the operating system's (OSError: missing files, permissions, a full disk; and
#: running out of memory on a huge image). Anything else escaping one is a bug.
USER_ERRORS = (FastsegError, OSError, MemoryError)
