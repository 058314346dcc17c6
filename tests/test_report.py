"""fastseg.report: records, run card, flags, the page and `fastseg report`, built from
records made by record_of on FileReports with real small PNGs (tests/_report_fixtures)."""
import json
import os
from html import unescape
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, unquote_to_bytes

import numpy as np
import pytest
from _report_fixtures import (
    StrictHTML,
    card,
    disc,
    hippocampi,
    photo,
    row_of,
    vessel_mask,
    volume,
)

from fastseg import report
from fastseg._files.segment_file import FileReport
from fastseg.cli import main
from fastseg.errors import InvalidValueError
from fastseg.report.records import read_record

FLAGS = 4  # the flags' column: #, input, pictures, status, flags, ...


def _out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    return out


def _page(out):
    path = report.build(out)
    assert path == out / "report.html"
    return path.read_text(encoding="utf-8")


def _photos(out, n=6, **kw):
    return [photo(out, f"img{i:02d}_test.png", seconds=1.0 + 0.1 * i, **kw) for i in range(n)]


# ---- the page ------------------------------------------------------------------------


def test_page_is_valid_html_and_names_every_input(tmp_path):
    out = _out(tmp_path)
    card(out)
    recs = _photos(out, 5)
    recs.append(photo(out, "broken.png", status="failed", error="cannot read broken.png"))
    page = _page(out)
    parsed = StrictHTML.check(page)
    text = " ".join(parsed.text)
    for rec in recs:
        assert rec["input"] in text
    assert "lai2d" in text and "avx2" in text  # the model card
    assert "cannot read broken.png" in text
    tags = [t for t, _ in parsed.starts]
    assert tags.count("tr") == len(recs) + 1
    # Thumbnails are lazy <img> of the PNGs, never embedded data.
    imgs = [a for t, a in parsed.starts if t == "img" and a.get("src")]
    assert len(imgs) == 5 and all(a.get("loading") == "lazy" for a in imgs)
    assert "data:image" not in page and "base64" not in page
    assert "http://" not in page and "https://" not in page  # nothing from the network


def test_links_are_relative_existing_files_inside_the_folder(tmp_path):
    out = _out(tmp_path)
    _photos(out, 3)
    volume(out, "scan.nii.gz")
    rec = photo(out, "gone.png")
    os.unlink(out / rec["pictures"][0]["path"])  # a picture deleted since
    parsed = StrictHTML.check(_page(out))
    links = [u for u in parsed.links if not u.startswith("data:")]
    assert links
    for url in links:
        path = PurePosixPath(unquote(url))
        assert not path.is_absolute() and ".." not in path.parts and ":" not in url
        assert (out / path).is_file(), url
    assert any(unquote(u) == "scan_left_axial.png" for u in links)
    assert "gone_overlay.png" not in " ".join(links)
    assert "missing" in row_of(_page(out), "gone.png")["cells"][2]


def test_file_names_are_escaped(tmp_path):
    out = _out(tmp_path)
    _photos(out, 2)
    name = '<b>&"x.png'
    photo(out, name)
    page = _page(out)
    assert "<b>&" not in page and '"x.png' not in page.replace("&quot;x.png", "")
    parsed = StrictHTML.check(page)
    assert name in " ".join(parsed.text)
    assert not any(t == "b" for t, _ in parsed.starts)  # no tag made of the name
    overlay = [u for u in parsed.links if unquote(u) == '<b>&"x_overlay.png']
    assert overlay and (out / unquote(overlay[0])).is_file()


def test_undecodable_and_hidden_file_names(tmp_path):
    out = _out(tmp_path)
    _photos(out, 1)
    odd = os.fsdecode(b"bad\xffname.png")  # not UTF-8: a lone surrogate in Python
    try:
        photo(out, odd)
    except (UnicodeEncodeError, OSError):
        pytest.skip("this file system refuses a name that is not UTF-8")
    photo(out, ".hidden.png")
    page = _page(out)
    parsed = StrictHTML.check(page)
    text = " ".join(parsed.text)
    assert "bad\\udcffname.png" in text and ".hidden.png" in text
    overlay = [u for u in parsed.links if u.startswith("bad%FFname")]
    assert overlay and os.path.isfile(os.path.join(os.fsencode(out),
                                                   unquote_to_bytes(overlay[0])))


