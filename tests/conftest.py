"""Shared fixtures: backends under test and seeded random arrays."""
import os
import shutil

# No test tunes the kernels or reads this machine's tuning file (fastseg.tuning): the
# constants, unless a test turns tuning on for itself.
os.environ["FASTSEG_TUNE"] = "0"

# Where no NVIDIA GPU is plausible (CI, laptops) the "cuda" backend runs on
# Numba's CPU simulator; numba reads this once, at its first import, so it
# must be set before anything imports numba. A real GPU machine keeps the GPU.
if not os.path.exists("/dev/nvidia0") and shutil.which("nvidia-smi") is None:
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fastseg  # noqa: E402

CUDA_SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")

# Every backend that can run here is checked against "numpy", the reference.
# "cuda" joins on a real GPU; on the simulator these shapes would take far too
# long, so there tests/test_cuda_backend.py checks it on tiny shapes instead.
COMPILED_BACKENDS = [b for b in fastseg.available_backends()
                     if b != "numpy" and not (b == "cuda" and CUDA_SIMULATOR)]


@pytest.fixture(params=COMPILED_BACKENDS)
def backend(request):
    return request.param


HOST_BACKENDS = [b for b in fastseg.available_backends() if b in ("numpy", "c")]


@pytest.fixture(params=HOST_BACKENDS)
def host_backend(request, monkeypatch):
    """Runs a test once per host backend, made current, with fastseg seeded
    (the nn / optim / train tests use it for every test of their module)."""
    from fastseg import backends

    backends.load(request.param)
    monkeypatch.setattr(backends, "_current", request.param)
    fastseg.seed(0)
    return request.param


# The C kernels' instruction sets, best first (fastseg._cy._runtime.ISAS).
ISAS = ("avx512", "avx2", "generic")


@pytest.fixture(params=ISAS)
def isa(request):
    """Runs a test once per instruction set of the C kernels, forced for the
    test's duration; one this CPU cannot run is skipped, saying why."""
    from fastseg._cy import _runtime

    before = _runtime.isa_name()
    try:
        _runtime.select_isa(request.param)
    except ValueError as exc:
        pytest.skip(str(exc))
    yield request.param
    _runtime.select_isa(before)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _restore_process_settings():
    """No test leaks a backend or thread-count change into the next one."""
    backend, threads = fastseg.get_backend(), fastseg.get_num_threads()
    yield
    fastseg.set_backend(backend)
    fastseg.set_num_threads(threads)


@pytest.fixture
def threads():
    """For tests that change the kernel thread count (restored by the fixture above)."""
