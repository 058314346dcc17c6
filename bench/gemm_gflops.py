"""GFLOP/s of fastseg's SGEMM next to numpy.matmul (OpenBLAS), 1 and 2 threads.

Run as: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gemm_gflops.py
(those two variables, when set, make OpenBLAS pick slower kernels).

The shapes are lai2d's GEMMs in the transposes its layers use, and 1024^3
(fastseg.benchmarks.kernels.GEMM_SHAPES); --all-variants times every shape as
A*B, A^T*B and A*B^T instead. --isa avx512,avx2 times fastseg once per
instruction set, forced in turn (an ISA this CPU lacks is refused before
anything runs), so two micro-kernels can be compared in one run. Every side
is timed alternately by fastseg's one benchmark timer
(:func:`fastseg.benchmarks.timer.alternate`), so drift in clock speed or noisy
neighbours hits all alike; each figure is the median of the repeats.
"""
import argparse
import time

import numpy as np
from threadpoolctl import threadpool_info

from fastseg import info
from fastseg._cy import _gemm, _runtime
from fastseg.benchmarks import timer
from fastseg.benchmarks.kernels import GEMM_SHAPES

# op(A) @ op(B) variants for --all-variants: plain, A^T*B and A*B^T.
VARIANTS = [(False, False), (True, False), (False, True)]


def _operands(m, k, n, ta, tb, rng):
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    return a, b


def _cases(all_variants):
    if not all_variants:
        return [(m, k, n, ta, tb) for m, k, n, ta, tb, _ in GEMM_SHAPES]
    shapes = []
    for m, k, n, *_ in GEMM_SHAPES:
        if (m, k, n) not in shapes:
            shapes.append((m, k, n))
    return [(m, k, n, ta, tb) for m, k, n in shapes for ta, tb in VARIANTS]


def _fastseg(a, b, ta, tb, isa):
    def run():
        _runtime.select_isa(isa)  # cheap: one atomic store
        return _gemm.sgemm(a, b, ta, tb)

    return run


def _header(isas):
    blas = next((lib.get("architecture", "?") for lib in threadpool_info()
                 if lib.get("user_api") == "blas"), "?")
    blocks = "; ".join(f"{n}: MR x NR {b['mr']} x {b['nr']}, MC {b['mc']}, KC {b['kc']}, "
                       f"NC {b['nc']}" for n, b in ((n, _runtime.blocking(n)) for n in isas))
    return f"CPU {info.collect()['cpu']}; fastseg {blocks}; numpy's OpenBLAS core: {blas}"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--isa", default=_runtime.isa_name(),
                    help="comma-separated instruction sets to time fastseg with "
                         f"(this CPU runs: {','.join(_runtime.supported_isas())})")
    ap.add_argument("--all-variants", action="store_true",
                    help="every shape as A*B, A^T*B and A*B^T")
    ap.add_argument("--min-seconds", type=float, default=0.05,
                    help="minimum duration of one timed batch")
    ap.add_argument("--settle", type=float, default=0.2,
                    help="seconds of idle before each timed batch")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: time.thread_time, the time this thread ran -- a fairer "
                         "single-thread figure on a machine shared with other work "
                         "(only meaningful with --threads 1)")
    args = ap.parse_args()
    isas = [name.strip() for name in args.isa.split(",") if name.strip()]
    before = _runtime.isa_name()
    for name in isas:
        _runtime.select_isa(name)  # ValueError, saying why, for one this CPU lacks
    _runtime.select_isa(before)
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    print(_header(isas))
    sides = [f"fastseg-{n}" for n in isas] + ["numpy"]
    print(f"{'thr':>3} {'shape (M,K,N)':>20} {'op':>6} "
          + " ".join(f"{s:>15}" for s in sides) + "  "
          + " ".join(f"{s[8:] + '/np':>10}" for s in sides[:-1]))
    rng = np.random.default_rng(0)
    try:
        for nt in args.threads:
            timer.set_threads(nt)  # fastseg's kernels and NumPy's BLAS alike
            for m, k, n, ta, tb in _cases(args.all_variants):
                a, b = _operands(m, k, n, ta, tb, rng)
                opa, opb = (a.T if ta else a), (b.T if tb else b)
                runners = {f"fastseg-{i}": _fastseg(a, b, ta, tb, i) for i in isas}
                runners["numpy"] = lambda opa=opa, opb=opb: np.matmul(opa, opb)
                seconds = timer.alternate(runners, repeats=args.repeats,
                                          min_time=args.min_seconds, settle=args.settle,
                                          clock=clock)
                flops = 2.0 * m * n * k
                g = {key: flops / t / 1e9 for key, t in seconds.items()}
                op = ("A^T" if ta else "A") + "*" + ("B^T" if tb else "B")
                print(f"{nt:>3} {str((m, k, n)):>20} {op:>6} "
                      + " ".join(f"{g[s]:15.1f}" for s in sides) + "  "
                      + " ".join(f"{g[s] / g['numpy']:10.2f}" for s in sides[:-1]),
                      flush=True)
    finally:
        _runtime.select_isa(before)


if __name__ == "__main__":
    main()
