# cython: language_level=3, boundscheck=False, wraparound=False
"""Dense inference's FFT convolution (kernels/src/fftconv.c): a large convolution by
overlap-save FFT, fused with its bias, activation and a following 1x1 convolution.

Shapes are re-checked here (fastseg._inference checks first) so that no call can make
the kernel read or write outside its arrays: the spectra must be exactly the packed
size the geometry implies, for this ISA's panel rows.
"""
import numpy as np

from fastseg.errors import InvalidValueError

from fastseg._cy._status cimport check_status
from fastseg._cy.kernels cimport (
    FS_ACT_NONE, FS_ACT_RELU, FS_ACT_SIGMOID, FS_ACT_TANH, FS_FFT_STAGES, fs_fftconv2d,
    fs_fftconv2d_ref, fs_fftconv_geom, fs_fftconv_panel_rows, fs_fftconv_spectra_ref,
    fs_fftconv_shared_floats, fs_fftconv_workspace_floats, fs_idx,
)

ACTIVATIONS = {None: FS_ACT_NONE, "relu": FS_ACT_RELU, "tanh": FS_ACT_TANH,
               "sigmoid": FS_ACT_SIGMOID}
#: The stages fs_fftconv2d times (kernels.h, FS_FFT_STAGE_*), in order.
STAGES = ("forward", "products", "inverse", "activation", "project", "copy", "sync")


def panel_rows():
    """The spectra's panel rows (the GEMM micro-kernel's MR) for the kernels in use."""
    return fs_fftconv_panel_rows()


cdef int _geom(fs_fftconv_geom *g, tuple xshape, tuple kernel, tuple fft_shape, fs_idx f,
               fs_idx p, activation, int mults, fs_idx group, fs_idx chunk) except -1:
    if activation not in ACTIVATIONS:
        raise InvalidValueError(f"fftconv2d: activation {activation!r} is not one of "
                                f"{sorted(k for k in ACTIVATIONS if k)} or None")
    g.c, g.h, g.w = xshape
    g.f = f
    g.kh, g.kw = kernel
    g.th, g.tw = fft_shape
    g.p = p
    g.act = ACTIVATIONS[activation]
    g.mults = mults
    g.group = group
    g.chunk = chunk
    return 0


cdef class _Operands:
    """The layer's optional operands, checked against its filters and outputs: views
    held for the call and their data pointers (NULL where absent)."""
    cdef const float[::1] bv
    cdef const float[:, ::1] pwv
    cdef const float[::1] pbv
    cdef const float *bp
    cdef const float *pwp
    cdef const float *pbp


cdef _Operands _operands(str name, bias, proj_w, proj_b, fs_idx filters, fs_idx p):
    """bias (F,) or None, proj_w (P, F) or None and proj_b (P,) or None (only with
    proj_w), for fftconv2d and its C oracle alike."""
    cdef _Operands ops = _Operands()
    if bias is not None:
        ops.bv = bias
        if ops.bv.shape[0] != filters:
            raise InvalidValueError(f"{name}: bias of {ops.bv.shape[0]} values for {filters} "
                                    "filters")
        ops.bp = &ops.bv[0]
    if proj_w is not None:
        ops.pwv = proj_w
        if ops.pwv.shape[1] != filters or p < 1:
            raise InvalidValueError(f"{name}: proj_w of shape "
                                    f"{(ops.pwv.shape[0], ops.pwv.shape[1])} for {filters} "
                                    "filters")
        ops.pwp = &ops.pwv[0, 0]
        if proj_b is not None:
            ops.pbv = proj_b
            if ops.pbv.shape[0] != p:
                raise InvalidValueError(f"{name}: proj_b of {ops.pbv.shape[0]} values for {p} "
                                        "outputs")
            ops.pbp = &ops.pbv[0]
    return ops


def workspace_floats(xshape, kernel, fft_shape, fs_idx f, fs_idx p=0, int mults=3,
                     fs_idx group=0, fs_idx chunk=0):
    """(floats each thread of fftconv2d takes, floats its team shares); -1 for a refused
    geometry."""
    cdef fs_fftconv_geom g
    _geom(&g, tuple(xshape), tuple(kernel), tuple(fft_shape), f, p, None, mults, group, chunk)
    return (fs_fftconv_workspace_floats(&g, fs_fftconv_panel_rows()),
            fs_fftconv_shared_floats(&g, fs_fftconv_panel_rows()))


