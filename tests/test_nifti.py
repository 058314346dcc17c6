"""NIfTI reading and writing: the round trip keeps affine, header and orientation; bad
files get errors that say what is wrong; without nibabel the install command is given."""
import gzip
import os
import sys

import nibabel as nib
import numpy as np
import pytest

from fastseg import data
from fastseg.data import Volume, load_nifti, save_nifti

INSTALL = 'pip install "fastseg[mri]"'

# An oblique, anisotropic, left-right flipped affine: voxel -> world (mm).
AFFINE = np.array([[-0.8, 0.1, 0.0, 30.0],
                   [0.05, 1.2, 0.2, -40.0],
                   [0.0, -0.15, 2.5, 12.0],
                   [0.0, 0.0, 0.0, 1.0]])


def _scan(tmp_path, name="scan.nii.gz", shape=(5, 6, 7), dtype=np.int16, affine=AFFINE,
          values=None):
    arr = np.arange(np.prod(shape)).reshape(shape).astype(dtype) if values is None else values
    img = nib.Nifti1Image(arr, affine)
    img.header["descrip"] = b"fastseg test scan"
    img.header.set_xyzt_units("mm", "sec")
    path = tmp_path / name
    img.to_filename(path)
    return path, arr


@pytest.mark.parametrize("name", ["scan.nii.gz", "scan.nii"])
def test_load_gives_array_affine_spacing_header_name(tmp_path, name):
    path, arr = _scan(tmp_path, name)
    vol = load_nifti(path)
    assert isinstance(vol, Volume) and vol.name == "scan"
    assert vol.array.dtype == np.float32 and vol.array.shape == arr.shape
    np.testing.assert_array_equal(vol.array, arr)
    np.testing.assert_allclose(vol.affine, AFFINE, atol=1e-6)
    np.testing.assert_allclose(vol.spacing, np.sqrt((AFFINE[:3, :3] ** 2).sum(0)), rtol=1e-6)
    assert vol.header["descrip"].tobytes().rstrip(b"\0") == b"fastseg test scan"


def test_known_voxel_world_coordinate(tmp_path):
    path, arr = _scan(tmp_path)
    vol = load_nifti(path)
    # voxel (2, 3, 4) by hand: A[:3, :3] @ (2, 3, 4) + A[:3, 3]
    want = [-0.8 * 2 + 0.1 * 3 + 30.0, 0.05 * 2 + 1.2 * 3 + 0.2 * 4 - 40.0,
            -0.15 * 3 + 2.5 * 4 + 12.0]
    np.testing.assert_allclose(vol.world((2, 3, 4)), want, atol=1e-5)
    # the array is in the file's voxel order: that voxel holds its C-order index
    assert vol.array[2, 3, 4] == arr[2, 3, 4] == 2 * 42 + 3 * 7 + 4


def test_scaling_is_applied(tmp_path):
    arr = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    img = nib.Nifti1Image(arr, np.eye(4))
    img.header.set_slope_inter(0.5, 10.0)
    nib.save(img, tmp_path / "s.nii")
    np.testing.assert_allclose(load_nifti(tmp_path / "s.nii").array, arr * 0.5 + 10.0)


@pytest.mark.parametrize("out_name", ["prob.nii.gz", "labels.nii"])
def test_save_like_keeps_affine_header_and_orientation(tmp_path, out_name):
    path, _ = _scan(tmp_path)
    scan = load_nifti(path)
    rng = np.random.default_rng(0)
    prob = rng.random(scan.shape).astype(np.float64)
    out = tmp_path / out_name
    array = prob if out_name.startswith("prob") else prob > 0.5
    save_nifti(out, array, like=scan)
    back = load_nifti(out)
    np.testing.assert_array_equal(back.affine, scan.affine)
    assert back.header["descrip"] == scan.header["descrip"]
    assert back.header.get_xyzt_units() == scan.header.get_xyzt_units()
    assert back.header.get_sform(coded=True)[1] == scan.header.get_sform(coded=True)[1]
    assert back.header.get_qform(coded=True)[1] == scan.header.get_qform(coded=True)[1]
    assert nib.aff2axcodes(back.affine) == nib.aff2axcodes(scan.affine)
    if out_name.startswith("prob"):
        assert back.header.get_data_dtype() == np.float32
        np.testing.assert_allclose(back.array, prob, rtol=1e-6)  # float32 of the input
    else:
        assert back.header.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(back.array, array)
    # the same voxel is at the same place in the world
    np.testing.assert_allclose(back.world((1, 2, 3)), scan.world((1, 2, 3)))
    leftovers = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert not leftovers
    if out_name.endswith(".gz"):
        with open(out, "rb") as f:
            assert f.read(2) == b"\x1f\x8b"


def test_save_like_path_and_plain_affine(tmp_path):
    path, _ = _scan(tmp_path)
    save_nifti(tmp_path / "a.nii.gz", np.ones((5, 6, 7), dtype=bool), like=path)
    np.testing.assert_allclose(load_nifti(tmp_path / "a.nii.gz").affine, AFFINE, atol=1e-6)
    aff = np.diag([2.0, 3.0, 4.0, 1.0])
    save_nifti(tmp_path / "b.nii", np.zeros((2, 3, 4), dtype=np.float32), affine=aff)
    back = load_nifti(tmp_path / "b.nii")
    np.testing.assert_array_equal(back.affine, aff)
    assert back.spacing == (2.0, 3.0, 4.0)


