/*
 * fft_impl.h -- the vertical FFT kernels of fftconv_internal.h, written once
 * and compiled per ISA (fft_generic.c, fft_avx2.c, fft_avx512.c define
 * FS_FFT_SUFFIX and include this). Every hot loop runs over lanes, the
 * independent signals side by side, so the compiler vectorises it at the
 * ISA's width with no shuffles; nothing here depends on the lane count but
 * the loop trip counts, so each lane's arithmetic is the same whatever the
 * batch (and the blocking) is.
 *
 * Plain C, no -ffast-math: the operations are the textbook butterflies in a
 * fixed order (the compiler may fuse a multiply and an add into an FMA on
 * the AVX builds, which changes rounding between ISAs, not between runs).
 */
#include <stdint.h>
#include <string.h>

#include "fftconv_internal.h"

#ifndef FS_FFT_SUFFIX
#error "define FS_FFT_SUFFIX before including fft_impl.h"
#endif
#define FS_FFT_CAT_(a, b) a##_##b
#define FS_FFT_CAT(a, b) FS_FFT_CAT_(a, b)
#define FN(name) FS_FFT_CAT(fs_fft_##name, FS_FFT_SUFFIX)

#define INLINE static inline __attribute__((always_inline))
/* Vectors of lanes per iteration of the butterflies' lane loops. Two on AVX-512
 * (fft_avx512.c): a radix-9 or radix-5 butterfly has more input and output
 * pointers than there are registers, reloaded from the stack every iteration, and
 * two vectors an iteration halve those reloads (Zen 4, one thread, in cache, a
 * 256-lane transform of 45 points 1270 -> 950 cycles a vector, of 24 or 25 ~560
 * -> ~460; lai2d 584x565's inverse transforms 0.67 -> 0.59 s CPU). Not on AVX2,
 * 16 registers, where it measured slower (the same inverse transforms under
 * FASTSEG_ISA=avx2, 0.75 -> 0.79 s). Each lane's arithmetic is the same either way. */
#ifndef FS_FFT_LANE_UNROLL
#define FS_FFT_LANE_UNROLL 1
#endif
#define FS_FFT_PRAGMA_(x) _Pragma(#x)
#define FS_FFT_PRAGMA(x) FS_FFT_PRAGMA_(x)
#define LANES_LOOP                                                   \
    _Pragma("GCC ivdep") FS_FFT_PRAGMA(GCC unroll FS_FFT_LANE_UNROLL) \
    for (fs_idx l = 0; l < lanes; l++)

/* (xr + i xi) * (wr + i wi) */
#define CMUL(xr, xi, wr, wi, outr, outi)       \
    do {                                       \
        const float cr_ = (xr) * (wr) - (xi) * (wi); \
        const float ci_ = (xr) * (wi) + (xi) * (wr); \
        (outr) = cr_;                          \
        (outi) = ci_;                          \
    } while (0)

/* Load input point q (of p), twiddled by w[q] when `twid`. */
#define LOAD_TW(q, ar, ai)                                              \
    float ar = a[(q) * qs + l], ai = a[(q) * qs + iim + l];             \
    if (twid) CMUL(a[(q) * qs + l], a[(q) * qs + iim + l], wr[q], wi[q], ar, ai);

/* ---- one Stockham pass per radix ------------------------------------------
 * in: point j*p*M + k + q*M (q < p) of the previous passes' DFTs; out: point
 * (j + L'*h)*M + k (h < p). sg = +1 forward, -1 inverse: the twiddle
 * exp(-sg*i*theta) is (cos, -sg*sin), and multiplying by -sg*i maps
 * (r, i) -> (sg*i, -sg*r). */

INLINE void FN(bfly2)(const int twid, const float *restrict a, ptrdiff_t qs, ptrdiff_t iim,
                      float *const *yo, ptrdiff_t oim, const float *wr,
                      const float *wi, fs_idx lanes)
{
    float *restrict y0 = yo[0], *restrict y1 = yo[1];
    LANES_LOOP {
        const float a0r = a[l], a0i = a[iim + l];
        LOAD_TW(1, a1r, a1i)
        y0[l] = a0r + a1r;
        y0[oim + l] = a0i + a1i;
        y1[l] = a0r - a1r;
        y1[oim + l] = a0i - a1i;
    }
}

