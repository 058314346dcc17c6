"""``fastseg demo mri``: the report's four-network comparison on the built-in brain MRI.

1. The built-in hippocampus set (:func:`fastseg.data.hippocampus_mri`): train on the
   FSL MNI152 template's two hippocampus crops, test on the ICBM 2009c template's,
   a different scan.
2. The report's four patch networks -- 2-D (axial planes), stacked 2-D (three
   neighbouring planes as channels), tri-planar (three orthogonal patches) and 3-D
   (a cube) -- each trained with Adam on class-balanced patches, its threshold chosen
   on the training scan, its mask kept to the largest connected component.
3. Each network segments the held-out crops densely; the table gives Dice and HD95
   (mm) against the consensus labels, the training time (threshold choice included)
   and the inference time per volume. Pictures (three central planes, truth against
   prediction) and metrics.json go to the output folder.

The settings follow the earlier trials (docs/architecture.md): patch 24 for the 2-D
kinds, 16 tri-planar, 12 for the cube, 128 hidden units, batches of 64 at Adam's
1e-3. The default run fits in 10 minutes on 2 cores; ``--quick`` shrinks every
network and its training to a smoke run of seconds.
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fastseg import metrics, viz
from fastseg._atomic import atomic_write
from fastseg._commands import CLIError


@dataclass(frozen=True)
class Network:
    """One network of the comparison and how it is trained."""

    name: str
    model: str
    kind: str
    patch_size: int
    batches: int
    hidden: int = 128
    conv_channels: tuple = (20, 50)
    kernel_size: int = 5
    extra: tuple = ()  # more (name, value) arguments of the model builder


#: The default run: the report's four kinds at the sizes the trials found to work.
NETWORKS = (
    Network("2d", "lai2d", "2d", 24, 600),
    Network("stacked2d", "lai_stacked2d", "stacked2d", 24, 600),
    Network("triplanar", "lai_triplanar", "triplanar", 16, 500),
    Network("3d", "lai3d", "3d", 16, 600),
)

#: ``--quick``: small towers, few batches (seconds each).
QUICK_NETWORKS = (
    Network("2d", "lai2d", "2d", 12, 25, hidden=32, conv_channels=(8, 16), kernel_size=3),
    Network("stacked2d", "lai_stacked2d", "stacked2d", 12, 25, hidden=32,
            conv_channels=(8, 16), kernel_size=3),
    Network("triplanar", "lai_triplanar", "triplanar", 10, 25, hidden=32,
            conv_channels=(8, 16), kernel_size=3),
    Network("3d", "lai3d", "3d", 8, 25, hidden=32, conv_channels=(8, 16), kernel_size=3),
)

#: Patches per training batch, and the optimiser, for every network.
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
#: What the table prints for each network (mean over the held-out crops).
COLUMNS = ("dice", "hd95", "assd", "train_s", "infer_s_per_volume")
#: Fundus-demo options that mean nothing here.
_FUNDUS_ONLY = ("size", "train_images", "test_images", "epochs", "batches", "hidden",
                "patch_size", "whole_epochs", "whole_size", "gif_size")


def _check_args(args):
    given = [name for name in _FUNDUS_ONLY if getattr(args, name, None) is not None]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise CLIError(f"{flag} tunes the fundus demo; `fastseg demo mri` takes --quick, "
                       "--out, --seed, --threads and --backend")


def _segmenter(net: Network, seed: int):
    from fastseg.segmenter import Segmenter

    kwargs = {"hidden": net.hidden, "conv_channels": net.conv_channels,
              "kernel_size": net.kernel_size, **dict(net.extra)}
    return Segmenter(model=net.model, kind=net.kind, patch_size=net.patch_size, epochs=1,
                     batch_size=BATCH_SIZE, batches_per_epoch=net.batches, optimizer="adam",
                     lr=LEARNING_RATE, model_kwargs=kwargs, threshold="auto", keep_largest=1,
                     seed=seed)


def _evaluate(mask, sample) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an empty prediction: NaN distances
        m = metrics.evaluate(mask.astype(np.float32), sample.mask, spacing=sample.spacing)
    return {k: m[k] for k in ("dice", "iou", "sensitivity", "precision", "rvd", "hd95", "assd")}


def _mean(values):
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _finite(value):
    """`value` with NaN floats (an undefined distance) as None, so the JSON is standard."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _format_table(rows) -> str:
    head = f"{'network':<11}{'patch':>6}{'Dice':>8}{'HD95 mm':>9}{'ASSD mm':>9}" \
           f"{'train s':>9}{'infer s/vol':>13}"
    lines = [head]
    for r in rows:
        lines.append(f"{r['network']:<11}{r['patch_size']:>6}{r['dice']:>8.3f}"
                     f"{r['hd95']:>9.2f}{r['assd']:>9.2f}{r['train_s']:>9.1f}"
                     f"{r['infer_s_per_volume']:>13.2f}")
    return "\n".join(lines)


