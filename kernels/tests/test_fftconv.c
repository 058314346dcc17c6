/* The FFT convolution (fftconv.c) and its vertical FFT (fft_impl.h):
 *   - c2c of every length 1..72 (but the primes 67, 71, above the radix
 *     limit) and some long ones against
 *     the plain DFT (double), both directions, lanes 1..33 (odd counts leave
 *     a vector remainder), pruned outputs (keep, out_lanes), strided and
 *     negative-offset layouts;
 *   - the paired real transforms (r2c_pair, c2r_pack) round trip;
 *   - fs_fftconv2d against fs_fftconv2d_ref (direct, double) on awkward
 *     shapes: one channel, one filter, primes, odd sizes, an FFT as small as
 *     the kernel, larger than the image, non-square, every activation, with
 *     and without the 1x1 convolution, mults 3 and 4;
 *   - bitwise the same on 1, 2 and 6 threads and for other groups and chunks;
 *   - the refusals (FS_EVALUE) and the packed spectra (fs_fftconv_spectra_ref
 *     checked against its definition at one bin). */
#include <math.h>
#include <string.h>

#include "fastseg/kernels.h"
#include "fftconv_internal.h"
#include "harness.h"

static const fs_fft_table *table_in_use(void)
{
    const char *isa = fs_isa_name();
#ifdef FS_HAVE_AVX512_KERNEL
    if (strcmp(isa, "avx512") == 0) return &fs_fft_table_avx512;
#endif
#ifdef FS_HAVE_AVX2_KERNEL
    if (strcmp(isa, "avx2") == 0) return &fs_fft_table_avx2;
#endif
    (void)isa;
    return &fs_fft_table_generic;
}

/* ---- the vertical FFT ---------------------------------------------------- */
static void test_c2c(const fs_fft_table *ft, int n, fs_idx lanes, int inverse, fs_rng *r)
{
    static fs_fft_plan plan;
    FS_REQUIRE(fs_fft_plan_init(&plan, n) == FS_OK, "plan %d", n);
    /* input: point stride 2*lanes + 3, imaginary parts BEFORE the real ones */
    const ptrdiff_t is = 2 * lanes + 3, iim = -(lanes + 1);
    float *in = fs_test_alloc((size_t)(n * is + 2 * lanes + 8));
    fs_fill_nan(in, (size_t)(n * is + 2 * lanes + 8));
    float *base = in + lanes + 1;
    for (int k = 0; k < n; k++)
        for (fs_idx l = 0; l < lanes; l++) {
            base[k * is + l] = fs_rng_uniform(r, -1, 1);
            base[k * is + iim + l] = fs_rng_uniform(r, -1, 1);
        }
    const int keep = n > 3 ? n - 2 : n;
    const fs_idx out_lanes = lanes > 2 ? lanes - 1 : lanes;
    const ptrdiff_t os = 2 * lanes + 5, oim = lanes + 2;
    float *out = fs_test_alloc((size_t)(n * os));
    fs_fill_nan(out, (size_t)(n * os));
    float *work = fs_test_alloc(fs_fft_work_floats(n, lanes));
    ft->c2c(&plan, inverse, base, is, iim, out, os, oim, lanes, out_lanes, keep, work);
    float *got = fs_test_alloc((size_t)(keep * out_lanes * 2));
    float *want = fs_test_alloc((size_t)(keep * out_lanes * 2));
    const double sg = inverse ? 1.0 : -1.0;
    for (int k = 0; k < keep; k++)
        for (fs_idx l = 0; l < out_lanes; l++) {
            double sr = 0, si = 0;
            for (int j = 0; j < n; j++) {
                const double t = sg * 6.283185307179586 * (double)((j * k) % n) / n;
                const double xr = base[j * is + l], xi = base[j * is + iim + l];
                sr += xr * cos(t) - xi * sin(t);
                si += xr * sin(t) + xi * cos(t);
            }
            want[(k * out_lanes + l) * 2] = (float)sr;
            want[(k * out_lanes + l) * 2 + 1] = (float)si;
            got[(k * out_lanes + l) * 2] = out[k * os + l];
            got[(k * out_lanes + l) * 2 + 1] = out[k * os + oim + l];
        }
    char name[96];
    snprintf(name, sizeof name, "c2c n=%d lanes=%ld %s", n, (long)lanes,
             inverse ? "inverse" : "forward");
    fs_assert_close(name, got, want, (size_t)(keep * out_lanes * 2), 0, 2e-6 * n + 1e-6);
    /* nothing written past the kept points and lanes */
    int clean = 1;
    for (int k = 0; k < n; k++)
        for (fs_idx l = 0; l < os; l++) {
            const int kept = k < keep && ((l < out_lanes) || (l >= oim && l < oim + out_lanes));
            if (!kept && !isnan(out[k * os + l])) clean = 0;
        }
    FS_CHECK(clean, "%s wrote outside its kept points", name);
    free(in), free(out), free(work), free(got), free(want);
}

