"""fastseg._inference.scan: a scan with its affine is conformed, segmented and mapped back,
the same as doing each step by hand; the side of each voxel."""
import numpy as np
import pytest

import fastseg
from fastseg import models
from fastseg._inference.scan import ScanResult, segment_scan, side_map
from fastseg._inference.volume import segment_volume
from fastseg.data import conform, make_cutter, normalize_scan

pytest.importorskip("nibabel")


def small_3d():
    fastseg.seed(2)
    return models.lai3d(patch_size=8, conv_channels=(3,), kernel_size=3, hidden=6).eval()


AFFINE = np.array([[0, 0, -1.3, 20], [0.9, 0, 0, -8], [0, 1.1, 0, 3], [0, 0, 0, 1.0]])


def test_conform_segment_map_back_is_each_step_by_hand():
    net, cutter = small_3d(), make_cutter("3d", 8)
    scan = np.random.default_rng(0).standard_normal((21, 17, 19)).astype(np.float32) + 5
    got = segment_scan(net, scan, cutter, affine=AFFINE, normalize="zscore")
    c = conform(scan, AFFINE)
    want = np.clip(c.to_native(segment_volume(net, normalize_scan(c.array, "zscore"), cutter)),
                   0, 1)
    np.testing.assert_array_equal(got.prob, want)
    assert got.prob.shape == scan.shape and got.midline is None and got.boxes == {}
    np.testing.assert_array_equal(got.affine, AFFINE)
    np.testing.assert_array_equal(fastseg.segment(net, scan, affine=AFFINE),
                                  segment_scan(net, scan, cutter, affine=AFFINE).prob)


def test_sides_of_a_crop_follow_the_world_x():
    prob = np.zeros((6, 4, 5), np.float32)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[0, 3] = -3  # voxel x index 3 is world x 0
    c = conform(np.ones((6, 4, 5), np.float32), affine)
    sides = side_map(ScanResult(prob, c))
    assert (sides[:3] == 1).all() and (sides[3:] == 2).all()
    assert (side_map(ScanResult(prob)) == 1).all()  # no affine: one side


def test_an_image_network_with_an_affine_is_refused():
    with pytest.raises(ValueError, match="needs a volume network"):
        fastseg.segment(models.lai2d(hidden=4), np.zeros((30, 30, 30), np.float32),
                        affine=np.eye(4))
    with pytest.raises(ValueError, match="spacing: it says"):
        fastseg.segment(small_3d(), np.zeros((12, 12, 12), np.float32), spacing=(1, 1, 1))
