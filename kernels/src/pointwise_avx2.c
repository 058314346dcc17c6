/* The element-wise kernels (pointwise.h) built with the AVX2 flags, 8-lane
 * vectors; called only after the run-time CPU check in isa_dispatch.c. */
#define FS_PW_SUFFIX avx2
#define FS_PW_LANES 8
#include "activations_impl.h"
#include "optim_impl.h"
