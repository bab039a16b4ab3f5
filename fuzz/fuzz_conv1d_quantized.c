/*
 * fuzz_conv1d_quantized.c: the ternary 1-D convolution (kernels/ops.h bn_conv1d_ternary) on
 * fuzz-chosen shapes (small ones that run, extreme ones that must be refused: zero, negative,
 * INT_MAX, overflowing products), ternary weights packed as I2_S with any scale, and inputs
 * with any float values.
 *
 * Properties: bn_conv1d_output_length accepts exactly the shapes whose sizes are positive,
 * padding non-negative and dilated kernel within the padded input, and returns
 * (length + 2 padding - dilation (kernel - 1) - 1) / stride + 1; the convolution also refuses
 * weight counts that are not whole I2_S blocks and non-finite inputs (BN_ERR_INVALID); when it
 * runs, every path (scalar, AVX2) writes exactly out_channels x out_length values (a canary
 * after them stays) equal, bit for bit, to the naive loop below: one absmax scale over the
 * whole input (127 / max(max|x|, 1e-5) in double, stored as float), q = clamp(nearbyintf(x *
 * scale), -128, 127), exact int32 sums over in_channels x kernel with zero padding, then
 * ((float)acc / s_x) * s_w.
 */
#include "bitnet.h"
#include "fuzz_kernels_common.h"
#include "quant/quant_format.h"
#include "quant/ternary.h"

#include <limits.h>

#define MAX_ELEMENTS 8192
#define CANARY 12345.0f

