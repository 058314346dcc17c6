"""Helpers shared by the segmentation, segmenter, viz and CLI tests."""
import numpy as np
import pytest

import fastseg
from fastseg import nn
from fastseg.data import patches_at


@pytest.fixture(autouse=True)
def usable_backend():
    """Run on the default backend when it works here, else on the NumPy reference;
    restore it afterwards (CLI tests may switch backends with --backend)."""
    if fastseg.get_backend() not in fastseg.available_backends():
        fastseg.set_backend("numpy")
    before = fastseg.get_backend()
    yield
    if fastseg.get_backend() != before:
        fastseg.set_backend(before)


def reference_probability(model, image, coords, size):
    """Class-1 softmax of the patch classifier on the patches that patches_at cuts."""
    logits = np.asarray(model.eval()(patches_at(image, coords, size)), dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e[:, 1] / e.sum(axis=1)).astype(np.float32)


def all_pixels(h, w):
    return np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), -1).reshape(-1, 2)


def tiny_net(in_channels=1, patch=9, pool=False, hidden=6, strided=False):
    """conv3 -> ReLU [-> maxpool2] -> conv3 -> Tanh -> Flatten -> Linear -> Sigmoid
    -> Dropout -> Linear(2); `strided` makes the second conv stride 2 instead."""
    layers = [nn.Conv2d(in_channels, 4, 3), nn.ReLU()]
    side = patch - 2
    if pool:
        layers.append(nn.MaxPool2d(2))
        side //= 2
    layers += [nn.Conv2d(4, 5, 3, stride=2 if strided else 1), nn.Tanh(), nn.Flatten()]
    side = (side - 3) // (2 if strided else 1) + 1
    layers += [nn.Linear(5 * side * side, hidden), nn.Sigmoid(), nn.Dropout(0.5),
               nn.Linear(hidden, 2)]
    fastseg.seed(7)
    net = nn.Sequential(*layers)
    # Bigger weights than the default init, so probabilities spread over (0, 1).
    for p in net.parameters():
        p.data *= 3
    return net


def image_of(c, h, w, seed=0):
    return np.random.default_rng(seed).standard_normal((c, h, w)).astype(np.float32)
