"""Shared fixtures: backends under test and seeded random arrays."""
import numpy as np
import pytest

import fastseg

# Every backend that can run here is checked against "numpy", the reference.
# "cuda" joins under NUMBA_ENABLE_CUDASIM=1 (or on a GPU).
COMPILED_BACKENDS = [b for b in fastseg.available_backends() if b != "numpy"]


@pytest.fixture(params=COMPILED_BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def threads():
    """Restore the kernel thread count after a test that changes it."""
    before = fastseg.get_num_threads()
    yield
    fastseg.set_num_threads(before)
