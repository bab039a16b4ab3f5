/*
 * act_blocks.c: the Q8_K and Q8_0 activation quantizers of act_blocks.h (scalar; their cost is
 * one pass over the activations, small next to the weights the dot products stream).
 */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#include "kernels/cpu/act_blocks.h"

#include "core/fp16.h"

#include <math.h>
#include <string.h>

void bn_quantize_row_q8k(bn_q8k_block *out, const float *x, int cols) {
    for (int b = 0; b < cols / BN_Q8K_BLOCK; b++, x += BN_Q8K_BLOCK) {
        bn_q8k_block *y = &out[b];
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < BN_Q8K_BLOCK; j++) {
            const float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(y, 0, sizeof *y);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < BN_Q8K_BLOCK; j++) {
            const float scaled = iscale * x[j]; /* rounded to float before the shift */
            const int v = bn_ggml_nearest_int(scaled);
            y->qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < BN_Q8K_BLOCK / 16; j++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += y->qs[16 * j + i];
            y->bsums[j] = (int16_t)sum;
        }
        y->d = 1.0f / iscale;
    }
}

void bn_quantize_row_q8_0(bn_q8_0_block *out, const float *x, int cols) {
    for (int b = 0; b < cols / BN_Q8_0_BLOCK; b++, x += BN_Q8_0_BLOCK) {
        bn_q8_0_block *y = &out[b];
        float amax = 0.0f;
        for (int j = 0; j < BN_Q8_0_BLOCK; j++) {
            const float ax = fabsf(x[j]);
            amax = amax > ax ? amax : ax; /* _mm256_max_ps(amax, ax) */
        }
        y->d = bn_fp32_to_fp16(amax / 127.0f);
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        for (int j = 0; j < BN_Q8_0_BLOCK; j++) {
            const float v = nearbyintf(x[j] * id);
            y->qs[j] = (int8_t)(!(v >= -128.0f) ? -128 : v > 127.0f ? 127 : (int)v);
        }
    }
}
