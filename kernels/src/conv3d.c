/*
 * conv3d forward/backward (kernels.h) as GEMM loops around the GEMM
 * micro-kernels, with no column matrix in memory: the 3-D form of
 * conv_fused.c.
 *
 * A volume's column matrix (vol2col_row.h) has c*kd*kh*kw rows and one
 * column per output voxel: 2500 x 216 floats (2.2 MB) for lai3d's 20->50
 * layer, 125 x 8000 (4 MB) for its first, too big for L2, so it is never
 * written whole. Instead
 *   forward  y_i  = W . cols_i          B panels packed straight from x_i,
 *                                       in blocks that stay in L2;
 *   dW      dW  += dY_i . cols_i^T      B (cols^T) panels packed from x_i;
 *   dX      dx_i = col2vol(W^T . dY_i)  each MR x NR tile of W^T . dY_i,
 *                                       computed into an L1 tile, is added
 *                                       into dx_i row run by row run;
 * the weight (W, or W^T for dX) is packed once per call and thread when it
 * is small (every layer of lai3d), else block by block as fs_sgemm does, so
 * a fully connected layer run as a 3-D convolution works too.
 *
 * Threads: conv_batch.h's plan (whole volumes, or a slice of every volume),
 * with its dW/db reduction, shared with the 2-D conv_fused.c.
 */
#include "fastseg/kernels.h"

#include <string.h>

#include "arena.h"
#include "conv_batch.h"
#include "gemm_internal.h"
#include "thread_workspace.h"
#include "vol2col_row.h"

/* Largest packed weight (floats) a thread keeps for a whole call: lai3d's
 * layers need 3K and 135K. Bigger weights are packed one MC x KC block at a
 * time, as fs_sgemm packs A. */
#define FS_CONV3D_WEIGHT_MAX ((fs_idx)1 << 20)

/* Floats of a packed B block of the forward and of dW (256 KiB: a quarter of
 * L2), so the block stays in L2 while every row panel of A sweeps it. */
#ifndef FS_CONV3D_B_BLOCK_FLOATS
#define FS_CONV3D_B_BLOCK_FLOATS ((fs_idx)1 << 16)
#endif

/* Floats of dY in one packed dX block (16 KiB: half of L1d): every MR rows
 * of W^T sweep the whole block. */
#ifndef FS_CONV3D_DX_BLOCK_FLOATS
#define FS_CONV3D_DX_BLOCK_FLOATS ((fs_idx)4096)
#endif

typedef struct {
    fs_volgeom g;
    fs_idx n, f, ckkk; /* ckkk: rows of the column matrix, the forward's K */
    fs_idx mr, nr;     /* the micro-kernel's tile (the packing format) */
    fs_idx kc, mc;     /* the GEMM's K and M cache blocks */
    int interior;      /* fs_vol_interior: runs are copied from offsets */
    const float *x, *wt, *bias, *dy;
    float *y, *dx;
    fs_ukernel_fn uk;
    void (*pack_a)(int, fs_idx, fs_idx, const float *, fs_idx, float *, fs_idx, fs_idx);
    void (*pack_b)(int, fs_idx, fs_idx, const float *, fs_idx, float *, fs_idx, fs_idx);
} conv3d_job;

static int geom_ok(const fs_conv3d_geom *s)
{
    for (int a = 0; a < 3; a++)
        if (s->k[a] < 1 || s->stride[a] < 1 || s->pad[a] < 0) return 0;
    return 1;
}

static void job_init(conv3d_job *J, const fs_conv3d_geom *s, const float *x, const float *wt)
{
    memset(J, 0, sizeof *J);
    fs_volgeom_init(&J->g, s);
    J->n = s->n;
    J->f = s->f;
    J->ckkk = s->c * J->g.kkk;
    J->interior = fs_vol_interior(&J->g);
    J->x = x;
    J->wt = wt;
    /* The micro-kernel, its tile and packing format and the cache blocks are
     * read once per call, so one call never mixes formats. */
    const fs_gemm_kernel_table *kt = fs_gemm_kernels();
    J->uk = kt->ukernel;
    J->mr = kt->mr;
    J->nr = kt->nr;
    J->kc = kt->kc;
    J->mc = kt->mc;
    J->pack_a = kt->pack_a;
    J->pack_b = kt->pack_b;
}

