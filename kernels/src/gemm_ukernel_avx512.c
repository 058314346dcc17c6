/*
 * The AVX-512F micro-kernel, MR x NR = FS_GEMM_MR_AVX512 x FS_GEMM_NR_AVX512
 * (blocking.h says why 10 x 32). Built with the AVX-512 flags, like
 * gemm_small_avx512.c; reached only after the CPU check of isa_dispatch.c.
 *
 * Per k step: NR/16 aligned loads of the packed B row, MR broadcasts of the
 * packed A column, MR*NR/16 FMAs into the C tile, which stays in zmm
 * registers for the whole kc loop; alpha/beta are applied once, at the
 * store. Plain intrinsics: with 32 registers gcc keeps the accumulator
 * array in registers once the fixed-count loops are unrolled (unlike the
 * AVX2 kernel's 15-of-16, which needed asm). The right edge of C (nr < NR)
 * is written with masked stores, which touch no memory outside the mask.
 */
#include <immintrin.h>
#include <stdint.h>

#include "gemm_internal.h"

#define MR FS_GEMM_MR_AVX512
#define NR FS_GEMM_NR_AVX512
#define NS (NR / 16) /* zmm registers (= 16-float segments) per row */
#if NR % 16 != 0 || FS_GEMM_SEG != 16
#error "the AVX-512 kernel works in rows of whole zmm registers, one per segment"
#endif

/* How far ahead (floats of the packed A stream) to prefetch: ~8 k steps,
 * enough to hide an L2 hit behind the FMAs of the steps in between. */
#define A_PREFETCH (8 * MR)

#define FOR_ROWS _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)
#define FOR_SEGS _Pragma("GCC unroll 4") for (int s = 0; s < NS; s++)

/* The kernel body, inlined into its three forms so that `scatter` (C rows
 * at rows[i] + seg[s]) and `gather` (B row p at xb + seg[s] + off[p]
 * instead of the packed panel) are constants in each. */
static inline __attribute__((always_inline)) void
ukernel(const int gather, const int scatter, fs_idx kc, float alpha,
        const float *restrict ap, const float *restrict bp, const float *xb,
        const fs_idx *seg, const int32_t *off, float beta, float *c, fs_idx ldc,
        float *const *rows, int mr, int nr)
{
    __m512 acc[MR][NS];
#define C_AT(i, s) (scatter ? rows[(i)] + seg[(s)] : c + (i) * ldc + 16 * (s))

    if (scatter) {
        /* dX of a convolution (kc = the filters, rows in L1): start from C,
         * so the tile is read while the FMAs run and stored right after the
         * last one; a load-add-store after so short a loop costs more. */
        FOR_ROWS FOR_SEGS acc[i][s] = i < mr ? _mm512_loadu_ps(C_AT(i, s)) : _mm512_setzero_ps();
    } else {
        FOR_ROWS FOR_SEGS acc[i][s] = _mm512_setzero_ps();
        /* Start fetching the C tile now so it has arrived by the store. */
        for (int i = 0; i < mr; i++) {
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * ldc + nr - 1), _MM_HINT_T0);
        }
    }

    const float *xs[NS];
    if (gather) FOR_SEGS xs[s] = xb + seg[s];

#pragma GCC unroll 4
    for (fs_idx p = 0; p < kc; p++) {
        _mm_prefetch((const char *)(ap + A_PREFETCH), _MM_HINT_T0);
        __m512 b[NS];
        if (gather) {
            const fs_idx o = off[p];
            FOR_SEGS b[s] = _mm512_loadu_ps(xs[s] + o);
        } else {
            FOR_SEGS b[s] = _mm512_load_ps(bp + 16 * s);
        }
        FOR_ROWS {
            const __m512 a = _mm512_set1_ps(ap[i]);
            FOR_SEGS acc[i][s] = _mm512_fmadd_ps(a, b[s], acc[i][s]);
        }
        ap += MR;
        if (!gather) bp += NR;
    }

    if (alpha != 1.0f) {
        const __m512 va = _mm512_set1_ps(alpha);
        FOR_ROWS FOR_SEGS acc[i][s] = _mm512_mul_ps(va, acc[i][s]);
    }

    const __m512 vb = _mm512_set1_ps(beta);
    const int add_c = !scatter && beta != 0.0f; /* beta == 0 never reads C */
    if (nr == NR) {
        FOR_ROWS {
            if (i < mr) FOR_SEGS {
                float *cr = C_AT(i, s);
                if (add_c) acc[i][s] = _mm512_fmadd_ps(vb, _mm512_loadu_ps(cr), acc[i][s]);
                _mm512_storeu_ps(cr, acc[i][s]);
            }
        }
        return;
    }
    /* Right-edge tile (plain form only): the nr valid columns, masked. */
    __mmask16 mask[NS];
    FOR_SEGS {
        const int valid = nr - 16 * s;
        mask[s] = valid >= 16 ? (__mmask16)0xffff
                              : valid <= 0 ? (__mmask16)0 : (__mmask16)((1u << valid) - 1u);
    }
    FOR_ROWS {
        if (i < mr) FOR_SEGS {
            float *cr = C_AT(i, s);
            if (add_c)
                acc[i][s] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask[s], cr), acc[i][s]);
            _mm512_mask_storeu_ps(cr, mask[s], acc[i][s]);
        }
    }
#undef C_AT
}

void fs_ukernel_avx512(fs_idx kc, float alpha, const float *restrict ap,
                       const float *restrict bp, float beta, float *restrict c, fs_idx ldc,
                       int mr, int nr)
{
    ukernel(0, 0, kc, alpha, ap, bp, NULL, NULL, NULL, beta, c, ldc, NULL, mr, nr);
}

void fs_ukernel_rows_avx512(fs_idx kc, const float *ap, const float *bp, float *const *rows,
                            const fs_idx *seg, int mr)
{
    ukernel(0, 1, kc, 1.0f, ap, bp, NULL, seg, NULL, 1.0f, NULL, 0, rows, mr, NR);
}

void fs_ukernel_gather_b_avx512(fs_idx kc, const float *ap, const float *xb, const fs_idx *seg,
                                const int32_t *off, float beta, float *c, fs_idx ldc, int mr)
{
    ukernel(1, 0, kc, 1.0f, ap, NULL, xb, seg, off, beta, c, ldc, NULL, mr, NR);
}
