/*
 * ref_ops.c: scalar reference kernels of the non-matmul ops (see ref_ops.h for the exact
 * definitions). The ops of the forward pass follow spec section 4.1 (bitnet.cpp's arithmetic)
 * operation by operation; the SIMD paths reproduce every one of them bit for bit.
 */
#include "kernels/cpu/ref_ops.h"

#include "core/fp16.h"
#include "kernels/cpu/act_blocks.h"
#include "kernels/cpu/exact_arith.h"
#include "quant/quant_format.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Exact F16 -> F32 for the hot loops (same results as bn_fp16_to_fp32, checked over all 65536
 * values by test_ops): the magnitude bits shifted into float position read as a float 2^112
 * times too small, subnormal halves included, so one multiply rebiases; inf/NaN keep their
 * payload. Assumes the default FPU mode (no denormals-are-zero). */
static inline float half_to_float(uint16_t h) {
    uint32_t magnitude = (uint32_t)(h & 0x7fffu) << 13, bits;
    if ((h & 0x7c00u) == 0x7c00u) {
        bits = magnitude | 0x7f800000u;
    } else {
        float f;
        memcpy(&f, &magnitude, sizeof f);
        f *= 0x1p112f;
        memcpy(&bits, &f, sizeof bits);
    }
    bits |= (uint32_t)(h & 0x8000u) << 16;
    float result;
    memcpy(&result, &bits, sizeof result);
    return result;
}

/* ---- per-token and element-wise ops ---- */

void bn_ref_rmsnorm(float *out, const float *x, const float *weight, int n_tokens, int cols,
                    float eps) {
    for (int t = 0; t < n_tokens; t++) {
        const float *xt = x + (size_t)t * (size_t)cols;
        float *ot = out + (size_t)t * (size_t)cols;
        const float scale = bn_rmsnorm_scale(bn_rmsnorm_mean(bn_ref_sum_squares(xt, cols), cols), eps);
        for (int i = 0; i < cols; i++) ot[i] = (xt[i] * scale) * weight[i];
    }
}

double bn_ref_sum_squares(const float *x, int n) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        const float square = x[i] * x[i];
        sum += (double)square;
    }
    return sum;
}

float bn_ref_rope_theta_scale(int rope_dim, float freq_base) {
    return powf(freq_base, -2.0f / (float)rope_dim);
}

void bn_ref_rope_angles(float *cos_out, float *sin_out, int count, int rope_dim, int32_t pos,
                        float freq_base) {
    const float theta_scale = bn_ref_rope_theta_scale(rope_dim, freq_base);
    float theta = (float)pos;
    for (int j = 0; j < count; j++) {
        cos_out[j] = cosf(theta);
        sin_out[j] = sinf(theta);
        theta *= theta_scale;
    }
}

void bn_ref_rope_angles_scaled(float *cos_out, float *sin_out, int count, int rope_dim, int32_t pos,
                               float freq_base, const float *freq_factors, float freq_scale) {
    const float theta_scale = bn_ref_rope_theta_scale(rope_dim, freq_base);
    float theta = (float)pos;
    for (int j = 0; j < count; j++) {
        const float base = freq_factors ? theta / freq_factors[j] : theta;
        const float angle = freq_scale * base;
        cos_out[j] = cosf(angle);
        sin_out[j] = sinf(angle);
        theta *= theta_scale;
    }
}

void bn_ref_rope_norm_table(float *x, int n_heads, int head_dim, int rope_dim, const float *cos_table,
                            const float *sin_table) {
    if (rope_dim > head_dim) rope_dim = head_dim;
    for (int h = 0; h < n_heads; h++) {
        float *xh = x + (size_t)h * (size_t)head_dim;
        for (int j = 0; j < rope_dim / 2; j++) {
            const float a = xh[2 * j], b = xh[2 * j + 1], c = cos_table[j], s = sin_table[j];
            const float b_sin = b * s, b_cos = b * c;
            xh[2 * j] = fmaf(a, c, -b_sin);
            xh[2 * j + 1] = fmaf(a, s, b_cos);
        }
    }
}

/* Rotates dims [0, half) with [half, 2 half) of every head with the table entries c, s: the
 * product that is not fused is rounded first, as bitnet.cpp's compiled loop does. */
