"""``optimizers``: SGD, SGD with momentum, Rprop and Adam training lai2d.

The report trained with SGD and discusses Rprop, which steps each weight by its own
step size using only the sign of its gradient (designed for full-batch training). Each
optimizer, at PyTorch's usual learning rate for it, trains the same lai2d from the same
initial weights on the same batches; loss and Dice are recorded against steps and
against time. The time of a step is measured after training, side by side: one step of
each optimizer in turn, several rounds, the median (so that a busy machine slows all of
them alike); the time axis is steps times that.
"""
from __future__ import annotations

import time

import numpy as np

import fastseg
from fastseg import models, nn, optim
from fastseg.experiments._common import Result, make_data, run_training, smooth
from fastseg.nn.module import backward_params

NAME = "optimizers"
TITLE = "Optimizers training lai2d"
#: name -> (builder, learning rate, description)
OPTIMIZERS = {
    "SGD": (lambda p, lr: optim.SGD(p, lr=lr), 0.01, "lr 0.01"),
    "SGD + momentum": (lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9), 0.01,
                       "lr 0.01, momentum 0.9"),
    "Rprop": (lambda p, lr: optim.Rprop(p, lr=lr), 0.01,
              "initial step 0.01, etas (0.5, 1.2), steps in [1e-6, 50]"),
    "Adam": (lambda p, lr: optim.Adam(p, lr=lr), 0.001, "lr 0.001, betas (0.9, 0.999)"),
}

SETTINGS = {
    "default": {"train_images": 6, "test_images": 4, "size": (292, 282), "patch": 24,
                "hidden": 1000, "conv_channels": (20, 50), "batch_size": 128, "steps": 250,
                "eval_every": 50, "test_pixels": 5000, "timing_rounds": 7},
    "quick": {"train_images": 1, "test_images": 1, "size": (96, 96), "patch": 12,
              "hidden": 16, "conv_channels": (4, 6), "batch_size": 32, "steps": 24,
              "eval_every": 8, "test_pixels": 500, "timing_rounds": 2},
}


def step_seconds(trained, batch, rounds) -> dict:
    """Median seconds of one training step of each (net, optimizer), measured in turn."""
    x, y = batch
    loss_fn = nn.CrossEntropyLoss()
    times = {name: [] for name in trained}
    for _ in range(rounds):
        for name, (net, opt) in trained.items():
            began = time.perf_counter()
            opt.zero_grad()
            loss_fn(net(x), y)
            backward_params(net, loss_fn.backward())
            opt.step()
            times[name].append(time.perf_counter() - began)
    return {name: float(np.median(t)) for name, t in times.items()}


def run(s: dict, seed: int, say) -> Result:
    data = make_data(train_images=s["train_images"], test_images=s["test_images"],
                     size=s["size"], patch=s["patch"], batch_size=s["batch_size"],
                     eval_every=s["eval_every"], test_pixels=s["test_pixels"], seed=seed)
    runs, rows, trained = {}, [], {}
    for name, (build, lr, what) in OPTIMIZERS.items():
        fastseg.seed(seed)
        net = models.lai2d(patch_size=s["patch"], conv_channels=s["conv_channels"],
                           hidden=s["hidden"])
        opt = build(net.parameters(), lr)
        began = time.perf_counter()
        curves = run_training(net, data, opt, s["steps"])
        trained[name] = (net, opt)
        final = curves.final()
        tail = max(1, len(curves.step_loss) // 10)
        rows.append({"optimizer": name, "settings": what, "diverged": curves.diverged_at(),
                     "test Dice": final["dice"],
                     "test AUC": final["auc"], "test loss": final["loss"],
                     "train loss (last 10 %)": float(np.mean(curves.step_loss[-tail:])),
                     "steps": curves.step[-1],
                     "seconds": round(time.perf_counter() - began, 1)})
        runs[name] = curves.as_json()
        say(f"{name}: test Dice {final['dice']:.3f} after {curves.step[-1]} steps")
    per_step = step_seconds(trained, data.sampler.batch(10**6, 0), s["timing_rounds"])
    for row in rows:
        row["ms / step"] = round(1000 * per_step[row["optimizer"]], 1)
        row["training s (steps x ms)"] = round(row["steps"] * per_step[row["optimizer"]], 1)
    for name, r in runs.items():
        r["step_seconds"] = per_step[name]
    width = max(1, s["eval_every"] // 2)

    def loss_series(x_of):
        return {n: (x_of(r), smooth(r["step_loss"], width)) for n, r in runs.items()}

    def per_step_seconds(r):
        return (np.arange(1, len(r["step_loss"]) + 1) * r["step_seconds"]).tolist()

    panels = [
        {"title": "test Dice against steps", "xlabel": "step",
         "series": {n: (r["step"], r["test"]["dice"]) for n, r in runs.items()}},
        {"title": "test Dice against time", "xlabel": "training seconds",
         "series": {n: ([k * r["step_seconds"] for k in r["step"]], r["test"]["dice"])
                    for n, r in runs.items()}},
        {"title": "test loss", "xlabel": "step", "log": True,
         "series": {n: (r["step"], r["test"]["loss"]) for n, r in runs.items()}},
        {"title": "training loss (moving average) against steps", "xlabel": "step",
         "log": True, "series": loss_series(lambda r: list(range(1, len(r["step_loss"]) + 1)))},
        {"title": "training loss against time", "xlabel": "training seconds", "log": True,
         "series": loss_series(per_step_seconds)},
    ]
    notes = ["ms / step: one training step (batch of the run's size), median of "
             f"{s['timing_rounds']} rounds taking the optimizers in turn after training."]
    return Result(NAME, TITLE, ["optimizer", "settings", "diverged", "test Dice", "test AUC",
                                "test loss", "train loss (last 10 %)", "steps", "ms / step",
                                "training s (steps x ms)", "seconds"], rows, panels, runs, s,
                  notes)
