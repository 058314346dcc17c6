/*
 * gemm_pack_impl.h -- packing op(A) into MR-row micro-panels and op(B) into
 * NR-column micro-panels, the layout the micro-kernels stream through with
 * unit stride (ap[p*MR + i], bp[p*NR + j]). Written once, compiled once per
 * packing format by gemm_pack.c, which defines PACK_MR and PACK_NR (each
 * ISA's table names its format: blocking.h). Transposition is absorbed
 * here, so the GEMM never makes a transposed copy. Edge panels are
 * zero-padded so the micro-kernel can always compute a full tile.
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

/* In a build with the AVX-512 flags (gemm_pack_avx512.c: only its format,
 * which only the AVX-512 table uses) a transposed B goes 16 x 16 at a time:
 * 3-10 % faster on lai2d's A*B^T shapes. (The same for A's MR = 10 strided
 * rows was 10 % slower than the SSE 4 x 4 path: its 10-float masked stores
 * straddle cache lines.) */
#if defined(__AVX512F__) && !defined(FS_PACK_TRANSPOSE16_DEFINED)
#define FS_PACK_TRANSPOSE16_DEFINED
#include <immintrin.h>

/* out[j][i] = r[i][j] for 16 rows of 16 floats: pairs interleaved, then
 * quads (each 128-bit lane now holds 4 rows of one column), then the
 * 128-bit lanes transposed 4 x 4 across the row groups. 64 shuffles. */
static inline void transpose16(const __m512 r[16], __m512 out[16])
{
    __m512 t[16], u[16];
    for (int a = 0; a < 8; a++) {
        t[2 * a] = _mm512_unpacklo_ps(r[2 * a], r[2 * a + 1]);
        t[2 * a + 1] = _mm512_unpackhi_ps(r[2 * a], r[2 * a + 1]);
    }
    /* u[4b + q], lane L: rows 4b..4b+3 of column 4L + q */
    for (int b = 0; b < 4; b++) {
        u[4 * b + 0] = _mm512_shuffle_ps(t[4 * b], t[4 * b + 2], 0x44);
        u[4 * b + 1] = _mm512_shuffle_ps(t[4 * b], t[4 * b + 2], 0xee);
        u[4 * b + 2] = _mm512_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0x44);
        u[4 * b + 3] = _mm512_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0xee);
    }
    for (int q = 0; q < 4; q++) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x44);
        const __m512 v1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xee);
        const __m512 v2 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x44);
        const __m512 v3 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xee);
        out[q] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        out[4 + q] = _mm512_shuffle_f32x4(v0, v2, 0xdd);
        out[8 + q] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        out[12 + q] = _mm512_shuffle_f32x4(v1, v3, 0xdd);
    }
}
#endif

#define FS_MR PACK_MR
#define FS_NR PACK_NR
/* This format's names: the two entry points, and its own copy of each
 * file-local helper (the file is included once per format). */
#define PFN(what) FS_PACK_FN(what, PACK_MR, PACK_NR)
#define SFN(what) FS_PACK_FN(what, PACK_MR, PACK_NR)

/* Rows ahead to prefetch where packing reads short strided rows. */
#ifndef PACK_PREFETCH_ROWS
#define PACK_PREFETCH_ROWS 8
#endif

#ifndef FS_PACK_EDGE_DEFINED
#define FS_PACK_EDGE_DEFINED
/* One edge panel, any format: `count` (< width) rows or columns of a kc-long
 * operand, dst[p*width + i] = src[p*ld + i] (along_k_rows: each k step is
 * contiguous) or src[i*ld + p], zero past `count`. The scalar path, for the
 * ragged last panel of A or B. */
static void pack_edge(int along_k_rows, fs_idx count, fs_idx kc, const float *src, fs_idx ld,
                      float *dst, fs_idx width)
{
    for (fs_idx p = 0; p < kc; p++) {
        fs_idx i = 0;
        if (along_k_rows)
            for (; i < count; i++) dst[p * width + i] = src[p * ld + i];
        else
            for (; i < count; i++) dst[p * width + i] = src[i * ld + p];
        for (; i < width; i++) dst[p * width + i] = 0.0f;
    }
}
#endif

