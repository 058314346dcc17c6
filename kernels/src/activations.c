/* Element-wise activations (kernels.h). Backward passes take the forward
 * INPUT x and recompute what they need, so callers keep one array per layer.
 * NaN propagates as in PyTorch (relu(NaN) = NaN, and its gradient passes).
 * The math is activations_impl.h's, at the width of the ISA in use
 * (pointwise.h); here an array is cut among threads. */
#include "fastseg/kernels.h"

#include <math.h>

#include "parallel.h"
#include "pointwise.h"

/* out = f(a, b) over count elements, in one chunk per thread. */
static void run(fs_pw_fn f, const float *a, const float *b, float *out, fs_idx count)
{
    FS_NT(count, FS_PAR_MIN_ELEMENTS)
    FS_PAR_FOR
    for (int t = 0; t < nt; t++) {
        fs_idx lo, hi;
        fs_split_range(count, t, nt, &lo, &hi);
        f(a + lo, b + lo, out + lo, hi - lo);
    }
}

void fs_relu_forward(const float *x, float *y, fs_idx count)
{
    run(fs_pointwise_kernels()->relu, x, x, y, count);
}

void fs_relu_backward(const float *x, const float *dy, float *dx, fs_idx count)
{
    run(fs_pointwise_kernels()->relu_bwd, x, dy, dx, count);
}

void fs_tanh_forward(const float *x, float *y, fs_idx count)
{
    run(fs_pointwise_kernels()->tanh, x, x, y, count);
}

void fs_tanh_backward(const float *x, const float *dy, float *dx, fs_idx count)
{
    run(fs_pointwise_kernels()->tanh_bwd, x, dy, dx, count);
}

void fs_sigmoid_forward(const float *x, float *y, fs_idx count)
{
    run(fs_pointwise_kernels()->sigmoid, x, x, y, count);
}

void fs_sigmoid_backward(const float *x, const float *dy, float *dx, fs_idx count)
{
    run(fs_pointwise_kernels()->sigmoid_bwd, x, dy, dx, count);
}

/* x*sin(x) is only used to show what a non-monotonic activation does to
 * training (fastseg experiment activations), so it calls libm's sinf/cosf
 * per element rather than carrying a vectorisable approximation (and has no
 * per-ISA chunk function). */
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
