/*
 * ops_neon.c: aarch64 Advanced SIMD paths of the non-matmul ops; contracts in ref_ops.h and
 * neon_isa.h (each gives its reference's bits).
 *
 * RMSNorm sums the float squares in double lanes (any order) and keeps that sum only where
 * bn_rmsnorm_mean_certain says every order rounds the mean the same, else takes the reference's
 * sequential sum, as the x86 paths do. RoPE rotates with the reference's fmaf (the x1 products
 * rounded, the other fused). The F16 embedding row and F16 cache values convert by the
 * reference's bit operations (not FCVT, which would quieten a signalling NaN the reference passes
 * through). Softmax, attention and the SiLU gate keep spec 4.1's 16-lane orders in four 4-lane
 * registers (lanes 0-3, 4-7, 8-11, 12-15) and ggml's exp operation for operation (expf_ggml4).
 */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#include "kernels/cpu/neon_isa.h"

#include "kernels/cpu/exact_arith.h"
#include "kernels/cpu/ops_isa.h"

#include "core/fp16.h"

#include <arm_neon.h>
#include <math.h>
#include <string.h>

/* ---- helpers ---- */

/* Four F16 values as float by the reference's bit operations (exact; a NaN keeps its payload,
 * which FCVT would quieten): the magnitude bits read as a float 2^112 too small, one multiply
 * rebiases, inf/NaN keep their bits. */
static inline float32x4_t half4_to_float(uint16x4_t halves) {
    const uint32x4_t exponent = vdupq_n_u32(0x7c00u << 13), inf_bits = vdupq_n_u32(0x7f800000u);
    const uint32x4_t h = vmovl_u16(halves);
    const uint32x4_t magnitude = vshlq_n_u32(vandq_u32(h, vdupq_n_u32(0x7fffu)), 13);
    const uint32x4_t special = vceqq_u32(vandq_u32(magnitude, exponent), exponent);
    const uint32x4_t scaled =
        vreinterpretq_u32_f32(vmulq_f32(vreinterpretq_f32_u32(magnitude), vdupq_n_f32(0x1p112f)));
    const uint32x4_t bits = vbslq_u32(special, vorrq_u32(magnitude, inf_bits), scaled);
    const uint32x4_t sign = vshlq_n_u32(vandq_u32(h, vdupq_n_u32(0x8000u)), 16);
    return vreinterpretq_f32_u32(vorrq_u32(bits, sign));
}

/* bn_expf_ggml on 4 floats, operation for operation; 2^n (|n| <= 192) applied as two exact
 * powers of two, so the result rounds once; a NaN n is returned as the reference returns it. */
static inline float32x4_t expf_ggml4(float32x4_t x) {
    const float32x4_t shift = vdupq_n_f32(BN_EXPF_SHIFT);
    const float32x4_t z = vfmaq_f32(shift, x, vdupq_n_f32(BN_EXPF_LOG2E));
    const float32x4_t n = vsubq_f32(z, shift);
    const float32x4_t b =
        vfmsq_f32(vfmsq_f32(x, n, vdupq_n_f32(BN_EXPF_LN2_HI)), n, vdupq_n_f32(BN_EXPF_LN2_LO));
    const float32x4_t u = vmulq_f32(b, b);
    const float32x4_t c54 = vfmaq_f32(vdupq_n_f32(BN_EXPF_C4), vdupq_n_f32(BN_EXPF_C5), b);
    const float32x4_t c32 = vfmaq_f32(vdupq_n_f32(BN_EXPF_C2), vdupq_n_f32(BN_EXPF_C3), b);
    const float32x4_t c10 = vfmaq_f32(vdupq_n_f32(1.0f), vdupq_n_f32(BN_EXPF_C1), b);
    const float32x4_t j = vfmaq_f32(c10, vfmaq_f32(c32, c54, u), u);
    const uint32x4_t big = vcagtq_f32(n, vdupq_n_f32(BN_EXPF_N_LIMIT));
    /* FCVTZS gives 0 for NaN; |n| <= 192 elsewhere used */
    const int32x4_t ni =
        vcvtq_s32_f32(vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(n), big)));
    const int32x4_t n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
    const int32x4_t bias = vdupq_n_s32(127);
    const float32x4_t p1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
    const float32x4_t p2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
    const float32x4_t result = vmulq_f32(vmulq_f32(j, p1), p2);
    const float32x4_t limit = vbslq_f32(vclezq_f32(n), vdupq_n_f32(0.0f), vdupq_n_f32(INFINITY));
    const uint32x4_t is_nan = vmvnq_u32(vceqq_f32(n, n));
    return vbslq_f32(is_nan, n, vbslq_f32(big, limit, result));
}

