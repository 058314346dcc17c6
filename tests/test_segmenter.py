"""Segmenter: fit / predict / save / load on tiny synthetic data, and its sklearn API."""
import numpy as np
import pytest
from _segment_helpers import usable_backend  # noqa: F401

import fastseg
import fastseg._row_blocks
from fastseg import Segmenter
from fastseg._inference import rescale
from fastseg.data import synthetic_fundus

TINY = {"patch_size": 12, "epochs": 2, "batch_size": 32, "batches_per_epoch": 6,
        "model_kwargs": {"hidden": 8, "conv_channels": (4, 6)}}


@pytest.fixture(scope="module")
def data():
    return (synthetic_fundus(2, shape=(64, 64), seed=0),
            synthetic_fundus(1, shape=(64, 72), seed=1, split="test")[0])


@pytest.fixture(scope="module")
def fitted(data):
    train, _ = data
    return Segmenter(**TINY).fit([s.image for s in train], [s.mask for s in train],
                                 [s.fov for s in train], progress=False)


def test_fit_predict_save_load_round_trip(fitted, data, tmp_path):
    _, test = data
    prob = fitted.predict_proba(test.image, test.fov)
    assert prob.shape == (64, 72) and prob.dtype == np.float32
    assert (prob[~test.fov] == 0).all() and 0 <= prob.min() and prob.max() <= 1
    mask = fitted.predict(test.image, test.fov, threshold=0.5)
    np.testing.assert_array_equal(mask, prob >= 0.5)
    assert len(fitted.history_["loss"]) == 2

    path = tmp_path / "seg.fseg"
    fitted.save(path)
    again = Segmenter.load(path)
    assert again.get_params()["patch_size"] == 12 and again.channels == "green"
    np.testing.assert_array_equal(again.predict_proba(test.image, test.fov), prob)
    # The file is also an ordinary model file.
    net = fastseg.load(path)
    assert type(net).__name__ == "Sequential"


def test_same_seed_same_model(data):
    train, test = data
    args = ([s.image for s in train], [s.mask for s in train], [s.fov for s in train])
    a = Segmenter(**TINY).fit(*args, progress=False).predict_proba(test.image)
    b = Segmenter(**TINY).fit(*args, progress=False).predict_proba(test.image)
    np.testing.assert_array_equal(a, b)


def test_load_plain_model_file_infers_settings(fitted, tmp_path, data):
    path = tmp_path / "plain.fseg"
    fastseg.save(fitted.model_, path)
    seg = Segmenter.load(path)
    assert seg.patch_size == 12 and seg.channels == "green"
    _, test = data
    raw = fitted.set_params(prior_correction=False).predict_proba(test.image, test.fov)
    fitted.set_params(prior_correction=True)
    # The training prior is not in a plain file: probabilities come back uncorrected.
    np.testing.assert_allclose(seg.predict_proba(test.image, test.fov), raw, atol=1e-6)


def test_params_and_repr():
    seg = Segmenter(epochs=3)
    assert seg.get_params()["epochs"] == 3
    assert seg.set_params(lr=0.1, channels="rgb") is seg
    assert seg.lr == 0.1 and "lr=0.1" in repr(seg) and "channels='rgb'" in repr(seg)
    with pytest.raises(ValueError, match="unknown parameter"):
        seg.set_params(nope=1)
    with pytest.raises(RuntimeError, match="not fitted"):
        seg.predict(np.zeros((20, 20), np.uint8))


def test_rgb_channels_and_bad_settings(data):
    train, test = data
    seg = Segmenter(**{**TINY, "epochs": 1}, channels="rgb")
    seg.fit([train[0].image], [train[0].mask], progress=False)
    assert seg.model_[0].weight.data.shape[1] == 3
    assert seg.predict(test.image).shape == (64, 72)
    with pytest.raises(ValueError, match="channels"):
        Segmenter(channels="blue").fit([train[0].image], [train[0].mask])
    with pytest.raises(ValueError, match="masks"):
        Segmenter(**TINY).fit([train[0].image], [])
    with pytest.raises(ValueError, match="optimizer"):
        Segmenter(optimizer="lbfgs").fit([train[0].image], [train[0].mask])


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        Segmenter.load(tmp_path / "missing.fseg")
    bad = tmp_path / "bad.fseg"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="bad.fseg"):
        Segmenter.load(bad)


