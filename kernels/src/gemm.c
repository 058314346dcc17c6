/*
 * fs_sgemm: C = alpha * op(A) * op(B) + beta * C, BLIS style.
 *
 * Five loops around one micro-kernel (see fastseg/blocking.h for the sizes):
 *   jc (NC) -> pc (KC) -> ic (MC) -> jr (NR) -> ir (MR) -> micro-kernel.
 * Threads: C is cut into a few large blocks along N (the jc loop) or, when
 * A is the bigger operand, along M (the ic loop), and each thread runs the
 * whole loop nest on the blocks it takes, with its own packing buffers. So
 * there is no barrier inside a call: a thread the OS preempts (2 cores
 * shared with other work) delays only its own block, and the blocks are
 * handed out dynamically so the other thread takes up the rest. The price is
 * packing the smaller operand once per block instead of once; block sizes
 * keep that under ~2% (see split_plan). The convolution shapes (M = 20..128
 * filters, N = tens of thousands of pixels) split along N, where the
 * repacked operand (A) is tiny.
 *
 * Edges are handled by zero-padded packed panels and a partial store in
 * the micro-kernel, so every element goes through the fast kernel.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "gemm_internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif


/* Below this many multiply-adds a parallel region costs more than it saves. */
#define FS_GEMM_PARALLEL_MIN_FMAS (64.0 * 64.0 * 64.0)

/* ---- packing workspaces ---------------------------------------------------
 * A pool of 64-byte-aligned buffers, grown on demand and reused across calls,
 * so the steady state allocates nothing. A call takes one workspace for its
 * duration (concurrent calls from several Python threads get different
 * ones) and gives each of its OpenMP threads a private slice. Every
 * workspace stays
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
    fs_idx kcb;          /* K block: KC evened out over the blocks */
    int split_n;         /* threads' blocks cut N (1) or M (0) */
    fs_idx units;        /* NR panels (split_n) or MR tiles along the cut */
    fs_idx tasks;        /* blocks along the cut */
    float *ws;           /* per-thread packing space, ws_stride floats apart */
    size_t ws_stride;
    size_t bp_offset;    /* packed A at +0, packed B at +bp_offset */
} gemm_job;

static const float *a_at(const gemm_job *j, fs_idx i, fs_idx p)
{
    return j->ta ? j->a + p * j->lda + i : j->a + i * j->lda + p;
}

static const float *b_at(const gemm_job *j, fs_idx p, fs_idx col)
{
    return j->tb ? j->b + col * j->ldb + p : j->b + p * j->ldb + col;
}

/* The five loops over C[i0:i1, j0:j1], packing into ap / bp. */
static void gemm_block(const gemm_job *j, fs_idx i0, fs_idx i1, fs_idx j0, fs_idx j1,
                       float *ap, float *bp)
{
    const fs_idx ncb = fs_even_block(j1 - j0, FS_GEMM_NC, FS_NR);
    const fs_idx mcb = fs_even_block(i1 - i0, FS_GEMM_MC, FS_MR);
    const fs_idx ldc = j->ldc;
    for (fs_idx jc = j0; jc < j1; jc += ncb) {                          /* jc */
        const fs_idx nc = MIN(ncb, j1 - jc);
        const fs_idx npanels = CEIL_DIV(nc, FS_NR);
        for (fs_idx pc = 0; pc < j->k; pc += j->kcb) {                  /* pc */
            const fs_idx kc = MIN(j->kcb, j->k - pc);
            /* Later K blocks accumulate onto what the first one wrote. */
            const float beta = pc == 0 ? j->beta : 1.0f;
            fs_pack_b(j->tb, kc, nc, b_at(j, pc, jc), j->ldb, bp, 0, npanels);
            for (fs_idx ic = i0; ic < i1; ic += mcb) {                  /* ic */
                const fs_idx mc = MIN(mcb, i1 - ic);
                fs_pack_a(j->ta, mc, kc, a_at(j, ic, pc), j->lda, ap, 0, CEIL_DIV(mc, FS_MR));
                float *cblk = j->c + ic * ldc + jc;
                for (fs_idx q = 0; q < npanels; q++) {                  /* jr */
                    const int nr = (int)MIN((fs_idx)FS_NR, nc - q * FS_NR);
                    const float *bq = bp + q * FS_NR * kc;
                    for (fs_idx i = 0; i < mc; i += FS_MR) {            /* ir */
                        const int mr = (int)MIN((fs_idx)FS_MR, mc - i);
                        j->ukernel(kc, j->alpha, ap + i * kc, bq, beta,
                                   cblk + i * ldc + q * FS_NR, ldc, mr, nr);
                    }
                }
            }
        }
    }
}

