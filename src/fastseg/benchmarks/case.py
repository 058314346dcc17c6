"""What a benchmark case is, and the helpers every case file shares."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Case", "Runner", "ENGINES", "rand", "torch_module"]

#: A zero-argument callable that runs a case's computation once.
Runner = Callable[[], object]

#: Inference engines that run fastseg's ONNX export of a whole network
#: (:mod:`fastseg.benchmarks.engines`): only the cases that name them in
#: :attr:`Case.engines` run on them.
ENGINES = ("onnxruntime", "openvino")


@dataclass(frozen=True)
class Case:
    """One computation on the shapes of the paper's networks, for every backend.

    ``prepare(backend)`` does all set-up (arrays, models) outside the timed region and
    returns a :data:`Runner`; ``backend`` is one of fastseg's (``"c"``, ``"numpy"``,
    ``"cuda"``), ``"torch"``, the same computation in PyTorch on the CPU, or one of the
    :data:`ENGINES` this case lists in `engines` (whole networks only: they run an ONNX
    export).
    """

    group: str
    name: str
    flops: float  # floating-point operations of one run, for GFLOP/s
    prepare: Callable[[str], Runner]
    engines: tuple[str, ...] = ()

    def runs_on(self, backend: str) -> bool:
        """Whether `backend` has a side in this case (every backend but an engine the
        case does not list)."""
        return backend not in ENGINES or backend in self.engines

    @property
    def id(self) -> str:
        return f"{self.group}:{self.name}"


def rand(rng, *shape) -> np.ndarray:
    """Standard normal float32 values of `shape`."""
    return rng.standard_normal(shape).astype(np.float32)


def torch_module():
    """PyTorch, imported when a case needs it (ImportError where it is not installed)."""
    import torch

    return torch
