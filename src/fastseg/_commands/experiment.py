"""``fastseg experiment NAME``: run one of the report's training experiments (or all)."""
from __future__ import annotations

from pathlib import Path

from fastseg._commands import CLIError


def run(args) -> int:
    from fastseg import experiments

    names = experiments.NAMES if args.name == "all" else (args.name,)
    if args.name != "all" and args.name not in experiments.NAMES:
        raise CLIError(f"unknown experiment {args.name!r}; choose one of "
                       f"{', '.join(experiments.NAMES)} or all")
    out = Path(args.out)
    seed = 0 if args.seed is None else args.seed
    for name in names:
        print(f"experiment {name}{' (quick)' if args.quick else ''}")
        result, paths = experiments.run(name, out, quick=args.quick, seed=seed,
                                        say=lambda line: print(f"  {line}", flush=True))
        print(f"\n{result.title}\n")
        print(experiments.table(result))
        print(f"\n{result.seconds:.0f} s ({result.cpu_seconds:.0f} s of CPU); wrote "
              f"{paths['md']}, {paths['png'].name}, {paths['json'].name}\n")
    return 0
