"""``fastseg report DIR``: (re)build ``DIR/report.html`` from the records in DIR
(:mod:`fastseg.report`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from fastseg._commands import CLIError


def _z_threshold(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


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


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report", help="one HTML page of every result in a segment output folder",
        description="Build DIR/report.html from the records fastseg segment leaves in DIR "
        "(<stem>_record.json per input, fastseg-run.json for the model, evaluation.json "
        "when fastseg evaluate has run on DIR): the model at the top, one row per input "
        "with its pictures, numbers, metrics, time and flags (empty mask, mask on the "
        "border, extra components of a volume, an outlying vessel fraction or volume, an "
        "estimated FOV, a skipped or failed input). The page opens from disk, offline; "
        "it links the pictures in DIR, so keep it beside them.")
    p.add_argument("dir", metavar="DIR", help="a fastseg segment output folder")
    p.add_argument("--z-threshold", type=_z_threshold, default=3.5, metavar="Z",
                   help="robust z-score (median and MAD over the run) beyond which a vessel "
                   "fraction or volume is flagged (default 3.5)")
    p.set_defaults(func=run)
