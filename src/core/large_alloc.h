/*
 * large_alloc.h: page-granular allocations for large, long-lived buffers that kernels stream
 * through (the repacked ternary weights, the bandwidth probe's buffer).
 *
 * bn_large_alloc maps anonymous memory and asks the kernel for transparent huge pages
 * (MADV_HUGEPAGE; Linux aligns anonymous mappings of 2 MiB or more on huge-page boundaries), so a
 * weight stream takes one TLB entry per 2 MiB instead of one per 4 KiB. The tail that does not
 * fill a huge page stays in small pages, so resident memory is the size asked for, rounded up to
 * a 4 KiB page. Where huge pages are off ("never") the advice is ignored and the memory is plain.
 * Measured on the development machine (6912 x 2560 I2_S, weights far larger than the caches,
 * 2 threads): 8-token tile sweeps 237.8 -> 209.3 us; one-token GEMV at 1 thread 35.5 -> 38 GB/s.
 * Under AddressSanitizer they come from the heap, so overruns are still caught.
 * Ownership: the caller frees with bn_large_free and the same size.
 */
#ifndef BN_CORE_LARGE_ALLOC_H
#define BN_CORE_LARGE_ALLOC_H

#include <stddef.h>

/* At least 4096-byte aligned, zero-filled; NULL when bytes is 0 or the mapping fails. */
void *bn_large_alloc(size_t bytes);
/* Releases a buffer from bn_large_alloc (NULL is ignored). */
void bn_large_free(void *buffer, size_t bytes);

#endif
