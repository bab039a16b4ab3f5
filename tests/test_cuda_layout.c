/*
 * test_cuda_layout.c: the GPU layout of ternary matrices (kernels/cuda/cuda_layout.h), repacked
 * from the file formats' bytes as the CUDA backend binds them, checked on the CPU, so it runs on
 * every machine, with or without CUDA.
 *
 * - Bit positions: a matrix with a single +1 (or -1) per row lands in the word, byte and bit pair
 *   the layout documents, every other position holding code 1 (weight 0), for I2_S, TQ2_0, TQ1_0.
 * - Products: for random matrices in each format (TQ2_0 including llama.cpp's code 3 = +2) and
 *   random int8 activations, the integer sums computed from the repacked codes (per row for I2_S,
 *   per 256-column block for TQ formats) equal the CPU reference's bn_ref_ternary_sums, and the TQ
 *   block scales equal the blocks' fp16 d.
 * - A row range repacks into the same words as the whole matrix; a type that is not ternary and
 *   a shape that is not whole blocks are refused with an error.
 */
#include "kernels/cpu/ref_matmul.h"
#include "kernels/cuda/cuda_layout.h"
#include "core/fp16.h"
#include "quant/quant_format.h"
#include "quant/ternary.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint32_t formats[] = {BN_TYPE_I2_S, BN_TYPE_TQ2_0, BN_TYPE_TQ1_0};

/* Packs values (rows x cols, each -1..1) into a new file-layout buffer; caller frees. */
static uint8_t *pack(uint32_t type, const int8_t *values, int rows, int cols, const float *block_scales) {
    size_t bytes;
    bn_error err;
    size_t n = (size_t)rows * (size_t)cols;
    CHECK_OK(bn_ternary_bytes(&bytes, type, n, &err), &err);
    uint8_t *data = calloc(1, bytes);
    CHECK_OK(bn_ternary_pack(data, type, values, n, 0.5f, block_scales, &err), &err);
    return data;
}

static unsigned code_at(const uint32_t *row_codes, int c) {
    uint32_t word = row_codes[c / 16];
    int b = (c % 16) % 4, k = (c % 16) / 4;
    return (word >> (8 * b + 2 * k)) & 3u;
}

static void test_bit_positions(uint32_t type) {
    const int rows = 5, cols = 512;
    int8_t *values = calloc((size_t)rows * cols, 1);
    int hot[5] = {0, 17, 130, 255, 509};
    for (int r = 0; r < rows; r++) values[(size_t)r * cols + hot[r]] = r % 2 ? -1 : 1;
    uint8_t *data = pack(type, values, rows, cols, NULL);
    const bn_cuda_layout_source m = {type, rows, cols, data};
    bn_error err;
    size_t n_words, n_scales;
    CHECK_OK(bn_cuda_layout_sizes(&n_words, &n_scales, &m, &err), &err);
    CHECK(n_words == (size_t)rows * cols / 16);
    CHECK(n_scales == (type == BN_TYPE_I2_S ? 0 : (size_t)rows * cols / 256));
    uint32_t *codes = malloc(n_words * 4);
    float *scales = malloc((n_scales ? n_scales : 1) * sizeof(float));
    bn_cuda_layout_repack(codes, scales, &m, 0, rows);
    int wrong = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            unsigned want = c == hot[r] ? (r % 2 ? 0u : 2u) : 1u;
            if (code_at(codes + (size_t)r * cols / 16, c) != want) wrong++;
        }
    CHECKF(wrong == 0, "%s: %d codes at the wrong place", bn_quant_format_get(type)->name, wrong);
    /* the documented position, spelled out once: column 17 = word 1, byte 1, bits 1:0 */
    CHECK(((codes[cols / 16 + 1] >> 8) & 3u) == 0u); /* row 1 holds -1 at column 17 */
    for (size_t i = 0; i < n_scales; i++) CHECK(scales[i] == bn_fp16_to_fp32(bn_fp32_to_fp16(0.5f)));
    free(codes), free(scales), free(data), free(values);
}

