"""Dense lai2d by fastseg's FFT path against fastseg's direct path, PyTorch's direct fully
convolutional form, ONNX Runtime and OpenVINO (fastseg's dense ONNX export), on the
``segment`` benchmark's network and image at any size (issue 23's targets: 584x565 and
192x192).

    python bench/fft_targets.py --size 584x565,192x192 --threads 2,1 --repeats 3
    python bench/fft_targets.py --size 584x565 --threads 2 --repeats 3 --warmup 1 \\
        --sides c,direct,torch,onnxruntime,openvino --json peers.json

The cases are :mod:`fastseg.benchmarks.networks`'s ``segment`` cases (``c``: ``method=
"auto"``, the FFT path; ``direct``: ``method="direct"``; PyTorch runs the direct form, the
engines the export), all in this process, their thread counts pinned
(:func:`fastseg.benchmarks.timer.set_threads`). After `--warmup` calls of each (the FFT
path makes its kernel spectra then, the engines compile), the runners go round robin,
`--repeats` rounds, an idle gap before each sample, so all see the same load. Each sample
gives the wall clock and the process's CPU time (every thread's; on a machine shared with
other jobs the wall clock counts the waiting, CPU time the work plus any spinning of idle
team threads). Prints medians of both and each side's time over fastseg's (FFT), the load
average before and after, and the largest difference of each side's map from fastseg's.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("FASTSEG_TUNE", "0")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            info = {}
            for line in fh:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value)
        return (f"{info['model name'].strip()} (family {info['cpu family'].strip()}, model "
                f"{info['model'].strip()})")
    except (OSError, KeyError):
        return platform.processor() or "unknown CPU"


def _fastseg_runners(h: int, w: int) -> dict:
    """fastseg's FFT (``c``) and direct sides on ONE model object, as the ``segment``
    case builds it: fastseg keeps the plan (and the FFT path's kernel spectra) of the
    model segmented last, so two model objects alternating would make the FFT side
    remake its spectra every call (the first peer table of bench/README.md's Zen 4
    section paid that: ~1.5 s of CPU at 584x565, ~1.5 s at 192x192)."""
    import numpy as np

    import fastseg
    from fastseg import models
    from fastseg.benchmarks.networks import _on, rand
    from fastseg.segment import segment

    fastseg.seed(0)
    model = models.lai2d(patch_size=24)
    model.eval()
    image = rand(np.random.default_rng(0), 1, h, w)
    return {method_side: _on("c", lambda m=method: segment(model, image, progress=False,
                                                           method=m))
            for method_side, method in (("c", "auto"), ("direct", "direct"))}


def rounds(runners: dict, repeats: int, warmup: int, settle: float = 0.5) -> dict:
    """{side: (median wall s, median CPU s, last output)}, the runners round robin."""
    out = {}
    for _ in range(warmup):
        for key, run in runners.items():
            out[key] = run()
    wall = {key: [] for key in runners}
    cpu = {key: [] for key in runners}
    for _ in range(repeats):
        for key, run in runners.items():
            time.sleep(settle)
            w0, c0 = time.perf_counter(), time.process_time()
            out[key] = run()
            cpu[key].append(time.process_time() - c0)
            wall[key].append(time.perf_counter() - w0)
    return {key: (statistics.median(wall[key]), statistics.median(cpu[key]), out[key])
            for key in runners}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="584x565,192x192")
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--sides", default="c,direct,torch,onnxruntime,openvino")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    import numpy as np

    from fastseg.benchmarks import engines, networks, timer

    sides = [s for s in args.sides.split(",")
             if s in ("c", "direct", "torch") or s in engines.available()]
    if sides[0] != "c":
        sides = ["c"] + [s for s in sides if s != "c"]
    print(f"# {_cpu_name()}, {os.cpu_count()} CPUs; FASTSEG_ISA={os.environ.get('FASTSEG_ISA', '')}"
          f" FASTSEG_TUNE={os.environ.get('FASTSEG_TUNE')}; medians of {args.repeats} rounds "
          f"after {args.warmup} warm-up; wall s (CPU s)", flush=True)
    print(f"| size | threads | {' | '.join(sides)} | "
          f"{' | '.join(f'{s} / c' for s in sides[1:])} | max diff | load |")
    print("| --- | --- |" + " --- |" * (2 * len(sides)) + " --- |")
    results = []
    for size in args.size.split(","):
        h, w = (int(v) for v in size.split("x"))
        fft = networks._segment_case((h, w), 24, "auto")
        for t in (int(v) for v in args.threads.split(",")):
            timer.set_threads(t)  # before prepare: the engines read it then
            load0 = os.getloadavg()
            own = _fastseg_runners(h, w)
            runners = {s: own[s] if s in own else fft.prepare(s) for s in sides}
            med = rounds(runners, args.repeats, args.warmup)
            load1 = os.getloadavg()
            ref = np.asarray(med["c"][2])
            diff = max(float(np.max(np.abs(np.asarray(med[s][2]) - ref))) for s in sides)
            c = med["c"][0]
            print(f"| {h}x{w} | {t} | "
                  + " | ".join(f"{med[s][0]:.3f} ({med[s][1]:.2f})" for s in sides) + " | "
                  + " | ".join(f"{med[s][0] / c:.1f}x" for s in sides[1:])
                  + f" | {diff:.1e} | {load0[0]:.1f}-{load1[0]:.1f} |", flush=True)
            results.append({"size": [h, w], "threads": t, "load": [load0, load1],
                            "max_diff": diff, "cpu": _cpu_name(),
                            "wall": {s: med[s][0] for s in sides},
                            "cpu_s": {s: med[s][1] for s in sides}})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
