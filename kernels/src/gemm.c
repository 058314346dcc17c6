/*
 * fs_sgemm: C = alpha * op(A) * op(B) + beta * C, BLIS style.
 *
 * Five loops around one micro-kernel (see fastseg/blocking.h for the sizes):
 *   jc (NC) -> pc (KC) -> ic (MC) -> jr (NR) -> ir (MR) -> micro-kernel.
 * The packed B panel (KC x NC) is shared by all threads and packed by all of
 * them together; then threads split either the rows of C (the ic loop, each
 * thread packing its own A blocks) or, when M is too small to split evenly
 * (the convolution shapes: M = 20..128 filters, N = tens of thousands of
 * pixels), the jr loop over B micro-panels with one shared, double-buffered
 * A block. Edges are handled by zero-padded packed panels and a partial
 * store in the micro-kernel, so every element goes through the fast kernel.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "gemm_internal.h"

#ifdef _OPENMP
#include <omp.h>
#define FS_BARRIER() _Pragma("omp barrier")
#else
#define FS_BARRIER() ((void)0)
#endif

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))
#define ROUND_UP(a, b) (CEIL_DIV(a, b) * (b))

/* Below this many multiply-adds a parallel region costs more than it saves. */
#define FS_GEMM_PARALLEL_MIN_FMAS (64.0 * 64.0 * 64.0)

/* ---- packing workspaces ---------------------------------------------------
 * A pool of 64-byte-aligned buffers, grown on demand and reused across calls,
 * so the steady state allocates nothing. A call takes one workspace for its
 * duration (concurrent calls from several Python threads get different
 * ones); the OpenMP threads of that call share it. Every workspace stays
 * linked from static storage and is freed at exit, so leak checkers see no
 * loss and no thread's exit strands memory. */
typedef struct fs_workspace {
    struct fs_workspace *next_all;  /* every workspace ever made */
    struct fs_workspace *next_free; /* those not in use */
    float *buf;
    size_t cap; /* floats */
} fs_workspace;

static fs_workspace *ws_all, *ws_free;
static atomic_flag ws_lock = ATOMIC_FLAG_INIT;
static int ws_atexit_done;

static void ws_lock_acquire(void)
{
    while (atomic_flag_test_and_set_explicit(&ws_lock, memory_order_acquire)) {
        /* Held only for a few pointer moves: spinning is cheapest. */
    }
}

static void ws_lock_release(void) { atomic_flag_clear_explicit(&ws_lock, memory_order_release); }

static void ws_free_all(void)
{
    ws_lock_acquire();
    fs_workspace *w = ws_all;
    ws_all = ws_free = NULL;
    ws_lock_release();
    while (w) {
        fs_workspace *next = w->next_all;
        free(w->buf);
        free(w);
        w = next;
    }
}

static fs_workspace *ws_acquire(void)
{
    ws_lock_acquire();
    fs_workspace *w = ws_free;
    if (w) ws_free = w->next_free;
    ws_lock_release();
    if (w) return w;

    w = calloc(1, sizeof *w);
    if (!w) return NULL;
    ws_lock_acquire();
    w->next_all = ws_all;
    ws_all = w;
    int first = !ws_atexit_done;
    ws_atexit_done = 1;
    ws_lock_release();
    if (first) atexit(ws_free_all);
    return w;
}

static void ws_release(fs_workspace *w)
{
    ws_lock_acquire();
    w->next_free = ws_free;
    ws_free = w;
    ws_lock_release();
}

/* Make w->buf hold at least `floats`; 0 on failure (w stays usable). */
static int ws_reserve(fs_workspace *w, size_t floats)
{
    if (w->cap >= floats) return 1;
    free(w->buf);
    w->buf = NULL;
    w->cap = 0;
    size_t bytes = ROUND_UP(floats * sizeof(float), (size_t)64);
    float *p = aligned_alloc(64, bytes);
    if (!p) return 0;
    w->buf = p;
    w->cap = bytes / sizeof(float);
    return 1;
}

/* ---- the blocked algorithm -------------------------------------------------*/
typedef struct {
    int ta, tb;
    fs_idx m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
    fs_ukernel_fn ukernel;
    fs_idx kcb, ncb;   /* K and N block sizes: KC/NC evened out over the blocks */
    float *bp;         /* shared packed B panel */
    float *ap;         /* A blocks, astride floats apart */
    fs_idx astride;
    int split_m;       /* 1: threads split the rows; 0: the B micro-panels */
} gemm_job;

