/*
 * fastseg/kernels.h -- the C contract of fastseg's compiled kernels.
 *
 * Plain C99, no Python headers: the Cython wrappers (src/fastseg/_cy/kernels.pxd)
 * declare exactly these prototypes, and kernels/tests/ calls them directly.
 *
 * Conventions shared by every kernel:
 *   - float32 data, row-major, NCHW for images, C-contiguous unless a leading
 *     dimension (ld*) is passed;
 *   - sizes are fs_idx (64-bit); callers have already checked that the
 *     products fit (the Python layer does it, the C tests use small sizes);
 *   - kernels that can fail return an int status (FS_OK or an FS_E* code)
 *     and never write out of bounds, whatever an index array contains;
 *   - the thread count is process-wide (fs_set_num_threads); without OpenMP
 *     every kernel runs on one thread.
 */
#ifndef FASTSEG_KERNELS_H
#define FASTSEG_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int64_t fs_idx;

enum {
    FS_OK = 0,
    FS_ENOMEM = 1,   /* a workspace allocation failed */
    FS_EINDEX = 2,   /* an index/label handed in by the caller is out of range */
    FS_EVALUE = 3    /* an argument is outside its domain (stride 0, ...) */
};

/* ---- runtime: threads, the instruction set and blocking chosen ----------
 * (runtime.c; the ISA choice in isa_dispatch.c) */
void fs_set_num_threads(int n);        /* n < 1 is treated as 1 */
int fs_get_num_threads(void);
int fs_openmp_enabled(void);           /* 1 when compiled with OpenMP */
/* The kernels in use: "avx512", "avx2" or "generic". By default the best
 * this CPU, its OS and this build can run (avx512 > avx2 > generic). */
const char *fs_isa_name(void);
/* Force an ISA by name ("avx512", "avx2", "generic", or "auto" = the
 * default). Returns FS_OK, or FS_EVALUE when the name is unknown or cannot
 * run here (fs_isa_supported says which); nothing changes then. The
 * environment variable FASTSEG_ISA is read once, at the first kernel call;
 * a value that cannot be honoured leaves "auto" and fs_isa_env_error says
 * why. */
int fs_select_isa(const char *name);
/* 1 when this CPU, OS and build can run ISA `name`, 0 when not, -1 when
 * the name is unknown; fs_isa_why_not says why not (NULL when it can). */
int fs_isa_supported(const char *name);
const char *fs_isa_why_not(const char *name);
/* NULL, or a sentence saying why FASTSEG_ISA was not honoured. */
const char *fs_isa_env_error(void);
/* The GEMM blocking of ISA `name` ("auto" or NULL: the one in use): the
 * micro-tile and the cache blocks fitted to this CPU's caches
 * (fastseg/blocking.h). Returns FS_OK, or FS_EVALUE as fs_select_isa. */
typedef struct {
    int mr, nr;          /* the tile of C kept in registers */
    fs_idx mc, kc, nc;   /* rows of A, depth and columns of B per cache block */
} fs_blocking;
int fs_isa_blocking(const char *name, fs_blocking *out);
/* The same, as fitted to the caches (what fs_set_blocking's 0 means),
 * whatever was set since. */
int fs_isa_blocking_fitted(const char *name, fs_blocking *out);
/* Set the cache blocks of ISA `name` ("auto" or NULL: the one in use) from
 * now on: the tuner's choice (fastseg tune). 0 for a block keeps the fitted
 * value; so fs_set_blocking(name, 0, 0, 0) goes back to the constants.
 * Limits (fastseg/blocking.h): mc a multiple of MR in [MR, FS_GEMM_MC_LIMIT],
 * kc in [FS_GEMM_KC_LIMIT_MIN, FS_GEMM_KC_LIMIT], nc a multiple of NR in
 * [NR, FS_GEMM_NC_LIMIT]. Returns FS_OK; FS_EVALUE, changing nothing, for
 * an unknown name, an ISA that cannot run here or a block out of range;
 * FS_ENOMEM when no table can be made. Safe while other threads compute: a
 * call in flight keeps the blocks it started with. KC sets the order in
 * which a K-long sum is added up (a K block at a time), so results change
 * at rounding level with it; MC and NC change no result. */
int fs_set_blocking(const char *name, fs_idx mc, fs_idx kc, fs_idx nc);
/* The deep K block of ISA `name` ("auto" or NULL: the one in use): the K
 * block of a convolution forward whose weight is packed once for all
 * threads (fastseg/blocking.h), as fitted to the caches (*fitted) and as it
 * runs now (*in_use). Returns FS_OK, or FS_EVALUE as fs_isa_blocking. */
