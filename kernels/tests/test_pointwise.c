/* Max pooling, activations, fused softmax cross-entropy and the optimizer
 * updates against plain reference loops, plus the failure contracts: a bad
 * pooling index or label is reported before anything is written. */
#include "fastseg/kernels.h"
#include "harness.h"
#include "window.h"

#include <string.h>

/* ---- max pooling --------------------------------------------------------- */
static void pool_ref(const float *x, fs_idx planes, fs_idx h, fs_idx w, fs_idx k, fs_idx s,
                     float *y, int64_t *idx)
{
    const fs_idx oh = fs_out_extent(h, k, s, 0), ow = fs_out_extent(w, k, s, 0);
    for (fs_idx pl = 0; pl < planes; pl++)
        for (fs_idx oi = 0; oi < oh; oi++)
            for (fs_idx oj = 0; oj < ow; oj++) {
                fs_idx best = -1;
                for (fs_idx a = 0; a < k; a++)
                    for (fs_idx b = 0; b < k; b++) {
                        const fs_idx at = (oi * s + a) * w + oj * s + b;
                        const float v = x[pl * h * w + at];
                        if (best < 0) { best = at; continue; }
                        const float bv = x[pl * h * w + best];
                        if (isnan(bv)) continue;
                        if (isnan(v) || v > bv) best = at;
                    }
                y[(pl * oh + oi) * ow + oj] = x[pl * h * w + best];
                idx[(pl * oh + oi) * ow + oj] = best;
            }
}

static void test_pool(fs_idx n, fs_idx c, fs_idx h, fs_idx w, fs_idx k, fs_idx s, fs_rng *r)
{
    const fs_idx oh = fs_out_extent(h, k, s, 0), ow = fs_out_extent(w, k, s, 0);
    const size_t xs = (size_t)(n * c * h * w), ys = (size_t)(n * c * oh * ow);
    float *x = fs_test_alloc(xs), *y = fs_test_alloc(ys), *yr = fs_test_alloc(ys);
    int64_t *idx = malloc((ys + 1) * sizeof(int64_t)), *idxr = malloc((ys + 1) * sizeof(int64_t));
    FS_REQUIRE(idx && idxr, "oom");
    /* Coarse values so ties are common; a few NaN and -inf. */
    for (size_t i = 0; i < xs; i++) x[i] = (float)(int)fs_rng_uniform(r, -3.0f, 3.0f);
    for (size_t i = 0; i < xs; i += 17) x[i] = NAN;
    for (size_t i = 5; i < xs; i += 23) x[i] = -INFINITY;
    pool_ref(x, n * c, h, w, k, s, yr, idxr);
    fs_maxpool2d_forward(x, n, c, h, w, k, s, y, idx);
    fs_assert_close("maxpool y", y, yr, ys, 0.0, 0.0);
    size_t bad = 0;
    for (size_t i = 0; i < ys; i++) bad += idx[i] != idxr[i];
    FS_CHECK(bad == 0, "maxpool idx: %zu of %zu differ (k%lld s%lld)", bad, ys,
             (long long)k, (long long)s);

    /* backward: scatter-add through idx (overlapping windows add up) */
    float *dy = fs_test_alloc(ys), *dx = fs_test_alloc(xs), *dxr = fs_test_alloc(xs);
    fs_fill_uniform(r, dy, ys, -1.0f, 1.0f);
    fs_fill_const(dxr, xs, 0.0f);
    for (fs_idx pl = 0; pl < n * c; pl++)
        for (fs_idx j = 0; j < oh * ow; j++)
            dxr[pl * h * w + idxr[pl * oh * ow + j]] += dy[pl * oh * ow + j];
    fs_fill_nan(dx, xs);
    FS_CHECK_EQ_INT(fs_maxpool2d_backward(dy, idx, n, c, oh, ow, h, w, dx), FS_OK);
    fs_assert_close("maxpool dx", dx, dxr, xs, 1e-6, 1e-6);

    /* A bad index anywhere: FS_EINDEX, and dx is left exactly as it was. */
    if (ys > 0) {
        const int64_t bads[] = {-1, h * w, INT64_MAX, INT64_MIN};
        for (size_t b = 0; b < sizeof bads / sizeof bads[0]; b++) {
            idx[ys - 1] = bads[b];
            float *guarded = fs_test_alloc(xs + 8);
            fs_fill_const(guarded, xs + 8, 5.0f);
            FS_CHECK_EQ_INT(fs_maxpool2d_backward(dy, idx, n, c, oh, ow, h, w, guarded),
                            FS_EINDEX);
            size_t touched = 0;
            for (size_t i = 0; i < xs + 8; i++) touched += guarded[i] != 5.0f;
            FS_CHECK(touched == 0, "maxpool backward wrote %zu elements before failing", touched);
            free(guarded);
        }
    }
    free(x); free(y); free(yr); free(idx); free(idxr); free(dy); free(dx); free(dxr);
}

