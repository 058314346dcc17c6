"""The benchmark cases, shared by ``bench/`` (pytest-benchmark) and ``fastseg bench``.

Each case is one computation on the shapes of the paper's networks, written
once per backend: fastseg's ``"c"``, ``"numpy"`` and ``"cuda"`` through
:mod:`fastseg.ops` / :mod:`fastseg.nn`, and ``"torch"`` as the same
computation in PyTorch on the CPU. ``Case.prepare(backend)`` does all set-up
(arrays, models) outside the timed region and returns a zero-argument callable
that runs the computation once.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fastseg import ops
from fastseg._shapes import out_size

Runner = Callable[[], object]


@dataclass(frozen=True)
class Case:
    group: str
    name: str
    flops: float  # floating-point operations of one run, for GFLOP/s
    prepare: Callable[[str], Runner]

    @property
    def id(self) -> str:
        return f"{self.group}:{self.name}"


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _torch():
    import torch

    return torch


# ---- thread control ----------------------------------------------------------------


_limiter = None


def set_threads(n: int) -> None:
    """Pin the thread count of every library a benchmark may touch."""
    global _limiter
    import fastseg

    fastseg.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        _limiter = threadpool_limits(limits=n)  # NumPy's BLAS, kept alive on purpose
    except ImportError:
        pass
    try:
        _torch().set_num_threads(n)
    except ImportError:
        pass


def available_backends() -> list[str]:
    """fastseg's usable backends plus ``"torch"`` when PyTorch imports."""
    import fastseg

    names = list(fastseg.available_backends())
    try:
        _torch()
        names.append("torch")
    except ImportError:
        pass
    return names


# ---- gemm ------------------------------------------------------------------------------

# (M, K, N, trans_a, trans_b, where it comes from)
GEMM_SHAPES = [
    (1024, 1024, 1024, False, False, "square"),
    (20, 25, 51200, False, False, "lai2d conv1 fwd, batch 128"),
    (50, 500, 32768, False, False, "lai2d conv2 fwd, batch 128"),
    (50, 32768, 500, False, True, "lai2d conv2 dW"),
    (500, 50, 32768, True, False, "lai2d conv2 dX"),
    (128, 12800, 1000, False, True, "lai2d fc1 fwd"),
    (1000, 128, 12800, True, False, "lai2d fc1 dW"),
    (128, 1000, 12800, False, False, "lai2d fc1 dX"),
]


def _gemm_case(m, k, n, ta, tb, note) -> Case:
    def prepare(backend: str) -> Runner:
        rng = np.random.default_rng(0)
        a = _rand(rng, *((k, m) if ta else (m, k)))
        b = _rand(rng, *((n, k) if tb else (k, n)))
        if backend == "torch":
            torch = _torch()
            at, bt = torch.from_numpy(a), torch.from_numpy(b)
            at, bt = (at.T if ta else at), (bt.T if tb else bt)
            return lambda: torch.matmul(at, bt)
        if backend == "cuda":
            from numba import cuda

            a, b = cuda.to_device(a), cuda.to_device(b)
        return lambda: ops.gemm(a, b, ta, tb, backend=backend)

    t = ("T" if ta else "N") + ("T" if tb else "N")
    return Case("gemm", f"{m}x{k}x{n}-{t}", 2.0 * m * k * n, prepare)


# ---- convolution, linear, pooling -----------------------------------------------------

# (name, batch, in_ch, size, out_ch, k, padding): the lai2d layers and the
# whole-image network's first layer (models.seo_whole_image defaults).
CONV_SHAPES = [
    ("lai2d-conv1-b128", 128, 1, 24, 20, 5, 0),
    ("lai2d-conv2-b128", 128, 20, 20, 50, 5, 0),
    ("lai2d-conv2-b1", 1, 20, 20, 50, 5, 0),
    ("seo-conv1-b2", 2, 1, 64, 16, 5, 2),
]


def _conv_case(name, n, c, s, f, k, pad, backward: bool) -> Case:
    o = out_size(s, k, 1, pad)

    def prepare(backend: str) -> Runner:
        rng = np.random.default_rng(0)
        x, w, b = _rand(rng, n, c, s, s), _rand(rng, f, c, k, k), _rand(rng, f)
        dy = _rand(rng, n, f, o, o)
        if backend == "torch":
            torch = _torch()
            tx = torch.from_numpy(x).requires_grad_(backward)
            tw = torch.from_numpy(w).requires_grad_(backward)
            tb = torch.from_numpy(b).requires_grad_(backward)
            tdy = torch.from_numpy(dy)
            conv = torch.nn.functional.conv2d
            if not backward:
                return lambda: conv(tx, tw, tb, padding=pad)

            def torch_fb():
                # PyTorch computes the gradients from the forward graph; the
                # fair comparison is forward + backward against ours.
                tx.grad = tw.grad = tb.grad = None
                conv(tx, tw, tb, padding=pad).backward(tdy)

            return torch_fb
        if not backward:
            return lambda: ops.conv2d(x, w, b, padding=pad, backend=backend)

        def fb():
            ops.conv2d(x, w, b, padding=pad, backend=backend)
            return ops.conv2d_backward(x, w, dy, padding=pad, backend=backend)

        return fb

    flops = 2.0 * n * f * o * o * c * k * k * (3 if backward else 1)
    return Case("conv2d-bwd" if backward else "conv2d-fwd", name, flops, prepare)


LINEAR_SHAPES = [("lai2d-fc1-b128", 128, 12800, 1000), ("lai2d-fc2-b128", 128, 1000, 2)]


