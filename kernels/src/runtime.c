/* Process-wide thread count. The instruction-set choice lives beside the
 * GEMM that it serves (isa_dispatch.c). */
#include "fastseg/kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* 0 until first asked: then OpenMP's default, which honours OMP_NUM_THREADS. */
static int fs_threads = 0;

void fs_set_num_threads(int n) { fs_threads = n < 1 ? 1 : n; }

int fs_get_num_threads(void)
{
    if (fs_threads <= 0) {
#ifdef _OPENMP
        fs_threads = omp_get_max_threads();
#else
        fs_threads = 1;
#endif
        if (fs_threads < 1) fs_threads = 1;
    }
    return fs_threads;
}

int fs_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
