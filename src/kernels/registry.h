/*
 * registry.h: the one kernel registry. Every kernel (CPU and CUDA) has a stable id such as
 * "cpu.i2s.gemv.avx2" and counts its calls, and its time when timing is on; receipts are built
 * from these counts, never from labels. Counting is thread-safe and cheap (relaxed atomics).
 *
 * Usage inside a dispatch function:
 *     static bn_kernel_slot slot;               // zero-initialised, registers on first use
 *     uint64_t t0 = bn_kernel_begin();
 *     ... run ...
 *     bn_kernel_end(&slot, "cpu.i2s.gemv.avx2", t0);
 */
#ifndef BN_KERNELS_REGISTRY_H
#define BN_KERNELS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BN_KERNEL_MAX 256

typedef struct bn_kernel_slot {
    int index; /* 0 = not registered yet; else registry index + 1 */
} bn_kernel_slot;

typedef struct bn_kernel_stats {
    const char *id;
    uint64_t calls;
    uint64_t nanoseconds; /* 0 unless timing was on */
} bn_kernel_stats;

/* Registers (once) and returns the registry index for id; -1 when the registry is full. */
int bn_kernel_register(const char *id);
void bn_kernel_set_timing(bool on);
bool bn_kernel_timing(void);
/* Monotonic timestamp in ns when timing is on, else 0. */
uint64_t bn_kernel_begin(void);
/* Counts one call (and the time since t0 when timing is on). */
void bn_kernel_end(bn_kernel_slot *slot, const char *id, uint64_t t0);
/* Counts `calls` calls done in one dispatch (matrix products run together), with its time. */
void bn_kernel_end_n(bn_kernel_slot *slot, const char *id, uint64_t t0, uint64_t calls);
/* Kernels with at least one call, in registration order; returns how many were written. */
size_t bn_kernel_snapshot(bn_kernel_stats *out, size_t max);
void bn_kernel_reset_counts(void);

#endif
