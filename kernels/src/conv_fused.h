/*
 * conv_fused.h -- convolution forward/backward as GEMM loops that read the
 * image directly (no column matrix in memory). conv.c's entry points use it
 * when fs_conv_fused_fits says the packed weight is small enough; the
 * arguments are those of fs_conv2d_forward/backward, already checked there
 * (n, f, output size and c*k*k all > 0). Not part of the public contract.
 */
#ifndef FASTSEG_CONV_FUSED_H
#define FASTSEG_CONV_FUSED_H

#include "fastseg/kernels.h"

int fs_conv_fused_fits(fs_idx c, fs_idx f, fs_idx k);

/* y_i[fi][j0:j1] += bias[fi] for the f rows (ohw wide) of one image's output:
 * both conv paths call it per image, while the rows are still in cache. */
static inline void fs_conv_add_bias(float *yi, fs_idx f, fs_idx ohw, fs_idx j0, fs_idx j1,
                                    const float *bias)
{
    for (fs_idx fi = 0; fi < f; fi++) {
        float *row = yi + fi * ohw;
        const float bv = bias[fi];
        for (fs_idx j = j0; j < j1; j++) row[j] += bv;
    }
}

/* The sum of row[0:len] (a bias gradient's share of one image): 16
 * interleaved partial sums -- independent lanes, which the compiler
 * vectorises without reassociating anything -- added pairwise at the end.
 * A single running float sum would stay scalar (no -ffast-math). */
static inline float fs_row_sum(const float *row, fs_idx len)
{
    float s[16] = {0.0f};
    fs_idx j = 0;
    for (; j + 16 <= len; j += 16)
        for (int l = 0; l < 16; l++) s[l] += row[j + l];
    float tail = 0.0f;
    for (; j < len; j++) tail += row[j];
    for (int half = 8; half > 0; half /= 2)
        for (int l = 0; l < half; l++) s[l] += s[l + half];
    return s[0] + tail;
}

int fs_conv_fused_forward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                          const float *wt, fs_idx f, fs_idx k, const float *bias,
                          fs_idx stride, fs_idx pad, float *y);

/* dx, dw and db may each be NULL (not wanted). */
int fs_conv_fused_backward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                           const float *wt, fs_idx f, fs_idx k, fs_idx stride, fs_idx pad,
                           const float *dy, float *dx, float *dw, float *db);

#endif /* FASTSEG_CONV_FUSED_H */
