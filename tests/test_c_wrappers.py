"""The Cython wrappers of the "c" backend, called directly (bypassing
fastseg.ops): inconsistent shapes must raise, never reach the C kernels --
under every instruction set this CPU runs (the `isa` fixture)."""
import numpy as np
import pytest

_cy = pytest.importorskip("fastseg._cy._conv")
from fastseg._cy import _conv, _linear, _loss, _optim, _pointwise, _pool  # noqa: E402
from fastseg.errors import InvalidIndexError, InvalidValueError  # noqa: E402

pytestmark = pytest.mark.usefixtures("isa")


def f32(*shape):
    return np.ones(shape, dtype=np.float32)


@pytest.mark.parametrize("call", [
    lambda: _conv.conv2d_forward(f32(2, 3, 8, 8), f32(4, 2, 3, 3), None, 1, 0),   # channels
    lambda: _conv.conv2d_forward(f32(2, 3, 8, 8), f32(4, 3, 3, 2), None, 1, 0),   # not square
    lambda: _conv.conv2d_forward(f32(2, 3, 8, 8), f32(4, 3, 3, 3), f32(5), 1, 0),  # bias
    lambda: _conv.conv2d_forward(f32(2, 3, 2, 2), f32(4, 3, 5, 5), None, 1, 0),   # too small
    lambda: _conv.conv2d_forward(f32(2, 3, 8, 8), f32(4, 3, 3, 3), None, 0, 0),   # stride 0
    lambda: _conv.conv2d_forward(f32(2, 3, 8, 8), f32(4, 3, 3, 3), None, 1, -1),  # padding
    lambda: _conv.conv2d_backward(f32(2, 3, 8, 8), f32(4, 3, 3, 3), f32(2, 4, 5, 6), 1, 0),
    lambda: _conv.conv2d_backward(f32(2, 3, 8, 8), f32(4, 3, 3, 3), f32(1, 4, 6, 6), 1, 0),
    lambda: _conv.col2im(f32(27, 71), (2, 3, 8, 8), 3, 1, 0),
    lambda: _conv.col2im(f32(27, 72), (2, 3, 8), 3, 1, 0),
    lambda: _conv.col2im(f32(27, 72), (2, 3, -8, 8), 3, 1, 0),
    lambda: _conv.im2col(f32(1, 1, 4, 4), 3, 1, 10**17),                          # huge output
    lambda: _linear.linear_forward(f32(3, 5), f32(2, 4), None),
    lambda: _linear.linear_forward(f32(3, 5), f32(2, 5), f32(3)),
    lambda: _linear.linear_backward(f32(3, 5), f32(2, 5), f32(3, 3)),
    lambda: _linear.linear_backward(f32(3, 5), f32(2, 5), f32(4, 2)),
    lambda: _pool.max_pool2d_forward(f32(1, 1, 2, 2), 3, 1),
    lambda: _pool.max_pool2d_forward(f32(1, 1, 4, 4), 2, 0),
    lambda: _pool.max_pool2d_backward(f32(1, 1, 2, 2), np.zeros((1, 1, 2, 3), np.int64),
                                      (1, 1, 4, 4)),
    lambda: _pool.max_pool2d_backward(f32(1, 2, 2, 2), np.zeros((1, 2, 2, 2), np.int64),
                                      (1, 1, 4, 4)),
    lambda: _pointwise.relu_backward(f32(3, 4), f32(4, 3)),
    lambda: _loss.softmax_xent(f32(3, 4), np.zeros(2, np.int64)),
    lambda: _loss.softmax_xent(f32(3, 4), np.zeros(3, np.int64), f32(3)),
    lambda: _optim.sgd_update(f32(4), f32(3), f32(4), 0.1, 0.9, 0.0, 0.0, False, True),
    lambda: _optim.sgd_update(f32(4), f32(4), f32(5), 0.1, 0.9, 0.0, 0.0, False, True),
    lambda: _optim.sgd_update(f32(4), f32(4), None, 0.1, 0.9, 0.0, 0.0, False, True),
    lambda: _optim.adam_update(f32(4), f32(4), f32(4), f32(3), 1e-3, 0.9, 0.999, 1e-8, 0, 1),
    lambda: _optim.adam_update(f32(4), f32(4), f32(4), f32(4), 1e-3, 0.9, 0.999, 1e-8, 0, 0),
    lambda: _optim.rprop_update(f32(4), f32(4), f32(4), f32(2), 0.5, 1.2, 1e-6, 50),
])
def test_inconsistent_shapes_raise_value_error(call):
    with pytest.raises(InvalidValueError):  # fastseg's own ValueError, as ops raises
        call()


