"""Optimizers with torch.optim's update rules: SGD, Rprop, Adam.

Each parameter is updated in place by one fused compiled kernel
(:func:`fastseg.ops.sgd_update`, ``adam_update``, ``rprop_update``) that
follows torch.optim's single-tensor code operation by operation, so the same
run gives the same weights to float rounding. Hyper-parameters are checked
as torch checks them, with torch's messages.

State buffers are made where each parameter lives: NumPy arrays, or device
arrays for a model moved with ``model.to("cuda")`` (move the model before the
first ``step()``). ``state_dict()`` holds NumPy arrays and plain numbers only,
whatever the device, keyed as torch keys it
(``{"state": {0: {...}}, "param_groups": [{..., "params": [0, 1]}]}``).
"""
from __future__ import annotations

import numbers

import numpy as np

from fastseg import ops
from fastseg._arrays import host_array, host_copy
from fastseg.errors import InvalidTypeError, InvalidValueError
from fastseg.nn.module import Parameter

__all__ = ["Optimizer", "SGD", "Rprop", "Adam"]


def _plain(value):
    """A saved value as plain data: arrays, device arrays and torch tensors become
    NumPy arrays (0-d ones Python numbers); numbers, tuples and None stay as they are."""
    if value is None or isinstance(value, (numbers.Number, str, tuple, list)):
        return value
    arr = host_array(value)
    return arr.item() if arr.ndim == 0 else arr


