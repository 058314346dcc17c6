"""The same network trained side by side with PyTorch CPU gives the same run.

Same initial weights (moved through state dicts), same batches, 20 steps per
optimizer: the losses and the final weights must agree to float tolerance.
"""
import numpy as np
import pytest

from fastseg import nn, optim

torch = pytest.importorskip("torch")
tnn = torch.nn

STEPS = 20


@pytest.fixture(autouse=True)
def backend(host_backend):
    torch.manual_seed(0)
    return host_backend


def ours():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(6 * 6 * 6, 16), nn.Tanh(), nn.Linear(16, 2))


def theirs():
    return tnn.Sequential(tnn.Conv2d(1, 4, 3), tnn.ReLU(), tnn.Conv2d(4, 6, 3), tnn.ReLU(),
                          tnn.Flatten(), tnn.Linear(6 * 6 * 6, 16), tnn.Tanh(),
                          tnn.Linear(16, 2))


def batches(n_steps, batch=8, size=10):
    rng = np.random.default_rng(42)
    out = []
    for _ in range(n_steps):
        y = rng.integers(0, 2, batch)
        x = rng.standard_normal((batch, 1, size, size)).astype(np.float32)
        x[:, :, 3:7, 3:7] += 1.5 * y[:, None, None, None]  # something learnable
        out.append((x, y))
    return out


OPTIMIZERS = {
    "sgd": (lambda p: optim.SGD(p, lr=0.05),
            lambda p: torch.optim.SGD(p, lr=0.05, foreach=False)),
    "sgd_momentum_dampening": (
        lambda p: optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1, foreach=False)),
    "sgd_nesterov_weight_decay": (
        lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3,
                                  foreach=False)),
    "rprop": (lambda p: optim.Rprop(p, lr=0.001),
              lambda p: torch.optim.Rprop(p, lr=0.001, foreach=False)),
    "adam": (lambda p: optim.Adam(p, lr=1e-3),
             lambda p: torch.optim.Adam(p, lr=1e-3, foreach=False)),
    "adam_weight_decay": (lambda p: optim.Adam(p, lr=2e-3, betas=(0.8, 0.99), weight_decay=0.01),
                          lambda p: torch.optim.Adam(p, lr=2e-3, betas=(0.8, 0.99),
                                                     weight_decay=0.01, foreach=False)),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_training_matches_torch(name, backend):
    make_ours, make_theirs = OPTIMIZERS[name]
    tnet = theirs()
    net = ours()
    net.load_state_dict(tnet.state_dict())
    opt, topt = make_ours(net.parameters()), make_theirs(tnet.parameters())
    loss_fn, tloss_fn = nn.CrossEntropyLoss(), tnn.CrossEntropyLoss()
    diffs = []
    for x, y in batches(STEPS):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        net.backward(loss_fn.backward())
        opt.step()
        topt.zero_grad()
        tloss = tloss_fn(tnet(torch.from_numpy(x)), torch.from_numpy(y))
        tloss.backward()
        topt.step()
        diffs.append(abs(loss - tloss.item()))
    print(f"\n[{backend}] {name}: largest loss difference over {STEPS} steps "
          f"= {max(diffs):.2e}; last loss {loss:.4f}")
    assert max(diffs) < 1e-4
    tstate = tnet.state_dict()
    for key, value in net.state_dict().items():
        np.testing.assert_allclose(value, tstate[key].numpy(), rtol=1e-3, atol=2e-5,
                                   err_msg=f"{name}: {key}")


def test_state_dict_moves_both_ways(backend):
    x = batches(1)[0][0]
    tnet, net = theirs(), ours()
    net.load_state_dict(tnet.state_dict())
    np.testing.assert_allclose(net(x), tnet(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)
    net2, tnet2 = ours(), theirs()
    tnet2.load_state_dict({k: torch.from_numpy(v) for k, v in net2.state_dict().items()})
    np.testing.assert_allclose(net2(x), tnet2(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)


class TorchParallel(tnn.Module):
    """What fastseg.nn.Parallel is, written in PyTorch."""

    def __init__(self, *branches):
        super().__init__()
        self.branches = tnn.ModuleList(branches)

    def forward(self, inputs):
        return torch.cat([b(x).flatten(1) for b, x in zip(self.branches, inputs, strict=True)],
                         dim=1)


def test_parallel_matches_torch_forward_and_gradients(backend):
    def tower(lib):
        return lib.Sequential(lib.Conv2d(1, 3, 3), lib.ReLU())

    tnet = tnn.Sequential(TorchParallel(tower(tnn), tower(tnn)), tnn.Linear(2 * 3 * 16, 2))
    net = nn.Sequential(nn.Parallel(tower(nn), tower(nn)), nn.Linear(2 * 3 * 16, 2))
    net.load_state_dict(tnet.state_dict())
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((4, 1, 6, 6)).astype(np.float32) for _ in range(2)]
    y = np.array([0, 1, 1, 0])
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(net(xs), y)
    net.backward(loss_fn.backward())
    tloss = tnn.CrossEntropyLoss()(tnet([torch.from_numpy(a) for a in xs]), torch.from_numpy(y))
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), abs=1e-5)
    tgrads = {k: p.grad.numpy() for k, p in tnet.named_parameters()}
    for key, p in net.named_parameters():
        np.testing.assert_allclose(p.grad, tgrads[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_class_weighted_loss_matches_torch(backend):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((7, 3)).astype(np.float32)
    y = rng.integers(0, 3, 7)
    w = np.array([0.2, 1.0, 3.0], np.float32)
    loss_fn = nn.CrossEntropyLoss(weight=w)
    t_logits = torch.from_numpy(logits).requires_grad_()
    tloss = tnn.CrossEntropyLoss(weight=torch.from_numpy(w))(t_logits, torch.from_numpy(y))
    tloss.backward()
    assert loss_fn(logits, y) == pytest.approx(tloss.item(), rel=1e-5)
    np.testing.assert_allclose(loss_fn.backward(), t_logits.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_loads_torch_optimizer_state(backend):
    tnet, net = theirs(), ours()
    net.load_state_dict(tnet.state_dict())
    topt = torch.optim.Adam(tnet.parameters(), lr=1e-3, foreach=False)
    data = batches(4)
    for x, y in data[:2]:
        topt.zero_grad()
        tnn.CrossEntropyLoss()(tnet(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        topt.step()
    net.load_state_dict(tnet.state_dict())
    opt = optim.Adam(net.parameters(), lr=1e-3)
    opt.load_state_dict(topt.state_dict())
    assert opt.state[net.parameters()[0]]["step"] == 2
    loss_fn = nn.CrossEntropyLoss()
    for x, y in data[2:]:
        opt.zero_grad()
        loss_fn(net(x), y)
        net.backward(loss_fn.backward())
        opt.step()
        topt.zero_grad()
        tnn.CrossEntropyLoss()(tnet(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        topt.step()
    for key, value in net.state_dict().items():
        np.testing.assert_allclose(value, tnet.state_dict()[key].numpy(), rtol=1e-4, atol=1e-6)