/* ---- activations --------------------------------------------------------- */
static void test_activations(fs_idx count, fs_rng *r)
{
    float *x = fs_test_alloc((size_t)count), *dy = fs_test_alloc((size_t)count);
    float *y = fs_test_alloc((size_t)count), *yr = fs_test_alloc((size_t)count);
    float *dx = fs_test_alloc((size_t)count), *dxr = fs_test_alloc((size_t)count);
    fs_fill_uniform(r, x, (size_t)count, -8.0f, 8.0f);
    fs_fill_uniform(r, dy, (size_t)count, -1.0f, 1.0f);
    const float specials[] = {0.0f, -0.0f, 100.0f, -100.0f, 1e4f, -1e4f, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0] && (fs_idx)i < count; i++)
        x[i] = specials[i];

    fs_relu_forward(x, y, count);
    for (fs_idx i = 0; i < count; i++) yr[i] = x[i] > 0 ? x[i] : 0.0f;
    fs_assert_close("relu", y, yr, (size_t)count, 0, 0);
    fs_relu_backward(x, dy, dx, count);
    for (fs_idx i = 0; i < count; i++) dxr[i] = x[i] > 0 ? dy[i] : 0.0f;
    fs_assert_close("relu backward", dx, dxr, (size_t)count, 0, 0);

    fs_tanh_forward(x, y, count);
    for (fs_idx i = 0; i < count; i++) yr[i] = (float)tanh((double)x[i]);
    fs_assert_close("tanh", y, yr, (size_t)count, 1e-6, 1e-7);
    fs_tanh_backward(x, dy, dx, count);
    for (fs_idx i = 0; i < count; i++) {
        double t = tanh((double)x[i]);
        dxr[i] = (float)(dy[i] * (1.0 - t * t));
    }
    fs_assert_close("tanh backward", dx, dxr, (size_t)count, 1e-5, 1e-6);

    fs_sigmoid_forward(x, y, count);
    for (fs_idx i = 0; i < count; i++) yr[i] = (float)(1.0 / (1.0 + exp(-(double)x[i])));
    fs_assert_close("sigmoid", y, yr, (size_t)count, 1e-6, 1e-7);
    fs_sigmoid_backward(x, dy, dx, count);
    for (fs_idx i = 0; i < count; i++) {
        double sg = 1.0 / (1.0 + exp(-(double)x[i]));
        dxr[i] = (float)(dy[i] * sg * (1.0 - sg));
    }
    fs_assert_close("sigmoid backward", dx, dxr, (size_t)count, 1e-5, 1e-7);

    /* x*sin(x) and sin(x) + x*cos(x) cancel near their zeros: the absolute
     * tolerance scales with |x| (an ulp of x*cos(x)). */
    fs_xsin_forward(x, y, count);
    fs_xsin_backward(x, dy, dx, count);
    for (fs_idx i = 0; i < count; i++) {
        const double v = x[i];
        const double want = v * sin(v), dwant = dy[i] * (sin(v) + v * cos(v));
        const double tol = 1e-6 * (1.0 + fabs(v));
        FS_CHECK(isinf(v) ? isnan(y[i]) : fabs(y[i] - want) <= tol,
                 "xsin(%g) = %g, want %g", v, y[i], want);
        FS_CHECK(isinf(v) ? isnan(dx[i]) : fabs(dx[i] - dwant) <= tol,
                 "xsin'(%g) dy = %g, want %g", v, dx[i], dwant);
    }
    free(x); free(dy); free(y); free(yr); free(dx); free(dxr);
}

