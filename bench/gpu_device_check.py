#!/usr/bin/env python
"""One-shot check of the "cuda" backend on a real NVIDIA GPU (H100/H200).

Run it from the repository root on the GPU machine (numba-cuda, CuPy and
PyTorch preinstalled, no internet)::

    python bench/gpu_device_check.py            # results in $OUT/gpu_results.json

It does, in order, each part in its own subprocess under a timeout (a hang
or crash in one part cannot take the others with it), and rewrites the JSON
after every part so a cut-off run still leaves what it got:

1. install fastseg: a carried wheel (``$FASTSEG_WHEEL`` or ``dist/*.whl``) if
   pip accepts it, else ``pip install --no-build-isolation --no-deps .``, else
   fall back to ``PYTHONPATH=src`` (the cuda backend needs no compiled code);
2. ``pytest tests/test_cuda_backend.py`` on the GPU;
3. SGEMM GFLOP/s at 1024^3 and 4096^3: ours (each tile configuration) beside
   CuPy's cuBLAS in FP32 (``CUPY_TF32=0``) and torch.matmul with TF32 off;
4. the lai2d 20->50 5x5 conv layer at batch 128, forward and backward: ours
   beside PyTorch CUDA (cuDNN) with TF32 off;
5. ``pytest tests/test_ops_backends.py -k cuda`` (the large shapes) with
   whatever time is left.

The whole script stops before :data:`TOTAL_BUDGET_S` seconds.
"""
from __future__ import annotations

import glob
import json
import os
import platform
import subprocess
import sys
import time

TOTAL_BUDGET_S = 450  # the device call is given 8 minutes; keep a margin
# FASTSEG_CHECK_SMOKE=1: tiny sizes, benchmarks only (to try this script on the
# CUDA simulator without a GPU); the numbers mean nothing then.
SMOKE = os.environ.get("FASTSEG_CHECK_SMOKE") == "1"
GEMM_SIZES = (32, 48) if SMOKE else (1024, 4096)
# (batch, channels in, size, channels out, kernel): lai2d's second conv layer
CONV_SHAPE = (2, 2, 8, 3, 5) if SMOKE else (128, 20, 20, 50, 5)
START = time.monotonic()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.environ.get("OUT") or os.path.join(ROOT, "gpu_out")
RESULTS_PATH = os.path.join(OUT, "gpu_results.json")
results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "parts": {}}
env = dict(os.environ, CUPY_TF32="0", NVIDIA_TF32_OVERRIDE="0", PYTHONUNBUFFERED="1")
if not SMOKE:
    env.pop("NUMBA_ENABLE_CUDASIM", None)  # the real GPU, never the simulator


def log(msg: str) -> None:
    print(f"[{time.monotonic() - START:6.1f}s] {msg}", flush=True)


def save() -> None:
    os.makedirs(OUT, exist_ok=True)
    results["elapsed_s"] = round(time.monotonic() - START, 1)
    with open(RESULTS_PATH, "w") as fh:
        json.dump(results, fh, indent=2, default=str)


def time_left(reserve: float = 5.0) -> float:
    return TOTAL_BUDGET_S - (time.monotonic() - START) - reserve


def run(name: str, cmd: list[str], cap_s: float) -> dict:
    """Run cmd under min(cap_s, time left); record rc, duration and output tail."""
    limit = min(cap_s, time_left())
    if limit < 10:
        log(f"{name}: skipped, no time left")
        entry = {"skipped": "no time left"}
        results["parts"][name] = entry
        save()
        return entry
    log(f"{name}: {' '.join(cmd)} (timeout {limit:.0f}s)")
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=limit)
        rc, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = "timeout"
        out = exc.stdout or ""
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
    except OSError as exc:  # e.g. nvidia-smi not installed
        rc, out = "not run", repr(exc)
    entry = {"rc": rc, "seconds": round(time.monotonic() - t0, 1), "tail": out[-4000:]}
    results["parts"][name] = entry
    log(f"{name}: rc={rc} in {entry['seconds']}s")
    print(out[-2500:], flush=True)
    save()
    return entry


def self_part(part: str, cap_s: float) -> dict:
    """Run one benchmark part of this script in a subprocess; it prints one JSON line."""
    entry = run(part, [sys.executable, os.path.abspath(__file__), "--part", part], cap_s)
    for line in reversed(entry.get("tail", "").splitlines()):
        if line.startswith("RESULT "):
            entry["result"] = json.loads(line[len("RESULT "):])
            break
    save()
    return entry


# ---- step 1: install -----------------------------------------------------------------------