static void rope_rotate(float *x, int n_heads, int head_dim, int half, const float *c,
                        const float *s) {
    for (int h = 0; h < n_heads; h++) {
        float *x0 = x + (size_t)h * (size_t)head_dim;
        float *x1 = x0 + half;
        for (int j = 0; j < half; j++) {
            const float a = x0[j], b = x1[j];
            const float b_sin = b * s[j], b_cos = b * c[j];
            x0[j] = fmaf(a, c[j], -b_sin);
            x1[j] = fmaf(a, s[j], b_cos);
        }
    }
}

void bn_ref_rope_neox(float *x, int n_heads, int head_dim, int rope_dim, int32_t pos,
                      float freq_base) {
    if (rope_dim > head_dim) rope_dim = head_dim;
    const int half = rope_dim / 2;
    /* the angles of bn_ref_rope_angles, one pair at a time (no table to allocate) */
    const float theta_scale = bn_ref_rope_theta_scale(2 * half, freq_base);
    float theta = (float)pos;
    for (int j = 0; j < half; j++) {
        const float c = cosf(theta), s = sinf(theta);
        for (int h = 0; h < n_heads; h++) {
            float *x0 = x + (size_t)h * (size_t)head_dim + j;
            const float a = x0[0], b = x0[half];
            const float b_sin = b * s, b_cos = b * c;
            x0[0] = fmaf(a, c, -b_sin);
            x0[half] = fmaf(a, s, b_cos);
        }
        theta *= theta_scale;
    }
}

void bn_ref_rope_neox_table(float *x, int n_heads, int head_dim, int rope_dim, const float *cos_table,
                            const float *sin_table) {
    if (rope_dim > head_dim) rope_dim = head_dim;
    rope_rotate(x, n_heads, head_dim, rope_dim / 2, cos_table, sin_table);
}

bool bn_ref_softmax_special(float *x, int n, float max, bool has_nan) {
    if (has_nan) {
        for (int i = 0; i < n; i++) x[i] = NAN;
        return true;
    }
    if (max == INFINITY) {
        int count = 0;
        for (int i = 0; i < n; i++) count += x[i] == INFINITY;
        float share = (float)(1.0 / count);
        for (int i = 0; i < n; i++) x[i] = x[i] == INFINITY ? share : 0.0f;
        return true;
    }
    if (max == -INFINITY) {
        float share = (float)(1.0 / n);
        for (int i = 0; i < n; i++) x[i] = share;
        return true;
    }
    return false;
}

double bn_ref_softmax_exp_sum(float *x, int n, float max) {
    double sum = 0.0;
    for (int i0 = 0; i0 < n; i0 += BN_EXACT_LANES) {
        float lanes[BN_EXACT_LANES] = {0};
        for (int l = 0; l < BN_EXACT_LANES && i0 + l < n; l++) {
            x[i0 + l] = bn_expf_ggml(x[i0 + l] - max);
            lanes[l] = x[i0 + l];
        }
        sum += (double)bn_tree16(lanes);
    }
    return sum;
}

void bn_ref_softmax(float *x, int n) {
    if (n <= 0) return;
    float max = -INFINITY;
    bool has_nan = false;
    for (int i = 0; i < n; i++) {
        if (isnan(x[i]))
            has_nan = true;
        else if (x[i] > max)
            max = x[i];
    }
    if (bn_ref_softmax_special(x, n, max, has_nan)) return;
    const float inv = (float)(1.0 / bn_ref_softmax_exp_sum(x, n, max));
    for (int i = 0; i < n; i++) x[i] *= inv;
}

float bn_ref_relu(float x) { return x < 0.0f ? 0.0f : x; }

float bn_ref_silu(float x) {
    if (x == -INFINITY) return -0.0f;
    double d = x;
    return (float)(d / (1.0 + exp(-d)));
}

float bn_ref_gelu(float x) {
    if (x == -INFINITY) return -0.0f;
    const double k = 0.7978845608028654; /* sqrt(2/pi) */
    double d = x;
    double y = k * (d + 0.044715 * d * d * d);
    return (float)(d / (1.0 + exp(-2.0 * y)));
}

