/*
 * im2col_row.h -- one row segment of the column matrix, read or added back.
 *
 * The column matrix of one image has a row per kernel tap r = (ci, ki, kj)
 * and a column per output pixel p = oy*ow + ox; entry (r, p) is
 * x[ci][oy*stride + ki - pad][ox*stride + kj - pad], or 0 outside the image.
 * im2col.c (the whole matrix) and conv_fused.c (panels packed straight from
 * the image, tiles added straight into dx) both go through these two walks,
 * so the bounds logic exists once.
 *
 * Pixels are walked in runs that stay inside one output row (fs_col_runs);
 * for a fixed tap the valid output columns of every row form one interval
 * [lo, hi), so a run inside it is a contiguous copy (stride 1) with no
 * per-element test.
 */
#ifndef FASTSEG_IM2COL_ROW_H
#define FASTSEG_IM2COL_ROW_H

#include <string.h>

#include "fastseg/kernels.h"
#include "window.h"

/* The geometry of one image's column matrix. */
typedef struct {
    fs_idx h, w, k, stride, pad, oh, ow;
} fs_colgeom;

/* One tap of the kernel: which input plane and offsets, and the interval
 * [lo, hi) of output columns whose input column lies inside the image. */
typedef struct {
    fs_idx ci, ki, kj, off; /* off = kj - pad */
    fs_idx lo, hi;
} fs_tap;

static inline void fs_tap_set_kj(const fs_colgeom *g, fs_tap *t, fs_idx kj)
{
    t->kj = kj;
    t->off = kj - g->pad;
    /* lo: smallest ox with ox*stride + off >= 0; hi: one past the largest
     * with ox*stride + off < w; both within [0, ow]. Called once per tap per
     * packed block: stride 1 skips the divisions. */
    if (g->stride == 1) {
        t->lo = t->off >= 0 ? 0 : -t->off;
        t->hi = g->w - t->off;
    } else {
        t->lo = t->off >= 0 ? 0 : (-t->off + g->stride - 1) / g->stride;
        const fs_idx room = g->w - t->off;
        t->hi = room <= 0 ? 0 : (room + g->stride - 1) / g->stride;
    }
    if (t->lo > g->ow) t->lo = g->ow;
    if (t->hi > g->ow) t->hi = g->ow;
    if (t->hi < t->lo) t->hi = t->lo;
}

static inline fs_tap fs_tap_of(const fs_colgeom *g, fs_idx r)
{
    fs_tap t;
    t.ci = r / (g->k * g->k);
    t.ki = (r / g->k) % g->k;
    fs_tap_set_kj(g, &t, r % g->k);
    return t;
}

/* The tap of row r + 1, without the divisions of fs_tap_of. */
static inline void fs_tap_next(const fs_colgeom *g, fs_tap *t)
{
    if (t->kj + 1 < g->k) {
        fs_tap_set_kj(g, t, t->kj + 1);
        return;
    }
    if (++t->ki == g->k) {
        t->ki = 0;
        t->ci++;
    }
    fs_tap_set_kj(g, t, 0);
}

/* Row runs are short (16 floats for lai2d): a libc memcpy call costs more
 * than the copy, so short runs go through fixed-size copies the compiler
 * turns into plain vector moves. */
static inline void fs_copy_run(float *dst, const float *src, fs_idx len)
{
    if (len == 16) { /* one packed panel row */
        memcpy(dst, src, 16 * sizeof(float));
        return;
    }
    if (len >= 64) {
        memcpy(dst, src, (size_t)len * sizeof(float));
        return;
    }
    fs_idx j = 0;
    for (; j + 8 <= len; j += 8) memcpy(dst + j, src + j, 8 * sizeof(float));
    if (j + 4 <= len) {
        memcpy(dst + j, src + j, 4 * sizeof(float));
        j += 4;
    }
    for (; j < len; j++) dst[j] = src[j];
}

/* dst[0:len] += src[0:len]; a whole NR-wide tile row is the common case. */
static inline void fs_add_run(float *restrict dst, const float *restrict src, fs_idx len)
{
    if (len == 16) {
        for (int j = 0; j < 16; j++) dst[j] += src[j];
        return;
    }
    for (fs_idx j = 0; j < len; j++) dst[j] += src[j];
}

static inline void fs_zero_run(float *dst, fs_idx len)
{
    for (fs_idx j = 0; j < len; j++) dst[j] = 0.0f;
}

/* A run of output pixels inside one output row: (oy, ox .. ox+len-1). */
typedef struct {
    fs_idx oy, ox, len, at; /* at: where the run starts, counted from p0 */
} fs_colrun;

