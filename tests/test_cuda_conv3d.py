"""The "cuda" backend's 3-D convolution and pooling against the "c" backend.

Without a GPU this runs on Numba's CPU simulator (tests/conftest.py), where every
CUDA thread is a Python thread, so the shapes are tiny; they still cross the
kernels' edges: strides, padding, anisotropic kernels, size 1 along an axis,
several conv chunks, pooling ties and NaN, device arrays in and out.
"""
import numpy as np
import pytest

import fastseg
from fastseg import ops

if "cuda" not in fastseg.available_backends() or "c" not in fastseg.available_backends():
    pytest.skip("the cuda and c backends are not both available here", allow_module_level=True)

from numba import cuda  # noqa: E402  (after the skip: numba-cuda may be absent)

from fastseg.backends._cuda import conv as cuda_conv  # noqa: E402


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def host(a):
    return a if isinstance(a, np.ndarray) else a.copy_to_host()


def close(got, want):
    got = host(got)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


CASES = [  # x shape, w shape, stride, padding
    ((2, 2, 4, 3, 5), (3, 2, 2, 3, 2), (2, 1, 1), (1, 0, 1)),
    ((1, 1, 1, 4, 4), (2, 1, 1, 3, 3), 1, 0),
    ((1, 3, 3, 3, 3), (2, 3, 3, 3, 3), 2, 2),
]


@pytest.mark.parametrize("case", CASES)
def test_conv3d_matches_c(case, rng):
    xs, ws, s, p = case
    x, w, b = f32(rng, *xs), f32(rng, *ws), f32(rng, ws[0])
    y = ops.conv3d(x, w, b, s, p, backend="cuda")
    assert isinstance(y, np.ndarray)  # host in, host out
    close(y, ops.conv3d(x, w, b, s, p, backend="c"))
    dy = f32(rng, *y.shape)
    got = ops.conv3d_backward(x, w, dy, s, p, backend="cuda")
    want = ops.conv3d_backward(x, w, dy, s, p, backend="c")
    for g, r in zip(got, want, strict=True):
        close(g, r)
    assert ops.conv3d_backward(x, w, dy, s, p, need_dx=False, backend="cuda")[0] is None


def test_conv3d_in_several_chunks_on_device_arrays(rng, monkeypatch):
    monkeypatch.setattr(cuda_conv, "MAX_COLS_ELEMENTS", 300)  # one volume per chunk
    x, w = f32(rng, 3, 2, 3, 4, 3), f32(rng, 2, 2, 2, 2, 2)
    y = ops.conv3d(cuda.to_device(x), cuda.to_device(w), None, 1, (1, 0, 0), backend="cuda")
    assert not isinstance(y, np.ndarray)  # device in, device out
    close(y, ops.conv3d(x, w, None, 1, (1, 0, 0), backend="c"))
    dy = f32(rng, *y.shape)
    got = ops.conv3d_backward(cuda.to_device(x), cuda.to_device(w), cuda.to_device(dy), 1,
                              (1, 0, 0), backend="cuda")
    for g, r in zip(got, ops.conv3d_backward(x, w, dy, 1, (1, 0, 0), backend="c"), strict=True):
        close(g, r)


@pytest.mark.parametrize("k,stride", [(2, None), ((2, 1, 3), (1, 2, 1))])
def test_max_pool3d_matches_c(k, stride, rng):
    x = f32(rng, 2, 2, 4, 5, 6)
    x[0, 0, 0, 0, :2] = 3.0  # a tie: the first wins
    x[1, 1, 1, 1, 1] = np.nan  # NaN wins its windows
    y, idx = ops.max_pool3d(cuda.to_device(x), k, stride, backend="cuda")
    ry, ridx = ops.max_pool3d(x, k, stride, backend="c")
    np.testing.assert_array_equal(host(y), ry)
    np.testing.assert_array_equal(host(idx), ridx)
    dy = f32(rng, *ry.shape)
    close(ops.max_pool3d_backward(cuda.to_device(dy), idx, x.shape, backend="cuda"),
          ops.max_pool3d_backward(dy, ridx, x.shape, backend="c"))
    bad = host(idx).copy()
    bad[0, 0, 0, 0, 0] = x[0, 0].size
    with pytest.raises(ValueError, match="indices: values must lie in"):
        ops.max_pool3d_backward(dy, cuda.to_device(bad), x.shape, backend="cuda")
