/*
 * bandwidth_neon.c: the NEON summing loop of the bandwidth measurement (see bandwidth.h), the
 * aarch64 counterpart of bandwidth_avx2.c. Eight 128-bit accumulators take 128 bytes per
 * iteration; the 64-bit lane sums equal the scalar loop's (integer addition wraps the same way
 * in any order).
 */
#include "tools/bandwidth.h"

#include <arm_neon.h>

uint64_t bn_bandwidth_sum_neon(const uint64_t *data, size_t bytes) {
    const size_t n = bytes / 128;
    uint64x2_t a0 = vdupq_n_u64(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (size_t i = 0; i < n; i++, data += 16) {
        a0 = vaddq_u64(a0, vld1q_u64(data));
        a1 = vaddq_u64(a1, vld1q_u64(data + 2));
        a2 = vaddq_u64(a2, vld1q_u64(data + 4));
        a3 = vaddq_u64(a3, vld1q_u64(data + 6));
        a4 = vaddq_u64(a4, vld1q_u64(data + 8));
        a5 = vaddq_u64(a5, vld1q_u64(data + 10));
        a6 = vaddq_u64(a6, vld1q_u64(data + 12));
        a7 = vaddq_u64(a7, vld1q_u64(data + 14));
    }
    const uint64x2_t s = vaddq_u64(vaddq_u64(vaddq_u64(a0, a1), vaddq_u64(a2, a3)),
                                   vaddq_u64(vaddq_u64(a4, a5), vaddq_u64(a6, a7)));
    return vgetq_lane_u64(s, 0) + vgetq_lane_u64(s, 1);
}
