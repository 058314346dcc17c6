"""The implementations of the ``fastseg`` subcommands (the parser lives in :mod:`fastseg.cli`).

One module per subcommand; the file work they share with :mod:`fastseg.distributed`
(naming inputs and outputs, segmenting one file) is the library's :mod:`fastseg._files`.
Each ``run(args)`` returns an exit code and raises :class:`fastseg.cli.CLIError`
(or another :class:`fastseg.errors.FastsegError`, or an ``OSError``) for failures
the user can fix.
"""

from fastseg.errors import FastsegError


class CLIError(FastsegError):
    """An error whose message is the whole story for the user (printed on one line)."""
