/* The vertical FFT kernels (fft_impl.h) and the complex micro-kernel
 * (cgemm_impl.h: 4 x 16, 8-float vectors) built with the AVX2/FMA flags;
 * called only when the GEMM's kernel table in use is avx2 (after the run-time
 * CPU check of isa_dispatch.c).
 * 4 x 16 spills some of its 24 accumulators past the 16 ymm registers, yet 4 x 8
 * (12 accumulators, no spill; chunks rounded to 16 blocks) measured slower on Zen 4
 * under FASTSEG_ISA=avx2, one thread, lai2d 584x565: products 4.2 s against 3.6-3.7,
 * forward transforms 0.33 against 0.22 (half-width panels); 4 x 4 generic: 8.9-9.2 s
 * against 6.4-7.6. */
#define FS_FFT_SUFFIX avx2
#define FS_FFT_NAME "avx2"
#define FS_CGEMM_SUFFIX avx2
#define FS_CGEMM_MR 4
#define FS_CGEMM_NR 16
#define FS_FFT_EV_LANES 8 /* the epilogue's vectors (fft_impl.h) */
#define FS_CGEMM_LANES 8
#include "cgemm_impl.h"
#include "fft_impl.h"
