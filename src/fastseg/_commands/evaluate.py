"""``fastseg evaluate PRED_DIR TRUTH_DIR``: the metrics table (and CSV/JSON files).

Images or volumes: NIfTI predictions (``fastseg segment``'s ``_mask.nii.gz``, else its
``_prob.nii.gz``) pair with NIfTI label maps (every non-zero label is the structure),
and the table adds RVD, HD95 and ASSD in mm, from the label map's voxel spacing.
"""
from __future__ import annotations

import csv
import io
import json
import math

import numpy as np

from fastseg import metrics
from fastseg._atomic import atomic_write
from fastseg._commands import CLIError
from fastseg._files import naming
from fastseg.data import read_image, read_mask
from fastseg.viz import PLANE_NAMES

# Which prediction to use when several files share a key: for images a probability
# map (threshold-free AUC) before a binary mask before anything else; for volumes the
# mask, which is what the model decided (its own threshold, its largest components).
_PREFERENCE = {"prob": 0, "probability": 0, "pred": 1, "prediction": 1, "mask": 2}
_VOLUME_PREFERENCE = {"mask": 0, "pred": 1, "prediction": 1, "prob": 2, "probability": 2}
# Pictures fastseg segment writes beside its maps: never predictions.
_PICTURES = ("overlay", "left", "right", *PLANE_NAMES)


def _rank(path) -> int:
    table = _VOLUME_PREFERENCE if naming.input_kind(path) == "volume" else _PREFERENCE
    return table.get(naming.tag(path), 3)


def _predictions(directory) -> dict:
    from pathlib import Path

    d = Path(directory)
    if not d.is_dir():
        raise CLIError(f"prediction folder not found: {d}")
    best = {}
    for p in sorted(d.iterdir()):
        if not p.is_file() or not naming.is_input(p) or naming.tag(p) in _PICTURES:
            continue
        rank = _rank(p)
        k = naming.key(p)
        if k not in best or rank < best[k][0]:
            best[k] = (rank, p)
    if not best:
        raise CLIError(f"no prediction images or volumes in {d}")
    return {k: p for k, (_, p) in best.items()}


#: The label maps fastseg writes for scans: 1 left, 2 right hippocampus.
SIDE_LABELS = {1: "left", 2: "right"}


def _side_labels(values) -> bool:
    """Whether a label map's values are those of a side map (0, 1, 2; both sides)."""
    present = set(np.unique(values).tolist())
    return present <= {0, 1, 2} and {1, 2} <= present


def _read_prediction(path):
    """A probability map in [0, 1]: grey levels / 255 for _prob files, else a binary mask;
    for volumes the values of a _prob file, else voxels != 0."""
    if naming.input_kind(path) == "volume":
        from fastseg.data import load_nifti

        scan = load_nifti(path)
        if naming.tag(path) in ("prob", "probability"):
            return scan.array, scan
        return (scan.array != 0).astype(np.float32), scan
    if naming.tag(path) in ("prob", "probability"):
        img = read_image(path)
        if img.ndim == 3:
            img = img.mean(axis=2)
        return img.astype(np.float32) / 255.0, None
    return read_mask(path).astype(np.float32), None


def _read_truth(path):
    """A ground-truth mask and, for a volume, its scan record (affine, spacing)."""
    if naming.input_kind(path) == "volume":
        from fastseg.data import load_nifti

        scan = load_nifti(path)
        return scan.array != 0, scan
    return read_mask(path), None


def _per_label(keys, preds, truths, scans, threshold):
    """Metrics of each side label (``{label name: (rows, mean)}``) over the pairs whose
    prediction is a side label map (a ``_mask`` of fastseg: 1 left, 2 right) and whose
    truth labels the same sides; {} when none is."""
    import warnings

    per = {name: ([], [], [], []) for name in SIDE_LABELS.values()}
    for k in keys:
        if naming.tag(preds[k]) not in _VOLUME_PREFERENCE or \
                naming.tag(preds[k]) in ("prob", "probability") or scans[k] is None:
            continue
        pred, truth = scans[k]
        if not (_side_labels(pred.array) and _side_labels(truth.array)):
            continue
        for label, name in SIDE_LABELS.items():
            probs, masks, names, spacings = per[name]
            probs.append((pred.array == label).astype(np.float32))
            masks.append(truth.array == label)
            names.append(f"{k} {name}")
            spacings.append(truth.spacing)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, (probs, masks, names, spacings) in per.items():
            if probs:
                out[name] = metrics.evaluate_dataset(probs, masks, [None] * len(probs),
                                                     names=names, threshold=threshold,
                                                     spacings=spacings)
    return out


