/* The vertical FFT kernels (fft_impl.h) and the complex micro-kernel
 * (cgemm_impl.h: 4 x 32, 16-float vectors: 24 accumulators of Gauss's three
 * products + 6 operand forms + 1 = 31 of the 32 zmm registers, the weight
 * spectra read as embedded broadcasts) built with the AVX-512 flags; called
 * only when the GEMM's kernel table in use is avx512 (after the run-time CPU
 * check of isa_dispatch.c). */
#define FS_FFT_SUFFIX avx512
#define FS_FFT_NAME "avx512"
#define FS_CGEMM_SUFFIX avx512
#define FS_CGEMM_MR 4
#define FS_CGEMM_NR 32
#define FS_CGEMM_LANES 16
#include "cgemm_impl.h"
#include "fft_impl.h"
