# cython: language_level=3, boundscheck=False, wraparound=False
"""im2col/col2im and conv2d forward/backward wrappers (kernels/src/im2col.c,
conv.c). Every shape relation the C code relies on is re-checked here, so no
call can make it read or write outside the arrays it is given."""
import numpy as np

from fastseg._cy._buffers import empty as _empty
from fastseg.errors import InvalidValueError

from fastseg._cy._args cimport check_total, checked_bias, data_or_null
from fastseg._cy._status cimport check_status
from fastseg._cy._window cimport out_size
from fastseg._cy.kernels cimport (
    FS_ACT_NONE, FS_ACT_RELU, FS_ACT_SIGMOID, FS_ACT_TANH, fs_col2im, fs_conv2d_backward,
    fs_conv2d_forward, fs_conv2d_forward_packed, fs_conv2d_pack_weight, fs_conv2d_packed_layout,
    fs_idx, fs_im2col,
)

def im2col(const float[:, :, :, ::1] x, Py_ssize_t kernel_size, Py_ssize_t stride,
           Py_ssize_t padding):
    """(N, C, H, W) -> (C*k*k, N*OH*OW) column matrix."""
    n, c, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    oh = out_size("im2col", h, kernel_size, stride, padding)
    ow = out_size("im2col", w, kernel_size, stride, padding)
    rows, ncols = c * kernel_size * kernel_size, n * oh * ow
    check_total("im2col", (rows, ncols))
    out = np.empty((rows, ncols), dtype=np.float32)
    if rows == 0 or ncols == 0:
        return out
    cdef float[:, ::1] cv = out
    cdef fs_idx cn = n, cc = c, ch = h, cw = w, k = kernel_size, s = stride, p = padding
    cdef fs_idx ld = ncols
    with nogil:
        fs_im2col(&x[0, 0, 0, 0], cn, cc, ch, cw, k, s, p, &cv[0, 0], ld)
    return out


def col2im(const float[:, ::1] cols, tuple x_shape, Py_ssize_t kernel_size,
           Py_ssize_t stride, Py_ssize_t padding):
    """The adjoint of im2col: sums every column entry back into (N, C, H, W)."""
    if len(x_shape) != 4 or any(int(d) < 0 for d in x_shape):
        raise InvalidValueError(f"col2im: x_shape must be 4 non-negative sizes, got {x_shape}")
    n, c, h, w = (int(d) for d in x_shape)
    oh = out_size("col2im", h, kernel_size, stride, padding)
    ow = out_size("col2im", w, kernel_size, stride, padding)
    rows, ncols = c * kernel_size * kernel_size, n * oh * ow
    if cols.shape[0] != rows or cols.shape[1] != ncols:
        raise InvalidValueError(f"col2im: cols has shape ({cols.shape[0]}, {cols.shape[1]}), "
                                f"expected ({rows}, {ncols}) for x_shape {x_shape}")
    check_total("col2im", (n, c, h, w))
    out = np.zeros((n, c, h, w), dtype=np.float32)
    if rows == 0 or ncols == 0 or out.size == 0:
        return out
    cdef float[:, :, :, ::1] dv = out
    cdef fs_idx cn = n, cc = c, ch = h, cw = w, k = kernel_size, s = stride, p = padding
    cdef fs_idx ld = ncols
    with nogil:
        fs_col2im(&cols[0, 0], ld, cn, cc, ch, cw, k, s, p, &dv[0, 0, 0, 0])
    return out


cdef tuple _conv_shapes(str what, x, w, Py_ssize_t stride, Py_ssize_t padding):
    if w.shape[1] != x.shape[1]:
        raise InvalidValueError(f"{what}: w has {w.shape[1]} input channels, x has {x.shape[1]}")
    if w.shape[2] != w.shape[3]:
        raise InvalidValueError(f"{what}: only square kernels are supported, w has shape "
                                f"{tuple(w.shape[:4])}")
    k = w.shape[2]
    oh = out_size(what, x.shape[2], k, stride, padding)
    ow = out_size(what, x.shape[3], k, stride, padding)
    return k, oh, ow


