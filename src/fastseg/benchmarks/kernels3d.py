"""The 3-D kernel cases: convolution and max pooling on the lai3d layers' shapes."""
from __future__ import annotations

import numpy as np

from fastseg import ops
from fastseg._shapes import out_size
from fastseg.benchmarks.case import Case, Runner, rand, torch_module

# (name, batch, in_ch, cube edge, out_ch, k, need_dx): lai3d's two layers. The first
# layer's input gradient is never needed in training (fit skips it, as PyTorch does
# for an input without grad), so its case skips it on both sides.
CONV3D_SHAPES = [
    ("lai3d-conv1-b128", 128, 1, 24, 20, 5, False),
    ("lai3d-conv2-b128", 128, 20, 10, 50, 5, True),
    ("lai3d-conv1-b1", 1, 1, 24, 20, 5, False),
    ("lai3d-conv2-b1", 1, 20, 10, 50, 5, True),
]


def _conv3d_case(name, n, c, s, f, k, need_dx, backward: bool) -> Case:
    o = out_size(s, k)

    def prepare(backend: str) -> Runner:
        rng = np.random.default_rng(0)
        x, w, b = rand(rng, n, c, s, s, s), rand(rng, f, c, k, k, k), rand(rng, f)
        dy = rand(rng, n, f, o, o, o)
        if backend == "torch":
            torch = torch_module()
            tx = torch.from_numpy(x).requires_grad_(backward and need_dx)
            tw = torch.from_numpy(w).requires_grad_(backward)
            tb = torch.from_numpy(b).requires_grad_(backward)
            tdy = torch.from_numpy(dy)
            conv = torch.nn.functional.conv3d
            if not backward:
                return lambda: conv(tx, tw, tb)

            def torch_fb():
                # PyTorch computes the gradients from the forward graph; the fair
                # comparison is forward + backward against ours.
                tx.grad = tw.grad = tb.grad = None
                conv(tx, tw, tb).backward(tdy)

            return torch_fb
        if backend == "cuda":
            from numba import cuda

            x, w, b, dy = (cuda.to_device(a) for a in (x, w, b, dy))
        if not backward:
            return lambda: ops.conv3d(x, w, b, backend=backend)

        def fb():
            ops.conv3d(x, w, b, backend=backend)
            return ops.conv3d_backward(x, w, dy, need_dx=need_dx, backend=backend)

        return fb

    flops = 2.0 * n * f * o**3 * c * k**3 * ((3 if need_dx else 2) if backward else 1)
    return Case("conv3d-bwd" if backward else "conv3d-fwd", name, flops, prepare)


def _pool3d_case(shape) -> Case:
    def prepare(backend: str) -> Runner:
        x = rand(np.random.default_rng(0), *shape)
        if backend == "torch":
            torch = torch_module()
            tx = torch.from_numpy(x)
            return lambda: torch.nn.functional.max_pool3d(tx, 2, return_indices=True)
        return lambda: ops.max_pool3d(x, 2, backend=backend)

    name = "b{}-c{}-{}x{}x{}-k2".format(*shape)
    return Case("max_pool3d", name, float(np.prod(shape)), prepare)


# Small stand-ins with the same structure, for smoke runs (`quick=True`).
QUICK_CONV3D_SHAPES = [("small-b2", 2, 3, 7, 4, 3, True), ("small-first-b2", 2, 1, 6, 3, 3, False)]


def cases(quick: bool) -> list[Case]:
    """The 3-D kernel cases in table order; `quick` shrinks the shapes."""
    conv = QUICK_CONV3D_SHAPES if quick else CONV3D_SHAPES
    out = [_conv3d_case(*s, backward=False) for s in conv]
    out += [_conv3d_case(*s, backward=True) for s in conv]
    out.append(_pool3d_case((2, 3, 6, 6, 6) if quick else (128, 20, 20, 20, 20)))
    return out
