/* Max pooling (kernels.h), PyTorch's semantics: floor output size, no
 * padding, argmax as a flat index within the (h, w) plane. */
#include "fastseg/kernels.h"

#include <math.h>
#include <string.h>

#include "parallel.h"
#include "window.h"

void fs_maxpool2d_forward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                          fs_idx k, fs_idx stride, float *y, int64_t *idx)
{
    if (n <= 0 || c <= 0 || k <= 0 || stride <= 0) return;
    const fs_idx oh = fs_out_extent(h, k, stride, 0), ow = fs_out_extent(w, k, stride, 0);
    if (oh == 0 || ow == 0) return;
    const fs_idx planes = n * c;
    FS_NT((double)planes * oh * ow * k * k, FS_PAR_MIN_READS)
    FS_PAR_FOR
    for (fs_idx pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * h * w;
        float *yp = y + pl * oh * ow;
        int64_t *ip = idx + pl * oh * ow;
        for (fs_idx oi = 0; oi < oh; oi++) {
            for (fs_idx oj = 0; oj < ow; oj++) {
                const fs_idx start = oi * stride * w + oj * stride;
                float best = xp[start];
                fs_idx at = start;
                int nan_seen = isnan(best);
                for (fs_idx a = 0; a < k && !nan_seen; a++) {
                    const float *row = xp + start + a * w;
                    for (fs_idx b = 0; b < k; b++) {
                        const float v = row[b];
                        /* Strictly greater keeps the first maximum; the first
                         * NaN wins outright and ends the scan. */
                        if (v > best || isnan(v)) {
                            best = v;
                            at = start + a * w + b;
                            if (isnan(v)) { nan_seen = 1; break; }
                        }
                    }
                }
                yp[oi * ow + oj] = best;
                ip[oi * ow + oj] = (int64_t)at;
            }
        }
    }
}

int fs_maxpool2d_backward(const float *dy, const int64_t *idx,
                          fs_idx n, fs_idx c, fs_idx oh, fs_idx ow,
                          fs_idx h, fs_idx w, float *dx)
{
    if (n <= 0 || c <= 0) return FS_OK;
    const fs_idx plane = h * w, oplane = oh > 0 && ow > 0 ? oh * ow : 0;
    const fs_idx planes = n * c, total = planes * oplane;
    /* Every index is checked before anything is written, so a bad one
     * leaves dx untouched rather than half-scattered. */
    for (fs_idx i = 0; i < total; i++)
        if (idx[i] < 0 || idx[i] >= plane) return FS_EINDEX;
    if (plane <= 0) return FS_OK;
    FS_NT((double)planes * (plane + oplane), FS_PAR_MIN_READS)
    FS_PAR_FOR
    for (fs_idx pl = 0; pl < planes; pl++) {
        float *dp = dx + pl * plane;
        const float *gp = dy + pl * oplane;
        const int64_t *ip = idx + pl * oplane;
        memset(dp, 0, (size_t)plane * sizeof(float));
        for (fs_idx j = 0; j < oplane; j++) dp[ip[j]] += gp[j];
    }
    return FS_OK;
}
