/*
 * fftconv.c -- dense inference's large convolutions by overlap-save FFT
 * (kernels.h: fs_fftconv2d), fused with what follows them: bias, the
 * activation and a 1x1 convolution, so the F-channel map of a layer like
 * lai2d's 1000-unit fully connected one never exists at image size.
 *
 * The output is cut into blocks of s1 x s2 = (th - kh + 1) x (tw - kw + 1)
 * pixels; block b reads the th x tw window of x at its corner and its
 * outputs are the first s1 x s2 values of the window's circular correlation
 * with the kernel. Blocks are taken `chunk` at a time (fftconv_blocking.h);
 * the team of threads works on one chunk at a time, in three shares:
 *
 * 1. forward transforms of the chunk's windows, all C channels: vertical real
 *    FFTs (fft_impl.h), two channels per complex transform, rows then columns,
 *    written bin by bin as the micro-kernel's B panels (bin (u, v), panel q of
 *    NR blocks: C rows of NR real parts, then C rows of imaginary parts), one
 *    copy for the team: it is the operand every filter reads, kept in L3.
 *    Threads take (panel, channel pair) tasks as they come free.
 * 2. the filters, in FS_FFTCONV_SLICES fixed slices that threads take as they
 *    come free; a slice's filters go `group` at a time, and a group per
 *    frequency column v: for each of the th bins of the column, the complex
 *    product Y = W X, (group x C)(C x chunk), on the complex micro-kernel
 *    (cgemm_impl.h: Gauss's three real products, or four). The weight spectra
 *    arrive already packed as its A panels (the layout fs_fftconv2d takes,
 *    kernels.h), so nothing is packed per call, and each streamed panel serves
 *    the chunk's blocks. The bias is added to bin (0, 0), which the inverse
 *    spreads to every pixel. The column's inverse transforms along u follow at
 *    once, keeping the s1 rows the blocks need (the column is still in L2).
 *    Then per output row: inverse transforms along v (filters 2i and 2i+1 as
 *    one complex transform), the activation, and either the 1x1 convolution's
 *    share summed into the slice's own sums (filters in increasing order) or
 *    the maps written out. A team that whole slices would leave largely idle (6, 7,
 *    12 or more threads: by_slices) takes the slices one after another instead, all
 *    its members on each group's columns, then on its rows (team_slices): the same
 *    sums.
 * 3. the slices' sums added in slice order, plus the 1x1 convolution's bias,
 *    written to the output.
 *
 * Every output pixel is computed in a fixed order whatever thread computes
 * which part, so results are bitwise the same run to run and for any thread
 * count, chunk and group; they change with the FFT shape, mults and the ISA.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fftconv_internal.h"
#include "gemm_internal.h"
#include "parallel.h"
#include "pointwise.h"
#include "thread_workspace.h"


static const fs_fft_table *fft_table_for(const char *name)
{
#ifdef FS_HAVE_AVX512_KERNEL
    if (strcmp(name, "avx512") == 0) return &fs_fft_table_avx512;
#endif
#ifdef FS_HAVE_AVX2_KERNEL
    if (strcmp(name, "avx2") == 0) return &fs_fft_table_avx2;
#endif
    (void)name;
    return &fs_fft_table_generic;
}

int fs_fftconv_panel_rows(void) { return fft_table_for(fs_gemm_kernels()->name)->mr; }

/* Everything one call shares: shapes, blocking, tables, workspace layout. */
typedef struct {
    const float *x, *spectra, *bias, *pw, *pb;
    float *y;
    const fs_gemm_kernel_table *gk;
    const fs_fft_table *ft;
    const fs_pointwise_table *pt;
    fs_fft_plan plan_u, plan_v; /* th (axis 0), tw (axis 1) */
    fs_idx c, h, w, f, p, mr, nr;
    fs_idx th, tw, nv, s1, s2, oh, ow, nb2, nblocks, nbins;
    fs_idx fp, stored, group, chunk, nq, nchunks, lane_block; /* stored: spectra panels */
    fs_idx unit; /* filters per group step: whole panels of whole filter pairs */
    fs_idx slice_at[FS_FFTCONV_SLICES + 1]; /* filter ranges of the slices */
    int act, mults;
    /* the team's shared workspace (the chunk's input spectra, the slices' sums) and
     * each thread's own, in floats from their starts */
    size_t at_x, at_acc, shared;
    size_t at_ycol, at_z, at_row, at_work, at_pack, at_zb, at_zs, at_r, total;
} job;