def test_rows_carry_numbers_time_and_metrics_by_key(tmp_path):
    out = _out(tmp_path)
    _photos(out, 2)
    report.write_evaluation(out, [{"name": "img00", "dice": 0.8125, "auc": 0.9},
                                  {"name": "zzz", "dice": 0.1, "auc": 0.2}],
                            {"name": "mean", "dice": 0.45, "auc": 0.55}, threshold=0.5)
    page = _page(out)
    StrictHTML.check(page)
    header = page[page.index("<thead>"):page.index("</thead>")]
    assert "Dice" in header and "AUC" in header and "vessel %" in header
    cells = row_of(page, "img00_test.png")["cells"]
    assert "0.812" in cells and "0.900" in cells and "1.00" in cells
    frac = 100 * vessel_mask().sum() / disc().sum()
    assert f"{frac:.2f}" in cells and "40×48" in cells
    other = row_of(page, "img01_test.png")["cells"]
    assert "0.812" not in other  # pairs by key: img01 has no metrics
    assert "Metrics from evaluation.json" in page


def test_volume_rows_show_volumes_and_planes(tmp_path):
    out = _out(tmp_path)
    card(out, "volume")
    volume(out, "scan.nii.gz", spacing=(1.0, 1.5, 2.0))
    page = _page(out)
    StrictHTML.check(page)
    cells = row_of(page, "scan.nii.gz")["cells"]
    assert "864" in cells  # 6*8*6 voxels of 3 mm³ per side
    assert "1,728" in cells
    assert "left axial" in cells[2] and "right coronal" in cells[2]
    assert cells[FLAGS] == "—"  # not flagged


def test_build_errors(tmp_path):
    with pytest.raises(InvalidValueError, match="folder not found"):
        report.build(tmp_path / "nope")
    with pytest.raises(InvalidValueError, match="no fastseg records"):
        report.build(tmp_path)


# ---- one fixture per flag --------------------------------------------------------------


def _flag_empty(out):
    photo(out, "flagged.png", mask=np.zeros((48, 40), bool))
    return "the mask is empty"


def _flag_border(out):
    m = vessel_mask()
    m[0:10, 20] = True
    photo(out, "flagged.png", mask=m, fov=np.ones((48, 40), bool))
    return "touches the image border"


def _flag_components(out):
    lab = hippocampi()
    lab[1:3, 1:3, 1:3] = 1  # an island of the left side
    for i in range(4):
        volume(out, f"ok{i}.nii.gz")
    volume(out, "flagged.nii.gz", labels=lab)
    return "left hippocampus is in 2 pieces"


def _flag_outlier(out):
    m = vessel_mask(width=10)
    photo(out, "flagged.png", mask=m)
    return "far from the run's median"


def _flag_fov(out):
    photo(out, "flagged.png", fov_estimated=True)
    return "field of view estimated"


def _flag_skipped(out):
    photo(out, "flagged.png", status="skipped")
    return "not segmented: its outputs existed"


def _flag_failed(out):
    photo(out, "flagged.png", status="failed", error="FOV flagged_mask.png is 3x3")
    return "FOV flagged_mask.png is 3x3"


def _flag_border_volume(out):
    lab = hippocampi()
    lab[5:11, 6:14, 15:24] = 2  # the right side runs off the scan
    volume(out, "flagged.nii.gz", labels=lab)
    return "right hippocampus touches the volume border"


def _flag_missing_side(out):
    volume(out, "flagged.nii.gz", labels=hippocampi(right=False))
    return "no right hippocampus"


FLAG_FIXTURES = [_flag_empty, _flag_border, _flag_components, _flag_outlier, _flag_fov,
                 _flag_skipped, _flag_failed, _flag_border_volume, _flag_missing_side]


@pytest.mark.parametrize("make", FLAG_FIXTURES, ids=lambda f: f.__name__[6:])
def test_each_flag_is_shown_with_its_reason(tmp_path, make):
    out = _out(tmp_path)
    _photos(out, 5)  # a clean run around it
    reason = make(out)
    page = _page(out)
    StrictHTML.check(page)
    row = row_of(page, "flagged")
    assert reason in row["cells"][FLAGS], row["cells"][FLAGS]
    assert "flagged" in row["class"].split()
    for other in ("img00_test.png", "img04_test.png"):
        clean = row_of(page, other)
        assert clean["cells"][FLAGS] == "—" and "flagged" not in clean["class"].split()


def test_photos_are_not_flagged_for_many_components(tmp_path):
    out = _out(tmp_path)
    m = vessel_mask()
    m[10, 5:12] = True
    m[30, 25:32] = True  # three pieces
    rec = photo(out, "many.png", mask=m)
    assert rec["facts"]["components"] == 3
    assert report.flag_rows(report.read_records(out)) == [[]]


