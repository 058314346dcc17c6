/*
 * thread_workspace.h -- the kernels' one scratch broker: buffers per thread,
 * grown on demand and kept for the thread's next call, so kernels allocate
 * (and page-fault) nothing in the steady state. Not part of the public
 * contract.
 *
 * Re-entrancy: a thread holds at most one buffer per slot. A kernel takes
 * FS_WS_KERNEL (fs_ws_get); fs_sgemm takes FS_WS_GEMM for its packing
 * buffers and calls nothing that takes a slot, so a kernel may hold its
 * buffer across fs_sgemm calls (conv.c's column matrix does). A kernel
 * called from inside another kernel's hold would need a slot of its own.
 * Every OpenMP worker has its own buffers too, so a team member takes its
 * scratch itself, inside the parallel region; two Python threads calling at
 * once never share one.
 */
#ifndef FASTSEG_THREAD_WORKSPACE_H
#define FASTSEG_THREAD_WORKSPACE_H

#include <stddef.h>

enum { FS_WS_KERNEL = 0, FS_WS_GEMM = 1, FS_WS_SLOTS = 2 };

/* At least `floats` floats, 64-byte aligned, owned by the calling thread and
 * valid until its next take of the same slot; NULL when out of memory.
 * Contents are undefined. Hand it back with fs_ws_put when done. */
float *fs_ws_take(int slot, size_t floats);
void fs_ws_give(int slot, float *p);

/* The kernel slot, for kernels (which is every caller but fs_sgemm). */
static inline float *fs_ws_get(size_t floats) { return fs_ws_take(FS_WS_KERNEL, floats); }
static inline void fs_ws_put(float *p) { fs_ws_give(FS_WS_KERNEL, p); }

/* `floats` rounded up to a multiple of 16: slices of one workspace laid out
 * this way each start 64-byte aligned. */
static inline size_t fs_ws_round16(size_t floats) { return (floats + 15) & ~(size_t)15; }

#endif /* FASTSEG_THREAD_WORKSPACE_H */
