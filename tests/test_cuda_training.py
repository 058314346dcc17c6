"""Device-resident training: nn layers, optimizers, fit and segment on the "cuda" backend.

With ``fastseg.set_backend("cuda")`` and ``model.to("cuda")`` the parameters,
gradients, optimizer state and activations are device arrays for the whole
run; only batches go in and the loss comes out. Every result is checked
against the same run on the "c" backend from the same weights. Without a GPU
this runs on Numba's CPU simulator (tests/conftest.py), so the shapes are tiny.
"""
import numpy as np
import pytest

import fastseg
from fastseg import nn, ops, optim, train

if "cuda" not in fastseg.available_backends():
    pytest.skip("the cuda backend is not available here (numba-cuda missing?)",
                allow_module_level=True)

HOST = "c" if "c" in fastseg.available_backends() else "numpy"


def on_device(a):
    return not isinstance(a, np.ndarray) and hasattr(a, "copy_to_host")


def host(a):
    return a if isinstance(a, np.ndarray) else a.copy_to_host()


def close(got, want):
    np.testing.assert_allclose(host(got), host(want), rtol=1e-4, atol=1e-5)


def tiny_net(seed=0):
    """conv -> relu -> flatten -> linear -> tanh -> linear, on (N, 1, 6, 6)."""
    fastseg.seed(seed)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3),
                         nn.Tanh(), nn.Linear(3, 2))


def batches():
    rng = np.random.default_rng(5)
    return [(rng.standard_normal((4, 1, 6, 6)).astype(np.float32), rng.integers(0, 2, 4))
            for _ in range(3)]


OPTIMIZERS = {
    "sgd_momentum": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    "sgd_plain": lambda ps: optim.SGD(ps, lr=0.1),  # no momentum buffer at all
    "adam": lambda ps: optim.Adam(ps, lr=0.01),
    "rprop": lambda ps: optim.Rprop(ps, lr=0.01),
}


def run(backend, make_opt, weights, device):
    fastseg.set_backend(backend)
    net = tiny_net()
    net.load_state_dict(weights)
    net.to(device)
    opt = make_opt(net.parameters())
    history = train.fit(net, batches(), nn.CrossEntropyLoss(), opt, epochs=1, progress=False)
    return net, opt, history


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_training_stays_on_device_and_matches_host(name):
    weights = tiny_net(seed=3).state_dict()
    ref_net, ref_opt, ref_hist = run(HOST, OPTIMIZERS[name], weights, "cpu")
    net, opt, hist = run("cuda", OPTIMIZERS[name], weights, "cuda")

    for p in net.parameters():
        assert p.device == "cuda" and on_device(p.data) and on_device(p.grad)
        for key, value in opt.state[p].items():
            if key != "step":
                assert on_device(value), key
    assert all(isinstance(loss, float) for loss in hist["step_loss"])
    np.testing.assert_allclose(hist["step_loss"], ref_hist["step_loss"], rtol=1e-5)
    state = net.state_dict()
    for key, want in ref_net.state_dict().items():
        assert isinstance(state[key], np.ndarray)
        close(state[key], want)

    # The optimizer state comes out on the host, and goes back onto the device.
    saved = opt.state_dict()
    for st in saved["state"].values():
        assert all(not on_device(val) for val in st.values())
    for st, ref_st in zip(saved["state"].values(), ref_opt.state_dict()["state"].values(),
                          strict=True):
        for key, val in st.items():
            if key == "step":
                assert val == ref_st[key]
            else:
                close(val, ref_st[key])
    fresh = OPTIMIZERS[name](net.parameters())
    fresh.load_state_dict(saved)
    for p in net.parameters():
        assert all(on_device(v) for k, v in fresh.state.get(p, {}).items() if k != "step")


def test_to_cuda_cpu_and_state_dict_round_trip():
    fastseg.set_backend("cuda")
    net = tiny_net()
    before = net.state_dict()
    assert net.cuda() is net
    assert all(p.device == "cuda" and on_device(p.data) for p in net.parameters())
    assert "device='cuda'" in repr(net[0].weight)
    state = net.state_dict()
    for key, want in before.items():
        assert isinstance(state[key], np.ndarray)
        np.testing.assert_array_equal(state[key], want)
    # A state dict is copied into the parameters where they are: on the device.
    changed = {k: v + 1 for k, v in before.items()}
    net.load_state_dict(changed)
    assert all(on_device(p.data) for p in net.parameters())
    for key, got in net.state_dict().items():
        np.testing.assert_array_equal(got, changed[key])
    # Gradients are device arrays; zero_grad(set_to_none=False) zeroes them there.
    x = np.ones((2, 1, 6, 6), np.float32)
    net(x)
    net.backward(np.ones((2, 2), np.float32))
    grad = net[0].weight.grad
    assert on_device(grad)
    net.zero_grad(set_to_none=False)
    assert net[0].weight.grad is grad and not host(grad).any()
    net.backward(np.ones((2, 2), np.float32))
    assert net.cpu() is net
    for p in net.parameters():
        assert p.device == "cpu" and isinstance(p.data, np.ndarray)
        assert isinstance(p.grad, np.ndarray)
    with pytest.raises(ValueError, match="device"):
        net.to("gpu")


def test_device_arrays_on_a_host_backend_are_a_clear_error():
    fastseg.set_backend("cuda")
    net = tiny_net().to("cuda")
    fastseg.set_backend(HOST)
    with pytest.raises(TypeError, match=r"w: got a CUDA device array.*set_backend\(\"cuda\"\)"):
        net(np.ones((1, 1, 6, 6), np.float32))
    with pytest.raises(TypeError, match="labels: got a CUDA device array"):
        ops.softmax_cross_entropy(np.zeros((2, 2), np.float32),
                                  ops.to_device(np.zeros(2, np.int64), "cuda"))
    p = net[0].weight.data
    with pytest.raises(TypeError, match="p: got a CUDA device array"):
        ops.sgd_update(p, p, p, 0.1)


