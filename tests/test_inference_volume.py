"""Dense volume segmentation equals the kind's cutter + the patch classifier at every voxel."""
import numpy as np
import pytest
from _segment_helpers import usable_backend  # noqa: F401

import fastseg
from fastseg import models, nn, segment
from fastseg.data import make_cutter

SHAPE = (9, 12, 11)


def volume(shape=SHAPE, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def reference(net, cutter, vol, coords):
    """Class-1 softmax of the classifier on the patches the cutter cuts (float64)."""
    logits = np.asarray(net.eval()(cutter(vol, coords)), np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e[:, 1] / e.sum(axis=1)


def border_and_random_voxels(shape, n=40, seed=1):
    """Every corner, the middle of every face, and random voxels."""
    corners = [[d, h, w] for d in (0, shape[0] - 1) for h in (0, shape[1] - 1)
               for w in (0, shape[2] - 1)]
    mid = [s // 2 for s in shape]
    faces = []
    for axis in range(3):
        for end in (0, shape[axis] - 1):
            v = list(mid)
            v[axis] = end
            faces.append(v)
    rand = np.random.default_rng(seed).integers(0, shape, size=(n, 3)).tolist()
    return np.array(corners + faces + rand)


def all_voxels(shape):
    return np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"),
                    -1).reshape(-1, 3)


def spread(net):
    """Bigger weights than the default init, so probabilities spread over (0, 1)."""
    for p in net.parameters():
        p.data *= 3
    return net.eval()


def tiny(kind, patch, **kw):
    fastseg.seed(11)
    small = {"conv_channels": (3, 4), "kernel_size": 3, "hidden": 6}
    if kind == "2d":
        return spread(models.lai2d(patch_size=patch, **small, **kw))
    if kind == "stacked2d":
        return spread(models.lai_stacked2d(patch_size=patch, **small, **kw))
    if kind == "triplanar":
        return spread(models.lai_triplanar(patch_size=patch, **small, **kw))
    return spread(models.lai3d(patch_size=patch, **small, **kw))


def pooled_2d(in_channels, patch):
    """conv3 -> ReLU -> maxpool2 -> conv2 (stride 2 overall shift-and-stitch in 2-D)."""
    fastseg.seed(5)
    side = ((patch - 2) // 2) - 1
    return spread(nn.Sequential(nn.Conv2d(in_channels, 3, 3), nn.ReLU(), nn.MaxPool2d(2),
                                nn.Conv2d(3, 4, 2), nn.Tanh(), nn.Flatten(),
                                nn.Linear(4 * side * side, 5), nn.Sigmoid(), nn.Linear(5, 2)))


def pooled_triplanar(patch):
    """Three towers with 2x2 pooling (each tower's plan has stride 2) and dropout."""
    fastseg.seed(6)
    side = ((patch - 2) // 2) - 1
    towers = [nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 2, 2),
                            nn.ReLU()) for _ in range(3)]
    return spread(nn.Sequential(nn.Parallel(*towers), nn.Linear(3 * 2 * side * side, 7),
                                nn.Tanh(), nn.Dropout(0.3), nn.Linear(7, 5), nn.ReLU(),
                                nn.Linear(5, 3)))


CASES = [  # (id, network builder, cutter, tile)
    ("2d-axis0", lambda: tiny("2d", 7), make_cutter("2d", 7, axis=0), None),
    ("2d-axis2-tiles", lambda: tiny("2d", 6), make_cutter("2d", 6, axis=2), 4),
    ("2d-pooled-axis1", lambda: pooled_2d(1, 8), make_cutter("2d", 8, axis=1), 3),
    ("stacked-axis1", lambda: tiny("stacked2d", 7), make_cutter("stacked2d", 7, axis=1), None),
    ("stacked-even-axis2", lambda: tiny("stacked2d", 6, in_channels=4),
     make_cutter("stacked2d", 6, axis=2, slices=4), 5),
    ("stacked-pooled-axis0", lambda: pooled_2d(3, 8), make_cutter("stacked2d", 8), None),
    ("triplanar", lambda: tiny("triplanar", 7), make_cutter("triplanar", 7), None),
    ("triplanar-blocks", lambda: tiny("triplanar", 6), make_cutter("triplanar", 6), 5),
    ("triplanar-pooled", lambda: pooled_triplanar(8), make_cutter("triplanar", 8), 6),
    ("3d-pooled", lambda: tiny("3d", 8), make_cutter("3d", 8), None),
    ("3d-pooled-blocks", lambda: tiny("3d", 8), make_cutter("3d", 8), 3),
    ("3d-nopool-odd", lambda: tiny("3d", 7, pool=1), make_cutter("3d", 7), 5),
]


@pytest.mark.parametrize("name,build,cutter,tile", CASES, ids=[c[0] for c in CASES])
def test_dense_equals_the_cutter_and_the_classifier(name, build, cutter, tile):
    net = build()
    vol = volume()
    coords = border_and_random_voxels(SHAPE)
    want = reference(net, cutter, vol, coords)
    for method in ("direct", "auto", "fft"):
        prob = segment(net, vol, cutter=cutter, tile=tile, method=method)
        assert prob.shape == SHAPE and prob.dtype == np.float32
        np.testing.assert_allclose(prob[tuple(coords.T)], want, atol=1e-4, rtol=0,
                                   err_msg=f"{name} {method}")
    assert want.std() > 0.02  # a map that varies, not a constant


@pytest.mark.parametrize("kind", ["stacked2d", "triplanar", "3d"])
def test_every_voxel_of_a_small_volume(kind):
    """All voxels (every border plane) of a volume only just larger than the patch."""
    patch = 6
    options = {"stacked2d": {"in_channels": 3}, "3d": {"pool": 1}}.get(kind, {})
    net = tiny(kind, patch, **options)
    cutter = make_cutter(kind, patch)
    shape = (6, 7, 6) if kind != "stacked2d" else (3, 6, 7)
    vol = volume(shape, seed=4)
    prob = segment(net, vol, cutter=cutter, method="direct")
    want = reference(net, cutter, vol, all_voxels(shape)).reshape(shape)
    np.testing.assert_allclose(prob, want, atol=1e-5, rtol=0)


def test_kind_inferred_for_triplanar_and_3d_networks_and_recorded_for_2d(tmp_path):
    vol = volume()
    tri, cube = tiny("triplanar", 7), tiny("3d", 8)
    np.testing.assert_array_equal(segment(tri, vol),
                                  segment(tri, vol, cutter=make_cutter("triplanar", 7)))
    np.testing.assert_array_equal(segment(cube, vol), segment(cube, vol, cutter="3d",
                                                              patch_size=8))
    flat = tiny("stacked2d", 7)
    cutter = make_cutter("stacked2d", 7, axis=2)
    want = segment(flat, vol, cutter=cutter)
    flat.cutter = cutter  # what Segmenter.fit records
    np.testing.assert_array_equal(segment(flat, vol), want)
    fastseg.save(flat, tmp_path / "m.fseg")
    back = fastseg.load(tmp_path / "m.fseg")
    assert back.cutter.config() == cutter.config()
    np.testing.assert_array_equal(segment(back, vol), want)


def test_fov_zeroes_outside_and_skips_empty_blocks():
    net = tiny("3d", 8)
    vol = volume()
    fov = np.zeros(SHAPE, bool)
    fov[2:5, 3:9, 1:4] = True
    full = segment(net, vol)
    for kind_net, cutter in ((net, None), (tiny("2d", 7), make_cutter("2d", 7, axis=1)),
                             (tiny("triplanar", 7), None)):
        full = segment(kind_net, vol, cutter=cutter)
        masked = segment(kind_net, vol, fov=fov, cutter=cutter, tile=3)
        np.testing.assert_allclose(masked[fov], full[fov], atol=1e-6)
        assert (masked[~fov] == 0).all()


def test_progress_bar_over_slices_and_blocks(capsys):
    segment(tiny("2d", 7), volume(), cutter=make_cutter("2d", 7), progress=True)
    assert "slice" in capsys.readouterr().err
    segment(tiny("3d", 8), volume(), tile=4, progress=True)
    assert "block" in capsys.readouterr().err


def test_bad_volumes_and_kinds_are_named():
    vol = volume()
    cube = tiny("3d", 8)
    with pytest.raises(ValueError, match=r"\(D, H, W\) volumes.*pick one 3-D volume"):
        segment(cube, vol[None])  # 4-D
    with pytest.raises(ValueError, match=r"\(D, H, W\) volumes"):
        segment(cube, vol[0])
    with pytest.raises(ValueError, match=r"smaller than the 3d patch along axis 0 \(5 < 8"):
        segment(cube, vol[:5])
    with pytest.raises(ValueError, match="smaller than the stacked2d patch along axis 1"):
        segment(tiny("stacked2d", 7), vol[:, :2], cutter=make_cutter("stacked2d", 7, axis=1))
    bad = vol.copy()
    bad[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match="volume: contains NaN"):
        segment(cube, bad)
    flat = tiny("2d", 7)
    with pytest.raises(ValueError, match="records no volume kind.*cutter="):
        segment(flat, vol)  # a (D, H, W) array read as (C, H, W): 9 channels
    with pytest.raises(ValueError, match="gives 3 channel.*takes 1"):
        segment(flat, vol, cutter=make_cutter("stacked2d", 7))
    with pytest.raises(ValueError, match="needs a 3-D network"):
        segment(flat, vol, cutter=make_cutter("3d", 7))
    with pytest.raises(ValueError, match="needs a tri-planar network"):
        segment(flat, vol, cutter=make_cutter("triplanar", 7))
    with pytest.raises(ValueError, match="tri-planar network segments with the triplanar"):
        segment(tiny("triplanar", 7), vol, cutter=make_cutter("2d", 7))
    with pytest.raises(ValueError, match="patch_size: 9 differs"):
        segment(cube, vol, cutter=make_cutter("3d", 8), patch_size=9)
    with pytest.raises(ValueError, match="patch_size: 10 gives a final feature map"):
        segment(cube, volume((12, 12, 12)), cutter=make_cutter("3d", 10))
    with pytest.raises(ValueError, match="needs patch_size"):
        segment(flat, vol, cutter="2d")
    with pytest.raises(TypeError, match="cutter"):
        segment(flat, vol, cutter=3)
    with pytest.raises(ValueError, match="scale"):
        segment(cube, vol, scale=2.0)
    with pytest.raises(ValueError, match="method"):
        segment(cube, vol, method="fast")
    with pytest.raises(ValueError, match="fov: expected shape"):
        segment(cube, vol, fov=np.ones((9, 12), bool))


def test_model_file_versions():
    """Version 3 keeps the cutter; files of versions 1 and 2 (no cutter) still load."""
    import tempfile

    from fastseg import io

    net = tiny("2d", 7)
    with tempfile.TemporaryDirectory() as tmp:
        for version in (1, 2):
            path = f"{tmp}/v{version}.fseg"
            io.save_arrays(path, net.state_dict(), {"architecture": io.describe(net)},
                           format=io.MODEL_FORMAT, version=version)
            back = fastseg.load(path)
            assert getattr(back, "cutter", None) is None
            np.testing.assert_array_equal(back.state_dict()["0.weight"],
                                          net.state_dict()["0.weight"])
        net.cutter = make_cutter("stacked2d", 7, axis=1, slices=5)
        fastseg.save(net, f"{tmp}/v3.fseg")
        header, _ = io.load_arrays(f"{tmp}/v3.fseg", format=io.MODEL_FORMAT, max_version=3)
        assert header["version"] == 3
        assert header["meta"]["cutter"] == {"kind": "stacked2d", "size": 7, "axis": 1,
                                            "slices": 5}
        header["meta"]["cutter"] = {"kind": "cube", "size": 7}
        io.save_arrays(f"{tmp}/bad.fseg", net.state_dict(), header["meta"],
                       format=io.MODEL_FORMAT, version=3)
        with pytest.raises(ValueError, match="cutter"):
            fastseg.load(f"{tmp}/bad.fseg")


@pytest.mark.parametrize("name,build,cutter,tile", CASES, ids=[c[0] for c in CASES])
def test_grid_map_is_the_full_map_at_every_step_th_voxel(name, build, cutter, tile):
    """grid=True computes one shift of shift-and-stitch: the full map's values at the
    voxels step * (i, j, k), and nothing else; a FOV is read on that grid."""
    from fastseg._inference.volume import UNSTRIDED_STEP, grid_step, segment_volume

    net = build()
    vol = volume((13, 12, 11))
    step = grid_step(net, cutter)
    full = segment_volume(net, vol, cutter, tile=tile, method="direct")
    grid = segment_volume(net, vol, cutter, tile=tile, method="direct", grid=True)
    assert grid.shape == tuple(-(-n // s) for n, s in zip(vol.shape, step, strict=True))
    np.testing.assert_allclose(grid, full[::step[0], ::step[1], ::step[2]], atol=1e-5, rtol=0)
    fov = np.zeros(vol.shape, bool)
    fov[4:9, 2:7, 6:] = True
    masked = segment_volume(net, vol, cutter, fov=fov, tile=tile, method="direct", grid=True)
    on_grid = fov[::step[0], ::step[1], ::step[2]]
    np.testing.assert_allclose(masked[on_grid], grid[on_grid], atol=1e-5, rtol=0)
    assert not masked[~on_grid].any()
    pooled = "pooled" in name and "nopool" not in name
    unstrided = (1, 1, 1) if name.startswith("3d") else (UNSTRIDED_STEP,) * 3
    assert step == ((2, 2, 2) if pooled else unstrided), step
