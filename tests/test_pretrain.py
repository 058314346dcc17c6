"""Layer-wise pre-training: the tied decoder against PyTorch's conv_transpose2d, the
autoencoder's gradients against autograd, what layerwise changes, and that fine-tuning
starts from the pre-trained weights."""
import numpy as np
import pytest

import fastseg
from fastseg import data, models, nn, pretrain
from fastseg.nn.module import backward_params
from fastseg.segmenter import Segmenter

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.usefixtures("host_backend")

# (batch, in channels, height, width, filters, kernel, stride, padding)
CONV_SHAPES = [
    (1, 1, 5, 5, 1, 1, 1, 0),
    (2, 3, 7, 6, 4, 3, 2, 1),    # stride 2 that leaves a column the kernel never reaches
    (3, 2, 11, 13, 5, 5, 1, 2),  # primes, padding
    (1, 5, 8, 8, 3, 2, 2, 0),
    (2, 1, 12, 12, 6, 5, 1, 0),  # lai2d's first layer, small
]


def output_padding(x_shape, h_shape, k, s, p):
    return tuple(x - ((o - 1) * s - 2 * p + k) for x, o in zip(x_shape[2:], h_shape[2:],
                                                                strict=True))


@pytest.mark.parametrize("shape", CONV_SHAPES)
def test_conv_decoder_is_torch_conv_transpose2d(shape, rng):
    n, c, h, w, f, k, s, p = shape
    layer = nn.Conv2d(c, f, k, stride=s, padding=p)
    x = rng.normal(size=(n, c, h, w)).astype(np.float32)
    code = rng.normal(size=layer(x).shape).astype(np.float32)
    code = code[:, :, ::-1]  # a non-contiguous view, too
    got = pretrain.decode(layer, code, x.shape)
    want = F.conv_transpose2d(torch.tensor(code.copy()), torch.tensor(layer.weight.data),
                              stride=s, padding=p,
                              output_padding=output_padding(x.shape, code.shape, k, s, p))
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)


def test_linear_decoder_is_the_transposed_weight(rng):
    layer = nn.Linear(7, 3)
    code = rng.normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(pretrain.decode(layer, code, (5, 7)),
                               code @ layer.weight.data, rtol=1e-5, atol=1e-6)


def torch_autoencoder(layer, act, x, corrupted, c):
    """The same denoising autoencoder written with autograd; returns loss and grads."""
    w = torch.tensor(layer.weight.data, requires_grad=True)
    b = torch.tensor(layer.bias.data, requires_grad=True)
    ct = torch.tensor(c, requires_grad=True)
    xt, xc = torch.tensor(x), torch.tensor(corrupted)
    if isinstance(layer, nn.Conv2d):
        z = F.conv2d(xc, w, b, stride=layer.stride, padding=layer.padding)
        h = act(z)
        pad = output_padding(x.shape, z.shape, layer.kernel_size, layer.stride, layer.padding)
        x_hat = F.conv_transpose2d(h, w, stride=layer.stride, padding=layer.padding,
                                   output_padding=pad) + ct.reshape(1, -1, 1, 1)
    else:
        h = act(F.linear(xc, w, b))
        x_hat = h @ w + ct
    loss = F.mse_loss(x_hat, xt)
    loss.backward()
    return loss.item(), w.grad.numpy(), b.grad.numpy(), ct.grad.numpy()