/* The calling thread's CPU time: stage profiles read the same on a machine
 * shared with other jobs (a preempted thread's wait counts nowhere). */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Stage timer: adds the CPU time since the last tick to stage s (when timing). */
typedef struct {
    double *sec;
    double last;
} ticker;

static inline void tick(ticker *t, int s)
{
    if (!t->sec) return;
    const double x = now();
    t->sec[s] += x - t->last;
    t->last = x;
}

/* ---- 1. forward transforms of one chunk's windows ----------------------------- */
/* One task: channels c0, c0 + 1 of panel q (NR blocks) of the chunk at b0, into the
 * shared input spectra X. */
static void forward_part(const job *J, float *X, float *ws, fs_idx b0, fs_idx q, fs_idx c0)
{
    const fs_idx C = J->c, NR = J->nr, nq = J->nq, th = J->th, tw = J->tw, nv = J->nv;
    float *zb = ws + J->at_zb, *zs = ws + J->at_zs, *R = ws + J->at_r;
    float *work = ws + J->at_work;
    const ptrdiff_t bin_stride = (ptrdiff_t)(nq * 2 * C * NR);
    const int pair = c0 + 1 < C;
    for (fs_idx u = 0; u < th; u++) {
        /* rows u of the NR windows: channel c0 real, c0 + 1 imaginary */
        for (fs_idx j = 0; j < NR; j++) {
            const fs_idx b = b0 + q * NR + j;
            const fs_idx r = b < J->nblocks ? (b / J->nb2) * J->s1 + u : J->h;
            const fs_idx col = (b % J->nb2) * J->s2;
            fs_idx have = 0;
            if (r < J->h) {
                have = J->w - col < tw ? J->w - col : tw;
                const float *xa = J->x + (c0 * J->h + r) * J->w + col;
                for (fs_idx v = 0; v < have; v++) zb[v * 2 * NR + j] = xa[v];
                if (pair) {
                    const float *xb = xa + J->h * J->w;
                    for (fs_idx v = 0; v < have; v++) zb[v * 2 * NR + NR + j] = xb[v];
                } else {
                    for (fs_idx v = 0; v < have; v++) zb[v * 2 * NR + NR + j] = 0.0f;
                }
            }
            for (fs_idx v = have; v < tw; v++) {
                zb[v * 2 * NR + j] = 0.0f;
                zb[v * 2 * NR + NR + j] = 0.0f;
            }
        }
        J->ft->c2c(&J->plan_v, 0, zb, 2 * NR, NR, zs, 2 * NR, NR, NR, NR, (int)tw, work);
        /* bin (u, k) of both channels at R + (k*th + u)*4NR */
        J->ft->r2c_pair((int)tw, zs, 2 * NR, NR, R + u * 4 * NR, th * 4 * NR, 2 * NR);
    }
    for (fs_idx k = 0; k < nv; k++) {
        float *dst = X + (k * th * nq + q) * 2 * C * NR + c0 * NR;
        J->ft->c2c(&J->plan_u, 0, R + k * th * 4 * NR, 4 * NR, 2 * NR, dst, bin_stride,
                   (ptrdiff_t)(C * NR), 2 * NR, pair ? 2 * NR : NR, (int)th, work);
    }
}

