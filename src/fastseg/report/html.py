"""``DIR/report.html``: one page showing every result of a folder, rebuilt from its records.

The page is plain HTML with an inline style sheet and script (:mod:`._assets`): it opens
from disk without network access. Pictures are the PNGs the run wrote, linked by their
path relative to the folder (never copied or embedded) and loaded lazily; a link is made
only to a file that exists inside the folder. Every piece of text is HTML-escaped.
"""
from __future__ import annotations

import datetime
import html
import os
from pathlib import Path
from urllib.parse import quote

from fastseg._atomic import atomic_write_text
from fastseg.errors import InvalidValueError
from fastseg.report import _assets
from fastseg.report._jsonfile import UnreadableFileError
from fastseg.report.card import RUN_CARD_NAME, read_run_card
from fastseg.report.evaluation import EVALUATION_NAME, read_evaluation
from fastseg.report.flags import MIN_ROWS, Z_THRESHOLD, flag_rows
from fastseg.report.records import RECORD_SUFFIX, read_records, record_files

__all__ = ["REPORT_NAME", "build", "render"]

#: The page's file name in the output folder.
REPORT_NAME = "report.html"

_METRIC_LABELS = {"dice": "Dice", "iou": "IoU", "accuracy": "Acc.", "sensitivity": "Sens.",
                  "specificity": "Spec.", "precision": "Prec.", "auc": "AUC", "rvd": "RVD",
                  "hd95": "HD95 mm", "assd": "ASSD mm"}
_NUMBER_COLUMNS = (("image", "vessel_fraction", "vessel %"),
                   ("volume", "volume_mm3", "total mm³"),
                   ("volume", "left_mm3", "left mm³"),
                   ("volume", "right_mm3", "right mm³"))


def _e(value) -> str:
    """`value` as HTML text: escaped, and a file name's undecodable bytes (lone
    surrogates) shown as ``\\udcxx`` rather than failing the page's UTF-8."""
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return html.escape(text, quote=True)


def _fmt(value, digits=3) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


class _Folder:
    """Links into the output folder: only files that exist in it, by relative URL."""

    def __init__(self, root: Path):
        self.root = root.resolve()

    def url(self, rel: str):
        if not rel or rel.startswith(("/", "\\")) or ".." in Path(rel).parts:
            return None
        try:
            target = (self.root / rel).resolve()
            if self.root not in target.parents or not target.is_file():
                return None
        except (OSError, RuntimeError):  # a name too long, a symlink loop: not linked
            return None
        return quote(os.fsencode(rel), safe="/")  # the file name's own bytes


# ---- cells ---------------------------------------------------------------------------


def _td(text, *, value=None, cls=None, raw=False) -> str:
    attrs = f' class="{cls}"' if cls else ""
    if value is not None:
        attrs += f' data-v="{_e(value)}"'
    return f"<td{attrs}>{text if raw else _e(text)}</td>"


def _pictures_cell(row, folder: _Folder) -> str:
    parts = []
    several = len(row["pictures"]) > 1  # one picture needs no label under it
    for pic in row["pictures"]:
        label, url = pic["label"], folder.url(pic["path"])
        if url is None:
            parts.append(f'<div class="pic"><span class="missing">{_e(label)}<br>missing'
                         f'</span>{_e(label)}</div>')
            continue
        caption = _e(f"{row['input']} — {label}")
        parts.append(f'<div class="pic"><a class="thumb" href="{_e(url)}" '
                     f'data-caption="{caption}"><img src="{_e(url)}" alt="{caption}" '
                     f'loading="lazy" decoding="async" width="96" height="96"></a>'
                     f'{_e(label) if several else ""}</div>')
    if not parts:
        return _td('<span class="none">none</span>', raw=True)
    return _td(f'<div class="pics">{"".join(parts)}</div>', raw=True)


def _name_cell(row, mixed_kinds: bool) -> str:
    meta = [row["kind"] or "record"] if mixed_kinds or row.get("unreadable") else []
    if row.get("worker"):
        meta.append(f"worker {row['worker']}")
    meta_html = f'<div class="meta">{_e(", ".join(meta))}</div>' if meta else ""
    return _td(f'{_e(row["input"])}{meta_html}', value=row["input"], cls="name", raw=True)


