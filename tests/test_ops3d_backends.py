"""The 3-D operations of every compiled backend against the NumPy reference and PyTorch.

The reference runs in float64 on the same float32 inputs, so what is left is
the backend's float32 rounding. PyTorch's conv3d / max_pool3d are checked for
values and every gradient (autograd) through :mod:`fastseg.ops`, on each host
backend.
"""
import numpy as np
import pytest

import fastseg
from fastseg import ops
from fastseg.backends import numpy_conv3d as ref

torch = pytest.importorskip("torch")
F = torch.nn.functional

HOST = [b for b in ("numpy", "c") if b in fastseg.available_backends()]


def f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def d64(a):
    return np.asarray(a, dtype=np.float64)


def close(got, want, k=1):
    """float32 result vs float64 reference; the error grows with the sum length k."""
    assert got.dtype == np.float32
    assert got.shape == want.shape
    tol = 2e-6 * np.sqrt(max(k, 1)) * max(1.0, float(np.abs(want).max(initial=0)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=tol)


CASES = [  # x shape, w shape, stride, padding
    ((1, 1, 1, 1, 1), (1, 1, 1, 1, 1), 1, 0),                  # one voxel
    ((1, 1, 1, 6, 7), (3, 1, 1, 3, 3), 1, 0),                  # depth 1
    ((2, 2, 5, 1, 6), (3, 2, 3, 1, 2), 1, 0),                  # height 1
    ((2, 3, 4, 6, 1), (2, 3, 2, 3, 1), 1, (1, 0, 0)),          # width 1
    ((1, 3, 7, 11, 13), (5, 3, 3, 3, 3), 2, 1),                # primes, stride 2, padding
    ((3, 2, 5, 7, 6), (4, 2, 3, 2, 3), (2, 1, 3), (0, 1, 2)),  # anisotropic
    ((2, 1, 12, 12, 12), (20, 1, 5, 5, 5), 1, 0),              # lai3d's first layer, small
    ((3, 20, 10, 10, 10), (50, 20, 5, 5, 5), 1, 0),            # lai3d's second layer
    ((1, 20, 10, 10, 10), (50, 20, 5, 5, 5), 1, 0),            # batch 1: split over threads
    ((1, 2, 3, 3, 3), (2, 2, 5, 5, 5), 1, 1),                  # one output voxel
    ((2, 2, 2, 3, 2), (3, 2, 3, 3, 3), 2, 2),                  # padding wider than the input
    ((2, 2, 3, 3, 40), (3, 2, 2, 2, 3), 1, 0),                 # unpadded rows of 38 voxels
]


def _triple(v):
    return tuple(v) if isinstance(v, tuple) else (v, v, v)


@pytest.mark.parametrize("case", CASES)
def test_conv3d_forward_and_backward(backend, case, rng):
    xs, ws, s, p = case
    x, w, b = f32(rng, *xs), f32(rng, *ws), f32(rng, ws[0])
    st, pt = _triple(s), _triple(p)
    kkk = int(np.prod(ws[1:]))
    y = ops.conv3d(x, w, b, s, p, backend=backend)
    close(y, ref.conv3d(d64(x), d64(w), d64(b), st, pt), kkk)
    close(ops.conv3d(x, w, None, s, p, backend=backend), ref.conv3d(d64(x), d64(w), None, st, pt),
          kkk)
    dy = f32(rng, *y.shape)
    dx, dw, db = ops.conv3d_backward(x, w, dy, s, p, backend=backend)
    rdx, rdw, rdb = ref.conv3d_backward(d64(x), d64(w), d64(dy), st, pt)
    pixels = int(np.prod(y.shape)) // ws[0]
    close(dx, rdx, ws[0] * int(np.prod(ws[2:])))
    close(dw, rdw, pixels)
    close(db, rdb, pixels)
    # Without dx: None, and the same weight and bias gradients to the bit.
    none, dw2, db2 = ops.conv3d_backward(x, w, dy, s, p, need_dx=False, backend=backend)
    assert none is None
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)


