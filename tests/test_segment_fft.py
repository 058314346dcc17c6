"""segment(method="fft") against the direct path and the patch classifier: awkward
sizes, pooling, channels, every FOV case; the method choice; the plan's records."""
import tracemalloc

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
from fastseg import models, segment

CASES = [  # (channels, pool, strided, patch, tile, (H, W))
    (1, False, False, 9, None, (23, 31)),    # prime sizes
    (1, False, False, 9, 5, (17, 13)),
    (3, False, False, 10, 7, (17, 13)),      # multi-channel input
    (1, True, False, 11, 6, (21, 19)),       # pooling: shift-and-stitch
    (3, True, False, 12, None, (29, 37)),
    (1, False, True, 11, 5, (19, 14)),       # a strided conv (it stays direct)
    (1, False, False, 9, None, (5, 4)),      # smaller than the patch and than a tile
    (1, False, False, 9, None, (1, 23)),     # one-pixel-high strip
    (2, True, False, 11, None, (29, 1)),     # one-pixel-wide strip, pooling
]


@pytest.mark.parametrize("c,pool,strided,patch,tile,hw", CASES)
def test_fft_equals_direct_and_patch_classifier(c, pool, strided, patch, tile, hw):
    net = tiny_net(c, patch, pool, strided=strided)
    image = image_of(c, *hw, seed=sum(hw))
    direct = segment(net, image, patch_size=patch, tile=tile, method="direct")
    fft = segment(net, image, patch_size=patch, tile=tile, method="fft")
    assert fft.shape == hw and fft.dtype == np.float32
    np.testing.assert_allclose(fft, direct, atol=1e-5, rtol=0)
    ref = reference_probability(net, image, all_pixels(*hw), patch).reshape(hw)
    np.testing.assert_allclose(fft, ref, atol=1e-5, rtol=0)
    assert fft.std() > 0.01 or min(hw) == 1


def test_lai2d_fft_matches_direct_to_1e4():
    fastseg.seed(0)
    net = models.lai2d().eval()
    image = image_of(1, 45, 38, seed=5)
    direct = segment(net, image, method="direct")
    for method in ("fft", "auto"):
        got = segment(net, image, method=method)
        assert np.abs(got - direct).max() <= 1e-4
    assert direct.std() > 1e-3


def test_memory_stays_bounded_with_fft():
    net = tiny_net(1, 9, hidden=4)
    image = image_of(1, 1024, 1024)
    tracemalloc.start()
    try:
        prob = segment(net, image, method="fft", tile=128, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Input, padded input and output planes (12 MiB) and one 128-pixel tile's work.
    assert peak < 40 * 2**20, peak / 2**20
    coords = np.array([[0, 0], [1023, 1023], [511, 700]])
    np.testing.assert_allclose(prob[coords[:, 0], coords[:, 1]],
                               reference_probability(net, image, coords, 9), atol=1e-5)


