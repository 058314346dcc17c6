"""``fastseg report DIR``: (re)build ``DIR/report.html`` from the records in DIR
(:mod:`fastseg.report`)."""
from __future__ import annotations

from pathlib import Path

from fastseg._commands import CLIError


def run(args) -> int:
    from fastseg import report
    from fastseg.report.records import record_files

    out = Path(args.dir)
    if not out.is_dir():
        raise CLIError(f"folder not found: {out}")
    if not record_files(out):
        raise CLIError(f"no fastseg records (*_record.json) in {out}: segment into it first "
                       "(fastseg segment MODEL INPUTS --out DIR)")
    path = report.build(out, z_threshold=args.z_threshold)
    rows = report.read_records(out)
    flagged = sum(bool(f) for f in report.flag_rows(rows, z_threshold=args.z_threshold))
    print(f"{path}: {len(rows)} inputs, {flagged} flagged")
    return 0

