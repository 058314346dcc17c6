"""The one benchmark timer: backends run alternately, medians, an idle gap before each
sample; and the table ``fastseg bench`` prints.

``bench/gemm_gflops.py`` and ``bench/gpu_device_check.py`` time with it too, so every
figure fastseg reports is taken the same way.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

from fastseg.benchmarks.case import ENGINES

__all__ = ["set_threads", "alternate", "run_table", "format_table"]

_limiter = None


def set_threads(n: int) -> None:
    """Pin the thread count of every library a benchmark may touch: fastseg's kernels,
    NumPy's BLAS (threadpoolctl, when installed) and PyTorch (when installed). ONNX
    Runtime and OpenVINO have no global count: their runners read fastseg's when they
    are prepared (:mod:`fastseg.benchmarks.engines`), after this call."""
    global _limiter
    import fastseg

    fastseg.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        _limiter = threadpool_limits(limits=n)  # NumPy's BLAS, kept alive on purpose
    except ImportError:
        pass
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(n)


def alternate(runners: Mapping[str, Callable[[], object]], repeats: int = 5,
              min_time: float = 0.05, settle: float = 0.2,
              clock: Callable[[], float] = time.perf_counter,
              sync: Callable[[], object] | None = None) -> dict[str, float]:
    """Median seconds per call of each runner, the runners' samples interleaved.

    Interleaving spreads the machine's noise (other processes, frequency changes)
    evenly over the runners, so their ratio is fair even when the absolute times
    wander. Before each sample the process idles `settle` seconds: OpenBLAS's and
    OpenMP's worker threads spin for a while after a call, and would otherwise steal
    the cores from the next runner timed. Each sample repeats its runner enough times
    to last at least `min_time`. `sync` (e.g. ``cuda.synchronize``) is called before
    the clock stops, for work that runs asynchronously on a device; `clock` may be
    ``time.thread_time`` for the CPU time of this thread alone.
    """
    def once(run):
        run()
        if sync is not None:
            sync()

    inner = {}
    for key, run in runners.items():
        once(run)  # warm-up: first-touch page faults, lazy imports, caches, compiles
        t0 = clock()
        once(run)
        inner[key] = max(1, int(min_time / max(clock() - t0, 1e-7)))
    samples: dict[str, list[float]] = {key: [] for key in runners}
    for _ in range(repeats):
        for key, run in runners.items():
            if settle:
                time.sleep(settle)
            t0 = clock()
            for _ in range(inner[key]):
                run()
            if sync is not None:
                sync()
            samples[key].append((clock() - t0) / inner[key])
    return {key: statistics.median(s) for key, s in samples.items()}


def run_table(cases, backends: list[str], threads: list[int], repeats: int = 5,
              progress: Callable[[str], None] | None = None,
              settle: float = 0.2) -> list[dict]:
    """One row per (case, thread count): median seconds per backend and GFLOP/s.

    `cases` are :class:`fastseg.benchmarks.Case` objects (``group``, ``name``,
    ``flops``, ``prepare(backend)``, ``runs_on(backend)``). A row holds the backends
    the case runs on (an inference engine only where the case lists it); a case that
    runs on none of `backends` has no row.
    """
    rows = []
    for n in threads:
        set_threads(n)
        for case in cases:
            ran = [b for b in backends if case.runs_on(b)]
            if not ran:
                continue
            if progress is not None:
                progress(f"{case.id} ({n} thread{'s' if n > 1 else ''})")
            runners = {b: case.prepare(b) for b in ran}
            times = alternate(runners, repeats=repeats, settle=settle)
            rows.append({"group": case.group, "case": case.name, "threads": n,
                         "seconds": times,
                         "gflops": {b: case.flops / t / 1e9 for b, t in times.items()}})
    return rows


def format_table(rows: list[dict], backends: list[str]) -> str:
    """Median milliseconds per backend, then fastseg "c" as a ratio to the others
    (numpy, torch and the inference engines); a backend no row ran has no column, a
    row without it a "-"."""
    shown = [b for b in backends if any(b in row["seconds"] for row in rows)]
    refs = [b for b in ("numpy", "torch", *ENGINES) if b in shown and b != "c"]
    head = ["group", "case", "thr"] + [f"{b} ms" for b in shown]
    head += [f"c vs {r}" for r in refs if "c" in shown]
    lines = [head]
    for row in rows:
        t = row["seconds"]
        line = [row["group"], row["case"], str(row["threads"])]
        line += [f"{t[b] * 1e3:.3f}" if b in t else "-" for b in shown]
        if "c" in shown:
            # > 1 means fastseg's C backend is that many times faster.
            line += [f"{t[r] / t['c']:.2f}x" if r in t and "c" in t else "-" for r in refs]
        lines.append(line)
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in lines)
