/* The packing routines (gemm_pack_impl.h) of the 6 x 16 format, which the
 * generic and AVX2 tables share: baseline flags, so the portable kernel can
 * run on any x86-64. (The AVX-512 table's format: gemm_pack_avx512.c.) */
#include "gemm_internal.h"

#define PACK_MR FS_GEMM_MR_AVX2
#define PACK_NR FS_GEMM_NR_AVX2
#include "gemm_pack_impl.h"
