"""Dense segmentation equals per-patch classification, in tiles, with bounded memory."""

import numpy as np
import pytest
from _segment_helpers import (  # noqa: F401
    all_pixels,
    image_of,
    reference_probability,
    tiny_net,
    usable_backend,
)

import fastseg
from fastseg import nn, segment

CASES = [  # (channels, pool, strided, patch, tile, (H, W))
    (1, False, False, 9, 5, (23, 31)),
    (3, False, False, 10, 7, (17, 13)),
    (1, True, False, 11, 6, (21, 19)),
    (3, True, False, 12, 4, (15, 27)),
    (1, False, True, 11, 5, (19, 14)),
    (1, True, False, 11, None, (21, 19)),
]


@pytest.mark.parametrize("c,pool,strided,patch,tile,hw", CASES)
def test_dense_equals_patch_classifier_everywhere(c, pool, strided, patch, tile, hw):
    net = tiny_net(c, patch, pool, strided=strided)
    image = image_of(c, *hw)
    prob = segment(net, image, patch_size=patch, tile=tile)
    assert prob.shape == hw and prob.dtype == np.float32
    # Every pixel, so all four borders and corners are covered; also check them by name.
    ref = reference_probability(net, image, all_pixels(*hw), patch).reshape(hw)
    np.testing.assert_allclose(prob, ref, atol=1e-5, rtol=0)
    h, w = hw
    for r, col in [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (0, w // 2), (h // 2, 0)]:
        assert abs(prob[r, col] - ref[r, col]) < 1e-5
    assert prob.std() > 0.01  # a non-trivial map, not a constant


def test_random_pixels_of_a_larger_image_and_2d_input():
    net = tiny_net(1, 9)
    image = image_of(1, 67, 53, seed=3)
    prob = segment(net, image[0], tile=16)  # (H, W) input, patch size inferred
    coords = np.random.default_rng(1).integers(0, [67, 53], size=(200, 2))
    ref = reference_probability(net, image, coords, 9)
    np.testing.assert_allclose(prob[coords[:, 0], coords[:, 1]], ref, atol=1e-5)


def test_tile_size_does_not_change_the_result():
    net = tiny_net(1, 11, pool=True)
    image = image_of(1, 29, 22)
    results = [segment(net, image, patch_size=11, tile=t) for t in (1, 3, 8, 64)]
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=1e-6)


def test_training_mode_dropout_is_identity():
    net = tiny_net(1, 9).train()
    image = image_of(1, 12, 12)
    a = segment(net, image)
    ref = reference_probability(net, image, all_pixels(12, 12), 9).reshape(12, 12)
    np.testing.assert_allclose(a, ref, atol=1e-5)


def test_lai2d_geometry_matches():
    from fastseg import models

    fastseg.seed(0)
    net = models.lai2d(patch_size=24, hidden=8)
    image = image_of(1, 30, 26)
    prob = segment(net, image, tile=8)
    coords = np.array([[0, 0], [29, 25], [15, 13], [0, 25], [29, 0]])
    ref = reference_probability(net, image, coords, 24)
    np.testing.assert_allclose(prob[coords[:, 0], coords[:, 1]], ref, atol=1e-5)


@pytest.mark.parametrize("image,fov,match", [
    (np.full((1, 12, 12), np.nan, np.float32), None, "NaN"),
    (np.zeros((1, 1, 12, 12), np.float32), None, "expected"),
    (np.zeros((3, 12, 12), np.float32), None, "channel"),
    (np.zeros((1, 12, 12), np.float32), np.ones((12, 11), bool), "fov"),
    (np.zeros((1, 0, 12), np.float32), None, "non-empty"),
])
def test_bad_inputs_are_clear_value_errors(image, fov, match):
    with pytest.raises(ValueError, match=match):
        segment(tiny_net(1, 9), image, fov=fov)


def test_bad_arguments_and_networks():
    image = image_of(1, 12, 12)
    with pytest.raises(ValueError, match="tile"):
        segment(tiny_net(1, 9), image, tile=0)
    with pytest.raises(ValueError, match="patch_size"):
        segment(tiny_net(1, 9), image, patch_size=10)  # final map 6x6, Linear wants 5x5
    padded = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 81, 2))
    with pytest.raises(ValueError, match="padding"):
        segment(padded, image, patch_size=9)
    with pytest.raises(TypeError, match="model"):
        segment(object(), image, patch_size=9)
    from fastseg import models

    whole = models.seo_whole_image(image_size=(16, 16), conv_channels=(2,), hidden=(4,))
    with pytest.raises(ValueError, match="whole-image"):
        segment(whole, image, patch_size=16)
    tri = models.lai_triplanar(patch_size=12, hidden=4)
    with pytest.raises(ValueError, match="smaller than the triplanar patch"):
        segment(tri, image, patch_size=12)  # a tri-planar network segments volumes
    with pytest.raises(ValueError, match=r"segments \(D, H, W\) volumes"):
        segment(tri, image[0], patch_size=12)
    one_class = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 49, 1))
    with pytest.raises(ValueError, match="2 classes"):
        segment(one_class, image, patch_size=9)


