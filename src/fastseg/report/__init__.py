"""One HTML page per run: every result of a ``fastseg segment`` folder checked at a glance.

A folder's report is rebuilt from the small JSON files the run leaves in it, so a run
split over a cluster or resumed later still gets one page:

- ``DIR/<stem>_record.json``: one per input (:mod:`.records`), what became of it;
- ``DIR/fastseg-run.json``: the run card (:mod:`.card`), the model and machine;
- ``DIR/evaluation.json``: metrics, when ``fastseg evaluate DIR TRUTH`` has run
  (:mod:`.evaluation`), paired with the rows by :func:`fastseg._files.naming.key`;
- ``DIR/report.html``: the page (:mod:`.html`), with the flags of :mod:`.flags`.

Contract for the segmentation (``fastseg segment``, the Dask workers)
---------------------------------------------------------------------
Once per run, in the process that owns the output folder::

    from fastseg import report
    report.write_run_card(out, report.run_card(seg, model_path=args.model,
                                               backend=fastseg.get_backend(),
                                               isa=fastseg.info.collect()["isa"],
                                               threshold=args.threshold))

Per input, where its :class:`~fastseg._files.segment_file.FileReport` is made (a worker
may write its own; each record is its own file, written atomically)::

    rec = report.record_of(file_report, kind=naming.input_kind(path), out_dir=out,
                           fov_estimated=fov_path is None,          # photos
                           facts=report.mask_facts(mask, fov),     # the mask written
                           numbers=report.volume_numbers(labels, scan.spacing,
                                                         labels=report.HIPPOCAMPUS_LABELS),
                           pictures=[("left axial", p1), ...])     # default: the overlay /
                                                                   # the three planes
    report.write_record(out, rec)

A failed or skipped input gets a record too (``record_of`` of its FileReport, no facts);
a skipped one never replaces the done record of the run that made its outputs. Last, in
the process that owns the folder::

    report.build(out)          # DIR/report.html, from every record in DIR

All functions raise :class:`fastseg.errors.FastsegError` subclasses (or ``OSError``)
only. Reading never crashes on a bad file: a corrupt, foreign, too new or oversized
record becomes a failed row "record unreadable: <why>".
"""
from fastseg.report.card import read_run_card, run_card, write_run_card
from fastseg.report.evaluation import read_evaluation, write_evaluation
from fastseg.report.facts import HIPPOCAMPUS_LABELS, mask_facts, volume_numbers
from fastseg.report.flags import Flag, flag_rows, robust_z
from fastseg.report.html import REPORT_NAME, build, render
from fastseg.report.records import read_record, read_records, record_of, write_record

__all__ = [
    "record_of", "write_record", "read_record", "read_records", "mask_facts",
    "volume_numbers", "HIPPOCAMPUS_LABELS", "run_card", "write_run_card", "read_run_card",
    "write_evaluation", "read_evaluation", "Flag", "flag_rows", "robust_z", "build",
    "render", "REPORT_NAME",
]
