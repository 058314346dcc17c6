/*
 * Which GEMM micro-kernel runs: AVX2/FMA when the CPU has both, else the
 * portable one. FASTSEG_ISA (auto|avx2|generic) is read once, at first use;
 * fs_select_isa overrides it later. The choice is one atomic int so that
 * concurrent first calls need no lock: each computes the same default and
 * only the first compare-and-swap from "unset" wins.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_internal.h"

enum { ISA_UNSET = -1, ISA_GENERIC = 0, ISA_AVX2 = 1 };

static atomic_int fs_isa = ISA_UNSET;

static int cpu_has_avx2(void)
{
#if defined(FS_HAVE_AVX2_KERNEL) && (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* ISA for a name, or ISA_UNSET when the name is unknown or unsupported. */
static int isa_from_name(const char *name)
{
    if (strcmp(name, "generic") == 0) return ISA_GENERIC;
    if (strcmp(name, "auto") == 0) return cpu_has_avx2() ? ISA_AVX2 : ISA_GENERIC;
    if (strcmp(name, "avx2") == 0) return cpu_has_avx2() ? ISA_AVX2 : ISA_UNSET;
    return ISA_UNSET;
}

static int current_isa(void)
{
    int isa = atomic_load_explicit(&fs_isa, memory_order_acquire);
    if (isa != ISA_UNSET) return isa;
    const char *env = getenv("FASTSEG_ISA");
    int want = ISA_UNSET;
    if (env && *env) {
        want = isa_from_name(env);
        if (want == ISA_UNSET)
            fprintf(stderr, "fastseg: FASTSEG_ISA=%s is unknown or unsupported by this "
                            "CPU; using auto\n", env);
    }
    if (want == ISA_UNSET) want = isa_from_name("auto");
    int expected = ISA_UNSET;
    if (!atomic_compare_exchange_strong(&fs_isa, &expected, want)) want = expected;
    return want;
}

const char *fs_isa_name(void)
{
    return current_isa() == ISA_AVX2 ? "avx2" : "generic";
}

int fs_select_isa(const char *name)
{
    if (name == NULL) return FS_EVALUE;
    (void)current_isa(); /* consume FASTSEG_ISA first so it cannot undo this choice later */
    int isa = isa_from_name(name);
    if (isa == ISA_UNSET) return FS_EVALUE;
    atomic_store_explicit(&fs_isa, isa, memory_order_release);
    return FS_OK;
}

static const fs_gemm_kernel_table generic_kernels = {
    fs_ukernel_generic, fs_ukernel_rows_generic, fs_ukernel_gather_b_generic,
    fs_small_dots_generic, fs_small_rank_generic,
};
#ifdef FS_HAVE_AVX2_KERNEL
static const fs_gemm_kernel_table avx2_kernels = {
    fs_ukernel_avx2, fs_ukernel_rows_avx2, fs_ukernel_gather_b_avx2,
    fs_small_dots_avx2, fs_small_rank_avx2,
};
#endif

const fs_gemm_kernel_table *fs_gemm_kernels(void)
{
#ifdef FS_HAVE_AVX2_KERNEL
    if (current_isa() == ISA_AVX2) return &avx2_kernels;
#else
    (void)current_isa();
#endif
    return &generic_kernels;
}
