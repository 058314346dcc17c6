"""Behaviour of fastseg.nn modules: registration, state dicts, modes, errors, shapes."""
from collections import OrderedDict

import numpy as np
import pytest

import fastseg
from fastseg import nn

pytestmark = pytest.mark.usefixtures("host_backend")


def small_net():
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Conv2d(3, 4, 3, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 5), nn.Tanh(),
                         nn.Linear(5, 2))


def batch(n=3, c=2, size=6, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, size, size)).astype(np.float32)


def test_state_dict_keys_and_layouts_follow_pytorch():
    net = small_net()
    sd = net.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias", "5.weight", "5.bias",
                        "7.weight", "7.bias"]
    assert sd["0.weight"].shape == (3, 2, 3, 3) and sd["5.weight"].shape == (5, 64)
    assert all(a.dtype == np.float32 for a in sd.values())
    assert [n for n, _ in net.named_modules()][:3] == ["", "0", "1"]
    assert len(list(net.children())) == 8


def test_parallel_keys_and_no_bias_slot():
    par = nn.Parallel(nn.Sequential(nn.Conv2d(1, 2, 3)), nn.Sequential(nn.Conv2d(1, 2, 3,
                                                                                  bias=False)))
    assert list(par.state_dict()) == ["branches.0.0.weight", "branches.0.0.bias",
                                      "branches.1.0.weight"]
    assert par.branches[1][0].bias is None


def test_default_init_is_torch_uniform_fan_in():
    conv = nn.Conv2d(8, 16, 5)
    bound = 1 / np.sqrt(8 * 25)
    w = conv.weight.data
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.1 * bound  # std of U(-b, b)
    assert np.abs(conv.bias.data).max() <= bound
    lin = nn.Linear(400, 3)
    assert np.abs(lin.weight.data).max() <= 1 / 20 and np.abs(lin.bias.data).max() <= 1 / 20


def test_seed_makes_init_reproducible():
    fastseg.seed(3)
    a = small_net().state_dict()
    fastseg.seed(3)
    b = small_net().state_dict()
    fastseg.seed(4)
    c = small_net().state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["0.weight"], c["0.weight"])


def test_layer_attributes_for_dense_segmentation():
    conv = nn.Conv2d(1, 20, (5, 5), stride=2, padding=1)
    assert (conv.kernel_size, conv.stride, conv.padding) == (5, 2, 1)
    assert isinstance(conv.kernel_size, int) and conv.weight.shape == (20, 1, 5, 5)
    lin = nn.Linear(7, 3)
    assert (lin.in_features, lin.out_features) == (7, 3)
    pool = nn.MaxPool2d(3)
    assert (pool.kernel_size, pool.stride) == (3, 3)
    with pytest.raises(ValueError, match="square"):
        nn.Conv2d(1, 2, (3, 5))


def test_sequential_is_indexable_iterable_sliceable():
    net = small_net()
    assert len(net) == 8 and isinstance(net[0], nn.Conv2d) and isinstance(net[-1], nn.Linear)
    assert [type(m).__name__ for m in net][:2] == ["Conv2d", "ReLU"]
    head = net[:5]
    assert isinstance(head, nn.Sequential) and len(head) == 5
    assert head(batch()).shape == (3, 64)
    named = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 1, 1), act=nn.ReLU()))
    assert list(named.state_dict()) == ["conv.weight", "conv.bias"]
    with pytest.raises(TypeError, match=r"Sequential\[1\]: expected a fastseg.nn.Module"):
        nn.Sequential(nn.ReLU(), "relu")
    # Slices: a Sequential keeps its children's names (state dict keys), a ModuleList
    # renumbers from 0, as in PyTorch.
    tail = net[6:]
    assert list(tail.state_dict()) == ["7.weight", "7.bias"] and isinstance(tail, nn.Sequential)
    listed = nn.ModuleList(list(net))[7:]
    assert type(listed) is nn.ModuleList and list(listed.state_dict()) == ["0.weight",
                                                                           "0.bias"]
    grown = nn.Sequential(nn.Linear(2, 3)).append(nn.Tanh())
    assert len(grown) == 2 and isinstance(grown[1], nn.Tanh)
    with pytest.raises(TypeError, match=r"ModuleList\[0\]"):
        nn.ModuleList([3])


