/*
 * cpu.h -- what the CPU and the OS let the kernels run, and the cache sizes
 * the GEMM blocking is fitted to. Not part of the public contract.
 *
 * Probing (cpu.c) is split from deciding: fs_cpu_decode turns raw CPUID /
 * XGETBV words into features and fs_cpu_runs says whether an ISA may run on
 * them, so the tests can inject the words of CPUs (and OSes) this machine is
 * not. An ISA needs both the CPU flags and the OS saving the registers it
 * uses on a context switch (XCR0): a CPU with AVX-512 under an OS that does
 * not save zmm state must not run AVX-512 code.
 */
#ifndef FASTSEG_CPU_H
#define FASTSEG_CPU_H

#include <stdint.h>

/* The instruction sets with a kernel table, in order of preference. */
enum { FS_ISA_GENERIC = 0, FS_ISA_AVX2 = 1, FS_ISA_AVX512 = 2, FS_ISA_COUNT = 3 };

/* The raw words: CPUID leaf 1 ECX, leaf 7 (sub-leaf 0) EBX, the highest
 * basic leaf, and XCR0 (read only when leaf 1 says OSXSAVE). */
typedef struct {
    uint32_t max_leaf, leaf1_ecx, leaf7_ebx;
    uint64_t xcr0;
} fs_cpuid_words;

typedef struct {
    int fma, avx2, avx512f, avx512dq, avx512bw, avx512vl;
    int os_ymm; /* XCR0 has SSE and AVX state (bits 1, 2) */
    int os_zmm; /* ... and opmask, ZMM_Hi256, Hi16_ZMM (bits 5, 6, 7) */
} fs_cpu_features;

/* The words of the CPU this runs on (all zero off x86). */
fs_cpuid_words fs_cpuid_probe(void);
fs_cpu_features fs_cpu_decode(const fs_cpuid_words *w);
/* 1 when `isa` may run on a CPU with features f: avx2 needs AVX2 + FMA and
 * ymm state; avx512 also AVX-512 F/DQ/BW/VL (every AVX-512 CPU since
 * Skylake-SP and Zen 4; not Xeon Phi) and zmm state; generic always. */
int fs_cpu_runs(int isa, const fs_cpu_features *f);
/* Whether this library holds the kernels of `isa` (x86 builds only). */
int fs_isa_built(int isa);
/* fs_cpu_runs on this CPU, probed once, and fs_isa_built. */
int fs_isa_usable(int isa);

/* Cache capacity per core, in bytes (0: unknown). A cache shared by several
 * CPUs counts its share: the L3 of 8 cores gives each an eighth. */
typedef struct {
    int64_t l1d, l2, l3;
} fs_cache_sizes;

/* This machine's, read once: Linux sysfs (per-instance size and the CPUs
 * sharing it), else sysconf, else 0. */
const fs_cache_sizes *fs_cache_sizes_here(void);

#endif /* FASTSEG_CPU_H */