def _size_cell(row) -> str:
    shape = row.get("shape")
    if not shape:
        return _td("", cls="num")
    dims = list(reversed(shape)) if len(shape) == 2 else list(shape)  # photos: W x H
    text = _e("×".join(map(str, dims)))
    spacing = row["numbers"].get("spacing_mm")
    if isinstance(spacing, list) and spacing:
        text += f'<div class="meta">{_e("×".join(_fmt(float(s), 2) for s in spacing))} mm</div>'
    count = 1
    for s in shape:
        count *= s
    return _td(text, value=count, cls="num size", raw=True)


def _number_cell(row, code) -> str:
    value = row["numbers"].get(code)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return _td("", cls="num")
    text = f"{100 * value:.2f}" if code == "vessel_fraction" else f"{value:,.0f}"
    return _td(text, value=repr(float(value)), cls="num")


def _metric_cell(metrics, name) -> str:
    value = None if metrics is None else metrics.get(name)
    if value is None:
        return _td("", cls="num")
    return _td(_fmt(float(value)), value=repr(float(value)), cls="num")


def _flags_cell(flags) -> str:
    if not flags:
        return _td('<span class="none">—</span>', value=0, raw=True)
    items = "".join(f"<li><b>{_e(f.code)}</b>{_e(f.reason)}</li>" for f in flags)
    return _td(f'<ul class="flags">{items}</ul>', value=len(flags), raw=True)


# ---- page parts ----------------------------------------------------------------------


def _when(iso):
    """``2026-05-01 14:03 UTC`` of an ISO 8601 time (the text itself if it is not one)."""
    if not iso:
        return None
    try:
        t = datetime.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if t.tzinfo is not None and t.utcoffset() == datetime.timedelta(0):
        return t.strftime("%Y-%m-%d %H:%M UTC")
    return t.strftime("%Y-%m-%d %H:%M %z").strip()


def _card_panel(out_dir: Path) -> str:
    if not (out_dir / RUN_CARD_NAME).exists():
        return ('<section class="panel"><h2>Model</h2><p class="note">No run card '
                f'({_e(RUN_CARD_NAME)}) in this folder: the model that made these results is '
                'not recorded.</p></section>')
    try:
        card = read_run_card(out_dir)
    except UnreadableFileError as exc:
        return (f'<section class="panel"><h2>Model</h2><p class="note">Run card unreadable: '
                f'{_e(exc)}</p></section>')
    items = [("model file", card["model_path"]), ("network", card["network"]),
             ("kind", card["kind"]), ("patch size", card["patch_size"]),
             ("channels", card["channels"]),
             ("training data", card["training_data"] or "not recorded by the model")]
    if card["fov_diameter"] is not None:
        items.append(("training FOV diameter", f"{card['fov_diameter']:.1f} px"))
    if card["voxel_spacing"]:
        items.append(("training voxel spacing",
                      "×".join(_fmt(float(s), 2) for s in card["voxel_spacing"]) + " mm"))
    if card["threshold"] is not None:
        source = " (set for this run)" if card["threshold_source"] == "run" else ""
        items.append(("threshold", f"{card['threshold']:g}{source}"))
    items += [("keep largest", card["keep_largest"]), ("fastseg", card["fastseg_version"]),
              ("backend", card["backend"]), ("ISA", card["isa"]),
              ("run card written", _when(card["created"]))]
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items if v is not None)
    return f'<section class="panel"><h2>Model</h2><dl class="card">{rows}</dl></section>'


