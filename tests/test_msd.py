"""The Medical Segmentation Decathlon and NIfTI-folder loaders on small generated files."""
import json

import nibabel as nib
import numpy as np
import pytest

from fastseg.data import VolumeSample, load_msd, load_nifti_folder

AFFINE = np.array([[0.0, 0.0, -1.0, 20.0],
                   [1.2, 0.0, 0.0, -10.0],
                   [0.0, 1.5, 0.0, 5.0],
                   [0.0, 0.0, 0.0, 1.0]])


def _write(path, array, affine=AFFINE):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.Nifti1Image(np.asarray(array), affine).to_filename(path)


def _case(rng, shape=(6, 7, 5)):
    image = rng.integers(0, 500, size=shape).astype(np.int16)
    label = np.zeros(shape, dtype=np.uint8)
    label[1:3, 2:5, 1:3] = 1  # anterior
    label[3:5, 2:5, 1:4] = 2  # posterior
    return image, label


def _task(root, n=3, seed=0):
    """A Task04_Hippocampus-like folder with `n` training cases and one test scan."""
    rng = np.random.default_rng(seed)
    cases = {}
    for i in range(n):
        name = f"hippocampus_{i:03d}.nii.gz"
        image, label = _case(rng)
        _write(root / "imagesTr" / name, image)
        _write(root / "labelsTr" / name, label)
        cases[name] = (image, label)
    _write(root / "imagesTs" / "hippocampus_900.nii.gz",
           rng.integers(0, 9, (6, 7, 5)).astype(np.int16))
    meta = {"name": "Hippocampus", "modality": {"0": "MRI"},
            "labels": {"0": "background", "1": "Anterior", "2": "Posterior"},
            "numTraining": n, "numTest": 1,
            "training": [{"image": f"./imagesTr/{k}", "label": f"./labelsTr/{k}"}
                         for k in sorted(cases)],
            "test": ["./imagesTs/hippocampus_900.nii.gz"]}
    (root / "dataset.json").write_text(json.dumps(meta))
    return cases


def test_msd_training_split(tmp_path):
    cases = _task(tmp_path)
    samples = load_msd(tmp_path)
    assert [s.name for s in samples] == [k[: -len(".nii.gz")] for k in sorted(cases)]
    for s, key in zip(samples, sorted(cases), strict=True):
        image, label = cases[key]
        assert isinstance(s, VolumeSample)
        np.testing.assert_array_equal(s.image, image.astype(np.float32))
        # labels 1 and 2 are both hippocampus
        np.testing.assert_array_equal(s.mask, label > 0)
        np.testing.assert_allclose(s.affine, AFFINE)
        assert s.spacing == pytest.approx((1.2, 1.5, 1.0))
        assert s.header is not None


def test_msd_label_selection_and_test_split(tmp_path):
    cases = _task(tmp_path)
    anterior = load_msd(tmp_path, "train", labels=1)
    np.testing.assert_array_equal(anterior[0].mask, cases[sorted(cases)[0]][1] == 1)
    posterior = load_msd(tmp_path, labels=[2])
    np.testing.assert_array_equal(posterior[0].mask, cases[sorted(cases)[0]][1] == 2)
    test = load_msd(tmp_path, "test")
    assert len(test) == 1 and test[0].name == "hippocampus_900" and test[0].shape == (6, 7, 5)
    with pytest.raises(ValueError, match=r"labels \[3\] are not declared"):
        load_msd(tmp_path, labels=3)
    with pytest.raises(ValueError, match="labels must be positive ints"):
        load_msd(tmp_path, labels=[0])
    with pytest.raises(ValueError, match="split must be"):
        load_msd(tmp_path, "validation")


def test_msd_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match="no .*dataset.json"):
        load_msd(tmp_path)
    _task(tmp_path)
    (tmp_path / "labelsTr" / "hippocampus_001.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="label listed in .* is missing: .*001"):
        load_msd(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_msd(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"training": []}))
    with pytest.raises(ValueError, match="non-empty list under 'training'"):
        load_msd(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"training": ["x.nii.gz"]}))
    with pytest.raises(ValueError, match="training entries must be"):
        load_msd(tmp_path)


def test_msd_undeclared_label_value(tmp_path):
    _task(tmp_path, n=1)
    _, label = _case(np.random.default_rng(0))
    label[0, 0, 0] = 7
    _write(tmp_path / "labelsTr" / "hippocampus_000.nii.gz", label)
    with pytest.raises(ValueError, match=r"holds values \['7'\] that .* does not declare"):
        load_msd(tmp_path)


def _pair_dirs(tmp_path, label=None, label_affine=AFFINE, label_shape=None):
    rng = np.random.default_rng(1)
    image, lab = _case(rng)
    if label is not None:
        lab = label
    if label_shape is not None:
        lab = np.zeros(label_shape, dtype=np.uint8)
        lab[0, 0, 0] = 1
    _write(tmp_path / "img" / "case_a.nii.gz", image)
    _write(tmp_path / "lab" / "case_a_seg.nii", lab, label_affine)
    return image, lab


