/*
 * thread_workspace.h -- one scratch buffer per thread, grown on demand and
 * kept for the thread's next call, so convolutions allocate (and page-fault)
 * nothing in the steady state. Not part of the public contract.
 */
#ifndef FASTSEG_THREAD_WORKSPACE_H
#define FASTSEG_THREAD_WORKSPACE_H

#include <stddef.h>

/* At least `floats` floats, 64-byte aligned, owned by the calling thread and
 * valid until its next fs_ws_get; NULL when out of memory. Contents are
 * undefined. Hand it back with fs_ws_put when done. */
float *fs_ws_get(size_t floats);
void fs_ws_put(float *p);

/* `floats` rounded up to a multiple of 16: slices of one workspace laid out
 * this way each start 64-byte aligned. */
static inline size_t fs_ws_round16(size_t floats) { return (floats + 15) & ~(size_t)15; }

#endif /* FASTSEG_THREAD_WORKSPACE_H */
