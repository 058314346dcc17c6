/*
 * Convolution as GEMM without materialising the column matrix.
 *
 * conv.c's im2col path writes each image's column matrix (512 KiB for
 * lai2d's 20->50 layer), the GEMM then re-reads it to pack its panels, and
 * the backward pass writes a second one for col2im to read back. Here the
 * GEMM loops of gemm.c run around the same micro-kernel, but
 *   forward  y_i  = W . cols_i         B panels are packed straight from x_i,
 *                                      or read in place where each panel is
 *                                      runs of 16 neighbours in output rows
 *                                      (the micro-kernel's gathered-B form);
 *   dW      dW  += dY_i . cols_i^T     B panels are packed straight from x_i;
 *   dX      dx_i = col2im(W^T . dY_i)  each MR x NR tile of W^T . dY_i is
 *                                      added into dx_i by the micro-kernel's
 *                                      scatter form (each tile row is NR/16
 *                                      runs of 16 floats in dx), or, at
 *                                      image edges, through an L1 tile
 *                                      (col2im per tile),
 * and the weight is packed once per call and thread instead of once per
 * image (a huge one, forward only, once per call for the whole team, with
 * longer K blocks: blocking.h's deep K block; or once by the caller for many
 * calls, the same way: fs_conv2d_pack_weight). The entries of the column
 * matrix come from im2col_row.h, the same walk fs_im2col uses, so both
 * paths compute identical values.
 *
 * Threads: conv_batch.h's plan (whole images, or a slice of every image),
 * with its dW/db reduction.
 */
#include "conv_fused.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "gemm_internal.h"
#include "im2col_row.h"
#include "parallel.h"
#include "pointwise.h"
#include "thread_workspace.h"

/* Largest packed weight (floats) a thread keeps: lai2d's layers need 27K and
 * 7K. A larger one -- a fully connected layer run as a convolution
 * (segment's dense lai2d: 1000 x 12800, 51 MB) -- is packed once per call
 * by the whole team into the calling thread's GEMM slot and read by every
 * thread (the forward only: its backward goes through conv.c's im2col). */
#define FS_CONV_FUSED_WEIGHT_MAX ((fs_idx)1 << 20)

/* Floats of dY in one packed dX block (16 KiB: half of L1d). */
#define FS_DX_BLOCK_FLOATS ((fs_idx)4096)

typedef struct {
    fs_colgeom g;
    fs_idx n, c, f, ckk, ohw, plane;
    const float *x, *wt, *bias, *dy;
    float *y, *dx;
    const fs_gemm_kernel_table *kt; /* kept for the whole call */
    fs_idx mr, nr;                  /* its packing format */
    const float *ap_team; /* forward: the weight packed once for the team, or NULL */
    int act;                      /* forward: FS_ACT_* after the bias (a packed weight's) */
    const fs_pointwise_table *pt; /* its kernels */
    fs_idx kcb_fwd; /* forward: its K block (fwd_kc_block) */
} conv_job;

int fs_conv_fused_fits(fs_idx c, fs_idx f, fs_idx k)
{
    const fs_idx ckk = c * k * k, mr = fs_gemm_kernels()->mr;
    return ROUND_UP(f, mr) * ckk <= FS_CONV_FUSED_WEIGHT_MAX &&
           ROUND_UP(ckk, mr) * f <= FS_CONV_FUSED_WEIGHT_MAX;
}

static void job_init(conv_job *J, const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                     const float *wt, fs_idx f, fs_idx k, fs_idx stride, fs_idx pad)
{
    memset(J, 0, sizeof *J);
    J->g.h = h;
    J->g.w = w;
    J->g.k = k;
    J->g.stride = stride;
    J->g.pad = pad;
    J->g.oh = fs_out_extent(h, k, stride, pad);
    J->g.ow = fs_out_extent(w, k, stride, pad);
    J->n = n;
    J->c = c;
    J->f = f;
    J->ckk = c * k * k;
    J->ohw = J->g.oh * J->g.ow;
    J->plane = h * w;
    J->x = x;
    J->wt = wt;
    J->kt = fs_gemm_kernels();
    J->mr = J->kt->mr;
    J->nr = J->kt->nr;
}

/* Multiply-adds of the forward (and of each half of the backward). */
static double conv_fmas(const conv_job *J)
{
    return (double)J->n * (double)J->f * (double)J->ckk * (double)J->ohw;
}

/* ==== forward ============================================================ */

/* Pack rows [r0, r0+kc) of image xi's column matrix, over the pixels that
 * `runs` cut (nc of them, in NR-aligned groups), as NR-wide B panels
 * (bp[q*NR*kc + p*NR + j]) -- the layout fs_pack_b writes. Row by row (one
 * tap at a time): panel by panel measured slower, as each 16-float run
 * then carries a whole tap's loop overhead. */
