/*
 * ref_matmul.c: scalar reference kernels of the matrix ops (see ref_matmul.h for the split into
 * exact integer sums and one shared float finishing step). Straightforward loops that read the
 * file layouts through the same position rules as quant/ternary.c; they define correctness.
 */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#include "kernels/cpu/ref_matmul.h"

#include "core/fp16.h"
#include "quant/quant_format.h"
#include "quant/ternary.h"

#include <math.h>
#include <string.h>

int bn_ternary_groups(const bn_ternary_matrix *matrix) {
    return matrix->file_type == BN_TYPE_I2_S ? 1 : matrix->cols / BN_TQ_BLOCK * BN_TQ_LANES;
}

void bn_ref_quantize_activations(int8_t *q, float *scales, int32_t *sums, const float *x,
                                 int n_tokens, int cols) {
    for (int t = 0; t < n_tokens; t++) {
        const float *xt = x + (size_t)t * cols;
        int8_t *qt = q + (size_t)t * cols;
        float max_abs = 0.0f;
        for (int c = 0; c < cols; c++) {
            float a = fabsf(xt[c]);
            if (a > max_abs) max_abs = a;
        }
        double denominator = max_abs > 1e-5f ? (double)max_abs : 1e-5;
        float scale = (float)(127.0 / denominator);
        int32_t sum = 0;
        for (int c = 0; c < cols; c++) {
            float v = nearbyintf(xt[c] * scale);
            /* NaN goes to -128, as cvtps2dq's "integer indefinite" does after saturation. */
            int value = !(v >= -128.0f) ? -128 : v > 127.0f ? 127 : (int)v;
            qt[c] = (int8_t)value;
            sum += value;
        }
        scales[t] = scale;
        sums[t] = sum;
    }
}

/* Bytes of one row and of one block in the file layout. */
static size_t row_bytes(const bn_ternary_matrix *m) {
    switch (m->file_type) {
    case BN_TYPE_I2_S: return (size_t)m->cols / 4;
    case BN_TYPE_TQ2_0: return (size_t)m->cols / BN_TQ_BLOCK * BN_TQ2_BLOCK_BYTES;
    default: return (size_t)m->cols / BN_TQ_BLOCK * BN_TQ1_BLOCK_BYTES;
    }
}

/* Integer dot of one 128-weight I2_S block with x[0..127]: byte j holds columns j, 32 + j,
 * 64 + j, 96 + j in bits 7:6, 5:4, 3:2, 1:0 (code - 1 is the weight). */
static int32_t i2s_block_dot(const uint8_t *block, const int8_t *x) {
    int32_t acc = 0;
    for (int j = 0; j < 32; j++) {
        int byte = block[j];
        acc += (((byte >> 6) & 3) - 1) * x[j] + (((byte >> 4) & 3) - 1) * x[32 + j] +
               (((byte >> 2) & 3) - 1) * x[64 + j] + ((byte & 3) - 1) * x[96 + j];
    }
    return acc;
}

/* The 256 codes (weight + 1; TQ2_0's code 3 stays 3) of a TQ2_0 block in column order: per half
 * h, byte m holds columns 128h + m + 32n in bits 2n+1:2n. */
static void tq2_block_codes(uint8_t codes[BN_TQ_BLOCK], const uint8_t *qs) {
    for (int h = 0; h < 2; h++)
        for (int m = 0; m < 32; m++)
            for (int n = 0; n < 4; n++) codes[128 * h + 32 * n + m] = (qs[32 * h + m] >> (2 * n)) & 3;
}

/* The same for a TQ1_0 block (qs[48], qh[4], then d): base-3 digits, see quant/ternary.h. */
static void tq1_block_codes(uint8_t codes[BN_TQ_BLOCK], const uint8_t *block) {
    for (int n = 0; n < 5; n++) {
        for (int m = 0; m < 32; m++) codes[32 * n + m] = (uint8_t)bn_tq1_digit(block[m], n);
        for (int m = 0; m < 16; m++) codes[160 + 16 * n + m] = (uint8_t)bn_tq1_digit(block[32 + m], n);
    }
    for (int n = 0; n < 4; n++)
        for (int j = 0; j < 4; j++) codes[240 + 4 * n + j] = (uint8_t)bn_tq1_digit(block[48 + j], n);
}

/* The eight lanes of one block (ref_matmul.h): lane (i % 32) / 4 gets code_i * x_i, less the lane
 * term of lane_sums (when given). */