INLINE void FN(bfly4)(const int twid, const float sg, const float *restrict a, ptrdiff_t qs,
                      ptrdiff_t iim, float *const *yo, ptrdiff_t oim,
                      const float *wr, const float *wi, fs_idx lanes)
{
    float *restrict y0 = yo[0], *restrict y1 = yo[1], *restrict y2 = yo[2], *restrict y3 = yo[3];
    LANES_LOOP {
        const float a0r = a[l], a0i = a[iim + l];
        LOAD_TW(1, a1r, a1i)
        LOAD_TW(2, a2r, a2i)
        LOAD_TW(3, a3r, a3i)
        const float t0r = a0r + a2r, t0i = a0i + a2i;
        const float t1r = a0r - a2r, t1i = a0i - a2i;
        const float t2r = a1r + a3r, t2i = a1i + a3i;
        const float dr = a1r - a3r, di = a1i - a3i;
        const float t3r = sg * di, t3i = -sg * dr; /* -sg*i*(a1 - a3) */
        y0[l] = t0r + t2r;
        y0[oim + l] = t0i + t2i;
        y1[l] = t1r + t3r;
        y1[oim + l] = t1i + t3i;
        y2[l] = t0r - t2r;
        y2[oim + l] = t0i - t2i;
        y3[l] = t1r - t3r;
        y3[oim + l] = t1i - t3i;
    }
}

/* Radix 8: two radix-4 DFTs (even and odd inputs) joined by the eighth roots. */
INLINE void FN(bfly8)(const int twid, const float sg, const float *restrict a, ptrdiff_t qs,
                      ptrdiff_t iim, float *const *yo, ptrdiff_t oim,
                      const float *wr, const float *wi, fs_idx lanes)
{
    float *restrict y0 = yo[0], *restrict y1 = yo[1], *restrict y2 = yo[2], *restrict y3 = yo[3],
                   *restrict y4 = yo[4], *restrict y5 = yo[5], *restrict y6 = yo[6],
                   *restrict y7 = yo[7];
    const float c = 0.707106781186547524400844362105f; /* sqrt(2)/2 */
    LANES_LOOP {
        const float a0r = a[l], a0i = a[iim + l];
        LOAD_TW(1, a1r, a1i)
        LOAD_TW(2, a2r, a2i)
        LOAD_TW(3, a3r, a3i)
        LOAD_TW(4, a4r, a4i)
        LOAD_TW(5, a5r, a5i)
        LOAD_TW(6, a6r, a6i)
        LOAD_TW(7, a7r, a7i)
        /* E = DFT4(a0, a2, a4, a6), O = DFT4(a1, a3, a5, a7) */
        const float e0r = a0r + a4r, e0i = a0i + a4i, e1r = a0r - a4r, e1i = a0i - a4i;
        const float e2r = a2r + a6r, e2i = a2i + a6i, edr = a2r - a6r, edi = a2i - a6i;
        const float E0r = e0r + e2r, E0i = e0i + e2i, E2r = e0r - e2r, E2i = e0i - e2i;
        const float E1r = e1r + sg * edi, E1i = e1i - sg * edr;
        const float E3r = e1r - sg * edi, E3i = e1i + sg * edr;
        const float o0r = a1r + a5r, o0i = a1i + a5i, o1r = a1r - a5r, o1i = a1i - a5i;
        const float o2r = a3r + a7r, o2i = a3i + a7i, odr = a3r - a7r, odi = a3i - a7i;
        const float O0r = o0r + o2r, O0i = o0i + o2i, O2r = o0r - o2r, O2i = o0i - o2i;
        const float O1r = o1r + sg * odi, O1i = o1i - sg * odr;
        const float O3r = o1r - sg * odi, O3i = o1i + sg * odr;
        /* w^1 = c(1 - sg i), w^2 = -sg i, w^3 = c(-1 - sg i) */
        const float P1r = c * (O1r + sg * O1i), P1i = c * (O1i - sg * O1r);
        const float P2r = sg * O2i, P2i = -sg * O2r;
        const float P3r = c * (sg * O3i - O3r), P3i = -c * (O3i + sg * O3r);
        y0[l] = E0r + O0r;
        y0[oim + l] = E0i + O0i;
        y4[l] = E0r - O0r;
        y4[oim + l] = E0i - O0i;
        y1[l] = E1r + P1r;
        y1[oim + l] = E1i + P1i;
        y5[l] = E1r - P1r;
        y5[oim + l] = E1i - P1i;
        y2[l] = E2r + P2r;
        y2[oim + l] = E2i + P2i;
        y6[l] = E2r - P2r;
        y6[oim + l] = E2i - P2i;
        y3[l] = E3r + P3r;
        y3[oim + l] = E3i + P3i;
        y7[l] = E3r - P3r;
        y7[oim + l] = E3i - P3i;
    }
}

