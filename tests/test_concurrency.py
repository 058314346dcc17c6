"""Many threads on one model: eight threads calling ``Segmenter.predict_proba`` and
``fastseg.segment`` at once, on the "c" and "numpy" backends, by direct and FFT
convolution, get the bytes one thread gets, and finish.

A deadlock must fail a test, not hang CI: every thread is a daemon joined with a timeout
(:func:`run_at_once`), so a test that waited too long fails, saying which threads hung.
"""
import threading

import numpy as np
import pytest

import fastseg
from fastseg import backends, models, nn
from fastseg._inference import fftconv
from fastseg.segmenter import Segmenter

THREADS = 8
#: Seconds the threads of one test may take together; a deadlock waits forever, a busy
#: shared machine takes a few seconds.
TIMEOUT_S = 120
BACKENDS = [b for b in ("c", "numpy") if b in fastseg.available_backends()]


def run_at_once(jobs, timeout=TIMEOUT_S):
    """Run each callable of `jobs` on its own daemon thread, all released together;
    return their results in order. A job's exception is re-raised; a thread still running
    after `timeout` seconds fails the test (a deadlock, or a livelock)."""
    results, errors = [None] * len(jobs), [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def work(i):
        try:
            start.wait(timeout)
            results[i] = jobs[i]()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors[i] = exc

    threads = [threading.Thread(target=work, args=(i,), daemon=True,
                                name=f"concurrency-{i}") for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    hung = [t.name for t in threads if t.is_alive()]
    if hung:
        pytest.fail(f"{len(hung)} of {len(jobs)} threads did not finish in {timeout} s "
                    f"(deadlock?): {hung}")
    for exc in errors:
        if exc is not None:
            raise exc
    return results


@pytest.fixture(scope="module")
def segmenter():
    """A small random lai2d segmenter (patch 12, 24 hidden units: several FFT channel
    groups) and a colour image; made once."""
    fastseg.seed(5)
    seg = Segmenter(patch_size=12, model_kwargs={"hidden": 24, "conv_channels": (4, 6)},
                    prior_correction=False)
    seg.model_ = seg._build().eval()
    image = np.random.default_rng(5).integers(0, 256, (44, 50, 3), dtype=np.uint8)
    return seg, image


@pytest.fixture
def kernel_threads():
    """Two kernel threads for the test (so the FFT path runs its channel groups on a pool
    and pins the kernels to one thread meanwhile); the count is put back after."""
    before = backends.get_num_threads()
    backends.set_num_threads(2)
    yield 2
    backends.set_num_threads(before)


@pytest.fixture(params=BACKENDS)
def backend(request):
    before = fastseg.get_backend()
    fastseg.set_backend(request.param)
    yield request.param
    fastseg.set_backend(before)


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_eight_threads_predict_the_bytes_of_one(segmenter, backend, method, kernel_threads):
    seg, image = segmenter
    want = seg.predict_proba(image, method=method)
    got = run_at_once([lambda: seg.predict_proba(image, method=method)] * THREADS)
    for i, prob in enumerate(got):
        assert prob.tobytes() == want.tobytes(), f"thread {i} ({backend}, {method})"


def test_direct_and_fft_threads_mixed_on_one_model(segmenter, backend, kernel_threads):
    """Half the threads by FFT (pinning the kernels to one thread while they run their
    groups), half direct and through fastseg.segment on the bare network: each gets what
    it gets alone (direct runs meeting a pinned thread count must not change a bit)."""
    seg, image = segmenter
    net = seg.model_
    x = np.random.default_rng(1).standard_normal((1, 30, 34)).astype(np.float32)
    want = {"fft": seg.predict_proba(image, method="fft"),
            "direct": seg.predict_proba(image, method="direct"),
            "bare": fastseg.segment(net, x, method="direct")}
    jobs = []
    for i in range(THREADS):
        if i % 3 == 0:
            jobs.append(("bare", lambda: fastseg.segment(net, x, method="direct")))
        else:
            which = "fft" if i % 2 else "direct"
            jobs.append((which, lambda which=which: seg.predict_proba(image, method=which)))
    got = run_at_once([job for _, job in jobs])
    for (which, _), prob in zip(jobs, got, strict=True):
        assert prob.tobytes() == want[which].tobytes(), which


def test_two_models_alternating_through_the_plan_cache(backend, kernel_threads):
    """fcn.cached_plan keeps the plan (and FFT spectra) of the model segmented last: with
    two models' threads interleaved it is replaced again and again, and no thread may
    get the other model's plan."""
    fastseg.seed(11)
    nets = [models.lai2d(patch_size=10, conv_channels=(3,), hidden=12).eval()
            for _ in range(2)]
    x = np.random.default_rng(2).standard_normal((1, 26, 29)).astype(np.float32)
    want = [fastseg.segment(n, x, method="fft") for n in nets]
    assert want[0].tobytes() != want[1].tobytes()
    got = run_at_once([lambda n=nets[i % 2]: [fastseg.segment(n, x, method="fft")
                                              for _ in range(3)] for i in range(THREADS)])
    for i, probs in enumerate(got):
        for prob in probs:
            assert prob.tobytes() == want[i % 2].tobytes(), f"thread {i}"


def test_fft_correlate_groups_on_pools_from_eight_threads(backend):
    """The FFT convolution's own thread pools (workers=3, one channel group per task) from
    eight threads at once: the pin lock (fftconv._one_kernel_thread) serialises the pins,
    every call returns the single-thread bytes, and the kernel thread count is restored."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((12, 5, 4, 4)).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    x = rng.standard_normal((5, 23, 21)).astype(np.float32)
    spectra = fftconv.KernelSpectra(w, (16, 16))
    before = backends.get_num_threads()
    want = fftconv.correlate(x, spectra, b, group=2, workers=1)
    got = run_at_once([lambda: fftconv.correlate(x, spectra, b, group=2, workers=3)
                       for _ in range(THREADS)])
    for prob in got:
        np.testing.assert_array_equal(prob, want)
    assert backends.get_num_threads() == before
    direct = nn.Conv2d(5, 12, 4)
    direct.weight.data[...] = w
    direct.bias.data[...] = b
    np.testing.assert_allclose(want, direct(x[None])[0], rtol=1e-4, atol=1e-4)