/* ---- 2. the products of one frequency column, then its inverse along u ---------- */
static void column(const job *J, const float *X, float *ws, float *z, fs_idx f0, fs_idx gf,
                   fs_idx v, ticker *tk)
{
    const fs_idx C = J->c, MR = J->mr, NR = J->nr, nq = J->nq, th = J->th, bc = J->chunk;
    const fs_idx lanes = gf * bc, panels = gf / MR, panel0 = f0 / MR;
    float *ycol = ws + J->at_ycol;
    const fs_idx cm = C * MR, cn = C * NR;
    const fs_idx wstep = J->nbins * 2 * cm; /* next panel, same bin */
    /* panels with spectra; past them, a pair's padding */
    const fs_idx live = J->stored - panel0 < panels ? J->stored - panel0 : panels;
    for (fs_idx u = 0; u < th; u++) {
        const fs_idx bin = v * th + u;
        const float *w0 = J->spectra + (panel0 * J->nbins + bin) * 2 * cm;
        for (fs_idx q = 0; q < nq; q++) {
            const float *xq = X + (bin * nq + q) * 2 * cn;
            for (fs_idx r = 0; r < panels; r++) {
                float *yr = ycol + u * 2 * lanes + r * MR * bc + q * NR, *yi = yr + lanes;
                if (r >= live) {
                    for (fs_idx i = 0; i < MR; i++) {
                        memset(yr + i * bc, 0, (size_t)NR * sizeof(float));
                        memset(yi + i * bc, 0, (size_t)NR * sizeof(float));
                    }
                    continue;
                }
                /* the panel the next call reads (the next bin's first after the last) */
                const float *w = w0 + r * wstep, *next = w;
                if (r + 1 < live) next = w + wstep;
                else if (q + 1 < nq) next = w0;
                else if (bin + 1 < J->nbins) next = w0 + 2 * cm;
                J->ft->cgemm(C, w, xq, yr, yi, bc, J->mults, next);
            }
        }
    }
    if (v == 0 && J->bias) { /* bin (0, 0): the bias reaches every pixel */
        const fs_idx real = J->f - f0 < gf ? J->f - f0 : gf;
        for (fs_idx i = 0; i < real; i++) {
            const float b = J->bias[f0 + i];
            float *row = ycol + i * bc;
            for (fs_idx j = 0; j < bc; j++) row[j] += b;
        }
    }
    tick(tk, FS_FFT_STAGE_PRODUCTS);
    float *work = ws + J->at_work;
    for (fs_idx l0 = 0; l0 < lanes; l0 += J->lane_block) {
        const fs_idx n = lanes - l0 < J->lane_block ? lanes - l0 : J->lane_block;
        J->ft->c2c(&J->plan_u, 1, ycol + l0, 2 * lanes, lanes, z + v * 2 * lanes + l0,
                   J->nv * 2 * lanes, lanes, n, n, (int)J->s1, work);
    }
    tick(tk, FS_FFT_STAGE_INVERSE);
}

