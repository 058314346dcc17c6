/* 3-D max pooling (kernels.h), PyTorch's semantics: floor output size, no
 * padding, argmax as a flat index within the (d, h, w) volume. */
#include "fastseg/kernels.h"

#include <stdlib.h>

#include "parallel.h"
#include "window.h"

/* The winner among a window's elements so far (the best value, and j: which
 * element, in scan order): a later element wins only when strictly greater,
 * so the first maximum wins ties, or when it is the first NaN, which then
 * stays (NaN compares false with everything) -- np.argmax's and PyTorch's
 * rule. */
static inline void pool_take(float v, int32_t j, float *best, int32_t *which)
{
    const int take = (v > *best) | ((v != v) & (*best == *best));
    *best = take ? v : *best;
    *which = take ? j : *which;
}

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define POOL_SSE 1

/* Four outputs of a row at once (SSE2 is the x86-64 baseline): their windows
 * start at x0 + i*sw, window element j at + woff[j]. The compiler keeps the
 * scalar form scalar (strided loads), at ~4x the time. Reads stay inside the
 * four windows. */
static void pool_block4(const float *x0, fs_idx sw, const fs_idx *woff, fs_idx kkk,
                        fs_idx corner, float *yrow, int64_t *irow)
{
    __m128 best = _mm_setzero_ps();
    __m128i which = _mm_setzero_si128();
    for (fs_idx j = 0; j < kkk; j++) {
        const float *src = x0 + woff[j];
        __m128 v;
        if (sw == 1) /* lanes src[0..3] */
            v = _mm_loadu_ps(src);
        else /* sw == 2: lanes src[0, 2, 4, 6], from src[0..3] and src[3..6] */
            v = _mm_shuffle_ps(_mm_loadu_ps(src), _mm_loadu_ps(src + 3), _MM_SHUFFLE(3, 1, 2, 0));
        if (j == 0) {
            best = v;
            continue;
        }
        const __m128 take = _mm_or_ps(_mm_cmpgt_ps(v, best),
                                      _mm_and_ps(_mm_cmpunord_ps(v, v), _mm_cmpord_ps(best, best)));
        best = _mm_or_ps(_mm_and_ps(take, v), _mm_andnot_ps(take, best));
        const __m128i t = _mm_castps_si128(take);
        which = _mm_or_si128(_mm_and_si128(t, _mm_set1_epi32((int32_t)j)),
                             _mm_andnot_si128(t, which));
    }
    int32_t w[4];
    _mm_storeu_ps(yrow, best);
    _mm_storeu_si128((__m128i *)w, which);
    for (int i = 0; i < 4; i++) irow[i] = (int64_t)(corner + i * sw + woff[w[i]]);
}
#endif

/* One output row (oz, oy) of a volume: yrow[ox], irow[ox] for ox < ow; the
 * row's first window corner is at xv + corner; window element j (scan order)
 * at + woff[j]. */
static void pool_row(const float *xv, fs_idx corner, fs_idx sw, fs_idx ow, const fs_idx *woff,
                     fs_idx kkk, float *yrow, int64_t *irow)
{
    fs_idx ox = 0;
#ifdef POOL_SSE
    if (sw <= 2)
        for (; ox + 4 <= ow; ox += 4)
            pool_block4(xv + corner + ox * sw, sw, woff, kkk, corner + ox * sw, yrow + ox,
                         irow + ox);
#endif
    for (; ox < ow; ox++) {
        const fs_idx at = corner + ox * sw;
        float best = xv[at];
        int32_t which = 0;
        for (fs_idx j = 1; j < kkk; j++) pool_take(xv[at + woff[j]], (int32_t)j, &best, &which);
        yrow[ox] = best;
        irow[ox] = (int64_t)(at + woff[which]);
    }
}

int fs_maxpool3d_forward(const float *x, fs_idx n, fs_idx c, const fs_idx size[3],
                         const fs_idx k[3], const fs_idx stride[3], float *y, int64_t *idx)
{
    for (int a = 0; a < 3; a++)
        if (k[a] < 1 || stride[a] < 1) return FS_EVALUE;
    const fs_idx d = size[0], h = size[1], w = size[2];
    const fs_idx od = fs_out_extent(d, k[0], stride[0], 0);
    const fs_idx oh = fs_out_extent(h, k[1], stride[1], 0);
    const fs_idx ow = fs_out_extent(w, k[2], stride[2], 0);
    if (n <= 0 || c <= 0 || od == 0 || oh == 0 || ow == 0) return FS_OK;
    const fs_idx vols = n * c, vol = d * h * w, ovol = od * oh * ow;
    const fs_idx kkk = k[0] * k[1] * k[2];
    /* Window element j (scan order: depth, row, column) at corner + woff[j]. */
    fs_idx *woff = malloc((size_t)kkk * sizeof *woff);
    if (!woff) return FS_ENOMEM;
    for (fs_idx j = 0; j < kkk; j++)
        woff[j] = (j / (k[1] * k[2]) * h + j / k[2] % k[1]) * w + j % k[2];
    /* Threads take whole volumes (parallel.h: counted in window reads). */
    FS_NT((double)vols * (double)ovol * (double)kkk, FS_PAR_MIN_READS)
    FS_PAR_FOR
    for (fs_idx v = 0; v < vols; v++) {
        const float *xv = x + v * vol;
        for (fs_idx oz = 0; oz < od; oz++)
            for (fs_idx oy = 0; oy < oh; oy++) {
                const fs_idx o = v * ovol + (oz * oh + oy) * ow;
                pool_row(xv, (oz * stride[0] * h + oy * stride[1]) * w, stride[2], ow, woff, kkk,
                         y + o, idx + o);
            }
    }
    free(woff);
    return FS_OK;
}

int fs_maxpool3d_backward(const float *dy, const int64_t *idx, fs_idx n, fs_idx c,
                          fs_idx out_count, fs_idx in_count, float *dx)
{
    /* The scatter sees only flat volumes: it is the 2-D kernel's, with each
     * volume as one row of in_count (out_count) elements. */
    return fs_maxpool2d_backward(dy, idx, n, c, out_count, 1, in_count, 1, dx);
}
