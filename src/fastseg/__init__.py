"""fastseg: medical image segmentation with convolutional networks on hand-written kernels.

The compiled kernels (C, AVX2/FMA GEMM, OpenMP) sit under a functional API,
:mod:`fastseg.ops`, that runs on any backend (``"c"``, ``"numpy"``, ``"cuda"``).
"""
from fastseg import models, nn, optim, train  # noqa: F401  (public sub-packages)
from fastseg._config import (
    available_backends,
    get_backend,
    get_num_threads,
    set_backend,
    set_num_threads,
)
from fastseg._random import seed  # noqa: F401
from fastseg.io import load, save  # noqa: F401
from fastseg.segment import segment  # noqa: F401  (the function shadows the module name)
from fastseg.segmenter import Segmenter  # noqa: F401

__version__ = "0.1.0"

__all__ = [
    "__version__", "available_backends", "get_backend", "set_backend",
    "get_num_threads", "set_num_threads",
]