def _check_volume_pair(pred_path, truth_path, pred_scan, truth_scan):
    """One line naming both files when a prediction and its truth are not one space."""
    if (pred_scan is None) != (truth_scan is None):
        raise CLIError(f"{pred_path.name} and {truth_path.name}: one is a volume and the other "
                       "an image")
    if pred_scan is None:
        return
    if pred_scan.shape != truth_scan.shape:
        raise CLIError(f"{pred_path.name} is {pred_scan.shape} but {truth_path.name} is "
                       f"{truth_scan.shape} (voxels)")
    if not np.allclose(pred_scan.affine, truth_scan.affine, rtol=0, atol=1e-3):
        worst = float(np.abs(pred_scan.affine - truth_scan.affine).max())
        raise CLIError(f"{pred_path.name} and {truth_path.name} are in different spaces: their "
                       f"affines differ by up to {worst:.4g}")


def _write_text(path, text):
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _nan_to_none(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def _write_evaluation(args, rows, mean) -> None:
    """PRED_DIR/evaluation.json, per-key metrics for ``fastseg report``; a folder that
    cannot be written is noted, not an error (the table is the command's result)."""
    import sys

    from fastseg.report.evaluation import write_evaluation

    try:
        write_evaluation(args.pred_dir, rows, mean, threshold=args.threshold,
                         truth_dir=args.truth_dir)
    except OSError as exc:
        print(f"note: could not write evaluation.json in {args.pred_dir}: "
              f"{exc.strerror or exc}", file=sys.stderr)


def run(args) -> int:
    preds = _predictions(args.pred_dir)
    truths = naming.keyed(args.truth_dir, "truth")
    fovs = naming.keyed(args.fov, "FOV") if args.fov else {}
    keys = sorted(k for k in truths if k in preds)
    if not keys:
        raise CLIError(f"no prediction in {args.pred_dir} pairs with a truth file in "
                       f"{args.truth_dir} (e.g. {next(iter(truths))!r}); see --help for the "
                       "naming rule")
    missing = sorted(set(truths) - set(preds))
    if len({naming.input_kind(preds[k]) for k in keys}) > 1:
        raise CLIError(f"{args.pred_dir} mixes images and volumes; evaluate them apart")
    probs, masks, fov_list, spacings, scans = [], [], [], [], {}
    for k in keys:
        (prob, pred_scan), (truth, truth_scan) = _read_prediction(preds[k]), \
            _read_truth(truths[k])
        _check_volume_pair(preds[k], truths[k], pred_scan, truth_scan)
        scans[k] = None if truth_scan is None else (pred_scan, truth_scan)
        spacings.append(None if truth_scan is None else truth_scan.spacing)
        if prob.shape != truth.shape:
            raise CLIError(f"{preds[k].name} is {prob.shape[1]}x{prob.shape[0]} but "
                           f"{truths[k].name} is {truth.shape[1]}x{truth.shape[0]} (W x H)")
        fov = None
        if args.fov and truth_scan is not None:
            raise CLIError("--fov is for photos; volumes are evaluated whole")
        if args.fov:
            if k not in fovs:
                raise CLIError(f"no FOV file for {truths[k].name} in {args.fov}")
            fov = naming.read_fov(fovs[k], truth.shape, truths[k].name)
        probs.append(prob)
        masks.append(truth)
        fov_list.append(fov)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN metrics show as "nan"
        rows, mean = metrics.evaluate_dataset(probs, masks, fov_list, names=keys,
                                              threshold=args.threshold, spacings=spacings)
    print(metrics.format_table(rows, mean))
    sides = _per_label(keys, preds, truths, scans, args.threshold)
    for name, (side_rows, side_mean) in sides.items():
        print(f"\n{name} (label {next(k for k, v in SIDE_LABELS.items() if v == name)})")
        print(metrics.format_table(side_rows, side_mean))
    if missing:
        print(f"note: {len(missing)} truth file(s) without a prediction were skipped: "
              f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    _write_evaluation(args, rows, mean)
    if args.csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows + [mean])
        _write_text(args.csv, buf.getvalue())
    if args.json:
        data = {"threshold": args.threshold,
                "images": [{k: _nan_to_none(v) for k, v in r.items()} for r in rows],
                "mean": {k: _nan_to_none(v) for k, v in mean.items()}}
        if sides:
            data["labels"] = {name: {"images": [{k: _nan_to_none(v) for k, v in r.items()}
                                                for r in side_rows],
                                     "mean": {k: _nan_to_none(v) for k, v in side_mean.items()}}
                              for name, (side_rows, side_mean) in sides.items()}
        _write_text(args.json, json.dumps(data, indent=2) + "\n")
    return 0