/* One radix-3 DFT of three complex values, in place (h3 = sg * sqrt(3)/2 in scope):
 * bfly3's butterfly, and bfly9's six. */
#define DFT3(x0r, x0i, x1r, x1i, x2r, x2i)                                  \
    do {                                                                    \
        const float t1r_ = x1r + x2r, t1i_ = x1i + x2i;                     \
        const float t2r_ = x1r - x2r, t2i_ = x1i - x2i;                     \
        const float mr_ = x0r - 0.5f * t1r_, mi_ = x0i - 0.5f * t1i_;       \
        const float nr_ = h3 * t2i_, ni_ = -h3 * t2r_; /* -sg*i*h3*t2 */     \
        x0r = x0r + t1r_;                                                   \
        x0i = x0i + t1i_;                                                   \
        x1r = mr_ + nr_;                                                    \
        x1i = mi_ + ni_;                                                    \
        x2r = mr_ - nr_;                                                    \
        x2i = mi_ - ni_;                                                    \
    } while (0)

INLINE void FN(bfly3)(const int twid, const float sg, const float *restrict a, ptrdiff_t qs,
                      ptrdiff_t iim, float *const *yo, ptrdiff_t oim,
                      const float *wr, const float *wi, fs_idx lanes)
{
    float *restrict y0 = yo[0], *restrict y1 = yo[1], *restrict y2 = yo[2];
    const float h3 = sg * 0.866025403784438646763723170753f; /* sg * sqrt(3)/2 */
    LANES_LOOP {
        float a0r = a[l], a0i = a[iim + l];
        LOAD_TW(1, a1r, a1i)
        LOAD_TW(2, a2r, a2i)
        DFT3(a0r, a0i, a1r, a1i, a2r, a2i);
        y0[l] = a0r;
        y0[oim + l] = a0i;
        y1[l] = a1r;
        y1[oim + l] = a1i;
        y2[l] = a2r;
        y2[oim + l] = a2i;
    }
}

