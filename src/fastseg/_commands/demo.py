"""``fastseg demo``: the whole job on the built-in synthetic fundus data.

1. A synthetic train/test split (different seeds and random streams).
2. lai2d trained on class-balanced 24x24 patches; after every epoch one small
   test crop is segmented densely, giving a frame set of the training GIF and a
   Dice/AUC point of the curve.
3. Every test image segmented densely, the metrics table printed.
4. The DRIVE re-implementation's whole-image network trained on downscaled
   images (SGD, batch 2), evaluated the same way, printed side by side: it
   tends to learn one mask for every image, which the "mutual Dice" of its
   masks shows.

Image size: the default 292x282 is half DRIVE's 584x565. Dense lai2d costs
about 12.8 M multiply-adds per pixel (its 16x16x50 -> 1000 layer), so a
full-size image takes tens of seconds on two cores; half size keeps the whole
demo near five minutes there (measured 5m10s with the CPU shared with other
work: 2 min training, 20 s per test image), well inside a 15-minute budget.
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fastseg import metrics, viz
from fastseg._atomic import atomic_write
from fastseg._commands import CLIError

#: Columns of the printed tables.
COLUMNS = ("dice", "auc", "accuracy", "sensitivity", "specificity")


@dataclass
class Settings:
    """What the demo does; the defaults are the full run, :meth:`quick` the smoke run."""

    size: tuple = (292, 282)
    train_images: int = 8
    test_images: int = 8
    epochs: int = 12
    batches: int = 50
    batch_size: int = 128
    lr: float = 0.01
    hidden: int = 1000
    patch_size: int = 24
    whole_epochs: int = 40
    whole_size: int = 64
    gif_size: int = 96
    seed: int = 0

    @classmethod
    def quick(cls, **kw):
        base = {"size": (128, 128), "train_images": 2, "test_images": 2, "epochs": 2,
                "batches": 12, "whole_epochs": 5, "whole_size": 32, "gif_size": 64}
        base.update(kw)
        return cls(**base)

    @classmethod
    def from_args(cls, args):
        given = {"size": tuple(args.size) if args.size else None,
                 "train_images": args.train_images, "test_images": args.test_images,
                 "epochs": args.epochs, "batches": args.batches, "hidden": args.hidden,
                 "patch_size": args.patch_size, "whole_epochs": args.whole_epochs,
                 "whole_size": args.whole_size, "gif_size": args.gif_size,
                 "seed": args.seed}
        given = {k: v for k, v in given.items() if v is not None}
        settings = cls.quick(**given) if args.quick else cls(**given)
        if min(settings.size) < 64:
            raise CLIError(f"--size: the synthetic images need at least 64x64, got "
                           f"{settings.size[0]}x{settings.size[1]}")
        return settings


def _table_rows(rows):
    return [{"name": r["name"], **{k: r[k] for k in COLUMNS}} for r in rows]


def _crop(sample, side):
    """The side x side crop (image, mask, fov) of a sample with the most vessel pixels.

    The image centre is the vessel-free fovea, a poor window to watch training in.
    """
    h, w = sample.mask.shape
    side = min(side, h, w)
    mask = sample.mask & sample.fov
    step = max(side // 4, 1)
    best = max((mask[y:y + side, x:x + side].sum(), y, x)
                for y in range(0, h - side + 1, step) for x in range(0, w - side + 1, step))
    _, y, x = best
    window = (slice(y, y + side), slice(x, x + side))
    return sample.image[window], sample.mask[window], sample.fov[window]


def _gif_callback(seg, crop, frames, progress_note):
    """A train.fit callback: segment the crop, keep its frames, report Dice and AUC."""
    from fastseg.segment import segment

    image, truth, fov = crop

    def callback(epoch, model, history):
        x = seg._input(image, fov)
        prob = seg.calibrate(segment(model, x, fov=fov, patch_size=seg.patch_size,
                                     progress=False))
        frames.extend(viz.training_frames(image, truth, prob, fov, epoch=epoch + 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # e.g. no predicted vessel yet
            m = metrics.evaluate(prob, truth, fov)
        progress_note(f"epoch {epoch + 1}: loss {history['loss'][-1]:.4f}, crop Dice "
                      f"{m['dice']:.3f}, AUC {m['auc']:.3f}")
        return {"crop_dice": m["dice"], "crop_auc": m["auc"]}

    return callback


# ---- the whole-image network --------------------------------------------------------------


def _resize(array, size, resample):
    img = Image.fromarray(array)
    return np.asarray(img.resize((size, size), resample))


def _whole_inputs(samples, size, channels):
    from fastseg.data import preprocess

    xs, ys = [], []
    for s in samples:
        fov = _resize(s.fov.astype(np.uint8) * 255, size, Image.NEAREST) > 127
        image = _resize(s.image, size, Image.BILINEAR)
        xs.append(preprocess(image, fov, channels))
        ys.append(_resize(s.mask.astype(np.uint8) * 255, size, Image.BILINEAR) > 127)
    return np.stack(xs), np.stack(ys)


def _train_whole(settings, train, test, note):
    """Train seo_whole_image as the re-implementation did; (H, W) probabilities per test image."""
    from fastseg import get_backend, models, nn, optim
    from fastseg import train as training

    size = settings.whole_size
    x, y = _whole_inputs(train, size, "green")
    net = models.seo_whole_image(image_size=(size, size), in_channels=1)
    if get_backend() == "cuda":
        net.to("cuda")  # weights, gradients and momentum stay on the GPU while training
    opt = optim.SGD(net.parameters(), lr=settings.lr, momentum=0.9)

    def batches(epoch):
        order = np.random.default_rng([settings.seed, 7, epoch]).permutation(len(x))
        return [(x[order[i:i + 2]], y[order[i:i + 2]].reshape(-1).astype(np.int64))
                for i in range(0, len(x), 2)]

    history = training.fit(net, batches, nn.CrossEntropyLoss(), opt,
                           epochs=settings.whole_epochs, progress=True)
    note(f"whole-image network: final loss {history['loss'][-1]:.4f}")
    net.to("cpu").eval()
    xt, _ = _whole_inputs(test, size, "green")
    small = models.whole_image_probabilities(net(xt), (size, size))
    probs = []
    for s, p in zip(test, small, strict=True):
        h, w = s.mask.shape
        full = np.asarray(Image.fromarray(p.astype(np.float32)).resize((w, h), Image.BILINEAR))
        probs.append(np.where(s.fov, np.clip(full, 0, 1), 0).astype(np.float32))
    return probs, history


def _mutual_dice(probs, fovs):
    """Mean Dice between the predicted masks of every pair of images (1.0: all the same)."""
    masks = [(p >= 0.5) & f for p, f in zip(probs, fovs, strict=True)]
    values = []
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            a, b = masks[i], masks[j]
            total = a.sum() + b.sum()
            values.append(1.0 if total == 0 else 2 * (a & b).sum() / total)
    return float(np.mean(values)) if values else float("nan")


# ---- output ----------------------------------------------------------------------------------


def _write_test_outputs(out, test, probs):
    pred_dir = out / "predictions"
    pred_dir.mkdir(exist_ok=True)
    for s, prob in zip(test, probs, strict=True):
        mask = (prob >= 0.5) & s.fov
        viz.save_image(pred_dir / f"{s.name}_prob.png", viz.probability_image(prob))
        viz.save_image(pred_dir / f"{s.name}_mask.png", viz.mask_image(mask))
        viz.save_image(pred_dir / f"{s.name}_overlay.png",
                       viz.overlay_comparison(s.image, mask, s.mask, s.fov))
        viz.save_image(pred_dir / f"{s.name}_truth_overlay.png", viz.overlay_mask(s.image, s.mask))
    # The test data itself, so `fastseg segment` and `fastseg evaluate` can be tried on it.
    for sub, pick in (("images", lambda s: s.image), ("masks", lambda s: viz.mask_image(s.mask)),
                      ("fov", lambda s: viz.mask_image(s.fov))):
        folder = out / "test_data" / sub
        folder.mkdir(parents=True, exist_ok=True)
        suffix = {"images": "", "masks": "_manual1", "fov": "_mask"}[sub]
        for s in test:
            viz.save_image(folder / f"{s.name}{suffix}.png", pick(s))


def _json_safe(value):
    """`value` with NaN/inf as None, tuples as lists and NumPy scalars as Python ones."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _print_tables(rows, mean, whole_mean, mutual):
    print("\nlai2d (patch network, dense segmentation), inside the FOV:")
    print(metrics.format_table(_table_rows(rows), _table_rows([mean])[0]))
    side = [{"name": "lai2d (patches)", **{k: mean[k] for k in COLUMNS}}]
    if whole_mean is not None:
        side.append({"name": "seo_whole_image", **{k: whole_mean[k] for k in COLUMNS}})
    print("\nmean over the test images:")
    print(metrics.format_table(side))
    for name, value in mutual.items():
        print(f"{name}: masks of different test images agree with Dice {value:.3f} "
              "(1.0 = the same mask for every image)")


