"""The kernel cases: GEMM, convolution, linear and pooling on the lai2d layers' shapes."""
from __future__ import annotations

import numpy as np

from fastseg import ops
from fastseg._shapes import out_size
from fastseg.benchmarks.case import Case, Runner, rand, torch_module

# ---- gemm ------------------------------------------------------------------------------

# (M, K, N, trans_a, trans_b, where it comes from)
GEMM_SHAPES = [
    (1024, 1024, 1024, False, False, "square"),
    (20, 25, 51200, False, False, "lai2d conv1 fwd, batch 128"),
    (50, 500, 32768, False, False, "lai2d conv2 fwd, batch 128"),
    (50, 32768, 500, False, True, "lai2d conv2 dW"),
    (500, 50, 32768, True, False, "lai2d conv2 dX"),
    (128, 12800, 1000, False, True, "lai2d fc1 fwd"),
    (1000, 128, 12800, True, False, "lai2d fc1 dW"),
    (128, 1000, 12800, False, False, "lai2d fc1 dX"),
]


def _gemm_case(m, k, n, ta, tb, note) -> Case:
    def prepare(backend: str) -> Runner:
        rng = np.random.default_rng(0)
        a = rand(rng, *((k, m) if ta else (m, k)))
        b = rand(rng, *((n, k) if tb else (k, n)))
        if backend == "torch":
            torch = torch_module()
            at, bt = torch.from_numpy(a), torch.from_numpy(b)
            at, bt = (at.T if ta else at), (bt.T if tb else bt)
            return lambda: torch.matmul(at, bt)
        if backend == "cuda":
            from numba import cuda

            a, b = cuda.to_device(a), cuda.to_device(b)
        return lambda: ops.gemm(a, b, ta, tb, backend=backend)

    t = ("T" if ta else "N") + ("T" if tb else "N")
    return Case("gemm", f"{m}x{k}x{n}-{t}", 2.0 * m * k * n, prepare)


# ---- convolution, linear, pooling -----------------------------------------------------

# (name, batch, in_ch, size, out_ch, k, padding): the lai2d layers and the
# whole-image network's first layer (models.seo_whole_image defaults).
CONV_SHAPES = [
    ("lai2d-conv1-b128", 128, 1, 24, 20, 5, 0),
    ("lai2d-conv2-b128", 128, 20, 20, 50, 5, 0),
    ("lai2d-conv2-b1", 1, 20, 20, 50, 5, 0),
    ("seo-conv1-b2", 2, 1, 64, 16, 5, 2),
]


def _conv_case(name, n, c, s, f, k, pad, backward: bool) -> Case:
    o = out_size(s, k, 1, pad)

    def prepare(backend: str) -> Runner:
        rng = np.random.default_rng(0)
        x, w, b = rand(rng, n, c, s, s), rand(rng, f, c, k, k), rand(rng, f)
        dy = rand(rng, n, f, o, o)
        if backend == "torch":
            torch = torch_module()
            tx = torch.from_numpy(x).requires_grad_(backward)
            tw = torch.from_numpy(w).requires_grad_(backward)
            tb = torch.from_numpy(b).requires_grad_(backward)
            tdy = torch.from_numpy(dy)
            conv = torch.nn.functional.conv2d
            if not backward:
                return lambda: conv(tx, tw, tb, padding=pad)

            def torch_fb():
                # PyTorch computes the gradients from the forward graph; the
                # fair comparison is forward + backward against ours.
                tx.grad = tw.grad = tb.grad = None
                conv(tx, tw, tb, padding=pad).backward(tdy)

            return torch_fb
        if not backward:
            return lambda: ops.conv2d(x, w, b, padding=pad, backend=backend)

        def fb():
            ops.conv2d(x, w, b, padding=pad, backend=backend)
            return ops.conv2d_backward(x, w, dy, padding=pad, backend=backend)

        return fb

    flops = 2.0 * n * f * o * o * c * k * k * (3 if backward else 1)
    return Case("conv2d-bwd" if backward else "conv2d-fwd", name, flops, prepare)


LINEAR_SHAPES = [("lai2d-fc1-b128", 128, 12800, 1000), ("lai2d-fc2-b128", 128, 1000, 2)]


def _linear_case(name, n, i, o, backward: bool) -> Case:
    def prepare(backend: str) -> Runner:
        rng = np.random.default_rng(0)
        x, w, b, dy = rand(rng, n, i), rand(rng, o, i), rand(rng, o), rand(rng, n, o)
        if backend == "torch":
            torch = torch_module()
            tx, tw, tb = (torch.from_numpy(a).requires_grad_(backward) for a in (x, w, b))
            tdy = torch.from_numpy(dy)
            lin = torch.nn.functional.linear
            if not backward:
                return lambda: lin(tx, tw, tb)

            def torch_fb():
                tx.grad = tw.grad = tb.grad = None
                lin(tx, tw, tb).backward(tdy)

            return torch_fb
        if not backward:
            return lambda: ops.linear(x, w, b, backend=backend)

        def fb():
            ops.linear(x, w, b, backend=backend)
            return ops.linear_backward(x, w, dy, backend=backend)

        return fb

    flops = 2.0 * n * i * o * (3 if backward else 1)
    return Case("linear-bwd" if backward else "linear-fwd", name, flops, prepare)


def _pool_case(shape) -> Case:
    def prepare(backend: str) -> Runner:
        x = rand(np.random.default_rng(0), *shape)
        if backend == "torch":
            torch = torch_module()
            tx = torch.from_numpy(x)
            return lambda: torch.nn.functional.max_pool2d(tx, 2, return_indices=True)
        return lambda: ops.max_pool2d(x, 2, backend=backend)

    name = "b{}-c{}-{}x{}-k2".format(*shape)
    return Case("max_pool2d", name, float(np.prod(shape)), prepare)


# Small stand-ins with the same structure, for smoke runs (`quick=True`).
QUICK_GEMM_SHAPES = [(64, 64, 64, False, False, "square"), (5, 40, 300, True, False, "skinny")]
QUICK_CONV_SHAPES = [("small-b4", 4, 3, 12, 5, 3, 1)]
QUICK_LINEAR_SHAPES = [("small-b4", 4, 50, 7)]


def cases(quick: bool) -> list[Case]:
    """The kernel cases in table order; `quick` shrinks the shapes."""
    gemm = QUICK_GEMM_SHAPES if quick else GEMM_SHAPES
    conv = QUICK_CONV_SHAPES if quick else CONV_SHAPES
    linear = QUICK_LINEAR_SHAPES if quick else LINEAR_SHAPES
    out = [_gemm_case(*s) for s in gemm]
    out += [_conv_case(*s, backward=False) for s in conv]
    out += [_conv_case(*s, backward=True) for s in conv]
    out += [_linear_case(*s, backward=False) for s in linear]
    out += [_linear_case(*s, backward=True) for s in linear]
    out.append(_pool_case((2, 3, 8, 8) if quick else (128, 20, 20, 20)))
    return out
