"""nn.MSELoss against torch.nn.MSELoss: values and gradients for every reduction."""
import numpy as np
import pytest

from fastseg import nn

torch = pytest.importorskip("torch")

SHAPES = [(1,), (5, 3), (2, 3, 4, 5), (7, 1)]


def pair(rng, shape):
    return (rng.normal(0, 2, shape).astype(np.float32),
            rng.normal(0, 2, shape).astype(np.float32))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_forward_and_backward_match_torch(shape, reduction, rng):
    x, t = pair(rng, shape)
    ours = nn.MSELoss(reduction=reduction)
    loss = ours(x, t)
    tx = torch.tensor(x, requires_grad=True)
    tloss = torch.nn.MSELoss(reduction=reduction)(tx, torch.tensor(t))
    upstream = rng.normal(size=shape).astype(np.float32) if reduction == "none" else 0.7
    if reduction == "none":
        assert isinstance(loss, np.ndarray) and loss.dtype == np.float32
        np.testing.assert_allclose(loss, tloss.detach().numpy(), rtol=1e-6)
        tloss.backward(torch.tensor(upstream))
    else:
        assert isinstance(loss, float)
        assert loss == pytest.approx(tloss.item(), rel=1e-5)
        (tloss * upstream).backward()
    grad = ours.backward(upstream)
    assert grad.dtype == np.float32 and grad.shape == x.shape
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_default_is_mean_and_backward_defaults_to_one(rng):
    x, t = pair(rng, (4, 2))
    loss_fn = nn.MSELoss()
    assert loss_fn(x, t) == pytest.approx(float(np.mean((x - t) ** 2)), rel=1e-6)
    np.testing.assert_allclose(loss_fn.backward(), 2 * (x - t) / x.size, rtol=1e-6)


def test_empty_input_as_torch():
    empty = np.zeros((0, 2), np.float32)
    assert np.isnan(nn.MSELoss()(empty, empty))
    assert np.isnan(float(torch.nn.MSELoss()(torch.zeros(0, 2), torch.zeros(0, 2))))
    assert nn.MSELoss(reduction="sum")(empty, empty) == 0.0
    assert float(torch.nn.MSELoss(reduction="sum")(torch.zeros(0, 2), torch.zeros(0, 2))) == 0.0


def test_nan_propagates_as_in_torch():
    x = np.array([[1.0, np.nan]], np.float32)
    assert np.isnan(nn.MSELoss()(x, np.zeros_like(x)))


def test_bad_arguments_say_what_is_wrong(rng):
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")
    loss_fn = nn.MSELoss()
    with pytest.raises(RuntimeError, match="call the loss"):
        loss_fn.backward()
    with pytest.raises(ValueError, match=r"target has shape \(3, 2\), input has \(2, 3\)"):
        loss_fn(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="target"):
        loss_fn(np.zeros(2, np.float32), np.array(["a", "b"]))
    none = nn.MSELoss(reduction="none")
    none(*pair(rng, (2, 3)))
    with pytest.raises(ValueError, match="grad has shape"):
        none.backward(np.ones((3, 2), np.float32))


def test_trains_a_linear_layer_as_torch_does(rng):
    """One module step: Linear -> MSELoss -> backward gives torch's weight gradient."""
    layer = nn.Linear(4, 3)
    x, target = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(6, 3))
    loss_fn = nn.MSELoss()
    loss_fn(layer(x), target)
    layer.backward(loss_fn.backward())
    tl = torch.nn.Linear(4, 3)
    tl.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
    torch.nn.MSELoss()(tl(torch.tensor(x)), torch.tensor(target, dtype=torch.float32)).backward()
    np.testing.assert_allclose(layer.weight.grad, tl.weight.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(layer.bias.grad, tl.bias.grad.numpy(), rtol=1e-5, atol=1e-7)
