"""fastseg._inference.brain: a coarse grid finds each hippocampus, exact dense inference in
boxes around them: the boxes' maps equal the whole volume's dense map, each side gets the
most probable candidate on its side of the midline, and nothing else is computed."""
import numpy as np
import pytest

import fastseg
from fastseg import models, nn
from fastseg._inference.brain import segment_brain
from fastseg._inference.volume import segment_volume
from fastseg.data import make_cutter


def blob_detector():
    """A 3-D patch classifier whose class-1 probability grows with the local mean
    intensity: sigmoid(max over a 2x2x2 pool of 3x3x3 means - 0.5) (stride 2, patch 4)."""
    net = nn.Sequential(nn.Conv3d(1, 1, 3), nn.MaxPool3d(2), nn.Flatten(), nn.Linear(1, 2))
    net[0].weight.data[...] = 1 / 27
    net[0].bias.data[...] = 0
    net[3].weight.data[...] = [[0.0], [8.0]]
    net[3].bias.data[...] = [0.0, -4.0]
    return net.eval()


def two_blobs(shape=(40, 24, 20)):
    vol = np.zeros(shape, np.float32)
    vol[6:11, 8:13, 6:10] = 1.0     # left (low x), large
    vol[14:17, 2:5, 2:5] = 1.0      # left, small: not the most probable
    vol[28:33, 10:15, 9:13] = 1.0   # right
    return vol


def test_each_side_gets_its_most_probable_blob_and_the_map_is_exact_in_the_boxes():
    net, cutter = blob_detector(), make_cutter("3d", 4)
    vol = two_blobs()
    found = segment_brain(net, vol, cutter, threshold=0.5, midline=20, margin=2, share=0)
    assert found.step == (2, 2, 2)
    assert set(found.boxes) == {"left", "right"}
    assert len(found.boxes["left"]) == 2 and len(found.boxes["right"]) == 1
    (left, small), (right,) = found.boxes["left"], found.boxes["right"]
    assert left[0].stop <= 20 <= right[0].start and small[0].stop <= 20
    assert left[0].start <= 6 and left[0].stop >= 11 and left[1].start <= 8  # the large blob
    assert not (left[0].start <= 14 < left[0].stop and left[1].start <= 2 < left[1].stop)
    assert small[0].start <= 14 < small[0].stop and small[1].start <= 2 < small[1].stop
    one = segment_brain(net, vol, cutter, threshold=0.5, midline=20, margin=2, candidates=1)
    assert one.boxes["left"] == [left]  # the most probable candidate first
    # By default the small blob (under half the large one's coarse mass) is not segmented
    default = segment_brain(net, vol, cutter, threshold=0.5, midline=20, margin=2)
    assert default.boxes == one.boxes
    only_small = np.zeros(vol.shape, bool)
    only_small[small] = True
    only_small[left] = False
    assert not default.prob[only_small].any() and found.prob[only_small].any()
    np.testing.assert_array_equal(default.prob[left], found.prob[left])
    full = segment_volume(net, vol, cutter, method="direct")
    inside = np.zeros(vol.shape, bool)
    for box in (b for boxes in found.boxes.values() for b in boxes):
        inside[box] = True
    np.testing.assert_allclose(found.prob[inside], full[inside], atol=1e-6, rtol=0)
    assert not found.prob[~inside].any()
    np.testing.assert_allclose(found.coarse, full[::2, ::2, ::2], atol=1e-6, rtol=0)


def test_boxes_at_the_volume_edge_stay_exact():
    net, cutter = blob_detector(), make_cutter("3d", 4)
    vol = np.zeros((20, 12, 10), np.float32)
    vol[0:3, 0:3, 0:3] = 1.0        # touching three faces of the volume
    vol[17:20, 9:12, 7:10] = 1.0    # the opposite corner
    found = segment_brain(net, vol, cutter, threshold=0.5, midline=10, margin=1)
    full = segment_volume(net, vol, cutter, method="direct")
    for box in (b for boxes in found.boxes.values() for b in boxes):
        np.testing.assert_allclose(found.prob[box], full[box], atol=1e-6, rtol=0)
    assert set(found.boxes) == {"left", "right"}


def test_a_side_without_candidates_has_no_box_and_zero_map():
    net, cutter = blob_detector(), make_cutter("3d", 4)
    vol = np.zeros((30, 12, 10), np.float32)
    vol[22:26, 4:8, 3:7] = 1.0      # right only
    found = segment_brain(net, vol, cutter, threshold=0.5, midline=15, margin=1)
    assert set(found.boxes) == {"right"}
    assert not found.prob[:15].any()


@pytest.mark.parametrize("kind", ["2d", "stacked2d", "triplanar"])
def test_every_kind_is_exact_inside_its_boxes(kind):
    fastseg.seed(4)
    small = {"conv_channels": (2,), "kernel_size": 3, "hidden": 4}
    build = {"2d": models.lai2d, "stacked2d": models.lai_stacked2d,
             "triplanar": models.lai_triplanar}[kind]
    net = build(patch_size=6, **small).eval()
    cutter = make_cutter(kind, 6)
    vol = np.random.default_rng(0).standard_normal((16, 11, 10)).astype(np.float32)
    full = segment_volume(net, vol, cutter, method="direct")
    threshold = float(np.quantile(full, 0.9))
    found = segment_brain(net, vol, cutter, threshold=threshold, midline=8, margin=1)
    assert found.boxes
    for box in (b for boxes in found.boxes.values() for b in boxes):
        np.testing.assert_allclose(found.prob[box], full[box], atol=1e-5, rtol=0)


def test_search_window_is_a_box_of_the_brains_extent():
    from fastseg._inference.brain import SEARCH_WINDOW, search_window

    brain = np.zeros((30, 40, 50), bool)
    brain[5:25, 10:30, 0:40] = True
    window = search_window(brain)
    assert (window <= brain).all()
    where = np.argwhere(window)
    (x0, y0, z0), (x1, y1, z1) = where.min(0), where.max(0) + 1
    assert (x0, x1) == (5, 25)
    assert (y0, y1) == (10 + int(np.floor(SEARCH_WINDOW[1][0] * 20)),
                        10 + int(np.ceil(SEARCH_WINDOW[1][1] * 20)))
    assert (z0, z1) == (int(np.floor(SEARCH_WINDOW[2][0] * 40)),
                        int(np.ceil(SEARCH_WINDOW[2][1] * 40)))
    assert not search_window(np.zeros((4, 4, 4), bool)).any()