/* Multiply-adds of the forward (and of each half of the backward). */
static double conv_fmas(const conv3d_job *J)
{
    return (double)J->n * (double)J->f * (double)J->ckkk * (double)J->g.odhw;
}

/* op(A) = W (trans 0: a points at W[r0][k0]) or W^T (trans 1: a points at
 * W[k0][r0]), rows x kdim, as MR-row panels with K in blocks of kcb: the
 * block at column pc starts at ap + ROUND_UP(rows, MR) * pc. */
static void pack_weight(const conv3d_job *J, int trans, const float *a, fs_idx ld, fs_idx rows,
                        fs_idx kdim, fs_idx kcb, float *ap)
{
    const fs_idx mpad = ROUND_UP(rows, J->mr);
    for (fs_idx pc = 0; pc < kdim; pc += kcb) {
        const fs_idx kc = MIN(kcb, kdim - pc);
        J->pack_a(trans, rows, kc, trans ? a + pc * ld : a + pc, ld, ap + mpad * pc, 0,
                  mpad / J->mr);
    }
}

/* ==== forward ============================================================ */

typedef struct {
    fs_idx kcb, ncb, maxruns;
    int whole;      /* ap holds the whole packed weight */
    float *ap, *bp; /* packed weight (whole, or one MC x KC block); B block */
    fs_volrun *runs;
    fs_idx *first;  /* interior path: each panel's first run, run and tap offsets */
    fs_idx *roff, *toff;
} fwd_space;

static void fwd_layout(const conv3d_job *J, fs_idx span, fwd_space *s, fs_arena *a)
{
    s->kcb = fs_even_block(J->ckkk, J->kc, 1);
    s->ncb = fs_even_block(span, MAX(J->nr, FS_CONV3D_B_BLOCK_FLOATS / s->kcb), J->nr);
    s->maxruns = fs_col_runs_max(&J->g.row, s->ncb, J->nr);
    const fs_idx whole = ROUND_UP(J->f, J->mr) * J->ckkk;
    s->whole = whole <= FS_CONV3D_WEIGHT_MAX;
    s->ap = fs_arena_take(a, s->whole ? whole : ROUND_UP(MIN(J->f, J->mc), J->mr) * s->kcb,
                          sizeof(float));
    s->bp = fs_arena_take(a, s->kcb * s->ncb, sizeof(float));
    s->runs = fs_arena_take(a, s->maxruns, sizeof(fs_volrun));
    s->first = fs_arena_take(a, s->ncb / J->nr + 2, sizeof(fs_idx));
    s->roff = fs_arena_take(a, s->maxruns, sizeof(fs_idx));
    s->toff = fs_arena_take(a, s->kcb, sizeof(fs_idx));
}

/* Rows [r0, r0+kc) of volume xi's column matrix over the voxels that `runs`
 * cut (nc of them, in NR-aligned groups), as NR-wide B panels
 * (bp[q*NR*kc + p*NR + j], fs_pack_b's layout). */
static void pack_cols(const conv3d_job *J, const float *xi, fs_idx r0, fs_idx kc,
                      const fs_volrun *runs, fs_idx nruns, fs_idx nc, float *bp)
{
    const fs_idx npanels = CEIL_DIV(nc, J->nr), tail = nc % J->nr;
    fs_voltap t = fs_voltap_of(&J->g, r0);
    for (fs_idx p = 0; p < kc; p++, fs_voltap_next(&J->g, &t)) {
        const float *xc = xi + t.ci * J->g.dhw;
        float *row = bp + p * J->nr;
        for (fs_idx ri = 0; ri < nruns; ri++) {
            const fs_idx at = runs[ri].at;
            fs_vol_run_gather(&J->g, &t, xc, &runs[ri],
                              row + (at / J->nr) * J->nr * kc + at % J->nr);
        }
        if (tail) fs_zero_run(row + (npanels - 1) * J->nr * kc + tail, J->nr - tail);
    }
}

/* pack_cols on the interior path: run by run, each run copied into every row
 * of its panel (fs_copy_runs) from tap offsets computed once per block. */