#ifdef _OPENMP
/* Block t of the cut, run by thread `tid`. */
static void gemm_task(const gemm_job *j, fs_idx t, int tid)
{
    fs_idx u0, u1;
    fs_split_range(j->units, t, j->tasks, &u0, &u1);
    float *ap = j->ws + (size_t)tid * j->ws_stride;
    float *bp = ap + j->bp_offset;
    if (j->split_n)
        gemm_block(j, 0, j->m, u0 * FS_NR, MIN(u1 * FS_NR, j->n), ap, bp);
    else
        gemm_block(j, u0 * FS_MR, MIN(u1 * FS_MR, j->m), 0, j->n, ap, bp);
}
#endif

/* Repacking the smaller operand once per block costs about as much as
 * ~PACK_COST_FLOPS flops per element (a strided read + a write, vs 100
 * GFLOP/s of FMAs); blocks are made big enough that this stays ~2%. */
#define PACK_COST_FLOPS 30.0
#define PACK_OVERHEAD 0.02

/* How to cut C among nt threads: along N when A is the smaller operand
 * (it is what every block repacks), else along M; then as many blocks as
 * the overhead allows, a multiple of nt so a quiet machine sees an even
 * static-like split, several per thread where cheap so a preempted thread's
 * share is picked up by the others. */
