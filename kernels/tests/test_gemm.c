/*
 * fs_sgemm against fs_sgemm_ref: edge shapes around every blocking
 * boundary of the ISA under test (FASTSEG_ISA; ctest runs each ISA), all
 * transpose combinations, alpha/beta (beta == 0 over NaN), leading
 * dimensions larger than needed, 1 and 2 threads, and two concurrent
 * callers; then awkward shapes under other cache blocks and thread splits
 * (fs_set_blocking, fs_set_gemm_split: the tuner's settings), and blocks
 * set while another thread multiplies.
 */
#include <stdio.h>
#include <string.h>

#include "fastseg/blocking.h"
#include "fastseg/kernels.h"
#include "harness.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* The blocking in use: edge cases sit on its boundaries. */
static fs_blocking blk;
#define MR ((fs_idx)blk.mr)
#define NR ((fs_idx)blk.nr)

static fs_rng rng;
static long cases_run;

/* One case; pad > 0 makes every leading dimension larger than the minimum
 * (a sub-matrix view) and checks the padding is left untouched. */
static void check_case(int ta, int tb, fs_idx m, fs_idx n, fs_idx k,
                       float alpha, float beta, fs_idx pad)
{
    const fs_idx arows = ta ? k : m, acols = ta ? m : k;
    const fs_idx brows = tb ? n : k, bcols = tb ? k : n;
    const fs_idx lda = acols + pad, ldb = bcols + pad, ldc = n + pad;
    const size_t asz = (size_t)(arows * lda), bsz = (size_t)(brows * ldb), csz = (size_t)(m * ldc);
    float *a = fs_test_alloc(asz), *b = fs_test_alloc(bsz);
    float *c = fs_test_alloc(csz), *want = fs_test_alloc(csz);
    fs_fill_uniform(&rng, a, asz, -1.0f, 1.0f);
    fs_fill_uniform(&rng, b, bsz, -1.0f, 1.0f);
    if (beta == 0.0f) {
        fs_fill_nan(c, csz); /* must not leak into the result */
    } else {
        fs_fill_uniform(&rng, c, csz, -1.0f, 1.0f);
        /* Padding columns hold NaN: reading or writing them shows. */
        for (fs_idx i = 0; i < m; i++)
            for (fs_idx jj = n; jj < ldc; jj++) c[i * ldc + jj] = NAN;
    }
    memcpy(want, c, csz * sizeof(float));

    fs_sgemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, want, ldc);
    int rc = fs_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    FS_CHECK(rc == FS_OK, "fs_sgemm returned %d", rc);

    /* Float accumulation against the double oracle: error grows with k. */
    const double atol = 2e-6 * (double)(k + 4) * (fabs(alpha) + fabs(beta) + 1.0);
    int ok = 1;
    for (fs_idx i = 0; i < m && ok; i++) {
        char name[160];
        snprintf(name, sizeof name, "isa=%s threads=%d ta=%d tb=%d m=%lld n=%lld k=%lld "
                 "alpha=%g beta=%g pad=%lld row %lld", fs_isa_name(), fs_get_num_threads(),
                 ta, tb, (long long)m, (long long)n, (long long)k, alpha, beta,
                 (long long)pad, (long long)i);
        ok = fs_assert_close(name, c + i * ldc, want + i * ldc, (size_t)n, 1e-5, atol);
        for (fs_idx jj = n; jj < ldc && ok; jj++)
            if (!(beta == 0.0f ? isnan(c[i * ldc + jj]) : isnan(c[i * ldc + jj]))) {
                FS_CHECK(0, "%s: padding column %lld was written", name, (long long)jj);
                ok = 0;
            }
    }
    cases_run++;
    free(a); free(b); free(c); free(want);
}

static const float alphas[] = {1.0f, -0.5f, 2.0f, 1.0f, 0.0f};
static const float betas[] = {0.0f, 1.0f, 0.0f, -1.5f, 0.5f};
#define NAB ((int)(sizeof alphas / sizeof alphas[0]))

