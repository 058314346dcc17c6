"""Pictures: colours of overlays, PNG/GIF files (atomic), curves with and without matplotlib."""
import os

import numpy as np
import pytest
from PIL import Image

import fastseg._row_blocks
from fastseg import viz


def test_overlay_comparison_colours():
    image = np.zeros((2, 2, 3), np.uint8)
    pred = np.array([[1, 1], [0, 0]], bool)
    truth = np.array([[1, 0], [1, 0]], bool)
    out = viz.overlay_comparison(image, pred, truth, alpha=1.0)
    assert tuple(out[0, 0]) == viz.TP_COLOR  # true positive: green
    assert tuple(out[0, 1]) == viz.FP_COLOR  # false positive: red
    assert tuple(out[1, 0]) == viz.FN_COLOR  # false negative: blue
    assert tuple(out[1, 1]) == (0, 0, 0)     # true negative: the image
    fov = np.array([[1, 0], [0, 0]], bool)
    out = viz.overlay_comparison(image, pred, truth, fov=fov, alpha=1.0)
    assert tuple(out[0, 1]) == (0, 0, 0)     # outside the FOV: not coloured


def test_pictures_by_blocks_of_rows_equal_the_whole_image_formulas(monkeypatch):
    monkeypatch.setattr(fastseg._row_blocks, "BLOCK_BYTES", 100)  # a few rows per block
    rng = np.random.default_rng(5)
    prob = rng.random((23, 17)) * 1.4 - 0.2
    prob[3, 4] = np.nan
    p = np.asarray(prob, np.float32)
    np.testing.assert_array_equal(viz.probability_image(prob),
                                  (np.clip(np.nan_to_num(p), 0, 1) * 255 + 0.5).astype(np.uint8))
    mask = rng.random((23, 17)) < 0.4
    for image in (rng.integers(0, 256, (23, 17, 3)).astype(np.uint8),
                  rng.integers(0, 256, (23, 17)).astype(np.uint8)):
        before = image.copy()
        whole = viz.to_rgb(image).astype(np.float32)
        whole[mask] = 0.4 * whole[mask] + 0.6 * np.asarray(viz.TP_COLOR, np.float32)
        np.testing.assert_array_equal(viz.overlay_mask(image, mask),
                                      (whole + 0.5).astype(np.uint8))
        np.testing.assert_array_equal(image, before)