static void test_products(uint32_t type, int rows, int cols, bool code3, bn_test_rng *rng) {
    size_t n = (size_t)rows * cols;
    int8_t *values = malloc(n);
    for (size_t i = 0; i < n; i++) values[i] = (int8_t)(bn_test_rng_range(rng, 0, 2) - 1);
    int n_blocks = cols / 256;
    float *block_scales = malloc((size_t)rows * (n_blocks ? n_blocks : 1) * sizeof(float));
    for (int i = 0; i < rows * (n_blocks ? n_blocks : 1); i++)
        block_scales[i] = 0.01f + bn_test_rng_float(rng);
    uint8_t *data = pack(type, values, rows, cols, type == BN_TYPE_I2_S ? NULL : block_scales);
    if (code3) { /* TQ2_0: set some codes to 3 (+2 in llama.cpp's decoding) */
        for (int r = 0; r < rows; r++) {
            uint8_t *qs = data + (size_t)r * (cols / 256) * BN_TQ2_BLOCK_BYTES;
            qs[bn_test_rng_range(rng, 0, 63)] |= 3u << (2 * bn_test_rng_range(rng, 0, 3));
        }
    }
    /* the reference sums come from the CPU's prepared matrix; the GPU layout from the file */
    bn_ternary_matrix m;
    bn_error err;
    CHECK_OK(bn_ternary_matrix_prepare(&m, "t", type, rows, cols, data, &err), &err);
    const bn_cuda_layout_source source = {type, rows, cols, data};
    size_t n_words, n_scales;
    CHECK_OK(bn_cuda_layout_sizes(&n_words, &n_scales, &source, &err), &err);
    uint32_t *codes = malloc(n_words * 4);
    float *scales = malloc((n_scales ? n_scales : 1) * sizeof(float));
    bn_cuda_layout_repack(codes, scales, &source, 0, rows);

    const int n_tokens = 3;
    int8_t *q = malloc((size_t)n_tokens * cols);
    for (size_t i = 0; i < (size_t)n_tokens * cols; i++) q[i] = (int8_t)bn_test_rng_range(rng, -128, 127);
    /* the CPU reference's sums: one per row and token for I2_S; for TQ formats eight lanes per
     * block of code * q (no lane sums given), so the signed block dot is their sum less sum(q) */
    const int groups = bn_ternary_groups(&m), per_block = type == BN_TYPE_I2_S ? 1 : BN_TQ_LANES;
    int32_t *ref = malloc((size_t)rows * n_tokens * groups * sizeof(int32_t));
    bn_act_view act = {.q = q, .n_tokens = n_tokens, .cols = cols};
    bn_ref_ternary_sums(ref, &m, &act, 0, rows);
    int wrong = 0;
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < n_tokens; t++)
            for (int g = 0; g < groups / per_block; g++) {
                int c0 = type == BN_TYPE_I2_S ? 0 : 256 * g, c1 = type == BN_TYPE_I2_S ? cols : 256 * (g + 1);
                int32_t got =
                    bn_cuda_layout_row_dot(codes + (size_t)r * cols / 16, q + (size_t)t * cols, c0, c1);
                int32_t want = 0;
                for (int l = 0; l < per_block; l++)
                    want += ref[((size_t)r * n_tokens + t) * groups + (size_t)g * per_block + l];
                if (type != BN_TYPE_I2_S)
                    for (int c = c0; c < c1; c++) want -= q[(size_t)t * cols + c];
                if (got != want) wrong++;
            }
    CHECKF(wrong == 0, "%s %dx%d%s: %d sums differ from the reference", bn_quant_format_get(type)->name, rows,
           cols, code3 ? " (code 3)" : "", wrong);
    if (type != BN_TYPE_I2_S) {
        int bad_scale = 0;
        size_t block_bytes = type == BN_TYPE_TQ2_0 ? BN_TQ2_BLOCK_BYTES : BN_TQ1_BLOCK_BYTES;
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < n_blocks; g++) {
                uint16_t d;
                memcpy(&d, data + ((size_t)r * n_blocks + g + 1) * block_bytes - 2, 2);
                bad_scale += scales[(size_t)r * n_blocks + g] != bn_fp16_to_fp32(d);
            }
        CHECKF(bad_scale == 0, "%d block scales differ", bad_scale);
    }
    /* a row range gives the same words */
    if (rows > 2) {
        uint32_t *part = malloc((size_t)(rows - 2) * cols / 16 * 4);
        float *part_scales = malloc((size_t)(rows - 2) * (n_blocks ? n_blocks : 1) * sizeof(float));
        bn_cuda_layout_repack(part, part_scales, &source, 1, rows - 1);
        CHECK(!memcmp(part, codes + (size_t)cols / 16, (size_t)(rows - 2) * cols / 16 * 4));
        free(part), free(part_scales);
    }
    bn_ternary_matrix_release(&m);
    free(ref), free(q), free(codes), free(scales), free(data), free(block_scales), free(values);
}

static void test_refusals(void) {
    bn_cuda_layout_source m = {.file_type = BN_TYPE_TQ2_0, .rows = 2, .cols = 256};
    size_t a, b;
    bn_error err;
    CHECK_OK(bn_cuda_layout_sizes(&a, &b, &m, &err), &err);
    m.cols = 128; /* half a TQ block */
    CHECK(bn_cuda_layout_sizes(&a, &b, &m, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "blocks");
    m.file_type = BN_TYPE_F16;
    CHECK(bn_cuda_layout_sizes(&a, &b, &m, &err) == BN_ERR_INVALID);
}

int main(void) {
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 7);
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
        test_bit_positions(formats[f]);
        for (int i = 0; i < 6; i++) {
            int blocks = (int)bn_test_rng_range(&rng, 1, 12);
            int cols = formats[f] == BN_TYPE_I2_S && i % 2 ? 128 * (2 * blocks - 1) : 256 * blocks;
            test_products(formats[f], (int)bn_test_rng_range(&rng, 1, 40), cols, false, &rng);
        }
    }
    test_products(BN_TYPE_TQ2_0, 9, 768, true, &rng);
    test_refusals();
    return bn_test_finish("test_cuda_layout");
}