def test_outlier_threshold_is_shown_and_needs_five_rows(tmp_path):
    out = _out(tmp_path)
    _photos(out, 3)
    photo(out, "wide.png", mask=vessel_mask(width=10))
    page = _page(out)
    assert "not checked here: fewer than 5 done inputs" in page
    assert "far from" not in page
    photo(out, "more.png")
    page = unescape(_page(out))
    assert "beyond ±3.5" in page and "far from the run's median" in page
    path = report.build(out, z_threshold=100)
    assert "far from" not in path.read_text() and "beyond ±100" in path.read_text()


# ---- robust z-score ------------------------------------------------------------------


def test_robust_z_on_a_known_set():
    values = [10, 11, 9, 10, 12, 10, 30]  # median 10, MAD 1
    z = report.robust_z(values)
    np.testing.assert_allclose(z, 0.6745 * (np.array(values) - 10.0), rtol=1e-12)
    rows = [{"status": "done", "kind": "image", "numbers": {"vessel_fraction": v / 100}}
            for v in values]
    flags = report.flag_rows(rows)
    assert [bool(f) for f in flags] == [False] * 6 + [True]
    assert "robust z +13.5" in flags[-1][0].reason and "beyond ±3.5" in flags[-1][0].reason
    assert not any(report.flag_rows(rows, z_threshold=14))
    assert not any(report.flag_rows(rows[-4:]))  # fewer than 5 rows: not judged
    # MAD 0 (most values equal): the mean absolute deviation stands in.
    z0 = report.robust_z([5, 5, 5, 5, 5, 9])
    assert z0[-1] == pytest.approx(4 / (1.253314 * 4 / 6)) and z0[0] == 0
    assert not report.robust_z([3, 3, 3, 3, 3]).any()
    # Volumes: per side, in mm³; skipped and failed rows are left out of the statistics.
    vols = [{"status": "done", "kind": "volume", "numbers": {"left_mm3": v}}
            for v in (3000, 3100, 2900, 3050, 2950, 900)]
    vols.append({"status": "failed", "kind": "volume", "numbers": {}, "error": "x"})
    flags = report.flag_rows(vols)
    assert "left volume 900 mm³" in flags[5][0].reason and not any(flags[:5])


# ---- mask facts -------------------------------------------------------------------------


def test_mask_facts_on_known_masks():
    m = np.zeros((10, 12), bool)
    m[2:4, 2:4] = True
    m[6:8, 6:8] = True
    m[5, 4] = True  # touches the others only diagonally: a third component
    f = report.mask_facts(m)
    assert f == {"ndim": 2, "foreground": 9, "empty": False, "components": 3,
                 "touches_border": False}
    m[9, 11] = True
    assert report.mask_facts(m)["touches_border"]
    fov = np.zeros_like(m)
    fov[:5] = True
    f = report.mask_facts(m, fov)
    assert f["fov_pixels"] == 60 and f["fov_fraction"] == pytest.approx(4 / 60)
    assert report.mask_facts(np.zeros((4, 4)))["empty"]
    assert report.mask_facts(np.zeros((4, 4)))["components"] == 0
    with pytest.raises(InvalidValueError):
        report.mask_facts(np.zeros(4))


def test_mask_facts_per_label():
    lab = hippocampi()
    lab[0, 0, 0] = 2  # a right island in the corner
    f = report.mask_facts(lab, labels=report.HIPPOCAMPUS_LABELS)
    assert f["components"] == 3 and f["touches_border"]
    left, right = f["labels"]["left"], f["labels"]["right"]
    assert left == {"value": 1, "foreground": 288, "empty": False, "components": 1,
                    "touches_border": False}
    assert right["components"] == 2 and right["touches_border"] and right["foreground"] == 289
    f = report.mask_facts(hippocampi(left=False), labels=[1, 2])
    assert f["labels"]["1"]["empty"] and not f["labels"]["2"]["empty"]
    nums = report.volume_numbers(hippocampi(), (1, 2, 0.5), labels=report.HIPPOCAMPUS_LABELS)
    assert nums == {"volume_mm3": 576.0, "left_mm3": 288.0, "right_mm3": 288.0,
                    "spacing_mm": [1.0, 2.0, 0.5]}
    with pytest.raises(InvalidValueError):
        report.volume_numbers(hippocampi(), (1, 0, 1))


# ---- records ---------------------------------------------------------------------------


