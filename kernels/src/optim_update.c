/* Fused optimizer updates (kernels.h): one pass over each parameter, no
 * temporaries, following torch.optim's single-tensor (foreach=False) code
 * operation for operation, so results match torch to rounding. The loops
 * are optim_impl.h's, at the width of the ISA in use (pointwise.h); here the
 * parameter is cut among threads. */
#include "fastseg/kernels.h"

#include <math.h>

#include "parallel.h"
#include "pointwise.h"

/* Chunk t of nt of [0, count): *lo, and its length. */
static fs_idx chunk(fs_idx count, int t, int nt, fs_idx *lo)
{
    fs_idx hi;
    fs_split_range(count, t, nt, lo, &hi);
    return hi - *lo;
}

void fs_sgd_update(float *p, const float *g, float *buf, fs_idx count,
                   float lr, float momentum, float dampening,
                   float weight_decay, int nesterov, int first_step)
{
    const fs_pointwise_table *pt = fs_pointwise_kernels();
    FS_NT(count, FS_PAR_MIN_ELEMENTS)
    FS_PAR_FOR
    for (int t = 0; t < nt; t++) {
        fs_idx lo;
        const fs_idx n = chunk(count, t, nt, &lo);
        pt->sgd(p + lo, g + lo, buf ? buf + lo : NULL, n, lr, momentum, dampening,
                weight_decay, nesterov, first_step);
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
    const fs_pointwise_table *pt = fs_pointwise_kernels();
    FS_NT(count, FS_PAR_MIN_ELEMENTS)
    FS_PAR_FOR
    for (int t = 0; t < nt; t++) {
        fs_idx lo;
        const fs_idx n = chunk(count, t, nt, &lo);
        pt->adam(p + lo, g + lo, m + lo, v + lo, n, beta1, beta2, eps, weight_decay,
                 step_size, bc2_sqrt);
    }
}

void fs_rprop_update(float *p, const float *g, float *prev, float *step_size,
                     fs_idx count, float eta_minus, float eta_plus,
                     float step_min, float step_max)
{
    const fs_pointwise_table *pt = fs_pointwise_kernels();
    FS_NT(count, FS_PAR_MIN_ELEMENTS)
    FS_PAR_FOR
    for (int t = 0; t < nt; t++) {
        fs_idx lo;
        const fs_idx n = chunk(count, t, nt, &lo);
        pt->rprop(p + lo, g + lo, prev + lo, step_size + lo, n, eta_minus, eta_plus, step_min,
                  step_max);
    }
}
