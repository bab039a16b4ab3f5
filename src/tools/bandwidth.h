/*
 * bandwidth.h: streaming read bandwidth of this machine, measured the way decode reads weights:
 * every thread of a pool sums its own contiguous share of a buffer far larger than the last-level
 * cache (SIMD loads, several independent accumulators, so the loop is bound by memory, not by the
 * adds). `bitnet bench` compares tokens/s x bytes per token against this figure measured in the
 * same run with the same thread count.
 */
#ifndef BN_TOOLS_BANDWIDTH_H
#define BN_TOOLS_BANDWIDTH_H

#include "bitnet.h"
#include "kernels/threadpool.h"

#include <stddef.h>
#include <stdint.h>

#define BN_BANDWIDTH_DEFAULT_BYTES ((size_t)512 << 20) /* 16x a 32 MiB L3 */
#define BN_BANDWIDTH_DEFAULT_PASSES 7

typedef struct bn_bandwidth_result {
    double best_bytes_per_second;   /* the headline figure: the fastest timed pass, as the
                                     * kernel benchmark reports it (the strictest ceiling) */
    double median_bytes_per_second; /* shows how steady the passes were */
    size_t buffer_bytes;
    int passes;  /* timed passes (one untimed warm-up pass comes first) */
    int threads;
    const char *path; /* "avx2" or "scalar": the summing loop that ran */
} bn_bandwidth_result;

/* Allocates buffer_bytes (rounded down to 4 KiB, at least 1 MiB), writes it (so every page is
 * really backed), then times `passes` full read passes over it on pool (NULL = this thread).
 * The buffer is freed before returning. */
bn_status bn_measure_read_bandwidth(bn_bandwidth_result *out, bn_threadpool *pool,
                                    size_t buffer_bytes, int passes, bn_error *err);

/* A buffer kept for repeated short measurements (bitnet bench probes the bandwidth right before
 * and after each tg repetition, because a shared machine's bandwidth changes from one second to
 * the next). create allocates, writes and reads it once (untimed); run times `passes` full read
 * passes and gives the fastest one's bytes per second; free releases it. */
typedef struct bn_bandwidth_probe bn_bandwidth_probe;
bn_status bn_bandwidth_probe_create(bn_bandwidth_probe **out, bn_threadpool *pool, size_t buffer_bytes,
                                    bn_error *err);
bn_status bn_bandwidth_probe_run(bn_bandwidth_probe *probe, bn_threadpool *pool, int passes,
                                 double *best_bytes_per_second, bn_error *err);
size_t bn_bandwidth_probe_bytes(const bn_bandwidth_probe *probe);
const char *bn_bandwidth_probe_path(const bn_bandwidth_probe *probe);
void bn_bandwidth_probe_free(bn_bandwidth_probe *probe);

/* The summing loops (bytes a multiple of 128, data 32-byte aligned); exposed for tests, which
 * check both give the same sum. */
uint64_t bn_bandwidth_sum_scalar(const uint64_t *data, size_t bytes);
uint64_t bn_bandwidth_sum_avx2(const uint64_t *data, size_t bytes); /* x86-64 builds */
uint64_t bn_bandwidth_sum_neon(const uint64_t *data, size_t bytes); /* aarch64 builds */

#endif
