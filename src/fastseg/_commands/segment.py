"""``fastseg segment MODEL INPUT... --out DIR``: masks, probability maps and overlays.

The work on each file is :func:`fastseg._files.segment_file.segment_file`; with
``--workers``/``--scheduler`` the files go to a Dask cluster (:mod:`fastseg.distributed`).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from fastseg._commands import CLIError
from fastseg._files import folder, naming
from fastseg._files.segment_file import (
    FileReport,
    describe_error,
    fov_file,
    outputs_exist,
    segment_file,
    summary_line,
)
from fastseg.errors import USER_ERRORS


def _load_segmenter(path):
    from fastseg.segmenter import Segmenter

    if not Path(path).is_file():
        raise CLIError(f"model file not found: {path}")
    return Segmenter.load(path)


def predict_options(args) -> dict:
    """The command's options that go to ``Segmenter.predict_proba``."""
    return {"tile": args.tile, "method": args.method, "scale": args.scale}


def _run_distributed(args, inputs, out, options) -> int:
    import sys

    from fastseg import distributed

    report = distributed.segment_many(
        args.model, inputs, out, client=args.scheduler, skip_existing=args.skip_existing,
        fovs=args.fov, threshold=args.threshold, n_workers=args.workers,
        threads_per_worker=args.threads if args.workers else None, progress=None, **options)
    for r in report.failed:
        print(f"fastseg segment: {r.line()}", file=sys.stderr)
    print(f"{report.summary()} ({report.cluster}); report: {report.report}")
    return 1 if report.failed else 0


def run(args) -> int:
    on_cluster = args.workers is not None or args.scheduler is not None
    if on_cluster:
        from fastseg import distributed

        distributed.require("--workers/--scheduler")
    seg = _load_segmenter(args.model)
    inputs = naming.image_files(args.inputs)
    fovs = naming.keyed(args.fov, "FOV") if args.fov else None
    out = Path(args.out)
    if naming.same_stem(inputs):
        raise CLIError("two inputs have the same file stem; their outputs would collide")
    out.mkdir(parents=True, exist_ok=True)
    options = predict_options(args)
    if on_cluster:
        return _run_distributed(args, inputs, out, options)
    from tqdm.auto import tqdm

    start, reports = time.perf_counter(), []
    folder.start(out, seg, model_path=args.model, threshold=args.threshold)
    for path in tqdm(inputs, desc="files", unit="file", disable=None if len(inputs) > 1
                     else True):
        if args.skip_existing and outputs_exist(out, path):
            reports.append(FileReport(str(path), "skipped"))
        else:
            try:
                reports.append(segment_file(seg, path, out, fov=fov_file(path, fovs),
                                            threshold=args.threshold, **options))
            except USER_ERRORS as exc:
                failed = FileReport(str(path), "failed", error=describe_error(exc))
                folder.record(out, failed)
                if len(inputs) == 1:
                    folder.finish(out, inputs)
                    raise  # one file: the command's own one-line error, exit 2
                # Of many files, a bad one is reported and the others go on, as on a cluster.
                reports.append(failed)
                print(f"fastseg segment: {failed.line()}", file=sys.stderr)
                continue
        folder.record(out, reports[-1])
        print(reports[-1].line())
    # Temporaries a killed earlier run left behind go; the page of every record is made.
    page = folder.finish(out, inputs)
    if len(inputs) > 1:
        print(f"{summary_line(reports, time.perf_counter() - start)}; report: {page}")
    else:
        print(f"report: {page}")
    return 1 if any(r.status == "failed" for r in reports) else 0
