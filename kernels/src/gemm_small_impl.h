/*
 * gemm_small_impl.h -- the no-packing small-shape GEMM kernels, written once
 * in plain C and compiled once per ISA: gemm_small.c (portable flags),
 * gemm_small_avx2.c and gemm_small_avx512.c (their ISA's flags, used only
 * after the run-time CPU check). The including file defines FS_SMALL_SUFFIX.
 * Eight-lane partial sums are independent chains the compiler vectorises
 * without reassociating (no -ffast-math), so results stay within float
 * rounding of the reference.
 */
#include <string.h>

#include "gemm_internal.h"

/* FS_SMALL_LANES floats (GCC/Clang vector extension; 8 unless the
 * including file says otherwise): two SSE registers in the portable build,
 * one ymm in the AVX2 one, one zmm (16) in the AVX-512 one. */
#ifndef FS_SMALL_LANES
#define FS_SMALL_LANES 8
#endif
#define LANES FS_SMALL_LANES
typedef float fs_vsmall __attribute__((vector_size(4 * LANES)));

#define FS_CAT_(x, y) x##y
#define FS_CAT(x, y) FS_CAT_(x, y)
#define FN(x) FS_CAT(x, FS_SMALL_SUFFIX)

/* ---- dot tiles: C[i, j] = alpha * dot(A row i, B row j) + beta * C -----
 * A rows (trans_a == 0) and B rows (trans_b != 0) contiguous along k.
 *
 * The last k % LANES terms: one zero-padded vector each in the 16-lane
 * build (a scalar tail of up to 15 terms cost it 30 % on lai2d's fc2, k =
 * 1000); a scalar tail in the 8-lane builds, where the padded copies
 * measured 5-9 % slower. */
#if LANES > 8
#define DOT_VECTOR_TAIL 1
#else
#define DOT_VECTOR_TAIL 0
#endif

#define DOT_TILE(NI, NJ)                                                       \
    static void FN(dot_##NI##_##NJ)(fs_idx k, float alpha, const float *a,     \
                                    fs_idx lda, const float *b, fs_idx ldb,    \
                                    float beta, float *c, fs_idx ldc)          \
    {                                                                          \
        if (k < LANES) { /* shorter than one vector: plain dot products */     \
            for (int i = 0; i < NI; i++)                                       \
                for (int j = 0; j < NJ; j++) {                                 \
                    float dot = 0.0f;                                          \
                    for (fs_idx q = 0; q < k; q++) dot += a[i * lda + q] * b[j * ldb + q]; \
                    float *cc = c + i * ldc + j;                               \
                    *cc = beta == 0.0f ? alpha * dot : alpha * dot + beta * *cc; \
                }                                                              \
            return;                                                            \
        }                                                                      \
        fs_vsmall acc[NI][NJ], av[NI], bv[NJ];                                 \
        for (int i = 0; i < NI; i++)                                           \
            for (int j = 0; j < NJ; j++) acc[i][j] = (fs_vsmall){0};           \
        fs_idx p = 0;                                                          \
        for (; p + LANES <= k; p += LANES) {                                   \
            for (int i = 0; i < NI; i++)                                       \
                memcpy(&av[i], a + i * lda + p, 4 * LANES);                    \
            for (int j = 0; j < NJ; j++)                                       \
                memcpy(&bv[j], b + j * ldb + p, 4 * LANES);                    \
            for (int i = 0; i < NI; i++)                                       \
                for (int j = 0; j < NJ; j++) acc[i][j] += av[i] * bv[j];       \
        }                                                                      \
        if (DOT_VECTOR_TAIL && p < k) {                                        \
            const size_t bytes = (size_t)(k - p) * sizeof(float);              \
            for (int i = 0; i < NI; i++) {                                     \
                av[i] = (fs_vsmall){0};                                        \
                memcpy(&av[i], a + i * lda + p, bytes);                        \
            }                                                                  \
            for (int j = 0; j < NJ; j++) {                                     \
                bv[j] = (fs_vsmall){0};                                        \
                memcpy(&bv[j], b + j * ldb + p, bytes);                        \
            }                                                                  \
            for (int i = 0; i < NI; i++)                                       \
                for (int j = 0; j < NJ; j++) acc[i][j] += av[i] * bv[j];       \
            p = k;                                                             \
        }                                                                      \
        for (int i = 0; i < NI; i++)                                           \
            for (int j = 0; j < NJ; j++) {                                     \
                float tail = 0.0f;                                             \
                for (fs_idx q = p; q < k; q++) tail += a[i * lda + q] * b[j * ldb + q]; \
                /* lanes added pairwise: l + LANES/2, then l + LANES/4, ... */ \
                float s[LANES];                                                \
                memcpy(s, &acc[i][j], 4 * LANES);                              \
                for (int half = LANES / 2; half > 0; half /= 2)                \
                    for (int l = 0; l < half; l++) s[l] += s[l + half];        \
                const float dot = s[0] + tail;                                 \
                float *cc = c + i * ldc + j;                                   \
                *cc = beta == 0.0f ? alpha * dot : alpha * dot + beta * *cc;   \
            }                                                                  \
    }

