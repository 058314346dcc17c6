/* The small-shape kernels (gemm_small_impl.h), portable build. */
#define FS_SMALL_SUFFIX generic
#include "gemm_small_impl.h"
