/*
 * scratch.c: per-thread scratch buffers (see scratch.h). One pthread key holds the calling
 * thread's buffers; its destructor frees them when the thread exits.
 */
#include "kernels/scratch.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct thread_buffers {
    void *data[BN_SCRATCH_SLOTS];
    size_t bytes[BN_SCRATCH_SLOTS];
} thread_buffers;

static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static int key_ok;

static void release(void *raw) {
    thread_buffers *b = raw;
    for (int s = 0; s < BN_SCRATCH_SLOTS; s++) free(b->data[s]);
    free(b);
}

static void make_key(void) { key_ok = pthread_key_create(&key, release) == 0; }

static thread_buffers *buffers(void) {
    pthread_once(&key_once, make_key);
    if (!key_ok) return NULL;
    thread_buffers *b = pthread_getspecific(key);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (b && pthread_setspecific(key, b) != 0) {
            free(b);
            b = NULL;
        }
    }
    return b;
}

void *bn_thread_scratch(bn_scratch_slot slot, size_t bytes) {
    thread_buffers *b = buffers();
    if (!b || slot < 0 || slot >= BN_SCRATCH_SLOTS) return NULL;
    if (bytes <= b->bytes[slot] && b->data[slot]) return b->data[slot];
    if (bytes > SIZE_MAX - 64) return NULL;
    const size_t rounded = bytes ? (bytes + 63) & ~(size_t)63 : 64;
    void *grown = aligned_alloc(64, rounded);
    if (!grown) return NULL;
    free(b->data[slot]);
    b->data[slot] = grown;
    b->bytes[slot] = rounded;
    return grown;
}

bn_status bn_thread_scratch_reserve(bn_scratch_slot slot, size_t bytes, bn_error *err) {
    if (bn_thread_scratch(slot, bytes)) return BN_OK;
    return bn_error_set(err, BN_ERR_NOMEM, "cannot reserve %zu bytes of kernel scratch", bytes);
}

size_t bn_thread_scratch_size(bn_scratch_slot slot) {
    thread_buffers *b = buffers();
    return b && slot >= 0 && slot < BN_SCRATCH_SLOTS ? b->bytes[slot] : 0;
}
