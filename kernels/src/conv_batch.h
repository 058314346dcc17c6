/*
 * conv_batch.h -- a batch of images through a convolution, on threads: what
 * the 2-D (conv_fused.c) and 3-D (conv3d.c) implicit-GEMM convolutions share
 * around their GEMM loops, and the bias helpers of every conv path (conv.c
 * too). Not part of the public contract.
 *
 * The plan is parallel.h's fs_plan_images. With at least as many images as
 * threads, threads take whole images as they come free, so a thread the OS
 * preempts (the cores are shared) holds up only what it has taken: the
 * forward one image at a time (nothing to reduce); the backward a run of
 * images at a time, each run's dW and db going to a partial of its own that
 * is summed at the end in run order. The runs are cut from n, the team size
 * and the size of dW alone, never from timing, so results do not depend on
 * which thread took which run. With fewer images, every thread works on its
 * own slice of every image: output pixels (forward); input channels (dX), dW
 * columns and db rows (backward). Nothing but a counter is shared, so there
 * is no barrier.
 *
 * "Pixels" are output positions (voxels in 3-D) and "taps" the rows of the
 * column matrix: c * (kernel taps per channel) of them.
 */
#ifndef FASTSEG_CONV_BATCH_H
#define FASTSEG_CONV_BATCH_H

#include <stdatomic.h>

#include "fastseg/kernels.h"

/* ---- forward ------------------------------------------------------------ */

/* One thread's share of a forward pass. */
typedef struct {
    fs_idx j0, j1;      /* output pixels [j0, j1) of each image it takes */
    fs_idx n;           /* images in the batch */
    atomic_llong *next; /* whole images from this shared counter, or NULL: */
    fs_idx seq;         /* every image in order */
} fs_conv_fwd_part;

/* The next image of this thread's share; 0 once there is none. */
static inline int fs_conv_next_image(fs_conv_fwd_part *p, fs_idx *ni)
{
    *ni = p->next ? (fs_idx)atomic_fetch_add(p->next, 1) : p->seq++;
    return *ni < p->n;
}

/* A thread's forward work on its part (a slice with j1 > j0): takes its
 * scratch, packs what it packs once, runs every image fs_conv_next_image
 * gives it. Returns FS_OK or an error code. */
typedef int (*fs_conv_fwd_fn)(const void *job, fs_conv_fwd_part *part);

/* Runs `thread` on the team fs_plan_images chooses for `fmas` multiply-adds
 * over n images of `pixels` output pixels, slices NR-aligned (nr). Returns
 * FS_OK, or an error one of the threads returned. */
int fs_conv_forward_threads(fs_idx n, fs_idx pixels, fs_idx nr, double fmas,
                            fs_conv_fwd_fn thread, const void *job);

/* ---- backward ----------------------------------------------------------- */

typedef struct {
    fs_idx n, f, c;  /* images, filters, input channels */
    fs_idx taps;     /* kernel taps per input channel (dW and W^T: c*taps columns/rows) */
    fs_idx pixels;   /* output pixels per image: the length of a row of dY */
    fs_idx nr;       /* the micro-kernel's NR: dW column slices are whole panels */
    double fmas;     /* multiply-adds of the forward, for the plan */
    const float *dy;
    float *dx, *dw, *db; /* each may be NULL (not wanted) */
} fs_conv_bwd_job;

/* One thread's share of a backward pass (a run of images, or its slice of
 * all of them). */
typedef struct {
    fs_idx i0, i1;       /* images [i0, i1) */
    fs_idx r0, r1;       /* dX: taps [r0, r1), whole input channels, whose dx it writes */
    fs_idx d0, d1;       /* dW: columns [d0, d1) */
    int want_dx, want_dw;
    float *dw;           /* where dW goes (ld c*taps), overwritten by image i0 */
} fs_conv_bwd_part;

/* A thread's dX/dW work on its part (called only when it wants either). */
typedef int (*fs_conv_bwd_fn)(const void *job, fs_conv_bwd_part *part);

/* Splits the backward pass B (n, f, pixels, c*taps all > 0) among the team,
 * sums db itself, runs `thread` for dX and dW (once per part: a thread may
 * get several), then sums the dW partials. Returns FS_OK or an error code. */
int fs_conv_backward_threads(const fs_conv_bwd_job *B, fs_conv_bwd_fn thread, const void *job);

/* ---- bias ----------------------------------------------------------------- */

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

/* acc[fi] += the sum of row fi of one image's dY (f rows of `pixels`), for
 * fi in [f0, f1): float within a row (fs_row_sum), double across rows and
 * images. */
static inline void fs_conv_bias_rows(const float *dyi, fs_idx pixels, fs_idx f0, fs_idx f1,
                                     double *acc)
{
    for (fs_idx fi = f0; fi < f1; fi++) acc[fi] += fs_row_sum(dyi + fi * pixels, pixels);
}

/* db = the bias gradient of dy (n images of f rows of `pixels`), on the
 * calling thread, summed in the order fs_conv_backward_threads sums it on
 * one: zero when there is nothing to sum. */
void fs_conv_bias_grad(const float *dy, fs_idx n, fs_idx f, fs_idx pixels, float *db);

/* y_i[fi][j0:j1] += bias[fi] for the f rows (`pixels` wide) of one image's
 * output: the conv paths call it per image, while the rows are in cache. */
static inline void fs_conv_add_bias(float *yi, fs_idx f, fs_idx pixels, fs_idx j0, fs_idx j1,
                                    const float *bias)
{
    for (fs_idx fi = 0; fi < f; fi++) {
        float *row = yi + fi * pixels;
        const float bv = bias[fi];
        for (fs_idx j = j0; j < j1; j++) row[j] += bv;
    }
}

/* y = the bias alone (or zero without one) over n images of f rows: a
 * convolution with no input channels. */
static inline void fs_conv_bias_only(float *y, fs_idx n, fs_idx f, fs_idx pixels,
                                     const float *bias)
{
    for (fs_idx i = 0; i < n * f; i++) {
        const float bv = bias ? bias[i % f] : 0.0f;
        for (fs_idx j = 0; j < pixels; j++) y[i * pixels + j] = bv;
    }
}

#endif /* FASTSEG_CONV_BATCH_H */
