"""What the experiments share: the data, training with measured curves, evaluation, and the
table / plot / JSON each one writes.

Every experiment trains on class-balanced patches of built-in synthetic fundus images
(:func:`fastseg.data.synthetic_fundus`, as ``fastseg train`` does) and is scored on pixels
drawn uniformly from the fields of view of *other* images, at their natural vessel share
(about 12 %), with the prior correction of :class:`fastseg.Segmenter`: so "Dice" estimates the
Dice of segmenting those whole images, without the cost of segmenting them densely.
"""
from __future__ import annotations

import json
import math
import platform
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

import fastseg
from fastseg import metrics, nn, ops, train, viz
from fastseg._atomic import atomic_write
from fastseg.data import PatchSampler, synthetic_fundus
from fastseg.errors import NonFiniteError
from fastseg.segmenter import Segmenter

#: Share of vessel patches in each training batch (the Segmenter's default).
POSITIVE_FRACTION = 0.5


@dataclass
class PatchData:
    """Training batches and fixed evaluation pixels of the built-in data.

    Attributes
    ----------
    sampler : PatchSampler
        Balanced, augmented training patches; ``batches_per_epoch`` is the
        evaluation interval (an "epoch" here is the steps between two evaluations).
    test : (x, y)
        Patches around uniformly drawn FOV pixels of the test images, and their labels.
    train : (x, y) or None
        The same from the training images (for the train/test gap).
    prior : float
        Vessel share of the training FOVs (for the prior correction).
    """

    sampler: PatchSampler
    test: tuple
    train: tuple | None
    prior: float