/* [*lo, *hi): part t of nt of [0, count), sizes differing by at most one. */
static void split_range(fs_idx count, int t, int nt, fs_idx *lo, fs_idx *hi)
{
    fs_idx base = count / nt, extra = count % nt;
    *lo = t * base + MIN((fs_idx)t, extra);
    *hi = *lo + base + ((fs_idx)t < extra);
}

static const float *a_at(const gemm_job *j, fs_idx i, fs_idx p)
{
    return j->ta ? j->a + p * j->lda + i : j->a + i * j->lda + p;
}

static const float *b_at(const gemm_job *j, fs_idx p, fs_idx col)
{
    return j->tb ? j->b + col * j->ldb + p : j->b + p * j->ldb + col;
}

/* jr and ir loops: micro-panels [q0, q1) of the packed B panel against every
 * micro-panel of the packed mc x kc A block. */
static void macro_kernel(const gemm_job *j, fs_idx mc, fs_idx nc, fs_idx kc,
                         fs_idx q0, fs_idx q1, const float *ap, const float *bp,
                         float beta, float *c)
{
    const fs_idx ldc = j->ldc;
    for (fs_idx q = q0; q < q1; q++) {                       /* jr */
        const int nr = (int)MIN((fs_idx)FS_NR, nc - q * FS_NR);
        const float *bq = bp + q * FS_NR * kc;
        for (fs_idx i = 0; i < mc; i += FS_MR) {             /* ir */
            const int mr = (int)MIN((fs_idx)FS_MR, mc - i);
            j->ukernel(kc, j->alpha, ap + i * kc, bq, beta, c + i * ldc + q * FS_NR, ldc, mr, nr);
        }
    }
}

/* The whole loop nest as seen by thread `tid` of `nt`. Every thread runs the
 * same jc/pc (and, when splitting N, ic) iterations so the barriers match. */
static void gemm_thread(const gemm_job *j, int tid, int nt)
{
    /* Rows of C this thread owns when splitting M: whole MR tiles, even. */
    fs_idx row0 = 0, row1 = j->m, mcb = MIN(j->m, (fs_idx)FS_GEMM_MC);
    if (j->split_m) {
        fs_idx t0, t1;
        split_range(CEIL_DIV(j->m, FS_MR), tid, nt, &t0, &t1);
        row0 = t0 * FS_MR;
        row1 = MIN(t1 * FS_MR, j->m);
    }
    if (row1 > row0) {
        /* Even MC blocks: 150 rows run as 2 x 78, not 144 + 6. */
        fs_idx nblk = CEIL_DIV(row1 - row0, (fs_idx)FS_GEMM_MC);
        mcb = ROUND_UP(CEIL_DIV(row1 - row0, nblk), (fs_idx)FS_MR);
    }

    for (fs_idx jc = 0; jc < j->n; jc += j->ncb) {                    /* jc */
        const fs_idx nc = MIN(j->ncb, j->n - jc);
        const fs_idx npanels = CEIL_DIV(nc, FS_NR);
        for (fs_idx pc = 0; pc < j->k; pc += j->kcb) {                /* pc */
            const fs_idx kc = MIN(j->kcb, j->k - pc);
            /* Later K blocks accumulate onto what the first one wrote. */
            const float beta = pc == 0 ? j->beta : 1.0f;
            fs_idx q0, q1;

            FS_BARRIER(); /* nobody still reads the previous B panel / A blocks */
            split_range(npanels, tid, nt, &q0, &q1);
            fs_pack_b(j->tb, kc, nc, b_at(j, pc, jc), j->ldb, j->bp, q0, q1);
            FS_BARRIER(); /* the whole B panel is packed */

            if (j->split_m) {
                float *ap = j->ap + tid * j->astride;
                for (fs_idx ic = row0; ic < row1; ic += mcb) {        /* ic */
                    const fs_idx mc = MIN(mcb, row1 - ic);
                    fs_pack_a(j->ta, mc, kc, a_at(j, ic, pc), j->lda, ap, 0, CEIL_DIV(mc, FS_MR));
                    macro_kernel(j, mc, nc, kc, 0, npanels, ap, j->bp, beta,
                                 j->c + ic * j->ldc + jc);
                }
            } else {
                /* Two A buffers: packing block i+1 may start while a slower
                 * thread still multiplies block i; block i-1's buffer is free
                 * because everyone passed the barrier after packing block i. */
                split_range(npanels, tid, nt, &q0, &q1);
                fs_idx blk = 0;
                for (fs_idx ic = 0; ic < j->m; ic += mcb, blk++) {     /* ic */
                    const fs_idx mc = MIN(mcb, j->m - ic);
                    float *ap = j->ap + (blk & 1) * j->astride;
                    fs_idx a0, a1;
                    split_range(CEIL_DIV(mc, FS_MR), tid, nt, &a0, &a1);
                    fs_pack_a(j->ta, mc, kc, a_at(j, ic, pc), j->lda, ap, a0, a1);
                    FS_BARRIER();
                    macro_kernel(j, mc, nc, kc, q0, q1, ap, j->bp, beta,
                                 j->c + ic * j->ldc + jc);
                }
            }
        }
    }
}

