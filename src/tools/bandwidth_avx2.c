/*
 * bandwidth_avx2.c: the AVX2 summing loop of the bandwidth measurement (see bandwidth.h). Four
 * 256-bit accumulators take 128 bytes per iteration, enough independent loads to keep the memory
 * system saturated; the 64-bit lane sums equal the scalar loop's.
 */
#include "tools/bandwidth.h"

#include <immintrin.h>

uint64_t bn_bandwidth_sum_avx2(const uint64_t *data, size_t bytes) {
    const __m256i *p = (const __m256i *)data;
    size_t n = bytes / 128;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i++, p += 4) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(p));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(p + 1));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(p + 2));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(p + 3));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, s);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}
