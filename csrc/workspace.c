/*
 * workspace.c -- work buffers kept per thread between kernel calls: the
 * GEMM's packing buffers, the C^T of a swapped product, and a convolution's
 * per-image columns.
 *
 * They are kept for the life of the calling thread and only ever grown.
 * Allocating them per call (about 1 MiB for the MLP's 128x784x512 product)
 * and freeing them again lets glibc hand the pages back to the system, so the
 * next call pays hundreds of page faults: measured, 20% of that product's
 * time (75 -> 91 GFLOP/s once the buffers are kept).  One set per thread,
 * because the GIL is released while kernels run; a thread-specific key frees
 * it when the thread exits.
 */
#define _POSIX_C_SOURCE 200809L /* pthread keys under -std=c99 */
#include <pthread.h>
#include <stdlib.h>

#include "gemm_internal.h"

struct workspace {
    void *raw;     /* what malloc returned */
    size_t floats; /* usable capacity after 64-byte alignment */
};
struct workspaces {
    struct workspace slot[MDK_WS_COUNT];
};
static pthread_key_t workspace_key;
static pthread_once_t workspace_key_once = PTHREAD_ONCE_INIT;

static void free_workspaces(void *p)
{
    struct workspaces *w = p;
    for (int i = 0; i < MDK_WS_COUNT; ++i)
        free(w->slot[i].raw);
    free(w);
}

static void make_workspace_key(void)
{
    (void)pthread_key_create(&workspace_key, free_workspaces);
}

static struct workspaces *thread_workspaces(void)
{
    (void)pthread_once(&workspace_key_once, make_workspace_key);
    struct workspaces *w = pthread_getspecific(workspace_key);
    if (w == NULL) {
        w = calloc(1, sizeof *w);
        if (w == NULL || pthread_setspecific(workspace_key, w) != 0) {
            free(w);
            return NULL;
        }
    }
    return w;
}

float *mdk_workspace(enum mdk_workspace_slot slot, size_t floats)
{
    struct workspaces *w = thread_workspaces();
    if (w == NULL)
        return NULL;
    struct workspace *ws = &w->slot[slot];
    if (floats == 0) /* still a valid buffer: callers treat NULL as out of memory */
        floats = 1;
    if (floats > ws->floats) {
        free(ws->raw);
        /* C99 has no aligned_alloc: over-allocate and round up to 64 bytes (a
         * cache line, and the alignment of a zmm load). */
        ws->raw = malloc(floats * sizeof(float) + 64);
        ws->floats = ws->raw != NULL ? floats : 0;
        if (ws->raw == NULL)
            return NULL;
    }
    return (float *)(((uintptr_t)ws->raw + 63) & ~(uintptr_t)63);
}

/* Give the calling thread's buffers back (for tests and long-lived threads
 * that are done with large products). */
void mdk_gemm_release_workspace(void)
{
    (void)pthread_once(&workspace_key_once, make_workspace_key);
    struct workspaces *w = pthread_getspecific(workspace_key);
    if (w != NULL) {
        free_workspaces(w);
        (void)pthread_setspecific(workspace_key, NULL);
    }
}
