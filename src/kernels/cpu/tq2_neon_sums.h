/*
 * tq2_neon_sums.h: the TQ2_0 sums driver of the two aarch64 paths, included by matmul_neon.c and
 * matmul_neondot.c, which define (after the include) the product of one block with its Q8_K
 * activations in llama.cpp's eight lanes (ref_matmul.h):
 *   static inline void tq2_block_lanes(int32x4_t lanes[2], const uint8_t *qs, const int8_t *x);
 * setting lanes[0] to lanes 0..3 and lanes[1] to lanes 4..7 of sum code_i * x[i]. Lane L takes the
 * columns with (i % 32) / 4 == L: in a half block h, the 2-bit field n of byte m is column
 * 128h + 32n + m, so bytes 0..15 of the 32 feed lanes 0..3 (four bytes each) and bytes 16..31
 * lanes 4..7, which is what a 4-byte dot product per 32-bit lane gives. The driver subtracts the
 * lane terms of act->lane_sums (when given), as the reference does.
 */
#ifndef BN_KERNELS_CPU_TQ2_NEON_SUMS_H
#define BN_KERNELS_CPU_TQ2_NEON_SUMS_H

#include "kernels/cpu/ref_matmul.h"
#include "quant/ternary.h"

#include <arm_neon.h>

static inline void tq2_block_lanes(int32x4_t lanes[2], const uint8_t *qs, const int8_t *x);

/* The codes of field n of 16 bytes. */
static inline int8x16_t tq2_field(uint8x16_t bytes, int n) {
    const uint8x16_t shifted = vshlq_u8(bytes, vdupq_n_s8((int8_t)(-2 * n)));
    return vreinterpretq_s8_u8(vandq_u8(shifted, vdupq_n_u8(3)));
}

/* out[((r - row_begin) * n_tokens + t) * groups + 8b + L]: bn_ref_ternary_sums of TQ2_0. */
static void tq2_neon_sums(int32_t *out, const bn_ternary_matrix *m, const bn_act_view *act,
                          int row_begin, int row_end) {
    const int blocks = m->cols / BN_TQ_BLOCK, groups = blocks * BN_TQ_LANES;
    const size_t stride = (size_t)blocks * BN_TQ2_BLOCK_BYTES;
    for (int r = row_begin; r < row_end; r++) {
        const uint8_t *row = m->data + (size_t)r * stride;
        for (int t = 0; t < act->n_tokens; t++) {
            const int8_t *x = act->q + (size_t)t * m->cols;
            int32_t *o = out + ((size_t)(r - row_begin) * act->n_tokens + t) * groups;
            for (int b = 0; b < blocks; b++) {
                int32x4_t lanes[2];
                tq2_block_lanes(lanes, row + (size_t)b * BN_TQ2_BLOCK_BYTES,
                                x + (size_t)b * BN_TQ_BLOCK);
                if (act->lane_sums) {
                    const int32_t *ls = act->lane_sums + ((size_t)t * blocks + b) * BN_TQ_LANES;
                    lanes[0] = vsubq_s32(lanes[0], vld1q_s32(ls));
                    lanes[1] = vsubq_s32(lanes[1], vld1q_s32(ls + 4));
                }
                vst1q_s32(o + (size_t)b * BN_TQ_LANES, lanes[0]);
                vst1q_s32(o + (size_t)b * BN_TQ_LANES + 4, lanes[1]);
            }
        }
    }
}

#endif
