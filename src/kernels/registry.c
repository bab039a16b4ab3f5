/*
 * registry.c: the kernel registry (see registry.h). Ids are registered once into a fixed table;
 * counters are relaxed atomics so every thread can count without locks.
 */
#include "kernels/registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

typedef struct kernel_entry {
    const char *id;
    atomic_uint_fast64_t calls;
    atomic_uint_fast64_t nanoseconds;
} kernel_entry;

static kernel_entry entries[BN_KERNEL_MAX];
static atomic_int entry_count;
static pthread_mutex_t register_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool timing_on;

int bn_kernel_register(const char *id) {
    pthread_mutex_lock(&register_lock);
    int n = atomic_load(&entry_count);
    int found = -1;
    for (int i = 0; i < n; i++) {
        if (!strcmp(entries[i].id, id)) {
            found = i;
            break;
        }
    }
    if (found < 0 && n < BN_KERNEL_MAX) {
        entries[n].id = id;
        atomic_store(&entries[n].calls, 0);
        atomic_store(&entries[n].nanoseconds, 0);
        atomic_store(&entry_count, n + 1);
        found = n;
    }
    pthread_mutex_unlock(&register_lock);
    return found;
}

void bn_kernel_set_timing(bool on) { atomic_store(&timing_on, on); }
bool bn_kernel_timing(void) { return atomic_load_explicit(&timing_on, memory_order_relaxed); }

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bn_kernel_begin(void) { return bn_kernel_timing() ? now_ns() : 0; }

void bn_kernel_end(bn_kernel_slot *slot, const char *id, uint64_t t0) {
    bn_kernel_end_n(slot, id, t0, 1);
}

void bn_kernel_end_n(bn_kernel_slot *slot, const char *id, uint64_t t0, uint64_t calls) {
    int index = __atomic_load_n(&slot->index, __ATOMIC_ACQUIRE);
    if (index == 0) {
        int registered = bn_kernel_register(id);
        if (registered < 0) return; /* table full: not counted (BN_KERNEL_MAX is generous) */
        index = registered + 1;
        __atomic_store_n(&slot->index, index, __ATOMIC_RELEASE);
    }
    kernel_entry *entry = &entries[index - 1];
    atomic_fetch_add_explicit(&entry->calls, calls, memory_order_relaxed);
    if (t0) atomic_fetch_add_explicit(&entry->nanoseconds, now_ns() - t0, memory_order_relaxed);
}

size_t bn_kernel_snapshot(bn_kernel_stats *out, size_t max) {
    int n = atomic_load(&entry_count);
    size_t written = 0;
    for (int i = 0; i < n && written < max; i++) {
        uint64_t calls = atomic_load_explicit(&entries[i].calls, memory_order_relaxed);
        if (!calls) continue;
        out[written].id = entries[i].id;
        out[written].calls = calls;
        out[written].nanoseconds = atomic_load_explicit(&entries[i].nanoseconds, memory_order_relaxed);
        written++;
    }
    return written;
}

void bn_kernel_reset_counts(void) {
    int n = atomic_load(&entry_count);
    for (int i = 0; i < n; i++) {
        atomic_store(&entries[i].calls, 0);
        atomic_store(&entries[i].nanoseconds, 0);
    }
}
