/*
 * The AVX2/FMA 6 x 16 micro-kernel (built with -mavx2 -mfma, like
 * gemm_small_avx2.c; reached only after the CPU check of isa_dispatch.c).
 *
 * Per k step: two aligned loads of the packed B row (16 floats), six
 * broadcasts of the packed A column, twelve FMAs into the C tile, which stays
 * in 12 ymm registers for the whole kc loop. alpha/beta are applied once, at
 * the store. The accumulators are named variables, not an array, so the
 * compiler never has a reason to keep them in memory.
 */
#include <immintrin.h>
#include <stdint.h>

#include "gemm_internal.h"

#if !(defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)))
#error "gemm_ukernel_avx2.c needs GCC-style inline assembly on x86"
#endif

#define FS_MR FS_GEMM_MR_AVX2
#define FS_NR FS_GEMM_NR_AVX2
#if FS_MR != 6 || FS_NR != 16
#error "gemm_ukernel_avx2.c is written for MR = 6, NR = 16"
#endif

#define ROW_FMA(i, ci0, ci1)                              \
    do {                                                  \
        const __m256 av = _mm256_broadcast_ss(ap + (i));  \
        ci0 = _mm256_fmadd_ps(av, b0, ci0);               \
        ci1 = _mm256_fmadd_ps(av, b1, ci1);               \
    } while (0)

/* One k step (the 0-3 left after the asm's groups of four); b0/b1 come from
 * the packed panel, or (gathered B) from the image at xb + off[0]. */
#define K_STEP()                                                              \
    do {                                                                      \
        const float *brow = off ? xb + off[0] : bp;                           \
        const __m256 b0 = _mm256_loadu_ps(brow);                              \
        const __m256 b1 = _mm256_loadu_ps(brow + 8);                          \
        ROW_FMA(0, c00, c01);                                                 \
        ROW_FMA(1, c10, c11);                                                 \
        ROW_FMA(2, c20, c21);                                                 \
        ROW_FMA(3, c30, c31);                                                 \
        ROW_FMA(4, c40, c41);                                                 \
        ROW_FMA(5, c50, c51);                                                 \
        ap += FS_MR;                                                          \
        if (off) off++;                                                       \
        else bp += FS_NR;                                                     \
    } while (0)

/* The asm k steps, as string pieces: the six broadcasts and twelve FMAs of
 * one step (A offsets in bytes), and the two ways of loading its B row. */
#define ASM_ROW(o, c0, c1)                                                    \
    "vbroadcastss " o "(%[a]), %[av]\n\t"                                     \
    "vfmadd231ps %[b0], %[av], %[" c0 "]\n\t"                                 \
    "vfmadd231ps %[b1], %[av], %[" c1 "]\n\t"
#define ASM_FMAS(o0, o1, o2, o3, o4, o5)                                      \
    ASM_ROW(o0, "c00", "c01") ASM_ROW(o1, "c10", "c11") ASM_ROW(o2, "c20", "c21") \
    ASM_ROW(o3, "c30", "c31") ASM_ROW(o4, "c40", "c41") ASM_ROW(o5, "c50", "c51")
#define ASM_B_PACKED(o0, o1)                                                  \
    "vmovaps " o0 "(%[b]), %[b0]\n\t"                                         \
    "vmovaps " o1 "(%[b]), %[b1]\n\t"
/* (rax is named, not an operand: gcc allows 30 operands, and the
 * accumulators count twice.) */
#define ASM_B_GATHERED(o)                                                     \
    "movslq " o "(%[o]), %%rax\n\t"                                           \
    "vmovups (%[x],%%rax,4), %[b0]\n\t"                                       \
    "vmovups 32(%[x],%%rax,4), %[b1]\n\t"
#define ASM_PREFETCH_A(o) "prefetcht0 " o "(%[a])\n\t"
#define ASM_ACCUMULATORS                                                      \
    [c00] "+x"(c00), [c01] "+x"(c01), [c10] "+x"(c10), [c11] "+x"(c11),       \
    [c20] "+x"(c20), [c21] "+x"(c21), [c30] "+x"(c30), [c31] "+x"(c31),       \
    [c40] "+x"(c40), [c41] "+x"(c41), [c50] "+x"(c50), [c51] "+x"(c51)

