/*
 * The portable MR x NR micro-kernel. Plain loops with a fixed-size
 * accumulator and unit-stride inner loops over NR so that gcc/clang
 * vectorise them with whatever baseline SIMD the target has (SSE2 on
 * x86-64, NEON on arm64). It is the fallback, not the fast path.
 */
#include "gemm_internal.h"

/* AVX2's packing format, so the two kernels read the same panels. */
#define FS_MR FS_GEMM_MR_AVX2
#define FS_NR FS_GEMM_NR_AVX2

/* Columns per pass: an MR x 8 accumulator is 12 SSE registers (of 16), so
 * it stays in registers; the full MR x NR (24) would spill every k step. */
#define HALF 8
#if FS_NR % HALF != 0 || FS_GEMM_SEG % HALF != 0
#error "NR and the segment must be multiples of 8"
#endif

void fs_ukernel_generic(fs_idx kc, float alpha, const float *restrict ap,
                        const float *restrict bp, float beta, float *restrict c,
                        fs_idx ldc, int mr, int nr)
{
    for (int h = 0; h < FS_NR && h < nr; h += HALF) {
        float acc[FS_MR][HALF];
        for (int i = 0; i < FS_MR; i++)
            for (int j = 0; j < HALF; j++) acc[i][j] = 0.0f;

        const float *a = ap, *b = bp + h;
        for (fs_idx p = 0; p < kc; p++) {
            for (int i = 0; i < FS_MR; i++)
                for (int j = 0; j < HALF; j++) acc[i][j] += a[i] * b[j];
            a += FS_MR;
            b += FS_NR;
        }

        const int w = nr - h < HALF ? nr - h : HALF;
        /* beta == 0 must not read C: NaN there would survive 0 * NaN. */
        for (int i = 0; i < mr; i++) {
            float *cr = c + i * ldc + h;
            if (beta == 0.0f)
                for (int j = 0; j < w; j++) cr[j] = alpha * acc[i][j];
            else
                for (int j = 0; j < w; j++) cr[j] = alpha * acc[i][j] + beta * cr[j];
        }
    }
}

void fs_ukernel_rows_generic(fs_idx kc, const float *ap, const float *bp,
                             float *const *rows, const fs_idx *seg, int mr)
{
    float t[FS_MR * FS_NR];
    fs_ukernel_generic(kc, 1.0f, ap, bp, 0.0f, t, FS_NR, FS_MR, FS_NR);
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < FS_NR; j++)
            rows[i][seg[j / FS_GEMM_SEG] + j % FS_GEMM_SEG] += t[i * FS_NR + j];
}

void fs_ukernel_gather_b_generic(fs_idx kc, const float *ap, const float *xb, const fs_idx *seg,
                                 const int32_t *off, float beta, float *c, fs_idx ldc, int mr)
{
    for (int h = 0; h < FS_NR; h += HALF) {
        /* HALF divides the segment: these columns are in one segment. */
        const float *xs = xb + seg[h / FS_GEMM_SEG] + h % FS_GEMM_SEG;
        float acc[FS_MR][HALF];
        for (int i = 0; i < FS_MR; i++)
            for (int j = 0; j < HALF; j++) acc[i][j] = 0.0f;
        for (fs_idx p = 0; p < kc; p++) {
            const float *a = ap + p * FS_MR, *b = xs + off[p];
            for (int i = 0; i < FS_MR; i++)
                for (int j = 0; j < HALF; j++) acc[i][j] += a[i] * b[j];
        }
        for (int i = 0; i < mr; i++) {
            float *cr = c + i * ldc + h;
            for (int j = 0; j < HALF; j++) cr[j] = acc[i][j] + (beta == 0.0f ? 0.0f : cr[j]);
        }
    }
}
