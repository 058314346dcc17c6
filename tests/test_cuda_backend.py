"""The "cuda" backend (Numba CUDA kernels) against the NumPy reference.

Without a GPU this runs on Numba's CPU simulator (tests/conftest.py sets
NUMBA_ENABLE_CUDASIM=1 before numba is imported), where every CUDA thread is a
Python thread: the shapes here are tiny but chosen to cross every edge of the
kernels (partial tiles, all four GEMM transposes, split-K, several conv
chunks, strides and padding, pooling ties). On a real GPU the same tests run
on the device, and tests/test_ops_backends.py adds the large shapes.
"""
import numpy as np
import pytest

import fastseg
from fastseg import ops
from fastseg.backends import numpy_backend as ref

if "cuda" not in fastseg.available_backends():
    pytest.skip("the cuda backend is not available here (numba-cuda missing?)",
                allow_module_level=True)

from numba import cuda  # noqa: E402  (after the skip: numba-cuda may be absent)

from fastseg.backends._cuda import conv as cuda_conv  # noqa: E402
from fastseg.backends._cuda import gemm as cuda_gemm  # noqa: E402

BE = "cuda"


def f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def d64(a):
    return np.asarray(a, dtype=np.float64)


def host(a):
    return a if isinstance(a, np.ndarray) else a.copy_to_host()


def close(got, want, k=1):
    """float32 result vs float64 reference; the error grows with the sum length k."""
    got = host(got)
    assert got.dtype == np.float32
    assert got.shape == want.shape
    tol = 2e-6 * np.sqrt(max(k, 1)) * max(1.0, float(np.abs(want).max(initial=0)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=tol)


def on_device(a):
    return not isinstance(a, np.ndarray) and hasattr(a, "copy_to_host")


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


# ---- GEMM ---------------------------------------------------------------------------


def _operands(rng, m, n, k, ta, tb):
    a = f32(rng, *((k, m) if ta else (m, k)))
    b = f32(rng, *((n, k) if tb else (k, n)))
    return a, b


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 13, 11), (17, 18, 21), (3, 4, 0)])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_gemm(m, n, k, ta, tb, rng):
    a, b = _operands(rng, m, n, k, ta, tb)
    close(ops.gemm(a, b, ta, tb, backend=BE), ref.gemm(d64(a), d64(b), ta, tb), k)


@pytest.mark.parametrize("tiles", [cuda_gemm.MEDIUM, cuda_gemm.LARGE], ids=["64x64", "128x128"])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, True)])
def test_gemm_gpu_tile_configurations(tiles, ta, tb, rng):
    # The configurations a real GPU uses, on a product with partial tiles.
    a, b = _operands(rng, 9, 70, 19, ta, tb)
    got = cuda_gemm.gemm(cuda.to_device(a), cuda.to_device(b), ta, tb, tiles=tiles)
    close(got, ref.gemm(d64(a), d64(b), ta, tb), 19)


@pytest.mark.parametrize("accumulate", [False, True])
def test_gemm_split_k_and_accumulate(accumulate, rng):
    a, b = _operands(rng, 5, 6, 37, True, False)
    start = f32(rng, 5, 6)
    out = cuda.to_device(start)
    cuda_gemm.gemm(cuda.to_device(a), cuda.to_device(b), True, False, out=out,
                   accumulate=accumulate, splits=3)
    want = ref.gemm(d64(a), d64(b), True, False) + (start if accumulate else 0)
    close(out, want, 37)


def test_gemm_row_slabs(monkeypatch, rng):
    # Products taller than the grid's y limit run as several launches.
    monkeypatch.setattr(cuda_gemm, "_MAX_GRID_Y", 1)
    a, b = _operands(rng, 40, 5, 6, False, False)
    close(ops.gemm(a, b, backend=BE), ref.gemm(d64(a), d64(b), False, False), 6)


def test_gemm_bias_epilogue(rng):
    a, b, bias = f32(rng, 5, 3), f32(rng, 3, 4), f32(rng, 5)
    got = cuda_gemm.gemm(cuda.to_device(a), cuda.to_device(b), bias=cuda.to_device(bias),
                         bias_mode=cuda_gemm.BIAS_PER_ROW)
    close(got, d64(a) @ d64(b) + d64(bias)[:, None], 3)