static void run_all(void)
{
    const fs_idx small[] = {0, 1, 2, 3, 5, 7, 13, MR - 1, MR, MR + 1, NR - 1, NR + 1, 97};
    const int ns = (int)(sizeof small / sizeof small[0]);
    int idx = 0;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int x = 0; x < ns; x++)
                for (int y = 0; y < ns; y++)
                    for (int z = 0; z < ns; z++, idx++) {
                        /* alpha/beta and padding rotate so every shape sees a few. */
                        int ab = idx % NAB;
                        check_case(ta, tb, small[x], small[y], small[z], alphas[ab],
                                   betas[ab], (idx / NAB) % 3 == 0 ? 3 : 0);
                    }

    /* Blocking boundaries: just past MC, KC (several K blocks, so the
     * later ones accumulate with beta = 1), NC, and thread splits. */
    const fs_idx big[][3] = {
        {blk.mc + 1, NR * 3 + 5, 9},
        {2 * blk.mc + 7, 33, blk.kc + 1},
        {MR + 1, 2 * NR - 1, 2 * blk.kc + 3},
        {7, blk.nc + 13, 11},          /* parallel: several N blocks */
        {3, 2 * blk.nc + NR + 1, 13},  /* more blocks than threads */
        {50, 1000, 37},
        {131, 77, 300},
        {20, 517, 25},
        /* One tiny dimension, the others large (the no-packing small
         * paths): Linear(1000 -> 2) at batch 128 forward, dx, dw ... */
        {128, 2, 1000}, {128, 1000, 2}, {2, 1000, 128},
        {4, 300, 517}, {300, 4, 517}, {300, 517, 4}, {3, 4, 1001},
        /* ... and big enough to run on two threads. */
        {4, 1500, 700}, {1500, 3, 700}, {2000, 1000, 3}, {5, 40000, 4},
    };
    for (size_t s = 0; s < sizeof big / sizeof big[0]; s++)
        for (int t = 0; t < 4; t++, idx++) {
            int ab = idx % NAB;
            if (alphas[ab] == 0.0f) ab = 1;
            check_case(t >> 1, t & 1, big[s][0], big[s][1], big[s][2], alphas[ab], betas[ab],
                       t == 3 ? 5 : 0);
        }
}

/* Awkward shapes (1, primes, odd sizes, and sizes past the blocks in use)
 * in every transpose case: what run_other_blocks checks each blocking on. */
static void run_awkward(void)
{
    const fs_idx dims[][3] = {
        {1, 1, 1}, {1, 97, 13}, {13, 1, 97}, {97, 13, 1}, {7, 131, 257},
        {blk.mc + 1, 2 * NR + 3, 2 * blk.kc + 5}, {3 * MR - 1, blk.nc + NR + 1, 19},
        {2 * blk.mc + 3, 3 * NR + 7, blk.kc - 1}, {50, 999, 251},
    };
    int idx = 0;
    for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++)
        for (int t = 0; t < 4; t++, idx++) {
            const int ab = idx % 4; /* alphas/betas 0..3: none with alpha 0 */
            check_case(t >> 1, t & 1, dims[s][0], dims[s][1], dims[s][2], alphas[ab],
                       betas[ab], t == 1 ? 3 : 0);
        }
}

/* Other cache blocks (fs_set_blocking, what the tuner sets), on 1 and 2
 * threads, and every thread split: still the reference, to rounding. */
static void run_other_blocks(void)
{
    fs_blocking fitted;
    FS_REQUIRE(fs_isa_blocking_fitted(NULL, &fitted) == FS_OK, "no fitted blocking");
    const fs_idx mr = fitted.mr, nr = fitted.nr;
    const fs_idx sets[][3] = {
        {mr, FS_GEMM_KC_LIMIT_MIN, nr},   /* the smallest blocks allowed */
        {3 * mr, 37, 3 * nr},             /* odd ones */
        {40 * mr, 512, 64 * nr},          /* large ones */
        {0, 384, 0},                      /* KC alone (0: fitted) */
    };
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        FS_CHECK_EQ_INT(fs_set_blocking(NULL, sets[s][0], sets[s][1], sets[s][2]), FS_OK);
        FS_REQUIRE(fs_isa_blocking(NULL, &blk) == FS_OK, "no blocking");
        FS_CHECK(blk.mc == (sets[s][0] ? sets[s][0] : fitted.mc) &&
                     blk.kc == sets[s][1] && blk.nc == (sets[s][2] ? sets[s][2] : fitted.nc),
                 "set blocks %lld %lld %lld, got %lld %lld %lld", (long long)sets[s][0],
                 (long long)sets[s][1], (long long)sets[s][2], (long long)blk.mc,
                 (long long)blk.kc, (long long)blk.nc);
        for (int threads = 1; threads <= 2; threads++) {
            fs_set_num_threads(threads);
            run_awkward();
        }
    }
    FS_CHECK_EQ_INT(fs_set_blocking(NULL, 0, 0, 0), FS_OK);
    FS_REQUIRE(fs_isa_blocking(NULL, &blk) == FS_OK, "no blocking");
    FS_CHECK(memcmp(&blk, &fitted, sizeof blk) == 0, "0, 0, 0 did not restore the fit");
    fs_set_num_threads(2);
    for (int mode = FS_SPLIT_AUTO; mode <= FS_SPLIT_M; mode++)
        for (int blocks = 0; blocks <= 2; blocks++) {
            FS_CHECK_EQ_INT(fs_set_gemm_split(mode, blocks), FS_OK);
            run_awkward();
        }
    FS_CHECK_EQ_INT(fs_set_gemm_split(FS_SPLIT_AUTO, 0), FS_OK);
}

/* One thread sets other blocks over and over while another multiplies: a
 * call keeps the table it started with, so no call mixes two blockings
 * (its workspace sized by one, its loops cut by another) and every result
 * is right. */
