"""Augment: scanner differences imitated per patch, for the four cutter kinds."""
import dataclasses
import json

import numpy as np
import pytest

from fastseg.data import Augment, make_cutter
from fastseg.data.augment import (
    SHARPNESS_SIGMA,
    _bias_field,
    _cut_transformed,
    _matrices,
    _offsets,
    _trilinear_mirror,
)

KINDS = [("2d", {"axis": 1}), ("stacked2d", {"axis": 2, "slices": 3}), ("triplanar", {}),
         ("3d", {})]


def _only(**options):
    """An Augment with only `options` on."""
    return dataclasses.replace(Augment.off(), **options)


ONE_EACH = {"rotate": _only(rotate=10), "scale": _only(scale=0.1), "bias": _only(bias=0.3),
            "gamma": _only(gamma=0.3), "noise": _only(noise=0.1), "sharpness": _only(sharpness=1)}


def _volume(shape=(20, 22, 18), seed=0):
    """A smooth volume with structure (no patch is constant) and a zero background."""
    rng = np.random.default_rng(seed)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    v = np.sin(idx @ np.array([0.3, 0.5, 0.2])) + 0.02 * rng.standard_normal(shape)
    v += (idx @ np.array([0.05, -0.03, 0.04]))
    v[:2] = v.min() - 1  # a dark band, as air
    return v.astype(np.float32)


def _coords(shape, n=12, seed=1):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(s, size=n) for s in shape], axis=1)


def _arrays(x):
    return x if isinstance(x, list) else [x]


