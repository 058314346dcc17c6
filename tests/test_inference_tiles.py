"""fastseg._inference.tiles: a 2-D input's map tile by tile: the tiles computed (only those
with a FOV pixel), bounded memory on a large image, the Handover let go once padded."""
import tracemalloc

import numpy as np
from _segment_helpers import image_of, reference_probability, tiny_net

from fastseg import segment
from fastseg._inference import fcn
from fastseg._inference import tiles as tiles_module


def test_fov_skips_tiles_and_zeroes_outside(monkeypatch):
    net = tiny_net(1, 9)
    image = image_of(1, 40, 40)
    fov = np.zeros((40, 40), bool)
    fov[3:12, 5:15] = True  # inside the tiles (0,0) and (0,10) of a 10-pixel grid
    calls = []
    real = tiles_module.tiles

    def counting(*args):  # the tiles computed, as the tile loop takes them
        for corner in real(*args):
            calls.append(corner[:2])
            yield corner

    monkeypatch.setattr(tiles_module, "tiles", counting)
    prob = segment(net, image, fov=fov, tile=10)
    assert sorted(calls) == [(0, 0), (0, 10), (10, 0), (10, 10)]
    assert (prob[~fov] == 0).all()
    ref = reference_probability(net, image, np.argwhere(fov), 9)
    np.testing.assert_allclose(prob[fov], ref, atol=1e-5)
    assert not segment(net, image, fov=np.zeros((40, 40), bool)).any()


def test_memory_stays_bounded_on_a_large_image():
    # FC-as-convolution im2col over the whole image would be 200 x 1024**2 floats
    # (800 MiB) and the first feature map 4 x 1024**2 floats (16 MiB); tiles keep
    # the peak near the few full-size planes (input, padded input, output).
    net = tiny_net(1, 9, hidden=4)
    image = image_of(1, 1024, 1024)
    for tile in (None, 64):
        tracemalloc.start()
        try:
            prob = segment(net, image, tile=tile, progress=False)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert prob.shape == (1024, 1024)
        full_intermediate = 4 * 5 * 5 * 5 * 1024 * 1024  # im2col of the FC layer, bytes
        limit = 48 * 2**20 if tile == 64 else full_intermediate // 4
        assert peak < limit, (tile, peak / 2**20)
    coords = np.array([[0, 0], [1023, 1023], [511, 700]])
    ref = reference_probability(net, image, coords, 9)
    np.testing.assert_allclose(prob[coords[:, 0], coords[:, 1]], ref, atol=1e-5)


def test_fov_cases_on_the_fft_path(monkeypatch):
    net = tiny_net(1, 9)
    image = image_of(1, 40, 40)
    fov = np.zeros((40, 40), bool)
    fov[3:12, 5:15] = True
    calls = []
    real = tiles_module.tiles

    def counting(*args):  # the tiles computed, as the tile loop takes them
        for corner in real(*args):
            calls.append(corner[:2])
            yield corner

    monkeypatch.setattr(tiles_module, "tiles", counting)
    prob = segment(net, image, fov=fov, tile=10, method="fft")
    assert sorted(calls) == [(0, 0), (0, 10), (10, 0), (10, 10)]
    assert (prob[~fov] == 0).all()
    np.testing.assert_allclose(prob[fov], reference_probability(net, image, np.argwhere(fov), 9),
                               atol=1e-5)
    monkeypatch.undo()
    assert not segment(net, image, fov=np.zeros((40, 40), bool), method="fft").any()
    one = np.zeros((40, 40), bool)
    one[39, 0] = True  # a corner pixel only
    got = segment(net, image, fov=one, method="fft")
    assert np.count_nonzero(got) == 1
    assert abs(got[39, 0] - reference_probability(net, image, [[39, 0]], 9)[0]) < 1e-5
    nonbool = np.where(fov, 7, 0)  # any non-zero is inside
    np.testing.assert_array_equal(segment(net, image, fov=nonbool, method="fft"),
                                  segment(net, image, fov=fov, method="fft"))


def test_handover_gives_its_array_once():
    a = np.ones((1, 3, 3), np.float32)
    h = tiles_module.Handover(a)
    assert h.take() is a
    assert h.take() is None  # the holder keeps no reference: the caller's was the last


def _covered(h, w, cut):
    seen = np.zeros((h, w), int)
    for y0, x0, th, tw in cut:
        seen[y0:y0 + th, x0:x0 + tw] += 1
    return seen


def test_tiles_cover_the_image_once_and_skip_empty_ones():
    cut = list(tiles_module.tiles(25, 17, 8, None))
    assert [c[:2] for c in cut] == [(y, x) for y in (0, 8, 16, 24) for x in (0, 8, 16)]
    assert (_covered(25, 17, cut) == 1).all()
    fov = np.zeros((25, 17), bool)
    fov[24, 16] = True  # the last pixel only: the last, clipped tile
    assert list(tiles_module.tiles(25, 17, 8, fov)) == [(24, 16, 1, 1)]


def test_tiles_cut_the_ragged_columns_into_whole_units():
    # 584 x 565 at 96 with 16-pixel units: 5 x 96, then 80 and 5 instead of 85
    cut = list(tiles_module.tiles(584, 565, 96, None, unit=16))
    assert sorted({tw for *_, tw in cut}) == [5, 80, 96]
    assert sorted({th for _, _, th, _ in cut}) == [8, 96]
    assert (_covered(584, 565, cut) == 1).all()
    # a remainder of whole units, or below one unit, stays one tile
    for w, widths in ((96 * 2 + 32, [32, 96]), (96 + 7, [7, 96]), (96 * 3, [96])):
        assert sorted({tw for *_, tw in tiles_module.tiles(10, w, 96, None, unit=16)}) == widths
    from fastseg._inference import cost
    classes = dict(cost._tile_classes((584, 565), 96, 16))
    assert classes == {(96, 96): 30, (96, 80): 6, (96, 5): 6, (8, 96): 5, (8, 80): 1,
                       (8, 5): 1}


def test_direct_schedules_cut_columns_into_in_place_widths():
    from fastseg import models
    from fastseg._inference import cost
    dense = fcn.plan(models.lai2d(patch_size=24), 24)
    assert cost.schedule(dense, (584, 565), "direct", backend="c").unit == 16
    assert cost.schedule(dense, (584, 565), "direct", backend="numpy").unit is None
    assert cost.schedule(dense, (584, 565), "fft", backend="c").unit is None


def test_image_probability_equals_the_classifier_on_tiles_of_any_size():
    net = tiny_net(2, 9, pool=True)
    image = image_of(2, 19, 23)
    dense = fcn.plan(net, 9)
    coords = np.array([[0, 0], [18, 22], [9, 11], [0, 22], [18, 0]])
    want = reference_probability(net, image, coords, 9)
    for tile in (2, 5, 7, 64):
        got = tiles_module.image_probability(dense, tiles_module.Handover(image.copy()), None,
                                             tile, "direct", False)
        np.testing.assert_allclose(got[coords[:, 0], coords[:, 1]], want, atol=1e-5)