# ---- convolution ------------------------------------------------------------------------

CONV_CASES = [  # (n, c, h, w, f, k, stride, padding)
    (2, 3, 7, 5, 2, 3, 1, 1),
    (1, 2, 9, 8, 3, 3, 2, 0),
    (2, 2, 7, 8, 3, 5, 2, 2),
    (2, 3, 4, 4, 2, 1, 1, 0),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_and_backward(case, rng):
    n, c, h, w, f, k, s, p = case
    x, wt, b = f32(rng, n, c, h, w), f32(rng, f, c, k, k), f32(rng, f)
    y = ops.conv2d(x, wt, b, s, p, backend=BE)
    close(y, ref.conv2d(d64(x), d64(wt), d64(b), s, p), c * k * k)
    close(ops.conv2d(x, wt, None, s, p, backend=BE), ref.conv2d(d64(x), d64(wt), None, s, p),
          c * k * k)
    dy = f32(rng, *y.shape)
    dx, dw, db = ops.conv2d_backward(x, wt, dy, s, p, backend=BE)
    rdx, rdw, rdb = ref.conv2d_backward(d64(x), d64(wt), d64(dy), s, p)
    close(dx, rdx, f * k * k)
    close(dw, rdw, n * y.shape[2] * y.shape[3])
    close(db, rdb, n * y.shape[2] * y.shape[3])
    none, dw2, db2 = ops.conv2d_backward(x, wt, dy, s, p, need_dx=False, backend=BE)
    assert none is None
    close(dw2, rdw, n * y.shape[2] * y.shape[3])
    close(db2, rdb, n * y.shape[2] * y.shape[3])


def test_conv2d_in_several_chunks(monkeypatch, rng):
    # A column buffer of one image at a time: 3 chunks, dw accumulated over them.
    monkeypatch.setattr(cuda_conv, "MAX_COLS_ELEMENTS", 2 * 9 * 16)
    x, wt, b = f32(rng, 3, 2, 6, 6), f32(rng, 3, 2, 3, 3), f32(rng, 3)
    close(ops.conv2d(x, wt, b, backend=BE), ref.conv2d(d64(x), d64(wt), d64(b), 1, 0), 18)
    dy = f32(rng, 3, 3, 4, 4)
    got = ops.conv2d_backward(x, wt, dy, backend=BE)
    for g, r, k in zip(got, ref.conv2d_backward(d64(x), d64(wt), d64(dy), 1, 0), (27, 48, 48),
                       strict=True):
        close(g, r, k)


@pytest.mark.parametrize("case", CONV_CASES[:3])
def test_im2col_col2im(case, rng):
    n, c, h, w, _, k, s, p = case
    x = f32(rng, n, c, h, w)
    cols = ops.im2col(x, k, s, p, backend=BE)
    np.testing.assert_array_equal(cols, ref.im2col(x, k, s, p))
    other = f32(rng, *cols.shape)
    close(ops.col2im(other, x.shape, k, s, p, backend=BE),
          ref.col2im(d64(other), x.shape, k, s, p), k * k)


# ---- dense, pooling, activations ---------------------------------------------------------


@pytest.mark.parametrize("n,i,o", [(1, 1, 1), (5, 19, 3)])
def test_linear(n, i, o, rng):
    x, w, b = f32(rng, n, i), f32(rng, o, i), f32(rng, o)
    close(ops.linear(x, w, b, backend=BE), ref.linear(d64(x), d64(w), d64(b)), i)
    close(ops.linear(x, w, backend=BE), ref.linear(d64(x), d64(w), None), i)
    dy = f32(rng, n, o)
    got = ops.linear_backward(x, w, dy, backend=BE)
    for g, r, k in zip(got, ref.linear_backward(d64(x), d64(w), d64(dy)), (o, n, n), strict=True):
        close(g, r, k)


@pytest.mark.parametrize("shape,k,stride", [((1, 1, 2, 2), 2, None), ((2, 2, 7, 8), 3, 2),
                                             ((1, 2, 5, 5), 3, 1)])
def test_max_pool2d(shape, k, stride, rng):
    x = f32(rng, *shape)
    x[0, 0, 0, :2] = 7.0  # a tie inside one window: the first must win
    if shape[2] >= 5:
        x[-1, -1, 2, 2] = np.nan  # a NaN is the maximum, as in PyTorch
    y, idx = ops.max_pool2d(x, k, stride, backend=BE)
    ry, ridx = ref.max_pool2d(x, k, k if stride is None else stride)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    assert idx.dtype == np.int64
    dy = f32(rng, *y.shape)
    close(ops.max_pool2d_backward(dy, idx, x.shape, backend=BE),
          ref.max_pool2d_backward(d64(dy), ridx, x.shape), k * k)


def test_empty_batch_results_stay_on_the_device():
    x = cuda.to_device(np.zeros((0, 3, 8, 8), np.float32))
    w = cuda.to_device(np.ones((4, 3, 3, 3), np.float32))
    y = ops.conv2d(x, w, padding=1, backend=BE)
    assert on_device(y) and y.shape == (0, 4, 8, 8)
    dy = cuda.to_device(np.zeros((0, 4, 6, 6), np.float32))
    dx, dw, db = ops.conv2d_backward(x, w, dy, backend=BE)
    assert all(on_device(a) for a in (dx, dw, db))
    assert dx.shape == (0, 3, 8, 8) and not host(dw).any() and not host(db).any()
    pooled, idx = ops.max_pool2d(x, backend=BE)
    assert on_device(pooled) and on_device(idx) and idx.dtype == np.int64
    back = ops.max_pool2d_backward(pooled, idx, (0, 3, 8, 8), backend=BE)
    assert on_device(back) and back.shape == (0, 3, 8, 8)
    # Host inputs keep host results on this backend too.
    assert isinstance(ops.conv2d(host(x), host(w), backend=BE), np.ndarray)


def test_max_pool2d_backward_refuses_out_of_range_indices(rng):
    dy = f32(rng, 1, 1, 2, 2)
    bad = np.array([[[[0, 1], [4, 16]]]])
    for indices in (bad, cuda.to_device(bad)):
        with pytest.raises(ValueError, match="indices"):
            ops.max_pool2d_backward(dy, indices, (1, 1, 4, 4), backend=BE)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "xsin"])