def test_to_rgb_layouts_and_pictures():
    assert viz.to_rgb(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert viz.to_rgb(np.random.default_rng(0).random((1, 4, 5))).shape == (4, 5, 3)
    f = viz.to_rgb(np.linspace(-3, 3, 60).reshape(3, 4, 5).astype(np.float32))
    assert f.dtype == np.uint8 and f.shape == (4, 5, 3)
    assert viz.mask_image(np.eye(3, dtype=bool)).max() == 255
    np.testing.assert_array_equal(viz.probability_image(np.array([[0.0, 1.0, 2.0]])),
                                  [[0, 255, 255]])
    half = viz.overlay_mask(np.zeros((2, 2), np.uint8), np.eye(2, dtype=bool), alpha=0.5)
    assert tuple(half[0, 0]) == (0, 100, 0) and tuple(half[0, 1]) == (0, 0, 0)
    with pytest.raises(ValueError, match="image"):
        viz.to_rgb(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="pred"):
        viz.overlay_comparison(np.zeros((2, 2)), np.zeros((3, 3)), np.zeros((2, 2)))


def test_save_image_is_atomic_and_readable(tmp_path):
    path = tmp_path / "m.png"
    viz.save_image(path, viz.mask_image(np.eye(4, dtype=bool)))
    np.testing.assert_array_equal(np.asarray(Image.open(path)) > 0, np.eye(4, dtype=bool))
    assert os.listdir(tmp_path) == ["m.png"]  # no temporary file left behind
    with pytest.raises(ValueError, match="format"):
        viz.save_image(tmp_path / "m.xyz", np.zeros((2, 2), np.uint8))
    assert sorted(os.listdir(tmp_path)) == ["m.png"]


def test_training_gif(tmp_path):
    image = (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)
    truth = np.zeros((20, 24), bool)
    truth[5:8] = True
    frames = []
    for epoch in (1, 2):
        prob = np.random.default_rng(epoch).random((20, 24))
        frames += viz.training_frames(image, truth, prob, epoch=epoch)
    assert len(frames) == 10
    viz.save_gif(tmp_path / "t.gif", frames, duration_ms=100)
    with Image.open(tmp_path / "t.gif") as gif:
        assert gif.n_frames == 10 and gif.width >= 160


@pytest.mark.parametrize("use_matplotlib", [False, None])
def test_curves_with_and_without_matplotlib(tmp_path, use_matplotlib):
    path = tmp_path / "c.png"
    viz.plot_curves(path, {"loss": [1.0, 0.5, float("nan"), 0.2], "dice": [0.1, 0.6]},
                    use_matplotlib=use_matplotlib)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 100
    with pytest.raises(ValueError, match="nothing"):
        viz.plot_curves(path, {"loss": []})


def test_curves_fall_back_to_pillow_without_matplotlib(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    viz.plot_curves(tmp_path / "c.png", {"loss": [3, 2, 1]})
    assert (tmp_path / "c.png").stat().st_size > 0


def _green_rows_and_columns(picture, caption_rows=18):
    """Rows and columns (below the caption strip) where a plane picture is painted green."""
    body = picture[caption_rows:].astype(int)
    green = (body[..., 1] > body[..., 0] + 60) & (body[..., 1] > body[..., 2] + 60)
    rows, cols = np.nonzero(green)
    return rows, cols, body.shape[:2]


def test_plane_pictures_orientation_aspect_and_colours():
    """RAS+ volume: anterior (high axis 1) up in the axial plane, superior (high axis 2) up in
    the coronal and sagittal planes; voxels drawn at their physical size."""
    vol = np.linspace(0, 1, 8 * 10 * 12, dtype=np.float32).reshape(8, 10, 12)
    mask = np.zeros(vol.shape, bool)
    mask[4, 8, 6] = True  # the central axial and sagittal planes; anterior
    mask[4, 5, 10] = True  # the central coronal and sagittal planes; superior
    pics = viz.plane_pictures(vol, mask, spacing=(1.0, 1.0, 2.0), min_side=40)
    assert list(pics) == list(viz.PLANE_NAMES)
    rows, cols, (h, w) = _green_rows_and_columns(pics["axial"])
    assert (h, w) == (50, 40)  # 10 x 8 voxels of 1 mm, enlarged 5x to a 40-pixel side
    assert rows.max() < h / 2 and cols.min() >= w / 2  # anterior up; right of centre
    rows, cols, (h, w) = _green_rows_and_columns(pics["coronal"])
    assert (h, w) == (120, 40)  # 12 voxels of 2 mm tall, 8 of 1 mm wide, enlarged 5x
    assert rows.max() < h / 3  # superior up
    rows, cols, (h, w) = _green_rows_and_columns(pics["sagittal"])
    assert (h, w) == (96, 40)  # 12 voxels of 2 mm tall, 10 of 1 mm wide, enlarged 4x
    top = rows < h / 3  # the superior voxel; the other sits mid-height, anterior to it
    assert top.any() and (~top).any() and cols[top].max() < cols[~top].min()
    truth = np.zeros_like(mask)
    with_truth = viz.plane_pictures(vol, mask, truth, min_side=40)["axial"]
    body = with_truth[18:].astype(int)
    assert (body[..., 0] > body[..., 1] + 60).any()  # predicted, not true: red
    strip = viz.central_planes(vol, mask, caption="x")
    assert strip.ndim == 3 and strip.shape[1] > sum(p.shape[1] for p in
                                                    viz.plane_pictures(vol, mask).values())
    # A volume cut from a scan at `origin` is captioned with the scan's plane indices:
    # only the axial plane (normal to axis 2) moves its number when axis 2's origin does
    plain = viz.plane_pictures(vol, mask, min_side=40)
    moved = viz.plane_pictures(vol, mask, min_side=40, origin=(0, 0, 30))
    assert not np.array_equal(plain["axial"], moved["axial"])
    assert plain["axial"].shape == moved["axial"].shape
    for name in ("coronal", "sagittal"):
        np.testing.assert_array_equal(plain[name], moved[name])
    with pytest.raises(ValueError, match="pred"):
        viz.plane_pictures(vol, mask[:-1])
    with pytest.raises(ValueError, match="volume"):
        viz.plane_pictures(vol[0], mask[0])


def test_hippocampus_pictures_are_the_same_whatever_the_axis_order():
    """Planes shown in RAS+ order: a scan stored in another axis order gives the same
    pictures; each side is zoomed on its label, a side without one shows the whole planes."""
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(0)
    scan = rng.random((40, 36, 30)).astype(np.float32)
    labels = np.zeros(scan.shape, np.uint8)
    labels[8:14, 15:22, 10:16] = 1
    affine = np.diag([1.0, 1.2, 0.9, 1.0])
    ras = viz.hippocampus_pictures(scan, labels, affine)
    ornt = nib.orientations.axcodes2ornt(("P", "I", "L"))
    other = nib.orientations.ornt_transform(nib.orientations.io_orientation(affine), ornt)
    moved = [np.ascontiguousarray(nib.orientations.apply_orientation(a, other))
             for a in (scan, labels)]
    moved_affine = affine @ nib.orientations.inv_ornt_aff(other, scan.shape)
    pil = viz.hippocampus_pictures(*moved, moved_affine)
    for side in ("left", "right"):
        np.testing.assert_array_equal(pil[side], ras[side])
    small = viz.hippocampus_pictures(scan, labels, affine, min_side=1)  # no enlarging
    assert small["left"].shape[1] < small["right"].shape[1]  # zoomed; the missing side whole
    green = np.all(ras["left"] == viz.TP_COLOR, axis=-1)
    assert green.any() and not np.all(ras["right"] == viz.TP_COLOR, axis=-1).any()
