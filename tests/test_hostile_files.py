"""Hostile files: every reader checks what a file declares against what it holds before it
allocates, and answers any bad file with one of fastseg's errors naming the file and the
field (docs/reliability.md). Each finding of the fuzz targets (fuzz/) is a test here: a
crafted file below, and the failing inputs themselves in fuzz/regressions/, replayed."""
import gzip
import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

import fastseg
from fastseg import io as fio
from fastseg import models, nn
from fastseg.data import folder, load_msd, load_nifti, read_image, read_mask
from fastseg.errors import FastsegError
from fastseg.report.records import read_record
from fastseg.segmenter import Segmenter

REGRESSIONS = Path(__file__).resolve().parent.parent / "fuzz" / "regressions"


# ---- NIfTI -------------------------------------------------------------------------------


def _nifti_bytes(shape=(40, 40, 40), declared=None, dtype=np.float32, nifti2=False):
    """A real scan's bytes, its header's dim field then set to `declared`."""
    klass = nib.Nifti2Image if nifti2 else nib.Nifti1Image
    img = klass(np.random.default_rng(0).random(shape).astype(dtype), np.eye(4))
    raw = bytearray(img.to_bytes())
    if declared is not None:
        header = img.header.copy()
        header.set_data_shape(declared)
        raw[:len(header.binaryblock)] = header.binaryblock
    return bytes(raw)


def test_nifti_header_claiming_30000_cubed_is_refused_by_its_numbers(tmp_path):
    # The reported case: `fastseg segment` said "error: MemoryError", naming nothing.
    path = tmp_path / "scan.nii"
    path.write_bytes(_nifti_bytes(declared=(30000, 30000, 30000)))
    with pytest.raises(ValueError, match=r"scan.nii: header declares 30000x30000x30000 float32 "
                                         r"voxels \(108 TB\) from byte 352 but the file holds "
                                         r"256 kB"):
        load_nifti(path)


def test_gzipped_nifti_claiming_more_than_deflate_can_hold_is_refused_unread(tmp_path):
    path = tmp_path / "scan.nii.gz"
    path.write_bytes(gzip.compress(_nifti_bytes(declared=(30000, 30000, 30000))))
    with pytest.raises(ValueError, match=r"scan.nii.gz: header declares 30000x30000x30000 "
                                         r"float32 voxels \(108 TB\) but the file holds .* kB, "
                                         r"compressed, which inflate to at most .* MB"):
        load_nifti(path)


def test_gzipped_nifti_shorter_than_its_header_says(tmp_path):
    # Within DEFLATE's bound (40 kB of noise may inflate to 41 MB), but the stream ends
    # early: inflated only as far as declared, then the shortfall is named.
    raw = _nifti_bytes(shape=(4, 4, 4), declared=(200, 200, 200))
    noise = np.random.default_rng(1).integers(0, 256, 40000, dtype=np.uint8).tobytes()
    path = tmp_path / "short.nii.gz"
    path.write_bytes(gzip.compress(raw + noise))
    with pytest.raises(ValueError, match=r"short.nii.gz: header declares 200x200x200 float32 "
                                         r"voxels \(32 MB\) from byte 352 but the gzip stream "
                                         r"holds 40.6 kB"):
        load_nifti(path)


def test_gzip_trailing_data_is_checked_and_dropped(tmp_path):
    raw = _nifti_bytes(shape=(3, 4, 5))
    path = tmp_path / "tail.nii.gz"
    path.write_bytes(gzip.compress(raw + b"extra bytes after the data"))
    assert load_nifti(path).shape == (3, 4, 5)
    broken = bytearray(path.read_bytes())
    broken[-5] ^= 0xFF  # the length in the trailer, after the data nibabel would read
    path.write_bytes(bytes(broken))
    with pytest.raises(ValueError, match="tail.nii.gz: truncated or corrupt gzip"):
        load_nifti(path)


