"""pytest-benchmark set-up: every case × backend × thread count."""
import os

import pytest

from fastseg import benchmarks
from fastseg.benchmarks import timer

BACKENDS = benchmarks.available_backends()


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        # FASTSEG_BENCH_QUICK=1: the same cases on small shapes, a smoke run for CI.
        cases = benchmarks.all_cases(quick=bool(os.environ.get("FASTSEG_BENCH_QUICK")))
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])
    if "bench_backend" in metafunc.fixturenames:
        metafunc.parametrize("bench_backend", BACKENDS)
    if "nthreads" in metafunc.fixturenames:
        metafunc.parametrize("nthreads", [1, 2], ids=["1t", "2t"])


@pytest.fixture
def pinned_threads(nthreads):
    timer.set_threads(nthreads)
    return nthreads
