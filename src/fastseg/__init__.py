"""fastseg: medical image segmentation with convolutional networks on hand-written kernels.

The compiled kernels (C, AVX2/FMA GEMM, OpenMP) sit under a functional API,
:mod:`fastseg.ops`, that runs on any backend (``"c"``, ``"numpy"``, ``"cuda"``);
:mod:`fastseg.nn`, :mod:`fastseg.optim` and :mod:`fastseg.models` build and train
the networks of Lai (arXiv 1505.02000); :func:`segment` and :class:`Segmenter`
run them over whole images.
"""
from fastseg import data, errors, metrics, models, nn, ops, optim, pretrain, train
from fastseg._memory import get_memory_limit, set_memory_limit
from fastseg._random import seed
from fastseg._version import __version__
from fastseg.backends import available as available_backends
from fastseg.backends import (
    get_backend,
    get_num_threads,
    set_backend,
    set_num_threads,
)
from fastseg.io import load, save

# The function shadows its module's name on purpose: fastseg.segment(model, image).
from fastseg.segment import segment
from fastseg.segmenter import Segmenter

__all__ = [
    "__version__", "available_backends", "get_backend", "set_backend",
    "get_num_threads", "set_num_threads", "get_memory_limit", "set_memory_limit", "seed",
    "save", "load", "segment", "Segmenter",
    "data", "errors", "metrics", "models", "nn", "ops", "optim", "pretrain", "train",
]
