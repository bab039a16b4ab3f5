/*
 * matmul_neondot.c: aarch64 matrix kernels with the ARMv8.2 dot-product instructions (built with
 * -march=armv8.2-a+dotprod; run only where HWCAP_ASIMDDP is set); contracts in ref_matmul.h /
 * neon_isa.h. SDOT adds four int8 x int8 products into each int32 lane: for I2_S the codes
 * (0..2) against the activations (the driver, i2s_neon_sums.h, subtracts the activation sum;
 * for TQ2_0 one SDOT lane is exactly one of llama.cpp's eight lanes, tq2_neon_sums.h; TQ1_0 alike
 * once decoded), for the int8 head the weights against the activations. The sums are exact, so they
 * equal the scalar reference's whatever the lane order.
 */
#include "kernels/cpu/neon_isa.h"

#include "kernels/cpu/i2s_neon_sums.h"
#include "kernels/cpu/tq1_neon_sums.h"
#include "kernels/cpu/tq2_neon_sums.h"
#include "quant/quant_format.h"

#include <arm_neon.h>

static inline int32x4_t i2s_block_acc(int32x4_t acc, const uint8_t *block, const int8_t *x) {
    uint8x16_t codes[8];
    i2s_neon_codes(codes, block);
    int32x4_t acc2 = vdupq_n_s32(0); /* two chains: SDOT latency */
    for (int k = 0; k < 8; k += 2) {
        acc = vdotq_s32(acc, vreinterpretq_s8_u8(codes[k]), vld1q_s8(x + 16 * k));
        acc2 = vdotq_s32(acc2, vreinterpretq_s8_u8(codes[k + 1]), vld1q_s8(x + 16 * k + 16));
    }
    return vaddq_s32(acc, acc2);
}

/* SDOT sums four consecutive bytes per lane: exactly llama.cpp's lane grouping. */
static inline void tq2_block_lanes(int32x4_t lanes[2], const uint8_t *qs, const int8_t *x) {
    lanes[0] = vdupq_n_s32(0);
    lanes[1] = vdupq_n_s32(0);
    for (int h = 0; h < 2; h++) {
        const uint8x16_t lo = vld1q_u8(qs + 32 * h), hi = vld1q_u8(qs + 32 * h + 16);
        for (int n = 0; n < 4; n++) {
            const int8_t *xp = x + 128 * h + 32 * n;
            lanes[0] = vdotq_s32(lanes[0], tq2_field(lo, n), vld1q_s8(xp));
            lanes[1] = vdotq_s32(lanes[1], tq2_field(hi, n), vld1q_s8(xp + 16));
        }
    }
}

/* The same for a decoded TQ1_0 block (tq1_neon_sums.h). */
static inline void tq1_block_lanes(int32x4_t lanes[2], const int8x16_t codes[16], const int8_t *x) {
    for (int half = 0; half < 2; half++) {
        int32x4_t acc = vdupq_n_s32(0), acc2 = vdupq_n_s32(0); /* two chains: SDOT latency */
        for (int k = 8 * half; k < 8 * half + 8; k += 2) {
            acc = vdotq_s32(acc, codes[k], vld1q_s8(x + tq1_column[k]));
            acc2 = vdotq_s32(acc2, codes[k + 1], vld1q_s8(x + tq1_column[k + 1]));
        }
        lanes[half] = vaddq_s32(acc, acc2);
    }
}

void bn_neondot_ternary_sums(int32_t *out, const bn_ternary_matrix *matrix, const bn_act_view *act,
                             int row_begin, int row_end) {
    if (matrix->file_type == BN_TYPE_TQ2_0)
        tq2_neon_sums(out, matrix, act, row_begin, row_end);
    else if (matrix->file_type == BN_TYPE_TQ1_0)
        tq1_neon_sums(out, matrix, act, row_begin, row_end);
    else
        i2s_neon_sums(out, matrix, act, row_begin, row_end);
}

void bn_neondot_int8_sums(int32_t *out, const bn_int8_matrix *matrix, const bn_act_view *act,
                          int row_begin, int row_end) {
    const int cols = matrix->cols;
    for (int r = row_begin; r < row_end; r++) {
        const int8_t *wr = matrix->q + (size_t)r * cols;
        for (int t = 0; t < act->n_tokens; t++) {
            const int8_t *qt = act->q + (size_t)t * cols;
            int32x4_t acc = vdupq_n_s32(0);
            int c = 0;
            for (; c + 16 <= cols; c += 16)
                acc = vdotq_s32(acc, vld1q_s8(wr + c), vld1q_s8(qt + c));
            int32_t sum = vaddvq_s32(acc);
            for (; c < cols; c++) sum += wr[c] * qt[c];
            out[(size_t)(r - row_begin) * act->n_tokens + t] = sum;
        }
    }
}