@pytest.mark.parametrize("case", [
    ("conv", nn.ReLU, torch.relu, CONV_SHAPES[1]),
    ("conv", nn.Tanh, torch.tanh, CONV_SHAPES[2]),
    ("conv", None, lambda z: z, CONV_SHAPES[3]),
    ("linear", nn.Sigmoid, torch.sigmoid, (4, 9, 0, 0, 5, 0, 0, 0)),
], ids=["conv-relu", "conv-tanh", "conv-none", "linear-sigmoid"])
def test_autoencoder_gradients_match_autograd(case, rng):
    kind, act_cls, torch_act, (n, c, h, w, f, k, s, p) = case
    if kind == "conv":
        layer = nn.Conv2d(c, f, k, stride=s, padding=p)
        x = rng.normal(size=(n, c, h, w)).astype(np.float32)
        bias = rng.normal(size=c).astype(np.float32)
    else:
        layer = nn.Linear(c, f)
        x = rng.normal(size=(n, c)).astype(np.float32)
        bias = rng.normal(size=c).astype(np.float32)
    corrupted = (x * (rng.random(x.shape) > 0.3)).astype(np.float32)
    decoder_bias = nn.Parameter(bias)
    loss = pretrain.autoencoder_step(layer, act_cls() if act_cls else None, decoder_bias, x,
                                     corrupted)
    tloss, dw, db, dc = torch_autoencoder(layer, torch_act, x, corrupted, bias)
    assert loss == pytest.approx(tloss, rel=1e-5)
    np.testing.assert_allclose(layer.weight.grad, dw, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(layer.bias.grad, db, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(decoder_bias.grad, dc, rtol=1e-4, atol=1e-6)


def small_lai2d():
    return models.lai2d(patch_size=12, conv_channels=(4, 6), hidden=16)


def patches(n=96, size=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.5, (n, 1, size, size)).astype(np.float32)
    x[:, :, 4:8, :] += rng.choice([-1.0, 1.0], (n, 1, 1, 1)).astype(np.float32)  # a "vessel"
    return x


def test_layerwise_changes_hidden_layers_only_and_learns_to_reconstruct():
    net = small_lai2d()
    before = {k: v.copy() for k, v in net.state_dict().items()}
    log = {}
    out = pretrain.layerwise(net, patches(), epochs=4, batch_size=16, lr=0.05, seed=1,
                             history=log)
    assert out is net and net.training
    after = net.state_dict()
    for key in ("0.weight", "0.bias", "2.weight", "2.bias", "5.weight", "5.bias"):
        assert not np.allclose(after[key], before[key]), key  # every hidden layer moved
    for key in ("7.weight", "7.bias"):
        np.testing.assert_array_equal(after[key], before[key])  # the classifier did not
    assert list(log) == ["0:Conv2d", "2:Conv2d", "5:Linear"]
    for name, losses in log.items():
        assert len(losses) == 4 and losses[-1] < 0.9 * losses[0], (name, losses)
    # Reproducible from its seed.
    again = small_lai2d()
    again.load_state_dict(before)
    pretrain.layerwise(again, patches(), epochs=4, batch_size=16, lr=0.05, seed=1)
    for key, value in again.state_dict().items():
        np.testing.assert_array_equal(value, after[key])


def test_layers_limits_the_pretraining():
    net = small_lai2d()
    before = {k: v.copy() for k, v in net.state_dict().items()}
    pretrain.layerwise(net, patches(32), layers=1, seed=0)
    after = net.state_dict()
    assert not np.allclose(after["0.weight"], before["0.weight"])
    np.testing.assert_array_equal(after["2.weight"], before["2.weight"])


def test_fine_tuning_starts_from_the_pretrained_weights():
    """Segmenter.fit(pretrain=...) then one plain SGD step: the result is the pre-trained
    weights minus lr times their gradient on the first batch, not a fresh network's."""
    samples = data.synthetic_fundus(1, shape=(64, 64), seed=0)
    seen = {}

    def hook(net, sampler):
        seen["init"] = {k: v.copy() for k, v in net.state_dict().items()}
        pretrain.layerwise(net, sampler.batch(0, 0)[0], epochs=2, seed=0)
        seen["state"] = {k: v.copy() for k, v in net.state_dict().items()}
        seen["batch"] = sampler.batch(0, 0)

    lr = 0.05
    seg = Segmenter(patch_size=12, epochs=1, batch_size=16, batches_per_epoch=1, lr=lr,
                    momentum=0.0, model_kwargs={"hidden": 8, "conv_channels": (3, 4)})
    seg.fit([s.image for s in samples], [s.mask for s in samples], [s.fov for s in samples],
            pretrain=hook, progress=False)
    start = seg._build()
    start.load_state_dict(seen["state"])
    x, y = seen["batch"]
    loss_fn = nn.CrossEntropyLoss()
    loss_fn(start(x), y)
    backward_params(start, loss_fn.backward())
    for (key, value), param in zip(seen["state"].items(), start.parameters(), strict=True):
        expected = value - lr * param.grad
        np.testing.assert_allclose(seg.model_.state_dict()[key], expected, rtol=1e-5,
                                   atol=1e-6, err_msg=key)
        if key != "7.weight" and key != "7.bias":
            assert not np.allclose(value, seen["init"][key]), key  # pre-training moved it


def test_bad_arguments():
    net = small_lai2d()
    with pytest.raises(TypeError, match="Sequential"):
        pretrain.layerwise(nn.Linear(3, 2), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="hidden layer"):
        pretrain.layerwise(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)),
                           np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="layers=4, but the network has only 3"):
        pretrain.layerwise(net, patches(8), layers=4)
    with pytest.raises(ValueError, match="noise"):
        pretrain.layerwise(net, patches(8), noise=1.0)
    bad = patches(8)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="patches: contains NaN"):
        pretrain.layerwise(net, bad)
    with pytest.raises(ValueError, match="patches"):
        pretrain.layerwise(net, np.zeros((0, 1, 12, 12), np.float32))
    with pytest.raises(fastseg.errors.DivergedError, match="pre-training diverged"), \
            np.errstate(all="ignore"):
        pretrain.layerwise(small_lai2d(), patches(8), lr=1e30, batch_size=4)
    with pytest.raises(ValueError, match="expected input of shape"):
        pretrain.layerwise(net, np.zeros((4, 1, 10, 10), np.float32))
    pool = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 10 * 10, 2))
    fastseg.seed(0)
    pretrain.layerwise(pool, patches(8))  # a one-hidden-layer net works
    unknown = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 2)))
    with pytest.raises(TypeError, match="Conv2d and Linear layers only"):
        pretrain.layerwise(unknown, np.zeros((2, 4), np.float32))
