/* Fully connected layer (kernels.h): every product is one fs_sgemm call with
 * the transposes expressed through trans_a/trans_b, so no transposed copy of
 * w, x or dy is ever made. */
#include "fastseg/kernels.h"

#include <string.h>

static void zero(float *p, fs_idx count)
{
    if (p && count > 0) memset(p, 0, (size_t)count * sizeof(float));
}

/* Leading dimensions must be >= 1 even for empty matrices. */
static fs_idx ld(fs_idx v) { return v > 0 ? v : 1; }

int fs_linear_forward(const float *x, fs_idx n, fs_idx in,
                      const float *w, fs_idx out, const float *b, float *y)
{
    if (n <= 0 || out <= 0) return FS_OK;
    if (in <= 0) {
        zero(y, n * out);
    } else {
        /* y (n x out) = x (n x in) . w^T, w stored (out x in) */
        int st = fs_sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
        if (st != FS_OK) return st;
    }
    if (b) {
        for (fs_idx i = 0; i < n; i++) {
            float *row = y + i * out;
            for (fs_idx j = 0; j < out; j++) row[j] += b[j];
        }
    }
    return FS_OK;
}

int fs_linear_backward(const float *x, fs_idx n, fs_idx in,
                       const float *w, fs_idx out, const float *dy,
                       float *dx, float *dw, float *db)
{
    int st;
    if (dx && n > 0 && in > 0) {
        if (out <= 0) {
            zero(dx, n * in);
        } else {
            /* dx (n x in) = dy (n x out) . w (out x in) */
            st = fs_sgemm(0, 0, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
            if (st != FS_OK) return st;
        }
    }
    if (dw && out > 0 && in > 0) {
        if (n <= 0) {
            zero(dw, out * in);
        } else {
            /* dw (out x in) = dy^T (out x n) . x (n x in) */
            st = fs_sgemm(1, 0, out, in, n, 1.0f, dy, ld(out), x, in, 0.0f, dw, in);
            if (st != FS_OK) return st;
        }
    }
    if (db && out > 0) {
        /* dy is swept row by row (contiguous reads) into double column
         * accumulators, a block of columns at a time so they stay in L1. */
        enum { CH = 256 };
        double acc[CH];
        for (fs_idx j0 = 0; j0 < out; j0 += CH) {
            const fs_idx cw = out - j0 < CH ? out - j0 : CH;
            for (fs_idx j = 0; j < cw; j++) acc[j] = 0.0;
            for (fs_idx i = 0; i < n; i++) {
                const float *row = dy + i * out + j0;
                for (fs_idx j = 0; j < cw; j++) acc[j] += row[j];
            }
            for (fs_idx j = 0; j < cw; j++) db[j0 + j] = (float)acc[j];
        }
    }
    return FS_OK;
}
