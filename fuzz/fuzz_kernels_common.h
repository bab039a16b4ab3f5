/*
 * fuzz_kernels_common.h: what the kernel targets share: the ISA paths this CPU runs (scalar
 * first, so index 0 is the reference), forcing one for a call, and F16 helpers.
 *
 * The kernels are called through their public dispatch points (kernels/ops.h) with the path
 * forced by bn_isa_set_active, so the fuzzers test exactly what the model runs on each path.
 */
#ifndef BN_FUZZ_KERNELS_COMMON_H
#define BN_FUZZ_KERNELS_COMMON_H

#include "core/fp16.h"
#include "fuzz_input.h"
#include "kernels/cpu_features.h"
#include "kernels/ops.h"

/* The supported paths, BN_ISA_SCALAR first; returns how many. */
static inline int bn_fuzz_isas(bn_isa out[BN_ISA_COUNT]) {
    int n = 0;
    for (int i = 0; i < BN_ISA_COUNT; i++)
        if (bn_isa_supported((bn_isa)i)) out[n++] = (bn_isa)i;
    return n;
}

/* Puts the best path back after a target forced others. */
static inline void bn_fuzz_isa_restore(void) { bn_isa_set_active(bn_isa_best_supported()); }

/* A fuzz-chosen F16 bit pattern: raw bits (NaN, inf, denormals) or a converted float. */
static inline uint16_t bn_fuzz_f16(bn_fuzz_input *in) {
    uint8_t sel = bn_fuzz_u8(in);
    if (sel < 64) return bn_fuzz_u16(in);
    return bn_fp32_to_fp16((float)((int8_t)bn_fuzz_u8(in)) / 32.0f);
}

#endif
