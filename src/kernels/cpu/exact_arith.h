/*
 * exact_arith.h: the small pieces of spec section 4.1's arithmetic (bitnet.cpp's batch path,
 * ggml's AVX-512 build) that every CPU path shares, so the scalar reference, the AVX2 and the
 * AVX-512 kernels round alike: ggml's polynomial exp, the 16-lane halving sum, and the RMSNorm
 * scale from a sum of squares. Header-only (static inline): the SIMD files use the scalar forms
 * for their tails and special cases, and nothing here needs an ISA beyond scalar FMA (fmaf).
 */
#ifndef BN_KERNELS_CPU_EXACT_ARITH_H
#define BN_KERNELS_CPU_EXACT_ARITH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Lanes of every float reduction of section 4.1 (ggml's __m512): the Q.K dot, the softmax chunk
 * sums, P.V and the F16 head. Paths with narrower vectors keep 16 lanes in two or more registers. */
#define BN_EXACT_LANES 16

/* Constants of ggml_v_expf: exp(x) = 2^n * p(b), n = round(x * log2(e)) by the 1.5 * 2^23 shift,
 * b = x - n * ln2 with ln2 split in two, p a degree-5 polynomial evaluated with FMAs. */
#define BN_EXPF_SHIFT 0x1.8p23f
#define BN_EXPF_LOG2E 0x1.715476p+0f
#define BN_EXPF_LN2_HI 0x1.62e4p-1f
#define BN_EXPF_LN2_LO 0x1.7f7d1cp-20f
#define BN_EXPF_C5 0x1.0e4020p-7f
#define BN_EXPF_C4 0x1.573e2ep-5f
#define BN_EXPF_C3 0x1.555e66p-3f
#define BN_EXPF_C2 0x1.fffdb6p-2f
#define BN_EXPF_C1 0x1.ffffecp-1f
/* |n| beyond this: the result is 0 (n <= 0) or +inf, as ggml's blend does. */
#define BN_EXPF_N_LIMIT 192.0f

/* 2^k as a float for -126 <= k <= 127. */
static inline float bn_pow2f(int k) {
    const uint32_t bits = (uint32_t)(k + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ggml_v_expf for one float, operation for operation (every fma single-rounded): the same bits
 * as one lane of ggml's AVX-512 code, and as the SIMD paths here. 2^n is applied as two exact
 * powers (n split in halves), so a subnormal result rounds once, as vscalefps does. */
static inline float bn_expf_ggml(float x) {
    const float z = fmaf(x, BN_EXPF_LOG2E, BN_EXPF_SHIFT);
    const float n = z - BN_EXPF_SHIFT;
    const float b = fmaf(-n, BN_EXPF_LN2_LO, fmaf(-n, BN_EXPF_LN2_HI, x));
    if (fabsf(n) > BN_EXPF_N_LIMIT) return n <= 0.0f ? 0.0f : INFINITY;
    if (isnan(n)) return n;
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(BN_EXPF_C5, b, BN_EXPF_C4), u, fmaf(BN_EXPF_C3, b, BN_EXPF_C2)), u,
                         fmaf(BN_EXPF_C1, b, 1.0f));
    const int ni = (int)n, n1 = ni / 2, n2 = ni - n1;
    return j * bn_pow2f(n1) * bn_pow2f(n2);
}

/* The 16-lane halving sum (_mm512_reduce_add_ps as compilers lower it): lanes l and l + 8, then
 * l + 4, l + 2, l + 1, each sum rounded to float. */
static inline float bn_tree16(const float lanes[BN_EXACT_LANES]) {
    float v[8];
    for (int l = 0; l < 8; l++) v[l] = lanes[l] + lanes[l + 8];
    for (int l = 0; l < 4; l++) v[l] = v[l] + v[l + 4];
    for (int l = 0; l < 2; l++) v[l] = v[l] + v[l + 2];
    return v[0] + v[1];
}

/* RMSNorm's mean from the double sum of the float squares of cols values: (float)(sum / cols). */
static inline float bn_rmsnorm_mean(double sum_squares, int cols) {
    return (float)(sum_squares / (double)cols);
}

/* RMSNorm's scale from its mean: 1.0f / sqrtf(mean + eps), in float. */
static inline float bn_rmsnorm_scale(float mean, float eps) { return 1.0f / sqrtf(mean + eps); }

/* The SIMD paths add the squares in lanes, not in order. Any order's double sum of n
 * non-negative terms lies within (n - 1) 2^-53 (1 + tiny) of the exact sum, so the sequential sum
 * lies within 4 n 2^-53 of a lanes' sum P (both bounds and the rounding of the bounds included).
 * When the means of both ends of that interval round to the same float, the sequential sum's
 * mean is that float too (division and rounding are monotone): true, with *mean set. Otherwise
 * (about one norm in 10^5 on real activations, and NaN) the caller adds the squares in order. */
static inline bool bn_rmsnorm_mean_certain(double any_order_sum, int cols, float *mean) {
    const double margin = 4.0 * (double)cols * 0x1p-53;
    const float low = bn_rmsnorm_mean(any_order_sum * (1.0 - margin), cols);
    const float high = bn_rmsnorm_mean(any_order_sum * (1.0 + margin), cols);
    if (low != high) return false;
    *mean = low;
    return true;
}

#endif
