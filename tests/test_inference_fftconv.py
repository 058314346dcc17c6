"""Overlap-save FFT convolution (fastseg._inference.fftconv) against the direct convolution and
against a plain NumPy reference of its own, in 2-D and 3-D, on awkward shapes."""
import itertools

import numpy as np
import pytest
from _segment_helpers import usable_backend  # noqa: F401

import fastseg
from fastseg import ops
from fastseg._inference import fftconv as fc


def reference(x, w, b=None):
    """Valid stride-1 cross-correlation in float64, one kernel tap at a time (any N-D)."""
    kernel = w.shape[2:]
    out = tuple(n - k + 1 for n, k in zip(x.shape[1:], kernel, strict=True))
    y = np.zeros((w.shape[0], *out))
    for tap in itertools.product(*[range(k) for k in kernel]):
        window = x[(slice(None),) + tuple(slice(t, t + o) for t, o in zip(tap, out, strict=True))]
        y += np.tensordot(w[(slice(None), slice(None)) + tap].astype(np.float64), window,
                          axes=(1, 0))
    if b is not None:
        y += b.reshape(-1, *[1] * len(kernel))
    return y


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


CASES_2D = [  # (C, F, kernel, input, fft_shape, group)
    (3, 5, (3, 3), (17, 13), (8, 8), 2),         # several blocks, group not dividing F
    (1, 4, (5, 5), (5, 5), (5, 5), None),        # one output pixel; FFT as small as the kernel
    (2, 3, (2, 1), (9, 1), (4, 1), 1),           # a one-pixel-wide strip
    (2, 3, (1, 2), (1, 11), (1, 5), 2),          # a one-pixel-high strip
    (4, 7, (4, 4), (31, 29), (16, 9), 3),        # prime sizes, a non-square transform
    (6, 11, (7, 7), (13, 37), (32, 32), 4),      # a transform larger than the image
    (50, 20, (16, 16), (40, 37), (32, 32), 6),   # lai2d's fully connected layer, shrunk
]


@pytest.mark.parametrize("c,f,kernel,shape,fft_shape,group", CASES_2D)
def test_2d_equals_direct_convolution(c, f, kernel, shape, fft_shape, group):
    rng = np.random.default_rng(0)
    x, w, b = rand(rng, c, *shape), rand(rng, f, c, *kernel), rand(rng, f)
    spectra = fc.KernelSpectra(w, fft_shape)
    y = fc.correlate(x, spectra, b, group=group)
    ref = reference(x, w, b)
    assert y.shape == ref.shape and y.dtype == np.float32
    scale = np.abs(ref).max()
    np.testing.assert_allclose(y, ref, atol=2e-6 * scale, rtol=0)
    if kernel[0] == kernel[1]:  # ops.conv2d takes square kernels only
        np.testing.assert_allclose(y, ops.conv2d(x[None], w, b)[0], atol=2e-6 * scale)


@pytest.mark.parametrize("threads", [1, 2])
def test_activations_and_projection_in_groups(threads):
    """The fused form: bias, activations and a 1x1 convolution, one group at a time,
    on one thread or on parallel group threads."""
    rng = np.random.default_rng(1)
    x, w, b = rand(rng, 5, 23, 19), rand(rng, 9, 5, 6, 6) * 0.3, rand(rng, 9)
    pw, pb = rand(rng, 3, 9), rand(rng, 3)
    spectra = fc.KernelSpectra(w, (12, 12))
    want = np.tensordot(pw, np.tanh(np.maximum(reference(x, w, b), 0)), axes=(1, 0)) \
        + pb[:, None, None]
    for group in (1, 4, 9):
        got = fc.correlate(x, spectra, b, group=group, workers=threads,
                           activations=[ops.relu, np.tanh], project=(pw, pb))
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_kernel_thread_count_is_restored_after_parallel_groups():
    before = fastseg.get_num_threads()
    fastseg.set_num_threads(2)
    try:
        rng = np.random.default_rng(2)
        spectra = fc.KernelSpectra(rand(rng, 6, 2, 3, 3), (8, 8))
        fc.correlate(rand(rng, 2, 20, 20), spectra, group=2, workers=2)
        assert fastseg.get_num_threads() == 2
    finally:
        fastseg.set_num_threads(before)