/* Prefetch one cache line of each of `rows` strided rows at column p, when
 * `next` (the following panel's first row) is set. The rows of a panel are
 * only kc floats long -- too short for the hardware streamer to pick up six
 * or sixteen interleaved streams. Measured effect is small (fs_pack_a went
 * from ~14% to ~12% of the cycles at M = 1000, K = 12800, N = 128): the
 * strided loads stay the bottleneck of that pack. */
#ifndef FS_PACK_PREFETCH_ROWS_DEFINED
#define FS_PACK_PREFETCH_ROWS_DEFINED
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
#endif

/* Full A panel, A not transposed: rows are MR strided streams, transposed
 * four rows by four k steps at a time (then a pair of rows, then one).
 * `next`: the first row of the panel packed after this one, or NULL. */
static void SFN(pack_a_panel_n)(fs_idx kc, const float *a, fs_idx lda, float *ap,
                                const float *next)
{
    fs_idx p = 0;
#if defined(FS_PACK_SSE)
    for (; p + 4 <= kc; p += 4) {
        prefetch_rows(next, lda, FS_MR, p);
        float *d = ap + p * FS_MR;
        int g = 0;
        for (; g + 4 <= FS_MR; g += 4) {
            const float *s = a + g * lda + p;
            __m128 x0 = _mm_loadu_ps(s), x1 = _mm_loadu_ps(s + lda);
            __m128 x2 = _mm_loadu_ps(s + 2 * lda), x3 = _mm_loadu_ps(s + 3 * lda);
            _MM_TRANSPOSE4_PS(x0, x1, x2, x3); /* x_q = rows g..g+3 at p+q */
            _mm_storeu_ps(d + g, x0);
            _mm_storeu_ps(d + FS_MR + g, x1);
            _mm_storeu_ps(d + 2 * FS_MR + g, x2);
            _mm_storeu_ps(d + 3 * FS_MR + g, x3);
        }
        if (g + 2 <= FS_MR) {
            const float *s = a + g * lda + p;
            const __m128 x4 = _mm_loadu_ps(s), x5 = _mm_loadu_ps(s + lda);
            const __m128 lo = _mm_unpacklo_ps(x4, x5); /* r0p0 r1p0 r0p1 r1p1 */
            const __m128 hi = _mm_unpackhi_ps(x4, x5); /* r0p2 r1p2 r0p3 r1p3 */
            _mm_storel_pi((__m64 *)(d + g), lo);
            _mm_storeh_pi((__m64 *)(d + FS_MR + g), lo);
            _mm_storel_pi((__m64 *)(d + 2 * FS_MR + g), hi);
            _mm_storeh_pi((__m64 *)(d + 3 * FS_MR + g), hi);
            g += 2;
        }
        for (; g < FS_MR; g++)
            for (int q = 0; q < 4; q++) d[q * FS_MR + g] = a[g * lda + p + q];
    }
#else
    (void)next;
#endif
    for (; p < kc; p++)
        for (fs_idx i = 0; i < FS_MR; i++) ap[p * FS_MR + i] = a[i * lda + p];
}

/* Full A panels [q0, q1), A transposed: each k step of a panel is MR
 * contiguous floats. Row by row across the panels, so every cache line of A
 * is read once rather than once per panel it straddles. */