static void pack_cols(const conv_job *J, const float *xi, fs_idx r0, fs_idx kc,
                      const fs_colrun *runs, fs_idx nruns, fs_idx nc, float *bp)
{
    const fs_idx npanels = CEIL_DIV(nc, J->nr), tail = nc % J->nr;
    fs_tap t = fs_tap_of(&J->g, r0);
    for (fs_idx p = 0; p < kc; p++, fs_tap_next(&J->g, &t)) {
        const float *xp = xi + t.ci * J->plane;
        float *row = bp + p * J->nr;
        for (fs_idx ri = 0; ri < nruns; ri++) {
            const fs_idx at = runs[ri].at;
            fs_col_run_gather(&J->g, &t, xp, &runs[ri],
                              row + (at / J->nr) * J->nr * kc + at % J->nr);
        }
        if (tail) fs_zero_run(row + (npanels - 1) * J->nr * kc + tail, J->nr - tail);
    }
}

typedef struct {
    const float *ap; /* the packed weight: the team's, or own_ap */
    float *own_ap, *bp;
    fs_colrun *runs;
    int32_t *off; /* gathered B: each tap's offset in the image, or NULL */
    fs_idx kcb, ncb, maxruns;
} fwd_space;

/* Whether the forward reads B straight from the image (the micro-kernel's
 * gathered-B form) instead of packing it: every NR panel of pixels must be
 * whole runs of 16 neighbours in output rows that every tap sees inside the
 * image -- stride 1, no padding, output rows a multiple of 16 wide (lai2d's
 * 20->50 layer: 16) and whole panels only -- and offsets must fit 32 bits. */
static int gathers_b(const conv_job *J)
{
    return J->g.stride == 1 && J->g.pad == 0 && J->g.ow % FS_GEMM_SEG == 0 &&
           J->ohw % J->nr == 0 && (double)J->c * (double)J->plane < 2147483647.0;
}

/* The forward's K block, evened out over ckk: the table's KC, or for a
 * weight packed once for the team the deep K block (blocking.h). Read once
 * per call (J->kcb_fwd): a block set meanwhile must not reach half the team. */
static fs_idx fwd_kc_block(const conv_job *J, int team)
{
    return fs_even_block(J->ckk, team ? MAX(J->kt->kc, fs_gemm_deep_kc(J->kt)) : J->kt->kc, 1);
}

/* The forward's slices of a thread's workspace (arena.h: measured, then
 * laid out again on the block). */
static void fwd_layout(const conv_job *J, fs_idx span, fwd_space *s, fs_arena *a)
{
    s->kcb = J->kcb_fwd;
    /* a B panel (KC x NC) no bigger than the table's, whatever the K block */
    const fs_idx nc = MAX(J->nr, J->kt->nc * J->kt->kc / MAX(s->kcb, J->kt->kc));
    s->ncb = fs_even_block(span, nc, J->nr);
    s->maxruns = fs_col_runs_max(&J->g, s->ncb, J->nr);
    s->own_ap = J->ap_team ? NULL
                           : fs_arena_take(a, ROUND_UP(J->f, J->mr) * J->ckk, sizeof(float));
    s->ap = J->ap_team ? J->ap_team : s->own_ap;
    s->bp = fs_arena_take(a, s->kcb * s->ncb, sizeof(float));
    s->runs = fs_arena_take(a, s->maxruns, sizeof(fs_colrun));
    s->off = fs_arena_take(a, J->ckk, sizeof(int32_t));
}

/* Gathered B: each tap's offset in the image, or NULL where B is packed. */
static int32_t *tap_offsets(const conv_job *J, int32_t *off)
{
    if (!gathers_b(J)) return NULL;
    fs_tap t = fs_tap_of(&J->g, 0);
    for (fs_idx r = 0; r < J->ckk; r++, fs_tap_next(&J->g, &t))
        off[r] = (int32_t)(t.ci * J->plane + t.ki * J->g.w + t.kj);
    return off;
}

/* K blocks [b0, b1) of the weight as MR-row panels, one K block after
 * another: the block at column pc starts at ap + mpad*pc. */
static void pack_weight_blocks(const conv_job *J, fs_idx kcb, fs_idx b0, fs_idx b1, float *ap)
{
    const fs_idx mpad = ROUND_UP(J->f, J->mr);
    for (fs_idx pc = b0 * kcb; pc < J->ckk && pc < b1 * kcb; pc += kcb) {
        const fs_idx kc = MIN(kcb, J->ckk - pc);
        J->kt->pack_a(0, J->f, kc, J->wt + pc, J->ckk, ap + mpad * pc, 0, mpad / J->mr);
    }
}