/* Cut pixels [p0, p0+count) into runs that stay inside one output row and,
 * when cut > 0, inside one group of `cut` pixels counted from p0 (a packed
 * panel). Writes at most count/cut + count/ow + 2 runs (see
 * fs_col_runs_max); when first is not NULL, first[q] is the first run of
 * group q and first[groups] the run count. Returns the run count. */
static inline fs_idx fs_col_runs(const fs_colgeom *g, fs_idx p0, fs_idx count, fs_idx cut,
                                 fs_colrun *runs, fs_idx *first)
{
    fs_idx oy = p0 / g->ow, ox = p0 % g->ow, at = 0, nr = 0;
    while (at < count) {
        fs_idx len = g->ow - ox;
        if (len > count - at) len = count - at;
        if (cut > 0) {
            const fs_idx room = cut - at % cut;
            if (at % cut == 0 && first) first[at / cut] = nr;
            if (len > room) len = room;
        }
        runs[nr].oy = oy;
        runs[nr].ox = ox;
        runs[nr].len = len;
        runs[nr].at = at;
        nr++;
        at += len;
        ox += len;
        if (ox == g->ow) {
            ox = 0;
            oy++;
        }
    }
    if (cut > 0 && first) first[(count + cut - 1) / cut] = nr;
    return nr;
}

static inline fs_idx fs_col_runs_max(const fs_colgeom *g, fs_idx count, fs_idx cut)
{
    return (cut > 0 ? count / cut : 0) + count / g->ow + 2;
}

/* dst[0 : run->len] = tap t's entries for one run; xplane is x[t->ci]. */
static inline void fs_col_run_gather(const fs_colgeom *g, const fs_tap *t,
                                     const float *xplane, const fs_colrun *run, float *dst)
{
    const fs_idx ox = run->ox, len = run->len;
    const fs_idx iy = run->oy * g->stride + t->ki - g->pad;
    if (iy < 0 || iy >= g->h) {
        fs_zero_run(dst, len);
        return;
    }
    /* Offsets, not a shifted pointer: iy*w + off may be < 0. */
    const fs_idx base = iy * g->w + t->off;
    if (g->stride == 1 && ox >= t->lo && ox + len <= t->hi) { /* all inside */
        fs_copy_run(dst, xplane + base + ox, len);
        return;
    }
    const fs_idx a = ox > t->lo ? ox : t->lo;           /* valid part [a, b) */
    const fs_idx b = ox + len < t->hi ? ox + len : t->hi;
    if (b <= a) {
        fs_zero_run(dst, len);
        return;
    }
    fs_zero_run(dst, a - ox);
    if (g->stride == 1)
        fs_copy_run(dst + (a - ox), xplane + base + a, b - a);
    else
        for (fs_idx o = a; o < b; o++) dst[o - ox] = xplane[base + o * g->stride];
    fs_zero_run(dst + (b - ox), ox + len - b);
}

/* The adjoint: dxplane[...] += src[0 : run->len] (entries that fall outside
 * the image are dropped). */
static inline void fs_col_run_add(const fs_colgeom *g, const fs_tap *t, float *dxplane,
                                  const fs_colrun *run, const float *src)
{
    const fs_idx ox = run->ox, len = run->len;
    const fs_idx iy = run->oy * g->stride + t->ki - g->pad;
    if (iy < 0 || iy >= g->h) return;
    const fs_idx base = iy * g->w + t->off;
    if (g->stride == 1 && ox >= t->lo && ox + len <= t->hi) { /* all inside */
        fs_add_run(dxplane + base + ox, src, len);
        return;
    }
    const fs_idx a = ox > t->lo ? ox : t->lo;
    const fs_idx b = ox + len < t->hi ? ox + len : t->hi;
    if (g->stride == 1)
        for (fs_idx o = a; o < b; o++) dxplane[base + o] += src[o - ox];
    else
        for (fs_idx o = a; o < b; o++) dxplane[base + o * g->stride] += src[o - ox];
}

/* Whole output rows of one image: pixels [0, ohw), row by row. */
static inline void fs_col_row_gather(const fs_colgeom *g, const fs_tap *t,
                                     const float *xplane, float *dst)
{
    fs_colrun run = {0, 0, g->ow, 0};
    for (run.oy = 0; run.oy < g->oh; run.oy++, dst += g->ow)
        fs_col_run_gather(g, t, xplane, &run, dst);
}

static inline void fs_col_row_add(const fs_colgeom *g, const fs_tap *t, float *dxplane,
                                  const float *src)
{
    fs_colrun run = {0, 0, g->ow, 0};
    for (run.oy = 0; run.oy < g->oh; run.oy++, src += g->ow)
        fs_col_run_add(g, t, dxplane, &run, src);
}

#endif /* FASTSEG_IM2COL_ROW_H */