static int fuzz_size(bn_fuzz_input *in, bool extreme, int lo, int hi) {
    static const int edges[] = {0, -1, 1, 2, INT_MAX, INT_MIN, 1 << 16, 1 << 30, 127, 128, 129};
    if (extreme && bn_fuzz_u8(in) < 48) return edges[bn_fuzz_u8(in) % (sizeof edges / sizeof edges[0])];
    return (int)bn_fuzz_range(in, lo, hi);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bn_isa isas[BN_ISA_COUNT];
    static int n_isas;
    if (!n_isas) n_isas = bn_fuzz_isas(isas);
    bn_fuzz_input in = bn_fuzz_input_make(data, size);
    bool extreme = bn_fuzz_u8(&in) >= 224;
    bn_conv1d_shape s;
    s.in_channels = fuzz_size(&in, extreme, 1, 8);
    s.out_channels = fuzz_size(&in, extreme, 1, 8);
    s.length = fuzz_size(&in, extreme, 1, 64);
    s.kernel = fuzz_size(&in, extreme, 1, 9);
    s.stride = fuzz_size(&in, extreme, 1, 4);
    s.padding = fuzz_size(&in, extreme, 0, 4);
    s.dilation = fuzz_size(&in, extreme, 1, 4);

    /* the expected validity, in 64-bit arithmetic */
    bool positive = s.in_channels > 0 && s.out_channels > 0 && s.length > 0 && s.kernel > 0 && s.stride > 0 &&
                    s.dilation > 0 && s.padding >= 0;
    int64_t padded = (int64_t)s.length + 2 * (int64_t)s.padding;
    int64_t span = (int64_t)s.dilation * ((int64_t)s.kernel - 1) + 1;
    bool fits = positive && span <= padded;
    int64_t want_len = fits ? (padded - span) / s.stride + 1 : 0;

    bn_error err;
    int out_len = -1;
    bn_status st = bn_conv1d_output_length(&s, &out_len, &err);
    if (st == BN_OK) {
        BN_FUZZ_CHECK(fits && out_len == want_len, "output length %d accepted, expected %s %lld", out_len,
                      fits ? "length" : "an error", (long long)want_len);
    } else {
        BN_FUZZ_CHECK(st == BN_ERR_INVALID && err.message[0], "output length status %d", (int)st);
        /* small shapes never overflow, so their refusal must be a real one */
        BN_FUZZ_CHECK(extreme || !fits, "valid small shape refused: %s", err.message);
    }
    if (st != BN_OK) return 0;

    int64_t row = (int64_t)s.in_channels * s.kernel;
    int64_t n_w = row * s.out_channels, n_x = (int64_t)s.in_channels * s.length;
    int64_t n_y = (int64_t)s.out_channels * out_len;
    if (n_w > MAX_ELEMENTS * 4 || n_x > MAX_ELEMENTS || n_y > MAX_ELEMENTS) return 0; /* too big to run */

    size_t w_padded = (size_t)((n_w + BN_I2S_BLOCK - 1) / BN_I2S_BLOCK * BN_I2S_BLOCK);
    int8_t *w = calloc(w_padded, 1);
    float *x = calloc((size_t)n_x, sizeof(float)), *y = calloc((size_t)n_y + 1, sizeof(float));
    float *naive = calloc((size_t)n_y, sizeof(float));
    int8_t *q = calloc((size_t)n_x, 1);
    size_t bytes;
    if (bn_ternary_bytes(&bytes, BN_TYPE_I2_S, w_padded, NULL) != BN_OK) abort();
    uint8_t *packed = calloc(bytes, 1);
    if (!w || !x || !y || !naive || !q || !packed) abort();
    for (int64_t i = 0; i < n_w; i += 4) {
        uint8_t b = bn_fuzz_u8(&in);
        for (int64_t k = 0; k < 4 && i + k < n_w; k++) w[i + k] = (int8_t)((b >> (2 * k) & 3) % 3) - 1;
    }
    float s_w = bn_fuzz_float(&in);
    bool finite_x = bn_fuzz_u8(&in) < 240;
    for (int64_t i = 0; i < n_x; i++) x[i] = finite_x ? bn_fuzz_finite_float(&in) : bn_fuzz_float(&in);
    if (bn_ternary_pack(packed, BN_TYPE_I2_S, w, w_padded, s_w, NULL, &err) != BN_OK) abort();

    bool whole_blocks = n_w % BN_I2S_BLOCK == 0;
    bool all_finite = true;
    for (int64_t i = 0; i < n_x; i++) all_finite &= isfinite(x[i]) != 0;

    /* naive reference (only defined for finite inputs) */
    if (all_finite) {
        float max_abs = 0;
        for (int64_t i = 0; i < n_x; i++) max_abs = fmaxf(max_abs, fabsf(x[i]));
        float s_x = (float)(127.0 / fmax((double)max_abs, 1e-5));
        for (int64_t i = 0; i < n_x; i++) {
            float v = nearbyintf(x[i] * s_x);
            q[i] = (int8_t)(v < -128.0f ? -128 : v > 127.0f ? 127 : (int)v);
        }
        for (int o = 0; o < s.out_channels; o++)
            for (int l = 0; l < out_len; l++) {
                int32_t acc = 0;
                for (int c = 0; c < s.in_channels; c++)
                    for (int k = 0; k < s.kernel; k++) {
                        int64_t at = (int64_t)l * s.stride - s.padding + (int64_t)k * s.dilation;
                        if (at < 0 || at >= s.length) continue;
                        acc += w[(int64_t)o * row + (int64_t)c * s.kernel + k] * q[(int64_t)c * s.length + at];
                    }
                naive[(size_t)o * out_len + l] = ((float)acc / s_x) * s_w;
            }
    }

    for (int k = 0; k < n_isas; k++) {
        bn_isa_set_active(isas[k]);
        for (int64_t i = 0; i <= n_y; i++) y[i] = CANARY;
        st = bn_conv1d_ternary(y, packed, x, &s, &err);
        if (!whole_blocks || !all_finite) {
            BN_FUZZ_CHECK(st == BN_ERR_INVALID && err.message[0], "conv1d accepted %s (status %d)",
                          whole_blocks ? "a non-finite input" : "a partial I2_S block", (int)st);
            continue;
        }
        BN_FUZZ_CHECK(st == BN_OK, "conv1d on %s failed: %s", bn_isa_name(isas[k]), err.message);
        BN_FUZZ_CHECK(y[n_y] == CANARY, "conv1d wrote past its output");
        for (int64_t i = 0; i < n_y; i++)
            BN_FUZZ_CHECK(bn_fuzz_same_float(y[i], naive[i]), "conv1d on %s: output %lld is %a, naive loop %a",
                          bn_isa_name(isas[k]), (long long)i, (double)y[i], (double)naive[i]);
    }
    bn_fuzz_isa_restore();
    free(w), free(x), free(y), free(naive), free(q), free(packed);
    return 0;
}
