"""Where dense inference's FFT path spends its time: lai2d over one image, stage by stage.

    python bench/fft_stages.py                      # 584x565 and 192x192, 2 and 1 threads
    python bench/fft_stages.py --size 584x565 --threads 2 --repeats 5 --json out.json

The network and image are the ``segment`` benchmark's (``fastseg bench --group segment``,
``lai2d-584x565-fft``): lai2d with fastseg's seed 0, a standard-normal image, ``method
="auto"``. Each stage is CPU seconds (every thread's, summed), so a machine shared with
other jobs shows the work, not the waiting; the wall clock is given beside them. The
median of `--repeats` runs after one warm-up (the kernel spectra are made then, once per
model, as in a real session).

Stages: the direct layers (convolutions and activations not fused into an FFT step);
the FFT steps' forward transforms, per-bin products (the bias rides on bin 0 there),
inverse transforms, activation, 1x1 layer, copies (zeroing, sums, output writes) and
the team's waits at its barriers (``sync``: spinning threads' CPU); "other" is the rest
of the process's CPU time (padding, the softmax, stitching tiles, Python).

It also runs against the code before the fused kernel (the general path: SciPy
transforms, ``gemm_batch`` per group, NumPy activations), recognised by its
``fftconv`` lacking ``NAMED_ACTIVATIONS``: its stages are timed by wrapping those
functions (each runs on one thread there, or alone), so the two tables compare.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import sys
import threading
import time
from collections import defaultdict

os.environ.setdefault("FASTSEG_TUNE", "0")  # the constants, unless asked otherwise

import numpy as np  # noqa: E402

import fastseg  # noqa: E402
from fastseg import models, ops  # noqa: E402
from fastseg._inference import fcn, fftconv  # noqa: E402  (fcn: the general path's)

ROWS = ["direct layers", "forward transforms", "per-bin products", "inverse transforms",
        "activation", "1x1 layer", "copies / transposes", "sync (barriers)", "other",
        "total CPU", "wall"]
_KERNEL = {"forward": "forward transforms", "products": "per-bin products",
           "inverse": "inverse transforms", "activation": "activation",
           "project": "1x1 layer", "copy": "copies / transposes", "sync": "sync (barriers)"}
FUSED = hasattr(fftconv, "NAMED_ACTIVATIONS")

_acc: dict = defaultdict(float)
_lock = threading.Lock()


def _timed(name, fn, clock):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            with _lock:
                _acc[name] += clock() - t0
    return wrapper


def _instrument():
    """Wrap what each stage runs (the direct layers always; the general path's steps
    when the code has no fused kernel)."""
    for name in ("conv2d", "relu", "tanh", "sigmoid"):
        setattr(ops, name, _timed("direct layers", getattr(ops, name), time.process_time))
    if FUSED:
        return
    fc = fftconv
    fc._input_spectra = _timed("forward transforms", fc._input_spectra, time.process_time)
    fc._inverse = _timed("inverse transforms", fc._inverse, time.thread_time)
    fc._Job.block_maps = _timed("block_maps", fc._Job.block_maps, time.thread_time)
    fc._Job.projected = _timed("1x1 layer", fc._Job.projected, time.thread_time)
    fc._Job.to_image = _timed("copies / transposes", fc._Job.to_image, time.thread_time)
    fcn._tanh_in_place = _timed("activation", fcn._tanh_in_place, time.thread_time)
    init = fc._Job.__init__

    def job_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if self.gemm_batch is not None:
            self.gemm_batch = _timed("per-bin products", self.gemm_batch, time.thread_time)

    fc._Job.__init__ = job_init


def profile(model, image, threads: int, repeats: int) -> dict:
    from fastseg.benchmarks import timer

    timer.set_threads(threads)
    fastseg.segment(model, image, progress=False, method="auto")  # spectra, plans
    runs = []
    for _ in range(repeats):
        _acc.clear()
        kernel: dict = {}  # the fused kernel's stages (CPU s, summed over its threads)
        profiling = fftconv.profiling(kernel) if FUSED else contextlib.nullcontext()
        with profiling:
            c0, w0 = time.process_time(), time.perf_counter()
            fastseg.segment(model, image, progress=False, method="auto")
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        row = defaultdict(float, _acc)
        for stage, seconds in kernel.items():
            row[_KERNEL[stage]] += seconds
        if not FUSED:  # block_maps holds the products, inverse, activation; the rest is
            inner = sum(row[k] for k in ("per-bin products", "inverse transforms",
                                         "activation"))
            row["copies / transposes"] += max(0.0, row.pop("block_maps", 0.0) - inner)
        row["other"] = max(0.0, cpu - sum(row[k] for k in ROWS[:-3]))
        row["total CPU"], row["wall"] = cpu, wall
        runs.append(row)
    return {k: statistics.median(r[k] for r in runs) for k in ROWS}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="584x565,192x192")
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.size.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    _instrument()
    fastseg.seed(0)
    model = models.lai2d(patch_size=24).eval()
    load0 = os.getloadavg()[0]
    columns = {}
    for h, w in sizes:
        image = np.random.default_rng(0).standard_normal((1, h, w)).astype(np.float32)
        for t in threads:
            columns[f"{h}x{w} {t}t"] = profile(model, image, t, args.repeats)
    load1 = os.getloadavg()[0]
    code = "fused kernel" if FUSED else "general path (before the fused kernel)"
    print(f"# lai2d dense, method='auto', {code}; CPU seconds (medians of {args.repeats}); "
          f"load average {load0:.1f} before, {load1:.1f} after")
    names = list(columns)
    print(f"| stage | {' | '.join(names)} |")
    print("| --- |" + " --- |" * len(names))
    for k in ROWS:
        print(f"| {k} | " + " | ".join(f"{columns[n][k]:.3f}" for n in names) + " |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"code": code, "load": [load0, load1], "columns": columns}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
