"""Per-input records ``DIR/<stem>_record.json``: what became of one input of a run.

A record is built from the :class:`~fastseg._files.segment_file.FileReport` the
segmentation returns (:func:`record_of`), plus what only the caller knows (the mask's
facts, the volumes in mm³, whether the FOV was estimated), and written atomically
(:func:`write_record`), one file per input, so that workers of a cluster and resumed
runs each add theirs and the report is rebuilt from whatever records a folder holds.
:func:`read_records` reads them back, turning a record it cannot use into a failed row
whose error says why ("record unreadable: ...").

Record schema (format ``"fastseg-record"``, version 1); paths are relative to the
output folder, with ``/`` separators::

    {"format": "fastseg-record", "version": 1,
     "input": "01_test.tif",            # the input's file name
     "stem": "01_test",                 # its stem: the outputs' and the record's prefix
     "kind": "image" | "volume",
     "status": "done" | "skipped" | "failed",
     "error": null | "why it failed",
     "seconds": 3.2, "worker": null | "tcp://...",
     "shape": [584, 565] | [D, H, W] | null,
     "outputs": {"prob": "01_test_prob.png", "mask": "01_test_mask.png", ...},
     "pictures": [{"label": "overlay", "path": "01_test_overlay.png"}, ...],
     "numbers": {"foreground": 9650, "fov_pixels": 80416, "vessel_fraction": 0.12}
              | {"foreground": 1203, "volume_mm3": 3608.9, "left_mm3": ..., "right_mm3": ...,
                 "spacing_mm": [1.0, 1.0, 1.0]},
     "facts": null | mask_facts(...),   # see fastseg.report.facts.mask_facts
     "fov_estimated": null | true | false}
"""
from __future__ import annotations

import math
import os
from pathlib import Path, PurePosixPath

from fastseg.errors import InvalidValueError
from fastseg.report._jsonfile import UnreadableFileError, plain, read_json, write_json
from fastseg.report.card import run_card, write_run_card  # noqa: F401  (part of this API)
from fastseg.report.facts import mask_facts  # noqa: F401  (part of this API)

__all__ = ["RECORD_FORMAT", "RECORD_VERSION", "RECORD_SUFFIX", "record_of", "write_record",
           "record_path", "record_files", "read_record", "read_records", "mask_facts",
           "run_card",
           "write_run_card"]

RECORD_FORMAT = "fastseg-record"
RECORD_VERSION = 1
#: A record's file name is the input's stem + this.
RECORD_SUFFIX = "_record.json"
#: Larger records are refused unread (an error message or a facts dict is a few kB).
MAX_RECORD_BYTES = 1 << 20

_KINDS = ("image", "volume")
_STATUSES = ("done", "skipped", "failed")


def _stem(path) -> str:
    from fastseg._files import naming

    return naming.stem(path)


def _relative(path, base: Path | None, what: str) -> str:
    """`path` relative to `base` with ``/`` separators; an error if it is not inside."""
    p = Path(path)
    if base is None:
        base = p.parent
    try:
        rel = os.path.relpath(os.path.abspath(p), os.path.abspath(base))
    except ValueError:  # another drive
        rel = os.path.abspath(p)
    rel_posix = PurePosixPath(*Path(rel).parts) if not os.path.isabs(rel) else None
    if rel_posix is None or rel_posix.parts[:1] == ("..",) or str(rel_posix) in ("", "."):
        raise InvalidValueError(f"{what} {os.fspath(path)!r} is not inside the output folder "
                                f"{os.fspath(base)!r}")
    return str(rel_posix)


def _output_kind(name: str, stem: str) -> str:
    """``"prob"`` of ``<stem>_prob.png``; the file name itself when it is not so named."""
    for suffix in (".nii.gz", ".nii", *(Path(name).suffixes[-1:])):
        if name.endswith(suffix):
            core = name[:-len(suffix)]
            if core.startswith(stem + "_") and len(core) > len(stem) + 1:
                return core[len(stem) + 1:]
            break
    return name


def _default_pictures(kind: str, outputs: dict) -> list:
    labels = ("overlay",) if kind == "image" else ("left", "right")
    return [{"label": label, "path": outputs[label]} for label in labels if label in outputs]


def _pictures(pictures) -> list:
    """``[(label, path)]`` from a dict, a sequence of pairs or of ``{label, path}`` dicts."""
    if isinstance(pictures, dict):
        return [(str(k), v) for k, v in pictures.items()]
    out = []
    for item in pictures:
        if isinstance(item, dict):
            out.append((str(item["label"]), item["path"]))
        else:
            label, path = item
            out.append((str(label), path))
    return out


