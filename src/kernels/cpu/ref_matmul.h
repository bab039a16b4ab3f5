/*
 * ref_matmul.h: scalar reference kernels of the matrix operations in kernels/ops.h (activation
 * quantization, ternary I2_S/TQ2_0/TQ1_0 matmul, F16 and int8 matmul) and the pieces every ISA
 * path shares.
 *
 * Design: the integer and the float halves of a quantized matmul are split. Kernels (scalar, AVX2,
 * AVX-512) only produce exact integers ("sums": one per token and row for I2_S and int8, eight
 * per token, row and 256-weight block for TQ formats); the float finishing step below is one
 * function compiled once, so every path yields identical floats for identical inputs and the
 * result for a token never depends on how many tokens or threads shared the call.
 *
 * TQ formats take llama.cpp's Q8_K activations (spec section 9.3; act_blocks.h): int8 values
 * with one scale d per token and 256-block. Their sums are the eight int32 lanes of llama.cpp's
 * AVX2 dot product (ggml_vec_dot_tq2_0_q8_K / tq1_0): lane L of a block holds
 *   sum over weights i with (i % 32) / 4 == L of code_i * q_i  -  sum of q over i in [32L, 32L + 32)
 * (code = weight + 1; the second term is Q8_K's bsums[2L] + bsums[2L + 1], act->lane_sums). Only
 * the eight together are the block's dot product; each lane is needed alone because the float
 * step accumulates lane by lane: acc[L] = acc[L] + (float)lane * (d_x * d_w) over the blocks in
 * order (a multiply and an add, not fused), then the sum (acc[i] + acc[i + 4]), (0 + 2), (1 + 3),
 * (0 + 1) of hsum_float_8.
 *
 * The F16 dot product is defined with 16 lanes: lane l accumulates, in column order, the products
 * of columns c with c % 16 == l, each as one fused multiply-add (fmaf: the product is not rounded
 * before the add), and the lanes are reduced pairwise (l + 8, then + 4, + 2, + 1). SIMD paths
 * (and the CUDA kernel) reproduce this order exactly. Fused, because a separate multiply and add
 * take two floating-point operations per weight and token where the batched LM head is bound by
 * them: with FMA and two rows per activation load, the 8-token AVX-512 head streams the 2B-4T head
 * in 14.4-15.8 ms against 17.9-18.1 (harness, 2 threads).
 */
#ifndef BN_KERNELS_CPU_REF_MATMUL_H
#define BN_KERNELS_CPU_REF_MATMUL_H

#include "kernels/ops.h"
#include "kernels/variants.h"

#include <stddef.h>
#include <stdint.h>

#define BN_F16_LANES 16

/* Kernel layouts of a ternary matrix (bn_ternary_matrix.layout).
 * FILE: the bytes as stored in the file (rows one after another).
 * I2S_TILE8: I2_S rows in tiles of 8 (the last tile may hold fewer, R): inside a tile, the
 * 64-byte block pairs are interleaved row by row (pair p of rows 0..R-1, then pair p + 1, ...),
 * followed by each row's odd trailing 32-byte block when cols % 256 == 128. A GEMV over a tile
 * then reads one sequential stream; the size equals the file's packed bytes (no scale). */
#define BN_LAYOUT_FILE 0
#define BN_LAYOUT_I2S_TILE8 1
#define BN_I2S_TILE_ROWS 8

/* Where one I2_S row lies in the kernel layout: block pair p at first + p * pair_stride, the odd
 * trailing block (if any) at tail. */
typedef struct bn_i2s_row {
    const uint8_t *first;
    size_t pair_stride;
    const uint8_t *tail;
} bn_i2s_row;

static inline bn_i2s_row bn_i2s_row_at(const bn_ternary_matrix *m, int r) {
    const size_t stride = (size_t)m->cols / 4, pairs = (size_t)m->cols / 256;
    bn_i2s_row row;
    if (m->layout == BN_LAYOUT_I2S_TILE8) {
        int tile_first = r - r % BN_I2S_TILE_ROWS, i = r % BN_I2S_TILE_ROWS;
        size_t in_tile = (size_t)(m->rows - tile_first < BN_I2S_TILE_ROWS ? m->rows - tile_first
                                                                          : BN_I2S_TILE_ROWS);
        const uint8_t *base = m->data + (size_t)tile_first * stride;
        row.first = base + (size_t)i * 64;
        row.pair_stride = 64 * in_tile;
        row.tail = base + pairs * 64 * in_tile + (size_t)i * 32;
    } else {
        row.first = m->data + (size_t)r * stride;
        row.pair_stride = 64;
        row.tail = row.first + pairs * 64;
    }
    return row;
}

/* Prepares with a chosen layout (tests compare layouts; bn_ternary_matrix_prepare picks the
 * kernels' layout: I2S_TILE8 for I2_S, FILE for the others). I2S_TILE8 allocates rows * cols / 4
 * bytes (owned by the matrix). */
