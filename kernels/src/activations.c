/* Element-wise activations (kernels.h). Backward passes take the forward
 * INPUT x and recompute what they need, so callers keep one array per layer.
 * NaN propagates as in PyTorch (relu(NaN) = NaN, and its gradient passes). */
#include "fastseg/kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "parallel.h"

/* Stable for large |x|: exp only ever sees a non-positive argument, so it
 * cannot overflow, and the result rounds to exactly 0 or 1 at the far ends. */
static inline float sigmoid1(float x)
{
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    const float e = expf(x);
    return e / (1.0f + e);
}

/* tanh without libm, so the loops below vectorise (a tanhf call per element
 * cost ~10 ns: 15 ms for lai2d's 128 x 12800 activations, more than the
 * layer's GEMM share). Odd and saturating: computed on |x| <= 10 (beyond,
 * tanh rounds to 1), sign restored at the end; NaN passes through.
 *   |x| < 0.625: x + x^3 * P(x^2), P a least-squares fit (<= 0.75 ulp);
 *   else:        1 - 2 / (e^(2|x|) + 1), e^y = 2^n e^r with |r| <= ln2/2 and
 *                e^r a degree-6 fit; no cancellation, since the quotient is
 *                at most 0.45 here.
 * Within 2 ulp of the exact tanh over the whole range (tested against it). */
static inline float exp_reduced(float y) /* y in [0, 20] */
{
    const float n = (float)(int)(y * 1.44269504f + 0.5f);
    const float r = (y - n * 0.693145752f) - n * 1.42860677e-6f; /* ln2 in two parts */
    float e = 1.38248441e-3f;
    e = e * r + 8.37155048e-3f;
    e = e * r + 4.16682347e-2f;
    e = e * r + 1.66664607e-1f;
    e = e * r + 4.99999931e-1f;
    e = e * r + 1.00000003f;
    e = e * r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23; /* 2^n, n <= 29 */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return e * scale;
}

static inline float tanh1(float x)
{
    float ax = fabsf(x);
    ax = ax < 10.0f ? ax : 10.0f;
    const float t = ax * ax;
    float p = 2.17802352e-3f;
    p = p * t - 8.21497229e-3f;
    p = p * t + 2.17155527e-2f;
    p = p * t - 5.39493967e-2f;
    p = p * t + 1.33332261e-1f;
    p = p * t - 3.33333313e-1f;
    const float small = ax + ax * (t * p);
    const float large = 1.0f - 2.0f / (exp_reduced(2.0f * ax) + 1.0f);
    const float mag = ax < 0.625f ? small : large;
    return x != x ? x : copysignf(mag, x);
}

void fs_relu_forward(const float *x, float *y, fs_idx count)
{
    FS_NT(count, FS_PAR_MIN_ELEMENTS)
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void fs_relu_backward(const float *x, const float *dy, float *dx, fs_idx count)
{
    FS_NT(count, FS_PAR_MIN_ELEMENTS)
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) {
        /* Both loads unconditional: then the select becomes a vector blend.
         * Written as `x <= 0 ? 0 : dy[i]` gcc kept a branch per element,
         * mispredicted half the time on real activations (30x slower). */
        const float g = dy[i], v = x[i];
        dx[i] = v <= 0.0f ? 0.0f : g;
    }
}

void fs_tanh_forward(const float *x, float *y, fs_idx count)
{
    FS_NT(count, FS_PAR_MIN_ELEMENTS)
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) y[i] = tanh1(x[i]);
}

void fs_tanh_backward(const float *x, const float *dy, float *dx, fs_idx count)
{
    FS_NT(count, FS_PAR_MIN_ELEMENTS)
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) {
        const float t = tanh1(x[i]);
        dx[i] = dy[i] * (1.0f - t * t);
    }
}

void fs_sigmoid_forward(const float *x, float *y, fs_idx count)
{
    FS_NT(count, FS_PAR_MIN_ELEMENTS)
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) y[i] = sigmoid1(x[i]);
}

void fs_sigmoid_backward(const float *x, const float *dy, float *dx, fs_idx count)
{
    FS_NT(count, FS_PAR_MIN_ELEMENTS)
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) {
        const float s = sigmoid1(x[i]);
        dx[i] = dy[i] * s * (1.0f - s);
    }
}

/* x*sin(x) is only used to show what a non-monotonic activation does to
 * training (fastseg experiment activations), so it calls libm's sinf/cosf
 * per element rather than carrying a vectorisable approximation. */
void fs_xsin_forward(const float *x, float *y, fs_idx count)
{
    FS_NT(count, FS_PAR_MIN_ELEMENTS)
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) y[i] = x[i] * sinf(x[i]);
}

void fs_xsin_backward(const float *x, const float *dy, float *dx, fs_idx count)
{
    FS_NT(count, FS_PAR_MIN_ELEMENTS)
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) {
        const float v = x[i];
        dx[i] = dy[i] * (sinf(v) + v * cosf(v));
    }
}