/* bn_tree16 of 16 lanes held as four registers r0 (lanes 0-3) .. r3 (lanes 12-15). */
static inline float tree16(float32x4_t r0, float32x4_t r1, float32x4_t r2, float32x4_t r3) {
    const float32x4_t s = vaddq_f32(vaddq_f32(r0, r2), vaddq_f32(r1, r3)); /* l + 8, then + 4 */
    const float32x4_t t = vaddq_f32(s, vextq_f32(s, s, 2));                /* + 2 */
    return vgetq_lane_f32(t, 0) + vgetq_lane_f32(t, 1);                    /* + 1 */
}

/* ---- per-token and element-wise ops ---- */

void bn_neon_rmsnorm(float *out, const float *x, const float *weight, int n_tokens, int cols,
                     float eps) {
    bn_prefetch_floats(weight, cols);
    for (int t = 0; t < n_tokens; t++) {
        const float *xt = x + (size_t)t * (size_t)cols;
        float *ot = out + (size_t)t * (size_t)cols;
        float64x2_t a0 = vdupq_n_f64(0.0), a1 = a0, a2 = a0, a3 = a0;
        int i = 0;
        for (; i + 8 <= cols; i += 8) {
            const float32x4_t v = vld1q_f32(xt + i), u = vld1q_f32(xt + i + 4);
            const float32x4_t v2 = vmulq_f32(v, v), u2 = vmulq_f32(u, u);
            a0 = vaddq_f64(a0, vcvt_f64_f32(vget_low_f32(v2)));
            a1 = vaddq_f64(a1, vcvt_high_f64_f32(v2));
            a2 = vaddq_f64(a2, vcvt_f64_f32(vget_low_f32(u2)));
            a3 = vaddq_f64(a3, vcvt_high_f64_f32(u2));
        }
        double lanes = vaddvq_f64(vaddq_f64(vaddq_f64(a0, a1), vaddq_f64(a2, a3)));
        for (; i < cols; i++) {
            const float square = xt[i] * xt[i];
            lanes += (double)square;
        }
        float mean;
        if (!bn_rmsnorm_mean_certain(lanes, cols, &mean))
            mean = bn_rmsnorm_mean(bn_ref_sum_squares(xt, cols), cols);
        const float scale = bn_rmsnorm_scale(mean, eps);
        const float32x4_t vs = vdupq_n_f32(scale);
        i = 0;
        for (; i + 4 <= cols; i += 4)
            vst1q_f32(ot + i, vmulq_f32(vmulq_f32(vld1q_f32(xt + i), vs), vld1q_f32(weight + i)));
        for (; i < cols; i++) ot[i] = (xt[i] * scale) * weight[i];
    }
}

/* Rotates n pairs (x0[j], x1[j]) by the angles (c[j], s[j]) with the reference's arithmetic. */
static void rope_rotate(float *x0, float *x1, const float *c, const float *s, int n) {
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const float32x4_t a = vld1q_f32(x0 + j), b = vld1q_f32(x1 + j);
        const float32x4_t vc = vld1q_f32(c + j), vs = vld1q_f32(s + j);
        const float32x4_t b_sin = vmulq_f32(b, vs), b_cos = vmulq_f32(b, vc);
        vst1q_f32(x0 + j, vfmaq_f32(vnegq_f32(b_sin), a, vc));
        vst1q_f32(x1 + j, vfmaq_f32(b_cos, a, vs));
    }
    for (; j < n; j++) {
        const float a = x0[j], b = x1[j];
        const float b_sin = b * s[j], b_cos = b * c[j];
        x0[j] = fmaf(a, c[j], -b_sin);
        x1[j] = fmaf(a, s[j], b_cos);
    }
}

/* Pairs whose angles bn_neon_rope_neox computes at once (on the stack). */
#define ROPE_CHUNK 64