def _compare_layer(make, inputs, dy_shape, seed=11):
    """Forward and backward of a layer on the device against the host backend."""
    results = []
    for backend, device in ((HOST, "cpu"), ("cuda", "cuda")):
        fastseg.set_backend(backend)
        fastseg.seed(seed)
        layer = make().to(device)  # the same weights, then the same dropout mask
        fastseg.seed(seed)
        xs = [ops.to_device(x, device) for x in inputs]  # activations of earlier layers
        y = layer(xs if isinstance(layer, nn.Parallel) else xs[0])
        dy = np.random.default_rng(1).standard_normal(dy_shape).astype(np.float32)
        dx = layer.backward(ops.to_device(dy, device))
        dx = dx if isinstance(dx, list) else [dx]
        grads = [p.grad for p in layer.parameters()]
        if device == "cuda":
            assert on_device(y) and all(on_device(d) for d in dx + grads)
        results.append((y, dx, grads))
    (y0, dx0, g0), (y1, dx1, g1) = results
    close(y1, y0)
    for got, want in zip(dx1 + g1, dx0 + g0, strict=True):
        close(got, want)


def test_dropout_on_device_matches_host():
    x = np.random.default_rng(0).standard_normal((4, 30)).astype(np.float32)
    _compare_layer(lambda: nn.Dropout(0.3), [x], (4, 30))
    fastseg.set_backend("cuda")
    drop = nn.Dropout(1.0)
    assert not host(drop(ops.to_device(x, "cuda"))).any()


def test_parallel_and_pixel_logits_on_device_match_host():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    b = rng.standard_normal((2, 3)).astype(np.float32)
    _compare_layer(lambda: nn.Parallel(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()),
                                       nn.Linear(3, 2)), [a, b], (2, 2 * 2 * 2 + 2))
    x = rng.standard_normal((2, 2 * 2 * 3)).astype(np.float32)
    _compare_layer(lambda: nn.PixelLogits(2, 2, 3), [x], (2 * 6, 2))


def test_loss_scaling_and_helpers_on_device():
    fastseg.set_backend("cuda")
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 3)).astype(np.float32)
    labels = np.array([0, 2, 1, 1, 0])
    loss_fn = nn.CrossEntropyLoss(weight=[0.5, 2.0, 1.0])
    loss = loss_fn(ops.to_device(logits, "cuda"), labels)
    assert isinstance(loss, float)
    scaled = loss_fn.backward(0.5)
    assert on_device(scaled)
    ref_loss, ref_d = ops.softmax_cross_entropy(logits, labels, np.array([0.5, 2.0, 1.0],
                                                                         np.float32),
                                                backend="numpy")
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    close(scaled, ref_d * 0.5)

    d = ops.to_device(logits, "cuda")
    assert ops.device_of(d) == "cuda" and ops.device_of(logits) == "cpu"
    assert ops.to_device(d, "cuda") is d and ops.to_device(logits, "cpu") is logits
    ops.add_(d, logits)
    close(d, 2 * logits)
    ops.copy_(d, logits)
    close(d, logits)
    ops.fill_(d, 3)
    close(d, np.full_like(logits, 3))
    close(ops.full_like(d, 2), np.full_like(logits, 2))
    assert on_device(ops.zeros_like(d)) and not host(ops.zeros_like(d)).any()
    # With backend=None a device array goes to "cuda" even when the backend is a host one.
    fastseg.set_backend(HOST)
    close(ops.mul(d, 2.0), np.full_like(logits, 6))


@pytest.mark.parametrize("backend", ["numpy", HOST])
def test_array_helpers_on_host_backends(backend):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((3, 2)).astype(np.float32)
    joined = ops.hstack([a, b], backend=backend)
    np.testing.assert_array_equal(joined, np.concatenate([a, b], axis=1))
    left, right = ops.hsplit(joined, [4, 2], backend=backend)
    np.testing.assert_array_equal(left, a)
    np.testing.assert_array_equal(right, b)
    assert right.flags.c_contiguous
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(ops.batch_transpose(x, backend=backend), x.transpose(0, 2, 1))
    dst = a.copy()
    assert ops.add_(dst, a, backend=backend) is dst
    np.testing.assert_array_equal(dst, 2 * a)
    np.testing.assert_array_equal(ops.mul(a, a, backend=backend), a * a)
    with pytest.raises(ValueError, match="widths"):
        ops.hsplit(joined, [4, 3], backend=backend)
    with pytest.raises(ValueError, match="row count"):
        ops.hstack([a, b[:2]], backend=backend)
    with pytest.raises(ValueError, match=r"p: must lie in \[0, 1\]"):
        ops.dropout(a, 1.5, backend=backend)


def test_segment_on_cuda_equals_host():
    fastseg.seed(2)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 3),
                        nn.Tanh(), nn.Linear(3, 2)).eval()
    image = np.random.default_rng(4).standard_normal((7, 6)).astype(np.float32)
    fastseg.set_backend(HOST)
    want = fastseg.segment(net, image)
    fastseg.set_backend("cuda")
    got_host_model = fastseg.segment(net, image)
    net.to("cuda")
    got = fastseg.segment(net, image)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == (7, 6)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_host_model, want, rtol=1e-5, atol=1e-6)
