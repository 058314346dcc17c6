/* conv2d forward/backward (kernels.h).
 *
 * The forward of every kernel larger than 1x1 (or strided, or padded) goes to
 * conv_fused.c: GEMM loops that pack straight from the image, no column
 * matrix, the weight packed once per thread -- or, a huge one such as a fully
 * connected layer run as a convolution, once for the whole team, or once by
 * the caller for many calls (fs_conv2d_pack_weight, there). What stays
 * here: a 1x1 kernel without stride or padding (the image is its own column
 * matrix, one fs_sgemm per image), and the backward of a huge weight, by
 * im2col + fs_sgemm + col2im, one image at a time.
 *
 * Why per image: y[i] is already the (f x oh*ow) row-major result of
 * W (f x c*k*k) . cols_i (c*k*k x oh*ow), so the GEMM writes straight into y
 * with no scatter pass, and one image's columns stay in cache between im2col
 * and the GEMM that reads them. With several threads and enough images,
 * threads take whole images (each with its own column slice; the GEMMs inside
 * run single-threaded because OpenMP nesting is off by default); with one
 * image, or columns too large to give each thread a slice within the bound,
 * images run one after another and the threads work inside im2col and the
 * GEMM instead. Either way the column memory in use stays under
 * FS_CONV_COLS_MAX bytes (at least one image).
 */
#include "fastseg/kernels.h"

#include <stdlib.h>
#include <string.h>

#include "conv_fused.h"
#include "im2col_row.h"
#include "parallel.h"
#include "thread_workspace.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define FS_CONV_COLS_MAX ((size_t)32 << 20)

/* ---- forward ------------------------------------------------------------ */
/* One image through a 1x1 kernel: y_i = W . x_i (+ bias). */
static int forward_image_1x1(const float *xi, fs_idx c, const float *wt, fs_idx f,
                             const float *bias, fs_idx ohw, float *yi)
{
    int st = fs_sgemm(0, 0, f, ohw, c, 1.0f, wt, c, xi, ohw, 0.0f, yi, ohw);
    if (st != FS_OK) return st;
    if (bias) fs_conv_add_bias(yi, f, ohw, 0, ohw, bias);
    return FS_OK;
}

int fs_conv2d_forward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                      const float *wt, fs_idx f, fs_idx k, const float *bias,
                      fs_idx stride, fs_idx pad, float *y)
{
    if (k <= 0 || stride <= 0 || pad < 0) return FS_EVALUE;
    const fs_idx oh = fs_out_extent(h, k, stride, pad);
    const fs_idx ow = fs_out_extent(w, k, stride, pad);
    const fs_idx ohw = oh * ow;
    const fs_idx ckk = c * k * k;
    if (n <= 0 || f <= 0 || ohw == 0) return FS_OK;
    if (ckk == 0) { /* no input channels: the output is the bias alone */
        for (fs_idx i = 0; i < n * f; i++) {
            const float bv = bias ? bias[i % f] : 0.0f;
            for (fs_idx j = 0; j < ohw; j++) y[i * ohw + j] = bv;
        }
        return FS_OK;
    }
    if (!(k == 1 && stride == 1 && pad == 0))
        return fs_conv_fused_forward(x, n, c, h, w, wt, f, k, bias, stride, pad, y);
    /* A 1x1 kernel without stride or padding: the image is its own column
     * matrix (c x h*w). Threads take whole images when there are enough. */
    const int nt = fs_plan_image_scratch(n, 0, FS_CONV_COLS_MAX);
    const fs_idx xs = c * h * w, ys = f * ohw;
    int status = FS_OK;

    if (nt == 1) {
        for (fs_idx i = 0; i < n && status == FS_OK; i++)
            status = forward_image_1x1(x + i * xs, c, wt, f, bias, ohw, y + i * ys);
    } else {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
        for (fs_idx i = 0; i < n; i++) {
            int st;
            /* A one-thread team of our own: any orphaned barrier inside
             * the GEMM must bind to it, never to the image team. */
#pragma omp parallel num_threads(1)
            st = forward_image_1x1(x + i * xs, c, wt, f, bias, ohw, y + i * ys);
            if (st != FS_OK) {
#pragma omp atomic write
                status = st;
            }
        }
#endif
    }
    return status;
}

/* ---- backward ----------------------------------------------------------- */
/* One image's share of dW (added into dwacc, or written when first) and its
 * dX (overwritten). col is the image's column scratch (unused when direct). */
