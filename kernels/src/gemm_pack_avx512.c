/* The packing routines (gemm_pack_impl.h) of the AVX-512 table's format,
 * built with the AVX-512 flags (16 x 16 transposes): only that table packs
 * in this format, so they run only after the CPU check of isa_dispatch.c. */
#include "gemm_internal.h"

#define PACK_MR FS_GEMM_MR_AVX512
#define PACK_NR FS_GEMM_NR_AVX512
#include "gemm_pack_impl.h"
