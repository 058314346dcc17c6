/* im2col/col2im, conv2d forward/backward and linear forward/backward against
 * direct loops (double accumulation), over the edge shapes that break index
 * arithmetic: n = 1, prime channel counts, k = 1/3/5, stride 1/2, padding
 * 0..2, h != w, k == h + 2p (1x1 output), input smaller than the kernel. */
#include "fastseg/kernels.h"
#include "harness.h"
#include "window.h"

#include <string.h>

typedef struct {
    fs_idx n, c, h, w, f, k, s, p;
} shape;

static const shape SHAPES[] = {
    {1, 1, 5, 5, 1, 1, 1, 0},   /* 1x1 kernel, direct path */
    {2, 3, 4, 6, 2, 1, 1, 0},   /* 1x1 direct, h != w */
    {2, 3, 5, 4, 2, 1, 2, 0},   /* 1x1 strided: through im2col */
    {1, 1, 5, 5, 1, 3, 1, 1},
    {2, 3, 7, 5, 4, 3, 2, 1},
    {3, 5, 6, 9, 7, 5, 1, 2},
    {1, 2, 3, 3, 3, 5, 1, 1},   /* k == h + 2p: one output pixel */
    {2, 7, 11, 13, 5, 3, 2, 2},
    {5, 2, 8, 7, 3, 2, 2, 0},   /* even kernel, odd width */
    {3, 3, 9, 9, 2, 3, 3, 2},   /* stride 3 */
    {1, 1, 3, 3, 1, 5, 1, 0},   /* input smaller than kernel: empty output */
    {2, 1, 3, 2, 2, 3, 2, 2},   /* padding wider than the input */
    {6, 20, 12, 12, 50, 5, 1, 0}, /* lai2d's second layer, smaller image */
    {7, 1, 10, 10, 20, 5, 1, 0},  /* lai2d's first layer, smaller image */
    {1, 20, 12, 12, 50, 5, 1, 0}, /* batch 1: threads split one image */
    {2, 20, 20, 20, 50, 5, 1, 0}, /* lai2d's second layer: whole-panel dX tiles */
    {2, 7, 15, 13, 11, 3, 1, 1},  /* 7 channels over 2 or 3 threads */
    {1, 5, 41, 37, 17, 3, 2, 1},  /* batch 1, stride 2, padding */
    {1, 2, 70, 66, 3, 3, 1, 1},   /* more pixels than one NC and one KC block */
    {2, 3, 6, 6, 151, 3, 1, 1},   /* more filters than one MC block (144 or 150) */
    {1, 2, 5, 5, 300, 3, 1, 1},   /* dX's K (filters) over one KC block */
    {2, 64, 5, 6, 700, 5, 1, 0},  /* weight too big to pack per thread: packed once for */
    {1, 64, 6, 20, 700, 5, 1, 0}, /* the team (forward; backward by im2col), B packed, */
    {2, 50, 9, 10, 130, 13, 2, 3}, /* read in place, strided and padded, many deep K blocks */
    /* Output rows 16 wide, as the gathered-B and scatter forms' 16-float
     * segments: an odd number of them (no whole 32-pixel panels), rows 32
     * wide (two segments of one row), fewer channels than the tile has
     * rows (taps of one channel share a tile), and batch 1 over threads. */
    {2, 3, 19, 20, 10, 5, 1, 0},
    {1, 4, 10, 36, 12, 5, 1, 0},
    {2, 3, 20, 20, 7, 5, 1, 0},
    {1, 20, 20, 20, 50, 5, 1, 0},
    {1, 7, 20, 20, 9, 5, 1, 0},
};
#define NSHAPES (sizeof SHAPES / sizeof SHAPES[0])

static float xat(const float *x, const shape *S, fs_idx ni, fs_idx ci, fs_idx iy, fs_idx ix)
{
    if (iy < 0 || iy >= S->h || ix < 0 || ix >= S->w) return 0.0f;
    return x[((ni * S->c + ci) * S->h + iy) * S->w + ix];
}

