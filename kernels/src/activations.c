/* Element-wise activations (kernels.h). Backward passes take the forward
 * INPUT x and recompute what they need, so callers keep one array per layer.
 * NaN propagates as in PyTorch (relu(NaN) = NaN, and its gradient passes). */
#include "fastseg/kernels.h"

#include <math.h>

/* Threads only pay for themselves on large arrays. */
#define FS_ACT_PAR_MIN ((fs_idx)1 << 16)

#ifdef _OPENMP
#define FS_PAR_FOR _Pragma("omp parallel for num_threads(nt) schedule(static) if (nt > 1 && count > FS_ACT_PAR_MIN)")
#define FS_NT const int nt = fs_get_num_threads();
#else
#define FS_PAR_FOR
#define FS_NT
#endif

/* Stable for large |x|: exp only ever sees a non-positive argument, so it
 * cannot overflow, and the result rounds to exactly 0 or 1 at the far ends. */
static inline float sigmoid1(float x)
{
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    const float e = expf(x);
    return e / (1.0f + e);
}

void fs_relu_forward(const float *x, float *y, fs_idx count)
{
    FS_NT
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void fs_relu_backward(const float *x, const float *dy, float *dx, fs_idx count)
{
    FS_NT
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) dx[i] = x[i] <= 0.0f ? 0.0f : dy[i];
}

void fs_tanh_forward(const float *x, float *y, fs_idx count)
{
    FS_NT
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) y[i] = tanhf(x[i]);
}

void fs_tanh_backward(const float *x, const float *dy, float *dx, fs_idx count)
{
    FS_NT
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) {
        const float t = tanhf(x[i]);
        dx[i] = dy[i] * (1.0f - t * t);
    }
}

void fs_sigmoid_forward(const float *x, float *y, fs_idx count)
{
    FS_NT
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) y[i] = sigmoid1(x[i]);
}

void fs_sigmoid_backward(const float *x, const float *dy, float *dx, fs_idx count)
{
    FS_NT
    FS_PAR_FOR
    for (fs_idx i = 0; i < count; i++) {
        const float s = sigmoid1(x[i]);
        dx[i] = dy[i] * s * (1.0f - s);
    }
}