def _picture(net, seg_masks, test, path):
    """One PNG: a row per held-out crop, its three central planes, truth against prediction."""
    rows = [viz.central_planes(s.image, mask, s.mask, s.spacing,
                               caption=f"{net.name} on {s.name} (green TP, red FP, blue FN)")
            for s, mask in zip(test, seg_masks, strict=True)]
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows]
    viz.save_image(path, np.concatenate(padded, axis=0))


def run_comparison(networks, out, seed=0, note=print) -> dict:
    """Train, segment and evaluate each network; write the pictures and metrics.json.

    Returns the dict written to ``out/metrics.json``.
    """
    from fastseg.data import hippocampus_mri

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train, test = hippocampus_mri("train"), hippocampus_mri("test")
    note(f"data: train {', '.join(s.name for s in train)}; test (held out) "
         f"{', '.join(s.name for s in test)}; crops {', '.join(str(s.shape) for s in test)} "
         f"({time.perf_counter() - started:.1f} s)")
    rows, per_volume = [], []
    for net in networks:
        seg = _segmenter(net, seed)
        note(f"{net.name}: training {net.model} on {net.batches} batches of {BATCH_SIZE} "
             f"patches of {net.patch_size} voxels")
        t0 = time.perf_counter()
        seg.fit([s.image for s in train], [s.mask for s in train], progress=True)
        train_s = time.perf_counter() - t0
        masks, results, seconds = [], [], []
        for s in test:
            t0 = time.perf_counter()
            masks.append(seg.predict(s.image, progress=None))
            seconds.append(time.perf_counter() - t0)
            results.append(_evaluate(masks[-1], s))
            per_volume.append({"network": net.name, "volume": s.name, **results[-1],
                               "infer_s": seconds[-1]})
        _picture(net, masks, test, out / f"{net.name}.png")
        row = {"network": net.name, "model": net.model, "patch_size": net.patch_size,
               **{k: _mean([r[k] for r in results]) for k in results[0]},
               "train_s": train_s, "infer_s_per_volume": float(np.mean(seconds)),
               "threshold": seg.decision_threshold(),
               "final_loss": float(seg.history_["loss"][-1])}
        rows.append(row)
        note(f"{net.name}: Dice {row['dice']:.3f}, HD95 {row['hd95']:.2f} mm, trained in "
             f"{train_s:.1f} s, {row['infer_s_per_volume']:.2f} s per volume")
    result = {"data": {"train": [s.name for s in train], "test": [s.name for s in test]},
              "settings": {"batch_size": BATCH_SIZE, "optimizer": "adam", "lr": LEARNING_RATE,
                           "seed": seed, "networks": [asdict(n) for n in networks]},
              "networks": rows, "volumes": per_volume,
              "total_s": time.perf_counter() - started}
    text = json.dumps(_finite(result), indent=2) + "\n"
    atomic_write(out / "metrics.json", lambda f: f.write(text.encode()))
    return result


def run(args) -> int:
    _check_args(args)
    networks = QUICK_NETWORKS if args.quick else NETWORKS
    out = Path(args.out or "fastseg-demo-mri")
    seed = 0 if args.seed is None else args.seed
    from tqdm.auto import tqdm

    result = run_comparison(networks, out, seed, note=tqdm.write)  # lines between the bars
    print("\nheld-out scan (ICBM 2009c), mean of the left and right hippocampus:")
    print(_format_table(result["networks"]))
    best = max(result["networks"], key=lambda r: r["dice"])
    print(f"best: {best['network']} (Dice {best['dice']:.3f}); total "
          f"{result['total_s']:.0f} s\nwrote {out}/metrics.json and "
          f"{', '.join(n.name + '.png' for n in networks)}")
    return 0