def test_save_refuses_bad_calls(tmp_path):
    path, _ = _scan(tmp_path)
    scan = load_nifti(path)
    with pytest.raises(ValueError, match="array has shape .* but like has"):
        save_nifti(tmp_path / "x.nii", np.zeros((5, 6, 8)), like=scan)
    with pytest.raises(ValueError, match="ends with .nii or .nii.gz"):
        save_nifti(tmp_path / "x.png", np.zeros((5, 6, 7)), like=scan)
    with pytest.raises(ValueError, match="expected a non-empty 3-D array"):
        save_nifti(tmp_path / "x.nii", np.zeros((5, 6)))
    with pytest.raises(ValueError, match="NaN"):
        save_nifti(tmp_path / "x.nii", np.full((2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="not both"):
        save_nifti(tmp_path / "x.nii", np.zeros((5, 6, 7)), like=scan, affine=np.eye(4))
    with pytest.raises(TypeError, match="like: expected a Volume"):
        save_nifti(tmp_path / "x.nii", np.zeros((5, 6, 7)), like=42)
    assert not (tmp_path / "x.nii").exists()


def test_not_a_nifti_file(tmp_path):
    (tmp_path / "notes.nii").write_text("hello " * 100)
    with pytest.raises(ValueError, match=r"notes.nii: not a NIfTI file"):
        load_nifti(tmp_path / "notes.nii")
    (tmp_path / "tiny.nii").write_bytes(b"abc")
    with pytest.raises(ValueError, match="shorter than a header"):
        load_nifti(tmp_path / "tiny.nii")
    (tmp_path / "text.nii.gz").write_bytes(gzip.compress(b"hello " * 100))
    with pytest.raises(ValueError, match="gzip file that does not hold a NIfTI image"):
        load_nifti(tmp_path / "text.nii.gz")
    with pytest.raises(FileNotFoundError, match="no such NIfTI file"):
        load_nifti(tmp_path / "missing.nii.gz")


def test_other_formats_are_not_nifti(tmp_path):
    mgh = nib.MGHImage(np.zeros((3, 3, 3), dtype=np.float32), np.eye(4))
    nib.save(mgh, tmp_path / "x.mgh")
    with pytest.raises(ValueError, match=r"not a NIfTI file \(nibabel reads it as MGHImage"):
        load_nifti(tmp_path / "x.mgh")
    nib.save(mgh, tmp_path / "x.mgz")
    with pytest.raises(ValueError, match="gzip file that does not hold a NIfTI image"):
        load_nifti(tmp_path / "x.mgz")


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9])
def test_truncated_gzip(tmp_path, keep):
    rng = np.random.default_rng(1)
    path, _ = _scan(tmp_path, values=rng.standard_normal((20, 20, 20)).astype(np.float32))
    raw = path.read_bytes()
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(ValueError, match=r"cut.nii.gz: truncated or corrupt gzip"):
        load_nifti(bad)


def test_corrupt_gzip(tmp_path):
    rng = np.random.default_rng(1)
    path, _ = _scan(tmp_path, values=rng.standard_normal((20, 20, 20)).astype(np.float32))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = bytes(64)
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"bad.nii.gz: truncated or corrupt gzip"):
        load_nifti(bad)


def test_truncated_uncompressed(tmp_path):
    path, _ = _scan(tmp_path, "scan.nii")
    raw = path.read_bytes()
    (tmp_path / "cut.nii").write_bytes(raw[:-30])
    with pytest.raises(ValueError, match=r"cut.nii: header declares 5x6x7 int16 voxels \(420 "
                                         r"bytes\) from byte 352 but the file holds 742 bytes"):
        load_nifti(tmp_path / "cut.nii")


def test_4d_and_2d_images_are_refused_and_singleton_4d_accepted(tmp_path):
    _scan(tmp_path, "four.nii.gz", values=np.zeros((4, 5, 6, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"a 4-D image of shape \(4, 5, 6, 3\), but a 3-D "
                                         r"volume is expected; pick one volume"):
        load_nifti(tmp_path / "four.nii.gz")
    _scan(tmp_path, "flat.nii.gz", values=np.zeros((4, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="a 2-D image"):
        load_nifti(tmp_path / "flat.nii.gz")
    _scan(tmp_path, "one.nii.gz", values=np.ones((4, 5, 6, 1), dtype=np.float32))
    assert load_nifti(tmp_path / "one.nii.gz").shape == (4, 5, 6)


def test_nan_voxels_are_refused(tmp_path):
    values = np.zeros((4, 4, 4), dtype=np.float32)
    values[1, 2, 3] = np.nan
    values[0, 0, 0] = np.inf
    _scan(tmp_path, "nan.nii.gz", values=values)
    with pytest.raises(ValueError, match=r"nan.nii.gz: 1 NaN and 1 infinite voxels"):
        load_nifti(tmp_path / "nan.nii.gz")


def test_without_nibabel_the_message_is_the_install_command(tmp_path, monkeypatch):
    path, _ = _scan(tmp_path)
    monkeypatch.setitem(sys.modules, "nibabel", None)
    for call in (lambda: load_nifti(path),
                 lambda: save_nifti(tmp_path / "o.nii", np.zeros((2, 2, 2))),
                 lambda: data.hippocampus_mri(margin=3)):
        with pytest.raises(ImportError) as info:
            call()
        assert str(info.value).endswith(INSTALL)


def test_without_scipy_the_surface_metrics_give_the_install_command(monkeypatch):
    from fastseg import metrics

    monkeypatch.setitem(sys.modules, "scipy.ndimage", None)
    m = np.zeros((4, 4, 4), dtype=bool)
    m[1:3, 1:3, 1:3] = True
    with pytest.raises(ImportError) as info:
        metrics.evaluate(m.astype(float), m)
    assert str(info.value).endswith(INSTALL)
