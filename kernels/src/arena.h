/*
 * arena.h -- a thread's workspace carved into slices by one layout, written
 * once. Not part of the public contract.
 *
 * A kernel's layout function takes every slice it needs from an fs_arena.
 * Run on a measuring arena (no block yet) it only adds up their sizes; run
 * again on the block fs_arena_bind took, with the same arguments, it hands
 * out the same slices as pointers. The sizes and the offsets come from the
 * same lines, so they cannot disagree.
 *
 *     fs_arena a = FS_ARENA_MEASURE;
 *     layout(J, &s, &a);                 sizes only; pointers are NULL
 *     if (!fs_arena_bind(&a)) return FS_ENOMEM;
 *     layout(J, &s, &a);                 the same slices, now in the block
 *     ...
 *     fs_ws_put(a.base);
 */
#ifndef FASTSEG_ARENA_H
#define FASTSEG_ARENA_H

#include <stddef.h>

#include "fastseg/kernels.h"
#include "thread_workspace.h"

typedef struct {
    float *base; /* the block, or NULL while measuring */
    size_t used; /* floats taken so far */
} fs_arena;

#define FS_ARENA_MEASURE {NULL, 0}

/* Room for `count` items of `bytes` each: where it starts in the block (NULL
 * while measuring). Each slice is rounded up to 16 floats, so every one
 * starts 64-byte aligned, as the block does. */
static inline void *fs_arena_take(fs_arena *a, fs_idx count, size_t bytes)
{
    void *p = a->base ? (void *)(a->base + a->used) : NULL;
    a->used += fs_ws_round16(((size_t)count * bytes + sizeof(float) - 1) / sizeof(float));
    return p;
}

/* The measured size taken from the calling thread's kernel slot
 * (fs_ws_get), and the arena rewound onto it for the second layout. NULL
 * when out of memory; otherwise the block, handed back with fs_ws_put. */
static inline float *fs_arena_bind(fs_arena *a)
{
    a->base = fs_ws_get(a->used);
    a->used = 0;
    return a->base;
}

#endif /* FASTSEG_ARENA_H */