void bn_neon_rope_neox(float *x, int n_heads, int head_dim, int rope_dim, int32_t pos,
                       float freq_base) {
    if (rope_dim > head_dim) rope_dim = head_dim;
    const int half = rope_dim / 2;
    /* the reference's angle sequence (bn_ref_rope_neox), a chunk of pairs at a time */
    const float theta_scale = bn_ref_rope_theta_scale(2 * half, freq_base);
    float theta = (float)pos;
    for (int j0 = 0; j0 < half; j0 += ROPE_CHUNK) {
        const int n = half - j0 < ROPE_CHUNK ? half - j0 : ROPE_CHUNK;
        float c[ROPE_CHUNK], s[ROPE_CHUNK];
        for (int j = 0; j < n; j++) {
            c[j] = cosf(theta);
            s[j] = sinf(theta);
            theta *= theta_scale;
        }
        for (int h = 0; h < n_heads; h++) {
            float *x0 = x + (size_t)h * (size_t)head_dim + j0;
            rope_rotate(x0, x0 + half, c, s, n);
        }
    }
}

void bn_neon_rope_neox_table(float *x, int n_heads, int head_dim, int rope_dim,
                             const float *cos_table, const float *sin_table) {
    if (rope_dim > head_dim) rope_dim = head_dim;
    const int half = rope_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x0 = x + (size_t)h * (size_t)head_dim;
        rope_rotate(x0, x0 + half, cos_table, sin_table, half);
    }
}

void bn_neon_relu2_mul(float *out, const float *gate, const float *up, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        /* the reference's relu: x < 0 ? 0 : x (NaN and -0 pass through) */
        const float32x4_t g = vld1q_f32(gate + i);
        const float32x4_t r = vbslq_f32(vcltq_f32(g, vdupq_n_f32(0.0f)), vdupq_n_f32(0.0f), g);
        vst1q_f32(out + i, vmulq_f32(vmulq_f32(r, r), vld1q_f32(up + i)));
    }
    for (; i < n; i++) {
        const float r = bn_ref_relu(gate[i]);
        out[i] = (r * r) * up[i];
    }
}

void bn_neon_silu_mul(float *out, const float *gate, const float *up, int n) {
    const int full = n - n % BN_EXACT_LANES;
    int i = 0;
    for (; i < full; i += 4) {
        const float32x4_t x = vld1q_f32(gate + i);
        const float32x4_t e = expf_ggml4(vsubq_f32(vdupq_n_f32(0.0f), x));
        const float32x4_t silu = vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), e));
        vst1q_f32(out + i, vmulq_f32(silu, vld1q_f32(up + i)));
    }
    for (; i < n; i++) out[i] = (gate[i] / (1.0f + expf(-gate[i]))) * up[i];
}

void bn_neon_add(float *x, const float *y, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vaddq_f32(vld1q_f32(x + i), vld1q_f32(y + i)));
    for (; i < n; i++) x[i] += y[i];
}

void bn_neon_embedding_row_f16(float *out, const uint16_t *row, int cols) {
    int i = 0;
    for (; i + 4 <= cols; i += 4) vst1q_f32(out + i, half4_to_float(vld1_u16(row + i)));
    bn_ref_embedding_row_f16(out + i, row + i, cols - i);
}

void bn_neon_softmax(float *x, int n) {
    if (n <= 0) return;
    float32x4_t vmax = vdupq_n_f32(-INFINITY);
    uint32x4_t ordered = vdupq_n_u32(~0u);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t v = vld1q_f32(x + i);
        ordered = vandq_u32(ordered, vceqq_f32(v, v));
        vmax = vmaxnmq_f32(vmax, v); /* a NaN v leaves vmax unchanged */
    }
    float max = vmaxnmvq_f32(vmax);
    bool has_nan = vminvq_u32(ordered) == 0;
    for (; i < n; i++) {
        if (isnan(x[i]))
            has_nan = true;
        else if (x[i] > max)
            max = x[i];
    }
    if (bn_ref_softmax_special(x, n, max, has_nan)) return;
    /* e = expf_ggml(x - max), each 16-element chunk (zero past n) summed by the lane tree, the
     * chunk sums in double */
    const float32x4_t vm = vdupq_n_f32(max);
    double sum = 0.0;
    for (i = 0; i < n; i += BN_EXACT_LANES) {
        float32x4_t e[4];
        if (n - i >= BN_EXACT_LANES) {
            for (int r = 0; r < 4; r++) {
                e[r] = expf_ggml4(vsubq_f32(vld1q_f32(x + i + 4 * r), vm));
                vst1q_f32(x + i + 4 * r, e[r]);
            }
        } else {
            float chunk[BN_EXACT_LANES] = {0};
            const int count = n - i;
            memcpy(chunk, x + i, (size_t)count * sizeof(float));
            for (int r = 0; r < 4; r++) {
                e[r] = expf_ggml4(vsubq_f32(vld1q_f32(chunk + 4 * r), vm));
                vst1q_f32(chunk + 4 * r, e[r]);
            }
            memcpy(x + i, chunk, (size_t)count * sizeof(float));
            for (int l = count; l < BN_EXACT_LANES; l++)
                chunk[l] = 0.0f; /* lanes past n count as 0 */
            for (int r = 0; r < 4; r++) e[r] = vld1q_f32(chunk + 4 * r);
        }
        sum += (double)tree16(e[0], e[1], e[2], e[3]);
    }
    const float inv = (float)(1.0 / sum);
    i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), inv));
    for (; i < n; i++) x[i] *= inv;
}

