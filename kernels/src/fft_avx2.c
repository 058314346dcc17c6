/* The vertical FFT kernels (fft_impl.h) and the complex micro-kernel
 * (cgemm_impl.h: 4 x 16, 8-float vectors) built with the AVX2/FMA flags;
 * called only when the GEMM's kernel table in use is avx2 (after the run-time
 * CPU check of isa_dispatch.c). */
#define FS_FFT_SUFFIX avx2
#define FS_FFT_NAME "avx2"
#define FS_CGEMM_SUFFIX avx2
#define FS_CGEMM_MR 4
#define FS_CGEMM_NR 16
#define FS_CGEMM_LANES 8
#include "cgemm_impl.h"
#include "fft_impl.h"