INLINE void FN(bfly5)(const int twid, const float sg, const float *restrict a, ptrdiff_t qs,
                      ptrdiff_t iim, float *const *yo, ptrdiff_t oim,
                      const float *wr, const float *wi, fs_idx lanes)
{
    float *restrict y0 = yo[0], *restrict y1 = yo[1], *restrict y2 = yo[2], *restrict y3 = yo[3],
                   *restrict y4 = yo[4];
    const float c1 = 0.309016994374947424102293417183f;  /* cos(2 pi/5) */
    const float c2 = -0.809016994374947424102293417183f; /* cos(4 pi/5) */
    const float s1 = sg * 0.951056516295153572116439333379f; /* sg * sin(2 pi/5) */
    const float s2 = sg * 0.587785252292473129168705954639f; /* sg * sin(4 pi/5) */
    LANES_LOOP {
        const float a0r = a[l], a0i = a[iim + l];
        LOAD_TW(1, a1r, a1i)
        LOAD_TW(2, a2r, a2i)
        LOAD_TW(3, a3r, a3i)
        LOAD_TW(4, a4r, a4i)
        const float t1r = a1r + a4r, t1i = a1i + a4i;
        const float t2r = a2r + a3r, t2i = a2i + a3i;
        const float t3r = a1r - a4r, t3i = a1i - a4i;
        const float t4r = a2r - a3r, t4i = a2i - a3i;
        const float m1r = a0r + c1 * t1r + c2 * t2r, m1i = a0i + c1 * t1i + c2 * t2i;
        const float m2r = a0r + c2 * t1r + c1 * t2r, m2i = a0i + c2 * t1i + c1 * t2i;
        /* n1 = -sg*i*(sin1 t3 + sin2 t4), n2 = -sg*i*(sin2 t3 - sin1 t4) */
        const float u1r = s1 * t3r + s2 * t4r, u1i = s1 * t3i + s2 * t4i;
        const float u2r = s2 * t3r - s1 * t4r, u2i = s2 * t3i - s1 * t4i;
        y0[l] = a0r + t1r + t2r;
        y0[oim + l] = a0i + t1i + t2i;
        y1[l] = m1r + u1i;
        y1[oim + l] = m1i - u1r;
        y4[l] = m1r - u1i;
        y4[oim + l] = m1i + u1r;
        y2[l] = m2r + u2i;
        y2[oim + l] = m2i - u2r;
        y3[l] = m2r - u2i;
        y3[oim + l] = m2i + u2r;
    }
}

/* x *= w^k, w = exp(-sg 2 pi i / 9): (c, s) = (cos, sin)(2 pi k / 9). */
#define ROT9(xr, xi, c, s)                                                  \
    do {                                                                    \
        const float r_ = (xr) * (c) + sg * (xi) * (s);                      \
        (xi) = (xi) * (c) - sg * (xr) * (s);                                \
        (xr) = r_;                                                          \
    } while (0)

/* Radix 9 as 3 x 3: with q = 3r + s and h = h1 + 3 h2, the DFT3s over r of
 * (a_s, a_s+3, a_s+6), each output h1 turned by w^(h1 s), then the DFT3s over s.
 * One pass over the data instead of two radix-3 passes (lengths 45 = 9 x 5, 27,
 * 18, 36, ...). */