@pytest.mark.parametrize("kernel,shape,fft_shape", [
    ((3, 3, 3), (9, 10, 11), (8, 8, 8)),
    ((2, 4, 1), (5, 7, 3), (4, 5, 2)),
    ((5, 5, 5), (5, 6, 7), (6, 6, 6)),
])
def test_3d_equals_numpy_reference(kernel, shape, fft_shape):
    rng = np.random.default_rng(3)
    x, w, b = rand(rng, 3, *shape), rand(rng, 4, 3, *kernel), rand(rng, 4)
    y = fc.correlate(x, fc.KernelSpectra(w, fft_shape), b, group=3)
    ref = reference(x, w, b)
    np.testing.assert_allclose(y, ref, atol=2e-6 * np.abs(ref).max(), rtol=0)
    pw = rand(rng, 2, 4)
    got = fc.correlate(x, fc.KernelSpectra(w, fft_shape), b, activations=[np.tanh],
                       project=(pw, None), group=1)
    np.testing.assert_allclose(got, np.tensordot(pw, np.tanh(ref), axes=(1, 0)), atol=1e-5)


def test_non_contiguous_and_float64_input():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 30, 40))[:, ::2, ::3]  # float64, strided
    w = rand(rng, 3, 2, 3, 3)
    y = fc.correlate(x, fc.KernelSpectra(w, (7, 7)))
    np.testing.assert_allclose(y, reference(x.astype(np.float32), w), atol=1e-5)


def test_spectra_layout_and_size():
    """In 2-D the spectra are packed for the backend's kernel, the general layout made
    only when the general path asks; in 3-D the general layout at once."""
    rng = np.random.default_rng(5)
    w = rand(rng, 4, 3, 5, 5)
    s = fc.KernelSpectra(w, (8, 12), backend="numpy")
    assert s.packed_for == "numpy" and s.packed.shape == (1, 7, 8, 2, 3, 8)
    assert s.nbytes == s.packed.nbytes
    assert fc.KernelSpectra.nbytes_for(4, 3, (8, 12)) == 8 * 4 * 3 * 56
    assert s.array.shape == (8 * 7, 4, 3) and s.array.dtype == np.complex64
    assert s.nbytes == s.packed.nbytes + s.array.nbytes
    full = np.conj(np.fft.rfft2(w, s=(8, 12)))  # (F, C, 8, 7)
    np.testing.assert_allclose(s.array.reshape(8, 7, 4, 3), full.transpose(2, 3, 0, 1),
                               atol=1e-4)
    s3 = fc.KernelSpectra(rand(rng, 2, 3, 2, 2, 2), (4, 4, 4))
    assert s3.packed is None and s3.array.shape == (4 * 4 * 3, 2, 3)


def test_bad_arguments():
    rng = np.random.default_rng(6)
    with pytest.raises(ValueError, match="fft_shape"):
        fc.KernelSpectra(rand(rng, 2, 1, 5, 5), (4, 8))
    with pytest.raises(ValueError, match="fft_shape"):
        fc.KernelSpectra(rand(rng, 2, 1, 5, 5), (8, 8, 8))
    spectra = fc.KernelSpectra(rand(rng, 2, 3, 5, 5), (8, 8))
    for bad in (rand(rng, 2, 9, 9), rand(rng, 3, 4, 9), rand(rng, 3, 9)):
        with pytest.raises(ValueError, match="x: expected"):
            fc.correlate(bad, spectra)


def test_fast_length():
    assert [fc.fast_length(n) for n in (1, 7, 17, 37, 100)] == [1, 8, 18, 40, 100]
    assert fc.half_shape((8, 12)) == (8, 7)


@pytest.mark.parametrize("name", ["c", "numpy"])
def test_gemm_batch_per_bin_products(name):
    """The per-bin products in one call: a range of rows of every matrix of a stack,
    against matmul; awkward sizes (1, primes); bad shapes refused."""
    if name not in fastseg.available_backends():
        pytest.skip(f"{name} backend not built")
    be = fastseg.backends.load(name)
    rng = np.random.default_rng(7)
    for count, m, k, n in ((3, 5, 7, 11), (1, 1, 1, 1), (13, 17, 2, 1), (4, 1, 9, 3)):
        a = rand(rng, count, m + 4, k)[:, 2:2 + m]   # strided rows of every matrix
        b = rand(rng, count, k, n)
        out = np.full((count, m, n), np.nan, np.float32)
        be.gemm_batch(a, b, out)
        np.testing.assert_allclose(out, a.astype(np.float64) @ b, atol=1e-5)
    if name == "c":
        from fastseg._cy import _gemm

        out = np.empty((2, 3, 4), np.float32)
        with pytest.raises(ValueError, match="batch sizes"):
            _gemm.sgemm_batch(rand(rng, 3, 3, 5), rand(rng, 2, 5, 4), out)
        with pytest.raises(ValueError, match="do not chain"):
            _gemm.sgemm_batch(rand(rng, 2, 3, 5), rand(rng, 2, 6, 4), out)
        with pytest.raises(ValueError, match="contiguous rows"):
            _gemm.sgemm_batch(rand(rng, 2, 3, 10)[:, :, ::2], rand(rng, 2, 5, 4), out)
        _gemm.sgemm_batch(rand(rng, 2, 3, 0), rand(rng, 2, 0, 4), out)
        assert (out == 0).all()


