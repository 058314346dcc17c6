"""fastseg.train.fit: learning, history, callbacks, checkpoints and exact resume."""
import os

import numpy as np
import pytest

import fastseg
from fastseg import models, nn, optim, train

pytestmark = pytest.mark.usefixtures("host_backend")


def patch_task(n, seed, size=12):
    """Noisy patches whose centre is bright (class 1) or dark (class 0)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 0.5, (n, 1, size, size)).astype(np.float32)
    x[:, :, 4:8, 4:8] += np.where(y == 1, 1.0, -1.0)[:, None, None, None]
    return x, y


def epoch_batches(x, y, batch=16, seed=0, fail_at=None):
    """A reproducible stream: shuffled by its own generator seeded with the epoch."""
    def batches(epoch):
        order = np.random.default_rng([seed, epoch]).permutation(len(y))
        for step, start in enumerate(range(0, len(y), batch)):
            if fail_at == (epoch, step):
                raise KeyboardInterrupt("simulated crash")
            idx = order[start:start + batch]
            yield x[idx], y[idx]
    return batches


def small_model(dropout=0.0):
    return models.lai2d(patch_size=12, conv_channels=(4, 6), hidden=16, dropout=dropout)


def test_model_learns_separable_patches():
    x, y = patch_task(256, seed=1)
    net = small_model()
    opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9)

    def accuracy(epoch, model, history):
        model.eval()
        xt, yt = patch_task(200, seed=2)
        return {"val_acc": float((model(xt).argmax(1) == yt).mean())}

    hist = train.fit(net, epoch_batches(x, y), nn.CrossEntropyLoss(), opt, epochs=4,
                     callbacks=[accuracy], progress=False)
    assert len(hist["loss"]) == 4 and len(hist["step_loss"]) == 4 * 16
    assert hist["epoch"] == [0, 1, 2, 3]
    assert hist["loss"][-1] < 0.3 * hist["loss"][0]
    assert hist["val_acc"][-1] > 0.9
    assert net.training  # put back after the callback's eval()


def test_same_seed_same_run_and_stop_training():
    x, y = patch_task(64, seed=3)
    results = []
    for _ in range(2):
        fastseg.seed(11)
        net = small_model(dropout=0.3)
        opt = optim.Adam(net.parameters(), lr=1e-3)

        def stop(epoch, model, history):
            if epoch == 1:
                raise train.StopTraining
            return {"seen": epoch}

        hist = train.fit(net, epoch_batches(x, y), nn.CrossEntropyLoss(), opt, epochs=5,
                         callbacks=[stop], progress=False)
        results.append((hist, net.state_dict()))
    (h1, s1), (h2, s2) = results
    assert h1 == h2 and h1["epoch"] == [0, 1] and h1["seen"] == [0]
    assert all(np.array_equal(s1[k], s2[k]) for k in s1)


def run(tmp_path, epochs, fail_at=None, resume=None, every=3):
    x, y = patch_task(80, seed=5)
    fastseg.seed(21)
    net = small_model(dropout=0.2)  # dropout: the RNG state must be restored too
    opt = optim.SGD(net.parameters(), lr=0.02, momentum=0.9)
    hist = train.fit(net, epoch_batches(x, y, fail_at=fail_at), nn.CrossEntropyLoss(), opt,
                     epochs=epochs, checkpoint=tmp_path / "run.ckpt", checkpoint_every=every,
                     resume=resume, progress=False)
    return hist, net


def test_resume_equals_uninterrupted_run(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full_hist, full_net = run(tmp_path / "a", 3)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", 3, fail_at=(1, 3))  # dies in epoch 1; last save after step 1
    ckpt = tmp_path / "b" / "run.ckpt"
    assert ckpt.exists()
    assert [p for p in os.listdir(tmp_path / "b") if p.endswith(".tmp")] == []
    hist, net = run(tmp_path / "b", 3, resume=ckpt)
    assert hist == full_hist
    full = full_net.state_dict()
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, full[key], err_msg=key)
    # resume=True picks up the checkpoint of a finished run: nothing left to do
    hist2, _ = run(tmp_path / "b", 3, resume=True)
    assert hist2 == full_hist


def test_checkpoint_refuses_wrong_model(tmp_path):
    run(tmp_path, 1)
    net = models.lai2d(patch_size=12, hidden=8)
    with pytest.raises(ValueError, match="cannot resume"):
        train.fit(net, [], nn.CrossEntropyLoss(), optim.SGD(net.parameters(), lr=0.1),
                  resume=tmp_path / "run.ckpt", progress=False)
    with pytest.raises(ValueError, match="fastseg-model"):
        train.load_checkpoint(_saved_model(tmp_path), net, optim.SGD(net.parameters()))


def _saved_model(tmp_path):
    path = tmp_path / "m.fseg"
    fastseg.save(small_model(), path)
    return path


def test_batches_forms_and_errors():
    x, y = patch_task(32, seed=6)
    net = small_model()
    opt = optim.SGD(net.parameters(), lr=0.01)
    data = [(x[:16], y[:16]), (x[16:], y[16:])]
    hist = train.fit(net, data, nn.CrossEntropyLoss(), opt, epochs=2, progress=False)
    assert len(hist["step_loss"]) == 4
    with pytest.raises(ValueError, match="one-shot iterator"):
        train.fit(net, iter(data), nn.CrossEntropyLoss(), opt, epochs=2, progress=False)
    net[-1].bias.data[0] = np.nan  # a diverged model: refused, not trained on silently
    with pytest.raises((FloatingPointError, ValueError), match="NaN|nan"):
        train.fit(net, data, nn.CrossEntropyLoss(), opt, progress=False)


class _InfiniteLoss(nn.CrossEntropyLoss):
    """Cross-entropy whose value overflows from the third call on."""

    calls = 0

    def __call__(self, logits, y):
        self.calls += 1
        loss = super().__call__(logits, y)
        return loss if self.calls < 3 else float("inf")


def test_divergence_is_a_fastseg_floating_point_error():
    x, y = patch_task(32, seed=7)
    data = [(x[:16], y[:16]), (x[16:], y[16:])]
    # The loss itself stops being finite.
    net = small_model()
    opt = optim.SGD(net.parameters(), lr=0.01)
    with pytest.raises(fastseg.errors.DivergedError, match="loss became inf at epoch 1, step 0"):
        train.fit(net, data, _InfiniteLoss(), opt, epochs=2, progress=False)
    # The logits stop being finite after an update that blew the weights up.
    net = small_model()
    opt = optim.SGD(net.parameters(), lr=1e30)
    with pytest.raises(FloatingPointError, match="output became NaN or infinite") as caught, \
            np.errstate(all="ignore"):
        train.fit(net, data, nn.CrossEntropyLoss(), opt, epochs=2, progress=False)
    assert isinstance(caught.value, fastseg.errors.FastsegError)
    assert isinstance(caught.value.__cause__, fastseg.errors.NonFiniteError)


def test_triplanar_trains_on_lists():
    rng = np.random.default_rng(0)
    net = models.lai_triplanar(patch_size=10, conv_channels=(2,), kernel_size=3, hidden=8)
    opt = optim.Adam(net.parameters(), lr=1e-2)
    xs = [rng.standard_normal((8, 1, 10, 10)).astype(np.float32) for _ in range(3)]
    data = [(xs, rng.integers(0, 2, 8))] * 5
    hist = train.fit(net, data, nn.CrossEntropyLoss(), opt, progress=False)
    assert hist["step_loss"][-1] < hist["step_loss"][0]