static void test_real_pairs(const fs_fft_table *ft, int n, fs_idx h, fs_rng *r)
{
    static fs_fft_plan plan;
    FS_REQUIRE(fs_fft_plan_init(&plan, n) == FS_OK, "plan %d", n);
    const int half = n / 2 + 1;
    float *x = fs_test_alloc((size_t)(n * 2 * h)), *z = fs_test_alloc((size_t)(n * 2 * h));
    float *spec = fs_test_alloc((size_t)(half * 4 * h)), *back = fs_test_alloc((size_t)(n * 2 * h));
    float *work = fs_test_alloc(fs_fft_work_floats(n, h));
    fs_fill_uniform(r, x, (size_t)(n * 2 * h), -1, 1); /* a: lanes [0,h), b: [h,2h) */
    ft->c2c(&plan, 0, x, 2 * h, h, z, 2 * h, h, h, h, n, work);
    /* half spectra: point stride 4h, imaginary at +2h, b lanes at +h */
    ft->r2c_pair(n, z, 2 * h, h, spec, 4 * h, 2 * h);
    /* check bin k of a and b against their DFTs */
    float *got = fs_test_alloc((size_t)(half * 4 * h)), *want = fs_test_alloc((size_t)(half * 4 * h));
    size_t m = 0;
    for (int k = 0; k < half; k++)
        for (int which = 0; which < 2; which++)
            for (fs_idx l = 0; l < h; l++) {
                double sr = 0, si = 0;
                for (int j = 0; j < n; j++) {
                    const double t = -6.283185307179586 * (double)((j * k) % n) / n;
                    const double xv = which ? x[j * 2 * h + h + l] : x[j * 2 * h + l];
                    sr += xv * cos(t);
                    si += xv * sin(t);
                }
                want[m] = (float)sr, got[m++] = spec[k * 4 * h + which * h + l];
                want[m] = (float)si, got[m++] = spec[k * 4 * h + 2 * h + which * h + l];
            }
    char name[64];
    snprintf(name, sizeof name, "r2c_pair n=%d", n);
    fs_assert_close(name, got, want, m, 0, 2e-6 * n);
    /* back: pack, inverse, / n gives a + ib */
    ft->c2r_pack(n, spec, 4 * h, 2 * h, 1, h, z);
    ft->c2c(&plan, 1, z, 2 * h, h, back, 2 * h, h, h, h, n, work);
    for (int i = 0; i < n * 2 * h; i++) back[i] /= (float)n;
    snprintf(name, sizeof name, "c2r_pack round trip n=%d", n);
    fs_assert_close(name, back, x, (size_t)(n * 2 * h), 0, 2e-6 * n);
    free(x), free(z), free(spec), free(back), free(work), free(got), free(want);
}

/* ---- the fused layer ------------------------------------------------------ */
typedef struct {
    fs_idx c, f, h, w, kh, kw, th, tw, p;
    int act;
} layer;