/* Row i of the C tile: c + i*ldc, or rows[i] for the scatter form. */
#define C_ROW(i) (rows ? rows[(i)] : c + (i) * ldc)

/* The kernel body, inlined into its forms below so that `rows` (scatter
 * form) and `off` (B gathered from an image instead of a packed panel:
 * row p of B is the NR floats at xb + off[p]) are constants in each. */
static inline __attribute__((always_inline)) void
ukernel(fs_idx kc, float alpha, const float *restrict ap, const float *restrict bp,
        const float *xb, const int32_t *off,
        float beta, float *restrict c, fs_idx ldc, float *const *rows, int mr, int nr)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();

    /* The scatter form (dX of a convolution: kc = 50 filters, the rows in
     * L1) starts the accumulators from C, so the tile is read while the FMAs
     * run and stored right after the last one: a load-add-store after so
     * short a loop cost ~25 %. Not for plain C += A*B: there the tile may
     * come from L2 or L3, and loading it first stalls the FMAs (2-3 %
     * slower on 1024^3) where a prefetch now and the add at the end hide it. */
    const int from_c = rows != NULL;
    if (from_c) {
#define LOAD_ROW(i, ci0, ci1)                                                        \
        if ((i) < mr) {                                                              \
            ci0 = _mm256_loadu_ps(C_ROW(i));                                         \
            ci1 = _mm256_loadu_ps(C_ROW(i) + 8);                                     \
        }
        LOAD_ROW(0, c00, c01)
        LOAD_ROW(1, c10, c11)
        LOAD_ROW(2, c20, c21)
        LOAD_ROW(3, c30, c31)
        LOAD_ROW(4, c40, c41)
        LOAD_ROW(5, c50, c51)
#undef LOAD_ROW
    } else {
        /* Start fetching the C tile now so it has arrived by the store. */
        for (int i = 0; i < mr; i++) {
            _mm_prefetch((const char *)(C_ROW(i)), _MM_HINT_T0);
            _mm_prefetch((const char *)(C_ROW(i) + nr - 1), _MM_HINT_T0);
        }
    }

    fs_idx p = kc;
    /* Four k steps in inline asm: with intrinsics gcc 12 shuffles the 12
     * accumulators between registers and even spills some inside the loop
     * (15 of 16 ymm registers are live). Operands pin them in registers. */
    if (off) {
        for (; p >= 4; p -= 4) {
            __m256 b0, b1, av;
            __asm__(
            ASM_B_GATHERED("0") ASM_PREFETCH_A("192") ASM_FMAS("0", "4", "8", "12", "16", "20")
            ASM_B_GATHERED("4") ASM_FMAS("24", "28", "32", "36", "40", "44")
            ASM_B_GATHERED("8") ASM_PREFETCH_A("240") ASM_FMAS("48", "52", "56", "60", "64", "68")
            ASM_B_GATHERED("12") ASM_FMAS("72", "76", "80", "84", "88", "92")
            : [b0] "=&x"(b0), [b1] "=&x"(b1), [av] "=&x"(av), ASM_ACCUMULATORS
            : [a] "r"(ap), [x] "r"(xb), [o] "r"(off)
            : "rax", "memory");
            ap += 4 * FS_MR;
            off += 4;
        }
    } else {
        for (; p >= 4; p -= 4) {
            __m256 b0, b1, av;
            __asm__(
            ASM_B_PACKED("0", "32") ASM_PREFETCH_A("192") ASM_FMAS("0", "4", "8", "12", "16", "20")
            ASM_B_PACKED("64", "96") ASM_FMAS("24", "28", "32", "36", "40", "44")
            ASM_B_PACKED("128", "160") ASM_PREFETCH_A("240")
            ASM_FMAS("48", "52", "56", "60", "64", "68")
            ASM_B_PACKED("192", "224") ASM_FMAS("72", "76", "80", "84", "88", "92")
            : [b0] "=&x"(b0), [b1] "=&x"(b1), [av] "=&x"(av), ASM_ACCUMULATORS
            : [a] "r"(ap), [b] "r"(bp)
            : "memory");
            ap += 4 * FS_MR;
            bp += 4 * FS_NR;
        }
    }
    for (; p > 0; p--) K_STEP();

    if (alpha != 1.0f) {
        const __m256 va = _mm256_set1_ps(alpha);
        c00 = _mm256_mul_ps(va, c00); c01 = _mm256_mul_ps(va, c01);
        c10 = _mm256_mul_ps(va, c10); c11 = _mm256_mul_ps(va, c11);
        c20 = _mm256_mul_ps(va, c20); c21 = _mm256_mul_ps(va, c21);
        c30 = _mm256_mul_ps(va, c30); c31 = _mm256_mul_ps(va, c31);
        c40 = _mm256_mul_ps(va, c40); c41 = _mm256_mul_ps(va, c41);
        c50 = _mm256_mul_ps(va, c50); c51 = _mm256_mul_ps(va, c51);
    }

    if (nr == FS_NR) {
        /* Full-width rows: straight vector stores; beta == 0 never reads C. */
        const __m256 vb = _mm256_set1_ps(beta);
#define STORE_ROW(i, ci0, ci1)                                                       \
        if ((i) < mr) {                                                              \
            float *cr = C_ROW(i);                                                    \
            if (beta != 0.0f && !from_c) {                                           \
                ci0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr), ci0);                 \
                ci1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8), ci1);             \
            }                                                                        \
            _mm256_storeu_ps(cr, ci0);                                               \
            _mm256_storeu_ps(cr + 8, ci1);                                           \
        }
        STORE_ROW(0, c00, c01)
        STORE_ROW(1, c10, c11)
        STORE_ROW(2, c20, c21)
        STORE_ROW(3, c30, c31)
        STORE_ROW(4, c40, c41)
        STORE_ROW(5, c50, c51)
