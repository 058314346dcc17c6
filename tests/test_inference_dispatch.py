"""fastseg._inference.dispatch: one entry for images and volumes: which path runs, the checks
made once for both callers (segment, Segmenter.predict_proba), the hints in the messages."""
import sys

import numpy as np
import pytest
from _segment_helpers import image_of, tiny_net

import fastseg
from fastseg import models
from fastseg._inference import Handover, segment_array
from fastseg.data import make_cutter


def test_images_and_volumes_take_their_own_paths():
    net = tiny_net(1, 9)
    image = image_of(1, 12, 13)
    np.testing.assert_array_equal(segment_array(net, image), fastseg.segment(net, image))
    volume = image_of(6, 12, 13)[None][0]
    by_planes = segment_array(net, volume, cutter=make_cutter("2d", 9, axis=0))
    assert by_planes.shape == (6, 12, 13)
    np.testing.assert_allclose(by_planes[2], segment_array(net, volume[2]), atol=1e-6)


def test_volumes_refuse_a_scale_once_for_every_caller():
    fastseg.seed(0)
    net = models.lai3d(patch_size=8, conv_channels=(2,), kernel_size=3, hidden=4)
    volume = np.zeros((14, 14, 14), np.float32)
    for caller in ("segment", "Segmenter.predict_proba"):
        with pytest.raises(ValueError, match=r"scale: volumes are segmented at their own voxel "
                                             r"size, got scale=2"):
            segment_array(net, volume, scale=2, caller=caller)
    assert segment_array(net, volume, scale=1).shape == (14, 14, 14)


def test_channel_errors_hint_at_what_was_meant():
    net = tiny_net(1, 9)
    with pytest.raises(ValueError, match=r"looks like \(H, W, C\)"):
        segment_array(net, np.zeros((12, 12, 3), np.float32))
    with pytest.raises(ValueError, match="if it is a \\(D, H, W\\) volume"):
        segment_array(net, np.zeros((5, 12, 12), np.float32))
    with pytest.raises(ValueError, match="^Segmenter.predict_proba: cannot run"):
        segment_array(models.seo_whole_image(), image_of(1, 12, 12), patch_size=9,
                      caller="Segmenter.predict_proba")


def test_a_handover_is_let_go():
    image = image_of(1, 40, 40)
    source = Handover(image)
    before = sys.getrefcount(image)
    segment_array(tiny_net(1, 9), source)
    assert source.array is None and sys.getrefcount(image) == before - 1