/* Relative load of the busiest thread (1.0 = perfect) when `units` equal
 * pieces are dealt to nt threads. */
static double imbalance(fs_idx units, int nt)
{
    return units <= 0 ? 1.0 : (double)CEIL_DIV(units, (fs_idx)nt) * nt / (double)units;
}

/* C = beta * C, the whole answer when k == 0 or alpha == 0. */
static void scale_c(fs_idx m, fs_idx n, float beta, float *c, fs_idx ldc)
{
    for (fs_idx i = 0; i < m; i++) {
        float *cr = c + i * ldc;
        if (beta == 0.0f)
            for (fs_idx jj = 0; jj < n; jj++) cr[jj] = 0.0f;
        else if (beta != 1.0f)
            for (fs_idx jj = 0; jj < n; jj++) cr[jj] *= beta;
    }
}

int fs_sgemm(int trans_a, int trans_b, fs_idx m, fs_idx n, fs_idx k,
             float alpha, const float *a, fs_idx lda,
             const float *b, fs_idx ldb,
             float beta, float *c, fs_idx ldc)
{
    if (m <= 0 || n <= 0) return FS_OK;
    if (k <= 0 || alpha == 0.0f) { /* as BLAS: A and B are not read */
        scale_c(m, n, beta, c, ldc);
        return FS_OK;
    }

    gemm_job j = {
        .ta = trans_a != 0, .tb = trans_b != 0, .m = m, .n = n, .k = k,
        .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta,
        .a = a, .b = b, .c = c, .ukernel = fs_gemm_ukernel(),
    };
    /* Even blocks: k = 500 runs as 2 x 250, not 256 + 244 (same for N). */
    j.kcb = CEIL_DIV(k, CEIL_DIV(k, (fs_idx)FS_GEMM_KC));
    j.ncb = ROUND_UP(CEIL_DIV(n, CEIL_DIV(n, (fs_idx)FS_GEMM_NC)), (fs_idx)FS_NR);

    int nt = fs_get_num_threads();
    if ((double)m * (double)n * (double)k < FS_GEMM_PARALLEL_MIN_FMAS) nt = 1;
#ifndef _OPENMP
    nt = 1;
#endif
    /* Split the rows unless that leaves a thread noticeably idle while the
     * B micro-panels of one NC block would split evenly (small M). */
    const double imb_m = imbalance(CEIL_DIV(m, FS_MR), nt);
    const double imb_n = imbalance(CEIL_DIV(MIN(n, j.ncb), FS_NR), nt);
    j.split_m = nt == 1 || imb_m <= imb_n + 0.03;

    const int nabuf = j.split_m ? nt : 2;
    j.astride = ROUND_UP(MIN(m, (fs_idx)FS_GEMM_MC), (fs_idx)FS_MR) * j.kcb;
    /* Each A buffer starts on a 64-byte boundary (16 floats). */
    j.astride = ROUND_UP(j.astride, (fs_idx)16);
    const size_t bfloats = (size_t)(ROUND_UP(MIN(n, j.ncb), (fs_idx)FS_NR) * j.kcb);
    const size_t boff = ROUND_UP(bfloats, (size_t)16);
    const size_t need = boff + (size_t)nabuf * (size_t)j.astride;

    fs_workspace *ws = ws_acquire();
    if (!ws) return FS_ENOMEM;
    if (!ws_reserve(ws, need)) {
        ws_release(ws);
        return FS_ENOMEM;
    }
    j.bp = ws->buf;
    j.ap = ws->buf + boff;

#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
        gemm_thread(&j, omp_get_thread_num(), omp_get_num_threads());
    } else
#endif
    {
        gemm_thread(&j, 0, 1);
    }
    ws_release(ws);
    return FS_OK;
}