static void pack_cols_interior(const conv3d_job *J, const float *xi, fs_idx r0, fs_idx kc,
                               const fwd_space *s, fs_idx nc)
{
    const fs_idx npanels = CEIL_DIV(nc, J->nr);
    fs_voltap t = fs_voltap_of(&J->g, r0);
    for (fs_idx p = 0; p < kc; p++, fs_voltap_next(&J->g, &t))
        s->toff[p] = fs_vol_tap_offset(&J->g, &t);
    for (fs_idx q = 0; q < npanels; q++) {
        float *panel = s->bp + q * J->nr * kc;
        for (fs_idx ri = s->first[q]; ri < s->first[q + 1]; ri++)
            fs_copy_runs(panel + (s->runs[ri].at - q * J->nr), J->nr, xi + s->roff[ri], s->toff,
                         kc, s->runs[ri].len);
        const fs_idx width = MIN(J->nr, nc - q * J->nr);
        if (width < J->nr)
            for (fs_idx p = 0; p < kc; p++) fs_zero_run(panel + p * J->nr + width, J->nr - width);
    }
}

/* y_i[:, j0:j1] (output voxels j0..j1) of volume ni. */
static void fwd_volume(const conv3d_job *J, const fwd_space *s, fs_idx ni, fs_idx j0, fs_idx j1)
{
    const fs_volgeom *g = &J->g;
    const fs_idx odhw = g->odhw, mpad = ROUND_UP(J->f, J->mr);
    const float *xi = J->x + ni * g->c * g->dhw;
    float *yi = J->y + ni * J->f * odhw;
    for (fs_idx jc = j0; jc < j1; jc += s->ncb) {                      /* jc */
        const fs_idx nc = MIN(s->ncb, j1 - jc);
        const fs_idx npanels = CEIL_DIV(nc, J->nr);
        const fs_idx nruns = fs_col_runs(&g->row, jc, nc, J->nr, s->runs, s->first);
        if (J->interior)
            for (fs_idx ri = 0; ri < nruns; ri++) s->roff[ri] = fs_vol_run_offset(g, &s->runs[ri]);
        for (fs_idx pc = 0; pc < J->ckkk; pc += s->kcb) {              /* pc */
            const fs_idx kc = MIN(s->kcb, J->ckkk - pc);
            const float beta = pc == 0 ? 0.0f : 1.0f;
            if (J->interior)
                pack_cols_interior(J, xi, pc, kc, s, nc);
            else
                pack_cols(J, xi, pc, kc, s->runs, nruns, nc, s->bp);
            for (fs_idx ic = 0; ic < J->f; ic += J->mc) {         /* ic */
                const fs_idx mc = MIN(J->mc, J->f - ic);
                const float *apk = s->ap + mpad * pc + ic * kc;
                if (!s->whole) {
                    pack_weight(J, 0, J->wt + ic * J->ckkk + pc, J->ckkk, mc, kc, kc, s->ap);
                    apk = s->ap;
                }
                for (fs_idx q = 0; q < npanels; q++) {                 /* jr */
                    const int nr = (int)MIN(J->nr, nc - q * J->nr);
                    const float *bq = s->bp + q * J->nr * kc;
                    float *cq = yi + ic * odhw + jc + q * J->nr;
                    for (fs_idx i = 0; i < mc; i += J->mr) {            /* ir */
                        const int mr = (int)MIN(J->mr, mc - i);
                        J->uk(kc, 1.0f, apk + i * kc, bq, beta, cq + i * odhw, odhw, mr, nr);
                    }
                }
            }
        }
    }
    if (J->bias) fs_conv_add_bias(yi, J->f, odhw, j0, j1, J->bias);
}

/* One thread's forward (conv_batch.h): the weight packed once when it is
 * small, then the volumes it is given, over its voxels. */
static int fwd_thread(const void *job, fs_conv_fwd_part *part)
{
    const conv3d_job *J = job;
    fwd_space s;
    fs_arena a = FS_ARENA_MEASURE;
    fwd_layout(J, part->j1 - part->j0, &s, &a);
    if (!fs_arena_bind(&a)) return FS_ENOMEM;
    fwd_layout(J, part->j1 - part->j0, &s, &a);
    if (s.whole) pack_weight(J, 0, J->wt, J->ckkk, J->f, J->ckkk, s.kcb, s.ap);
    fs_idx ni;
    while (fs_conv_next_image(part, &ni)) fwd_volume(J, &s, ni, part->j0, part->j1);
    fs_ws_put(a.base);
    return FS_OK;
}