void bn_ref_relu2_mul(float *out, const float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) {
        float r = bn_ref_relu(gate[i]);
        out[i] = (r * r) * up[i];
    }
}

void bn_ref_silu_mul(float *out, const float *gate, const float *up, int n) {
    const int full = n - n % BN_EXACT_LANES;
    for (int i = 0; i < n; i++) {
        const float x = gate[i];
        const float e = i < full ? bn_expf_ggml(-x) : expf(-x);
        out[i] = (x / (1.0f + e)) * up[i];
    }
}

void bn_ref_add(float *x, const float *y, int n) {
    for (int i = 0; i < n; i++) x[i] += y[i];
}

void bn_ref_embedding_row_f16(float *out, const uint16_t *row, int cols) {
    for (int i = 0; i < cols; i++) out[i] = half_to_float(row[i]);
}

void bn_ref_activation_apply(float *out, const float *x, int n, bn_activation act) {
    for (int i = 0; i < n; i++) {
        switch (act) {
        case BN_ACT_RELU: out[i] = bn_ref_relu(x[i]); break;
        case BN_ACT_RELU2: {
            float r = bn_ref_relu(x[i]);
            out[i] = r * r;
            break;
        }
        case BN_ACT_SILU: out[i] = bn_ref_silu(x[i]); break;
        case BN_ACT_GELU: out[i] = bn_ref_gelu(x[i]); break;
        }
    }
}

/* ---- attention ---- */

/* Element index of a cache as float: F16 and Q8_0 values are exact in float (d * q has at most
 * 19 significant bits), so no path can round them differently. */
static float cache_value(const void *cache, uint32_t type, size_t index) {
    switch (type) {
    case BN_TYPE_F16: return half_to_float(((const uint16_t *)cache)[index]);
    case BN_TYPE_Q8_0: {
        const bn_q8_0_block *block = (const bn_q8_0_block *)cache + index / BN_Q8_0_BLOCK;
        return (float)block->qs[index % BN_Q8_0_BLOCK] * half_to_float(block->d);
    }
    default: return ((const float *)cache)[index];
    }
}

float bn_attention_scale(int head_dim) { return 1.0f / sqrtf((float)head_dim); }

float bn_ref_query_value(float q, uint32_t k_type) {
    return k_type == BN_TYPE_F16 ? half_to_float(bn_fp32_to_fp16(q)) : q;
}

float bn_ref_score_dot(const float *q, const void *k_cache, uint32_t k_type, size_t base, int head_dim) {
    const int full = head_dim - head_dim % BN_SCORE_STEP;
    float acc[4][BN_EXACT_LANES] = {{0}};
    for (int d = 0; d < full; d++) {
        float *lane = &acc[(d / BN_EXACT_LANES) % 4][d % BN_EXACT_LANES];
        *lane = fmaf(bn_ref_query_value(q[d], k_type), cache_value(k_cache, k_type, base + (size_t)d),
                     *lane);
    }
    float lanes[BN_EXACT_LANES];
    for (int l = 0; l < BN_EXACT_LANES; l++) {
        const float a0 = acc[0][l] + acc[2][l], a1 = acc[1][l] + acc[3][l];
        lanes[l] = a0 + a1;
    }
    double sum = (double)bn_tree16(lanes);
    for (int d = full; d < head_dim; d++) {
        const float product =
            bn_ref_query_value(q[d], k_type) * cache_value(k_cache, k_type, base + (size_t)d);
        sum += (double)product;
    }
    return (float)sum;
}

