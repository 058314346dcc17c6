"""Benchmarks: `python -m pytest bench --benchmark-group-by=group,param:nthreads`.

See bench/README.md for baselines and comparisons.
"""


def test_case(benchmark, case, bench_backend, pinned_threads):
    benchmark.group = case.group
    benchmark.extra_info.update(case=case.name, backend=bench_backend, threads=pinned_threads,
                                flops=case.flops)
    run = case.prepare(bench_backend)
    run()  # warm-up outside the measurement
    benchmark(run)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:  # absent under --benchmark-disable
        benchmark.extra_info["gflops"] = case.flops / stats.stats.median / 1e9
