/* The element-wise kernels (pointwise.h) built with the AVX-512 flags,
 * 16-lane vectors; called only after the run-time CPU check in
 * isa_dispatch.c. */
#define FS_PW_SUFFIX avx512
#define FS_PW_LANES 16
#include "activations_impl.h"
#include "optim_impl.h"