static void pack_weight(const conv_job *J, fs_idx kcb, float *ap)
{
    pack_weight_blocks(J, kcb, 0, CEIL_DIV(J->ckk, kcb), ap);
}

/* The whole weight packed once for a team of nt (a huge one: 51 MB at 1000
 * x 12800), its K blocks split among the threads. The same bytes as
 * pack_weight's, whoever packs which block. */
static void pack_weight_team(const conv_job *J, float *ap, int nt)
{
    const fs_idx kcb = J->kcb_fwd, blocks = CEIL_DIV(J->ckk, kcb);
    FS_PARALLEL
    {
        int t, T;
        fs_team(&t, &T);
        fs_idx b0, b1;
        fs_split_range(blocks, t, T, &b0, &b1);
        pack_weight_blocks(J, kcb, b0, b1, ap);
    }
}

/* The bias and the activation on a finished mr x nr tile of y (rows i..),
 * while it is in L1: passes over y afterwards read it back from memory (37 MB
 * each at dense lai2d's fully connected layer on a 96x96 tile). Each element
 * as fs_conv_add_bias and the activation kernels alone give it. */
static void finish_tile(const conv_job *J, float *ct, fs_idx i, int mr, int nr)
{
    if (J->bias) fs_conv_add_bias(ct, mr, J->ohw, 0, nr, J->bias + i);
    if (J->act == FS_ACT_NONE) return;
    const fs_pw_fn fn = J->act == FS_ACT_RELU   ? J->pt->relu
                        : J->act == FS_ACT_TANH ? J->pt->tanh
                                                : J->pt->sigmoid;
    for (int r = 0; r < mr; r++) fn(ct + r * J->ohw, ct + r * J->ohw, ct + r * J->ohw, nr);
}

/* y_i[:, j0:j1] (output pixels j0..j1) of image ni. */
static void fwd_image(const conv_job *J, const fwd_space *s, fs_idx ni, fs_idx j0, fs_idx j1)
{
    const float *xi = J->x + ni * J->c * J->plane;
    float *yi = J->y + ni * J->f * J->ohw;
    const fs_idx mpad = ROUND_UP(J->f, J->mr), ohw = J->ohw;
    for (fs_idx jc = j0; jc < j1; jc += s->ncb) {                      /* jc */
        const fs_idx nc = MIN(s->ncb, j1 - jc);
        const fs_idx npanels = CEIL_DIV(nc, J->nr);
        const fs_idx nruns = fs_col_runs(&J->g, jc, nc, J->nr, s->runs, NULL);
        for (fs_idx pc = 0; pc < J->ckk; pc += s->kcb) {               /* pc */
            const fs_idx kc = MIN(s->kcb, J->ckk - pc);
            const float beta = pc == 0 ? 0.0f : 1.0f;
            const float *apk = s->ap + mpad * pc;
            if (!s->off) pack_cols(J, xi, pc, kc, s->runs, nruns, nc, s->bp);
            for (fs_idx ic = 0; ic < J->f; ic += J->kt->mc) {         /* ic */
                const fs_idx mc = MIN((fs_idx)J->kt->mc, J->f - ic);
                for (fs_idx q = 0; q < npanels; q++) {                 /* jr */
                    const int nr = (int)MIN(J->nr, nc - q * J->nr);
                    const float *bq = s->bp + q * J->nr * kc;
                    /* Gathered B: where each 16-pixel segment of the panel
                     * starts in the image. */
                    const fs_idx p = jc + q * J->nr;
                    fs_idx seg[FS_GEMM_NR_MAX / FS_GEMM_SEG];
                    if (s->off)
                        for (fs_idx g = 0; g < J->nr / FS_GEMM_SEG; g++) {
                            const fs_idx pg = p + g * FS_GEMM_SEG;
                            seg[g] = (pg / J->g.ow) * J->g.w + pg % J->g.ow;
                        }
                    for (fs_idx i = ic; i < ic + mc; i += J->mr) {      /* ir */
                        const int mr = (int)MIN(J->mr, J->f - i);
                        float *ct = yi + i * ohw + p;
                        if (s->off)
                            J->kt->gather_b(kc, apk + i * kc, xi, seg, s->off + pc, beta, ct,
                                            ohw, mr);
                        else
                            J->kt->ukernel(kc, 1.0f, apk + i * kc, bq, beta, ct, ohw, mr, nr);
                        if (pc + kc == J->ckk) finish_tile(J, ct, i, mr, nr);
                    }
                }
            }
        }
    }
}