int fs_conv3d_forward(const fs_conv3d_geom *geom, const float *x, const float *wt,
                      const float *bias, float *y)
{
    if (!geom_ok(geom)) return FS_EVALUE;
    conv3d_job J;
    job_init(&J, geom, x, wt);
    J.bias = bias;
    J.y = y;
    if (J.n <= 0 || J.f <= 0 || J.g.odhw == 0) return FS_OK;
    if (J.ckkk == 0) {
        fs_conv_bias_only(y, J.n, J.f, J.g.odhw, bias);
        return FS_OK;
    }
    return fs_conv_forward_threads(J.n, J.g.odhw, J.nr, conv_fmas(&J), fwd_thread, &J);
}

/* ==== backward =========================================================== */

typedef struct {
    /* dW: columns (taps) [d0, d1) in blocks of ncd, voxels in blocks of kcp;
     * the dY block (A), the cols^T block (B), a gather tile, the voxel runs;
     * dw: where this part's dW goes (ld ckkk) */
    fs_idx d0, d1, kcp, ncd, maxruns_w;
    float *apy, *bpc, *tmp, *dw;
    fs_volrun *runs_w;
    fs_idx *roff_w, *toff_w; /* interior path: where each run and a panel's taps read */
    /* dX: rows (taps) [r0, r1) of W^T in chunks of rch (whole: one chunk
     * packed once per call), K = f in blocks of kcf, voxels in blocks of
     * ncp; packed W^T chunk, dY block, tile, each row's tap, the runs of a
     * block and where each NR panel's runs start */
    fs_idx r0, r1, rch, kcf, ncp, maxruns_x;
    int whole;
    float *apt, *bpy, *tile;
    fs_voltap *taps;
    fs_volrun *runs_x;
    fs_idx *first_x;
    fs_idx *toff_x, *roff_x; /* interior path: where each row's tap and each run land */
    fs_idx *ord;             /* packed row -> tap, see pack_weight_t */
} bwd_space;

static void bwd_layout(const conv3d_job *J, int want_dx, int want_dw, bwd_space *s,
                       fs_arena *a)
{
    if (want_dw) {
        s->kcp = fs_even_block(J->g.odhw, J->kc, 1);
        s->ncd = fs_even_block(s->d1 - s->d0,
                               MAX(J->nr, FS_CONV3D_B_BLOCK_FLOATS / s->kcp), J->nr);
        s->maxruns_w = fs_col_runs_max(&J->g.row, s->kcp, 0);
        s->apy = fs_arena_take(a, ROUND_UP(MIN(J->f, J->mc), J->mr) * s->kcp, sizeof(float));
        s->bpc = fs_arena_take(a, s->kcp * s->ncd, sizeof(float));
        s->tmp = fs_arena_take(a, J->nr * s->kcp, sizeof(float));
        s->runs_w = fs_arena_take(a, s->maxruns_w, sizeof(fs_volrun));
        s->roff_w = fs_arena_take(a, s->maxruns_w, sizeof(fs_idx));
        s->toff_w = fs_arena_take(a, J->nr, sizeof(fs_idx));
    }
    if (want_dx) {
        const fs_idx rows = s->r1 - s->r0;
        s->kcf = fs_even_block(J->f, J->kc, 1);
        s->ncp = fs_even_block(J->g.odhw, MAX(J->nr, FS_CONV3D_DX_BLOCK_FLOATS / s->kcf),
                               J->nr);
        s->maxruns_x = fs_col_runs_max(&J->g.row, s->ncp, J->nr);
        s->whole = ROUND_UP(rows, J->mr) * J->f <= FS_CONV3D_WEIGHT_MAX;
        s->rch = s->whole ? rows : MAX(J->mr, FS_CONV3D_WEIGHT_MAX / J->f / J->mr * J->mr);
        s->apt = fs_arena_take(a, ROUND_UP(s->rch, J->mr) * J->f, sizeof(float));
        s->bpy = fs_arena_take(a, s->kcf * s->ncp, sizeof(float));
        s->tile = fs_arena_take(a, J->mr * J->nr, sizeof(float));
        s->taps = fs_arena_take(a, s->rch, sizeof(fs_voltap));
        s->runs_x = fs_arena_take(a, s->maxruns_x, sizeof(fs_volrun));
        s->first_x = fs_arena_take(a, s->ncp / J->nr + 2, sizeof(fs_idx));
        s->toff_x = fs_arena_take(a, s->rch, sizeof(fs_idx));
        s->ord = fs_arena_take(a, s->rch, sizeof(fs_idx));
        s->roff_x = fs_arena_take(a, s->maxruns_x, sizeof(fs_idx));
    }
}