@pytest.mark.parametrize("shape", [(1,), (2, 3, 4, 5)])
def test_activations(name, shape, rng):
    x = f32(rng, *shape, scale=4.0)
    x.flat[:3] = [0.0, 50.0, -50.0][: x.size]
    close(getattr(ops, name)(x, backend=BE), getattr(ref, name)(d64(x)))
    dy = f32(rng, *shape)
    close(getattr(ops, name + "_backward")(x, dy, backend=BE),
          getattr(ref, name + "_backward")(d64(x), d64(dy)))


# ---- loss ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n,k", [(1, 2), (9, 2), (5, 4)])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_cross_entropy(n, k, weighted, rng):
    logits = f32(rng, n, k, scale=3.0)
    labels = rng.integers(0, k, size=n)
    cw = rng.uniform(0.1, 3.0, size=k).astype(np.float32) if weighted else None
    loss, d = ops.softmax_cross_entropy(logits, labels, cw, backend=BE)
    rloss, rd = ref.softmax_cross_entropy(d64(logits), labels, None if cw is None else d64(cw))
    assert isinstance(loss, float)
    assert loss == pytest.approx(rloss, rel=1e-5)
    close(d, rd)


@pytest.mark.parametrize("n,k", [(1, 2), (7, 3), (0, 2)])
def test_softmax_matches_reference_on_host_and_device(n, k, rng):
    logits = f32(rng, n, k, scale=3.0)
    want = ref.softmax(d64(logits))
    close(ops.softmax(logits, backend=BE), want)
    got = ops.softmax(cuda.to_device(logits), backend=BE)
    assert on_device(got)
    close(got, want)
    close(ops.softmax(np.array([[1e4, -1e4], [3.0, 3.0]], np.float32), backend=BE),
          np.array([[1.0, 0.0], [0.5, 0.5]]))


def test_softmax_cross_entropy_huge_logits():
    logits = np.array([[1e4, -1e4], [-1e4, 1e4], [3.0, 3.0]], dtype=np.float32)
    loss, d = ops.softmax_cross_entropy(logits, np.array([0, 0, 1]), backend=BE)
    assert np.isfinite(loss) and np.isfinite(d).all()
    assert loss == pytest.approx((2e4 + np.log(2)) / 3, rel=1e-5)