@pytest.mark.parametrize("name", ["c", "numpy"])
def test_kernel_path_fuses_named_activation_and_projection(name):
    """Activations by name run in the backend's 2-D kernel, with the 1x1 convolution; the
    same answer as the general path (callables), bitwise the same for any workers,
    group and chunk, and the stage times land in `timings`."""
    if name not in fastseg.available_backends():
        pytest.skip(f"{name} backend not built")
    rng = np.random.default_rng(8)
    x, w, b = rand(rng, 6, 29, 23), rand(rng, 15, 6, 7, 7) * 0.2, rand(rng, 15)
    pw, pb = rand(rng, 2, 15), rand(rng, 2)
    spectra = fc.KernelSpectra(w, (16, 18), backend=name)
    ref = reference(x, w, b)
    for act, fn in (("tanh", np.tanh), ("relu", lambda a: np.maximum(a, 0)),
                    ("sigmoid", lambda a: 1 / (1 + np.exp(-a)))):
        want = np.tensordot(pw, fn(ref), axes=(1, 0)) + pb[:, None, None]
        timings = {}
        got = fc.correlate(x, spectra, b, activations=[act], project=(pw, pb), backend=name,
                           timings=timings)
        np.testing.assert_allclose(got, want, atol=2e-5)
        assert set(timings) == set(fc.STAGES)
        for workers, group, chunk, in ((1, 10, 32), (2, 1, 1), (3, 40, 200)):
            again = fc.correlate(x, spectra, b, activations=[act], project=(pw, pb),
                                 backend=name, workers=workers, group=group, chunk=chunk)
            assert again.tobytes() == got.tobytes()
    maps = fc.correlate(x, spectra, b, activations=["relu"], backend=name)
    np.testing.assert_allclose(maps, np.maximum(ref, 0), atol=2e-5)
    general = fc.correlate(x, spectra, b, activations=[ops.relu], backend=name)
    np.testing.assert_allclose(general, maps, atol=2e-5)
    two = fc.correlate(x, spectra, b, activations=["relu", "tanh"], backend=name)
    np.testing.assert_allclose(two, np.tanh(np.maximum(ref, 0)), atol=2e-5)
    with pytest.raises(ValueError, match="activations"):
        fc.correlate(x, spectra, b, activations=["gelu"], backend=name)


def test_kernel_mults_three_and_four_agree():
    if "c" not in fastseg.available_backends():
        pytest.skip("c backend not built")
    rng = np.random.default_rng(9)
    x, w, b = rand(rng, 50, 40, 37), rand(rng, 23, 50, 16, 16) * 0.02, rand(rng, 23)
    spectra = fc.KernelSpectra(w, (32, 32), backend="c")
    three = fc.correlate(x, spectra, b, activations=["tanh"], mults=3, backend="c")
    four = fc.correlate(x, spectra, b, activations=["tanh"], mults=4, backend="c")
    np.testing.assert_allclose(three, np.tanh(reference(x, w, b)), atol=1e-5)
    np.testing.assert_allclose(four, three, atol=1e-5)


def test_spectra_follow_the_backend():
    """Spectra packed for one backend are packed again for another that asks."""
    if "c" not in fastseg.available_backends():
        pytest.skip("c backend not built")
    rng = np.random.default_rng(10)
    x, w = rand(rng, 3, 20, 20), rand(rng, 5, 3, 4, 4)
    spectra = fc.KernelSpectra(w, (12, 12), backend="numpy")
    got = fc.correlate(x, spectra, backend="c")
    assert spectra.packed_for == "c"
    np.testing.assert_allclose(got, reference(x, w), atol=1e-5)
