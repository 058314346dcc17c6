"""A case of one :mod:`fastseg.ops` layer function against its namesake in
``torch.nn.functional`` (``conv2d``, ``conv3d``, ``linear``, ``max_pool2d``,
``max_pool3d``), shared by the 2-D and 3-D kernel catalogues."""
from __future__ import annotations

import math

import numpy as np

from fastseg import ops
from fastseg.benchmarks.case import Case, Runner, rand, torch_module


def on_backend(backend: str, *arrays) -> tuple:
    """The arrays where `backend` computes: on the device for ``"cuda"``, so that a case
    times the kernels and not the copies to and from the GPU; as they are otherwise."""
    if backend != "cuda":
        return arrays
    return tuple(ops.to_device(a, "cuda") for a in arrays)


def weighted_case(op: str, name: str, shapes, flops: float, backward: bool, *,
                  need_dx: bool = True, **options) -> Case:
    """``ops.<op>`` on x, w, b (forward), or forward then ``ops.<op>_backward`` with dy.

    `shapes` are those of x, w, b and dy, drawn in that order; `options` go to both
    sides (e.g. ``padding``). Without `need_dx` neither side computes the input's
    gradient (a network's first layer). PyTorch's side is forward + backward through
    autograd, the fair comparison with ours.
    """

    def prepare(backend: str) -> Runner:
        rng = np.random.default_rng(0)
        x, w, b, dy = (rand(rng, *shape) for shape in shapes)
        if backend == "torch":
            torch = torch_module()
            tx = torch.from_numpy(x).requires_grad_(backward and need_dx)
            tw, tb = (torch.from_numpy(a).requires_grad_(backward) for a in (w, b))
            tdy = torch.from_numpy(dy)
            forward = getattr(torch.nn.functional, op)
            if not backward:
                return lambda: forward(tx, tw, tb, **options)

            def torch_fb():
                tx.grad = tw.grad = tb.grad = None
                forward(tx, tw, tb, **options).backward(tdy)

            return torch_fb
        x, w, b, dy = on_backend(backend, x, w, b, dy)
        forward, grads = getattr(ops, op), getattr(ops, op + "_backward")
        if not backward:
            return lambda: forward(x, w, b, **options, backend=backend)

        def fb():
            forward(x, w, b, **options, backend=backend)
            return grads(x, w, dy, **options, need_dx=need_dx, backend=backend)

        return fb

    return Case(f"{op}-bwd" if backward else f"{op}-fwd", name, flops, prepare)


def pool_case(op: str, shape) -> Case:
    """``ops.<op>`` (max pooling, kernel 2) on x of `shape`, with PyTorch's indices."""

    def prepare(backend: str) -> Runner:
        x = rand(np.random.default_rng(0), *shape)
        if backend == "torch":
            torch = torch_module()
            pool, tx = getattr(torch.nn.functional, op), torch.from_numpy(x)
            return lambda: pool(tx, 2, return_indices=True)
        (x,) = on_backend(backend, x)
        return lambda: getattr(ops, op)(x, 2, backend=backend)

    name = "b{}-c{}-".format(*shape[:2]) + "x".join(map(str, shape[2:])) + "-k2"
    return Case(op, name, float(math.prod(shape)), prepare)
