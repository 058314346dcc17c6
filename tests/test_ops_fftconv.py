"""Dense inference's backend entries, fft_spectra and fftconv2d (kernels/src/fftconv.c
through _cy/_fftconv.pyx), against the NumPy reference (backends/numpy_fftconv.py) and
the C oracle (direct, in double), on awkward shapes, every ISA the CPU runs, 1 and 2
threads; bitwise the same for any threads, group and chunk."""
import numpy as np
import pytest

import fastseg
from fastseg import backends

pytestmark = pytest.mark.skipif("c" not in fastseg.available_backends(),
                                reason="the c backend is not built")

SHAPES = [  # (C, F, (H, W), kernel, fft_shape, P, activation)
    (1, 1, (5, 5), (5, 5), (5, 5), 0, None),           # one pixel; FFT = kernel
    (3, 5, (17, 13), (3, 3), (8, 8), 0, "relu"),       # F not a multiple of MR
    (2, 3, (9, 1), (2, 1), (4, 1), 0, None),           # one pixel wide
    (2, 3, (1, 11), (1, 2), (1, 5), 2, "tanh"),        # one pixel high, with a 1x1
    (4, 7, (31, 29), (4, 4), (16, 9), 3, "sigmoid"),   # primes, non-square transform
    (6, 11, (13, 37), (7, 7), (32, 32), 1, "tanh"),    # transform larger than the image
    (5, 13, (23, 19), (6, 6), (12, 15), 2, "tanh"),    # 2^2*3 and 3*5 lengths
    (7, 9, (20, 26), (3, 5), (14, 7), 0, "relu"),      # radix 7 (plain DFT)
    (50, 23, (40, 37), (16, 16), (27, 32), 2, "tanh"),  # lai2d's layer, shrunk
    (3, 4, (70, 9), (2, 2), (27, 9), 2, None),         # many blocks: several chunks
    (4, 6, (21, 40), (3, 3), (8, 16), 5, "relu"),      # 5 outputs: 4 + 1 of the epilogue
    (2, 5, (33, 30), (4, 4), (16, 12), 6, "sigmoid"),  # 6 outputs, several 16-lane steps
]


def _arrays(rng, c, f, hw, kernel, p):
    x = rng.standard_normal((c, *hw)).astype(np.float32)
    scale = 1 / np.sqrt(c * kernel[0] * kernel[1])
    w = (scale * rng.standard_normal((f, c, *kernel))).astype(np.float32)
    b = (0.5 * rng.standard_normal(f)).astype(np.float32)
    pw = (0.5 * rng.standard_normal((p, f))).astype(np.float32) if p else None
    pb = (0.5 * rng.standard_normal(p)).astype(np.float32) if p else None
    return x, w, b, pw, pb


def _run(name, x, w, kernel, fft_shape, b, act, pw, pb, mults=3, group=0, chunk=0,
         seconds=None):
    be = backends.load(name)
    spectra = be.fft_spectra(w, fft_shape)
    return be.fftconv2d(x, spectra, kernel, fft_shape, w.shape[0], b, act, pw, pb, mults,
                        group, chunk, seconds)


@pytest.mark.parametrize("c,f,hw,kernel,fft_shape,p,act", SHAPES)
def test_kernel_equals_reference(c, f, hw, kernel, fft_shape, p, act, isa):
    from fastseg._cy import _fftconv

    rng = np.random.default_rng(sum(hw) + c)
    x, w, b, pw, pb = _arrays(rng, c, f, hw, kernel, p)
    want = _run("numpy", x, w, kernel, fft_shape, b, act, pw, pb)
    direct = _fftconv.fftconv2d_ref(x, w, b, act, pw, pb)
    np.testing.assert_allclose(want, direct, atol=1e-5, rtol=0)
    fastseg.set_num_threads(1)
    for mults in (3, 4):
        got = _run("c", x, w, kernel, fft_shape, b, act, pw, pb, mults)
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
        # 2 and 3 threads take the slices as tasks; 6 share out each group's columns and
        # rows (team_slices): the same bits either way
        for threads in (2, 3, 6):
            fastseg.set_num_threads(threads)
            for group, chunk in ((0, 0), (1, 1), (7, 5), (1000, 1000)):
                again = _run("c", x, w, kernel, fft_shape, b, act, pw, pb, mults, group,
                             chunk)
                assert again.tobytes() == got.tobytes(), (mults, group, chunk, threads)
        fastseg.set_num_threads(1)