/* ---- im2col / col2im --------------------------------------------------- */
static void test_im2col(const shape *S, fs_rng *r)
{
    const fs_idx oh = fs_out_extent(S->h, S->k, S->s, S->p);
    const fs_idx ow = fs_out_extent(S->w, S->k, S->s, S->p);
    const fs_idx rows = S->c * S->k * S->k, ncol = S->n * oh * ow, ld = ncol + 3;
    const size_t xs = (size_t)(S->n * S->c * S->h * S->w);
    float *x = fs_test_alloc(xs);
    float *cols = fs_test_alloc((size_t)(rows * ld));
    float *want = fs_test_alloc((size_t)(rows * ld));
    fs_fill_uniform(r, x, xs, -1.0f, 1.0f);
    /* The padding columns past ncol must survive untouched. */
    fs_fill_const(cols, (size_t)(rows * ld), 7.0f);
    fs_fill_const(want, (size_t)(rows * ld), 7.0f);
    for (fs_idx ci = 0; ci < S->c; ci++)
        for (fs_idx ki = 0; ki < S->k; ki++)
            for (fs_idx kj = 0; kj < S->k; kj++)
                for (fs_idx ni = 0; ni < S->n; ni++)
                    for (fs_idx oi = 0; oi < oh; oi++)
                        for (fs_idx oj = 0; oj < ow; oj++)
                            want[((ci * S->k + ki) * S->k + kj) * ld + (ni * oh + oi) * ow + oj] =
                                xat(x, S, ni, ci, oi * S->s + ki - S->p, oj * S->s + kj - S->p);
    fs_im2col(x, S->n, S->c, S->h, S->w, S->k, S->s, S->p, cols, ld);
    fs_assert_close("im2col", cols, want, (size_t)(rows * ld), 0.0, 0.0);

    /* col2im is the adjoint: <im2col(x), c> == <x, col2im(c)>. */
    float *cr = fs_test_alloc((size_t)(rows * ld));
    float *dx = fs_test_alloc(xs);
    fs_fill_uniform(r, cr, (size_t)(rows * ld), -1.0f, 1.0f);
    fs_fill_const(dx, xs, 0.0f);
    fs_col2im(cr, ld, S->n, S->c, S->h, S->w, S->k, S->s, S->p, dx);
    double lhs = 0.0, rhs = 0.0, mag = 0.0;
    for (fs_idx i = 0; i < rows; i++)
        for (fs_idx j = 0; j < ncol; j++) {
            lhs += (double)cols[i * ld + j] * cr[i * ld + j];
            mag += fabs((double)cols[i * ld + j] * cr[i * ld + j]);
        }
    for (size_t i = 0; i < xs; i++) rhs += (double)x[i] * dx[i];
    FS_CHECK(fabs(lhs - rhs) <= 1e-5 * (mag + 1.0),
             "adjoint n%lld c%lld h%lld w%lld k%lld s%lld p%lld: %.9g vs %.9g",
             (long long)S->n, (long long)S->c, (long long)S->h, (long long)S->w,
             (long long)S->k, (long long)S->s, (long long)S->p, lhs, rhs);

    /* col2im adds: a second call doubles the result. */
    float *dx2 = fs_test_alloc(xs);
    memcpy(dx2, dx, xs * sizeof(float));
    fs_col2im(cr, ld, S->n, S->c, S->h, S->w, S->k, S->s, S->p, dx2);
    for (size_t i = 0; i < xs; i++) dx[i] *= 2.0f;
    fs_assert_close("col2im accumulates", dx2, dx, xs, 1e-6, 1e-6);
    free(x); free(cols); free(want); free(cr); free(dx); free(dx2);
}