int fs_isa_deep_kc(const char *name, fs_idx *fitted, fs_idx *in_use);
/* Set it from now on (the tuner's choice); 0 goes back to the fitted value.
 * Limits: [FS_GEMM_KC_LIMIT_MIN, FS_GEMM_KC_LIMIT]; a block below the
 * table's KC runs as KC (conv_fused.c). Returns FS_OK, or
 * FS_EVALUE, changing nothing, as fs_set_blocking. A call in flight keeps
 * the block it started with. It sets the order in which those convolutions
 * add up their sums, so their results change at rounding level with it. */
int fs_set_deep_kc(const char *name, fs_idx kc);
/* The cache sizes the blocking was fitted to: bytes per core, 0 unknown. */
void fs_cache_info(int64_t *l1d, int64_t *l2, int64_t *l3);
/* How fs_sgemm cuts C among threads (gemm.c): `mode` FS_SPLIT_AUTO (along N
 * when op(A) is the smaller operand, else along M), FS_SPLIT_N or
 * FS_SPLIT_M; `blocks` the most blocks per thread (1..FS_SPLIT_BLOCKS_MAX;
 * 0: the default, 4), which threads take as they come free. Returns FS_OK or
 * FS_EVALUE (nothing changes). No result depends on it: each element of C
 * is summed by one thread in the same order whatever the cut. */
enum { FS_SPLIT_AUTO = 0, FS_SPLIT_N = 1, FS_SPLIT_M = 2 };
#define FS_SPLIT_BLOCKS_MAX 16
int fs_set_gemm_split(int mode, int blocks);
void fs_get_gemm_split(int *mode, int *blocks);

/* ---- SGEMM (gemm.c): C = alpha * op(A) * op(B) + beta * C ---------------
 * op(A) is m x k, op(B) is k x n, C is m x n, all row-major with leading
 * dimensions lda/ldb/ldc. trans_* != 0 means the stored matrix is the
 * transpose (A stored k x m, B stored n x k). beta == 0 overwrites C
 * without reading it (NaN in C does not propagate), as BLAS does.
 * Returns FS_OK or FS_ENOMEM. */
int fs_sgemm(int trans_a, int trans_b, fs_idx m, fs_idx n, fs_idx k,
             float alpha, const float *a, fs_idx lda,
             const float *b, fs_idx ldb,
             float beta, float *c, fs_idx ldc);
/* The obviously-right triple loop, same contract; the tests' C oracle. */
void fs_sgemm_ref(int trans_a, int trans_b, fs_idx m, fs_idx n, fs_idx k,
                  float alpha, const float *a, fs_idx lda,
                  const float *b, fs_idx ldb,
                  float beta, float *c, fs_idx ldc);

/* ---- im2col / col2im (im2col.c) ----------------------------------------
 * x is (n, c, h, w); oh = (h + 2*pad - k) / stride + 1, likewise ow.
 * cols has c*k*k rows and n*oh*ow columns with leading dimension ldcols:
 * row (ci*k + ki)*k + kj, column (ni*oh + oi)*ow + oj holds
 * x[ni, ci, oi*stride + ki - pad, oj*stride + kj - pad] or 0 outside. */
void fs_im2col(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
               fs_idx k, fs_idx stride, fs_idx pad,
               float *cols, fs_idx ldcols);
/* The adjoint: ADDS every column entry into dx (the caller zeroes dx). */
void fs_col2im(const float *cols, fs_idx ldcols,
               fs_idx n, fs_idx c, fs_idx h, fs_idx w,
               fs_idx k, fs_idx stride, fs_idx pad, float *dx);

/* ---- conv2d (conv.c) --------------------------------------------------------
 * GEMM loops around the micro-kernel that read the image in place
 * (conv_fused.c) for every layer whose packed weight is small; im2col +
 * fs_sgemm one image at a time for the rest (1x1 kernels, huge weights).
 * x (n, c, h, w), wt (f, c, k, k), bias (f) or NULL, y (n, f, oh, ow). */
int fs_conv2d_forward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                      const float *wt, fs_idx f, fs_idx k, const float *bias,
                      fs_idx stride, fs_idx pad, float *y);
