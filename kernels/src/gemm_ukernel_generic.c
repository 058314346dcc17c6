/*
 * The portable MR x NR micro-kernel. Plain loops with a fixed-size
 * accumulator and unit-stride inner loops over NR so that gcc/clang
 * vectorise them with whatever baseline SIMD the target has (SSE2 on
 * x86-64, NEON on arm64). It is the fallback, not the fast path.
 */
#include "gemm_internal.h"

void fs_ukernel_generic(fs_idx kc, float alpha, const float *restrict ap,
                        const float *restrict bp, float beta, float *restrict c,
                        fs_idx ldc, int mr, int nr)
{
    float acc[FS_MR][FS_NR];
    for (int i = 0; i < FS_MR; i++)
        for (int j = 0; j < FS_NR; j++) acc[i][j] = 0.0f;

    for (fs_idx p = 0; p < kc; p++) {
        for (int i = 0; i < FS_MR; i++) {
            const float av = ap[i];
            for (int j = 0; j < FS_NR; j++) acc[i][j] += av * bp[j];
        }
        ap += FS_MR;
        bp += FS_NR;
    }

    /* beta == 0 must not read C: NaN there would survive 0 * NaN. */
    if (beta == 0.0f) {
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++) c[i * ldc + j] = alpha * acc[i][j];
    } else {
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++)
                c[i * ldc + j] = alpha * acc[i][j] + beta * c[i * ldc + j];
    }
}
