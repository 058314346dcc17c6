"""Fused optimizer updates, in place on device arrays: torch.optim's single-tensor rules.

The formulas are those of the reference backend, term for term, in float32;
hyper-parameters arrive as float32 so no kernel falls back to float64.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from fastseg.backends._cuda import THREADS, blocks_for, vector_or_dummy


@cuda.jit
def _sgd(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        # As the reference: no decay term at all when weight_decay is 0 (an
        # infinite p must not turn the step into NaN).
        d = g[i] + weight_decay * p[i] if weight_decay != 0 else g[i]
        if momentum != 0:
            if first_step:
                b = d
            else:
                b = momentum * buf[i] + (float32(1.0) - dampening) * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] -= lr * d


@cuda.jit
def _adam(p, g, m, v, beta1, beta2, eps, weight_decay, step_size, sqrt_bias2):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        d = g[i] + weight_decay * p[i] if weight_decay != 0 else g[i]
        mi = beta1 * m[i] + (float32(1.0) - beta1) * d
        vi = beta2 * v[i] + (float32(1.0) - beta2) * d * d
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (math.sqrt(vi) / sqrt_bias2 + eps)


@cuda.jit(device=True)
def _sign(x):
    return float32(1.0) if x > 0 else (float32(-1.0) if x < 0 else float32(0.0))


@cuda.jit
def _rprop(p, g, prev, step_size, eta_minus, eta_plus, step_min, step_max):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        sign = _sign(g[i] * prev[i])
        s = step_size[i]
        if sign > 0:
            s *= eta_plus
        elif sign < 0:
            s *= eta_minus
        s = min(max(s, step_min), step_max)
        step_size[i] = s
        d = float32(0.0) if sign < 0 else g[i]
        p[i] -= _sign(d) * s
        prev[i] = d


def _flat(*arrays):
    return [a.reshape(a.size) for a in arrays]


def _f32(*values):
    return [np.float32(v) for v in values]


def sgd_update(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step):
    # Without momentum there is no buffer (None) and the kernel never reads one: a
    # one-element placeholder keeps a single compiled signature.
    buf = vector_or_dummy(None if buf is None else buf.reshape(buf.size))
    if p.size:
        _sgd[blocks_for(p.size), THREADS](*_flat(p, g), buf,
                                          *_f32(lr, momentum, dampening, weight_decay),
                                          bool(nesterov), bool(first_step))


def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    if p.size:
        # The bias corrections are scalars: computed once here, in float64.
        bias1 = 1 - beta1**step
        bias2 = 1 - beta2**step
        _adam[blocks_for(p.size), THREADS](*_flat(p, g, m, v),
                                           *_f32(beta1, beta2, eps, weight_decay, lr / bias1,
                                                 math.sqrt(bias2)))


def rprop_update(p, g, prev, step_size, eta_minus, eta_plus, step_min, step_max):
    if p.size:
        _rprop[blocks_for(p.size), THREADS](*_flat(p, g, prev, step_size),
                                            *_f32(eta_minus, eta_plus, step_min, step_max))