/* ---- 3. one output row of a group: inverse along v, activation, 1x1 or maps ---- */
static void row_out(const job *J, float *ws, const float *z, float *acc, fs_idx b0,
                    fs_idx f0, fs_idx gf, fs_idx u, ticker *tk)
{
    /* Filters 2i and 2i+1 share one complex transform (the same pairs whatever
     * the group, which is even); the row holds even filters' maps in its first
     * half, odd ones' in the second: filter i at ((i & 1) * gf/2 + i/2) * chunk. */
    const fs_idx bc = J->chunk, lanes = gf * bc, half = lanes / 2, s2 = J->s2;
    const fs_idx pairs = gf / 2, per_block = J->lane_block / bc > 0 ? J->lane_block / bc : 1;
    const float *zrow = z + u * J->nv * 2 * lanes;
    float *row = ws + J->at_row, *pack = ws + J->at_pack, *work = ws + J->at_work;
    for (fs_idx i0 = 0; i0 < pairs; i0 += per_block) {
        const fs_idx np = pairs - i0 < per_block ? pairs - i0 : per_block, n = np * bc;
        J->ft->c2r_pack((int)J->tw, zrow + 2 * i0 * bc, 2 * lanes, lanes, np, bc, pack);
        J->ft->c2c(&J->plan_v, 1, pack, 2 * n, n, row + i0 * bc, lanes, half, n, n, (int)s2,
                   work);
    }
    tick(tk, FS_FFT_STAGE_INVERSE);
    const fs_idx real = J->f - f0 < gf ? J->f - f0 : gf;
    if (J->p > 0) {
        /* activation and 1x1 in one pass over the row (timed as the 1x1) */
        J->ft->act_project(J->act, J->pw + f0, J->f, J->p, real, row, lanes, half, s2, bc,
                           acc + u * s2 * bc, J->s1 * s2 * bc);
        tick(tk, FS_FFT_STAGE_PROJECT);
        return;
    }
    const fs_idx count = s2 * lanes; /* one-input forms take the input twice */
    switch (J->act) {
    case FS_ACT_RELU: J->pt->relu(row, row, row, count); break;
    case FS_ACT_TANH: J->pt->tanh(row, row, row, count); break;
    case FS_ACT_SIGMOID: J->pt->sigmoid(row, row, row, count); break;
    default: break;
    }
    tick(tk, FS_FFT_STAGE_ACTIVATION);
    for (fs_idx j = 0; j < bc; j++) {
        const fs_idx b = b0 + j;
        if (b >= J->nblocks) break;
        const fs_idx r = (b / J->nb2) * J->s1 + u, col = (b % J->nb2) * s2;
        if (r >= J->oh) continue;
        const fs_idx ncol = J->ow - col < s2 ? J->ow - col : s2;
        for (fs_idx i = 0; i < real; i++) {
            float *out = J->y + ((f0 + i) * J->oh + r) * J->ow + col;
            const float *src = row + ((i & 1) * pairs + i / 2) * bc + j;
            for (fs_idx t = 0; t < ncol; t++) out[t] = src[t * lanes];
        }
    }
    tick(tk, FS_FFT_STAGE_COPY);
}

/* One slice of the filters for the chunk at b0: its groups, columns then rows; the 1x1
 * convolution's share summed into the slice's own `acc`. */
static void run_slice(const job *J, const float *X, float *ws, float *acc, fs_idx b0,
                      int slice, ticker *tk)
{
    if (J->p > 0)
        memset(acc, 0, (size_t)(J->p * J->s1 * J->s2 * J->chunk) * sizeof(float));
    const fs_idx end = J->slice_at[slice + 1];
    for (fs_idx f0 = J->slice_at[slice]; f0 < end; f0 += J->group) {
        const fs_idx gf = end - f0 < J->group ? end - f0 : J->group;
        tick(tk, FS_FFT_STAGE_COPY);
        for (fs_idx v = 0; v < J->nv; v++) column(J, X, ws, ws + J->at_z, f0, gf, v, tk);
        for (fs_idx u = 0; u < J->s1; u++) row_out(J, ws, ws + J->at_z, acc, b0, f0, gf, u, tk);
    }
}

/* The chunk's slices run by the whole team together, one group after another: the
 * group's columns shared out, then its rows, through one group's half-inverted spectra
 * (`z`, the first member's). For a team the slices as tasks leave idle (by_slices): 8
 * slices on 6 threads run as two rounds, the second with a third of the team waiting;
 * on 12, a third of it idles throughout, on 16 half. Each column and row is computed as
 * run_slice computes it and each row of `acc` takes the groups in the same order: the
 * same bits. Every member of the team calls it (its loops are the team's work-sharing
 * loops). */
static void team_slices(const job *J, const float *X, float *ws, float *z, float *accs,
                        size_t slice_floats, fs_idx b0, ticker *tk)
{
    if (J->p > 0) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int sl = 0; sl < FS_FFTCONV_SLICES; sl++)
            memset(accs + (size_t)sl * slice_floats, 0, slice_floats * sizeof(float));
    }
    for (int sl = 0; sl < FS_FFTCONV_SLICES; sl++) {
        float *acc = accs + (size_t)sl * slice_floats;
        const fs_idx end = J->slice_at[sl + 1];
        for (fs_idx f0 = J->slice_at[sl]; f0 < end; f0 += J->group) {
            const fs_idx gf = end - f0 < J->group ? end - f0 : J->group;
            tick(tk, FS_FFT_STAGE_COPY);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (fs_idx v = 0; v < J->nv; v++) column(J, X, ws, z, f0, gf, v, tk);
            tick(tk, FS_FFT_STAGE_SYNC);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (fs_idx u = 0; u < J->s1; u++) row_out(J, ws, z, acc, b0, f0, gf, u, tk);
            tick(tk, FS_FFT_STAGE_SYNC);
        }
    }
}