def test_forward_backward_shapes_and_grad_accumulation():
    net = small_net()
    x = batch()
    y = net(x)
    assert y.shape == (3, 2) and y.dtype == np.float32
    assert all(p.grad is None for p in net.parameters())
    dy = np.ones_like(y)
    dx = net.backward(dy)
    assert dx.shape == x.shape
    first = [p.grad.copy() for p in net.parameters()]
    net.backward(dy)
    for g1, p in zip(first, net.parameters(), strict=True):
        np.testing.assert_allclose(p.grad, 2 * g1, rtol=1e-5, atol=1e-6)
    net.zero_grad(set_to_none=False)
    assert all(not p.grad.any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_backward_without_input_gradient_gives_the_same_parameter_gradients():
    x = batch()
    nets = []
    for _ in range(2):
        fastseg.seed(0)
        nets.append(small_net())
        nets[-1](x)
    dy = np.ones((3, 2), np.float32)
    assert nets[0].backward(dy).shape == x.shape
    assert nets[1].backward(dy, need_dx=False) is None
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        np.testing.assert_array_equal(a.grad, b.grad)
    # Parameter-free modules in front get no backward at all; layers inside a
    # container and Parallel's branches skip their dx too.
    head = nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(12, 4), nn.Tanh()),
                         nn.Linear(4, 2))
    head(np.ones((5, 3, 4), np.float32))
    assert head.backward(np.ones((5, 2), np.float32), need_dx=False) is None
    assert all(p.grad is not None for p in head.parameters())
    par = nn.Parallel(nn.Sequential(nn.Conv2d(1, 2, 3)), nn.Sequential(nn.ReLU(),
                                                                         nn.Conv2d(1, 1, 3)))
    y = par([batch(n=2, c=1, size=5, seed=1), batch(n=2, c=1, size=5, seed=2)])
    assert par.backward(np.ones_like(y), need_dx=False) is None
    assert all(p.grad is not None for p in par.parameters())


def test_train_eval_modes_and_backward_without_forward():
    net = small_net()
    assert net.training and net[0].training
    net.eval()
    assert not net.training and not net[3].training
    y = net(batch())  # eval forward keeps no activations
    with pytest.raises(RuntimeError, match=r"Linear\(.*backward.*training mode"):
        net.backward(np.ones_like(y))
    fresh = nn.Conv2d(1, 2, 3)
    with pytest.raises(RuntimeError, match="Conv2d"):
        fresh.backward(np.zeros((1, 2, 2, 2), np.float32))
    assert net.train() is net and net[5].training


def test_wrong_input_shapes_name_the_layer():
    with pytest.raises(ValueError, match=r"Conv2d\(2, 3.*\(N, 2, H, W\).*\(3, 5, 6, 6\)"):
        small_net()(batch(c=5))
    with pytest.raises(ValueError, match=r"Linear\(in_features=64.*\(N, 64\)"):
        small_net()(batch(size=7))
    with pytest.raises(ValueError, match="Conv2d"):
        nn.Conv2d(2, 3, 3)(np.zeros((2, 6, 6), np.float32))


def test_load_state_dict_strict_errors_and_no_partial_update():
    net = small_net()
    before = net.state_dict()
    bad = dict(before)
    bad.pop("0.bias")
    bad["extra.weight"] = np.zeros(3, np.float32)
    bad["5.weight"] = np.zeros((5, 63), np.float32)
    bad["7.bias"] = before["7.bias"] + 1
    with pytest.raises(ValueError) as err:
        net.load_state_dict(bad)
    msg = str(err.value)
    assert "Missing key(s)" in msg and "'0.bias'" in msg
    assert "Unexpected key(s)" in msg and "'extra.weight'" in msg
    assert "size mismatch for 5.weight" in msg
    assert isinstance(err.value, RuntimeError)  # as torch raises it
    np.testing.assert_array_equal(net.state_dict()["7.bias"], before["7.bias"])
    del bad["5.weight"]
    missing, unexpected = net.load_state_dict(bad, strict=False)
    assert missing == ["0.bias", "5.weight"] and unexpected == ["extra.weight"]
    np.testing.assert_array_equal(net.state_dict()["7.bias"], before["7.bias"] + 1)


