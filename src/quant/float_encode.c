/*
 * float_encode.c: float rows in the embedding and head types (see float_encode.h). Block layouts
 * of ggml-common.h; each quantizer's comment gives its layout and how it picks the scales.
 */
#include "quant/float_encode.h"

#include "core/fp16.h"
#include "quant/quant_format.h"

#include <assert.h>
#include <math.h>
#include <string.h>

bool bn_quant_encodable(uint32_t type) {
    return type == BN_TYPE_F32 || type == BN_TYPE_F16 || type == BN_TYPE_BF16 || type == BN_TYPE_Q8_0 ||
           type == BN_TYPE_Q6_K || type == BN_TYPE_Q4_K;
}

/* Stores fp16(v) little-endian at p; returns the value it decodes to. */
static float put_fp16(uint8_t *p, float v) {
    uint16_t h = bn_fp32_to_fp16(v);
    p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
    return bn_fp16_to_fp32(h);
}

/* v / step rounded to the nearest integer and clamped to [lo, hi]; 0 when step is 0. */
static int quantize_value(float v, float step, int lo, int hi) {
    if (!(step > 0.0f)) return 0;
    long q = lroundf(v / step);
    return q < lo ? lo : q > hi ? hi : (int)q;
}

/* block_q8_0, 32 values in 34 bytes: fp16 d, int8 qs[32]; value = d * q. d = max|x| / 127. */
static void quantize_block_q8_0(uint8_t *out, const float *x) {
    float amax = 0.0f;
    for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
    float d = put_fp16(out, amax / 127.0f);
    for (int i = 0; i < 32; i++) out[2 + i] = (uint8_t)(int8_t)quantize_value(x[i], d, -127, 127);
}

/* block_q4_K, 256 values in 144 bytes: fp16 d, fp16 dmin, scales[12], qs[128]. Eight sub-blocks
 * of 32, each with a 6-bit scale s and min m: value = d*s * q - dmin*m, q in 0..15. Sub-block
 * 2c takes the low nibbles of qs[32c .. 32c+31], 2c+1 the high ones. The 6-bit numbers are packed
 * as ggml's get_scale_min_k4 reads them: bytes 0-3 hold s0-s3 (bits 5:0) and the top two bits of
 * s4-s7 (bits 7:6), bytes 4-7 the same for the mins, bytes 8-11 the low four bits of s4-s7 (3:0)
 * and of m4-m7 (7:4). Per sub-block the grid runs from min(x, 0) to max(x) in 15 steps. */
static void quantize_block_q4_k(uint8_t *out, const float *x) {
    float scale[8], min[8], max_scale = 0.0f, max_min = 0.0f;
    for (int s = 0; s < 8; s++) {
        float lo = 0.0f, hi = x[32 * s];
        for (int i = 0; i < 32; i++) lo = fminf(lo, x[32 * s + i]), hi = fmaxf(hi, x[32 * s + i]);
        scale[s] = (hi - lo) / 15.0f, min[s] = -lo;
        max_scale = fmaxf(max_scale, scale[s]), max_min = fmaxf(max_min, min[s]);
    }
    memset(out, 0, 144);
    float d = put_fp16(out, max_scale / 63.0f), dmin = put_fp16(out + 2, max_min / 63.0f);
    uint8_t sc[8], mn[8], *scales = out + 4, *qs = out + 16;
    for (int s = 0; s < 8; s++) {
        sc[s] = (uint8_t)quantize_value(scale[s], d, 0, 63);
        mn[s] = (uint8_t)quantize_value(min[s], dmin, 0, 63);
    }
    for (int j = 0; j < 4; j++) {
        scales[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        scales[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        scales[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
    for (int s = 0; s < 8; s++) {
        float step = d * sc[s], offset = dmin * mn[s];
        for (int i = 0; i < 32; i++) {
            int q = quantize_value(x[32 * s + i] + offset, step, 0, 15);
            qs[32 * (s / 2) + i] |= (uint8_t)(s % 2 ? q << 4 : q);
        }
    }
}

/* block_q6_K, 256 values in 210 bytes: ql[128], qh[64], int8 scales[16], fp16 d. Sixteen groups
 * of 16 with an 8-bit scale: value = d * scale * (L - 32), L in 0..63. In each half of 128
 * values (ql += 64, qh += 32), position l (0..31) holds values l, l+32, l+64, l+96: their low
 * four bits in ql[l] (l, l+64: low, high nibble) and ql[l+32] (l+32, l+96), their top two bits
 * in qh[l] at bits 1:0, 3:2, 5:4, 7:6. Group scale = max|x| / 31. */
static void quantize_block_q6_k(uint8_t *out, const float *x) {
    float group_scale[16], max_scale = 0.0f;
    for (int g = 0; g < 16; g++) {
        float amax = 0.0f;
        for (int i = 0; i < 16; i++) amax = fmaxf(amax, fabsf(x[16 * g + i]));
        group_scale[g] = amax / 31.0f;
        max_scale = fmaxf(max_scale, group_scale[g]);
    }
    uint8_t *ql = out, *qh = out + 128, *scales = out + 192, L[256];
    float d = put_fp16(out + 208, max_scale / 127.0f);
    for (int g = 0; g < 16; g++) {
        int sc = quantize_value(group_scale[g], d, 0, 127);
        scales[g] = (uint8_t)(int8_t)sc;
        for (int i = 0; i < 16; i++) L[16 * g + i] = (uint8_t)(quantize_value(x[16 * g + i], d * sc, -32, 31) + 32);
    }
    for (int half = 0; half < 2; half++) {
        const uint8_t *v = L + 128 * half;
        for (int l = 0; l < 32; l++) {
            ql[64 * half + l] = (uint8_t)((v[l] & 15) | (v[l + 64] & 15) << 4);
            ql[64 * half + l + 32] = (uint8_t)((v[l + 32] & 15) | (v[l + 96] & 15) << 4);
            qh[32 * half + l] = (uint8_t)(v[l] >> 4 | (v[l + 32] >> 4) << 2 | (v[l + 64] >> 4) << 4 | (v[l + 96] >> 4) << 6);
        }
    }
}

void bn_quant_encode_row(uint8_t *out, uint32_t type, const float *x, size_t n) {
    switch (type) {
    case BN_TYPE_F32: memcpy(out, x, n * sizeof *x); break;
    case BN_TYPE_F16:
        for (size_t i = 0; i < n; i++) put_fp16(out + 2 * i, x[i]);
        break;
    case BN_TYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = bn_fp32_to_bf16(x[i]);
            out[2 * i] = (uint8_t)h, out[2 * i + 1] = (uint8_t)(h >> 8);
        }
        break;
    case BN_TYPE_Q8_0:
        for (size_t b = 0; b < n / 32; b++) quantize_block_q8_0(out + 34 * b, x + 32 * b);
        break;
    case BN_TYPE_Q4_K:
        for (size_t b = 0; b < n / 256; b++) quantize_block_q4_k(out + 144 * b, x + 256 * b);
        break;
    case BN_TYPE_Q6_K:
        for (size_t b = 0; b < n / 256; b++) quantize_block_q6_k(out + 210 * b, x + 256 * b);
        break;
    default: assert(!"bn_quant_encode_row: not an embedding/head type");
    }
}