def record_of(file_report, *, kind, fov_estimated=None, facts=None, pictures=None,
              numbers=None, out_dir=None) -> dict:
    """The record of one input, from what segmenting it returned.

    Parameters
    ----------
    file_report : fastseg._files.segment_file.FileReport
        What became of the input (done, skipped or failed).
    kind : {"image", "volume"}
        The input's kind (:func:`fastseg._files.naming.input_kind`).
    fov_estimated : bool, optional
        Photos: True when no FOV file was given and the FOV was estimated.
    facts : dict, optional
        :func:`~fastseg.report.facts.mask_facts` of the mask that was written (for a
        whole brain, with ``labels=HIPPOCAMPUS_LABELS``).
    pictures : dict or sequence, optional
        The pictures to show, ``{label: path}`` or ``[(label, path)]`` or
        ``[{"label": ..., "path": ...}]``, in order (e.g. ``"left axial"``). Default:
        the overlay of a photo, the three planes of a volume.
    numbers : dict, optional
        Added to (and overriding) the numbers taken from `file_report`: for volumes
        :func:`~fastseg.report.facts.volume_numbers` (``volume_mm3``, ``left_mm3``,
        ``right_mm3``, ``spacing_mm``).
    out_dir : str or os.PathLike, optional
        The output folder; paths are stored relative to it. Default: the folder of
        the outputs (they are all written there). Given, a skipped input's outputs
        already in it are recorded too.

    Returns
    -------
    dict
        The record (see the module docstring), ready for :func:`write_record`.

    Paths (``file_report.outputs``, `pictures`) are taken as they were written: absolute,
    or relative to the current folder. One outside the output folder is an error.
    """
    if kind not in _KINDS:
        raise InvalidValueError(f"kind: expected 'image' or 'volume', got {kind!r}")
    report = file_report
    if report.status not in _STATUSES:
        raise InvalidValueError(f"file_report.status: expected one of {_STATUSES}, got "
                                f"{report.status!r}")
    stem = _stem(report.path)
    written = [Path(p) for p in report.outputs]
    if not written and out_dir is not None and report.status == "skipped":
        from fastseg._files import naming

        written = [p for p in naming.output_paths(out_dir, report.path).values() if p.is_file()]
    base = Path(out_dir) if out_dir is not None else (written[0].parent if written else None)
    outputs = {}
    for p in written:
        outputs[_output_kind(p.name, stem)] = _relative(p, base, "output")
    if pictures is None:
        shown = _default_pictures(kind, outputs)
    else:
        shown = [{"label": label, "path": _relative(path, base, f"picture {label!r}")}
                 for label, path in _pictures(pictures)]
    found = {}
    if report.foreground is not None:
        found["foreground"] = int(report.foreground)
    if kind == "image" and report.fov_pixels is not None:
        found["fov_pixels"] = int(report.fov_pixels)
        if report.foreground is not None and report.fov_pixels > 0:
            found["vessel_fraction"] = report.foreground / report.fov_pixels
    found.update(dict(numbers or {}))
    return plain({
        "input": Path(report.path).name,
        "stem": stem,
        "kind": kind,
        "status": report.status,
        "error": report.error,
        "seconds": float(report.seconds) if report.seconds is not None else None,
        "worker": report.worker,
        "shape": list(report.shape) if report.shape is not None else None,
        "outputs": outputs,
        "pictures": shown,
        "numbers": found,
        "facts": facts,
        "fov_estimated": None if fov_estimated is None else bool(fov_estimated),
    })


def record_path(out_dir, stem: str) -> Path:
    """The record file of the input with stem `stem`: ``out_dir/<stem>_record.json``."""
    return Path(out_dir) / f"{stem}{RECORD_SUFFIX}"


def write_record(out_dir, record) -> Path:
    """Write one input's record into the output folder, atomically.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The output folder (where the outputs are).
    record : dict
        What :func:`record_of` returned.

    Returns
    -------
    pathlib.Path
        ``out_dir/<stem>_record.json``.

    Notes
    -----
    A ``"skipped"`` record (a resumed run found the outputs) never replaces a readable
    ``"done"`` record of the same input: the report keeps the run that made them. Each
    input's record is its own file, so processes may write theirs at the same time.
    """
    record = dict(record)
    stem = record.get("stem")
    if not isinstance(stem, str) or not stem or "/" in stem or os.sep in stem:
        raise InvalidValueError(f"record: expected a stem (a file name part), got {stem!r}")
    path = record_path(out_dir, stem)
    if record.get("status") == "skipped" and path.is_file():
        try:
            if read_record(path)["status"] == "done":
                return path
        except UnreadableFileError:
            pass  # replaced by what we know now
    write_json(path, RECORD_FORMAT, RECORD_VERSION,
               {k: v for k, v in record.items() if k not in ("format", "version")})
    return path


# ---- reading ---------------------------------------------------------------------------


def _is_number(value) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float: JSON allows 10**400
        return False


def _check(condition, field, expected, value):
    if not condition:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise UnreadableFileError(f"field {field!r}: expected {expected}, got {shown}")


def _optional_str(data, field):
    value = data.get(field)
    _check(value is None or isinstance(value, str), field, "a string or null", value)
    return value


def _safe_path(value) -> bool:
    """A relative path inside the folder: no absolute path, drive or ``..`` part."""
    if not isinstance(value, str) or not value or "\\" in value or "\0" in value:
        return False
    p = PurePosixPath(value)
    return not p.is_absolute() and ".." not in p.parts and ":" not in p.parts[0]


