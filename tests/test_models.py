"""fastseg.models: the paper's networks, their shapes, parameter counts and registry."""
import numpy as np
import pytest

import fastseg
from fastseg import backends, models, nn

BACKENDS = [b for b in fastseg.available_backends() if b in ("numpy", "c")]


@pytest.fixture(autouse=True)
def backend(monkeypatch):
    name = "c" if "c" in BACKENDS else "numpy"
    backends.load(name)
    monkeypatch.setattr(backends, "_current", name)
    fastseg.seed(0)


def count(net):
    return sum(p.size for p in net.parameters())


def test_registry():
    assert models.names() == ["lai2d", "lai_stacked2d", "lai_triplanar", "lai3d",
                              "seo_whole_image"]
    assert isinstance(models.get("lai2d", hidden=10), nn.Sequential)
    assert isinstance(models.get("lai3d", hidden=10), nn.Sequential)
    with pytest.raises(ValueError, match="unknown model 'unet'"):
        models.get("unet")


def test_lai2d_is_the_reports_network():
    net = models.lai2d()
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Conv2d", "ReLU", "Conv2d", "ReLU", "Flatten", "Linear", "Tanh", "Linear"]
    assert (net[0].out_channels, net[2].out_channels, net[5].out_features) == (20, 50, 1000)
    assert net[5].in_features == 50 * 16 * 16
    assert count(net) == 12_828_572
    assert net(np.zeros((2, 1, 24, 24), np.float32)).shape == (2, 2)


def test_options_and_stacked_variant():
    net = models.lai2d(conv_activation="tanh", fc_activation="sigmoid", dropout=0.5,
                       patch_size=12, hidden=8)
    assert [type(m).__name__ for m in net][1::2][:2] == ["Tanh", "Tanh"]
    assert any(isinstance(m, nn.Dropout) for m in net)
    stacked = models.lai_stacked2d()
    assert stacked[0].in_channels == 3
    assert stacked(np.zeros((1, 3, 24, 24), np.float32)).shape == (1, 2)
    with pytest.raises(ValueError, match="unknown activation"):
        models.lai2d(conv_activation="gelu")
    with pytest.raises(ValueError, match="too small"):
        models.lai2d(patch_size=8)


def test_triplanar_takes_three_patches():
    net = models.lai_triplanar(hidden=16)
    assert isinstance(net[0], nn.Parallel) and len(net[0].branches) == 3
    xs = [np.zeros((2, 1, 24, 24), np.float32)] * 3
    assert net(xs).shape == (2, 2)
    assert list(net.state_dict())[0] == "0.branches.0.0.weight"


def test_seo_whole_image_output_layout():
    net = models.seo_whole_image(image_size=(16, 12), conv_channels=(4, 8), hidden=(32,))
    x = np.random.default_rng(0).standard_normal((2, 1, 16, 12)).astype(np.float32)
    logits = net(x)
    assert logits.shape == (2 * 16 * 12, 2)
    prob = models.whole_image_probabilities(logits, (16, 12))
    assert prob.shape == (2, 16, 12) and ((prob >= 0) & (prob <= 1)).all()
    raw = net[:-1](x)  # before PixelLogits: (N, 2*H*W), class-major
    e = np.exp(raw[1, 16 * 12 + 5 * 12 + 3] - raw[1, 5 * 12 + 3])
    assert prob[1, 5, 3] == pytest.approx(e / (1 + e), rel=1e-5)


def _torch_equivalents(tnn):
    class TorchParallel(tnn.Module):
        def __init__(self, *branches):
            super().__init__()
            self.branches = tnn.ModuleList(branches)

        def forward(self, xs):
            import torch

            return torch.cat([b(x).flatten(1) for b, x in zip(self.branches, xs, strict=True)],
                             1)

    def tower():
        return tnn.Sequential(tnn.Conv2d(1, 20, 5), tnn.ReLU(), tnn.Conv2d(20, 50, 5),
                              tnn.ReLU())

    lai2d = tnn.Sequential(*tower(), tnn.Flatten(), tnn.Linear(12800, 1000), tnn.Tanh(),
                           tnn.Linear(1000, 2))
    tri = tnn.Sequential(TorchParallel(tower(), tower(), tower()), tnn.Linear(3 * 12800, 1000),
                         tnn.Tanh(), tnn.Linear(1000, 2))
    seo = tnn.Sequential(tnn.Conv2d(1, 16, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
                         tnn.Conv2d(16, 32, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
                         tnn.Flatten(), tnn.Linear(32 * 16 * 16, 256), tnn.Tanh(),
                         tnn.Linear(256, 2 * 64 * 64))
    return {"lai2d": lai2d, "lai_triplanar": tri, "seo_whole_image": seo}


@pytest.mark.parametrize("name", ["lai2d", "lai_triplanar", "seo_whole_image"])
def test_shapes_and_counts_match_torch(name):
    torch = pytest.importorskip("torch")
    tnet = _torch_equivalents(torch.nn)[name]
    net = models.get(name)
    assert count(net) == sum(p.numel() for p in tnet.parameters())
    tstate = tnet.state_dict()
    assert {k: v.shape for k, v in net.state_dict().items()} == {
        k: tuple(v.shape) for k, v in tstate.items()}
    net.load_state_dict(tstate)
    rng = np.random.default_rng(0)
    if name == "lai_triplanar":
        xs = [rng.standard_normal((2, 1, 24, 24)).astype(np.float32) for _ in range(3)]
        ours, theirs = net(xs), tnet([torch.from_numpy(a) for a in xs])
    else:
        size = 64 if name == "seo_whole_image" else 24
        x = rng.standard_normal((2, 1, size, size)).astype(np.float32)
        ours, theirs = net(x), tnet(torch.from_numpy(x))
    theirs = theirs.detach().numpy()
    if name == "seo_whole_image":  # torch gives (N, 2*H*W); ours is one row per pixel
        theirs = theirs.reshape(2, 2, -1).transpose(0, 2, 1).reshape(-1, 2)
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)
