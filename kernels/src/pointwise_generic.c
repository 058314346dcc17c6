/* The element-wise kernels (pointwise.h) with the baseline flags: 4-lane
 * vectors, SSE2 on x86-64 (and what the target has elsewhere). Max pooling
 * is built here only: its stride-2 loads cost more in wider vectors (lai2d's
 * 2x2 pooling of 128 x 20 x 20 x 20: 1.09 ms here, 1.43 ms built for AVX2,
 * 1.48 ms for AVX-512, on a Zen 5), so every ISA's table uses this one. */
#define FS_PW_SUFFIX generic
#define FS_PW_LANES 4
#include "activations_impl.h"
#include "optim_impl.h"
#include "pool_impl.h"
