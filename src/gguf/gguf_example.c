/*
 * gguf_example.c: the project's own example GGUF files (see gguf_example.h). The 2B-4T table is
 * written from the facts of spec/MODEL_FORMAT.md section 1 and nothing else, so a test on the file
 * checks the reader, the format table and inspect against the published numbers.
 */
#include "gguf/gguf_example.h"

#include "core/fp16.h"
#include "quant/quant_format.h"

#include <stdio.h>
#include <string.h>

#define ARCH "bitnet-b1.58"

bn_status bn_gguf_example_add_2b4t_metadata(bn_gguf_writer *w, bn_error *err) {
    bn_status st;
    if ((st = bn_gguf_writer_add_string(w, "general.architecture", ARCH, err)) ||
        (st = bn_gguf_writer_add_string(w, "general.name", "bitnet2b", err)) ||
        (st = bn_gguf_writer_add_u32(w, ARCH ".vocab_size", 128256, err)) ||
        (st = bn_gguf_writer_add_u32(w, ARCH ".context_length", 4096, err)) ||
        (st = bn_gguf_writer_add_u32(w, ARCH ".embedding_length", 2560, err)) ||
        (st = bn_gguf_writer_add_u32(w, ARCH ".block_count", 30, err)) ||
        (st = bn_gguf_writer_add_u32(w, ARCH ".feed_forward_length", 6912, err)) ||
        (st = bn_gguf_writer_add_u32(w, ARCH ".rope.dimension_count", 128, err)) ||
        (st = bn_gguf_writer_add_u32(w, ARCH ".attention.head_count", 20, err)) ||
        (st = bn_gguf_writer_add_u32(w, ARCH ".attention.head_count_kv", 5, err)) ||
        (st = bn_gguf_writer_add_f32(w, ARCH ".attention.layer_norm_rms_epsilon", 1e-5f, err)) ||
        (st = bn_gguf_writer_add_f32(w, ARCH ".rope.freq_base", 500000.0f, err)) ||
        (st = bn_gguf_writer_add_string(w, "tokenizer.ggml.model", "gpt2", err)) ||
        (st = bn_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true, err)))
        return st;
    return BN_OK;
}

static bn_status add(bn_gguf_writer *w, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1,
                     bn_error *err) {
    uint64_t ne[2] = {ne0, ne1};
    return bn_gguf_writer_add_tensor(w, name, type, ne1 ? 2 : 1, ne, NULL, err);
}

bn_status bn_gguf_example_add_2b4t_tensors(bn_gguf_writer *w, bn_error *err) {
    enum { EMBD = 2560, FFN = 6912, KV = 640, VOCAB = 128256, LAYERS = 30 };
    bn_status st = add(w, "token_embd.weight", BN_TYPE_F16, EMBD, VOCAB, err);
    for (int l = 0; l < LAYERS && !st; l++) {
        static const struct { const char *name; uint32_t type; uint64_t ne0, ne1; } layer[] = {
            {"attn_norm", BN_TYPE_F32, EMBD, 0},     {"attn_q", BN_TYPE_I2_S, EMBD, EMBD},
            {"attn_k", BN_TYPE_I2_S, EMBD, KV},      {"attn_v", BN_TYPE_I2_S, EMBD, KV},
            {"attn_sub_norm", BN_TYPE_F32, EMBD, 0}, {"attn_output", BN_TYPE_I2_S, EMBD, EMBD},
            {"ffn_norm", BN_TYPE_F32, EMBD, 0},      {"ffn_gate", BN_TYPE_I2_S, EMBD, FFN},
            {"ffn_up", BN_TYPE_I2_S, EMBD, FFN},     {"ffn_sub_norm", BN_TYPE_F32, FFN, 0},
            {"ffn_down", BN_TYPE_I2_S, FFN, EMBD},
        };
        for (size_t i = 0; i < sizeof layer / sizeof layer[0] && !st; i++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, layer[i].name);
            st = add(w, name, layer[i].type, layer[i].ne0, layer[i].ne1, err);
        }
    }
    if (!st) st = add(w, "output_norm.weight", BN_TYPE_F32, EMBD, 0, err);
    return st;
}

