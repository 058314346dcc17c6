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
