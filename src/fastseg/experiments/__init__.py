"""The report's training ideas, measured: ``fastseg experiment NAME [--quick]``.

Each experiment trains small networks on the built-in synthetic data and writes
``NAME.md`` (a table), ``NAME.png`` (a plot) and ``NAME.json`` (settings, environment,
every curve). The default runs take at most a few minutes on 2 cores; ``quick=True``
runs a tiny version of the same code in seconds (CI runs every one). The measured
results and what they say about the report's claims are in ``docs/experiments.md``.

================  =========================================================================
``activations``   sigmoid, tanh, ReLU and x*sin(x) (non-monotonic) at the same depth
``vanishing``     a 9-layer plain network, sigmoid/tanh/ReLU, with and without layer-wise
                  pre-training: gradient norm per layer over training
``optimizers``    SGD, SGD with momentum, Rprop and Adam on lai2d: loss and Dice against
                  steps and time
``dropout``       lai2d with and without dropout on one training image: the train/test gap
``depth``         deep-narrow against shallow-wide networks of equal parameter count
``mimic``         a shallow network trained on labels against the same trained on lai2d's
                  logits (Ba & Caruana 2014)
================  =========================================================================
"""
from __future__ import annotations

import importlib
import time

__all__ = ["NAMES", "run", "settings", "table"]

NAMES = ("activations", "vanishing", "optimizers", "dropout", "depth", "mimic")


def _module(name: str):
    from fastseg.errors import InvalidValueError

    if name not in NAMES:
        raise InvalidValueError(f"unknown experiment {name!r}; choose one of {', '.join(NAMES)}")
    return importlib.import_module(f"fastseg.experiments.{name}")


def settings(name: str, quick: bool = False) -> dict:
    """The settings experiment `name` runs with (a copy)."""
    return dict(_module(name).SETTINGS["quick" if quick else "default"])


def run(name: str, out=".", *, quick: bool = False, seed: int = 0, say=print):
    """Run experiment `name`, write its table, plot and JSON under `out`.

    Parameters
    ----------
    name : str
        One of :data:`NAMES`.
    out : path
        Folder for ``NAME.md``, ``NAME.png`` and ``NAME.json``.
    quick : bool
        The tiny version (seconds).
    seed : int
        Seeds the data, the initial weights and the batches.
    say : callable
        Receives one line of progress per finished run.

    Returns
    -------
    (Result, dict)
        The result (table rows, curves) and the paths written.
    """
    from fastseg.experiments._common import write

    module = _module(name)
    began, cpu = time.perf_counter(), time.process_time()
    result = module.run(settings(name, quick), int(seed), say)
    result.seconds = time.perf_counter() - began
    result.cpu_seconds = time.process_time() - cpu
    result.settings = {**result.settings, "quick": bool(quick), "seed": int(seed)}
    return result, write(result, out)


def table(result) -> str:
    """An experiment result's table, as Markdown."""
    from fastseg.experiments._common import markdown_table

    return markdown_table(result.columns, result.rows)