static void test_activation_nan(void)
{
    float x[3] = {NAN, -1e30f, 1e30f}, y[3], dy[3] = {2, 2, 2}, dx[3];
    fs_relu_forward(x, y, 3);
    FS_CHECK(isnan(y[0]), "relu(NaN) should be NaN, got %g", y[0]);
    fs_sigmoid_forward(x, y, 3);
    FS_CHECK(isnan(y[0]) && y[1] == 0.0f && y[2] == 1.0f, "sigmoid ends: %g %g %g",
             y[0], y[1], y[2]);
    fs_sigmoid_backward(x, dy, dx, 3);
    FS_CHECK(dx[1] == 0.0f && dx[2] == 0.0f, "sigmoid' ends: %g %g", dx[1], dx[2]);
    fs_tanh_forward(x, y, 3);
    FS_CHECK(isnan(y[0]) && y[1] == -1.0f && y[2] == 1.0f, "tanh ends");
}

/* tanh is computed without libm (activations.c): within 2 ulp of the exact
 * value everywhere, checked on a dense sweep, both sides of the switch
 * between its two formulas (|x| = 0.625), tiny and saturated inputs. */
static void test_tanh_ulp(void)
{
    enum { N = 400001 };
    float *x = fs_test_alloc(N), *y = fs_test_alloc(N);
    for (int i = 0; i < N; i++) {
        const double u = (double)i / (N - 1);
        x[i] = i % 2 ? (float)(24.0 * u - 12.0) : (float)(1e-30 * pow(1e31, u));
    }
    x[0] = 0.625f;
    x[2] = nextafterf(0.625f, 0.0f);
    fs_tanh_forward(x, y, N);
    double worst = 0.0;
    float at = 0.0f;
    for (int i = 0; i < N; i++) {
        const double ref = tanh((double)x[i]);
        const float rf = (float)ref;
        const double ulp = (double)nextafterf(fabsf(rf), INFINITY) - (double)fabsf(rf);
        const double err = fabs((double)y[i] - ref) / ulp;
        if (err > worst) {
            worst = err;
            at = x[i];
        }
    }
    FS_CHECK(worst <= 2.0, "tanh: %.2f ulp from exact at x = %.9g", worst, (double)at);
    free(x); free(y);
}

/* vm_tanh skips the formula no lane needs (all |x| < 0.625, or none): a lane's value
 * must not depend on its neighbours. The same inputs sorted (whole vectors on one side
 * of the switch) and interleaved with fillers from the other side (every vector mixed)
 * give the same bits, and stay within 2 ulp. */
static void test_tanh_lanes_independent(void)
{
    enum { N = 4099 };
    float *x = fs_test_alloc(N), *y = fs_test_alloc(N);
    float *z = fs_test_alloc(2 * N), *w = fs_test_alloc(2 * N);
    for (int i = 0; i < N; i++) {
        x[i] = (float)(-3.0 + 6.0 * i / (N - 1));
        z[2 * i] = x[i];
        z[2 * i + 1] = fabsf(x[i]) < 0.625f ? 5.0f : 0.1f;
    }
    fs_tanh_forward(x, y, N);
    fs_tanh_forward(z, w, 2 * N);
    int differ = 0;
    double worst = 0.0;
    for (int i = 0; i < N; i++) {
        differ += memcmp(&y[i], &w[2 * i], sizeof(float)) != 0;
        const double ref = tanh((double)x[i]);
        const float rf = (float)ref;
        const double ulp = (double)nextafterf(fabsf(rf), INFINITY) - (double)fabsf(rf);
        const double err = fabs((double)y[i] - ref) / ulp;
        worst = err > worst ? err : worst;
    }
    FS_CHECK(differ == 0, "tanh: %d of %d values change with their neighbours", differ, N);
    FS_CHECK(worst <= 2.0, "tanh on whole vectors: %.2f ulp from exact", worst);
    free(x); free(y); free(z); free(w);
}