void bn_ref_attention(float *out, const float *q, const void *k_cache, const void *v_cache,
                      uint32_t k_type, uint32_t v_type, int n_heads, int n_kv_heads, int head_dim,
                      int32_t pos, float *scratch, int head_begin, int head_end) {
    int group = n_heads / n_kv_heads;
    size_t row = (size_t)n_kv_heads * (size_t)head_dim;
    const float scale = bn_attention_scale(head_dim);
    int n_pos = pos + 1;
    for (int h = head_begin; h < head_end; h++) {
        const float *qh = q + (size_t)h * (size_t)head_dim;
        size_t kv_offset = (size_t)(h / group) * (size_t)head_dim;
        for (int t = 0; t < n_pos; t++)
            scratch[t] = bn_ref_score_dot(qh, k_cache, k_type, (size_t)t * row + kv_offset, head_dim) *
                         scale;
        bn_ref_softmax(scratch, n_pos);
        /* out[d] = sum_t p_t v_t[d]: lane l takes the positions t = l mod 16 */
        float *oh = out + (size_t)h * (size_t)head_dim;
        for (int d = 0; d < head_dim; d++) {
            float lanes[BN_EXACT_LANES] = {0};
            for (int t = 0; t < n_pos; t++)
                lanes[t % BN_EXACT_LANES] =
                    fmaf(cache_value(v_cache, v_type, (size_t)t * row + kv_offset + (size_t)d),
                         scratch[t], lanes[t % BN_EXACT_LANES]);
            oh[d] = bn_tree16(lanes);
        }
    }
}

/* ---- conv1d ---- */

static bool mul_fits(size_t a, size_t b, size_t limit, size_t *out) {
    if (a != 0 && b > limit / a) return false;
    *out = a * b;
    return true;
}

bn_status bn_ref_conv1d_plan(bn_conv1d_plan *plan, const bn_conv1d_shape *shape, bool need_i2s,
                             bn_error *err) {
    const struct {
        const char *name;
        int value;
        int min;
    } fields[] = {
        {"in_channels", shape->in_channels, 1}, {"out_channels", shape->out_channels, 1},
        {"length", shape->length, 1},           {"kernel", shape->kernel, 1},
        {"stride", shape->stride, 1},           {"padding", shape->padding, 0},
        {"dilation", shape->dilation, 1},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].value < fields[i].min)
            return bn_error_set(err, BN_ERR_INVALID, "conv1d: %s = %d must be >= %d",
                                fields[i].name, fields[i].value, fields[i].min);
    int64_t span = (int64_t)shape->dilation * (shape->kernel - 1) + 1;
    int64_t padded = (int64_t)shape->length + 2 * (int64_t)shape->padding;
    if (span > padded)
        return bn_error_set(
            err, BN_ERR_INVALID,
            "conv1d: kernel %d with dilation %d spans %lld positions, more than the "
            "padded input length %lld (length %d + 2 * padding %d)",
            shape->kernel, shape->dilation, (long long)span, (long long)padded, shape->length,
            shape->padding);
    int64_t out_length = (padded - span) / shape->stride + 1;
    if (padded > INT32_MAX || out_length > INT32_MAX)
        return bn_error_set(err, BN_ERR_INVALID,
                            "conv1d: padded length %lld (length %d + 2 * padding %d) overflows int",
                            (long long)padded, shape->length, shape->padding);
    int64_t row = (int64_t)shape->in_channels * shape->kernel;
    if (row > BN_CONV1D_MAX_ROW)
        return bn_error_set(
            err, BN_ERR_INVALID,
            "conv1d: in_channels %d * kernel %d = %lld exceeds %d (int32 accumulator)",
            shape->in_channels, shape->kernel, (long long)row, BN_CONV1D_MAX_ROW);
    bn_conv1d_plan p = {.out_length = (int)out_length, .row_length = (int)row};
    size_t limit = SIZE_MAX / sizeof(float);
    if (!mul_fits((size_t)shape->out_channels, (size_t)row, limit, &p.n_weights))
        return bn_error_set(err, BN_ERR_INVALID,
                            "conv1d: out_channels %d * in_channels %d * kernel %d overflows",
                            shape->out_channels, shape->in_channels, shape->kernel);
    if (!mul_fits((size_t)shape->in_channels, (size_t)shape->length, limit, &p.n_input))
        return bn_error_set(err, BN_ERR_INVALID, "conv1d: in_channels %d * length %d overflows",
                            shape->in_channels, shape->length);
    if (!mul_fits((size_t)shape->out_channels, (size_t)out_length, limit, &p.n_output))
        return bn_error_set(err, BN_ERR_INVALID,
                            "conv1d: out_channels %d * out_length %lld overflows",
                            shape->out_channels, (long long)out_length);
    if (need_i2s && p.n_weights % 128 != 0)
        return bn_error_set(err, BN_ERR_INVALID,
                            "conv1d: out_channels %d * in_channels %d * kernel %d = %zu weights is "
                            "not a multiple of the I2_S block (128)",
                            shape->out_channels, shape->in_channels, shape->kernel, p.n_weights);
    *plan = p;
    return BN_OK;
}

