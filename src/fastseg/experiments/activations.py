"""``activations``: sigmoid, tanh, ReLU and the non-monotonic x*sin(x) in one network.

The report asks of an activation that it be differentiable, non-linear and monotonic.
The same lai2d-shaped network (two 5x5 convolutions, one hidden fully connected layer),
with the same initial weights and batches, is trained with each activation after every
layer, by the same SGD with momentum.
"""
from __future__ import annotations

import time

import numpy as np

import fastseg
from fastseg import models, ops, optim
from fastseg.experiments._common import Result, make_data, run_training, smooth

NAME = "activations"
TITLE = "Activation functions at equal depth (lai2d shape)"
ACTIVATIONS = {"sigmoid": ("1/(1+e^-x)", True), "tanh": ("tanh x", True),
               "relu": ("max(x, 0)", True), "xsin": ("x sin x", False)}

SETTINGS = {
    "default": {"train_images": 6, "test_images": 4, "size": (292, 282), "patch": 24,
                "conv_channels": (20, 50), "hidden": 256, "batch_size": 128, "steps": 400,
                "eval_every": 50, "test_pixels": 6000, "lr": 0.01, "momentum": 0.9},
    "quick": {"train_images": 1, "test_images": 1, "size": (96, 96), "patch": 12,
              "conv_channels": (4, 6), "hidden": 16, "batch_size": 32, "steps": 24,
              "eval_every": 8, "test_pixels": 500, "lr": 0.01, "momentum": 0.9},
}


def run(s: dict, seed: int, say) -> Result:
    data = make_data(train_images=s["train_images"], test_images=s["test_images"],
                     size=s["size"], patch=s["patch"], batch_size=s["batch_size"],
                     eval_every=s["eval_every"], test_pixels=s["test_pixels"], seed=seed)
    runs, rows = {}, []
    for name, (formula, monotonic) in ACTIVATIONS.items():
        fastseg.seed(seed)  # the same initial weights for every activation
        net = models.lai2d(patch_size=s["patch"], conv_channels=s["conv_channels"],
                           hidden=s["hidden"], conv_activation=name, fc_activation=name)
        opt = optim.SGD(net.parameters(), lr=s["lr"], momentum=s["momentum"])
        began = time.perf_counter()
        curves = run_training(net, data, opt, s["steps"])
        final = curves.final()
        tail = max(1, len(curves.step_loss) // 10)
        rows.append({"activation": name, "f(x)": formula,
                     "monotonic": "yes" if monotonic else "no",
                     "diverged": curves.diverged_at(),
                     "test Dice": final["dice"], "test AUC": final["auc"],
                     "test loss": final["loss"],
                     "train loss (last 10 %)": float(np.mean(curves.step_loss[-tail:])),
                     "seconds": round(time.perf_counter() - began, 1)})
        runs[name] = curves.as_json()
        say(f"{name}: test Dice {final['dice']:.3f}, AUC {final['auc']:.3f}, diverged: "
            f"{curves.diverged_at()}")
    xs = np.linspace(-6, 6, 121, dtype=np.float32)
    shapes = {name: (xs.tolist(), getattr(ops, name)(xs).tolist()) for name in ACTIVATIONS}
    panels = [
        {"title": "the functions", "xlabel": "x", "series": shapes, "ylim": (-6, 6)},
        {"title": "test Dice", "xlabel": "step",
         "series": {n: (r["step"], r["test"]["dice"]) for n, r in runs.items()}},
        {"title": "training loss (moving average)", "xlabel": "step", "log": True,
         "series": {n: (list(range(1, len(r["step_loss"]) + 1)),
                        smooth(r["step_loss"], max(1, s["eval_every"] // 2)))
                    for n, r in runs.items()}},
    ]
    return Result(NAME, TITLE, ["activation", "f(x)", "monotonic", "diverged", "test Dice",
                                "test AUC",
                                "test loss", "train loss (last 10 %)", "seconds"],
                  rows, panels, runs, s)