/* Voxels [the runs] x rows [r0, r0+nc) of volume xi's transposed column
 * matrix as NR-wide B panels: NR rows are gathered into tmp (NR x kc), then
 * packed as a transposed B (gemm_pack.c's SSE transposes). On the interior
 * path the gather goes run by run, each run copied for every row
 * (fs_copy_runs) from the rows' tap offsets. */
static void pack_cols_t(const conv3d_job *J, const float *xi, const bwd_space *s,
                        fs_idx nruns, fs_idx kc, fs_idx r0, fs_idx nc)
{
    fs_voltap t = fs_voltap_of(&J->g, r0);
    for (fs_idx q = 0; q * J->nr < nc; q++) {
        const fs_idx rows = MIN(J->nr, nc - q * J->nr);
        if (J->interior) {
            for (fs_idx j = 0; j < rows; j++, fs_voltap_next(&J->g, &t))
                s->toff_w[j] = fs_vol_tap_offset(&J->g, &t);
            for (fs_idx ri = 0; ri < nruns; ri++)
                fs_copy_runs(s->tmp + s->runs_w[ri].at, kc, xi + s->roff_w[ri], s->toff_w, rows,
                             s->runs_w[ri].len);
        } else {
            for (fs_idx j = 0; j < rows; j++, fs_voltap_next(&J->g, &t)) {
                const float *xc = xi + t.ci * J->g.dhw;
                for (fs_idx ri = 0; ri < nruns; ri++)
                    fs_vol_run_gather(&J->g, &t, xc, &s->runs_w[ri],
                                      s->tmp + j * kc + s->runs_w[ri].at);
            }
        }
        J->pack_b(1, kc, rows, s->tmp, kc, s->bpc + q * J->nr * kc, 0, 1);
    }
}

/* dW[:, d0:d1] = (first ? 0 : dW) + dY_i . cols_i^T[:, d0:d1], into s->dw. */
static void dw_volume(const conv3d_job *J, const bwd_space *s, fs_idx ni, int first)
{
    const fs_idx odhw = J->g.odhw, ckkk = J->ckkk;
    const float *xi = J->x + ni * J->g.c * J->g.dhw;
    const float *dyi = J->dy + ni * J->f * odhw;
    for (fs_idx jc = s->d0; jc < s->d1; jc += s->ncd) {                /* jc */
        const fs_idx nc = MIN(s->ncd, s->d1 - jc);
        const fs_idx npanels = CEIL_DIV(nc, J->nr);
        for (fs_idx pc = 0; pc < odhw; pc += s->kcp) {                 /* pc */
            const fs_idx kc = MIN(s->kcp, odhw - pc);
            const float beta = first && pc == 0 ? 0.0f : 1.0f;
            const fs_idx nruns = fs_col_runs(&J->g.row, pc, kc, 0, s->runs_w, NULL);
            if (J->interior)
                for (fs_idx ri = 0; ri < nruns; ri++)
                    s->roff_w[ri] = fs_vol_run_offset(&J->g, &s->runs_w[ri]);
            pack_cols_t(J, xi, s, nruns, kc, jc, nc);
            for (fs_idx ic = 0; ic < J->f; ic += J->mc) {         /* ic */
                const fs_idx mc = MIN(J->mc, J->f - ic);
                J->pack_a(0, mc, kc, dyi + ic * odhw + pc, odhw, s->apy, 0,
                          CEIL_DIV(mc, J->mr));
                for (fs_idx q = 0; q < npanels; q++) {                 /* jr */
                    const int nr = (int)MIN(J->nr, nc - q * J->nr);
                    const float *bq = s->bpc + q * J->nr * kc;
                    float *cq = s->dw + ic * ckkk + jc + q * J->nr;
                    for (fs_idx i = 0; i < mc; i += J->mr) {            /* ir */
                        const int mr = (int)MIN(J->mr, mc - i);
                        J->uk(kc, 1.0f, s->apy + i * kc, bq, beta, cq + i * ckkk, ckkk, mr, nr);
                    }
                }
            }
        }
    }
}

