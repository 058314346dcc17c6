/* 3-D max pooling (kernels.h), PyTorch's semantics: floor output size, no
 * padding, argmax as a flat index within the (d, h, w) volume. */
#include "fastseg/kernels.h"

#include <math.h>

#include "window.h"

/* Below this many window reads a thread team costs more than it saves. */
#define FS_POOL3D_PAR_MIN ((fs_idx)1 << 15)

/* The maximum of one window, its first position winning ties and the first
 * NaN winning outright (as np.argmax and PyTorch). `start` is the window's
 * corner in the volume xv. */
static inline void window_max(const float *xv, fs_idx start, fs_idx h, fs_idx w,
                              const fs_idx k[3], float *best_out, int64_t *at_out)
{
    float best = xv[start];
    fs_idx at = start;
    if (!isnan(best)) {
        for (fs_idx a = 0; a < k[0]; a++)
            for (fs_idx b = 0; b < k[1]; b++) {
                const fs_idx row = start + (a * h + b) * w;
                for (fs_idx e = 0; e < k[2]; e++) {
                    const float v = xv[row + e];
                    if (v > best) {
                        best = v;
                        at = row + e;
                    } else if (isnan(v)) {
                        *best_out = v;
                        *at_out = (int64_t)(row + e);
                        return;
                    }
                }
            }
    }
    *best_out = best;
    *at_out = (int64_t)at;
}

int fs_maxpool3d_forward(const float *x, fs_idx n, fs_idx c, const fs_idx size[3],
                         const fs_idx k[3], const fs_idx stride[3], float *y, int64_t *idx)
{
    for (int a = 0; a < 3; a++)
        if (k[a] < 1 || stride[a] < 1) return FS_EVALUE;
    const fs_idx d = size[0], h = size[1], w = size[2];
    const fs_idx od = fs_out_extent(d, k[0], stride[0], 0);
    const fs_idx oh = fs_out_extent(h, k[1], stride[1], 0);
    const fs_idx ow = fs_out_extent(w, k[2], stride[2], 0);
    if (n <= 0 || c <= 0 || od == 0 || oh == 0 || ow == 0) return FS_OK;
    const fs_idx vols = n * c, vol = d * h * w, ovol = od * oh * ow;
#ifdef _OPENMP
    const int nt = fs_get_num_threads();
#pragma omp parallel for num_threads(nt) schedule(static) \
    if (nt > 1 && vols * ovol * k[0] * k[1] * k[2] >= FS_POOL3D_PAR_MIN)
#endif
    for (fs_idx v = 0; v < vols; v++) {
        const float *xv = x + v * vol;
        float *yv = y + v * ovol;
        int64_t *iv = idx + v * ovol;
        for (fs_idx oz = 0; oz < od; oz++)
            for (fs_idx oy = 0; oy < oh; oy++) {
                const fs_idx o = (oz * oh + oy) * ow;
                const fs_idx row = (oz * stride[0] * h + oy * stride[1]) * w;
                for (fs_idx ox = 0; ox < ow; ox++)
                    window_max(xv, row + ox * stride[2], h, w, k, &yv[o + ox], &iv[o + ox]);
            }
    }
    return FS_OK;
}

int fs_maxpool3d_backward(const float *dy, const int64_t *idx, fs_idx n, fs_idx c,
                          fs_idx out_count, fs_idx in_count, float *dx)
{
    /* The scatter sees only flat volumes: it is the 2-D kernel's, with each
     * volume as one row of in_count (out_count) elements. */
    return fs_maxpool2d_backward(dy, idx, n, c, out_count, 1, in_count, 1, dx);
}
