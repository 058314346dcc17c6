"""The memory estimates of issue 24 against the measured peak, one case per fresh process.

Each case runs in its own Python process (``python bench/memory_estimates.py --case
NAME``): it builds the network and the input, warms the kernels up on something small
(the libraries, the OpenMP threads), then records the resident set (``VmRSS``), resets
the high-water mark (``echo 5 > /proc/self/clear_refs``), runs the work once and reads
``VmHWM``: the measured peak is ``VmHWM - VmRSS before``, what the work added, which is
what the estimates estimate (what the process held before is counted apart: it is in
the resident set a set limit is compared with, and already out of ``MemAvailable``).

The estimate is the one the work's own check computed before starting: the checks'
estimating functions are wrapped to record what they return and the resident set at
that moment, under a limit too large to refuse anything. A check compares what the
process holds then plus the estimate with the limit, so the peak it predicts is
``held + estimate``, ``held`` counted from the same starting point as the measurement
(what the call made before its check: the network's dense plan, a scan's conformed
copy); the largest over the checks of a call (a scan is checked as a whole, then its
segmentation again).

    python bench/memory_estimates.py            # every case, a Markdown table
    python bench/memory_estimates.py --case photo-584x565

Linux only (``/proc/self/clear_refs``). docs/reliability.md holds a table it printed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("FASTSEG_TUNE", "0")  # the constants: no tuning inside a measurement

CASES = {
    "photo-192x192": "lai2d on a 192x192 photo (1 channel)",
    "photo-584x565": "lai2d on a 584x565 photo (DRIVE's size)",
    "photo-2048x2048": "lai2d on a 2048x2048 photo",
    "photo-1168x1130-scale0.5": "lai2d on a 1168x1130 photo resampled by 0.5 (and back)",
    "volume-2d-48x96x96": "lai2d plane by plane, 48x96x96 volume",
    "volume-stacked2d-48x96x96": "lai_stacked2d, 48x96x96 volume",
    "volume-3d-64x64x64": "lai3d, 64x64x64 volume",
    "volume-triplanar-40x40x40": "lai_triplanar, 40x40x40 volume",
    "scan-3d-affine-64x64x64": "lai3d on a scan with an affine (1.2 mm voxels, conformed to 1 mm)",
    "train-lai2d-b128-adam": "lai2d training, batches of 128 24x24 patches, Adam",
    "train-lai3d-b64-sgd": "lai3d training, batches of 64 24^3 patches, SGD momentum 0.9",
}


def _status(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _record_estimates():
    """Wrap the estimating functions the checks call; returns the list they fill."""
    from fastseg import _memory, train
    from fastseg._inference import dispatch, volume

    seen: list = []
    # A limit no case reaches: every check runs, none refuses or picks a smaller tile.
    _memory.set_limit(2**50, "bench")

    def wrap(module, name):
        original = getattr(module, name)

        def recorded(need_of, *args, **kwargs):
            held = _status("VmRSS")

            def counting(t, m):
                n = need_of(t, m)
                seen.append((held, n))
                return n
            return original(counting, *args, **kwargs)
        setattr(module, name, recorded)

    wrap(dispatch, "tile_within")
    wrap(volume, "tile_within")
    step = train.step_bytes

    def step_bytes(*args, **kwargs):
        n = step(*args, **kwargs)
        seen.append((_status("VmRSS"), n))
        return n
    train.step_bytes = step_bytes
    return seen


def _warm_up():
    """Load the kernels' libraries and start their threads on a tiny convolution."""
    import numpy as np

    from fastseg import ops

    x = np.ones((1, 1, 8, 8), np.float32)
    ops.conv2d(x, np.ones((2, 1, 3, 3), np.float32), None, 1, 0)


