"""``fastseg demo mri``: the report's four networks on whole brains, as users bring them.

1. The built-in hippocampus set (:func:`fastseg.data.hippocampus_mri`, ``region="brain"``):
   train on the FSL MNI152 template's whole brain, test on the ICBM 2009c template's, a
   different scan; both with their affines, so each is conformed to the model's grid.
2. The report's four patch networks -- 2-D (axial planes), stacked 2-D (three
   neighbouring planes as channels), tri-planar (three orthogonal patches) and 3-D
   (a cube) -- each trained with Adam on class-balanced patches with informative
   negatives (near the hippocampus, in look-alike tissue) and scanner augmentation, its
   threshold chosen on the training brain.
3. Each network segments the held-out whole brain: a coarse grid finds each
   hippocampus, exact dense inference runs in a box around it, the largest component
   per hemisphere is kept (1 left, 2 right). The table gives Dice per side, HD95 (mm,
   mean of the sides) and the volume error per side against the consensus labels, the
   training time (threshold choice included) and the whole-brain inference time.
   Pictures (three planes through each hippocampus, truth against prediction) and
   metrics.json go to the output folder.

The settings are ``fastseg train --data mri --model M``'s defaults (:data:`VOLUME_DEFAULTS`):
patch 24 for the 2-D kinds, 16 for the tri-planar and 3-D networks, 128 hidden units, 5
epochs of 240 batches of 64 at Adam's 1e-3, so each network is the one a user trains
with the command line, seed for seed. ``--quick`` shrinks every network and its
training to a smoke run, on the brains conformed to 2 mm voxels (the maps, and the
metrics, are still on the scan's own 1 mm grid).
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
from fastseg._commands.train import BUILT_IN, VOLUME_DEFAULTS, VOLUME_KINDS


@dataclass(frozen=True)
class Network:
    """One network of the comparison and how it is trained."""

    name: str
    model: str
    kind: str
    patch_size: int
    batches: int  # per epoch
    epochs: int = 1
    hidden: int = 128
    conv_channels: tuple = (20, 50)
    kernel_size: int = 5
    extra: tuple = ()  # more (name, value) arguments of the model builder
    spacing: float = 1.0  # the voxel size (mm) the network works at


#: The default run: the report's four kinds, each as the command line trains it.
NETWORKS = tuple(
    Network(VOLUME_KINDS[model], model, VOLUME_KINDS[model], VOLUME_DEFAULTS["patch_size"][model],
            VOLUME_DEFAULTS["batches"], epochs=VOLUME_DEFAULTS["epochs"],
            hidden=VOLUME_DEFAULTS["hidden"])
    for model in ("lai2d", "lai_stacked2d", "lai_triplanar", "lai3d"))

#: ``--quick``: small networks, few batches, the brains at 2 mm (an eighth of the voxels).
QUICK_NETWORKS = (
    Network("2d", "lai2d", "2d", 10, 25, hidden=32, conv_channels=(8, 16), kernel_size=3,
            spacing=2.0),
    Network("stacked2d", "lai_stacked2d", "stacked2d", 10, 25, hidden=32,
            conv_channels=(8, 16), kernel_size=3, spacing=2.0),
    Network("triplanar", "lai_triplanar", "triplanar", 8, 25, hidden=32,
            conv_channels=(8, 16), kernel_size=3, spacing=2.0),
    Network("3d", "lai3d", "3d", 8, 25, hidden=32, conv_channels=(8, 16), kernel_size=3,
            spacing=2.0),
)

#: Patches per training batch, and the optimiser, for every network.
BATCH_SIZE = VOLUME_DEFAULTS["batch_size"]
OPTIMIZER = VOLUME_DEFAULTS["optimizer"]
LEARNING_RATE = VOLUME_DEFAULTS["lr"]
#: What the table prints for each network (the held-out whole brain).
COLUMNS = ("dice_left", "dice_right", "hd95", "volume_error_left", "volume_error_right",
           "train_s", "infer_s")
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
    return Segmenter(model=net.model, kind=net.kind, patch_size=net.patch_size,
                     epochs=net.epochs, batch_size=BATCH_SIZE, batches_per_epoch=net.batches,
                     optimizer=OPTIMIZER, lr=LEARNING_RATE, model_kwargs=kwargs,
                     threshold="auto", seed=seed, keep_largest=VOLUME_DEFAULTS["keep_largest"],
                     whole_brain=True, spacing=(net.spacing,) * 3)


def _evaluate(labels, sample) -> dict:
    """Per side: Dice, HD95, ASSD and the volume error (% of the truth's volume)."""
    out = {}
    for label, side in ((1, "left"), (2, "right")):
        pred, truth = labels == label, sample.labels == label
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an empty side: NaN distances
            m = metrics.evaluate(pred.astype(np.float32), truth, spacing=sample.spacing)
        out.update({f"{k}_{side}": m[k] for k in ("dice", "hd95", "assd")})
        out[f"volume_error_{side}"] = 100.0 * (int(pred.sum()) - int(truth.sum())) / \
            max(int(truth.sum()), 1)
    out["hd95"] = _mean([out["hd95_left"], out["hd95_right"]])
    return out


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
    head = f"{'network':<11}{'patch':>6}{'Dice L':>8}{'Dice R':>8}{'HD95 mm':>9}" \
           f"{'vol L %':>9}{'vol R %':>9}{'train s':>9}{'infer s':>9}"
    lines = [head]
    for r in rows:
        lines.append(f"{r['network']:<11}{r['patch_size']:>6}{r['dice_left']:>8.3f}"
                     f"{r['dice_right']:>8.3f}{r['hd95']:>9.2f}"
                     f"{r['volume_error_left']:>+9.1f}{r['volume_error_right']:>+9.1f}"
                     f"{r['train_s']:>9.1f}{r['infer_s']:>9.1f}")
    return "\n".join(lines)


#: Voxels of context around a hippocampus in the demo's pictures (each side zoomed in).
_PICTURE_MARGIN = 24


def _picture(net, labels, test, path):
    """One PNG: a row per side, three planes through that hippocampus (zoomed to a box
    around it), truth against prediction."""
    rows = []
    for label, side in ((1, "left"), (2, "right")):
        truth = test.labels == label
        where = np.argwhere(truth)
        lo = np.maximum(where.min(axis=0) - _PICTURE_MARGIN, 0)
        hi = np.minimum(where.max(axis=0) + 1 + _PICTURE_MARGIN, truth.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        centre = np.round(where.mean(axis=0)).astype(int) - lo
        rows.append(viz.central_planes(test.image[box], labels[box] == label, truth[box],
                                       test.spacing, min_side=200, centre=centre, origin=lo,
                                       caption=f"{net.name}: {side} hippocampus of {test.name}"
                                       " (green TP, red FP, blue FN)"))
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
    train = hippocampus_mri("train", region="brain")[0]
    test = hippocampus_mri("test", region="brain")[0]
    note(f"data: train {train.name} (whole brain {train.shape}); test (held out) "
         f"{test.name} (whole brain {test.shape}) ({time.perf_counter() - started:.1f} s)")
    rows = []
    for net in networks:
        seg = _segmenter(net, seed)
        note(f"{net.name}: training {net.model} on {net.epochs} x {net.batches} batches of "
             f"{BATCH_SIZE} patches of {net.patch_size} voxels")
        t0 = time.perf_counter()
        seg.fit([train.image], [train.mask], affines=[train.affine], progress=True)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, labels = seg.predict_maps(test.image, affine=test.affine, progress=None)
        infer_s = time.perf_counter() - t0
        result = _evaluate(labels, test)
        _picture(net, labels, test, out / f"{net.name}.png")
        seg.training_data_ = BUILT_IN["mri"]  # what its run card and report name
        seg.save(out / f"{net.name}.fseg")  # for fastseg segment on the user's own scans
        row = {"network": net.name, "model": net.model, "patch_size": net.patch_size,
               **result, "train_s": train_s, "infer_s": infer_s,
               "threshold": seg.decision_threshold(),
               "final_loss": float(seg.history_["loss"][-1])}
        rows.append(row)
        note(f"{net.name}: Dice {row['dice_left']:.3f} left, {row['dice_right']:.3f} right, "
             f"HD95 {row['hd95']:.2f} mm, trained in {train_s:.1f} s, whole brain in "
             f"{infer_s:.1f} s")
    result = {"data": {"train": train.name, "test": test.name, "region": "whole brain"},
              "settings": {"batch_size": BATCH_SIZE, "optimizer": OPTIMIZER, "lr": LEARNING_RATE,
                           "seed": seed, "networks": [asdict(n) for n in networks]},
              "networks": rows, "total_s": time.perf_counter() - started}
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
    print("\nheld-out whole brain (ICBM 2009c): each hippocampus against the atlases' vote")
    print(_format_table(result["networks"]))
    best = max(result["networks"], key=lambda r: r["dice_left"] + r["dice_right"])
    print(f"best: {best['network']} (Dice {best['dice_left']:.3f} / {best['dice_right']:.3f}); "
          f"total {result['total_s']:.0f} s\nwrote {out}/metrics.json, "
          f"{', '.join(n.name + '.png' for n in networks)} and the models "
          f"({', '.join(n.name + '.fseg' for n in networks)}: fastseg segment "
          f"{out / best['network']}.fseg SCAN.nii.gz --out DIR)")
    return 0
