/*
 * vol2col_row.h -- one row segment of a volume's column matrix, read or added back:
 * the 3-D counterpart of im2col_row.h, for conv3d.c.
 *
 * The column matrix of one volume has a row per kernel tap r = (ci, a, b, e)
 * (weight order: ((ci*kd + a)*kh + b)*kw + e) and a column per output voxel
 * p = (oz*oh + oy)*ow + ox; entry (r, p) is
 *   x[ci][oz*sd + a - pd][oy*sh + b - ph][ox*sw + e - pw], or 0 outside the volume.
 * Every axis has its own kernel size, stride and padding.
 *
 * Voxels are walked in runs inside one output row (oz, oy); for a fixed tap
 * the valid output columns of every row form one interval [lo, hi), so a run
 * inside it at stride 1 is one contiguous copy with no per-element test. What
 * happens within one input row -- that interval, the guarded gather and add,
 * cutting voxels into runs, the short copies -- is im2col_row.h's; this file
 * adds the depth and height and the interior fast path.
 */
#ifndef FASTSEG_VOL2COL_ROW_H
#define FASTSEG_VOL2COL_ROW_H

#include "fastseg/kernels.h"
#include "im2col_row.h"
#include "window.h"

/* The geometry of one volume's column matrix. */
typedef struct {
    fs_idx c, d, h, w;        /* input channels and extent */
    fs_idx kd, kh, kw;        /* kernel */
    fs_idx sd, sh, sw;        /* stride */
    fs_idx pd, ph, pw;        /* zero padding */
    fs_idx od, oh, ow;        /* output extent (window.h) */
    fs_idx hw, dhw, odhw, kkk;
    fs_colgeom row;           /* the width axis alone, as im2col_row.h sees a row */
} fs_volgeom;

static inline void fs_volgeom_init(fs_volgeom *g, const fs_conv3d_geom *s)
{
    g->c = s->c;
    g->d = s->d;
    g->h = s->h;
    g->w = s->w;
    g->kd = s->k[0];
    g->kh = s->k[1];
    g->kw = s->k[2];
    g->sd = s->stride[0];
    g->sh = s->stride[1];
    g->sw = s->stride[2];
    g->pd = s->pad[0];
    g->ph = s->pad[1];
    g->pw = s->pad[2];
    g->od = fs_out_extent(g->d, g->kd, g->sd, g->pd);
    g->oh = fs_out_extent(g->h, g->kh, g->sh, g->ph);
    g->ow = fs_out_extent(g->w, g->kw, g->sw, g->pw);
    g->hw = g->h * g->w;
    g->dhw = g->d * g->hw;
    g->odhw = g->od * g->oh * g->ow;
    g->kkk = g->kd * g->kh * g->kw;
    g->row = (fs_colgeom){1, g->w, g->kw, g->sw, g->pw, 1, g->ow};
}

/* One kernel tap: input channel ci, offsets (a, b, e) along depth, height,
 * width, and the interval [lo, hi) of output columns whose input column
 * ox*sw + e - pw lies inside the row. */
typedef struct {
    fs_idx ci, a, b, e, off; /* off = e - pw */
    fs_idx lo, hi;
} fs_voltap;

static inline void fs_voltap_set_e(const fs_volgeom *g, fs_voltap *t, fs_idx e)
{
    /* The interval along the width is im2col_row.h's, for a one-row image. */
    fs_tap row;
    fs_tap_set_kj(&g->row, &row, e);
    t->e = e;
    t->off = row.off;
    t->lo = row.lo;
    t->hi = row.hi;
}

static inline fs_voltap fs_voltap_of(const fs_volgeom *g, fs_idx r)
{
    fs_voltap t;
    t.ci = r / g->kkk;
    fs_idx rest = r % g->kkk;
    t.a = rest / (g->kh * g->kw);
    rest %= g->kh * g->kw;
    t.b = rest / g->kw;
    fs_voltap_set_e(g, &t, rest % g->kw);
    return t;
}

/* The tap of row r + 1, without the divisions of fs_voltap_of. */
static inline void fs_voltap_next(const fs_volgeom *g, fs_voltap *t)
{
    if (t->e + 1 < g->kw) {
        fs_voltap_set_e(g, t, t->e + 1);
        return;
    }
    if (++t->b == g->kh) {
        t->b = 0;
        if (++t->a == g->kd) {
            t->a = 0;
            t->ci++;
        }
    }
    fs_voltap_set_e(g, t, 0);
}

/* A run of output voxels inside one output row: im2col_row.h's fs_colrun, its
 * oy the output row counted over all depths (oz*oh + oy). fs_col_runs and
 * fs_col_runs_max cut voxel ranges into them, given g->row (whose ow is the
 * output row length). */
typedef fs_colrun fs_volrun;

/* Offset of the input row tap t reads for a run, counted from x[t->ci][0][0][0],
 * or -1 when that row lies in the depth or height padding. */
static inline fs_idx fs_vol_row_base(const fs_volgeom *g, const fs_voltap *t,
                                     const fs_volrun *run)
{
    const fs_idx iz = run->oy / g->oh * g->sd + t->a - g->pd;
    const fs_idx iy = run->oy % g->oh * g->sh + t->b - g->ph;
    if (iz < 0 || iz >= g->d || iy < 0 || iy >= g->h) return -1;
    return (iz * g->h + iy) * g->w;
}

