/*
 * fftconv_internal.h -- the pieces of fs_fftconv2d shared between its files:
 * the FFT plan (fft_plan.c) and the vertical kernels, one table per ISA
 * (fft_impl.h compiled by fft_generic.c, fft_avx2.c, fft_avx512.c). Not part
 * of the public contract.
 *
 * Vertical transforms. A batch of `lanes` independent complex signals of
 * length n is stored split: point k of every signal is a run of `lanes`
 * real parts at base + k*stride and a run of `lanes` imaginary parts at
 * base + k*stride + im (im may be negative). Every operation of the FFT is
 * then the same on all lanes: loops over the lanes are plain SIMD, with no
 * shuffle and no gather, whatever n is.
 *
 * The transform is Stockham's autosort (natural order in and out), one
 * pass per radix (8, 4, 2, 9, 3, 5, then any other prime by its plain DFT):
 * after the passes of radices r1..rs (L = r1*...*rs), position j*M + k
 * (M = n/L) holds the L-point DFT of the samples k, k+M, k+2M, ...; a
 * radix-p pass joins p of those into one pL-point DFT. Forward is
 * exp(-2 pi i jk/n), inverse exp(+2 pi i jk/n), neither scaled.
 */
#ifndef FASTSEG_FFTCONV_INTERNAL_H
#define FASTSEG_FFTCONV_INTERNAL_H

#include <stddef.h>

#include "fastseg/kernels.h"
#include "fftconv_blocking.h"

typedef struct {
    int n;       /* the length */
    int passes;  /* radices applied, in order */
    int radix[FS_FFT_MAX_PASSES];
    int before[FS_FFT_MAX_PASSES];  /* L before the pass (product of earlier radices) */
    int tw_at[FS_FFT_MAX_PASSES];   /* where the pass's twiddles start in tw */
    int cs_at[FS_FFT_MAX_PASSES];   /* a generic radix's cos/sin table in cs, or -1 */
    /* Twiddles of pass s: for j < before[s], q in 1..p-1, (cos, sin) of
     * 2 pi j q / (p * before[s]) at tw[tw_at[s] + 2*(j*(p-1) + q-1)]. */
    float tw[2 * FS_FFT_MAX_LEN];
    /* cos, sin of 2 pi m / p, m < p, for a prime radix above 5. */
    float cs[4 * FS_FFT_MAX_LEN];
} fs_fft_plan;

/* The plan of length n (1 <= n <= FS_FFT_MAX_LEN). Returns FS_OK or
 * FS_EVALUE (n out of range, or a prime factor above FS_FFT_MAX_RADIX). */
int fs_fft_plan_init(fs_fft_plan *plan, int n);

/* Floats of work a transform of `lanes` lanes needs (two ping-pong copies). */
static inline size_t fs_fft_work_floats(int n, fs_idx lanes)
{
    return (size_t)4 * (size_t)n * (size_t)lanes;
}

/* ---- the vertical kernels of one ISA ----------------------------------------
 * c2c: the transform (inverse != 0: exp(+...)) of `lanes` signals from `in`
 *   (stride is, imaginary parts at +iim) to `out` (os, oim); only points
 *   k < keep are written, and of each only lanes < out_lanes. `work` holds
 *   fs_fft_work_floats(n, lanes) floats. in and out must not overlap.
 * r2c_pair: the forward transforms of 2*h real signals, paired as h complex
 *   ones: `z` is the complex transform (point stride zs, imaginary at +h) of
 *   a + i b (a: real lanes [0, h), b: [h, 2h)); writes the half spectra
 *   (n/2 + 1 points) of a to lanes [0, h) and of b to lanes [h, 2h) of
 *   `out` (point stride os, imaginary at +oim).
 * c2r_pack: the other way, for `pairs` pairs of real signals, each pair two
 *   adjacent runs of `width` lanes (a: lanes [2i*width, (2i+1)*width), b: the
 *   next run) of half spectra at `in` (point stride is, imaginary at +iim;
 *   the imaginary parts of bin 0 and, n even, bin n/2 ignored, as irfft
 *   does): builds the full spectrum of a + i b, n points of h = pairs*width
 *   lanes (pair i at lanes [i*width, (i+1)*width)) at z (point stride 2h,
 *   imaginary at +h); its inverse transform is a + i b. Which signals are
 *   paired changes the rounding (a's result rounds with b's values), so
 *   callers pair the same signals whatever their blocking.
 * project: acc[v][l] += sum_f w[f] * t_f[v][l] for v < rows, l < lanes (a
 *   multiple of 16), f < nf in increasing order, where filter f's values
 *   are t_f = t + (f odd ? odd : 0) + (f/2)*lanes (c2r_pack's pairs: even
 *   filters in the first half of a row, odd ones `odd` floats on); acc rows
 *   are `lanes` apart, t rows `tstride` apart.
 * act_project: the same for np outputs at once (weights w[k*ldw + f], sums at
 *   acc + k*acc_step), each value through the activation (FS_ACT_*) on its way:
 *   the maps are read once and never written back. */
typedef struct {
    const char *name;
    /* the complex micro-kernel (cgemm_impl.h) and its tile */
    void (*cgemm)(fs_idx kc, const float *ap, const float *bp, float *yr, float *yi, fs_idx ldc,
                  int mults, const float *next);
    int mr, nr;
    void (*c2c)(const fs_fft_plan *plan, int inverse, const float *in, ptrdiff_t is,
                ptrdiff_t iim, float *out, ptrdiff_t os, ptrdiff_t oim, fs_idx lanes,
                fs_idx out_lanes, int keep, float *work);
    void (*r2c_pair)(int n, const float *z, ptrdiff_t zs, fs_idx h, float *out, ptrdiff_t os,
                     ptrdiff_t oim);
    void (*c2r_pack)(int n, const float *in, ptrdiff_t is, ptrdiff_t iim, fs_idx pairs,
                     fs_idx width, float *z);
    void (*project)(const float *w, fs_idx nf, const float *t, fs_idx tstride, ptrdiff_t odd,
                    fs_idx rows, fs_idx lanes, float *acc);
    void (*act_project)(int act, const float *w, fs_idx ldw, fs_idx np, fs_idx nf,
                        const float *t, fs_idx tstride, ptrdiff_t odd, fs_idx rows,
                        fs_idx lanes, float *acc, fs_idx acc_step);
} fs_fft_table;

#define FS_DECLARE_FFT(isa) extern const fs_fft_table fs_fft_table_##isa;
FS_DECLARE_FFT(generic)
FS_DECLARE_FFT(avx2)
FS_DECLARE_FFT(avx512)

#endif /* FASTSEG_FFTCONV_INTERNAL_H */
