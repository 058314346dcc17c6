"""Volume normalisation and the class-balanced voxel sampler, including a fit() run."""
import numpy as np
import pytest

import fastseg
from fastseg import models, nn, optim, train
from fastseg.data import VolumePatchSampler, VolumeSample, make_cutter, normalize_volume


def _sample(name, shape=(12, 14, 13), seed=0, lo=(4, 5, 4), side=(4, 4, 5)):
    rng = np.random.default_rng(seed)
    image = (rng.random(shape) * 100 + 1).astype(np.float32)
    image[0] = 0.0  # background outside the "brain"
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(a, a + s) for a, s in zip(lo, side, strict=True))] = True
    image[mask] += 200
    return VolumeSample(image, mask, np.eye(4), (1.0, 1.0, 1.0), name)


def test_normalize_volume_uses_the_non_zero_voxels():
    v = np.zeros((3, 4, 5), dtype=np.float32)
    v[1:] = np.arange(40).reshape(2, 4, 5) + 1
    out = normalize_volume(v)
    signal = v[v != 0]
    np.testing.assert_allclose(out[v != 0], (signal - signal.mean()) / signal.std(), rtol=1e-5)
    np.testing.assert_allclose(out[0], -signal.mean() / signal.std(), rtol=1e-5)
    assert out.dtype == np.float32
    # more background does not change the tissue's values
    padded = np.concatenate([np.zeros((5, 4, 5), np.float32), v])
    np.testing.assert_allclose(normalize_volume(padded)[5:], out, rtol=1e-6)
    np.testing.assert_array_equal(normalize_volume(np.full((2, 2, 2), 3.0)), 0.0)
    with pytest.raises(ValueError, match="every voxel is 0"):
        normalize_volume(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        normalize_volume(np.full((2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="expected a 3-D array"):
        normalize_volume(np.ones((2, 2)))


@pytest.mark.parametrize("kind", ["2d", "stacked2d", "triplanar", "3d"])
def test_batches_are_the_cutters_patches_of_the_normalised_volumes(kind):
    samples = [_sample("a", seed=0), _sample("b", shape=(11, 12, 14), seed=1, lo=(2, 3, 6))]
    cutter = make_cutter(kind, 5)
    sampler = VolumePatchSampler(samples, cutter, batch_size=16, seed=3)
    x, y = sampler.batch(2, 5)
    index, coords, labels = sampler.positions(2, 5)
    np.testing.assert_array_equal(y, labels)
    arrays = x if isinstance(x, list) else [x]
    for i, (s, v) in enumerate(zip(index, coords, strict=True)):
        want = cutter(normalize_volume(samples[s].image), v[None])
        want = want if isinstance(want, list) else [want]
        for got, w in zip(arrays, want, strict=True):
            np.testing.assert_array_equal(got[i], w[0])
        assert labels[i] == samples[s].mask[tuple(v)]
    assert set(index.tolist()) == {0, 1}


def test_class_balance_and_near_far_background():
    s = _sample("a")
    sampler = VolumePatchSampler([s], make_cutter("3d", 3), batch_size=40,
                                 positive_fraction=0.25, near_fraction=0.5, near=2, seed=0)
    near_zone = np.zeros_like(s.mask)
    near_zone[2:10, 3:11, 2:11] = True  # the 4x4x5 cube grown by 2 voxels
    near_zone &= ~s.mask
    for b in range(5):
        _, coords, labels = sampler.positions(0, b)
        assert labels.sum() == 10
        hits = tuple(coords.T)
        assert s.mask[hits][labels == 1].all() and not s.mask[hits][labels == 0].any()
        near = near_zone[hits]
        assert near.sum() == 15 and (~near & (labels == 0)).sum() == 15


def test_deterministic_by_seed_epoch_and_index():
    samples = [_sample("a")]
    a = VolumePatchSampler(samples, make_cutter("2d", 5), batch_size=8, seed=11)
    b = VolumePatchSampler(samples, make_cutter("2d", 5), batch_size=8, seed=11)
    c = VolumePatchSampler(samples, make_cutter("2d", 5), batch_size=8, seed=12)
    np.testing.assert_array_equal(a.batch(1, 3)[0], b.batch(1, 3)[0])
    assert not np.array_equal(a.positions(1, 3)[1], c.positions(1, 3)[1])
    assert not np.array_equal(a.positions(1, 3)[1], a.positions(2, 3)[1])
    # iteration yields the current epoch's batches, then moves on
    first = [yb for _, yb in a]
    assert a.epoch == 1 and len(first) == len(a)
    a.set_epoch(0)
    np.testing.assert_array_equal(next(iter(a))[1], first[0])


def test_seed_none_comes_from_fastseg_seed():
    samples = [_sample("a")]
    fastseg.seed(5)
    a = VolumePatchSampler(samples, make_cutter("2d", 5), batch_size=8)
    fastseg.seed(5)
    b = VolumePatchSampler(samples, make_cutter("2d", 5), batch_size=8)
    fastseg.seed(6)
    c = VolumePatchSampler(samples, make_cutter("2d", 5), batch_size=8)
    assert a.seed == b.seed != c.seed


def test_default_epoch_visits_each_structure_voxel_once_in_expectation():
    s = _sample("a")  # 80 structure voxels
    sampler = VolumePatchSampler([s], make_cutter("2d", 5), batch_size=16, seed=0)
    assert len(sampler) == 10


def test_bad_input_is_named():
    s = _sample("a")
    with pytest.raises(TypeError, match="cutter: expected a PatchCutter"):
        VolumePatchSampler([s], "3d")
    with pytest.raises(ValueError, match="samples is empty"):
        VolumePatchSampler([], make_cutter("3d", 3))
    with pytest.raises(ValueError, match=r"positive_fraction: must lie in \[0, 1\]"):
        VolumePatchSampler([s], make_cutter("3d", 3), positive_fraction=1.5)
    with pytest.raises(ValueError, match=r"samples\[0\] \(a\): volume: shape .* smaller than"):
        VolumePatchSampler([s], make_cutter("3d", 13))
    empty = VolumeSample(s.image, np.zeros_like(s.mask), s.affine, s.spacing, "e")
    with pytest.raises(ValueError, match="needs 4 structure voxels but no sample has one"):
        VolumePatchSampler([empty], make_cutter("3d", 3), batch_size=8)
    with pytest.raises(TypeError, match="batch_size: expected an int"):
        VolumePatchSampler([s], make_cutter("3d", 3), batch_size=2.0)


@pytest.mark.parametrize("kind, build", [
    ("2d", lambda: models.lai2d(patch_size=9, conv_channels=(4,), kernel_size=3, hidden=16)),
    ("stacked2d", lambda: models.lai_stacked2d(patch_size=9, conv_channels=(4,), kernel_size=3,
                                               hidden=16)),
    ("triplanar", lambda: models.lai_triplanar(patch_size=9, conv_channels=(4,), kernel_size=3,
                                               hidden=16)),
])
def test_fit_trains_on_the_sampler(kind, build):
    fastseg.seed(0)
    samples = [_sample("a")]
    sampler = VolumePatchSampler(samples, make_cutter(kind, 9), batch_size=32, seed=0,
                                 batches_per_epoch=6)
    net = build()
    history = train.fit(net, sampler, nn.CrossEntropyLoss(),
                        optim.SGD(net.parameters(), lr=0.05, momentum=0.9), epochs=4,
                        progress=False)
    # the structure is 200 brighter: the loss must fall well below chance (log 2)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert len(history["step_loss"]) == 24


# -- the robust normalisation ------------------------------------------------------------
from scipy import ndimage  # noqa: E402

from fastseg.data import (  # noqa: E402
    BRAIN_NEGATIVES,
    Augment,
    brain_foreground,
    hippocampus_mri,
    normalization_zero,
    normalize_brain,
    normalize_scan,
)


@pytest.fixture(scope="module")
def brain():
    """The ICBM template with both hippocampi (RAS+, 1 mm, skull-stripped)."""
    return hippocampus_mri("test", region="brain")[0]


def test_normalize_brain_maps_the_brain_percentiles(brain):
    image = brain.image[::2, ::2, ::2]
    out = normalize_brain(image)
    inside = image > 0
    np.testing.assert_array_equal(brain_foreground(image), inside)  # skull-stripped
    p1, p50, p99 = np.percentile(image[inside], [1, 50, 99])
    np.testing.assert_allclose(out, (image - p50) * 4 / (p99 - p1), rtol=1e-5, atol=1e-5)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert 0.8 < out[inside].std() < 1.1  # about a z-score's spread
    # a gain (another scanner's scale) changes nothing
    np.testing.assert_allclose(normalize_brain(image * 37.5), out, rtol=1e-5, atol=1e-5)
    # an explicit brain mask is used as given
    box = np.zeros(image.shape, bool)
    box[30:60, 30:70, 30:60] = True
    q1, q50, q99 = np.percentile(image[box], [1, 50, 99])
    np.testing.assert_allclose(normalize_brain(image, brain=box), (image - q50) * 4 / (q99 - q1),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(normalize_scan(image, "robust"), out)
    np.testing.assert_array_equal(normalize_scan(image, "zscore"), normalize_volume(image))
    assert normalization_zero(image, "robust") == pytest.approx(float(out[0, 0, 0]))
    assert normalization_zero(image, "zscore") == pytest.approx(
        float(normalize_volume(image)[0, 0, 0]))
    assert normalization_zero(image, "none") == 0.0


def test_normalize_brain_holds_with_the_head_around_the_brain(brain):
    # air with Rician noise (3 % of bright tissue) around the brain, another gain: the
    # z-score over non-zero voxels is dragged by the air, the percentiles of the
    # foreground hardly move
    image = brain.image[::2, ::2, ::2]
    hippo = brain.mask[::2, ::2, ::2]
    rng = np.random.default_rng(0)
    sigma = 0.03 * np.percentile(image[image > 0], 99)
    noisy = np.hypot(image + rng.normal(0, sigma, image.shape),
                     rng.normal(0, sigma, image.shape)).astype(np.float32) * 2.5
    fg = brain_foreground(noisy)
    assert (fg != (image > 0)).mean() < 0.01
    clean, robust = np.median(normalize_brain(image)[hippo]), np.median(
        normalize_brain(noisy)[hippo])
    z_clean, z_noisy = np.median(normalize_volume(image)[hippo]), np.median(
        normalize_volume(noisy)[hippo])
    assert abs(robust - clean) < 0.25 < 1.0 < abs(z_noisy - z_clean)


def test_normalize_brain_refuses_an_empty_or_constant_brain():
    with pytest.raises(ValueError, match="no brain in the field of view"):
        normalize_brain(np.zeros((5, 5, 5)))
    flat = np.zeros((6, 6, 6), np.float32)
    flat[1:5, 1:5, 1:5] = 7.0
    with pytest.raises(ValueError, match=r"no brain in the field of view \(the foreground is "
                                         r"constant"):
        normalize_brain(flat)
    with pytest.raises(ValueError, match=r"no brain .*inside brain"):
        normalize_brain(np.arange(216.0).reshape(6, 6, 6), brain=np.zeros((6, 6, 6), bool))
    with pytest.raises(ValueError, match=r"brain: expected shape \(6, 6, 6\)"):
        normalize_brain(np.arange(216.0).reshape(6, 6, 6), brain=np.ones((6, 6), bool))
    with pytest.raises(ValueError, match="normalize: must be one of"):
        normalize_scan(flat, "minmax")


# -- informative negatives on whole brains -------------------------------------------------
def _distance_mm(mask, reach=20):
    """mm to the nearest structure voxel (1 mm voxels), inf beyond `reach` voxels of the
    structure's box (the transform of a whole brain takes seconds; this one, a tenth)."""
    box = tuple(slice(max(int(i.min()) - reach, 0), int(i.max()) + reach + 1)
                for i in np.nonzero(mask))
    out = np.full(mask.shape, np.inf)
    out[box] = ndimage.distance_transform_edt(~mask[box])
    return out


def test_whole_brain_negatives_come_in_the_shares_asked(brain):
    sampler = VolumePatchSampler([brain], make_cutter("3d", 5), batch_size=100,
                                 positive_fraction=0.4, seed=7, **BRAIN_NEGATIVES)
    assert sampler.counts == {"pos": 40, "near": 15, "far": 12, "shell": 21, "lookalike": 12}
    distance = _distance_mm(brain.mask)
    lo, hi = np.percentile(brain.image[brain.mask], [5, 95])
    in_shell, background = 0, 0
    for b in range(20):
        index, coords, labels, pools = sampler.positions(0, b, with_pools=True)
        assert (index == 0).all()
        hits = tuple(coords.T)
        assert brain.mask[hits][labels == 1].all() and not brain.mask[hits][labels == 0].any()
        assert (pools == "pos").sum() == 40 and (pools == "shell").sum() == 21
        d = distance[hits]
        # every shell negative lies 2-12 mm from the hippocampus; near ones within 4 voxels
        assert ((d >= 2) & (d <= 12))[pools == "shell"].all()
        assert (d[pools == "near"] <= 4 * np.sqrt(3) + 1e-9).all()
        values = brain.image[hits][pools == "lookalike"]
        assert ((values >= lo) & (values <= hi)).all()
        in_shell += int(((d >= 2) & (d <= 12) & (labels == 0)).sum())
        background += int((labels == 0).sum())
    # the share of negatives 2-12 mm away: the shell's 35 %, plus what the near, the
    # look-alike and the uniform draws put there (a few %)
    share = in_shell / background
    assert 0.35 <= share < 0.65, share
    # against uniform negatives alone: almost none that close in a whole brain
    plain = VolumePatchSampler([brain], make_cutter("3d", 5), batch_size=100, near_fraction=0,
                               seed=7)
    _, coords, labels = plain.positions(0, 0)
    assert ((distance[tuple(coords.T)] <= 12) & (labels == 0)).mean() < 0.05


def test_whole_brain_batches_are_reproducible_by_seed(brain):
    kwargs = {"batch_size": 32, "near_fraction": 0.25, "shell_fraction": 0.5,
              "lookalike_fraction": 0.25,
              "augment": Augment(), "normalize": "robust"}
    a = VolumePatchSampler([brain], make_cutter("2d", 9), seed=3, **kwargs)
    b = VolumePatchSampler([brain], make_cutter("2d", 9), seed=3, **kwargs)
    c = VolumePatchSampler([brain], make_cutter("2d", 9), seed=4, **kwargs)
    xa, ya = a.batch(2, 1)
    xb, yb = b.batch(2, 1)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a.positions(2, 1)[1], c.positions(2, 1)[1])
    assert "shell_fraction=0.5" in repr(a) and "normalize='robust'" in repr(a)


def test_new_shares_off_keep_todays_batches_bit_for_bit():
    samples = [_sample("a"), _sample("b", shape=(11, 12, 14), seed=1, lo=(2, 3, 6))]
    cutter = make_cutter("triplanar", 5)
    today = VolumePatchSampler(samples, cutter, batch_size=16, seed=3)
    same = VolumePatchSampler(samples, cutter, batch_size=16, seed=3, shell_fraction=0.0,
                              lookalike_fraction=0.0, augment=None, normalize="zscore")
    off = VolumePatchSampler(samples, cutter, batch_size=16, seed=3, augment=Augment.off())
    for other in (same, off):
        for e, b in ((0, 0), (2, 5)):
            x0, y0 = today.batch(e, b)
            x1, y1 = other.batch(e, b)
            np.testing.assert_array_equal(y0, y1)
            for p, q in zip(x0, x1, strict=True):
                np.testing.assert_array_equal(p, q)
    assert today.counts == {"pos": 8, "near": 4, "far": 4, "shell": 0, "lookalike": 0}


@pytest.mark.parametrize("kind", ["2d", "stacked2d", "triplanar", "3d"])
def test_augmented_batches_keep_voxels_and_layout(kind):
    samples = [_sample("a"), _sample("b", shape=(11, 12, 14), seed=1, lo=(2, 3, 6))]
    cutter = make_cutter(kind, 5)
    plain = VolumePatchSampler(samples, cutter, batch_size=16, seed=3)
    aug = VolumePatchSampler(samples, cutter, batch_size=16, seed=3,
                             augment=Augment().config())
    assert aug.augment == Augment()
    x0, y0 = plain.batch(1, 2)
    x1, y1 = aug.batch(1, 2)
    np.testing.assert_array_equal(y0, y1)
    for p, q in zip(x0 if isinstance(x0, list) else [x0], x1 if isinstance(x1, list) else [x1],
                    strict=True):
        assert p.shape == q.shape and q.dtype == np.float32 and not np.array_equal(p, q)
    # the bias field scales about each volume's normalised zero
    assert aug._zeros == [pytest.approx(normalization_zero(s.image)) for s in samples]


def test_robust_normalisation_in_the_sampler():
    samples = [_sample("a")]
    cutter = make_cutter("3d", 5)
    sampler = VolumePatchSampler(samples, cutter, batch_size=8, seed=0, normalize="robust")
    x, _ = sampler.batch(0, 0)
    _, coords, _ = sampler.positions(0, 0)
    np.testing.assert_array_equal(x, cutter(normalize_brain(samples[0].image), coords))
    raw = VolumePatchSampler(samples, cutter, batch_size=8, seed=0, normalize=False)
    assert raw.normalization == "none" and not raw.normalize
    np.testing.assert_array_equal(raw.batch(0, 0)[0], cutter(samples[0].image, coords))


def test_new_options_are_checked():
    s = _sample("a")
    cutter = make_cutter("3d", 3)
    with pytest.raises(ValueError, match="near_fraction \\+ shell_fraction \\+ lookalike"):
        VolumePatchSampler([s], cutter, near_fraction=0.5, shell_fraction=0.4,
                           lookalike_fraction=0.2)
    with pytest.raises(ValueError, match="normalize: expected True, False or one of"):
        VolumePatchSampler([s], cutter, normalize="minmax")
    with pytest.raises(TypeError, match="augment: expected an Augment"):
        VolumePatchSampler([s], cutter, augment="strong")
    with pytest.raises(ValueError, match="config: unknown Augment option"):
        VolumePatchSampler([s], cutter, augment={"flip": 1})
    with pytest.raises(ValueError, match="shell: expected 0 <= min_mm < max_mm"):
        VolumePatchSampler([s], cutter, shell_fraction=0.2, shell=(5, 2))
    with pytest.raises(ValueError, match=r"shell_fraction: must lie in \[0, 1\]"):
        VolumePatchSampler([s], cutter, shell_fraction=2)
    # a small volume: the shell reaches its border; an empty shell pool goes to "far"
    tiny = VolumePatchSampler([s], cutter, batch_size=10, seed=0, shell_fraction=0.4,
                              shell=(50, 60))
    assert tiny.counts["shell"] == 0 and tiny.counts["far"] == 3
