"""Helpers shared by the segmentation, segmenter, viz and CLI tests."""
import numpy as np
import pytest

import fastseg
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