/* One thread's forward (conv_batch.h): the weight packed once, then the
 * images it is given, over its pixels. */
static int fwd_thread(const void *job, fs_conv_fwd_part *part)
{
    const conv_job *J = job;
    fwd_space s;
    fs_arena a = FS_ARENA_MEASURE;
    fwd_layout(J, part->j1 - part->j0, &s, &a);
    if (!fs_arena_bind(&a)) return FS_ENOMEM;
    fwd_layout(J, part->j1 - part->j0, &s, &a);
    s.off = tap_offsets(J, s.off);
    if (s.own_ap) pack_weight(J, s.kcb, s.own_ap);
    fs_idx ni;
    while (fs_conv_next_image(part, &ni)) fwd_image(J, &s, ni, part->j0, part->j1);
    fs_ws_put(a.base);
    return FS_OK;
}

int fs_conv_fused_forward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                          const float *wt, fs_idx f, fs_idx k, const float *bias,
                          fs_idx stride, fs_idx pad, float *y)
{
    conv_job J;
    job_init(&J, x, n, c, h, w, wt, f, k, stride, pad);
    J.bias = bias;
    J.y = y;
    if (fs_conv_fused_fits(c, f, k)) {
        J.kcb_fwd = fwd_kc_block(&J, 0);
        return fs_conv_forward_threads(J.n, J.ohw, J.nr, conv_fmas(&J), fwd_thread, &J);
    }
    /* A huge weight: packed once, in the calling thread's GEMM slot (this
     * path calls no fs_sgemm, that slot's other user), read by the team. */
    float *ap = fs_ws_take(FS_WS_GEMM, (size_t)ROUND_UP(f, J.mr) * (size_t)J.ckk);
    if (!ap) return FS_ENOMEM;
    J.ap_team = ap;
    J.kcb_fwd = fwd_kc_block(&J, 1);
    int by_image;
    pack_weight_team(&J, ap, fs_plan_images(conv_fmas(&J), J.n, &by_image));
    const int st = fs_conv_forward_threads(J.n, J.ohw, J.nr, conv_fmas(&J), fwd_thread, &J);
    fs_ws_give(FS_WS_GEMM, ap);
    return st;
}

/* ==== a weight packed once, for many forwards (kernels.h) ================ */

/* Whether a weight packed as (mr, kc_block) can be read by job J's kernels. */
static int packed_for(const conv_job *J, fs_idx mr, fs_idx kc_block)
{
    return mr == J->mr && kc_block >= 1 && kc_block <= J->ckk;
}

int fs_conv2d_packed_layout(fs_idx f, fs_idx c, fs_idx k, fs_idx *floats, fs_idx *mr,
                            fs_idx *kc_block, int *team)
{
    if (f <= 0 || c <= 0 || k <= 0) return FS_EVALUE;
    conv_job J;
    job_init(&J, NULL, 0, c, k, k, NULL, f, k, 1, 0);
    *floats = ROUND_UP(f, J.mr) * J.ckk;
    *mr = J.mr;
    *kc_block = fwd_kc_block(&J, 1);
    *team = !fs_conv_fused_fits(c, f, k);
    return FS_OK;
}

int fs_conv2d_pack_weight(const float *wt, fs_idx f, fs_idx c, fs_idx k, fs_idx mr,
                          fs_idx kc_block, float *packed)
{
    if (f <= 0 || c <= 0 || k <= 0) return FS_EVALUE;
    conv_job J;
    job_init(&J, NULL, 0, c, k, k, wt, f, k, 1, 0);
    if (!packed_for(&J, mr, kc_block)) return FS_EVALUE;
    J.kcb_fwd = kc_block;
    /* memory-bound copying: every thread once there is enough of it */
    pack_weight_team(&J, packed, fs_threads_for((double)(f * J.ckk), FS_PAR_MIN_ELEMENTS));
    return FS_OK;
}

int fs_conv2d_forward_packed(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                             const float *packed, fs_idx mr, fs_idx kc_block, fs_idx f,
                             fs_idx k, const float *bias, int act, fs_idx stride, fs_idx pad,
                             float *y)
{
    if (f <= 0 || c <= 0 || k <= 0 || stride <= 0 || pad < 0) return FS_EVALUE;
    if (act < FS_ACT_NONE || act > FS_ACT_SIGMOID) return FS_EVALUE;
    conv_job J;
    job_init(&J, x, n, c, h, w, NULL, f, k, stride, pad);
    if (n <= 0 || J.ohw <= 0) return FS_OK;
    if (!packed_for(&J, mr, kc_block)) return FS_EVALUE;
    J.bias = bias;
    J.act = act;
    J.pt = fs_pointwise_kernels();
    J.y = y;
    J.ap_team = packed;
    J.kcb_fwd = kc_block;
    return fs_conv_forward_threads(J.n, J.ohw, J.nr, conv_fmas(&J), fwd_thread, &J);
}

