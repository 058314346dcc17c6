"""``vanishing``: the vanishing gradient in a deep plain network, and two of its cures.

A plain network of 9 layers with weights (4 padded 3x3 convolutions, 4 fully connected
layers, the output layer; no pooling, no skip connections, no normalisation) is built with
sigmoid, tanh or ReLU after every hidden layer, from PyTorch's default initialisation,
and trained by the same SGD with momentum, from scratch and after greedy layer-wise
pre-training (:func:`fastseg.pretrain.layerwise`); a pre-trained ReLU network is also
fine-tuned at a tenth of the rate. One more ReLU network starts from He
et al.'s (2015) initialisation, U(+-sqrt(6/fan_in)), made for ReLU: PyTorch's default
(U(+-1/sqrt(fan_in)), a weight variance 6 times smaller) shrinks a ReLU network's signal
and gradient at every layer. The per-layer diagnostics of :func:`fastseg.train.fit` record
each layer's gradient norm over training.
"""
from __future__ import annotations

import math
import time

import fastseg
from fastseg import diagnostics, nn, optim, pretrain
from fastseg.experiments._common import Result, make_data, run_training
from fastseg.nn import init

NAME = "vanishing"
TITLE = "Vanishing gradient in a 9-layer plain network"
ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}

SETTINGS = {
    "default": {"train_images": 6, "test_images": 4, "size": (292, 282), "patch": 16,
                "channels": 12, "convs": 4, "width": 64, "fcs": 4, "batch_size": 64,
                "steps": 600, "eval_every": 100, "diagnostics_every": 20,
                "test_pixels": 6000, "lr": 0.01, "momentum": 0.9,
                "pretrain_patches": 4096, "pretrain_epochs": 2, "pretrain_lr": 0.01},
    "quick": {"train_images": 1, "test_images": 1, "size": (80, 80), "patch": 8,
              "channels": 3, "convs": 4, "width": 8, "fcs": 4, "batch_size": 16,
              "steps": 12, "eval_every": 6, "diagnostics_every": 3, "test_pixels": 300,
              "lr": 0.01, "momentum": 0.9, "pretrain_patches": 64, "pretrain_epochs": 1,
              "pretrain_lr": 0.01},
}


def deep_plain_net(activation, s):
    """`convs` padded 3x3 convolutions, `fcs` fully connected layers, one output layer."""
    layers, channels = [], 1
    for _ in range(s["convs"]):
        layers += [nn.Conv2d(channels, s["channels"], 3, padding=1), activation()]
        channels = s["channels"]
    layers.append(nn.Flatten())
    features = channels * s["patch"] ** 2
    for _ in range(s["fcs"]):
        layers += [nn.Linear(features, s["width"]), activation()]
        features = s["width"]
    return nn.Sequential(*layers, nn.Linear(features, 2))


def he_init(net):
    """He et al.'s uniform initialisation of every weight (biases zero), in place."""
    for module in net.modules():
        weight = dict(module.named_parameters(recurse=False)).get("weight")
        if weight is not None:
            fan_in = math.prod(weight.shape[1:])
            weight.data[...] = init.uniform(weight.shape, math.sqrt(6.0 / fan_in))
            if module.bias is not None:
                module.bias.data[...] = 0.0
    return net


def _configs():
    """(label, activation, pre-train, He init, fine-tuning rate factor) of every run."""
    for name, activation in ACTIVATIONS.items():
        for pre in (False, True):
            yield f"{name}{' + pre-training' if pre else ''}", name, activation, pre, False, 1.0
    # Pre-training leaves larger activations, so the same rate makes far larger updates.
    yield "relu + pre-training, lr / 10", "relu", nn.ReLU, True, False, 0.1
    yield "relu, He init", "relu", nn.ReLU, False, True, 1.0


def _ratio(a, b):
    # The output layer's gradient is exactly 0 once a collapsed network answers 0.5
    # everywhere on balanced batches: then the ratio means nothing.
    return a / b if b > 0 else math.nan


