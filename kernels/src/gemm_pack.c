/*
 * Packing op(A) into MR-row micro-panels and op(B) into NR-column
 * micro-panels, the layout the micro-kernels stream through with unit
 * stride (ap[p*MR + i], bp[p*NR + j]). Transposition is absorbed here, so
 * the GEMM never makes a transposed copy. Edge panels are zero-padded so
 * the micro-kernel can always compute a full tile.
 *
 * Two of the four cases are transposes in disguise (A not transposed: MR
 * strided rows; B transposed: NR strided rows). A scalar gather there costs
 * as much as the arithmetic on skinny shapes, so on x86-64 they go through
 * 4x4 SSE transposes (SSE2 is the x86-64 baseline; no extra flags needed).
 */
#include <string.h>

#include "gemm_internal.h"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define FS_PACK_SSE 1
#endif

/* Rows ahead to prefetch where packing reads short strided rows. */
#define PACK_PREFETCH_ROWS 8

/* One A panel of mr (<= MR) rows, generic path: any trans, any edge. */
static void pack_a_panel_scalar(int trans, fs_idx mr, fs_idx kc, const float *a,
                                fs_idx lda, float *ap)
{
    for (fs_idx p = 0; p < kc; p++) {
        fs_idx i = 0;
        if (trans)
            for (; i < mr; i++) ap[p * FS_MR + i] = a[p * lda + i];
        else
            for (; i < mr; i++) ap[p * FS_MR + i] = a[i * lda + p];
        for (; i < FS_MR; i++) ap[p * FS_MR + i] = 0.0f;
    }
}

/* Prefetch one cache line of each of `rows` strided rows at column p, when
 * `next` (the following panel's first row) is set. The rows of a panel are
 * only kc floats long -- too short for the hardware streamer to pick up six
 * or sixteen interleaved streams. Measured effect is small (fs_pack_a went
 * from ~14% to ~12% of the cycles at M = 1000, K = 12800, N = 128): the
 * strided loads stay the bottleneck of that pack. */
static inline void prefetch_rows(const float *next, fs_idx ld, int rows, fs_idx p)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    /* asm volatile: gcc 12 deletes a loop whose body is only
     * __builtin_prefetch calls as a loop without side effects. */
    if (next && (p & 15) == 0)
        for (int r = 0; r < rows; r++)
            __asm__ volatile("prefetcht0 %0" : : "m"(*(next + r * ld + p)));
#elif defined(__GNUC__) || defined(__clang__)
    if (next && (p & 15) == 0)
        for (int r = 0; r < rows; r++) __builtin_prefetch(next + r * ld + p);
#else
    (void)next; (void)ld; (void)rows; (void)p;
#endif
}

/* Full A panel, A not transposed: rows are MR strided streams. `next`: the
 * first row of the panel packed after this one, or NULL. */
static void pack_a_panel_n(fs_idx kc, const float *a, fs_idx lda, float *ap,
                           const float *next)
{
    fs_idx p = 0;
#if defined(FS_PACK_SSE) && FS_MR == 6
    const float *r0 = a, *r1 = a + lda, *r2 = a + 2 * lda, *r3 = a + 3 * lda,
                *r4 = a + 4 * lda, *r5 = a + 5 * lda;
    for (; p + 4 <= kc; p += 4) {
        prefetch_rows(next, lda, FS_MR, p);
        __m128 x0 = _mm_loadu_ps(r0 + p), x1 = _mm_loadu_ps(r1 + p);
        __m128 x2 = _mm_loadu_ps(r2 + p), x3 = _mm_loadu_ps(r3 + p);
        __m128 x4 = _mm_loadu_ps(r4 + p), x5 = _mm_loadu_ps(r5 + p);
        _MM_TRANSPOSE4_PS(x0, x1, x2, x3);           /* x_q = rows 0..3 at p+q */
        __m128 lo = _mm_unpacklo_ps(x4, x5);         /* r4p0 r5p0 r4p1 r5p1 */
        __m128 hi = _mm_unpackhi_ps(x4, x5);         /* r4p2 r5p2 r4p3 r5p3 */
        float *d = ap + p * FS_MR;
        _mm_storeu_ps(d + 0, x0);  _mm_storel_pi((__m64 *)(d + 4), lo);
        _mm_storeu_ps(d + 6, x1);  _mm_storeh_pi((__m64 *)(d + 10), lo);
        _mm_storeu_ps(d + 12, x2); _mm_storel_pi((__m64 *)(d + 16), hi);
        _mm_storeu_ps(d + 18, x3); _mm_storeh_pi((__m64 *)(d + 22), hi);
    }
#endif
    for (; p < kc; p++)
        for (fs_idx i = 0; i < FS_MR; i++) ap[p * FS_MR + i] = a[i * lda + p];
}

/* Full A panels [q0, q1), A transposed: each k step of a panel is MR
 * contiguous floats. Row by row across the panels, so every cache line of A
 * is read once rather than once per panel it straddles. */