class Optimizer:
    """Base class: parameter groups, ``zero_grad``, ``step`` and state dicts.

    Parameters
    ----------
    params : iterable of Parameter, or of dicts with a ``"params"`` list
        Dicts are parameter groups whose other keys override `defaults`.
    defaults : dict
        The hyper-parameters of every group.
    """

    def __init__(self, params, defaults: dict):
        if isinstance(params, (Parameter, np.ndarray)):
            raise InvalidTypeError("params argument given to the optimizer should be an iterable "
                                   f"of Parameters or dicts, but got {type(params).__name__}")
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict[Parameter, dict] = {}
        groups = list(params)
        if not groups:
            raise InvalidValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group ``{"params": [...], **hyper-parameters}``."""
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        for p in params:
            if not isinstance(p, Parameter):
                raise InvalidTypeError("optimizer can only optimize fastseg.nn.Parameter objects, "
                                       f"but one of the params is {type(p).__name__}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise InvalidValueError("some parameters appear in more than one parameter group")
        full = {**self.defaults, **{k: val for k, val in group.items() if k != "params"}}
        self._check(full)
        full["params"] = params
        self.param_groups.append(full)

    def _check(self, group: dict) -> None:
        """Refuse invalid hyper-parameters (torch's checks and messages)."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every ``.grad`` to None (torch's default) or to zeros."""
        for p in self._params():
            p.zero_grad(set_to_none)

    def step(self) -> None:
        """Update every parameter that has a gradient (those with None are skipped)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.shape != p.data.shape:
                    raise InvalidValueError(f"{type(self).__name__}.step: gradient shape "
                                            f"{p.grad.shape} differs from parameter {p.data.shape}")
                # The kernels want float32 C-contiguous buffers; the grad is not written.
                # (A device grad comes from the cuda backend's ops, and is one already.)
                grad = p.grad
                if isinstance(grad, np.ndarray):
                    grad = np.require(grad, dtype=np.float32, requirements=["C", "W"])
                self._update(p, grad, self.state.setdefault(p, {}), group)

    def _update(self, p: Parameter, grad: np.ndarray, state: dict, group: dict) -> None:
        raise NotImplementedError

    # ---- state ---------------------------------------------------------------

    def _params(self) -> list[Parameter]:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        """Copies of the state, keyed by parameter index, and the groups' hyper-parameters.

        The arrays are NumPy copies, also of state kept on the device.
        """
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {index[id(p)]: {k: val if isinstance(val, numbers.Number) else host_copy(val)
                                for k, val in st.items()}
                 for p, st in self.state.items() if st}
        groups, start = [], 0
        for group in self.param_groups:
            hyper = {k: val for k, val in group.items() if k != "params"}
            hyper["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(hyper)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a state from :meth:`state_dict` (also accepts torch's, tensors included).

        The arrays go where each parameter lives (host or device), so move the
        model before loading an optimizer state.

        Raises
        ------
        ValueError
            When the groups or the state arrays do not fit this optimizer's parameters.
        """
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise InvalidValueError("loaded state dict has a different number of parameter groups")
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            if len(saved["params"]) != len(group["params"]):
                raise InvalidValueError("loaded state dict contains a parameter group that doesn't "
                                        "match the size of optimizer's group")
        index_to_param = {}
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            index_to_param.update(zip(saved["params"], group["params"], strict=True))
        new_state = {}
        for key, st in state_dict["state"].items():
            p = index_to_param.get(int(key))
            if p is None:
                raise InvalidValueError(f"loaded state dict has state for unknown parameter {key}")
            new_state[p] = self._restore(p, st)
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            hyper = {k: _plain(saved[k]) for k in self.defaults if k in saved}
            for k, default in self.defaults.items():
                if isinstance(default, tuple) and k in hyper:
                    hyper[k] = tuple(float(x) for x in hyper[k])
            merged = {**group, **hyper}
            self._check(merged)
            new_groups.append(merged)
        self.state, self.param_groups = new_state, new_groups

    @staticmethod
    def _restore(p: Parameter, st: dict) -> dict:
        out = {}
        for k, val in st.items():
            val = _plain(val)
            if val is None:
                continue  # torch keeps momentum_buffer=None when momentum is 0
            arr = np.asarray(val)
            if arr.ndim == 0:
                out[k] = int(arr) if k == "step" else arr.item()
            elif arr.shape != p.data.shape:
                raise InvalidValueError(f"loaded state {k!r} has shape {arr.shape}, the parameter "
                                        f"has {p.data.shape}")
            else:
                out[k] = ops.to_device(np.array(arr, dtype=np.float32, order="C"), p.device)
        return out

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {val}" for k, val in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


def _check_lr(lr):
    if not 0.0 <= lr:
        raise InvalidValueError(f"Invalid learning rate: {lr}")


def _check_weight_decay(weight_decay):
    if not 0.0 <= weight_decay:
        raise InvalidValueError(f"Invalid weight_decay value: {weight_decay}")


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, as ``torch.optim.SGD``.

    Parameters
    ----------
    params : iterable of Parameter or of group dicts
    lr : float
    momentum, dampening, weight_decay : float
    nesterov : bool
        Needs ``momentum > 0`` and ``dampening == 0``.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False):
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": bool(nesterov)})

    def _check(self, group):
        _check_lr(group["lr"])
        if group["momentum"] < 0.0:
            raise InvalidValueError(f"Invalid momentum value: {group['momentum']}")
        _check_weight_decay(group["weight_decay"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise InvalidValueError("Nesterov momentum requires a momentum and zero dampening")

    def _update(self, p, grad, state, group):
        momentum = group["momentum"]
        first = False
        buf = None  # without momentum there is no buffer, as in torch
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = ops.zeros_like(p.data)
                first = True
        ops.sgd_update(p.data, grad, buf, group["lr"], momentum, group["dampening"],
                       group["weight_decay"], group["nesterov"], first_step=first)


class Rprop(Optimizer):
    """Resilient backpropagation, as ``torch.optim.Rprop``.

    Parameters
    ----------
    lr : float
        The initial step size of every element.
    etas : (float, float)
        ``(eta_minus, eta_plus)`` with ``0 < eta_minus < 1 < eta_plus``.
    step_sizes : (float, float)
        The smallest and largest step size.
    """

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50)):
        super().__init__(params, {"lr": lr, "etas": tuple(etas),
                                  "step_sizes": tuple(step_sizes)})

    def _check(self, group):
        _check_lr(group["lr"])
        eta_minus, eta_plus = group["etas"]
        if not 0.0 < eta_minus < 1.0 < eta_plus:
            raise InvalidValueError(f"Invalid eta values: {eta_minus}, {eta_plus}")

    def _update(self, p, grad, state, group):
        if not state:
            state["step"] = 0
            state["prev"] = ops.zeros_like(p.data)
            state["step_size"] = ops.full_like(p.data, group["lr"])
        state["step"] += 1
        eta_minus, eta_plus = group["etas"]
        step_min, step_max = group["step_sizes"]
        ops.rprop_update(p.data, grad, state["prev"], state["step_size"], eta_minus, eta_plus,
                         step_min, step_max)


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (L2 weight decay added to the gradient; no amsgrad).

    Parameters
    ----------
    lr : float
    betas : (float, float)
        Each in [0, 1).
    eps : float
    weight_decay : float
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay})

    def _check(self, group):
        _check_lr(group["lr"])
        if not 0.0 <= group["eps"]:
            raise InvalidValueError(f"Invalid epsilon value: {group['eps']}")
        for i, beta in enumerate(group["betas"]):
            if not 0.0 <= beta < 1.0:
                raise InvalidValueError(f"Invalid beta parameter at index {i}: {beta}")
        _check_weight_decay(group["weight_decay"])

    def _update(self, p, grad, state, group):
        if not state:
            state["step"] = 0
            state["exp_avg"] = ops.zeros_like(p.data)
            state["exp_avg_sq"] = ops.zeros_like(p.data)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        ops.adam_update(p.data, grad, state["exp_avg"], state["exp_avg_sq"], group["lr"],
                        beta1, beta2, group["eps"], group["weight_decay"], state["step"])
