"""Bad input: each case raises the right error type with a message naming the problem."""
import numpy as np
import pytest

import fastseg
from fastseg import ops

BACKENDS = [b for b in ("numpy", "c") if b in fastseg.available_backends()]
X = np.zeros((2, 3, 8, 8), np.float32)
W = np.zeros((4, 3, 3, 3), np.float32)

CASES = [
    (lambda: ops.conv2d(X[0], W), ValueError, "x: expected a 4-D array"),
    (lambda: ops.conv2d(X, W[:, :2]), ValueError, "w: expected 3 input channels"),
    (lambda: ops.conv2d(X, np.zeros((4, 3, 3, 2))), ValueError, "square"),
    (lambda: ops.conv2d(X, np.zeros((4, 3, 11, 11))), ValueError, "kernel_size: 11 is larger"),
    (lambda: ops.conv2d(X, np.zeros((4, 3, 0, 0))), ValueError,
     r"w: needs at least one output channel and a kernel of at least 1x1, got shape \(4, 3, 0"),
    (lambda: ops.conv2d(X, np.zeros((0, 3, 3, 3))), ValueError,
     "w: needs at least one output channel"),
    (lambda: ops.conv2d(X, W, stride=0), ValueError, "stride: must be >= 1"),
    (lambda: ops.conv2d(X, W, padding=-1), ValueError, "padding: must be >= 0"),
    (lambda: ops.conv2d(X, W, stride=1.5), TypeError, "stride: expected an int"),
    (lambda: ops.conv2d(X, W, b=np.zeros(3)), ValueError, r"b: expected shape \(4,\)"),
    (lambda: ops.conv2d(X.astype(complex), W), TypeError, "x: expected a float32 array"),
    (lambda: ops.conv2d("abc", W), TypeError, "x: expected a float32 array"),
    (lambda: ops.conv2d(X, W, padding=2**40), ValueError, "too large"),
    (lambda: ops.conv2d_backward(X, W, np.zeros((2, 4, 5, 5))), ValueError, "dy: expected shape"),
    (lambda: ops.im2col(X, 0), ValueError, "kernel_size: must be >= 1"),
    (lambda: ops.im2col(X, 3, padding=2**31), ValueError, "too large"),
    (lambda: ops.col2im(np.zeros((27, 5)), X.shape, 3), ValueError, "cols: expected shape"),
    (lambda: ops.col2im(np.zeros((27, 72)), (2, 3, 8), 3), ValueError, "x_shape: expected 4"),
    (lambda: ops.gemm(np.zeros((2, 3)), np.zeros((4, 5))), ValueError, "inner dimensions"),
    (lambda: ops.gemm(np.zeros(3), np.zeros((3, 5))), ValueError, "a: expected a 2-D"),
    (lambda: ops.linear(np.zeros((2, 3)), np.zeros((4, 5))), ValueError, "w: expected 3 in_"),
    (lambda: ops.linear_backward(np.zeros((2, 3)), np.zeros((4, 3)), np.zeros((2, 5))),
     ValueError, "dy: expected shape"),
    (lambda: ops.max_pool2d(X, 9), ValueError, "kernel_size: 9 is larger"),
    (lambda: ops.max_pool2d_backward(np.zeros((2, 3, 4, 4)), np.full((2, 3, 4, 4), 64),
                                     X.shape),
     ValueError, r"indices: values must lie in \[0, 64\)"),
    (lambda: ops.max_pool2d_backward(np.zeros((2, 3, 4, 4)), np.full((2, 3, 4, 4), -1),
                                     X.shape), ValueError, "indices"),
    (lambda: ops.max_pool2d_backward(np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 4, 4)) + 0.5,
                                     X.shape), TypeError, "indices: expected integer"),
    (lambda: ops.relu_backward(np.zeros(3), np.zeros(4)), ValueError, "dy: expected shape"),
    (lambda: ops.softmax_cross_entropy(np.zeros((2, 2)), [0, 2]), ValueError,
     r"labels: label 2 is outside \[0, 2\)"),
    (lambda: ops.softmax_cross_entropy(np.zeros((2, 2)), [0, -1]), ValueError, "label -1"),
    (lambda: ops.softmax_cross_entropy(np.zeros((2, 2)), [0.0, 1.0]), TypeError, "labels"),
    (lambda: ops.softmax_cross_entropy(np.zeros((2, 2)), [0]), ValueError, "labels: expected"),
    (lambda: ops.softmax_cross_entropy(np.array([[np.nan, 0]]), [0]), ValueError, "logits: cont"),
    (lambda: ops.softmax_cross_entropy(np.zeros((2, 2)), [0, 1], [1.0, -1.0]), ValueError,
     "class_weights"),
    (lambda: ops.sgd_update(np.zeros(3, np.float32), np.zeros(3), np.zeros(3, np.float32), 0.1),
     TypeError, "g: expected a float32"),
    (lambda: ops.softmax(np.zeros(3)), ValueError, "x: expected a 2-D array"),
    (lambda: ops.softmax(np.zeros((3, 0))), ValueError, "x: needs at least one class"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call,error,message", CASES)
def test_bad_input_is_refused_clearly(backend, call, error, message):
    fastseg.set_backend(backend)
    try:
        with pytest.raises(error, match=message):
            call()
    finally:
        fastseg.set_backend("c" if "c" in BACKENDS else "numpy")


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        fastseg.set_backend("tpu")
    with pytest.raises(ValueError, match="unknown backend"):
        ops.relu(np.zeros(3), backend="tpu")


def test_bad_thread_counts():
    with pytest.raises(ValueError, match="set_num_threads: n: must be >= 1, got 0"):
        fastseg.set_num_threads(0)
    with pytest.raises(TypeError, match="set_num_threads: n: expected an int, got float"):
        fastseg.set_num_threads(1.5)