def fftconv2d(const float[:, :, ::1] x, const float[:, :, :, :, :, ::1] spectra, tuple kernel,
              tuple fft_shape, fs_idx filters, bias, activation, proj_w, proj_b,
              int mults=3, fs_idx group=0, fs_idx chunk=0, double[::1] seconds=None):
    """y (P or F, OH, OW) of x (C, H, W); spectra (panels, nv, th, 2, C, mr) as
    kernels.h lays them out; proj_w (P, F) or None. Runs without the GIL."""
    cdef fs_idx c = x.shape[0], h = x.shape[1], w = x.shape[2]
    cdef fs_idx mr = spectra.shape[5]
    cdef fs_idx p = 0 if proj_w is None else np.shape(proj_w)[0]
    cdef fs_fftconv_geom g
    _geom(&g, (c, h, w), kernel, fft_shape, filters, p, activation, mults, group, chunk)
    if mr != fs_fftconv_panel_rows():
        raise InvalidValueError(f"fftconv2d: spectra packed for {mr} panel rows, the "
                                f"kernels in use take {fs_fftconv_panel_rows()}")
    want = (-(-filters // mr), g.tw // 2 + 1, g.th, 2, c, mr)
    have = tuple([spectra.shape[i] for i in range(6)])
    if have != want:
        raise InvalidValueError(f"fftconv2d: spectra of shape {have}, "
                                f"expected {want} for {filters} filters of {c} channels at "
                                f"{fft_shape}")
    if h < g.kh or w < g.kw or g.kh < 1 or g.kw < 1:
        raise InvalidValueError(f"fftconv2d: x {(c, h, w)} is smaller than the kernel {kernel}")
    cdef _Operands ops = _operands("fftconv2d", bias, proj_w, proj_b, filters, p)
    cdef double *sp = NULL
    if seconds is not None:
        if seconds.shape[0] < FS_FFT_STAGES:
            raise InvalidValueError(f"fftconv2d: seconds holds {seconds.shape[0]} values, "
                                    f"the kernel times {FS_FFT_STAGES} stages")
        sp = &seconds[0]
    out = np.empty((p if p else filters, h - g.kh + 1, w - g.kw + 1), np.float32)
    cdef float[:, :, ::1] yv = out
    cdef int status
    with nogil:
        status = fs_fftconv2d(&g, &x[0, 0, 0], &spectra[0, 0, 0, 0, 0, 0], <int>mr, ops.bp,
                              ops.pwp, ops.pbp, &yv[0, 0, 0], sp)
    check_status(status, "fftconv2d")
    return out


def fftconv2d_ref(const float[:, :, ::1] x, const float[:, :, :, ::1] w, bias, activation,
                  proj_w, proj_b):
    """The C oracle (direct, in double) of the same layer, for tests."""
    cdef fs_idx c = x.shape[0], h = x.shape[1], wd = x.shape[2]
    cdef fs_idx p = 0 if proj_w is None else np.shape(proj_w)[0]
    if w.shape[1] != c or h < w.shape[2] or wd < w.shape[3]:
        raise InvalidValueError("fftconv2d_ref: shapes do not chain")
    cdef fs_fftconv_geom g
    _geom(&g, (c, h, wd), (w.shape[2], w.shape[3]), (w.shape[2], w.shape[3]), w.shape[0], p,
          activation, 3, 0, 0)
    cdef _Operands ops = _operands("fftconv2d_ref", bias, proj_w, proj_b, w.shape[0], p)
    out = np.empty((p if p else w.shape[0], h - g.kh + 1, wd - g.kw + 1), np.float32)
    cdef float[:, :, ::1] yv = out
    cdef int status
    with nogil:
        status = fs_fftconv2d_ref(&g, &x[0, 0, 0], &w[0, 0, 0, 0], ops.bp, ops.pwp, ops.pbp,
                                  &yv[0, 0, 0])
    check_status(status, "fftconv2d_ref")
    return out


def spectra_ref(const float[:, :, :, ::1] w, tuple fft_shape, int mr):
    """The packed spectra of w by the plain DFT in double (small shapes; tests)."""
    cdef fs_idx f = w.shape[0], c = w.shape[1], kh = w.shape[2], kw = w.shape[3]
    cdef fs_idx th = fft_shape[0], tw = fft_shape[1]
    if th < kh or tw < kw or mr < 1:
        raise InvalidValueError("spectra_ref: the FFT shape cannot hold the kernel")
    out = np.empty((-(-f // mr), tw // 2 + 1, th, 2, c, mr), np.float32)
    cdef float[:, :, :, :, :, ::1] ov = out
    with nogil:
        fs_fftconv_spectra_ref(&w[0, 0, 0, 0], f, c, kh, kw, th, tw, mr, &ov[0, 0, 0, 0, 0, 0])
    return out