static void split_plan(gemm_job *j, int nt)
{
    j->split_n = j->m <= j->n;
    const fs_idx len = j->split_n ? j->n : j->m;   /* the dimension cut */
    const fs_idx unit = j->split_n ? FS_NR : FS_MR;
    j->units = CEIL_DIV(len, unit);
    /* A block w wide along the cut does 2*other*w*k flops and repacks
     * other*k elements (other = the uncut dimension), so the overhead is
     * PACK_COST_FLOPS / (2*w): w >= PACK_COST_FLOPS / (2 * PACK_OVERHEAD). */
    const fs_idx min_w = (fs_idx)(PACK_COST_FLOPS / (2.0 * PACK_OVERHEAD));
    fs_idx tasks = len / (min_w > 0 ? min_w : 1);
    tasks = MIN(tasks, 4 * (fs_idx)nt);      /* beyond this no balance to gain */
    tasks = ROUND_UP(MAX(tasks, (fs_idx)1), (fs_idx)nt);
    j->tasks = MIN(tasks, j->units);
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


/* ---- small shapes, no packing ------------------------------------------
 * When one of m, n, k is tiny the blocked path wastes most of its work:
 * lai2d's Linear(1000 -> 2) forward (n = 2) runs 2 of 16 micro-kernel
 * columns, its dx (k = 2) loads and stores the C tile for two FMAs, its dw
 * (m = 2) fills 2 of 6 rows, and each packs a whole operand; at batch 1
 * (m = 1) packing would copy a whole 51 MB weight that is read once. Here:
 *   dots  (trans_a == 0, trans_b != 0, n or m tiny): each C[i, j] is a dot
 *         product of two contiguous rows, several accumulators per tile;
 *   rank  (trans_b == 0, k or m tiny, any trans_a): C rows swept with up to
 *         four k terms at a time, B streamed once per row chunk.
 * Other transposes with a tiny dimension go to the blocked path. */
#define SMALL_DIM 4
#define SMALL_PAR_MIN ((double)(1 << 20)) /* multiply-adds worth threads */

enum { SMALL_NONE, SMALL_DOTS_ROWS, SMALL_DOTS_COLS, SMALL_RANK };

static int small_kind(int ta, int tb, fs_idx m, fs_idx n, fs_idx k)
{
    if (!ta && tb && n <= SMALL_DIM) return SMALL_DOTS_ROWS;
    if (!ta && tb && m <= SMALL_DIM) return SMALL_DOTS_COLS;
    if (!tb && (k <= SMALL_DIM || m <= SMALL_DIM)) return SMALL_RANK;
    return SMALL_NONE;
}

static void small_gemm(int kind, int ta, fs_idx m, fs_idx n, fs_idx k, float alpha,
                       const float *a, fs_idx lda, const float *b, fs_idx ldb,
                       float beta, float *c, fs_idx ldc)
{
    const fs_gemm_kernel_table *kt = fs_gemm_kernels();
    const fs_small_dots_fn dots = kt->small_dots;
    const fs_small_rank_fn rank = kt->small_rank;
    /* Cut rows when there are enough of them, else columns in NR units. */
    const int by_rows = kind == SMALL_DOTS_ROWS ||
                        (kind == SMALL_RANK && m > SMALL_DIM && m * FS_NR >= n);
    int nt = fs_get_num_threads();
    if ((double)m * (double)n * (double)k < SMALL_PAR_MIN) nt = 1;
    const fs_idx units = by_rows ? m : CEIL_DIV(n, (fs_idx)FS_NR);
    if (units < 2) nt = 1;
    (void)nt; /* only the OpenMP pragma reads it */
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int t = 0, T = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        T = omp_get_num_threads();
#endif
        fs_idx u0, u1;
        fs_split_range(units, t, T, &u0, &u1);
        fs_idx i0 = 0, i1 = m, j0 = 0, j1 = n;
        if (by_rows) {
            i0 = u0;
            i1 = u1;
        } else {
            j0 = MIN(u0 * FS_NR, n);
            j1 = MIN(u1 * FS_NR, n);
        }
        if (i1 > i0 && j1 > j0) {
            if (kind == SMALL_DOTS_ROWS)
                dots(k, alpha, a, lda, b, ldb, beta, c, ldc, i0, i1, j0, j1, 2, SMALL_DIM);
            else if (kind == SMALL_DOTS_COLS)
                dots(k, alpha, a, lda, b, ldb, beta, c, ldc, i0, i1, j0, j1, SMALL_DIM, 2);
            else
                rank(ta, k, alpha, a, lda, b, ldb, beta, c, ldc, i0, i1, j0, j1);
        }
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

    if (m == 1 && trans_a && lda == 1) { /* a contiguous row either way */
        trans_a = 0;
        lda = k;
    }

    const int kind = small_kind(trans_a != 0, trans_b != 0, m, n, k);
    if (kind != SMALL_NONE) {
        small_gemm(kind, trans_a != 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return FS_OK;
    }

    gemm_job j = {
        .ta = trans_a != 0, .tb = trans_b != 0, .m = m, .n = n, .k = k,
        .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta,
        .a = a, .b = b, .c = c, .ukernel = fs_gemm_kernels()->ukernel,
    };
    /* Even blocks: k = 500 runs as 2 x 250, not 256 + 244. */
    j.kcb = fs_even_block(k, FS_GEMM_KC, 1);

    int nt = fs_get_num_threads();
    if ((double)m * (double)n * (double)k < FS_GEMM_PARALLEL_MIN_FMAS) nt = 1;
#ifndef _OPENMP
    nt = 1;
#endif
    if (nt > 1) {
        split_plan(&j, nt);
        if (j.tasks < 2) nt = 1;
        else if (j.tasks < nt) nt = (int)j.tasks;
    }
    if (nt == 1) {
        j.split_n = 1;
        j.units = 1;
        j.tasks = 1;
    }

    /* Per-thread space: an A block (MC x KC) and a B panel (KC x NC), each
     * no bigger than this call needs, each 64-byte aligned. */
    const size_t afloats = (size_t)(ROUND_UP(MIN(m, (fs_idx)FS_GEMM_MC), (fs_idx)FS_MR) * j.kcb);
    const size_t bfloats = (size_t)(ROUND_UP(MIN(n, (fs_idx)FS_GEMM_NC), (fs_idx)FS_NR) * j.kcb);
    j.bp_offset = ROUND_UP(afloats, (size_t)16);
    j.ws_stride = j.bp_offset + ROUND_UP(bfloats, (size_t)16);

    fs_workspace *ws = ws_acquire();
    if (!ws) return FS_ENOMEM;
    if (!ws_reserve(ws, j.ws_stride * (size_t)nt)) {
        ws_release(ws);
        return FS_ENOMEM;
    }
    j.ws = ws->buf;

    if (nt == 1) {
        gemm_block(&j, 0, m, 0, n, j.ws, j.ws + j.bp_offset);
    }
#ifdef _OPENMP
    else {
#pragma omp parallel num_threads(nt)
        {
            const int tid = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
            for (fs_idx t = 0; t < j.tasks; t++) gemm_task(&j, t, tid);
        }
    }
#endif
    ws_release(ws);
    return FS_OK;
}
