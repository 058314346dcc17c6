"""fastseg.optim: validation, update rules, skipping, state dicts."""
import numpy as np
import pytest

from fastseg import nn, optim

pytestmark = pytest.mark.usefixtures("host_backend")


def params(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    ps = [nn.Parameter(rng.standard_normal(s)) for s in shapes]
    for p in ps:
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    return ps


INVALID = [
    (lambda p: optim.SGD(p, lr=-1), "Invalid learning rate: -1"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-1), "Invalid momentum value: -1"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), "Invalid weight_decay value: -1"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True),
     "Nesterov momentum requires a momentum and zero dampening"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     "Nesterov momentum requires a momentum and zero dampening"),
    (lambda p: optim.Adam(p, lr=-1), "Invalid learning rate: -1"),
    (lambda p: optim.Adam(p, eps=-1), "Invalid epsilon value: -1"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (lambda p: optim.Adam(p, weight_decay=-1), "Invalid weight_decay value: -1"),
    (lambda p: optim.Rprop(p, lr=-1), "Invalid learning rate: -1"),
    (lambda p: optim.Rprop(p, etas=(1.5, 1.2)), "Invalid eta values: 1.5, 1.2"),
    (lambda p: optim.Rprop(p, etas=(0.5, 0.9)), "Invalid eta values: 0.5, 0.9"),
    (lambda p: optim.SGD([{"params": p, "lr": -2}], lr=0.1), "Invalid learning rate: -2"),
]


@pytest.mark.parametrize("make,message", INVALID)
def test_invalid_hyper_parameters_refused_as_torch(make, message):
    with pytest.raises(ValueError) as err:
        make(params((2,)))
    assert str(err.value) == message


def test_bad_params_argument():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(params((2,))[0], lr=0.1)
    with pytest.raises(TypeError, match="Parameter"):
        optim.Adam([np.zeros(2, np.float32)])


def test_sgd_plain_and_momentum_rules():
    (p,) = params((4,))
    p0, g = p.data.copy(), p.grad.copy()
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    opt.step()
    d = g + 0.01 * p0
    np.testing.assert_allclose(p.data, p0 - 0.1 * d, rtol=1e-6)
    p1 = p.data.copy()
    opt.step()
    buf = 0.9 * d + (g + 0.01 * p1)
    np.testing.assert_allclose(p.data, p1 - 0.1 * buf, rtol=1e-5)
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], buf, rtol=1e-5)


def test_sgd_without_momentum_allocates_no_buffer(monkeypatch):
    # The kernels accept buf=None without momentum: no parameter-sized zeros (51 MB for
    # lai2d's fc1) may be made for it, on any step.
    from fastseg import ops

    made = []
    real = ops.zeros_like
    monkeypatch.setattr(ops, "zeros_like", lambda a, **kw: made.append(a.shape) or real(a))
    (p,) = params((7, 3))
    before = p.data.copy()
    opt = optim.SGD([p], lr=0.5)
    opt.step()
    opt.step()
    assert made == [] and opt.state[p] == {} and not vars(opt).get("_scratch")
    np.testing.assert_allclose(p.data, before - 2 * 0.5 * p.grad, rtol=1e-6)
    with pytest.raises(ValueError, match="buf: momentum 0.9 needs a buffer"):
        ops.sgd_update(p.data, p.grad, None, 0.1, momentum=0.9)


def test_adam_first_step_moves_by_lr():
    (p,) = params((50,))
    p0 = p.data.copy()
    optim.Adam([p], lr=0.01).step()
    # bias-corrected first Adam step is lr * g / (|g| + eps') = lr * sign(g)
    np.testing.assert_allclose(p0 - p.data, 0.01 * np.sign(p.grad), rtol=1e-3)


def test_rprop_grows_and_shrinks_steps():
    (p,) = params((3,))
    p.grad = np.array([1.0, -1.0, 1.0], np.float32)
    opt = optim.Rprop([p], lr=0.1)
    opt.step()
    opt.step()
    np.testing.assert_allclose(opt.state[p]["step_size"], [0.12, 0.12, 0.12], rtol=1e-6)
    p.grad = np.array([-1.0, -1.0, 1.0], np.float32)
    before = p.data.copy()
    opt.step()
    np.testing.assert_allclose(opt.state[p]["step_size"], [0.06, 0.144, 0.144], rtol=1e-6)
    assert p.data[0] == before[0]  # a sign change skips the update
    assert opt.state[p]["step"] == 3


def test_params_without_grad_are_skipped_and_zero_grad():
    a, b = params((3,), (2,))
    b.grad = None
    b0 = b.data.copy()
    for opt in (optim.SGD([a, b], lr=0.1, momentum=0.5), optim.Adam([a, b]),
                optim.Rprop([a, b])):
        opt.step()
        np.testing.assert_array_equal(b.data, b0)
        assert b not in opt.state or not opt.state[b]
    opt.zero_grad()
    assert a.grad is None


def test_param_groups_have_own_lr():
    a, b = params((3,), (3,))
    a0, b0 = a.data.copy(), b.data.copy()
    optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1).step()
    np.testing.assert_allclose(a0 - a.data, 0.1 * a.grad, rtol=1e-5)
    np.testing.assert_allclose(b0 - b.data, 1.0 * b.grad, rtol=1e-5)


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
                                  lambda p: optim.Adam(p, lr=0.01, weight_decay=0.1),
                                  lambda p: optim.Rprop(p, lr=0.01)])
def test_state_dict_round_trip_continues_identically(make):
    ps = params((4, 3), (3,), seed=1)
    opt = make(ps)
    grads = [[np.random.default_rng(s).standard_normal(p.shape).astype(np.float32)
              for p in ps] for s in range(6)]
    for step in range(3):
        for p, g in zip(ps, grads[step], strict=True):
            p.grad = g.copy()
        opt.step()
    saved = opt.state_dict()
    assert all(isinstance(k, int) for k in saved["state"])
    clone = [nn.Parameter(p.data) for p in ps]
    opt2 = make(clone)
    opt2.load_state_dict(saved)
    for step in range(3, 6):
        for o, pp in ((opt, ps), (opt2, clone)):
            for p, g in zip(pp, grads[step], strict=True):
                p.grad = g.copy()
            o.step()
    for p, q in zip(ps, clone, strict=True):
        np.testing.assert_array_equal(p.data, q.data)


def test_load_state_dict_refuses_mismatch():
    opt = optim.Adam(params((2,), (3,)))
    opt.step()
    state = opt.state_dict()
    with pytest.raises(ValueError, match="doesn't match the size"):
        optim.Adam(params((2,))).load_state_dict(state)
    with pytest.raises(ValueError, match="shape"):
        optim.Adam(params((2,), (4,))).load_state_dict(state)