def test_record_schema_and_round_trip(tmp_path):
    out = _out(tmp_path)
    rec = photo(out, "01_test.tif", worker="tcp://w1")
    data = json.loads((out / "01_test_record.json").read_text())
    assert data["format"] == "fastseg-record" and data["version"] == 1
    assert data["input"] == "01_test.tif" and data["stem"] == "01_test"
    assert data["kind"] == "image" and data["status"] == "done" and data["worker"] == "tcp://w1"
    assert data["outputs"] == {"prob": "01_test_prob.png", "mask": "01_test_mask.png",
                               "overlay": "01_test_overlay.png"}
    assert data["pictures"] == [{"label": "overlay", "path": "01_test_overlay.png"}]
    assert set(data["numbers"]) == {"foreground", "fov_pixels", "vessel_fraction"}
    assert data["shape"] == [48, 40] and data["fov_estimated"] is False
    assert read_record(out / "01_test_record.json") == rec


def test_record_paths_must_be_inside_the_folder(tmp_path):
    out = _out(tmp_path)
    rep = FileReport(str(tmp_path / "a.png"), "done", outputs=(str(out / "a_prob.png"),),
                     shape=(4, 4), foreground=1, fov_pixels=16)
    with pytest.raises(InvalidValueError, match="not inside the output folder"):
        report.record_of(rep, kind="image", pictures={"x": tmp_path / "elsewhere.png"})
    with pytest.raises(InvalidValueError, match="kind"):
        report.record_of(rep, kind="photo")


def test_skipped_never_replaces_a_done_record(tmp_path):
    out = _out(tmp_path)
    photo(out, "a.png")
    photo(out, "a.png", status="skipped")
    assert read_record(out / "a_record.json")["status"] == "done"
    photo(out, "b.png", status="skipped")  # none before: recorded, with its outputs if any
    assert read_record(out / "b_record.json")["status"] == "skipped"
    # A resumed run's skipped record links the outputs already in the folder.
    rec = report.record_of(FileReport(str(tmp_path / "a.png"), "skipped"), kind="image",
                           out_dir=out)
    assert rec["pictures"] == [{"label": "overlay", "path": "a_overlay.png"}]


