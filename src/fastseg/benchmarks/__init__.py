"""The benchmark catalogue, shared by ``bench/`` (pytest-benchmark) and ``fastseg bench``.

Each :class:`Case` is one computation on the shapes of the paper's networks,
written once per backend: fastseg's ``"c"``, ``"numpy"`` and ``"cuda"`` through
:mod:`fastseg.ops` / :mod:`fastseg.nn`, and ``"torch"`` as the same computation
in PyTorch on the CPU; the dense segmentation also runs fastseg's ONNX export of its
network on ONNX Runtime and OpenVINO (:mod:`.engines`, where the ``onnx`` extra is
installed). The cases live in :mod:`.kernels` (GEMM, convolution,
linear, pooling), :mod:`.kernels3d` (3-D convolution and pooling) and
:mod:`.networks` (a training step, a dense segmentation);
:mod:`.timer` times them.
"""
from __future__ import annotations

from fastseg.benchmarks import engines, kernels, kernels3d, networks
from fastseg.benchmarks.case import ENGINES, Case, Runner

__all__ = ["Case", "Runner", "ENGINES", "all_cases", "available_backends"]


def all_cases(quick: bool = False) -> list[Case]:
    """Every case, in the order the table prints them; `quick` shrinks the shapes."""
    return kernels.cases(quick) + kernels3d.cases(quick) + networks.cases(quick)


def available_backends() -> list[str]:
    """fastseg's usable backends, ``"torch"`` when PyTorch imports, then the inference
    engines (:data:`ENGINES`) that are installed with ``onnx``."""
    import fastseg

    names = list(fastseg.available_backends())
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        names.append("torch")
    return names + engines.available()