def test_softmax_cross_entropy_checks_device_inputs(rng):
    logits = f32(rng, 4, 3)
    want = ops.softmax_cross_entropy(logits, np.array([0, 1, 2, 1]), backend=BE)[0]
    labels32 = cuda.to_device(np.array([0, 1, 2, 1], np.int32))
    loss, d = ops.softmax_cross_entropy(cuda.to_device(logits), labels32, backend=BE)
    assert loss == pytest.approx(want, rel=1e-6) and on_device(d)
    with pytest.raises(ValueError, match="label 3"):
        ops.softmax_cross_entropy(logits, cuda.to_device(np.array([0, 1, 3, 1])), backend=BE)
    logits[1, 1] = np.inf
    with pytest.raises(ValueError, match="logits"):
        ops.softmax_cross_entropy(cuda.to_device(logits), np.array([0, 1, 2, 1]), backend=BE)


# ---- optimizer updates ------------------------------------------------------------------


@pytest.mark.parametrize("momentum,dampening,wd,nesterov", [(0, 0, 0, False),
                                                            (0.9, 0.1, 1e-2, False),
                                                            (0.9, 0, 1e-3, True)])
def test_sgd_update(momentum, dampening, wd, nesterov, rng):
    p, g = f32(rng, 100), f32(rng, 100)
    p_ref, buf, buf_ref = d64(p), np.zeros_like(p), np.zeros(p.shape)
    for step in range(3):
        ops.sgd_update(p, g, buf, 0.1, momentum, dampening, wd, nesterov, step == 0, backend=BE)
        ref.sgd_update(p_ref, d64(g), buf_ref, 0.1, momentum, dampening, wd, nesterov, step == 0)
    close(p, p_ref)
    close(buf, buf_ref)


def test_sgd_update_without_momentum_takes_no_buffer(rng):
    p, g = f32(rng, 40), f32(rng, 40)
    want = d64(p) - 0.5 * d64(g)
    p_dev = cuda.to_device(p)
    ops.sgd_update(p_dev, cuda.to_device(g), None, 0.5, backend=BE)  # device arrays
    ops.sgd_update(p, g, None, 0.5, backend=BE)  # host arrays through the device
    close(p_dev, want)
    close(p, want)


def test_adam_update(rng):
    p, g = f32(rng, 100), f32(rng, 100)
    m, v = np.zeros_like(p), np.zeros_like(p)
    p_ref, m_ref, v_ref = d64(p), np.zeros(p.shape), np.zeros(p.shape)
    for step in range(1, 4):
        ops.adam_update(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 1e-2, step, backend=BE)
        ref.adam_update(p_ref, d64(g), m_ref, v_ref, 1e-2, 0.9, 0.999, 1e-8, 1e-2, step)
    close(p, p_ref)
    close(m, m_ref)
    close(v, v_ref)


def test_rprop_update(rng):
    p = f32(rng, 100)
    prev, step = np.zeros_like(p), np.full_like(p, 0.01)
    p_ref, prev_ref, step_ref = d64(p), np.zeros(p.shape), np.full(p.shape, 0.01)
    for _ in range(4):
        g = f32(rng, 100)
        ops.rprop_update(p, g, prev, step, 0.5, 1.2, 1e-6, 50, backend=BE)
        ref.rprop_update(p_ref, d64(g), prev_ref, step_ref, 0.5, 1.2, 1e-6, 50)
    close(step, step_ref)
    close(prev, prev_ref)
    close(p, p_ref)


def test_updates_in_place_on_device(rng):
    p, g = f32(rng, 50), f32(rng, 50)
    p_dev, g_dev, buf_dev = cuda.to_device(p), cuda.to_device(g), cuda.to_device(np.zeros(50,
                                                                                     np.float32))
    ops.sgd_update(p_dev, g_dev, buf_dev, 0.5, 0.9, first_step=True, backend=BE)
    close(p_dev, d64(p) - 0.5 * d64(g))
    close(buf_dev, d64(g))


