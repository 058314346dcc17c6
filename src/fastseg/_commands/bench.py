"""``fastseg bench``: the benchmark cases of :mod:`fastseg.benchmarks` as one table, timed
by :mod:`fastseg.benchmarks.timer`."""
from __future__ import annotations

import json
import sys

from fastseg._commands import CLIError


def _thread_list(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise CLIError(f"--threads: expected numbers like 1,2, got {text!r}") from None
    if not values or min(values) < 1:
        raise CLIError(f"--threads: expected numbers >= 1 like 1,2, got {text!r}")
    return values


def run(args) -> int:
    from fastseg import benchmarks
    from fastseg.benchmarks import timer

    threads = _thread_list(args.thread_list)
    if not 0 <= args.settle <= 10:
        raise CLIError(f"--settle: expected seconds in [0, 10], got {args.settle}")
    known = benchmarks.available_backends()
    backends = [b.strip() for b in args.backends.split(",")] if args.backends else known
    missing = [b for b in backends if b not in known]
    if missing:
        raise CLIError(f"--backends: {', '.join(missing)} not available here "
                       f"(available: {', '.join(known)})")
    cases = benchmarks.all_cases(quick=args.quick)
    if args.group:
        groups = {g.strip() for g in args.group.split(",")}
        unknown = groups - {c.group for c in cases}
        if unknown:
            names = sorted({c.group for c in cases})
            raise CLIError(f"--group: unknown {', '.join(sorted(unknown))} "
                           f"(groups: {', '.join(names)})")
        cases = [c for c in cases if c.group in groups]
    print(f"backends: {', '.join(backends)}; threads: {args.thread_list}; "
          f"{args.repeats} alternating rounds, medians", file=sys.stderr)

    def progress(what: str) -> None:
        print(f"  measuring {what}", file=sys.stderr)

    if not any(c.runs_on(b) for c in cases for b in backends):
        raise CLIError(f"--backends: {', '.join(backends)} run none of the chosen cases "
                       f"({', '.join(benchmarks.ENGINES)} run only the segment group)")
    rows = timer.run_table(cases, backends, threads, repeats=args.repeats, progress=progress,
                           settle=args.settle)
    print(timer.format_table(rows, backends))
    if args.json:
        from fastseg import info
        from fastseg._atomic import atomic_write_text

        payload = {"machine": info.collect(), "rows": rows}
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="time every backend (and PyTorch) on the paper's shapes",
        description="Median time per backend on the shapes of the paper's networks (GEMM, "
        "conv2d forward/backward, linear, max pooling, a training step, a dense "
        "segmentation), with the ratios of fastseg's C backend to NumPy and PyTorch. Where "
        "the onnx extra is installed (pip install \"fastseg[onnx]\"), the dense "
        "segmentation also runs fastseg's ONNX export of the same network on ONNX Runtime "
        "and OpenVINO (float32, the row's thread count). The "
        "backends run alternately in one process so machine noise hits all of them alike.")
    p.add_argument("--quick", action="store_true", help="small shapes: a smoke run in seconds")
    # Its own dest: the common --threads (one int, applied globally) means something else.
    p.add_argument("--threads", dest="thread_list", default="1,2",
                   help="thread counts to run, e.g. 1,2 (default)")
    p.add_argument("--backends", help="comma-separated subset of c,numpy,cuda,torch,"
                   "onnxruntime,openvino (default: all available here)")
    p.add_argument("--group", help="comma-separated groups, e.g. gemm,train-step")
    p.add_argument("--repeats", type=int, default=5, help="alternating rounds (default 5)")
    p.add_argument("--settle", type=float, default=0.2,
                   help="seconds idle before each sample, so other libraries' spinning worker "
                   "threads go to sleep (default 0.2)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.set_defaults(func=run)