/* ---- softmax cross-entropy ---------------------------------------------- */
static void xent_ref(const float *z, fs_idx n, fs_idx k, const int64_t *lab, const float *cw,
                     double *loss, float *g)
{
    double wsum = 0, total = 0;
    for (fs_idx i = 0; i < n; i++) wsum += cw ? cw[lab[i]] : 1.0;
    for (fs_idx i = 0; i < n; i++) {
        double m = -INFINITY, s = 0;
        for (fs_idx j = 0; j < k; j++) m = z[i * k + j] > m ? z[i * k + j] : m;
        for (fs_idx j = 0; j < k; j++) s += exp(z[i * k + j] - m);
        const double wi = cw ? cw[lab[i]] : 1.0;
        total += wi * (m + log(s) - z[i * k + lab[i]]);
        for (fs_idx j = 0; j < k; j++)
            g[i * k + j] = (float)(wi / wsum * (exp(z[i * k + j] - m) / s - (j == lab[i])));
    }
    *loss = total / wsum;
}

static void test_xent(fs_idx n, fs_idx k, float scale, int weighted, fs_rng *r)
{
    float *z = fs_test_alloc((size_t)(n * k)), *g = fs_test_alloc((size_t)(n * k));
    float *gr = fs_test_alloc((size_t)(n * k)), *cw = fs_test_alloc((size_t)k);
    int64_t *lab = malloc((size_t)(n + 1) * sizeof(int64_t));
    FS_REQUIRE(lab, "oom");
    fs_fill_uniform(r, z, (size_t)(n * k), -scale, scale);
    fs_fill_uniform(r, cw, (size_t)k, 0.1f, 3.0f);
    for (fs_idx i = 0; i < n; i++) lab[i] = (int64_t)(fs_rng_next(r) % (uint64_t)k);
    double lr;
    float loss = -1.0f;
    xent_ref(z, n, k, lab, weighted ? cw : NULL, &lr, gr);
    FS_CHECK_EQ_INT(fs_softmax_xent(z, n, k, lab, weighted ? cw : NULL, &loss, g), FS_OK);
    FS_CHECK(isfinite(loss) && fabs(loss - lr) <= 1e-5 * (fabs(lr) + 1.0),
             "xent loss %.9g vs %.9g (n%lld k%lld scale %g)", loss, lr, (long long)n,
             (long long)k, scale);
    fs_assert_close("xent grad", g, gr, (size_t)(n * k), 1e-4, 1e-6);

    /* A bad label: FS_EINDEX, nothing written. */
    const int64_t bads[] = {-1, k};
    for (size_t b = 0; b < 2; b++) {
        lab[n - 1] = bads[b];
        fs_fill_const(g, (size_t)(n * k), 9.0f);
        loss = 9.0f;
        FS_CHECK_EQ_INT(fs_softmax_xent(z, n, k, lab, weighted ? cw : NULL, &loss, g),
                        FS_EINDEX);
        size_t touched = loss != 9.0f;
        for (fs_idx i = 0; i < n * k; i++) touched += g[i] != 9.0f;
        FS_CHECK(touched == 0, "xent wrote %zu outputs before failing", touched);
    }
    free(z); free(g); free(gr); free(cw); free(lab);
}

