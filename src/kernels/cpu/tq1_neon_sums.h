/*
 * tq1_neon_sums.h: the TQ1_0 sums driver of the two aarch64 paths, included by matmul_neon.c and
 * matmul_neondot.c, which define (after the include) the product of a decoded block with its
 * Q8_K activations in llama.cpp's eight lanes (ref_matmul.h):
 *   static inline void tq1_block_lanes(int32x4_t lanes[2], const int8x16_t codes[16],
 *                                      const int8_t *x);
 * codes[k] holding the 16 codes (0..2) of the 16 columns from x + tq1_column[k]: codes[0..7] feed
 * lanes 0..3 and codes[8..15] lanes 4..7, four consecutive bytes per lane.
 *
 * A block (quant/ternary.h) is qs[48], qh[4], d: digit n (0..4) of byte m of qs[0..31] is column
 * 32n + m; digit n of byte m of qs[32..47] is column 160 + 16n + m; digit n (0..3) of byte j of qh
 * is column 240 + 4n + j. Lane L takes the columns with (i % 32) / 4 == L, so bytes 0..15 of a
 * 32-column chunk go to lanes 0..3 and bytes 16..31 to lanes 4..7: the 160 + 16n columns of even
 * n start a chunk, those of odd n end one, and the qh columns are bytes 16..31 of the last chunk.
 * A digit is (uint8)(b * 3^n) * 3 >> 8, i.e. (t >= 86) + (t >= 171) of the scaled byte t. The
 * block is decoded once and used for every token; the driver subtracts the lane terms of
 * act->lane_sums (when given), as the reference does.
 */
#ifndef BN_KERNELS_CPU_TQ1_NEON_SUMS_H
#define BN_KERNELS_CPU_TQ1_NEON_SUMS_H

#include "kernels/cpu/ref_matmul.h"
#include "quant/ternary.h"

#include <arm_neon.h>
#include <string.h>

static inline void tq1_block_lanes(int32x4_t lanes[2], const int8x16_t codes[16], const int8_t *x);

/* The first column of each code vector of a decoded block (lanes 0..3, then lanes 4..7). */
static const int tq1_column[16] = {0,  32, 64, 96,  128, 160, 192, 224,
                                   16, 48, 80, 112, 144, 176, 208, 240};

/* Base-3 digit of bytes already multiplied by 3^n (mod 256). */
static inline int8x16_t tq1_digit(uint8x16_t t) {
    const uint8x16_t ge86 = vshrq_n_u8(vcgeq_u8(t, vdupq_n_u8(86)), 7);
    const uint8x16_t ge171 = vshrq_n_u8(vcgeq_u8(t, vdupq_n_u8(171)), 7);
    return vreinterpretq_s8_u8(vaddq_u8(ge86, ge171));
}

/* The 16 code vectors of one block, in tq1_column's order. */
static inline void tq1_decode(int8x16_t codes[16], const uint8_t *block) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    static const uint8_t qh_pow3[16] = {1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27};
    const uint8x16_t lo = vld1q_u8(block), hi = vld1q_u8(block + 16), tail = vld1q_u8(block + 32);
    for (int n = 0; n < 5; n++) {
        const uint8x16_t k = vdupq_n_u8(pow3[n]);
        codes[n] = tq1_digit(vmulq_u8(lo, k));
        codes[8 + n] = tq1_digit(vmulq_u8(hi, k));
    }
    codes[5] = tq1_digit(tail);
    codes[13] = tq1_digit(vmulq_u8(tail, vdupq_n_u8(3)));
    codes[6] = tq1_digit(vmulq_u8(tail, vdupq_n_u8(9)));
    codes[14] = tq1_digit(vmulq_u8(tail, vdupq_n_u8(27)));
    codes[7] = tq1_digit(vmulq_u8(tail, vdupq_n_u8(81)));
    uint32_t qh;
    memcpy(&qh, block + 48, sizeof qh);
    codes[15] = tq1_digit(vmulq_u8(vreinterpretq_u8_u32(vdupq_n_u32(qh)), vld1q_u8(qh_pow3)));
}

/* out[((r - row_begin) * n_tokens + t) * groups + 8b + L]: bn_ref_ternary_sums of TQ1_0. */
static void tq1_neon_sums(int32_t *out, const bn_ternary_matrix *m, const bn_act_view *act,
                          int row_begin, int row_end) {
    const int blocks = m->cols / BN_TQ_BLOCK, groups = blocks * BN_TQ_LANES;
    const size_t stride = (size_t)blocks * BN_TQ1_BLOCK_BYTES;
    for (int r = row_begin; r < row_end; r++) {
        const uint8_t *row = m->data + (size_t)r * stride;
        for (int b = 0; b < blocks; b++) {
            int8x16_t codes[16];
            tq1_decode(codes, row + (size_t)b * BN_TQ1_BLOCK_BYTES);
            for (int t = 0; t < act->n_tokens; t++) {
                int32x4_t lanes[2];
                tq1_block_lanes(lanes, codes,
                                act->q + (size_t)t * m->cols + (size_t)b * BN_TQ_BLOCK);
                if (act->lane_sums) {
                    const int32_t *ls = act->lane_sums + ((size_t)t * blocks + b) * BN_TQ_LANES;
                    lanes[0] = vsubq_s32(lanes[0], vld1q_s32(ls));
                    lanes[1] = vsubq_s32(lanes[1], vld1q_s32(ls + 4));
                }
                int32_t *o = out + ((size_t)(r - row_begin) * act->n_tokens + t) * groups +
                             (size_t)b * BN_TQ_LANES;
                vst1q_s32(o, lanes[0]);
                vst1q_s32(o + 4, lanes[1]);
            }
        }
    }
}

#endif
