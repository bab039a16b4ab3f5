/*
 * ternary.c: reference pack/unpack for I2_S, TQ2_0 and TQ1_0 (layouts in ternary.h). Every
 * routine is written per element through one position function per format, so the layout is
 * stated once and the kernels' tests can lean on it.
 */
#include "quant/ternary.h"

#include "core/fp16.h"
#include "quant/quant_format.h"

#include <math.h>
#include <string.h>

/* Byte offset and shift of element k (0..127) inside an I2_S block. */
static void i2s_position(size_t k, size_t *byte, int *shift) {
    *byte = k % 32;
    *shift = 6 - 2 * (int)(k / 32);
}

/* Byte offset (inside qs) and shift of element k (0..255) inside a TQ2_0 block. */
static void tq2_position(size_t k, size_t *byte, int *shift) {
    size_t half = k / 128, within = k % 128;
    *byte = half * 32 + within % 32;
    *shift = 2 * (int)(within / 32);
}

/* Byte offset (qs then qh, 0..51) and base-3 digit index of element k inside a TQ1_0 block. */
static void tq1_position(size_t k, size_t *byte, int *digit) {
    if (k < 160) {
        *byte = k % 32;
        *digit = (int)(k / 32);
    } else if (k < 240) {
        *byte = 32 + (k - 160) % 16;
        *digit = (int)((k - 160) / 16);
    } else {
        *byte = 48 + (k - 240) % 4;
        *digit = (int)((k - 240) / 4);
    }
}

bn_status bn_ternary_bytes(size_t *out_bytes, uint32_t type, size_t n_elements, bn_error *err) {
    const bn_quant_format *format = bn_quant_format_get(type);
    if (!format || !format->ternary)
        return bn_error_set(err, BN_ERR_INVALID, "type id %u is not a ternary format", type);
    if (n_elements == 0 || n_elements % format->block_elements != 0)
        return bn_error_set(err, BN_ERR_INVALID, "%zu elements is not a whole number of %s blocks",
                            n_elements, format->name);
    size_t blocks = n_elements / format->block_elements;
    if (blocks > (SIZE_MAX - format->tensor_extra_bytes) / format->block_bytes)
        return bn_error_set(err, BN_ERR_INVALID, "size of %zu %s elements overflows", n_elements,
                            format->name);
    *out_bytes = blocks * format->block_bytes + format->tensor_extra_bytes;
    return BN_OK;
}

float bn_i2s_scale(const void *src, size_t n_elements) {
    float scale;
    memcpy(&scale, (const uint8_t *)src + n_elements / 4, sizeof scale);
    return scale;
}

int64_t bn_i2s_find_code3(const void *src, size_t n_elements) {
    const uint8_t *bytes = src;
    size_t n_bytes = n_elements / 4, i = 0;
    /* A byte holds code 3 somewhere iff some 2-bit field has both bits set. */
    for (; i + 8 <= n_bytes; i += 8) {
        uint64_t word;
        memcpy(&word, bytes + i, 8);
        if (word & (word >> 1) & 0x5555555555555555ull) break;
    }
    for (; i < n_bytes; i++) {
        if (!(bytes[i] & (bytes[i] >> 1) & 0x55)) continue;
        /* The first weight in element order is in this byte's block, but maybe in a later byte
         * of a lower group: scan the block group by group. */
        size_t block = i / BN_I2S_BLOCK_BYTES;
        const uint8_t *b = bytes + block * BN_I2S_BLOCK_BYTES;
        for (int group = 0; group < 4; group++)
            for (size_t byte = 0; byte < BN_I2S_BLOCK_BYTES; byte++)
                if (((b[byte] >> (6 - 2 * group)) & 3) == 3)
                    return (int64_t)(block * BN_I2S_BLOCK + (size_t)group * 32 + byte);
    }
    return -1;
}

