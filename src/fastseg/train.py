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

from fastseg import _random, io
from fastseg.errors import InvalidValueError
from fastseg.nn.module import backward_params

__all__ = ["fit", "StopTraining", "save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT"]

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


def _batch_size(y) -> int:
    return len(y) if hasattr(y, "__len__") else 1


def fit(model, batches: Iterable | Callable[[int], Iterable], loss_fn, optimizer, epochs=1, *,
        callbacks=(), checkpoint=None, checkpoint_every=None, resume=None, progress=True):
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

    Returns
    -------
    dict
        ``"loss"``: mean loss per epoch; ``"step_loss"``: every step's loss;
        ``"epoch"``: the finished epochs; plus one list per callback metric.
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

    def save(epoch, step):
        if checkpoint is not None:
            where = {"epoch": epoch, "step": step, "global_step": position["global_step"]}
            save_checkpoint(checkpoint, model, optimizer, where, history)

    model.train()
    stop = False
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
                optimizer.zero_grad()
                loss = float(loss_fn(model(x), y))
                if not math.isfinite(loss):
                    raise FloatingPointError(f"fit: the loss became {loss} at epoch {epoch}, "
                                             f"step {step}")
                backward_params(model, loss_fn.backward())
                optimizer.step()
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