/* Whether a team of nt runs the slices as tasks (run_slice) rather than all of it on
 * each group's columns and rows (team_slices). Slices keep each thread's half-inverted
 * spectra its own; the team shares one group's between cores and meets at two barriers
 * a group: forced on two threads (lai2d at 584x565, Zen 4) it took 7-22 % more CPU. So
 * the team only where whole slices would leave more than 30 % of it idle: 6 or 7
 * threads (two rounds of 8 slices) and 12 or more (8 slices at once). An estimate from
 * the counts, not a measurement: no CPU here had more than two cores. */
static int by_slices(int nt)
{
    const int rounds = (FS_FFTCONV_SLICES + nt - 1) / nt;
    return nt <= 1 || 10 * FS_FFTCONV_SLICES >= 7 * nt * rounds;
}

/* Block j of the chunk at b0: the slices' sums, in slice order, plus proj_b. */
static void reduce_block(const job *J, const float *accs, fs_idx b0, fs_idx j)
{
    const fs_idx b = b0 + j, bc = J->chunk, slice = J->p * J->s1 * J->s2 * bc;
    if (b >= J->nblocks) return;
    const fs_idx r0 = (b / J->nb2) * J->s1, col = (b % J->nb2) * J->s2;
    const fs_idx nrow = J->oh - r0 < J->s1 ? J->oh - r0 : J->s1;
    const fs_idx ncol = J->ow - col < J->s2 ? J->ow - col : J->s2;
    for (fs_idx k = 0; k < J->p; k++) {
        const float add = J->pb ? J->pb[k] : 0.0f;
        for (fs_idx u = 0; u < nrow; u++) {
            float *out = J->y + (k * J->oh + r0 + u) * J->ow + col;
            const fs_idx at = ((k * J->s1 + u) * J->s2) * bc + j;
            for (fs_idx t = 0; t < ncol; t++) {
                float sum = accs[at + t * bc];
                for (int s = 1; s < FS_FFTCONV_SLICES; s++) sum += accs[s * slice + at + t * bc];
                out[t] = sum + add;
            }
        }
    }
}