/* ==== backward =========================================================== */

/* Pack the pixels that `runs` cut (kc of them) x rows [r0, r0+nc) of image
 * xi's transposed column matrix as NR-wide B panels: NR rows are gathered
 * into tmp (NR x kc), then packed as a transposed B (gemm_pack.c's SSE
 * transposes). */
static void pack_cols_t(const conv_job *J, const float *xi, const fs_colrun *runs,
                        fs_idx nruns, fs_idx kc, fs_idx r0, fs_idx nc, float *bp, float *tmp)
{
    fs_tap t = fs_tap_of(&J->g, r0);
    for (fs_idx q = 0; q * J->nr < nc; q++) {
        const fs_idx rows = MIN(J->nr, nc - q * J->nr);
        for (fs_idx j = 0; j < rows; j++, fs_tap_next(&J->g, &t)) {
            const float *xp = xi + t.ci * J->plane;
            for (fs_idx ri = 0; ri < nruns; ri++)
                fs_col_run_gather(&J->g, &t, xp, &runs[ri], tmp + j * kc + runs[ri].at);
        }
        J->kt->pack_b(1, kc, rows, tmp, kc, bp + q * J->nr * kc, 0, 1);
    }
}

/* What the scatter form needs to know of the MR taps of one tile (tile_rows):
 * the kernel rows they span, the output columns every one of them sees
 * inside the image, and whether two share an input channel (or a channel
 * and a kernel row), where their dx rows could overlap. */
typedef struct {
    fs_idx ki_min, ki_max, lo, hi;
    int share_ci, share_ci_ki;
} tap_group;

/* ... and of one NR panel of output pixels: their box, whether they lie in
 * one output row, and where the first one is (oy*w + ox). */
typedef struct {
    fs_idx oy_min, oy_max, ox_min, ox_end, base;
    int one_row;
} panel_box;

typedef struct {
    /* dX: W^T rows [r0, r1) packed (K = f, blocks of kcf), dY blocks, tile,
     * the pixel runs of a block and where each NR panel's runs start */
    fs_idx r0, r1, kcf, ncp, maxruns_x;
    float *apt, *bpy, *tile;
    fs_tap *taps_x;     /* the rows of W^T in the order they are packed */
    fs_idx *tapoff_x;   /* each tap's offset in dx_i from its pixel's oy*w + ox */
    tap_group *group_x; /* per MR taps */
    fs_colrun *runs_x;
    fs_idx *first_x;
    fs_idx *seg_x;      /* per NR panel: its segments' offsets in dx, or -1 */
    panel_box *box_x;   /* per NR panel */
    /* dW: columns [d0, d1), pixel blocks of kcp; dY_i block, cols^T panels */
    fs_idx d0, d1, kcp, ncd, maxruns_w;
    float *apy, *bpc, *tmp;
    fs_colrun *runs_w;
    float *dw; /* where this part's dW goes (ld ckk) */
} bwd_space;

/* The backward's slices of a thread's workspace (arena.h: measured, then
 * laid out again on the block). */
static void bwd_layout(const conv_job *J, int want_dx, int want_dw, bwd_space *s, fs_arena *a)
{
    const fs_idx rows = s->r1 - s->r0;
    s->kcf = fs_even_block(J->f, J->kt->kc, 1);
    /* dX sweeps every B panel of a block per MR rows of W^T: blocks small
     * enough (~16 KiB) to stay in L1 through the sweep. */
    s->ncp = fs_even_block(J->ohw, MAX(J->nr, FS_DX_BLOCK_FLOATS / s->kcf), J->nr);
    s->kcp = fs_even_block(J->ohw, J->kt->kc, 1);
    s->ncd = fs_even_block(s->d1 - s->d0, J->kt->nc, J->nr);
    s->maxruns_x = fs_col_runs_max(&J->g, s->ncp, J->nr);
    s->maxruns_w = fs_col_runs_max(&J->g, s->kcp, 0);
    if (want_dx) {
        s->apt = fs_arena_take(a, ROUND_UP(rows, J->mr) * J->f, sizeof(float));
        s->bpy = fs_arena_take(a, s->kcf * s->ncp, sizeof(float));
        s->tile = fs_arena_take(a, J->mr * J->nr, sizeof(float));
        s->taps_x = fs_arena_take(a, rows, sizeof(fs_tap));
        s->tapoff_x = fs_arena_take(a, rows, sizeof(fs_idx));
        s->group_x = fs_arena_take(a, CEIL_DIV(rows, J->mr), sizeof(tap_group));
        s->runs_x = fs_arena_take(a, s->maxruns_x, sizeof(fs_colrun));
        s->first_x = fs_arena_take(a, s->ncp / J->nr + 1, sizeof(fs_idx));
        s->seg_x = fs_arena_take(a, s->ncp / FS_GEMM_SEG, sizeof(fs_idx));
        s->box_x = fs_arena_take(a, s->ncp / J->nr, sizeof(panel_box));
    }
    if (want_dw) {
        s->apy = fs_arena_take(a, ROUND_UP(J->f, J->mr) * s->kcp, sizeof(float));
        s->bpc = fs_arena_take(a, s->kcp * s->ncd, sizeof(float));
        s->tmp = fs_arena_take(a, J->nr * s->kcp, sizeof(float));
        s->runs_w = fs_arena_take(a, s->maxruns_w, sizeof(fs_colrun));
    }
}

