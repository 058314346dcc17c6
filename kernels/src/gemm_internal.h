/*
 * gemm_internal.h -- the pieces of fs_sgemm shared between its files:
 * the micro-kernel signature, the packing routines and the ISA dispatch.
 * Not part of the public contract (fastseg/kernels.h).
 */
#ifndef FASTSEG_GEMM_INTERNAL_H
#define FASTSEG_GEMM_INTERNAL_H

#include <stdint.h>

#include "fastseg/blocking.h"
#include "fastseg/kernels.h"

#define FS_MR FS_GEMM_MR
#define FS_NR FS_GEMM_NR

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))
#define ROUND_UP(a, b) (CEIL_DIV(a, b) * (b))

/* Block size for `len` cut into pieces of at most `cap`, as even as the
 * `unit` granularity allows: 150 rows run as 2 x 78, not 144 + 6. */
static inline fs_idx fs_even_block(fs_idx len, fs_idx cap, fs_idx unit)
{
    if (len <= 0) return unit;
    const fs_idx pieces = CEIL_DIV(len, cap);
    return ROUND_UP(CEIL_DIV(len, pieces), unit);
}

/* [lo, hi): part t of nt of [0, count), sizes differing by at most one. */
static inline void fs_split_range(fs_idx count, fs_idx t, fs_idx nt, fs_idx *lo, fs_idx *hi)
{
    *lo = count * t / nt;
    *hi = count * (t + 1) / nt;
}

/* One MR x NR tile: C[0:mr, 0:nr] = alpha * Ap*Bp + beta * C, where Ap is a
 * packed MR x kc micro-panel (ap[p*MR + i]), Bp a packed kc x NR one
 * (bp[p*NR + j], 64-byte aligned), both zero-padded past mr/nr. The kernel
 * always computes the full tile and writes only the mr x nr corner; beta == 0
 * never reads C. kc may be 0 (then C = beta * C on the corner). */
typedef void (*fs_ukernel_fn)(fs_idx kc, float alpha, const float *ap,
                              const float *bp, float beta, float *c,
                              fs_idx ldc, int mr, int nr);

void fs_ukernel_generic(fs_idx kc, float alpha, const float *ap, const float *bp,
                        float beta, float *c, fs_idx ldc, int mr, int nr);
#ifdef FS_HAVE_AVX2_KERNEL
void fs_ukernel_avx2(fs_idx kc, float alpha, const float *ap, const float *bp,
                     float beta, float *c, fs_idx ldc, int mr, int nr);
#endif

/* The micro-kernel's scatter form, for the fused convolution's dX (each
 * tile row lands in a different row of dx): rows[i][0:NR] += (Ap*Bp)[i]
 * for i < mr, all NR columns, alpha = beta = 1. The rows must not overlap
 * (the AVX2 kernel reads them all before it writes any). */
typedef void (*fs_ukernel_rows_fn)(fs_idx kc, const float *ap, const float *bp,
                                   float *const *rows, int mr);
void fs_ukernel_rows_generic(fs_idx kc, const float *ap, const float *bp,
                             float *const *rows, int mr);
#ifdef FS_HAVE_AVX2_KERNEL
void fs_ukernel_rows_avx2(fs_idx kc, const float *ap, const float *bp,
                          float *const *rows, int mr);
#endif

/* The micro-kernel's gathered-B form, for the fused convolution's forward:
 * row p of the B panel is the NR floats at xb + off[p] (one kernel tap over
 * NR pixels of one output row), so the image is read in place instead of
 * packed. C[0:mr, 0:NR] = Ap*B + beta*C (beta 0 or 1). */
typedef void (*fs_ukernel_gather_b_fn)(fs_idx kc, const float *ap, const float *xb,
                                       const int32_t *off, float beta, float *c,
                                       fs_idx ldc, int mr);
void fs_ukernel_gather_b_generic(fs_idx kc, const float *ap, const float *xb,
                                 const int32_t *off, float beta, float *c, fs_idx ldc,
                                 int mr);
#ifdef FS_HAVE_AVX2_KERNEL
void fs_ukernel_gather_b_avx2(fs_idx kc, const float *ap, const float *xb,
                              const int32_t *off, float beta, float *c, fs_idx ldc, int mr);
#endif


/* Packing. `a` points at op(A)[0][0] of the block: element (i, p) of op(A)
 * is a[i*lda + p] (trans == 0) or a[p*lda + i] (trans != 0). Panels
 * [panel0, panel1) of the mc x kc block are written, each MR*kc floats at
 * ap + panel*MR*kc, rows past mc zero. Splitting by panel lets threads pack
 * one shared block together. */
void fs_pack_a(int trans, fs_idx mc, fs_idx kc, const float *a, fs_idx lda,
               float *ap, fs_idx panel0, fs_idx panel1);
/* Same for B: element (p, j) of op(B) is b[p*ldb + j] (trans == 0) or
 * b[j*ldb + p]; panel q (NR columns) goes to bp + q*NR*kc, columns past nc
 * zero. */
void fs_pack_b(int trans, fs_idx kc, fs_idx nc, const float *b, fs_idx ldb,
               float *bp, fs_idx panel0, fs_idx panel1);

/* No-packing kernels for small shapes (gemm_small_impl.h), one build per
 * ISA. dots: C[i0:i1, j0:j1] from contiguous A rows (trans_a == 0) and
 * contiguous B rows (trans_b != 0), in ib x jb tiles (each <= 4). rank: B
 * not transposed, any trans_a; up to four k terms per sweep of C. */
typedef void (*fs_small_dots_fn)(fs_idx k, float alpha, const float *a, fs_idx lda,
                                 const float *b, fs_idx ldb, float beta, float *c,
                                 fs_idx ldc, fs_idx i0, fs_idx i1, fs_idx j0, fs_idx j1,
                                 int ib, int jb);
typedef void (*fs_small_rank_fn)(int ta, fs_idx k, float alpha, const float *a,
                                 fs_idx lda, const float *b, fs_idx ldb, float beta,
                                 float *c, fs_idx ldc, fs_idx i0, fs_idx i1, fs_idx j0,
                                 fs_idx j1);
void fs_small_dots_generic(fs_idx, float, const float *, fs_idx, const float *, fs_idx,
                           float, float *, fs_idx, fs_idx, fs_idx, fs_idx, fs_idx, int, int);
void fs_small_rank_generic(int, fs_idx, float, const float *, fs_idx, const float *, fs_idx,
                           float, float *, fs_idx, fs_idx, fs_idx, fs_idx, fs_idx);
#ifdef FS_HAVE_AVX2_KERNEL
void fs_small_dots_avx2(fs_idx, float, const float *, fs_idx, const float *, fs_idx,
                        float, float *, fs_idx, fs_idx, fs_idx, fs_idx, fs_idx, int, int);
void fs_small_rank_avx2(int, fs_idx, float, const float *, fs_idx, const float *, fs_idx,
                        float, float *, fs_idx, fs_idx, fs_idx, fs_idx, fs_idx);
#endif
/* One table of kernels per ISA; fs_gemm_kernels() gives the one chosen at
 * run time (CPU check, FASTSEG_ISA, or fs_select_isa), cheap enough to call
 * once per fs_sgemm or convolution. */
typedef struct {
    fs_ukernel_fn ukernel;
    fs_ukernel_rows_fn rows;
    fs_ukernel_gather_b_fn gather_b;
    fs_small_dots_fn small_dots;
    fs_small_rank_fn small_rank;
} fs_gemm_kernel_table;
const fs_gemm_kernel_table *fs_gemm_kernels(void);

#endif /* FASTSEG_GEMM_INTERNAL_H */
