/*
 * activations_impl.h -- the element-wise activations on one chunk of an
 * array, written once with GCC/Clang vector types FS_PW_LANES floats wide
 * and compiled once per ISA by pointwise_*.c (4 lanes: SSE2, 8: AVX2, 16:
 * AVX-512). activations.c splits an array among threads and calls the
 * chunk functions of the ISA in use (pointwise.h).
 *
 * Explicit vectors rather than scalar loops left to the auto-vectoriser:
 * gcc 12 gave up on the tanh loop in its AVX2 build ("control flow in
 * loop") and ran it scalar, 2x slower than its SSE2 build, and sigmoid
 * called libm's expf per element (7 ns). Every lane is computed the same
 * way; a chunk's last few elements go through a padded vector, so within
 * one ISA every element gets the same answer wherever it sits.
 *
 * Semantics (PyTorch's): NaN propagates (relu(NaN) = NaN and its gradient
 * passes); tanh and sigmoid saturate to exactly -1/0 and 1 at the ends.
 */
#include <stdint.h>
#include <string.h>

#include "pointwise.h"

#define PW_CAT_(x, y) x##y
#define PW_CAT(x, y) PW_CAT_(x, y)
#define PWFN(x) PW_CAT(x, FS_PW_SUFFIX)

typedef float PWFN(vf_) __attribute__((vector_size(4 * FS_PW_LANES)));
typedef int32_t PWFN(vi_) __attribute__((vector_size(4 * FS_PW_LANES)));
#define vf PWFN(vf_)
#define vi PWFN(vi_)
#define L FS_PW_LANES

