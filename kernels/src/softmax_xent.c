/* Fused softmax + cross-entropy (kernels.h), PyTorch's CrossEntropyLoss with
 * reduction="mean" (and its weighted mean). Fusing lets the gradient reuse
 * the softmax without a second exp pass and keeps everything log-sum-exp
 * stable: exp only ever sees logit - rowmax <= 0. */
#include "fastseg/kernels.h"

#include <math.h>

int fs_softmax_xent(const float *logits, fs_idx n, fs_idx k,
                    const int64_t *labels, const float *class_w,
                    float *loss, float *dlogits)
{
    /* Labels first: a bad one must leave every output untouched. */
    for (fs_idx i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k) return FS_EINDEX;
    if (n <= 0) {
        *loss = NAN; /* the mean over nothing, as torch gives */
        return FS_OK;
    }
    double wsum = (double)n;
    if (class_w) {
        wsum = 0.0;
        for (fs_idx i = 0; i < n; i++) wsum += class_w[labels[i]];
    }
    /* wsum == 0 gives NaN loss and gradient, as torch does. */
    const double inv = 1.0 / wsum;
    double total = 0.0;
    for (fs_idx i = 0; i < n; i++) {
        const float *z = logits + i * k;
        float *g = dlogits + i * k;
        const fs_idx y = (fs_idx)labels[i];
        float m = z[0];
        for (fs_idx j = 1; j < k; j++)
            if (z[j] > m || isnan(z[j])) m = z[j];
        if (isinf(m)) m = 0.0f; /* keep inf - inf out of the shift */
        double s = 0.0;
        for (fs_idx j = 0; j < k; j++) {
            const float e = expf(z[j] - m);
            g[j] = e;
            s += e;
        }
        const double lse = (double)m + log(s);
        const double wi = class_w ? (double)class_w[y] : 1.0;
        total += wi * (lse - (double)z[y]);
        const double scale = wi * inv / s;
        for (fs_idx j = 0; j < k; j++) g[j] = (float)(g[j] * scale);
        g[y] -= (float)(wi * inv);
    }
    *loss = (float)(total * inv);
    return FS_OK;
}