def _paths(data, field):
    value = data.get(field) or {}
    _check(isinstance(value, dict) and all(isinstance(k, str) and _safe_path(v)
                                           for k, v in value.items()),
           field, "{name: relative path inside the folder}", value)
    return dict(value)


def _picture_list(data):
    value = data.get("pictures") or []
    _check(isinstance(value, list) and all(
        isinstance(p, dict) and isinstance(p.get("label"), str) and _safe_path(p.get("path"))
        for p in value), "pictures", "a list of {label, relative path inside the folder}", value)
    return [{"label": p["label"], "path": p["path"]} for p in value]


def _number_dict(data):
    value = data.get("numbers") or {}
    _check(isinstance(value, dict), "numbers", "an object", value)
    numbers = {}
    for k, v in value.items():
        ok = v is None or _is_number(v) or (isinstance(v, list) and all(map(_is_number, v)))
        _check(ok, f"numbers.{k}", "a number, null or a list of numbers", v)
        numbers[k] = v
    return numbers


_FACT_TYPES = {"foreground": int, "empty": bool, "components": int, "touches_border": bool,
               "ndim": int, "fov_pixels": int, "fov_fraction": float, "value": int}


def _fact_dict(value, field):
    _check(isinstance(value, dict), field, "an object", value)
    out = {}
    for k, v in value.items():
        want = _FACT_TYPES.get(k)
        if want is bool:
            _check(isinstance(v, bool), f"{field}.{k}", "true or false", v)
        elif want is int:
            _check(isinstance(v, int) and not isinstance(v, bool) and v >= 0, f"{field}.{k}",
                   "a count", v)
        elif want is float:
            _check(v is None or _is_number(v), f"{field}.{k}", "a number or null", v)
        elif k == "labels" and field == "facts":
            _check(isinstance(v, dict), "facts.labels", "an object", v)
            v = {str(name): _fact_dict(sub, f"facts.labels.{name}") for name, sub in v.items()}
        out[k] = v
    return out


def read_record(path) -> dict:
    """The record in `path`, every field checked (unknown extra fields are dropped).

    Raises
    ------
    fastseg.report._jsonfile.UnreadableFileError
        Missing, larger than 1 MiB, not JSON, of another format, of a newer version,
        a field of the wrong type, a path that leaves the folder, or a stem that is not
        its file name's. The message is the reason.
    """
    data = read_json(path, RECORD_FORMAT, RECORD_VERSION, MAX_RECORD_BYTES)
    rec = {}
    for field in ("input", "stem"):
        value = data.get(field)
        _check(isinstance(value, str) and value, field, "a non-empty string", value)
        rec[field] = value
    name = Path(path).name
    if name.endswith(RECORD_SUFFIX) and name[:-len(RECORD_SUFFIX)] != rec["stem"]:
        raise UnreadableFileError(f"its stem {rec['stem']!r} is not its file name's")
    rec["kind"] = data.get("kind")
    _check(rec["kind"] in _KINDS, "kind", "'image' or 'volume'", rec["kind"])
    rec["status"] = data.get("status")
    _check(rec["status"] in _STATUSES, "status", "done, skipped or failed", rec["status"])
    rec["error"] = _optional_str(data, "error")
    rec["worker"] = _optional_str(data, "worker")
    seconds = data.get("seconds")
    _check(seconds is None or (_is_number(seconds) and seconds >= 0), "seconds",
           "a number of seconds", seconds)
    rec["seconds"] = seconds
    shape = data.get("shape")
    _check(shape is None or (isinstance(shape, list) and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)),
        "shape", "a list of sizes", shape)
    rec["shape"] = shape
    rec["outputs"] = _paths(data, "outputs")
    rec["pictures"] = _picture_list(data)
    rec["numbers"] = _number_dict(data)
    facts = data.get("facts")
    rec["facts"] = None if facts is None else _fact_dict(facts, "facts")
    fov_estimated = data.get("fov_estimated")
    _check(fov_estimated is None or isinstance(fov_estimated, bool), "fov_estimated",
           "true, false or null", fov_estimated)
    rec["fov_estimated"] = fov_estimated
    return rec


def _unreadable_row(path: Path, reason: str) -> dict:
    stem = path.name[:-len(RECORD_SUFFIX)]
    return {"input": stem, "stem": stem, "kind": None, "status": "failed",
            "error": f"record unreadable: {reason}", "worker": None, "seconds": None,
            "shape": None, "outputs": {}, "pictures": [], "numbers": {}, "facts": None,
            "fov_estimated": None, "unreadable": True}


def record_files(out_dir) -> list:
    """The record files of `out_dir` (``*_record.json``), sorted by name."""
    return sorted(p for p in Path(out_dir).iterdir() if p.name.endswith(RECORD_SUFFIX))


def read_records(out_dir) -> list:
    """Every record of `out_dir`, sorted by file name; one that cannot be read becomes a
    ``"failed"`` row (``"unreadable": True``) whose error is ``"record unreadable: <why>"``.
    """
    rows = []
    for path in record_files(out_dir):
        try:
            rows.append(read_record(path))
        except UnreadableFileError as exc:
            rows.append(_unreadable_row(path, str(exc)))
    return rows
