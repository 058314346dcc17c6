"""The fast paths added for speed: one-row GEMMs (the small-dimension path) and recycled
outputs."""
import numpy as np
import pytest

import fastseg
from fastseg import ops
from fastseg._cy import _buffers


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
