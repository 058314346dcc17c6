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

#include "gemm_internal.h"
#include "parallel.h"
#include "thread_workspace.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- the blocked algorithm -------------------------------------------------*/
typedef struct {
    int ta, tb;
    fs_idx m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
    const fs_gemm_kernel_table *kt; /* the kernels, their format and blocks */
    fs_idx kcb;          /* K block: KC evened out over the blocks */
    int split_n;         /* threads' blocks cut N (1) or M (0) */
    fs_idx units;        /* NR panels (split_n) or MR tiles along the cut */
    fs_idx tasks;        /* blocks along the cut */
    size_t ws_floats;    /* packing space per thread: A at +0, B at +bp_offset */
    size_t bp_offset;
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
    const fs_gemm_kernel_table *kt = j->kt;
    const fs_idx MR = kt->mr, NR = kt->nr;
    const fs_idx ncb = fs_even_block(j1 - j0, kt->nc, NR);
    const fs_idx mcb = fs_even_block(i1 - i0, kt->mc, MR);
    const fs_idx ldc = j->ldc;
    for (fs_idx jc = j0; jc < j1; jc += ncb) {                          /* jc */
        const fs_idx nc = MIN(ncb, j1 - jc);
        const fs_idx npanels = CEIL_DIV(nc, NR);
        for (fs_idx pc = 0; pc < j->k; pc += j->kcb) {                  /* pc */
            const fs_idx kc = MIN(j->kcb, j->k - pc);
            /* Later K blocks accumulate onto what the first one wrote. */
            const float beta = pc == 0 ? j->beta : 1.0f;
            kt->pack_b(j->tb, kc, nc, b_at(j, pc, jc), j->ldb, bp, 0, npanels);
            for (fs_idx ic = i0; ic < i1; ic += mcb) {                  /* ic */
                const fs_idx mc = MIN(mcb, i1 - ic);
                kt->pack_a(j->ta, mc, kc, a_at(j, ic, pc), j->lda, ap, 0, CEIL_DIV(mc, MR));
                float *cblk = j->c + ic * ldc + jc;
                for (fs_idx q = 0; q < npanels; q++) {                  /* jr */
                    const int nr = (int)MIN(NR, nc - q * NR);
                    const float *bq = bp + q * NR * kc;
                    for (fs_idx i = 0; i < mc; i += MR) {               /* ir */
                        const int mr = (int)MIN(MR, mc - i);
                        kt->ukernel(kc, j->alpha, ap + i * kc, bq, beta,
                                    cblk + i * ldc + q * NR, ldc, mr, nr);
                    }
                }
            }
        }
    }
}

/* Block t of the cut, run by the calling thread with its packing space. */
static void gemm_task(const gemm_job *j, fs_idx t, float *ws)
{
    fs_idx u0, u1;
    fs_split_range(j->units, t, j->tasks, &u0, &u1);
    float *ap = ws, *bp = ws + j->bp_offset;
    const fs_idx MR = j->kt->mr, NR = j->kt->nr;
    if (j->split_n)
        gemm_block(j, 0, j->m, u0 * NR, MIN(u1 * NR, j->n), ap, bp);
    else
        gemm_block(j, u0 * MR, MIN(u1 * MR, j->m), 0, j->n, ap, bp);
}

/* Repacking the smaller operand once per block costs about as much as
 * ~PACK_COST_FLOPS flops per element (a strided read + a write, vs 100
 * GFLOP/s of FMAs); blocks are made big enough that this stays ~2%. */
#define PACK_COST_FLOPS 30.0
#define PACK_OVERHEAD 0.02

/* The cut among threads (fs_set_gemm_split): mode in the low 4 bits, the
 * most blocks per thread above (0: FS_GEMM_BLOCKS_PER_THREAD). One atomic
 * int, read once per call, so a call never sees half of a change. */
static atomic_int split_setting;

int fs_set_gemm_split(int mode, int blocks)
{
    if (mode < FS_SPLIT_AUTO || mode > FS_SPLIT_M || blocks < 0 || blocks > FS_SPLIT_BLOCKS_MAX)
        return FS_EVALUE;
    atomic_store_explicit(&split_setting, mode | blocks << 4, memory_order_relaxed);
    return FS_OK;
}

void fs_get_gemm_split(int *mode, int *blocks)
{
    const int v = atomic_load_explicit(&split_setting, memory_order_relaxed);
    *mode = v & 15;
    *blocks = v >> 4 ? v >> 4 : FS_GEMM_BLOCKS_PER_THREAD;
}

/* How to cut C among nt threads: by default along N when A is the smaller
 * operand (it is what every block repacks), else along M; the number of
 * blocks from fs_plan_blocks (parallel.h). */
