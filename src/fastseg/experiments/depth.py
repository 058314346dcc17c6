"""``depth``: deep-narrow against shallow-wide networks with the same number of weights.

The report argues that depth buys more than width: a deep network can compute with
few weights what a shallow one needs exponentially many for. Two pairs, each matched to
within a few per cent in parameters:

* fully connected, on the flattened patch: four hidden layers of `width` units against
  one hidden layer as wide as the same budget allows;
* convolutional, same 9x9 receptive field: four 3x3 convolutions of `channels` filters
  against one 9x9 convolution with as many filters as the budget allows, each followed by
  the same linear classifier of the (8x8) feature maps.

All are trained by Adam from several seeds.
"""
from __future__ import annotations

import time

import numpy as np

import fastseg
from fastseg import nn, optim
from fastseg.experiments._common import Result, make_data, parameter_count, run_training

NAME = "depth"
TITLE = "Deep-narrow against shallow-wide at equal parameter count"

SETTINGS = {
    "default": {"train_images": 6, "test_images": 4, "size": (292, 282), "patch": 16,
                "width": 64, "channels": 8, "batch_size": 128, "steps": 1200,
                "eval_every": 200, "test_pixels": 6000, "lr": 1e-3, "seeds": 3},
    "quick": {"train_images": 1, "test_images": 1, "size": (80, 80), "patch": 16,
              "width": 8, "channels": 3, "batch_size": 32, "steps": 16, "eval_every": 8,
              "test_pixels": 300, "lr": 1e-3, "seeds": 1},
}


def mlp(inputs, hidden):
    layers, features = [nn.Flatten()], inputs
    for units in hidden:
        layers += [nn.Linear(features, units), nn.ReLU()]
        features = units
    return nn.Sequential(*layers, nn.Linear(features, 2))


def convnet(patch, kernels):
    """Unpadded convolutions ``[(filters, kernel), ...]`` with ReLU, then a linear classifier."""
    layers, channels, size = [], 1, patch
    for filters, k in kernels:
        layers += [nn.Conv2d(channels, filters, k), nn.ReLU()]
        channels, size = filters, size - k + 1
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * size * size, 2))


def widest(build, budget):
    """The width w (>= 1) whose network's parameter count is closest to `budget`."""
    best, w = None, 1
    while True:
        count = parameter_count(build(w))
        if best is None or abs(count - budget) < abs(best[1] - budget):
            best = (w, count)
        if count > budget:
            return best[0]
        w += 1


def pairs(s):
    """name -> (builder, description) for the four networks, with matched budgets."""
    inputs = s["patch"] ** 2
    deep_mlp = [s["width"]] * 4
    budget = parameter_count(mlp(inputs, deep_mlp))
    wide = widest(lambda w: mlp(inputs, [w]), budget)
    deep_conv = [(s["channels"], 3)] * 4
    conv_budget = parameter_count(convnet(s["patch"], deep_conv))
    filters = widest(lambda f: convnet(s["patch"], [(f, 9)]), conv_budget)
    return {
        "deep MLP": (lambda: mlp(inputs, deep_mlp), f"4 x {s['width']} units"),
        "shallow MLP": (lambda: mlp(inputs, [wide]), f"1 x {wide} units"),
        "deep conv": (lambda: convnet(s["patch"], deep_conv),
                      f"4 x 3x3 conv, {s['channels']} filters"),
        "shallow conv": (lambda: convnet(s["patch"], [(filters, 9)]),
                         f"1 x 9x9 conv, {filters} filters"),
    }


def run(s: dict, seed: int, say) -> Result:
    data = make_data(train_images=s["train_images"], test_images=s["test_images"],
                     size=s["size"], patch=s["patch"], batch_size=s["batch_size"],
                     eval_every=s["eval_every"], test_pixels=s["test_pixels"], seed=seed)
    runs, rows = {}, []
    for name, (build, what) in pairs(s).items():
        began = time.perf_counter()
        dice, auc, curves_by_seed = [], [], []
        for k in range(s["seeds"]):
            fastseg.seed(seed + k)
            net = build()
            curves = run_training(net, data, optim.Adam(net.parameters(), lr=s["lr"]),
                                  s["steps"])
            dice.append(curves.final()["dice"])
            auc.append(curves.final()["auc"])
            curves_by_seed.append(curves.as_json())
        weighted = sum(1 for m in net.modules()
                       if dict(m.named_parameters(recurse=False)).get("weight") is not None)
        rows.append({"network": name, "layers with weights": weighted, "shape": what,
                     "parameters": parameter_count(net),
                     "test Dice (mean)": float(np.mean(dice)),
                     "Dice min..max": f"{min(dice):.3f}..{max(dice):.3f}",
                     "test AUC (mean)": float(np.mean(auc)),
                     "seconds": round(time.perf_counter() - began, 1)})
        runs[name] = {"seeds": curves_by_seed, "dice": dice, "auc": auc}
        say(f"{name} ({what}, {parameter_count(net)} weights): test Dice "
            f"{np.mean(dice):.3f} over {s['seeds']} seed(s)")
    steps = runs[next(iter(runs))]["seeds"][0]["step"]

    def mean_curve(name, metric):
        return np.mean([r["test"][metric] for r in runs[name]["seeds"]], axis=0).tolist()

    panels = [{"title": f"test {metric} (mean over seeds)", "xlabel": "step",
               "series": {n: (steps, mean_curve(n, metric)) for n in runs}}
              for metric in ("dice", "auc", "loss")]
    panels[2]["log"] = True
    return Result(NAME, TITLE, ["network", "layers with weights", "shape", "parameters",
                                "test Dice (mean)", "Dice min..max", "test AUC (mean)",
                                "seconds"], rows, panels, runs, s)
