/* im2col / col2im (kernels.h): the lowering that turns a convolution into
 * one GEMM, and its exact adjoint. The per-row walks live in im2col_row.h,
 * shared with the fused convolution (conv_fused.c). */
#include "fastseg/kernels.h"

#include "im2col_row.h"
#include "parallel.h"

static int geometry(fs_idx h, fs_idx w, fs_idx k, fs_idx stride, fs_idx pad, fs_colgeom *g)
{
    g->h = h;
    g->w = w;
    g->k = k;
    g->stride = stride;
    g->pad = pad;
    g->oh = fs_out_extent(h, k, stride, pad);
    g->ow = fs_out_extent(w, k, stride, pad);
    return g->oh > 0 && g->ow > 0;
}

void fs_im2col(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
               fs_idx k, fs_idx stride, fs_idx pad,
               float *cols, fs_idx ldcols)
{
    if (n <= 0 || c <= 0 || k <= 0 || stride <= 0 || pad < 0) return;
    fs_colgeom g;
    if (!geometry(h, w, k, stride, pad, &g)) return;
    const fs_idx rows = c * k * k;
    const fs_idx plane = h * w, ohw = g.oh * g.ow;
    FS_NT((double)rows * n * ohw, FS_PAR_MIN_READS)
    FS_PAR_FOR
    for (fs_idx r = 0; r < rows; r++) {
        const fs_tap t = fs_tap_of(&g, r);
        for (fs_idx ni = 0; ni < n; ni++)
            fs_col_row_gather(&g, &t, x + (ni * c + t.ci) * plane,
                              cols + r * ldcols + ni * ohw);
    }
}

void fs_col2im(const float *cols, fs_idx ldcols,
               fs_idx n, fs_idx c, fs_idx h, fs_idx w,
               fs_idx k, fs_idx stride, fs_idx pad, float *dx)
{
    if (n <= 0 || c <= 0 || k <= 0 || stride <= 0 || pad < 0) return;
    fs_colgeom g;
    if (!geometry(h, w, k, stride, pad, &g)) return;
    const fs_idx plane = h * w, ohw = g.oh * g.ow, kk = k * k;
    const fs_idx planes = n * c;
    /* Each (image, channel) plane of dx is written by exactly one thread. */
    FS_NT((double)planes * kk * ohw, FS_PAR_MIN_READS)
    FS_PAR_FOR
    for (fs_idx pl = 0; pl < planes; pl++) {
        const fs_idx ni = pl / c, ci = pl % c;
        for (fs_idx r = ci * kk; r < (ci + 1) * kk; r++) {
            const fs_tap t = fs_tap_of(&g, r);
            fs_col_row_add(&g, &t, dx + pl * plane, cols + r * ldcols + ni * ohw);
        }
    }
}