def _profile(record, layers, at):
    """Gradient norm of each layer (input to output) at recorded row `at`."""
    return [record["grad_norm"][key][at] for key in layers]


def run(s: dict, seed: int, say) -> Result:
    data = make_data(train_images=s["train_images"], test_images=s["test_images"],
                     size=s["size"], patch=s["patch"], batch_size=s["batch_size"],
                     eval_every=s["eval_every"], test_pixels=s["test_pixels"], seed=seed)
    unlabelled = pretrain.unlabelled_patches(data.sampler, s["pretrain_patches"])
    runs, rows, profiles = {}, [], {}
    for label, name, activation, pre, he, factor in _configs():
        fastseg.seed(seed)  # the same initial weights with and without pre-training
        net = deep_plain_net(activation, s)
        if he:
            he_init(net)
        began = time.perf_counter()
        recon = {}
        if pre:
            pretrain.layerwise(net, unlabelled, epochs=s["pretrain_epochs"],
                               lr=s["pretrain_lr"], seed=seed, history=recon)
        pre_seconds = time.perf_counter() - began
        opt = optim.SGD(net.parameters(), lr=s["lr"] * factor, momentum=s["momentum"])
        curves = run_training(net, data, opt, s["steps"], diagnostics=s["diagnostics_every"])
        record = curves.history["diagnostics"]
        layers = diagnostics.layer_names(net)
        first, last = _profile(record, layers, 0), _profile(record, layers, -1)
        profiles[label] = (first, last)
        final = curves.final()
        rows.append({"activation": name, "initialisation": "He" if he else "PyTorch default",
                     "pre-trained": "yes" if pre else "no", "lr": s["lr"] * factor,
                     "grad norm layer 1 / layer 9 (start)": _ratio(first[0], first[-1]),
                     "grad norm layer 1 / layer 9 (end)": _ratio(last[0], last[-1]),
                     "layer-1 grad norm (start)": first[0], "diverged": curves.diverged_at(),
                     "test Dice": final["dice"], "test AUC": final["auc"],
                     "pre-training s": round(pre_seconds, 1),
                     "seconds": round(time.perf_counter() - began, 1)})
        runs[label] = {**curves.as_json(), "layers": layers, "pretrain_loss": recon}
        say(f"{label}: layer 1/9 gradient ratio {_ratio(first[0], first[-1]):.2e} at the start, "
            f"test Dice {final['dice']:.3f}")
    depth = list(range(1, len(layers) + 1))
    panels = []
    for name in ACTIVATIONS:
        series = {}
        for label, (first, last) in profiles.items():
            if label.split(" ")[0].rstrip(",") == name:
                tag = ("pre-trained, lr / 10" if "lr / 10" in label else
                       "pre-trained" if "pre-training" in label else
                       "He init" if "He" in label else "from scratch")
                series[f"{tag}, start"] = (depth, first)
                series[f"{tag}, end"] = (depth, last)
        panels.append({"title": f"{name}: gradient norm per layer", "xlabel": "layer (1 = input)",
                       "series": series, "log": True})
    panels.append({"title": "layer-1 gradient norm over training", "xlabel": "step",
                   "log": True,
                   "series": {label: (r["diagnostics"]["step"],
                                      r["diagnostics"]["grad_norm"][r["layers"][0]])
                              for label, r in runs.items()}})
    panels.append({"title": "test Dice", "xlabel": "step",
                   "series": {label: (r["step"], r["test"]["dice"])
                              for label, r in runs.items()}})
    notes = [f"{len(depth)} layers with weights; PyTorch's default initialisation "
             "(U(+-1/sqrt(fan_in))) except where He's is named; SGD with momentum 0.9 at "
             "the lr shown."]
    return Result(NAME, TITLE, ["activation", "initialisation", "pre-trained", "lr",
                                "grad norm layer 1 / layer 9 (start)",
                                "grad norm layer 1 / layer 9 (end)", "layer-1 grad norm (start)",
                                "diverged", "test Dice", "test AUC", "pre-training s",
                                "seconds"], rows, panels, runs, s, notes)