bn_status bn_gguf_example_write_2b4t(const char *path, bn_error *err) {
    bn_gguf_writer *w = bn_gguf_writer_new();
    if (!w) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    bn_status st = bn_gguf_example_add_2b4t_metadata(w, err);
    if (!st) st = bn_gguf_writer_add_u32(w, "general.file_type", 40, err);
    if (!st) st = bn_gguf_example_add_2b4t_tensors(w, err);
    if (!st) st = bn_gguf_writer_write(w, path, err);
    bn_gguf_writer_free(w);
    return st;
}

/* Deterministic byte stream (xorshift) for the example tensors. */
static uint8_t next_byte(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return (uint8_t)(*s >> 24);
}

static void put_f16(uint8_t *p, float f) {
    uint16_t h = bn_fp32_to_fp16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* Tensor contents that are valid for each format: floats from a small range, ternary codes
 * 0..2 only, and a positive fp16 or float scale where the format has one. */
static void fill_tensor(uint8_t *data, uint32_t type, uint64_t n, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 1;
    switch (type) {
    case BN_TYPE_F32:
        for (uint64_t i = 0; i < n; i++) {
            float f = ((int)next_byte(&s) - 128) / 64.0f;
            memcpy(data + 4 * i, &f, 4);
        }
        break;
    case BN_TYPE_F16:
        for (uint64_t i = 0; i < n; i++) put_f16(data + 2 * i, ((int)next_byte(&s) - 128) / 64.0f);
        break;
    case BN_TYPE_BF16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h = bn_fp32_to_bf16(((int)next_byte(&s) - 128) / 64.0f);
            data[2 * i] = (uint8_t)h;
            data[2 * i + 1] = (uint8_t)(h >> 8);
        }
        break;
    case BN_TYPE_Q8_0:
        for (uint64_t b = 0; b < n / 32; b++) {
            put_f16(data + 34 * b, 0.0625f);
            for (int i = 0; i < 32; i++) data[34 * b + 2 + i] = next_byte(&s);
        }
        break;
    case BN_TYPE_TQ1_0: /* any byte is a valid base-3 group; the scale sits last */
        for (uint64_t b = 0; b < n / 256; b++) {
            for (int i = 0; i < 52; i++) data[54 * b + i] = next_byte(&s);
            put_f16(data + 54 * b + 52, 0.5f);
        }
        break;
    case BN_TYPE_TQ2_0:
    case BN_TYPE_I2_S: {
        uint64_t packed = type == BN_TYPE_I2_S ? n / 4 : n / 256 * 66;
        for (uint64_t i = 0; i < packed; i++) {
            uint8_t byte = 0;
            for (int k = 0; k < 4; k++) byte = (uint8_t)(byte << 2 | next_byte(&s) % 3);
            data[i] = byte;
        }
        if (type == BN_TYPE_TQ2_0) {
            for (uint64_t b = 0; b < n / 256; b++) put_f16(data + 66 * b + 64, 0.25f);
        } else {
            float scale = 0.75f;
            memcpy(data + n / 4, &scale, 4);
            memset(data + n / 4 + 4, 0, 28);
        }
        break;
    }
    }
}

