"""Segmenter on volumes: the four kinds fit, predict as the dense network does, save and load."""
import numpy as np
import pytest
from _segment_helpers import usable_backend  # noqa: F401

import fastseg
from fastseg import Segmenter, io
from fastseg._segmenter_volumes import AUTO_THRESHOLDS, DICE_TOLERANCE, choose_threshold
from fastseg.data import make_cutter, normalize_scan, normalize_volume

SMALL = {"conv_channels": (3, 4), "kernel_size": 3, "hidden": 8}


def blob(shape, seed):
    """An ellipsoid brighter than its noisy surround, and its mask."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    centre = np.array(shape) / 2 + rng.uniform(-1.5, 1.5, 3)
    radii = (3.2, 4.0, 3.6)
    mask = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) < 1
    image = 100 + 80 * mask + rng.normal(0, 20, shape)
    return image.astype(np.float32), mask


@pytest.fixture(scope="module")
def data():
    train = [blob((13, 15, 14), seed) for seed in (0, 1)]
    return [v for v, _ in train], [m for _, m in train], blob((12, 16, 15), 7)


def fitted(kind, model, data, **kw):
    volumes, masks, _ = data
    seg = Segmenter(model=model, kind=kind, patch_size=kw.pop("patch_size", 7), epochs=2,
                    batch_size=16, batches_per_epoch=12, optimizer="adam", lr=2e-3,
                    model_kwargs=SMALL, threshold="auto", keep_largest=1, seed=3, **kw)
    return seg.fit(volumes, masks, progress=False)


KINDS = [("2d", "lai2d", {"axis": 1}), ("stacked2d", "lai_stacked2d", {"axis": 2}),
         (None, "lai_triplanar", {}), (None, "lai3d", {"patch_size": 8})]


@pytest.mark.parametrize("kind,model,options", KINDS, ids=[k[1] for k in KINDS])
def test_fit_predict_save_load(kind, model, options, data, tmp_path):
    seg = fitted(kind, model, data, **dict(options))
    _, _, (test, _) = data
    expected_kind = kind or {"lai_triplanar": "triplanar", "lai3d": "3d"}[model]
    assert seg.cutter_.kind == expected_kind and seg.model_.cutter is seg.cutter_
    prob = seg.predict_proba(test)
    assert prob.shape == test.shape and prob.dtype == np.float32
    # The segmenter's probability is the bare network's on the normalised scan (the robust
    # normalisation by default), calibrated.
    assert seg.normalize == "robust"
    normalized = normalize_scan(test, "robust")
    dense = fastseg.segment(seg.model_, normalized)
    np.testing.assert_allclose(prob, seg.calibrate(dense), atol=1e-6)
    np.testing.assert_array_equal(fastseg.segment(seg, test), prob)
    # ... and the classifier's on the cutter's patches at every voxel.
    coords = np.random.default_rng(0).integers(0, test.shape, (30, 3))
    coords[0] = 0
    logits = np.asarray(seg.model_(seg.cutter_(normalized, coords)), np.float64)
    p1 = 1 / (1 + np.exp(logits[:, 0] - logits[:, 1]))
    np.testing.assert_allclose(dense[tuple(coords.T)], p1, atol=1e-5)
    # The chosen threshold, the largest component.
    assert seg.threshold_ in AUTO_THRESHOLDS and seg.decision_threshold() == seg.threshold_
    mask = seg.predict(test)
    from scipy import ndimage

    assert ndimage.label(mask)[1] <= 1
    assert (mask <= (prob >= seg.threshold_)).all()
    # Save and load: the same kind, cutter, threshold and probabilities.
    seg.save(tmp_path / "m.fseg")
    back = Segmenter.load(tmp_path / "m.fseg")
    assert back.resolved_kind() == expected_kind and back.threshold_ == seg.threshold_
    assert back.cutter_.config() == seg.cutter_.config()
    np.testing.assert_array_equal(back.predict_proba(test), prob)
    np.testing.assert_array_equal(back.predict(test), mask)
    # The bare network of the file knows its kind too.
    net = fastseg.load(tmp_path / "m.fseg")
    np.testing.assert_array_equal(fastseg.segment(net, normalized), dense)
    plain = tmp_path / "plain.fseg"
    fastseg.save(net, plain)
    from_plain = Segmenter.load(plain)
    assert from_plain.resolved_kind() == expected_kind and from_plain.patch_size == seg.patch_size
    assert from_plain.cutter_.config() == seg.cutter_.config()


@pytest.mark.parametrize("normalize", [True, "zscore"])
def test_zscore_normalisation_of_older_models_is_kept(normalize, data, tmp_path):
    seg = fitted(None, "lai3d", data, patch_size=8, normalize=normalize)
    _, _, (test, _) = data
    dense = fastseg.segment(seg.model_, normalize_volume(test))
    np.testing.assert_allclose(seg.predict_proba(test), seg.calibrate(dense), atol=1e-6)
    seg.save(tmp_path / "z.fseg")
    np.testing.assert_array_equal(Segmenter.load(tmp_path / "z.fseg").predict_proba(test),
                                  seg.predict_proba(test))


def test_the_augmentation_is_recorded_as_its_options_and_older_files_had_no_sharpness(
        data, tmp_path):
    """A volume model records the augmentation it trained with, not ``True`` (whose
    meaning grows with fastseg); files from before the sharpness transform (settings
    version 3) load with it off, whatever else they had on."""
    from fastseg.data import Augment

    seg = Segmenter(model="lai3d", patch_size=8, model_kwargs=SMALL)
    seg.model_ = seg._build().eval()
    seg.save(tmp_path / "new.fseg")
    header, arrays = io.load_arrays(tmp_path / "new.fseg", format=io.MODEL_FORMAT,
                                    max_version=io.MODEL_VERSION)
    meta = header["meta"]
    assert meta["segmenter"]["params"]["augment"] == Augment().config()
    assert Augment().sharpness > 0
    assert Segmenter.load(tmp_path / "new.fseg").augment == Augment().config()
    meta["segmenter"]["version"] = 3
    for old, want in ((True, Augment(sharpness=0).config()),
                      ({"rotate": 2.0}, Augment(rotate=2.0, sharpness=0).config()),
                      (False, False)):
        meta["segmenter"]["params"]["augment"] = old
        io.save_arrays(tmp_path / "old.fseg", arrays, meta, format=io.MODEL_FORMAT,
                       version=io.MODEL_VERSION)
        back = Segmenter.load(tmp_path / "old.fseg")
        assert back.augment == want
    off = Segmenter(model="lai3d", augment=False, patch_size=8, model_kwargs=SMALL)
    off.model_ = seg.model_
    off.save(tmp_path / "off.fseg")
    assert Segmenter.load(tmp_path / "off.fseg").augment is False


def test_auto_threshold_is_near_the_best_dice_with_the_truest_volumes(data):
    seg = fitted(None, "lai_triplanar", data)
    volumes, masks, _ = data
    probs = [seg.predict_proba(v) for v in volumes]

    def scores(t):
        dice, errors = [], []
        for p, m in zip(probs, masks, strict=True):
            pred = seg.mask_from(p, t)
            dice.append(2 * (pred & m).sum() / (pred.sum() + m.sum()))
            errors.append(abs(int(pred.sum()) - int(m.sum())) / m.sum())
        return np.mean(dice), max(errors)

    table = {t: scores(t) for t in AUTO_THRESHOLDS}
    best = max(d for d, _ in table.values())
    assert table[seg.threshold_][0] >= best - DICE_TOLERANCE
    assert table[seg.threshold_][1] == min(e for d, e in table.values()
                                           if d >= best - DICE_TOLERANCE)
    # Trained for 24 small batches, it finds the held-out blob.
    test, truth = data[2]
    pred = seg.predict(test)
    assert 2 * (pred & truth).sum() / (pred.sum() + truth.sum()) > 0.6


def test_choose_threshold_trades_a_hair_of_dice_for_true_volumes_per_side():
    """A prediction a little off its truth (each side's probability a tent centred 20 and
    30 voxels past the truth's centre): the best Dice needs a mask larger than the truth,
    a threshold a little higher gives nearly the same Dice and truer volumes."""
    x = np.arange(600.0)
    truth = np.zeros((4, 600), np.uint8)
    truth[:2, 100:300] = 1  # left: 2 x 200 voxels
    truth[2:, 100:300] = 2  # right
    prob = np.empty((4, 600))
    prob[:2] = np.clip(1 - np.abs(x - 220) / 240, 0, 1)
    prob[2:] = np.clip(1 - np.abs(x - 230) / 240, 0, 1)
    sides = truth.max(axis=1)[:, None]

    def to_labels(p, t):
        return np.where(p >= t, sides, 0)

    def dice_and_worst(t):
        lab = to_labels(prob, t)
        d = 2 * ((lab != 0) & (truth != 0)).sum() / ((lab != 0).sum() + (truth != 0).sum())
        return d, max(abs(int((lab == v).sum()) - 400) / 400 for v in (1, 2))

    got = choose_threshold([prob], [truth], to_labels)
    best = max(dice_and_worst(t)[0] for t in AUTO_THRESHOLDS)
    dice_best = max(AUTO_THRESHOLDS, key=lambda t: dice_and_worst(t)[0])
    d, worst = dice_and_worst(got)
    assert best - DICE_TOLERANCE <= d < best  # a hair of Dice given up ...
    assert worst < dice_and_worst(dice_best)[1]  # ... for truer volumes, the truest so
    assert worst == min(w for dd, w in map(dice_and_worst, AUTO_THRESHOLDS)
                        if dd >= best - DICE_TOLERANCE)
    assert got > dice_best
    # A volume matched at any price is not the rule: exact volumes cost more Dice here.
    exact = [t for t in AUTO_THRESHOLDS if dice_and_worst(t)[1] < worst]
    assert exact and all(dice_and_worst(t)[0] < best - DICE_TOLERANCE for t in exact)
    with pytest.raises(ValueError):
        choose_threshold([prob], [truth, truth], to_labels)


def test_bad_settings_and_inputs_are_named(data):
    volumes, masks, (test, _) = data
    with pytest.raises(ValueError, match="lai3d segments the 3d kind"):
        Segmenter(model="lai3d", kind="2d").fit(volumes, masks)
    with pytest.raises(ValueError, match="the triplanar kind needs lai_triplanar"):
        Segmenter(model="lai2d", kind="triplanar").fit(volumes, masks)
    with pytest.raises(ValueError, match="kind: expected one of"):
        Segmenter(kind="cube").fit(volumes, masks)
    with pytest.raises(ValueError, match="'auto' is chosen on the training volumes"):
        Segmenter(threshold="auto").fit(volumes, masks)
    with pytest.raises(ValueError, match="threshold"):
        Segmenter(kind="2d", threshold="best").fit(volumes, masks)
    with pytest.raises(ValueError, match="axis"):
        Segmenter(kind="2d", axis=3).fit(volumes, masks)
    with pytest.raises(ValueError, match="fovs"):
        Segmenter(kind="2d").fit(volumes, masks, [np.ones(v.shape, bool) for v in volumes])
    with pytest.raises(ValueError, match=r"masks\[1\]: expected shape"):
        Segmenter(kind="2d").fit(volumes, [masks[0], masks[1][:-1]])
    with pytest.raises(ValueError, match=r"masks\[0\].*other values"):
        Segmenter(kind="2d").fit(volumes, [masks[0] * 2, masks[1]])
    with pytest.raises(ValueError, match=r"images\[0\]: expected a \(D, H, W\) volume"):
        Segmenter(kind="2d").fit([volumes[0][0], volumes[1]], [masks[0][0], masks[1]])
    nan = volumes[0].copy()
    nan[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Segmenter(kind="2d", patch_size=7).fit([nan], [masks[0]])
    with pytest.raises(ValueError, match="structure voxels but no sample has one"):
        Segmenter(kind="2d", patch_size=7).fit([volumes[0]], [np.zeros_like(masks[0])])
    seg = fitted("2d", "lai2d", data)
    with pytest.raises(ValueError, match=r"segments \(D, H, W\) volumes"):
        seg.predict_proba(test[0])
    with pytest.raises(ValueError, match="scale"):
        seg.predict_proba(test, scale=2)
    with pytest.raises(ValueError, match="smaller than the 2d patch"):
        seg.predict_proba(test[:, :3])
    with pytest.raises(ValueError, match="a Segmenter brings its own"):
        fastseg.segment(seg, test, cutter=make_cutter("2d", 7))


def test_settings_of_version_1_load_as_an_image_segmenter(tmp_path):
    """A model file from before volumes (settings version 1) loads unchanged."""
    seg = Segmenter(patch_size=9, model_kwargs={"hidden": 4, "conv_channels": (2, 3)},
                    threshold=0.3)
    seg.model_ = seg._build().eval()
    seg.save(tmp_path / "new.fseg")
    header, arrays = io.load_arrays(tmp_path / "new.fseg", format=io.MODEL_FORMAT,
                                    max_version=io.MODEL_VERSION)
    meta = header["meta"]
    meta["segmenter"]["version"] = 1
    for key in ("kind", "axis", "slices", "normalize", "keep_largest"):
        del meta["segmenter"]["params"][key]
    del meta["segmenter"]["chosen_threshold"]
    io.save_arrays(tmp_path / "old.fseg", arrays, meta, format=io.MODEL_FORMAT, version=2)
    old = Segmenter.load(tmp_path / "old.fseg")
    assert old.resolved_kind() == "image" and old.patch_size == 9
    assert old.decision_threshold() == 0.3
    image = np.random.default_rng(0).integers(0, 255, (30, 28), dtype=np.uint8)
    np.testing.assert_array_equal(old.predict_proba(image, scale=1),
                                  seg.predict_proba(image, scale=1))
