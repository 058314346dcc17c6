/*
 * parallel.h -- the kernels' threading policy, in one place. Every kernel
 * file that runs threads takes its thresholds, macros and planners from here
 * (new kernels too: pick the unit your work is counted in, compare it with
 * that unit's minimum through fs_threads_for, and split with the helpers
 * below). Not part of the public contract.
 *
 * Threads are OpenMP's; the count is process-wide (fs_get_num_threads,
 * runtime.c). Without OpenMP every planner answers 1 and the macros are
 * empty, so the same code runs on one thread.
 *
 * 1. When to go parallel. Waking a team costs a few microseconds (more when
 *    the cores are shared and a worker must be scheduled first), so below a
 *    minimum amount of work a kernel runs on the calling thread. The minimum
 *    is ~20-50 us of one thread's work, in the unit each kernel counts:
 */
#ifndef FASTSEG_PARALLEL_H
#define FASTSEG_PARALLEL_H

#include <stddef.h>

#include "fastseg/kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* multiply-adds of a packed GEMM or convolution (~100 GFLOP/s a core) */
#define FS_PAR_MIN_FMAS (64.0 * 64.0 * 64.0)
/* multiply-adds of the no-packing small GEMM: memory-bound, a few per load */
#define FS_PAR_MIN_SMALL_FMAS ((double)(1 << 20))
/* elements of an element-wise pass (activations, optimizer updates) */
#define FS_PAR_MIN_ELEMENTS ((double)(1 << 16))
/* elements read by a pass that moves data (pooling windows, im2col and
 * col2im entries): a gather or scatter, slower per element than a stream */
#define FS_PAR_MIN_READS ((double)(1 << 15))

/* 2. How many threads for `work` units whose minimum is `min_work`: 1 below
 *    it (or without OpenMP), else the process-wide count. */
static inline int fs_threads_for(double work, double min_work)
{
#ifdef _OPENMP
    return work < min_work ? 1 : fs_get_num_threads();
#else
    (void)work;
    (void)min_work;
    return 1;
#endif
}

/* 3. The element-wise kernels' team: `FS_NT(work, min)` declares nt, then
 *    FS_PAR_FOR goes right before a loop over the nt chunks, each thread
 *    taking one (static schedule: no shared counter):
 *        FS_NT(count, FS_PAR_MIN_ELEMENTS)
 *        FS_PAR_FOR
 *        for (int t = 0; t < nt; t++) {
 *            fs_idx lo, hi;
 *            fs_split_range(count, t, nt, &lo, &hi);
 *            kernel(x + lo, y + lo, hi - lo);
 *        }
 *    It works as well over the elements themselves (one iteration each). */
#define FS_NT(work, min_work) const int nt = fs_threads_for((double)(work), (min_work));
#ifdef _OPENMP
#define FS_PAR_FOR _Pragma("omp parallel for num_threads(nt) schedule(static) if (nt > 1)")
#else
#define FS_PAR_FOR (void)nt;
#endif

/* A team that is not a plain loop: FS_PARALLEL goes right before the block
 * every thread runs (nt declared, as for FS_PAR_FOR), fs_team tells each
 * thread its number and the team's size, and fs_fail records an error from
 * inside the team (the region's status variable, written atomically):
 *        FS_PARALLEL
 *        {
 *            int t, T;
 *            fs_team(&t, &T);
 *            if (work(t, T) != FS_OK) fs_fail(&status, FS_ENOMEM);
 *        } */
#ifdef _OPENMP
#define FS_PARALLEL _Pragma("omp parallel num_threads(nt) if (nt > 1)")
#else
#define FS_PARALLEL (void)nt;
#endif

static inline void fs_team(int *t, int *T)
{
#ifdef _OPENMP
    *t = omp_get_thread_num();
    *T = omp_get_num_threads();
#else
    *t = 0;
    *T = 1;
#endif
}

static inline void fs_fail(int *status, int code)
{
    (void)code; /* gcc 12 calls a parameter read only by an atomic write unused */
#ifdef _OPENMP
#pragma omp atomic write
#endif
    *status = code;
}

/* 4. Splitting. [lo, hi): part t of nt of [0, count), sizes differing by at
 *    most one (the planners below and every kernel's own slices use it). */
static inline void fs_split_range(fs_idx count, fs_idx t, fs_idx nt, fs_idx *lo, fs_idx *hi)
{
    *lo = count * t / nt;
    *hi = count * (t + 1) / nt;
}

/* 5. The planners of the kernels that do not split a plain loop.
 *
 * GEMM (gemm.c): C is cut along one dimension into `tasks` blocks that
 * threads take dynamically, each repacking the other operand. A block at
 * least `min_width` wide keeps the repacking cheap; then as many blocks as
 * that allows up to `per_thread` per thread (4 by default: a preempted
 * thread's share is taken up by the others; fs_set_gemm_split may change
 * it), a multiple of nt so a quiet machine splits evenly, and no more than
 * the `units` (micro-panels) there are. */
#define FS_GEMM_BLOCKS_PER_THREAD 4
static inline fs_idx fs_plan_blocks(fs_idx len, fs_idx units, fs_idx min_width, int nt,
                                    int per_thread)
{
    fs_idx tasks = len / (min_width > 0 ? min_width : 1);
    if (per_thread < 1) per_thread = FS_GEMM_BLOCKS_PER_THREAD;
    if (tasks > per_thread * (fs_idx)nt) tasks = per_thread * (fs_idx)nt;
    if (tasks < 1) tasks = 1;
    tasks = (tasks + nt - 1) / nt * nt;
    return tasks < units ? tasks : units;
}

/* Batched kernels (convolutions, fused or not): threads take whole images
 * when there are at least as many images as threads (no shared output, no
 * barrier); with fewer, every thread works on its slice of every image.
 * Returns the team size; *by_image says which of the two. */
static inline int fs_plan_images(double fmas, fs_idx images, int *by_image)
{
    const int nt = fs_threads_for(fmas, FS_PAR_MIN_FMAS);
    *by_image = nt > 1 && images >= nt;
    return nt;
}

/* The im2col + GEMM convolution (conv.c): how many threads take whole
 * images, each with a private `slice_bytes` of scratch, so that all of them
 * together stay under `max_bytes`; 1 means images one after another with the
 * threads inside im2col and the GEMM instead. */
static inline int fs_plan_image_scratch(fs_idx images, size_t slice_bytes, size_t max_bytes)
{
#ifdef _OPENMP
    int nt = fs_get_num_threads();
#else
    int nt = 1;
#endif
    if (nt > images) nt = (int)images;
    if (nt < 2) return 1;
    const size_t fit = max_bytes / (slice_bytes + 1);
    if (fit < (size_t)nt) nt = (int)fit;
    return nt < 2 ? 1 : nt;
}

#endif /* FASTSEG_PARALLEL_H */
