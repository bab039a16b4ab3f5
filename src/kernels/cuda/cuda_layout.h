/*
 * cuda_layout.h: the GPU layout of ternary matrices and its host-side repacking from the three
 * file formats (I2_S, TQ2_0, TQ1_0). Plain C, built with or without CUDA, so the layout is tested
 * on every machine (tests/test_cuda_layout.c) even where no GPU can run the kernels. The source is
 * the file's own bytes (quant/ternary.h), never a CPU kernel layout: the CUDA backend uploads
 * straight from the mapped file.
 *
 * Layout (one for all formats): per row, cols/16 little-endian 32-bit words; word i covers columns
 * 16i..16i+15, column 16i + 4k + b sits in bits 2k+1:2k of byte b. So (word >> 2k) & 0x03030303
 * is four codes in byte order that pair with four consecutive int8 activations, one dp4a. A code c
 * means weight c - 1 (TQ2_0's code 3 is +2, as llama.cpp decodes it; I2_S code 3 was rejected when
 * the tensor was bound: backend/cuda/). Scales: I2_S keeps its one tensor scale; TQ formats get one float per
 * 256-column block (the block's fp16 d, converted exactly), rows x cols/256 row-major.
 */
#ifndef BN_KERNELS_CUDA_LAYOUT_H
#define BN_KERNELS_CUDA_LAYOUT_H

#include "bitnet.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A ternary tensor as the file holds it: rows x cols weights of file_type (BN_TYPE_I2_S, TQ2_0 or
 * TQ1_0), rows one after another (I2_S: cols/4 code bytes per row, the tensor scale after them). */
typedef struct bn_cuda_layout_source {
    uint32_t file_type;
    int rows, cols;
    const uint8_t *data;
} bn_cuda_layout_source;

/* Words of the codes and floats of the block scales (0 for I2_S) of source; BN_ERR_INVALID when
 * the type is not ternary or cols is not a multiple of the format's block. */
bn_status bn_cuda_layout_sizes(size_t *n_words, size_t *n_block_scales,
                               const bn_cuda_layout_source *source, bn_error *err);

/* Repacks rows [row_begin, row_end) of source into codes (that many rows of cols/16 words) and,
 * for TQ formats, block_scales (that many rows of cols/256 floats). */
void bn_cuda_layout_repack(uint32_t *codes, float *block_scales, const bn_cuda_layout_source *source,
                           int row_begin, int row_end);

/* Scalar reference of what the GPU kernels compute from the layout: the exact integer sum of one
 * row with int8 activations q (cols values), over columns [col_begin, col_end) (multiples of 16). */
int32_t bn_cuda_layout_row_dot(const uint32_t *row_codes, const int8_t *q, int col_begin, int col_end);

#ifdef __cplusplus
}
#endif

#endif