static void SFN(pack_a_panels_t)(fs_idx kc, fs_idx q0, fs_idx q1, const float *a, fs_idx lda,
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

void PFN(pack_a)(int trans, fs_idx mc, fs_idx kc, const float *a, fs_idx lda,
                 float *ap, fs_idx panel0, fs_idx panel1)
{
    const fs_idx full = mc / FS_MR; /* panels without a ragged edge */
    fs_idx q = panel0;
    if (trans && panel0 < full) {
        q = panel1 < full ? panel1 : full;
        SFN(pack_a_panels_t)(kc, panel0, q, a, lda, ap);
    }
    for (; q < panel1; q++) {
        const fs_idx i0 = q * FS_MR;
        const fs_idx mr = mc - i0 < FS_MR ? mc - i0 : FS_MR;
        const float *src = trans ? a + i0 : a + i0 * lda;
        float *dst = ap + q * FS_MR * kc;
        if (mr < FS_MR)
            pack_edge(trans, mr, kc, src, lda, dst, FS_MR);
        else
            SFN(pack_a_panel_n)(kc, src, lda, dst, q + 1 < full ? src + FS_MR * lda : NULL);
    }
}

/* Full B panels [q0, q1), B not transposed. Row by row across all the
 * panels, so B is read as long unit-stride rows: going panel by panel would
 * touch a new page every 64 bytes when ldb is large (N = 32768). */
static void SFN(pack_b_panels_n)(fs_idx kc, fs_idx q0, fs_idx q1, const float *b, fs_idx ldb,
                                 float *bp)
{
    for (fs_idx p = 0; p < kc; p++) {
        const float *src = b + p * ldb + q0 * FS_NR;
        float *dst = bp + q0 * FS_NR * kc + p * FS_NR;
        for (fs_idx q = q0; q < q1; q++, src += FS_NR, dst += FS_NR * kc)
            memcpy(dst, src, FS_NR * sizeof(float));
    }
}

/* Full B panel (and, with `count` < NR, the ragged last one), B transposed:
 * NR rows of B, each kc long, transposed into the panel (16 x 16 with
 * AVX-512, else 4 x 4; rows past `count` are zero). `next`: the first row of
 * the panel packed after this one, or NULL.
 *
 * Rows close together (ldb < PACK_T_SCRATCH_LD: conv's gathered tiles,
 * already in L1) are transposed in place. Rows far apart are B itself, read
 * once from memory (lai2d's A*B^T shapes: 51-64 MB): transposed in place,
 * the NR rows are NR streams read side by side, and when ldb is a multiple
 * of 4 KiB (conv2 dW: 32768 floats) their lines all fall in one L1 set and
 * one L2 set, so they evicted each other and every prefetch; the pack ran at
 * ~6 GB/s and took as long as the micro-kernels on 50x32768x500-NT (Zen 4).
 * So those rows are read one at a time instead, PACK_T_CHUNK floats of a row
 * copied into an L1 scratch whose rows sit PACK_T_LD floats apart (spread
 * over the sets), then transposed from there, while the row PACK_T_AHEAD on
 * is prefetched: 1.2-1.5x faster on those shapes, the same values. */
#ifndef PACK_T_CHUNK
#define PACK_T_CHUNK 128
#endif
#define PACK_T_LD (PACK_T_CHUNK + 16)
#ifndef PACK_T_AHEAD
#define PACK_T_AHEAD 4
#endif
#ifndef PACK_T_SCRATCH_LD
#define PACK_T_SCRATCH_LD 1024
#endif

#ifndef FS_PACK_PREFETCH_RUN_DEFINED
#define FS_PACK_PREFETCH_RUN_DEFINED
/* Prefetch the `len` floats at `src` (one line in 16 floats). */
static inline void prefetch_run(const float *src, fs_idx len)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    for (fs_idx i = 0; i < len; i += 16) __asm__ volatile("prefetcht0 %0" : : "m"(src[i]));
#elif defined(__GNUC__) || defined(__clang__)
    for (fs_idx i = 0; i < len; i += 16) __builtin_prefetch(src + i);
#else
    (void)src; (void)len;
#endif
}
#endif

/* dst[0:w] = src[0:w], dst 64-byte aligned. Vector moves rather than
 * memcpy: gcc makes a `rep movsq` of a variable-length memcpy, whose start-up
 * costs as much as copying these 128 floats. */
static inline void SFN(copy_run)(float *dst, const float *src, fs_idx w)
{
    fs_idx i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= w; i += 16) _mm512_store_ps(dst + i, _mm512_loadu_ps(src + i));
#elif defined(FS_PACK_SSE)
    for (; i + 4 <= w; i += 4) _mm_store_ps(dst + i, _mm_loadu_ps(src + i));
#endif
    for (; i < w; i++) dst[i] = src[i];
}

/* tile[q * FS_NR + j] = src[j * ld + q] for q < w, j < FS_NR, 0 for rows
 * j >= count (tile 64-byte aligned). `next` (or NULL): rows to prefetch
 * one line of every 16 columns, ld apart, as the columns go. */