def _linear_case(name, n, i, o, backward: bool) -> Case:
    def prepare(backend: str) -> Runner:
        rng = np.random.default_rng(0)
        x, w, b, dy = _rand(rng, n, i), _rand(rng, o, i), _rand(rng, o), _rand(rng, n, o)
        if backend == "torch":
            torch = _torch()
            tx, tw, tb = (torch.from_numpy(a).requires_grad_(backward) for a in (x, w, b))
            tdy = torch.from_numpy(dy)
            lin = torch.nn.functional.linear
            if not backward:
                return lambda: lin(tx, tw, tb)

            def torch_fb():
                tx.grad = tw.grad = tb.grad = None
                lin(tx, tw, tb).backward(tdy)

            return torch_fb
        if not backward:
            return lambda: ops.linear(x, w, b, backend=backend)

        def fb():
            ops.linear(x, w, b, backend=backend)
            return ops.linear_backward(x, w, dy, backend=backend)

        return fb

    flops = 2.0 * n * i * o * (3 if backward else 1)
    return Case("linear-bwd" if backward else "linear-fwd", name, flops, prepare)


def _pool_case(shape) -> Case:
    def prepare(backend: str) -> Runner:
        x = _rand(np.random.default_rng(0), *shape)
        if backend == "torch":
            torch = _torch()
            tx = torch.from_numpy(x)
            return lambda: torch.nn.functional.max_pool2d(tx, 2, return_indices=True)
        return lambda: ops.max_pool2d(x, 2, backend=backend)

    name = "b{}-c{}-{}x{}-k2".format(*shape)
    return Case("max_pool2d", name, float(np.prod(shape)), prepare)


# Small stand-ins with the same structure, for smoke runs (`quick=True`).
QUICK_GEMM_SHAPES = [(64, 64, 64, False, False, "square"), (5, 40, 300, True, False, "skinny")]
QUICK_CONV_SHAPES = [("small-b4", 4, 3, 12, 5, 3, 1)]
QUICK_LINEAR_SHAPES = [("small-b4", 4, 50, 7)]


def all_cases(quick: bool = False) -> list[Case]:
    """Every case, in the order the table prints them; `quick` shrinks the shapes."""
    gemm = QUICK_GEMM_SHAPES if quick else GEMM_SHAPES
    conv = QUICK_CONV_SHAPES if quick else CONV_SHAPES
    linear = QUICK_LINEAR_SHAPES if quick else LINEAR_SHAPES
    cases = [_gemm_case(*s) for s in gemm]
    cases += [_conv_case(*s, backward=False) for s in conv]
    cases += [_conv_case(*s, backward=True) for s in conv]
    cases += [_linear_case(*s, backward=False) for s in linear]
    cases += [_linear_case(*s, backward=True) for s in linear]
    cases.append(_pool_case((2, 3, 8, 8) if quick else (128, 20, 20, 20)))
    cases += _model_cases(quick)
    return cases


def _model_cases(quick: bool) -> list[Case]:
    from fastseg import benchmarks_models

    return benchmarks_models.cases(quick)


# ---- the alternating timer behind `fastseg bench` -------------------------------------


def measure(case: Case, backends: list[str], repeats: int = 5, min_time: float = 0.05,
            settle: float = 0.2):
    """Median seconds per backend, runs interleaved across backends.

    Interleaving spreads the machine's noise (other processes, frequency
    changes) evenly over the backends, so their ratio is fair even when the
    absolute times wander. Before each sample the process idles `settle`
    seconds: OpenBLAS's and OpenMP's worker threads spin for a while after a
    call, and would otherwise steal the cores from the next backend timed.
    """
    runners = {}
    for b in backends:
        run = case.prepare(b)
        run()  # warm-up: first-touch page faults, lazy imports, caches
        runners[b] = run
    # Enough inner loops that one sample lasts at least min_time.
    inner = {}
    for b, run in runners.items():
        t0 = time.perf_counter()
        run()
        one = max(time.perf_counter() - t0, 1e-7)
        inner[b] = max(1, int(min_time / one))
    samples: dict[str, list[float]] = {b: [] for b in backends}
    for _ in range(repeats):
        for b, run in runners.items():
            if settle:
                time.sleep(settle)
            t0 = time.perf_counter()
            for _ in range(inner[b]):
                run()
            samples[b].append((time.perf_counter() - t0) / inner[b])
    return {b: statistics.median(s) for b, s in samples.items()}


def run_table(cases: list[Case], backends: list[str], threads: list[int], repeats: int = 5,
              progress: Callable[[str], None] | None = None,
              settle: float = 0.2) -> list[dict]:
    """One row per (case, thread count): median seconds per backend and GFLOP/s."""
    rows = []
    for n in threads:
        set_threads(n)
        for case in cases:
            if progress is not None:
                progress(f"{case.id} ({n} thread{'s' if n > 1 else ''})")
            times = measure(case, backends, repeats=repeats, settle=settle)
            rows.append({"group": case.group, "case": case.name, "threads": n,
                         "seconds": times,
                         "gflops": {b: case.flops / t / 1e9 for b, t in times.items()}})
    return rows


def format_table(rows: list[dict], backends: list[str]) -> str:
    """Median milliseconds per backend, then fastseg "c" as a ratio to numpy and torch."""
    refs = [b for b in ("numpy", "torch") if b in backends and b != "c"]
    head = ["group", "case", "thr"] + [f"{b} ms" for b in backends]
    head += [f"c vs {r}" for r in refs if "c" in backends]
    lines = [head]
    for row in rows:
        t = row["seconds"]
        line = [row["group"], row["case"], str(row["threads"])]
        line += [f"{t[b] * 1e3:.3f}" for b in backends]
        if "c" in backends:
            # > 1 means fastseg's C backend is that many times faster.
            line += [f"{t[r] / t['c']:.2f}x" for r in refs]
        lines.append(line)
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in lines)