BAD_RECORDS = {
    "corrupt": (b'{"format": "fastseg-record", "version": 1, "input": ', "not valid JSON"),
    "foreign": (b'{"format": "something-else", "version": 1}', "not a fastseg-record file"),
    "no-format": (b'[1, 2, 3]', "not a JSON object"),
    "too-new": (b'{"format": "fastseg-record", "version": 99}', "newer than the 1"),
    "oversized": (b'{"format": "fastseg-record", "version": 1, "pad": "' + b"x" * (1 << 20)
                  + b'"}', "more than the 1048576"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00", "not valid JSON"),
    "bad-field": (json.dumps({"format": "fastseg-record", "version": 1, "input": "x.png",
                              "stem": "bad-field", "kind": "image", "status": "done",
                              "seconds": "soon"}).encode(), "field 'seconds'"),
    "escaping": (json.dumps({"format": "fastseg-record", "version": 1, "input": "x.png",
                             "stem": "escaping", "kind": "image", "status": "done",
                             "pictures": [{"label": "o", "path": "../../etc/passwd"}]}).encode(),
                 "field 'pictures'"),
    "nan": (b'{"format": "fastseg-record", "version": 1, "seconds": NaN}', "not valid JSON"),
    "deep": (b'{"format": "fastseg-record", "version": 1, "facts": ' + b"[" * 100000
             + b"]" * 100000 + b"}", "not valid JSON"),
}


def test_bad_records_become_failed_rows(tmp_path):
    out = _out(tmp_path)
    _photos(out, 2)
    for stem, (content, _) in BAD_RECORDS.items():
        (out / f"{stem}_record.json").write_bytes(content)
    (out / "dir_record.json").mkdir()
    page = _page(out)
    StrictHTML.check(page)
    for stem, (_, reason) in BAD_RECORDS.items():
        row = row_of(page, stem)
        assert "failed" in row["cells"][3]
        assert "record unreadable: " in row["cells"][FLAGS] and reason in row["cells"][FLAGS], \
            (stem, row["cells"][FLAGS])
    assert "record unreadable" in row_of(page, "dir")["cells"][FLAGS]
    assert "etc/passwd" not in " ".join(StrictHTML.check(page).links)
    assert row_of(page, "img00_test.png")["cells"][FLAGS] == "—"


def test_unlinkable_picture_paths_are_shown_missing(tmp_path):
    out = _out(tmp_path)
    _photos(out, 1)
    rec = json.loads((out / "img00_test_record.json").read_text())
    rec["pictures"] = [{"label": "long", "path": "x" * 5000 + ".png"},
                       {"label": "loop", "path": "loop/a.png"}]
    (out / "img00_test_record.json").write_text(json.dumps(rec))
    (out / "loop").symlink_to(out / "loop")
    page = _page(out)
    StrictHTML.check(page)
    cells = row_of(page, "img00_test.png")["cells"]
    assert cells[2].count("missing") == 2 and "img00" not in " ".join(
        StrictHTML.check(page).links)


def test_bad_run_card_and_evaluation_do_not_break_the_page(tmp_path):
    out = _out(tmp_path)
    _photos(out, 2)
    page = _page(out)
    assert "No run card" in page
    (out / "fastseg-run.json").write_text('{"format": "fastseg-run", "version": 7}')
    (out / "evaluation.json").write_text("{not json")
    page = _page(out)
    StrictHTML.check(page)
    assert "Run card unreadable: version 7 is newer" in page
    assert "evaluation.json unreadable: not valid JSON" in page


def test_run_card_reads_what_a_segmenter_holds(tmp_path):
    import fastseg

    seg = fastseg.Segmenter(model="lai3d", patch_size=12, threshold="auto", keep_largest=1)
    seg.threshold_ = 0.35
    seg.training_spacing_ = (1.0, 1.0, 1.25)  # the attribute a volume model is to record
    c = report.run_card(seg, model_path=Path("m/model.fseg"), backend="c", isa="avx512")
    assert c["network"] == "lai3d" and c["kind"] == "3d" and c["patch_size"] == 12
    assert c["threshold"] == 0.35 and c["threshold_source"] == "model"
    assert c["voxel_spacing"] == [1.0, 1.0, 1.25] and c["fov_diameter"] is None
    assert c["fastseg_version"] == fastseg.__version__ and c["isa"] == "avx512"
    assert c["model_name"] == "model.fseg" and c["keep_largest"] == 1
    # An unfitted "auto" threshold, missing attributes, a run's own threshold: no crash.
    bare = fastseg.Segmenter(model="lai3d", threshold="auto")
    c = report.run_card(bare, model_path="x.fseg", backend="numpy", isa="generic")
    # (the spacing is a setting of every volume segmenter, fitted or not: 1 mm by default)
    assert c["threshold"] is None and c["voxel_spacing"] == [1.0, 1.0, 1.0]
    c = report.run_card(object(), model_path="x.fseg", backend="c", isa="avx2", threshold=0.4)
    assert c["threshold"] == 0.4 and c["threshold_source"] == "run" and c["network"] is None
    report.write_run_card(tmp_path, c)
    data = json.loads((tmp_path / "fastseg-run.json").read_text())
    assert data["format"] == "fastseg-run" and data["version"] == 1
    assert report.read_run_card(tmp_path)["threshold"] == 0.4


# ---- the command line ----------------------------------------------------------------


def test_cli_report(tmp_path, capsys):
    out = _out(tmp_path)
    card(out)
    _photos(out, 5)
    photo(out, "bad.png", status="failed", error="boom")
    assert main(["report", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "6 inputs, 1 flagged" in stdout and (out / "report.html").is_file()
    StrictHTML.check((out / "report.html").read_text())


@pytest.mark.parametrize("where, message", [("missing", "folder not found"),
                                            ("empty", "no fastseg records")])
def test_cli_report_errors(tmp_path, capsys, where, message):
    target = tmp_path / where
    if where == "empty":
        target.mkdir()
        (target / "x_prob.png").write_bytes(b"")
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fastseg report: error: ")
    assert message in lines[0]


def test_cli_evaluate_writes_evaluation_json(tmp_path, capsys):
    from PIL import Image

    preds, truth = tmp_path / "preds", tmp_path / "truth"
    preds.mkdir()
    truth.mkdir()
    m = vessel_mask()
    for key in ("01", "02"):
        Image.fromarray(m.astype(np.uint8) * 255).save(preds / f"{key}_test_mask.png")
        Image.fromarray(m.astype(np.uint8) * 255).save(truth / f"{key}_manual1.png")
    photo(preds, "01_test.png")  # a record pairing with key 01
    assert main(["evaluate", str(preds), str(truth)]) == 0
    capsys.readouterr()
    data = json.loads((preds / "evaluation.json").read_text())
    assert data["format"] == "fastseg-evaluation" and data["version"] == 1
    assert set(data["metrics"]) == {"01", "02"} and data["metrics"]["01"]["dice"] == 1.0
    assert data["threshold"] == 0.5 and "dice" in data["mean"]
    cells = row_of(_page(preds), "01_test.png")["cells"]
    assert "1.000" in cells
