/*
 * large_alloc.c: anonymous mappings with transparent-huge-page advice (see large_alloc.h).
 * Buffers of 2 MiB or more start on a 2 MiB boundary (the mapping is made 2 MiB larger and the
 * unused head and tail are unmapped), so every whole 2 MiB of the buffer can be a huge page.
 * Under AddressSanitizer the buffers come from the heap instead, so that reads past their end
 * are still reported. An arena is one such mapping handed out in 4 KiB-aligned pieces.
 */
#include "core/large_alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define BN_HEAP_BUFFERS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BN_HEAP_BUFFERS 1
#endif
#endif

#define HUGE_PAGE ((size_t)2 << 20)

void *bn_large_alloc(size_t bytes) {
    if (bytes == 0 || bytes > SIZE_MAX - HUGE_PAGE) return NULL;
#ifdef BN_HEAP_BUFFERS
    void *heap = aligned_alloc(4096, (bytes + 4095) & ~(size_t)4095);
    if (heap) memset(heap, 0, bytes);
    return heap;
#else
    const size_t span = bytes >= HUGE_PAGE ? bytes + HUGE_PAGE : bytes;
    uint8_t *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    if (span != bytes) {
        uint8_t *aligned = (uint8_t *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
        uint8_t *end = p + span, *used_end = aligned + bytes;
        uint8_t *tail = (uint8_t *)(((uintptr_t)used_end + 4095) & ~(uintptr_t)4095);
        if (aligned > p) munmap(p, (size_t)(aligned - p));
        if (end > tail) munmap(tail, (size_t)(end - tail));
        p = aligned;
    }
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* advice only: plain pages when refused */
#endif
    return p;
#endif
}

void bn_large_free(void *buffer, size_t bytes) {
    if (!buffer) return;
#ifdef BN_HEAP_BUFFERS
    (void)bytes;
    free(buffer);
#else
    munmap(buffer, bytes);
#endif
}

bool bn_large_arena_init(bn_large_arena *arena, size_t bytes) {
    memset(arena, 0, sizeof *arena);
#ifdef BN_HEAP_BUFFERS
    (void)bytes;
    return false;
#else
    if (bytes == 0 || bytes > SIZE_MAX - 4096) return false;
    bytes = (bytes + 4095) & ~(size_t)4095;
    arena->base = bn_large_alloc(bytes);
    if (!arena->base) return false;
    arena->size = bytes;
    return true;
#endif
}

void *bn_large_arena_take(bn_large_arena *arena, size_t bytes) {
    if (!arena || !arena->base || bytes == 0) return NULL;
    const size_t start = (arena->used + 4095) & ~(size_t)4095;
    if (start > arena->size || bytes > arena->size - start) return NULL;
    arena->used = start + bytes;
    return arena->base + start;
}

void bn_large_arena_release(bn_large_arena *arena) {
    if (arena->base) bn_large_free(arena->base, arena->size);
    memset(arena, 0, sizeof *arena);
}