/* ---- conv2d ------------------------------------------------------------- */
static void conv_ref(const shape *S, const float *x, const float *wt, const float *b,
                     const float *dy, float *y, float *dx, float *dw, float *db)
{
    const fs_idx oh = fs_out_extent(S->h, S->k, S->s, S->p);
    const fs_idx ow = fs_out_extent(S->w, S->k, S->s, S->p);
    const fs_idx K = S->k;
    const size_t xs = (size_t)(S->n * S->c * S->h * S->w);
    double *adx = calloc(xs ? xs : 1, sizeof(double));
    double *adw = calloc((size_t)(S->f * S->c * K * K) + 1, sizeof(double));
    FS_REQUIRE(adx && adw, "oom");
    for (fs_idx f = 0; f < S->f; f++) db[f] = 0.0f;
    for (fs_idx ni = 0; ni < S->n; ni++)
        for (fs_idx f = 0; f < S->f; f++)
            for (fs_idx oi = 0; oi < oh; oi++)
                for (fs_idx oj = 0; oj < ow; oj++) {
                    const fs_idx yo = ((ni * S->f + f) * oh + oi) * ow + oj;
                    double acc = b ? b[f] : 0.0;
                    const double g = dy[yo];
                    db[f] += (float)g;
                    for (fs_idx ci = 0; ci < S->c; ci++)
                        for (fs_idx ki = 0; ki < K; ki++)
                            for (fs_idx kj = 0; kj < K; kj++) {
                                const fs_idx iy = oi * S->s + ki - S->p, ix = oj * S->s + kj - S->p;
                                const fs_idx wi = ((f * S->c + ci) * K + ki) * K + kj;
                                const double xv = xat(x, S, ni, ci, iy, ix);
                                acc += (double)wt[wi] * xv;
                                adw[wi] += g * xv;
                                if (iy >= 0 && iy < S->h && ix >= 0 && ix < S->w)
                                    adx[((ni * S->c + ci) * S->h + iy) * S->w + ix] += g * wt[wi];
                            }
                    y[yo] = (float)acc;
                }
    for (size_t i = 0; i < xs; i++) dx[i] = (float)adx[i];
    for (fs_idx i = 0; i < S->f * S->c * K * K; i++) dw[i] = (float)adw[i];
    free(adx); free(adw);
}

/* The weight packed once (fs_conv2d_pack_weight): the forward reading it gives
 * fs_conv2d_forward's y bit for bit where that packs a huge weight for its
 * team with the same K block, the reference's otherwise -- also at an odd
 * K block of about an eighth of c*k*k (several blocks, the last short). */
static void test_conv_packed(const shape *S, const float *x, const float *wt,
                             const float *b, const float *y, const float *yr)
{
    const fs_idx ckk = S->c * S->k * S->k;
    const size_t ys = (size_t)(S->n * S->f * fs_out_extent(S->h, S->k, S->s, S->p) *
                               fs_out_extent(S->w, S->k, S->s, S->p));
    fs_idx floats, mr, kcb;
    int team;
    FS_CHECK_EQ_INT(fs_conv2d_packed_layout(S->f, S->c, S->k, &floats, &mr, &kcb, &team), FS_OK);
    FS_CHECK(floats >= S->f * ckk && kcb >= 1 && kcb <= ckk, "layout %lld floats, K block %lld",
             (long long)floats, (long long)kcb);
    float *ap = fs_test_alloc((size_t)floats), *yp = fs_test_alloc(ys + 1);
    /* an odd block, about an eighth of ckk: several blocks and a short last one */
    const fs_idx blocks[] = {kcb, ckk <= 7 ? ckk : 7 + 2 * (ckk / 16)};
    for (int i = 0; i < 2; i++) {
        FS_CHECK_EQ_INT(fs_conv2d_pack_weight(wt, S->f, S->c, S->k, mr, blocks[i], ap), FS_OK);
        fs_fill_nan(yp, ys + 1);
        FS_CHECK_EQ_INT(fs_conv2d_forward_packed(x, S->n, S->c, S->h, S->w, ap, mr, blocks[i],
                                                 S->f, S->k, b, FS_ACT_NONE, S->s, S->p, yp),
                        FS_OK);
        if (i == 0 && team)
            FS_CHECK(ys == 0 || memcmp(yp, y, ys * sizeof(float)) == 0,
                     "packed once: not fs_conv2d_forward's bits (f %lld, c %lld)",
                     (long long)S->f, (long long)S->c);
        fs_assert_close("conv forward, packed weight", yp, yr, ys, 1e-4,
                        1e-5 * (double)(ckk + 1));
        FS_CHECK(yp[ys] != yp[ys], "written past y"); /* still NaN */
    }
    /* with an activation on each finished tile: the activation kernel's bits on y
     * (once per shape: the call with a bias) */
    const int acts[] = {FS_ACT_RELU, FS_ACT_TANH, FS_ACT_SIGMOID};
    float *ya = fs_test_alloc(ys + 1);
    FS_CHECK_EQ_INT(fs_conv2d_pack_weight(wt, S->f, S->c, S->k, mr, kcb, ap), FS_OK);
    for (int a = 0; a < 3 && ys && b; a++) {
        FS_CHECK_EQ_INT(fs_conv2d_forward_packed(x, S->n, S->c, S->h, S->w, ap, mr, kcb, S->f,
                                                 S->k, b, acts[a], S->s, S->p, yp), FS_OK);
        FS_CHECK_EQ_INT(fs_conv2d_forward_packed(x, S->n, S->c, S->h, S->w, ap, mr, kcb, S->f,
                                                 S->k, b, FS_ACT_NONE, S->s, S->p, ya), FS_OK);
        if (acts[a] == FS_ACT_RELU) fs_relu_forward(ya, ya, (fs_idx)ys);
        if (acts[a] == FS_ACT_TANH) fs_tanh_forward(ya, ya, (fs_idx)ys);
        if (acts[a] == FS_ACT_SIGMOID) fs_sigmoid_forward(ya, ya, (fs_idx)ys);
        FS_CHECK(memcmp(yp, ya, ys * sizeof(float)) == 0, "activation %d on the tiles", acts[a]);
    }
    FS_CHECK_EQ_INT(fs_conv2d_forward_packed(x, S->n, S->c, S->h, S->w, ap, mr, kcb, S->f, S->k,
                                             b, 4, S->s, S->p, yp), FS_EVALUE);
    free(ya);
    /* a layout that is not the kernels' in use, or a K block outside [1, ckk] */
    FS_CHECK_EQ_INT(fs_conv2d_forward_packed(x, S->n, S->c, S->h, S->w, ap, mr + 1, kcb, S->f,
                                             S->k, b, FS_ACT_NONE, S->s, S->p, yp),
                    ys ? FS_EVALUE : FS_OK);
    FS_CHECK_EQ_INT(fs_conv2d_pack_weight(wt, S->f, S->c, S->k, mr, 0, ap), FS_EVALUE);
    FS_CHECK_EQ_INT(fs_conv2d_pack_weight(wt, S->f, S->c, S->k, mr, ckk + 1, ap), FS_EVALUE);
    FS_CHECK_EQ_INT(fs_conv2d_pack_weight(wt, S->f, S->c, S->k, mr + 1, kcb, ap), FS_EVALUE);
    free(ap); free(yp);
}

