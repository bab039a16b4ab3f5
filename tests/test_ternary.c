/*
 * test_ternary.c: the ternary file formats (quant/ternary.h). Hand-packed bytes pin the bit
 * positions of I2_S (spec section 2) and TQ2_0/TQ1_0 (section 3, checked against llama.cpp's
 * quantize_row_tq1_0_ref / dequantize_row_tq1_0); pack/unpack round trips on random and edge
 * data; I2_S code 3 is found and rejected naming the tensor; and the real oracle model's
 * blk.0.attn_q.weight unpacks to {-s, 0, +s} with about a third zeros.
 */
#include "core/fp16.h"
#include "gguf/gguf.h"
#include "kernels/ops.h"
#include "quant/quant_format.h"
#include "quant/ternary.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_sizes(void) {
    bn_error err;
    size_t bytes = 0;
    CHECK_OK(bn_ternary_bytes(&bytes, BN_TYPE_I2_S, 2560 * 2560, &err), &err);
    CHECK(bytes == 2560 * 2560 / 4 + 32);
    CHECK_OK(bn_ternary_bytes(&bytes, BN_TYPE_TQ2_0, 512, &err), &err);
    CHECK(bytes == 2 * 66);
    CHECK_OK(bn_ternary_bytes(&bytes, BN_TYPE_TQ1_0, 512, &err), &err);
    CHECK(bytes == 2 * 54);
    CHECK(bn_ternary_bytes(&bytes, BN_TYPE_TQ1_0, 100, &err) == BN_ERR_INVALID);
    CHECK(bn_ternary_bytes(&bytes, BN_TYPE_F16, 256, &err) == BN_ERR_INVALID);
}

/* I2_S: byte j of a block holds weights j, 32+j, 64+j, 96+j in bits 7:6, 5:4, 3:2, 1:0. */
static void test_i2s_hand_packed(void) {
    bn_error err;
    int8_t values[128] = {0};
    values[0] = 1;   /* code 2 in bits 7:6 of byte 0 */
    values[32] = -1; /* code 0 in bits 5:4 */
    values[64] = 0;  /* code 1 in bits 3:2 */
    values[96] = 1;  /* code 2 in bits 1:0 */
    values[31 + 96] = -1; /* byte 31 bits 1:0 */
    uint8_t packed[32 + 32];
    CHECK_OK(bn_ternary_pack(packed, BN_TYPE_I2_S, values, 128, 0.75f, NULL, &err), &err);
    CHECK(packed[0] == 0x86);
    CHECK(packed[1] == 0x55);
    CHECK(packed[31] == 0x54);
    float scale;
    memcpy(&scale, packed + 32, 4);
    CHECK(scale == 0.75f);
    for (int i = 36; i < 64; i++) CHECK(packed[i] == 0);
    float out[128];
    CHECK_OK(bn_ternary_unpack(out, BN_TYPE_I2_S, packed, 128, &err), &err);
    CHECK(out[0] == 0.75f && out[32] == -0.75f && out[64] == 0.0f && out[96] == 0.75f);
    CHECK(out[127] == -0.75f && out[1] == 0.0f);
}

/* TQ2_0: per half block, byte m holds weights m + 32n in bits 2n+1:2n. */
static void test_tq2_hand_packed(void) {
    bn_error err;
    int8_t values[256] = {0};
    values[0] = 1;    /* byte 0 bits 1:0 = 2 */
    values[32] = -1;  /* byte 0 bits 3:2 = 0 */
    values[96] = 1;   /* byte 0 bits 7:6 = 2 */
    values[128] = -1; /* byte 32 bits 1:0 = 0 */
    values[255] = 1;  /* byte 63 bits 7:6 = 2 */
    uint8_t packed[66];
    CHECK_OK(bn_ternary_pack(packed, BN_TYPE_TQ2_0, values, 256, 1.0f, NULL, &err), &err);
    CHECK(packed[0] == 0x92);
    CHECK(packed[1] == 0x55);
    CHECK(packed[32] == 0x54);
    CHECK(packed[63] == 0x95);
    CHECK(packed[64] == 0x00 && packed[65] == 0x3c); /* fp16 1.0 */
    int8_t back[256];
    CHECK_OK(bn_ternary_unpack_values(back, BN_TYPE_TQ2_0, packed, 256, &err), &err);
    CHECK(memcmp(back, values, 256) == 0);
    /* code 3 decodes as +2 (llama.cpp's (q - 1) * d) */
    packed[5] = 0x57;
    CHECK_OK(bn_ternary_unpack_values(back, BN_TYPE_TQ2_0, packed, 256, &err), &err);
    CHECK(back[5] == 2);
}