static void split_plan(gemm_job *j, int nt)
{
    int mode, per_thread;
    fs_get_gemm_split(&mode, &per_thread);
    j->split_n = mode == FS_SPLIT_AUTO ? j->m <= j->n : mode == FS_SPLIT_N;
    const fs_idx len = j->split_n ? j->n : j->m;   /* the dimension cut */
    const fs_idx unit = j->split_n ? j->kt->nr : j->kt->mr;
    j->units = CEIL_DIV(len, unit);
    /* A block w wide along the cut does 2*other*w*k flops and repacks
     * other*k elements (other = the uncut dimension), so the overhead is
     * PACK_COST_FLOPS / (2*w): w >= PACK_COST_FLOPS / (2 * PACK_OVERHEAD). */
    const fs_idx min_w = (fs_idx)(PACK_COST_FLOPS / (2.0 * PACK_OVERHEAD));
    j->tasks = fs_plan_blocks(len, j->units, min_w, nt, per_thread);
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
 * lai2d's Linear(1000 -> 2) forward (n = 2) runs 2 of NR micro-kernel
 * columns, its dx (k = 2) loads and stores the C tile for two FMAs, its dw
 * (m = 2) fills 2 of MR rows, and each packs a whole operand; at batch 1
 * (m = 1) packing would copy a whole 51 MB weight that is read once. Here:
 *   dots  (trans_a == 0, trans_b != 0, n or m tiny): each C[i, j] is a dot
 *         product of two contiguous rows, several accumulators per tile;
 *   rank  (trans_b == 0, k or m tiny, any trans_a): C rows swept with up to
 *         four k terms at a time, B streamed once per row chunk.
 * Other transposes with a tiny dimension go to the blocked path. */
#define SMALL_DIM 4
/* Columns per thread slice when the small path cuts N. */
#define SMALL_COLS 16

enum { SMALL_NONE, SMALL_DOTS_ROWS, SMALL_DOTS_COLS, SMALL_RANK };

static int small_kind(int ta, int tb, fs_idx m, fs_idx n, fs_idx k)
{
    if (!ta && tb && n <= SMALL_DIM) return SMALL_DOTS_ROWS;
    if (!ta && tb && m <= SMALL_DIM) return SMALL_DOTS_COLS;
    if (!tb && (k <= SMALL_DIM || m <= SMALL_DIM)) return SMALL_RANK;
    return SMALL_NONE;
}

static void small_gemm(const fs_gemm_kernel_table *kt, int kind, int ta, fs_idx m, fs_idx n,
                       fs_idx k, float alpha, const float *a, fs_idx lda, const float *b,
                       fs_idx ldb, float beta, float *c, fs_idx ldc)
{
    const fs_small_dots_fn dots = kt->small_dots;
    const fs_small_rank_fn rank = kt->small_rank;
    /* Cut rows when there are enough of them, else columns. */
    const int by_rows = kind == SMALL_DOTS_ROWS ||
                        (kind == SMALL_RANK && m > SMALL_DIM && m * SMALL_COLS >= n);
    int nt = fs_threads_for((double)m * (double)n * (double)k, FS_PAR_MIN_SMALL_FMAS);
    const fs_idx units = by_rows ? m : CEIL_DIV(n, (fs_idx)SMALL_COLS);
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
            j0 = MIN(u0 * SMALL_COLS, n);
            j1 = MIN(u1 * SMALL_COLS, n);
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

    const fs_gemm_kernel_table *kt = fs_gemm_kernels();
    const int kind = small_kind(trans_a != 0, trans_b != 0, m, n, k);
    if (kind != SMALL_NONE) {
        small_gemm(kt, kind, trans_a != 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return FS_OK;
    }

    gemm_job j = {
        .ta = trans_a != 0, .tb = trans_b != 0, .m = m, .n = n, .k = k,
        .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta,
        .a = a, .b = b, .c = c, .kt = kt,
    };
    /* Even blocks: k = 500 runs as 2 x 250, not 256 + 244. */
    j.kcb = fs_even_block(k, kt->kc, 1);

    int nt = fs_threads_for((double)m * (double)n * (double)k, FS_PAR_MIN_FMAS);
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

    /* Each thread's packing space (FS_WS_GEMM, thread_workspace.h): an A
     * block (MC x KC) and a B panel (KC x NC), each no bigger than this call
     * needs, each 64-byte aligned. */
    const size_t afloats = (size_t)(ROUND_UP(MIN(m, kt->mc), (fs_idx)kt->mr) * j.kcb);
    const size_t bfloats = (size_t)(ROUND_UP(MIN(n, kt->nc), (fs_idx)kt->nr) * j.kcb);
    j.bp_offset = fs_ws_round16(afloats);
    j.ws_floats = j.bp_offset + fs_ws_round16(bfloats);

    int status = FS_OK;
    if (nt == 1) {
        float *ws = fs_ws_take(FS_WS_GEMM, j.ws_floats);
        if (!ws) return FS_ENOMEM;
        gemm_block(&j, 0, m, 0, n, ws, ws + j.bp_offset);
        fs_ws_give(FS_WS_GEMM, ws);
    }
#ifdef _OPENMP
    else {
#pragma omp parallel num_threads(nt)
        {
            float *ws = fs_ws_take(FS_WS_GEMM, j.ws_floats);
            if (!ws) {
#pragma omp atomic write
                status = FS_ENOMEM;
            }
            /* Without space a thread leaves the blocks it draws undone; the
             * call then reports FS_ENOMEM. */
#pragma omp for schedule(dynamic, 1) nowait
            for (fs_idx t = 0; t < j.tasks; t++)
                if (ws) gemm_task(&j, t, ws);
            if (ws) fs_ws_give(FS_WS_GEMM, ws);
        }
    }
#endif
    return status;
}
