/* The reference SGEMM: a plain triple loop with the same contract as
 * fs_sgemm (kernels.h). It is the C tests' oracle, never the fast path. */
#include "fastseg/kernels.h"

void fs_sgemm_ref(int trans_a, int trans_b, fs_idx m, fs_idx n, fs_idx k,
                  float alpha, const float *a, fs_idx lda,
                  const float *b, fs_idx ldb,
                  float beta, float *c, fs_idx ldc)
{
    for (fs_idx i = 0; i < m; i++) {
        for (fs_idx j = 0; j < n; j++) {
            double acc = 0.0;
            for (fs_idx p = 0; p < k; p++) {
                float av = trans_a ? a[p * lda + i] : a[i * lda + p];
                float bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
                acc += (double)av * (double)bv;
            }
            float *cij = &c[i * ldc + j];
            /* beta == 0 must not read C, so NaN/garbage there is ignored. */
            *cij = (float)(alpha * acc + (beta == 0.0f ? 0.0f : beta * *cij));
        }
    }
}