/* A weight packed once for many forwards (conv_fused.c; dense inference's
 * fully connected layer run as a 16x16 convolution: 51 MB, packed per call
 * otherwise).
 * fs_conv2d_packed_layout gives the packed size in floats, the micro-kernel
 * table's MR it is packed for and its K block (blocking.h's deep K block, as
 * fs_conv2d_forward's for a weight it packs once per call for the team) and
 * whether fs_conv2d_forward packs this weight once per call for its whole
 * team (*team: a huge one, where packing it once for many calls saves the
 * most; a small one it packs per thread, in cache); FS_EVALUE unless f, c,
 * k > 0. fs_conv2d_pack_weight fills `packed` (that
 * many floats) from wt (f, c, k, k); fs_conv2d_forward_packed is
 * fs_conv2d_forward reading it, then `act` (FS_ACT_*, below) on each tile of
 * y as it is finished: bit for bit the same y (and the activation kernel's
 * on it) where fs_conv2d_forward packs per call with the same K block,
 * whatever the weight's size. Both return
 * FS_EVALUE when mr is not the table's in use (another ISA selected since:
 * pack again) or kc_block is outside [1, c*k*k]. */
int fs_conv2d_packed_layout(fs_idx f, fs_idx c, fs_idx k, fs_idx *floats, fs_idx *mr,
                            fs_idx *kc_block, int *team);
int fs_conv2d_pack_weight(const float *wt, fs_idx f, fs_idx c, fs_idx k, fs_idx mr,
                          fs_idx kc_block, float *packed);
int fs_conv2d_forward_packed(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                             const float *packed, fs_idx mr, fs_idx kc_block, fs_idx f,
                             fs_idx k, const float *bias, int act, fs_idx stride,
                             fs_idx pad, float *y);
/* dy (n, f, oh, ow). Writes (overwrites) dx (n, c, h, w), dw (f, c, k, k),
 * db (f); any of the three may be NULL to skip it. */
int fs_conv2d_backward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                       const float *wt, fs_idx f, fs_idx k,
                       fs_idx stride, fs_idx pad, const float *dy,
                       float *dx, float *dw, float *db);

/* ---- linear (linear.c): y = x * w^T + b ---------------------------------
 * x (n, in), w (out, in), b (out) or NULL, y (n, out). */
int fs_linear_forward(const float *x, fs_idx n, fs_idx in,
                      const float *w, fs_idx out, const float *b, float *y);
/* dy (n, out) -> dx (n, in), dw (out, in), db (out); each may be NULL. */
int fs_linear_backward(const float *x, fs_idx n, fs_idx in,
                       const float *w, fs_idx out, const float *dy,
                       float *dx, float *dw, float *db);

/* ---- max pooling (pool.c) ------------------------------------------------
 * x (n, c, h, w) -> y (n, c, oh, ow), oh = (h - k) / stride + 1 (no padding,
 * floor). idx holds, for every output, the flat index i*w + j of its maximum
 * within its own (h, w) plane, as PyTorch's return_indices does; the first
 * maximum wins ties, NaN counts as the maximum. */
void fs_maxpool2d_forward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                          fs_idx k, fs_idx stride, float *y, int64_t *idx);
/* dx (n, c, h, w) is overwritten: zero, then dy scattered (added) through
 * idx. Returns FS_EINDEX, having written nothing past dx's end, when an
 * index is outside [0, h*w). */
int fs_maxpool2d_backward(const float *dy, const int64_t *idx,
                          fs_idx n, fs_idx c, fs_idx oh, fs_idx ow,
                          fs_idx h, fs_idx w, float *dx);

/* ---- conv3d (conv3d.c): implicit GEMM on the GEMM micro-kernels ---------
 * The geometry of a 3-D convolution: x (n, c, d, h, w), weight
 * (f, c, k[0], k[1], k[2]); per axis (depth, height, width) a kernel size,
 * stride and zero padding. The output y is (n, f, od, oh, ow) with
 * od = (d + 2*pad[0] - k[0]) / stride[0] + 1, likewise oh and ow (0 when the
 * window is larger than the padded input). */
typedef struct {
    fs_idx n, c, d, h, w, f;
    fs_idx k[3], stride[3], pad[3];
} fs_conv3d_geom;
/* bias (f) or NULL. Returns FS_OK, FS_ENOMEM, or FS_EVALUE when a kernel
 * size or stride is < 1 or a padding < 0. */
int fs_conv3d_forward(const fs_conv3d_geom *g, const float *x, const float *wt,
                      const float *bias, float *y);
