/*
 * gemm_internal.h -- the pieces of fs_sgemm shared between its files: the
 * micro-kernel forms, the packing routines and the kernel table of each ISA.
 * Not part of the public contract (fastseg/kernels.h).
 */
#ifndef FASTSEG_GEMM_INTERNAL_H
#define FASTSEG_GEMM_INTERNAL_H

#include <stdint.h>

#include "cpu.h"
#include "fastseg/blocking.h"
#include "fastseg/kernels.h"

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

/* ---- the micro-kernel and its forms ------------------------------------------
 * MR x NR is the table's (mr/nr below are the valid corner, <= MR/NR).
 *
 * Plain: C[0:mr, 0:nr] = alpha * Ap*Bp + beta * C, where Ap is a packed
 * MR x kc micro-panel (ap[p*MR + i]), Bp a packed kc x NR one (bp[p*NR + j],
 * 64-byte aligned), both zero-padded past mr/nr. The kernel computes the
 * full tile and writes only the mr x nr corner; beta == 0 never reads C.
 * kc may be 0 (then C = beta * C on the corner). */
typedef void (*fs_ukernel_fn)(fs_idx kc, float alpha, const float *ap, const float *bp,
                              float beta, float *c, fs_idx ldc, int mr, int nr);

/* Scatter form, for the fused convolution's dX (each tile row lands in a
 * different row of dx): for i < mr, the NR floats of tile row i are NR/16
 * segments of 16, segment s at rows[i] + seg[s] (seg[0] = 0), and
 * (Ap*Bp)[i] is added there; alpha = beta = 1. No two of these segments
 * may overlap (the kernels read them all before they write any). */
typedef void (*fs_ukernel_rows_fn)(fs_idx kc, const float *ap, const float *bp,
                                   float *const *rows, const fs_idx *seg, int mr);

/* Gathered-B form, for the fused convolution's forward: row p of the B
 * panel is NR/16 segments of 16 floats, segment s at xb + seg[s] + off[p]
 * (one kernel tap over 16 pixels of one output row), so the image is read
 * in place instead of packed. C[0:mr, 0:NR] = Ap*B + beta*C (beta 0 or 1). */
typedef void (*fs_ukernel_gather_b_fn)(fs_idx kc, const float *ap, const float *xb,
                                       const fs_idx *seg, const int32_t *off, float beta,
                                       float *c, fs_idx ldc, int mr);

/* ---- packing (gemm_pack.c, one build per MR x NR format) ---------------------
 * `a` points at op(A)[0][0] of the block: element (i, p) of op(A) is
 * a[i*lda + p] (trans == 0) or a[p*lda + i] (trans != 0). Panels
 * [panel0, panel1) of the mc x kc block are written, each MR*kc floats at
 * ap + panel*MR*kc, rows past mc zero. Splitting by panel lets threads pack
 * one shared block together. */
typedef void (*fs_pack_a_fn)(int trans, fs_idx mc, fs_idx kc, const float *a, fs_idx lda,
                             float *ap, fs_idx panel0, fs_idx panel1);
/* Same for B: element (p, j) of op(B) is b[p*ldb + j] (trans == 0) or
 * b[j*ldb + p]; panel q (NR columns) goes to bp + q*NR*kc, columns past nc
 * zero. */
typedef void (*fs_pack_b_fn)(int trans, fs_idx kc, fs_idx nc, const float *b, fs_idx ldb,
                             float *bp, fs_idx panel0, fs_idx panel1);