@pytest.mark.parametrize("kind, options", KINDS)
def test_everything_off_is_the_cutter_bit_for_bit(kind, options):
    cutter = make_cutter(kind, 7, **options)
    volume = _volume()
    padded = cutter.pad(volume)
    coords = _coords(volume.shape)
    want = cutter.cut(padded, coords)
    got = Augment.off().cut(cutter, padded, coords, np.random.default_rng(0), zero=-1.0)
    assert not Augment.off().enabled
    for g, w in zip(_arrays(got), _arrays(want), strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
    got = Augment.off().apply_intensity(cutter, want, np.random.default_rng(0))
    for g, w in zip(_arrays(got), _arrays(want), strict=True):
        np.testing.assert_array_equal(g, w)
        assert g is not w


@pytest.mark.parametrize("kind, options", KINDS)
@pytest.mark.parametrize("transform", sorted(ONE_EACH))
def test_each_transform_on_changes_the_patches_keeping_layout(kind, options, transform):
    augment = ONE_EACH[transform]
    cutter = make_cutter(kind, 7, **options)
    volume = _volume()
    padded = cutter.pad(volume)
    coords = _coords(volume.shape)
    plain = cutter.cut(padded, coords)
    detail = cutter.pad(Augment.detail(volume))
    got = augment.cut(cutter, padded, coords, np.random.default_rng(3), zero=float(volume.min()),
                      detail=detail)
    assert isinstance(got, list) == isinstance(plain, list)
    changed = 0
    for g, p in zip(_arrays(got), _arrays(plain), strict=True):
        assert g.shape == p.shape and g.dtype == np.float32 and g.flags.c_contiguous
        assert np.isfinite(g).all()
        changed += int((g != p).any(axis=tuple(range(1, g.ndim))).sum())
    assert changed >= len(coords)  # every patch changed somewhere
    # the same seed, the same batch
    again = augment.cut(cutter, padded, coords, np.random.default_rng(3),
                        zero=float(volume.min()), detail=detail)
    for g, a in zip(_arrays(got), _arrays(again), strict=True):
        np.testing.assert_array_equal(g, a)
    other = augment.cut(cutter, padded, coords, np.random.default_rng(4),
                        zero=float(volume.min()), detail=detail)
    assert any(not np.array_equal(g, o) for g, o in zip(_arrays(got), _arrays(other),
                                                        strict=True))


@pytest.mark.parametrize("kind, options", KINDS)
def test_intensity_transforms_on_cut_patches_equal_those_of_cut(kind, options):
    augment = Augment(sharpness=0, rotate=0, scale=0, bias=0.3, gamma=0.3, noise=0.1)
    cutter = make_cutter(kind, 5, **options)
    volume = _volume()
    padded = cutter.pad(volume)
    coords = _coords(volume.shape)
    plain = cutter.cut(padded, coords)
    a = augment.cut(cutter, padded, coords, np.random.default_rng(9), zero=0.5)
    b = augment.apply_intensity(cutter, plain, np.random.default_rng(9), zero=0.5)
    for x, y in zip(_arrays(a), _arrays(b), strict=True):
        np.testing.assert_array_equal(x, y)
    # switching one transform off leaves the others' draws as they were
    rot = Augment(sharpness=0, rotate=10, scale=0.1, bias=0, gamma=0, noise=0)
    rot_bias = Augment(sharpness=0, rotate=10, scale=0.1, bias=0.3, gamma=0, noise=0)
    r = rot.cut(cutter, padded, coords, np.random.default_rng(2), zero=0.5)
    rb = rot_bias.cut(cutter, padded, coords, np.random.default_rng(2), zero=0.5)
    assert all(np.allclose(x, y, atol=0.5) and not np.array_equal(x, y)
               for x, y in zip(_arrays(r), _arrays(rb), strict=True))


def test_rotation_by_a_quarter_turn_is_rot90_borders_included():
    volume = _volume((9, 10, 11))
    coords = np.array([[4, 5, 5], [0, 0, 0], [8, 9, 10], [1, 8, 3]])
    quarter = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # in the plane of axes 1, 2
    mats = np.tile(quarter, (len(coords), 1, 1))
    for kind, options in (("2d", {"axis": 0}), ("stacked2d", {"axis": 0, "slices": 3}),
                          ("3d", {})):
        cutter = make_cutter(kind, 5, **options)
        padded = cutter.pad(volume)
        plain = cutter.cut(padded, coords)
        turned = _cut_transformed(cutter, (padded,), coords, mats)[0]
        # patch voxel offset (o1, o2) samples the volume at (-o2, o1): a clockwise rot90
        np.testing.assert_array_equal(turned, np.rot90(plain, -1, axes=(-2, -1)))


def test_trilinear_sampling_mirrors_the_volume_as_scipy_does_at_any_distance():
    from scipy import ndimage

    volume = _volume((7, 9, 6))
    cutter = make_cutter("3d", 5)
    padded = cutter.pad(volume)
    points = np.random.default_rng(0).uniform(-20, 30, size=(4000, 3))
    got = _trilinear_mirror([padded], cutter.pad_widths(), volume.shape, points)[0]
    want = ndimage.map_coordinates(volume, points.T, order=1, mode="mirror")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    flat = _volume((1, 9, 6))  # an axis of one voxel
    planar = make_cutter("2d", 5, axis=0)
    got = _trilinear_mirror([planar.pad(flat)], planar.pad_widths(), flat.shape, points)[0]
    want = ndimage.map_coordinates(flat, points.T, order=1, mode="mirror")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind, options", KINDS)
def test_bias_field_is_the_trilinear_cell_at_each_window_voxel(kind, options):
    cutter = make_cutter(kind, 5, **options)
    rng = np.random.default_rng(0)
    corners = rng.uniform(-1, 1, (3, 2, 2, 2))
    phase = rng.uniform(0, 1, (3, 3))
    for axes, window in cutter._windows():
        got = _bias_field(axes, window, corners, phase, 16.0)
        u = phase[:, None, :] + _offsets(axes, window)[None] / 16.0
        want = np.zeros(got.shape)
        for a, b, c in np.ndindex(2, 2, 2):
            wa = u[..., 0] if a else 1 - u[..., 0]
            wb = u[..., 1] if b else 1 - u[..., 1]
            wc = u[..., 2] if c else 1 - u[..., 2]
            want += corners[:, a, b, c, None] * wa * wb * wc
        np.testing.assert_allclose(got, np.exp(want), rtol=1e-6)


def test_scaling_keeps_the_centre_and_gamma_keeps_range_and_order():
    volume = _volume()
    cutter = make_cutter("3d", 7)
    padded = cutter.pad(volume)
    coords = _coords(volume.shape)
    plain = cutter.cut(padded, coords)
    scaled = Augment(sharpness=0, rotate=0, scale=0.2, bias=0, gamma=0, noise=0).cut(
        cutter, padded, coords, np.random.default_rng(0))
    np.testing.assert_allclose(scaled[:, 0, 3, 3, 3], plain[:, 0, 3, 3, 3], rtol=0, atol=1e-6)
    rotated = Augment(sharpness=0, rotate=30, scale=0, bias=0, gamma=0, noise=0).cut(
        cutter, padded, coords, np.random.default_rng(0))
    np.testing.assert_allclose(rotated[:, 0, 3, 3, 3], plain[:, 0, 3, 3, 3], rtol=0, atol=1e-6)
    g = Augment(sharpness=0, rotate=0, scale=0, bias=0, gamma=0.5, noise=0).cut(
        cutter, padded, coords, np.random.default_rng(0))
    flat_g, flat_p = g.reshape(len(g), -1), plain.reshape(len(plain), -1)
    np.testing.assert_allclose(flat_g.min(1), flat_p.min(1), atol=1e-6)
    np.testing.assert_allclose(flat_g.max(1), flat_p.max(1), atol=1e-5)
    for a, b in zip(flat_g, flat_p, strict=True):  # monotone: the order of values kept
        order = np.argsort(b, kind="stable")
        assert (np.diff(a[order]) >= -1e-6).all()


def test_bias_scales_about_the_zero_level():
    cutter = make_cutter("2d", 5)
    flat = np.full((6, 7, 8), -0.75, dtype=np.float32)
    padded = cutter.pad(flat)
    coords = _coords(flat.shape, n=5)
    bias = Augment(sharpness=0, rotate=0, scale=0, bias=0.5, gamma=0, noise=0)
    # a raw 0 stays 0 whatever the field: in normalised units it stays at `zero`
    np.testing.assert_array_equal(bias.cut(cutter, padded, coords, np.random.default_rng(0),
                                           zero=-0.75), -0.75)
    out = bias.cut(cutter, padded, coords, np.random.default_rng(0), zero=0.0)
    field = out / -0.75
    assert (field >= 1 / 1.5 - 1e-6).all() and (field <= 1.5 + 1e-6).all()
    assert field.std() > 0.01


def test_config_round_trips_through_json_and_bad_options_are_named():
    augment = Augment(sharpness=0, rotate=3.5, scale=0.02, bias=0.1, bias_length=48, gamma=0.25,
                      noise=0.0)
    config = json.loads(json.dumps(augment.config()))
    assert Augment.from_config(config) == augment
    assert Augment.from_config({}) == Augment()
    assert Augment.from_config({"noise": 0}).noise == 0.0
    assert Augment().enabled and Augment().geometric
    with pytest.raises(ValueError, match="config: unknown Augment option 'rotation'"):
        Augment.from_config({"rotation": 5})
    with pytest.raises(TypeError, match="config: expected a dict"):
        Augment.from_config([("rotate", 5)])
    with pytest.raises(ValueError, match=r"Augment.rotate: must lie in \[0.0, 45.0\]"):
        Augment(sharpness=0, rotate=90)
    with pytest.raises(TypeError, match="Augment.noise: expected a number"):
        Augment(noise="0.1")
    with pytest.raises(ValueError, match="Augment.gamma: must lie in"):
        Augment(gamma=float("nan"))
    cutter = make_cutter("3d", 3)
    padded = cutter.pad(_volume((6, 6, 6)))
    with pytest.raises(TypeError, match="rng: expected a numpy.random.Generator"):
        Augment().cut(cutter, padded, [[1, 1, 1]], 0)
    with pytest.raises(TypeError, match="cutter: expected a PatchCutter"):
        Augment().cut("3d", padded, [[1, 1, 1]], np.random.default_rng(0))
    with pytest.raises(ValueError, match="detail: sharpness is on, so cut needs"):
        Augment().cut(cutter, padded, [[1, 1, 1]], np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"detail: shape \(9, 9, 9\) is not the padded scan's "
                                         r"\(8, 8, 8\)"):
        Augment().cut(cutter, padded, [[1, 1, 1]], np.random.default_rng(0),
                      detail=np.zeros((9, 9, 9), np.float32))
    with pytest.raises(ValueError, match=r"Augment.sharpness: must lie in \[0.0, 1.0\]"):
        Augment(sharpness=1.5)
    with pytest.raises(ValueError, match=r"volume: expected a \(D, H, W\) scan"):
        Augment.detail(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="patches: expected 3 arrays for the triplanar kind"):
        Augment().apply_intensity(make_cutter("triplanar", 3), [np.zeros((1, 1, 3, 3))],
                                  np.random.default_rng(0))


@pytest.mark.parametrize("kind, options", KINDS)
def test_sharpness_is_the_whole_scans_unsharp_mask_cut_on_the_same_grid(kind, options):
    """Each patch is the patch of ``v + a (v - G v)`` (G the Gaussian over the whole
    scan, mirrored at its border), cut on the same rotated grid: a < 0 blurs, a > 0
    sharpens."""
    from scipy import ndimage

    augment = _only(sharpness=1, rotate=10, scale=0.1)
    cutter = make_cutter(kind, 5, **options)
    volume = _volume()
    coords = _coords(volume.shape)
    blurred = ndimage.gaussian_filter(volume.astype(np.float64), SHARPNESS_SIGMA, mode="mirror")
    got = augment.cut(cutter, cutter.pad(volume), coords, np.random.default_rng(5),
                      detail=cutter.pad(Augment.detail(volume)))
    draws = augment._draw(np.random.default_rng(5), len(coords))
    amounts, matrices = draws["sharpness"], _matrices(cutter, draws)
    assert amounts.min() < -0.2 and amounts.max() > 0.2  # both ways in this draw
    for i, a in enumerate(amounts):
        filtered = (volume + a * (volume - blurred)).astype(np.float32)
        want = _cut_transformed(cutter, [cutter.pad(filtered)], coords[i:i + 1],
                                matrices[i:i + 1])[0]
        for g, w in zip(_arrays(got), _arrays(want), strict=True):
            np.testing.assert_allclose(g[i:i + 1], w, rtol=0, atol=2e-5)


def test_sharpness_changes_the_edges_not_the_level():
    """Blurring lowers a patch's gradient and sharpening raises it, about the same mean."""
    volume = _volume((24, 24, 24))
    cutter = make_cutter("3d", 9)
    padded, detail = cutter.pad(volume), cutter.pad(Augment.detail(volume))
    coords = np.array([[12, 12, 12]] * 40)
    augment = _only(sharpness=1)
    out = augment.cut(cutter, padded, coords, np.random.default_rng(0), detail=detail)
    amounts = augment._draw(np.random.default_rng(0), len(coords))["sharpness"]
    plain = cutter.cut(padded, coords)[0, 0]
    edges = [np.abs(np.diff(p[0], axis=-1)).mean() / np.abs(np.diff(plain, axis=-1)).mean()
             for p in out]
    order = np.argsort(amounts)
    assert (np.diff(np.asarray(edges)[order]) > 0).all()  # monotone in a
    assert min(edges) < 0.8 and max(edges) > 1.15
    np.testing.assert_allclose([p.mean() for p in out], plain.mean(), atol=0.05)