/* TQ1_0: bytes derived by hand from llama.cpp's reference quantizer rules. */
static void test_tq1_hand_packed(void) {
    bn_error err;
    int8_t values[256] = {0};
    /* byte 0: weights 0, 32, 64, 96, 128 = +1 -1 0 +1 -1: digits 2 0 1 2 0, v = 177,
     * stored ceil(177 * 256 / 243) = 187 */
    values[0] = 1, values[32] = -1, values[64] = 0, values[96] = 1, values[128] = -1;
    values[160] = -1; /* byte 32 digit 0: digits 0 1 1 1 1, v = 40 -> 43 */
    values[239] = 1;  /* byte 47 digit 4: digits 1 1 1 1 2, v = 122 -> 129 */
    values[240] = 1;  /* qh[0] digit 0: digits 2 1 1 1, v = 67, * 3 = 201 -> 212 */
    values[255] = -1; /* qh[3] digit 3: digits 1 1 1 0, v = 39, * 3 = 117 -> 124 */
    uint8_t packed[54];
    CHECK_OK(bn_ternary_pack(packed, BN_TYPE_TQ1_0, values, 256, 1.0f, NULL, &err), &err);
    CHECK(packed[0] == 187);
    CHECK(packed[1] == 128); /* all zero weights: v = 121 -> 128 */
    CHECK(packed[32] == 43);
    CHECK(packed[47] == 129);
    CHECK(packed[48] == 212);
    CHECK(packed[49] == 127); /* zeros in qh: v = 40 * 3 = 120 -> 127 */
    CHECK(packed[51] == 124);
    CHECK(packed[52] == 0x00 && packed[53] == 0x3c);
    /* digit extraction of 187 as llama.cpp's dequantize does it */
    CHECK(bn_tq1_digit(187, 0) == 2 && bn_tq1_digit(187, 1) == 0 && bn_tq1_digit(187, 2) == 1);
    CHECK(bn_tq1_digit(187, 3) == 2 && bn_tq1_digit(187, 4) == 0);
    int8_t back[256];
    CHECK_OK(bn_ternary_unpack_values(back, BN_TYPE_TQ1_0, packed, 256, &err), &err);
    CHECK(memcmp(back, values, 256) == 0);
    /* every byte value decodes to digits 0..2 (kernels rely on it) */
    int bad = 0;
    for (int b = 0; b < 256; b++)
        for (int n = 0; n < 5; n++) bad += bn_tq1_digit((uint8_t)b, n) > 2;
    CHECK(bad == 0);
}

static void round_trip(uint32_t type, const int8_t *values, size_t n, const char *what) {
    bn_error err;
    size_t bytes;
    CHECK_OK(bn_ternary_bytes(&bytes, type, n, &err), &err);
    uint8_t *packed = malloc(bytes), *repacked = malloc(bytes);
    int8_t *back = malloc(n);
    float *floats = malloc(n * sizeof *floats);
    int n_blocks = (int)(n / BN_TQ_BLOCK);
    float *block_scales = malloc((size_t)(n_blocks + 1) * sizeof *block_scales);
    for (int b = 0; b < n_blocks; b++) block_scales[b] = 0.25f * (float)(b % 7 + 1);
    const float *bs = type == BN_TYPE_I2_S ? NULL : block_scales;
    CHECK_OK(bn_ternary_pack(packed, type, values, n, 0.375f, bs, &err), &err);
    CHECK_OK(bn_ternary_unpack_values(back, type, packed, n, &err), &err);
    CHECKF(memcmp(back, values, n) == 0, "%s type %u values", what, type);
    /* pack(unpack(x)) == x on the bytes */
    CHECK_OK(bn_ternary_pack(repacked, type, back, n, 0.375f, bs, &err), &err);
    CHECKF(memcmp(repacked, packed, bytes) == 0, "%s type %u bytes", what, type);
    CHECK_OK(bn_ternary_unpack(floats, type, packed, n, &err), &err);
    int wrong = 0;
    for (size_t i = 0; i < n; i++) {
        float scale = type == BN_TYPE_I2_S ? 0.375f : block_scales[i / BN_TQ_BLOCK];
        wrong += floats[i] != (float)values[i] * scale;
    }
    CHECKF(wrong == 0, "%s type %u: %d floats wrong", what, type, wrong);
    free(packed), free(repacked), free(back), free(floats), free(block_scales);
}

static void test_round_trips(void) {
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 7);
    const size_t n = 256 * 37;
    int8_t *values = malloc(n);
    const uint32_t types[3] = {BN_TYPE_I2_S, BN_TYPE_TQ2_0, BN_TYPE_TQ1_0};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < n; i++) values[i] = (int8_t)bn_test_rng_range(&rng, -1, 1);
        round_trip(types[k], values, n, "random");
        for (int v = -1; v <= 1; v++) {
            memset(values, v, n);
            round_trip(types[k], values, n, v < 0 ? "all -1" : v ? "all +1" : "all 0");
        }
        for (size_t i = 0; i < n; i++) values[i] = (int8_t)(i % 2 ? 1 : -1);
        round_trip(types[k], values, n, "alternating");
    }
    int8_t bad = 2;
    uint8_t out[64];
    bn_error err;
    memset(values, 0, 128);
    values[77] = bad;
    CHECK(bn_ternary_pack(out, BN_TYPE_I2_S, values, 128, 1.0f, NULL, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "77");
    free(values);
}

