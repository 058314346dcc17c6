"""``dropout``: lai2d with and without dropout, trained on a single image.

The report names dropout as a cure for overfitting. With one training image, lai2d
(12.8 million weights) can learn that image's pixels by heart; the gap between its Dice
on the training image and on unseen images measures how much. The same network from the
same weights is trained with dropout (p = 0.5 before the output layer, as
:func:`fastseg.models.lai2d` places it) and without.
"""
from __future__ import annotations

import time

import fastseg
from fastseg import models, optim
from fastseg.experiments._common import Result, make_data, run_training

NAME = "dropout"
TITLE = "Dropout on one training image: the train/test gap"
RATES = (0.0, 0.5)

SETTINGS = {
    "default": {"train_images": 1, "test_images": 4, "size": (292, 282), "patch": 24,
                "hidden": 1000, "conv_channels": (20, 50), "batch_size": 128, "steps": 600,
                "eval_every": 75, "test_pixels": 5000, "train_pixels": 3000, "lr": 0.01,
                "momentum": 0.9, "augment": False},
    "quick": {"train_images": 1, "test_images": 1, "size": (80, 80), "patch": 12,
              "hidden": 16, "conv_channels": (4, 6), "batch_size": 32, "steps": 24,
              "eval_every": 8, "test_pixels": 400, "train_pixels": 400, "lr": 0.01,
              "momentum": 0.9, "augment": False},
}


def run(s: dict, seed: int, say) -> Result:
    data = make_data(train_images=s["train_images"], test_images=s["test_images"],
                     size=s["size"], patch=s["patch"], batch_size=s["batch_size"],
                     eval_every=s["eval_every"], test_pixels=s["test_pixels"],
                     train_pixels=s["train_pixels"], seed=seed)
    data.sampler.augment = bool(s["augment"])
    runs, rows = {}, []
    for p in RATES:
        label = f"dropout {p:g}" if p else "no dropout"
        fastseg.seed(seed)
        net = models.lai2d(patch_size=s["patch"], conv_channels=s["conv_channels"],
                           hidden=s["hidden"], dropout=p)
        opt = optim.SGD(net.parameters(), lr=s["lr"], momentum=s["momentum"])
        began = time.perf_counter()
        curves = run_training(net, data, opt, s["steps"], evaluate_train=True)
        train, test = curves.final("train"), curves.final("test")
        best = max(range(len(curves.step)), key=lambda i: curves.test["dice"][i])
        rows.append({"network": label, "train Dice": train["dice"], "test Dice": test["dice"],
                     "gap (train - test)": train["dice"] - test["dice"],
                     "train loss": train["loss"], "test loss": test["loss"],
                     "best test Dice (step)": f"{curves.test['dice'][best]:.3f} "
                                              f"({curves.step[best]})",
                     "seconds": round(time.perf_counter() - began, 1)})
        runs[label] = curves.as_json()
        say(f"{label}: train Dice {train['dice']:.3f}, test Dice {test['dice']:.3f}")
    panels = [
        {"title": "Dice", "xlabel": "step",
         "series": {f"{n}, {split}": (r["step"], r[split]["dice"])
                    for n, r in runs.items() for split in ("train", "test")}},
        {"title": "loss (cross-entropy on pixels)", "xlabel": "step", "log": True,
         "series": {f"{n}, {split}": (r["step"], r[split]["loss"])
                    for n, r in runs.items() for split in ("train", "test")}},
    ]
    notes = ["train: pixels of the one training image (drawn uniformly in its field of "
             "view, as the test pixels are in the test images); no flips or rotations "
             "(augment off), so the network sees the same patches again."]
    return Result(NAME, TITLE, ["network", "train Dice", "test Dice", "gap (train - test)",
                                "train loss", "test loss", "best test Dice (step)", "seconds"],
                  rows, panels, runs, s, notes)
