/* A batch of images through a convolution, on threads (conv_batch.h). */
#include "conv_batch.h"

#include <stdlib.h>
#include <string.h>

#include "gemm_internal.h"
#include "parallel.h"

int fs_conv_forward_threads(fs_idx n, fs_idx pixels, fs_idx nr, double fmas,
                            fs_conv_fwd_fn thread, const void *job)
{
    int by_image;
    const int nt = fs_plan_images(fmas, n, &by_image);
    int status = FS_OK;
    atomic_llong next = 0;
    FS_PARALLEL
    {
        int t, T;
        fs_team(&t, &T);
        const int image_mode = T > 1 && by_image;
        fs_conv_fwd_part part = {0, pixels, n, image_mode ? &next : NULL, 0};
        if (T > 1 && !image_mode) { /* an NR-aligned slice of every image */
            fs_split_range(CEIL_DIV(pixels, nr), t, T, &part.j0, &part.j1);
            part.j0 *= nr;
            part.j1 = MIN(part.j1 * nr, pixels);
        }
        if (part.j1 > part.j0) {
            const int st = thread(job, &part);
            if (st != FS_OK) fs_fail(&status, st);
        }
    }
    return status;
}

/* Floats of dW partials the backward may hold at once (64 MiB). */
#define FS_CONV_PARTIAL_FLOATS ((fs_idx)1 << 24)

/* How many runs of images the backward's image mode cuts n into: up to 4
 * per thread (a preempted thread's share is taken up by the others, as
 * fs_plan_blocks does for GEMM), as many as `dw_floats`-sized partials fit
 * the budget, at least one per thread, at most one per image. */
static fs_idx plan_runs(fs_idx n, int nt, fs_idx dw_floats)
{
    fs_idx runs = 4 * (fs_idx)nt;
    if (dw_floats > 0 && runs > FS_CONV_PARTIAL_FLOATS / dw_floats)
        runs = FS_CONV_PARTIAL_FLOATS / dw_floats;
    if (runs < nt) runs = nt;
    return runs < n ? runs : n;
}

/* dw = the sum of `runs` partials (count floats each, one after another),
 * in run order. */
static void sum_partials(const float *partials, fs_idx runs, fs_idx count, float *dw)
{
    memcpy(dw, partials, (size_t)count * sizeof(float));
    for (fs_idx r = 1; r < runs; r++) {
        const float *p = partials + r * count;
        for (fs_idx j = 0; j < count; j++) dw[j] += p[j];
    }
}

int fs_conv_backward_threads(const fs_conv_bwd_job *B, fs_conv_bwd_fn thread, const void *job)
{
    const fs_idx n = B->n, f = B->f, cols = B->c * B->taps;
    int by_image;
    const int nt = fs_plan_images(B->fmas, n, &by_image);
    const int runs_mode = nt > 1 && by_image;
    const fs_idx runs = runs_mode ? plan_runs(n, nt, B->dw ? f * cols : 0) : 0;
    int status = FS_OK;
    /* Image mode: each run's dW partial. */
    float *partials = NULL;
    if (B->dw && runs_mode) {
        partials = malloc((size_t)runs * (size_t)(f * cols) * sizeof(float));
        if (!partials) return FS_ENOMEM;
    }
    /* db: a row of sums per run (image mode) or per thread (its rows of every image). */
    const fs_idx db_rows = runs > nt ? runs : nt;
    double *dbacc = NULL;
    if (B->db) {
        dbacc = calloc((size_t)db_rows * (size_t)f, sizeof *dbacc);
        if (!dbacc) {
            free(partials);
            return FS_ENOMEM;
        }
    }
    atomic_llong next = 0;
    FS_PARALLEL
    {
        int t, T;
        fs_team(&t, &T);
        /* Runs even if the team came out smaller: the partials are there. */
        const int image_mode = runs_mode;
        fs_conv_bwd_part part;
        memset(&part, 0, sizeof part);
        fs_idx f0 = 0, f1 = f, run = 0;
        part.i1 = n;
        part.r1 = part.d1 = cols;
        part.dw = B->dw;
        if (!image_mode && T > 1) {
            fs_split_range(f, t, T, &f0, &f1);
            /* dX by input channels (each owns its dx planes), dW by whole NR panels. */
            fs_idx c0, c1, u0, u1;
            fs_split_range(B->c, t, T, &c0, &c1);
            part.r0 = c0 * B->taps;
            part.r1 = c1 * B->taps;
            fs_split_range(CEIL_DIV(cols, B->nr), t, T, &u0, &u1);
            part.d0 = MIN(u0 * B->nr, cols);
            part.d1 = MIN(u1 * B->nr, cols);
        }
        /* One part (slice mode, or one thread), or run after run (image mode). */
        for (;;) {
            fs_idx row = t;
            if (image_mode) {
                run = (fs_idx)atomic_fetch_add(&next, 1);
                if (run >= runs) break;
                fs_split_range(n, run, runs, &part.i0, &part.i1);
                if (partials) part.dw = partials + run * (f * cols);
                row = run;
            }
            part.want_dx = B->dx && part.r1 > part.r0 && part.i1 > part.i0;
            part.want_dw = B->dw && part.d1 > part.d0 && part.i1 > part.i0;
            if (dbacc)
                for (fs_idx ni = part.i0; ni < part.i1; ni++)
                    fs_conv_bias_rows(B->dy + ni * f * B->pixels, B->pixels, f0, f1,
                                      dbacc + row * f);
            if (part.want_dx || part.want_dw) {
                const int st = thread(job, &part);
                if (st != FS_OK) fs_fail(&status, st);
            }
            if (!image_mode) break;
        }
    }
    if (partials) {
        if (status == FS_OK) sum_partials(partials, runs, f * cols, B->dw);
        free(partials);
    }
    if (dbacc) {
        for (fs_idx fi = 0; fi < f; fi++) {
            double sum = 0.0;
            for (fs_idx r = 0; r < db_rows; r++) sum += dbacc[r * f + fi];
            B->db[fi] = (float)sum;
        }
        free(dbacc);
    }
    return status;
}

void fs_conv_bias_grad(const float *dy, fs_idx n, fs_idx f, fs_idx pixels, float *db)
{
    for (fs_idx fi = 0; fi < f; fi++) {
        double acc = 0.0;
        for (fs_idx ni = 0; ni < n && pixels > 0; ni++)
            acc += fs_row_sum(dy + (ni * f + fi) * pixels, pixels);
        db[fi] = (float)acc;
    }
}
