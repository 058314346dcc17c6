"""The training loop: :func:`fit`, with progress, callbacks, checkpoints and exact resume.

A run is reproducible from :func:`fastseg.seed`, the data stream and the
thread count. For ``resume=`` to give exactly the weights of an uninterrupted
run, the data must be reproducible at any (epoch, step): pass ``batches`` as a
callable ``epoch -> iterable`` that draws its shuffling from its own generator
seeded by the epoch (e.g. ``np.random.default_rng([seed, epoch])``), or a
re-iterable sequence (a list) — not a one-shot generator, and not a stream
that draws from fastseg's own generator (that one belongs to dropout and
weight initialisation, and is restored from the checkpoint).
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable

import numpy as np

from fastseg import _memory, _random, io, nn
from fastseg._shapes import out_sizes
from fastseg.diagnostics import Recorder
from fastseg.errors import DivergedError, InvalidValueError, NonFiniteError
from fastseg.nn.activation import Activation
from fastseg.nn.module import backward_params

__all__ = ["fit", "mimic", "StopTraining", "save_checkpoint", "load_checkpoint",
           "CHECKPOINT_FORMAT", "step_bytes"]

CHECKPOINT_FORMAT = "fastseg-checkpoint"


class StopTraining(Exception):
    """Raise from a callback to end training after the current epoch (early stopping)."""


def save_checkpoint(path, model, optimizer, position: dict, history: dict) -> None:
    """Write model, optimizer, RNG state, position and history to `path`, atomically.

    Parameters
    ----------
    position : dict
        ``{"epoch": e, "step": s, "global_step": g}``: training continues with
        step `s` of epoch `e`.
    """
    tree = {"model": dict(model.state_dict()), "optimizer": optimizer.state_dict(),
            "rng": _random.get_rng_state(), "position": dict(position), "history": history}
    io.save_tree(path, tree, format=CHECKPOINT_FORMAT, version=1)


def load_checkpoint(path, model, optimizer) -> tuple[dict, dict]:
    """Restore model, optimizer and RNG state from `path`; returns ``(position, history)``.

    Raises
    ------
    ValueError
        If the file is not a checkpoint, or does not fit `model`/`optimizer`.
    """
    tree, _ = io.load_tree(path, format=CHECKPOINT_FORMAT, max_version=1)
    try:
        model.load_state_dict(tree["model"])
        optimizer.load_state_dict(tree["optimizer"])
        _random.set_rng_state(tree["rng"])
        position = {k: int(tree["position"][k]) for k in ("epoch", "step", "global_step")}
        history = tree["history"]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidValueError(f"cannot resume from {os.fspath(path)!r}: {exc}") from None
    return position, history


def _epoch_batches(batches, epoch: int):
    return batches(epoch) if callable(batches) else batches


def _bar(iterable, total, desc, progress):
    from tqdm.auto import tqdm

    # disable=None: tqdm turns itself off when stderr is not a terminal.
    return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False,
                disable=None if progress else True, dynamic_ncols=True)


def _diverged(what: str, epoch: int, step: int) -> DivergedError:
    return DivergedError(f"fit: {what} at epoch {epoch}, step {step}: training diverged "
                         "(a lower learning rate may help)")


def _batch_size(y) -> int:
    return len(y) if hasattr(y, "__len__") else 1


# ---- memory (issue 24): a training step's peak, estimated from the batch's shape ----------

#: Optimizer state per parameter, in copies of the parameter (made at the first step).
_STATE_COPIES = {"Adam": 2, "Rprop": 2}


def _walk(module, shape):
    """``(output shape, kept, largest)`` of a forward pass of `module` on an input of
    `shape` ((N, C, ...), a list of them for Parallel): `kept`, the bytes of what the
    pass makes and the layers hold for backward (outputs, pooling indices, dropout
    masks); `largest`, the largest single array among them. None for a layer it does
    not know (no estimate)."""
    if isinstance(module, nn.Sequential):
        kept = largest = 0
        for layer in module:
            walked = _walk(layer, shape)
            if walked is None:
                return None
            shape, k, big = walked
            kept, largest = kept + k, max(largest, big)
        return shape, kept, largest
    if isinstance(module, nn.Parallel):
        if not isinstance(shape, list) or len(shape) != len(module.branches):
            return None
        kept = largest = features = 0
        for branch, part in zip(module.branches, shape, strict=True):
            walked = _walk(branch, part)
            if walked is None:
                return None
            out, k, big = walked
            kept, largest = kept + k, max(largest, big)
            features += math.prod(out[1:])
        out = (shape[0][0], features)  # the branches' outputs side by side, a copy
        size = 4 * math.prod(out)
        return out, kept + size, max(largest, size)
    if isinstance(shape, list):
        return None
    n = shape[0]
    if isinstance(module, (nn.Conv2d, nn.Conv3d)):
        out = (n, module.out_channels, *out_sizes(shape[2:], module.kernel_size,
                                                  module.stride, module.padding))
        made = [4 * math.prod(out)]
    elif isinstance(module, (nn.MaxPool2d, nn.MaxPool3d)):
        out = (n, shape[1], *out_sizes(shape[2:], module.kernel_size, module.stride))
        made = [4 * math.prod(out), 8 * math.prod(out)]  # values, int64 argmax
    elif isinstance(module, nn.Linear):
        out = (n, module.out_features)
        made = [4 * n * module.out_features]
    elif isinstance(module, nn.Flatten):  # a view
        out, made = (n, math.prod(shape[1:])), [0]
    elif isinstance(module, Activation):
        out, made = shape, [4 * math.prod(shape)]
    elif isinstance(module, nn.Dropout):  # the output and its mask
        out, made = shape, [4 * math.prod(shape)] * 2
    else:
        return None
    return out, sum(made), max(made)


def _shape(x):
    if isinstance(x, (list, tuple)):
        return [tuple(np.shape(part)) for part in x]
    return tuple(np.shape(x))


def step_bytes(model, x, optimizer=None) -> int | None:
    """Estimated bytes one training step of `model` on the batch `x` adds to what the
    process holds, or None for a network with a layer this does not know.

    The forward pass's activations (each layer's output, pooling indices, dropout
    masks), kept for backward; during backward a gradient and the array it becomes
    (twice the largest activation); the weight gradients; the optimizer's state not
    made yet (Adam and Rprop: two copies of the weights, SGD with momentum one); the
    next batch beside this one. The compiled backend recycles each step's arrays for
    the next (``fastseg._cy._buffers``), so later steps add little (measured:
    bench/memory_estimates.py, docs/reliability.md).
    """
    walked = _walk(model, _shape(x))
    if walked is None:
        return None
    _, acts, largest = walked
    params = [p for p in model.parameters() if isinstance(p.data, np.ndarray)]
    weights = sum(p.data.nbytes for p in params)
    copies = _STATE_COPIES.get(type(optimizer).__name__, 0)
    if type(optimizer).__name__ == "SGD":
        copies = int(any(g.get("momentum", 0) for g in optimizer.param_groups))
    state = getattr(optimizer, "state", {})
    fresh = sum(p.data.nbytes for p in params if p not in state)
    batch = sum(np.asarray(part).nbytes for part in (x if isinstance(x, (list, tuple))
                                                     else [x]))
    return acts + 2 * largest + weights + copies * fresh + batch


def _check_step(model, x, optimizer, caller="fit") -> None:
    """Refuse a run whose step (:func:`step_bytes`) does not fit the memory limit."""
    room = _memory.budget()
    if room is None:
        return
    need = step_bytes(model, x, optimizer)
    if need is None or need <= room.room:
        return
    shape = _shape(x)
    what = (f"a training step on a batch of {len(x[0]) if isinstance(shape, list) else shape[0]}"
            f" patches {shape}")
    raise _memory.refusal(caller, need, room, what,
                          "use a smaller batch (batch_size=, fewer patches a step)")


def fit(model, batches: Iterable | Callable[[int], Iterable], loss_fn, optimizer, epochs=1, *,
        callbacks=(), checkpoint=None, checkpoint_every=None, resume=None, progress=True,
        diagnostics=None):
    """Train `model` on `batches` and return the history.

    Each step: ``zero_grad``, forward, loss, backward (without the gradient with respect
    to the input batch, which nothing uses), ``optimizer.step()``.

    Parameters
    ----------
    model : fastseg.nn.Module
    batches : iterable of (x, y), or callable ``epoch -> iterable of (x, y)``
        `x` a float32 array (a list of arrays for a :class:`~fastseg.nn.Parallel`
        input), `y` integer labels. Use a callable (or a list) for more than one
        epoch and for exact resume; see the module docstring.
    loss_fn : callable ``(logits, y) -> float`` with ``backward() -> dlogits``
        E.g. :class:`fastseg.nn.CrossEntropyLoss`.
    optimizer : fastseg.optim.Optimizer
    epochs : int
    callbacks : sequence of callable ``(epoch, model, history) -> dict or None``
        Called after every epoch (the model is put back in training mode
        afterwards); each returned ``{name: value}`` is appended to
        ``history[name]``. Raising :class:`StopTraining` ends the run after
        that epoch.
    checkpoint : path, optional
        Where to write checkpoints (atomically): every `checkpoint_every`
        steps and at the end of every epoch.
    checkpoint_every : int, optional
        Steps between checkpoints (None: only at epoch ends).
    resume : path or True, optional
        Continue the run saved in this checkpoint (True: in `checkpoint`, if it
        exists). The already-done steps of the current epoch are skipped, so
        with the same seed, data and thread count the result equals that of
        an uninterrupted run.
    progress : bool
        Show a tqdm bar (loss, patches/s, ETA) when stderr is a terminal.
    diagnostics : int, optional
        Every this many steps (from the first), record each layer's gradient norm
        and update/weight ratio and each ReLU's dead fraction in
        ``history["diagnostics"]`` (:mod:`fastseg.diagnostics`; the recorded steps
        cost a copy of the weights). None: record nothing.

    Returns
    -------
    dict
        ``"loss"``: mean loss per epoch; ``"step_loss"``: every step's loss;
        ``"epoch"``: the finished epochs; ``"diagnostics"`` when asked for; plus one
        list per callback metric.

    Raises
    ------
    fastseg.errors.DivergedError
        (a ``FloatingPointError``) when a step's loss, or after the first update the
        network's output, becomes NaN or infinite.
    fastseg.errors.MemoryBudgetError
        Before the first step, when its estimated memory (:func:`step_bytes`) is above
        the memory limit (:func:`fastseg.set_memory_limit`, ``FASTSEG_MEMORY_LIMIT``,
        else the memory available).
    """
    epochs = int(epochs)
    if checkpoint_every is not None and int(checkpoint_every) < 1:
        raise InvalidValueError(f"fit: checkpoint_every must be >= 1, got {checkpoint_every}")
    if not callable(batches) and iter(batches) is batches and epochs > 1:
        raise InvalidValueError("fit: batches is a one-shot iterator and cannot be replayed for "
                                f"{epochs} epochs; pass a list or a callable epoch -> iterable")
    if resume is True:
        resume = checkpoint if checkpoint is not None and os.path.exists(checkpoint) else None
    history = {"loss": [], "step_loss": [], "epoch": []}
    position = {"epoch": 0, "step": 0, "global_step": 0}
    if resume is not None:
        position, history = load_checkpoint(resume, model, optimizer)
    recorder = None if diagnostics is None else Recorder(model, history, diagnostics)

    def save(epoch, step):
        if checkpoint is not None:
            where = {"epoch": epoch, "step": step, "global_step": position["global_step"]}
            save_checkpoint(checkpoint, model, optimizer, where, history)

    model.train()
    stop = updated = checked = False
    for epoch in range(position["epoch"], epochs):
        skip = position["step"] if epoch == position["epoch"] else 0
        data = _epoch_batches(batches, epoch)
        total = len(data) if hasattr(data, "__len__") else None
        # Losses of this epoch already done before a resume count in its mean.
        done = history["step_loss"][len(history["step_loss"]) - skip:] if skip else []
        losses, seen, start = list(done), 0, time.perf_counter()
        bar = _bar(data, total, f"epoch {epoch + 1}/{epochs}", progress)
        try:
            for step, (x, y) in enumerate(bar):
                if step < skip:
                    continue
                if not checked:  # the first batch says the step's shapes; before its work
                    _check_step(model, x, optimizer)
                    checked = True
                watch = recorder is not None and recorder.due(position["global_step"])
                optimizer.zero_grad()
                try:
                    loss = float(loss_fn(model(x), y))
                except NonFiniteError as exc:
                    if not updated:  # the input or the starting weights, not the training
                        raise
                    raise _diverged("the network's output became NaN or infinite", epoch,
                                    step) from exc
                if not math.isfinite(loss):
                    raise _diverged(f"the loss became {loss}", epoch, step)
                if watch:
                    recorder.forward_done()
                backward_params(model, loss_fn.backward())
                if watch:
                    recorder.backward_done()
                optimizer.step()
                updated = True
                if watch:
                    recorder.step_done(position["global_step"], epoch)
                losses.append(loss)
                history["step_loss"].append(loss)
                position["global_step"] += 1
                seen += _batch_size(y)
                rate = seen / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(loss=f"{loss:.4f}", patches_s=f"{rate:.0f}", refresh=False)
                if checkpoint_every and position["global_step"] % int(checkpoint_every) == 0:
                    save(epoch, step + 1)
        finally:
            bar.close()
        history["loss"].append(float(np.mean(losses)) if losses else float("nan"))
        history["epoch"].append(epoch)
        for callback in callbacks:
            try:
                metrics = callback(epoch, model, history)
            except StopTraining:
                metrics, stop = None, True
            finally:
                model.train()
            for name, value in (metrics or {}).items():
                history.setdefault(name, []).append(value)
        save(epoch + 1, 0)
        if stop:
            break
    return history


# ---- mimic training (Ba & Caruana 2014) ----------------------------------------------------


def num_outputs(net) -> int | None:
    """Outputs of `net`'s last layer with weights (a Linear's features, a Conv2d's
    channels), or None when it has no such layer."""
    for _, module in reversed(list(net.named_modules())):
        for attr in ("out_features", "out_channels"):
            if isinstance(getattr(module, attr, None), int):
                return getattr(module, attr)
    return None


class _Sized:
    """An iterable with the length of the one it was made from (for the progress bar)."""

    def __init__(self, iterable, length):
        self.iterable, self.length = iterable, length

    def __len__(self):
        return self.length

    def __iter__(self):
        return iter(self.iterable)


def _teacher_batches(teacher, data):
    """`data`'s (x, y) batches as (x, the teacher's logits for x)."""
    def pairs():
        for i, (x, _) in enumerate(data):
            try:
                logits = teacher(x)
            except ValueError as exc:
                if i:
                    raise
                shape = getattr(x, "shape", "?")
                raise InvalidValueError(f"mimic: the teacher does not take the student's input "
                                        f"(batch of shape {shape}): {exc}") from None
            yield x, logits

    return _Sized(pairs(), len(data)) if hasattr(data, "__len__") else pairs()


def mimic(teacher, student, data, optimizer, epochs=1, *, loss_fn=None, **fit_kwargs):
    """Train `student` to reproduce `teacher`'s logits, as Ba & Caruana (2014) trained
    shallow networks to mimic deep ones.

    Each step feeds a batch to both networks and minimises the squared error
    between the student's logits and the teacher's (the teacher, in eval mode,
    is not changed). The labels of `data` are not used: the teacher's logits say
    more than a label does (how sure it is, and which way it leans).

    Parameters
    ----------
    teacher : fastseg.nn.Module
        A trained network; run in eval mode, its mode is restored afterwards.
    student : fastseg.nn.Module
        The network to train; it must have as many outputs as the teacher and
        take the same input.
    data : iterable of (x, y), or callable ``epoch -> iterable of (x, y)``
        As the `batches` of :func:`fit`; `y` is ignored (it may be None).
    optimizer : fastseg.optim.Optimizer
        Over the student's parameters.
    epochs : int
    loss_fn : optional
        Default :class:`fastseg.nn.MSELoss` ``()``, the mean squared error on logits.
    **fit_kwargs
        Passed to :func:`fit` (callbacks, checkpoint, resume, progress, diagnostics).

    Returns
    -------
    dict
        The history of :func:`fit`; ``"loss"`` is the squared error on logits.

    Raises
    ------
    ValueError
        When the student's number of outputs differs from the teacher's, or the
        teacher cannot take the student's input.
    """
    from fastseg.nn.loss import MSELoss

    k_teacher, k_student = num_outputs(teacher), num_outputs(student)
    if k_teacher is not None and k_student is not None and k_teacher != k_student:
        more = "more" if k_student > k_teacher else "fewer"
        raise InvalidValueError(f"mimic: the student has {k_student} outputs, {more} than "
                                f"the teacher's {k_teacher}; it learns the teacher's logits one "
                                "for one, so it needs exactly as many classes")
    if not callable(data) and iter(data) is data and int(epochs) > 1:
        raise InvalidValueError("mimic: data is a one-shot iterator and cannot be replayed for "
                                f"{epochs} epochs; pass a list or a callable epoch -> iterable")
    was_training = teacher.training
    teacher.eval()
    try:
        return fit(student, lambda epoch: _teacher_batches(teacher, _epoch_batches(data, epoch)),
                   MSELoss() if loss_fn is None else loss_fn, optimizer, epochs, **fit_kwargs)
    finally:
        teacher.train(was_training)