bn_status bn_ref_i2s_unpack(int8_t *w, const uint8_t *data, size_t n, bn_error *err) {
    for (size_t block = 0; block < n / 128; block++) {
        const uint8_t *bytes = data + block * 32;
        int8_t *wb = w + block * 128;
        for (int j = 0; j < 32; j++) {
            for (int part = 0; part < 4; part++) {
                int code = (bytes[j] >> (6 - 2 * part)) & 3;
                if (code == 3)
                    return bn_error_set(err, BN_ERR_FORMAT,
                                        "conv1d weights: I2_S code 3 (invalid) at weight %zu",
                                        block * 128 + (size_t)(part * 32 + j));
                wb[part * 32 + j] = (int8_t)(code - 1);
            }
        }
    }
    return BN_OK;
}

bn_status bn_ref_quantize_block(int8_t *q, float *scale, const float *x, size_t n, bn_error *err) {
    float absmax = 0.0f;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            return bn_error_set(err, BN_ERR_INVALID, "conv1d: input[%zu] = %g is not finite", i,
                                (double)x[i]);
        float a = fabsf(x[i]);
        if (a > absmax) absmax = a;
    }
    float s = (float)(127.0 / fmax((double)absmax, 1e-5));
    for (size_t i = 0; i < n; i++) {
        float v = nearbyintf(x[i] * s);
        q[i] = (int8_t)(v > 127.0f ? 127.0f : v < -128.0f ? -128.0f : v);
    }
    *scale = s;
    return BN_OK;
}

void bn_ref_conv1d_core(float *out, const int8_t *w, const int8_t *q, float s_x, float s_w,
                        const bn_conv1d_shape *shape, const bn_conv1d_plan *plan) {
    int kernel = shape->kernel, length = shape->length;
    for (int o = 0; o < shape->out_channels; o++) {
        const int8_t *wo = w + (size_t)o * (size_t)plan->row_length;
        for (int l = 0; l < plan->out_length; l++) {
            int64_t start = (int64_t)l * shape->stride - shape->padding;
            int32_t acc = 0;
            for (int c = 0; c < shape->in_channels; c++) {
                const int8_t *qc = q + (size_t)c * (size_t)length;
                const int8_t *wc = wo + (size_t)c * (size_t)kernel;
                for (int k = 0; k < kernel; k++) {
                    int64_t p = start + (int64_t)k * shape->dilation;
                    if (p >= 0 && p < length) acc += wc[k] * qc[p];
                }
            }
            out[(size_t)o * (size_t)plan->out_length + (size_t)l] = ((float)acc / s_x) * s_w;
        }
    }
}

/* ---- pooling ---- */

bn_status bn_ref_pool1d_plan(int *out_length, const bn_pool1d_shape *shape, bn_error *err) {
    const struct {
        const char *name;
        int value;
        int min;
    } fields[] = {
        {"channels", shape->channels, 1}, {"length", shape->length, 1},
        {"kernel", shape->kernel, 1},     {"stride", shape->stride, 1},
        {"padding", shape->padding, 0},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].value < fields[i].min)
            return bn_error_set(err, BN_ERR_INVALID, "pool1d: %s = %d must be >= %d",
                                fields[i].name, fields[i].value, fields[i].min);
    if (shape->padding >= shape->kernel)
        return bn_error_set(err, BN_ERR_INVALID,
                            "pool1d: padding %d must be smaller than kernel %d (a window would "
                            "hold only padding)",
                            shape->padding, shape->kernel);
    int64_t padded = (int64_t)shape->length + 2 * (int64_t)shape->padding;
    if (shape->kernel > padded)
        return bn_error_set(err, BN_ERR_INVALID,
                            "pool1d: kernel %d larger than the padded input length %lld (length %d "
                            "+ 2 * padding %d)",
                            shape->kernel, (long long)padded, shape->length, shape->padding);
    if (padded > INT32_MAX)
        return bn_error_set(err, BN_ERR_INVALID,
                            "pool1d: padded length %lld (length %d + 2 * padding %d) overflows int",
                            (long long)padded, shape->length, shape->padding);
    int64_t len = (padded - shape->kernel) / shape->stride + 1;
    size_t total;
    if (!mul_fits((size_t)shape->channels, (size_t)shape->length, SIZE_MAX / sizeof(float),
                  &total) ||
        !mul_fits((size_t)shape->channels, (size_t)len, SIZE_MAX / sizeof(float), &total))
        return bn_error_set(err, BN_ERR_INVALID, "pool1d: channels %d * length %d overflows",
                            shape->channels, shape->length);
    *out_length = (int)len;
    return BN_OK;
}

