/* The packing routines (gemm_pack_impl.h), once per packing format of the
 * kernel tables (fastseg/blocking.h). Baseline flags: every ISA packs with
 * the same code, so a packed panel means the same thing whoever reads it. */
#include "gemm_internal.h"

#define PACK_MR FS_GEMM_MR_AVX2
#define PACK_NR FS_GEMM_NR_AVX2
#include "gemm_pack_impl.h"
#undef PACK_MR
#undef PACK_NR

#define PACK_MR FS_GEMM_MR_AVX512
#define PACK_NR FS_GEMM_NR_AVX512
#include "gemm_pack_impl.h"
#undef PACK_MR
#undef PACK_NR
