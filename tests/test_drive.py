import numpy as np
import pytest
import tifffile
from PIL import Image, UnidentifiedImageError

from fastseg.data import load_drive

H, W = 584, 565


def _write_gif(path, mask):
    # DRIVE's GIFs are single-band 0/255 images.
    Image.fromarray(mask.astype(np.uint8) * 255).save(path, format="GIF")


def _make_drive(root, split, numbers, second=False, use_tifffile=False, seed=0):
    rng = np.random.default_rng(seed)
    base = root / split
    dirs = ["images", "1st_manual", "mask"] + (["2nd_manual"] if second else [])
    for d in dirs:
        (base / d).mkdir(parents=True, exist_ok=True)
    truth = {}
    for n in numbers:
        image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        m1 = rng.random((H, W)) < 0.12
        fov = rng.random((H, W)) < 0.7
        m2 = rng.random((H, W)) < 0.12
        tif = base / "images" / f"{n:02d}_{split}.tif"
        if use_tifffile:
            tifffile.imwrite(tif, image, photometric="rgb")
        else:
            Image.fromarray(image).save(tif)
        _write_gif(base / "1st_manual" / f"{n:02d}_manual1.gif", m1)
        _write_gif(base / "mask" / f"{n:02d}_{split}_mask.gif", fov)
        if second:
            _write_gif(base / "2nd_manual" / f"{n:02d}_manual2.gif", m2)
        truth[f"{n:02d}_{split}"] = (image, m1, fov, m2)
    return truth


@pytest.mark.parametrize("use_tifffile", [False, True])
def test_reads_training_exactly(tmp_path, use_tifffile):
    truth = _make_drive(tmp_path, "training", [22, 21], use_tifffile=use_tifffile)
    samples = load_drive(tmp_path, "training")
    assert [s.name for s in samples] == ["21_training", "22_training"]
    for s in samples:
        image, m1, fov, _ = truth[s.name]
        assert s.image.shape == (H, W, 3) and s.image.dtype == np.uint8
        np.testing.assert_array_equal(s.image, image)
        np.testing.assert_array_equal(s.mask, m1)
        np.testing.assert_array_equal(s.fov, fov)
        assert s.mask.dtype == np.bool_ and s.mask2 is None


def test_reads_test_split_with_second_observer(tmp_path):
    truth = _make_drive(tmp_path, "test", [1, 2, 3], second=True, seed=1)
    samples = load_drive(tmp_path, split="test")
    assert [s.name for s in samples] == ["01_test", "02_test", "03_test"]
    for s in samples:
        np.testing.assert_array_equal(s.mask2, truth[s.name][3])
        np.testing.assert_array_equal(s.mask, truth[s.name][1])


def test_tiff_pillow_cannot_read_falls_back_to_tifffile(tmp_path, monkeypatch):
    truth = _make_drive(tmp_path, "training", [21], use_tifffile=True)
    real_open = Image.open

    def pillow_without_tiff(path, *args, **kwargs):
        if str(path).endswith(".tif"):
            raise UnidentifiedImageError(f"cannot identify image file {path!r}")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", pillow_without_tiff)
    s = load_drive(tmp_path)[0]
    np.testing.assert_array_equal(s.image, truth["21_training"][0])


@pytest.mark.parametrize("victim", ["1st_manual/21_manual1.gif", "mask/21_training_mask.gif"])
def test_missing_file_is_named(tmp_path, victim):
    _make_drive(tmp_path, "training", [21, 22])
    (tmp_path / "training" / victim).unlink()
    with pytest.raises(FileNotFoundError, match=victim.split("/")[1]):
        load_drive(tmp_path, "training")


def test_missing_second_observer_file_is_named(tmp_path):
    _make_drive(tmp_path, "test", [1, 2], second=True)
    (tmp_path / "test" / "2nd_manual" / "02_manual2.gif").unlink()
    with pytest.raises(FileNotFoundError, match="02_manual2.gif"):
        load_drive(tmp_path, "test")


def test_missing_folders_and_bad_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="images"):
        load_drive(tmp_path, "training")
    (tmp_path / "test" / "images").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="NN_test.tif"):
        load_drive(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        load_drive(tmp_path, "validation")


def test_mismatched_size_is_named(tmp_path):
    _make_drive(tmp_path, "training", [21])
    _write_gif(tmp_path / "training" / "mask" / "21_training_mask.gif", np.ones((100, 90), bool))
    with pytest.raises(ValueError, match="21_training_mask.gif"):
        load_drive(tmp_path, "training")