@pytest.mark.parametrize("backend_name", HOST)
@pytest.mark.parametrize("case", [CASES[4], CASES[5], CASES[9]])
def test_conv3d_values_and_gradients_match_pytorch(backend_name, case, rng):
    xs, ws, s, p = case
    x, w, b = f32(rng, *xs), f32(rng, *ws), f32(rng, ws[0])
    tx, tw, tb = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b))
    ty = F.conv3d(tx, tw, tb, stride=s, padding=p)
    dy = f32(rng, *ty.shape)
    ty.backward(torch.from_numpy(dy))
    y = ops.conv3d(x, w, b, s, p, backend=backend_name)
    grads = ops.conv3d_backward(x, w, dy, s, p, backend=backend_name)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, (tx.grad, tw.grad, tb.grad), strict=True):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend_name", HOST)
@pytest.mark.parametrize("shape,k,stride", [((2, 3, 6, 7, 5), 2, None),
                                             ((1, 2, 7, 6, 9), (3, 2, 3), (2, 1, 3)),
                                             ((2, 1, 1, 4, 4), (1, 2, 2), None),
                                             ((2, 2, 4, 4, 21), 2, None),
                                             ((1, 2, 3, 4, 13), (2, 1, 3), (1, 2, 1)),
                                             ((1, 2, 5, 5, 5), 3, 1)])
