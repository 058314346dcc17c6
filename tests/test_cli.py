"""The command line end to end on tiny data: demo, train (+ resume), segment, evaluate,
and the error paths (one line on stderr, exit status 2, no traceback)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from _segment_helpers import usable_backend  # noqa: F401
from PIL import Image

import fastseg
from fastseg.cli import main
from fastseg.data import synthetic_fundus

TINY_NET = ["--hidden", "8", "--patch-size", "12"]


def run_main(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, command):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"fastseg {command}: error: "), err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained by `fastseg train` on synthetic data."""
    if fastseg.get_backend() not in fastseg.available_backends():
        fastseg.set_backend("numpy")
    out = tmp_path_factory.mktemp("train")
    code = main(["train", "--data", "synthetic", "--images", "1", "--size", "64", "64",
                 "--epochs", "1", "--batches", "2", "--batch-size", "16", "--out", str(out),
                 *TINY_NET])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Two test images (RGB png of 64x72, greyscale jpg of 70x66) with truths and FOVs."""
    root = tmp_path_factory.mktemp("images")
    for sub in ("images", "truth", "fov"):
        (root / sub).mkdir()
    a = synthetic_fundus(1, shape=(64, 72), seed=5, split="test")[0]
    b = synthetic_fundus(1, shape=(70, 66), seed=6, split="test")[0]
    Image.fromarray(a.image).save(root / "images" / "a_test.png")
    Image.fromarray(b.image[:, :, 1]).save(root / "images" / "b_test.jpg", quality=95)
    for s, stem in ((a, "a"), (b, "b")):
        Image.fromarray(s.mask.astype(np.uint8) * 255).save(root / "truth" / f"{stem}_manual1.gif")
        Image.fromarray(s.fov.astype(np.uint8) * 255).save(root / "fov" / f"{stem}_test_mask.gif")
    return root


def test_demo_tiny(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, _ = run_main(
        ["demo", "--quick", "--out", out, "--size", 64, 64, "--train-images", 1,
         "--test-images", 2, "--epochs", 2, "--batches", 2, *TINY_NET, "--whole-epochs", 1,
         "--whole-size", 16, "--gif-size", 32, "--threads", 1, "--seed", 3], capsys)
    assert code == 0
    assert "seo_whole_image" in stdout and "mean" in stdout and "dice" in stdout
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["lai2d"]["mean"]) >= {"dice", "auc", "accuracy", "sensitivity",
                                            "specificity"}
    assert len(report["lai2d"]["images"]) == 2 and report["seo_whole_image"]["mean"]
    for name in ("model.fseg", "curves.png", "training.gif"):
        assert (out / name).stat().st_size > 0
    with Image.open(out / "training.gif") as gif:
        assert gif.n_frames == 2 * 5  # five frames per epoch
    preds = sorted(os.listdir(out / "predictions"))
    assert len(preds) == 2 * 4 and any(p.endswith("_overlay.png") for p in preds)
    # The demo's outputs work with the other commands.
    code, stdout, _ = run_main(["evaluate", out / "predictions", out / "test_data" / "masks",
                                "--fov", out / "test_data" / "fov"], capsys)
    assert code == 0 and "mean" in stdout


def test_train_writes_model_and_resumes(trained, capsys):
    history = json.loads((trained / "history.json").read_text())
    assert len(history["loss"]) == 1
    assert (trained / "model.fseg").is_file() and (trained / "curves.png").is_file()
    code, _, _ = run_main(["train", "--data", "synthetic", "--images", "1", "--size", 64, 64,
                           "--epochs", 2, "--batches", 2, "--batch-size", 16, "--out", trained,
                           "--resume", *TINY_NET], capsys)
    assert code == 0
    history = json.loads((trained / "history.json").read_text())
    assert history["epoch"] == [0, 1]


def test_train_from_folder(tmp_path, image_folder, capsys):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    s = synthetic_fundus(1, shape=(64, 64), seed=2)[0]
    Image.fromarray(s.image).save(data / "images" / "eye.png")
    Image.fromarray(s.mask.astype(np.uint8) * 255).save(data / "masks" / "eye_mask.png")
    code, stdout, _ = run_main(["train", "--data", f"folder:{data}", "--epochs", 1, "--batches",
                                1, "--batch-size", 8, "--out", tmp_path / "m", *TINY_NET],
                               capsys)
    assert code == 0 and "1 image(s)" in stdout


def test_segment_rgb_and_grey_of_other_sizes(trained, image_folder, tmp_path, capsys):
    out = tmp_path / "seg"
    code, stdout, _ = run_main(["segment", trained / "model.fseg", image_folder / "images",
                                "--out", out], capsys)
    assert code == 0
    for stem, (h, w) in (("a_test", (64, 72)), ("b_test", (70, 66))):
        for kind in ("prob", "mask", "overlay"):
            with Image.open(out / f"{stem}_{kind}.png") as img:
                assert img.size == (w, h)
    # With FOV files, then evaluated against the truth with CSV and JSON outputs.
    code, _, _ = run_main(["segment", trained / "model.fseg", image_folder / "images" /
                           "a_test.png", image_folder / "images" / "b_test.jpg", "--out", out,
                           "--fov", image_folder / "fov", "--threshold", 0.4], capsys)
    assert code == 0
    # The FFT and direct paths, and full resolution, give the same maps here.
    masks = {}
    for extra in (["--method", "direct"], ["--method", "fft", "--scale", "1"],
                  ["--scale", "auto"]):
        sub = tmp_path / "_".join(extra)
        code, _, _ = run_main(["segment", trained / "model.fseg", image_folder / "images" /
                               "a_test.png", "--out", sub, "--fov", image_folder / "fov",
                               *extra], capsys)
        assert code == 0
        with Image.open(sub / "a_test_prob.png") as img:
            masks[extra[1]] = np.asarray(img, dtype=np.int16)
    assert np.abs(masks["direct"] - masks["fft"]).max() <= 1
    assert np.abs(masks["direct"] - masks["auto"]).max() <= 1
    code, _, _ = run_main(["segment", trained / "model.fseg", image_folder / "images" /
                           "a_test.png", "--out", tmp_path / "half", "--scale", "0.5"], capsys)
    assert code == 0
    with Image.open(tmp_path / "half" / "a_test_prob.png") as img:
        assert img.size == (72, 64)
    csv_path, json_path = tmp_path / "m.csv", tmp_path / "m.json"
    code, stdout, _ = run_main(["evaluate", out, image_folder / "truth", "--fov",
                                image_folder / "fov", "--csv", csv_path, "--json", json_path],
                               capsys)
    assert code == 0
    assert "dice" in stdout and "mean" in stdout
    assert csv_path.read_text().splitlines()[0].startswith("name,dice")
    data = json.loads(json_path.read_text())
    assert [r["name"] for r in data["images"]] == ["a", "b"]


def test_segment_of_many_files_goes_past_a_bad_one(trained, image_folder, tmp_path, capsys):
    # As on a cluster: the bad file is reported with its reason, the others are written,
    # the summary counts it and the status is 1; one bad file alone stays a one-line error.
    bad = tmp_path / "c_broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = image_folder / "images" / "a_test.png"
    out = tmp_path / "seg"
    code, stdout, err = run_main(["segment", trained / "model.fseg", bad, good, "--out", out],
                                 capsys)
    assert code == 1
    assert (out / "a_test_mask.png").is_file()
    # No output of the bad file: only its record, which the report shows as failed.
    assert [p.name for p in out.glob("c_broken*")] == ["c_broken_record.json"]
    assert "1 done, 0 skipped, 1 failed" in stdout
    lines = [line for line in err.splitlines() if "c_broken.png" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    code, _, err = run_main(["segment", trained / "model.fseg", bad, "--out", out], capsys)
    assert_one_line_error(code, err, "segment")


@pytest.mark.parametrize("args,command", [
    (["segment", "{tmp}/missing.fseg", "{tmp}", "--out", "{tmp}/o"], "segment"),
    (["segment", "{model}", "{tmp}/nope.png", "--out", "{tmp}/o"], "segment"),
    (["segment", "{png}", "{png}", "--out", "{tmp}/o"], "segment"),
    (["evaluate", "{tmp}/no_preds", "{tmp}/no_truth"], "evaluate"),
    (["evaluate", "{tmp}", "{mdir}"], "evaluate"),  # x.png pairs with no truth file
    (["train", "--data", "bogus", "--out", "{tmp}/t"], "train"),
    (["train", "--data", "drive:{tmp}/nodrive", "--out", "{tmp}/t"], "train"),
    (["train", "--model", "lai_triplanar", "--out", "{tmp}/t"], "train"),
    (["train", "--model", "unet", "--out", "{tmp}/t"], "train"),
    (["train", "--resume", "--out", "{tmp}/fresh"], "train"),
    (["demo", "--size", "32", "32", "--out", "{tmp}/d"], "demo"),
    (["segment", "{model}", "{tmp}", "--out", "{tmp}/o", "--fov", "{tmp}/nofov"], "segment"),
])
def test_expected_failures_are_one_line(args, command, trained, tmp_path, capsys):
    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    fmt = {"tmp": tmp_path, "model": trained / "model.fseg", "png": png, "mdir": trained}
    args = [a.format(**fmt) for a in args]
    code, _, err = run_main(args, capsys)
    assert_one_line_error(code, err, command)


@pytest.mark.parametrize("args", [
    ["train", "--epochs", "0", "--out", "x"],
    ["segment", "model.fseg"],  # no input, no --out
    ["segment", "model.fseg", "x.png", "--out", "o", "--method", "fourier"],
    ["segment", "model.fseg", "x.png", "--out", "o", "--scale", "0"],
    ["segment", "model.fseg", "x.png", "--out", "o", "--scale", "big"],
    ["evaluate", "a", "b", "--threshold", "2"],
    ["demo", "--threads", "-1"],
    ["nonsense"],
])
def test_usage_errors_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("command", ["demo", "train", "segment", "evaluate", "info"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--threads" in out and "--backend" in out and "--seed" in out


def test_real_subprocess(tmp_path, trained, image_folder):
    backend = fastseg.get_backend()
    assert backend in ("c", "numpy")  # never the slow CUDA simulator by accident
    env = {**os.environ, "FASTSEG_BACKEND": backend}
    done = subprocess.run([sys.executable, "-m", "fastseg", "evaluate", str(tmp_path / "a"),
                           str(tmp_path / "b")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert done.stderr.startswith("fastseg evaluate: error: ")
    done = subprocess.run([sys.executable, "-m", "fastseg", "segment",
                           str(trained / "model.fseg"), str(image_folder / "images" / "a_test.png"),
                           "--out", str(tmp_path / "o"), "--threads", "1"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o" / "a_test_mask.png").is_file()


def _failing_info(exc):
    def cmd_info(args):
        raise exc

    return cmd_info


@pytest.mark.parametrize("exc", [
    fastseg.errors.InvalidValueError("x: must be >= 1, got 0"),
    fastseg.errors.InvalidTypeError("x: expected an int, got float 1.5"),
    fastseg.errors.UnavailableError("backend 'cuda' is not available here: no GPU"),
    FileNotFoundError(2, "No such file or directory", "missing.png"),
    IsADirectoryError(21, "Is a directory", "somewhere"),
    PermissionError(13, "Permission denied", "/root/x"),
])
def test_fastseg_and_io_errors_are_one_line(monkeypatch, capsys, exc):
    import fastseg.cli as cli

    monkeypatch.setattr(cli, "cmd_info", _failing_info(exc))
    code, _, err = run_main(["info"], capsys)
    assert_one_line_error(code, err, "info")
    assert str(exc).split(":")[0] in err


@pytest.mark.parametrize("exc", [ValueError("operands could not be broadcast"),
                                 TypeError("unsupported operand"), RuntimeError("oops"),
                                 KeyError("weight"), AttributeError("no attribute 'x'")])
def test_a_bug_shows_its_traceback_and_asks_for_a_report(monkeypatch, capsys, exc):
    import fastseg.cli as cli

    monkeypatch.setattr(cli, "cmd_info", _failing_info(exc))
    code, _, err = run_main(["info"], capsys)
    assert code == 1
    assert "Traceback" in err and type(exc).__name__ in err
    assert "bug in fastseg" in err.splitlines()[-1] and "report" in err.splitlines()[-1]


def test_cli_error_is_a_fastseg_error():
    from fastseg.cli import CLIError

    assert issubclass(CLIError, fastseg.errors.FastsegError)
