"""The four network kinds' patch cutters against direct slicing, borders included."""
import itertools

import numpy as np
import pytest

from fastseg.data import CUTTER_KINDS, make_cutter
from fastseg.data.volume_patches import Cube3D, Planar2D, Stacked2D, TriPlanar


def _reflect(i, n):
    """NumPy's "reflect" padding as an index rule: mirror about the edge voxel."""
    period = 2 * (n - 1) if n > 1 else 1
    i = np.abs(np.asarray(i)) % period
    return np.where(i >= n, period - i, i) if n > 1 else np.zeros_like(i)


def _window(volume, centre, extent):
    """The patch with `extent[a]` voxels along each axis, the voxel at index n // 2,
    read voxel by voxel from the unpadded volume."""
    idx = [_reflect(np.arange(n) - n // 2 + c, s)
           for c, n, s in zip(centre, extent, volume.shape, strict=True)]
    return volume[np.ix_(*idx)]


def _expected(cutter, volume, v):
    k = cutter.size
    if isinstance(cutter, Planar2D):
        extent = [k, k, k]
        extent[cutter.axis] = 1
        return np.squeeze(_window(volume, v, extent), axis=cutter.axis)[None]
    if isinstance(cutter, Stacked2D):
        extent = [k, k, k]
        extent[cutter.axis] = cutter.slices
        return np.moveaxis(_window(volume, v, extent), cutter.axis, 0)
    if isinstance(cutter, TriPlanar):
        out = []
        for axis in range(3):
            extent = [k, k, k]
            extent[axis] = 1
            out.append(np.squeeze(_window(volume, v, extent), axis=axis)[None])
        return out
    return _window(volume, v, [k, k, k])[None]


def _corners_and_random(shape, rng, n=12):
    corners = list(itertools.product(*[(0, s - 1) for s in shape]))
    inner = [tuple(rng.integers(0, s) for s in shape) for _ in range(n)]
    edges = [(0, shape[1] // 2, shape[2] - 2), (shape[0] - 1, 1, shape[2] // 2)]
    return np.array(corners + inner + edges, dtype=np.int64)


CUTTERS = [
    Planar2D(5, axis=0), Planar2D(4, axis=1), Planar2D(6, axis=2),
    Stacked2D(5, axis=0, slices=3), Stacked2D(4, axis=2, slices=2), Stacked2D(3, axis=1,
                                                                              slices=5),
    TriPlanar(5), TriPlanar(6),
    Cube3D(5), Cube3D(4), Cube3D(1),
]


@pytest.mark.parametrize("cutter", CUTTERS, ids=repr)
def test_cutter_matches_direct_slicing_at_borders_and_inside(cutter):
    rng = np.random.default_rng(3)
    volume = rng.standard_normal((7, 9, 8)).astype(np.float32)
    coords = _corners_and_random(volume.shape, rng)
    got = cutter(volume, coords)
    padded = cutter.pad(volume)
    again = cutter.cut(padded, coords)
    for i, v in enumerate(coords):
        want = _expected(cutter, volume, v)
        if isinstance(cutter, TriPlanar):
            assert isinstance(got, list) and len(got) == 3
            for plane in range(3):
                np.testing.assert_array_equal(got[plane][i], want[plane])
                np.testing.assert_array_equal(again[plane][i], want[plane])
        else:
            np.testing.assert_array_equal(got[i], want)
            np.testing.assert_array_equal(again[i], want)


@pytest.mark.parametrize("cutter", CUTTERS, ids=repr)
def test_cutter_output_layout(cutter):
    volume = np.zeros((7, 9, 8), dtype=np.float32)
    coords = np.array([[1, 2, 3], [6, 8, 7]])
    out = cutter(volume, coords)
    k = cutter.size
    arrays = out if isinstance(out, list) else [out]
    for a in arrays:
        assert a.dtype == np.float32 and a.flags.c_contiguous
        assert a.shape[:2] == (2, cutter.in_channels)
        assert a.shape[2:] == ((k,) * 3 if cutter.kind == "3d" else (k, k))


def test_centre_voxel_is_at_index_size_over_two():
    volume = np.arange(7 * 9 * 8, dtype=np.float32).reshape(7, 9, 8)
    v = (3, 4, 5)
    for k in (4, 5):
        assert Planar2D(k, 0)(volume, [v])[0, 0, k // 2, k // 2] == volume[v]
        assert Planar2D(k, 1)(volume, [v])[0, 0, k // 2, k // 2] == volume[v]
        cube = Cube3D(k)(volume, [v])
        assert cube[0, 0, k // 2, k // 2, k // 2] == volume[v]
        stacked = Stacked2D(k, axis=2, slices=3)(volume, [v])
        # channels are the planes w-1, w, w+1; rows/cols are axes 0 and 1
        for c, dw in enumerate((-1, 0, 1)):
            assert stacked[0, c, k // 2, k // 2] == volume[3, 4, 5 + dw]
        tri = TriPlanar(k)(volume, [v])
        assert [t[0, 0, k // 2, k // 2] for t in tri] == [volume[v]] * 3
        # the plane normal to axis 0 runs along axis 1 (rows) and axis 2 (columns)
        assert tri[0][0, 0, k // 2 + 1, k // 2] == volume[3, 5, 5]
        assert tri[0][0, 0, k // 2, k // 2 + 1] == volume[3, 4, 6]


def test_pad_widths_follow_the_2d_cutter():
    assert Planar2D(24, axis=1).pad_widths() == ((12, 11), (0, 0), (12, 11))
    assert Stacked2D(24, axis=0, slices=3).pad_widths() == ((1, 1), (12, 11), (12, 11))
    assert TriPlanar(5).pad_widths() == ((2, 2),) * 3
    assert Cube3D(4).pad(np.ones((4, 5, 6))).shape == (7, 8, 9)


@pytest.mark.parametrize("kind", sorted(CUTTER_KINDS))
def test_make_cutter_rebuilds_from_config(kind):
    options = {"2d": {"axis": 2}, "stacked2d": {"axis": 1, "slices": 5}}.get(kind, {})
    cutter = make_cutter(kind, 7, **options)
    again = make_cutter(**cutter.config())
    assert type(again) is type(cutter) and again.config() == cutter.config()
    assert cutter.config()["kind"] == kind


def test_volume_smaller_than_the_patch_is_refused():
    with pytest.raises(ValueError, match=r"smaller than the 3d patch along axis 0 \(4 < 5"):
        Cube3D(5).pad(np.zeros((4, 9, 9)))
    with pytest.raises(ValueError, match="smaller than the 2d patch along axis 2"):
        Planar2D(8, axis=0)(np.zeros((1, 9, 7)), [[0, 0, 0]])
    # 2-D patches do not span their normal axis: one slice is enough
    assert Planar2D(5, axis=0)(np.zeros((1, 5, 5)), [[0, 2, 2]]).shape == (1, 1, 5, 5)
    with pytest.raises(ValueError, match="stacked2d patch along axis 1"):
        Stacked2D(3, axis=1, slices=5).pad(np.zeros((6, 4, 6)))


def test_bad_input_is_named():
    vol = np.zeros((5, 5, 5), dtype=np.float32)
    with pytest.raises(ValueError, match=r"volume: expected a 3-D array"):
        Cube3D(3)(np.zeros((5, 5)), [[0, 0, 0]])
    with pytest.raises(ValueError, match="NaN"):
        Cube3D(3)(np.full((5, 5, 5), np.nan), [[0, 0, 0]])
    with pytest.raises(ValueError, match=r"coords out of range for shape \(5, 5, 5\) "
                                         r"\(d, h, w\) voxel indices: 1 bad"):
        Cube3D(3)(vol, [[0, 5, 0]])
    with pytest.raises(ValueError, match=r"coords must be an \(N, 3\) array of \(d, h, w\)"):
        Cube3D(3)(vol, [[0, 1]])
    with pytest.raises(TypeError, match="coords must be integers"):
        Cube3D(3)(vol, [[0.0, 1.0, 2.0]])
    with pytest.raises(TypeError, match="size: expected an int"):
        Cube3D(2.5)
    with pytest.raises(ValueError, match="size: must be >= 1"):
        Cube3D(0)
    with pytest.raises(ValueError, match="axis: must be 0, 1 or 2"):
        Planar2D(3, axis=3)
    with pytest.raises(ValueError, match="kind must be one of"):
        make_cutter("4d", 3)
    with pytest.raises(TypeError, match="make_cutter"):
        make_cutter("3d", 3, axis=0)
    with pytest.raises(ValueError, match="padded: expected the float32 3-D output of pad"):
        Cube3D(3).cut(np.zeros((7, 7, 7)), [[0, 0, 0]])
