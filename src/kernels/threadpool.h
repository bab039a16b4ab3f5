/*
 * threadpool.h: a persistent pthread pool. Threads are created once and wait on a condition
 * variable between jobs; bn_threadpool_run() runs one function on every thread (the caller is
 * thread 0) and returns when all are done. Kernels split work by thread index with
 * bn_threadpool_split(), and each output element is computed by exactly one thread in a fixed
 * order, so results are identical for any thread count.
 */
#ifndef BN_KERNELS_THREADPOOL_H
#define BN_KERNELS_THREADPOOL_H

#include "bitnet.h"

typedef struct bn_threadpool bn_threadpool;

typedef void (*bn_parallel_fn)(void *context, int thread_index, int n_threads);

/* n_threads >= 1 (1 creates no threads). Owned by the caller: bn_threadpool_free. */
bn_status bn_threadpool_create(int n_threads, bn_threadpool **out, bn_error *err);
void bn_threadpool_free(bn_threadpool *pool);
/* 1 for a NULL pool. */
int bn_threadpool_size(const bn_threadpool *pool);
/* Runs fn(context, i, n) for i in 0..n-1 and waits. A NULL pool runs fn(context, 0, 1). */
void bn_threadpool_run(bn_threadpool *pool, bn_parallel_fn fn, void *context);
/* The [begin, end) share of n_items for thread index of n_threads, in multiples of granule. */
void bn_threadpool_split(long n_items, long granule, int thread_index, int n_threads, long *begin,
                         long *end);

#endif
