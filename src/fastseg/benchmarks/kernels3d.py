"""The 3-D kernel cases: convolution and max pooling on the lai3d layers' shapes."""
from __future__ import annotations

from fastseg._shapes import out_size
from fastseg.benchmarks.case import Case
from fastseg.benchmarks.ops_case import pool_case, weighted_case

# (name, batch, in_ch, cube edge, out_ch, k, need_dx): lai3d's two layers (the 20->50 one
# also at batch 32, a smaller training batch and the size of a dense 3-D block). The first
# layer's input gradient is never needed in training (fit skips it, as PyTorch does
# for an input without grad), so its case skips it on both sides.
CONV3D_SHAPES = [
    ("lai3d-conv1-b128", 128, 1, 24, 20, 5, False),
    ("lai3d-conv2-b128", 128, 20, 10, 50, 5, True),
    ("lai3d-conv2-b32", 32, 20, 10, 50, 5, True),
    ("lai3d-conv1-b1", 1, 1, 24, 20, 5, False),
    ("lai3d-conv2-b1", 1, 20, 10, 50, 5, True),
]


def _conv3d_case(name, n, c, s, f, k, need_dx, backward: bool) -> Case:
    o = out_size(s, k)
    flops = 2.0 * n * f * o**3 * c * k**3 * ((3 if need_dx else 2) if backward else 1)
    shapes = (n, c, s, s, s), (f, c, k, k, k), (f,), (n, f, o, o, o)
    return weighted_case("conv3d", name, shapes, flops, backward, need_dx=need_dx)


# Small stand-ins with the same structure, for smoke runs (`quick=True`).
QUICK_CONV3D_SHAPES = [("small-b2", 2, 3, 7, 4, 3, True), ("small-first-b2", 2, 1, 6, 3, 3, False)]


def cases(quick: bool) -> list[Case]:
    """The 3-D kernel cases in table order; `quick` shrinks the shapes."""
    conv = QUICK_CONV3D_SHAPES if quick else CONV3D_SHAPES
    out = [_conv3d_case(*s, backward=False) for s in conv]
    out += [_conv3d_case(*s, backward=True) for s in conv]
    out.append(pool_case("max_pool3d", (2, 3, 6, 6, 6) if quick else (128, 20, 20, 20, 20)))
    return out
