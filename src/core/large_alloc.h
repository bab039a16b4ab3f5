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
 * Ownership: the caller frees with bn_large_free and the same size; pieces of an arena go with
 * the arena.
 */
#ifndef BN_CORE_LARGE_ALLOC_H
#define BN_CORE_LARGE_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

/* At least 4096-byte aligned, zero-filled; NULL when bytes is 0 or the mapping fails. */
void *bn_large_alloc(size_t bytes);
/* Releases a buffer from bn_large_alloc (NULL is ignored). */
void bn_large_free(void *buffer, size_t bytes);

/* One bn_large_alloc region handed out in pieces, for many buffers that live and die together
 * (a model's repacked weight matrices): placed end to end they share whole huge pages, where one
 * mapping per matrix left every matrix under 2 MiB (and each one's last partial 2 MiB) in small
 * pages. Measured on the development machine, the 2B-4T shape's ternary matrices of one token
 * read at 2 threads, probe at about 50 GB/s: 47 GB/s on huge pages, 31 GB/s on small ones; one
 * region per matrix left 153 of 521 MB in small pages. Under AddressSanitizer no region is made
 * (bn_large_arena_init returns false), so each buffer keeps its own heap block and overruns
 * between them are still reported. */
typedef struct bn_large_arena {
    unsigned char *base; /* NULL: no region */
    size_t size, used;
} bn_large_arena;

/* Maps a region of bytes; false (arena left empty) when bytes is 0, the mapping fails, or under
 * AddressSanitizer. */
bool bn_large_arena_init(bn_large_arena *arena, size_t bytes);
/* The next bytes of the region, 4096-byte aligned and zero-filled; NULL when arena is NULL,
 * empty, or has no room left (the caller then allocates on its own). */
void *bn_large_arena_take(bn_large_arena *arena, size_t bytes);
/* Unmaps the region (an empty arena is ignored); buffers taken from it are gone. */
void bn_large_arena_release(bn_large_arena *arena);

#endif
