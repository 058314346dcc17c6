"""``fastseg evaluate PRED_DIR TRUTH_DIR``: the metrics table (and CSV/JSON files)."""
from __future__ import annotations

import csv
import io
import json
import math

import numpy as np

from fastseg import metrics
from fastseg._commands import CLIError, files
from fastseg._files import atomic_write
from fastseg.data import read_image, read_mask

# Which prediction to use when several files share a key: a probability map
# (threshold-free AUC) before a binary mask before anything else.
_PREFERENCE = {"prob": 0, "probability": 0, "pred": 1, "prediction": 1, "mask": 2}


def _predictions(directory) -> dict:
    from pathlib import Path

    d = Path(directory)
    if not d.is_dir():
        raise CLIError(f"prediction folder not found: {d}")
    best = {}
    for p in sorted(d.iterdir()):
        if not p.is_file() or p.suffix.lower() not in files.IMAGE_EXTENSIONS:
            continue
        if files.tag(p) == "overlay":
            continue
        rank = _PREFERENCE.get(files.tag(p), 3)
        k = files.key(p)
        if k not in best or rank < best[k][0]:
            best[k] = (rank, p)
    if not best:
        raise CLIError(f"no prediction images in {d}")
    return {k: p for k, (_, p) in best.items()}


def _read_prediction(path):
    """A probability map in [0, 1]: grey levels / 255 for _prob files, else a binary mask."""
    if files.tag(path) in ("prob", "probability"):
        img = read_image(path)
        if img.ndim == 3:
            img = img.mean(axis=2)
        return img.astype(np.float32) / 255.0
    return read_mask(path).astype(np.float32)


def _write_text(path, text):
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _nan_to_none(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def run(args) -> int:
    preds = _predictions(args.pred_dir)
    truths = files.keyed(args.truth_dir, "truth")
    fovs = files.keyed(args.fov, "FOV") if args.fov else {}
    keys = sorted(k for k in truths if k in preds)
    if not keys:
        raise CLIError(f"no prediction in {args.pred_dir} pairs with a truth file in "
                       f"{args.truth_dir} (e.g. {next(iter(truths))!r}); see --help for the "
                       "naming rule")
    missing = sorted(set(truths) - set(preds))
    probs, masks, fov_list = [], [], []
    for k in keys:
        prob, truth = _read_prediction(preds[k]), read_mask(truths[k])
        if prob.shape != truth.shape:
            raise CLIError(f"{preds[k].name} is {prob.shape[1]}x{prob.shape[0]} but "
                           f"{truths[k].name} is {truth.shape[1]}x{truth.shape[0]} (W x H)")
        fov = None
        if args.fov:
            if k not in fovs:
                raise CLIError(f"no FOV file for {truths[k].name} in {args.fov}")
            fov = files.read_fov(fovs[k], truth.shape, truths[k].name)
        probs.append(prob)
        masks.append(truth)
        fov_list.append(fov)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN metrics show as "nan"
        rows, mean = metrics.evaluate_dataset(probs, masks, fov_list, names=keys,
                                              threshold=args.threshold)
    print(metrics.format_table(rows, mean))
    if missing:
        print(f"note: {len(missing)} truth file(s) without a prediction were skipped: "
              f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if args.csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["name", *metrics.METRICS])
        writer.writeheader()
        writer.writerows(rows + [mean])
        _write_text(args.csv, buf.getvalue())
    if args.json:
        data = {"threshold": args.threshold,
                "images": [{k: _nan_to_none(v) for k, v in r.items()} for r in rows],
                "mean": {k: _nan_to_none(v) for k, v in mean.items()}}
        _write_text(args.json, json.dumps(data, indent=2) + "\n")
    return 0