static const layer LAYERS[] = {
    {1, 1, 5, 5, 5, 5, 5, 5, 0, FS_ACT_NONE},        /* one pixel, FFT = kernel */
    {3, 5, 17, 13, 3, 3, 8, 8, 0, FS_ACT_RELU},      /* several blocks, F not a multiple of MR */
    {2, 3, 9, 1, 2, 1, 4, 1, 0, FS_ACT_NONE},        /* a one-pixel-wide strip */
    {2, 3, 1, 11, 1, 2, 1, 5, 2, FS_ACT_TANH},       /* one pixel high, with a 1x1 */
    {4, 7, 31, 29, 4, 4, 16, 9, 3, FS_ACT_SIGMOID},  /* primes, non-square transform */
    {6, 11, 13, 37, 7, 7, 32, 32, 1, FS_ACT_TANH},   /* FFT larger than the image */
    {5, 13, 23, 19, 6, 6, 12, 15, 2, FS_ACT_TANH},   /* 3*5 and 2^2*3 lengths */
    {7, 9, 20, 26, 3, 5, 14, 7, 0, FS_ACT_RELU},     /* radix 7 (plain DFT) */
    {50, 23, 40, 37, 16, 16, 32, 32, 2, FS_ACT_TANH}, /* lai2d's layer, shrunk */
    {3, 4, 70, 9, 2, 2, 27, 9, 2, FS_ACT_NONE},      /* many blocks: several chunks */
};
#define NLAYERS (sizeof LAYERS / sizeof LAYERS[0])

static void run_layer(const layer *L, int mults, fs_idx group, fs_idx chunk, int threads,
                      const float *x, const float *spectra, const float *bias, const float *pw,
                      const float *pb, float *y)
{
    fs_fftconv_geom g = {L->c, L->h, L->w, L->f, L->kh, L->kw, L->th, L->tw, L->p, L->act,
                         mults, group, chunk};
    fs_set_num_threads(threads);
    double sec[FS_FFT_STAGES];
    const int st = fs_fftconv2d(&g, x, spectra, fs_fftconv_panel_rows(), bias, pw, pb, y, sec);
    FS_CHECK(st == FS_OK, "fs_fftconv2d status %d", st);
    for (int s = 0; s < FS_FFT_STAGES; s++) FS_CHECK(sec[s] >= 0.0, "stage %d time %g", s, sec[s]);
}

