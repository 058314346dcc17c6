# The C contract (kernels/include/fastseg/kernels.h) as Cython sees it.
# Every wrapper module cimports from here; keep it in step with the header.
from libc.stdint cimport int64_t

cdef extern from "fastseg/kernels.h" nogil:
    ctypedef int64_t fs_idx

    enum:
        FS_OK
        FS_ENOMEM
        FS_EINDEX
        FS_EVALUE

    void fs_set_num_threads(int n)
    int fs_get_num_threads()
    int fs_openmp_enabled()
    const char *fs_isa_name()
    int fs_select_isa(const char *name)
    int fs_isa_supported(const char *name)
    const char *fs_isa_why_not(const char *name)
    const char *fs_isa_env_error()
    ctypedef struct fs_blocking:
        int mr, nr
        fs_idx mc, kc, nc
    int fs_isa_blocking(const char *name, fs_blocking *out)
    int fs_isa_blocking_fitted(const char *name, fs_blocking *out)
    int fs_set_blocking(const char *name, fs_idx mc, fs_idx kc, fs_idx nc)
    int fs_isa_deep_kc(const char *name, fs_idx *fitted, fs_idx *in_use)
    int fs_set_deep_kc(const char *name, fs_idx kc)
    void fs_cache_info(int64_t *l1d, int64_t *l2, int64_t *l3)
    enum:
        FS_SPLIT_AUTO
        FS_SPLIT_N
        FS_SPLIT_M
        FS_SPLIT_BLOCKS_MAX
    int fs_set_gemm_split(int mode, int blocks)
    void fs_get_gemm_split(int *mode, int *blocks)

    int fs_sgemm(int trans_a, int trans_b, fs_idx m, fs_idx n, fs_idx k,
                 float alpha, const float *a, fs_idx lda,
                 const float *b, fs_idx ldb,
                 float beta, float *c, fs_idx ldc)
    void fs_sgemm_ref(int trans_a, int trans_b, fs_idx m, fs_idx n, fs_idx k,
                      float alpha, const float *a, fs_idx lda,
                      const float *b, fs_idx ldb,
                      float beta, float *c, fs_idx ldc)

    void fs_im2col(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                   fs_idx k, fs_idx stride, fs_idx pad,
                   float *cols, fs_idx ldcols)
    void fs_col2im(const float *cols, fs_idx ldcols,
                   fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                   fs_idx k, fs_idx stride, fs_idx pad, float *dx)

    int fs_conv2d_forward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                          const float *wt, fs_idx f, fs_idx k, const float *bias,
                          fs_idx stride, fs_idx pad, float *y)
    int fs_conv2d_packed_layout(fs_idx f, fs_idx c, fs_idx k, fs_idx *floats, fs_idx *mr,
                                fs_idx *kc_block, int *team)
    int fs_conv2d_pack_weight(const float *wt, fs_idx f, fs_idx c, fs_idx k, fs_idx mr,
                              fs_idx kc_block, float *packed)
    int fs_conv2d_forward_packed(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                                 const float *packed, fs_idx mr, fs_idx kc_block, fs_idx f,
                                 fs_idx k, const float *bias, int act, fs_idx stride,
                                 fs_idx pad, float *y)
    int fs_conv2d_backward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                           const float *wt, fs_idx f, fs_idx k,
                           fs_idx stride, fs_idx pad, const float *dy,
                           float *dx, float *dw, float *db)

    int fs_linear_forward(const float *x, fs_idx n, fs_idx inp,
                          const float *w, fs_idx out, const float *b, float *y)
    int fs_linear_backward(const float *x, fs_idx n, fs_idx inp,
                           const float *w, fs_idx out, const float *dy,
                           float *dx, float *dw, float *db)

    void fs_maxpool2d_forward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                              fs_idx k, fs_idx stride, float *y, int64_t *idx)
    int fs_maxpool2d_backward(const float *dy, const int64_t *idx,
                              fs_idx n, fs_idx c, fs_idx oh, fs_idx ow,
                              fs_idx h, fs_idx w, float *dx)

    void fs_relu_forward(const float *x, float *y, fs_idx count)
    void fs_relu_backward(const float *x, const float *dy, float *dx, fs_idx count)
    void fs_tanh_forward(const float *x, float *y, fs_idx count)
    void fs_tanh_backward(const float *x, const float *dy, float *dx, fs_idx count)
    void fs_sigmoid_forward(const float *x, float *y, fs_idx count)
    void fs_sigmoid_backward(const float *x, const float *dy, float *dx, fs_idx count)
    void fs_xsin_forward(const float *x, float *y, fs_idx count)
    void fs_xsin_backward(const float *x, const float *dy, float *dx, fs_idx count)

    int fs_softmax_xent(const float *logits, fs_idx n, fs_idx k,
                        const int64_t *labels, const float *class_w,
                        float *loss, float *dlogits)

    void fs_sgd_update(float *p, const float *g, float *buf, fs_idx count,
                       float lr, float momentum, float dampening,
                       float weight_decay, int nesterov, int first_step)
    void fs_adam_update(float *p, const float *g, float *m, float *v, fs_idx count,
                        float lr, float beta1, float beta2, float eps,
                        float weight_decay, fs_idx step)
    void fs_rprop_update(float *p, const float *g, float *prev, float *step_size,
                         fs_idx count, float eta_minus, float eta_plus,
                         float step_min, float step_max)


