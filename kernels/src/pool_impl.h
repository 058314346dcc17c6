/*
 * pool_impl.h -- max pooling forward on a run of (h, w) planes, compiled
 * once per ISA by pointwise_*.c (pointwise.h); pool.c cuts the planes among
 * threads. PyTorch's semantics: the first maximum wins ties, the first NaN
 * wins outright.
 *
 * Written so the compiler vectorises it: the window is walked tap by tap
 * (a, b) in scan order, each tap updating a row of running maxima across
 * the output columns with branch-free selects -- "take v when v > best, or
 * when v is the first NaN" -- and a 32-bit tap number, so floats and tap
 * numbers share one vector width; the int64 flat indices are written from
 * the tap numbers at the end. (Output by output, the scan with an early
 * exit on NaN ran scalar: 3 ns an input element.)
 */
#include <stdint.h>

#include "pointwise.h"

#define POOL_CAT_(x, y) x##y
#define POOL_CAT(x, y) POOL_CAT_(x, y)
#define POOLFN(x) POOL_CAT(x, FS_PW_SUFFIX)

/* Output columns per pass: the running maxima and tap numbers stay in L1. */
#define POOL_COLS 256

void POOLFN(fs_pw_maxpool_)(const float *x, fs_idx planes, fs_idx h, fs_idx w, fs_idx k,
                            fs_idx stride, fs_idx oh, fs_idx ow, float *y, int64_t *idx)
{
    float best[POOL_COLS];
    int32_t tap[POOL_COLS];
    for (fs_idx pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * h * w;
        for (fs_idx oi = 0; oi < oh; oi++) {
            float *yr = y + (pl * oh + oi) * ow;
            int64_t *ir = idx + (pl * oh + oi) * ow;
            for (fs_idx j0 = 0; j0 < ow; j0 += POOL_COLS) {
                const fs_idx cols = ow - j0 < POOL_COLS ? ow - j0 : POOL_COLS;
                const float *top = xp + oi * stride * w + j0 * stride;
                for (fs_idx j = 0; j < cols; j++) {
                    best[j] = top[j * stride];
                    tap[j] = 0;
                }
                for (fs_idx a = 0; a < k; a++)
                    for (fs_idx b = a == 0 ? 1 : 0; b < k; b++) {
                        const float *row = top + a * w + b;
                        const int32_t t = (int32_t)(a * k + b);
                        for (fs_idx j = 0; j < cols; j++) {
                            const float v = row[j * stride], cur = best[j];
                            /* strictly greater keeps the first maximum; a NaN
                             * replaces only a number, so the first NaN stays */
                            const int take = (v > cur) | ((v != v) & (cur == cur));
                            best[j] = take ? v : cur;
                            tap[j] = take ? t : tap[j];
                        }
                    }
                for (fs_idx j = 0; j < cols; j++) {
                    const fs_idx a = tap[j] / k, b = tap[j] % k;
                    yr[j0 + j] = best[j];
                    ir[j0 + j] = (oi * stride + a) * w + (j0 + j) * stride + b;
                }
            }
        }
    }
}
