"""The NumPy reference backend against first principles.

Finite differences in float64 check every backward function; direct loops
check the forward ones. The compiled backends are then tested against this
reference (test_ops_backends.py), so it has to be right on its own.
"""
import numpy as np
import pytest
from gradcheck import assert_gradient

from fastseg.backends import numpy_backend as ref


def direct_conv(x, w, b, stride, padding):
    n, c, h, wd = x.shape
    f, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = (h + 2 * padding - k) // stride + 1, (wd + 2 * padding - k) // stride + 1
    y = np.zeros((n, f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            y[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return y + (0 if b is None else b.reshape(1, f, 1, 1))


CONV_CASES = [  # (n, c, h, w, f, k, stride, padding)
    (1, 1, 5, 5, 1, 1, 1, 0),
    (2, 3, 7, 5, 2, 3, 1, 1),
    (1, 2, 6, 7, 3, 3, 2, 0),
    (2, 1, 5, 6, 2, 5, 2, 2),
    (1, 3, 3, 3, 2, 3, 1, 0),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_direct_loops(case, rng):
    n, c, h, w, f, k, s, p = case
    x, wt, b = rng.normal(size=(n, c, h, w)), rng.normal(size=(f, c, k, k)), rng.normal(size=f)
    np.testing.assert_allclose(ref.conv2d(x, wt, b, s, p), direct_conv(x, wt, b, s, p),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_backward_finite_differences(case, rng):
    n, c, h, w, f, k, s, p = case
    x, wt = rng.normal(size=(n, c, h, w)), rng.normal(size=(f, c, k, k))
    b = rng.normal(size=f)
    y = ref.conv2d(x, wt, b, s, p)
    dy = rng.normal(size=y.shape)
    dx, dw, db = ref.conv2d_backward(x, wt, dy, s, p)

    def loss():
        return float((ref.conv2d(x, wt, b, s, p) * dy).sum())

    for got, var, name in ((dx, x, "dx"), (dw, wt, "dw"), (db, b, "db")):
        assert_gradient(got, loss, var, eps=1e-6, rtol=1e-5, atol=1e-7, name=name)


@pytest.mark.parametrize("case", CONV_CASES)
def test_col2im_is_the_adjoint_of_im2col(case, rng):
    n, c, h, w, _, k, s, p = case
    x = rng.normal(size=(n, c, h, w))
    cols = ref.im2col(x, k, s, p)
    other = rng.normal(size=cols.shape)
    lhs = float((cols * other).sum())
    rhs = float((x * ref.col2im(other, x.shape, k, s, p)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-10)


def test_linear_backward_finite_differences(rng):
    x, w, b = rng.normal(size=(3, 7)), rng.normal(size=(5, 7)), rng.normal(size=5)
    dy = rng.normal(size=(3, 5))
    dx, dw, db = ref.linear_backward(x, w, dy)

    def loss():
        return float((ref.linear(x, w, b) * dy).sum())

    for got, var, name in ((dx, x, "dx"), (dw, w, "dw"), (db, b, "db")):
        assert_gradient(got, loss, var, eps=1e-6, rtol=1e-6, atol=1e-8, name=name)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "xsin"])
def test_activation_backward_finite_differences(name, rng):
    x = rng.normal(size=(4, 5)) * 3
    x[np.abs(x) < 1e-3] = 0.5  # keep relu away from its kink
    dy = rng.normal(size=x.shape)
    forward, backward = getattr(ref, name), getattr(ref, name + "_backward")

    def loss():
        return float((forward(x) * dy).sum())

    assert_gradient(backward(x, dy), loss, x, eps=1e-6, rtol=1e-6, atol=1e-8, name=name)


def test_sigmoid_is_stable_for_large_inputs():
    x = np.array([-1e4, -100.0, 0.0, 100.0, 1e4], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = ref.sigmoid(x)
    np.testing.assert_allclose(y, [0, 0, 0.5, 1, 1], atol=1e-30)


@pytest.mark.parametrize("k,stride", [(2, 2), (3, 1), (3, 2), (2, 3)])
def test_max_pool_matches_loops_and_gradient(k, stride, rng):
    x = rng.normal(size=(2, 3, 7, 8))
    y, idx = ref.max_pool2d(x, k, stride)
    n, c, oh, ow = y.shape
    for i in range(oh):
        for j in range(ow):
            win = x[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            np.testing.assert_array_equal(y[:, :, i, j], win.max(axis=(2, 3)))
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(n, c, -1),
                                                     idx.reshape(n, c, -1), axis=2),
                                  y.reshape(n, c, -1))
    dy = rng.normal(size=y.shape)

    def loss():
        return float((ref.max_pool2d(x, k, stride)[0] * dy).sum())

    assert_gradient(ref.max_pool2d_backward(dy, idx, x.shape), loss, x, eps=1e-6, rtol=1e-6,
                    atol=1e-8, name="max_pool2d")


def test_max_pool_ties_take_the_first_maximum():
    x = np.zeros((1, 1, 2, 2))
    _, idx = ref.max_pool2d(x, 2, 2)
    assert idx.item() == 0


@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_cross_entropy_value_and_gradient(weighted, rng):
    logits, labels = rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    cw = rng.uniform(0.2, 2.0, size=4) if weighted else None
    loss, d = ref.softmax_cross_entropy(logits, labels, cw)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    wi = np.ones(6) if cw is None else cw[labels]
    expected = -(wi * np.log(p[np.arange(6), labels])).sum() / wi.sum()
    assert loss == pytest.approx(expected, rel=1e-10)

    def f():
        return ref.softmax_cross_entropy(logits, labels, cw)[0]

    assert_gradient(d, f, logits, eps=1e-6, rtol=1e-6, atol=1e-8, name="dlogits")


def test_softmax_against_its_definition_and_stable(rng):
    logits = rng.normal(size=(5, 3))
    e = np.exp(logits)
    np.testing.assert_allclose(ref.softmax(logits), e / e.sum(axis=1, keepdims=True),
                               rtol=1e-12)
    huge = np.array([[1e4, -1e4, 0.0], [3.0, 3.0, 3.0]])
    np.testing.assert_allclose(ref.softmax(huge), [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]],
                               atol=1e-12)
    # The loss is the log of this softmax: one formula for both.
    labels = np.array([0, 2, 1, 1, 0])
    loss, _ = ref.softmax_cross_entropy(logits, labels, None)
    assert loss == pytest.approx(-np.log(ref.softmax(logits)[np.arange(5), labels]).mean())


def test_softmax_cross_entropy_is_finite_for_huge_logits():
    logits = np.array([[1e4, -1e4], [-1e4, 1e4], [0.0, 0.0]], dtype=np.float32)
    loss, d = ref.softmax_cross_entropy(logits, np.array([0, 0, 1]), None)
    assert np.isfinite(loss) and np.isfinite(d).all()
    assert loss == pytest.approx((0 + 2e4 + np.log(2)) / 3, rel=1e-6)