static void test_xent_edges(void)
{
    float loss = 0.0f, g[1];
    int64_t lab[1] = {0};
    float z[1] = {0};
    FS_CHECK_EQ_INT(fs_softmax_xent(z, 0, 2, lab, NULL, &loss, g), FS_OK);
    FS_CHECK(isnan(loss), "n == 0 should give NaN, got %g", loss);
    /* +-1e4 logits: finite loss (1e4 + 1e4 here), gradient exact one-hots */
    float big[4] = {1e4f, -1e4f, -1e4f, 1e4f}, gb[4];
    int64_t lb[2] = {1, 1};
    FS_CHECK_EQ_INT(fs_softmax_xent(big, 2, 2, lb, NULL, &loss, gb), FS_OK);
    FS_CHECK(isfinite(loss) && fabsf(loss - 1e4f) < 1.0f, "xent(+-1e4) = %g", loss);
    FS_CHECK(gb[0] == 0.5f && gb[1] == -0.5f && gb[2] == 0.0f && gb[3] == 0.0f,
             "xent(+-1e4) grad %g %g %g %g", gb[0], gb[1], gb[2], gb[3]);
}

/* ---- optimizers (torch.optim's single-tensor code, in double) ----------- */
static void test_optim(fs_idx count, fs_rng *r)
{
    const size_t nc = (size_t)count;
    float *p = fs_test_alloc(nc), *g = fs_test_alloc(nc), *b = fs_test_alloc(nc);
    float *pr = fs_test_alloc(nc), *br = fs_test_alloc(nc);
    float *m = fs_test_alloc(nc), *v = fs_test_alloc(nc), *mr = fs_test_alloc(nc);
    float *vr = fs_test_alloc(nc);
    fs_fill_uniform(r, p, nc, -1, 1);
    fs_fill_uniform(r, g, nc, -1, 1);

    /* SGD: every combination, two steps (the first creates the buffer). */
    for (int nesterov = 0; nesterov < 2; nesterov++)
        for (int mom = 0; mom < 2; mom++) {
            const float lr = 0.1f, mu = mom ? 0.9f : 0.0f, damp = nesterov ? 0.0f : 0.25f,
                        wd = 0.01f;
            memcpy(pr, p, nc * 4);
            float *pp = fs_test_alloc(nc);
            memcpy(pp, p, nc * 4);
            fs_fill_nan(b, nc); /* first step must not read the buffer */
            for (int step = 0; step < 2; step++) {
                fs_sgd_update(pp, g, b, count, lr, mu, damp, wd, nesterov, step == 0);
                for (size_t i = 0; i < nc; i++) {
                    double d = g[i] + (double)wd * pr[i];
                    if (mu != 0) {
                        br[i] = step == 0 ? (float)d : (float)(mu * br[i] + (1.0 - damp) * d);
                        d = nesterov ? d + mu * (double)br[i] : br[i];
                    }
                    pr[i] = (float)(pr[i] - lr * d);
                }
            }
            fs_assert_close("sgd p", pp, pr, nc, 1e-5, 1e-6);
            if (mu != 0) fs_assert_close("sgd buf", b, br, nc, 1e-5, 1e-6);
            free(pp);
        }

    /* Adam: three steps from zero moments. */
    {
        const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f;
        float *pp = fs_test_alloc(nc);
        memcpy(pp, p, nc * 4);
        memcpy(pr, p, nc * 4);
        fs_fill_const(m, nc, 0); fs_fill_const(v, nc, 0);
        fs_fill_const(mr, nc, 0); fs_fill_const(vr, nc, 0);
        for (fs_idx step = 1; step <= 3; step++) {
            fs_adam_update(pp, g, m, v, count, lr, b1, b2, eps, wd, step);
            const double bc1 = 1 - pow(b1, (double)step), bc2 = 1 - pow(b2, (double)step);
            for (size_t i = 0; i < nc; i++) {
                const double d = g[i] + (double)wd * pr[i];
                mr[i] = (float)(b1 * (double)mr[i] + (1 - (double)b1) * d);
                vr[i] = (float)(b2 * (double)vr[i] + (1 - (double)b2) * d * d);
                const double denom = sqrt((double)vr[i]) / sqrt(bc2) + eps;
                pr[i] = (float)(pr[i] - lr / bc1 * mr[i] / denom);
            }
        }
        fs_assert_close("adam p", pp, pr, nc, 1e-5, 1e-6);
        fs_assert_close("adam m", m, mr, nc, 1e-5, 1e-7);
        fs_assert_close("adam v", v, vr, nc, 1e-5, 1e-9);
        free(pp);
    }

    /* Rprop: prev gradients with every sign relation, zeros included. */
    {
        const float em = 0.5f, ep = 1.2f, smin = 1e-6f, smax = 50.0f;
        float *pp = fs_test_alloc(nc), *prev = fs_test_alloc(nc), *st = fs_test_alloc(nc);
        float *prevr = fs_test_alloc(nc), *str = fs_test_alloc(nc);
        memcpy(pp, p, nc * 4);
        memcpy(pr, p, nc * 4);
        for (size_t i = 0; i < nc; i++) {
            prev[i] = prevr[i] = (i % 3 == 0) ? 0.0f : fs_rng_uniform(r, -1, 1);
            st[i] = str[i] = (i % 5 == 0) ? 49.0f : (i % 7 == 0 ? 2e-6f : 0.01f);
        }
        for (int step = 0; step < 2; step++) {
            fs_rprop_update(pp, g, prev, st, count, em, ep, smin, smax);
            for (size_t i = 0; i < nc; i++) {
                const double sgn = (double)g[i] * prevr[i];
                double f = sgn > 0 ? ep : sgn < 0 ? em : 1.0;
                double s2 = str[i] * f;
                s2 = s2 < smin ? smin : s2 > smax ? smax : s2;
                str[i] = (float)s2;
                const float d = sgn < 0 ? 0.0f : g[i];
                pr[i] = (float)(pr[i] - (d > 0 ? 1 : d < 0 ? -1 : 0) * (double)str[i]);
                prevr[i] = d;
            }
        }
        fs_assert_close("rprop p", pp, pr, nc, 1e-6, 1e-7);
        fs_assert_close("rprop step", st, str, nc, 1e-6, 0);
        fs_assert_close("rprop prev", prev, prevr, nc, 0, 0);
        free(pp); free(prev); free(st); free(prevr); free(str);
    }
    free(p); free(g); free(b); free(pr); free(br); free(m); free(v); free(mr); free(vr);
}