/* Tap t and a run as im2col_row.h sees them within one input row: a
 * one-row image whose single output row reads row 0 (ki = pw cancels the
 * padding the row geometry carries). */
static inline void fs_vol_row_view(const fs_volgeom *g, const fs_voltap *t, const fs_volrun *run,
                                   fs_tap *rt, fs_colrun *rr)
{
    rt->ci = 0;
    rt->ki = g->pw;
    rt->kj = t->e;
    rt->off = t->off;
    rt->lo = t->lo;
    rt->hi = t->hi;
    rr->oy = 0;
    rr->ox = run->ox;
    rr->len = run->len;
    rr->at = 0;
}

/* dst[0 : run->len] = tap t's entries for one run; xc is x[t->ci]. */
static inline void fs_vol_run_gather(const fs_volgeom *g, const fs_voltap *t, const float *xc,
                                     const fs_volrun *run, float *dst)
{
    const fs_idx row = fs_vol_row_base(g, t, run);
    if (row < 0) {
        fs_zero_run(dst, run->len);
        return;
    }
    fs_tap rt;
    fs_colrun rr;
    fs_vol_row_view(g, t, run, &rt, &rr);
    fs_col_run_gather(&g->row, &rt, xc + row, &rr, dst);
}

/* The adjoint: dxc[...] += src[0 : run->len]; entries that fall in the
 * padding are dropped. dxc is dx[t->ci]. */
static inline void fs_vol_run_add(const fs_volgeom *g, const fs_voltap *t, float *dxc,
                                  const fs_volrun *run, const float *src)
{
    const fs_idx row = fs_vol_row_base(g, t, run);
    if (row < 0) return;
    fs_tap rt;
    fs_colrun rr;
    fs_vol_row_view(g, t, run, &rt, &rr);
    fs_col_run_add(&g->row, &rt, dxc + row, &rr, src);
}

/* ---- the interior fast path ------------------------------------------------
 * Without padding and at unit stride along W every run of every tap lies
 * inside the volume and is contiguous, at x[t->ci] + (tap offset) + (run
 * offset): packing becomes one copy per run from precomputed offsets. */
static inline int fs_vol_interior(const fs_volgeom *g)
{
    return g->pd == 0 && g->ph == 0 && g->pw == 0 && g->sw == 1;
}

/* Where tap t reads, from the start of one volume (all channels). */
static inline fs_idx fs_vol_tap_offset(const fs_volgeom *g, const fs_voltap *t)
{
    return t->ci * g->dhw + (t->a * g->h + t->b) * g->w + t->e;
}

/* Where a run's first voxel reads for the tap at offset 0. */
static inline fs_idx fs_vol_run_offset(const fs_volgeom *g, const fs_volrun *run)
{
    return (run->oy / g->oh * g->sd * g->h + run->oy % g->oh * g->sh) * g->w + run->ox;
}

/* The same run at `count` places: dst[i*ld_dst + 0:len] (op)= src[off[i] + 0:len]
 * for i < count. Runs are short (6 voxels in lai3d's second layer) and a
 * variable-length copy is a loop; here the length is a constant in each case
 * of one switch, hoisted out of the loop over places, so each copy is a few
 * vector moves. */
#define FS_RUN_CASES(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) \
    X(9) X(10) X(11) X(12) X(13) X(14) X(15) X(16)

static inline void fs_copy_runs(float *dst, fs_idx ld_dst, const float *src, const fs_idx *off,
                                fs_idx count, fs_idx len)
{
    /* Longer runs (lai3d's first layer: 20) as 16-float chunks and a tail. */
    for (; len > 16; dst += 16, src += 16, len -= 16)
        for (fs_idx i = 0; i < count; i++)
            memcpy(dst + i * ld_dst, src + off[i], 16 * sizeof(float));
    switch (len) {
#define FS_COPY_CASE(L)                                                                 \
    case L:                                                                              \
        for (fs_idx i = 0; i < count; i++)                                               \
            memcpy(dst + i * ld_dst, src + off[i], (L) * sizeof(float));                 \
        return;
        FS_RUN_CASES(FS_COPY_CASE)
#undef FS_COPY_CASE
    default:
        for (fs_idx i = 0; i < count; i++) fs_copy_run(dst + i * ld_dst, src + off[i], len);
    }
}

static inline void fs_add_runs(float *dst, const fs_idx *off, const float *src, fs_idx ld_src,
                               fs_idx count, fs_idx len)
{
    for (; len > 16; dst += 16, src += 16, len -= 16)
        for (fs_idx i = 0; i < count; i++) {
            float *restrict d = dst + off[i];
            const float *restrict a = src + i * ld_src;
            for (int j = 0; j < 16; j++) d[j] += a[j];
        }
    switch (len) {
#define FS_ADD_CASE(L)                                                                  \
    case L:                                                                              \
        for (fs_idx i = 0; i < count; i++) {                                             \
            float *restrict d = dst + off[i];                                            \
            const float *restrict a = src + i * ld_src;                                  \
            for (int j = 0; j < (L); j++) d[j] += a[j];                                  \
        }                                                                                \
        return;
        FS_RUN_CASES(FS_ADD_CASE)
#undef FS_ADD_CASE
    default:
        for (fs_idx i = 0; i < count; i++) fs_add_run(dst + off[i], src + i * ld_src, len);
    }
}

#endif /* FASTSEG_VOL2COL_ROW_H */
