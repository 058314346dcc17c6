"""``segment_many``: one task per input file, the files ``fastseg segment`` writes."""
from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from distributed import as_completed

import fastseg
from fastseg._files import folder, naming
from fastseg._files.segment_file import (
    FileReport,
    describe_error,
    fov_file,
    outputs_exist,
    summary_line,
)
from fastseg.distributed import _cluster, _worker
from fastseg.errors import InvalidValueError


@dataclass
class ManyReport:
    """What :func:`fastseg.distributed.segment_many` did, one :class:`FileReport` per input.

    Iterating, ``len`` and indexing go over ``files``, in the order of the inputs;
    ``report`` is the folder's ``report.html``, which shows them all.
    """

    files: list = field(default_factory=list)
    seconds: float = 0.0
    cluster: str = ""
    report: Path | None = None

    def _with(self, status):
        return [r for r in self.files if r.status == status]

    @property
    def done(self) -> list:
        return self._with("done")

    @property
    def skipped(self) -> list:
        return self._with("skipped")

    @property
    def failed(self) -> list:
        return self._with("failed")

    def summary(self) -> str:
        """``"8 done, 1 skipped, 1 failed in 3.2 s"``."""
        return summary_line(self.files, self.seconds)

    def __iter__(self):
        return iter(self.files)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return self.files[i]


def _input_files(inputs) -> list[Path]:
    """Folders expanded (one level, image files); files kept as given, even missing ones
    (each fails on its own, with its reason, while the others run)."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths = []
    for item in inputs:
        p = Path(item)
        paths += naming.image_files([p]) if p.is_dir() else [p]
    if not paths:
        raise InvalidValueError("inputs: no input files given")
    pair = naming.same_stem(paths)
    if pair:
        raise InvalidValueError(f"inputs: {pair[0]} and {pair[1]} have the same stem; their "
                                "outputs would collide")
    return paths


def segment_many(model, inputs, out, client=None, skip_existing=False, *, fovs=None,
                 threshold=None, n_workers=None, threads_per_worker=None, progress=None,
                 **predict_kwargs) -> ManyReport:
    start = time.perf_counter()
    payload = _worker.ModelPayload.from_model(model)
    paths = _input_files(inputs)
    fov_files = naming.keyed(fovs, "FOV") if fovs is not None else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    reports = [None] * len(paths)
    todo = []  # (index, path, its FOV file)
    for i, path in enumerate(paths):
        if skip_existing and outputs_exist(out, path):
            reports[i] = FileReport(str(path), "skipped")
            continue
        try:
            todo.append((i, path, fov_file(path, fov_files)))
        except InvalidValueError as exc:
            reports[i] = FileReport(str(path), "failed", error=str(exc))

    model_path = model if isinstance(model, (str, os.PathLike)) else None
    folder.start(out, payload.load(), model_path=model_path, threshold=threshold)
    for r in reports:
        if r is not None:
            folder.record(out, r)
    with _cluster.connect(client, n_workers, threads_per_worker) as c:
        cluster = _cluster.describe(c)
        if todo:
            _run(c, payload, todo, out, threshold, predict_kwargs, reports, progress)
    # A worker killed while writing leaves a temporary file, never an output (_atomic);
    # the page is made of every record in the folder.
    page = folder.finish(out, paths)
    return ManyReport(reports, time.perf_counter() - start, cluster, page)


def _run(client, payload, todo, out, threshold, predict_kwargs, reports, progress):
    from tqdm.auto import tqdm

    run = uuid.uuid4().hex[:8]
    plugin = _worker.ModelPlugin(payload, run)
    client.register_plugin(_worker.ThreadsPlugin(fastseg.get_backend()))
    client.register_plugin(plugin)
    failed, index = 0, {}
    try:
        futures = client.map(_worker.segment_task, [str(path) for _, path, _ in todo],
                             [None if fov is None else str(fov) for _, _, fov in todo],
                             key=[f"fastseg-segment-{run}-{i}" for i, _, _ in todo],
                             pure=False, digest=payload.digest, out=str(out),
                             threshold=threshold, predict_kwargs=predict_kwargs)
        index = {future: (i, path) for future, (i, path, _) in zip(futures, todo, strict=True)}
        with tqdm(total=len(todo), desc="files", unit="file",
                  disable=None if progress is None else not progress) as bar:
            for batch in as_completed(futures, loop=client.loop).batches():
                finished = [f for f in batch if f.status == "finished"]
                # One round trip per batch of finished files, not one per file.
                results = dict(zip(finished, client.gather(finished), strict=True))
                for future in batch:
                    i, path = index.pop(future)
                    if future in results:
                        reports[i] = results[future]
                    else:  # e.g. KilledWorker: workers died too often running it
                        reports[i] = FileReport(str(path), "failed", error=describe_error(
                            future.exception()))
                    folder.record(out, reports[i])
                    failed += reports[i].status == "failed"
                if failed:
                    bar.set_postfix(failed=failed, refresh=False)
                bar.update(len(batch))
    except BaseException:
        client.cancel(list(index))
        with contextlib.suppress(Exception):  # the first error is the one to see
            client.unregister_worker_plugin(plugin.name)
        raise
    client.unregister_worker_plugin(plugin.name)  # frees the model on the workers
