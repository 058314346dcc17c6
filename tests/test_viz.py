"""Pictures: colours of overlays, PNG/GIF files (atomic), curves with and without matplotlib."""
import os

import numpy as np
import pytest
from PIL import Image

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