static void pack_a_panels_t(fs_idx kc, fs_idx q0, fs_idx q1, const float *a, fs_idx lda,
                            float *ap)
{
    for (fs_idx p = 0; p < kc; p++) {
        const float *src = a + p * lda + q0 * FS_MR;
        float *dst = ap + q0 * FS_MR * kc + p * FS_MR;
#if defined(__GNUC__) || defined(__clang__)
        /* Each row segment is only a few cache lines, too short for the
         * hardware streamer to ramp up on; fetch a few rows ahead. */
        if (p + PACK_PREFETCH_ROWS < kc) {
            const char *ahead = (const char *)(src + PACK_PREFETCH_ROWS * lda);
            for (fs_idx off = 0; off < (q1 - q0) * FS_MR * (fs_idx)sizeof(float); off += 64)
                __builtin_prefetch(ahead + off);
        }
#endif
        for (fs_idx q = q0; q < q1; q++, src += FS_MR, dst += FS_MR * kc)
            for (fs_idx i = 0; i < FS_MR; i++) dst[i] = src[i];
    }
}

void fs_pack_a(int trans, fs_idx mc, fs_idx kc, const float *a, fs_idx lda,
               float *ap, fs_idx panel0, fs_idx panel1)
{
    const fs_idx full = mc / FS_MR; /* panels without a ragged edge */
    fs_idx q = panel0;
    if (trans && panel0 < full) {
        q = panel1 < full ? panel1 : full;
        pack_a_panels_t(kc, panel0, q, a, lda, ap);
    }
    for (; q < panel1; q++) {
        const fs_idx i0 = q * FS_MR;
        const fs_idx mr = mc - i0 < FS_MR ? mc - i0 : FS_MR;
        const float *src = trans ? a + i0 : a + i0 * lda;
        float *dst = ap + q * FS_MR * kc;
        if (mr < FS_MR)
            pack_a_panel_scalar(trans, mr, kc, src, lda, dst);
        else
            pack_a_panel_n(kc, src, lda, dst, q + 1 < full ? src + FS_MR * lda : NULL);
    }
}

/* One B panel of nr (<= NR) columns, generic path: any trans, any edge. */
static void pack_b_panel_scalar(int trans, fs_idx nr, fs_idx kc, const float *b,
                                fs_idx ldb, float *bp)
{
    for (fs_idx p = 0; p < kc; p++) {
        fs_idx j = 0;
        if (trans)
            for (; j < nr; j++) bp[p * FS_NR + j] = b[j * ldb + p];
        else
            for (; j < nr; j++) bp[p * FS_NR + j] = b[p * ldb + j];
        for (; j < FS_NR; j++) bp[p * FS_NR + j] = 0.0f;
    }
}

/* Full B panels [q0, q1), B not transposed. Row by row across all the
 * panels, so B is read as long unit-stride rows: going panel by panel would
 * touch a new page every 64 bytes when ldb is large (N = 32768). */
static void pack_b_panels_n(fs_idx kc, fs_idx q0, fs_idx q1, const float *b, fs_idx ldb,
                            float *bp)
{
    for (fs_idx p = 0; p < kc; p++) {
        const float *src = b + p * ldb + q0 * FS_NR;
        float *dst = bp + q0 * FS_NR * kc + p * FS_NR;
        for (fs_idx q = q0; q < q1; q++, src += FS_NR, dst += FS_NR * kc)
            memcpy(dst, src, FS_NR * sizeof(float));
    }
}

/* Full B panel, B transposed: NR strided rows, transposed 4x4 at a time.
 * `next`: the first row of the panel packed after this one, or NULL. */
static void pack_b_panel_t(fs_idx kc, const float *b, fs_idx ldb, float *bp,
                           const float *next)
{
    fs_idx p = 0;
#if defined(FS_PACK_SSE) && FS_NR % 4 == 0
    for (; p + 4 <= kc; p += 4) {
        prefetch_rows(next, ldb, FS_NR, p);
        float *d = bp + p * FS_NR;
        for (fs_idx g = 0; g < FS_NR; g += 4) {
            const float *s = b + g * ldb + p;
            __m128 x0 = _mm_loadu_ps(s), x1 = _mm_loadu_ps(s + ldb);
            __m128 x2 = _mm_loadu_ps(s + 2 * ldb), x3 = _mm_loadu_ps(s + 3 * ldb);
            _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
            _mm_store_ps(d + g, x0);
            _mm_store_ps(d + FS_NR + g, x1);
            _mm_store_ps(d + 2 * FS_NR + g, x2);
            _mm_store_ps(d + 3 * FS_NR + g, x3);
        }
    }
#endif
    for (; p < kc; p++)
        for (fs_idx j = 0; j < FS_NR; j++) bp[p * FS_NR + j] = b[j * ldb + p];
}

void fs_pack_b(int trans, fs_idx kc, fs_idx nc, const float *b, fs_idx ldb,
               float *bp, fs_idx panel0, fs_idx panel1)
{
    const fs_idx full = nc / FS_NR; /* panels without a ragged edge */
    fs_idx q = panel0;
    if (!trans && panel0 < full) {
        q = panel1 < full ? panel1 : full;
        pack_b_panels_n(kc, panel0, q, b, ldb, bp);
    }
    for (; q < panel1; q++) {
        const fs_idx j0 = q * FS_NR;
        const fs_idx nr = nc - j0 < FS_NR ? nc - j0 : FS_NR;
        const float *src = trans ? b + j0 * ldb : b + j0;
        float *dst = bp + q * FS_NR * kc;
        if (nr < FS_NR)
            pack_b_panel_scalar(trans, nr, kc, src, ldb, dst);
        else
            pack_b_panel_t(kc, src, ldb, dst, q + 1 < full ? src + FS_NR * ldb : NULL);
    }
}