/* Shapes, blocking and workspace layout; FS_EVALUE for a geometry it cannot run. */
static int setup(job *J, const fs_fftconv_geom *g, int mr)
{
    if (g->c < 1 || g->f < 1 || g->kh < 1 || g->kw < 1 || g->h < g->kh || g->w < g->kw ||
        g->th < g->kh || g->tw < g->kw || g->th > FS_FFT_MAX_LEN || g->tw > FS_FFT_MAX_LEN ||
        g->p < 0 || g->act < FS_ACT_NONE || g->act > FS_ACT_SIGMOID ||
        (g->mults != 3 && g->mults != 4) || g->group < 0 || g->chunk < 0)
        return FS_EVALUE;
    J->gk = fs_gemm_kernels();
    J->ft = fft_table_for(J->gk->name); /* the ISA the GEMM runs */
    if (mr != J->ft->mr) return FS_EVALUE; /* spectra packed with other panel rows */
    J->pt = fs_pointwise_kernels();
    if (fs_fft_plan_init(&J->plan_u, (int)g->th) != FS_OK ||
        fs_fft_plan_init(&J->plan_v, (int)g->tw) != FS_OK)
        return FS_EVALUE;
    J->c = g->c, J->h = g->h, J->w = g->w, J->f = g->f, J->p = g->p;
    J->mr = J->ft->mr, J->nr = J->ft->nr;
    J->th = g->th, J->tw = g->tw, J->nv = g->tw / 2 + 1;
    J->s1 = g->th - g->kh + 1, J->s2 = g->tw - g->kw + 1;
    J->oh = g->h - g->kh + 1, J->ow = g->w - g->kw + 1;
    J->nb2 = CEIL_DIV(J->ow, J->s2);
    J->nblocks = CEIL_DIV(J->oh, J->s1) * J->nb2;
    J->nbins = J->th * J->nv;
    J->act = g->act, J->mults = g->mults;
    /* Groups of whole panels and of whole filter pairs (row_out pairs 2i, 2i+1). */
    const fs_idx unit = J->mr % 2 ? 2 * J->mr : J->mr;
    J->fp = ROUND_UP(J->f, unit);
    J->stored = CEIL_DIV(J->f, J->mr);
    J->group = ROUND_UP(g->group > 0 ? g->group : FS_FFTCONV_GROUP, unit);
    if (J->group > J->fp) J->group = J->fp;
    /* Chunks as even as NR allows: 456 blocks at 32 run as 15 x 31 -> 32, not
     * 14 x 32 + 8 padded to 32. */
    fs_idx chunk = ROUND_UP(g->chunk > 0 ? g->chunk : FS_FFTCONV_CHUNK, J->nr);
    /* ...and at least one per thread where the blocks allow */
    const fs_idx threads = fs_get_num_threads();
    if (CEIL_DIV(J->nblocks, chunk) < threads) chunk = CEIL_DIV(J->nblocks, threads);
    J->chunk = fs_even_block(J->nblocks, chunk, J->nr);
    J->nq = J->chunk / J->nr;
    J->nchunks = CEIL_DIV(J->nblocks, J->chunk);
    J->lane_block = FS_FFT_LANES;

    /* Slices: fixed filter ranges (whole units), the same whatever the group, chunk and
     * threads, so the 1x1 convolution's sums add up in one order. */
    J->unit = unit;
    const fs_idx units = J->fp / unit;
    for (int sl = 0; sl <= FS_FFTCONV_SLICES; sl++)
        J->slice_at[sl] = (units * sl / FS_FFTCONV_SLICES) * unit;

    const fs_idx C = J->c, NR = J->nr, lanes = J->group * J->chunk;
    const fs_idx tmax = J->th > J->tw ? J->th : J->tw;
    const fs_idx lb = J->lane_block > 2 * NR ? J->lane_block : 2 * NR;
    size_t at = 0;
#define SLICE(name, floats)                                         \
    do {                                                            \
        J->name = at;                                               \
        at += fs_ws_round16((size_t)(floats));                      \
    } while (0)
    SLICE(at_x, J->nbins * 2 * C * J->chunk);
    SLICE(at_acc, FS_FFTCONV_SLICES * J->p * J->s1 * J->s2 * J->chunk);
    J->shared = at;
    at = 0;
    SLICE(at_ycol, J->th * 2 * lanes);
    SLICE(at_z, J->s1 * J->nv * 2 * lanes);
    SLICE(at_row, J->s2 * lanes);
    SLICE(at_work, fs_fft_work_floats((int)tmax, lb));
    SLICE(at_pack, J->tw * 2 * J->lane_block);
    SLICE(at_zb, J->tw * 2 * NR);
    SLICE(at_zs, J->tw * 2 * NR);
    SLICE(at_r, J->th * J->nv * 4 * NR);
#undef SLICE
    J->total = at;
    return FS_OK;
}

int64_t fs_fftconv_workspace_floats(const fs_fftconv_geom *g, int mr)
{
    if (!g) return -1;
    job *J = malloc(sizeof *J);
    if (!J) return -1;
    const int64_t total = setup(J, g, mr) == FS_OK ? (int64_t)J->total : -1;
    free(J);
    return total;
}

int64_t fs_fftconv_shared_floats(const fs_fftconv_geom *g, int mr)
{
    if (!g) return -1;
    job *J = malloc(sizeof *J);
    if (!J) return -1;
    const int64_t shared = setup(J, g, mr) == FS_OK ? (int64_t)J->shared : -1;
    free(J);
    return shared;
}

