/* Fused optimizer updates (kernels.h): one pass over each parameter, no
 * temporaries, following torch.optim's single-tensor (foreach=False) code
 * operation for operation, so results match torch to rounding. */
#include "fastseg/kernels.h"

#include <math.h>

#include "parallel.h"

void fs_sgd_update(float *p, const float *g, float *buf, fs_idx count,
                   float lr, float momentum, float dampening,
                   float weight_decay, int nesterov, int first_step)
{
    FS_NT(count, FS_PAR_MIN_ELEMENTS)
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) {
        float d = g[i];
        if (weight_decay != 0.0f) d = d + weight_decay * p[i];
        if (momentum != 0.0f) {
            /* torch clones the gradient into a fresh buffer: no dampening. */
            const float b = first_step ? d : momentum * buf[i] + (1.0f - dampening) * d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        p[i] -= lr * d;
    }
}

void fs_adam_update(float *p, const float *g, float *m, float *v, fs_idx count,
                    float lr, float beta1, float beta2, float eps,
                    float weight_decay, fs_idx step)
{
    /* torch computes these on Python floats, i.e. in double. */
    const double bc1 = 1.0 - pow((double)beta1, (double)step);
    const double bc2 = 1.0 - pow((double)beta2, (double)step);
    const float step_size = (float)((double)lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float w1 = 1.0f - beta1, w2 = 1.0f - beta2;
    FS_NT(count, FS_PAR_MIN_ELEMENTS)
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) {
        float d = g[i];
        if (weight_decay != 0.0f) d = d + weight_decay * p[i];
        /* exp_avg.lerp_(grad, 1 - beta1), with torch's lerp formula */
        const float mi = w1 < 0.5f ? m[i] + w1 * (d - m[i]) : d - (d - m[i]) * (1.0f - w1);
        const float vi = v[i] * beta2 + w2 * d * d;
        m[i] = mi;
        v[i] = vi;
        const float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] -= step_size * (mi / denom);
    }
}

void fs_rprop_update(float *p, const float *g, float *prev, float *step_size,
                     fs_idx count, float eta_minus, float eta_plus,
                     float step_min, float step_max)
{
    FS_NT(count, FS_PAR_MIN_ELEMENTS)
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) {
        const float s = g[i] * prev[i];
        /* torch overwrites sign(g*prev) with the factors, NaN staying NaN */
        const float factor = s > 0.0f ? eta_plus : s < 0.0f ? eta_minus : isnan(s) ? s : 1.0f;
        float st = step_size[i] * factor;
        st = st < step_min ? step_min : st; /* clamp that keeps NaN, as torch */
        st = st > step_max ? step_max : st;
        step_size[i] = st;
        /* torch zeroes the gradient where the factor equals eta_minus */
        const float d = factor == eta_minus ? 0.0f : g[i];
        const float sg = d > 0.0f ? 1.0f : d < 0.0f ? -1.0f : 0.0f;
        p[i] -= sg * st;
        prev[i] = d;
    }
}