static inline vf PWFN(load_)(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void PWFN(store_)(float *p, vf v) { memcpy(p, &v, sizeof v); }

static inline vf PWFN(splat_)(float a) { return (vf){0} + a; }

/* m ? a : b per lane, m all ones or all zeros (a comparison's result). */
static inline vf PWFN(select_)(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }

#define LOAD PWFN(load_)
#define STORE PWFN(store_)
#define SPLAT PWFN(splat_)
#define SELECT PWFN(select_)

/* 2^n for integer lanes n in [-252, 254]: two normal powers of two, so the
 * product rounds once even where it is subnormal (or 0). */
static inline vf PWFN(pow2_)(vi n, vf x)
{
    const vi n1 = n >> 1, n2 = n - n1;
    return x * (vf)((n1 + 127) << 23) * (vf)((n2 + 127) << 23);
}

/* e^y, y in [-104, 20]: y = n ln2 + r with |r| <= ln2/2, e^r a degree-6
 * fit, ln2 in two parts so n ln2 is exact. Below -104 it is 0 in float. */
static inline vf PWFN(exp_)(vf y)
{
    const vf t = y * 1.44269504f + SPLAT(0.5f);
    /* round to nearest: truncation toward zero, fixed for negative t */
    vi n = __builtin_convertvector(t, vi);
    n -= (vi)(__builtin_convertvector(n, vf) > t) & 1;
    const vf nf = __builtin_convertvector(n, vf);
    const vf r = (y - nf * 0.693145752f) - nf * 1.42860677e-6f;
    vf e = SPLAT(1.38248441e-3f);
    e = e * r + 8.37155048e-3f;
    e = e * r + 4.16682347e-2f;
    e = e * r + 1.66664607e-1f;
    e = e * r + 4.99999931e-1f;
    e = e * r + 1.00000003f;
    e = e * r + 1.0f;
    return PWFN(pow2_)(n, e);
}

static inline vf PWFN(abs_)(vf x) { return (vf)((vi)x & 0x7fffffff); }

/* tanh, odd and saturating: computed on |x| <= 10 (beyond, tanh rounds to
 * 1), sign restored at the end, NaN passed through.
 *   |x| < 0.625: x + x^3 * P(x^2), P a least-squares fit (<= 0.75 ulp);
 *   else:        1 - 2 / (e^(2|x|) + 1), no cancellation: the quotient is
 *                at most 0.45 here.
 * Within 2 ulp of the exact tanh over the whole range (test_pointwise.c). */
static inline vf PWFN(tanh_)(vf x)
{
    vf ax = PWFN(abs_)(x);
    ax = SELECT(ax < 10.0f, ax, SPLAT(10.0f)); /* NaN -> 10, restored below */
    const vf t = ax * ax;
    vf p = SPLAT(2.17802352e-3f);
    p = p * t - 8.21497229e-3f;
    p = p * t + 2.17155527e-2f;
    p = p * t - 5.39493967e-2f;
    p = p * t + 1.33332261e-1f;
    p = p * t - 3.33333313e-1f;
    const vf small = ax + ax * (t * p);
    const vf large = 1.0f - 2.0f / (PWFN(exp_)(2.0f * ax) + 1.0f);
    const vf mag = SELECT(ax < 0.625f, small, large);
    const vi sign = (vi)x & ((vi){0} + INT32_MIN);
    return SELECT(x != x, x, (vf)(((vi)mag & 0x7fffffff) | sign));
}

/* sigmoid, stable for any x: e = e^-|x| never overflows; 1/(1+e) for
 * x >= 0, e/(1+e) below, which reaches exactly 0 (and 1) at the ends. */
static inline vf PWFN(sigmoid_)(vf x)
{
    vf y = -PWFN(abs_)(x);
    y = SELECT(y > -104.0f, y, SPLAT(-104.0f)); /* NaN -> -104, restored below */
    const vf e = PWFN(exp_)(y);
    const vf s = SELECT(x >= 0.0f, 1.0f / (1.0f + e), e / (1.0f + e));
    return SELECT(x != x, x, s);
}

/* ---- the chunk functions (pointwise.h) -------------------------------------- */
/* out[i] = f(a[i], b[i]) for i < n: whole vectors, then the last n % L
 * elements through a padded one. */
#define PW_CHUNK2(name, EXPR)                                                     \
    void PWFN(name)(const float *a, const float *b, float *out, fs_idx n)         \
    {                                                                             \
        fs_idx i = 0;                                                             \
        for (; i + L <= n; i += L) {                                              \
            const vf va = LOAD(a + i), vb = LOAD(b + i);                          \
            (void)vb; /* one-input forms: dead, and dropped */                    \
            STORE(out + i, EXPR);                                                 \
        }                                                                         \
        if (i < n) {                                                              \
            float ta[L] = {0}, tb[L] = {0}, to[L];                                \
            memcpy(ta, a + i, (size_t)(n - i) * sizeof(float));                   \
            memcpy(tb, b + i, (size_t)(n - i) * sizeof(float));                   \
            const vf va = LOAD(ta), vb = LOAD(tb);                                \
            (void)vb;                                                             \
            STORE(to, EXPR);                                                      \
            memcpy(out + i, to, (size_t)(n - i) * sizeof(float));                 \
        }                                                                         \
    }

/* One-input forms pass the input twice (b unused). */
PW_CHUNK2(fs_pw_relu_, SELECT(va < 0.0f, SPLAT(0.0f), va))
PW_CHUNK2(fs_pw_tanh_, PWFN(tanh_)(va))
PW_CHUNK2(fs_pw_sigmoid_, PWFN(sigmoid_)(va))
/* Backward: a = the forward input x, b = dy. Both loads unconditional, so
 * relu's is a blend (a branch per element mispredicted half the time). */
PW_CHUNK2(fs_pw_relu_bwd_, SELECT(va <= 0.0f, SPLAT(0.0f), vb))
PW_CHUNK2(fs_pw_tanh_bwd_, vb * (1.0f - PWFN(tanh_)(va) * PWFN(tanh_)(va)))
PW_CHUNK2(fs_pw_sigmoid_bwd_, vb * PWFN(sigmoid_)(va) * (1.0f - PWFN(sigmoid_)(va)))

#undef vf
#undef vi
#undef L
#undef LOAD
#undef STORE
#undef SPLAT
#undef SELECT