def test_a_team_the_slices_would_leave_idle_gives_the_same_bits():
    """Eight filter slices on 6, 7 or 12 threads: the whole team takes each group's
    columns and rows (fftconv.c's team_slices) instead of whole slices, several groups
    a slice here (70 filters, groups of 4), with a 1x1 layer summing the slices and
    without; the same bits as one thread and as the slices on 2, 3 or 9."""
    rng = np.random.default_rng(11)
    x, w, b, pw, pb = _arrays(rng, 8, 70, (30, 41), (5, 5), 2)
    try:
        for proj in ((pw, pb), (None, None)):
            fastseg.set_num_threads(1)
            one = _run("c", x, w, (5, 5), (16, 16), b, "tanh", *proj, 3, 4, 0)
            for threads in (2, 3, 6, 7, 9, 12):
                fastseg.set_num_threads(threads)
                many = _run("c", x, w, (5, 5), (16, 16), b, "tanh", *proj, 3, 4, 0)
                assert many.tobytes() == one.tobytes(), (proj[0] is None, threads)
    finally:
        fastseg.set_num_threads(1)
    want = _run("numpy", x, w, (5, 5), (16, 16), b, "tanh", pw, pb)
    fastseg.set_num_threads(6)
    try:
        got = _run("c", x, w, (5, 5), (16, 16), b, "tanh", pw, pb)
    finally:
        fastseg.set_num_threads(1)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)


