/* The vertical FFT kernels (fft_impl.h) and the complex micro-kernel
 * (cgemm_impl.h: 4 x 32, 16-float vectors: 24 accumulators of Gauss's three
 * products, 6 operand forms and the two weight broadcasts: one accumulator
 * more than the 32 zmm registers hold, spilled; 56.7 G multiply-adds/s of a
 * ~59 peak, one thread of a Zen 4, against 50.7 when the broadcasts were
 * left to the compiler) built with the AVX-512 flags; called only when the
 * GEMM's kernel table in use is avx512 (after the run-time CPU check of
 * isa_dispatch.c). */
#define FS_FFT_SUFFIX avx512
#define FS_FFT_NAME "avx512"
#define FS_FFT_LANE_UNROLL 2 /* the butterflies' lane loops (fft_impl.h) */
#define FS_CGEMM_SUFFIX avx512
#define FS_CGEMM_MR 4
#define FS_CGEMM_NR 32
#define FS_CGEMM_LANES 16
#include "cgemm_impl.h"
#include "fft_impl.h"
