"""The operation table every backend fills: names, arguments and meaning.

A backend is a module (:mod:`.c`, :mod:`.numpy_backend`, :mod:`.cuda`) with one
function per entry of :data:`OPERATIONS`, whose parameters carry exactly the
listed names in the listed order. It receives arguments that
:mod:`fastseg.ops` (the kernels) or :mod:`fastseg._arrays` (the array helpers)
have already checked and converted through the backend's own checks (the
``CHECKS`` entries), so each backend decides what arrays it accepts (host
arrays; or device arrays too) without the caller guessing.

A backend that cannot provide an entry says so in its module-level dict
``NOT_PROVIDED = {"operation": "why not"}``; calling the entry then raises
:class:`fastseg.errors.UnavailableError` with that reason. A backend must not
leave an entry out silently: :func:`build_table` refuses it, and
``tests/test_backend_contract.py`` checks every backend against this table.

Adding an operation (e.g. ``conv3d``)
-------------------------------------
1. Add one :class:`Operation` line to ``KERNELS`` (or ``INFERENCE``, ``ARRAY_HELPERS``) below.
2. Implement it in each backend module with those parameter names, or add it to
   that backend's ``NOT_PROVIDED`` with the reason.
3. Add the public function to :mod:`fastseg.ops` (checks, then
   ``backends.table(backend).conv3d(...)``).
The contract test then covers it on every backend with no further change.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from fastseg.errors import UnavailableError

__all__ = ["Operation", "KERNELS", "INFERENCE", "ARRAY_HELPERS", "CHECKS", "OPERATIONS", "Table",
           "build_table"]


@dataclass(frozen=True)
class Operation:
    """One entry of the table: its name, its parameters (in order) and what it does."""

    name: str
    params: tuple[str, ...]
    summary: str


def _op(name: str, params: str, summary: str) -> Operation:
    return Operation(name, tuple(params.split()), summary)


#: The computations, called by :mod:`fastseg.ops` with checked, converted arguments.
KERNELS = (
    _op("gemm", "a b trans_a trans_b", "op(a) @ op(b)"),
    _op("gemm_batch", "a b out",
        "out[i] = a[i] @ b[i] for a stack of matrices (rows contiguous, may be strided)"),
    _op("im2col", "x kernel_size stride padding", "(N,C,H,W) -> (C*k*k, N*OH*OW) columns"),
    _op("col2im", "cols x_shape kernel_size stride padding", "the adjoint of im2col"),
    _op("conv2d", "x w b stride padding", "2-D cross-correlation, (N,F,OH,OW)"),
    _op("conv2d_backward", "x w dy stride padding need_dx", "(dx or None, dw, db)"),
    _op("linear", "x w b", "x @ w.T + b"),
    _op("linear_backward", "x w dy need_dx", "(dx or None, dw, db)"),
    _op("max_pool2d", "x kernel_size stride", "(y, int64 argmax index in each plane)"),
    _op("max_pool2d_backward", "dy indices x_shape", "dy scattered to the argmax positions"),
    _op("conv3d", "x w b stride padding",
        "3-D cross-correlation, (N,F,OD,OH,OW); stride, padding: (d, h, w) triples"),
    _op("conv3d_backward", "x w dy stride padding need_dx", "(dx or None, dw, db)"),
    _op("max_pool3d", "x kernel_size stride",
        "(y, int64 argmax index in each volume); kernel_size, stride: triples"),
    _op("max_pool3d_backward", "dy indices x_shape", "dy scattered to the argmax positions"),
    _op("relu", "x", "max(x, 0)"),
    _op("relu_backward", "x dy", "dy where x > 0"),
    _op("tanh", "x", "tanh(x)"),
    _op("tanh_backward", "x dy", "dy * (1 - tanh(x)**2)"),
    _op("sigmoid", "x", "1 / (1 + exp(-x))"),
    _op("sigmoid_backward", "x dy", "dy * s * (1 - s)"),
    _op("xsin", "x", "x * sin(x), a non-monotonic activation"),
    _op("xsin_backward", "x dy", "dy * (sin(x) + x * cos(x))"),
    _op("softmax", "x", "softmax over the classes of x (N, K): rows of probabilities"),
    _op("softmax_cross_entropy", "logits labels class_weights", "(mean loss, dlogits)"),
    _op("sgd_update", "p g buf lr momentum dampening weight_decay nesterov first_step",
        "torch.optim.SGD's step on p in place; buf is None without momentum"),
    _op("adam_update", "p g m v lr beta1 beta2 eps weight_decay step",
        "torch.optim.Adam's step on p, m, v in place"),
    _op("rprop_update", "p g prev step_size eta_minus eta_plus step_min step_max",
        "torch.optim.Rprop's step on p, prev, step_size in place"),
)

#: Dense inference's operations, called by :mod:`fastseg._inference` through the table
#: (no :mod:`fastseg.ops` function: their operands are the inference package's own, such
#: as a weight's spectra packed for this backend's ``fftconv2d``).
INFERENCE = (
    _op("conv2d_weight_packed", "w",
        "w (F, C, k, k) packed once for many conv2d_packed calls where conv2d would pack it "
        "per call (a huge weight: dense lai2d's first Linear as a convolution), else None"),
    _op("conv2d_packed", "x packed b stride activation",
        "conv2d (no padding) with a weight packed by conv2d_weight_packed, then activation "
        "(None/'relu'/'tanh'/'sigmoid'): conv2d's values and the activation's, bit for bit, "
        "without packing the weight again"),
    _op("fft_spectra", "w fft_shape",
        "a weight (F, C, kh, kw)'s conjugate spectra at fft_shape, scaled by 1/prod(fft_shape) "
        "and packed as this backend's fftconv2d reads them: (panels, tw//2+1, th, 2, C, mr)"),
    _op("fftconv2d",
        "x spectra kernel fft_shape filters bias activation proj_w proj_b mults group chunk "
        "seconds",
        "proj(act(corr(x, w) + bias)) for x (C, H, W) by overlap-save FFT at fft_shape; "
        "(P or F, H-kh+1, W-kw+1); activation None/'relu'/'tanh'/'sigmoid', proj_w (P, F) or "
        "None; mults, group, chunk tune the speed only; seconds (7,) float64 receives the "
        "stage times or is None"),
)

#: The array plumbing nn and optim use, so parameters, gradients and optimizer state
#: stay wherever the backend keeps its arrays (called by :mod:`fastseg._arrays`).
ARRAY_HELPERS = (
    _op("zeros", "shape dtype like", "zeros of shape and dtype where `like` lives"),
    _op("zeros_like", "a", "zeros of a's shape, where a lives"),
    _op("full_like", "a value", "a's shape filled with value, where a lives"),
    _op("fill_", "a value", "set every element of a, in place"),
    _op("copy_", "dst src", "dst[...] = src, in place"),
    _op("add_", "dst src", "dst += src, in place"),
    _op("mul", "a b", "a * b, b an array of a's shape or a float"),
    _op("hstack", "arrays", "join 2-D arrays along their columns"),
    _op("hsplit", "a widths", "contiguous column blocks of a"),
    _op("batch_transpose", "x", "(B, R, C) -> (B, C, R), contiguous"),
    _op("dropout", "x keep scale", "(x * mask, mask) with mask = keep * scale"),
    _op("to_device", "a", "a on the backend's device"),
    _op("to_host", "a", "a as a NumPy array"),
)

#: How the backend checks and converts what callers hand it. The host backends use
#: :mod:`fastseg._validate`'s; a device backend also accepts its own arrays.
CHECKS = (
    _op("as_float32", "name a ndim layout", "a C-contiguous float32 array of rank ndim"),
    _op("as_indices", "name indices shape limit", "int indices of shape, each in [0, limit)"),
    _op("as_labels", "name labels n num_classes", "n int64 labels in [0, num_classes)"),
    _op("check_finite", "name a", "refuse NaN and infinity"),
    _op("as_inplace", "name a shape", "a float32 C-contiguous writeable array to update"),
)

OPERATIONS = KERNELS + INFERENCE + ARRAY_HELPERS + CHECKS


class Table:
    """A backend's operations by name (``table.conv2d(...)``), checked against
    :data:`OPERATIONS` by :func:`build_table`."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<fastseg backend table {self.name!r}>"


