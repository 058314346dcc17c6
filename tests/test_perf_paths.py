"""The fast paths added for speed: one-row GEMMs (the small-dimension path), recycled
outputs and the convolution whose weight is packed once for all threads."""
import weakref

import numpy as np
import pytest

import fastseg
from fastseg import backends, ops
from fastseg._cy import _buffers, _conv, _runtime
from fastseg.backends import numpy_backend as ref


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("k,n", [(1, 1), (7, 5), (33, 17), (1000, 1200), (3000, 700)])
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_one_row_gemm_matches_numpy(threads, k, n, ta, tb):
    rng = np.random.default_rng(k * n)
    a = rng.standard_normal((k, 1) if ta else (1, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    old = fastseg.get_num_threads()
    fastseg.set_num_threads(threads)
    try:
        got = ops.gemm(a, b, ta, tb, backend="c")
    finally:
        fastseg.set_num_threads(old)
    want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(k))


def test_one_row_gemm_ignores_nan_in_fresh_output():
    # beta = 0 must not read C: a recycled buffer full of NaN stays harmless.
    shape = (1, 100_000)
    held = [_buffers.empty(shape) for _ in range(2)]
    for h in held:
        h.fill(np.nan)
    del held
    a = np.ones((1, 3), np.float32)
    b = np.ones((3, shape[1]), np.float32)
    np.testing.assert_array_equal(ops.gemm(a, b, backend="c"), np.full(shape, 3, np.float32))


def test_gemm_outputs_are_recycled_only_once_free():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((64, 300), np.float32), rng.standard_normal((300, 2000), np.float32)
    first = ops.gemm(a, b, backend="c")
    kept = first.copy()
    second = ops.gemm(2 * a, b, backend="c")  # `first` is held: never its memory
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_allclose(second, 2 * kept, rtol=1e-6, atol=1e-5)
    pooled = weakref.ref(first)  # alive after `del` only if the pool keeps it
    del first
    third = ops.gemm(a, b, backend="c")  # the freed one comes back, fully rewritten
    assert third is pooled()
    np.testing.assert_array_equal(third, kept)


def test_recycled_array_is_never_one_still_referenced():
    a = _buffers.empty((512, 512))
    view = a[:10]
    b = _buffers.empty((512, 512))
    assert b is not a  # a is still referenced
    del a
    c = _buffers.empty((512, 512))
    assert not np.shares_memory(c, view)  # a view keeps its base alive
    del view, c
    d = _buffers.empty((512, 512))
    assert d.shape == (512, 512) and d.flags.c_contiguous and d.dtype == np.float32


def test_recycled_array_is_reused_once_free():
    a = _buffers.empty((300, 300))
    ident = id(a)
    del a
    assert id(_buffers.empty((300, 300))) == ident


def test_training_grads_are_independent_across_steps():
    # A gradient the caller keeps must not be overwritten by the next step.
    from fastseg import models, nn

    fastseg.seed(0)
    net = models.lai2d()
    x = np.random.default_rng(0).standard_normal((2, 1, 24, 24)).astype(np.float32)
    y = np.array([0, 1])
    loss = nn.CrossEntropyLoss()
    loss(net(x), y)
    net.backward(loss.backward())
    kept = [p.grad for p in net.parameters()]
    copies = [g.copy() for g in kept]
    net.zero_grad()
    loss(net(x * 2), y)
    net.backward(loss.backward())
    for g, c in zip(kept, copies, strict=True):
        np.testing.assert_array_equal(g, c)


@pytest.mark.parametrize("case", [
    # (n, c, h, w, f, k, stride, padding): packed weight above conv_fused.c's 2**20 floats,
    # so the forward packs it once for all threads
    (1, 64, 6, 20, 700, 5, 1, 0),     # output rows of 16: the image read in place
    (1, 64, 9, 13, 700, 5, 1, 0),     # ragged rows: B packed from the image
    (3, 50, 13, 11, 130, 13, 2, 3),   # batch 3, stride 2, padding, ten deep K blocks
])
def test_huge_weight_convolution(case):
    n, c, h, w, f, k, s, p = case
    rng = np.random.default_rng(f * k)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    wt = rng.standard_normal((f, c, k, k), dtype=np.float32)
    b = rng.standard_normal(f, dtype=np.float32)
    old = fastseg.get_num_threads()
    try:
        outs = []
        for threads in (1, 2):
            fastseg.set_num_threads(threads)
            outs.append(ops.conv2d(x, wt, b, s, p, backend="c"))
        # a non-contiguous input (every other channel of a wider array) reads the same
        wide = np.zeros((n, 2 * c, h, w), np.float32)
        wide[:, ::2] = x
        strided = ops.conv2d(wide[:, ::2], wt, b, s, p, backend="c")
        dy = rng.standard_normal(outs[0].shape, dtype=np.float32)
        dx, dw, db = ops.conv2d_backward(x, wt, dy, s, p, backend="c")
    finally:
        fastseg.set_num_threads(old)
    want = ref.conv2d(x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64), s, p)
    tol = 1e-5 * np.sqrt(c * k * k)
    np.testing.assert_allclose(outs[0], want, rtol=1e-4, atol=tol * np.abs(want).max())
    # threads split pixels or images, never a sum: the same bits on one thread and two
    np.testing.assert_array_equal(outs[1], outs[0])
    np.testing.assert_array_equal(strided, outs[0])
    rdx, rdw, rdb = ref.conv2d_backward(x.astype(np.float64), wt.astype(np.float64),
                                        dy.astype(np.float64), s, p)
    for got, exp in ((dx, rdx), (dw, rdw), (db, rdb)):
        np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-4 * np.abs(exp).max())


