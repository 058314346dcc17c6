"""The NumPy reference of the 3-D operations against first principles.

Direct loops check the forwards, finite differences in float64 every gradient;
the compiled backends are then tested against this reference
(test_ops3d_backends.py), so it has to be right on its own.
"""
import itertools

import numpy as np
import pytest
from gradcheck import assert_gradient

from fastseg.backends import numpy_conv3d as ref


def direct_conv3d(x, w, b, stride, padding):
    n, c = x.shape[:2]
    f, _, *k = w.shape
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in padding))
    out = [(x.shape[2 + a] + 2 * padding[a] - k[a]) // stride[a] + 1 for a in range(3)]
    y = np.zeros((n, f, *out))
    for z, r, q in itertools.product(*(range(o) for o in out)):
        patch = xp[:, :, z * stride[0]:z * stride[0] + k[0], r * stride[1]:r * stride[1] + k[1],
                   q * stride[2]:q * stride[2] + k[2]]
        y[:, :, z, r, q] = np.tensordot(patch, w, axes=([1, 2, 3, 4], [1, 2, 3, 4]))
    return y + (0 if b is None else b.reshape(1, f, 1, 1, 1))


CONV_CASES = [  # x shape, w shape, stride, padding
    ((1, 1, 1, 1, 1), (1, 1, 1, 1, 1), (1, 1, 1), (0, 0, 0)),
    ((2, 3, 4, 5, 3), (2, 3, 3, 3, 2), (1, 1, 1), (1, 0, 1)),
    ((1, 2, 5, 4, 6), (3, 2, 2, 3, 3), (2, 1, 2), (0, 1, 2)),
    ((2, 1, 3, 1, 4), (2, 1, 3, 1, 2), (1, 1, 3), (1, 0, 0)),
    ((1, 2, 1, 5, 5), (2, 2, 1, 3, 3), (1, 2, 2), (0, 1, 1)),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv3d_matches_direct_loops(case, rng):
    xs, ws, s, p = case
    x, w, b = rng.normal(size=xs), rng.normal(size=ws), rng.normal(size=ws[0])
    np.testing.assert_allclose(ref.conv3d(x, w, b, s, p), direct_conv3d(x, w, b, s, p),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ref.conv3d(x, w, None, s, p), direct_conv3d(x, w, None, s, p),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv3d_backward_finite_differences(case, rng):
    xs, ws, s, p = case
    x, w, b = rng.normal(size=xs), rng.normal(size=ws), rng.normal(size=ws[0])
    dy = rng.normal(size=ref.conv3d(x, w, b, s, p).shape)
    dx, dw, db = ref.conv3d_backward(x, w, dy, s, p)

    def loss():
        return float((ref.conv3d(x, w, b, s, p) * dy).sum())

    for name, got, var in (("dx", dx, x), ("dw", dw, w), ("db", db, b)):
        assert_gradient(got, loss, var, eps=1e-6, rtol=1e-5, atol=1e-7, name=name)
    assert ref.conv3d_backward(x, w, dy, s, p, need_dx=False)[0] is None


@pytest.mark.parametrize("case", CONV_CASES)
def test_col2vol_is_the_adjoint_of_vol2col(case, rng):
    xs, ws, s, p = case
    x = rng.normal(size=xs)
    cols = ref.vol2col(x, ws[2:], s, p)
    other = rng.normal(size=cols.shape)
    lhs = float((cols * other).sum())
    rhs = float((x * ref.col2vol(other, x.shape, ws[2:], s, p)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-10)


@pytest.mark.parametrize("k,stride", [((2, 2, 2), (2, 2, 2)), ((3, 2, 1), (1, 2, 1)),
                                      ((2, 3, 2), (3, 1, 2)), ((1, 1, 1), (1, 1, 1))])
def test_max_pool3d_matches_loops_and_gradient(k, stride, rng):
    x = rng.normal(size=(2, 2, 5, 6, 5))
    y, idx = ref.max_pool3d(x, k, stride)
    n, c = y.shape[:2]
    for z, r, q in itertools.product(*(range(o) for o in y.shape[2:])):
        win = x[:, :, z * stride[0]:z * stride[0] + k[0], r * stride[1]:r * stride[1] + k[1],
                q * stride[2]:q * stride[2] + k[2]]
        np.testing.assert_array_equal(y[:, :, z, r, q], win.max(axis=(2, 3, 4)))
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(n, c, -1), idx.reshape(n, c, -1),
                                                     axis=2), y.reshape(n, c, -1))
    dy = rng.normal(size=y.shape)

    def loss():
        return float((ref.max_pool3d(x, k, stride)[0] * dy).sum())

    assert_gradient(ref.max_pool3d_backward(dy, idx, x.shape), loss, x, eps=1e-6, rtol=1e-6,
                    atol=1e-8, name="dx")


def test_max_pool3d_ties_take_the_first_maximum_and_nan_wins():
    x = np.zeros((1, 1, 2, 2, 2))
    assert ref.max_pool3d(x, (2, 2, 2), (2, 2, 2))[1].item() == 0
    x[0, 0, 1, 0, 1] = np.nan
    y, idx = ref.max_pool3d(x, (2, 2, 2), (2, 2, 2))
    assert np.isnan(y.item()) and idx.item() == (1 * 2 + 0) * 2 + 1
