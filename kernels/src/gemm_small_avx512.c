/* The small-shape kernels (gemm_small_impl.h) built with the AVX-512 flags;
 * called only after the run-time CPU check in isa_dispatch.c. */
#define FS_SMALL_SUFFIX avx512
#define FS_SMALL_LANES 16
#include "gemm_small_impl.h"
