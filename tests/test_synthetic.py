import time

import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import skeletonize

from fastseg.data import Sample, synthetic_fundus


@pytest.fixture(scope="module")
def eyes():
    t = time.perf_counter()
    s = synthetic_fundus(8, seed=0)
    return s, time.perf_counter() - t


def test_types_and_shapes(eyes):
    samples, _ = eyes
    assert len(samples) == 8
    for s in samples:
        assert isinstance(s, Sample)
        assert s.image.shape == (584, 565, 3) and s.image.dtype == np.uint8
        assert s.mask.shape == s.fov.shape == (584, 565)
        assert s.mask.dtype == s.fov.dtype == np.bool_
        assert s.mask2 is None
        assert not (s.mask & ~s.fov).any()
    assert len({s.name for s in samples}) == 8


def test_fast_enough(eyes):
    _, seconds = eyes
    assert seconds < 8 * 1.0  # about 0.15 s each; generous for slow CI runners


def test_statistics_like_drive(eyes):
    samples, _ = eyes
    for s in samples:
        frac = s.mask[s.fov].mean()
        assert 0.08 <= frac <= 0.14, (s.name, frac)
        # Widths on the centre line: 2 * distance-to-background - 1.
        edt = ndimage.distance_transform_edt(s.mask)
        widths = 2 * edt[skeletonize(s.mask)] - 1
        assert np.percentile(widths, 5) <= 1.5  # 1-px vessels exist
        # The widest trunks are ~8 px; the maximum can exceed it where vessels cross.
        assert 7.0 <= widths.max() <= 13.0
        assert np.percentile(widths, 99) >= 4.0
        g = s.image[..., 1].astype(float)
        background = g[s.fov & ~ndimage.binary_dilation(s.mask, iterations=2)]
        assert g[s.mask].mean() < background.mean() - 2
        # Green carries the vessel contrast, red much less (relative to its level).
        r = s.image[..., 0].astype(float)
        g_rel = 1 - g[s.mask].mean() / background.mean()
        r_rel = 1 - r[s.mask].mean() / r[s.fov & ~s.mask].mean()
        assert g_rel > r_rel
        # Outside the FOV is black; inside is not.
        assert s.image[~s.fov].mean() < 10 and s.image[s.fov].mean() > 40
        # FOV about DRIVE's: a disc covering ~65-72 % of the frame.
        assert 0.6 < s.fov.mean() < 0.75


def test_vessels_form_a_few_connected_trees(eyes):
    samples, _ = eyes
    for s in samples:
        labels, n = ndimage.label(s.mask, structure=np.ones((3, 3)))
        sizes = np.bincount(labels.ravel())[1:]
        # Most vessel pixels belong to the big trees that grow from the disc.
        assert np.sort(sizes)[-3:].sum() > 0.8 * s.mask.sum()


def test_thin_vessels_have_less_contrast(eyes):
    s = eyes[0][0]
    edt = ndimage.distance_transform_edt(s.mask)
    skel = skeletonize(s.mask)
    g = s.image[..., 1].astype(float)
    smooth = ndimage.uniform_filter(g, 15)
    contrast = smooth - g
    thin = contrast[skel & (edt <= 1)].mean()
    wide = contrast[skel & (edt >= 3)].mean()
    assert wide > thin > 0


def test_deterministic_and_independent_of_n():
    a = synthetic_fundus(2, shape=(160, 150), seed=4)
    b = synthetic_fundus(3, shape=(160, 150), seed=4)
    for x, y in zip(a, b[:2], strict=True):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.mask, y.mask)
        assert x.name == y.name
    assert not np.array_equal(b[0].image, b[1].image)
    c = synthetic_fundus(1, shape=(160, 150), seed=5)
    assert not np.array_equal(a[0].mask, c[0].mask)
    test = synthetic_fundus(1, shape=(160, 150), seed=4, split="test")
    assert not np.array_equal(test[0].mask, a[0].mask)
    assert "test" in test[0].name and "training" in a[0].name


def test_bad_arguments():
    with pytest.raises(ValueError, match="n"):
        synthetic_fundus(-1)
    with pytest.raises(ValueError, match="shape: must be >= 64"):
        synthetic_fundus(1, shape=(10, 10))
    with pytest.raises(ValueError, match="shape: expected a pair"):
        synthetic_fundus(1, shape=(64, 64, 3))
    with pytest.raises(TypeError, match="shape: expected an int"):
        synthetic_fundus(1, shape=(64.5, 64))
    with pytest.raises(ValueError, match="seed"):
        synthetic_fundus(1, seed=-3)
    with pytest.raises(ValueError, match="split"):
        synthetic_fundus(1, split="val")
    assert synthetic_fundus(0) == []