/* ---- attention ---- */

/* 4 cache values from element index as float. A q8_0 group of 4 lies in one block (index is a
 * multiple of 4); (float)q * d is exact, as in the reference. */
static inline __attribute__((always_inline)) float32x4_t load_kv4(const void *cache, uint32_t type,
                                                                  size_t index) {
    if (type == BN_TYPE_F16) return half4_to_float(vld1_u16((const uint16_t *)cache + index));
    if (type == BN_TYPE_Q8_0) {
        const bn_q8_0_block *block = (const bn_q8_0_block *)cache + index / BN_Q8_0_BLOCK;
        int32_t four; /* 4 bytes only: 8 could run past the last block */
        memcpy(&four, block->qs + index % BN_Q8_0_BLOCK, sizeof four);
        const int16x8_t wide = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(four)));
        const float32x4_t q = vcvtq_f32_s32(vmovl_s16(vget_low_s16(wide)));
        return vmulq_n_f32(q, bn_fp16_to_fp32(block->d));
    }
    return vld1q_f32((const float *)cache + index);
}

/* Largest head_dim (a multiple of 16) these kernels take; others run the reference
 * (kernels/ops.c). */
#define ATTN_MAX_HEAD_DIM 256

bool bn_neon_attention_supports(int head_dim) {
    return head_dim % 16 == 0 && head_dim <= ATTN_MAX_HEAD_DIM;
}

/* bn_ref_score_dot of one position: ggml's 4 accumulators of 16 lanes as 16 registers; acc[4k +
 * j] holds lanes 4j..4j+3 of accumulator k. */
static inline __attribute__((always_inline)) float
score_dot(const float *qv, const void *k_cache, uint32_t k_type, size_t base, int head_dim) {
    const int full = head_dim - head_dim % BN_SCORE_STEP;
    float32x4_t acc[16];
    for (int a = 0; a < 16; a++) acc[a] = vdupq_n_f32(0.0f);
    for (int d = 0; d < full; d += BN_SCORE_STEP)
        for (int a = 0; a < 16; a++)
            acc[a] = vfmaq_f32(acc[a], vld1q_f32(qv + d + 4 * a),
                               load_kv4(k_cache, k_type, base + (size_t)(d + 4 * a)));
    float32x4_t lanes[4]; /* (acc0 + acc2) + (acc1 + acc3), lanes 4j..4j+3 */
    for (int j = 0; j < 4; j++)
        lanes[j] = vaddq_f32(vaddq_f32(acc[j], acc[8 + j]), vaddq_f32(acc[4 + j], acc[12 + j]));
    double sum = (double)tree16(lanes[0], lanes[1], lanes[2], lanes[3]);
    if (full < head_dim) {
        float products[BN_SCORE_STEP];
        for (int d = full; d < head_dim; d += 4)
            vst1q_f32(products + (d - full),
                      vmulq_f32(vld1q_f32(qv + d), load_kv4(k_cache, k_type, base + (size_t)d)));
        for (int d = 0; d < head_dim - full; d++) sum += (double)products[d];
    }
    return (float)sum;
}

/* out (4 dims) = the 16-lane P.V sum over positions 0..n_pos-1: accumulator l takes the
 * positions t = l mod 16, then the lane tree across the accumulators. */