# ---- 3-D convolution and pooling (conv3d.c, pool3d.c) -----------------------
cdef extern from "fastseg/kernels.h" nogil:
    ctypedef struct fs_conv3d_geom:
        fs_idx n, c, d, h, w, f
        fs_idx k[3]
        fs_idx stride[3]
        fs_idx pad[3]
    int fs_conv3d_forward(const fs_conv3d_geom *g, const float *x, const float *wt,
                          const float *bias, float *y)
    int fs_conv3d_backward(const fs_conv3d_geom *g, const float *x, const float *wt,
                           const float *dy, float *dx, float *dw, float *db)

    int fs_maxpool3d_forward(const float *x, fs_idx n, fs_idx c, const fs_idx *size,
                             const fs_idx *k, const fs_idx *stride, float *y, int64_t *idx)
    int fs_maxpool3d_backward(const float *dy, const int64_t *idx, fs_idx n, fs_idx c,
                              fs_idx out_count, fs_idx in_count, float *dx)

# ---- dense inference: overlap-save FFT convolution (fftconv.c) ---------------
cdef extern from "fastseg/kernels.h" nogil:
    enum:
        FS_ACT_NONE
        FS_ACT_RELU
        FS_ACT_TANH
        FS_ACT_SIGMOID
        FS_FFT_STAGES
    ctypedef struct fs_fftconv_geom:
        fs_idx c, h, w
        fs_idx f, kh, kw
        fs_idx th, tw
        fs_idx p
        int act
        int mults
        fs_idx group
        fs_idx chunk
    int fs_fftconv_panel_rows()
    int64_t fs_fftconv_workspace_floats(const fs_fftconv_geom *g, int mr)
    int64_t fs_fftconv_shared_floats(const fs_fftconv_geom *g, int mr)
    int fs_fftconv2d(const fs_fftconv_geom *g, const float *x, const float *spectra, int mr,
                     const float *bias, const float *proj_w, const float *proj_b, float *y,
                     double *seconds)
    int fs_fftconv2d_ref(const fs_fftconv_geom *g, const float *x, const float *wt,
                         const float *bias, const float *proj_w, const float *proj_b, float *y)
    void fs_fftconv_spectra_ref(const float *wt, fs_idx f, fs_idx c, fs_idx kh, fs_idx kw,
                                fs_idx th, fs_idx tw, int mr, float *out)