def _natural_pixels(samples, patch, count, seed):
    """`count` patches around FOV pixels drawn uniformly (natural class ratio)."""
    sampler = PatchSampler(samples, size=patch, batch_size=min(count, 1024),
                           positive_fraction=None, augment=False, seed=seed)
    parts = [sampler.batch(0, b) for b in range(-(-count // sampler.batch_size))]
    return (np.concatenate([x for x, _ in parts])[:count],
            np.concatenate([y for _, y in parts])[:count])


def make_data(*, train_images, test_images, size, patch, batch_size, eval_every, test_pixels,
              train_pixels=0, seed=0) -> PatchData:
    """Synthetic training and test images (different seeds) cut as :class:`PatchData`."""
    train_set = synthetic_fundus(train_images, shape=size, seed=seed, split="training")
    test_set = synthetic_fundus(test_images, shape=size, seed=seed + 7919, split="test")
    sampler = PatchSampler(train_set, size=patch, batch_size=batch_size,
                           positive_fraction=POSITIVE_FRACTION, augment=True, seed=seed,
                           batches_per_epoch=eval_every)
    vessel = sum(int((s.mask & s.fov).sum()) for s in train_set)
    prior = vessel / sum(int(s.fov.sum()) for s in train_set)
    test = _natural_pixels(test_set, patch, test_pixels, seed + 1)
    held = _natural_pixels(train_set, patch, train_pixels, seed + 2) if train_pixels else None
    return PatchData(sampler, test, held, prior)


def probabilities(net, x, chunk=512) -> tuple[np.ndarray, np.ndarray]:
    """The logits of `net` (eval mode) on `x`, and the vessel probabilities (softmax)."""
    was_training = net.training
    net.eval()
    try:
        logits = np.concatenate([ops.to_device(net(x[i:i + chunk]), "cpu")
                                 for i in range(0, len(x), chunk)])
    finally:
        net.train(was_training)
    return logits, ops.softmax(logits)[:, 1]


def evaluate(net, xy, prior) -> dict:
    """Cross-entropy, Dice (after the prior correction) and AUC of `net` on ``xy``."""
    x, y = xy
    logits, prob = probabilities(net, x)
    loss, _ = ops.softmax_cross_entropy(logits, y)
    calibrate = Segmenter(positive_fraction=POSITIVE_FRACTION)
    calibrate.class_prior_ = prior
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no predicted vessel yet: precision
        m = metrics.evaluate(calibrate.calibrate(prob), y.astype(bool))
    return {"loss": float(loss), "dice": m["dice"], "auc": m["auc"]}


@dataclass
class Curves:
    """What :func:`run_training` measured."""

    step: list = field(default_factory=list)      # steps done at each evaluation
    seconds: list = field(default_factory=list)   # training time (evaluations excluded)
    test: dict = field(default_factory=dict)      # metric -> values at each evaluation
    train: dict = field(default_factory=dict)     # the same on training pixels, if asked
    step_loss: list = field(default_factory=list)
    history: dict = field(default_factory=dict)
    diverged: int | None = None                   # the step whose loss was not finite

    def diverged_at(self) -> str:
        return "no" if self.diverged is None else f"at step {self.diverged}"

    def final(self, split="test") -> dict:
        table = self.test if split == "test" else self.train
        return {k: v[-1] for k, v in table.items()}

    def as_json(self) -> dict:
        out = {"step": self.step, "seconds": self.seconds, "test": self.test,
               "step_loss": self.step_loss, "diverged": self.diverged}
        if self.train:
            out["train"] = self.train
        if "diagnostics" in self.history:
            out["diagnostics"] = self.history["diagnostics"]
        return out


def _non_finite(exc) -> bool:
    """Whether `exc` is training blowing up (the loss or the logits became NaN or inf)."""
    return isinstance(exc, (FloatingPointError, NonFiniteError))


def run_training(net, data: PatchData, optimizer, steps, *, teacher=None, diagnostics=None,
                 evaluate_train=False) -> Curves:
    """Train `net` for `steps` steps (cross-entropy on labels, or :func:`train.mimic` on
    `teacher`'s logits), evaluating every ``data.sampler.batches_per_epoch`` steps.

    A run whose loss or logits stop being finite stops there: ``diverged`` holds that
    step, and the curves end at the last evaluation before it.
    """
    every = data.sampler.batches_per_epoch
    curves = Curves()
    clock = {"start": time.perf_counter(), "eval": 0.0}

    def record(epoch, model, history):
        curves.history = history  # the live dict: what a diverged run did survives in it
        began = time.perf_counter()
        curves.step.append((epoch + 1) * every)
        curves.seconds.append(began - clock["start"] - clock["eval"])
        for split, xy, table in (("test", data.test, curves.test),
                                 ("train", data.train, curves.train)):
            if split == "train" and not evaluate_train:
                continue
            for k, v in evaluate(model, xy, data.prior).items():
                table.setdefault(k, []).append(v)
        clock["eval"] += time.perf_counter() - began

    def batches(epoch):
        return [data.sampler.batch(epoch, b) for b in range(every)]

    epochs = max(1, steps // every)
    options = {"callbacks": [record], "progress": False, "diagnostics": diagnostics}
    try:
        if teacher is None:
            history = train.fit(net, batches, nn.CrossEntropyLoss(), optimizer, epochs,
                                **options)
        else:
            history = train.mimic(teacher, net, batches, optimizer, epochs, **options)
    except (FloatingPointError, ValueError) as exc:
        if not _non_finite(exc):
            raise
        history = curves.history or {"step_loss": []}
        curves.diverged = len(history["step_loss"])
        if not curves.step:  # diverged before the first evaluation: record chance level
            curves.step, curves.seconds = [0], [0.0]
            curves.test = {"loss": [math.nan], "dice": [0.0], "auc": [0.5]}
    curves.step_loss = list(history["step_loss"])
    curves.history = history
    return curves


def parameter_count(net) -> int:
    return int(sum(p.numel() for p in net.parameters()))


def smooth(values, width):
    """Moving average (for noisy per-step losses); the first points average what exists."""
    values = np.asarray(values, dtype=np.float64)
    if width <= 1 or len(values) < 2:
        return values.tolist()
    cum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - width, 0)
    return ((cum[idx] - cum[lo]) / (idx - lo)).tolist()


# ---- what an experiment writes -------------------------------------------------------------


@dataclass
class Result:
    """An experiment's outcome: a table, plot panels, the raw runs, and its settings."""

    name: str
    title: str
    columns: list
    rows: list
    panels: list
    runs: dict
    settings: dict
    notes: list = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def _cell(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(columns, rows) -> str:
    """`rows` (dicts) under `columns` as a Markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def environment() -> dict:
    """Where the figures were measured."""
    return {"fastseg": fastseg.__version__, "backend": fastseg.get_backend(),
            "threads": fastseg.get_num_threads(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine()}


def write(result: Result, out) -> dict:
    """Write ``NAME.md`` (the table), ``NAME.png`` (the plot) and ``NAME.json`` under `out`;
    returns the paths."""
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"{result.name}.{kind}" for kind in ("md", "png", "json")}
    table = markdown_table(result.columns, result.rows)
    text = f"# {result.title}\n\n{table}\n"
    if result.notes:
        text += "\n" + "\n".join(f"- {n}" for n in result.notes) + "\n"
    atomic_write(paths["md"], lambda f: f.write(text.encode()))
    viz.plot_panels(paths["png"], result.panels, title=result.title)
    doc = finite({"experiment": result.name, "title": result.title,
                  "settings": result.settings, "environment": environment(),
                  "seconds": round(result.seconds, 1),
                  "cpu_seconds": round(result.cpu_seconds, 1), "columns": result.columns,
                  "table": result.rows, "notes": result.notes, "runs": result.runs})
    atomic_write(paths["json"],
                 lambda f: f.write((json.dumps(doc, indent=1, allow_nan=False,
                                               default=_jsonable) + "\n").encode()))
    return paths


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


def finite(obj):
    """`obj` with every NaN/inf float replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj
