/* conv3d forward/backward and 3-D max pooling against direct loops (double
 * accumulation), over the shapes that break index arithmetic: n = 1, prime
 * sizes, size 1 along each axis, anisotropic kernels, strides and paddings,
 * an output of one voxel, an input smaller than the kernel, more voxels
 * than one block, more filters than one MC block, a weight too big to keep
 * packed. Each on 1, 2 and 3 threads (volume-parallel and split paths). */
#include "fastseg/kernels.h"
#include "harness.h"

#include <string.h>

typedef struct {
    fs_idx n, c, d, h, w, f;
    fs_idx k[3], s[3], p[3];
} shape;

static const shape SHAPES[] = {
    {1, 1, 1, 1, 1, 1, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},       /* one voxel */
    {2, 3, 5, 6, 7, 4, {3, 3, 3}, {1, 1, 1}, {0, 0, 0}},
    {2, 3, 5, 6, 7, 4, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},       /* padding */
    {3, 2, 7, 5, 9, 3, {3, 2, 3}, {2, 1, 2}, {1, 0, 2}},       /* anisotropic everything */
    {1, 5, 1, 7, 6, 2, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},       /* depth 1 */
    {2, 2, 7, 1, 6, 3, {3, 1, 2}, {1, 1, 2}, {1, 0, 0}},       /* height 1 */
    {2, 2, 6, 5, 1, 3, {2, 3, 1}, {2, 1, 1}, {0, 1, 0}},       /* width 1 */
    {1, 3, 4, 4, 4, 2, {5, 5, 5}, {1, 1, 1}, {0, 0, 0}},       /* kernel > input: empty */
    {1, 2, 3, 3, 3, 2, {5, 5, 5}, {1, 1, 1}, {1, 1, 1}},       /* k == size + 2p: one voxel */
    {2, 1, 3, 2, 3, 2, {3, 3, 3}, {2, 2, 2}, {2, 2, 2}},       /* padding wider than input */
    {5, 1, 12, 12, 12, 20, {5, 5, 5}, {1, 1, 1}, {0, 0, 0}},   /* lai3d conv1, smaller cube */
    {2, 20, 8, 8, 9, 50, {5, 5, 5}, {1, 1, 1}, {0, 0, 0}},    /* lai3d conv2, smaller cube */
    {1, 20, 9, 8, 10, 50, {5, 5, 5}, {1, 1, 1}, {0, 0, 0}},   /* batch 1: split paths */
    {1, 7, 11, 13, 5, 11, {3, 3, 3}, {2, 2, 1}, {1, 1, 1}},    /* batch 1, primes, stride 2 */
    {1, 2, 9, 40, 37, 3, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},     /* more voxels than a block */
    {2, 3, 4, 5, 6, 150, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},     /* more filters than MC */
    {1, 2, 4, 4, 5, 300, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},     /* dX's K over one KC block */
    {2, 100, 4, 5, 4, 110, {3, 4, 4}, {1, 1, 1}, {0, 1, 0}},   /* weight too big to keep packed */
    {2, 3, 6, 7, 8, 5, {2, 2, 2}, {3, 3, 3}, {0, 0, 0}},       /* stride > kernel */
    {2, 2, 4, 3, 40, 3, {2, 2, 3}, {1, 1, 1}, {0, 0, 0}},      /* unpadded rows of 38: long runs */
    {1, 2, 3, 4, 45, 2, {1, 2, 5}, {2, 1, 1}, {0, 0, 0}},      /* unpadded, strided depth */
};
#define NSHAPES (sizeof SHAPES / sizeof SHAPES[0])

static fs_idx ext(fs_idx size, fs_idx k, fs_idx s, fs_idx p)
{
    fs_idx span = size + 2 * p - k;
    return span < 0 ? 0 : span / s + 1;
}

static fs_conv3d_geom geom_of(const shape *S)
{
    fs_conv3d_geom g = {S->n, S->c, S->d, S->h, S->w, S->f, {0}, {0}, {0}};
    for (int a = 0; a < 3; a++) {
        g.k[a] = S->k[a];
        g.stride[a] = S->s[a];
        g.pad[a] = S->p[a];
    }
    return g;
}

/* Index of x[ni][ci][iz][iy][ix], or -1 in the padding. */
static fs_idx x_index(const shape *S, fs_idx ni, fs_idx ci, fs_idx iz, fs_idx iy, fs_idx ix)
{
    if (iz < 0 || iz >= S->d || iy < 0 || iy >= S->h || ix < 0 || ix >= S->w) return -1;
    return (((ni * S->c + ci) * S->d + iz) * S->h + iy) * S->w + ix;
}

/* Direct loops: y, dx, dw, db in double, rounded once. */
static void conv3d_ref(const shape *S, const float *x, const float *wt, const float *b,
                       const float *dy, float *y, float *dx, float *dw, float *db)
{
    const fs_idx od = ext(S->d, S->k[0], S->s[0], S->p[0]);
    const fs_idx oh = ext(S->h, S->k[1], S->s[1], S->p[1]);
    const fs_idx ow = ext(S->w, S->k[2], S->s[2], S->p[2]);
    const fs_idx kh = S->k[1], kw = S->k[2], kkk = S->k[0] * kh * kw, taps = S->c * kkk;
    const size_t xs = (size_t)(S->n * S->c * S->d * S->h * S->w);
    const size_t ws = (size_t)(S->f * taps);
    double *adx = calloc(xs + 1, sizeof(double)), *adw = calloc(ws + 1, sizeof(double));
    double *adb = calloc((size_t)S->f + 1, sizeof(double));
    FS_REQUIRE(adx && adw && adb, "oom");
    for (fs_idx ni = 0; ni < S->n; ni++)
        for (fs_idx f = 0; f < S->f; f++)
            for (fs_idx o = 0; o < od * oh * ow; o++) {
                const fs_idx oz = o / (oh * ow), oy = o / ow % oh, ox = o % ow;
                const fs_idx yo = (ni * S->f + f) * od * oh * ow + o;
                double acc = b ? b[f] : 0.0;
                const double g = dy[yo];
                adb[f] += g;
                for (fs_idx r = 0; r < taps; r++) { /* r = ((ci*kd + a)*kh + bb)*kw + e */
                    const fs_idx ci = r / kkk, a = r % kkk / (kh * kw), bb = r / kw % kh;
                    const fs_idx xi = x_index(S, ni, ci, oz * S->s[0] + a - S->p[0],
                                              oy * S->s[1] + bb - S->p[1],
                                              ox * S->s[2] + r % kw - S->p[2]);
                    if (xi < 0) continue;
                    const fs_idx wi = f * taps + r;
                    acc += (double)wt[wi] * x[xi];
                    adw[wi] += g * x[xi];
                    adx[xi] += g * wt[wi];
                }
                y[yo] = (float)acc;
            }
    for (size_t i = 0; i < xs; i++) dx[i] = (float)adx[i];
    for (size_t i = 0; i < ws; i++) dw[i] = (float)adw[i];
    for (fs_idx f = 0; f < S->f; f++) db[f] = (float)adb[f];
    free(adx); free(adw); free(adb);
}

static void test_conv3d(const shape *S, fs_rng *r, int use_bias)
{
    const fs_conv3d_geom g = geom_of(S);
    const fs_idx od = ext(S->d, S->k[0], S->s[0], S->p[0]);
    const fs_idx oh = ext(S->h, S->k[1], S->s[1], S->p[1]);
    const fs_idx ow = ext(S->w, S->k[2], S->s[2], S->p[2]);
    const fs_idx kkk = S->k[0] * S->k[1] * S->k[2];
    const size_t xs = (size_t)(S->n * S->c * S->d * S->h * S->w);
    const size_t ws = (size_t)(S->f * S->c * kkk);
    const size_t ys = (size_t)(S->n * S->f * od * oh * ow);
    float *x = fs_test_alloc(xs), *wt = fs_test_alloc(ws), *b = fs_test_alloc((size_t)S->f);
    float *dy = fs_test_alloc(ys), *y = fs_test_alloc(ys), *yr = fs_test_alloc(ys);
    float *dx = fs_test_alloc(xs), *dxr = fs_test_alloc(xs);
    float *dw = fs_test_alloc(ws), *dwr = fs_test_alloc(ws);
    float *db = fs_test_alloc((size_t)S->f), *dbr = fs_test_alloc((size_t)S->f);
    fs_fill_uniform(r, x, xs, -1.0f, 1.0f);
    fs_fill_uniform(r, wt, ws, -1.0f, 1.0f);
    fs_fill_uniform(r, b, (size_t)S->f, -1.0f, 1.0f);
    fs_fill_uniform(r, dy, ys, -1.0f, 1.0f);
    conv3d_ref(S, x, wt, use_bias ? b : NULL, dy, yr, dxr, dwr, dbr);

    const double tol = 1e-5 * (double)(S->c * kkk + 1);
    const double tolb = 1e-5 * (double)(S->n * od * oh * ow + S->f * kkk + 1);
    /* The reference once, the kernels on 1, 2 and 3 threads: the
     * volume-parallel and the split paths. */
    for (int nt = 1; nt <= 3; nt++) {
        fs_set_num_threads(nt);
        /* NaN-filled outputs: the kernels must overwrite, never read them. */
        fs_fill_nan(y, ys); fs_fill_nan(dx, xs); fs_fill_nan(dw, ws);
        fs_fill_nan(db, (size_t)S->f);
        FS_CHECK_EQ_INT(fs_conv3d_forward(&g, x, wt, use_bias ? b : NULL, y), FS_OK);
        fs_assert_close("conv3d forward", y, yr, ys, 1e-4, tol);
        FS_CHECK_EQ_INT(fs_conv3d_backward(&g, x, wt, dy, dx, dw, db), FS_OK);
        fs_assert_close("conv3d dx", dx, dxr, xs, 1e-4, tolb);
        fs_assert_close("conv3d dw", dw, dwr, ws, 1e-4, tolb);
        fs_assert_close("conv3d db", db, dbr, (size_t)S->f, 1e-4, tolb);

        /* Each output alone (the others NULL) gives the same answer. */
        fs_fill_nan(dx, xs);
        FS_CHECK_EQ_INT(fs_conv3d_backward(&g, x, wt, dy, dx, NULL, NULL), FS_OK);
        fs_assert_close("conv3d dx only", dx, dxr, xs, 1e-4, tolb);
        fs_fill_nan(dw, ws);
        FS_CHECK_EQ_INT(fs_conv3d_backward(&g, x, wt, dy, NULL, dw, NULL), FS_OK);
        fs_assert_close("conv3d dw only", dw, dwr, ws, 1e-4, tolb);
        fs_fill_nan(db, (size_t)S->f);
        FS_CHECK_EQ_INT(fs_conv3d_backward(&g, x, wt, dy, NULL, NULL, db), FS_OK);
        fs_assert_close("conv3d db only", db, dbr, (size_t)S->f, 1e-4, tolb);
    }
    free(x); free(wt); free(b); free(dy); free(y); free(yr); free(dx); free(dxr);
    free(dw); free(dwr); free(db); free(dbr);
}

/* Depth 1 with a depth-1 kernel is exactly conv2d: same sums in the same order. */
static void test_depth_one_is_conv2d(fs_rng *r)
{
    const fs_idx n = 3, c = 20, h = 12, w = 11, f = 50, k = 5;
    const fs_conv3d_geom g = {n, c, 1, h, w, f, {1, k, k}, {1, 1, 1}, {0, 1, 1}};
    const fs_idx oh = ext(h, k, 1, 1), ow = ext(w, k, 1, 1);
    const size_t xs = (size_t)(n * c * h * w), ws = (size_t)(f * c * k * k),
                 ys = (size_t)(n * f * oh * ow);
    float *x = fs_test_alloc(xs), *wt = fs_test_alloc(ws), *b = fs_test_alloc((size_t)f);
    float *y3 = fs_test_alloc(ys), *y2 = fs_test_alloc(ys);
    fs_fill_uniform(r, x, xs, -1.0f, 1.0f);
    fs_fill_uniform(r, wt, ws, -1.0f, 1.0f);
    fs_fill_uniform(r, b, (size_t)f, -1.0f, 1.0f);
    FS_CHECK_EQ_INT(fs_conv3d_forward(&g, x, wt, b, y3), FS_OK);
    FS_CHECK_EQ_INT(fs_conv2d_forward(x, n, c, h, w, wt, f, k, b, 1, 1, y2), FS_OK);
    fs_assert_close("conv3d depth 1 vs conv2d", y3, y2, ys, 0.0, 0.0);
    free(x); free(wt); free(b); free(y3); free(y2);
}

static void test_conv3d_bad_args(void)
{
    float x[8] = {0}, wt[1] = {1}, y[8];
    fs_conv3d_geom g = {1, 1, 2, 2, 2, 1, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
    g.stride[1] = 0;
    FS_CHECK_EQ_INT(fs_conv3d_forward(&g, x, wt, NULL, y), FS_EVALUE);
    g.stride[1] = 1;
    g.k[2] = 0;
    FS_CHECK_EQ_INT(fs_conv3d_forward(&g, x, wt, NULL, y), FS_EVALUE);
    g.k[2] = 1;
    g.pad[0] = -1;
    FS_CHECK_EQ_INT(fs_conv3d_backward(&g, x, wt, y, NULL, NULL, NULL), FS_EVALUE);
}

/* ---- 3-D max pooling ------------------------------------------------------ */
static void test_pool3d(const fs_idx size[3], const fs_idx k[3], const fs_idx s[3], fs_rng *r)
{
    const fs_idx n = 2, c = 3, d = size[0], h = size[1], w = size[2];
    const fs_idx od = ext(d, k[0], s[0], 0), oh = ext(h, k[1], s[1], 0), ow = ext(w, k[2], s[2], 0);
    const fs_idx vol = d * h * w, ovol = od * oh * ow;
    const size_t xs = (size_t)(n * c * vol), ys = (size_t)(n * c * ovol);
    float *x = fs_test_alloc(xs), *y = fs_test_alloc(ys), *yr = fs_test_alloc(ys);
    int64_t *idx = malloc((ys + 1) * sizeof(int64_t)), *ir = malloc((ys + 1) * sizeof(int64_t));
    FS_REQUIRE(idx && ir, "oom");
    /* Few distinct values: ties inside windows. */
    for (size_t i = 0; i < xs; i++) x[i] = (float)(fs_rng_next(r) % 5);
    for (size_t i = 7; i < xs; i += 41) x[i] = NAN; /* NaN wins its windows */
    for (fs_idx v = 0; v < n * c; v++)
        for (fs_idx oz = 0; oz < od; oz++)
            for (fs_idx oy = 0; oy < oh; oy++)
                for (fs_idx ox = 0; ox < ow; ox++) {
                    float best = 0.0f;
                    int64_t at = -1;
                    for (fs_idx a = 0; a < k[0]; a++)
                        for (fs_idx b = 0; b < k[1]; b++)
                            for (fs_idx e = 0; e < k[2]; e++) {
                                const int64_t p = ((oz * s[0] + a) * h + oy * s[1] + b) * w +
                                                  ox * s[2] + e;
                                const float val = x[v * vol + p];
                                if (at < 0 || (!isnan(best) && (val > best || isnan(val)))) {
                                    best = val;
                                    at = p;
                                }
                            }
                    const fs_idx o = v * ovol + (oz * oh + oy) * ow + ox;
                    yr[o] = best;
                    ir[o] = at;
                }
    fs_fill_nan(y, ys);
    FS_CHECK_EQ_INT(fs_maxpool3d_forward(x, n, c, size, k, s, y, idx), FS_OK);
    fs_assert_close("maxpool3d forward", y, yr, ys, 0.0, 0.0);
    size_t wrong = 0;
    for (size_t i = 0; i < ys; i++) wrong += idx[i] != ir[i];
    FS_CHECK(wrong == 0, "maxpool3d indices: %zu of %zu differ", wrong, ys);

    /* Backward: dy scattered through the indices, summed where windows overlap. */
    float *dy = fs_test_alloc(ys), *dx = fs_test_alloc(xs), *dxr = fs_test_alloc(xs);
    fs_fill_uniform(r, dy, ys, -1.0f, 1.0f);
    fs_fill_const(dxr, xs, 0.0f);
    for (fs_idx v = 0; v < n * c; v++)
        for (fs_idx o = 0; o < ovol; o++) dxr[v * vol + ir[v * ovol + o]] += dy[v * ovol + o];
    fs_fill_nan(dx, xs);
    FS_CHECK_EQ_INT(fs_maxpool3d_backward(dy, idx, n, c, ovol, vol, dx), FS_OK);
    fs_assert_close("maxpool3d backward", dx, dxr, xs, 1e-6, 1e-6);
    if (ys) { /* a bad index: refused, dx untouched */
        idx[ys - 1] = vol;
        fs_fill_const(dx, xs, 5.0f);
        FS_CHECK_EQ_INT(fs_maxpool3d_backward(dy, idx, n, c, ovol, vol, dx), FS_EINDEX);
        size_t touched = 0;
        for (size_t i = 0; i < xs; i++) touched += dx[i] != 5.0f;
        FS_CHECK(touched == 0, "maxpool3d backward wrote %zu elements before refusing", touched);
    }
    free(x); free(y); free(yr); free(idx); free(ir); free(dy); free(dx); free(dxr);
}

static void test_pool3d_bad_args(void)
{
    float x[8] = {0}, y[8];
    int64_t idx[8];
    const fs_idx size[3] = {2, 2, 2}, bad_k[3] = {2, 0, 2}, k[3] = {2, 2, 2}, bad_s[3] = {1, 1, 0};
    FS_CHECK_EQ_INT(fs_maxpool3d_forward(x, 1, 1, size, bad_k, k, y, idx), FS_EVALUE);
    FS_CHECK_EQ_INT(fs_maxpool3d_forward(x, 1, 1, size, k, bad_s, y, idx), FS_EVALUE);
}

int main(void)
{
    fs_rng r;
    fs_rng_seed(&r, 7);
    fs_test_isa_from_env();
    const int threads[] = {1, 2, 3};
    const fs_idx pools[][3][3] = {
        {{2, 2, 2}, {2, 2, 2}, {2, 2, 2}},   /* lai3d's */
        {{5, 7, 6}, {2, 2, 2}, {2, 2, 2}},   /* odd sizes: floor */
        {{7, 6, 9}, {3, 2, 3}, {2, 1, 3}},   /* anisotropic, overlapping */
        {{1, 5, 4}, {1, 2, 2}, {1, 2, 1}},   /* depth 1 */
        {{4, 1, 3}, {2, 1, 3}, {2, 1, 1}},   /* height 1 */
        {{2, 2, 2}, {3, 1, 1}, {1, 1, 1}},   /* window deeper than the volume: empty */
        {{4, 5, 21}, {2, 2, 2}, {2, 2, 2}},  /* rows of 10: blocks of 4 and a tail */
        {{3, 4, 13}, {2, 1, 3}, {1, 2, 1}},  /* unit stride along W, blocks and a tail */
    };
    for (size_t i = 0; i < NSHAPES; i++) {
        test_conv3d(&SHAPES[i], &r, 1);
        test_conv3d(&SHAPES[i], &r, 0);
    }
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        fs_set_num_threads(threads[t]);
        test_depth_one_is_conv2d(&r);
        for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++)
            test_pool3d(pools[i][0], pools[i][1], pools[i][2], &r);
    }
    test_conv3d_bad_args();
    test_pool3d_bad_args();
    return fs_test_done();
}