@pytest.mark.parametrize("bad", [-1, 16, 2**62])
def test_pool_backward_rejects_bad_index_and_leaves_nothing_half_done(bad):
    idx = np.zeros((1, 1, 2, 2), np.int64)
    idx[0, 0, 1, 1] = bad
    # The kernel's FS_EINDEX, mapped in _status.pxd: an IndexError and a ValueError
    # naming the argument and its range, never a MemoryError.
    with pytest.raises(InvalidIndexError, match=r"indices holds a value outside \[0, H\*W\)"):
        _pool.max_pool2d_backward(f32(1, 1, 2, 2), idx, (1, 1, 4, 4))


@pytest.mark.parametrize("label", [-1, 4])
def test_softmax_xent_rejects_bad_label(label):
    with pytest.raises(InvalidIndexError, match=r"labels holds a value outside \[0, 4\)") as info:
        _loss.softmax_xent(f32(3, 4), np.array([0, 1, label], np.int64))
    assert isinstance(info.value, IndexError) and isinstance(info.value, ValueError)


def test_wrong_dtype_or_layout_is_rejected():
    with pytest.raises((ValueError, TypeError)):
        _conv.conv2d_forward(np.ones((1, 1, 4, 4)), f32(1, 1, 3, 3), None, 1, 0)
    with pytest.raises((ValueError, TypeError)):
        _conv.conv2d_forward(np.asfortranarray(f32(2, 2, 4, 4)), f32(1, 2, 3, 3), None, 1, 0)
    ro = f32(4)
    ro.setflags(write=False)
    with pytest.raises((ValueError, TypeError)):
        _optim.sgd_update(ro, f32(4), f32(4), 0.1, 0.9, 0.0, 0.0, False, True)


def test_empty_sizes_do_not_touch_the_kernels():
    y = _conv.conv2d_forward(f32(0, 3, 5, 5), f32(2, 3, 3, 3), f32(2), 1, 1)
    assert y.shape == (0, 2, 5, 5)
    y = _conv.conv2d_forward(f32(2, 0, 5, 5), f32(2, 0, 3, 3), np.array([1, 2], np.float32), 1, 0)
    assert y.shape == (2, 2, 3, 3) and (y[:, 1] == 2).all()
    dx, dw, db = _conv.conv2d_backward(f32(2, 0, 5, 5), f32(2, 0, 3, 3), f32(2, 2, 3, 3), 1, 0)
    assert dx.shape == (2, 0, 5, 5) and dw.shape == (2, 0, 3, 3) and (db == 18).all()
    assert _conv.im2col(f32(0, 2, 4, 4), 3, 1, 0).shape == (18, 0)
    assert _conv.col2im(f32(18, 0), (0, 2, 4, 4), 3, 1, 0).shape == (0, 2, 4, 4)
    assert _linear.linear_forward(f32(3, 0), f32(2, 0), f32(2)).tolist() == [[1, 1]] * 3
    dx, dw, db = _linear.linear_backward(f32(0, 4), f32(2, 4), f32(0, 2))
    assert dx.shape == (0, 4) and not dw.any() and not db.any()
    y, idx = _pool.max_pool2d_forward(f32(0, 2, 4, 4), 2, 2)
    assert y.shape == idx.shape == (0, 2, 2, 2)
    assert _pointwise.sigmoid(f32(0, 3)).shape == (0, 3)
    loss, g = _loss.softmax_xent(f32(0, 3), np.zeros(0, np.int64))
    assert np.isnan(loss) and g.shape == (0, 3)
    _optim.adam_update(f32(0), f32(0), f32(0), f32(0), 1e-3, 0.9, 0.999, 1e-8, 0, 1)


def test_results_match_plain_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 7, 6), dtype=np.float32)
    w = rng.standard_normal((4, 2, 3, 3), dtype=np.float32)
    b = rng.standard_normal(4, dtype=np.float32)
    cols = _conv.im2col(x, 3, 2, 1)
    y = _conv.conv2d_forward(x, w, b, 2, 1)
    want = (w.reshape(4, -1) @ cols).reshape(4, 3, 4, 3).transpose(1, 0, 2, 3) + b[:, None, None]
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx, dw, db = _conv.conv2d_backward(x, w, dy, 2, 1)
    dy2 = dy.transpose(1, 0, 2, 3).reshape(4, -1)
    np.testing.assert_allclose(dw, (dy2 @ cols.T).reshape(w.shape), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, _conv.col2im(w.reshape(4, -1).T @ dy2, x.shape, 3, 2, 1),
                               rtol=1e-4, atol=1e-4)


def test_concurrent_python_threads_get_their_own_workspace():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(1)
    jobs = []
    for c, h, f in ((3, 12, 5), (5, 9, 7), (2, 15, 3), (4, 10, 6)):
        x = rng.standard_normal((6, c, h, h), dtype=np.float32)
        w = rng.standard_normal((f, c, 3, 3), dtype=np.float32)
        jobs.append((x, w, _conv.conv2d_forward(x, w, None, 1, 1)))

    def run(job):
        x, w, want = job
        return all(np.array_equal(_conv.conv2d_forward(x, w, None, 1, 1), want)
                   for _ in range(30))

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(run, jobs * 2))