static void test_conv(const shape *S, fs_rng *r, int use_bias)
{
    const fs_idx oh = fs_out_extent(S->h, S->k, S->s, S->p);
    const fs_idx ow = fs_out_extent(S->w, S->k, S->s, S->p);
    const size_t xs = (size_t)(S->n * S->c * S->h * S->w);
    const size_t ws = (size_t)(S->f * S->c * S->k * S->k);
    const size_t ys = (size_t)(S->n * S->f * oh * ow);
    float *x = fs_test_alloc(xs), *wt = fs_test_alloc(ws), *b = fs_test_alloc((size_t)S->f);
    float *dy = fs_test_alloc(ys);
    float *y = fs_test_alloc(ys), *yr = fs_test_alloc(ys);
    float *dx = fs_test_alloc(xs), *dxr = fs_test_alloc(xs);
    float *dw = fs_test_alloc(ws), *dwr = fs_test_alloc(ws);
    float *db = fs_test_alloc((size_t)S->f), *dbr = fs_test_alloc((size_t)S->f);
    fs_fill_uniform(r, x, xs, -1.0f, 1.0f);
    fs_fill_uniform(r, wt, ws, -1.0f, 1.0f);
    fs_fill_uniform(r, b, (size_t)S->f, -1.0f, 1.0f);
    fs_fill_uniform(r, dy, ys, -1.0f, 1.0f);
    conv_ref(S, x, wt, use_bias ? b : NULL, dy, yr, dxr, dwr, dbr);

    /* NaN-filled outputs: the kernel must overwrite, never read them. */
    fs_fill_nan(y, ys); fs_fill_nan(dx, xs); fs_fill_nan(dw, ws); fs_fill_nan(db, (size_t)S->f);
    FS_CHECK_EQ_INT(fs_conv2d_forward(x, S->n, S->c, S->h, S->w, wt, S->f, S->k,
                                      use_bias ? b : NULL, S->s, S->p, y), FS_OK);
    const double tol = 1e-5 * (double)(S->c * S->k * S->k + 1);
    fs_assert_close("conv forward", y, yr, ys, 1e-4, tol);
    test_conv_packed(S, x, wt, use_bias ? b : NULL, y, yr);
    FS_CHECK_EQ_INT(fs_conv2d_backward(x, S->n, S->c, S->h, S->w, wt, S->f, S->k, S->s, S->p,
                                       dy, dx, dw, db), FS_OK);
    const double tolb = 1e-5 * (double)(S->n * oh * ow + S->f * S->k * S->k + 1);
    fs_assert_close("conv backward dx", dx, dxr, xs, 1e-4, tolb);
    fs_assert_close("conv backward dw", dw, dwr, ws, 1e-4, tolb);
    fs_assert_close("conv backward db", db, dbr, (size_t)S->f, 1e-4, tolb);

    /* Each output alone (the others NULL) gives the same answer. */
    fs_fill_nan(dx, xs);
    FS_CHECK_EQ_INT(fs_conv2d_backward(x, S->n, S->c, S->h, S->w, wt, S->f, S->k, S->s, S->p,
                                       dy, dx, NULL, NULL), FS_OK);
    fs_assert_close("conv backward dx only", dx, dxr, xs, 1e-4, tolb);
    fs_fill_nan(dw, ws);
    FS_CHECK_EQ_INT(fs_conv2d_backward(x, S->n, S->c, S->h, S->w, wt, S->f, S->k, S->s, S->p,
                                       dy, NULL, dw, NULL), FS_OK);
    fs_assert_close("conv backward dw only", dw, dwr, ws, 1e-4, tolb);
    fs_fill_nan(db, (size_t)S->f);
    FS_CHECK_EQ_INT(fs_conv2d_backward(x, S->n, S->c, S->h, S->w, wt, S->f, S->k, S->s, S->p,
                                       dy, NULL, NULL, db), FS_OK);
    fs_assert_close("conv backward db only", db, dbr, (size_t)S->f, 1e-4, tolb);
    free(x); free(wt); free(b); free(dy); free(y); free(yr); free(dx); free(dxr);
    free(dw); free(dwr); free(db); free(dbr);
}

static void test_conv_bad_args(void)
{
    float x[4] = {0}, wt[1] = {1}, y[4];
    fs_idx floats, mr, kcb;
    int team;
    FS_CHECK_EQ_INT(fs_conv2d_packed_layout(0, 1, 1, &floats, &mr, &kcb, &team), FS_EVALUE);
    FS_CHECK_EQ_INT(fs_conv2d_packed_layout(1, 1, 0, &floats, &mr, &kcb, &team), FS_EVALUE);
    FS_CHECK_EQ_INT(fs_conv2d_forward_packed(x, 1, 1, 2, 2, wt, 1, 1, 1, 1, NULL, 0, 0, 0, y),
                    FS_EVALUE);
    FS_CHECK_EQ_INT(fs_conv2d_forward(x, 1, 1, 2, 2, wt, 1, 1, NULL, 0, 0, y), FS_EVALUE);
    FS_CHECK_EQ_INT(fs_conv2d_forward(x, 1, 1, 2, 2, wt, 1, 0, NULL, 1, 0, y), FS_EVALUE);
    FS_CHECK_EQ_INT(fs_conv2d_backward(x, 1, 1, 2, 2, wt, 1, 1, 1, -1, y, NULL, NULL, NULL),
                    FS_EVALUE);
}

