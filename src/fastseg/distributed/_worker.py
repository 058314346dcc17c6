"""What runs inside a Dask worker: the model, loaded once per process, and the thread settings.

The model travels as the bytes of its (pickle-free) model file, once per worker:
:class:`ModelPlugin` installs it when a worker starts (the scheduler keeps the
plugin, so a worker that replaces a killed one gets it too), or a dask array graph
holds one :class:`ModelPayload` key that each worker fetches once. Either way
:func:`segmenter` loads it at most once per process.

Kernel threads: :class:`ThreadsPlugin` sets fastseg's, OpenMP's and OpenBLAS's
thread counts to the worker's ``nthreads``, and :data:`compute_lock` lets one
segmentation at a time use them, so a worker never runs more kernel threads
than it was given; its other threads read and write files meanwhile.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path

from distributed import WorkerPlugin, get_worker

import fastseg
from fastseg._files.segment_file import FileReport, describe_error, segment_file
from fastseg.errors import InvalidTypeError

#: One segmentation at a time per process (see the module docstring).
compute_lock = threading.Lock()

# This process's loaded models: digest -> Segmenter. A model a ModelPlugin installed
# stays while any plugin of it is registered (two runs may share one); one loaded for a
# segment_large graph stays until another such model replaces it.
_segmenters: dict = {}
_installed: dict = {}  # digest -> how many registered plugins hold it
_last_loaded: list = [None]  # digest of the model segment_large loaded last
_segmenters_lock = threading.Lock()


class ModelPayload:
    """The bytes of a model file, named by their SHA-256 digest.

    Parameters
    ----------
    data : bytes
        A model file written by ``Segmenter.save`` or ``fastseg.save``.
    """

    __slots__ = ("data", "digest")

    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.digest = hashlib.sha256(self.data).hexdigest()

    @classmethod
    def from_model(cls, model) -> ModelPayload:
        """From a model file's path, a fitted ``Segmenter`` or a ``fastseg.nn.Module``."""
        from fastseg import nn
        from fastseg.segmenter import Segmenter

        if isinstance(model, (str, os.PathLike)):
            Segmenter.load(model)  # refuse a missing or foreign file here, with its name
            return cls(Path(model).read_bytes())
        if not isinstance(model, (Segmenter, nn.Module)):
            raise InvalidTypeError(f"model: expected a model file path, a fitted "
                                   f"fastseg.Segmenter or a fastseg.nn.Module, got "
                                   f"{type(model).__name__}")
        with tempfile.TemporaryDirectory(prefix="fastseg-model-") as tmp:
            path = os.path.join(tmp, "model.fseg")
            if isinstance(model, Segmenter):
                model.save(path)
            else:
                fastseg.save(model, path)
            return cls(Path(path).read_bytes())

    def load(self):
        """A new ``Segmenter`` from these bytes (a plain network file infers its settings)."""
        from fastseg.segmenter import Segmenter

        with tempfile.TemporaryDirectory(prefix="fastseg-model-") as tmp:
            path = Path(tmp) / "model.fseg"
            path.write_bytes(self.data)
            return Segmenter.load(path)

    def __dask_tokenize__(self):
        return ("fastseg-model", self.digest)


def segmenter(payload: ModelPayload):
    """The ``Segmenter`` of `payload`, loaded once in this process."""
    with _segmenters_lock:
        seg = _segmenters.get(payload.digest)
        if seg is None:
            previous = _last_loaded[0]
            if previous is not None and previous not in _installed:
                _segmenters.pop(previous, None)
            seg = _segmenters[payload.digest] = payload.load()
            _last_loaded[0] = payload.digest
        return seg


def installed_segmenter(digest: str):
    """The model a :class:`ModelPlugin` installed in this process, or None."""
    with _segmenters_lock:
        return _segmenters.get(digest) if digest in _installed else None


def set_threads(n: int) -> None:
    """Kernel threads of this process: fastseg's, and those of OpenMP and BLAS libraries."""
    from threadpoolctl import threadpool_limits

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(n)  # libraries loaded from now on
    threadpool_limits(limits=n)  # those loaded already (a plain call: no restore)
    fastseg.set_num_threads(n)


class ThreadsPlugin(WorkerPlugin):
    """Gives each worker the client's backend and ``nthreads`` kernel threads."""

    name = "fastseg-threads"

    def __init__(self, backend: str):
        self.backend = backend

    def setup(self, worker):
        fastseg.set_backend(self.backend)
        set_threads(worker.state.nthreads)


class ModelPlugin(WorkerPlugin):
    """Loads one model into each worker when it starts; forgets it when unregistered.

    Each run registers its own (`run` names it), so one run ending never takes the
    model from another run of the same model on the same cluster.
    """

    def __init__(self, payload: ModelPayload, run: str):
        self.payload = payload
        self.name = f"fastseg-model-{payload.digest[:16]}-{run}"

    def setup(self, worker):
        digest = self.payload.digest
        with _segmenters_lock:
            if digest not in _segmenters:
                _segmenters[digest] = self.payload.load()
            _installed[digest] = _installed.get(digest, 0) + 1

    def teardown(self, worker):
        digest = self.payload.digest
        with _segmenters_lock:
            _installed[digest] -= 1
            if not _installed[digest]:
                del _installed[digest]
                if _last_loaded[0] != digest:
                    _segmenters.pop(digest, None)


class _OneAtATime:
    """A segmenter whose ``predict_proba`` holds :data:`compute_lock`."""

    def __init__(self, seg):
        self._seg = seg

    def predict_proba(self, *args, **kwargs):
        with compute_lock:
            return self._seg.predict_proba(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._seg, name)


def segment_task(path, fov, *, digest, out, threshold, predict_kwargs) -> FileReport:
    """One file on a worker; a failure is a ``failed`` report, never an exception."""
    start = time.perf_counter()
    worker = get_worker().address
    try:
        seg = installed_segmenter(digest)
        if seg is None:
            raise RuntimeError(f"the model was not installed on worker {worker}")
        report = segment_file(_OneAtATime(seg), path, out, fov=fov, threshold=threshold,
                              **predict_kwargs)
    except Exception as exc:  # the file's failure, reported; the other files go on
        report = FileReport(str(path), "failed", error=describe_error(exc),
                            seconds=time.perf_counter() - start)
    report.worker = worker
    return report