@pytest.mark.parametrize("field,value,message", [
    ("datatype", 4096, r"not a NIfTI file \(header field datatype is 4096, not a NIfTI data "
                       r"type code\)"),
    ("vox_offset", np.inf, "header field vox_offset is inf, not a byte position"),
    ("vox_offset", 9.9e35, r"header declares 5x6x7 float32 voxels \(840 bytes\) from byte "
                           r"990000\d+ but the file holds"),
    ("sizeof_hdr", 748, r"header field sizeof_hdr is 748, not 348 \(NIfTI-1\)"),
])
def test_nifti_header_fields_found_by_fuzzing(tmp_path, field, value, message):
    # Fuzz findings: nibabel's HeaderDataError for an unknown datatype code escaped as
    # itself; a huge vox_offset reached numpy's memmap (OverflowError); nibabel mends a
    # wrong sizeof_hdr and reads on, so the other checks never saw the header.
    raw = bytearray(_nifti_bytes(shape=(5, 6, 7)))
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(raw)), check=False)
    header[field] = value
    raw[:348] = header.binaryblock
    path = tmp_path / "bad.nii"
    path.write_bytes(bytes(raw))
    with pytest.raises(FastsegError, match=message) as err:
        load_nifti(path)
    assert str(path) in str(err.value)


def test_nifti_header_extension_running_past_the_file(tmp_path):
    raw = bytearray(_nifti_bytes(shape=(2, 2, 2)))
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(raw)), check=False)
    header["vox_offset"] = 368
    raw[:348] = header.binaryblock
    # extension flag, then one extension whose size is 2 GB: nibabel would read it whole
    raw[348:352] = b"\x01\0\0\0"
    raw[352:352] = struct.pack("<ii", 2**31 - 16, 6) + bytes(8)
    path = tmp_path / "ext.nii"
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"ext.nii: header extension at byte 352 declares "
                                         r"2147483632 bytes but the file holds 400 bytes"):
        load_nifti(path)


def test_nifti_pair_whose_image_file_is_short(tmp_path):
    img = nib.Nifti1Pair(np.zeros((6, 6, 6), np.float32), np.eye(4))
    img.to_filename(tmp_path / "pair.hdr")
    (tmp_path / "pair.img").write_bytes(bytes(100))
    with pytest.raises(ValueError, match=r"pair.img: header declares 6x6x6 float32 voxels "
                                         r"\(864 bytes\) from byte 0 but the file holds 100"):
        load_nifti(tmp_path / "pair.hdr")


def test_negative_and_absurd_dims(tmp_path):
    raw = bytearray(_nifti_bytes(shape=(2, 3, 4)))
    raw[40:56] = struct.pack("<8h", 3, 2, -3, 4, 1, 1, 1, 1)
    path = tmp_path / "neg.nii"
    path.write_bytes(bytes(raw))
    with pytest.raises(FastsegError, match="neg.nii: header field dim declares a negative size"):
        load_nifti(path)
    raw[40:42] = struct.pack("<h", 9)
    path.write_bytes(bytes(raw))
    with pytest.raises(FastsegError, match=r"header field dim\[0\] \(the number of axes\) is 9"):
        load_nifti(path)


# ---- images -------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes, length=None) -> bytes:
    n = len(data) if length is None else length
    return struct.pack(">I", n) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width, height, idat=None, idat_length=None):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(bytes(width + 1)) if idat is None else idat
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data, idat_length)
            + _chunk(b"IEND", b""))


