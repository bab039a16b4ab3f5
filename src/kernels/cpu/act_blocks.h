/*
 * act_blocks.h: llama.cpp's activation blocks, the form ggml's vec_dot_type gives the F32
 * activations before an integer dot product (spec section 9.3): Q8_K for TQ1_0, TQ2_0, Q6_K and
 * Q4_K weights, Q8_0 for Q8_0 weights. Scalar definitions of the quantizers, operation for
 * operation as bitnet.cpp's x86 build computes them:
 *
 *   Q8_K (quantize_row_q8_K_ref, which x86 builds call): per 256 values, m = the first value of
 *   largest |x|; iscale = -127.0f / m; q = min(127, nearest_int(iscale * x)) with ggml's
 *   nearest_int (the 1.5 * 2^23 shift: half to even); d = 1 / iscale; bsums[j] = sum of
 *   q[16j .. 16j + 15]. An all-zero block has d = 0, q = 0 and bsums = 0.
 *   Q8_0 (quantize_row_q8_0's AVX2 path): per 32 values, amax = max |x|; d = fp16(amax / 127.f);
 *   id = amax != 0 ? 127.f / amax : 0; q = round-half-even(x * id), saturated to int8.
 *
 * Ownership: the caller provides the output blocks (cols / 256 or cols / 32 of them per row).
 */
#ifndef BN_KERNELS_CPU_ACT_BLOCKS_H
#define BN_KERNELS_CPU_ACT_BLOCKS_H

#include <stdint.h>

#define BN_Q8K_BLOCK 256
#define BN_Q8_0_BLOCK 32

typedef struct bn_q8k_block {
    float d;
    int8_t qs[BN_Q8K_BLOCK];
    int16_t bsums[BN_Q8K_BLOCK / 16];
} bn_q8k_block;

typedef struct bn_q8_0_block {
    uint16_t d; /* fp16 */
    int8_t qs[BN_Q8_0_BLOCK];
} bn_q8_0_block;

/* ggml's nearest_int: round half to even through the 1.5 * 2^23 shift (exact for |f| <= 2^22;
 * what the bit trick gives otherwise, NaN included). */
static inline int bn_ggml_nearest_int(float f) {
    union { float f; int32_t i; } u;
    u.f = f + 12582912.0f;
    return (u.i & 0x007fffff) - 0x00400000;
}

/* One row of cols values (a multiple of the block size) into cols / block blocks. */
void bn_quantize_row_q8k(bn_q8k_block *out, const float *x, int cols);
void bn_quantize_row_q8_0(bn_q8_0_block *out, const float *x, int cols);

#endif
