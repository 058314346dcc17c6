"""3-D metrics: overlap, relative volume difference, HD95 and ASSD in mm, against cases
computed by hand and a brute-force reference."""
import math

import numpy as np
import pytest

from fastseg import metrics
from fastseg.surface_distance import VOLUME_METRICS, surface, surface_distances


def _cube(shape, lo, side):
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(a, a + s) for a, s in zip(lo, side, strict=True))] = True
    return m


def test_single_voxels_with_anisotropic_spacing():
    a = np.zeros((2, 2, 5), dtype=bool)
    b = a.copy()
    a[0, 0, 0] = b[0, 0, 3] = True
    res = metrics.evaluate(a.astype(float), b, spacing=(1.0, 1.0, 2.0))
    # 3 voxels apart along axis 2, 2 mm each
    assert res["hd95"] == pytest.approx(6.0) and res["assd"] == pytest.approx(6.0)
    assert res["dice"] == 0.0 and res["rvd"] == 0.0


def test_two_cubes_apart_along_a_fine_axis():
    # 2x2x2 cubes (every voxel on the surface) 3 voxels apart along axis 2 (0.5 mm):
    # each cube's near layer is 2 steps (1.0 mm) from the other, its far layer 3 (1.5 mm).
    a = _cube((2, 2, 5), (0, 0, 0), (2, 2, 2))
    b = _cube((2, 2, 5), (0, 0, 3), (2, 2, 2))
    res = metrics.evaluate(a.astype(float), b, spacing=(1.0, 1.0, 0.5))
    assert res["assd"] == pytest.approx((4 * 1.0 + 4 * 1.5) * 2 / 16)
    assert res["hd95"] == pytest.approx(1.5)


def test_shifted_cube_isotropic():
    # 4-cubes, one shifted by a voxel along axis 0. By hand: of the 56 surface voxels
    # of each, 36 lie on the other's surface and 20 are 1 voxel from it.
    truth = _cube((6, 6, 6), (0, 0, 0), (4, 4, 4))
    pred = _cube((6, 6, 6), (1, 0, 0), (4, 4, 4))
    res = metrics.evaluate(pred.astype(np.float32), truth)
    assert res["dice"] == pytest.approx(2 * 48 / 128)
    assert res["iou"] == pytest.approx(48 / 80)
    assert res["sensitivity"] == pytest.approx(0.75) and res["precision"] == pytest.approx(0.75)
    assert res["rvd"] == 0.0
    assert res["assd"] == pytest.approx(40 / 112)
    assert res["hd95"] == pytest.approx(1.0)


def test_shifted_cube_anisotropic():
    # The same cubes with 2 mm along the shift: the 16 voxels of the leading face are
    # 2 mm off, and 4 interior-column voxels reach the other surface sideways in 1 mm.
    truth = _cube((6, 6, 6), (0, 0, 0), (4, 4, 4))
    pred = _cube((6, 6, 6), (1, 0, 0), (4, 4, 4))
    res = metrics.evaluate(pred.astype(np.float32), truth, spacing=(2.0, 1.0, 1.0))
    assert res["assd"] == pytest.approx(2 * (16 * 2 + 4 * 1) / 112)
    assert res["hd95"] == pytest.approx(2.0)
    # and the same shift along a 1 mm axis gives the isotropic answer
    pred_y = _cube((6, 6, 6), (0, 1, 0), (4, 4, 4))
    res_y = metrics.evaluate(pred_y.astype(np.float32), truth, spacing=(2.0, 1.0, 1.0))
    assert res_y["hd95"] == pytest.approx(1.0)


def test_relative_volume_difference_is_signed():
    truth = _cube((8, 8, 8), (1, 1, 1), (4, 4, 4))
    bigger = _cube((8, 8, 8), (1, 1, 1), (4, 4, 6))
    assert metrics.evaluate(bigger.astype(float), truth)["rvd"] == pytest.approx(0.5)
    assert metrics.evaluate(truth.astype(float), bigger)["rvd"] == pytest.approx(-1 / 3)


def test_empty_prediction():
    truth = _cube((6, 6, 6), (1, 1, 1), (3, 3, 3))
    with pytest.warns(RuntimeWarning, match="hd95, assd"):
        res = metrics.evaluate(np.zeros((6, 6, 6)), truth, spacing=(1, 1, 3))
    assert res["dice"] == 0.0 and res["sensitivity"] == 0.0 and res["rvd"] == -1.0
    assert math.isnan(res["hd95"]) and math.isnan(res["assd"]) and math.isnan(res["precision"])