/* Rows [rc, rc+rows) of W^T packed (K = f in blocks of kcf), and their taps,
 * in kernel-column-major order: all taps with kernel column e = 0, then 1, ...
 * Consecutive taps (ci, a, b, e) and (ci, a, b, e+1) add their runs into
 * overlapping floats of one dx row, and each add then waits on the store
 * before it; in this order the MR rows of a tile land in MR different dx rows
 * (while c*kd*kh >= MR), as conv_fused.c orders its taps. ord[r] is the
 * position of packed row r in [rc, rc+rows). */
static void pack_weight_t(const conv3d_job *J, const bwd_space *s, fs_idx rc, fs_idx rows)
{
    fs_idx n = 0;
    for (fs_idx e = 0; e < J->g.kw; e++) {
        fs_voltap t = fs_voltap_of(&J->g, rc);
        for (fs_idx r = 0; r < rows; r++, fs_voltap_next(&J->g, &t)) {
            if (t.e != e) continue;
            s->taps[n] = t;
            s->toff_x[n] = fs_vol_tap_offset(&J->g, &t);
            s->ord[n++] = r;
        }
    }
    /* ap[panel*MR*kc + p*MR + i] = W[pc + p][rc + ord[panel*MR + i]], one filter (a
     * contiguous row of W) at a time. */
    const fs_idx mpad = ROUND_UP(rows, J->mr);
    for (fs_idx pc = 0; pc < J->f; pc += s->kcf) {
        const fs_idx kc = MIN(s->kcf, J->f - pc);
        float *ap = s->apt + mpad * pc;
        for (fs_idx p = 0; p < kc; p++) {
            const float *wrow = J->wt + (pc + p) * J->ckkk + rc;
            for (fs_idx r = 0; r < mpad; r++)
                ap[(r / J->mr) * J->mr * kc + p * J->mr + r % J->mr] =
                    r < rows ? wrow[s->ord[r]] : 0.0f;
        }
    }
}

/* Adds the tile (rows [i, i+mr) of W^T . dY over panel q) into dx where its
 * taps put it. Interior: run by run, each run added for every row
 * (fs_add_runs) at the rows' tap offsets; otherwise the bounds-checked walk. */
static void add_tile(const conv3d_job *J, const bwd_space *s, float *dxi, fs_idx i, int mr,
                     fs_idx q)
{
    const fs_idx r_lo = s->first_x[q], r_hi = s->first_x[q + 1];
    if (J->interior) {
        for (fs_idx ri = r_lo; ri < r_hi; ri++)
            fs_add_runs(dxi + s->roff_x[ri], s->toff_x + i,
                        s->tile + (s->runs_x[ri].at - q * J->nr), J->nr, mr, s->runs_x[ri].len);
        return;
    }
    for (int rr = 0; rr < mr; rr++) {
        const fs_voltap *t = &s->taps[i + rr];
        float *dxc = dxi + t->ci * J->g.dhw;
        for (fs_idx ri = r_lo; ri < r_hi; ri++)
            fs_vol_run_add(&J->g, t, dxc, &s->runs_x[ri],
                           s->tile + rr * J->nr + (s->runs_x[ri].at - q * J->nr));
    }
}

/* dx_i channels [r0/kkk, r1/kkk) of volume ni: zeroed, then every tile of
 * W^T[r0:r1] . dY_i added in where its taps land. */