def _declined(backend: str, operation: str, why: str):
    def declined(*args, **kwargs):
        raise UnavailableError(f"{operation}: the {backend!r} backend does not provide it "
                               f"({why})")

    declined.__name__ = operation
    return declined


def build_table(name: str, module: ModuleType) -> Table:
    """The :class:`Table` of backend `name` from its `module`.

    Raises
    ------
    TypeError
        When the module neither provides an operation nor says why not in
        ``NOT_PROVIDED``, provides one it also declines, or declines one the
        table does not know: a fastseg bug, which the contract test catches first.
    """
    declined = dict(getattr(module, "NOT_PROVIDED", {}))
    unknown = sorted(set(declined) - {op.name for op in OPERATIONS})
    if unknown:
        raise TypeError(f"backend {name!r} declines operations the table does not have: "
                        f"{unknown}")
    table = Table(name)
    missing = []
    for op in OPERATIONS:
        fn = getattr(module, op.name, None)
        if op.name in declined:
            if fn is not None:
                raise TypeError(f"backend {name!r} both provides and declines {op.name!r}")
            fn = _declined(name, op.name, declined[op.name])
        elif fn is None:
            missing.append(op.name)
            continue
        setattr(table, op.name, fn)
    if missing:
        raise TypeError(f"backend {name!r} provides neither {missing} nor a reason in "
                        "NOT_PROVIDED")
    return table
