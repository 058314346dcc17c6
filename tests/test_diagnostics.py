"""Per-layer diagnostics of fit: gradient norms, update ratios and dead ReLUs against values
computed by hand, the recording interval, resume, and the plot."""
import numpy as np
import pytest
from PIL import Image

from fastseg import diagnostics, nn, optim, train, viz

pytestmark = pytest.mark.usefixtures("host_backend")


def tiny_net():
    """Linear(3, 4) ReLU Linear(4, 2) with hidden unit 0 dead (bias -100) for any input
    used here, unit 1 alive for some samples only, units 2 and 3 always alive."""
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    rng = np.random.default_rng(5)
    net[0].weight.data[...] = rng.uniform(-1, 1, (4, 3))
    net[0].bias.data[...] = [-100.0, 0.0, 10.0, 10.0]
    net[2].weight.data[...] = rng.uniform(-1, 1, (2, 4))
    net[2].bias.data[...] = [0.1, -0.2]
    return net


def by_hand(net, x, y, lr):
    """Gradients of mean softmax cross-entropy for tiny_net, in float64, by the chain rule."""
    w1, b1 = (net[0].weight.data.astype(np.float64), net[0].bias.data.astype(np.float64))
    w2, b2 = (net[2].weight.data.astype(np.float64), net[2].bias.data.astype(np.float64))
    pre = x @ w1.T + b1
    h = np.maximum(pre, 0)
    logits = h @ w2.T + b2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dlogits = (p - np.eye(2)[y]) / len(y)
    dw2, db2 = dlogits.T @ h, dlogits.sum(0)
    dpre = (dlogits @ w2) * (pre > 0)
    dw1, db1 = dpre.T @ x, dpre.sum(0)
    out = {}
    for key, grads, params in (("0:Linear", (dw1, db1), (w1, b1)),
                               ("2:Linear", (dw2, db2), (w2, b2))):
        g = np.sqrt(sum((a ** 2).sum() for a in grads))
        weight = np.sqrt(sum((a ** 2).sum() for a in params))
        out[key] = (g, lr * g / weight)  # plain SGD moves each layer by lr * its gradient
    alive = (pre > 0).any(axis=0)
    return out, 1.0 - alive.mean()


def test_matches_hand_computed_norms_ratios_and_dead_units():
    net = tiny_net()
    x = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, -1, -1], [0.5, -2, 1]], np.float32)
    y = np.array([0, 1, 1, 0, 1])
    pre = x @ net[0].weight.data.T
    assert (pre[:, 1] > 0).any() and (pre[:, 1] <= 0).any()  # unit 1: alive for some only
    lr = 0.1
    expected, dead = by_hand(net, x.astype(np.float64), y, lr)
    assert dead == 0.25
    hist = train.fit(net, [(x, y)], nn.CrossEntropyLoss(), optim.SGD(net.parameters(), lr=lr),
                     diagnostics=1, progress=False)
    d = hist["diagnostics"]
    assert d["step"] == [0] and d["epoch"] == [0]
    assert set(d["grad_norm"]) == set(d["update_ratio"]) == {"0:Linear", "2:Linear"}
    for key, (grad_norm, ratio) in expected.items():
        assert d["grad_norm"][key][0] == pytest.approx(grad_norm, rel=1e-5)
        assert d["update_ratio"][key][0] == pytest.approx(ratio, rel=1e-4)
    assert d["dead_relu"] == {"1:ReLU": [0.25]}
    assert diagnostics.layer_names(net) == ["0:Linear", "2:Linear"]


def test_dead_units_of_a_convolution_are_channel_and_position():
    conv = nn.Conv2d(1, 3, 3)
    conv.weight.data[...] = 0.01
    conv.bias.data[...] = [-100.0, 100.0, 100.0]
    net = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    x = np.random.default_rng(0).normal(size=(4, 1, 6, 6)).astype(np.float32)
    hist = train.fit(net, [(x, np.array([0, 1, 0, 1]))], nn.CrossEntropyLoss(),
                     optim.SGD(net.parameters(), lr=0.01), diagnostics=1, progress=False)
    assert hist["diagnostics"]["dead_relu"]["1:ReLU"] == [pytest.approx(1 / 3)]
    # A dead channel gets no gradient: only its (unused) bias could, and it gets zero.
    assert hist["diagnostics"]["grad_norm"]["0:Conv2d"][0] > 0


def batches_of(n_batches, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(4, 3)).astype(np.float32), rng.integers(0, 2, 4))
            for _ in range(n_batches)]


def test_interval_epochs_and_resume(tmp_path):
    data = batches_of(4)
    net = tiny_net()
    hist = train.fit(net, data, nn.CrossEntropyLoss(), optim.SGD(net.parameters(), lr=0.1),
                     epochs=2, diagnostics=3, progress=False)
    d = hist["diagnostics"]
    assert d["step"] == [0, 3, 6] and d["epoch"] == [0, 0, 1]
    assert all(len(col) == 3 for table in ("grad_norm", "update_ratio", "dead_relu")
               for col in d[table].values())
    # Resume continues the same columns.
    ckpt = tmp_path / "ck.fseg"
    net = tiny_net()
    opt = optim.SGD(net.parameters(), lr=0.1)
    train.fit(net, data, nn.CrossEntropyLoss(), opt, epochs=1, diagnostics=2, checkpoint=ckpt,
              progress=False)
    net = tiny_net()
    opt = optim.SGD(net.parameters(), lr=0.1)
    hist = train.fit(net, data, nn.CrossEntropyLoss(), opt, epochs=2, diagnostics=2,
                     resume=ckpt, progress=False)
    assert hist["diagnostics"]["step"] == [0, 2, 4, 6]
    assert hist["diagnostics"]["epoch"] == [0, 0, 1, 1]


def test_no_diagnostics_by_default_and_bad_interval():
    net = tiny_net()
    hist = train.fit(net, batches_of(1), nn.CrossEntropyLoss(),
                     optim.SGD(net.parameters(), lr=0.1), progress=False)
    assert "diagnostics" not in hist
    with pytest.raises(ValueError, match="diagnostics: must be >= 1"):
        train.fit(net, batches_of(1), nn.CrossEntropyLoss(),
                  optim.SGD(net.parameters(), lr=0.1), diagnostics=0, progress=False)


@pytest.mark.parametrize("use_matplotlib", [True, False])
def test_plot(tmp_path, use_matplotlib, monkeypatch):
    net = tiny_net()
    hist = train.fit(net, batches_of(3), nn.CrossEntropyLoss(),
                     optim.SGD(net.parameters(), lr=0.1), epochs=2, diagnostics=1,
                     progress=False)
    if not use_matplotlib:
        original = viz.plot_panels
        monkeypatch.setattr(viz, "plot_panels",
                            lambda *a, **k: original(*a, **k, use_matplotlib=False))
    path = tmp_path / "diag.png"
    diagnostics.plot(path, hist["diagnostics"])
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 200
    with pytest.raises(ValueError, match="nothing recorded"):
        diagnostics.plot(path, {"step": []})