/* The taps of input channels [r0/kk, r1/kk) in the order dX packs them:
 * kernel column outermost, then kernel row, input channel fastest. MR
 * consecutive taps then lie in MR different planes of dx (while the
 * channels are at least MR), so a tile's rows never overlap, even when each
 * row is segments of several output rows, and the micro-kernel can add a
 * whole tile in place (tile_rows); in fs_im2col's order neighbouring taps
 * (kj, kj+1) hit overlapping spans of one row, and each row's add had to
 * wait for the previous one's store. Also each tap's dx offset and each
 * group of MR taps' tap_group. */
static void order_taps(const conv_job *J, const bwd_space *s)
{
    const fs_idx k = J->g.k, c0 = s->r0 / (k * k), c1 = s->r1 / (k * k);
    const fs_idx rows = s->r1 - s->r0;
    fs_idx i = 0;
    for (fs_idx kj = 0; kj < k; kj++)
        for (fs_idx ki = 0; ki < k; ki++)
            for (fs_idx ci = c0; ci < c1; ci++, i++) {
                fs_tap *t = &s->taps_x[i];
                t->ci = ci;
                t->ki = ki;
                fs_tap_set_kj(&J->g, t, kj);
                s->tapoff_x[i] = ci * J->plane + (ki - J->g.pad) * J->g.w + t->off;
            }
    for (fs_idx g = 0; g * J->mr < rows; g++) {
        const fs_idx a = g * J->mr, b = MIN(a + J->mr, rows);
        const fs_tap *t = s->taps_x;
        tap_group *tg = &s->group_x[g];
        tg->ki_min = tg->ki_max = t[a].ki;
        tg->lo = t[a].lo;
        tg->hi = t[a].hi;
        tg->share_ci = tg->share_ci_ki = 0;
        for (fs_idx x = a; x < b; x++) {
            tg->ki_min = MIN(tg->ki_min, t[x].ki);
            tg->ki_max = MAX(tg->ki_max, t[x].ki);
            tg->lo = MAX(tg->lo, t[x].lo);
            tg->hi = MIN(tg->hi, t[x].hi);
            for (fs_idx y = a; y < x; y++)
                if (t[x].ci == t[y].ci) {
                    tg->share_ci = 1;
                    if (t[x].ki == t[y].ki) tg->share_ci_ki = 1;
                }
        }
    }
}

/* Those rows of W^T (tap order as order_taps) as MR-row panels, K = f in
 * blocks of kcf: ap[panel*MR*kc + p*MR + i] = W[pc + p][tap i]. One filter
 * (a contiguous row of W) at a time, so the reads stay in L1. */
static void pack_weight_t(const conv_job *J, const bwd_space *s)
{
    const fs_idx rows = s->r1 - s->r0, mpad = ROUND_UP(rows, J->mr), k = J->g.k;
    for (fs_idx pc = 0; pc < J->f; pc += s->kcf) {
        const fs_idx kc = MIN(s->kcf, J->f - pc);
        float *ap = s->apt + mpad * pc;
        for (fs_idx p = 0; p < kc; p++) {
            const float *wrow = J->wt + (pc + p) * J->ckk;
            for (fs_idx q = 0; q < mpad / J->mr; q++) {
                float *dst = ap + q * J->mr * kc + p * J->mr;
                for (int i = 0; i < J->mr; i++) {
                    const fs_idx r = q * J->mr + i;
                    const fs_tap *t = &s->taps_x[r < rows ? r : 0];
                    dst[i] = r < rows ? wrow[(t->ci * k + t->ki) * k + t->kj] : 0.0f;
                }
            }
        }
    }
}