def install() -> None:
    wheels = [os.environ["FASTSEG_WHEEL"]] if os.environ.get("FASTSEG_WHEEL") else []
    wheels += sorted(glob.glob(os.path.join(ROOT, "dist", "fastseg-*.whl")))
    for wheel in wheels:
        entry = run("install_wheel", [sys.executable, "-m", "pip", "install", "--no-deps",
                                      "--force-reinstall", "--no-index", wheel], 60)
        if entry.get("rc") == 0:
            results["install"] = f"wheel {os.path.basename(wheel)}"
            return
    entry = run("install_build", [sys.executable, "-m", "pip", "install",
                                  "--no-build-isolation", "--no-deps", "--no-index", "."], 150)
    if entry.get("rc") == 0:
        results["install"] = "built from the working tree"
        return
    # The cuda backend is pure Python + Numba: the source tree is enough for it.
    src = os.path.join(ROOT, "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    results["install"] = "PYTHONPATH=src (no compiled C backend)"
    log("install failed: falling back to PYTHONPATH=src")


def environment() -> None:
    code = (
        "import json, numpy, numba; from numba import cuda\n"
        "d = cuda.get_current_device()\n"
        "info = {'gpu': d.name.decode() if isinstance(d.name, bytes) else d.name,\n"
        "        'compute_capability': d.compute_capability,\n"
        "        'sms': d.MULTIPROCESSOR_COUNT, 'numba': numba.__version__,\n"
        "        'numpy': numpy.__version__}\n"
        "for mod in ('numba_cuda', 'cupy', 'torch', 'fastseg', 'pytest', 'hypothesis'):\n"
        "    try:\n"
        "        m = __import__(mod); info[mod] = getattr(m, '__version__', 'yes')\n"
        "    except Exception as exc:\n"
        "        info[mod] = f'missing: {exc}'\n"
        "import fastseg; info['backends'] = fastseg.available_backends()\n"
        "print('RESULT ' + json.dumps(info, default=str))\n"
    )
    entry = run("environment", [sys.executable, "-c", code], 60)
    for line in entry.get("tail", "").splitlines():
        if line.startswith("RESULT "):
            results["environment"] = json.loads(line[7:])
    results["python"] = platform.python_version()
    save()


# ---- benchmark parts (run as subprocesses) ---------------------------------------------------


def _timed(fn, sync, reps: int, min_s: float = 0.2) -> float:
    """Median seconds of fn() over `reps` samples of at least min_s / reps of work each,
    after a warm-up; fastseg's one benchmark timer, with `sync` before each clock stop."""
    from fastseg.benchmarks.timer import alternate

    return alternate({"run": fn}, repeats=reps, min_time=0 if SMOKE else min_s / reps,
                     settle=0, sync=sync)["run"]


def _gemm_row(size: int) -> dict:
    """GFLOP/s of an size^3 SGEMM: ours (every tile configuration), CuPy, torch."""
    import numpy as np
    from numba import cuda

    from fastseg.backends._cuda import gemm as g

    rng = np.random.default_rng(size)
    a_h = rng.standard_normal((size, size)).astype(np.float32)
    b_h = rng.standard_normal((size, size)).astype(np.float32)
    a, b = cuda.to_device(a_h), cuda.to_device(b_h)
    flop = 2.0 * size**3
    reps = 3 if size >= 4096 or SMOKE else 10
    row: dict = {}
    cases = [("auto", None, False, False), ("64x64_4x4", g.MEDIUM, False, False),
             ("128x128_8x8", g.LARGE, False, False)]
    if size == GEMM_SIZES[-1]:  # the transposed operands of the backward passes
        cases += [("auto_TN", None, True, False), ("auto_NT", None, False, True),
                  ("auto_TT", None, True, True)]
    for label, tiles, ta, tb in cases:
        def call(tiles=tiles, ta=ta, tb=tb):
            return g.gemm(a, b, ta, tb, tiles=tiles)
        try:
            t0 = time.perf_counter()
            call()
            cuda.synchronize()
            row[f"fastseg_{label}_first_call_s"] = round(time.perf_counter() - t0, 2)
            row[f"fastseg_{label}_gflops"] = round(flop / _timed(call, cuda.synchronize, reps)
                                                   / 1e9, 1)
        except Exception as exc:  # record it and go on with the others
            row[f"fastseg_{label}_error"] = repr(exc)[:300]
        print(size, label, row, flush=True)
    try:
        import cupy as cp

        ca, cb = cp.asarray(a_h), cp.asarray(b_h)
        sec = _timed(lambda: ca @ cb, cp.cuda.Device().synchronize, reps)
        row["cupy_cublas_fp32_gflops"] = round(flop / sec / 1e9, 1)
        ours = g.gemm(a, b).copy_to_host()
        theirs = cp.asnumpy(ca @ cb)
        row["max_rel_diff_vs_cupy"] = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
    except Exception as exc:
        row["cupy_error"] = repr(exc)[:300]
    try:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        ta_, tb_ = torch.from_numpy(a_h).cuda(), torch.from_numpy(b_h).cuda()
        sec = _timed(lambda: ta_ @ tb_, torch.cuda.synchronize, reps)
        row["torch_fp32_gflops"] = round(flop / sec / 1e9, 1)
    except Exception as exc:
        row["torch_error"] = repr(exc)[:300]
    ref = row.get("cupy_cublas_fp32_gflops") or row.get("torch_fp32_gflops")
    ours_nn = [v for k, v in row.items()
               if k.startswith("fastseg_") and k.endswith("gflops") and "_T" not in k
               and "_NT" not in k]
    if ref and ours_nn:
        row["best_fastseg_fraction_of_cublas"] = round(max(ours_nn) / ref, 3)
    return row


def part_gemm() -> dict:
    out = {}
    for size in GEMM_SIZES:
        out[f"{size}^3"] = _gemm_row(size)
        print(size, out[f"{size}^3"], flush=True)
    return out


def part_conv() -> dict:
    import numpy as np
    from numba import cuda

    from fastseg import ops

    rng = np.random.default_rng(0)
    n, c, h, f, k = CONV_SHAPE
    oh = h - k + 1
    x_h = rng.standard_normal((n, c, h, h)).astype(np.float32)
    w_h = (rng.standard_normal((f, c, k, k)) * 0.05).astype(np.float32)
    b_h = rng.standard_normal(f).astype(np.float32)
    x, w, b = cuda.to_device(x_h), cuda.to_device(w_h), cuda.to_device(b_h)
    flop_fwd = 2.0 * n * f * oh * oh * c * k * k
    out: dict = {"shape": f"x ({n},{c},{h},{h}), w ({f},{c},{k},{k}), stride 1, no padding",
                 "forward_gflop": flop_fwd / 1e9}
    y = ops.conv2d(x, w, b, backend="cuda")
    dy_h = rng.standard_normal(y.shape).astype(np.float32)
    dy = cuda.to_device(dy_h)
    ops.conv2d_backward(x, w, dy, backend="cuda")
    cuda.synchronize()
    reps = 1 if SMOKE else 10
    fwd = _timed(lambda: ops.conv2d(x, w, b, backend="cuda"), cuda.synchronize, reps)
    bwd = _timed(lambda: ops.conv2d_backward(x, w, dy, backend="cuda"), cuda.synchronize, reps)
    out.update(fastseg_forward_ms=round(fwd * 1e3, 3), fastseg_backward_ms=round(bwd * 1e3, 3),
               fastseg_total_ms=round((fwd + bwd) * 1e3, 3),
               fastseg_forward_gflops=round(flop_fwd / fwd / 1e9, 1))
    print(out, flush=True)
    try:
        import torch
        import torch.nn.functional as F

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        tx = torch.from_numpy(x_h).cuda().requires_grad_(True)
        tw = torch.from_numpy(w_h).cuda().requires_grad_(True)
        tb = torch.from_numpy(b_h).cuda().requires_grad_(True)
        tdy = torch.from_numpy(dy_h).cuda()
        sync = torch.cuda.synchronize
        with torch.no_grad():
            tfwd = _timed(lambda: F.conv2d(tx, tw, tb), sync, 10)
        ty = F.conv2d(tx, tw, tb)
        tbwd = _timed(lambda: torch.autograd.grad(ty, (tx, tw, tb), tdy, retain_graph=True),
                      sync, 10)
        out.update(torch_forward_ms=round(tfwd * 1e3, 3), torch_backward_ms=round(tbwd * 1e3, 3),
                   torch_total_ms=round((tfwd + tbwd) * 1e3, 3))
        ours_y = ops.conv2d(x, w, b, backend="cuda").copy_to_host()
        theirs = ty.detach().cpu().numpy()
        out["max_abs_diff_forward_vs_torch"] = float(np.abs(ours_y - theirs).max())
        grads = ops.conv2d_backward(x, w, dy, backend="cuda")
        tgrads = torch.autograd.grad(ty, (tx, tw, tb), tdy)
        for name, ours, theirs in zip(("dx", "dw", "db"), grads, tgrads, strict=True):
            theirs = theirs.cpu().numpy()
            out[f"max_rel_diff_{name}_vs_torch"] = float(
                np.abs(ours.copy_to_host() - theirs).max() / np.abs(theirs).max())
        out["fastseg_total_over_torch_total"] = round(out["fastseg_total_ms"]
                                                      / out["torch_total_ms"], 2)
    except Exception as exc:
        out["torch_error"] = repr(exc)[:300]
    return out


PARTS = {"gemm": part_gemm, "conv": part_conv}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--part":
        print("RESULT " + json.dumps(PARTS[sys.argv[2]](), default=str), flush=True)
        return
    log(f"fastseg GPU device check; results go to {RESULTS_PATH}")
    save()
    if SMOKE:
        self_part("gemm", 300)
        self_part("conv", 300)
        return
    run("nvidia_smi", ["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                       "--format=csv"], 20)
    install()
    environment()
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"]
    run("test_cuda_backend", pytest + ["tests/test_cuda_backend.py"], 100)
    self_part("gemm", 90)
    self_part("conv", 60)
    run("test_ops_backends_cuda", pytest + ["tests/test_ops_backends.py", "-k", "cuda",
                                      "--maxfail=10"],
        180)
    log(f"done; wrote {RESULTS_PATH}")
    save()


if __name__ == "__main__":
    main()
