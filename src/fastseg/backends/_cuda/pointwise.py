"""Element-wise activations.

Grid-stride loops over flat arrays; each backward takes the forward *input* x
(as :mod:`fastseg.ops` specifies) and recomputes what it needs, which costs
less than storing the output.
"""
from __future__ import annotations

import math

from numba import cuda, float32

from fastseg.backends._cuda import THREADS, blocks_for, empty


@cuda.jit
def _relu(x, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = x[i] if x[i] > 0 else float32(0.0)


@cuda.jit
def _relu_backward(x, dy, dx):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        dx[i] = dy[i] if x[i] > 0 else float32(0.0)


@cuda.jit
def _tanh(x, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = math.tanh(x[i])


@cuda.jit
def _tanh_backward(x, dy, dx):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        t = math.tanh(x[i])
        dx[i] = dy[i] * (float32(1.0) - t * t)


@cuda.jit(device=True)
def _sigmoid_of(v):
    # exp of a non-positive number never overflows, whatever the sign of v.
    e = math.exp(-abs(v))
    return float32(1.0) / (float32(1.0) + e) if v >= 0 else e / (float32(1.0) + e)


@cuda.jit
def _sigmoid(x, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = _sigmoid_of(x[i])


@cuda.jit
def _sigmoid_backward(x, dy, dx):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        s = _sigmoid_of(x[i])
        dx[i] = dy[i] * s * (float32(1.0) - s)


@cuda.jit
def _xsin(x, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = x[i] * math.sin(x[i])


@cuda.jit
def _xsin_backward(x, dy, dx):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        dx[i] = dy[i] * (math.sin(v) + v * math.cos(v))


_FORWARD = {"relu": _relu, "tanh": _tanh, "sigmoid": _sigmoid, "xsin": _xsin}
_BACKWARD = {"relu": _relu_backward, "tanh": _tanh_backward, "sigmoid": _sigmoid_backward,
             "xsin": _xsin_backward}


def activation(name, x):
    """`name` ("relu", "tanh", "sigmoid", "xsin") of device array x, any shape."""
    y = empty(x.shape)
    if x.size:
        _FORWARD[name][blocks_for(x.size), THREADS](x.reshape(x.size), y.reshape(y.size))
    return y


def activation_backward(name, x, dy):
    """dy times the derivative of `name` at x (device arrays of one shape)."""
    dx = empty(x.shape)
    if x.size:
        _BACKWARD[name][blocks_for(x.size), THREADS](
            x.reshape(x.size), dy.reshape(dy.size), dx.reshape(dx.size))
    return dx
