/* im2col / col2im (kernels.h): the lowering that turns a convolution into
 * one GEMM, and its exact adjoint.
 *
 * For a fixed kernel offset (ki, kj) the valid output columns of every
 * output row form one interval [lo, hi): computing it once per row turns the
 * inner loop into zero fill + contiguous copy (stride 1: memcpy) with no
 * per-element bounds test. */
#include "fastseg/kernels.h"

#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Output extent; 0 when the (padded) input is smaller than the kernel, where
 * C's truncating division would otherwise give a bogus 1. */
static fs_idx out_extent(fs_idx size, fs_idx k, fs_idx stride, fs_idx pad)
{
    fs_idx span = size + 2 * pad - k;
    return span < 0 ? 0 : span / stride + 1;
}

/* Smallest o >= 0 with o*stride + off >= 0, for off = kj - pad. */
static fs_idx first_valid(fs_idx off, fs_idx stride)
{
    return off >= 0 ? 0 : (-off + stride - 1) / stride;
}

/* One past the largest o with o*stride + off < size, capped at limit. */
static fs_idx end_valid(fs_idx off, fs_idx size, fs_idx stride, fs_idx limit)
{
    fs_idx room = size - off; /* o*stride < room */
    if (room <= 0) return 0;
    fs_idx e = (room + stride - 1) / stride;
    return e < limit ? e : limit;
}

/* Row runs are short (16 floats for lai2d): a libc memcpy call costs more
 * than the copy, so short runs go through fixed-size copies the compiler
 * turns into plain vector moves. */
static inline void copy_run(float *dst, const float *src, fs_idx len)
{
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
    switch (len - j) {
    case 3: dst[j + 2] = src[j + 2]; /* fall through */
    case 2: dst[j + 1] = src[j + 1]; /* fall through */
    case 1: dst[j] = src[j]; /* fall through */
    default: break;
    }
}

/* Below this many column entries, thread start-up costs more than it saves. */
#define FS_IM2COL_PAR_MIN ((fs_idx)1 << 15)

void fs_im2col(const float *x, fs_idx n, fs_idx c, fs_idx h, fs_idx w,
               fs_idx k, fs_idx stride, fs_idx pad,
               float *cols, fs_idx ldcols)
{
    if (n <= 0 || c <= 0 || k <= 0 || stride <= 0 || pad < 0) return;
    const fs_idx oh = out_extent(h, k, stride, pad);
    const fs_idx ow = out_extent(w, k, stride, pad);
    if (oh == 0 || ow == 0) return;
    const fs_idx rows = c * k * k;
    const fs_idx plane = h * w;
#ifdef _OPENMP
    const int nt = fs_get_num_threads();
#endif

#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) \
    if (nt > 1 && rows * n * oh * ow >= FS_IM2COL_PAR_MIN)
#endif
    for (fs_idx r = 0; r < rows; r++) {
        const fs_idx ci = r / (k * k);
        const fs_idx ki = (r / k) % k;
        const fs_idx kj = r % k;
        const fs_idx off = kj - pad;
        const fs_idx lo = first_valid(off, stride) < ow ? first_valid(off, stride) : ow;
        fs_idx hi = end_valid(off, w, stride, ow);
        if (hi < lo) hi = lo;
        float *dst_row = cols + r * ldcols;
        for (fs_idx ni = 0; ni < n; ni++) {
            const float *src_plane = x + (ni * c + ci) * plane;
            for (fs_idx oi = 0; oi < oh; oi++) {
                float *dst = dst_row + (ni * oh + oi) * ow;
                const fs_idx iy = oi * stride + ki - pad;
                if (iy < 0 || iy >= h) {
                    memset(dst, 0, (size_t)ow * sizeof(float));
                    continue;
                }
                /* Offsets, not a shifted pointer: iy*w + off may be < 0. */
                const fs_idx base = iy * w + off;
                if (lo > 0) memset(dst, 0, (size_t)lo * sizeof(float));
                if (stride == 1) {
                    if (hi > lo) copy_run(dst + lo, src_plane + base + lo, hi - lo);
                } else {
                    for (fs_idx oj = lo; oj < hi; oj++) dst[oj] = src_plane[base + oj * stride];
                }
                if (hi < ow) memset(dst + hi, 0, (size_t)(ow - hi) * sizeof(float));
            }
        }
    }
}

void fs_col2im(const float *cols, fs_idx ldcols,
               fs_idx n, fs_idx c, fs_idx h, fs_idx w,
               fs_idx k, fs_idx stride, fs_idx pad, float *dx)
{
    if (n <= 0 || c <= 0 || k <= 0 || stride <= 0 || pad < 0) return;
    const fs_idx oh = out_extent(h, k, stride, pad);
    const fs_idx ow = out_extent(w, k, stride, pad);
    if (oh == 0 || ow == 0) return;
    const fs_idx plane = h * w;
    const fs_idx planes = n * c;
#ifdef _OPENMP
    const int nt = fs_get_num_threads();
#endif

    /* Each (image, channel) plane of dx is written by exactly one thread. */
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) \
    if (nt > 1 && planes * k * k * oh * ow >= FS_IM2COL_PAR_MIN)
#endif
    for (fs_idx pl = 0; pl < planes; pl++) {
        const fs_idx ni = pl / c;
        const fs_idx ci = pl % c;
        float *dst_plane = dx + pl * plane;
        for (fs_idx ki = 0; ki < k; ki++) {
            for (fs_idx kj = 0; kj < k; kj++) {
                const fs_idx r = (ci * k + ki) * k + kj;
                const fs_idx off = kj - pad;
                const fs_idx lo = first_valid(off, stride);
                const fs_idx hi = end_valid(off, w, stride, ow);
                const float *src_row = cols + r * ldcols + ni * oh * ow;
                for (fs_idx oi = 0; oi < oh; oi++) {
                    const fs_idx iy = oi * stride + ki - pad;
                    if (iy < 0 || iy >= h) continue;
                    const float *src = src_row + oi * ow;
                    const fs_idx base = iy * w + off;
                    if (hi <= lo) continue;
                    if (stride == 1) {
                        float *dst = dst_plane + base + lo;
                        const float *s1 = src + lo;
                        for (fs_idx j = 0; j < hi - lo; j++) dst[j] += s1[j];
                    } else {
                        for (fs_idx oj = lo; oj < hi; oj++) dst_plane[base + oj * stride] += src[oj];
                    }
                }
            }
        }
    }
}
