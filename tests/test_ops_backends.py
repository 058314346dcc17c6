"""Every op of every compiled backend against the NumPy reference, once per
instruction set of the C kernels this CPU runs (the `isa` fixture; the others
are skipped with the reason).

The reference runs in float64 on the same float32 inputs, so the only
difference left is the backend's float32 rounding.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastseg
from fastseg import ops
from fastseg.backends import numpy_backend as ref

pytestmark = pytest.mark.usefixtures("isa")


def f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def close(got, want, k=1):
    """float32 result vs float64 reference; error grows with the sum length k."""
    assert got.dtype == np.float32
    assert got.shape == want.shape
    tol = 2e-6 * np.sqrt(max(k, 1)) * max(1.0, float(np.abs(want).max(initial=0)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=tol)


def d64(a):
    return np.asarray(a, dtype=np.float64)


def test_c_backend_is_built_and_default():
    # A broken build must fail loudly here rather than skip the C tests.
    assert "c" in fastseg.available_backends()
    assert fastseg.get_backend() == "c"


# Around both packing formats' tiles (6 x 16 and 10 x 32) and past a K block.
GEMM_SHAPES = [(0, 3, 4), (3, 0, 4), (3, 4, 0), (1, 1, 1), (2, 3, 5), (7, 13, 11), (6, 16, 1),
               (17, 31, 97), (50, 25, 400), (128, 300, 130), (5, 700, 3), (300, 3, 520),
               (11, 33, 7), (10, 32, 300)]


@pytest.mark.parametrize("m,n,k", GEMM_SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm(backend, m, n, k, trans_a, trans_b, rng):
    a = f32(rng, *((k, m) if trans_a else (m, k)))
    b = f32(rng, *((n, k) if trans_b else (k, n)))
    got = ops.gemm(a, b, trans_a, trans_b, backend=backend)
    close(got, ref.gemm(d64(a), d64(b), trans_a, trans_b), k)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(0, 40), n=st.integers(0, 70), k=st.integers(0, 300),
       ta=st.booleans(), tb=st.booleans(), seed=st.integers(0, 2**31))
def test_gemm_any_shape(m, n, k, ta, tb, seed):
    rng = np.random.default_rng(seed)
    a = f32(rng, *((k, m) if ta else (m, k)))
    b = f32(rng, *((n, k) if tb else (k, n)))
    close(ops.gemm(a, b, ta, tb, backend="c"), ref.gemm(d64(a), d64(b), ta, tb), k)


CONV_CASES = [  # (n, c, h, w, f, k, stride, padding)
    (1, 1, 1, 1, 1, 1, 1, 0),
    (1, 1, 24, 24, 20, 5, 1, 0),
    (3, 20, 20, 20, 50, 5, 1, 0),
    (2, 3, 7, 5, 2, 3, 1, 1),
    (1, 2, 13, 11, 3, 3, 2, 0),
    (2, 5, 9, 10, 7, 5, 2, 2),
    (1, 3, 3, 3, 2, 3, 1, 0),
    (2, 7, 6, 6, 4, 1, 1, 0),
    (2, 4, 6, 5, 3, 1, 2, 1),
    (1, 1, 2, 3, 1, 4, 3, 1),
    (5, 2, 17, 19, 13, 2, 1, 0),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_and_backward(backend, case, rng):
    n, c, h, w, f, k, s, p = case
    x, wt, b = f32(rng, n, c, h, w), f32(rng, f, c, k, k), f32(rng, f)
    y = ops.conv2d(x, wt, b, s, p, backend=backend)
    close(y, ref.conv2d(d64(x), d64(wt), d64(b), s, p), c * k * k)
    close(ops.conv2d(x, wt, None, s, p, backend=backend), ref.conv2d(d64(x), d64(wt), None, s, p),
          c * k * k)
    dy = f32(rng, *y.shape)
    dx, dw, db = ops.conv2d_backward(x, wt, dy, s, p, backend=backend)
    rdx, rdw, rdb = ref.conv2d_backward(d64(x), d64(wt), d64(dy), s, p)
    close(dx, rdx, f * k * k)
    close(dw, rdw, n * y.shape[2] * y.shape[3])
    close(db, rdb, n * y.shape[2] * y.shape[3])
    # Without dx: None, and the same weight and bias gradients to the bit.
    none, dw2, db2 = ops.conv2d_backward(x, wt, dy, s, p, need_dx=False, backend=backend)
    assert none is None
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)


@pytest.mark.parametrize("case", CONV_CASES)
def test_im2col_col2im(backend, case, rng):
    n, c, h, w, _, k, s, p = case
    x = f32(rng, n, c, h, w)
    cols = ops.im2col(x, k, s, p, backend=backend)
    np.testing.assert_array_equal(cols, ref.im2col(x, k, s, p))
    other = f32(rng, *cols.shape)
    close(ops.col2im(other, x.shape, k, s, p, backend=backend),
          ref.col2im(d64(other), x.shape, k, s, p), k * k)


@pytest.mark.parametrize("n,i,o", [(1, 1, 1), (3, 7, 5), (128, 800, 31), (2, 12800, 3)])
def test_linear(backend, n, i, o, rng):
    x, w, b = f32(rng, n, i), f32(rng, o, i), f32(rng, o)
    close(ops.linear(x, w, b, backend=backend), ref.linear(d64(x), d64(w), d64(b)), i)
    dy = f32(rng, n, o)
    got = ops.linear_backward(x, w, dy, backend=backend)
    for g, r, k in zip(got, ref.linear_backward(d64(x), d64(w), d64(dy)), (o, n, n),
                       strict=True):
        close(g, r, k)
    none, dw, db = ops.linear_backward(x, w, dy, need_dx=False, backend=backend)
    assert none is None
    np.testing.assert_array_equal(dw, got[1])
    np.testing.assert_array_equal(db, got[2])


@pytest.mark.parametrize("shape,k,stride", [((1, 1, 2, 2), 2, None), ((2, 3, 7, 8), 2, None),
                                             ((2, 3, 7, 8), 3, 2), ((1, 5, 9, 9), 3, 1),
                                             ((3, 2, 5, 11), 2, 3)])
def test_max_pool2d(backend, shape, k, stride, rng):
    x = f32(rng, *shape)
    x[0, 0, 0, :2] = 7.0  # a tie inside one window: the first must win
    y, idx = ops.max_pool2d(x, k, stride, backend=backend)
    ry, ridx = ref.max_pool2d(x, k, k if stride is None else stride)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    assert idx.dtype == np.int64
    dy = f32(rng, *y.shape)
    close(ops.max_pool2d_backward(dy, idx, x.shape, backend=backend),
          ref.max_pool2d_backward(d64(dy), ridx, x.shape), k * k)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "xsin"])
@pytest.mark.parametrize("shape", [(1,), (3, 5), (2, 3, 4, 5), (70001,)])
def test_activations(backend, name, shape, rng):
    x = f32(rng, *shape, scale=4.0)
    x.flat[:3] = [0.0, 50.0, -50.0][: x.size]
    close(getattr(ops, name)(x, backend=backend), getattr(ref, name)(d64(x)))
    dy = f32(rng, *shape)
    close(getattr(ops, name + "_backward")(x, dy, backend=backend),
          getattr(ref, name + "_backward")(d64(x), d64(dy)))


@pytest.mark.parametrize("n,k", [(1, 2), (7, 2), (128, 2), (5, 11)])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_cross_entropy(backend, n, k, weighted, rng):
    logits = f32(rng, n, k, scale=3.0)
    labels = rng.integers(0, k, size=n)
    cw = rng.uniform(0.1, 3.0, size=k).astype(np.float32) if weighted else None
    loss, d = ops.softmax_cross_entropy(logits, labels, cw, backend=backend)
    rloss, rd = ref.softmax_cross_entropy(d64(logits), labels, None if cw is None else d64(cw))
    assert loss == pytest.approx(rloss, rel=1e-5)
    close(d, rd)


@pytest.mark.parametrize("n,k", [(1, 2), (7, 2), (5, 11), (0, 3)])
def test_softmax(backend, n, k, rng):
    logits = f32(rng, n, k, scale=3.0)
    close(ops.softmax(logits, backend=backend), ref.softmax(d64(logits)))


def test_softmax_cross_entropy_huge_logits(backend):
    logits = np.array([[1e4, -1e4], [-1e4, 1e4], [3.0, 3.0]], dtype=np.float32)
    loss, d = ops.softmax_cross_entropy(logits, np.array([0, 0, 1]), backend=backend)
    assert np.isfinite(loss) and np.isfinite(d).all()
    assert loss == pytest.approx((2e4 + np.log(2)) / 3, rel=1e-5)


def test_int32_labels_are_accepted(backend, rng):
    logits = f32(rng, 4, 3)
    a = ops.softmax_cross_entropy(logits, np.array([0, 1, 2, 1], np.int32), backend=backend)
    b = ops.softmax_cross_entropy(logits, np.array([0, 1, 2, 1], np.int64), backend=backend)
    assert a[0] == b[0]


def _update_case(rng, n=1000):
    return f32(rng, n), f32(rng, n)


@pytest.mark.parametrize("momentum,dampening,wd,nesterov", [(0, 0, 0, False), (0.9, 0, 0, False),
                                                            (0.9, 0.1, 1e-2, False),
                                                            (0.9, 0, 1e-3, True)])
def test_sgd_update(backend, momentum, dampening, wd, nesterov, rng):
    p, g = _update_case(rng)
    p_ref, buf, buf_ref = p.astype(np.float64), np.zeros_like(p), np.zeros(p.shape)
    for step in range(3):
        ops.sgd_update(p, g, buf, 0.1, momentum, dampening, wd, nesterov, step == 0,
                       backend=backend)
        ref.sgd_update(p_ref, d64(g), buf_ref, 0.1, momentum, dampening, wd, nesterov, step == 0)
    close(p, p_ref)


def test_adam_update(backend, rng):
    p, g = _update_case(rng)
    m, v = np.zeros_like(p), np.zeros_like(p)
    p_ref, m_ref, v_ref = p.astype(np.float64), np.zeros(p.shape), np.zeros(p.shape)
    for step in range(1, 4):
        ops.adam_update(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 1e-2, step, backend=backend)
        ref.adam_update(p_ref, d64(g), m_ref, v_ref, 1e-2, 0.9, 0.999, 1e-8, 1e-2, step)
    close(p, p_ref)
    close(v, v_ref)


def test_rprop_update(backend, rng):
    p = f32(rng, 1000)
    prev, step = np.zeros_like(p), np.full_like(p, 0.01)
    p_ref, prev_ref, step_ref = p.astype(np.float64), np.zeros(p.shape), np.full(p.shape, 0.01)
    for _ in range(4):
        g = f32(rng, 1000)
        ops.rprop_update(p, g, prev, step, 0.5, 1.2, 1e-6, 50, backend=backend)
        ref.rprop_update(p_ref, d64(g), prev_ref, step_ref, 0.5, 1.2, 1e-6, 50)
    close(step, step_ref)
    close(p, p_ref)


# ---- layouts, dtypes, empties, threads, ISAs -------------------------------------


def test_other_dtypes_and_layouts_give_the_same_answer(backend, rng):
    x, w = f32(rng, 2, 3, 9, 9), f32(rng, 4, 3, 3, 3)
    want = ops.conv2d(x, w, backend=backend)
    variants = [x.astype(np.float64), np.asfortranarray(x),
                np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (0, 0), (0, 1)))[..., :9]),
                np.repeat(x, 2, axis=3)[..., ::2]]
    ro = x.copy()
    ro.setflags(write=False)
    variants.append(ro)
    for xv in variants:
        np.testing.assert_array_equal(ops.conv2d(xv, w, backend=backend), want)
    xi = rng.integers(-3, 4, size=(2, 3, 9, 9))
    close(ops.conv2d(xi, w, backend=backend), ref.conv2d(xi.astype(float), d64(w), None, 1, 0),
          27)
    a, b = f32(rng, 30, 20), f32(rng, 30, 5)
    np.testing.assert_array_equal(ops.gemm(a.copy(), b, True, False, backend=backend),
                                  ops.gemm(np.asfortranarray(a), b[::1], True, False,
                                           backend=backend))
    np.testing.assert_array_equal(ops.gemm(a.T[:, ::2], b[::2], backend=backend),
                                  ops.gemm(np.ascontiguousarray(a.T[:, ::2]),
                                           np.ascontiguousarray(b[::2]), backend=backend))


def test_empty_batch_gives_empty_results(backend):
    x, w = np.zeros((0, 3, 8, 8), np.float32), np.ones((4, 3, 3, 3), np.float32)
    assert ops.conv2d(x, w, padding=1, backend=backend).shape == (0, 4, 8, 8)
    dx, dw, db = ops.conv2d_backward(x, w, np.zeros((0, 4, 6, 6), np.float32), backend=backend)
    assert dx.shape == x.shape and not dw.any() and not db.any()
    dx, dw, db = ops.conv2d_backward(x, w, np.zeros((0, 4, 6, 6), np.float32), need_dx=False,
                                     backend=backend)
    assert dx is None and dw.shape == w.shape and not dw.any()
    assert ops.linear(np.zeros((0, 5)), np.ones((2, 5)), backend=backend).shape == (0, 2)
    assert ops.max_pool2d(x, backend=backend)[0].shape == (0, 3, 4, 4)
    assert ops.im2col(x, 3, backend=backend).shape == (27, 0)
    assert ops.relu(np.zeros((0, 3)), backend=backend).shape == (0, 3)


@pytest.mark.usefixtures("threads")
def test_one_and_two_threads_agree(backend, rng):
    x, w = f32(rng, 16, 20, 20, 20), f32(rng, 50, 20, 5, 5)
    a, b = f32(rng, 200, 700), f32(rng, 700, 300)
    results = []
    for n in (1, 2):
        fastseg.set_num_threads(n)
        assert fastseg.get_num_threads() == n
        y = ops.conv2d(x, w, backend=backend)
        results.append((y, *ops.conv2d_backward(x, w, y, backend=backend), ops.gemm(a, b)))
    for one, two in zip(*results, strict=True):
        close(two, d64(one), 500)


@pytest.mark.usefixtures("threads")
def test_every_extension_module_shares_one_kernel_state():
    # The kernels' process-wide state (threads, ISA, workspaces) must exist
    # once: a static copy inside each extension module would make
    # set_num_threads reach only some of the kernels.
    import ctypes
    import pathlib
    import shutil
    import subprocess

    from fastseg._cy import _runtime

    folder = pathlib.Path(_runtime.__file__).parent
    libs = list(folder.glob("libfastseg_kernels*"))
    assert len(libs) == 1
    lib = ctypes.CDLL(str(libs[0]))
    for n in (1, 2, 1):
        fastseg.set_num_threads(n)
        assert lib.fs_get_num_threads() == n
    nm = shutil.which("nm")
    for module in folder.glob("_*.so") if nm else []:
        defined = subprocess.run([nm, "-D", "--defined-only", str(module)], check=True,
                                 capture_output=True, text=True).stdout
        assert "fs_get_num_threads" not in defined, f"{module.name} has its own kernel copy"