/* Where the scatter form can add panel q of a block: its runs (stride 1)
 * must be whole 16-pixel segments filling the panel; seg[0..NR/16) get
 * each segment's offset in a dx plane from the first one's, and box the
 * panel's extent. Otherwise seg[0] = -1. */
static void panel_segments(const conv_job *J, const fs_colrun *runs, fs_idx r0, fs_idx r1,
                           fs_idx *seg, panel_box *box)
{
    const fs_idx nseg = J->nr / FS_GEMM_SEG;
    const fs_colrun *first = &runs[r0];
    fs_idx g = 0;
    seg[0] = -1;
    if (J->g.stride != 1) return;
    box->oy_min = box->oy_max = first->oy;
    box->ox_min = first->ox;
    box->ox_end = first->ox + first->len;
    box->base = first->oy * J->g.w + first->ox;
    for (fs_idx ri = r0; ri < r1; ri++) {
        const fs_colrun *run = &runs[ri];
        if (run->len % FS_GEMM_SEG != 0 || run->at % FS_GEMM_SEG != 0) {
            seg[0] = -1;
            return;
        }
        for (fs_idx o = 0; o < run->len && g < nseg; o += FS_GEMM_SEG)
            seg[g++] = (run->oy - first->oy) * J->g.w + (run->ox + o - first->ox);
        box->oy_min = MIN(box->oy_min, run->oy);
        box->oy_max = MAX(box->oy_max, run->oy);
        box->ox_min = MIN(box->ox_min, run->ox);
        box->ox_end = MAX(box->ox_end, run->ox + run->len);
    }
    box->one_row = box->oy_min == box->oy_max;
    if (g != nseg) seg[0] = -1;
}

/* When every tap of a tile sees the whole panel inside the image (lai2d:
 * always) and no two rows' segments can overlap in dx, each tile row is
 * NR/16 runs of 16 floats of dx: row i's first one goes to rowp[i] (the
 * others follow at the panel's segment offsets) and the micro-kernel adds
 * the tile there itself. Two taps' rows can overlap only when they share
 * an input channel and, within one output row, a kernel row too. */
static int tile_rows(const conv_job *J, const tap_group *tg, const fs_idx *tapoff, int mr,
                     const panel_box *box, float *dxi, float **rowp)
{
    if (box->oy_min + tg->ki_min - J->g.pad < 0 || box->oy_max + tg->ki_max - J->g.pad >= J->g.h ||
        box->ox_min < tg->lo || box->ox_end > tg->hi)
        return 0;
    if (box->one_row ? tg->share_ci_ki : tg->share_ci) return 0;
    for (int rr = 0; rr < mr; rr++) rowp[rr] = dxi + tapoff[rr] + box->base;
    return 1;
}

/* dx_i channels [r0/kk, r1/kk) of image ni: zeroed, then every tile of
 * W^T[r0:r1] . dY_i added in where its taps land. */
static void dx_image(const conv_job *J, const bwd_space *s, fs_idx ni)
{
    const fs_idx kk = J->g.k * J->g.k, ohw = J->ohw, nseg = J->nr / FS_GEMM_SEG;
    const fs_idx rows = s->r1 - s->r0, mpad = ROUND_UP(rows, J->mr);
    const float *dyi = J->dy + ni * J->f * ohw;
    float *dxi = J->dx + ni * J->c * J->plane;
    memset(dxi + (s->r0 / kk) * J->plane, 0, (size_t)(rows / kk * J->plane) * sizeof(float));
    for (fs_idx jc = 0; jc < ohw; jc += s->ncp) {                      /* jc */
        const fs_idx nc = MIN(s->ncp, ohw - jc);
        const fs_idx npanels = CEIL_DIV(nc, J->nr);
        fs_col_runs(&J->g, jc, nc, J->nr, s->runs_x, s->first_x);
        for (fs_idx q = 0; q < npanels; q++)
            panel_segments(J, s->runs_x, s->first_x[q], s->first_x[q + 1], s->seg_x + q * nseg,
                           s->box_x + q);
        for (fs_idx pc = 0; pc < J->f; pc += s->kcf) {                 /* pc */
            /* Each K block's tile is added separately: col2im is linear. */
            const fs_idx kc = MIN(s->kcf, J->f - pc);
            J->kt->pack_b(0, kc, nc, dyi + pc * ohw + jc, ohw, s->bpy, 0, npanels);
            const float *apk = s->apt + mpad * pc;
            for (fs_idx i = 0; i < rows; i += J->mr) {                  /* ir */
                const int mr = (int)MIN(J->mr, rows - i);
                const fs_tap *taps = s->taps_x + i;
                const tap_group *tg = &s->group_x[i / J->mr];
                for (fs_idx q = 0; q < npanels; q++) {                 /* jr */
                    const float *bq = s->bpy + q * J->nr * kc;
                    const fs_idx *seg = s->seg_x + q * nseg;
                    float *rowp[FS_GEMM_MR_MAX];
                    if (seg[0] == 0 &&
                        tile_rows(J, tg, s->tapoff_x + i, mr, s->box_x + q, dxi, rowp)) {
                        J->kt->rows(kc, apk + i * kc, bq, rowp, seg, mr);
                        continue;
                    }
                    J->kt->ukernel(kc, 1.0f, apk + i * kc, bq, 0.0f, s->tile, J->nr, (int)J->mr,
                                   (int)J->nr);
                    for (int rr = 0; rr < mr; rr++) {
                        float *dxp = dxi + taps[rr].ci * J->plane;
                        const float *trow = s->tile + rr * J->nr;
                        for (fs_idx ri = s->first_x[q]; ri < s->first_x[q + 1]; ri++)
                            fs_col_run_add(&J->g, &taps[rr], dxp, &s->runs_x[ri],
                                           trow + (s->runs_x[ri].at - q * J->nr));
                    }
                }
            }
        }
    }
}