static void test_layer(const layer *L, fs_rng *r)
{
    const int mr = fs_fftconv_panel_rows();
    const fs_idx oh = L->h - L->kh + 1, ow = L->w - L->kw + 1, outc = L->p ? L->p : L->f;
    const fs_idx nbins = L->th * (L->tw / 2 + 1), panels = (L->f + mr - 1) / mr;
    float *x = fs_test_alloc((size_t)(L->c * L->h * L->w));
    float *wt = fs_test_alloc((size_t)(L->f * L->c * L->kh * L->kw));
    float *bias = fs_test_alloc((size_t)L->f), *pw = fs_test_alloc((size_t)(L->p * L->f + 1));
    float *pb = fs_test_alloc((size_t)(L->p + 1));
    float *spectra = fs_test_alloc((size_t)(panels * nbins * 2 * L->c * mr));
    const size_t ny = (size_t)(outc * oh * ow);
    float *want = fs_test_alloc(ny), *got = fs_test_alloc(ny), *again = fs_test_alloc(ny);
    fs_fill_uniform(r, x, (size_t)(L->c * L->h * L->w), -1, 1);
    const float ws = 1.0f / sqrtf((float)(L->c * L->kh * L->kw));
    fs_fill_uniform(r, wt, (size_t)(L->f * L->c * L->kh * L->kw), -ws, ws);
    fs_fill_uniform(r, bias, (size_t)L->f, -0.5f, 0.5f);
    fs_fill_uniform(r, pw, (size_t)(L->p * L->f + 1), -0.5f, 0.5f);
    fs_fill_uniform(r, pb, (size_t)(L->p + 1), -0.5f, 0.5f);
    fs_fftconv_spectra_ref(wt, L->f, L->c, L->kh, L->kw, L->th, L->tw, mr, spectra);
    fs_fftconv_geom g = {L->c, L->h, L->w, L->f, L->kh, L->kw, L->th, L->tw, L->p, L->act,
                         3, 0, 0};
    FS_REQUIRE(fs_fftconv2d_ref(&g, x, wt, bias, pw, pb, want) == FS_OK, "reference");
    char name[128];
    for (int mults = 3; mults <= 4; mults++) {
        fs_fill_nan(got, ny);
        run_layer(L, mults, 0, 0, 1, x, spectra, bias, L->p ? pw : NULL, pb, got);
        snprintf(name, sizeof name, "fftconv c%ld f%ld %ldx%ld k%ldx%ld fft%ldx%ld p%ld act%d m%d",
                 (long)L->c, (long)L->f, (long)L->h, (long)L->w, (long)L->kh, (long)L->kw,
                 (long)L->th, (long)L->tw, (long)L->p, L->act, mults);
        fs_assert_close(name, got, want, ny, 2e-5, 2e-5);
        /* the same bits on 2 threads (slices as tasks) and 6 (the team on each group's
         * columns and rows), and with other groups and chunks */
        const fs_idx blocking[4][2] = {{0, 0}, {1, 1}, {7, 5}, {1000, 1000}};
        for (int threads = 2; threads <= 6; threads += 4)
            for (int b = 0; b < 4; b++) {
                fs_fill_nan(again, ny);
                run_layer(L, mults, blocking[b][0], blocking[b][1], threads, x, spectra, bias,
                          L->p ? pw : NULL, pb, again);
                FS_CHECK(memcmp(got, again, ny * sizeof(float)) == 0,
                         "%s: group %ld chunk %ld on %d threads gives other bits", name,
                         (long)blocking[b][0], (long)blocking[b][1], threads);
            }
    }
    fs_set_num_threads(1);
    free(x), free(wt), free(bias), free(pw), free(pb), free(spectra), free(want), free(got),
        free(again);
}

static void test_refusals(void)
{
    const int mr = fs_fftconv_panel_rows();
    float x[64] = {0}, y[64], sp[4096] = {0};
    fs_fftconv_geom ok = {1, 4, 4, 1, 2, 2, 4, 4, 0, FS_ACT_NONE, 3, 0, 0};
    FS_CHECK(fs_fftconv2d(&ok, x, sp, mr, NULL, NULL, NULL, y, NULL) == FS_OK, "a valid call");
    FS_CHECK(fs_fftconv_workspace_floats(&ok, mr) > 0, "workspace of a valid call");
    fs_fftconv_geom bad = ok;
    FS_CHECK(fs_fftconv2d(&bad, x, sp, mr + 1, NULL, NULL, NULL, y, NULL) == FS_EVALUE,
             "spectra of another mr");
    bad = ok, bad.th = 1;
    FS_CHECK(fs_fftconv2d(&bad, x, sp, mr, NULL, NULL, NULL, y, NULL) == FS_EVALUE, "th < kh");
    bad = ok, bad.h = 1;
    FS_CHECK(fs_fftconv2d(&bad, x, sp, mr, NULL, NULL, NULL, y, NULL) == FS_EVALUE, "h < kh");
    bad = ok, bad.tw = 67;
    FS_CHECK(fs_fftconv2d(&bad, x, sp, mr, NULL, NULL, NULL, y, NULL) == FS_EVALUE,
             "a prime factor above the radix limit");
    bad = ok, bad.mults = 2;
    FS_CHECK(fs_fftconv2d(&bad, x, sp, mr, NULL, NULL, NULL, y, NULL) == FS_EVALUE, "mults 2");
    bad = ok, bad.p = 1;
    FS_CHECK(fs_fftconv2d(&bad, x, sp, mr, NULL, NULL, NULL, y, NULL) == FS_EVALUE,
             "p > 0 without proj_w");
    bad = ok, bad.act = 9;
    FS_CHECK(fs_fftconv2d(&bad, x, sp, mr, NULL, NULL, NULL, y, NULL) == FS_EVALUE, "act 9");
    FS_CHECK(fs_fftconv_workspace_floats(&bad, mr) == -1, "workspace of a refused call");
}