int main(void)
{
    fs_rng r;
    fs_rng_seed(&r, 7);
    fs_test_isa_from_env();
    const int threads[] = {1, 2};
    for (size_t t = 0; t < 2; t++) {
        fs_set_num_threads(threads[t]);
        test_pool(1, 1, 4, 4, 2, 2, &r);
        test_pool(2, 3, 5, 7, 2, 2, &r);   /* odd sizes: floor drops the edge */
        test_pool(1, 2, 6, 5, 3, 1, &r);   /* overlapping windows */
        test_pool(3, 5, 7, 7, 3, 2, &r);
        test_pool(1, 1, 2, 2, 3, 1, &r);   /* kernel larger than input: empty */
        test_pool(1, 1, 1, 1, 1, 1, &r);
        test_pool(4, 20, 40, 40, 2, 2, &r); /* large enough to run threaded */
        test_pool(1, 2, 5, 1100, 3, 2, &r); /* output rows wider than one pass */
        test_activations(1, &r);
        test_activations(1000, &r);
        test_activations((1 << 16) + 37, &r);
        test_xent(1, 1, 1.0f, 0, &r);
        test_xent(5, 2, 3.0f, 0, &r);
        test_xent(9, 7, 50.0f, 1, &r);
        test_xent(4, 3, 1e4f, 1, &r);
        test_xent(64, 10, 5.0f, 1, &r);
        test_optim(1, &r);
        test_optim(1001, &r);
        test_optim((1 << 16) + 5, &r);
    }
    test_activation_nan();
    test_tanh_ulp();
    test_tanh_lanes_independent();
    test_xent_edges();
    return fs_test_done();
}
