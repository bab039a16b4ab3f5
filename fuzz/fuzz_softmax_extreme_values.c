/*
 * fuzz_softmax_extreme_values.c: softmax (kernels/ops.h bn_softmax) on inputs built to be
 * hostile: +inf, -inf, NaN, denormals, +-FLT_MAX, huge ranges (-3e38 next to 3e38), all-equal
 * rows, all -inf rows, lengths that straddle the SIMD widths.
 *
 * Properties (the definition in kernels/cpu/ref_ops.h), on every path:
 *   - an input with a NaN gives all NaN; otherwise no output is NaN and each is in [0, 1];
 *   - max +inf: the k +inf entries get 1/k each (within 1e-6), the others exactly 0;
 *   - all -inf: every entry 1/n;
 *   - otherwise the outputs sum to 1 within 1e-5 (relative), the (first) maximal input gets the
 *     largest output, outputs are ordered like the inputs to within 4 ulp (ggml's polynomial
 *     exp, spec section 4.1, is not exactly monotone), and every path gives the same bits.
 */
#include "bitnet.h"
#include "fuzz_kernels_common.h"

#include <float.h>

#define MAX_N 600

static float hostile(bn_fuzz_input *in, uint8_t style) {
    switch (style) {
    case 0: return bn_fuzz_float(in);
    case 1: { /* huge magnitudes, both signs */
        float f = bn_fuzz_finite_float(in);
        return copysignf(3e38f * (fabsf(f) > 1 ? 1 : fabsf(f) + 0.01f), f);
    }
    case 2: { /* denormals and zeros */
        uint32_t bits = bn_fuzz_u32(in) & 0x807fffffu;
        return bn_fuzz_bits_to_float(bits);
    }
    default: { /* mostly -inf with a few finite/+inf entries */
        uint8_t b = bn_fuzz_u8(in);
        return b < 200 ? -INFINITY : b < 250 ? (float)(int8_t)bn_fuzz_u8(in) : INFINITY;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bn_isa isas[BN_ISA_COUNT];
    static int n_isas;
    if (!n_isas) n_isas = bn_fuzz_isas(isas);
    bn_fuzz_input in = bn_fuzz_input_make(data, size);
    uint8_t style = bn_fuzz_u8(&in) % 4;
    int n = (int)bn_fuzz_range(&in, 0, MAX_N);
    static float x[MAX_N], y[MAX_N], first[MAX_N];
    for (int i = 0; i < n; i++) x[i] = hostile(&in, style);

    bool has_nan = false;
    float max = -INFINITY;
    int n_pos_inf = 0, argmax = 0;
    for (int i = 0; i < n; i++) {
        has_nan |= isnan(x[i]) != 0;
        if (x[i] > max) max = x[i], argmax = i;
        n_pos_inf += x[i] == INFINITY;
    }
    for (int k = 0; k < n_isas; k++) {
        bn_isa_set_active(isas[k]);
        memcpy(y, x, (size_t)n * sizeof(float));
        bn_softmax(y, n);
        const char *isa = bn_isa_name(isas[k]);
        if (n == 0) continue;
        if (has_nan) {
            for (int i = 0; i < n; i++) BN_FUZZ_CHECK(isnan(y[i]), "%s: NaN input, output %d is %a", isa, i, (double)y[i]);
            continue;
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            BN_FUZZ_CHECK(!isnan(y[i]) && y[i] >= 0 && y[i] <= 1, "%s: output %d is %a (input %a)", isa, i, (double)y[i],
                          (double)x[i]);
            sum += y[i];
        }
        if (n_pos_inf > 0) {
            for (int i = 0; i < n; i++)
                BN_FUZZ_CHECK(x[i] == INFINITY ? fabs(y[i] - 1.0 / n_pos_inf) <= 1e-6 : y[i] == 0,
                              "%s: +inf case, output %d is %a", isa, i, (double)y[i]);
        } else if (max == -INFINITY) {
            for (int i = 0; i < n; i++)
                BN_FUZZ_CHECK(fabs(y[i] - 1.0 / n) <= 1e-6, "%s: all -inf, output %d is %a", isa, i, (double)y[i]);
        } else {
            BN_FUZZ_CHECK(fabs(sum - 1.0) <= 1e-5, "%s: outputs sum to %.9g", isa, sum);
            for (int i = 0; i < n; i++) {
                BN_FUZZ_CHECK(y[i] <= y[argmax], "%s: output %d (%a) above the max's (%a)", isa, i, (double)y[i],
                              (double)y[argmax]);
                /* ggml's polynomial exp (spec 4.1) is monotone to within a few ulp, not exactly */
                const double ulps = 4.0 * FLT_EPSILON;
                if (i > 0 && x[i] > x[i - 1])
                    BN_FUZZ_CHECK(y[i] >= y[i - 1] * (1.0 - ulps), "%s: order broken at %d", isa, i);
                if (i > 0 && x[i] < x[i - 1])
                    BN_FUZZ_CHECK(y[i] <= y[i - 1] * (1.0 + ulps), "%s: order broken at %d", isa, i);
            }
        }
        if (k == 0) {
            memcpy(first, y, (size_t)n * sizeof(float));
        } else {
            for (int i = 0; i < n; i++)
                BN_FUZZ_CHECK(bn_fuzz_same_float(first[i], y[i]), "%s: output %d is %a, scalar %a", isa, i, (double)y[i],
                              (double)first[i]);
        }
    }
    bn_fuzz_isa_restore();
    return 0;
}
