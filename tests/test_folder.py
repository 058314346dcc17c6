import numpy as np
import pytest
from PIL import Image

from fastseg.data import load_folder, read_mask


def _img(path, arr):
    Image.fromarray(arr).save(path)


@pytest.fixture
def tree(tmp_path):
    rng = np.random.default_rng(0)
    imgs, masks, fovs = (tmp_path / d for d in ("images", "masks", "fov"))
    for d in (imgs, masks, fovs):
        d.mkdir()
    truth = {}
    for stem, ext, mask_name, grey in [("a", "png", "a.png", False),
                                      ("b", "jpg", "b_mask.gif", False),
                                      ("c", "tif", "C-manual.png", True)]:
        shape = (20, 30) if grey else (20, 30, 3)
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        m = rng.random((20, 30)) < 0.3
        f = rng.random((20, 30)) < 0.8
        _img(imgs / f"{stem}.{ext}", image)
        _img(masks / mask_name, m.astype(np.uint8) * 255)
        _img(fovs / f"{stem}_fov.png", f.astype(np.uint8))  # 0/1 label image
        truth[stem] = (image, m, f)
    return tmp_path, truth


def test_pairs_and_reads(tree):
    root, truth = tree
    samples = load_folder(root / "images", root / "masks", root / "fov")
    assert [s.name for s in samples] == ["a", "b", "c"]
    for s in samples:
        image, m, f = truth[s.name]
        if s.name == "b":  # JPEG is lossy: only shape and type are exact
            assert s.image.shape == image.shape and s.image.dtype == np.uint8
        else:
            np.testing.assert_array_equal(s.image, image)
        np.testing.assert_array_equal(s.mask, m)
        np.testing.assert_array_equal(s.fov, f)
    assert samples[2].image.ndim == 2  # greyscale stays (H, W)
    no_fov = load_folder(root / "images", root / "masks")
    assert all(s.fov.all() for s in no_fov)


def test_unmatched_mask_is_named(tree):
    root, _ = tree
    _img(root / "masks" / "zzz_mask.png", np.zeros((20, 30), np.uint8))
    with pytest.raises(ValueError, match="zzz_mask.png"):
        load_folder(root / "images", root / "masks")


def test_image_without_mask_is_named(tree):
    root, _ = tree
    (root / "masks" / "b_mask.gif").unlink()
    with pytest.raises(ValueError, match="b.jpg"):
        load_folder(root / "images", root / "masks")


def test_ambiguous_mask(tree):
    root, _ = tree
    _img(root / "masks" / "a_gt.png", np.zeros((20, 30), np.uint8))
    with pytest.raises(ValueError, match="a.png.*a_gt.png|a_gt.png"):
        load_folder(root / "images", root / "masks")


def test_size_mismatch_and_missing_dirs(tree):
    root, _ = tree
    _img(root / "masks" / "a.png", np.zeros((10, 30), np.uint8))
    with pytest.raises(ValueError, match="a.png"):
        load_folder(root / "images", root / "masks")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_folder(root / "nowhere", root / "masks")


def test_mask_binarisation(tmp_path):
    _img(tmp_path / "m8.png", np.array([[0, 127, 128, 255]], np.uint8))
    np.testing.assert_array_equal(read_mask(tmp_path / "m8.png"), [[0, 0, 1, 1]])
    _img(tmp_path / "m1.png", np.array([[0, 1, 1, 0]], np.uint8))
    np.testing.assert_array_equal(read_mask(tmp_path / "m1.png"), [[0, 1, 1, 0]])
    Image.fromarray(np.array([[0, 1]], bool)).save(tmp_path / "mb.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "mb.png"), [[0, 1]])
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png"):
        read_mask(tmp_path / "bad.png")
