"""pytest-benchmark set-up: every case × backend × thread count (an inference engine only
for the cases that run on one: the dense segmentation)."""
import os

import pytest

from fastseg import benchmarks
from fastseg.benchmarks import timer

BACKENDS = benchmarks.available_backends()


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        # FASTSEG_BENCH_QUICK=1: the same cases on small shapes, a smoke run for CI.
        cases = benchmarks.all_cases(quick=bool(os.environ.get("FASTSEG_BENCH_QUICK")))
        # Case and backend together, so that pairs without a side (an engine on a
        # kernel case) are never generated; the ids read as before, case-backend.
        pairs = [(c, b) for c in cases for b in BACKENDS if c.runs_on(b)]
        metafunc.parametrize(["case", "bench_backend"], pairs,
                             ids=[f"{c.id}-{b}" for c, b in pairs])
    if "nthreads" in metafunc.fixturenames:
        metafunc.parametrize("nthreads", [1, 2], ids=["1t", "2t"])


@pytest.fixture
def pinned_threads(nthreads):
    # Before the test body prepares its case: the engines read the count then.
    timer.set_threads(nthreads)
    return nthreads
