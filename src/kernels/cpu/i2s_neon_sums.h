/*
 * i2s_neon_sums.h: the I2_S sums driver of the two aarch64 paths, included (and so compiled
 * twice) by matmul_neon.c and matmul_neondot.c. The includer defines (after the include) the one
 * thing that differs, the product of a 128-weight block with its activations:
 *   static inline int32x4_t i2s_block_acc(int32x4_t acc, const uint8_t *block, const int8_t *x);
 * adding sum_i code_i * x[i] (code = weight + 1, 0..2) to the lanes of acc in any order (the sums
 * are exact integers). The driver subtracts the row's activation sum (act->sums) at the end,
 * which turns the unsigned codes into the weights (spec section 4).
 *
 * One token over whole tiles of the I2S_TILE8 layout reads each tile as one sequential stream
 * (eight rows' accumulators at once, software prefetch ahead); everything else (a few tokens,
 * partial tiles, the FILE layout) runs row by row through bn_i2s_row_at.
 */
#ifndef BN_KERNELS_CPU_I2S_NEON_SUMS_H
#define BN_KERNELS_CPU_I2S_NEON_SUMS_H

#include "kernels/cpu/ref_matmul.h"
#include "quant/ternary.h"

#include <arm_neon.h>
#include <stdbool.h>

/* Bytes ahead of the current load that the tile stream prefetches. */
#define I2S_NEON_PREFETCH_DISTANCE 8192

/* The block's 2-bit fields as codes in column order: field n (bits 7-2n..6-2n) of byte j is
 * column 32n + j; out[2n] holds columns 32n..32n+15, out[2n + 1] columns 32n+16..32n+31. */
static inline void i2s_neon_codes(uint8x16_t out[8], const uint8_t *block) {
    const uint8x16_t b0 = vld1q_u8(block), b1 = vld1q_u8(block + 16), three = vdupq_n_u8(3);
    out[0] = vshrq_n_u8(b0, 6);
    out[1] = vshrq_n_u8(b1, 6);
    out[2] = vandq_u8(vshrq_n_u8(b0, 4), three);
    out[3] = vandq_u8(vshrq_n_u8(b1, 4), three);
    out[4] = vandq_u8(vshrq_n_u8(b0, 2), three);
    out[5] = vandq_u8(vshrq_n_u8(b1, 2), three);
    out[6] = vandq_u8(b0, three);
    out[7] = vandq_u8(b1, three);
}

static inline int32x4_t i2s_block_acc(int32x4_t acc, const uint8_t *block, const int8_t *x);

/* One full tile of 8 rows, one token: raw[i] = sum of code * x over row i. */
static void i2s_neon_gemv_tile(int32_t raw[BN_I2S_TILE_ROWS], const uint8_t *tile, const int8_t *x,
                               int cols) {
    const int pairs = cols / 256;
    int32x4_t acc[BN_I2S_TILE_ROWS];
    for (int i = 0; i < BN_I2S_TILE_ROWS; i++) acc[i] = vdupq_n_s32(0);
    for (int p = 0; p < pairs; p++) {
        const uint8_t *wp = tile + (size_t)p * 64 * BN_I2S_TILE_ROWS;
        const int8_t *xp = x + (size_t)p * 256;
        for (int line = 0; line < 64 * BN_I2S_TILE_ROWS; line += 64)
            __builtin_prefetch(wp + I2S_NEON_PREFETCH_DISTANCE + line, 0, 0);
        for (int i = 0; i < BN_I2S_TILE_ROWS; i++) {
            acc[i] = i2s_block_acc(acc[i], wp + 64 * i, xp);
            acc[i] = i2s_block_acc(acc[i], wp + 64 * i + 32, xp + 128);
        }
    }
    if (cols % 256) {
        const uint8_t *tails = tile + (size_t)pairs * 64 * BN_I2S_TILE_ROWS;
        for (int i = 0; i < BN_I2S_TILE_ROWS; i++)
            acc[i] = i2s_block_acc(acc[i], tails + 32 * i, x + (size_t)pairs * 256);
    }
    for (int i = 0; i < BN_I2S_TILE_ROWS; i++) raw[i] = vaddvq_s32(acc[i]);
}

/* out[(r - row_begin) * n_tokens + t]: the exact I2_S sums of bn_ref_ternary_sums. */
static void i2s_neon_sums(int32_t *out, const bn_ternary_matrix *m, const bn_act_view *act,
                          int row_begin, int row_end) {
    const int cols = m->cols, n_tokens = act->n_tokens, blocks = cols / BN_I2S_BLOCK;
    int r = row_begin;
    if (n_tokens == 1 && m->layout == BN_LAYOUT_I2S_TILE8 && r % BN_I2S_TILE_ROWS == 0)
        for (; r + BN_I2S_TILE_ROWS <= row_end; r += BN_I2S_TILE_ROWS) {
            int32_t raw[BN_I2S_TILE_ROWS];
            i2s_neon_gemv_tile(raw, bn_i2s_row_at(m, r).first, act->q, cols);
            for (int i = 0; i < BN_I2S_TILE_ROWS; i++)
                out[r - row_begin + i] = raw[i] - act->sums[0];
        }
    for (; r < row_end; r++) {
        const bn_i2s_row where = bn_i2s_row_at(m, r);
        for (int t = 0; t < n_tokens; t++) {
            const int8_t *x = act->q + (size_t)t * cols;
            int32x4_t acc = vdupq_n_s32(0);
            for (int b = 0; b < blocks; b++) {
                const uint8_t *block = b / 2 < cols / 256
                                           ? where.first + (size_t)(b / 2) * where.pair_stride +
                                                 (size_t)(b % 2) * BN_I2S_BLOCK_BYTES
                                           : where.tail;
                acc = i2s_block_acc(acc, block, x + (size_t)b * BN_I2S_BLOCK);
            }
            out[(size_t)(r - row_begin) * n_tokens + t] = vaddvq_s32(acc) - act->sums[t];
        }
    }
}

#endif
