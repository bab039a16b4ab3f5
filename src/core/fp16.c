/*
 * fp16.c: scalar half/bfloat16 conversions. Bit manipulation, no FPU mode assumptions; NaN stays
 * NaN, overflow goes to infinity, subnormals are handled both ways.
 */
#include "core/fp16.h"

#include <string.h>

static float bits_to_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t float_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

float bn_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0) {
        if (mantissa == 0) return bits_to_float(sign);
        /* subnormal: value = mantissa * 2^-24 */
        float value = (float)mantissa * (1.0f / 16777216.0f);
        return sign ? -value : value;
    }
    if (exponent == 31) return bits_to_float(sign | 0x7f800000u | (mantissa << 13));
    return bits_to_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t bn_fp32_to_fp16(float f) {
    uint32_t u = float_to_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0));
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: infinity */
    if (abs < 0x38800000u) {
        /* result is subnormal or zero: add a magic number so the FPU rounds for us */
        float magic = bits_to_float(0x3f000000u); /* 0.5 */
        float rounded = bits_to_float(abs) + magic;
        return (uint16_t)(sign | (float_to_bits(rounded) - float_to_bits(magic)));
    }
    uint32_t mantissa_odd = (abs >> 13) & 1u;
    abs += 0xc8000fffu + mantissa_odd; /* rebias exponent (-112 << 23) and round half to even */
    return (uint16_t)(sign | (abs >> 13));
}

float bn_bf16_to_fp32(uint16_t h) { return bits_to_float((uint32_t)h << 16); }

uint16_t bn_fp32_to_bf16(float f) {
    uint32_t u = float_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