def test_max_pool3d_values_indices_and_gradient_match_pytorch(backend_name, shape, k, stride,
                                                              rng):
    x = f32(rng, *shape)
    x.reshape(-1)[:2] = 7.0  # a tie inside one window: the first must win
    # One NaN per volume wins every window it is in. (With two NaNs in one window
    # np.argmax and fastseg's 2-D and 3-D pooling take the first, PyTorch's CPU
    # kernel the last.)
    x[:, :, shape[2] // 2, shape[3] // 2, shape[4] // 2 if shape[4] < 10 else 5] = np.nan
    y, idx = ops.max_pool3d(x, k, stride, backend=backend_name)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty, tidx = F.max_pool3d(tx, k, stride, return_indices=True)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    assert idx.dtype == np.int64 and np.isnan(y).any()
    dy = f32(rng, *y.shape)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(ops.max_pool3d_backward(dy, idx, x.shape, backend=backend_name),
                               tx.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_max_pool3d_against_the_reference(backend, rng):
    x = f32(rng, 3, 4, 9, 8, 7)
    for k, s in (((2, 2, 2), (2, 2, 2)), ((3, 3, 2), (1, 2, 2))):
        y, idx = ops.max_pool3d(x, k, s, backend=backend)
        ry, ridx = ref.max_pool3d(x, k, s)
        np.testing.assert_array_equal(y, ry)
        np.testing.assert_array_equal(idx, ridx)
        dy = f32(rng, *y.shape)
        close(ops.max_pool3d_backward(dy, idx, x.shape, backend=backend),
              ref.max_pool3d_backward(d64(dy), ridx, x.shape), 8)


def test_depth_one_with_a_depth_one_kernel_is_exactly_conv2d(backend, rng):
    x, w, b = f32(rng, 3, 20, 1, 12, 11), f32(rng, 50, 20, 1, 5, 5), f32(rng, 50)
    y3 = ops.conv3d(x, w, b, padding=(0, 1, 1), backend=backend)
    y2 = ops.conv2d(x[:, :, 0], w[:, :, 0], b, padding=1, backend=backend)
    np.testing.assert_array_equal(y3[:, :, 0], y2)
    dy = f32(rng, *y3.shape)
    g3 = ops.conv3d_backward(x, w, dy, padding=(0, 1, 1), backend=backend)
    g2 = ops.conv2d_backward(x[:, :, 0], w[:, :, 0], dy[:, :, 0], padding=1, backend=backend)
    np.testing.assert_allclose(g3[0][:, :, 0], g2[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g3[1][:, :, 0], g2[1], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(g3[2], g2[2], rtol=1e-5, atol=1e-5)


def test_other_layouts_and_dtypes_give_the_same_answer(backend, rng):
    x, w = f32(rng, 2, 3, 6, 7, 8), f32(rng, 4, 3, 3, 3, 3)
    want = ops.conv3d(x, w, padding=1, backend=backend)
    strided = np.repeat(x, 2, axis=4)[..., ::2]          # non-contiguous view
    transposed = np.asfortranarray(x)
    for xv in (x.astype(np.float64), strided, transposed, x[::1, :, ::1]):
        np.testing.assert_array_equal(ops.conv3d(xv, w, padding=1, backend=backend), want)
    y, idx = ops.max_pool3d(strided, 2, backend=backend)
    np.testing.assert_array_equal(y, ops.max_pool3d(x, 2, backend=backend)[0])


def test_empty_batch_gives_empty_results(backend):
    x, w = np.zeros((0, 2, 5, 5, 5), np.float32), np.ones((3, 2, 3, 3, 3), np.float32)
    assert ops.conv3d(x, w, backend=backend).shape == (0, 3, 3, 3, 3)
    dx, dw, db = ops.conv3d_backward(x, w, np.zeros((0, 3, 3, 3, 3)), backend=backend)
    assert dx.shape == x.shape and dw.shape == w.shape and not dw.any() and not db.any()
    y, idx = ops.max_pool3d(x, 2, backend=backend)
    assert y.shape == idx.shape == (0, 2, 2, 2, 2)
    assert ops.max_pool3d_backward(y, idx, x.shape, backend=backend).shape == x.shape


@pytest.mark.usefixtures("threads")
def test_one_and_two_threads_agree(backend, rng):
    x, w = f32(rng, 5, 20, 10, 10, 10), f32(rng, 50, 20, 5, 5, 5)
    results = []
    for n in (1, 2):
        fastseg.set_num_threads(n)
        y = ops.conv3d(x, w, backend=backend)
        results.append((y, *ops.conv3d_backward(x, w, y, backend=backend),
                        *ops.max_pool3d(x, 2, backend=backend)))
    for one, two in zip(*results, strict=True):
        np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-3)


@pytest.fixture
def generic_isa():
    from fastseg._cy import _runtime

    _runtime.select_isa("generic")
    yield
    _runtime.select_isa("auto")


@pytest.mark.usefixtures("generic_isa")
def test_portable_micro_kernel(rng):
    x, w, b = f32(rng, 2, 3, 7, 6, 9), f32(rng, 5, 3, 3, 2, 3), f32(rng, 5)
    y = ops.conv3d(x, w, b, (1, 2, 1), 1, backend="c")
    close(y, ref.conv3d(d64(x), d64(w), d64(b), (1, 2, 1), (1, 1, 1)), 54)
    dy = f32(rng, *y.shape)
    got = ops.conv3d_backward(x, w, dy, (1, 2, 1), 1, backend="c")
    want = ref.conv3d_backward(d64(x), d64(w), d64(dy), (1, 2, 1), (1, 1, 1))
    for g, r in zip(got, want, strict=True):
        close(g, r, 500)


@pytest.mark.parametrize("backend_name", HOST)
def test_nan_flows_as_in_conv2d_and_pytorch(backend_name):
    # The 2-D convolution and pooling do not refuse NaN (only the loss does): the
    # 3-D ones neither, and the NaN lands where PyTorch puts it.
    x = np.ones((1, 1, 4, 4, 4), np.float32)
    x[0, 0, 0, 0, 0] = np.nan
    w = np.ones((1, 1, 2, 2, 2), np.float32)
    y = ops.conv3d(x, w, backend=backend_name)
    want = F.conv3d(torch.from_numpy(x), torch.from_numpy(w)).numpy()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    assert np.isnan(y).sum() == 1
    p, idx = ops.max_pool3d(x, 2, backend=backend_name)
    tp, tidx = F.max_pool3d(torch.from_numpy(x), 2, return_indices=True)
    np.testing.assert_array_equal(np.isnan(p), np.isnan(tp.numpy()))
    np.testing.assert_array_equal(idx, tidx.numpy())
    with pytest.raises(ValueError, match="logits: contains NaN"):
        ops.softmax_cross_entropy(y.reshape(1, -1)[:, :2], [0], backend=backend_name)