def _run_panel(rows, flags, evaluation, eval_note, z_threshold, min_rows) -> str:
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped", "failed")}
    unreadable = sum(bool(r.get("unreadable")) for r in rows)
    flagged = sum(bool(f) for f in flags)
    seconds = sum(r["seconds"] or 0 for r in rows)
    workers = {r["worker"] for r in rows if r.get("worker")}
    done = {k: sum(r["status"] == "done" and r["kind"] == k for r in rows)
            for k in ("image", "volume")}
    lines = [f"{len(rows)} inputs: {counts['done']} done, {counts['skipped']} skipped, "
             f"{counts['failed']} failed"
             + (f" ({unreadable} unreadable records)" if unreadable else ""),
             f"{flagged} flagged",
             f"{seconds:.1f} s of segmentation in all"
             + (f", on {len(workers)} workers" if workers else "")]
    checked = [k for k, n in done.items() if n >= min_rows]
    rule = (f"Outliers: a vessel fraction or volume whose robust z-score (median and MAD over "
            f"the run's done inputs of its kind) is beyond ±{z_threshold:g}")
    if checked:
        lines.append(rule + ".")
    else:
        lines.append(rule + f"; not checked here: fewer than {min_rows} done inputs.")
    if evaluation is not None:
        mean = ", ".join(f"{_METRIC_LABELS.get(k, k)} {_fmt(v)}"
                         for k, v in evaluation["mean"].items() if v is not None)
        how = ([f"threshold {evaluation['threshold']:g}"]
               if evaluation["threshold"] is not None else [])
        if evaluation["truth_dir"]:
            how.append(f"ground truth in {evaluation['truth_dir']}")
        lines.append(f"Metrics from {EVALUATION_NAME}" + (f" ({', '.join(how)})" if how else "")
                     + (f": mean {mean}" if mean else ""))
    body = "".join(f"<p>{_e(line)}</p>" for line in lines)
    if eval_note:
        body += f'<p class="note">{_e(eval_note)}</p>'
    return f'<section class="panel"><h2>Run</h2>{body}</section>'


def _evaluation(out_dir: Path, rows):
    """(evaluation or None, a note for the page or None)."""
    try:
        evaluation = read_evaluation(out_dir)
    except UnreadableFileError as exc:
        return None, f"{EVALUATION_NAME} unreadable: {exc}"
    if evaluation is None:
        return None, None
    newer = sum(1 for r in rows if r.get("mtime", 0) > evaluation["mtime"] + 1)
    note = None
    if newer:
        note = (f"{newer} records are newer than {EVALUATION_NAME}: their metrics may be of "
                "an earlier segmentation; run fastseg evaluate again")
    return evaluation, note


def _keys(rows):
    from fastseg._files import naming

    return [naming.key(r["input"]) for r in rows]