INLINE void FN(bfly9)(const int twid, const float sg, const float *restrict a, ptrdiff_t qs,
                      ptrdiff_t iim, float *const *yo, ptrdiff_t oim,
                      const float *wr, const float *wi, fs_idx lanes)
{
    float *restrict y0 = yo[0], *restrict y1 = yo[1], *restrict y2 = yo[2], *restrict y3 = yo[3],
                   *restrict y4 = yo[4], *restrict y5 = yo[5], *restrict y6 = yo[6],
                   *restrict y7 = yo[7], *restrict y8 = yo[8];
    const float h3 = sg * 0.866025403784438646763723170753f; /* sg * sqrt(3)/2 */
    const float c1 = 0.766044443118978035202392650555f;  /* cos(2 pi/9) */
    const float s1 = 0.642787609686539326322643409907f;  /* sin(2 pi/9) */
    const float c2 = 0.173648177666930348851716626769f;  /* cos(4 pi/9) */
    const float s2 = 0.984807753012208059366743024590f;  /* sin(4 pi/9) */
    const float c4 = -0.939692620785908384054109277324f; /* cos(8 pi/9) */
    const float s4 = 0.342020143325668733044099614682f;  /* sin(8 pi/9) */
    LANES_LOOP {
        float a0r = a[l], a0i = a[iim + l];
        LOAD_TW(1, a1r, a1i)
        LOAD_TW(2, a2r, a2i)
        LOAD_TW(3, a3r, a3i)
        LOAD_TW(4, a4r, a4i)
        LOAD_TW(5, a5r, a5i)
        LOAD_TW(6, a6r, a6i)
        LOAD_TW(7, a7r, a7i)
        LOAD_TW(8, a8r, a8i)
        DFT3(a0r, a0i, a3r, a3i, a6r, a6i); /* s = 0: h1 = 0, 1, 2 in a0, a3, a6 */
        DFT3(a1r, a1i, a4r, a4i, a7r, a7i); /* s = 1 */
        DFT3(a2r, a2i, a5r, a5i, a8r, a8i); /* s = 2 */
        ROT9(a4r, a4i, c1, s1);             /* h1 = 1, s = 1: w^1 */
        ROT9(a7r, a7i, c2, s2);             /* h1 = 2, s = 1: w^2 */
        ROT9(a5r, a5i, c2, s2);             /* h1 = 1, s = 2: w^2 */
        ROT9(a8r, a8i, c4, s4);             /* h1 = 2, s = 2: w^4 */
        DFT3(a0r, a0i, a1r, a1i, a2r, a2i); /* h1 = 0: outputs 0, 3, 6 */
        DFT3(a3r, a3i, a4r, a4i, a5r, a5i); /* h1 = 1: outputs 1, 4, 7 */
        DFT3(a6r, a6i, a7r, a7i, a8r, a8i); /* h1 = 2: outputs 2, 5, 8 */
        y0[l] = a0r;
        y0[oim + l] = a0i;
        y3[l] = a1r;
        y3[oim + l] = a1i;
        y6[l] = a2r;
        y6[oim + l] = a2i;
        y1[l] = a3r;
        y1[oim + l] = a3i;
        y4[l] = a4r;
        y4[oim + l] = a4i;
        y7[l] = a5r;
        y7[oim + l] = a5i;
        y2[l] = a6r;
        y2[oim + l] = a6i;
        y5[l] = a7r;
        y5[oim + l] = a7i;
        y8[l] = a8r;
        y8[oim + l] = a8i;
    }
}
#undef DFT3
#undef ROT9

/* Any other prime p: y_h = sum_q a_q (cos - sg i sin)(2 pi hq/p). Rare (the
 * cost model asks for 2-3-5 lengths); O(p^2), correct for any p. */
static void FN(bfly_any)(int p, int twid, float sg, const float *restrict a, ptrdiff_t qs,
                         ptrdiff_t iim, float *const *yo, ptrdiff_t oim,
                         const float *wr, const float *wi, const float *cs, fs_idx lanes)
{
    for (int h = 0; h < p; h++) {
        LANES_LOOP {
            float sr = 0.0f, si = 0.0f;
            for (int q = 0; q < p; q++) {
                float xr = a[q * qs + l], xi = a[q * qs + iim + l];
                if (twid && q > 0) CMUL(a[q * qs + l], a[q * qs + iim + l], wr[q], wi[q], xr, xi);
                const int m = (h * q) % p;
                const float c = cs[2 * m], s = sg * cs[2 * m + 1];
                sr += xr * c + xi * s;
                si += xi * c - xr * s;
            }
            yo[h][l] = sr;
            yo[h][oim + l] = si;
        }
    }
}

/* One pass: its outputs go to `out` (stride os, imaginary at +oim); on the last
 * pass (M = 1, output j + L'h) only those below `keep`, the others to rows of
 * `drop` (2*lanes floats apart, one per radix point), so a pruned transform
 * writes its kept points in place with no copy. */