bn_status bn_ternary_matrix_prepare_layout(bn_ternary_matrix *matrix, const char *name,
                                           uint32_t file_type, int rows, int cols,
                                           const void *file_data, int layout, bn_error *err);

/* Activation batch as the kernels see it (prepared once per call by kernels/matmul.c). */
typedef struct bn_act_view {
    const int8_t *q;          /* n_tokens x cols, natural order */
    const int8_t *q_pairs;    /* AVX-512 ternary: per 256 columns, the 32-byte groups of the two
                                 128-blocks interleaved (see matmul_avx512.c); else NULL */
    const int32_t *sums;      /* per token: sum of q */
    const int32_t *lane_sums; /* TQ formats: per token and 256-column block, the 8 lane terms
                                 sum of q[32L .. 32L + 31] (see above) */
    const uint8_t *q_unsigned; /* int8 matmul: per path helper copy of q (see the ISA files) */
    const int8_t *q_tiles;    /* AMX ternary GEMM: q as int8 B tiles (cpu/amx_tiles.h); slices
                                 start on multiples of 16 tokens */
    int n_tokens, cols;
    bn_prefetch_hint prefetch; /* knobs of the variant (kernels/variants.h) the kernel runs: */
    bool gfni;                 /* the AVX-512 one-token GEMV's prefetch hint and field decoding */
} bn_act_view;

/* hsum_float_8 of ggml's x86 code: (v[i] + v[i + 4]) for i < 4, then (0 + 2) and (1 + 3), then
 * their sum, each rounded to float. */
static inline float bn_hsum_float8(const float v[8]) {
    const float a0 = v[0] + v[4], a1 = v[1] + v[5], a2 = v[2] + v[6], a3 = v[3] + v[7];
    const float b0 = a0 + a2, b1 = a1 + a3;
    return b0 + b1;
}

/* Integer sums of a ternary matrix per row and token: 1 for I2_S, 8 * cols / 256 for TQ formats
 * (lanes of block 0, then of block 1, ...). */
#define BN_TQ_LANES 8
int bn_ternary_groups(const bn_ternary_matrix *matrix);

/* ---- scalar references ---- */
void bn_ref_quantize_activations(int8_t *q, float *scales, int32_t *sums, const float *x,
                                 int n_tokens, int cols);

/* out[((r - row_begin) * n_tokens + t) * groups + g]: I2_S the exact sum of w[r][c] * q[t][c];
 * TQ formats lane g % 8 of block g / 8 as defined above (act->lane_sums NULL: the first term only). */
void bn_ref_ternary_sums(int32_t *out, const bn_ternary_matrix *matrix, const bn_act_view *act,
                         int row_begin, int row_end);

/* Float step shared by every path: y[t * rows + r] from the sums of rows [row_begin, row_end).
 * I2_S: (float)acc / s_x * s_w with scales[t] = s_x. TQ formats: the lane accumulation above with
 * scales[t * blocks + b] = the Q8_K scale d of token t's block b. */
void bn_ternary_finish(float *y, const bn_ternary_matrix *matrix, const int32_t *sums,
                       const float *scales, int n_tokens, int row_begin, int row_end);

/* Whole reference matmul (sums + finish) for rows [row_begin, row_end): q, scales and sums as
 * bn_ternary_matmul takes them (kernels/ops.h). */
void bn_ref_ternary_matmul(float *y, const bn_ternary_matrix *matrix, const int8_t *q,
                           const float *scales, const int32_t *sums, int n_tokens, int row_begin,
                           int row_end);

/* The 16-lane F16 dot product defined above. */
float bn_ref_f16_dot(const uint16_t *w, const float *x, int cols);
/* Reduces 16 lanes pairwise (shared by every F16 path). */
float bn_f16_reduce_lanes(float lanes[BN_F16_LANES]);
/* y[t * rows + r] for rows [row_begin, row_end). hint: the prefetch hint of the one-token
 * stream, a knob of the AVX-512 kernel only (every F16 kernel takes it: one table signature). */
void bn_ref_f16_matmul(float *y, const uint16_t *w, const float *x, int rows, int cols,
                       int n_tokens, int row_begin, int row_end, bn_prefetch_hint hint);

/* Int8 row of an F16 row: scale = max|w| / 127, q = clamp(nearbyintf(w * (127 / max|w|)),
 * -127, 127) (all zero with scale 0 for an all-zero row). */
void bn_ref_int8_quantize_row(int8_t *q, float *row_scale, const uint16_t *w, int cols);
/* out[(r - row_begin) * n_tokens + t] = sum_c q_w[r][c] * q[t][c]. */
void bn_ref_int8_sums(int32_t *out, const bn_int8_matrix *matrix, const bn_act_view *act,
                      int row_begin, int row_end);
/* y[t * rows + r] = (float)acc * row_scale[r] / scales[t]. */
void bn_int8_finish(float *y, const bn_int8_matrix *matrix, const int32_t *sums,
                    const float *scales, int n_tokens, int row_begin, int row_end);

#endif