def conv2d_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, b,
                   Py_ssize_t stride, Py_ssize_t padding):
    """x (N,C,H,W), w (F,C,k,k), b (F,) or None -> y (N,F,OH,OW)."""
    k, oh, ow = _conv_shapes("conv2d", x, w, stride, padding)
    n, f = x.shape[0], w.shape[0]
    cdef const float[::1] bv = checked_bias("conv2d", b, f)
    cdef const float *pb = data_or_null(bv)
    check_total("conv2d", (n, f, oh, ow))
    if n == 0 or f == 0 or x.shape[1] == 0:
        y = np.zeros((n, f, oh, ow), dtype=np.float32)
        if b is not None:
            y += np.asarray(b, dtype=np.float32).reshape(1, f, 1, 1)
        return y
    y = _empty((n, f, oh, ow))
    cdef float[:, :, :, ::1] yv = y
    cdef fs_idx cn = n, cc = x.shape[1], ch = x.shape[2], cw = x.shape[3]
    cdef fs_idx cf = f, ck = k, s = stride, p = padding
    cdef int st
    with nogil:
        st = fs_conv2d_forward(&x[0, 0, 0, 0], cn, cc, ch, cw, &w[0, 0, 0, 0], cf, ck, pb,
                               s, p, &yv[0, 0, 0, 0])
    check_status(st, "conv2d")
    return y


def conv2d_backward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w,
                    const float[:, :, :, ::1] dy, Py_ssize_t stride, Py_ssize_t padding,
                    bint need_dx=True):
    """Gradients of conv2d: returns (dx, dw, db); dx is None unless need_dx."""
    k, oh, ow = _conv_shapes("conv2d_backward", x, w, stride, padding)
    n, c, f = x.shape[0], x.shape[1], w.shape[0]
    dy_shape = (dy.shape[0], dy.shape[1], dy.shape[2], dy.shape[3])
    if dy_shape != (n, f, oh, ow):
        raise InvalidValueError(f"conv2d_backward: dy has shape {dy_shape}, expected "
                                f"{(n, f, oh, ow)}")
    if n == 0 or f == 0 or c == 0:
        dx = np.zeros((n, c, x.shape[2], x.shape[3]), dtype=np.float32)
        dw = np.zeros((f, c, k, k), dtype=np.float32)
        db = np.zeros((f,), dtype=np.float32)
        if n and f:
            db[:] = np.asarray(dy).sum(axis=(0, 2, 3), dtype=np.float64)
        return (dx if need_dx else None), dw, db
    # The kernel overwrites all three (kernels.h): no zeroing, recycled memory.
    dx = _empty((n, c, x.shape[2], x.shape[3])) if need_dx else None
    dw = _empty((f, c, k, k))
    db = np.empty((f,), dtype=np.float32)
    cdef float[:, :, :, ::1] dxv
    cdef float *dxp = NULL
    if need_dx:
        dxv = dx
        dxp = &dxv[0, 0, 0, 0]
    cdef float[:, :, :, ::1] dwv = dw
    cdef float[::1] dbv = db
    cdef fs_idx cn = n, cc = c, ch = x.shape[2], cw = x.shape[3]
    cdef fs_idx cf = f, ck = k, s = stride, p = padding
    cdef int st
    with nogil:
        st = fs_conv2d_backward(&x[0, 0, 0, 0], cn, cc, ch, cw, &w[0, 0, 0, 0], cf, ck, s, p,
                                &dy[0, 0, 0, 0], dxp, &dwv[0, 0, 0, 0], &dbv[0])
    check_status(st, "conv2d_backward")
    return dx, dw, db


cdef tuple _packed_layout(tuple shape):
    """(floats, mr, kc_block, team) of fs_conv2d_packed_layout for a weight of `shape`."""
    cdef fs_idx floats = 0, mr = 0, kcb = 0
    cdef int team = 0
    f, c, k = shape[0], shape[1], shape[2]
    check_status(fs_conv2d_packed_layout(f, c, k, &floats, &mr, &kcb, &team),
                 "conv2d_pack_weight")
    return floats, mr, kcb, bool(team)


class PackedWeight:
    """A conv2d weight packed once for many :func:`conv2d_forward_packed` calls.

    Attributes
    ----------
    data : ndarray of float32
        The packed floats (64-byte aligned), in the layout of the micro-kernel that was
        in use when packed.
    shape : tuple of int
        The weight's (F, C, k, k).
    mr, kc_block : int
        That layout: the micro-kernel's rows and the K block.
    """

    __slots__ = ("data", "shape", "mr", "kc_block")

    def __init__(self, data, shape, mr, kc_block):
        self.data, self.shape, self.mr, self.kc_block = data, shape, mr, kc_block

    def current(self) -> bool:
        """Whether the kernels in use now read this layout, with the K block they would
        pack (False after another ISA or deep K block is set: pack again)."""
        floats, mr, kcb, _ = _packed_layout(self.shape)
        return (floats, mr, kcb) == (self.data.size, self.mr, self.kc_block)

    def __repr__(self):
        return (f"PackedWeight(shape={self.shape}, mr={self.mr}, kc_block={self.kc_block})")