/* dy (n, f, od, oh, ow). Writes (overwrites) dx (n, c, d, h, w),
 * dw (f, c, k[0], k[1], k[2]) and db (f); any of the three may be NULL. */
int fs_conv3d_backward(const fs_conv3d_geom *g, const float *x, const float *wt,
                       const float *dy, float *dx, float *dw, float *db);

/* ---- 3-D max pooling (pool3d.c) ------------------------------------------
 * x (n, c, size[0], size[1], size[2]) -> y (n, c, od, oh, ow), per axis
 * o = (size - k) / stride + 1 (no padding, floor). idx holds, for every
 * output, the flat index (z*h + y)*w + x of its maximum within its own
 * volume, as PyTorch's max_pool3d(return_indices=True); the first maximum
 * wins ties, NaN counts as the maximum. Returns FS_EVALUE when a kernel size
 * or stride is < 1. */
int fs_maxpool3d_forward(const float *x, fs_idx n, fs_idx c, const fs_idx size[3],
                         const fs_idx k[3], const fs_idx stride[3], float *y, int64_t *idx);
/* dx (n, c, in_count), in_count = d*h*w, is overwritten: zero, then dy
 * (n, c, out_count) scattered (added) through idx. Returns FS_EINDEX, having
 * written nothing, when an index is outside [0, in_count). */
int fs_maxpool3d_backward(const float *dy, const int64_t *idx, fs_idx n, fs_idx c,
                          fs_idx out_count, fs_idx in_count, float *dx);

/* ---- element-wise activations (activations.c), count elements ---------- */
void fs_relu_forward(const float *x, float *y, fs_idx count);
void fs_relu_backward(const float *x, const float *dy, float *dx, fs_idx count);
void fs_tanh_forward(const float *x, float *y, fs_idx count);
void fs_tanh_backward(const float *x, const float *dy, float *dx, fs_idx count);
void fs_sigmoid_forward(const float *x, float *y, fs_idx count);
void fs_sigmoid_backward(const float *x, const float *dy, float *dx, fs_idx count);
/* x*sin(x): the report's example of a non-monotonic activation (experiments). */
void fs_xsin_forward(const float *x, float *y, fs_idx count);
void fs_xsin_backward(const float *x, const float *dy, float *dx, fs_idx count);

/* ---- fused softmax cross-entropy (softmax_xent.c) -----------------------
 * logits (n, k), labels (n) in [0, k), class_w (k) or NULL. Writes the
 * mean loss to *loss and d(loss)/d(logits) to dlogits (n, k). With weights
 * the mean is PyTorch's: sum_i w[y_i] * l_i / sum_i w[y_i]. Stable for
 * logits of any finite size (log-sum-exp). Returns FS_EINDEX for a label
 * outside [0, k), before writing anything. n == 0 gives loss NaN, as
 * PyTorch's mean over nothing does. */
int fs_softmax_xent(const float *logits, fs_idx n, fs_idx k,
                    const int64_t *labels, const float *class_w,
                    float *loss, float *dlogits);

/* ---- fused optimizer updates (optim_update.c), torch.optim's rules ------ */
/* SGD; buf is the momentum buffer; first_step != 0 means buf = g (no
 * dampening), as torch does when the buffer does not yet exist. */
void fs_sgd_update(float *p, const float *g, float *buf, fs_idx count,
                   float lr, float momentum, float dampening,
                   float weight_decay, int nesterov, int first_step);
/* Adam (L2 weight decay as torch.optim.Adam); step counts from 1. */
void fs_adam_update(float *p, const float *g, float *m, float *v, fs_idx count,
                    float lr, float beta1, float beta2, float eps,
                    float weight_decay, fs_idx step);
/* Rprop (torch.optim.Rprop): prev is the previous gradient (updated),
 * step_size the per-element step (updated). */
void fs_rprop_update(float *p, const float *g, float *prev, float *step_size,
                     fs_idx count, float eta_minus, float eta_plus,
                     float step_min, float step_max);

