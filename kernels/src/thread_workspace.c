/* Per-thread scratch (thread_workspace.h).
 *
 * _Thread_local so two Python threads convolving at once, or the OpenMP
 * workers of one call, never share a buffer; a pthread key frees it when its
 * thread ends and an atexit hook frees the exiting thread's, so
 * LeakSanitizer sees nothing. Without pthreads: plain allocate and free. */
#include "thread_workspace.h"

#include <stdlib.h>

/* 64-byte aligned blocks: the GEMM micro-kernel reads packed B panels with
 * aligned loads. */
static float *alloc64(size_t floats)
{
    size_t bytes = (floats ? floats : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    return (float *)aligned_alloc(64, bytes);
}

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>

static _Thread_local float *ws_ptr = NULL;
static _Thread_local size_t ws_cap = 0; /* floats */
static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;
static int ws_key_ok = 0;

static void ws_thread_exit(void *p) { free(p); }

static void ws_atexit(void)
{
    free(ws_ptr);
    ws_ptr = NULL;
    ws_cap = 0;
    if (ws_key_ok) pthread_setspecific(ws_key, NULL);
}

static void ws_init(void)
{
    ws_key_ok = pthread_key_create(&ws_key, ws_thread_exit) == 0;
    atexit(ws_atexit);
}

float *fs_ws_get(size_t floats)
{
    pthread_once(&ws_once, ws_init);
    if (floats <= ws_cap && ws_ptr) return ws_ptr;
    float *p = alloc64(floats);
    if (!p) return NULL;
    free(ws_ptr);
    ws_ptr = p;
    ws_cap = floats;
    if (ws_key_ok) pthread_setspecific(ws_key, p);
    return p;
}

void fs_ws_put(float *p) { (void)p; }
#else
float *fs_ws_get(size_t floats) { return alloc64(floats); }
void fs_ws_put(float *p) { free(p); }
#endif