bn_status bn_ternary_pack(void *dst, uint32_t type, const int8_t *values, size_t n_elements,
                          float scale, const float *block_scales, bn_error *err) {
    size_t bytes;
    bn_status status = bn_ternary_bytes(&bytes, type, n_elements, err);
    if (status != BN_OK) return status;
    for (size_t i = 0; i < n_elements; i++)
        if (values[i] < -1 || values[i] > 1)
            return bn_error_set(err, BN_ERR_INVALID, "element %zu is %d, not a ternary value", i,
                                values[i]);
    uint8_t *out = dst;
    memset(out, 0, bytes);
    if (type == BN_TYPE_I2_S) {
        for (size_t i = 0; i < n_elements; i++) {
            size_t byte;
            int shift;
            i2s_position(i % BN_I2S_BLOCK, &byte, &shift);
            out[i / BN_I2S_BLOCK * BN_I2S_BLOCK_BYTES + byte] |= (uint8_t)((values[i] + 1) << shift);
        }
        memcpy(out + n_elements / 4, &scale, sizeof scale);
        return BN_OK;
    }
    size_t n_blocks = n_elements / BN_TQ_BLOCK;
    for (size_t b = 0; b < n_blocks; b++) {
        const int8_t *v = values + b * BN_TQ_BLOCK;
        uint16_t d = bn_fp32_to_fp16(block_scales ? block_scales[b] : scale);
        if (type == BN_TYPE_TQ2_0) {
            uint8_t *block = out + b * BN_TQ2_BLOCK_BYTES;
            for (size_t k = 0; k < BN_TQ_BLOCK; k++) {
                size_t byte;
                int shift;
                tq2_position(k, &byte, &shift);
                block[byte] |= (uint8_t)((v[k] + 1) << shift);
            }
            memcpy(block + 64, &d, 2);
        } else {
            uint8_t *block = out + b * BN_TQ1_BLOCK_BYTES;
            unsigned number[52] = {0}; /* base-3 number per byte, most significant digit first */
            int digits[52] = {0};
            for (size_t k = 0; k < BN_TQ_BLOCK; k++) {
                size_t byte;
                int digit;
                tq1_position(k, &byte, &digit);
                (void)digit; /* digits arrive in increasing order per byte */
                number[byte] = number[byte] * 3 + (unsigned)(v[k] + 1);
                digits[byte]++;
            }
            for (size_t byte = 0; byte < 52; byte++) {
                unsigned n = number[byte];
                for (int extra = digits[byte]; extra < 5; extra++) n *= 3; /* qh: top positions */
                block[byte] = (uint8_t)((n * 256 + 242) / 243);
            }
            memcpy(block + 52, &d, 2);
        }
    }
    return BN_OK;
}

bn_status bn_ternary_unpack_values(int8_t *values, uint32_t type, const void *src,
                                   size_t n_elements, bn_error *err) {
    size_t bytes;
    bn_status status = bn_ternary_bytes(&bytes, type, n_elements, err);
    if (status != BN_OK) return status;
    const uint8_t *in = src;
    for (size_t i = 0; i < n_elements; i++) {
        size_t byte;
        int shift, code;
        if (type == BN_TYPE_I2_S) {
            i2s_position(i % BN_I2S_BLOCK, &byte, &shift);
            code = (in[i / BN_I2S_BLOCK * BN_I2S_BLOCK_BYTES + byte] >> shift) & 3;
            if (code == 3)
                return bn_error_set(err, BN_ERR_FORMAT, "I2_S element %zu has invalid code 3", i);
        } else if (type == BN_TYPE_TQ2_0) {
            tq2_position(i % BN_TQ_BLOCK, &byte, &shift);
            code = (in[i / BN_TQ_BLOCK * BN_TQ2_BLOCK_BYTES + byte] >> shift) & 3;
        } else {
            tq1_position(i % BN_TQ_BLOCK, &byte, &shift);
            code = bn_tq1_digit(in[i / BN_TQ_BLOCK * BN_TQ1_BLOCK_BYTES + byte], shift);
        }
        values[i] = (int8_t)(code - 1);
    }
    return BN_OK;
}

bn_status bn_ternary_unpack(float *dst, uint32_t type, const void *src, size_t n_elements,
                            bn_error *err) {
    /* Unpack values into dst's storage first (an int8 per float slot, walked backwards). */
    int8_t *values = (int8_t *)dst;
    bn_status status = bn_ternary_unpack_values(values, type, src, n_elements, err);
    if (status != BN_OK) return status;
    const uint8_t *in = src;
    const float tensor_scale = type == BN_TYPE_I2_S ? bn_i2s_scale(src, n_elements) : 0.0f;
    for (size_t i = n_elements; i-- > 0;) {
        float scale = tensor_scale;
        if (type != BN_TYPE_I2_S) {
            size_t block_bytes = type == BN_TYPE_TQ2_0 ? BN_TQ2_BLOCK_BYTES : BN_TQ1_BLOCK_BYTES;
            uint16_t d;
            memcpy(&d, in + (i / BN_TQ_BLOCK + 1) * block_bytes - 2, 2);
            scale = bn_fp16_to_fp32(d);
        }
        dst[i] = (float)values[i] * scale;
    }
    return BN_OK;
}