/* ---- dense inference: overlap-save FFT convolution (fftconv.c) ----------
 * y = proj(act(corr(x, w) + bias)): the valid stride-1 cross-correlation of
 * x (c, h, w) with a weight (f, c, kh, kw), plus bias (f) or NULL, through
 * the activation, then, when p > 0, the 1x1 convolution proj_w (p, f) with
 * proj_b (p) or NULL. y is (p, oh, ow), or (f, oh, ow) when p == 0, with
 * oh = h - kh + 1, ow = w - kw + 1. The correlation runs by FFT of shape
 * th x tw per block of (th - kh + 1) x (tw - kw + 1) outputs; the weight
 * comes as its spectra, packed for the micro-kernel in use:
 *   spectra[((pn * nbins + v*th + u) * 2 + part) * c * mr + ci * mr + i]
 *     = part 0 (real) or 1 (imaginary) of conj(rfft2(w[pn*mr + i, ci],
 *       (th, tw)))[u, v] / (th * tw)   (0 for filters pn*mr + i >= f),
 * for panels pn < ceil(f / mr), bins u < th, v < tw/2 + 1 (nbins of them),
 * mr = fs_fftconv_panel_rows(). The activation and the 1x1 convolution run
 * on a few filters' maps at a time, so the f-channel map never exists
 * whole. Results are bitwise repeatable, the same for any thread count,
 * group and chunk; they depend on the FFT shape, mults and the ISA. */
enum { FS_ACT_NONE = 0, FS_ACT_RELU = 1, FS_ACT_TANH = 2, FS_ACT_SIGMOID = 3 };
typedef struct {
    fs_idx c, h, w;     /* the input x (c, h, w) */
    fs_idx f, kh, kw;   /* the weight (f, c, kh, kw) */
    fs_idx th, tw;      /* the FFT shape: kh <= th, kw <= tw, each <= 1024, with no
                           prime factor above 61 */
    fs_idx p;           /* outputs of the 1x1 convolution; 0: none, y is the maps */
    int act;            /* FS_ACT_*, applied after the bias */
    int mults;          /* real products per complex one: 3 (Gauss) or 4 */
    fs_idx group;       /* filters transformed back together (0: the default);
                           rounded up to a multiple of mr */
    fs_idx chunk;       /* output blocks per task (0: the default); rounded up to
                           the micro-kernel's NR */
} fs_fftconv_geom;
/* The stages fs_fftconv2d times when asked: CPU seconds of its threads,
 * summed (so a machine's other jobs do not show up in them). */
enum {
    FS_FFT_STAGE_FORWARD = 0,   /* input windows: gather and forward transforms */
    FS_FFT_STAGE_PRODUCTS = 1,  /* per-bin complex products (and their bias) */
    FS_FFT_STAGE_INVERSE = 2,   /* inverse transforms */
    FS_FFT_STAGE_ACTIVATION = 3,
    FS_FFT_STAGE_PROJECT = 4,   /* the 1x1 convolution */
    FS_FFT_STAGE_COPY = 5,      /* zeroing, summing the slices, writing the output */
    FS_FFT_STAGE_SYNC = 6,      /* waiting for the team (spinning at its barriers) */
    FS_FFT_STAGES = 7
};
/* The spectra's panel rows (mr) for the kernels in use. */
int fs_fftconv_panel_rows(void);
/* Floats of workspace each thread of fs_fftconv2d takes (kept for its next
 * call), and the floats the team shares (held by the calling thread), or -1
 * when the geometry is refused. */
int64_t fs_fftconv_workspace_floats(const fs_fftconv_geom *g, int mr);
int64_t fs_fftconv_shared_floats(const fs_fftconv_geom *g, int mr);
/* seconds: NULL, or FS_FFT_STAGES doubles to receive the stage times.
 * Returns FS_OK; FS_EVALUE, writing nothing, for a geometry out of range or
 * spectra packed with another mr; FS_ENOMEM. */
int fs_fftconv2d(const fs_fftconv_geom *g, const float *x, const float *spectra, int mr,
                 const float *bias, const float *proj_w, const float *proj_b, float *y,
                 double *seconds);
/* The tests' oracle: the same layer directly, in double, from the weight
 * wt (f, c, kh, kw) (g's FFT shape, mults, group and chunk unused). */
int fs_fftconv2d_ref(const fs_fftconv_geom *g, const float *x, const float *wt,
                     const float *bias, const float *proj_w, const float *proj_b, float *y);
/* The packed spectra of wt by the plain DFT in double (small shapes). */
void fs_fftconv_spectra_ref(const float *wt, fs_idx f, fs_idx c, fs_idx kh, fs_idx kw,
                            fs_idx th, fs_idx tw, int mr, float *out);

#ifdef __cplusplus
}
#endif
#endif /* FASTSEG_KERNELS_H */