/* ---- small shapes, no packing (gemm_small_impl.h, one build per ISA) ----------
 * dots: C[i0:i1, j0:j1] from contiguous A rows (trans_a == 0) and
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

/* Every ISA's kernels carry its name as suffix: fs_ukernel_avx512, ... */
#define FS_DECLARE_KERNELS(isa)                                                        \
    void fs_ukernel_##isa(fs_idx kc, float alpha, const float *ap, const float *bp,    \
                          float beta, float *c, fs_idx ldc, int mr, int nr);           \
    void fs_ukernel_rows_##isa(fs_idx kc, const float *ap, const float *bp,            \
                               float *const *rows, const fs_idx *seg, int mr);         \
    void fs_ukernel_gather_b_##isa(fs_idx kc, const float *ap, const float *xb,        \
                                   const fs_idx *seg, const int32_t *off, float beta,  \
                                   float *c, fs_idx ldc, int mr);                      \
    void fs_small_dots_##isa(fs_idx k, float alpha, const float *a, fs_idx lda,        \
                             const float *b, fs_idx ldb, float beta, float *c,         \
                             fs_idx ldc, fs_idx i0, fs_idx i1, fs_idx j0, fs_idx j1,   \
                             int ib, int jb);                                          \
    void fs_small_rank_##isa(int ta, fs_idx k, float alpha, const float *a,            \
                             fs_idx lda, const float *b, fs_idx ldb, float beta,       \
                             float *c, fs_idx ldc, fs_idx i0, fs_idx i1, fs_idx j0,    \
                             fs_idx j1);
FS_DECLARE_KERNELS(generic)
FS_DECLARE_KERNELS(avx2)
FS_DECLARE_KERNELS(avx512)

/* Packing routines are named after their format: fs_pack_a_6x16, ... */
#define FS_PACK_FN_(what, mr, nr) fs_##what##_##mr##x##nr
#define FS_PACK_FN(what, mr, nr) FS_PACK_FN_(what, mr, nr)
#define FS_DECLARE_PACKING(mr, nr)                                                     \
    void FS_PACK_FN(pack_a, mr, nr)(int trans, fs_idx mc, fs_idx kc, const float *a,  \
                                    fs_idx lda, float *ap, fs_idx panel0,             \
                                    fs_idx panel1);                                   \
    void FS_PACK_FN(pack_b, mr, nr)(int trans, fs_idx kc, fs_idx nc, const float *b,  \
                                    fs_idx ldb, float *bp, fs_idx panel0,             \
                                    fs_idx panel1);
FS_DECLARE_PACKING(FS_GEMM_MR_AVX2, FS_GEMM_NR_AVX2)
FS_DECLARE_PACKING(FS_GEMM_MR_AVX512, FS_GEMM_NR_AVX512)

/* ---- one table per ISA --------------------------------------------------------
 * fs_gemm_kernels() gives the one chosen at run time (CPU check,
 * FASTSEG_ISA, or fs_select_isa); cheap enough to call once per fs_sgemm or
 * convolution, and a caller keeps the table it got for the whole call, so a
 * concurrent fs_select_isa never mixes two packing formats in one call. */
typedef struct {
    const char *name;
    int mr, nr;            /* the packing format */
    fs_idx mc, kc, nc;     /* cache blocks, fitted to this CPU's caches */
    fs_ukernel_fn ukernel;
    fs_ukernel_rows_fn rows;
    fs_ukernel_gather_b_fn gather_b;
    fs_pack_a_fn pack_a;
    fs_pack_b_fn pack_b;
    fs_small_dots_fn small_dots;
    fs_small_rank_fn small_rank;
    fs_idx kc_deep;        /* blocking.h's deep K block, fitted with mc and kc (MC,
                            * KC, NC set later keep it: fs_gemm_deep_kc) */
} fs_gemm_kernel_table;
const fs_gemm_kernel_table *fs_gemm_kernels(void);
/* The deep K block (blocking.h) for kernels of table kt: the one set by
 * fs_set_deep_kc for its ISA, else the fitted kt->kc_deep. Read once per
 * call. */
fs_idx fs_gemm_deep_kc(const fs_gemm_kernel_table *kt);

/* The cache blocks of ISA `isa` (FS_ISA_*) on a CPU with caches `cs`
 * (blocking.h says how); pure, so tests can inject any CPU's caches. */
void fs_blocking_fit(int isa, const fs_cache_sizes *cs, fs_blocking *out);

#endif /* FASTSEG_GEMM_INTERNAL_H */
