/*
 * fuzz_pooling_ops.c: 1-D max and average pooling (kernels/ops.h) on fuzz-chosen shapes,
 * boundary ones included (kernel equal to the padded input, padding kernel - 1, stride larger
 * than the input, zero/negative/INT_MAX sizes) and any float values.
 *
 * Properties: bn_pool1d_output_length accepts exactly positive sizes with 0 <= padding < kernel
 * and kernel <= length + 2 padding, returning (length + 2 padding - kernel) / stride + 1; on
 * every path each output equals, bit for bit, the naive window over the real elements (padding
 * ignored): max is NaN when the window holds a NaN, else the largest element; average is the
 * float sum in window order divided by the number of real elements; nothing is written past
 * channels x out_length.
 */
#include "bitnet.h"
#include "fuzz_kernels_common.h"

#include <limits.h>

#define MAX_ELEMENTS 8192
#define CANARY -777.0f

static int fuzz_size(bn_fuzz_input *in, bool extreme, int lo, int hi) {
    static const int edges[] = {0, -1, 1, 2, INT_MAX, INT_MIN, 1 << 16, 1 << 30};
    if (extreme && bn_fuzz_u8(in) < 64) return edges[bn_fuzz_u8(in) % (sizeof edges / sizeof edges[0])];
    return (int)bn_fuzz_range(in, lo, hi);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bn_isa isas[BN_ISA_COUNT];
    static int n_isas;
    if (!n_isas) n_isas = bn_fuzz_isas(isas);
    bn_fuzz_input in = bn_fuzz_input_make(data, size);
    uint8_t flags = bn_fuzz_u8(&in);
    bool extreme = flags >= 224, avg = flags & 1;
    bn_pool1d_shape s;
    s.channels = fuzz_size(&in, extreme, 1, 6);
    s.length = fuzz_size(&in, extreme, 1, 80);
    s.kernel = fuzz_size(&in, extreme, 1, 12);
    s.stride = fuzz_size(&in, extreme, 1, 6);
    s.padding = fuzz_size(&in, extreme, 0, 6);

    bool valid = s.channels > 0 && s.length > 0 && s.kernel > 0 && s.stride > 0 && s.padding >= 0 &&
                 s.padding < s.kernel && (int64_t)s.kernel <= (int64_t)s.length + 2 * (int64_t)s.padding;
    int64_t want_len = valid ? ((int64_t)s.length + 2 * (int64_t)s.padding - s.kernel) / s.stride + 1 : 0;
    bn_error err;
    int out_len = -1;
    bn_status st = bn_pool1d_output_length(&s, &out_len, &err);
    if (st != BN_OK) {
        BN_FUZZ_CHECK(st == BN_ERR_INVALID && err.message[0], "status %d", (int)st);
        BN_FUZZ_CHECK(extreme || !valid, "valid small shape refused: %s", err.message);
        return 0;
    }
    BN_FUZZ_CHECK(valid && out_len == want_len, "output length %d, expected %lld (valid %d)", out_len,
                  (long long)want_len, valid);
    int64_t n_x = (int64_t)s.channels * s.length, n_y = (int64_t)s.channels * out_len;
    if (n_x > MAX_ELEMENTS || n_y > MAX_ELEMENTS) return 0;

    float *x = malloc((size_t)n_x * sizeof(float)), *y = malloc(((size_t)n_y + 1) * sizeof(float));
    float *naive = malloc((size_t)n_y * sizeof(float) + 1);
    if (!x || !y || !naive) abort();
    for (int64_t i = 0; i < n_x; i++) x[i] = bn_fuzz_float(&in);
    for (int c = 0; c < s.channels; c++)
        for (int l = 0; l < out_len; l++) {
            int64_t start = (int64_t)l * s.stride - s.padding;
            float best = -INFINITY, sum = 0;
            bool nan = false;
            int count = 0;
            for (int k = 0; k < s.kernel; k++) {
                int64_t at = start + k;
                if (at < 0 || at >= s.length) continue;
                float v = x[(int64_t)c * s.length + at];
                nan |= isnan(v) != 0;
                if (v > best) best = v;
                sum += v;
                count++;
            }
            BN_FUZZ_CHECK(count > 0, "window %d of channel %d holds no element", l, c);
            naive[(int64_t)c * out_len + l] = avg ? sum / (float)count : nan ? NAN : best;
        }
    for (int k = 0; k < n_isas; k++) {
        bn_isa_set_active(isas[k]);
        for (int64_t i = 0; i <= n_y; i++) y[i] = CANARY;
        st = avg ? bn_avg_pool1d(y, x, &s, &err) : bn_max_pool1d(y, x, &s, &err);
        BN_FUZZ_CHECK(st == BN_OK, "%s pool on %s failed: %s", avg ? "avg" : "max", bn_isa_name(isas[k]), err.message);
        BN_FUZZ_CHECK(y[n_y] == CANARY, "pooling wrote past its output");
        for (int64_t i = 0; i < n_y; i++)
            BN_FUZZ_CHECK(bn_fuzz_same_float(y[i], naive[i]), "%s pool on %s: output %lld is %a, naive %a",
                          avg ? "avg" : "max", bn_isa_name(isas[k]), (long long)i, (double)y[i], (double)naive[i]);
    }
    bn_fuzz_isa_restore();
    free(x), free(y), free(naive);
    return 0;
}
