/* A batch of images through a convolution, on threads (conv_batch.h). */
#include "conv_batch.h"

#include <stdlib.h>
#include <string.h>

#include "gemm_internal.h"
#include "parallel.h"
#include "thread_workspace.h"

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

/* dw = the partials' sum, in thread order (threads without one skipped). */
static void sum_partials(float *const *partials, int nt, fs_idx count, float *dw)
{
    int first = 1;
    for (int t = 0; t < nt; t++) {
        if (!partials[t]) continue;
        if (first) memcpy(dw, partials[t], (size_t)count * sizeof(float));
        else
            for (fs_idx j = 0; j < count; j++) dw[j] += partials[t][j];
        first = 0;
    }
}

int fs_conv_backward_threads(const fs_conv_bwd_job *B, fs_conv_bwd_fn thread, const void *job)
{
    const fs_idx n = B->n, f = B->f, cols = B->c * B->taps;
    int by_image;
    const int nt = fs_plan_images(B->fmas, n, &by_image);
    int status = FS_OK;
    /* Image mode: each thread's dW partial, and the scratch holding it. */
    float **partials = NULL, **held = NULL;
    if (B->dw && nt > 1 && by_image) {
        partials = calloc(2 * (size_t)nt, sizeof *partials);
        if (!partials) return FS_ENOMEM;
        held = partials + nt;
    }
    /* db: each thread's sums (its images, or its rows of every image). */
    double *dbacc = NULL;
    if (B->db) {
        dbacc = calloc((size_t)nt * (size_t)f, sizeof *dbacc);
        if (!dbacc) {
            free(partials);
            return FS_ENOMEM;
        }
    }
    FS_PARALLEL
    {
        int t, T;
        fs_team(&t, &T);
        const int image_mode = T > 1 && by_image;
        fs_conv_bwd_part part;
        memset(&part, 0, sizeof part);
        fs_idx f0 = 0, f1 = f;
        part.i1 = n;
        part.r1 = part.d1 = cols;
        if (image_mode) {
            fs_split_range(n, t, T, &part.i0, &part.i1);
        } else if (T > 1) {
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
        const int has_images = part.i1 > part.i0;
        part.want_dx = B->dx && part.r1 > part.r0 && has_images;
        part.want_dw = B->dw && part.d1 > part.d0 && has_images;
        part.partial = part.want_dw && image_mode;
        part.dw = part.partial ? NULL : B->dw;
        if (dbacc)
            for (fs_idx ni = part.i0; ni < part.i1; ni++)
                fs_conv_bias_rows(B->dy + ni * f * B->pixels, B->pixels, f0, f1,
                                  dbacc + (size_t)t * f);
        if (part.want_dx || part.want_dw) {
            const int st = thread(job, &part);
            if (st != FS_OK) fs_fail(&status, st);
            else if (part.partial) partials[t] = part.dw;
            if (part.partial) held[t] = part.hold;
        }
    }
    if (partials) {
        if (status == FS_OK) sum_partials(partials, nt, f * cols, B->dw);
        for (int t = 0; t < nt; t++)
            if (held[t]) fs_ws_put(held[t]);
        free(partials);
    }
    if (dbacc) {
        for (fs_idx fi = 0; fi < f; fi++) {
            double sum = 0.0;
            for (int t = 0; t < nt; t++) sum += dbacc[(size_t)t * f + fi];
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
