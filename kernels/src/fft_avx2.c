/* The vertical FFT kernels (fft_impl.h) and the complex micro-kernel
 * (cgemm_impl.h: 3 x 8, 8-float vectors) built with the AVX2/FMA flags;
 * called only when the GEMM's kernel table in use is avx2 (after the run-time
 * CPU check of isa_dispatch.c).
 * 3 x 8 is the one tile whose Gauss product fits the 16 ymm registers: 9
 * accumulators, 3 operand forms, 2 broadcasts. Kernel alone, in L1, one thread
 * of a Zen 4 under FASTSEG_ISA=avx2, in complex multiply-adds: 16.8 G/s against
 * 10.6 at 4 x 16 (24 accumulators, spilled) and 8.9 at 4 x 8 (17 registers:
 * two accumulators spilled, their sums carried through memory). Whole lai2d
 * layer at 584x565: products 2.8 -> 1.9 s; the forward transforms, on
 * half-width panels, 0.12 -> 0.18 s. The price: the four-product kernel at
 * 3 x 8 is latency-bound (six chains of two dependent FMAs a step), 10.9 G/s
 * against 12.5-13.0 at four rows -- what a CPU whose tuner picks four products
 * (Intel's AVX2 cores: their adds share the FMA ports) would have run. */
#define FS_FFT_SUFFIX avx2
#define FS_FFT_NAME "avx2"
#define FS_CGEMM_SUFFIX avx2
#define FS_CGEMM_MR 3
#define FS_CGEMM_NR 8
#define FS_FFT_EV_LANES 8 /* the epilogue's vectors (fft_impl.h) */
#define FS_CGEMM_LANES 8
#include "cgemm_impl.h"
#include "fft_impl.h"