DOT_TILE(1, 1) DOT_TILE(1, 2) DOT_TILE(1, 3) DOT_TILE(1, 4)
DOT_TILE(2, 1) DOT_TILE(2, 2) DOT_TILE(2, 3) DOT_TILE(2, 4)
DOT_TILE(3, 1) DOT_TILE(3, 2) DOT_TILE(3, 3) DOT_TILE(3, 4)
DOT_TILE(4, 1) DOT_TILE(4, 2) DOT_TILE(4, 3) DOT_TILE(4, 4)

typedef void (*dot_tile_fn)(fs_idx, float, const float *, fs_idx, const float *,
                            fs_idx, float, float *, fs_idx);

void FN(fs_small_dots_)(fs_idx k, float alpha, const float *a, fs_idx lda,
                        const float *b, fs_idx ldb, float beta, float *c, fs_idx ldc,
                        fs_idx i0, fs_idx i1, fs_idx j0, fs_idx j1, int ib, int jb)
{
    static const dot_tile_fn tiles[4][4] = {
        {FN(dot_1_1), FN(dot_1_2), FN(dot_1_3), FN(dot_1_4)},
        {FN(dot_2_1), FN(dot_2_2), FN(dot_2_3), FN(dot_2_4)},
        {FN(dot_3_1), FN(dot_3_2), FN(dot_3_3), FN(dot_3_4)},
        {FN(dot_4_1), FN(dot_4_2), FN(dot_4_3), FN(dot_4_4)},
    };
    for (fs_idx i = i0; i < i1; i += ib) {
        const int ni = (int)(i1 - i < ib ? i1 - i : ib);
        for (fs_idx j = j0; j < j1; j += jb) {
            const int nj = (int)(j1 - j < jb ? j1 - j : jb);
            tiles[ni - 1][nj - 1](k, alpha, a + i * lda, lda, b + j * ldb, ldb, beta,
                                  c + i * ldc + j, ldc);
        }
    }
}

/* ---- rank updates: C = alpha * op(A) * B + beta * C, B not transposed ----
 * Up to four k terms per sweep of a C row chunk: each C element is loaded
 * and stored once per four multiply-adds, the B rows of the chunk stay in
 * L1 across the rows of C. */
#define RANK_CHUNK 512

static void FN(rank_row)(int kb, const float *s, const float *b, fs_idx ldb,
                         float beta, int first, float *cr, fs_idx len)
{
    const float *b0 = b, *b1 = b + ldb, *b2 = b + 2 * ldb, *b3 = b + 3 * ldb;
    const float s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
#define RANK_LOOP(EXPR)                                                    \
    if (!first)                                                            \
        for (fs_idx j = 0; j < len; j++) cr[j] += (EXPR);                  \
    else if (beta == 0.0f)                                                 \
        for (fs_idx j = 0; j < len; j++) cr[j] = (EXPR);                   \
    else                                                                   \
        for (fs_idx j = 0; j < len; j++) cr[j] = (EXPR) + beta * cr[j];
    switch (kb) {
    case 1: RANK_LOOP(s0 * b0[j]) break;
    case 2: RANK_LOOP(s0 * b0[j] + s1 * b1[j]) break;
    case 3: RANK_LOOP((s0 * b0[j] + s1 * b1[j]) + s2 * b2[j]) break;
    default: RANK_LOOP((s0 * b0[j] + s1 * b1[j]) + (s2 * b2[j] + s3 * b3[j])) break;
    }
#undef RANK_LOOP
}

void FN(fs_small_rank_)(int ta, fs_idx k, float alpha, const float *a, fs_idx lda,
                        const float *b, fs_idx ldb, float beta, float *c, fs_idx ldc,
                        fs_idx i0, fs_idx i1, fs_idx j0, fs_idx j1)
{
    for (fs_idx c0 = j0; c0 < j1; c0 += RANK_CHUNK) {
        const fs_idx len = j1 - c0 < RANK_CHUNK ? j1 - c0 : RANK_CHUNK;
        for (fs_idx p0 = 0; p0 < k; p0 += 4) {
            const int kb = (int)(k - p0 < 4 ? k - p0 : 4);
            for (fs_idx i = i0; i < i1; i++) {
                float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                for (int q = 0; q < kb; q++)
                    s[q] = alpha * (ta ? a[(p0 + q) * lda + i] : a[i * lda + p0 + q]);
                FN(rank_row)(kb, s, b + p0 * ldb + c0, ldb, beta, p0 == 0,
                             c + i * ldc + c0, len);
            }
        }
    }
}
