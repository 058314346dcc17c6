"""Every layer's backward against central finite differences.

In float64 on the NumPy backend (the ops' float32 conversion is patched out,
which the reference backend allows since it keeps the dtype it is given), and
in float32 on every backend with looser tolerances.
"""
import numpy as np
import pytest
from gradcheck import assert_gradient

import fastseg
from fastseg import backends, nn

BACKENDS = [b for b in fastseg.available_backends() if b in ("numpy", "c")]


def _as_float64(name, a, ndim=None, layout=""):
    a = np.asarray(a)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array {layout}, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float64)


@pytest.fixture
def float64(monkeypatch):
    # The reference backend's float32 check, replaced in its table; raising=True: a
    # renamed check fails here loudly instead of leaving the test in float32.
    monkeypatch.setattr(backends.load("numpy"), "as_float32", _as_float64, raising=True)
    monkeypatch.setattr(backends, "_current", "numpy")


def _inputs(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _objective(module, xs, r, reseed):
    if reseed:
        fastseg.seed(7)  # the same dropout mask at every evaluation
    y = module(xs if isinstance(module, nn.Parallel) else xs[0])
    return float(np.sum(np.asarray(y, np.float64) * r))


def check_gradients(module, shapes, dtype, eps, rtol, atol, reseed=False, max_entries=12):
    """Compare backward's input and parameter gradients with central differences."""
    for p in module.parameters():
        p.data = p.data.astype(dtype)
    xs = _inputs(shapes, dtype)
    fastseg.seed(7)
    y = module(xs if isinstance(module, nn.Parallel) else xs[0])
    r = np.random.default_rng(1).standard_normal(np.shape(y)).astype(dtype)
    dxs = module.backward(r)
    dxs = dxs if isinstance(dxs, list) else [dxs]
    targets = [(x, dx, f"input {i}") for i, (x, dx) in enumerate(zip(xs, dxs, strict=True))]
    targets += [(p.data, p.grad, name) for name, p in module.named_parameters()]
    for array, grad, name in targets:
        assert_gradient(grad, lambda: _objective(module, xs, r, reseed), array, eps=eps,
                        rtol=rtol, atol=atol, max_entries=max_entries,
                        name=f"{type(module).__name__} {name}")


def _layers():
    return {
        "conv": (lambda: nn.Conv2d(2, 3, 3), [(2, 2, 5, 5)]),
        "conv_stride_pad": (lambda: nn.Conv2d(2, 2, 3, stride=2, padding=1), [(2, 2, 6, 5)]),
        "linear": (lambda: nn.Linear(5, 4), [(3, 5)]),
        "relu": (nn.ReLU, [(3, 7)]),
        "tanh": (nn.Tanh, [(3, 7)]),
        "sigmoid": (nn.Sigmoid, [(3, 7)]),
        "xsin": (nn.XSin, [(3, 7)]),
        "maxpool": (lambda: nn.MaxPool2d(2), [(2, 2, 4, 5)]),
        "maxpool_overlap": (lambda: nn.MaxPool2d(3, stride=2), [(1, 2, 7, 7)]),
        "dropout": (lambda: nn.Dropout(0.4), [(4, 6)]),
        "flatten": (nn.Flatten, [(2, 3, 2, 2)]),
        "pixel_logits": (lambda: nn.PixelLogits(2, 2, 3), [(2, 12)]),
        "parallel": (lambda: nn.Parallel(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh()),
                                          nn.Linear(4, 3)), [(2, 1, 4, 4), (2, 4)]),
        "network": (lambda: nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2),
                                          nn.Conv2d(3, 2, 2, padding=1), nn.Sigmoid(),
                                          nn.Flatten(), nn.Linear(2 * 3 * 3, 4), nn.Tanh(),
                                          nn.Linear(4, 2)), [(2, 1, 6, 6)]),
        "conv3d": (lambda: nn.Conv3d(2, 3, (3, 2, 2), stride=(1, 2, 1), padding=(1, 0, 1)),
                   [(2, 2, 4, 5, 4)]),
        "maxpool3d": (lambda: nn.MaxPool3d((2, 2, 3), stride=(1, 2, 2)), [(2, 2, 3, 5, 7)]),
        "network3d": (lambda: nn.Sequential(nn.Conv3d(1, 3, 3), nn.ReLU(), nn.MaxPool3d(2),
                                            nn.Conv3d(3, 2, 2), nn.Flatten(), nn.Linear(2, 3),
                                            nn.Tanh(), nn.Linear(3, 2)), [(2, 1, 7, 7, 7)]),
    }


@pytest.mark.parametrize("name", list(_layers()))
def test_float64_gradients(float64, name):
    fastseg.seed(0)
    make, shapes = _layers()[name]
    check_gradients(make(), shapes, np.float64, eps=1e-6, rtol=1e-6, atol=1e-8,
                    reseed=name == "dropout")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["conv_stride_pad", "linear", "tanh", "parallel", "network",
                                  "conv3d"])
def test_float32_gradients(monkeypatch, backend, name):
    backends.load(backend)
    monkeypatch.setattr(backends, "_current", backend)
    fastseg.seed(0)
    make, shapes = _layers()[name]
    check_gradients(make(), shapes, np.float32, eps=1e-2, rtol=2e-2, atol=2e-3)


def test_cross_entropy_gradient_float64(float64):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 3))
    labels = np.array([0, 2, 1, 1, 0])
    for weight in (None, np.array([0.5, 2.0, 1.0])):
        loss_fn = nn.CrossEntropyLoss(weight=weight)
        if weight is not None:
            loss_fn.weight = weight  # float64 too
        loss_fn(logits, labels)
        analytic = loss_fn.backward()
        assert_gradient(analytic, lambda fn=loss_fn: fn(logits, labels), logits, eps=1e-6,
                        rtol=1e-6, atol=1e-9, name="CrossEntropyLoss")
