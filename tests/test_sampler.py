import numpy as np
import pytest

import fastseg._row_blocks
from fastseg.data import PatchSampler, Sample, patches_at, preprocess


def _samples(n=3, shape=(40, 50), seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        fov = (yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2 < (0.45 * min(shape)) ** 2
        mask = (rng.random(shape) < 0.1) | (xx == 10 + i)  # some vessels also outside the FOV
        out.append(Sample(image, mask, fov, name=str(i)))
    return out


def test_preprocess_channels_and_normalisation():
    s = _samples(1)[0]
    for channels, c in (("green", 1), ("grey", 1), ("rgb", 3)):
        x = preprocess(s.image, s.fov, channels)
        assert x.shape == (c, 40, 50) and x.dtype == np.float32
        inside = x[:, s.fov]
        np.testing.assert_allclose(inside.mean(1), 0, atol=1e-5)
        np.testing.assert_allclose(inside.std(1), 1, atol=1e-4)
        assert (x[:, ~s.fov] == 0).all()
    g = s.image[..., 1].astype(np.float64)[s.fov]
    x = preprocess(s.image, s.fov)
    np.testing.assert_allclose(x[0][s.fov], (g - g.mean()) / g.std(), atol=1e-5)
    grey = preprocess(s.image[..., 0], None)
    assert grey.shape == (1, 40, 50)
    with pytest.raises(ValueError, match="rgb"):
        preprocess(s.image[..., 0], None, "rgb")
    with pytest.raises(ValueError, match="channels"):
        preprocess(s.image, s.fov, "red")
    with pytest.raises(ValueError, match="fov"):
        preprocess(s.image, np.ones((3, 3), bool))


def _whole_image_preprocess(image, fov, channels):
    """preprocess as one whole-image float32 expression (what it computes by rows)."""
    img = np.asarray(image).astype(np.float32)
    if img.ndim == 2:
        x = img[None]
    else:
        x = {"green": lambda: img[None, :, :, 1], "rgb": lambda: img.transpose(2, 0, 1),
             "grey": lambda: (img @ np.array([0.299, 0.587, 0.114], np.float32))[None]}[
                 channels]()
    out = np.empty(x.shape, np.float32)
    for c in range(len(x)):
        vals = x[c][fov].astype(np.float64)
        std = vals.std()
        out[c] = (x[c] - vals.mean()) / (std if std > 0 else 1.0)
        out[c][~fov] = 0.0
    return out


def test_preprocess_by_blocks_of_rows_is_the_whole_image_formula(monkeypatch):
    monkeypatch.setattr(fastseg._row_blocks, "BLOCK_BYTES", 200)  # a few rows per block
    rng = np.random.default_rng(7)
    fov = rng.random((31, 23)) < 0.7
    for image in (rng.integers(0, 256, (31, 23, 3)).astype(np.uint8),
                  rng.random((31, 23, 3)) * 300 - 20,
                  rng.integers(0, 256, (62, 69, 3)).astype(np.uint8)[::2, ::3],
                  rng.integers(0, 4096, (31, 23)).astype(np.uint16)):
        before = image.copy()
        for channels in ("green", "grey", "rgb")[:3 if image.ndim == 3 else 1]:
            np.testing.assert_array_equal(preprocess(image, fov, channels),
                                          _whole_image_preprocess(image, fov, channels))
        np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("fraction", [0.5, 0.25, 1.0, 0.0])
def test_balance_fov_and_labels(fraction):
    samples = _samples()
    sp = PatchSampler(samples, size=5, batch_size=64, positive_fraction=fraction, seed=3,
                      batches_per_epoch=4)
    for b in range(4):
        idx, coords, labels, _ = sp.positions(0, b)
        assert labels.sum() == round(64 * fraction)
        for i, (r, c), lab in zip(idx, coords, labels, strict=True):
            assert samples[i].fov[r, c]
            assert samples[i].mask[r, c] == bool(lab)


def test_natural_sampling_when_fraction_is_none():
    samples = _samples()
    sp = PatchSampler(samples, size=5, batch_size=4000, positive_fraction=None, seed=1)
    idx, coords, labels, _ = sp.positions(0, 0)
    natural = np.mean(np.concatenate([s.mask[s.fov] for s in samples]))
    assert abs(labels.mean() - natural) < 0.03
    assert all(samples[i].mask[r, c] == lab for i, (r, c), lab in zip(idx, coords, labels,
                                                                       strict=True))


@pytest.mark.parametrize("size", [6, 7])
def test_patches_equal_patches_at_without_augmentation(size):
    samples = _samples()
    sp = PatchSampler(samples, size=size, batch_size=32, augment=False, seed=0,
                      batches_per_epoch=2)
    x, y = sp.batch(1, 1)
    idx, coords, labels, _ = sp.positions(1, 1)
    assert x.shape == (32, 1, size, size) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)
    for k in range(32):
        s = samples[idx[k]]
        ref = patches_at(preprocess(s.image, s.fov), coords[k:k + 1], size)[0]
        np.testing.assert_array_equal(x[k], ref)


@pytest.mark.parametrize("size", [6, 7])
def test_augmentation_is_dihedral_about_the_pixel(size):
    samples = _samples()
    kw = dict(size=size, batch_size=48, seed=5, channels="rgb", batches_per_epoch=1)
    plain, _ = PatchSampler(samples, augment=False, **kw).batch(0, 0)
    aug, _ = PatchSampler(samples, augment=True, **kw).batch(0, 0)
    assert not np.array_equal(plain, aug)
    c = size // 2
    # Centre pixel unchanged; each patch is one of the 8 flips/rotations of the original
    # (checked on the odd central window that both share).
    np.testing.assert_array_equal(plain[:, :, c, c], aug[:, :, c, c])
    h = size // 2 if size % 2 else size // 2 - 1
    for p, a in zip(plain, aug, strict=True):
        pc = p[:, c - h:c + h + 1, c - h:c + h + 1]
        ac = a[:, c - h:c + h + 1, c - h:c + h + 1]
        variants = [np.rot90(v, k, axes=(1, 2)) for v in (pc, pc.transpose(0, 2, 1))
                    for k in range(4)]
        assert any(np.array_equal(ac, v) for v in variants)


def test_determinism_epochs_and_resume():
    samples = _samples()
    a = PatchSampler(samples, size=5, batch_size=16, seed=7, batches_per_epoch=3)
    b = PatchSampler(samples, size=5, batch_size=16, seed=7, batches_per_epoch=3)
    assert len(a) == 3
    ep0 = list(a)
    ep1 = list(a)
    assert a.epoch == 2
    assert len(ep0) == 3 and not np.array_equal(ep0[0][0], ep1[0][0])
    b.set_epoch(1)
    for (x1, y1), (x2, y2) in zip(ep1, list(b), strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    c = PatchSampler(samples, size=5, batch_size=16, seed=8, batches_per_epoch=3)
    assert not np.array_equal(c.batch(0, 0)[0], ep0[0][0])


def test_default_epoch_length_and_errors():
    samples = _samples()
    sp = PatchSampler(samples, size=5, batch_size=10)
    n_pos = sum(int((s.mask & s.fov).sum()) for s in samples)
    assert len(sp) == int(np.ceil(n_pos / 5))
    with pytest.raises(ValueError, match="positive_fraction"):
        PatchSampler(samples, positive_fraction=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        PatchSampler(samples, batch_size=0)
    with pytest.raises(ValueError, match="samples"):
        PatchSampler([])
    with pytest.raises(ValueError, match="channels"):
        PatchSampler(samples, channels="bgr")
    s = samples[0]
    with pytest.raises(ValueError, match="no sample has a vessel"):
        PatchSampler([Sample(s.image, np.zeros_like(s.mask), s.fov, "x")])