int fs_fftconv2d(const fs_fftconv_geom *g, const float *x, const float *spectra, int mr,
                 const float *bias, const float *proj_w, const float *proj_b, float *y,
                 double *seconds)
{
    if (!g || !x || !spectra || !y || (g->p > 0 && !proj_w)) return FS_EVALUE;
    job *J = malloc(sizeof *J); /* two plans: ~40 KiB, off the stack */
    if (!J) return FS_ENOMEM;
    int status = setup(J, g, mr);
    if (status != FS_OK) {
        free(J);
        return status;
    }
    J->x = x, J->spectra = spectra, J->bias = bias, J->pw = proj_w, J->pb = proj_b, J->y = y;
    /* multiply-adds of the products, the bulk of the work */
    const double work = (double)J->nchunks * (double)J->chunk * (double)J->fp *
                        (double)J->c * (double)J->nbins * (double)J->mults;
    const int nt = fs_threads_for(work, FS_PAR_MIN_FMAS);
    double *sec = NULL;
    /* The chunk's input spectra and the slices' sums, shared by the team, in the calling
     * thread's GEMM slot (this kernel calls no fs_sgemm, which is that slot's other
     * user); each team member's own buffers in its kernel slot. */
    float *shared = fs_ws_take(FS_WS_GEMM, J->shared);
    if (seconds) sec = calloc((size_t)nt * FS_FFT_STAGES, sizeof(double));
    if (!shared || (seconds && !sec)) {
        free(sec);
        free(J);
        return FS_ENOMEM;
    }
    float *X = shared + J->at_x, *accs = shared + J->at_acc;
    const fs_idx pairs = (J->c + 1) / 2, parts = J->nq * pairs, nchunks = J->nchunks;
    const size_t slice_floats = (size_t)(J->p * J->s1 * J->s2 * J->chunk);
    const int by_slice = by_slices(nt);
    float *team_z = NULL;
    FS_PARALLEL
    {
        int t, T;
        fs_team(&t, &T);
        (void)T;
        float *ws = fs_ws_get(J->total);
        if (!ws) fs_fail(&status, FS_ENOMEM);
        if (t == 0 && ws) team_z = ws + J->at_z;
#ifdef _OPENMP
#pragma omp barrier
#endif
        ticker tk = {sec ? sec + (size_t)t * FS_FFT_STAGES : NULL, 0.0};
        if (tk.sec) tk.last = now();
        /* Every member runs every chunk's three work-sharing loops (their ends are the
         * team's barriers): the forward transforms, the slices, the sums. */
        for (fs_idx i = 0; i < nchunks && status == FS_OK; i++) {
            const fs_idx b0 = i * J->chunk;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (fs_idx part = 0; part < parts; part++) {
                forward_part(J, X, ws, b0, part / pairs, 2 * (part % pairs));
                tick(&tk, FS_FFT_STAGE_FORWARD);
            }
            tick(&tk, FS_FFT_STAGE_SYNC);
            if (by_slice) {
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
                for (int sl = 0; sl < FS_FFTCONV_SLICES; sl++)
                    run_slice(J, X, ws, accs + (size_t)sl * slice_floats, b0, sl, &tk);
            } else {
                team_slices(J, X, ws, team_z, accs, slice_floats, b0, &tk);
            }
            tick(&tk, FS_FFT_STAGE_SYNC);
            if (J->p > 0) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                for (fs_idx j = 0; j < J->chunk; j++) reduce_block(J, accs, b0, j);
                tick(&tk, FS_FFT_STAGE_COPY);
            }
        }
        if (ws) fs_ws_put(ws);
    }
    fs_ws_give(FS_WS_GEMM, shared);
    if (seconds) {
        for (int s = 0; s < FS_FFT_STAGES; s++) {
            seconds[s] = 0.0;
            for (int t = 0; t < nt; t++) seconds[s] += sec[(size_t)t * FS_FFT_STAGES + s];
        }
        free(sec);
    }
    free(J);
    return status;
}
