"""nn.Conv3d, nn.MaxPool3d and models.lai3d against PyTorch: names, layouts, state
dicts both ways, values and gradients, training steps; lai3d's shape, size and
model files. Runs once per host backend (the host_backend fixture)."""
import numpy as np
import pytest

import fastseg
from fastseg import models, nn, optim
from fastseg.nn.module import backward_params

torch = pytest.importorskip("torch")
tnn = torch.nn


@pytest.fixture(autouse=True)
def backend(host_backend):
    torch.manual_seed(0)
    return host_backend


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def to_torch_state(module):
    return {k: torch.from_numpy(np.array(v)) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3), dict(kernel_size=(3, 2, 1),
                                                             stride=(1, 2, 1), padding=(1, 0, 1)),
                                    dict(kernel_size=2, stride=2, bias=False)])
def test_conv3d_layer_matches_torch_both_ways(kwargs, rng):
    ours, theirs = nn.Conv3d(2, 3, **kwargs), tnn.Conv3d(2, 3, **kwargs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert repr(ours) == repr(theirs)
    x = f32(rng, 2, 2, 5, 6, 7)
    for direction in ("to torch", "from torch"):
        if direction == "to torch":
            theirs.load_state_dict(to_torch_state(ours))
        else:
            for p in theirs.parameters():
                tnn.init.normal_(p)
            ours.load_state_dict(theirs.state_dict())
        tx = torch.from_numpy(x.copy()).requires_grad_()
        ty = theirs(tx)
        y = ours(x)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
        dy = f32(rng, *y.shape)
        theirs.zero_grad()
        ty.backward(torch.from_numpy(dy))
        ours.zero_grad()
        np.testing.assert_allclose(ours.backward(dy), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
        for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters(),
                                          strict=True):
            assert name == tname
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_conv3d_layer_without_input_gradient(rng):
    layer = nn.Conv3d(1, 4, 3)
    x = f32(rng, 2, 1, 5, 5, 5)
    y = layer(x)
    layer.zero_grad()
    layer.backward(np.ones_like(y))
    want = layer.weight.grad.copy()
    layer.zero_grad()
    assert layer.backward(np.ones_like(y), need_dx=False) is None
    np.testing.assert_array_equal(layer.weight.grad, want)


def test_maxpool3d_layer_matches_torch(rng):
    ours, theirs = nn.MaxPool3d((2, 3, 2), stride=(2, 1, 2)), tnn.MaxPool3d((2, 3, 2), (2, 1, 2))
    x = f32(rng, 2, 3, 6, 7, 8)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = theirs(tx)
    y = ours(x)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    assert ours.output_size(6, 7, 8) == tuple(y.shape[2:])
    dy = f32(rng, *y.shape)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(ours.backward(dy), tx.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_layers_refuse_wrong_inputs(rng):
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 2, D, H, W\)"):
        nn.Conv3d(2, 3, 3)(f32(rng, 1, 2, 5, 5))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, C, D, H, W\)"):
        nn.MaxPool3d(2)(f32(rng, 1, 2, 5, 5))
    with pytest.raises(ValueError, match="kernel_size: expected an int or 3 ints"):
        nn.Conv3d(2, 3, (3, 3))
    with pytest.raises(ValueError, match="stride: must be >= 1"):
        nn.MaxPool3d(2, stride=0)


def test_lai3d_is_the_documented_network():
    net = models.lai3d()
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Conv3d", "ReLU", "MaxPool3d", "Conv3d", "ReLU", "Flatten", "Linear",
                     "Tanh", "Linear"]
    assert (net[0].out_channels, net[3].out_channels, net[6].out_features) == (20, 50, 1000)
    assert net[6].in_features == 50 * 6 * 6 * 6
    assert sum(p.size for p in net.parameters()) == 10_930_572
    assert net[6].weight.size * 4 < 50e6  # the fully connected weights stay under 50 MB
    assert all(max(m.padding) == 0 for m in net if isinstance(m, nn.Conv3d))
    assert net(np.zeros((2, 1, 24, 24, 24), np.float32)).shape == (2, 2)
    tnet = tnn.Sequential(tnn.Conv3d(1, 20, 5), tnn.ReLU(), tnn.MaxPool3d(2),
                          tnn.Conv3d(20, 50, 5), tnn.ReLU(), tnn.Flatten(),
                          tnn.Linear(10800, 1000), tnn.Tanh(), tnn.Linear(1000, 2))
    assert sum(p.numel() for p in tnet.parameters()) == 10_930_572
    net.load_state_dict(tnet.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 1, 24, 24, 24)).astype(np.float32)
    np.testing.assert_allclose(net(x), tnet(torch.from_numpy(x)).detach().numpy(), rtol=1e-3,
                               atol=1e-4)
    with pytest.raises(ValueError, match="patch_size: 12 is too small"):
        models.lai3d(patch_size=12)
    assert [type(m).__name__ for m in models.lai3d(patch_size=12, pool=1)][:3] == \
        ["Conv3d", "ReLU", "Conv3d"]


def test_lai3d_save_load_round_trip(tmp_path, rng):
    net = models.lai3d(patch_size=14, conv_channels=(3, 4), hidden=8).eval()
    x = f32(rng, 2, 1, 14, 14, 14)
    path = tmp_path / "lai3d.fseg"
    fastseg.save(net, path)
    back = fastseg.load(path)
    assert repr(back) == repr(net)
    np.testing.assert_array_equal(back(x), net(x))
    for (k, a), (k2, b) in zip(net.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2
        np.testing.assert_array_equal(a, b)


def test_lai3d_trains_step_for_step_with_torch(rng):
    net = models.lai3d(patch_size=14, conv_channels=(3, 4), hidden=16)
    twin = tnn.Sequential(tnn.Conv3d(1, 3, 5), tnn.ReLU(), tnn.MaxPool3d(2), tnn.Conv3d(3, 4, 5),
                          tnn.ReLU(), tnn.Flatten(), tnn.Linear(4, 16), tnn.Tanh(),
                          tnn.Linear(16, 2))
    twin.load_state_dict(to_torch_state(net))
    opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    topt = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9, foreach=False)
    loss_fn, tloss_fn = nn.CrossEntropyLoss(), tnn.CrossEntropyLoss()
    for _ in range(5):
        y = rng.integers(0, 2, 8)
        x = f32(rng, 8, 1, 14, 14, 14) + y[:, None, None, None, None].astype(np.float32)
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        backward_params(net, loss_fn.backward())  # the first layer skips its dx, as fit does
        opt.step()
        topt.zero_grad()
        tloss = tloss_fn(twin(torch.from_numpy(x)), torch.from_numpy(y))
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-4, abs=1e-5)
    for k, v in twin.state_dict().items():
        np.testing.assert_allclose(net.state_dict()[k], v.numpy(), rtol=1e-3, atol=1e-4)