def test_png_declaring_more_pixels_than_the_limit(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(_png(9000, 9000))  # 81 M pixels: over fastseg's 67 M, under Pillow's
    with pytest.raises(ValueError) as err:
        read_image(path)
    assert str(err.value) == (f"{path}: declares 9000x9000 pixels (81,000,000), more than the "
                              "67,108,864 fastseg reads (a decompression bomb? set "
                              "FASTSEG_MAX_IMAGE_PIXELS to read larger images)")
    path.write_bytes(_png(100000, 100000))  # 10**10: Pillow's own bomb check comes first
    with pytest.raises(FastsegError, match=r"big.png: .*10000000000 pixels.*fastseg reads at "
                                           r"most 67,108,864 pixels; set "
                                           r"FASTSEG_MAX_IMAGE_PIXELS"):
        read_mask(path)


def test_pixel_limit_from_the_environment_and_the_module(tmp_path, monkeypatch):
    path = tmp_path / "small.png"
    Image.fromarray(np.zeros((12, 10), np.uint8)).save(path)
    monkeypatch.setenv("FASTSEG_MAX_IMAGE_PIXELS", "119")
    with pytest.raises(ValueError, match=r"declares 10x12 pixels \(120\), more than the 119"):
        read_image(path)
    monkeypatch.setenv("FASTSEG_MAX_IMAGE_PIXELS", "120")
    assert read_image(path).shape == (12, 10)
    monkeypatch.setenv("FASTSEG_MAX_IMAGE_PIXELS", "many")
    with pytest.raises(ValueError, match="FASTSEG_MAX_IMAGE_PIXELS='many': expected a "
                                         "positive whole number"):
        read_image(path)
    monkeypatch.delenv("FASTSEG_MAX_IMAGE_PIXELS")
    monkeypatch.setattr(folder, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ValueError, match="more than the 100 fastseg reads"):
        read_mask(path)


def test_a_raised_limit_raises_pillows(tmp_path, monkeypatch):
    path = tmp_path / "small.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    monkeypatch.setenv("FASTSEG_MAX_IMAGE_PIXELS", str(10**9))
    read_image(path)
    assert Image.MAX_IMAGE_PIXELS == 10**9


def test_png_chunk_longer_than_the_file(tmp_path):
    # Fuzz finding: Pillow reads the rest of an IDAT chunk in one call sized by the chunk's
    # declared length (MemoryError under the fuzz run's memory cap, for a 93-byte file).
    path = tmp_path / "chunk.png"
    path.write_bytes(_png(4, 4, idat_length=4_177_526_820))
    with pytest.raises(ValueError, match=r"cannot read image .*chunk.png: PNG chunk IDAT at "
                                         r"byte 33 declares "
                                         r"4177526820 bytes but the file holds 68 bytes"):
        read_image(path)


def test_only_the_four_image_formats_are_decoded(tmp_path):
    # Fuzz finding: Pillow tried every format it knows on a .jpg; its GIMP-brush reader
    # allocated a comment of the size the file declared (MemoryError).
    gbr = struct.pack(">IIIIII", 28 + 10, 2, 1, 1, 1, 0x47494D50) + b"\xff" * 10
    gbr = struct.pack(">I", 2**31 - 1) + gbr[4:]
    path = tmp_path / "brush.jpg"
    path.write_bytes(gbr)
    with pytest.raises(ValueError, match="cannot read image .*brush.jpg: cannot identify"):
        read_image(path)


def test_tiff_fallback_errors_and_strips_past_the_file(tmp_path):
    import tifffile

    path = tmp_path / "f.tif"
    tifffile.imwrite(path, np.zeros((6, 7), np.float16))  # Pillow reads no float16 TIFF
    assert read_mask(path).shape == (6, 7)
    raw = bytearray(path.read_bytes())
    page = tifffile.TiffFile(path).pages.first
    (tag,) = [t for t in page.tags if t.name == "StripByteCounts"]
    offset = tag.valueoffset
    raw[offset:offset + 4] = struct.pack("<I", 4_282_983_921)  # fuzz finding: MemoryError
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"cannot read image .*f.tif: a strip or tile at byte "
                                         r"\d+ declares "
                                         r"4282983921 bytes but the file holds"):
        read_mask(path)
    deflated = tmp_path / "z.tif"
    tifffile.imwrite(deflated, np.ones((16, 16), np.float16), compression="zlib")
    raw = bytearray(deflated.read_bytes())
    page = tifffile.TiffFile(deflated).pages.first
    end = page.dataoffsets[0] + page.databytecounts[0]
    raw[end - 1] ^= 0xFF  # the stream's Adler-32 check: zlib.error escaped (fuzz finding)
    deflated.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="cannot read .*z.tif with Pillow .* nor tifffile "
                                         r"\(error: Error -3 while decompressing"):
        read_mask(deflated)


# ---- model files --------------------------------------------------------------------------


def _tiny_file(tmp_path):
    path = tmp_path / "good.fseg"
    fastseg.save(nn.Sequential(nn.Flatten(), nn.Linear(800, 2)), path)
    return path