def test_prior_correction(fitted, data):
    _, test = data
    assert 0 < fitted.class_prior_ < 0.5
    raw = fitted.set_params(prior_correction=False).predict_proba(test.image, test.fov)
    fitted.set_params(prior_correction=True)
    corrected = fitted.predict_proba(test.image, test.fov)
    # Fewer vessels than the balanced batches: every probability moves down, order kept.
    assert (corrected <= raw + 1e-7).all()
    inside = test.fov
    order = np.argsort(raw[inside])
    assert (np.diff(corrected[inside][order]) >= -1e-6).all()
    # p = positive_fraction maps to p = class prior.
    np.testing.assert_allclose(fitted.calibrate(np.float32(0.5)), fitted.class_prior_, atol=1e-6)
    # predict_proba calibrates its own map in place: exactly what calibrate gives.
    np.testing.assert_array_equal(corrected, fitted.calibrate(raw))


def test_calibrate_leaves_the_callers_array_and_is_bayes_rule(fitted, monkeypatch):
    monkeypatch.setattr(fastseg._row_blocks, "BLOCK_BYTES", 40)  # many blocks of rows
    rng = np.random.default_rng(3)
    a = fitted.class_prior_ / fitted.positive_fraction
    b = (1 - fitted.class_prior_) / (1 - fitted.positive_fraction)
    for prob in (rng.random((37, 29), dtype=np.float32), rng.random((5, 6)),
                 rng.random((40, 30), dtype=np.float32)[::3, ::2]):
        before = prob.copy()
        got = fitted.calibrate(prob)
        np.testing.assert_array_equal(prob, before)  # the caller's array is not touched
        p = np.asarray(prob, np.float32)
        want = (p * a / np.maximum(p * a + (1 - p) * b, 1e-30)).astype(np.float32)
        assert got.dtype == np.float32 and got.shape == prob.shape
        np.testing.assert_array_equal(got, want)


def test_fov_diameter_recorded_saved_and_used(fitted, data, tmp_path):
    train, test = data
    want = np.median([rescale.fov_diameter(s.fov) for s in train])
    assert fitted.fov_diameter_ == want and fitted.model_.fov_diameter == want
    path = tmp_path / "seg.fseg"
    fitted.save(path)
    again = Segmenter.load(path)
    assert again.fov_diameter_ == want and fastseg.load(path).fov_diameter == want
    # The test photo's FOV is as wide as the training ones': no rescaling by default.
    np.testing.assert_array_equal(fitted.predict_proba(test.image, test.fov),
                                  fitted.predict_proba(test.image, test.fov, scale=1))
    # The same photo twice as large is brought to the training scale and back.
    big = np.repeat(np.repeat(test.image, 2, axis=0), 2, axis=1)
    big_fov = np.repeat(np.repeat(test.fov, 2, axis=0), 2, axis=1)
    factor = rescale.auto_scale(want, big_fov)
    assert factor == pytest.approx(0.5, rel=0.05)
    auto = fitted.predict_proba(big, big_fov)
    np.testing.assert_array_equal(auto, fitted.predict_proba(big, big_fov, scale=factor))
    assert not np.array_equal(auto, fitted.predict_proba(big, big_fov, scale=1))
    assert auto.shape == big.shape[:2] and (auto[~big_fov] == 0).all()
    # Without a FOV one is estimated from the photo for the measure.
    estimated = rescale.estimate_fov(big)
    factor = rescale.auto_scale(want, estimated)
    assert factor < 0.6
    np.testing.assert_array_equal(fitted.predict_proba(big),
                                  fitted.predict_proba(big, scale=factor))


def test_predict_proba_methods_agree_and_errors_name_it(fitted, data):
    _, test = data
    direct = fitted.predict_proba(test.image, test.fov, method="direct")
    np.testing.assert_allclose(fitted.predict_proba(test.image, test.fov, method="fft"), direct,
                               atol=1e-5)
    with pytest.raises(ValueError, match="method"):
        fitted.predict_proba(test.image, test.fov, method="fourier")
    bad = Segmenter(**TINY)
    bad.model_ = fastseg.nn.Sequential(fastseg.nn.Conv2d(1, 2, 3, padding=1),
                                       fastseg.nn.Flatten(), fastseg.nn.Linear(2 * 144, 2))
    with pytest.raises(ValueError, match=r"^Segmenter.predict_proba: cannot run"):
        bad.predict_proba(test.image, test.fov)


def test_full_size_photo_is_brought_to_the_training_scale(fitted):
    """scikit-image's 1411x1411 retina photograph: its FOV (estimated) is about 20x
    wider than the 64-pixel training images', so it is segmented at their scale and
    the map comes back at full size."""
    data = pytest.importorskip("skimage.data")
    photo = data.retina()
    fov = rescale.estimate_fov(photo)
    factor = rescale.auto_scale(fitted.fov_diameter_, fov)
    assert 0.03 < factor < 0.06
    prob = fitted.predict_proba(photo, fov)
    assert prob.shape == (1411, 1411) and prob.dtype == np.float32
    assert (prob[~fov] == 0).all() and 0 <= prob.min() and prob.max() <= 1
    assert prob[fov].std() > 0.01