#undef STORE_ROW
        return;
    }

    /* Right-edge tile: spill to a scratch tile and copy the nr valid
     * columns, so nothing past C's edge is touched (no masked loads that a
     * sanitizer could not reason about). Rare: one panel in NC/NR. */
    _Alignas(32) float t[FS_MR * FS_NR];
    _mm256_store_ps(t + 0 * FS_NR, c00); _mm256_store_ps(t + 0 * FS_NR + 8, c01);
    _mm256_store_ps(t + 1 * FS_NR, c10); _mm256_store_ps(t + 1 * FS_NR + 8, c11);
    _mm256_store_ps(t + 2 * FS_NR, c20); _mm256_store_ps(t + 2 * FS_NR + 8, c21);
    _mm256_store_ps(t + 3 * FS_NR, c30); _mm256_store_ps(t + 3 * FS_NR + 8, c31);
    _mm256_store_ps(t + 4 * FS_NR, c40); _mm256_store_ps(t + 4 * FS_NR + 8, c41);
    _mm256_store_ps(t + 5 * FS_NR, c50); _mm256_store_ps(t + 5 * FS_NR + 8, c51);
    for (int i = 0; i < mr; i++) {
        float *cr = C_ROW(i);
        const float *tr = t + i * FS_NR;
        if (beta == 0.0f)
            for (int j = 0; j < nr; j++) cr[j] = tr[j];
        else
            for (int j = 0; j < nr; j++) cr[j] = tr[j] + beta * cr[j];
    }
}


void fs_ukernel_avx2(fs_idx kc, float alpha, const float *restrict ap,
                     const float *restrict bp, float beta, float *restrict c,
                     fs_idx ldc, int mr, int nr)
{
    ukernel(kc, alpha, ap, bp, NULL, NULL, beta, c, ldc, NULL, mr, nr);
}

/* NR = 16 is one segment, seg[0] (0 for the scatter form). */
void fs_ukernel_rows_avx2(fs_idx kc, const float *ap, const float *bp,
                          float *const *rows, const fs_idx *seg, int mr)
{
    (void)seg;
    ukernel(kc, 1.0f, ap, bp, NULL, NULL, 1.0f, rows[0], 0, rows, mr, FS_NR);
}

void fs_ukernel_gather_b_avx2(fs_idx kc, const float *ap, const float *xb, const fs_idx *seg,
                              const int32_t *off, float beta, float *c, fs_idx ldc, int mr)
{
    ukernel(kc, 1.0f, ap, xb + seg[0], xb + seg[0], off, beta, c, ldc, NULL, mr, FS_NR);
}