def _rewrite(src, dst, header=None, members=None, compress=None):
    """A copy of model file `src` with its header changed and members replaced."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "header.json" and header is not None:
                meta = json.loads(data)
                header(meta)
                data = json.dumps(meta).encode()
            data = (members or {}).get(item.filename, data)
            zout.writestr(item.filename, data, compress_type=compress)
    return dst


def _loads_refused(path, message):
    for load in (fastseg.load, Segmenter.load):
        with pytest.raises(FastsegError, match=message) as err:
            load(path)
        assert str(path) in str(err.value)


def test_linear_layer_declaring_10_to_the_12_inputs(tmp_path):
    # The reported case: stopped only by a failing 116 TiB allocation.
    def grow(header):
        header["meta"]["architecture"]["children"][1][1]["args"]["in_features"] = 10**12

    path = _rewrite(_tiny_file(tmp_path), tmp_path / "linear.fseg", header=grow)
    _loads_refused(path, r"architecture: layer '1' \(Linear\) declares a weight of shape "
                         r"\(2, 1000000000000\) \(8 TB as float32\) but the stored array "
                         r"'1.weight' has shape \(2, 800\)")


def test_a_declared_parameter_that_is_not_stored(tmp_path):
    def more(header):
        header["meta"]["architecture"]["children"].append(
            ["2", {"class": "Conv2d", "args": {"in_channels": 10**6, "out_channels": 10**6,
                                               "kernel_size": 9}}])

    path = _rewrite(_tiny_file(tmp_path), tmp_path / "more.fseg", header=more)
    _loads_refused(path, r"layer '2' \(Conv2d\) declares a weight of shape \(1000000, "
                         r"1000000, 9, 9\) \(324 TB as float32\) but the file stores no "
                         r"array '2.weight'")


def test_npy_header_declaring_more_than_its_member_holds(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (2, 10**12)})
    path = _rewrite(_tiny_file(tmp_path), tmp_path / "npy.fseg",
                    members={"arrays/00000.npy": header.getvalue() + bytes(64)})
    _loads_refused(path, r"arrays/00000.npy \(array '1.weight'\): its header declares shape "
                         r"\(2, 1000000000000\) float32 \(8 TB\) but the member holds 64 bytes")


def test_zip_members_that_cannot_be_read_safely(tmp_path):
    good = _tiny_file(tmp_path)
    # Fuzz finding: zipfile's RuntimeError for a member flagged as encrypted escaped.
    raw = bytearray(good.read_bytes())
    central = raw.rindex(b"PK\x01\x02")  # the last member's central directory entry
    raw[central + 8] |= 1
    (tmp_path / "enc.fseg").write_bytes(bytes(raw))
    _loads_refused(tmp_path / "enc.fseg", "is encrypted; fastseg files never are")
    bz = _rewrite(good, tmp_path / "bz.fseg", compress=zipfile.ZIP_BZIP2)
    _loads_refused(bz, "compressed with method 12; fastseg reads stored or deflated members")
    deflated = _rewrite(good, tmp_path / "deflated.fseg", compress=zipfile.ZIP_DEFLATED)
    assert repr(fastseg.load(deflated)) == repr(fastseg.load(good))
    raw = bytearray(deflated.read_bytes())
    central = raw.rindex(b"PK\x01\x02")
    raw[central + 24:central + 28] = struct.pack("<I", 2**31)  # uncompressed size: 2 GB
    (tmp_path / "bomb.fseg").write_bytes(bytes(raw))
    _loads_refused(tmp_path / "bomb.fseg", r"arrays/00001.npy declares 2.15 GB but the "
                                           r"archive holds")


def test_header_json_limits(tmp_path, monkeypatch):
    good = _tiny_file(tmp_path)
    deep = _rewrite(good, tmp_path / "deep.fseg",
                    members={"header.json": b"[" * 100000 + b"]" * 100000})
    _loads_refused(deep, r"header.json is not valid JSON \(nested too deeply\)")
    big_int = _rewrite(good, tmp_path / "int.fseg", members={"header.json": b"9" * 5000})
    _loads_refused(big_int, r"header.json is not valid JSON \(Exceeds the limit")
    monkeypatch.setattr(fio, "MAX_HEADER_BYTES", 100)
    _loads_refused(good, r"header.json declares .* bytes, more than the 100 bytes such a "
                         r"member may have")


@pytest.mark.parametrize("children,message", [
    ([["0", {"class": "ReLU"}], ["0", {"class": "Linear", "args": {
        "in_features": 10**9, "out_features": 10**9}}]],
     "Sequential has two children named '0'"),
    ([["_parameters", {"class": "ReLU"}]], "child name '_parameters' is not a layer name"),
    ([["a.b", {"class": "ReLU"}]], "child name 'a.b' is not a layer name"),
    ([["training", {"class": "ReLU"}]], "child name 'training' is not a layer name"),
])
def test_architecture_structure(tmp_path, children, message):
    path = _rewrite(_tiny_file(tmp_path), tmp_path / "arch.fseg",
                    header=lambda h: h["meta"]["architecture"].update(children=children))
    _loads_refused(path, message)


def test_npy_members_of_other_kinds(tmp_path):
    good = _tiny_file(tmp_path)
    structured = io.BytesIO()
    np.save(structured, np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]))
    v3 = io.BytesIO()
    np.lib.format.write_array(v3, np.zeros((2, 800), np.float32), version=(3, 0))
    for name, data, message in [
        ("structured", structured.getvalue(), r"dtype \[\('a', '<f4'\), \('b', '<i4'\)\]"),
        ("v3", v3.getvalue(), r"unsupported .npy format version \(3, 0\)"),
        # found writing this test: NumPy's header parser let tokenize.TokenError out
        ("parens", b"\x93NUMPY\x01\x00" + struct.pack("<H", 9000) + b"(" * 9000,
         "not a plain .npy array"),
        ("unbalanced", b"\x93NUMPY\x01\x00" + struct.pack("<H", 16) + b"{'descr': (   \n",
         "not a plain .npy array"),
    ]:
        path = _rewrite(good, tmp_path / f"{name}.fseg", members={"arrays/00000.npy": data})
        _loads_refused(path, message)


@pytest.mark.parametrize("name", sorted(fio._WHITELIST))
def test_declared_parameter_shapes_are_the_layers(name):
    """check_parameter_shapes' rules against the layers themselves, for every class a
    model file may name: a new layer with parameters needs its rule."""
    samples = {"Conv2d": nn.Conv2d(3, 4, 5, stride=2, padding=1),
               "Conv3d": nn.Conv3d(2, 3, (1, 2, 3), bias=False), "Linear": nn.Linear(7, 5),
               "MaxPool2d": nn.MaxPool2d(2), "MaxPool3d": nn.MaxPool3d(2),
               "Dropout": nn.Dropout(0.3), "Flatten": nn.Flatten(),
               "PixelLogits": nn.PixelLogits(2, 3, 4), "Sequential": nn.Sequential(nn.ReLU()),
               "ModuleList": nn.ModuleList([nn.Linear(2, 3)]),
               "Parallel": nn.Parallel(nn.Linear(2, 3), nn.Tanh())}
    module = samples.get(name) or fio._WHITELIST[name]()
    declared = {key: shape for key, shape, _ in fio._declared_parameters(fio.describe(module))}
    assert declared == {k: v.shape for k, v in module.state_dict().items()}


def test_every_model_of_the_zoo_round_trips_its_shape_check(tmp_path):
    for name in models.names():
        net = models.get(name)
        stored = {k: v.shape for k, v in net.state_dict().items()}
        fio.check_parameter_shapes(fio.describe(net), stored)


# ---- dataset.json ---------------------------------------------------------------------------


def _task(root, training):
    root.mkdir(exist_ok=True)
    (root / "dataset.json").write_text(json.dumps({"training": training, "labels": {
        "0": "background", "1": "x"}}))
    return root


@pytest.mark.parametrize("rel", ["../outside.nii.gz", "/etc/passwd", "imagesTr/../../x.nii"])
def test_dataset_json_paths_stay_inside_the_task_folder(tmp_path, rel):
    root = _task(tmp_path / "task", [{"image": rel, "label": "./labelsTr/a.nii.gz"}])
    with pytest.raises(ValueError, match=r"dataset.json: image .* leaves the task folder"):
        load_msd(root)


def test_dataset_json_size_and_depth(tmp_path, monkeypatch):
    root = tmp_path / "task"
    root.mkdir()
    (root / "dataset.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ValueError, match=r"dataset.json: not valid JSON \(nested too deeply\)"):
        load_msd(root)
    from fastseg.data import msd

    monkeypatch.setattr(msd, "MAX_DATASET_JSON_BYTES", 1000)
    (root / "dataset.json").write_text(json.dumps({"training": ["x" * 2000]}))
    with pytest.raises(ValueError, match=r"dataset.json: 2.02 kB, more than the 1 kB a "
                                         r"dataset.json may have"):
        load_msd(root)


# ---- report records ---------------------------------------------------------------------------


def test_record_numbers_beyond_any_float(tmp_path):
    # Found reviewing the reader: JSON integers have no bound, and math.isfinite(10**400)
    # raised OverflowError out of read_record.
    record = {"format": "fastseg-record", "version": 1, "input": "a.png", "stem": "a",
              "kind": "image", "status": "done"}
    for field, value, message in [("seconds", 10**400, "field 'seconds'"),
                                  ("numbers", {"x": 10**400}, "field 'numbers.x'"),
                                  ("facts", {"fov_fraction": 10**400},
                                   "field 'facts.fov_fraction'")]:
        path = tmp_path / "a_record.json"
        path.write_text(json.dumps({**record, field: value}))
        with pytest.raises(FastsegError, match=message):
            read_record(path)


def test_run_card_and_evaluation_numbers_beyond_any_float(tmp_path):
    # Found reviewing the report's other readers: float(10**400) and math.isfinite(10**400)
    # raised OverflowError out of read_run_card and read_evaluation (and report.build).
    from fastseg import report
    from fastseg.report.card import RUN_CARD_FORMAT, RUN_CARD_NAME, read_run_card
    from fastseg.report.evaluation import EVALUATION_FORMAT, EVALUATION_NAME, read_evaluation

    (tmp_path / RUN_CARD_NAME).write_text(json.dumps({
        "format": RUN_CARD_FORMAT, "version": 1, "fov_diameter": 10**400,
        "threshold": -10**400, "voxel_spacing": [1, 10**400]}))
    card = read_run_card(tmp_path)
    assert card["fov_diameter"] is None and card["threshold"] is None
    assert card["voxel_spacing"] is None
    (tmp_path / EVALUATION_NAME).write_text(json.dumps({
        "format": EVALUATION_FORMAT, "version": 1, "threshold": 10**400,
        "metrics": {"a": {"dice": 0.5}}}))
    assert read_evaluation(tmp_path)["threshold"] is None
    (tmp_path / EVALUATION_NAME).write_text(json.dumps({
        "format": EVALUATION_FORMAT, "version": 1, "metrics": {"a": {"dice": 10**400}}}))
    with pytest.raises(FastsegError, match=r"metrics.a.dice: expected a number or null"):
        read_evaluation(tmp_path)
    record = {"format": "fastseg-record", "version": 1, "input": "a.png", "stem": "a",
              "kind": "image", "status": "done"}
    (tmp_path / "a_record.json").write_text(json.dumps(record))
    (tmp_path / EVALUATION_NAME).unlink()
    assert report.build(tmp_path).is_file()


# ---- the command line -----------------------------------------------------------------------


def test_threads_beyond_any_machine_are_a_one_line_error(capsys):
    # Found reviewing the CLI for its fuzz target: --threads 99999999999 overflowed the C
    # int (a traceback, "internal error"); --threads 100000 would have started 10**5
    # OpenMP threads in the next kernel.
    from fastseg.cli import main

    for n in ("99999999999", "100000"):
        assert main(["info", "--threads", n]) == 2
        err = capsys.readouterr().err
        assert err.strip() == f"fastseg info: error: set_num_threads: n: must be <= 1024, got {n}"


# ---- the fuzz findings, replayed -----------------------------------------------------------

def _reader_calls(target, path):
    if target == "model_file":
        return [fastseg.load, Segmenter.load]
    if target in ("nii", "nii_gz"):
        return [load_nifti]
    if target in ("png", "tiff", "gif", "jpeg"):
        return [read_image, read_mask]
    if target == "record":
        return [read_record]
    raise AssertionError(target)


SUFFIX = {"model_file": ".fseg", "nii": ".nii", "nii_gz": ".nii.gz", "png": ".png",
          "tiff": ".tif", "gif": ".gif", "jpeg": ".jpg", "record": "_record.json"}


@pytest.mark.parametrize("finding", sorted(p.relative_to(REGRESSIONS).as_posix()
                                           for p in REGRESSIONS.glob("*/*")
                                           if p.parent.name in SUFFIX),
                         ids=str)
def test_fuzz_finding_is_answered_with_a_named_error(tmp_path, finding):
    """Every input a fuzz target stopped on: each reader now returns or raises one of
    fastseg's own errors, naming the file."""
    target = finding.split("/")[0]
    path = tmp_path / ("x" + SUFFIX[target])
    path.write_bytes((REGRESSIONS / finding).read_bytes())
    for read in _reader_calls(target, path):
        try:
            read(path)
        except FastsegError as exc:
            assert target == "record" or str(path) in str(exc), (finding, str(exc))
    assert os.listdir(tmp_path) == [path.name]
