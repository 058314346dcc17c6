"""The kernel cases: GEMM, convolution, linear and pooling on the lai2d layers' shapes."""
from __future__ import annotations

import numpy as np

from fastseg import ops
from fastseg._shapes import out_size
from fastseg.benchmarks.case import Case, Runner, rand, torch_module
from fastseg.benchmarks.ops_case import on_backend, pool_case, weighted_case

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
        a, b = on_backend(backend, a, b)
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
    flops = 2.0 * n * f * o * o * c * k * k * (3 if backward else 1)
    shapes = (n, c, s, s), (f, c, k, k), (f,), (n, f, o, o)
    return weighted_case("conv2d", name, shapes, flops, backward, padding=pad)


LINEAR_SHAPES = [("lai2d-fc1-b128", 128, 12800, 1000), ("lai2d-fc2-b128", 128, 1000, 2)]


def _linear_case(name, n, i, o, backward: bool) -> Case:
    flops = 2.0 * n * i * o * (3 if backward else 1)
    return weighted_case("linear", name, ((n, i), (o, i), (o,), (n, o)), flops, backward)


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
    out.append(pool_case("max_pool2d", (2, 3, 8, 8) if quick else (128, 20, 20, 20)))
    return out