static int backward_image(const float *xi, fs_idx c, fs_idx h, fs_idx w,
                          const float *wt, fs_idx f, fs_idx k,
                          fs_idx stride, fs_idx pad, fs_idx ohw, int direct,
                          const float *dyi, float *col, float *dxi,
                          float *dwacc, int first)
{
    const fs_idx ckk = c * k * k;
    int st;
    if (dwacc) {
        const float *b = xi;
        if (!direct) {
            fs_im2col(xi, 1, c, h, w, k, stride, pad, col, ohw);
            b = col;
        }
        /* dW (f x ckk) += dY_i (f x ohw) . cols_i^T */
        st = fs_sgemm(0, 1, f, ckk, ohw, 1.0f, dyi, ohw, b, ohw,
                      first ? 0.0f : 1.0f, dwacc, ckk);
        if (st != FS_OK) return st;
    }
    if (dxi) {
        if (direct) /* dX_i (c x hw) = W^T . dY_i */
            return fs_sgemm(1, 0, ckk, ohw, f, 1.0f, wt, ckk, dyi, ohw, 0.0f, dxi, ohw);
        st = fs_sgemm(1, 0, ckk, ohw, f, 1.0f, wt, ckk, dyi, ohw, 0.0f, col, ohw);
        if (st != FS_OK) return st;
        memset(dxi, 0, (size_t)(c * h * w) * sizeof(float));
        fs_col2im(col, ohw, 1, c, h, w, k, stride, pad, dxi);
    }
    return FS_OK;
}

int fs_conv2d_backward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                       const float *wt, fs_idx f, fs_idx k,
                       fs_idx stride, fs_idx pad, const float *dy,
                       float *dx, float *dw, float *db)
{
    if (k <= 0 || stride <= 0 || pad < 0) return FS_EVALUE;
    const fs_idx oh = fs_out_extent(h, k, stride, pad);
    const fs_idx ow = fs_out_extent(w, k, stride, pad);
    const fs_idx ohw = oh * ow;
    const fs_idx ckk = c * k * k;
    const fs_idx xs = c * h * w, ys = f * ohw;

    const int direct = k == 1 && stride == 1 && pad == 0;
    if (n > 0 && f > 0 && ohw > 0 && ckk > 0 && !direct && fs_conv_fused_fits(c, f, k))
        return fs_conv_fused_backward(x, n, c, h, w, wt, f, k, stride, pad, dy, dx, dw, db);

    if (db) fs_conv_bias_grad(dy, n, f, ohw, db);
    /* Nothing flows back: the outputs are zero. */
    if (n <= 0 || f <= 0 || ohw == 0 || ckk == 0) {
        if (dx && n > 0 && xs > 0) memset(dx, 0, (size_t)(n * xs) * sizeof(float));
        if (dw && f > 0 && ckk > 0) memset(dw, 0, (size_t)(f * ckk) * sizeof(float));
        return FS_OK;
    }
    if (!dx && !dw) return FS_OK;
    const size_t colsz = direct ? 0 : fs_ws_round16((size_t)ckk * (size_t)ohw);
    const size_t dwsz = dw ? fs_ws_round16((size_t)(f * ckk)) : 0;
    int nt = fs_plan_image_scratch(n, (colsz + dwsz) * sizeof(float), FS_CONV_COLS_MAX);
    /* Per-thread dW partials only pay off when each thread has real work. */
    size_t slice = colsz + (nt > 1 ? dwsz : 0);
    float *ws = NULL;
    if (slice) {
        ws = fs_ws_get(slice * (size_t)nt);
        if (!ws) return FS_ENOMEM;
    }
    int status = FS_OK;

    if (nt == 1) {
        for (fs_idx i = 0; i < n && status == FS_OK; i++)
            status = backward_image(x + i * xs, c, h, w, wt, f, k, stride, pad, ohw, direct,
                                    dy + i * ys, ws, dx ? dx + i * xs : NULL, dw, i == 0);
    } else {
        /* Zeroed here, not by each thread: the team may be smaller than nt. */
        if (dw)
            for (int t = 0; t < nt; t++)
                memset(ws + slice * (size_t)t + colsz, 0, (size_t)(f * ckk) * sizeof(float));
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
        {
            float *mine = ws ? ws + slice * (size_t)omp_get_thread_num() : NULL;
            float *col = colsz ? mine : NULL;
            float *dwp = dw && mine ? mine + colsz : NULL;
#pragma omp for schedule(static)
            for (fs_idx i = 0; i < n; i++) {
                int st;
#pragma omp parallel num_threads(1) /* see fs_conv2d_forward */
                st = backward_image(x + i * xs, c, h, w, wt, f, k, stride, pad, ohw,
                                    direct, dy + i * ys, col, dx ? dx + i * xs : NULL,
                                    dwp, 0);
                if (st != FS_OK) {
#pragma omp atomic write
                    status = st;
                }
            }
        }
#endif
        if (dw && status == FS_OK) {
            const fs_idx cnt = f * ckk;
            memcpy(dw, ws + colsz, (size_t)cnt * sizeof(float));
            for (int t = 1; t < nt; t++) {
                const float *part = ws + slice * (size_t)t + colsz;
                for (fs_idx j = 0; j < cnt; j++) dw[j] += part[j];
            }
        }
    }
    fs_ws_put(ws);
    return status;
}
