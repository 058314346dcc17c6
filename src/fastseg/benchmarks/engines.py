"""The inference engines a dense segmentation is timed on beside fastseg: ONNX Runtime and
OpenVINO, each running fastseg's own export of the same network
(:func:`fastseg.export.to_onnx` with ``dense=True``) on the same image.

Each engine gets what a deployment on a fixed image size would give it: the image's
shape fixed when the session is made (ONNX Runtime's free-dimension overrides, OpenVINO's
``reshape``), float32 arithmetic (OpenVINO would otherwise drop to bf16 on CPUs that have
it, and compute something else), and the benchmark's thread count pinned (ONNX Runtime's
``intra_op_num_threads``, OpenVINO's ``INFERENCE_NUM_THREADS``), read from
:func:`fastseg.get_num_threads` when the runner is prepared: :func:`.timer.set_threads`
and ``bench/``'s thread fixture set it first.
"""
from __future__ import annotations

import importlib.util
import pathlib
import tempfile

import numpy as np

import fastseg
from fastseg.benchmarks.case import ENGINES, Runner
from fastseg.errors import InvalidValueError

__all__ = ["available", "dense_runner", "onnxruntime_session", "openvino_model"]

_SPATIAL = {2: ("height", "width"), 3: ("depth", "height", "width")}


def available() -> list[str]:
    """The engines of :data:`.case.ENGINES` installed here, with ``onnx`` to export for
    them (looked up without importing them: ``onnx`` alone takes a second to import)."""
    if importlib.util.find_spec("onnx") is None:
        return []
    return [name for name in ENGINES if importlib.util.find_spec(name) is not None]


def onnxruntime_session(path, shape, threads: int):
    """An ONNX Runtime session of the dense model at `path` for inputs of `shape`
    (N, C, *spatial), on `threads` threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    for name, n in zip(("batch", *_SPATIAL[len(shape) - 2]), (shape[0], *shape[2:]),
                       strict=True):
        options.add_free_dimension_override_by_name(name, int(n))
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def openvino_model(path, shape, threads: int):
    """The dense model at `path` compiled by OpenVINO for the CPU, for inputs of `shape`,
    on `threads` threads, in float32."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape(list(shape))
    return core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                             "INFERENCE_PRECISION_HINT": "f32",
                                             "PERFORMANCE_HINT": "LATENCY"})


def dense_runner(engine: str, model, image: np.ndarray) -> Runner:
    """A runner of `model`'s dense ONNX export on `engine` over `image` (C, H, W) or
    (C, D, H, W); it returns the class-1 probability map, as ``fastseg.segment`` does."""
    from fastseg.export import to_onnx

    if engine not in ENGINES:
        raise InvalidValueError(f"engine: expected one of {ENGINES}, got {engine!r}")
    feed = np.ascontiguousarray(image[None], dtype=np.float32)
    threads = fastseg.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="fastseg-bench-") as folder:
        # Both engines hold the model in memory once made, so the file can go.
        path = to_onnx(model, pathlib.Path(folder) / "dense.onnx", dense=True)
        if engine == "onnxruntime":
            session = onnxruntime_session(path, feed.shape, threads)
            return lambda: session.run(None, {"image": feed})[0][0, 1]
        request = openvino_model(path, feed.shape, threads).create_infer_request()
        # The output tensor is reused by the next inference: copy the map out.
        return lambda: np.array(request.infer({0: feed})[0][0, 1])