static void dx_volume(const conv3d_job *J, const bwd_space *s, fs_idx ni)
{
    const fs_volgeom *g = &J->g;
    const fs_idx odhw = g->odhw, dhw = g->dhw;
    const float *dyi = J->dy + ni * J->f * odhw;
    float *dxi = J->dx + ni * g->c * dhw;
    memset(dxi + (s->r0 / g->kkk) * dhw, 0,
           (size_t)((s->r1 - s->r0) / g->kkk * dhw) * sizeof(float));
    for (fs_idx rc = s->r0; rc < s->r1; rc += s->rch) {
        const fs_idx rows = MIN(s->rch, s->r1 - rc), mpad = ROUND_UP(rows, J->mr);
        if (!s->whole) pack_weight_t(J, s, rc, rows);
        for (fs_idx jc = 0; jc < odhw; jc += s->ncp) {                 /* jc */
            const fs_idx nc = MIN(s->ncp, odhw - jc);
            const fs_idx npanels = CEIL_DIV(nc, J->nr);
            const fs_idx nruns = fs_col_runs(&g->row, jc, nc, J->nr, s->runs_x, s->first_x);
            if (J->interior)
                for (fs_idx ri = 0; ri < nruns; ri++)
                    s->roff_x[ri] = fs_vol_run_offset(g, &s->runs_x[ri]);
            for (fs_idx pc = 0; pc < J->f; pc += s->kcf) {             /* pc */
                /* Each K block's tile is added separately: col2vol is linear. */
                const fs_idx kc = MIN(s->kcf, J->f - pc);
                J->pack_b(0, kc, nc, dyi + pc * odhw + jc, odhw, s->bpy, 0, npanels);
                const float *apk = s->apt + mpad * pc;
                for (fs_idx i = 0; i < rows; i += J->mr) {              /* ir */
                    const int mr = (int)MIN(J->mr, rows - i);
                    for (fs_idx q = 0; q < npanels; q++) {             /* jr */
                        J->uk(kc, 1.0f, apk + i * kc, s->bpy + q * J->nr * kc, 0.0f, s->tile,
                              J->nr, J->mr, J->nr);
                        add_tile(J, s, dxi, i, mr, q);
                    }
                }
            }
        }
    }
}

/* One thread's dX and dW (conv_batch.h): its rows of W^T packed once when
 * they are small, then its volumes. */
static int bwd_thread(const void *job, fs_conv_bwd_part *part)
{
    const conv3d_job *J = job;
    bwd_space s = {.r0 = part->r0, .r1 = part->r1, .d0 = part->d0, .d1 = part->d1};
    fs_arena a = FS_ARENA_MEASURE;
    bwd_layout(J, part->want_dx, part->want_dw, &s, &a);
    if (!fs_arena_bind(&a)) return FS_ENOMEM;
    bwd_layout(J, part->want_dx, part->want_dw, &s, &a);
    s.dw = part->dw;
    if (part->want_dx && s.whole) pack_weight_t(J, &s, s.r0, s.r1 - s.r0);
    for (fs_idx ni = part->i0; ni < part->i1; ni++) {
        if (part->want_dw) dw_volume(J, &s, ni, ni == part->i0);
        if (part->want_dx) dx_volume(J, &s, ni);
    }
    fs_ws_put(a.base);
    return FS_OK;
}

int fs_conv3d_backward(const fs_conv3d_geom *geom, const float *x, const float *wt,
                       const float *dy, float *dx, float *dw, float *db)
{
    if (!geom_ok(geom)) return FS_EVALUE;
    conv3d_job J;
    job_init(&J, geom, x, wt);
    J.dy = dy;
    J.dx = dx;
    const fs_idx n = J.n, f = J.f, c = J.g.c;
    if (n <= 0 || f <= 0 || J.g.odhw == 0 || J.ckkk == 0) {
        /* Nothing flows through: dx and dw are zero, db the sum of dy. */
        if (dx && n > 0) memset(dx, 0, (size_t)(n * c * J.g.dhw) * sizeof(float));
        if (dw && f > 0) memset(dw, 0, (size_t)(f * J.ckkk) * sizeof(float));
        if (db) fs_conv_bias_grad(dy, n, f, J.g.odhw, db);
        return FS_OK;
    }
    const fs_conv_bwd_job B = {n, f, c, J.g.kkk, J.g.odhw, J.nr, conv_fmas(&J), dy, dx, dw, db};
    return fs_conv_backward_threads(&B, bwd_thread, &J);
}
