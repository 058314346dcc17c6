"""The command line on volumes: train on NIfTI folders and the Decathlon layout, segment
scans into NIfTI maps in the scan's space and plane pictures, evaluate in mm, the bad
inputs' one-line errors, and ``fastseg demo mri --quick``."""
import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from fastseg import metrics
from fastseg.cli import main
from fastseg.data import load_nifti
from fastseg.segmenter import Segmenter

# Oblique and anisotropic, so that a lost or transposed affine shows.
AFFINE = np.array([[0.0, 0.0, -1.2, 30.0],
                   [0.9, 0.0, 0.0, -12.0],
                   [0.0, 1.5, 0.0, 4.0],
                   [0.0, 0.0, 0.0, 1.0]])
SHAPE = (18, 20, 17)
TINY = ["--epochs", "1", "--batches", "3", "--batch-size", "16", "--hidden", "8"]


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, command):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"fastseg {command}: error: "), err
    return lines[0]


def _blob(seed, shape=SHAPE):
    """A bright ellipsoid in noise (int16 like a scanner's file) and its label."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    c = np.array(shape) / 2 + rng.uniform(-2, 2, 3)
    label = ((z - c[0]) ** 2 / 16 + (y - c[1]) ** 2 / 25 + (x - c[2]) ** 2 / 12) < 1
    image = (200 + 300 * label + rng.normal(0, 60, shape)).astype(np.int16)
    return image, label.astype(np.uint8)


def _write(path, array, affine=AFFINE):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.asarray(array), affine)
    img.header["descrip"] = b"fastseg test scan"
    img.header.set_xyzt_units("mm", "sec")
    img.to_filename(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """nifti:ROOT (images/, labels/), an MSD task (msd/) and held-out scans (test/, truth/)."""
    root = tmp_path_factory.mktemp("mri")
    entries = []
    for i in range(2):
        image, label = _blob(i)
        _write(root / "images" / f"case{i}.nii.gz", image)
        _write(root / "labels" / f"case{i}_seg.nii.gz", label)
        _write(root / "msd" / "imagesTr" / f"hip_{i}.nii.gz", image)
        _write(root / "msd" / "labelsTr" / f"hip_{i}.nii.gz", label * (1 + (np.arange(
            SHAPE[2]) > SHAPE[2] // 2)).astype(np.uint8))  # labels 1 and 2, as Task04
        entries.append({"image": f"./imagesTr/hip_{i}.nii.gz",
                        "label": f"./labelsTr/hip_{i}.nii.gz"})
    (root / "msd" / "dataset.json").write_text(json.dumps(
        {"training": entries, "test": [], "labels": {"0": "bg", "1": "ant", "2": "post"}}))
    for i, shape in ((5, (19, 21, 18)), (6, SHAPE)):
        image, label = _blob(i, shape)
        _write(root / "test" / f"scan{i}.nii", image)
        _write(root / "truth" / f"scan{i}.nii.gz", label)
    return root


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    """A tiny lai2d volume model trained by `fastseg train --data nifti:DIR`."""
    out = tmp_path_factory.mktemp("model")
    code = main(["train", "--data", f"nifti:{data}", "--model", "lai2d", "--patch-size", "12",
                 "--out", str(out), *TINY])
    assert code == 0
    return out / "model.fseg"


def test_train_on_a_nifti_folder_records_the_volume_settings(model):
    seg = Segmenter.load(model)
    assert seg.resolved_kind() == "2d" and seg.patch_size == 12 and seg.keep_largest == 1
    assert seg.threshold == "auto" and 0 < seg.decision_threshold() < 1
    assert seg.optimizer == "adam" and seg.model_kwargs == {"hidden": 8}


def test_segment_writes_maps_in_the_scans_space_and_side_pictures(data, model, tmp_path,
                                                                  capsys):
    code, out, err = run(["segment", model, data / "test", "--out", tmp_path], capsys)
    assert code == 0, err
    assert "scan5.nii: 19x21x18 voxels" in out and "2 done, 0 skipped, 0 failed" in out
    seg = Segmenter.load(model)
    for stem in ("scan5", "scan6"):
        scan = load_nifti(data / "test" / f"{stem}.nii")
        prob_img = nib.load(tmp_path / f"{stem}_prob.nii.gz")
        mask_img = nib.load(tmp_path / f"{stem}_mask.nii.gz")
        # The scan with its affine: conformed to the model's 1 mm, mapped back.
        expected, labels = seg.predict_maps(scan, progress=False)
        assert expected.shape == scan.shape
        np.testing.assert_array_equal(prob_img.get_fdata(dtype=np.float32), expected)
        np.testing.assert_array_equal(np.asarray(mask_img.dataobj), labels)
        assert mask_img.get_data_dtype() == np.uint8 and set(np.unique(labels)) <= {0, 1, 2}
        for img in (prob_img, mask_img):  # the scan's space, and its header's facts
            np.testing.assert_allclose(img.affine, AFFINE, atol=1e-6)
            assert img.header["descrip"].tobytes().rstrip(b"\0") == b"fastseg test scan"
            assert img.header.get_xyzt_units() == ("mm", "sec")
        for side in ("left", "right"):
            with Image.open(tmp_path / f"{stem}_{side}.png") as pic:
                assert pic.mode == "RGB" and min(pic.size) >= 128


def test_segment_skips_existing_volume_outputs(data, model, tmp_path, capsys):
    scan = data / "test" / "scan6.nii"
    assert run(["segment", model, scan, "--out", tmp_path], capsys)[0] == 0
    code, out, _ = run(["segment", model, scan, "--out", tmp_path, "--skip-existing"], capsys)
    assert code == 0 and "scan6.nii: skipped" in out


def test_evaluate_volumes_reports_distances_in_mm(data, model, tmp_path, capsys):
    seg_dir = tmp_path / "seg"
    assert run(["segment", model, data / "test", "--out", seg_dir], capsys)[0] == 0
    code, out, err = run(["evaluate", seg_dir, data / "truth", "--json", tmp_path / "m.json"],
                         capsys)
    assert code == 0, err
    assert "hd95" in out and "assd" in out
    rows = {r["name"]: r for r in json.loads((tmp_path / "m.json").read_text())["images"]}
    assert set(rows) == {"scan5", "scan6"}
    for stem, row in rows.items():
        pred = (load_nifti(seg_dir / f"{stem}_mask.nii.gz").array != 0).astype(np.float32)
        truth = load_nifti(data / "truth" / f"{stem}.nii.gz")
        expected = metrics.evaluate(pred, truth.array != 0, spacing=truth.spacing)
        assert truth.spacing == pytest.approx((0.9, 1.5, 1.2))
        for k in ("dice", "hd95", "assd", "rvd"):
            assert row[k] == pytest.approx(expected[k], nan_ok=True)


def test_evaluate_reports_each_side_of_side_label_maps(tmp_path, capsys):
    pred_dir, truth_dir = tmp_path / "pred", tmp_path / "truth"
    truth = np.zeros((20, 12, 10), np.uint8)
    truth[2:7, 3:8, 3:7] = 1
    truth[12:18, 3:8, 3:7] = 2
    pred = truth.copy()
    pred[12:15, 3:8, 3:7] = 0  # the right side half missed
    _write(pred_dir / "s1_mask.nii.gz", pred)
    _write(truth_dir / "s1.nii.gz", truth)
    code, out, err = run(["evaluate", pred_dir, truth_dir, "--json", tmp_path / "m.json"],
                         capsys)
    assert code == 0, err
    assert "left (label 1)" in out and "right (label 2)" in out
    sides = json.loads((tmp_path / "m.json").read_text())["labels"]
    assert sides["left"]["mean"]["dice"] == pytest.approx(1.0)
    assert sides["right"]["mean"]["dice"] == pytest.approx(2 * 60 / (60 + 120))


def test_evaluate_refuses_volumes_in_other_spaces(data, model, tmp_path, capsys):
    seg_dir, truth_dir = tmp_path / "seg", tmp_path / "truth"
    assert run(["segment", model, data / "test" / "scan6.nii", "--out", seg_dir], capsys)[0] == 0
    shifted = AFFINE.copy()
    shifted[0, 3] += 5
    _write(truth_dir / "scan6.nii.gz", _blob(6)[1], shifted)
    line = one_line_error(*run(["evaluate", seg_dir, truth_dir], capsys)[::2], "evaluate")
    assert "different spaces" in line and "scan6" in line


def test_train_on_the_decathlon_layout_with_lai3d(data, tmp_path, capsys):
    code, out, err = run(["train", "--data", f"msd:{data / 'msd'}", "--model", "lai3d",
                          "--patch-size", "16", "--out", tmp_path, *TINY], capsys)
    assert code == 0, err
    assert "threshold chosen on the training scans" in out
    seg = Segmenter.load(tmp_path / "model.fseg")
    assert seg.resolved_kind() == "3d" and seg.patch_size == 16
    code, _, err = run(["segment", tmp_path / "model.fseg", data / "test" / "scan6.nii",
                        "--out", tmp_path / "seg"], capsys)
    assert code == 0, err
    assert (tmp_path / "seg" / "scan6_mask.nii.gz").is_file()


@pytest.fixture(scope="module")
def bad_scans(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "text.nii.gz").write_bytes(b"not a scan at all")
    (root / "plain.nii").write_bytes(b"\0" * 400)
    good = root / "good.nii.gz"
    _write(good, _blob(1)[0])
    (root / "cut.nii.gz").write_bytes(good.read_bytes()[:300])
    _write(root / "four.nii.gz", np.zeros((16, 16, 16, 2), np.float32))
    nan = np.ones(SHAPE, np.float32)
    nan[3, 4, 5] = np.nan
    _write(root / "nan.nii.gz", nan)
    _write(root / "small.nii.gz", np.ones((20, 5, 20), np.float32))  # planes of 5x20
    good.unlink()
    return root


@pytest.mark.parametrize("name, why", [
    ("text.nii.gz", "not a NIfTI file"), ("plain.nii", "not a NIfTI file"),
    ("cut.nii.gz", "truncated or corrupt gzip"), ("four.nii.gz", "4-D"),
    ("nan.nii.gz", "NaN"), ("small.nii.gz", "smaller than"),
])
def test_segment_bad_scans_get_one_line(bad_scans, model, tmp_path, capsys, name, why):
    line = one_line_error(*run(["segment", model, bad_scans / name, "--out", tmp_path],
                               capsys)[::2], "segment")
    assert why in line
    # Nothing written under an output's name, no temporary; the run's report shows why.
    from fastseg._files import naming
    from fastseg.report import read_records

    assert not any(p.exists() for p in naming.output_paths(tmp_path, name).values())
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))
    (row,) = read_records(tmp_path)
    assert row["status"] == "failed" and why in row["error"]
    assert (tmp_path / "report.html").is_file()


def _pair_dir(root, image, label, label_affine=AFFINE):
    _write(root / "images" / "a.nii.gz", image)
    _write(root / "labels" / "a.nii.gz", label, label_affine)
    return root


@pytest.mark.parametrize("case, why", [
    ("shapes", "differ in shape"), ("affines", "different spaces"), ("empty", "is empty"),
])
def test_train_bad_pairs_get_one_line(tmp_path, capsys, case, why):
    image, label = _blob(0)
    if case == "shapes":
        _pair_dir(tmp_path, image, label[:-1])
    elif case == "affines":
        _pair_dir(tmp_path, image, label, AFFINE * np.array([[1], [1], [2], [1]]))
    else:
        _pair_dir(tmp_path, image, np.zeros_like(label))
    line = one_line_error(*run(["train", "--data", f"nifti:{tmp_path}", "--out", tmp_path / "m",
                                *TINY], capsys)[::2], "train")
    assert why in line


@pytest.mark.parametrize("args, why", [
    (["--model", "seo_whole_image"], "cannot train it on volumes"),
    (["--channels", "rgb"], "--channels is for photos"),
    (["--data", "nifti:/no/such/folder"], "data folder not found"),
    (["--data", "msd"], "expected mri, mri:crop, msd:ROOT or nifti:DIR"),
])
def test_train_bad_volume_options_get_one_line(data, tmp_path, capsys, args, why):
    base = {"--data": f"nifti:{data}", "--model": "lai2d"}
    given = dict(zip(args[::2], args[1::2], strict=True))
    argv = ["train", *[x for kv in {**base, **given}.items() for x in kv], "--out", tmp_path,
            *TINY]
    line = one_line_error(*run(argv, capsys)[::2], "train")
    assert why in line


def test_a_model_refuses_the_other_kind_of_input(data, model, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(photo)
    line = one_line_error(*run(["segment", model, photo, "--out", tmp_path / "o"], capsys)[::2],
                          "segment")
    assert "segments 3-D volumes" in line
    photo_model = tmp_path / "photo_model"
    assert run(["train", "--data", "synthetic", "--images", "1", "--size", "64", "64",
                "--out", photo_model, "--patch-size", "12", *TINY], capsys)[0] == 0
    line = one_line_error(*run(["segment", photo_model / "model.fseg", data / "test" /
                                "scan6.nii", "--out", tmp_path / "o"], capsys)[::2], "segment")
    assert "segments 2-D images, not volumes" in line


def test_demo_mri_quick(tmp_path, capsys):
    code, out, err = run(["demo", "mri", "--quick", "--out", tmp_path], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "metrics.json").read_text())
    names = [r["network"] for r in result["networks"]]
    assert names == ["2d", "stacked2d", "triplanar", "3d"]
    assert result["data"] == {"train": "mni152", "test": "icbm2009c",
                              "region": "whole brain"}
    for row in result["networks"]:
        assert 0 <= row["dice_left"] <= 1 and 0 <= row["dice_right"] <= 1
        assert row["train_s"] > 0 and row["infer_s"] > 0
        assert row["volume_error_left"] >= -100 and row["volume_error_right"] >= -100
        assert row["hd95"] is None or row["hd95"] >= 0
        assert f"\n{row['network']:<11}" in out  # a line of the printed table
        with Image.open(tmp_path / f"{row['network']}.png") as pic:
            assert pic.mode == "RGB" and pic.height > pic.width / 3  # two rows of planes
        saved = Segmenter.load(tmp_path / f"{row['network']}.fseg")
        assert saved.whole_brain_ and "MNI152" in saved.training_data_  # on its report card
    assert "best:" in out


def test_demo_mri_refuses_the_fundus_knobs(tmp_path, capsys):
    line = one_line_error(*run(["demo", "mri", "--epochs", "3", "--out", tmp_path],
                               capsys)[::2], "demo")
    assert "--epochs tunes the fundus demo" in line


def test_without_nibabel_the_commands_give_the_install_command(data, model, tmp_path, capsys,
                                                               monkeypatch):
    import sys

    import fastseg.data.hippocampus as hippocampus

    monkeypatch.setitem(sys.modules, "nibabel", None)
    hippocampus._template_samples.cache_clear()  # not what an earlier test read
    for argv, command in (
            (["segment", model, data / "test" / "scan6.nii", "--out", tmp_path], "segment"),
            (["train", "--data", "mri", "--out", tmp_path], "train"),
            (["evaluate", data / "truth", data / "truth"], "evaluate"),
            (["demo", "mri", "--quick", "--out", tmp_path], "demo")):
        line = one_line_error(*run(argv, capsys)[::2], command)
        assert line.endswith('pip install "fastseg[mri]"'), line


def test_segment_writes_volumes_csv_per_scan_and_keeps_it_on_resume(data, model, tmp_path,
                                                                   capsys):
    import csv

    from fastseg.postprocess import side_volumes

    assert run(["segment", model, data / "test" / "scan5.nii", "--out", tmp_path], capsys)[0] == 0
    code, out, _ = run(["segment", model, data / "test", "--out", tmp_path, "--skip-existing"],
                       capsys)
    assert code == 0 and "scan5.nii: skipped" in out and "report:" in out
    with open(tmp_path / "volumes.csv", newline="") as f:
        rows = {r["scan"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == ["scan5.nii", "scan6.nii"]
    for name, row in rows.items():
        labels = load_nifti(tmp_path / f"{name[:-4]}_mask.nii.gz")
        want = side_volumes(labels.array.astype(np.uint8), labels.affine)
        for side in ("left", "right", "total"):
            assert float(row[f"{side}_mm3"]) == pytest.approx(want[side], abs=0.06)
    assert (tmp_path / "report.html").is_file()
