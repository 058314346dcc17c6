/* Max pooling (kernels.h), PyTorch's semantics: floor output size, no
 * padding, argmax as a flat index within the (h, w) plane. The forward's
 * loops are pool_impl.h's, at the width of the ISA in use (pointwise.h). */
#include "fastseg/kernels.h"

#include <string.h>

#include "parallel.h"
#include "pointwise.h"
#include "window.h"

void fs_maxpool2d_forward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                          fs_idx k, fs_idx stride, float *y, int64_t *idx)
{
    if (n <= 0 || c <= 0 || k <= 0 || stride <= 0) return;
    const fs_idx oh = fs_out_extent(h, k, stride, 0), ow = fs_out_extent(w, k, stride, 0);
    if (oh == 0 || ow == 0) return;
    const fs_idx planes = n * c;
    /* pool_impl.h numbers a window's taps in 32 bits; a window of more than
     * 2^31 taps (k > 46340: an image of 8 GB a plane) takes the plain scan. */
    if (k > 46340) {
        for (fs_idx pl = 0; pl < planes; pl++) {
            const float *xp = x + pl * h * w;
            for (fs_idx o = 0; o < oh * ow; o++) {
                const fs_idx start = (o / ow) * stride * w + (o % ow) * stride;
                fs_idx at = start;
                for (fs_idx a = 0; a < k; a++)
                    for (fs_idx b = 0; b < k; b++) {
                        const float v = xp[start + a * w + b], best = xp[at];
                        if (v > best || (v != v && best == best)) at = start + a * w + b;
                    }
                y[pl * oh * ow + o] = xp[at];
                idx[pl * oh * ow + o] = at;
            }
        }
        return;
    }
    const fs_pointwise_table *pt = fs_pointwise_kernels();
    FS_NT((double)planes * oh * ow * k * k, FS_PAR_MIN_READS)
    FS_PAR_FOR
    for (int t = 0; t < nt; t++) {
        fs_idx p0, p1;
        fs_split_range(planes, t, nt, &p0, &p1);
        pt->maxpool(x + p0 * h * w, p1 - p0, h, w, k, stride, oh, ow, y + p0 * oh * ow,
                    idx + p0 * oh * ow);
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
