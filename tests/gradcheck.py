"""The one finite-difference gradient checker of the test suite (as Caffe's
GradientChecker), used by every op and layer test that checks a backward pass.

`f` is a zero-argument function that reads the array `x` (changed in place here and
restored), and returns a scalar; the checked gradient is d f / d x.
"""
import numpy as np


def numeric_grad(f, x, eps=1e-6, entries=None):
    """Central differences ``(f(x + eps) - f(x - eps)) / (2 eps)`` of the scalar `f` at
    every entry of `x` (an array of x's shape), or at the flat indices `entries` (a
    1-D array of those values)."""
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numeric_grad: x must be contiguous, so that f sees the changes")
    where = range(flat.size) if entries is None else entries
    out = np.zeros(len(where), dtype=np.float64)
    for n, i in enumerate(where):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        out[n] = (plus - minus) / (2 * eps)
    return out.reshape(x.shape) if entries is None else out


def assert_gradient(analytic, f, x, *, eps, rtol, atol, max_entries=None, seed=2, name=""):
    """Assert that `analytic` (x's shape) is d f / d x by central differences: at every
    entry, or at `max_entries` of them drawn with `seed` (big arrays, slow f)."""
    analytic = np.asarray(analytic).reshape(-1)
    assert analytic.size == x.size, f"{name}: gradient has {analytic.size} entries, x {x.size}"
    entries = None
    if max_entries is not None and x.size > max_entries:
        entries = np.random.default_rng(seed).choice(x.size, size=max_entries, replace=False)
    numeric = numeric_grad(f, x, eps, entries).reshape(-1)
    got = analytic if entries is None else analytic[entries]
    np.testing.assert_allclose(got, numeric, rtol=rtol, atol=atol,
                               err_msg=f"{name}: backward vs central differences")