static void run_set_while_computing(void)
{
#ifdef _OPENMP
    const fs_idx m = 61, n = 150, k = 700;
    float *a = fs_test_alloc(m * k), *b = fs_test_alloc(k * n);
    float *c = fs_test_alloc(m * n), *want = fs_test_alloc(m * n);
    fs_fill_uniform(&rng, a, m * k, -1, 1);
    fs_fill_uniform(&rng, b, k * n, -1, 1);
    fs_sgemm_ref(0, 1, m, n, k, 1.0f, a, k, b, k, 0.0f, want, n);
    fs_set_num_threads(1);
    int rc = FS_OK, bad = 0;
#pragma omp parallel num_threads(2)
    {
        if (omp_get_thread_num() == 0) {
            for (int rep = 0; rep < 30; rep++) {
                rc |= fs_sgemm(0, 1, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
                for (fs_idx i = 0; i < m * n; i++)
                    if (fabsf(c[i] - want[i]) > 1e-3f) bad++;
            }
        } else {
            for (int rep = 0; rep < 3000; rep++)
                fs_set_blocking(NULL, (rep % 3 + 1) * blk.mr, 16 + 48 * (rep % 5),
                                (rep % 4 + 1) * blk.nr);
        }
    }
    FS_CHECK(rc == FS_OK && bad == 0, "GEMMs beside fs_set_blocking: status %d, %d wrong",
             rc, bad);
    FS_CHECK_EQ_INT(fs_set_blocking(NULL, 0, 0, 0), FS_OK);
    free(a); free(b); free(c); free(want);
#endif
}

/* Two callers at once (as two Python threads with the GIL released would
 * be): each must get its own packing workspace. */
static void run_concurrent(void)
{
#ifdef _OPENMP
    const fs_idx m = 70, n = 90, k = 300;
    float *a = fs_test_alloc(m * k), *b = fs_test_alloc(k * n);
    float *c[2] = {fs_test_alloc(m * n), fs_test_alloc(m * n)};
    float *want = fs_test_alloc(m * n);
    fs_fill_uniform(&rng, a, m * k, -1, 1);
    fs_fill_uniform(&rng, b, k * n, -1, 1);
    fs_sgemm_ref(0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, want, n);
    int rc[2] = {0, 0};
#pragma omp parallel num_threads(2)
    {
        int t = omp_get_thread_num();
        for (int rep = 0; rep < 20 && t < 2; rep++)
            rc[t] |= fs_sgemm(0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c[t], n);
    }
    FS_CHECK(rc[0] == FS_OK && rc[1] == FS_OK, "concurrent calls failed");
    fs_assert_close("concurrent caller 0", c[0], want, m * n, 1e-5, 1e-3);
    fs_assert_close("concurrent caller 1", c[1], want, m * n, 1e-5, 1e-3);
    free(a); free(b); free(c[0]); free(c[1]); free(want);
#endif
}

int main(void)
{
    fs_rng_seed(&rng, 12345);
    fs_test_isa_from_env();
    const char *isa = fs_isa_name();
    FS_REQUIRE(fs_isa_blocking(NULL, &blk) == FS_OK, "no blocking for the ISA in use");
    printf("blocking: MR %d NR %d MC %lld KC %lld NC %lld\n", blk.mr, blk.nr,
           (long long)blk.mc, (long long)blk.kc, (long long)blk.nc);

    /* Names that cannot be selected change nothing. */
    FS_CHECK_EQ_INT(fs_select_isa("no-such-isa"), FS_EVALUE);
    FS_CHECK_EQ_INT(fs_select_isa(NULL), FS_EVALUE);
    FS_CHECK_EQ_INT(fs_isa_supported("no-such-isa"), -1);
    FS_CHECK_EQ_INT(fs_isa_supported("generic"), 1);
    FS_CHECK(strcmp(fs_isa_name(), isa) == 0, "a rejected name changed the ISA");
    const char *all[] = {"avx512", "avx2"};
    for (int s = 0; s < 2; s++)
        if (fs_isa_supported(all[s]) == 0) {
            FS_CHECK_EQ_INT(fs_select_isa(all[s]), FS_EVALUE);
            FS_CHECK(strcmp(fs_isa_name(), isa) == 0, "unsupported %s changed the ISA", all[s]);
        }
    FS_CHECK_EQ_INT(fs_select_isa("generic"), FS_OK);
    FS_CHECK(strcmp(fs_isa_name(), "generic") == 0, "select generic -> %s", fs_isa_name());
    FS_CHECK_EQ_INT(fs_select_isa(isa), FS_OK);

    for (int threads = 1; threads <= 2; threads++) {
        fs_set_num_threads(threads);
        run_all();
    }
    run_concurrent();
    run_other_blocks();
    run_set_while_computing();
    printf("%ld gemm cases (isa %s)\n", cases_run, fs_isa_name());
    return fs_test_done();
}
