/*
 * fuzz_quant_roundtrip.c: pack/unpack of the three ternary file formats (quant/ternary.h) both
 * ways: fuzz values packed and unpacked, and fuzz bytes unpacked and packed again.
 *
 * Input: format byte, block count (1..8), mode byte, then values or raw bytes and scales.
 *
 * Properties:
 *   - sizes: bn_ternary_bytes agrees with the format table (bn_quant_tensor_bytes) and rejects
 *     element counts that are not whole blocks;
 *   - values -> pack -> unpack_values gives the values back; unpack (float) gives value * scale
 *     (I2_S: the tensor scale; TQ: the block's fp16 scale), and pack rejects a value outside
 *     {-1, 0, 1} with BN_ERR_INVALID;
 *   - bytes -> unpack_values: I2_S fails exactly when bn_i2s_find_code3 finds a code 3, naming
 *     that element; TQ2_0 code 3 yields +2 (then pack rejects it); every other value is in
 *     {-1, 0, 1}; and pack(unpack(bytes)) == bytes for I2_S (codes, scale; padding zeroed) and
 *     TQ2_0 (codes, scales), while TQ1_0 (whose bytes are not all canonical) is idempotent after
 *     one round: unpack(pack(unpack(bytes))) == unpack(bytes).
 */
#include "bitnet.h"
#include "core/fp16.h"
#include "fuzz_input.h"
#include "quant/quant_format.h"
#include "quant/ternary.h"

static const uint32_t types[] = {BN_TYPE_I2_S, BN_TYPE_TQ2_0, BN_TYPE_TQ1_0};

