/* The scratch broker (thread_workspace.h).
 *
 * _Thread_local so two Python threads computing at once, or the OpenMP
 * workers of one call, never share a buffer; a pthread key frees a thread's
 * buffers when it ends and an atexit hook frees the exiting thread's, so
 * LeakSanitizer sees nothing. Without pthreads: plain allocate and free. */
#include "thread_workspace.h"

#include <stdlib.h>

/* 64-byte aligned blocks: the GEMM micro-kernels read packed B panels with
 * aligned loads. */
static float *alloc64(size_t floats)
{
    size_t bytes = (floats ? floats : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    return (float *)aligned_alloc(64, bytes);
}

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>

typedef struct {
    float *ptr[FS_WS_SLOTS];
    size_t cap[FS_WS_SLOTS]; /* floats */
} ws_slots;

static _Thread_local ws_slots ws;
static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;
static int ws_key_ok = 0;

/* The key's value is the thread's ws_slots (any non-NULL value makes the
 * destructor run at thread exit). */
static void ws_thread_exit(void *p)
{
    ws_slots *s = p;
    for (int i = 0; i < FS_WS_SLOTS; i++) {
        free(s->ptr[i]);
        s->ptr[i] = NULL;
        s->cap[i] = 0;
    }
}

static void ws_atexit(void)
{
    ws_thread_exit(&ws);
    if (ws_key_ok) pthread_setspecific(ws_key, NULL);
}

static void ws_init(void)
{
    ws_key_ok = pthread_key_create(&ws_key, ws_thread_exit) == 0;
    atexit(ws_atexit);
}

float *fs_ws_take(int slot, size_t floats)
{
    pthread_once(&ws_once, ws_init);
    if (floats <= ws.cap[slot] && ws.ptr[slot]) return ws.ptr[slot];
    float *p = alloc64(floats);
    if (!p) return NULL;
    free(ws.ptr[slot]);
    ws.ptr[slot] = p;
    ws.cap[slot] = floats;
    if (ws_key_ok) pthread_setspecific(ws_key, &ws);
    return p;
}

void fs_ws_give(int slot, float *p)
{
    (void)slot;
    (void)p;
}
#else
float *fs_ws_take(int slot, size_t floats)
{
    (void)slot;
    return alloc64(floats);
}
void fs_ws_give(int slot, float *p)
{
    (void)slot;
    free(p);
}
#endif