/* dW[:, d0:d1] = (first ? 0 : dW) + dY_i . cols_i^T[:, d0:d1], into s->dw. */
static void dw_image(const conv_job *J, const bwd_space *s, fs_idx ni, int first)
{
    const fs_idx ohw = J->ohw, ckk = J->ckk, mpad = ROUND_UP(J->f, J->mr);
    const float *xi = J->x + ni * J->c * J->plane;
    const float *dyi = J->dy + ni * J->f * ohw;
    for (fs_idx jc = s->d0; jc < s->d1; jc += s->ncd) {                /* jc */
        const fs_idx nc = MIN(s->ncd, s->d1 - jc);
        const fs_idx npanels = CEIL_DIV(nc, J->nr);
        for (fs_idx pc = 0; pc < ohw; pc += s->kcp) {                  /* pc */
            const fs_idx kc = MIN(s->kcp, ohw - pc);
            const float beta = first && pc == 0 ? 0.0f : 1.0f;
            const fs_idx nruns = fs_col_runs(&J->g, pc, kc, 0, s->runs_w, NULL);
            pack_cols_t(J, xi, s->runs_w, nruns, kc, jc, nc, s->bpc, s->tmp);
            J->kt->pack_a(0, J->f, kc, dyi + pc, ohw, s->apy, 0, mpad / J->mr);
            for (fs_idx q = 0; q < npanels; q++) {                     /* jr */
                const int nr = (int)MIN(J->nr, nc - q * J->nr);
                const float *bq = s->bpc + q * J->nr * kc;
                for (fs_idx i = 0; i < J->f; i += J->mr) {              /* ir */
                    const int mr = (int)MIN(J->mr, J->f - i);
                    J->kt->ukernel(kc, 1.0f, s->apy + i * kc, bq, beta,
                                   s->dw + i * ckk + jc + q * J->nr, ckk, mr, nr);
                }
            }
        }
    }
}

/* One thread's dX and dW (conv_batch.h): its rows of W^T packed once, then
 * its images. */
static int bwd_thread(const void *job, fs_conv_bwd_part *part)
{
    const conv_job *J = job;
    bwd_space s = {.r0 = part->r0, .r1 = part->r1, .d0 = part->d0, .d1 = part->d1};
    fs_arena a = FS_ARENA_MEASURE;
    bwd_layout(J, part->want_dx, part->want_dw, &s, &a);
    if (!fs_arena_bind(&a)) return FS_ENOMEM;
    bwd_layout(J, part->want_dx, part->want_dw, &s, &a);
    s.dw = part->dw;
    if (part->want_dx) {
        order_taps(J, &s);
        pack_weight_t(J, &s);
    }
    for (fs_idx ni = part->i0; ni < part->i1; ni++) {
        if (part->want_dw) dw_image(J, &s, ni, ni == part->i0);
        if (part->want_dx) dx_image(J, &s, ni);
    }
    fs_ws_put(a.base);
    return FS_OK;
}

int fs_conv_fused_backward(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
                           const float *wt, fs_idx f, fs_idx k, fs_idx stride, fs_idx pad,
                           const float *dy, float *dx, float *dw, float *db)
{
    conv_job J;
    job_init(&J, x, n, c, h, w, wt, f, k, stride, pad);
    J.dy = dy;
    J.dx = dx;
    const fs_conv_bwd_job B = {n, f, c, k * k, J.ohw, J.nr, conv_fmas(&J), dy, dx, dw, db};
    return fs_conv_backward_threads(&B, bwd_thread, &J);
}
