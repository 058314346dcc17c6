"""Photos of any size: FOV diameters, segment's scale, the model file's fov_diameter,
Segmenter and the CLI's --scale/--method."""
import json
import zipfile

import numpy as np
import pytest
from _segment_helpers import image_of, tiny_net, usable_backend  # noqa: F401

import fastseg
from fastseg import io as fio
from fastseg import segment
from fastseg._inference import rescale as _rescale


def disk(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_fov_diameter_of_disks_clipped_disks_and_noise():
    # Rows or columns of under 1 % of the fullest one's pixels do not count: the
    # one-pixel tips of a digital disk, stray pixels. Within 2 % of the true width.
    assert _rescale.fov_diameter(disk(200, 220, 100, 110, 80)) == pytest.approx(161, rel=0.02)
    clipped = disk(150, 300, 75, 150, 120)  # cut at top and bottom, as DRIVE's FOV
    assert _rescale.fov_diameter(clipped) == pytest.approx(241, rel=0.02)
    noisy = disk(300, 300, 150, 150, 100)
    clean = _rescale.fov_diameter(noisy)
    noisy[5, 5] = noisy[290, 2] = True  # stray pixels of an estimated mask
    assert _rescale.fov_diameter(noisy) == clean == pytest.approx(201, rel=0.02)
    assert _rescale.fov_diameter(np.zeros((5, 5), bool)) is None
    assert _rescale.fov_diameter(np.ones((1, 7))) == 7


def test_auto_scale_and_tolerance():
    fov = np.zeros((400, 400), bool)
    fov[50:351, 60:300] = True  # diameter 301 (the larger extent)
    assert _rescale.auto_scale(None, fov) == 1.0
    assert _rescale.auto_scale(301.0, None) == 1.0
    assert _rescale.auto_scale(310.0, fov) == 1.0  # within 5 %
    assert _rescale.auto_scale(150.5, fov) == pytest.approx(0.5)
    assert _rescale.auto_scale(602.0, fov) == pytest.approx(2.0)
    assert _rescale.auto_scale(100.0, np.zeros((4, 4), bool)) == 1.0


def test_estimate_fov_finds_the_bright_disk():
    photo = np.zeros((120, 140, 3), np.uint8)
    inside = disk(120, 140, 60, 70, 50)
    photo[inside] = (150, 90, 40)
    photo[inside & (np.arange(140) % 7 == 0)] = (40, 20, 10)  # dark vessels, still inside
    np.testing.assert_array_equal(_rescale.estimate_fov(photo), inside)
    assert _rescale.estimate_fov(np.zeros((4, 5))).all()


@pytest.mark.parametrize("bad,error", [(0, ValueError), (-1.0, ValueError),
                                       (float("nan"), ValueError), (float("inf"), ValueError),
                                       ("2", TypeError), (True, TypeError), (1e6, ValueError)])
def test_bad_scales_refused(bad, error):
    with pytest.raises(error, match="scale"):
        segment(tiny_net(1, 9), image_of(1, 12, 12), scale=bad)


def test_scale_resamples_segments_and_brings_back():
    net = tiny_net(1, 9)
    image = image_of(1, 40, 30, seed=2)
    fov = np.ones((40, 30), bool)
    fov[:, :3] = False
    got = segment(net, image, fov=fov, scale=0.5)
    small = _rescale.resize(image, (20, 15))
    want = _rescale.resize(segment(net, small, fov=_rescale.resize_mask(fov, (20, 15))),
                           (40, 30))
    want[~fov] = 0
    assert got.shape == (40, 30)
    np.testing.assert_allclose(got, np.clip(want, 0, 1), atol=1e-6)
    assert not np.allclose(got, segment(net, image, fov=fov))
    np.testing.assert_array_equal(segment(net, image, fov=fov, scale=1),
                                  segment(net, image, fov=fov))
    big = segment(net, image, scale=2.0, method="fft")
    assert big.shape == (40, 30) and 0 <= big.min() and big.max() <= 1


def test_model_fov_diameter_drives_auto_scale():
    net = tiny_net(1, 9)
    image = image_of(1, 48, 48, seed=3)
    fov = disk(48, 48, 24, 24, 23)  # diameter 47
    plain = segment(net, image, fov=fov)
    net.fov_diameter = 47.0  # trained at this scale: nothing changes
    np.testing.assert_array_equal(segment(net, image, fov=fov), plain)
    net.fov_diameter = 23.5  # trained on images half as wide: scale 0.5
    np.testing.assert_allclose(segment(net, image, fov=fov),
                               segment(net, image, fov=fov, scale=0.5), atol=0)
    np.testing.assert_array_equal(segment(net, image, fov=fov, scale=1), plain)
    np.testing.assert_array_equal(segment(net, image), segment(net, image, scale=1))  # no fov


def test_model_file_keeps_fov_diameter_and_old_files_load(tmp_path):
    net = tiny_net(1, 9)
    net.fov_diameter = 540.5
    fastseg.save(net, tmp_path / "m.fseg")
    with zipfile.ZipFile(tmp_path / "m.fseg") as zf:
        header = json.loads(zf.read("header.json"))
    assert header["version"] == fio.MODEL_VERSION == 3  # 3: volume models record their cutter
    assert header["meta"]["fov_diameter"] == 540.5
    assert fastseg.load(tmp_path / "m.fseg").fov_diameter == 540.5
    # A version-1 file, as fastseg wrote before the field existed, still loads.
    fio.save_arrays(tmp_path / "old.fseg", net.state_dict(),
                    {"architecture": fio.describe(net)}, format=fio.MODEL_FORMAT, version=1)
    old = fastseg.load(tmp_path / "old.fseg")
    assert getattr(old, "fov_diameter", None) is None
    image = image_of(1, 15, 15)
    np.testing.assert_array_equal(segment(old, image), segment(net, image))
    fio.save_arrays(tmp_path / "bad.fseg", net.state_dict(),
                    {"architecture": fio.describe(net), "fov_diameter": -3},
                    format=fio.MODEL_FORMAT, version=2)
    with pytest.raises(ValueError, match="fov_diameter"):
        fastseg.load(tmp_path / "bad.fseg")
    net.fov_diameter = float("nan")
    with pytest.raises(ValueError, match="fov_diameter"):
        fastseg.save(net, tmp_path / "nan.fseg")
