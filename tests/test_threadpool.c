/*
 * test_threadpool.c: the persistent pool runs every thread index exactly once per job, splits
 * cover the range without gaps or overlap, and many back-to-back jobs do not lose wake-ups.
 */
#include "kernels/cpu_features.h"
#include "kernels/registry.h"
#include "kernels/threadpool.h"
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct job {
    atomic_int calls[8];
    long *marks;
    long n_items;
} job;

static void run_job(void *context, int thread_index, int n_threads) {
    job *j = context;
    atomic_fetch_add(&j->calls[thread_index], 1);
    long begin, end;
    bn_threadpool_split(j->n_items, 3, thread_index, n_threads, &begin, &end);
    for (long i = begin; i < end; i++) j->marks[i]++;
}

static void test_pool(int n_threads) {
    bn_error err;
    bn_threadpool *pool = NULL;
    CHECK_OK(bn_threadpool_create(n_threads, &pool, &err), &err);
    if (!pool) return;
    CHECK(bn_threadpool_size(pool) == n_threads);
    job j = {.n_items = 1001};
    j.marks = calloc((size_t)j.n_items, sizeof *j.marks);
    for (int i = 0; i < 8; i++) atomic_init(&j.calls[i], 0);
    const int rounds = 300;
    for (int r = 0; r < rounds; r++) bn_threadpool_run(pool, run_job, &j);
    for (int t = 0; t < n_threads; t++) CHECKF(atomic_load(&j.calls[t]) == rounds, "thread %d", t);
    long wrong = 0;
    for (long i = 0; i < j.n_items; i++) wrong += j.marks[i] != rounds;
    CHECKF(wrong == 0, "%ld items not covered exactly once per round", wrong);
    free(j.marks);
    bn_threadpool_free(pool);
}

static void test_split(void) {
    long begin, end;
    bn_threadpool_split(10, 4, 0, 3, &begin, &end);
    CHECK(begin == 0 && end == 4);
    bn_threadpool_split(10, 4, 2, 3, &begin, &end);
    CHECK(begin == 8 && end == 10);
    bn_threadpool_split(2, 4, 1, 3, &begin, &end);
    CHECK(begin == 2 && end == 2);
    bn_error err;
    bn_threadpool *pool;
    CHECK(bn_threadpool_create(0, &pool, &err) == BN_ERR_INVALID);
}

static void test_registry(void) {
    static bn_kernel_slot slot;
    bn_kernel_reset_counts();
    for (int i = 0; i < 5; i++) bn_kernel_end(&slot, "test.kernel.a", bn_kernel_begin());
    bn_kernel_stats stats[BN_KERNEL_MAX];
    size_t n = bn_kernel_snapshot(stats, BN_KERNEL_MAX);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(stats[i].id, "test.kernel.a")) found = (int)stats[i].calls;
    CHECK(found == 5);
    CHECK(bn_kernel_register("test.kernel.a") == bn_kernel_register("test.kernel.a"));
    bn_kernel_reset_counts();
    CHECK(bn_kernel_snapshot(stats, BN_KERNEL_MAX) == 0);
}

static void test_isa(void) {
    bn_error err;
    CHECK(bn_isa_supported(BN_ISA_SCALAR));
    CHECK(bn_isa_set_active_by_name("scalar", &err) == BN_OK);
    CHECK(bn_isa_active() == BN_ISA_SCALAR);
    CHECK(bn_isa_set_active_by_name("sse9", &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "sse9");
    char features[256];
    bn_cpu_features_describe(features, sizeof features);
    printf("cpu features: %s; best path %s\n", features, bn_isa_name(bn_isa_best_supported()));
}

int main(void) {
    for (int n = 1; n <= 4; n++) test_pool(n);
    test_split();
    test_registry();
    test_isa();
    return bn_test_finish("test_threadpool");
}
