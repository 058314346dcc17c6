/*
 * fftconv_blocking.h -- the blocking constants of the FFT convolution
 * (fftconv.c), in one place. Not part of the public contract.
 *
 * fs_fftconv2d cuts one call's work in three levels (fftconv.c says how):
 *
 *   chunk: blocks of the output the team transforms, multiplies and
 *          transforms back together. Its input spectra (bins x 2 x C x chunk
 *          floats) are re-read by every filter group, and each bin's weight
 *          spectra, streamed from memory once per chunk, serve `chunk` blocks:
 *          chunk 32 on lai2d's 50 x 1000 layer at 40 x 45 is a 11.8 MB
 *          operand (L3, shared by the threads) and 24 flops per byte of
 *          weight streamed.
 *   group: filters whose spectra, inverse transforms and maps exist at once
 *          (whole panels of whole filter pairs). The one large buffer of a
 *          group is the half-inverted spectra of its rows of output,
 *          s1 x (tw/2+1) x 2 x group x chunk floats (14 MB at 45 x 45, group
 *          80, chunk 32), one per thread. A larger group re-reads the input
 *          spectra less often: on lai2d's layer at 584x565 (Zen 4, CPU time)
 *          the products took 2.3 s at group 20, 2.1 at 40, 2.0 at 80 on one
 *          thread before the micro-kernel's prefetch, and with it, on two
 *          threads, 1.40 s at 40, 1.24 at 80, 1.22 at 120 (wall 1.35, 1.25,
 *          1.23 s). A group never spans two of the FS_FFTCONV_SLICES slices
 *          (125 filters on lai2d's 1000), so a layer of 200 filters cannot
 *          show a group above 28: the tuner leaves it alone.
 *   lane block: transforms run "vertically", the same transform on many
 *          independent signals laid side by side in memory (the lanes), so
 *          every butterfly is whole SIMD vectors with no shuffle. A lane
 *          block of LANES signals keeps one transform's points (n x 2 x
 *          LANES floats, 40 KiB at n = 40) in L1/L2 across its passes.
 *
 * Defaults here; callers may pass others (fs_fftconv_geom.group / .chunk:
 * fastseg.tuning measures the chunk per CPU); none of the three changes any
 * result.
 */
#ifndef FASTSEG_FFTCONV_BLOCKING_H
#define FASTSEG_FFTCONV_BLOCKING_H

/* Filters per group; rounded up to whole panels of whole filter pairs (the complex
 * micro-kernel's MR, 4, or 6 on avx2's 3-row panels). */
#ifndef FS_FFTCONV_GROUP
#define FS_FFTCONV_GROUP 80
#endif
/* Blocks per chunk; rounded up to a multiple of its NR (32 on avx512, 8 on avx2, 16
 * generic). */
#ifndef FS_FFTCONV_CHUNK
#define FS_FFTCONV_CHUNK 32
#endif
/* Filter slices: the team's threads take slices of a chunk's filters as they come
 * free, each summing its share of the 1x1 convolution apart (the slices' sums are
 * added in slice order at the chunk's end: results are the same for any thread
 * count). 8 slices: a thread slowed by another process leaves at most an eighth of
 * a chunk to wait for. */
#ifndef FS_FFTCONV_SLICES
#define FS_FFTCONV_SLICES 8
#endif
/* Lanes (signals) per vertical transform call. */
#ifndef FS_FFT_LANES
#define FS_FFT_LANES 256
#endif
/* Longest transform (per axis) and most passes a plan holds. */
#define FS_FFT_MAX_LEN 1024
#define FS_FFT_MAX_PASSES 16
/* Largest prime factor of a length (above 5 by its plain DFT, O(p^2)). */
#define FS_FFT_MAX_RADIX 61

#endif /* FASTSEG_FFTCONV_BLOCKING_H */
