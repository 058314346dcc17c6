"""Per-layer training diagnostics: gradient norms, update/weight ratios, dead ReLUs.

:func:`fastseg.train.fit` ``(..., diagnostics=N)`` records them every N steps in
``history["diagnostics"]``, column-wise so that the history stays plain JSON::

    {"step": [0, N, 2N, ...], "epoch": [...],
     "grad_norm":    {"0:Conv2d": [...], "2:Conv2d": [...], "5:Linear": [...], ...},
     "update_ratio": {"0:Conv2d": [...], ...},
     "dead_relu":    {"1:ReLU": [...], "3:ReLU": [...]}}

A layer is a module with parameters of its own, named ``"<dotted name>:<class>"``.

* ``grad_norm``: the L2 norm of the gradient of all its parameters (weight and
  bias together) at that step, before the optimizer uses it. A norm that
  shrinks layer by layer towards the input is the vanishing gradient.
* ``update_ratio``: ``||theta_after - theta_before|| / ||theta_before||`` over the
  same parameters, for that step's update. Around 1e-3 is the usual healthy
  value for SGD; far below, the layer learns nothing; far above, it is unstable.
* ``dead_relu``: per ReLU, the fraction of its units (every output element of
  one sample: channel and position for a convolution) that are not positive for
  any sample of the batch, so receive no gradient at that step.

:func:`plot` draws the three.
"""
from __future__ import annotations

import math

import numpy as np

from fastseg import _validate as v
from fastseg import viz
from fastseg._arrays import host_array, host_copy
from fastseg.errors import InvalidValueError
from fastseg.nn.activation import ReLU

__all__ = ["Recorder", "layer_names", "plot"]


def _own_parameters(module) -> list:
    return module.parameters(recurse=False)


def _key(name: str, module) -> str:
    return f"{name or 'model'}:{type(module).__name__}"


def layer_names(model) -> list[str]:
    """The diagnostics keys of `model`'s layers with parameters, input to output."""
    return [_key(name, m) for name, m in model.named_modules() if _own_parameters(m)]


def _sq_norm(a) -> float:
    host = np.ravel(host_array(a))
    return float(np.dot(host, host))


class Recorder:
    """What :func:`fastseg.train.fit` calls around a training step to fill
    ``history["diagnostics"]`` (see the module docstring).

    Parameters
    ----------
    model : fastseg.nn.Module
    history : dict
        The training history; ``history["diagnostics"]`` is created or, on resume,
        continued.
    every : int
        Record at the global steps 0, every, 2*every, ...
    """

    def __init__(self, model, history: dict, every: int):
        self.every = v.as_int("diagnostics", every, minimum=1)
        self.layers = [(_key(name, m), _own_parameters(m)) for name, m in model.named_modules()
                       if _own_parameters(m)]
        self.relus = [(_key(name, m), m) for name, m in model.named_modules()
                      if isinstance(m, ReLU)]
        record = history.setdefault("diagnostics", {})
        for column in ("step", "epoch"):
            record.setdefault(column, [])
        for column, keys in (("grad_norm", self.layers), ("update_ratio", self.layers),
                             ("dead_relu", self.relus)):
            table = record.setdefault(column, {})
            for key, _ in keys:
                table.setdefault(key, [])
        self.record = record
        self._pending = None

    def due(self, global_step: int) -> bool:
        """Whether the step about to run is one to record."""
        return global_step % self.every == 0

    def forward_done(self) -> None:
        """After the forward pass: the ReLUs still hold their inputs."""
        dead = {}
        for key, relu in self.relus:
            x = relu.saved_input
            if x is None:
                dead[key] = float("nan")
                continue
            x = host_array(x)
            alive = (x.reshape(x.shape[0], -1) > 0).any(axis=0) if x.shape[0] else None
            dead[key] = float("nan") if alive is None else float(1.0 - alive.mean())
        self._pending = {"dead_relu": dead}

    def backward_done(self) -> None:
        """After backward, before the optimizer step: gradients, and the weights to
        measure the update against."""
        pending = self._pending or {}
        pending["grad_norm"] = {
            key: math.sqrt(sum(_sq_norm(p.grad) for p in params if p.grad is not None))
            for key, params in self.layers}
        pending["before"] = [[host_copy(p.data) for p in params] for _, params in self.layers]
        self._pending = pending

    def step_done(self, global_step: int, epoch: int) -> None:
        """After the optimizer step: the update ratios; appends the row."""
        pending, self._pending = self._pending, None
        self.record["step"].append(int(global_step))
        self.record["epoch"].append(int(epoch))
        for (key, params), before in zip(self.layers, pending["before"], strict=True):
            change = weight = 0.0
            for p, old in zip(params, before, strict=True):
                new = np.ravel(host_array(p.data))
                diff = new - old.ravel()
                change += float(np.dot(diff, diff))
                weight += float(np.dot(old.ravel(), old.ravel()))
            ratio = math.sqrt(change / weight) if weight > 0 else float("nan")
            self.record["update_ratio"][key].append(ratio)
            self.record["grad_norm"][key].append(pending["grad_norm"][key])
        for key, _ in self.relus:
            self.record["dead_relu"][key].append(pending["dead_relu"][key])


def plot(path, diagnostics: dict, title: str = "training diagnostics") -> None:
    """Draw ``history["diagnostics"]`` to a PNG: gradient norm and update/weight ratio
    per layer (log scale) and the dead-ReLU fraction, against the step."""
    steps = list(diagnostics.get("step", []))
    if not steps:
        raise InvalidValueError("diagnostics: nothing recorded to plot")

    def series(column):
        return {key: (steps, vals) for key, vals in diagnostics.get(column, {}).items()}

    panels = [{"title": "gradient norm", "series": series("grad_norm"), "log": True},
              {"title": "update / weight", "series": series("update_ratio"), "log": True}]
    if diagnostics.get("dead_relu"):
        panels.append({"title": "dead ReLU fraction", "series": series("dead_relu"),
                       "ylim": (0, 1)})
    for panel in panels:
        panel["xlabel"] = "step"
    viz.plot_panels(path, panels, title=title)