/* ---- linear ------------------------------------------------------------- */
static void test_linear(fs_idx n, fs_idx in, fs_idx out, fs_rng *r)
{
    float *x = fs_test_alloc((size_t)(n * in)), *w = fs_test_alloc((size_t)(out * in));
    float *b = fs_test_alloc((size_t)out), *dy = fs_test_alloc((size_t)(n * out));
    float *y = fs_test_alloc((size_t)(n * out)), *yr = fs_test_alloc((size_t)(n * out));
    float *dx = fs_test_alloc((size_t)(n * in)), *dxr = fs_test_alloc((size_t)(n * in));
    float *dw = fs_test_alloc((size_t)(out * in)), *dwr = fs_test_alloc((size_t)(out * in));
    float *db = fs_test_alloc((size_t)out), *dbr = fs_test_alloc((size_t)out);
    fs_fill_uniform(r, x, (size_t)(n * in), -1, 1);
    fs_fill_uniform(r, w, (size_t)(out * in), -1, 1);
    fs_fill_uniform(r, b, (size_t)out, -1, 1);
    fs_fill_uniform(r, dy, (size_t)(n * out), -1, 1);
    for (fs_idx i = 0; i < n; i++)
        for (fs_idx o = 0; o < out; o++) {
            double acc = b[o];
            for (fs_idx j = 0; j < in; j++) acc += (double)x[i * in + j] * w[o * in + j];
            yr[i * out + o] = (float)acc;
        }
    for (fs_idx i = 0; i < n; i++)
        for (fs_idx j = 0; j < in; j++) {
            double acc = 0;
            for (fs_idx o = 0; o < out; o++) acc += (double)dy[i * out + o] * w[o * in + j];
            dxr[i * in + j] = (float)acc;
        }
    for (fs_idx o = 0; o < out; o++) {
        double accb = 0;
        for (fs_idx i = 0; i < n; i++) accb += dy[i * out + o];
        dbr[o] = (float)accb;
        for (fs_idx j = 0; j < in; j++) {
            double acc = 0;
            for (fs_idx i = 0; i < n; i++) acc += (double)dy[i * out + o] * x[i * in + j];
            dwr[o * in + j] = (float)acc;
        }
    }
    fs_fill_nan(y, (size_t)(n * out));
    FS_CHECK_EQ_INT(fs_linear_forward(x, n, in, w, out, b, y), FS_OK);
    fs_assert_close("linear forward", y, yr, (size_t)(n * out), 1e-4, 1e-5 * (in + 1));
    fs_fill_nan(dx, (size_t)(n * in)); fs_fill_nan(dw, (size_t)(out * in));
    fs_fill_nan(db, (size_t)out);
    FS_CHECK_EQ_INT(fs_linear_backward(x, n, in, w, out, dy, dx, dw, db), FS_OK);
    fs_assert_close("linear dx", dx, dxr, (size_t)(n * in), 1e-4, 1e-5 * (out + 1));
    fs_assert_close("linear dw", dw, dwr, (size_t)(out * in), 1e-4, 1e-5 * (n + 1));
    fs_assert_close("linear db", db, dbr, (size_t)out, 1e-4, 1e-5 * (n + 1));
    FS_CHECK_EQ_INT(fs_linear_backward(x, n, in, w, out, dy, NULL, NULL, NULL), FS_OK);
    /* Without bias. */
    FS_CHECK_EQ_INT(fs_linear_forward(x, n, in, w, out, NULL, y), FS_OK);
    for (fs_idx i = 0; i < n * out; i++) yr[i] -= b[i % out];
    fs_assert_close("linear forward, no bias", y, yr, (size_t)(n * out), 1e-4, 1e-5 * (in + 1));
    free(x); free(w); free(b); free(dy); free(y); free(yr); free(dx); free(dxr);
    free(dw); free(dwr); free(db); free(dbr);
}

int main(void)
{
    fs_rng r;
    fs_rng_seed(&r, 42);
    fs_test_isa_from_env();
    /* One thread, then two: the image-parallel and the sequential paths. */
    const int threads[] = {1, 2, 3};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        fs_set_num_threads(threads[t]);
        for (size_t i = 0; i < NSHAPES; i++) {
            test_im2col(&SHAPES[i], &r);
            test_conv(&SHAPES[i], &r, 1);
            test_conv(&SHAPES[i], &r, 0);
        }
        test_linear(1, 1, 1, &r);
        test_linear(7, 13, 5, &r);
        test_linear(33, 65, 17, &r);
        test_linear(4, 0, 3, &r);
        test_linear(0, 5, 3, &r);
    }
    test_conv_bad_args();
    return fs_test_done();
}
