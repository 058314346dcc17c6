"""Dense lai2d by fastseg's FFT path against PyTorch's direct fully convolutional form,
ONNX Runtime and OpenVINO (fastseg's dense ONNX export), on the ``segment`` benchmark's
network and image at any size (issue 23's targets: 584x565 and 192x192).

    python bench/fft_targets.py --size 584x565,192x192 --threads 2,1 --repeats 3

The cases are :mod:`fastseg.benchmarks.networks`'s ``segment`` cases (``method="auto"``,
the FFT path; PyTorch runs the direct form, the engines the export), timed by
:func:`fastseg.benchmarks.timer.alternate`: the runners interleaved, an idle gap before
each sample, medians. Prints seconds and each side's time over fastseg's, with the load
average before and after (the machine may be shared).
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("FASTSEG_TUNE", "0")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="584x565,192x192")
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sides", default="c,torch,onnxruntime,openvino")
    args = ap.parse_args(argv)
    from fastseg.benchmarks import engines, networks, timer

    sides = [s for s in args.sides.split(",")
             if s in ("c", "torch") or s in engines.available()]
    print(f"| size | threads | {' | '.join(f'{s} s' for s in sides)} | "
          f"{' | '.join(f'{s} / c' for s in sides[1:])} | load |")
    print("| --- | --- |" + " --- |" * (2 * len(sides) - 1) + " --- |")
    for size in args.size.split(","):
        h, w = (int(v) for v in size.split("x"))
        case = networks._segment_case((h, w), 24, "auto")
        for t in (int(v) for v in args.threads.split(",")):
            timer.set_threads(t)  # before prepare: the engines read it then
            load0 = os.getloadavg()[0]
            runners = {s: case.prepare(s) for s in sides}
            med = timer.alternate(runners, repeats=args.repeats, min_time=0.0)
            load1 = os.getloadavg()[0]
            c = med["c"]
            print(f"| {h}x{w} | {t} | " + " | ".join(f"{med[s]:.3f}" for s in sides) + " | "
                  + " | ".join(f"{med[s] / c:.1f}x" for s in sides[1:])
                  + f" | {load0:.1f}-{load1:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
