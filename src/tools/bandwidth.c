/*
 * bandwidth.c: the streaming read bandwidth measurement (see bandwidth.h). Each pass is one
 * bn_threadpool_run over the whole buffer, timed from before the run to after every thread has
 * finished, so the figure is what all threads together pull from memory, as in a decode step.
 */
#include "tools/bandwidth.h"

#include "core/large_alloc.h"
#include "kernels/cpu_features.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BN_BANDWIDTH_MAX_THREADS 256

typedef struct sum_job {
    uint64_t *data;
    size_t bytes;
    bool fill;            /* write the share instead of summing it */
    uint64_t (*simd_sum)(const uint64_t *data, size_t bytes); /* NULL: the scalar loop */
    uint64_t sums[BN_BANDWIDTH_MAX_THREADS * 8]; /* one 64-byte line per thread */
} sum_job;

uint64_t bn_bandwidth_sum_scalar(const uint64_t *data, size_t bytes) {
    size_t n = bytes / 8;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        s0 += data[i];
        s1 += data[i + 1];
        s2 += data[i + 2];
        s3 += data[i + 3];
    }
    return s0 + s1 + s2 + s3;
}

static void sum_share(void *context, int thread_index, int n_threads) {
    sum_job *job = context;
    long begin, end;
    /* Shares in 4 KiB pages: every thread streams whole pages of its own. */
    bn_threadpool_split((long)(job->bytes / 4096), 1, thread_index, n_threads, &begin, &end);
    uint64_t *start = job->data + (size_t)begin * 512;
    size_t bytes = (size_t)(end - begin) * 4096;
    if (job->fill) {
        for (size_t i = 0; i < bytes / 8; i++) start[i] = (uint64_t)(begin * 512) + i;
        return;
    }
    uint64_t sum = job->simd_sum ? job->simd_sum(start, bytes) : bn_bandwidth_sum_scalar(start, bytes);
    if (thread_index < BN_BANDWIDTH_MAX_THREADS) job->sums[thread_index * 8] += sum;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct bn_bandwidth_probe {
    sum_job *job;
    int passes_run; /* summing passes so far (the checksum grows by one buffer sum each) */
};

bn_status bn_bandwidth_probe_create(bn_bandwidth_probe **out, bn_threadpool *pool, size_t buffer_bytes,
                                    bn_error *err) {
    *out = NULL;
    if (bn_threadpool_size(pool) > BN_BANDWIDTH_MAX_THREADS)
        return bn_error_set(err, BN_ERR_INVALID, "bandwidth: at most %d threads",
                            BN_BANDWIDTH_MAX_THREADS);
    buffer_bytes &= ~(size_t)4095;
    if (buffer_bytes < ((size_t)1 << 20)) buffer_bytes = (size_t)1 << 20;
    bn_bandwidth_probe *probe = calloc(1, sizeof *probe);
    sum_job *job = calloc(1, sizeof *job);
    /* the same kind of memory as the repacked weights (huge pages where allowed), so the kernels'
     * ratio to this probe does not profit from a difference in TLB reach */
    if (job) job->data = bn_large_alloc(buffer_bytes);
    if (!probe || !job || !job->data) {
        if (job) bn_large_free(job->data, buffer_bytes);
        free(job);
        free(probe);
        return bn_error_set(err, BN_ERR_NOMEM, "bandwidth: cannot allocate a %zu-byte buffer",
                            buffer_bytes);
    }
    job->bytes = buffer_bytes;
    if (bn_isa_supported(BN_ISA_AVX2)) job->simd_sum = BN_X86_KERNEL(bn_bandwidth_sum_avx2);
    if (bn_isa_supported(BN_ISA_NEON)) job->simd_sum = BN_ARM_KERNEL(bn_bandwidth_sum_neon);
    job->fill = true;
    bn_threadpool_run(pool, sum_share, job);
    job->fill = false;
    bn_threadpool_run(pool, sum_share, job); /* warm-up */
    probe->job = job;
    probe->passes_run = 1;
    *out = probe;
    return BN_OK;
}

size_t bn_bandwidth_probe_bytes(const bn_bandwidth_probe *probe) { return probe->job->bytes; }

const char *bn_bandwidth_probe_path(const bn_bandwidth_probe *probe) {
    return !probe->job->simd_sum ? "scalar" : bn_isa_supported(BN_ISA_NEON) ? "neon" : "avx2";
}

/* One timed full read pass. */
static double timed_pass(bn_bandwidth_probe *probe, bn_threadpool *pool) {
    double t0 = now_seconds();
    bn_threadpool_run(pool, sum_share, probe->job);
    probe->passes_run++;
    return now_seconds() - t0;
}

/* The sums are used, so no compiler may drop the loads: they must equal passes_run times the
 * closed-form sum of the fill pattern 0, 1, 2, ... (mod 2^64). */
static bool probe_sums_ok(const bn_bandwidth_probe *probe) {
    uint64_t total = 0;
    for (int t = 0; t < BN_BANDWIDTH_MAX_THREADS; t++) total += probe->job->sums[t * 8];
    uint64_t words = probe->job->bytes / 8;
    uint64_t expected_once = (words % 2 == 0) ? (words / 2) * (words - 1) : words * ((words - 1) / 2);
    return total == expected_once * (uint64_t)probe->passes_run;
}

bn_status bn_bandwidth_probe_run(bn_bandwidth_probe *probe, bn_threadpool *pool, int passes,
                                 double *best_bytes_per_second, bn_error *err) {
    if (passes < 1 || passes > 1000)
        return bn_error_set(err, BN_ERR_INVALID, "bandwidth: passes must be 1..1000, got %d", passes);
    double best = 0;
    for (int p = 0; p < passes; p++) {
        double seconds = timed_pass(probe, pool);
        if (p == 0 || seconds < best) best = seconds;
    }
    if (!probe_sums_ok(probe))
        return bn_error_set(err, BN_ERR_MISMATCH, "bandwidth: checksum of the buffer is wrong");
    *best_bytes_per_second = (double)probe->job->bytes / best;
    return BN_OK;
}

void bn_bandwidth_probe_free(bn_bandwidth_probe *probe) {
    if (!probe) return;
    bn_large_free(probe->job->data, probe->job->bytes);
    free(probe->job);
    free(probe);
}

bn_status bn_measure_read_bandwidth(bn_bandwidth_result *out, bn_threadpool *pool,
                                    size_t buffer_bytes, int passes, bn_error *err) {
    memset(out, 0, sizeof *out);
    if (passes < 1 || passes > 1000)
        return bn_error_set(err, BN_ERR_INVALID, "bandwidth: passes must be 1..1000, got %d", passes);
    double *seconds = malloc((size_t)passes * sizeof *seconds);
    if (!seconds) return bn_error_set(err, BN_ERR_NOMEM, "bandwidth: no memory for %d passes", passes);
    bn_bandwidth_probe *probe;
    bn_status st = bn_bandwidth_probe_create(&probe, pool, buffer_bytes, err);
    if (st != BN_OK) {
        free(seconds);
        return st;
    }
    for (int p = 0; p < passes; p++) seconds[p] = timed_pass(probe, pool);
    bool sums_ok = probe_sums_ok(probe);
    qsort(seconds, (size_t)passes, sizeof *seconds, compare_double);
    double median = passes % 2 ? seconds[passes / 2]
                               : 0.5 * (seconds[passes / 2 - 1] + seconds[passes / 2]);
    size_t bytes = bn_bandwidth_probe_bytes(probe);
    out->median_bytes_per_second = (double)bytes / median;
    out->best_bytes_per_second = (double)bytes / seconds[0];
    out->buffer_bytes = bytes;
    out->passes = passes;
    out->threads = bn_threadpool_size(pool);
    out->path = bn_bandwidth_probe_path(probe);
    free(seconds);
    bn_bandwidth_probe_free(probe);
    if (!sums_ok) return bn_error_set(err, BN_ERR_MISMATCH, "bandwidth: checksum of the buffer is wrong");
    return BN_OK;
}
