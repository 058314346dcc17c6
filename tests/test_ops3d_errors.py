"""Bad input to the 3-D operations: the right error type, with a message naming the problem.

The same checks hold on every host backend, and the Cython wrappers refuse
inconsistent shapes on their own (a caller that skips fastseg.ops)."""
import numpy as np
import pytest

import fastseg
from fastseg import ops

BACKENDS = [b for b in ("numpy", "c") if b in fastseg.available_backends()]
X = np.zeros((2, 3, 6, 7, 8), np.float32)
W = np.zeros((4, 3, 3, 3, 3), np.float32)
DY = np.zeros((2, 4, 4, 5, 6), np.float32)

CASES = [
    (lambda: ops.conv3d(X[:, :, 0], W), ValueError, r"x: expected a 5-D array \(N, C, D, H, W\)"),
    (lambda: ops.conv3d(X, W[:, :, 0]), ValueError, r"w: expected a 5-D array"),
    (lambda: ops.conv3d(X, W[:, :2]), ValueError, "w: expected 3 input channels"),
    (lambda: ops.conv3d(X, np.zeros((4, 3, 7, 3, 3))), ValueError,
     r"kernel_size: \(7, 3, 3\) is larger than the padded input"),
    (lambda: ops.conv3d(X, np.zeros((4, 3, 8, 3, 3)), padding=(0, 1, 1)), ValueError,
     "is larger than the padded input"),
    (lambda: ops.conv3d(X, W, stride=0), ValueError, "stride: must be >= 1"),
    (lambda: ops.conv3d(X, W, stride=(1, 0, 1)), ValueError, "stride: must be >= 1"),
    (lambda: ops.conv3d(X, W, stride=(1, 2)), ValueError, "stride: expected an int or 3 ints"),
    (lambda: ops.conv3d(X, W, padding=-1), ValueError, "padding: must be >= 0"),
    (lambda: ops.conv3d(X, W, padding=(0, 1.5, 0)), TypeError, "padding: expected an int"),
    (lambda: ops.conv3d(X, W, b=np.zeros(3)), ValueError, r"b: expected shape \(4,\)"),
    (lambda: ops.conv3d(X.astype(complex), W), TypeError, "x: expected a float32 array"),
    (lambda: ops.conv3d(X, np.zeros((0, 3, 3, 3, 3))), ValueError,
     "w: needs at least one output channel"),
    (lambda: ops.conv3d(np.zeros((2, 3, 0, 7, 8)), W), ValueError,
     "x: channels, depth, height and width must be >= 1"),
    (lambda: ops.conv3d(X, W, padding=2**20), ValueError, "too large"),
    (lambda: ops.conv3d(X, W, padding=(0, 2**40, 0)), ValueError, "too large"),
    (lambda: ops.conv3d_backward(X, W, DY[:, :, :3]), ValueError, "dy: expected shape"),
    (lambda: ops.conv3d_backward(X, W, DY[0]), ValueError, "dy: expected a 5-D array"),
    (lambda: ops.max_pool3d(X[0], 2), ValueError, r"x: expected a 5-D array"),
    (lambda: ops.max_pool3d(X, 7), ValueError, r"kernel_size: \(7, 7, 7\) is larger"),
    (lambda: ops.max_pool3d(X, 0), ValueError, "kernel_size: must be >= 1"),
    (lambda: ops.max_pool3d(X, 2, stride=(2, 2, 0)), ValueError, "stride: must be >= 1"),
    (lambda: ops.max_pool3d(X, (2, 2)), ValueError, "kernel_size: expected an int or 3 ints"),
    (lambda: ops.max_pool3d_backward(np.zeros((2, 3, 3, 3, 4)), np.full((2, 3, 3, 3, 4), 336),
                                     X.shape),
     ValueError, r"indices: values must lie in \[0, 336\)"),
    (lambda: ops.max_pool3d_backward(np.zeros((2, 3, 3, 3, 4)), np.full((2, 3, 3, 3, 4), -1),
                                     X.shape), ValueError, "indices"),
    (lambda: ops.max_pool3d_backward(np.zeros((2, 3, 3, 3, 4)), np.zeros((2, 3, 3, 3, 4)) + 0.5,
                                     X.shape), TypeError, "indices: expected integer"),
    (lambda: ops.max_pool3d_backward(np.zeros((2, 3, 3, 3, 4)), np.zeros((2, 3, 3, 3), np.int64),
                                     X.shape), ValueError, "indices: expected shape"),
    (lambda: ops.max_pool3d_backward(np.zeros((2, 3, 3, 3, 4)), np.zeros((2, 3, 3, 3, 4), int),
                                     (2, 3, 6, 7)), ValueError, "x_shape: expected 5 dimensions"),
    (lambda: ops.max_pool3d_backward(np.zeros((2, 3, 3, 3, 4)), np.zeros((2, 3, 3, 3, 4), int),
                                     (2, 4, 6, 7, 8)), ValueError, "dy: batch and channels"),
    (lambda: ops.max_pool3d_backward(np.zeros((2, 3, 3, 3, 4)), np.zeros((2, 3, 3, 3, 4), int),
                                     (2, 3, 2**30, 2**30, 8)), ValueError, "too large"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call,error,message", CASES)
def test_bad_input_is_refused_clearly(backend, call, error, message):
    fastseg.set_backend(backend)
    with pytest.raises(error, match=message):
        call()


_conv3d = pytest.importorskip("fastseg._cy._conv3d")
_pool3d = pytest.importorskip("fastseg._cy._pool3d")


def f32(*shape):
    return np.ones(shape, dtype=np.float32)


@pytest.mark.parametrize("call", [
    lambda: _conv3d.conv3d_forward(f32(1, 2, 4, 4, 4), f32(3, 1, 2, 2, 2), None, (1,) * 3,
                                   (0,) * 3),                                  # channels
    lambda: _conv3d.conv3d_forward(f32(1, 2, 4, 4, 4), f32(3, 2, 2, 2, 2), f32(4), (1,) * 3,
                                   (0,) * 3),                                  # bias
    lambda: _conv3d.conv3d_forward(f32(1, 2, 4, 4, 4), f32(3, 2, 5, 2, 2), None, (1,) * 3,
                                   (0,) * 3),                                  # kernel too big
    lambda: _conv3d.conv3d_forward(f32(1, 2, 4, 4, 4), f32(3, 2, 2, 2, 2), None, (1, 0, 1),
                                   (0,) * 3),                                  # stride 0
    lambda: _conv3d.conv3d_forward(f32(1, 2, 4, 4, 4), f32(3, 2, 2, 2, 2), None, (1, 1),
                                   (0,) * 3),                                  # two strides
    lambda: _conv3d.conv3d_forward(f32(1, 2, 4, 4, 4), f32(3, 2, 2, 2, 2), None, (1,) * 3,
                                   (0, -1, 0)),                                # padding
    lambda: _conv3d.conv3d_forward(f32(1, 1, 4, 4, 4), f32(1, 1, 1, 1, 1), None, (1,) * 3,
                                   (2**40,) * 3),                              # huge output
    lambda: _conv3d.conv3d_backward(f32(1, 2, 4, 4, 4), f32(3, 2, 2, 2, 2), f32(1, 3, 3, 3, 2),
                                    (1,) * 3, (0,) * 3),                       # dy shape
    lambda: _pool3d.max_pool3d_forward(f32(1, 1, 2, 4, 4), (3, 1, 1), (1, 1, 1)),
    lambda: _pool3d.max_pool3d_forward(f32(1, 1, 4, 4, 4), (2, 2, 2), (0, 1, 1)),
    lambda: _pool3d.max_pool3d_backward(f32(1, 1, 2, 2, 2), np.zeros((1, 1, 2, 2, 1), np.int64),
                                        (1, 1, 4, 4, 4)),
    lambda: _pool3d.max_pool3d_backward(f32(1, 2, 2, 2, 2), np.zeros((1, 2, 2, 2, 2), np.int64),
                                        (1, 1, 4, 4, 4)),
    lambda: _pool3d.max_pool3d_backward(f32(1, 1, 2, 2, 2), np.zeros((1, 1, 2, 2, 2), np.int64),
                                        (1, 1, 4, 4)),
])
def test_wrapper_refuses_inconsistent_shapes(call):
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize("bad", [-1, 64, 2**62])
def test_wrapper_pool_backward_refuses_a_bad_index_and_writes_nothing(bad):
    idx = np.zeros((1, 1, 2, 2, 2), np.int64)
    idx[0, 0, 1, 1, 1] = bad
    with pytest.raises(IndexError, match="indices"):
        _pool3d.max_pool3d_backward(f32(1, 1, 2, 2, 2), idx, (1, 1, 4, 4, 4))