# ---- device arrays in, device arrays out ------------------------------------------------


def test_device_arrays_stay_on_device(rng):
    x, w, b = f32(rng, 2, 2, 6, 6), f32(rng, 3, 2, 3, 3), f32(rng, 3)
    xd, wd, bd = (cuda.to_device(a) for a in (x, w, b))
    y = ops.conv2d(xd, wd, bd, backend=BE)
    assert on_device(y)
    close(y, ref.conv2d(d64(x), d64(w), d64(b), 1, 0), 18)
    grads = ops.conv2d_backward(xd, wd, y, backend=BE)
    assert all(on_device(g) for g in grads)
    pooled, idx = ops.max_pool2d(y, 2, backend=BE)
    assert on_device(pooled) and on_device(idx)
    assert on_device(ops.max_pool2d_backward(pooled, idx, y.shape, backend=BE))
    assert on_device(ops.relu(y, backend=BE)) and on_device(ops.tanh_backward(y, y, backend=BE))
    a = cuda.to_device(f32(rng, 4, 5))
    assert on_device(ops.gemm(a, a, False, True, backend=BE))
    assert on_device(ops.im2col(xd, 3, backend=BE))
    # NumPy in, NumPy out.
    assert isinstance(ops.conv2d(x, w, b, backend=BE), np.ndarray)


def test_device_arrays_are_checked_not_converted(rng):
    with pytest.raises(TypeError, match="x: expected a float32 device array"):
        ops.relu(cuda.to_device(np.ones(3)), backend=BE)
    with pytest.raises(ValueError, match="x: expected a 4-D array"):
        ops.conv2d(cuda.to_device(f32(rng, 2, 6, 6)), f32(rng, 1, 2, 3, 3), backend=BE)
    strided = cuda.to_device(f32(rng, 4, 6))[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.gemm(strided, strided, True, False, backend=BE)


# ---- a few training steps against the reference backend -------------------------------


def _train(backend, to_device, steps=3):
    """conv -> relu -> linear -> softmax cross-entropy -> SGD, written with ops."""
    rng = np.random.default_rng(7)
    x, labels = f32(rng, 4, 1, 6, 6), np.array([0, 1, 1, 0])
    params = {"cw": f32(rng, 3, 1, 3, 3, scale=0.3), "cb": np.zeros(3, np.float32),
              "lw": f32(rng, 2, 48, scale=0.1), "lb": np.zeros(2, np.float32)}
    put = cuda.to_device if to_device else (lambda a: a)
    x = put(x)
    params = {k: put(v) for k, v in params.items()}
    bufs = {k: put(np.zeros(v.shape, np.float32)) for k, v in params.items()}
    losses = []
    for step in range(steps):
        h = ops.conv2d(x, params["cw"], params["cb"], padding=0, backend=backend)
        a = ops.relu(h, backend=backend)
        flat = a.reshape(4, 48)
        logits = ops.linear(flat, params["lw"], params["lb"], backend=backend)
        loss, dlogits = ops.softmax_cross_entropy(logits, labels, backend=backend)
        dflat, grads_lw, grads_lb = ops.linear_backward(flat, params["lw"], dlogits,
                                                        backend=backend)
        dh = ops.relu_backward(h, dflat.reshape(4, 3, 4, 4), backend=backend)
        _, grads_cw, grads_cb = ops.conv2d_backward(x, params["cw"], dh, backend=backend)
        grads = {"cw": grads_cw, "cb": grads_cb, "lw": grads_lw, "lb": grads_lb}
        for k in params:
            ops.sgd_update(params[k], grads[k], bufs[k], 0.5, 0.9, first_step=step == 0,
                           backend=backend)
        losses.append(loss)
    return losses, {k: host(v) for k, v in params.items()}


@pytest.mark.parametrize("to_device", [False, True], ids=["numpy-arrays", "device-arrays"])
def test_training_steps_match_the_cpu_backend(to_device):
    cpu = "c" if "c" in fastseg.available_backends() else "numpy"
    want_losses, want = _train(cpu, to_device=False)
    got_losses, got = _train(BE, to_device=to_device)
    assert got_losses == pytest.approx(want_losses, rel=1e-4)
    assert want_losses[-1] < want_losses[0]  # it did learn something
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5)