static void FN(pass)(const fs_fft_plan *pl, int s, float sg, const float *restrict in,
                     ptrdiff_t is, ptrdiff_t iim, float *restrict out, ptrdiff_t os,
                     ptrdiff_t oim, fs_idx lanes, int keep, float *drop)
{
    const int p = pl->radix[s], before = pl->before[s];
    const int m = pl->n / (before * p);
    const float *tw = pl->tw + pl->tw_at[s];
    const ptrdiff_t qs = (ptrdiff_t)m * is, hs = (ptrdiff_t)before * m * os;
    float wr[FS_FFT_MAX_RADIX], wi[FS_FFT_MAX_RADIX];
    float *yo[FS_FFT_MAX_RADIX];
    for (int j = 0; j < before; j++) {
        const int twid = j != 0;
        /* w[q] = exp(-sg*i*2 pi jq/(p L')) for q < p (w[0] = 1, unused). */
        for (int q = 1; q < p; q++) {
            wr[q] = tw[2 * (j * (p - 1) + q - 1)];
            wi[q] = -sg * tw[2 * (j * (p - 1) + q - 1) + 1];
        }
        for (int k = 0; k < m; k++) {
            const float *a = in + ((ptrdiff_t)j * p * m + k) * is;
            float *y = out + ((ptrdiff_t)j * m + k) * os;
            for (int h = 0; h < p; h++)
                yo[h] = (j + before * h) * m + k < keep ? y + h * hs
                                                         : drop + (ptrdiff_t)h * 2 * lanes;
            switch (p) {
            case 2:
                if (twid) FN(bfly2)(1, a, qs, iim, yo, oim, wr, wi, lanes);
                else FN(bfly2)(0, a, qs, iim, yo, oim, wr, wi, lanes);
                break;
            case 4:
                if (twid) FN(bfly4)(1, sg, a, qs, iim, yo, oim, wr, wi, lanes);
                else FN(bfly4)(0, sg, a, qs, iim, yo, oim, wr, wi, lanes);
                break;
            case 8:
                if (twid) FN(bfly8)(1, sg, a, qs, iim, yo, oim, wr, wi, lanes);
                else FN(bfly8)(0, sg, a, qs, iim, yo, oim, wr, wi, lanes);
                break;
            case 3:
                if (twid) FN(bfly3)(1, sg, a, qs, iim, yo, oim, wr, wi, lanes);
                else FN(bfly3)(0, sg, a, qs, iim, yo, oim, wr, wi, lanes);
                break;
            case 5:
                if (twid) FN(bfly5)(1, sg, a, qs, iim, yo, oim, wr, wi, lanes);
                else FN(bfly5)(0, sg, a, qs, iim, yo, oim, wr, wi, lanes);
                break;
            case 9:
                if (twid) FN(bfly9)(1, sg, a, qs, iim, yo, oim, wr, wi, lanes);
                else FN(bfly9)(0, sg, a, qs, iim, yo, oim, wr, wi, lanes);
                break;
            default:
                /* p <= FS_FFT_MAX_RADIX: fs_fft_plan_init refuses larger primes */
                FN(bfly_any)(p, twid, sg, a, qs, iim, yo, oim, wr, wi,
                             pl->cs + pl->cs_at[s], lanes);
            }
        }
    }
}

static void FN(c2c)(const fs_fft_plan *pl, int inverse, const float *in, ptrdiff_t is,
                    ptrdiff_t iim, float *out, ptrdiff_t os, ptrdiff_t oim, fs_idx lanes,
                    fs_idx out_lanes, int keep, float *work)
{
    const int n = pl->n;
    const float sg = inverse ? -1.0f : 1.0f;
    if (keep > n) keep = n;
    float *buf[2] = {work, work + (size_t)2 * n * lanes};
    /* the last pass writes `out` itself unless it would write lanes past out_lanes */
    const int direct = out_lanes == lanes;
    const float *src = in;
    ptrdiff_t ss = is, sim = iim;
    for (int s = 0; s < pl->passes; s++) {
        float *dst = buf[s & 1];
        ptrdiff_t ds = 2 * lanes, dim = lanes;
        int kept = n;
        if (s == pl->passes - 1 && direct) {
            dst = out;
            ds = os;
            dim = oim;
            kept = keep;
        }
        /* buf[s & 1], which a last pass writing `out` does not use, takes its dropped
         * points (pass s reads `in` or buf[(s + 1) & 1]) */
        FN(pass)(pl, s, sg, src, ss, sim, dst, ds, dim, lanes, kept, buf[s & 1]);
        src = dst;
        ss = ds;
        sim = dim;
    }
    if (pl->passes == 0 || !direct) {
        for (int k = 0; k < keep; k++) {
            memcpy(out + k * os, src + k * ss, (size_t)out_lanes * sizeof(float));
            memcpy(out + k * os + oim, src + k * ss + sim, (size_t)out_lanes * sizeof(float));
        }
    }
}

