/*
 * cuda_layout.c: host-side repacking of ternary tensors from their file format into the GPU
 * layout (cuda_layout.h) and the scalar reference of the integer dot product the GPU kernels
 * compute from it.
 *
 * Repacking reads each format through its position rules (quant/ternary.h, spec sections 2 and
 * 3): codes are extracted per column and written at their GPU position, so the layout agrees
 * column by column with the file whatever the format.
 */
#include "kernels/cuda/cuda_layout.h"

#include "core/fp16.h"
#include "quant/quant_format.h"
#include "quant/ternary.h"

#include <stdint.h>
#include <string.h>

static size_t file_row_bytes(const bn_cuda_layout_source *m) {
    switch (m->file_type) {
    case BN_TYPE_I2_S:
        return (size_t)m->cols / 4;
    case BN_TYPE_TQ2_0:
        return (size_t)m->cols / BN_TQ_BLOCK * BN_TQ2_BLOCK_BYTES;
    default:
        return (size_t)m->cols / BN_TQ_BLOCK * BN_TQ1_BLOCK_BYTES;
    }
}

bn_status bn_cuda_layout_sizes(size_t *n_words, size_t *n_block_scales,
                               const bn_cuda_layout_source *matrix, bn_error *err) {
    *n_words = *n_block_scales = 0;
    if (matrix->file_type != BN_TYPE_I2_S && matrix->file_type != BN_TYPE_TQ2_0 &&
        matrix->file_type != BN_TYPE_TQ1_0)
        return bn_error_set(err, BN_ERR_INVALID, "CUDA repack: type %u is not ternary", matrix->file_type);
    int block = matrix->file_type == BN_TYPE_I2_S ? BN_I2S_BLOCK : BN_TQ_BLOCK;
    if (matrix->rows <= 0 || matrix->cols <= 0 || matrix->cols % block != 0)
        return bn_error_set(err, BN_ERR_INVALID, "CUDA repack: shape %d x %d is not a whole number of blocks",
                            matrix->rows, matrix->cols);
    if ((size_t)matrix->rows > SIZE_MAX / 4 / (size_t)matrix->cols)
        return bn_error_set(err, BN_ERR_INVALID, "CUDA repack: shape %d x %d is too large", matrix->rows,
                            matrix->cols);
    *n_words = (size_t)matrix->rows * (size_t)(matrix->cols / 16);
    if (matrix->file_type != BN_TYPE_I2_S)
        *n_block_scales = (size_t)matrix->rows * (size_t)(matrix->cols / BN_TQ_BLOCK);
    return BN_OK;
}

/* Codes (0..3) of the 128 columns [c0, c0 + 128) of row r (c0 a multiple of 128); row is the
 * row's start in the file layout (TQ formats). */
static void file_codes_128(uint8_t codes[128], const bn_cuda_layout_source *m, const uint8_t *row, int c0) {
    if (m->file_type == BN_TYPE_I2_S) {
        /* the row's block c0 / 128, 32 bytes: byte j holds columns j, 32+j, 64+j, 96+j in bits
         * 7:6, 5:4, 3:2, 1:0 */
        const uint8_t *block = row + (size_t)(c0 / BN_I2S_BLOCK) * BN_I2S_BLOCK_BYTES;
        for (int j = 0; j < 32; j++)
            for (int n = 0; n < 4; n++) codes[32 * n + j] = (block[j] >> (6 - 2 * n)) & 3u;
        return;
    }
    int half = (c0 % BN_TQ_BLOCK) / 128;
    if (m->file_type == BN_TYPE_TQ2_0) {
        /* half h of 128 columns: byte 32h + m holds columns 128h + m + 32n in bits 2n+1:2n */
        const uint8_t *qs = row + (size_t)(c0 / BN_TQ_BLOCK) * BN_TQ2_BLOCK_BYTES + 32 * half;
        for (int j = 0; j < 32; j++)
            for (int n = 0; n < 4; n++) codes[32 * n + j] = (qs[j] >> (2 * n)) & 3u;
        return;
    }
    /* TQ1_0: qs[0..31] digit n is column 32n + m; qs[32..47] digit n is 160 + 16n + m;
     * qh[0..3] digit n is 240 + 4n + j */
    const uint8_t *b = row + (size_t)(c0 / BN_TQ_BLOCK) * BN_TQ1_BLOCK_BYTES;
    for (int i = 0; i < 128; i++) {
        int within = 128 * half + i;
        int digit;
        if (within < 160)
            digit = bn_tq1_digit(b[within % 32], within / 32);
        else if (within < 240)
            digit = bn_tq1_digit(b[32 + (within - 160) % 16], (within - 160) / 16);
        else
            digit = bn_tq1_digit(b[48 + (within - 240) % 4], (within - 240) / 4);
        codes[i] = (uint8_t)digit;
    }
}

void bn_cuda_layout_repack(uint32_t *codes, float *block_scales, const bn_cuda_layout_source *matrix,
                           int row_begin, int row_end) {
    const int words = matrix->cols / 16;
    const size_t stride = file_row_bytes(matrix);
    const int n_blocks = matrix->cols / BN_TQ_BLOCK;
    const size_t block_bytes = matrix->file_type == BN_TYPE_TQ2_0 ? BN_TQ2_BLOCK_BYTES : BN_TQ1_BLOCK_BYTES;
    uint8_t chunk[128];
    for (int r = row_begin; r < row_end; r++) {
        const uint8_t *row = matrix->data + (size_t)r * stride;
        uint32_t *out = codes + (size_t)(r - row_begin) * (size_t)words;
        for (int c0 = 0; c0 < matrix->cols; c0 += 128) {
            file_codes_128(chunk, matrix, row, c0);
            for (int i = 0; i < 8; i++) {
                uint32_t word = 0;
                for (int k = 0; k < 4; k++)
                    for (int b = 0; b < 4; b++)
                        word |= (uint32_t)chunk[16 * i + 4 * k + b] << (8 * b + 2 * k);
                out[c0 / 16 + i] = word;
            }
        }
        if (matrix->file_type != BN_TYPE_I2_S) {
            float *scales = block_scales + (size_t)(r - row_begin) * (size_t)n_blocks;
            for (int g = 0; g < n_blocks; g++) {
                uint16_t d;
                memcpy(&d, row + (size_t)(g + 1) * block_bytes - 2, 2);
                scales[g] = bn_fp16_to_fp32(d);
            }
        }
    }
}

int32_t bn_cuda_layout_row_dot(const uint32_t *row_codes, const int8_t *q, int col_begin, int col_end) {
    int32_t acc = 0;
    for (int i = col_begin / 16; i < col_end / 16; i++) {
        uint32_t word = row_codes[i];
        for (int k = 0; k < 4; k++)
            for (int b = 0; b < 4; b++) {
                int code = (int)((word >> (8 * b + 2 * k)) & 3u);
                acc += (code - 1) * q[16 * i + 4 * k + b];
            }
    }
    return acc;
}