def test_spectra_packing_equals_the_plain_dft():
    from fastseg._cy import _fftconv

    rng = np.random.default_rng(3)
    w = rng.standard_normal((13, 3, 4, 5)).astype(np.float32)
    for shape in ((4, 5), (9, 8), (12, 15)):
        packed = backends.load("c").fft_spectra(w, shape)
        mr = _fftconv.panel_rows()
        assert packed.shape == (-(-13 // mr), shape[1] // 2 + 1, shape[0], 2, 3, mr)
        np.testing.assert_allclose(packed, _fftconv.spectra_ref(w, shape, mr), atol=2e-6)
        ref = backends.load("numpy").fft_spectra(w, shape)
        assert ref.shape[-1] == 8  # the reference's own panel rows: the layout carries MR
        from fastseg.backends.numpy_fftconv import unpack_spectra

        full = np.conj(np.fft.rfft2(w.astype(np.float64), s=shape)) / (shape[0] * shape[1])
        np.testing.assert_allclose(unpack_spectra(ref, 13), full, atol=1e-7)
        np.testing.assert_allclose(unpack_spectra(packed, 13), full, atol=2e-6)


def test_spectra_packing_is_the_same_on_any_number_of_threads(monkeypatch):
    import scipy.fft

    from fastseg.backends import numpy_fftconv

    monkeypatch.setattr(numpy_fftconv, "_CHUNK_BYTES", 1)  # a block per panel: 4 blocks
    rng = np.random.default_rng(5)
    w = rng.standard_normal((13, 3, 4, 5)).astype(np.float32)

    transforms = (lambda a, n, axis: scipy.fft.rfft(a, n, axis, workers=1),
                  lambda a, n, axis: scipy.fft.fft(a, n, axis, workers=1))
    full = np.conj(np.fft.rfft2(w.astype(np.float64), s=(9, 8))) / 72
    one = numpy_fftconv.spectra_packed(w, (9, 8), 4, transforms)
    np.testing.assert_allclose(numpy_fftconv.unpack_spectra(one, 13), full, atol=2e-6)
    # the 1-D transforms pad their own axes: the bits of the 2-D transform of a
    # zero-padded copy (how the spectra were made before)
    padded = np.zeros((13, 3, 9, 8), np.float32)
    padded[:, :, :4, :5] = w
    spec = scipy.fft.rfftn(padded, axes=(2, 3), workers=1)
    want = (np.multiply(spec.real, 1 / 72).astype(np.float64)
            + 1j * np.multiply(spec.imag, -1 / 72).astype(np.float64))
    np.testing.assert_array_equal(numpy_fftconv.unpack_spectra(one, 13), want)
    for threads in (2, 3, 8):
        many = numpy_fftconv.spectra_packed(w, (9, 8), 4, transforms, threads=threads)
        assert many.tobytes() == one.tobytes(), threads
    ref = numpy_fftconv.spectra_packed(w, (9, 8), 4, threads=3)  # NumPy's, float64
    np.testing.assert_allclose(numpy_fftconv.unpack_spectra(ref, 13), full, atol=1e-7)


def test_stage_times_and_refusals():
    rng = np.random.default_rng(4)
    x, w, b, pw, pb = _arrays(rng, 4, 6, (20, 21), (5, 5), 2)
    seconds = np.full(7, -1.0)
    _run("c", x, w, (5, 5), (12, 12), b, "tanh", pw, pb, seconds=seconds)
    assert (seconds >= 0).all() and seconds.sum() > 0
    ref = np.full(7, -1.0)
    _run("numpy", x, w, (5, 5), (12, 12), b, "tanh", pw, pb, seconds=ref)
    assert (ref == 0).all()
    be = backends.load("c")
    spectra = be.fft_spectra(w, (12, 12))
    with pytest.raises(ValueError, match="activation"):
        be.fftconv2d(x, spectra, (5, 5), (12, 12), 6, b, "gelu", None, None, 3, 0, 0, None)
    with pytest.raises(ValueError, match="spectra of shape"):
        be.fftconv2d(x, spectra, (5, 5), (13, 12), 6, b, None, None, None, 3, 0, 0, None)
    with pytest.raises(ValueError, match="bias"):
        be.fftconv2d(x, spectra, (5, 5), (12, 12), 6, b[:5], None, None, None, 3, 0, 0, None)
    with pytest.raises(ValueError, match="proj_w"):
        be.fftconv2d(x, spectra, (5, 5), (12, 12), 6, b, None, pw[:, :5].copy(), None, 3, 0, 0,
                     None)
    with pytest.raises(ValueError, match="domain"):  # mults 2, refused by the kernel
        be.fftconv2d(x, spectra, (5, 5), (12, 12), 6, b, None, None, None, 2, 0, 0, None)
    other = backends.load("numpy").fft_spectra(w, (12, 12))
    with pytest.raises(ValueError, match="panel rows"):
        be.fftconv2d(x, other, (5, 5), (12, 12), 6, b, None, None, None, 3, 0, 0, None)


def test_reference_refuses_what_the_kernel_refuses():
    """The C oracle checks its bias and 1x1 operands as fftconv2d does (one helper in
    _fftconv.pyx), so a short one is refused, never read past its end."""
    from fastseg._cy import _fftconv

    rng = np.random.default_rng(5)
    x, w, b, pw, pb = _arrays(rng, 4, 6, (20, 21), (5, 5), 2)
    with pytest.raises(ValueError, match="fftconv2d_ref: bias of 5 values for 6"):
        _fftconv.fftconv2d_ref(x, w, b[:5], "tanh", pw, pb)
    with pytest.raises(ValueError, match="fftconv2d_ref: proj_w"):
        _fftconv.fftconv2d_ref(x, w, b, "tanh", pw[:, :5].copy(), pb)
    with pytest.raises(ValueError, match="fftconv2d_ref: proj_b of 1 values for 2"):
        _fftconv.fftconv2d_ref(x, w, b, "tanh", pw, pb[:1])
    with pytest.raises(ValueError, match="fftconv2d: bias of 5 values for 6"):
        _run("c", x, w, (5, 5), (12, 12), b[:5], "tanh", pw, pb)
    got = _fftconv.fftconv2d_ref(x, w, None, None, None, None)  # every operand optional
    assert got.shape == (6, 16, 17)


def test_workspace_estimate_bounds_the_kernel(isa):
    """fftconv.kernel_workspace_bytes (the cost model's memory) is at least what the
    kernel takes on that many threads, on every ISA, and not far above: within 1.5x
    where the kernel's panels are the estimate's 32 blocks (avx512), 2.5x where they
    are 16 or 8 (a tiny chunk of 5 blocks is padded to 32 there, to 16 or 8 here)."""
    from fastseg._cy import _fftconv
    from fastseg._inference import fftconv

    for c, f, p, k, shape, hw, group, chunk, threads in [
            (50, 1000, 2, (16, 16), (40, 45), (599, 580), 0, 0, 2),
            (20, 50, 0, (5, 5), (25, 25), (603, 584), 0, 0, 1),
            (3, 7, 1, (3, 3), (8, 8), (10, 9), 7, 5, 2),
            (50, 1000, 2, (16, 16), (36, 45), (100, 100), 80, 96, 1)]:
        fastseg.set_num_threads(threads)
        out = (hw[0] - k[0] + 1, hw[1] - k[1] + 1)
        own, shared = _fftconv.workspace_floats((c, *hw), k, shape, f, p, 3, group, chunk)
        bound = fftconv.kernel_workspace_bytes(c, f, p, k, shape, out, group, chunk, threads)
        assert own > 0 and shared > 0
        slack = 1.5 if isa == "avx512" else 2.5
        assert 4 * (shared + threads * own) <= bound < slack * 4 * (shared + threads * own), \
            (c, f, shape, bound / (4 * (shared + threads * own)))
