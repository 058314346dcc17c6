/* The vertical FFT kernels (fft_impl.h) and the complex micro-kernel
 * (cgemm_impl.h: 4 x 16, 4-float vectors) for any CPU: the compiler's
 * baseline vectors (SSE2 on x86-64). */
#define FS_FFT_SUFFIX generic
#define FS_FFT_NAME "generic"
#define FS_CGEMM_SUFFIX generic
#define FS_CGEMM_MR 4
#define FS_CGEMM_NR 16
#define FS_FFT_EV_LANES 4 /* the epilogue's vectors (fft_impl.h) */
#define FS_CGEMM_LANES 4
#include "cgemm_impl.h"
#include "fft_impl.h"