static void tq_block_lanes(int32_t lanes[BN_TQ_LANES], const uint8_t codes[BN_TQ_BLOCK],
                           const int8_t *x, const int32_t *lane_sums) {
    for (int l = 0; l < BN_TQ_LANES; l++) lanes[l] = lane_sums ? -lane_sums[l] : 0;
    for (int i = 0; i < BN_TQ_BLOCK; i++) lanes[(i % 32) / 4] += codes[i] * x[i];
}

void bn_ref_ternary_sums(int32_t *out, const bn_ternary_matrix *matrix, const bn_act_view *act,
                         int row_begin, int row_end) {
    const int groups = bn_ternary_groups(matrix);
    const size_t stride = row_bytes(matrix);
    for (int r = row_begin; r < row_end; r++) {
        const uint8_t *row = matrix->data + (size_t)r * stride;
        for (int t = 0; t < act->n_tokens; t++) {
            const int8_t *qt = act->q + (size_t)t * matrix->cols;
            int32_t *o = out + ((size_t)(r - row_begin) * act->n_tokens + t) * groups;
            if (matrix->file_type == BN_TYPE_I2_S) {
                /* blocks 2p and 2p + 1 form pair p; an odd last block is the tail */
                bn_i2s_row where = bn_i2s_row_at(matrix, r);
                int32_t acc = 0;
                for (int b = 0; b < matrix->cols / BN_I2S_BLOCK; b++) {
                    const uint8_t *block = b / 2 < matrix->cols / 256
                                               ? where.first + (size_t)(b / 2) * where.pair_stride +
                                                     (size_t)(b % 2) * BN_I2S_BLOCK_BYTES
                                               : where.tail;
                    acc += i2s_block_dot(block, qt + b * BN_I2S_BLOCK);
                }
                o[0] = acc;
            } else {
                const bool tq2 = matrix->file_type == BN_TYPE_TQ2_0;
                const int blocks = matrix->cols / BN_TQ_BLOCK;
                for (int b = 0; b < blocks; b++) {
                    uint8_t codes[BN_TQ_BLOCK];
                    if (tq2)
                        tq2_block_codes(codes, row + (size_t)b * BN_TQ2_BLOCK_BYTES);
                    else
                        tq1_block_codes(codes, row + (size_t)b * BN_TQ1_BLOCK_BYTES);
                    const int32_t *lane_sums =
                        act->lane_sums ? act->lane_sums + ((size_t)t * blocks + b) * BN_TQ_LANES : NULL;
                    tq_block_lanes(o + (size_t)b * BN_TQ_LANES, codes, qt + (size_t)b * BN_TQ_BLOCK, lane_sums);
                }
            }
        }
    }
}

void bn_ternary_finish(float *y, const bn_ternary_matrix *matrix, const int32_t *sums,
                       const float *scales, int n_tokens, int row_begin, int row_end) {
    const int groups = bn_ternary_groups(matrix);
    const size_t stride = row_bytes(matrix);
    const size_t block_bytes =
        matrix->file_type == BN_TYPE_TQ2_0 ? BN_TQ2_BLOCK_BYTES : BN_TQ1_BLOCK_BYTES;
    for (int r = row_begin; r < row_end; r++) {
        const uint8_t *row = matrix->data + (size_t)r * stride;
        for (int t = 0; t < n_tokens; t++) {
            const int32_t *s = sums + ((size_t)(r - row_begin) * n_tokens + t) * groups;
            float value;
            if (matrix->file_type == BN_TYPE_I2_S) {
                value = (float)s[0] / scales[t] * matrix->tensor_scale;
            } else {
                /* llama.cpp's AVX2 TQ dot: 8 float lanes over the blocks, then hsum_float_8 */
                const int blocks = groups / BN_TQ_LANES;
                float acc[BN_TQ_LANES] = {0};
                for (int b = 0; b < blocks; b++) {
                    uint16_t d;
                    memcpy(&d, row + (size_t)(b + 1) * block_bytes - 2, 2);
                    const float dd = scales[(size_t)t * blocks + b] * bn_fp16_to_fp32(d);
                    for (int l = 0; l < BN_TQ_LANES; l++) {
                        const float term = (float)s[b * BN_TQ_LANES + l] * dd;
                        acc[l] = acc[l] + term;
                    }
                }
                value = bn_hsum_float8(acc);
            }
            y[(size_t)t * matrix->rows + r] = value;
        }
    }
}

