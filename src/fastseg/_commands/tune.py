"""``fastseg tune``: time the kernels' candidate settings on this CPU and cache the best
(:mod:`fastseg.tuning.tuner`); ``--show`` prints what is cached, ``--reset`` forgets it."""
from __future__ import annotations

import json
import sys

from fastseg._commands import CLIError


def _show(as_json: bool) -> int:
    from fastseg import info

    t = info.collect()["tuning"]
    if as_json:
        print(json.dumps(t, indent=2))
        return 0
    from fastseg.tuning import files

    print(f"tuning file: {t['file']}")
    print(f"state: {t['state']}" + (f" ({t['why']})" if t.get("why") else ""))
    if t["state"] == "tuned":
        print(f"tuned: {t['when']}")
        for name, value in sorted(t["choices"].items()):
            print(f"  {name} = {value}")
        if not t["choices"]:
            print("  (every constant kept)")
        for name, why in t["kept_because"].items():
            print(f"  {name}: constant kept: {why}")
        key = files.key_for(info.collect()["isa"])
        _, meta, _ = files.read(files.path_for(key), key)
        rows = meta.get("rows") or []
        if rows:
            from fastseg.tuning import tuner

            print(tuner.format_table({"tunables": _regroup(rows), "notes": []}))
    return 0


def _regroup(rows: list[dict]) -> list[dict]:
    """Rows as stored in the file, grouped back per tunable for the table."""
    out: dict[str, dict] = {}
    for row in rows:
        rep = out.setdefault(row["tunable"], {"name": row["tunable"], "rows": [],
                                               "candidates": []})
        rep["rows"].append(row)
        rep["candidates"].append(row["candidate"])
    return list(out.values())


def _reset() -> int:
    from fastseg import backends
    from fastseg.tuning import cache, files

    removed = []
    folder = files.cache_dir()
    for path in sorted(folder.glob("tuning-*.json")) if folder.is_dir() else []:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    cache.reset()
    with files.holding_first_use():
        backends.runtime().apply_tuned(warn=False)
    print(f"removed {len(removed)} tuning file(s) from {folder}; the constants are in use "
          "(the next first use, or fastseg tune, times them again)")
    return 0


def run(args) -> int:
    from fastseg import backends
    from fastseg.tuning import files, tuner

    if not 0.5 <= args.budget <= 600:
        raise CLIError(f"--budget: expected seconds in [0.5, 600], got {args.budget}")
    if args.show:
        return _show(args.json)
    if args.reset:
        return _reset()
    if not files.enabled():
        raise CLIError("tuning is off (FASTSEG_TUNE=0): unset it to tune")
    with files.holding_first_use():
        runtime = backends.runtime()
        if args.isa:
            try:
                runtime.select_isa(args.isa)
            except ValueError as exc:
                raise CLIError(str(exc)) from None
    print(f"timing kernel settings on this CPU ({runtime.isa_name()}, budget "
          f"{args.budget:g} s)", file=sys.stderr)

    def progress(what: str) -> None:
        if not args.json:
            print(f"  {what}", file=sys.stderr)

    report = tuner.run(args.budget, progress)
    if args.json:
        rows = [r for t in report["tunables"] for r in t["rows"]]
        kept = {t["name"]: t["why"] for t in report["tunables"] if t.get("why")}
        print(json.dumps({k: v for k, v in report.items() if k != "tunables"} |
                         {"rows": rows, "kept_because": kept}, indent=2, default=str))
        return 0
    print(tuner.format_table(report))
    load = report["load"]
    print(f"load average {load[0]:.2f} -> {load[1]:.2f} on {report['cpus']} CPUs; "
          f"{report['seconds']:.1f} s" if None not in load else f"{report['seconds']:.1f} s")
    chosen = report["choices"]
    if report["saved"]:
        print(f"saved to {report['saved']}: " + (
            ", ".join(f"{k} = {v}" for k, v in sorted(chosen.items())) if chosen else
            "every constant kept"))
    else:
        print(f"not saved ({report['save_error']}): the constants stay in use; set "
              "FASTSEG_CACHE_DIR to a writable folder to keep a tuning")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "tune", help="time kernel settings on this CPU and cache the best",
        description="Time candidate settings of the compiled kernels (GEMM cache blocks, "
        "how two threads split a GEMM, and dense inference's FFT choices where available) "
        "on the paper's shapes, keep those that beat the constants by more than the noise, "
        "and cache them for this CPU, instruction set and fastseg version (in "
        "$FASTSEG_CACHE_DIR, else ~/.cache/fastseg). The first use of the kernels on a "
        "machine does this once by itself; FASTSEG_TUNE=0 turns tuning off. A busy "
        "machine or a read-only cache folder leaves the constants in use, saying why.")
    p.add_argument("--budget", type=float, default=60.0,
                   help="seconds of timing, about (default 60: every tunable; the first use "
                   "takes 4, FASTSEG_TUNE_BUDGET)")
    p.add_argument("--isa", help="tune the kernels of this instruction set (avx512, avx2, "
                   "generic; default: the one in use)")
    p.add_argument("--show", action="store_true", help="print the cached choices and exit")
    p.add_argument("--reset", action="store_true",
                   help="delete the cached choices (every instruction set) and exit")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)
