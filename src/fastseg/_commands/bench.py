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