static void test_code3(void) {
    bn_error err;
    const int rows = 3, cols = 256;
    int8_t values[3 * 256] = {0};
    uint8_t packed[3 * 256 / 4 + 32];
    CHECK_OK(bn_ternary_pack(packed, BN_TYPE_I2_S, values, (size_t)rows * cols, 1.0f, NULL, &err),
             &err);
    CHECK(bn_i2s_find_code3(packed, (size_t)rows * cols) == -1);
    bn_ternary_matrix m;
    CHECK_OK(bn_ternary_matrix_prepare(&m, "ok.weight", BN_TYPE_I2_S, rows, cols, packed, &err),
             &err);
    bn_ternary_matrix_release(&m);
    /* row 2, block 1 (columns 128..255), byte 5, bits 3:2 -> column 128 + 64 + 5 */
    size_t byte = (2 * 256 + 128) / 4 + 5;
    packed[byte] |= 0x0c;
    int64_t where = bn_i2s_find_code3(packed, (size_t)rows * cols);
    CHECK(where == 2 * 256 + 128 + 64 + 5);
    int8_t back[3 * 256];
    CHECK(bn_ternary_unpack_values(back, BN_TYPE_I2_S, packed, (size_t)rows * cols, &err) ==
          BN_ERR_FORMAT);
    bn_status status =
        bn_ternary_matrix_prepare(&m, "blk.7.ffn_up.weight", BN_TYPE_I2_S, rows, cols, packed, &err);
    CHECK(status == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "blk.7.ffn_up.weight");
    CHECK_STR_CONTAINS(err.message, "code 3");
    CHECK_STR_CONTAINS(err.message, "row 2");
    /* shapes the format cannot hold */
    CHECK(bn_ternary_matrix_prepare(&m, "x", BN_TYPE_TQ2_0, 2, 128, packed, &err) == BN_ERR_FORMAT);
    CHECK(bn_ternary_matrix_prepare(&m, "x", BN_TYPE_F16, 2, 128, packed, &err) ==
          BN_ERR_UNSUPPORTED);
    CHECK(bn_ternary_matrix_prepare(&m, "x", BN_TYPE_I2_S, 0, 128, packed, &err) == BN_ERR_FORMAT);
}

/* The real file: blk.0.attn_q.weight of the bitnet.cpp oracle model. */
static void test_oracle_file(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/oracle-a/model.gguf", bn_test_source_dir());
    bn_error err;
    bn_gguf *gguf = NULL;
    bn_status status = bn_gguf_open(path, &gguf, &err);
    CHECK_OK(status, &err);
    if (status != BN_OK) return;
    const bn_gguf_tensor *t = bn_gguf_find_tensor(gguf, "blk.0.attn_q.weight");
    CHECK(t != NULL);
    if (t) {
        CHECK(t->type == BN_TYPE_I2_S);
        size_t n = (size_t)t->n_elements;
        CHECK(t->size == n / 4 + 32);
        CHECK(bn_i2s_find_code3(t->data, n) == -1);
        float scale = bn_i2s_scale(t->data, n);
        CHECK(scale > 0.0f && isfinite(scale));
        float *floats = malloc(n * sizeof *floats);
        CHECK_OK(bn_ternary_unpack(floats, BN_TYPE_I2_S, t->data, n, &err), &err);
        size_t zeros = 0, other = 0, plus = 0;
        for (size_t i = 0; i < n; i++) {
            if (floats[i] == 0.0f) zeros++;
            else if (floats[i] == scale) plus++;
            else if (floats[i] != -scale) other++;
        }
        double zero_fraction = (double)zeros / (double)n;
        CHECKF(other == 0, "%zu values outside {-s, 0, +s}", other);
        CHECKF(zero_fraction > 0.30 && zero_fraction < 0.37, "zero fraction %.4f", zero_fraction);
        CHECK(plus > n / 4 && plus < n / 2);
        /* it prepares as a kernel matrix */
        bn_ternary_matrix m;
        CHECK_OK(bn_ternary_matrix_prepare(&m, "blk.0.attn_q.weight", BN_TYPE_I2_S,
                                           (int)t->ne[1], (int)t->ne[0], t->data, &err), &err);
        CHECK(m.tensor_scale == scale);
        bn_ternary_matrix_release(&m);
        free(floats);
    }
    bn_gguf_close(gguf);
}

int main(void) {
    test_sizes();
    test_i2s_hand_packed();
    test_tq2_hand_packed();
    test_tq1_hand_packed();
    test_round_trips();
    test_code3();
    test_oracle_file();
    return bn_test_finish("test_ternary");
}
