/*
 * pointwise.h -- the element-wise kernels (activations, optimizer updates,
 * max pooling) on one chunk, one table per ISA: written once in
 * activations_impl.h, optim_impl.h and pool_impl.h, compiled once per ISA by
 * pointwise_generic.c, pointwise_avx2.c and pointwise_avx512.c -- each at
 * the width where it measured fastest. The public
 * entry points (activations.c, optim_update.c, pool.c) split the work
 * among threads (parallel.h) and call the chunk functions of the table in
 * use (isa_dispatch.c: the same ISA as the GEMM's). Not part of the public
 * contract.
 */
#ifndef FASTSEG_POINTWISE_H
#define FASTSEG_POINTWISE_H

#include <stdint.h>

#include "fastseg/kernels.h"

/* out[i] = f(a[i], b[i]) for i < n; one-input functions ignore b. */
typedef void (*fs_pw_fn)(const float *a, const float *b, float *out, fs_idx n);

typedef struct {
    fs_pw_fn relu, relu_bwd, tanh, tanh_bwd, sigmoid, sigmoid_bwd;
    /* kernels.h's fs_sgd_update etc. on elements [0, n) */
    void (*sgd)(float *p, const float *g, float *buf, fs_idx n, float lr, float momentum,
                float dampening, float weight_decay, int nesterov, int first_step);
    void (*adam)(float *p, const float *g, float *m, float *v, fs_idx n, float beta1,
                 float beta2, float eps, float weight_decay, float step_size, float bc2_sqrt);
    void (*rprop)(float *p, const float *g, float *prev, float *step_size, fs_idx n,
                  float eta_minus, float eta_plus, float step_min, float step_max);
    /* fs_maxpool2d_forward on `planes` (h, w) planes; oh, ow already known */
    void (*maxpool)(const float *x, fs_idx planes, fs_idx h, fs_idx w, fs_idx k,
                    fs_idx stride, fs_idx oh, fs_idx ow, float *y, int64_t *idx);
} fs_pointwise_table;

const fs_pointwise_table *fs_pointwise_kernels(void);

#define FS_DECLARE_POINTWISE(isa)                                                       \
    void fs_pw_relu_##isa(const float *, const float *, float *, fs_idx);             \
    void fs_pw_relu_bwd_##isa(const float *, const float *, float *, fs_idx);         \
    void fs_pw_tanh_##isa(const float *, const float *, float *, fs_idx);             \
    void fs_pw_tanh_bwd_##isa(const float *, const float *, float *, fs_idx);         \
    void fs_pw_sigmoid_##isa(const float *, const float *, float *, fs_idx);          \
    void fs_pw_sigmoid_bwd_##isa(const float *, const float *, float *, fs_idx);      \
    void fs_pw_sgd_##isa(float *, const float *, float *, fs_idx, float, float, float, \
                         float, int, int);                                            \
    void fs_pw_adam_##isa(float *, const float *, float *, float *, fs_idx, float,    \
                          float, float, float, float, float);                         \
    void fs_pw_rprop_##isa(float *, const float *, float *, float *, fs_idx, float,   \
                           float, float, float);
FS_DECLARE_POINTWISE(generic)
FS_DECLARE_POINTWISE(avx2)
FS_DECLARE_POINTWISE(avx512)
/* Max pooling: the portable build only (pointwise_generic.c says why). */
void fs_pw_maxpool_generic(const float *, fs_idx, fs_idx, fs_idx, fs_idx, fs_idx, fs_idx,
                           fs_idx, float *, int64_t *);

#endif /* FASTSEG_POINTWISE_H */
