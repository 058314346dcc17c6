/*
 * optim_impl.h -- the fused optimizer updates on one chunk of a parameter,
 * compiled once per ISA by pointwise_*.c (pointwise.h); optim_update.c
 * splits a parameter among threads. Plain loops that every build
 * vectorises at its width (each element independent; selects, not
 * branches), following torch.optim's single-tensor (foreach=False) code
 * operation for operation, so results match torch to rounding.
 */
#include <math.h>

#include "pointwise.h"

#define OPT_CAT_(x, y) x##y
#define OPT_CAT(x, y) OPT_CAT_(x, y)
#define OPTFN(x) OPT_CAT(x, FS_PW_SUFFIX)

void OPTFN(fs_pw_sgd_)(float *p, const float *g, float *buf, fs_idx n, float lr,
                       float momentum, float dampening, float weight_decay, int nesterov,
                       int first_step)
{
    for (fs_idx i = 0; i < n; i++) {
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

/* step_size = lr / (1 - beta1^step), bc2_sqrt = sqrt(1 - beta2^step): the
 * caller computes them once, in double as torch does on Python floats. */
void OPTFN(fs_pw_adam_)(float *p, const float *g, float *m, float *v, fs_idx n, float beta1,
                        float beta2, float eps, float weight_decay, float step_size,
                        float bc2_sqrt)
{
    const float w1 = 1.0f - beta1, w2 = 1.0f - beta2;
    for (fs_idx i = 0; i < n; i++) {
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

void OPTFN(fs_pw_rprop_)(float *p, const float *g, float *prev, float *step_size, fs_idx n,
                         float eta_minus, float eta_plus, float step_min, float step_max)
{
    for (fs_idx i = 0; i < n; i++) {
        const float s = g[i] * prev[i];
        /* torch overwrites sign(g*prev) with the factors, NaN staying NaN */
        const float factor = s > 0.0f ? eta_plus : s < 0.0f ? eta_minus : s != s ? s : 1.0f;
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