def render(out_dir, *, z_threshold=Z_THRESHOLD, min_rows=MIN_ROWS) -> str:
    """The report page of `out_dir` as text (what :func:`build` writes).

    Raises
    ------
    fastseg.errors.InvalidValueError
        `out_dir` is not a folder, or holds no records.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InvalidValueError(f"folder not found: {out_dir}")
    files = record_files(out_dir)
    if not files:
        raise InvalidValueError(f"no fastseg records (*{RECORD_SUFFIX}) in {out_dir}: "
                                "segment into it first")
    rows = read_records(out_dir)
    for row, path in zip(rows, files, strict=True):
        try:
            row["mtime"] = path.stat().st_mtime
        except OSError:
            row["mtime"] = 0
    flags = flag_rows(rows, z_threshold=z_threshold, min_rows=min_rows)
    evaluation, eval_note = _evaluation(out_dir, rows)
    keys = _keys(rows)
    row_metrics = [evaluation["metrics"].get(k) if evaluation else None for k in keys]
    metric_names = []
    for m in row_metrics:
        for name in m or ():
            if name not in metric_names:
                metric_names.append(name)
    kinds = {r["kind"] for r in rows}
    mixed_kinds = len(kinds - {None}) > 1
    numbers = [(code, label) for kind, code, label in _NUMBER_COLUMNS
               if kind in kinds and any(code in r["numbers"] for r in rows)]
    folder = _Folder(out_dir)

    # Fixed column widths (table-layout: fixed): the browser lays the table out without
    # measuring every cell first, which is most of the cost of 1000 rows, on load and on
    # every sort. Pictures wrap after three (a volume's left planes, then its right), or
    # after two of four.
    per_row = max((len(r["pictures"]) for r in rows), default=1)
    per_line = 2 if per_row == 4 else min(max(per_row, 1), 3)  # 4: two sides of two
    size_width = 140 if "volume" in kinds else 84  # D×H×W and the voxel size under it
    columns = [("#", "num", 44), ("input", "text", 160),
               ("pictures", None, 16 + 102 * per_line),
               ("status", "text", 76), ("flags", "num-desc", 262), ("size", "num", size_width)]
    columns += [(label, "num", 84 if code == "vessel_fraction" else 96) for code, label in numbers]
    columns += [(_METRIC_LABELS.get(n, n), "num", 80 if n in ("hd95", "assd") else 60)
                for n in metric_names]
    columns += [("seconds", "num", 76)]
    head, cols = [], []
    for label, sort, width in columns:
        cols.append(f'<col style="width:{width}px">')
        if sort is None:
            head.append(f"<th>{_e(label)}</th>")
        else:
            kind, _, order = sort.partition("-")
            desc = " data-desc" if order == "desc" else ""
            head.append(f'<th data-sort="{kind}"{desc}><button type="button">{_e(label)}'
                        '</button></th>')
    min_width = sum(w for _, _, w in columns)

    body = []
    for i, (row, row_flags, metrics) in enumerate(zip(rows, flags, row_metrics, strict=True)):
        classes = [f"status-row-{row['status']}"] + (["flagged"] if row_flags else [])
        cells = [_td(i + 1, value=i + 1, cls="num"), _name_cell(row, mixed_kinds),
                 _pictures_cell(row, folder),
                 _td(row["status"], cls=f"status-{row['status']}"), _flags_cell(row_flags),
                 _size_cell(row)]
        cells += [_number_cell(row, code) for code, _ in numbers]
        cells += [_metric_cell(metrics, n) for n in metric_names]
        seconds = row.get("seconds")
        if row["status"] != "done" and not seconds:
            seconds = None  # not timed: no 0.00 for an input that was never segmented
        cells.append(_td("" if seconds is None else f"{seconds:.2f}",
                         value=None if seconds is None else repr(float(seconds)), cls="num"))
        body.append(f'<tr class="{" ".join(classes)}">{"".join(cells)}</tr>')

    flagged = sum(bool(f) for f in flags)
    from fastseg import __version__

    built = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()
    title = f"fastseg report: {out_dir.resolve().name or out_dir}"
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request
        f"<title>{_e(title)}</title><style>{_assets.CSS}</style></head>\n<body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{_e(out_dir.resolve())} · built {_e(built)} by fastseg '
        f"{_e(__version__)} from {len(rows)} records</p>",
        '<div class="panels">', _card_panel(out_dir),
        _run_panel(rows, flags, evaluation, eval_note, z_threshold, min_rows), "</div>",
        '<div class="controls"><label><input type="checkbox" id="only-flagged"> only flagged '
        f"rows</label><span id=\"count\" data-all=\"{len(rows)} rows\" "
        f'data-flagged="{flagged} of {len(rows)} rows">{len(rows)} rows</span>'
        '<span class="none">click a column title to sort, a picture to enlarge it</span></div>',
        f'<table id="results" style="min-width:{min_width}px"><colgroup>{"".join(cols)}'
        f'</colgroup><thead><tr>{"".join(head)}</tr></thead>\n<tbody>\n',
        "\n".join(body),
        "\n</tbody></table>",
        '<div id="lightbox" hidden><figure><img alt=""><figcaption></figcaption></figure></div>',
        f"<script>{_assets.JS}</script>\n</body></html>\n",
    ])


def build(out_dir, *, z_threshold=Z_THRESHOLD, min_rows=MIN_ROWS) -> Path:
    """Write ``out_dir/report.html`` atomically from the records in `out_dir`.

    Parameters
    ----------
    out_dir : str or os.PathLike
        A ``fastseg segment`` output folder with its records (``*_record.json``) and,
        when there, its run card (``fastseg-run.json``) and ``evaluation.json``.
    z_threshold : float
        Robust z-score beyond which a vessel fraction or a volume is flagged.
    min_rows : int
        Fewest done inputs of a kind for the outlier flag.

    Returns
    -------
    pathlib.Path
        The page.

    Raises
    ------
    fastseg.errors.InvalidValueError
        `out_dir` is not a folder, or holds no records.
    OSError
        The page cannot be written.
    """
    text = render(out_dir, z_threshold=z_threshold, min_rows=min_rows)
    path = Path(out_dir) / REPORT_NAME
    atomic_write_text(path, text)
    return path