def conv2d_pack_weight(const float[:, :, :, ::1] w):
    """w (F, C, k, k) packed for many forwards (:class:`PackedWeight`) where
    conv2d_forward packs it once per call for its whole team (a huge weight: dense
    lai2d's fully connected layer), else None (a small one is packed per thread, in
    cache, at no cost worth saving)."""
    shape = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
    if shape[2] != shape[3]:
        raise InvalidValueError(f"conv2d_pack_weight: only square kernels are supported, w "
                                f"has shape {shape}")
    if 0 in shape:
        return None
    floats, mr, kcb, team = _packed_layout(shape)
    if not team:
        return None
    check_total("conv2d_pack_weight", (floats + 16,))
    # 64-byte aligned, as the GEMM's own packing buffers
    raw = np.empty(floats + 16, np.float32)
    start = (-(raw.ctypes.data // 4)) % 16
    data = raw[start:start + floats]
    cdef float[::1] dv = data
    cdef fs_idx cf = shape[0], cc = shape[1], ck = shape[2], cmr = mr, ckcb = kcb
    cdef int st
    with nogil:
        st = fs_conv2d_pack_weight(&w[0, 0, 0, 0], cf, cc, ck, cmr, ckcb, &dv[0])
    check_status(st, "conv2d_pack_weight")
    return PackedWeight(data, shape, mr, kcb)


#: conv2d_forward_packed's activations (kernels.h's FS_ACT_*).
ACTIVATIONS = {None: FS_ACT_NONE, "relu": FS_ACT_RELU, "tanh": FS_ACT_TANH,
               "sigmoid": FS_ACT_SIGMOID}


def conv2d_forward_packed(const float[:, :, :, ::1] x, packed, b, Py_ssize_t stride,
                          Py_ssize_t padding, activation=None):
    """conv2d_forward with a weight packed by :func:`conv2d_pack_weight`, then
    `activation` (None, "relu", "tanh" or "sigmoid") on each tile of y as it is finished:
    the same y as conv2d_forward and the activation after it, bit for bit, while
    ``packed.current()``."""
    if activation not in ACTIVATIONS:
        raise InvalidValueError(f"conv2d_forward_packed: activation {activation!r} is not one "
                                f"of {sorted(k for k in ACTIVATIONS if k)} or None")
    cdef int act = ACTIVATIONS[activation]
    if not isinstance(packed, PackedWeight):
        raise InvalidValueError(f"conv2d_forward_packed: packed must be a PackedWeight, got "
                                f"{type(packed).__name__}")
    if not packed.current():
        raise InvalidValueError(f"conv2d_forward_packed: the weight was packed for "
                                f"{packed.mr}-row micro-kernels with K blocks of "
                                f"{packed.kc_block}, not for the kernels in use now; pack it "
                                "again")
    k, oh, ow = _conv_shapes("conv2d_forward_packed", x, packed, stride, padding)
    n, f, c = x.shape[0], packed.shape[0], packed.shape[1]
    cdef const float[::1] bv = checked_bias("conv2d", b, f)
    cdef const float *pb = data_or_null(bv)
    check_total("conv2d", (n, f, oh, ow))
    y = _empty((n, f, oh, ow))
    if y.size == 0:
        return y
    cdef float[:, :, :, ::1] yv = y
    cdef const float[::1] pv = packed.data
    cdef fs_idx cn = n, cc = c, ch = x.shape[2], cw = x.shape[3], cf = f, ck = k
    cdef fs_idx s = stride, p = padding, cmr = packed.mr, ckcb = packed.kc_block
    cdef int st
    with nogil:
        st = fs_conv2d_forward_packed(&x[0, 0, 0, 0], cn, cc, ch, cw, &pv[0], cmr, ckcb, cf,
                                      ck, pb, act, s, p, &yv[0, 0, 0, 0])
    check_status(st, "conv2d")
    return y