static void *xmalloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p) abort();
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_fuzz_input in = bn_fuzz_input_make(data, size);
    uint32_t type = types[bn_fuzz_u8(&in) % 3];
    size_t block = type == BN_TYPE_I2_S ? BN_I2S_BLOCK : BN_TQ_BLOCK;
    size_t n = block * (size_t)bn_fuzz_range(&in, 1, 8);
    uint8_t mode = bn_fuzz_u8(&in);
    bn_error err;

    size_t bytes = 0;
    uint64_t table_bytes = 0;
    BN_FUZZ_CHECK(bn_ternary_bytes(&bytes, type, n, &err) == BN_OK, "bytes: %s", err.message);
    BN_FUZZ_CHECK(bn_quant_tensor_bytes(type, n, n, &table_bytes, NULL) == BN_OK && table_bytes == bytes,
                  "ternary_bytes %zu, format table %llu", bytes, (unsigned long long)table_bytes);
    size_t odd = n + 1 + (size_t)bn_fuzz_range(&in, 0, (int64_t)block - 2);
    size_t dummy;
    BN_FUZZ_CHECK(bn_ternary_bytes(&dummy, type, odd, &err) == BN_ERR_INVALID, "%zu elements accepted", odd);

    int8_t *values = xmalloc(n), *back = xmalloc(n), *again = xmalloc(n);
    uint8_t *packed = xmalloc(bytes), *repacked = xmalloc(bytes);
    float *floats = xmalloc(n * sizeof(float));
    size_t n_blocks = n / BN_TQ_BLOCK + 1;
    float *scales = xmalloc(n_blocks * sizeof(float));

    if (mode < 128) {
        /* values -> bytes -> values */
        for (size_t i = 0; i < n; i += 4) {
            uint8_t b = bn_fuzz_u8(&in);
            for (size_t k = 0; k < 4; k++) values[i + k] = (int8_t)((b >> (2 * k) & 3) % 3) - 1;
        }
        float scale = bn_fuzz_float(&in);
        for (size_t b = 0; b < n_blocks; b++) scales[b] = bn_fuzz_float(&in);
        bool per_block = mode & 1;
        BN_FUZZ_CHECK(bn_ternary_pack(packed, type, values, n, scale, per_block ? scales : NULL, &err) == BN_OK,
                      "pack: %s", err.message);
        BN_FUZZ_CHECK(bn_ternary_unpack_values(back, type, packed, n, &err) == BN_OK, "unpack: %s", err.message);
        BN_FUZZ_CHECK(memcmp(values, back, n) == 0, "values changed by the round trip");
        BN_FUZZ_CHECK(bn_ternary_unpack(floats, type, packed, n, &err) == BN_OK, "unpack float: %s", err.message);
        if (type == BN_TYPE_I2_S) {
            BN_FUZZ_CHECK(bn_fuzz_same_float(bn_i2s_scale(packed, n), scale), "I2_S scale %a came back as %a",
                          (double)scale, (double)bn_i2s_scale(packed, n));
            for (size_t b = n / 4 + 4; b < bytes; b++) BN_FUZZ_CHECK(packed[b] == 0, "I2_S padding byte %zu", b);
        }
        for (size_t i = 0; i < n; i++) {
            float d = type == BN_TYPE_I2_S ? scale
                                           : bn_fp16_to_fp32(bn_fp32_to_fp16(per_block ? scales[i / BN_TQ_BLOCK] : scale));
            BN_FUZZ_CHECK(bn_fuzz_same_float(floats[i], (float)values[i] * d), "element %zu: %a, expected %d * %a", i,
                          (double)floats[i], values[i], (double)d);
        }
        /* a value outside {-1, 0, 1} is rejected */
        size_t at = (size_t)bn_fuzz_range(&in, 0, (int64_t)n - 1);
        values[at] = (int8_t)(bn_fuzz_bool(&in) ? 2 : -2);
        BN_FUZZ_CHECK(bn_ternary_pack(packed, type, values, n, scale, NULL, &err) == BN_ERR_INVALID,
                      "pack accepted %d", values[at]);
    } else {
        /* bytes -> values -> bytes */
        size_t got;
        const uint8_t *p = bn_fuzz_bytes(&in, bytes, &got);
        memcpy(packed, p, got);
        bn_status st = bn_ternary_unpack_values(back, type, packed, n, &err);
        if (type == BN_TYPE_I2_S) {
            int64_t bad = bn_i2s_find_code3(packed, n);
            if (bad >= 0) {
                char want[48];
                snprintf(want, sizeof want, "%lld", (long long)bad);
                BN_FUZZ_CHECK(st == BN_ERR_FORMAT && strstr(err.message, want), "code 3 at %lld: status %d \"%s\"",
                              (long long)bad, (int)st, err.message);
                goto out;
            }
        }
        BN_FUZZ_CHECK(st == BN_OK, "unpack: %s", err.message);
        bool has_two = false;
        for (size_t i = 0; i < n; i++) {
            BN_FUZZ_CHECK(back[i] >= -1 && back[i] <= (type == BN_TYPE_TQ2_0 ? 2 : 1), "value %d at %zu", back[i], i);
            has_two |= back[i] == 2;
        }
        /* the scales as stored */
        float scale = 0;
        if (type == BN_TYPE_I2_S) {
            scale = bn_i2s_scale(packed, n);
        } else {
            size_t bb = type == BN_TYPE_TQ2_0 ? BN_TQ2_BLOCK_BYTES : BN_TQ1_BLOCK_BYTES;
            for (size_t b = 0; b < n / BN_TQ_BLOCK; b++) {
                uint16_t h;
                memcpy(&h, packed + b * bb + bb - 2, 2);
                scales[b] = bn_fp16_to_fp32(h);
            }
        }
        st = bn_ternary_pack(repacked, type, back, n, scale, scales, &err);
        if (has_two) {
            BN_FUZZ_CHECK(st == BN_ERR_INVALID, "pack accepted +2");
            goto out;
        }
        BN_FUZZ_CHECK(st == BN_OK, "repack: %s", err.message);
        if (type == BN_TYPE_TQ1_0) {
            BN_FUZZ_CHECK(bn_ternary_unpack_values(again, type, repacked, n, &err) == BN_OK && memcmp(again, back, n) == 0,
                          "TQ1_0 values changed by a second round");
        } else {
            size_t bb = type == BN_TYPE_TQ2_0 ? BN_TQ2_BLOCK_BYTES : 0;
            size_t limit = type == BN_TYPE_I2_S ? n / 4 + 4 : bytes;
            for (size_t i = 0; i < limit; i++) {
                bool scale_byte = type == BN_TYPE_TQ2_0 ? i % bb >= bb - 2 : i >= n / 4;
                if (scale_byte) {
                    float s = type == BN_TYPE_I2_S ? scale : scales[i / bb];
                    if (isnan(s)) continue; /* NaN payloads need not survive float conversion */
                }
                BN_FUZZ_CHECK(repacked[i] == packed[i], "byte %zu: %02x repacked as %02x", i, packed[i], repacked[i]);
            }
        }
    }
out:
    free(values), free(back), free(again), free(packed), free(repacked), free(floats), free(scales);
    return 0;
}
