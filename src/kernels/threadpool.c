/*
 * threadpool.c: persistent worker threads (see threadpool.h). A job is published by bumping a
 * generation counter under the mutex; workers run their share and the last one to finish wakes
 * the caller. Workers spin briefly before sleeping, because decode steps issue many short jobs
 * back to back and a futex round trip per job would cost more than the work.
 */
#include "kernels/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#define SPIN_ITERATIONS 4000

struct bn_threadpool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t work_ready;
    pthread_cond_t work_done;
    bn_parallel_fn fn;
    void *context;
    atomic_uint generation;
    atomic_int pending;
    bool stopping;
};

typedef struct worker_arg {
    bn_threadpool *pool;
    int index;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield"); /* also lets qemu-user run another guest thread */
#endif
}

static void *worker_main(void *raw) {
    worker_arg arg = *(worker_arg *)raw;
    free(raw);
    bn_threadpool *pool = arg.pool;
    unsigned seen = 0;
    for (;;) {
        unsigned generation = atomic_load_explicit(&pool->generation, memory_order_acquire);
        for (int spin = 0; generation == seen && spin < SPIN_ITERATIONS; spin++) {
            cpu_relax();
            generation = atomic_load_explicit(&pool->generation, memory_order_acquire);
        }
        if (generation == seen) {
            pthread_mutex_lock(&pool->lock);
            while ((generation = atomic_load(&pool->generation)) == seen && !pool->stopping)
                pthread_cond_wait(&pool->work_ready, &pool->lock);
            bool stop = pool->stopping;
            pthread_mutex_unlock(&pool->lock);
            if (stop) return NULL;
        }
        seen = generation;
        pool->fn(pool->context, arg.index, pool->n_threads);
        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->work_done);
            pthread_mutex_unlock(&pool->lock);
        }
    }
}

bn_status bn_threadpool_create(int n_threads, bn_threadpool **out, bn_error *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return bn_error_set(err, BN_ERR_INVALID, "thread count %d out of range 1..1024", n_threads);
    bn_threadpool *pool = calloc(1, sizeof *pool);
    if (!pool) return bn_error_set(err, BN_ERR_NOMEM, "out of memory creating thread pool");
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->work_ready, NULL);
    pthread_cond_init(&pool->work_done, NULL);
    if (n_threads > 1) {
        pool->threads = calloc((size_t)n_threads - 1, sizeof *pool->threads);
        if (!pool->threads) {
            bn_threadpool_free(pool);
            return bn_error_set(err, BN_ERR_NOMEM, "out of memory creating thread pool");
        }
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *arg = malloc(sizeof *arg);
        if (!arg) {
            pool->n_threads = i;
            bn_threadpool_free(pool);
            return bn_error_set(err, BN_ERR_NOMEM, "out of memory creating thread pool");
        }
        arg->pool = pool;
        arg->index = i;
        if (pthread_create(&pool->threads[i - 1], NULL, worker_main, arg) != 0) {
            free(arg);
            pool->n_threads = i;
            bn_threadpool_free(pool);
            return bn_error_set(err, BN_ERR_STATE, "cannot start worker thread %d", i);
        }
    }
    *out = pool;
    return BN_OK;
}

void bn_threadpool_free(bn_threadpool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->threads[i - 1], NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->work_ready);
    pthread_cond_destroy(&pool->work_done);
    free(pool->threads);
    free(pool);
}

int bn_threadpool_size(const bn_threadpool *pool) { return pool ? pool->n_threads : 1; }

void bn_threadpool_run(bn_threadpool *pool, bn_parallel_fn fn, void *context) {
    if (!pool || pool->n_threads == 1) {
        fn(context, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->context = context;
    atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);

    fn(context, 0, pool->n_threads);

    for (int spin = 0; atomic_load_explicit(&pool->pending, memory_order_acquire) != 0 &&
                       spin < SPIN_ITERATIONS; spin++)
        cpu_relax();
    if (atomic_load_explicit(&pool->pending, memory_order_acquire) != 0) {
        pthread_mutex_lock(&pool->lock);
        while (atomic_load(&pool->pending) != 0) pthread_cond_wait(&pool->work_done, &pool->lock);
        pthread_mutex_unlock(&pool->lock);
    }
}

void bn_threadpool_split(long n_items, long granule, int thread_index, int n_threads, long *begin,
                         long *end) {
    if (granule < 1) granule = 1;
    long n_granules = (n_items + granule - 1) / granule;
    long per_thread = n_granules / n_threads;
    long extra = n_granules % n_threads;
    long first = thread_index * per_thread + (thread_index < extra ? thread_index : extra);
    long count = per_thread + (thread_index < extra ? 1 : 0);
    long b = first * granule;
    long e = (first + count) * granule;
    *begin = b < n_items ? b : n_items;
    *end = e < n_items ? e : n_items;
}
