"""fastseg._files.naming: input kinds, output names, pairing keys; errors are fastseg's own
ValueErrors (the library knows no command line)."""
from pathlib import Path

import pytest

from fastseg._files import naming
from fastseg.errors import FastsegError


def test_stems_kinds_and_output_names():
    assert naming.stem("a/scan.nii.gz") == "scan" and naming.stem("b/01_test.tif") == "01_test"
    assert naming.input_kind("x.nii") == "volume" and naming.input_kind("x.PNG") == "image"
    outs = naming.output_paths("out", "in/scan.nii.gz")
    assert outs["prob"] == Path("out/scan_prob.nii.gz") and outs["mask"].name == "scan_mask.nii.gz"
    assert set(naming.output_paths("o", "p.png")) == set(naming.OUTPUT_KINDS)


def test_pairing_keys_drop_known_tags():
    for name in ("01_test.tif", "01_manual1.gif", "01_test_mask.gif", "01_test_prob.png"):
        assert naming.key(name) == "01", name
    assert naming.key("scan-7_T1w.nii.gz") == "scan-7_t1w"


def test_bad_inputs_are_fastseg_value_errors(tmp_path):
    with pytest.raises(ValueError, match="not an image or volume file") as err:
        naming.input_kind(tmp_path / "notes.txt")
    assert isinstance(err.value, FastsegError)
    with pytest.raises(ValueError, match="no such file or folder"):
        naming.image_files([tmp_path / "missing.png"])
    with pytest.raises(ValueError, match="no image or volume files"):
        naming.image_files([tmp_path])
    (tmp_path / "a_mask.png").write_bytes(b"")
    (tmp_path / "a_fov.png").write_bytes(b"")
    with pytest.raises(ValueError, match="same key 'a'"):
        naming.keyed(tmp_path, "FOV")
    assert naming.same_stem([tmp_path / "x.png", tmp_path / "y" / "x.tif"])
