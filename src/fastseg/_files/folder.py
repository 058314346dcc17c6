"""What the process that owns an output folder does around the per-file work.

``fastseg segment`` and :func:`fastseg.distributed.segment_many` both: write the run
card once (:func:`start`), then for each input, whichever process segmented it, its
record and, for a scan, its row of ``volumes.csv`` (:func:`record`), and last sweep the
temporaries a killed process left and build ``report.html`` from every record in the
folder (:func:`finish`). Only the owning process writes these files, one at a time, so
many workers never race on them; each is written atomically, so a run killed between
two inputs leaves them whole, and a resumed run (``--skip-existing``) adds to them.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from fastseg import report
from fastseg._atomic import atomic_write_text, remove_stale_temporaries
from fastseg._files import naming
from fastseg.report.card import RUN_CARD_NAME
from fastseg.report.records import record_path

__all__ = ["VOLUMES_CSV", "VOLUME_COLUMNS", "start", "record", "finish", "read_volumes"]

#: The table of hippocampus volumes a run of scans leaves in its folder.
VOLUMES_CSV = "volumes.csv"
#: Its columns: the scan's file name, then the volumes in mm³.
VOLUME_COLUMNS = ("scan", "left_mm3", "right_mm3", "total_mm3")


def start(out, seg, *, model_path, threshold=None) -> None:
    """Write the run card of a run of `seg` into `out` (the model, the machine)."""
    from fastseg import backends

    card = report.run_card(seg, model_path=model_path, backend=backends.get_backend(),
                           isa=backends.runtime().isa_name(), threshold=threshold)
    report.write_run_card(out, card)


def record(out, file_report) -> None:
    """Write the record of one input and, for a scan that was segmented, its volumes row."""
    kind = naming.input_kind(file_report.path)
    rec = report.record_of(file_report, kind=kind, out_dir=out,
                           fov_estimated=file_report.fov_estimated, facts=file_report.facts,
                           pictures=list(file_report.pictures) or None,
                           numbers=_volume_numbers(file_report))
    report.write_record(out, rec)
    if file_report.volumes is not None:
        _write_volume_row(out, Path(file_report.path).name, file_report.volumes)


def _volume_numbers(file_report):
    v = file_report.volumes
    if v is None:
        return None
    return {"left_mm3": v["left"], "right_mm3": v["right"], "volume_mm3": v["total"]}


def read_volumes(out) -> dict:
    """``{scan: {column: value}}`` of the folder's ``volumes.csv`` ({} when there is none;
    rows that are not a scan's volumes are left out)."""
    path = Path(out) / VOLUMES_CSV
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    rows = {}
    for row in csv.DictReader(io.StringIO(text)):
        try:
            rows[row["scan"]] = {c: float(row[c]) for c in VOLUME_COLUMNS[1:]}
        except (KeyError, TypeError, ValueError):
            continue  # a row a person or another program made: not ours to trust
    return rows


def _write_volume_row(out, scan: str, volumes: dict) -> None:
    rows = read_volumes(out)
    rows[scan] = {"left_mm3": volumes["left"], "right_mm3": volumes["right"],
                  "total_mm3": volumes["total"]}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(VOLUME_COLUMNS)
    for name in sorted(rows):
        writer.writerow([name] + [f"{rows[name][c]:.1f}" for c in VOLUME_COLUMNS[1:]])
    atomic_write_text(Path(out) / VOLUMES_CSV, buf.getvalue())


def finish(out, inputs) -> Path:
    """Sweep the temporaries a killed process left (never an output), build the report.

    Returns the path of ``report.html``.
    """
    names = [p.name for path in inputs for p in naming.output_paths(out, path).values()]
    names += [record_path(out, naming.stem(path)).name for path in inputs]
    names += [VOLUMES_CSV, report.REPORT_NAME, RUN_CARD_NAME]
    remove_stale_temporaries(out, names)
    return report.build(out)
