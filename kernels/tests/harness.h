/*
 * harness.h -- a tiny, header-only test harness shared by kernels/tests/.
 *
 * Each test_*.c is its own executable (ctest runs it); a failed check prints
 * file:line and a message and the executable exits nonzero at the end (or at
 * once for FS_REQUIRE), so one run reports every broken case, not just the
 * first. Everything is static so several tests can include it freely.
 *
 *   FS_CHECK(cond, fmt, ...)        record a failure, keep going
 *   FS_REQUIRE(cond, fmt, ...)      fail and exit now (setup that later
 *                                   checks depend on: an allocation, ...)
 *   FS_CHECK_EQ_INT(a, b)           integers equal
 *   fs_rng / fs_rng_seed / fs_rng_uniform / fs_fill_uniform
 *                                   deterministic xorshift RNG (same numbers
 *                                   on every platform, unlike rand())
 *   fs_fill_const / fs_fill_nan     fill arrays (NaN: catch reads of
 *                                   memory that must not be read)
 *   fs_assert_close(name, got, want, count, rtol, atol)
 *                                   element-wise |got-want| <= atol + rtol*|want|,
 *                                   NaN only equal to NaN; reports the worst
 *   fs_test_isa_from_env()          the ISA this run tests (FASTSEG_ISA; ctest
 *                                   runs each test once per ISA): checks it is
 *                                   in use, or exits 77 (skipped) saying why
 *                                   this CPU cannot run it
 *   fs_test_done()                  print a summary, return the exit status
 */
#ifndef FASTSEG_TEST_HARNESS_H
#define FASTSEG_TEST_HARNESS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastseg/kernels.h"

static int fs_test_failures = 0;
static long fs_test_checks = 0;

#define FS_CHECK(cond, ...)                                                  \
    do {                                                                     \
        fs_test_checks++;                                                    \
        if (!(cond)) {                                                       \
            fs_test_failures++;                                              \
            fprintf(stderr, "FAIL %s:%d: (%s) ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

#define FS_REQUIRE(cond, ...)                                                \
    do {                                                                     \
        FS_CHECK(cond, __VA_ARGS__);                                         \
        if (!(cond)) {                                                       \
            fprintf(stderr, "aborting: a required check failed\n");          \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

#define FS_CHECK_EQ_INT(a, b)                                                \
    FS_CHECK((long long)(a) == (long long)(b), "%s = %lld, expected %s = %lld", \
             #a, (long long)(a), #b, (long long)(b))

/* ---- deterministic RNG (xorshift64*) ----------------------------------- */
typedef struct { uint64_t s; } fs_rng;

static inline void fs_rng_seed(fs_rng *r, uint64_t seed)
{
    r->s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (r->s == 0) r->s = 1;
}

static inline uint64_t fs_rng_next(fs_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [lo, hi), from the top 24 bits so every value is exact in float. */
static inline float fs_rng_uniform(fs_rng *r, float lo, float hi)
{
    float u = (float)(fs_rng_next(r) >> 40) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * u;
}

static inline void fs_fill_uniform(fs_rng *r, float *x, size_t count, float lo, float hi)
{
    for (size_t i = 0; i < count; i++) x[i] = fs_rng_uniform(r, lo, hi);
}

static inline void fs_fill_const(float *x, size_t count, float v)
{
    for (size_t i = 0; i < count; i++) x[i] = v;
}

static inline void fs_fill_nan(float *x, size_t count) { fs_fill_const(x, count, NAN); }

/* malloc that never returns NULL to a test (and never asks for 0 bytes, so a
 * zero-size case still gets a valid pointer to pass around). */
static inline float *fs_test_alloc(size_t count)
{
    float *p = (float *)malloc((count ? count : 1) * sizeof(float));
    FS_REQUIRE(p != NULL, "out of memory allocating %zu floats", count);
    return p;
}

/* ---- approximate comparison -------------------------------------------- */
/* Returns 1 when every element matches; otherwise records one failure that
 * names the worst element, so a broken kernel does not flood the log. */
static inline int fs_assert_close(const char *name, const float *got, const float *want,
                                  size_t count, double rtol, double atol)
{
    size_t bad = 0, worst = 0;
    double worst_excess = -1.0;
    for (size_t i = 0; i < count; i++) {
        double g = got[i], w = want[i];
        int ok;
        double excess;
        if (isnan(w) || isnan(g)) {
            ok = isnan(w) && isnan(g);
            excess = ok ? 0.0 : INFINITY;
        } else if (isinf(w) || isinf(g)) {
            ok = g == w;
            excess = ok ? 0.0 : INFINITY;
        } else {
            excess = fabs(g - w) - (atol + rtol * fabs(w));
            ok = excess <= 0.0;
        }
        if (!ok) {
            bad++;
            if (excess > worst_excess) { worst_excess = excess; worst = i; }
        }
    }
    fs_test_checks++;
    if (bad) {
        fs_test_failures++;
        fprintf(stderr, "FAIL %s: %zu of %zu elements differ; worst [%zu] got %.9g want %.9g"
                " (rtol %g, atol %g)\n", name, bad, count, worst,
                (double)got[worst], (double)want[worst], rtol, atol);
        return 0;
    }
    return 1;
}

/* ---- the ISA under test ------------------------------------------------- */
/* Exit status ctest reads as "skipped" (SKIP_RETURN_CODE in CMakeLists). */
#define FS_TEST_SKIPPED 77

static inline void fs_test_isa_from_env(void)
{
    const char *env = getenv("FASTSEG_ISA");
    if (!env || !*env || strcmp(env, "auto") == 0) {
        printf("isa: %s (this CPU's choice)\n", fs_isa_name());
        return;
    }
    const int supported = fs_isa_supported(env);
    FS_REQUIRE(supported >= 0, "FASTSEG_ISA=%s is not an ISA fastseg knows", env);
    if (supported == 0) {
        const char *why = fs_isa_env_error();
        printf("skipped: %s\n", why ? why : "this CPU cannot run it");
        exit(FS_TEST_SKIPPED);
    }
    FS_REQUIRE(fs_isa_env_error() == NULL, "FASTSEG_ISA rejected: %s", fs_isa_env_error());
    FS_REQUIRE(strcmp(fs_isa_name(), env) == 0, "FASTSEG_ISA=%s ignored: %s in use", env,
               fs_isa_name());
    printf("isa: %s (forced by FASTSEG_ISA)\n", env);
}

/* Call last in main: `return fs_test_done();` */
static inline int fs_test_done(void)
{
    if (fs_test_failures) {
        fprintf(stderr, "%d of %ld checks FAILED\n", fs_test_failures, fs_test_checks);
        return 1;
    }
    printf("all %ld checks passed\n", fs_test_checks);
    return 0;
}

#endif /* FASTSEG_TEST_HARNESS_H */
