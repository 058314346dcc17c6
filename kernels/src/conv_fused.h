/*
 * conv_fused.h -- convolution forward/backward as GEMM loops that read the
 * image directly (no column matrix in memory). conv.c's entry points use it
 * for every forward but a plain 1x1 one (a weight fs_conv_fused_fits finds
 * too big to pack per thread is packed once for the team), and for the
 * backward when fs_conv_fused_fits says the packed weight is small enough; the
 * arguments are those of fs_conv2d_forward/backward, already checked there
 * (n, f, output size and c*k*k all > 0). Not part of the public contract
 * (but for kernels.h's fs_conv2d_packed_layout / pack_weight /
 * forward_packed, defined in conv_fused.c itself: they have no other route).
 */
#ifndef FASTSEG_CONV_FUSED_H
#define FASTSEG_CONV_FUSED_H

#include "fastseg/kernels.h"

#include "conv_batch.h" /* the bias helpers every conv path uses */

int fs_conv_fused_fits(fs_idx c, fs_idx f, fs_idx k);

int fs_conv_fused_forward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                          const float *wt, fs_idx f, fs_idx k, const float *bias,
                          fs_idx stride, fs_idx pad, float *y);

/* dx, dw and db may each be NULL (not wanted). */
int fs_conv_fused_backward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                           const float *wt, fs_idx f, fs_idx k, fs_idx stride, fs_idx pad,
                           const float *dy, float *dx, float *dw, float *db);

#endif /* FASTSEG_CONV_FUSED_H */