void bn_ref_ternary_matmul(float *y, const bn_ternary_matrix *matrix, const int8_t *q,
                           const float *scales, const int32_t *sums, int n_tokens, int row_begin,
                           int row_end) {
    /* One token of one row at a time: groups sums fit a small buffer (the limit prepare checks). */
    int32_t out[1024];
    if (bn_ternary_groups(matrix) > 1024) return;
    const bool tq = matrix->file_type != BN_TYPE_I2_S;
    const int blocks = matrix->cols / BN_TQ_BLOCK;
    for (int t = 0; t < n_tokens; t++) {
        bn_act_view act = {.q = q + (size_t)t * matrix->cols, .n_tokens = 1, .cols = matrix->cols};
        if (tq) act.lane_sums = sums + (size_t)t * blocks * BN_TQ_LANES;
        const float *token_scales = tq ? scales + (size_t)t * blocks : scales + t;
        for (int r = row_begin; r < row_end; r++) {
            bn_ref_ternary_sums(out, matrix, &act, r, r + 1);
            bn_ternary_finish(y + (size_t)t * matrix->rows, matrix, out, token_scales, 1, r, r + 1);
        }
    }
}

float bn_f16_reduce_lanes(float lanes[BN_F16_LANES]) {
    for (int width = BN_F16_LANES / 2; width >= 1; width /= 2)
        for (int i = 0; i < width; i++) lanes[i] = lanes[i] + lanes[i + width];
    return lanes[0];
}

float bn_ref_f16_dot(const uint16_t *w, const float *x, int cols) {
    float lanes[BN_F16_LANES] = {0};
    for (int c = 0; c < cols; c++)
        lanes[c % BN_F16_LANES] = fmaf(bn_fp16_to_fp32(w[c]), x[c], lanes[c % BN_F16_LANES]);
    return bn_f16_reduce_lanes(lanes);
}

void bn_ref_f16_matmul(float *y, const uint16_t *w, const float *x, int rows, int cols,
                       int n_tokens, int row_begin, int row_end, bn_prefetch_hint hint) {
    (void)hint;
    for (int r = row_begin; r < row_end; r++)
        for (int t = 0; t < n_tokens; t++)
            y[(size_t)t * rows + r] =
                bn_ref_f16_dot(w + (size_t)r * cols, x + (size_t)t * cols, cols);
}

void bn_ref_int8_quantize_row(int8_t *q, float *row_scale, const uint16_t *w, int cols) {
    float max_abs = 0.0f;
    for (int c = 0; c < cols; c++) {
        float a = fabsf(bn_fp16_to_fp32(w[c]));
        if (a > max_abs) max_abs = a;
    }
    if (!(max_abs > 0.0f) || !isfinite(max_abs)) {
        memset(q, 0, (size_t)cols);
        *row_scale = 0.0f;
        return;
    }
    float inverse = 127.0f / max_abs;
    for (int c = 0; c < cols; c++) {
        float v = nearbyintf(bn_fp16_to_fp32(w[c]) * inverse);
        q[c] = (int8_t)(!(v >= -127.0f) ? -127 : v > 127.0f ? 127 : (int)v); /* NaN -> -127 */
    }
    *row_scale = max_abs / 127.0f;
}

void bn_ref_int8_sums(int32_t *out, const bn_int8_matrix *matrix, const bn_act_view *act,
                      int row_begin, int row_end) {
    const int cols = matrix->cols;
    for (int r = row_begin; r < row_end; r++) {
        const int8_t *wr = matrix->q + (size_t)r * cols;
        for (int t = 0; t < act->n_tokens; t++) {
            const int8_t *qt = act->q + (size_t)t * cols;
            int32_t acc = 0;
            for (int c = 0; c < cols; c++) acc += wr[c] * qt[c];
            out[(size_t)(r - row_begin) * act->n_tokens + t] = acc;
        }
    }
}

void bn_int8_finish(float *y, const bn_int8_matrix *matrix, const int32_t *sums,
                    const float *scales, int n_tokens, int row_begin, int row_end) {
    for (int r = row_begin; r < row_end; r++)
        for (int t = 0; t < n_tokens; t++) {
            float scaled = (float)sums[(size_t)(r - row_begin) * n_tokens + t] * matrix->row_scales[r];
            y[(size_t)t * matrix->rows + r] = scaled / scales[t];
        }
}