static void SFN(transpose_rows)(const float *src, fs_idx ld, fs_idx count, fs_idx w,
                                float *tile, const float *next)
{
    fs_idx q = 0;
#if defined(__AVX512F__) && FS_NR % 16 == 0
    for (; q + 16 <= w; q += 16) {
        prefetch_rows(next, ld, FS_NR, q);
        for (int g = 0; g < FS_NR; g += 16) {
            __m512 r[16], out[16];
            for (int i = 0; i < 16; i++)
                r[i] = g + i < count ? _mm512_loadu_ps(src + (g + i) * ld + q)
                                     : _mm512_setzero_ps();
            transpose16(r, out);
            for (int t = 0; t < 16; t++) _mm512_store_ps(tile + (q + t) * FS_NR + g, out[t]);
        }
    }
#endif
#if defined(FS_PACK_SSE) && FS_NR % 4 == 0
    for (; q + 4 <= w; q += 4) {
        prefetch_rows(next, ld, FS_NR, q);
        float *d = tile + q * FS_NR;
        for (fs_idx g = 0; g < FS_NR; g += 4) {
            const float *s = src + g * ld + q;
            const __m128 z = _mm_setzero_ps();
            __m128 x0 = g < count ? _mm_loadu_ps(s) : z;
            __m128 x1 = g + 1 < count ? _mm_loadu_ps(s + ld) : z;
            __m128 x2 = g + 2 < count ? _mm_loadu_ps(s + 2 * ld) : z;
            __m128 x3 = g + 3 < count ? _mm_loadu_ps(s + 3 * ld) : z;
            _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
            _mm_store_ps(d + g, x0);
            _mm_store_ps(d + FS_NR + g, x1);
            _mm_store_ps(d + 2 * FS_NR + g, x2);
            _mm_store_ps(d + 3 * FS_NR + g, x3);
        }
    }
#endif
    for (; q < w; q++)
        for (fs_idx j = 0; j < FS_NR; j++) tile[q * FS_NR + j] = j < count ? src[j * ld + q] : 0.0f;
}

static void SFN(pack_b_panel_t)(fs_idx kc, fs_idx count, const float *b, fs_idx ldb,
                                float *bp, const float *next)
{
    if (ldb < PACK_T_SCRATCH_LD) {
        SFN(transpose_rows)(b, ldb, count, kc, bp, next);
        return;
    }
    _Alignas(64) float scratch[FS_NR * PACK_T_LD];
    for (fs_idx p0 = 0; p0 < kc; p0 += PACK_T_CHUNK) {
        const fs_idx w = kc - p0 < PACK_T_CHUNK ? kc - p0 : PACK_T_CHUNK;
        const fs_idx w_next = kc - p0 - w < PACK_T_CHUNK ? kc - p0 - w : PACK_T_CHUNK;
        for (fs_idx j = 0; j < count; j++) {
            /* The row PACK_T_AHEAD on: in this chunk, the next, or the next panel. */
            const fs_idx ahead = j + PACK_T_AHEAD;
            if (ahead < count)
                prefetch_run(b + ahead * ldb + p0, w);
            else if (w_next > 0 && ahead - count < count)
                prefetch_run(b + (ahead - count) * ldb + p0 + w, w_next);
            else if (w_next == 0 && next && ahead - count < FS_NR)
                prefetch_run(next + (ahead - count) * ldb, kc < PACK_T_CHUNK ? kc : PACK_T_CHUNK);
            SFN(copy_run)(scratch + j * PACK_T_LD, b + j * ldb + p0, w);
        }
        SFN(transpose_rows)(scratch, PACK_T_LD, count, w, bp + p0 * FS_NR, NULL);
    }
}

void PFN(pack_b)(int trans, fs_idx kc, fs_idx nc, const float *b, fs_idx ldb,
                 float *bp, fs_idx panel0, fs_idx panel1)
{
    const fs_idx full = nc / FS_NR; /* panels without a ragged edge */
    fs_idx q = panel0;
    if (!trans && panel0 < full) {
        q = panel1 < full ? panel1 : full;
        SFN(pack_b_panels_n)(kc, panel0, q, b, ldb, bp);
    }
    for (; q < panel1; q++) {
        const fs_idx j0 = q * FS_NR;
        const fs_idx nr = nc - j0 < FS_NR ? nc - j0 : FS_NR;
        const float *src = trans ? b + j0 * ldb : b + j0;
        float *dst = bp + q * FS_NR * kc;
        if (!trans)
            pack_edge(1, nr, kc, src, ldb, dst, FS_NR);
        else
            SFN(pack_b_panel_t)(kc, nr, src, ldb, dst, q + 1 < full ? src + FS_NR * ldb : NULL);
    }
}

#undef FS_MR
#undef FS_NR
#undef PFN
#undef SFN