static void FN(r2c_pair)(int n, const float *restrict z, ptrdiff_t zs, fs_idx h,
                         float *restrict out, ptrdiff_t os, ptrdiff_t oim)
{
    const fs_idx lanes = h;
    for (int k = 0; k <= n / 2; k++) {
        const int m = (n - k) % n;
        const float *zk = z + (ptrdiff_t)k * zs, *zm = z + (ptrdiff_t)m * zs;
        float *o = out + (ptrdiff_t)k * os;
        LANES_LOOP {
            const float zr = zk[l], zi = zk[h + l], mr = zm[l], mi = zm[h + l];
            o[l] = 0.5f * (zr + mr);          /* A = (Z[k] + conj Z[-k]) / 2 */
            o[oim + l] = 0.5f * (zi - mi);
            o[h + l] = 0.5f * (zi + mi);      /* B = (Z[k] - conj Z[-k]) / 2i */
            o[h + oim + l] = 0.5f * (mr - zr);
        }
    }
}

static void FN(c2r_pack)(int n, const float *restrict in, ptrdiff_t is, ptrdiff_t iim,
                         fs_idx pairs, fs_idx width, float *restrict z)
{
    const fs_idx lanes = width, h = pairs * width;
    const int half = n / 2 + 1;
    for (int v = 0; v < n; v++) {
        /* bins past n/2 are the conjugates of bin n - v (real signals) */
        const int real_bin = v == 0 || (n % 2 == 0 && v == n / 2), mirror = v >= half;
        const float *pv = in + (ptrdiff_t)(mirror ? n - v : v) * is;
        for (fs_idx i = 0; i < pairs; i++) {
            const float *p = pv + 2 * i * width; /* a; b at +width */
            float *o = z + (ptrdiff_t)v * 2 * h + i * width;
            if (real_bin) { /* imaginary parts are rounding noise (irfft drops them) */
                LANES_LOOP {
                    o[l] = p[l];
                    o[h + l] = p[width + l];
                }
            } else if (!mirror) { /* z = A + iB */
                LANES_LOOP {
                    o[l] = p[l] - p[iim + width + l];
                    o[h + l] = p[iim + l] + p[width + l];
                }
            } else { /* z = conj(A') + i conj(B') */
                LANES_LOOP {
                    o[l] = p[l] + p[iim + width + l];
                    o[h + l] = p[width + l] - p[iim + l];
                }
            }
        }
    }
}

static void FN(project)(const float *restrict w, fs_idx nf, const float *restrict t,
                        fs_idx tstride, ptrdiff_t odd, fs_idx rows, fs_idx lanes,
                        float *restrict acc)
{
    for (fs_idx v = 0; v < rows; v++) {
        for (fs_idx l0 = 0; l0 < lanes; l0 += 16) {
            float s[16];
            float *a = acc + v * lanes + l0;
            for (int i = 0; i < 16; i++) s[i] = a[i];
            const float *tv = t + v * tstride + l0;
            for (fs_idx f = 0; f < nf; f++) {
                const float wf = w[f];
                const float *tf = tv + (f & 1 ? odd : 0) + (f >> 1) * lanes;
                for (int i = 0; i < 16; i++) s[i] += wf * tf[i];
            }
            for (int i = 0; i < 16; i++) a[i] = s[i];
        }
    }
}

/* ---- the epilogue: activation and the 1x1 convolution in one pass -------------
 * The activations are vecmath_impl.h's, which the unfused path (activations_impl.h)
 * runs too: the same values fused or not. */
