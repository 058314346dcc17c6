"""Throughput of ``fastseg.distributed.segment_many`` on this machine, and what limits it.

The figures of docs/scaling.md come from this script::

    python bench/scaling.py                 # lai2d (the report's net), 8 images of 96 x 96
    python bench/scaling.py --hidden 8 --patch-size 12 --size 64 --images 32   # overheads

For each layout (sequential ``fastseg segment`` and local clusters of 1 x 1, 1 x 2 and
2 x 1 workers x threads) it times whole ``segment_many`` runs on a started cluster, the
layouts alternating, ``--repeats`` times, and prints medians: cluster start (with one
warm-up image per worker), run time, images per second, and CPU seconds per image (all
processes: workers, scheduler, client), which a busy shared machine changes far less
than the wall time. It then times the per-run and
per-task costs a projection needs: the model file's load on a worker, one image's read
+ PNG writes, and the scheduler's round trip per task (empty tasks).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _images(folder, n, size, seed=0):
    from fastseg.data import synthetic_fundus
    from fastseg.viz import save_image

    folder.mkdir(parents=True)
    for i, sample in enumerate(synthetic_fundus(n, shape=(size, size), seed=seed)):
        save_image(folder / f"im{i:03d}.png", sample.image)
    return sorted(folder.iterdir())


def _model(path, hidden, patch_size):
    import fastseg
    from fastseg import Segmenter

    fastseg.seed(0)
    seg = Segmenter(patch_size=patch_size, model_kwargs={"hidden": hidden})
    seg.model_ = seg._build().eval()
    seg.save(path)
    return path


def _sequential(model, inputs, out, threads):
    import fastseg
    from fastseg._files.segment_file import segment_file
    from fastseg.segmenter import Segmenter

    fastseg.set_num_threads(threads)
    seg = Segmenter.load(model)
    out.mkdir()
    start, cpu = time.perf_counter(), time.process_time()
    for path in inputs:
        segment_file(seg, path, out)
    return 0.0, time.perf_counter() - start, time.process_time() - cpu


def _cpu_seconds(client):
    """CPU seconds the worker processes have used so far, summed."""
    return sum(client.run(lambda: time.process_time()).values())


def _on_cluster(model, inputs, out, workers, threads):
    from distributed import Client

    from fastseg import distributed
    from fastseg.distributed._cluster import local_cluster

    start = time.perf_counter()
    with local_cluster(workers, threads) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        # Warm up: each worker imports fastseg's modules once (a one-off cost per worker).
        distributed.segment_many(model, inputs[:workers], out / "warm", client=client,
                                 progress=False)
        started = time.perf_counter() - start
        start, cpu = time.perf_counter(), _cpu_seconds(client) + time.process_time()
        report = distributed.segment_many(model, inputs, out, client=client, progress=False)
        seconds = time.perf_counter() - start
        cpu = _cpu_seconds(client) + time.process_time() - cpu  # workers, scheduler, client
    assert not report.failed, report.failed
    return started, seconds, cpu


def _overheads(model, inputs, out):
    from distributed import Client

    from fastseg._files.segment_file import segment_file
    from fastseg.distributed._cluster import local_cluster
    from fastseg.distributed._worker import ModelPayload
    from fastseg.segmenter import Segmenter

    payload = ModelPayload(Path(model).read_bytes())
    loads = []
    for _ in range(5):
        start = time.perf_counter()
        payload.load()
        loads.append(time.perf_counter() - start)

    seg = Segmenter.load(model)

    class Cached:  # the same file work with the probability map computed beforehand
        def __init__(self, prob):
            self.prob = prob

        def __getattr__(self, name):
            return getattr(seg, name)

        def predict_proba(self, *args, **kwargs):
            return self.prob

    from fastseg.data import read_image

    io = []
    for path in inputs[:5]:
        prob = np.zeros(read_image(path).shape[:2], np.float32)
        start = time.perf_counter()
        segment_file(Cached(prob), path, out)
        io.append(time.perf_counter() - start)

    with local_cluster(2, 1) as cluster, Client(cluster) as client:
        client.wait_for_workers(2)
        n = 2000
        client.gather(client.map(int, range(200), pure=False))  # warm
        start = time.perf_counter()
        client.gather(client.map(int, range(n), pure=False))
        per_task = (time.perf_counter() - start) / n
    return {"model_bytes": len(payload.data), "model_load_s": statistics.median(loads),
            "file_io_s": statistics.median(io), "empty_task_s": per_task}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=1000)
    p.add_argument("--patch-size", type=int, default=24)
    p.add_argument("--size", type=int, default=96, help="image side (default 96)")
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    from fastseg import backends

    root = Path(tempfile.mkdtemp(prefix="fastseg-scaling-"))
    try:
        inputs = _images(root / "in", args.images, args.size)
        model = _model(root / "model.fseg", args.hidden, args.patch_size)
        layouts = {"sequential, 1 thread": lambda out: _sequential(model, inputs, out, 1),
                   "sequential, 2 threads": lambda out: _sequential(model, inputs, out, 2),
                   "1 worker x 1 thread": lambda out: _on_cluster(model, inputs, out, 1, 1),
                   "1 worker x 2 threads": lambda out: _on_cluster(model, inputs, out, 1, 2),
                   "2 workers x 1 thread": lambda out: _on_cluster(model, inputs, out, 2, 1)}
        times = {name: [] for name in layouts}
        for r in range(args.repeats):
            for name, run in layouts.items():
                out = root / f"out-{r}-{name.replace(' ', '')}"
                times[name].append(run(out))
                shutil.rmtree(out)
        print(f"model lai2d hidden={args.hidden} patch={args.patch_size}; {args.images} images "
              f"of {args.size}x{args.size}; {os.cpu_count()} CPUs; "
              f"isa {backends.runtime().isa_name()}; "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'layout':24} {'start s':>8} {'run s':>8} {'images/s':>9} {'CPU s/image':>12}"
              f"   (medians of {args.repeats})")
        for name, runs in times.items():
            start, run, cpu = (statistics.median(r[k] for r in runs) for k in range(3))
            print(f"{name:24} {start:8.2f} {run:8.2f} {args.images / run:9.3f} "
                  f"{cpu / args.images:12.3f}")
        (root / "io").mkdir()
        for key, value in _overheads(model, inputs, root / "io").items():
            print(f"{key:24} {value:.4g}")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