void bn_ref_max_pool1d(float *out, const float *input, const bn_pool1d_shape *shape,
                       int out_length) {
    for (int c = 0; c < shape->channels; c++) {
        const float *in = input + (size_t)c * (size_t)shape->length;
        for (int l = 0; l < out_length; l++) {
            int64_t start = (int64_t)l * shape->stride - shape->padding;
            float m = -INFINITY;
            bool nan = false;
            for (int k = 0; k < shape->kernel; k++) {
                int64_t p = start + k;
                if (p < 0 || p >= shape->length) continue;
                if (isnan(in[p]))
                    nan = true;
                else if (in[p] > m)
                    m = in[p];
            }
            out[(size_t)c * (size_t)out_length + (size_t)l] = nan ? NAN : m;
        }
    }
}

void bn_ref_avg_pool1d(float *out, const float *input, const bn_pool1d_shape *shape,
                       int out_length) {
    for (int c = 0; c < shape->channels; c++) {
        const float *in = input + (size_t)c * (size_t)shape->length;
        for (int l = 0; l < out_length; l++) {
            int64_t start = (int64_t)l * shape->stride - shape->padding;
            float sum = 0.0f;
            int count = 0;
            for (int k = 0; k < shape->kernel; k++) {
                int64_t p = start + k;
                if (p < 0 || p >= shape->length) continue;
                sum += in[p];
                count++;
            }
            out[(size_t)c * (size_t)out_length + (size_t)l] = sum / (float)count;
        }
    }
}

/* ---- batchnorm ---- */

bn_status bn_ref_batchnorm_check(const float *var, int channels, int length, float eps,
                                 bn_error *err) {
    if (channels < 1)
        return bn_error_set(err, BN_ERR_INVALID, "batchnorm: channels = %d must be >= 1", channels);
    if (length < 1)
        return bn_error_set(err, BN_ERR_INVALID, "batchnorm: length = %d must be >= 1", length);
    size_t total;
    if (!mul_fits((size_t)channels, (size_t)length, SIZE_MAX / sizeof(float), &total))
        return bn_error_set(err, BN_ERR_INVALID, "batchnorm: channels %d * length %d overflows",
                            channels, length);
    if (!(eps >= 0.0f) || !isfinite(eps))
        return bn_error_set(err, BN_ERR_INVALID, "batchnorm: eps = %g must be finite and >= 0",
                            (double)eps);
    for (int c = 0; c < channels; c++) {
        double denom = (double)var[c] + (double)eps;
        if (!(denom > 0.0) || !isfinite(denom))
            return bn_error_set(err, BN_ERR_INVALID,
                                "batchnorm: var[%d] + eps = %g must be finite and > 0", c, denom);
    }
    return BN_OK;
}

float bn_ref_batchnorm_scale(float var, float gamma, float eps) {
    return (float)((double)gamma / sqrt((double)var + (double)eps));
}

void bn_ref_batchnorm(float *out, const float *x, const float *mean, const float *var,
                      const float *gamma, const float *beta, int channels, int length, float eps) {
    for (int c = 0; c < channels; c++) {
        const float *xc = x + (size_t)c * (size_t)length;
        float *oc = out + (size_t)c * (size_t)length;
        float a = bn_ref_batchnorm_scale(var[c], gamma[c], eps), m = mean[c], b = beta[c];
        for (int i = 0; i < length; i++) oc[i] = (xc[i] - m) * a + b;
    }
}