def run(args) -> int:
    from tqdm.auto import tqdm

    from fastseg.data import synthetic_fundus
    from fastseg.segmenter import Segmenter

    settings = Settings.from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timings = {}

    def note(text):
        tqdm.write(text)

    t0 = time.perf_counter()
    train = synthetic_fundus(settings.train_images, shape=settings.size, seed=settings.seed,
                             split="training")
    test = synthetic_fundus(settings.test_images, shape=settings.size, seed=settings.seed + 1,
                            split="test")
    timings["data_s"] = time.perf_counter() - t0
    note(f"data: {len(train)} training and {len(test)} test images of "
         f"{settings.size[0]}x{settings.size[1]} (synthetic, seeds {settings.seed} and "
         f"{settings.seed + 1})")

    seg = Segmenter(model="lai2d", patch_size=settings.patch_size, channels="green",
                    epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                    seed=settings.seed, batches_per_epoch=settings.batches,
                    model_kwargs={"hidden": settings.hidden})
    frames = []
    callback = _gif_callback(seg, _crop(test[0], settings.gif_size), frames, note)
    t0 = time.perf_counter()
    seg.fit([s.image for s in train], [s.mask for s in train], [s.fov for s in train],
            callbacks=[callback])
    timings["train_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    probs = [seg.predict_proba(s.image, s.fov, progress=None)
             for s in tqdm(test, desc="segment", unit="image", disable=None)]
    timings["segment_s"] = time.perf_counter() - t0
    timings["segment_per_image_s"] = timings["segment_s"] / len(test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rows, mean = metrics.evaluate_dataset(probs, [s.mask for s in test],
                                              [s.fov for s in test], [s.name for s in test])

    whole = None
    mutual = {"lai2d": _mutual_dice(probs, [s.fov for s in test])}
    if settings.whole_epochs:
        t0 = time.perf_counter()
        whole_probs, whole_history = _train_whole(settings, train, test, note)
        timings["whole_image_s"] = time.perf_counter() - t0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            whole_rows, whole_mean = metrics.evaluate_dataset(
                whole_probs, [s.mask for s in test], [s.fov for s in test],
                [s.name for s in test])
        mutual["seo_whole_image"] = _mutual_dice(whole_probs, [s.fov for s in test])
        whole = {"images": whole_rows, "mean": whole_mean, "loss": whole_history["loss"]}

    t0 = time.perf_counter()
    seg.save(out / "model.fseg")
    _write_test_outputs(out, test, probs)
    history = seg.history_
    viz.plot_curves(out / "curves.png", {"loss": history["loss"],
                                         "test-crop Dice": history["crop_dice"],
                                         "test-crop AUC": history["crop_auc"]},
                    title="lai2d training")
    viz.save_gif(out / "training.gif", frames, duration_ms=700)
    timings["write_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    _print_tables(rows, mean, None if whole is None else whole["mean"], mutual)
    report = {"settings": asdict(settings) | {"quick": bool(args.quick)},
              "lai2d": {"images": rows, "mean": mean,
                        "history": {k: v for k, v in history.items() if k != "step_loss"}},
              "seo_whole_image": whole, "mutual_dice": mutual, "timings_s": timings}
    text = json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n"
    atomic_write(out / "metrics.json", lambda f: f.write(text.encode()))
    print(f"\nwrote {out}/: metrics.json, model.fseg, curves.png, training.gif, predictions/, "
          f"test_data/  ({timings['total_s']:.0f} s)")
    return 0