def test_dropout_inverted_seeded_and_off_in_eval():
    drop = nn.Dropout(0.25)
    x = np.ones((200, 100), np.float32)
    fastseg.seed(1)
    y1 = drop(x)
    fastseg.seed(1)
    y2 = drop(x)
    np.testing.assert_array_equal(y1, y2)
    assert abs((y1 == 0).mean() - 0.25) < 0.02
    np.testing.assert_allclose(y1[y1 != 0], 1 / 0.75)
    np.testing.assert_array_equal(drop.backward(x), y1)
    drop.eval()
    assert drop(x) is x
    assert not nn.Dropout(1.0)(x).any()
    for p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"p: must lie in \[0, 1\]"):
            nn.Dropout(p)
    with pytest.raises(TypeError, match="p: expected a number"):
        nn.Dropout("0.5")


def test_maxpool_flatten_and_pixel_logits():
    x = batch(n=2, c=3, size=5)
    pool = nn.MaxPool2d(2)
    y = pool(x)
    assert y.shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(y[0, 0, 0, 0], x[0, 0, :2, :2].max())
    dx = pool.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.sum() == y.size
    flat = nn.Flatten()
    assert flat(x).shape == (2, 75) and flat.backward(flat(x)).shape == x.shape
    pix = nn.PixelLogits(2, 3, 4)
    raw = np.arange(2 * 24, dtype=np.float32).reshape(2, 24)
    out = pix(raw)
    assert out.shape == (24, 2)
    # pixel (i, j) = (1, 2) of image 1, class 1 sits at raw[1, 1*12 + 1*4 + 2]
    assert out[(1 * 3 + 1) * 4 + 2, 1] == raw[1, 12 + 4 + 2]
    np.testing.assert_array_equal(pix.backward(out), raw)


def test_parallel_concatenates_and_splits_gradients():
    par = nn.Parallel(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()),
                      nn.Sequential(nn.Conv2d(1, 3, 3)))
    xs = [batch(n=2, c=1, size=5, seed=1), batch(n=2, c=1, size=5, seed=2)]
    y = par(xs)
    assert y.shape == (2, 2 * 9 + 3 * 9)
    np.testing.assert_allclose(y[:, 18:], par.branches[1](xs[1]).reshape(2, -1))
    dxs = par.backward(np.ones_like(y))
    assert isinstance(dxs, list) and [d.shape for d in dxs] == [x.shape for x in xs]
    with pytest.raises(ValueError, match="list of 2 inputs"):
        par(xs[0])
    with pytest.raises(ValueError, match="list of 2 inputs"):
        par(xs[:1])


def test_cross_entropy_loss_matches_formula_with_weights():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 2, 1, 0])
    w = np.array([1.0, 2.0, 0.5])
    loss_fn = nn.CrossEntropyLoss(weight=w)
    with pytest.raises(RuntimeError, match="first"):
        loss_fn.backward()
    loss = loss_fn(logits, labels)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -(w[labels] * logp[np.arange(6), labels]).sum() / w[labels].sum()
    assert loss == pytest.approx(expected, rel=1e-5)
    assert loss_fn.backward().shape == (6, 3)
    np.testing.assert_allclose(loss_fn.backward(2.0), 2 * loss_fn.backward(), rtol=1e-6)
    with pytest.raises(ValueError, match="weight"):
        nn.CrossEntropyLoss(weight=[1.0, -1.0])


def test_repr_reads_like_torch():
    text = repr(small_net())
    assert "(0): Conv2d(2, 3, kernel_size=(3, 3), stride=(1, 1))" in text
    assert "(5): Linear(in_features=64, out_features=5, bias=True)" in text
