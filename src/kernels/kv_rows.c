/*
 * kv_rows.c: the KV cache types of kernels/ops.h (F16, F32, Q8_0) and their row conversions.
 *
 * Design: a cache type is a ggml type id, so its name and block size come from the format table
 * (quant/quant_format.h) and the Q8_0 rows are ggml's block_q8_0 byte for byte. Rows are written
 * once per token and layer and read back as float only by context shift; the attention kernels
 * read the stored form directly. The Q8_0 quantizer is the one the LM head's activations use
 * (kernels/cpu/act_blocks.h), ggml's quantize_row_q8_0 as x86 builds of llama.cpp run it to
 * write their q8_0 caches.
 */
#include "kernels/ops.h"

#include "core/fp16.h"
#include "kernels/cpu/act_blocks.h"
#include "quant/quant_format.h"

#include <assert.h>
#include <string.h>

bool bn_kv_type_supported(uint32_t type) {
    return type == BN_TYPE_F16 || type == BN_TYPE_F32 || type == BN_TYPE_Q8_0;
}

bn_status bn_kv_type_parse(uint32_t *type, const char *name, bn_error *err) {
    static const uint32_t types[] = {BN_TYPE_F16, BN_TYPE_F32, BN_TYPE_Q8_0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (name && !strcmp(name, bn_quant_format_get(types[i])->name)) {
            *type = types[i];
            return BN_OK;
        }
    return bn_error_set(err, BN_ERR_INVALID, "KV cache type '%s': expected f16, f32 or q8_0",
                        name ? name : "");
}

int bn_kv_type_block(uint32_t type) { return type == BN_TYPE_Q8_0 ? BN_Q8_0_BLOCK : 1; }

size_t bn_kv_type_bytes(uint32_t type, size_t n_values) {
    switch (type) {
    case BN_TYPE_F16: return n_values * sizeof(uint16_t);
    case BN_TYPE_Q8_0: return n_values / BN_Q8_0_BLOCK * sizeof(bn_q8_0_block);
    default: return n_values * sizeof(float);
    }
}

_Static_assert(sizeof(bn_q8_0_block) == 34, "a q8_0 cache row is ggml's block_q8_0 array");

void bn_kv_encode_row(void *dst, uint32_t type, const float *x, int n) {
    assert(n % bn_kv_type_block(type) == 0);
    switch (type) {
    case BN_TYPE_F16:
        for (int i = 0; i < n; i++) ((uint16_t *)dst)[i] = bn_fp32_to_fp16(x[i]);
        break;
    case BN_TYPE_Q8_0: bn_quantize_row_q8_0(dst, x, n); break;
    default: memcpy(dst, x, (size_t)n * sizeof(float)); break;
    }
}

void bn_kv_decode_row(float *out, uint32_t type, const void *src, int n) {
    assert(n % bn_kv_type_block(type) == 0);
    switch (type) {
    case BN_TYPE_F16:
        for (int i = 0; i < n; i++) out[i] = bn_fp16_to_fp32(((const uint16_t *)src)[i]);
        break;
    case BN_TYPE_Q8_0: {
        const bn_q8_0_block *blocks = src;
        for (int b = 0; b < n / BN_Q8_0_BLOCK; b++) {
            const float d = bn_fp16_to_fp32(blocks[b].d);
            for (int i = 0; i < BN_Q8_0_BLOCK; i++) out[BN_Q8_0_BLOCK * b + i] = (float)blocks[b].qs[i] * d;
        }
        break;
    }
    default: memcpy(out, src, (size_t)n * sizeof(float)); break;
    }
}
