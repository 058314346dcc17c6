"""``PRED_DIR/evaluation.json``: the metrics ``fastseg evaluate`` computed for a folder of
predictions, per pairing key (:func:`fastseg._files.naming.key`), so that the report
shows each input's metrics beside its pictures."""
from __future__ import annotations

import math
from pathlib import Path

from fastseg.report._jsonfile import UnreadableFileError, read_json, write_json

__all__ = ["EVALUATION_NAME", "EVALUATION_FORMAT", "EVALUATION_VERSION", "write_evaluation",
           "read_evaluation"]

EVALUATION_NAME = "evaluation.json"
EVALUATION_FORMAT = "fastseg-evaluation"
EVALUATION_VERSION = 1
_MAX_BYTES = 64 << 20


def write_evaluation(pred_dir, rows, mean=None, *, threshold=None, truth_dir=None) -> Path:
    """Write ``pred_dir/evaluation.json`` atomically; returns its path.

    Parameters
    ----------
    pred_dir : str or os.PathLike
        The folder of predictions (a ``fastseg segment`` output folder).
    rows : list of dict
        :func:`fastseg.metrics.evaluate_dataset`'s rows: ``{"name": key, metric: value}``
        with the pairing key as the name.
    mean : dict, optional
        Its mean row.
    threshold : float, optional
        The threshold the metrics were computed at.
    truth_dir : str or os.PathLike, optional
        The ground truth's folder, as given (shown, not linked).

    File: ``{"format": "fastseg-evaluation", "version": 1, "threshold": ..., "truth_dir":
    ..., "metrics": {key: {metric: value or null}}, "mean": {metric: value}}`` (NaN is
    stored as null).
    """
    metrics = {}
    for row in rows:
        row = dict(row)
        metrics[str(row.pop("name"))] = row
    mean = {k: v for k, v in dict(mean or {}).items() if k != "name"}
    path = Path(pred_dir) / EVALUATION_NAME
    write_json(path, EVALUATION_FORMAT, EVALUATION_VERSION,
               {"threshold": threshold, "truth_dir": None if truth_dir is None
                else str(truth_dir), "metrics": metrics, "mean": mean})
    return path


def _finite(v) -> bool:
    """A JSON number that is a finite float (JSON ints are unbounded: 10**400 is none)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _metric_values(value, where):
    if not isinstance(value, dict):
        raise UnreadableFileError(f"{where}: expected an object of metrics")
    out = {}
    for name, v in value.items():
        if v is not None and not _finite(v):
            raise UnreadableFileError(f"{where}.{name}: expected a number or null")
        out[str(name)] = v
    return out


def read_evaluation(out_dir):
    """The metrics of `out_dir`'s ``evaluation.json``, or None when there is none.

    Returns
    -------
    dict or None
        ``{"metrics": {key: {metric: value}}, "mean": {...}, "threshold": ...,
        "truth_dir": ..., "mtime": seconds since the epoch}``.

    Raises
    ------
    fastseg.report._jsonfile.UnreadableFileError
        The file is there but corrupt, foreign, too new or too large.
    """
    path = Path(out_dir) / EVALUATION_NAME
    if not path.exists():
        return None
    data = read_json(path, EVALUATION_FORMAT, EVALUATION_VERSION, _MAX_BYTES)
    metrics = data.get("metrics")
    if not isinstance(metrics, dict):
        raise UnreadableFileError("no metrics object")
    threshold = data.get("threshold")
    truth = data.get("truth_dir")
    return {"metrics": {str(k): _metric_values(v, f"metrics.{k}") for k, v in metrics.items()},
            "mean": _metric_values(data.get("mean") or {}, "mean"),
            "threshold": threshold if _finite(threshold) else None,
            "truth_dir": truth if isinstance(truth, str) else None,
            "mtime": path.stat().st_mtime}
