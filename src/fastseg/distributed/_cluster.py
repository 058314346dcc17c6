"""The cluster a call runs on: the caller's client, a scheduler address, or a local cluster."""
from __future__ import annotations

import contextlib
import logging
import os

from distributed import Client, LocalCluster

from fastseg import _validate
from fastseg.errors import InvalidTypeError, InvalidValueError


def cores() -> int:
    """CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def local_layout(n_workers=None, threads_per_worker=None) -> tuple[int, int]:
    """Workers and threads per worker of a local cluster: together, one thread per core.

    Default: one single-threaded worker per core, the fastest layout for many files
    (no kernel is split between threads); give fewer workers with more threads for
    images too large to hold once per core.
    """
    n = cores()
    if n_workers is not None:
        n_workers = _validate.as_int("n_workers", n_workers, minimum=1)
    if threads_per_worker is not None:
        threads_per_worker = _validate.as_int("threads_per_worker", threads_per_worker,
                                              minimum=1)
    if n_workers is None:
        n_workers = max(1, n // (threads_per_worker or 1))
    if threads_per_worker is None:
        threads_per_worker = max(1, n // n_workers)
    return n_workers, threads_per_worker


def local_cluster(n_workers, threads_per_worker) -> LocalCluster:
    """A cluster of worker processes on this machine, quiet: no dashboard, warnings only."""
    # No dashboard; the scheduler's own HTTP routes on any free port, not 8787.
    return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                        processes=True, dashboard_address=None,
                        scheduler_kwargs={"dashboard_address": ":0"},
                        silence_logs=logging.WARNING)


@contextlib.contextmanager
def connect(client=None, n_workers=None, threads_per_worker=None):
    """Yield a ``distributed.Client``; close what this call opened, and only that.

    Parameters
    ----------
    client : distributed.Client, str or None
        A client (used as it is), a scheduler address (connected to, then
        disconnected), or None: start a ``LocalCluster`` of worker processes
        (:func:`local_layout`) and shut it down afterwards.
    """
    if client is None:
        with local_cluster(*local_layout(n_workers, threads_per_worker)) as cluster, \
                Client(cluster, set_as_default=False) as own:
            yield own
        return
    if n_workers is not None or threads_per_worker is not None:
        raise InvalidValueError("n_workers, threads_per_worker: only for the local cluster "
                                "started when client is None; a running cluster keeps its "
                                "own workers")
    if isinstance(client, Client):
        yield client
    elif isinstance(client, str):
        with Client(client, set_as_default=False) as own:
            yield own
    else:
        raise InvalidTypeError(f"client: expected a distributed.Client, a scheduler address "
                               f"or None, got {type(client).__name__}")


def describe(client) -> str:
    """``"2 workers x 1 thread"``, or how many threads each worker has when they differ."""
    threads = sorted(w["nthreads"] for w in client.scheduler_info()["workers"].values())
    if not threads:
        return "no workers"
    each = (f"{threads[0]} thread{'s' if threads[0] > 1 else ''}" if len(set(threads)) == 1
            else f"{'/'.join(map(str, threads))} threads")
    return f"{len(threads)} worker{'s' if len(threads) > 1 else ''} x {each}"