static inline __attribute__((always_inline)) void weighted_values4(float *out, const float *probs,
                                                                   const void *v_cache,
                                                                   uint32_t v_type, size_t base,
                                                                   size_t row, int n_pos) {
    float32x4_t acc[16];
    for (int l = 0; l < 16; l++) acc[l] = vdupq_n_f32(0.0f);
    for (int t = 0; t < n_pos; t++)
        acc[t % 16] =
            vfmaq_n_f32(acc[t % 16], load_kv4(v_cache, v_type, base + (size_t)t * row), probs[t]);
    for (int l = 0; l < 8; l++) acc[l] = vaddq_f32(acc[l], acc[l + 8]);
    for (int l = 0; l < 4; l++) acc[l] = vaddq_f32(acc[l], acc[l + 4]);
    acc[0] = vaddq_f32(acc[0], acc[2]);
    acc[1] = vaddq_f32(acc[1], acc[3]);
    vst1q_f32(out, vaddq_f32(acc[0], acc[1]));
}

/* The attention of heads [head_begin, head_end); inlined once per cache-type pair below, so the
 * type tests of the loads fold away. */
static inline __attribute__((always_inline)) void
attention_heads(float *out, const float *q, const void *k_cache, const void *v_cache,
                uint32_t k_type, uint32_t v_type, int n_heads, int n_kv_heads, int head_dim,
                int32_t pos, float *scratch, int head_begin, int head_end) {
    const int group = n_heads / n_kv_heads, n_pos = pos + 1;
    const size_t row = (size_t)n_kv_heads * (size_t)head_dim;
    const float scale = bn_attention_scale(head_dim);
    float qv[ATTN_MAX_HEAD_DIM];
    for (int h = head_begin; h < head_end; h++) {
        const float *qh = q + (size_t)h * (size_t)head_dim;
        const size_t kv_offset = (size_t)(h / group) * (size_t)head_dim;
        /* the query as the scores use it (rounded to F16 with an F16 K cache) */
        for (int d = 0; d < head_dim; d++) qv[d] = bn_ref_query_value(qh[d], k_type);
        bn_prefetch_kv_positions(k_cache, k_type, v_cache, v_type, row, kv_offset, head_dim, 0,
                                 BN_KV_PREFETCH_POSITIONS, n_pos);
        for (int t = 0; t < n_pos; t++) {
            bn_prefetch_kv_positions(k_cache, k_type, v_cache, v_type, row, kv_offset, head_dim,
                                     t + BN_KV_PREFETCH_POSITIONS, t + 1 + BN_KV_PREFETCH_POSITIONS,
                                     n_pos);
            scratch[t] =
                score_dot(qv, k_cache, k_type, (size_t)t * row + kv_offset, head_dim) * scale;
        }
        bn_neon_softmax(scratch, n_pos);
        float *oh = out + (size_t)h * (size_t)head_dim;
        for (int d = 0; d < head_dim; d += 4)
            weighted_values4(oh + d, scratch, v_cache, v_type, kv_offset + (size_t)d, row, n_pos);
    }
}

void bn_neon_attention(float *out, const float *q, const void *k_cache, const void *v_cache,
                       uint32_t k_type, uint32_t v_type, int n_heads, int n_kv_heads, int head_dim,
                       int32_t pos, float *scratch, int head_begin, int head_end) {
#define ATTENTION_TYPED(K, V)                                                                      \
    attention_heads(out, q, k_cache, v_cache, K, V, n_heads, n_kv_heads, head_dim, pos, scratch,   \
                    head_begin, head_end)
    if (k_type == BN_TYPE_F16 && v_type == BN_TYPE_F16)
        ATTENTION_TYPED(BN_TYPE_F16, BN_TYPE_F16);
    else if (k_type == BN_TYPE_Q8_0 && v_type == BN_TYPE_Q8_0)
        ATTENTION_TYPED(BN_TYPE_Q8_0, BN_TYPE_Q8_0);
    else if (k_type == BN_TYPE_F32 && v_type == BN_TYPE_F32)
        ATTENTION_TYPED(BN_TYPE_F32, BN_TYPE_F32);
    else
        ATTENTION_TYPED(k_type, v_type); /* mixed types: tested at run time */
#undef ATTENTION_TYPED
}
