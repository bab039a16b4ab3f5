/*
 * fp16.h: IEEE half and bfloat16 conversions (scalar, exact, round-to-nearest-even on the way
 * down). Used by formats, kernels' reference paths and the GGUF writer's tests.
 */
#ifndef BN_CORE_FP16_H
#define BN_CORE_FP16_H

#include <stdint.h>

float bn_fp16_to_fp32(uint16_t h);
uint16_t bn_fp32_to_fp16(float f);
float bn_bf16_to_fp32(uint16_t h);
uint16_t bn_fp32_to_bf16(float f);

#endif