def test_both_empty_agree_perfectly():
    with pytest.warns(RuntimeWarning, match="rvd"):
        res = metrics.evaluate(np.zeros((4, 4, 4)), np.zeros((4, 4, 4), dtype=bool))
    assert res["dice"] == 1.0 and res["hd95"] == 0.0 and res["assd"] == 0.0
    assert math.isnan(res["rvd"])


def _brute_force(pred, truth, spacing):
    sp = np.argwhere(surface(pred)) * spacing
    st = np.argwhere(surface(truth)) * spacing
    d = np.sqrt(((sp[:, None, :] - st[None, :, :]) ** 2).sum(-1))
    return d.min(axis=1), d.min(axis=0)


def test_surface_distances_match_all_pairs_on_random_blobs():
    rng = np.random.default_rng(7)
    spacing = np.array([0.7, 1.3, 2.5])
    for _ in range(3):
        pred = rng.random((9, 8, 7)) < 0.3
        truth = rng.random((9, 8, 7)) < 0.2
        got = surface_distances(pred, truth, spacing)
        want = _brute_force(pred, truth, spacing)
        np.testing.assert_allclose(np.sort(got[0]), np.sort(want[0]), rtol=1e-12)
        np.testing.assert_allclose(np.sort(got[1]), np.sort(want[1]), rtol=1e-12)
        res = metrics.evaluate(pred.astype(float), truth, spacing=spacing)
        allp = np.concatenate(want)
        assert res["assd"] == pytest.approx(allp.mean())
        assert res["hd95"] == pytest.approx(max(np.percentile(want[0], 95),
                                                np.percentile(want[1], 95)))


def test_surface_is_the_voxels_with_an_outside_face_neighbour():
    m = _cube((5, 5, 5), (0, 1, 1), (3, 3, 3))
    s = surface(m)
    # the 3-cube's only interior voxel is its centre; voxels on the array edge count
    assert s.sum() == 26 and not s[1, 2, 2] and s[0, 2, 2]


def test_2d_behaviour_is_unchanged_and_spacing_adds_surface_metrics():
    rng = np.random.default_rng(0)
    prob = rng.random((12, 10))
    mask = rng.random((12, 10)) < 0.4
    plain = metrics.evaluate(prob, mask)
    assert tuple(plain) == metrics.METRICS
    with_spacing = metrics.evaluate(prob, mask, spacing=(0.5, 0.5))
    assert tuple(with_spacing) == metrics.METRICS + VOLUME_METRICS
    assert all(with_spacing[k] == plain[k] for k in metrics.METRICS)


def test_fov_cuts_both_masks_before_surface_distances():
    truth = _cube((6, 6, 10), (1, 1, 1), (3, 3, 3))
    pred = truth | _cube((6, 6, 10), (1, 1, 7), (3, 3, 2))  # a far false positive
    fov = np.ones(truth.shape, dtype=bool)
    fov[:, :, 6:] = False
    assert metrics.evaluate(pred.astype(float), truth)["hd95"] > 2
    res = metrics.evaluate(pred.astype(float), truth, fov=fov)
    assert res["hd95"] == 0.0 and res["dice"] == 1.0


def test_dataset_mean_and_table_carry_the_volume_metrics():
    truth = _cube((6, 6, 6), (0, 0, 0), (4, 4, 4))
    pred = _cube((6, 6, 6), (1, 0, 0), (4, 4, 4))
    rows, mean = metrics.evaluate_dataset([pred.astype(float)] * 2, [truth] * 2,
                                          spacings=[(1, 1, 1), (2, 1, 1)])
    assert mean["hd95"] == pytest.approx(1.5)
    table = metrics.format_table(rows, mean)
    assert "hd95" in table.splitlines()[0] and "assd" in table.splitlines()[0]


def test_bad_spacing_is_named():
    m = _cube((4, 4, 4), (1, 1, 1), (2, 2, 2))
    with pytest.raises(ValueError, match=r"spacing: expected 3 positive finite numbers"):
        metrics.evaluate(m.astype(float), m, spacing=(1, 1))
    with pytest.raises(ValueError, match="spacing"):
        metrics.evaluate(m.astype(float), m, spacing=(1, 0, 1))
    with pytest.raises(ValueError, match="spacing"):
        metrics.evaluate(m.astype(float), m, spacing=(1, np.nan, 1))
    with pytest.raises(TypeError, match="spacing"):
        metrics.evaluate(m.astype(float), m, spacing="abc")