def _huge_case(seed=0):
    """A weight conv2d packs once per call for its whole team (above 2**20 floats)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 64, 6, 20), dtype=np.float32)
    wt = rng.standard_normal((700, 64, 5, 5), dtype=np.float32)
    b = rng.standard_normal(700, dtype=np.float32)
    return x, wt, b


@pytest.mark.parametrize("case", [
    (1, 64, 6, 20, 700, 5, 1, 0),     # the image read in place
    (2, 64, 9, 13, 700, 5, 1, 0),     # ragged rows: B packed, batch 2
    (3, 50, 13, 11, 130, 13, 2, 3),   # stride 2, padding, ten deep K blocks
])
def test_weight_packed_once_gives_the_same_bits(case):
    # what dense inference does with lai2d's 51 MB layer: packed once by the plan, then
    # read by every window's forward, bit for bit what conv2d gives packing it per call
    n, c, h, w, f, k, s, p = case
    rng = np.random.default_rng(f * k + n)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    wt = rng.standard_normal((f, c, k, k), dtype=np.float32)
    b = rng.standard_normal(f, dtype=np.float32)
    table = backends.table("c")
    packed = table.conv2d_weight_packed(wt)
    assert packed is not None and packed.current() and packed.shape == (f, c, k, k)
    assert packed.data.ctypes.data % 64 == 0
    old = fastseg.get_num_threads()
    try:
        for threads in (1, 2):
            fastseg.set_num_threads(threads)
            want = ops.conv2d(x, wt, b, s, p, backend="c")
            np.testing.assert_array_equal(_conv.conv2d_forward_packed(x, packed, b, s, p), want)
            for act in ("relu", "tanh", "sigmoid"):  # on each tile as it is finished
                np.testing.assert_array_equal(
                    _conv.conv2d_forward_packed(x, packed, b, s, p, act), getattr(ops, act)(want))
            if p == 0:
                np.testing.assert_array_equal(table.conv2d_packed(x, packed, b, s, None), want)
                np.testing.assert_array_equal(table.conv2d_packed(x, packed, None, s, None),
                                              ops.conv2d(x, wt, None, s, p, backend="c"))
    finally:
        fastseg.set_num_threads(old)
    exact = ref.conv2d(x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64), s, p)
    np.testing.assert_allclose(want, exact, rtol=1e-4, atol=1e-5 * np.sqrt(c * k * k)
                               * np.abs(exact).max())


def test_small_weights_are_not_packed_and_bad_packed_operands_are_refused():
    table = backends.table("c")
    assert table.conv2d_weight_packed(np.ones((50, 20, 5, 5), np.float32)) is None
    assert backends.table("numpy").conv2d_weight_packed(np.ones((700, 64, 5, 5),
                                                                np.float32)) is None
    x, wt, b = _huge_case()
    packed = table.conv2d_weight_packed(wt)
    with pytest.raises(ValueError, match="input channels"):
        table.conv2d_packed(x[:, :10].copy(), packed, b, 1, None)
    with pytest.raises(ValueError, match="PackedWeight"):
        table.conv2d_packed(x, wt, b, 1, None)
    with pytest.raises(ValueError, match="b"):
        table.conv2d_packed(x, packed, b[:5], 1, None)
    with pytest.raises(ValueError, match="activation 'gelu'"):
        table.conv2d_packed(x, packed, b, 1, "gelu")
    with pytest.raises(ValueError, match="square"):
        table.conv2d_weight_packed(np.ones((700, 64, 5, 4), np.float32))


def test_a_packed_weight_is_refused_once_the_kernels_change():
    # another deep K block (the tuner's) or another ISA with other micro-kernel rows: the
    # layout no longer matches; the forward refuses it rather than read it wrongly
    x, wt, b = _huge_case(1)
    table = backends.table("c")
    packed = table.conv2d_weight_packed(wt)
    was = _runtime.deep_kc()["kc"]
    try:
        _runtime.set_deep_kc(2048 if was != 2048 else 1024)
        assert not packed.current()
        with pytest.raises(ValueError, match="pack it again"):
            table.conv2d_packed(x, packed, b, 1, None)
        again = table.conv2d_weight_packed(wt)
        np.testing.assert_array_equal(table.conv2d_packed(x, again, b, 1, None),
                                      ops.conv2d(x, wt, b, backend="c"))
    finally:
        _runtime.set_deep_kc(0)
    assert packed.current()
    before = _runtime.isa_name()
    for name in _runtime.supported_isas():
        if name == before:
            continue
        try:
            _runtime.select_isa(name)
            if _runtime.blocking()["mr"] != packed.mr:  # avx512's 10 rows, avx2's 6
                assert not packed.current()
                with pytest.raises(ValueError, match="pack it again"):
                    table.conv2d_packed(x, packed, b, 1, None)
            elif packed.current():  # generic reads avx2's format: the same layout
                np.testing.assert_array_equal(table.conv2d_packed(x, packed, b, 1, None),
                                              ops.conv2d(x, wt, b, backend="c"))
        finally:
            _runtime.select_isa(before)