/* One bin of the packed spectra against the definition. */
static void test_spectra_layout(fs_rng *r)
{
    const int mr = fs_fftconv_panel_rows();
    const fs_idx f = mr + 1, c = 3, kh = 2, kw = 3, th = 5, tw = 6, nv = tw / 2 + 1;
    float *wt = fs_test_alloc((size_t)(f * c * kh * kw));
    fs_fill_uniform(r, wt, (size_t)(f * c * kh * kw), -1, 1);
    const fs_idx panels = 2, nbins = th * nv;
    float *sp = fs_test_alloc((size_t)(panels * nbins * 2 * c * mr));
    fs_fftconv_spectra_ref(wt, f, c, kh, kw, th, tw, mr, sp);
    const fs_idx fi = mr, ci = 2, u = 3, v = 2; /* panel 1, row 0 */
    double re = 0, im = 0;
    for (fs_idx a = 0; a < kh; a++)
        for (fs_idx b = 0; b < kw; b++) {
            const double t = -6.283185307179586 * ((double)u * a / th + (double)v * b / tw);
            re += wt[((fi * c + ci) * kh + a) * kw + b] * cos(t);
            im += wt[((fi * c + ci) * kh + a) * kw + b] * sin(t);
        }
    const float *at = sp + ((1 * nbins + v * th + u) * 2) * c * mr + ci * mr + 0;
    FS_CHECK(fabs(at[0] - re / (th * tw)) < 1e-6, "real part %g vs %g", at[0], re / (th * tw));
    FS_CHECK(fabs(at[c * mr] + im / (th * tw)) < 1e-6, "imaginary part (conjugate) %g vs %g",
             at[c * mr], -im / (th * tw));
    FS_CHECK(sp[((1 * nbins + 0) * 2) * c * mr + 0 * mr + 1] == 0.0f, "padded filter not 0");
    free(sp), free(wt);
}

int main(void)
{
    fs_test_isa_from_env();
    fs_rng r;
    fs_rng_seed(&r, 23);
    const fs_fft_table *ft = table_in_use();
    FS_CHECK(strcmp(ft->name, fs_isa_name()) == 0 || strcmp(ft->name, "generic") == 0,
             "fft table %s for isa %s", ft->name, fs_isa_name());
    const fs_idx lane_counts[] = {1, 3, 16, 17, 33};
    for (int n = 1; n <= 72; n++) {
        if (n == 67 || n == 71) continue; /* primes above the radix limit: refused below */
        for (int i = 0; i < 5; i++) test_c2c(ft, n, lane_counts[i], (n + i) & 1, &r);
    }
    const int primes[] = {59, 61, 128, 243, 625, 1000, 1024};
    for (int i = 0; i < 7; i++) test_c2c(ft, primes[i], 16, i & 1, &r);
    static fs_fft_plan plan;
    FS_CHECK(fs_fft_plan_init(&plan, 67) == FS_EVALUE, "plan of a prime above the limit");
    FS_CHECK(fs_fft_plan_init(&plan, 1025) == FS_EVALUE, "plan longer than the limit");
    for (int n = 1; n <= 20; n++) test_real_pairs(ft, n, n % 3 ? 16 : 5, &r);
    test_real_pairs(ft, 45, 32, &r);
    for (size_t i = 0; i < NLAYERS; i++) test_layer(&LAYERS[i], &r);
    test_refusals();
    test_spectra_layout(&r);
    return fs_test_done();
}
