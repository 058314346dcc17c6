"""The implementations of the ``fastseg`` subcommands (the parser lives in :mod:`fastseg.cli`).

One module per subcommand, plus :mod:`.files` for the file handling they share.
Each ``run(args)`` returns an exit code and raises :class:`fastseg.cli.CLIError`
(or another :class:`fastseg.errors.FastsegError`, or an ``OSError``) for failures
the user can fix.
"""


from fastseg.errors import FastsegError

#: What a command expects to go wrong, each fixable by the user: fastseg's own errors
#: and the operating system's (OSError: missing files, permissions, a full disk; and
#: running out of memory on a huge image). Anything else escaping a command is a bug.
USER_ERRORS = (FastsegError, OSError, MemoryError)


class CLIError(FastsegError):
    """An error whose message is the whole story for the user (printed on one line)."""