/* Vectors of the ISA's width, FS_FFT_EV_LANES floats (16 on AVX-512, 8 on AVX2, 4 on
 * SSE2), a 16-lane step taken as 16 / FS_FFT_EV_LANES of them. (16-float vectors on
 * every build, as before, left GCC 12 to lower the comparisons and conversions of
 * the exp and activations to scalar code on AVX2 and SSE2: the fused tanh + 1x1 layer
 * took 1.8 s of lai2d 584x565 under FASTSEG_ISA=avx2 on Zen 4, 0.28 s on avx512.)
 * Each lane's operations are the same either way. */
#ifndef FS_FFT_EV_LANES
#define FS_FFT_EV_LANES 16
#endif
#if 16 % FS_FFT_EV_LANES != 0
#error "FS_FFT_EV_LANES must divide 16"
#endif
#define EVL FS_FFT_EV_LANES
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float FS_FFT_CAT(ev_f, FS_FFT_SUFFIX) __attribute__((vector_size(4 * EVL)));
typedef int32_t FS_FFT_CAT(ev_i, FS_FFT_SUFFIX) __attribute__((vector_size(4 * EVL)));
#define ev FS_FFT_CAT(ev_f, FS_FFT_SUFFIX)
#define evi FS_FFT_CAT(ev_i, FS_FFT_SUFFIX)
#define VM_F ev
#define VM_I evi
#include "vecmath_impl.h"

INLINE ev FN(ev_act)(int act, ev x)
{
    if (act == FS_ACT_RELU) return vm_relu(x);
    if (act == FS_ACT_SIGMOID) return vm_sigmoid(x);
    if (act == FS_ACT_TANH) return vm_tanh(x);
    return x;
}

/* act_project: for rows v, lanes l (a multiple of 16) and outputs k < np:
 * acc[k*acc_step + v*lanes + l] += sum over f < nf, in increasing order, of
 * w[k*ldw + f] * act(t_f[v*tstride + l]), with t_f as in `project`: the maps
 * go through the activation on their way into the sums, never written back. */
static void FN(act_project)(int act, const float *restrict w, fs_idx ldw, fs_idx np,
                            fs_idx nf, const float *restrict t, fs_idx tstride, ptrdiff_t odd,
                            fs_idx rows, fs_idx lanes, float *restrict acc, fs_idx acc_step)
{
    for (fs_idx v = 0; v < rows; v++)
        for (fs_idx l0 = 0; l0 < lanes; l0 += EVL) /* lanes: a multiple of 16 */
            for (fs_idx k0 = 0; k0 < np; k0 += 4) {
                const int kn = np - k0 < 4 ? (int)(np - k0) : 4;
                ev s[4] = {vm_splat(0.0f), vm_splat(0.0f), vm_splat(0.0f), vm_splat(0.0f)};
                for (int k = 0; k < 4; k++)
                    if (k < kn)
                        memcpy(&s[k], acc + (k0 + k) * acc_step + v * lanes + l0, sizeof(ev));
                const float *tv = t + v * tstride + l0;
                for (fs_idx f = 0; f < nf; f++) {
                    ev z;
                    memcpy(&z, tv + (f & 1 ? odd : 0) + (f >> 1) * lanes, sizeof z);
                    const ev a = FN(ev_act)(act, z);
                    for (int k = 0; k < 4; k++)
                        if (k < kn) s[k] += w[(k0 + k) * ldw + f] * a;
                }
                for (int k = 0; k < 4; k++)
                    if (k < kn)
                        memcpy(acc + (k0 + k) * acc_step + v * lanes + l0, &s[k], sizeof(ev));
            }
}
#undef ev
#undef evi
#undef EVL

const fs_fft_table FS_FFT_CAT(fs_fft_table, FS_FFT_SUFFIX) = {
    FS_FFT_NAME, FS_FFT_CAT(fs_cgemm, FS_FFT_SUFFIX), FS_CGEMM_MR, FS_CGEMM_NR, FN(c2c),
    FN(r2c_pair), FN(c2r_pack), FN(project), FN(act_project)};
