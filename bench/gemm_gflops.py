"""GFLOP/s of fastseg's SGEMM next to numpy.matmul (OpenBLAS), 1 and 2 threads.

Run as: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gemm_gflops.py
(those two variables, when set, make OpenBLAS pick slower kernels).
The two libraries are timed alternately by fastseg's one benchmark timer
(:func:`fastseg.benchmarks.timer.alternate`), so drift in clock speed or noisy
neighbours hits both alike; each figure is the median of the repeats.
"""
import argparse
import time

import numpy as np

from fastseg._cy import _gemm
from fastseg.benchmarks import timer

# (M, K, N): square, then the convolution/linear shapes.
SHAPES = [(1024, 1024, 1024), (50, 500, 32768), (20, 25, 51200),
          (128, 12800, 1000), (1000, 12800, 128)]
# op(A) @ op(B) variants: plain, A^T*B and A*B^T (conv backward).
VARIANTS = [("A*B", False, False), ("A^T*B", True, False), ("A*B^T", False, True)]


def _operands(m, k, n, ta, tb, rng):
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    return a, b


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--min-seconds", type=float, default=0.05,
                    help="minimum duration of one timed batch")
    ap.add_argument("--settle", type=float, default=0.2,
                    help="seconds of idle before each timed batch")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: time.thread_time, the time this thread ran -- a fairer "
                         "single-thread figure on a machine shared with other work "
                         "(only meaningful with --threads 1)")
    args = ap.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    rng = np.random.default_rng(0)
    print(f"{'thr':>3} {'shape (M,K,N)':>20} {'op':>6} {'fastseg':>9} {'numpy':>9} {'ratio':>6}")
    for nt in args.threads:
        timer.set_threads(nt)  # fastseg's kernels and NumPy's BLAS alike
        for (m, k, n) in SHAPES:
            for name, ta, tb in VARIANTS:
                a, b = _operands(m, k, n, ta, tb, rng)
                opa = a.T if ta else a
                opb = b.T if tb else b
                runners = {"fastseg": lambda a=a, b=b, ta=ta, tb=tb: _gemm.sgemm(a, b, ta, tb),
                           "numpy": lambda opa=opa, opb=opb: np.matmul(opa, opb)}
                seconds = timer.alternate(runners, repeats=args.repeats,
                                          min_time=args.min_seconds, settle=args.settle,
                                          clock=clock)
                flops = 2.0 * m * n * k
                g = {key: flops / t / 1e9 for key, t in seconds.items()}
                print(f"{nt:>3} {str((m, k, n)):>20} {name:>6} {g['fastseg']:9.1f} "
                      f"{g['numpy']:9.1f} {g['fastseg'] / g['numpy']:6.2f}", flush=True)


if __name__ == "__main__":
    main()