def test_folder_pairs_by_name(tmp_path):
    image, lab = _pair_dirs(tmp_path)
    rng = np.random.default_rng(2)
    image_b, lab_b = _case(rng)
    _write(tmp_path / "img" / "Case_B.nii", image_b)
    _write(tmp_path / "lab" / "case_b.nii.gz", lab_b)
    (tmp_path / "img" / "readme.txt").write_text("not a scan")
    samples = load_nifti_folder(tmp_path / "img", tmp_path / "lab")
    assert [s.name for s in samples] == ["Case_B", "case_a"]
    np.testing.assert_array_equal(samples[1].mask, lab > 0)
    np.testing.assert_array_equal(samples[0].image, image_b.astype(np.float32))
    np.testing.assert_array_equal(samples[0].mask, lab_b > 0)


def test_folder_unmatched_missing_and_ambiguous(tmp_path):
    _pair_dirs(tmp_path)
    _write(tmp_path / "lab" / "other.nii.gz", np.ones((6, 7, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match="label files that match no image .*other.nii.gz"):
        load_nifti_folder(tmp_path / "img", tmp_path / "lab")
    (tmp_path / "lab" / "other.nii.gz").unlink()
    _write(tmp_path / "lab" / "case_a_label.nii.gz", np.ones((6, 7, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match="two label files for image case_a.nii.gz"):
        load_nifti_folder(tmp_path / "img", tmp_path / "lab")
    for p in (tmp_path / "lab").iterdir():
        p.unlink()
    _write(tmp_path / "lab" / "zzz.nii", np.ones((6, 7, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match="match no image"):
        load_nifti_folder(tmp_path / "img", tmp_path / "lab")
    (tmp_path / "lab" / "zzz.nii").unlink()
    with pytest.raises(FileNotFoundError, match="no NIfTI files"):
        load_nifti_folder(tmp_path / "img", tmp_path / "lab")
    with pytest.raises(FileNotFoundError, match="label folder not found"):
        load_nifti_folder(tmp_path / "img", tmp_path / "nowhere")


def test_folder_scan_without_label(tmp_path):
    _pair_dirs(tmp_path)
    _write(tmp_path / "img" / "lonely.nii.gz", np.ones((6, 7, 5), dtype=np.int16))
    with pytest.raises(ValueError, match="images without a label file .*lonely.nii.gz"):
        load_nifti_folder(tmp_path / "img", tmp_path / "lab")


def test_pair_shapes_that_disagree(tmp_path):
    _pair_dirs(tmp_path, label_shape=(6, 7, 4))
    with pytest.raises(ValueError, match=r"image 'case_a' and label 'case_a_seg' differ in "
                                         r"shape: \(6, 7, 5\) vs \(6, 7, 4\)"):
        load_nifti_folder(tmp_path / "img", tmp_path / "lab")


def test_pair_affines_that_disagree(tmp_path):
    shifted = AFFINE.copy()
    shifted[0, 3] += 0.5
    _pair_dirs(tmp_path, label_affine=shifted)
    with pytest.raises(ValueError, match="are in different spaces"):
        load_nifti_folder(tmp_path / "img", tmp_path / "lab")


def test_empty_and_non_integer_labels(tmp_path):
    _pair_dirs(tmp_path, label=np.zeros((6, 7, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match="label 'case_a_seg' is empty"):
        load_nifti_folder(tmp_path / "img", tmp_path / "lab")
    _write(tmp_path / "lab" / "case_a_seg.nii", np.full((6, 7, 5), 0.5, dtype=np.float32))
    with pytest.raises(ValueError, match="non-integer values"):
        load_nifti_folder(tmp_path / "img", tmp_path / "lab")


def test_nan_in_a_scan_is_named(tmp_path):
    _pair_dirs(tmp_path)
    bad = np.ones((6, 7, 5), dtype=np.float32)
    bad[2, 2, 2] = np.nan
    _write(tmp_path / "img" / "case_a.nii.gz", bad)
    with pytest.raises(ValueError, match=r"case_a.nii.gz: 1 NaN"):
        load_nifti_folder(tmp_path / "img", tmp_path / "lab")


def test_without_nibabel_the_loaders_give_the_install_command(tmp_path, monkeypatch):
    import sys

    _task(tmp_path, n=1)
    _pair_dirs(tmp_path / "f")
    monkeypatch.setitem(sys.modules, "nibabel", None)
    for call in (lambda: load_msd(tmp_path),
                 lambda: load_nifti_folder(tmp_path / "f" / "img", tmp_path / "f" / "lab")):
        with pytest.raises(ImportError) as info:
            call()
        assert str(info.value).endswith('pip install "fastseg[mri]"')