def _case(name: str):
    """(work, description): `work()` runs the case once."""
    import numpy as np

    import fastseg
    from fastseg import models, nn, optim, train
    from fastseg.data import make_cutter

    rng = np.random.default_rng(0)
    fastseg.seed(0)
    if name.startswith("photo-"):
        h, w = map(int, name.split("-")[1].split("x"))
        scale = float(name.split("scale")[1]) if "scale" in name else None
        net = models.lai2d().eval()
        image = rng.random((1, h, w), dtype=np.float32)
        return lambda: fastseg.segment(net, image, scale=scale)
    if name.startswith("volume-"):
        _, kind, size = name.split("-")
        shape = tuple(map(int, size.split("x")))
        builder = {"2d": models.lai2d, "stacked2d": models.lai_stacked2d,
                   "3d": models.lai3d, "triplanar": models.lai_triplanar}[kind]
        net = builder().eval()
        vol = rng.random(shape, dtype=np.float32)
        cutter = make_cutter(kind, 24)
        return lambda: fastseg.segment(net, vol, cutter=cutter)
    if name.startswith("scan-"):
        shape = tuple(map(int, name.split("-")[-1].split("x")))
        net = models.lai3d().eval()
        vol = rng.random(shape, dtype=np.float32)
        affine = np.diag([1.2, 1.2, 1.2, 1.0])
        cutter = make_cutter("3d", 24)
        return lambda: fastseg.segment(net, vol, cutter=cutter, affine=affine)
    if name == "train-lai2d-b128-adam":
        net = models.lai2d()
        opt = optim.Adam(net.parameters(), lr=1e-4)
        batches = [(rng.random((128, 1, 24, 24), dtype=np.float32),
                    rng.integers(0, 2, 128)) for _ in range(4)]
        return lambda: train.fit(net, batches, nn.CrossEntropyLoss(), opt, progress=False)
    if name == "train-lai3d-b64-sgd":
        net = models.lai3d()
        opt = optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
        batches = [(rng.random((64, 1, 24, 24, 24), dtype=np.float32),
                    rng.integers(0, 2, 64)) for _ in range(3)]
        return lambda: train.fit(net, batches, nn.CrossEntropyLoss(), opt, progress=False)
    raise SystemExit(f"unknown case {name!r}; one of {sorted(CASES)}")


def run_case(name: str) -> dict:
    import gc

    seen = _record_estimates()
    work = _case(name)
    _warm_up()
    gc.collect()
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # the high-water mark back to the resident set now
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    measured = _status("VmHWM") - before
    if not seen:
        return {"case": name, "held": None, "estimate": None, "predicted": None,
                "measured": measured, "seconds": seconds, "ratio": None}
    held, estimate = max(seen, key=lambda pair: pair[0] - before + pair[1])
    predicted = held - before + estimate
    return {"case": name, "held": held - before, "estimate": estimate, "predicted": predicted,
            "measured": measured, "seconds": seconds, "ratio": predicted / measured}


def _mib(n) -> str:
    return "-" if n is None else f"{n / 2**20:.0f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", help="run one case here and print its JSON")
    parser.add_argument("--only", help="comma-separated cases to run (default: all)")
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case)))
        return 0
    names = args.only.split(",") if args.only else list(CASES)
    print(f"threads: {os.environ.get('OMP_NUM_THREADS', 'default')}; peak = VmHWM - VmRSS "
          "before, each case in a fresh process\n")
    print("| case | held at the check (MiB) | estimate (MiB) | predicted peak (MiB) | "
          "measured peak (MiB) | predicted / measured | time (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        out = subprocess.run([sys.executable, __file__, "--case", name], capture_output=True,
                             text=True, check=False)
        if out.returncode != 0:
            print(f"| {name} | failed: {out.stderr.strip().splitlines()[-1:]} | | | | | |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        print(f"| {CASES[name]} | {_mib(r['held'])} | {_mib(r['estimate'])} | "
              f"{_mib(r['predicted'])} | {_mib(r['measured'])} | {ratio} | "
              f"{r['seconds']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