bn_status bn_gguf_example_write_small(const char *path, bn_error *err) {
    static const struct { const char *name; uint32_t type; uint32_t n_dims; uint64_t ne[2]; } specs[] = {
        {"example.f32", BN_TYPE_F32, 1, {8, 1}},
        {"example.f16", BN_TYPE_F16, 2, {16, 2}},
        {"example.bf16", BN_TYPE_BF16, 1, {16, 1}},
        {"example.q8_0", BN_TYPE_Q8_0, 2, {32, 2}},
        {"example.tq1_0", BN_TYPE_TQ1_0, 1, {256, 1}},
        {"example.tq2_0", BN_TYPE_TQ2_0, 1, {256, 1}},
        {"example.i2_s", BN_TYPE_I2_S, 2, {128, 2}},
    };
    enum { N = sizeof specs / sizeof specs[0], MAX_BYTES = 1024 };
    uint8_t data[N][MAX_BYTES];
    bn_gguf_writer *w = bn_gguf_writer_new();
    if (!w) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    static const uint16_t u16s[] = {1, 2, 65535};
    static const int32_t i32s[] = {-1, 0, 2147483647};
    static const float f32s[] = {0.5f, -1.25f, 3.0f};
    static const uint8_t bools[] = {1, 0, 1};
    static const char *const strings[] = {"alpha", "beta", "γάμμα", ""};
    uint32_t row0[] = {1, 2, 3}, row1[] = {4, 5};
    bn_gguf_value rows[2], nested;
    memset(rows, 0, sizeof rows);
    memset(&nested, 0, sizeof nested);
    rows[0].type = rows[1].type = BN_GGUF_ARRAY;
    rows[0].as.arr = (bn_gguf_array){BN_GGUF_UINT32, 3, (const uint8_t *)row0, NULL, NULL};
    rows[1].as.arr = (bn_gguf_array){BN_GGUF_UINT32, 2, (const uint8_t *)row1, NULL, NULL};
    nested.type = BN_GGUF_ARRAY;
    nested.as.arr = (bn_gguf_array){BN_GGUF_ARRAY, 2, NULL, NULL, rows};
    uint32_t long_array[300];
    for (uint32_t i = 0; i < 300; i++) long_array[i] = i * i;
    bn_status st;
    if ((st = bn_gguf_writer_add_string(w, "general.architecture", "example", err)) ||
        (st = bn_gguf_writer_add_string(w, "general.name", "bitnet-c example file", err)) ||
        (st = bn_gguf_writer_add_u32(w, "general.alignment", 32, err)) ||
        (st = bn_gguf_writer_add_u8(w, "example.uint8", 200, err)) ||
        (st = bn_gguf_writer_add_i8(w, "example.int8", -100, err)) ||
        (st = bn_gguf_writer_add_u16(w, "example.uint16", 60000, err)) ||
        (st = bn_gguf_writer_add_i16(w, "example.int16", -30000, err)) ||
        (st = bn_gguf_writer_add_i32(w, "example.int32", -2000000000, err)) ||
        (st = bn_gguf_writer_add_u64(w, "example.uint64", 18446744073709551615ull, err)) ||
        (st = bn_gguf_writer_add_i64(w, "example.int64", -9000000000000000000ll, err)) ||
        (st = bn_gguf_writer_add_f32(w, "example.float32", 1e-5f, err)) ||
        (st = bn_gguf_writer_add_f64(w, "example.float64", 3.141592653589793, err)) ||
        (st = bn_gguf_writer_add_bool(w, "example.bool", true, err)) ||
        (st = bn_gguf_writer_add_array(w, "example.uint16_array", BN_GGUF_UINT16, u16s, 3, err)) ||
        (st = bn_gguf_writer_add_array(w, "example.int32_array", BN_GGUF_INT32, i32s, 3, err)) ||
        (st = bn_gguf_writer_add_array(w, "example.float32_array", BN_GGUF_FLOAT32, f32s, 3, err)) ||
        (st = bn_gguf_writer_add_array(w, "example.bool_array", BN_GGUF_BOOL, bools, 3, err)) ||
        (st = bn_gguf_writer_add_array(w, "example.long_array", BN_GGUF_UINT32, long_array, 300, err)) ||
        (st = bn_gguf_writer_add_string_array(w, "example.string_array", strings, 4, err)) ||
        (st = bn_gguf_writer_add_value(w, "example.nested_array", &nested, err)))
        goto done;
    for (unsigned i = 0; i < N && !st; i++) {
        uint64_t n = specs[i].ne[0] * specs[i].ne[1], bytes;
        if ((st = bn_quant_tensor_bytes(specs[i].type, n, specs[i].ne[0], &bytes, err))) break;
        if (bytes > MAX_BYTES) {
            st = bn_error_set(err, BN_ERR_RANGE, "example tensor %s needs %llu bytes", specs[i].name,
                              (unsigned long long)bytes);
            break;
        }
        fill_tensor(data[i], specs[i].type, n, i + 1);
        st = bn_gguf_writer_add_tensor(w, specs[i].name, specs[i].type, specs[i].n_dims, specs[i].ne,
                                       data[i], err);
    }
    if (!st) st = bn_gguf_writer_write(w, path, err);
done:
    bn_gguf_writer_free(w);
    return st;
}
