/*
 * ops_avx2.c: AVX2 + FMA + F16C paths of the non-matmul ops (declared in ops_isa.h; semantics in
 * ref_ops.h). Element-wise float formulas use the same operations in the same order as the
 * scalar reference (no FMA contraction), so they are bit-identical to it; reductions (RMSNorm,
 * softmax denominator, attention) use vector lanes and differ from the reference only by
 * summation order. exp is a vector implementation accurate to about 2 ulp (see exp8).
 *
 * Softmax and attention follow the reference formula by formula in double: dot products and
 * weighted sums of floats accumulate in double (each product is exact there, so only the order
 * of the additions differs, by double rounding), and softmax's exp is evaluated in double
 * (exp4d, a few double ulps) and rounded to float as the reference's (float)exp(). So they give
 * the reference's floats except where a double result lies within a few double ulps of a float
 * rounding boundary (about 1e-8 of the values), and the CPU paths and the CUDA backend, which
 * does the same, stay together in a greedy run instead of parting at the first int8 rounding
 * flip that a last-bit difference would cause.
 */
#include "kernels/cpu/ops_isa.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* ---- helpers ---- */

static inline double hsum4d(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

static inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* exp(x) for 8 floats: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two, FMA reduction), exp(r)
 * by its Taylor series to degree 7 (truncation < 1e-8 relative), times 2^n applied in two halves
 * so results in the subnormal range round once, like expf. Overflow gives +inf, x < -104 gives
 * 0, NaN stays NaN. Error about 2 ulp. */
static inline __m256 exp8(__m256 x) {
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-104.0f)), _mm256_set1_ps(89.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606820309417e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    __m256 result = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    return _mm256_blendv_ps(result, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* exp(x) for 4 doubles: x = n ln2 + r with |r| <= ln2/2 (ln2 in two parts, FMA reduction),
 * exp(r) by its Taylor series to degree 13 (truncation below 1e-17 relative), times 2^n built in
 * the exponent field. A few double ulps. x is clamped to [-110, 89], where the float result is 0
 * or +inf anyway; NaN is not expected (softmax handles NaN rows first). */
static inline __m256d exp4d(__m256d x) {
    __m256d xc = _mm256_min_pd(_mm256_max_pd(x, _mm256_set1_pd(-110.0)), _mm256_set1_pd(89.0));
    __m256d n = _mm256_round_pd(_mm256_mul_pd(xc, _mm256_set1_pd(1.4426950408889634)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93147180369123816490e-01), xc);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.90821492927058770002e-10), r);
    __m256d p = _mm256_set1_pd(bn_exp_inv_factorial[13]);
    for (int k = 12; k >= 0; k--) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(bn_exp_inv_factorial[k]));
    __m256i e = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(n));
    e = _mm256_slli_epi64(_mm256_add_epi64(e, _mm256_set1_epi64x(1023)), 52);
    return _mm256_mul_pd(p, _mm256_castsi256_pd(e));
}

/* (float)exp((double)(x[i] - max)) for 8 floats: stored back and returned. */
static inline __m256 softmax_exp8(float *x, __m256 vm) {
    __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x), vm);
    __m128 e0 = _mm256_cvtpd_ps(exp4d(_mm256_cvtps_pd(_mm256_castps256_ps128(d))));
    __m128 e1 = _mm256_cvtpd_ps(exp4d(_mm256_cvtps_pd(_mm256_extractf128_ps(d, 1))));
    __m256 e = _mm256_insertf128_ps(_mm256_castps128_ps256(e0), e1, 1);
    _mm256_storeu_ps(x, e);
    return e;
}

/* Loads n < 8 floats (rest zero). */
static inline __m256 load_partial(const float *p, int n) {
    float tmp[8] = {0};
    memcpy(tmp, p, (size_t)n * sizeof(float));
    return _mm256_loadu_ps(tmp);
}

static inline void store_partial(float *p, __m256 v, int n) {
    float tmp[8];
    _mm256_storeu_ps(tmp, v);
    memcpy(p, tmp, (size_t)n * sizeof(float));
}

/* ---- per-token and element-wise ops ---- */

void bn_avx2_rmsnorm(float *out, const float *x, const float *weight, int n_tokens, int cols,
                     float eps) {
    bn_prefetch_floats(weight, cols);
    for (int t = 0; t < n_tokens; t++) {
        const float *xt = x + (size_t)t * (size_t)cols;
        float *ot = out + (size_t)t * (size_t)cols;
        __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
        __m256d a2 = _mm256_setzero_pd(), a3 = _mm256_setzero_pd();
        int i = 0;
        for (; i + 16 <= cols; i += 16) {
            __m256 v = _mm256_loadu_ps(xt + i), u = _mm256_loadu_ps(xt + i + 8);
            __m256d v0 = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
            __m256d v1 = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
            __m256d u0 = _mm256_cvtps_pd(_mm256_castps256_ps128(u));
            __m256d u1 = _mm256_cvtps_pd(_mm256_extractf128_ps(u, 1));
            a0 = _mm256_fmadd_pd(v0, v0, a0);
            a1 = _mm256_fmadd_pd(v1, v1, a1);
            a2 = _mm256_fmadd_pd(u0, u0, a2);
            a3 = _mm256_fmadd_pd(u1, u1, a3);
        }
        double ss = hsum4d(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
        for (; i < cols; i++) ss += (double)xt[i] * (double)xt[i];
        float scale = (float)(1.0 / sqrt(ss / cols + (double)eps));
        __m256 vs = _mm256_set1_ps(scale);
        i = 0;
        for (; i + 8 <= cols; i += 8)
            _mm256_storeu_ps(ot + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xt + i), vs),
                                                   _mm256_loadu_ps(weight + i)));
        for (; i < cols; i++) ot[i] = (xt[i] * scale) * weight[i];
    }
}

/* Rotates dims [i0, i0 + count) of every head with the table entries c[0..count), s[0..count). */
static void rope_rotate(float *x, int n_heads, int head_dim, int half, int i0, int count,
                        const float *c, const float *s) {
    for (int h = 0; h < n_heads; h++) {
        float *x0 = x + (size_t)h * (size_t)head_dim + i0;
        float *x1 = x0 + half;
        int j = 0;
        for (; j + 8 <= count; j += 8) {
            __m256 a = _mm256_loadu_ps(x0 + j), b = _mm256_loadu_ps(x1 + j);
            __m256 vc = _mm256_loadu_ps(c + j), vs = _mm256_loadu_ps(s + j);
            _mm256_storeu_ps(x0 + j, _mm256_sub_ps(_mm256_mul_ps(a, vc), _mm256_mul_ps(b, vs)));
            _mm256_storeu_ps(x1 + j, _mm256_add_ps(_mm256_mul_ps(a, vs), _mm256_mul_ps(b, vc)));
        }
        for (; j < count; j++) {
            float a = x0[j], b = x1[j];
            x0[j] = a * c[j] - b * s[j];
            x1[j] = a * s[j] + b * c[j];
        }
    }
}

#define ROPE_CHUNK 128

void bn_avx2_rope_neox(float *x, int n_heads, int head_dim, int rope_dim, int32_t pos,
                       float freq_base) {
    if (rope_dim > head_dim) rope_dim = head_dim;
    int half = rope_dim / 2;
    float c[ROPE_CHUNK], s[ROPE_CHUNK];
    for (int i0 = 0; i0 < half; i0 += ROPE_CHUNK) {
        int count = half - i0 < ROPE_CHUNK ? half - i0 : ROPE_CHUNK;
        bn_ref_rope_angles(c, s, i0, count, 2 * half, pos, freq_base);
        rope_rotate(x, n_heads, head_dim, half, i0, count, c, s);
    }
}

void bn_avx2_rope_neox_table(float *x, int n_heads, int head_dim, int rope_dim,
                             const float *cos_table, const float *sin_table) {
    if (rope_dim > head_dim) rope_dim = head_dim;
    rope_rotate(x, n_heads, head_dim, rope_dim / 2, 0, rope_dim / 2, cos_table, sin_table);
}

void bn_avx2_softmax(float *x, int n) {
    if (n <= 0) return;
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    __m256 vnan = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        vmax = _mm256_max_ps(v, vmax); /* a NaN v leaves vmax unchanged */
    }
    float max = hmax8(vmax);
    bool has_nan = _mm256_movemask_ps(vnan) != 0;
    for (; i < n; i++) {
        if (isnan(x[i]))
            has_nan = true;
        else if (x[i] > max)
            max = x[i];
    }
    if (bn_ref_softmax_special(x, n, max, has_nan)) return;
    /* as the reference: e = (float)exp((double)(x - max)), the sum of the e in double */
    __m256 vm = _mm256_set1_ps(max);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = softmax_exp8(x + i, vm);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double sum = hsum4d(_mm256_add_pd(s0, s1));
    if (i < n) {
        float tmp[8] = {0};
        int rest = n - i;
        memcpy(tmp, x + i, (size_t)rest * sizeof(float));
        softmax_exp8(tmp, vm);
        for (int j = 0; j < rest; j++) {
            x[i + j] = tmp[j];
            sum += tmp[j];
        }
    }
    __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
    i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= _mm256_cvtss_f32(inv);
}

void bn_avx2_relu2_mul(float *out, const float *gate, const float *up, int n) {
    const __m256 zero = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 r = _mm256_max_ps(zero, _mm256_loadu_ps(gate + i)); /* NaN gate stays NaN */
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(r, r), _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) {
        float r = bn_ref_relu(gate[i]);
        out[i] = (r * r) * up[i];
    }
}

/* sigmoid(t) = e / (1 + e) for t < 0 and 1 / (1 + e) otherwise, e = exp(-|t|): exp never
 * overflows, so results stay accurate down to the subnormal range. */
static inline __m256 sigmoid8(__m256 t) {
    __m256 abs_t = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), t);
    __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), abs_t));
    __m256 one = _mm256_set1_ps(1.0f);
    __m256 numerator = _mm256_blendv_ps(one, e, _mm256_cmp_ps(t, _mm256_setzero_ps(), _CMP_LT_OQ));
    return _mm256_div_ps(numerator, _mm256_add_ps(one, e));
}

/* x * s, except -inf -> -0 (the limit of SiLU and GELU) instead of -inf * 0. */
static inline __m256 times_limit(__m256 x, __m256 s) {
    __m256 neg_inf = _mm256_cmp_ps(x, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ);
    return _mm256_blendv_ps(_mm256_mul_ps(x, s), _mm256_set1_ps(-0.0f), neg_inf);
}

/* silu(x) = x sigmoid(x) */
static inline __m256 silu8(__m256 x) { return times_limit(x, sigmoid8(x)); }

/* gelu(x) = x sigmoid(2y), y = sqrt(2/pi) x (1 + 0.044715 x^2) (the tanh form, exactly) */
static inline __m256 gelu8(__m256 x) {
    const __m256 k2 = _mm256_set1_ps(2.0f * 0.7978845608028654f);
    const __m256 k2b = _mm256_set1_ps(2.0f * 0.7978845608028654f * 0.044715f);
    __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(x, x), k2b, k2);
    return times_limit(x, sigmoid8(_mm256_mul_ps(x, inner)));
}

void bn_avx2_silu_mul(float *out, const float *gate, const float *up, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i,
                         _mm256_mul_ps(silu8(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
    if (i < n) {
        int rest = n - i;
        store_partial(
            out + i, _mm256_mul_ps(silu8(load_partial(gate + i, rest)), load_partial(up + i, rest)),
            rest);
    }
}

void bn_avx2_add(float *x, const float *y, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) x[i] += y[i];
}

void bn_avx2_embedding_row_f16(float *out, const uint16_t *row, int cols) {
    int i = 0;
    for (; i + 8 <= cols; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + i))));
    if (i < cols) {
        uint16_t tmp[8] = {0};
        memcpy(tmp, row + i, (size_t)(cols - i) * sizeof(uint16_t));
        store_partial(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)tmp)), cols - i);
    }
}

static inline __m256 activation8(__m256 x, bn_activation act) {
    switch (act) {
    case BN_ACT_RELU: return _mm256_max_ps(_mm256_setzero_ps(), x);
    case BN_ACT_RELU2: {
        __m256 r = _mm256_max_ps(_mm256_setzero_ps(), x);
        return _mm256_mul_ps(r, r);
    }
    case BN_ACT_SILU: return silu8(x);
    case BN_ACT_GELU: return gelu8(x);
    }
    return x;
}

void bn_avx2_activation_apply(float *out, const float *x, int n, bn_activation act) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, activation8(_mm256_loadu_ps(x + i), act));
    if (i < n) store_partial(out + i, activation8(load_partial(x + i, n - i), act), n - i);
}

/* ---- attention ---- */

static inline __m256 load_kv8(const void *cache, bool f16, size_t index) {
    if (f16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)cache + index)));
    return _mm256_loadu_ps((const float *)cache + index);
}

static inline float kv_value(const void *cache, bool f16, size_t index) {
    if (f16) return _cvtsh_ss(((const uint16_t *)cache)[index]);
    return ((const float *)cache)[index];
}

/* 8 cache values as two halves of doubles. */
static inline void load_kv8d(const void *cache, bool f16, size_t index, __m256d *lo, __m256d *hi) {
    __m256 v = load_kv8(cache, f16, index);
    *lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    *hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
}

/* q . k_t over the vector part of head_dim in double as the reference (products of floats are
 * exact in double): for one position, and for four consecutive ones sharing the q conversions
 * (each keeps its own named accumulator pair, so nothing spills and grouping changes nothing);
 * the caller adds the scalar tail. */
static inline double dot1(const float *qh, const void *k_cache, bool f16, size_t base, int vec_dim) {
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    for (int d = 0; d < vec_dim; d += 8) {
        __m256 qv = _mm256_loadu_ps(qh + d);
        __m256d k0, k1;
        load_kv8d(k_cache, f16, base + (size_t)d, &k0, &k1);
        a0 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(qv)), k0, a0);
        a1 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(qv, 1)), k1, a1);
    }
    return hsum4d(_mm256_add_pd(a0, a1));
}

static inline void dot4(double *dots, const float *qh, const void *k_cache, bool f16, size_t base,
                        size_t row, int vec_dim) {
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), b0 = _mm256_setzero_pd(),
            b1 = _mm256_setzero_pd(), c0 = _mm256_setzero_pd(), c1 = _mm256_setzero_pd(),
            e0 = _mm256_setzero_pd(), e1 = _mm256_setzero_pd(), k0, k1;
    for (int d = 0; d < vec_dim; d += 8) {
        __m256 qv = _mm256_loadu_ps(qh + d);
        __m256d q0 = _mm256_cvtps_pd(_mm256_castps256_ps128(qv));
        __m256d q1 = _mm256_cvtps_pd(_mm256_extractf128_ps(qv, 1));
        load_kv8d(k_cache, f16, base + (size_t)d, &k0, &k1);
        a0 = _mm256_fmadd_pd(q0, k0, a0);
        a1 = _mm256_fmadd_pd(q1, k1, a1);
        load_kv8d(k_cache, f16, base + row + (size_t)d, &k0, &k1);
        b0 = _mm256_fmadd_pd(q0, k0, b0);
        b1 = _mm256_fmadd_pd(q1, k1, b1);
        load_kv8d(k_cache, f16, base + 2 * row + (size_t)d, &k0, &k1);
        c0 = _mm256_fmadd_pd(q0, k0, c0);
        c1 = _mm256_fmadd_pd(q1, k1, c1);
        load_kv8d(k_cache, f16, base + 3 * row + (size_t)d, &k0, &k1);
        e0 = _mm256_fmadd_pd(q0, k0, e0);
        e1 = _mm256_fmadd_pd(q1, k1, e1);
    }
    dots[0] = hsum4d(_mm256_add_pd(a0, a1));
    dots[1] = hsum4d(_mm256_add_pd(b0, b1));
    dots[2] = hsum4d(_mm256_add_pd(c0, c1));
    dots[3] = hsum4d(_mm256_add_pd(e0, e1));
}

/* 8 floats from two vectors of 4 doubles. */
static inline void store_pd_pair(float *out, __m256d lo, __m256d hi) {
    _mm256_storeu_ps(out, _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo)),
                                               _mm256_cvtpd_ps(hi), 1));
}

/* Scores of `count` (1..4) consecutive positions starting at row offset base. */
static inline void scores4(float *scores, const float *qh, const void *k_cache, bool f16,
                           size_t base, size_t row, int count, int head_dim, int vec_dim,
                           float scale) {
    double dots[4];
    if (count == 4)
        dot4(dots, qh, k_cache, f16, base, row, vec_dim);
    else
        for (int j = 0; j < count; j++) dots[j] = dot1(qh, k_cache, f16, base + (size_t)j * row, vec_dim);
    for (int j = 0; j < count; j++) {
        double dot = dots[j];
        for (int d = vec_dim; d < head_dim; d++)
            dot += (double)qh[d] * (double)kv_value(k_cache, f16, base + (size_t)j * row + (size_t)d);
        scores[j] = (float)dot * scale;
    }
}

void bn_avx2_attention(float *out, const float *q, const void *k_cache, const void *v_cache,
                       bool kv_f16, int n_heads, int n_kv_heads, int head_dim, int32_t pos,
                       float *scratch, int head_begin, int head_end) {
    int group = n_heads / n_kv_heads;
    size_t row = (size_t)n_kv_heads * (size_t)head_dim;
    float scale = (float)(1.0 / sqrt((double)head_dim));
    int n_pos = pos + 1;
    int vec_dim = head_dim & ~7;
    for (int h = head_begin; h < head_end; h++) {
        const float *qh = q + (size_t)h * (size_t)head_dim;
        size_t kv_offset = (size_t)(h / group) * (size_t)head_dim;
        /* scores: q . k_t for every cached position, four positions per pass */
        bn_prefetch_kv_positions(k_cache, v_cache, kv_f16, row, kv_offset, head_dim, 0,
                                 BN_KV_PREFETCH_POSITIONS, n_pos);
        for (int t = 0; t < n_pos; t += 4) {
            bn_prefetch_kv_positions(k_cache, v_cache, kv_f16, row, kv_offset, head_dim,
                                     t + BN_KV_PREFETCH_POSITIONS, t + 4 + BN_KV_PREFETCH_POSITIONS, n_pos);
            scores4(scratch + t, qh, k_cache, kv_f16, (size_t)t * row + kv_offset, row,
                    n_pos - t < 4 ? n_pos - t : 4, head_dim, vec_dim, scale);
        }
        bn_avx2_softmax(scratch, n_pos);
        /* out = sum_t p_t v_t in double (exact products): 32 dims at a time in 8 registers,
         * then 8, then single dims */
        float *oh = out + (size_t)h * (size_t)head_dim;
        int d0 = 0;
        for (; d0 + 32 <= vec_dim; d0 += 32) {
            __m256d o0 = _mm256_setzero_pd(), o1 = _mm256_setzero_pd(), o2 = _mm256_setzero_pd(),
                    o3 = _mm256_setzero_pd(), o4 = _mm256_setzero_pd(), o5 = _mm256_setzero_pd(),
                    o6 = _mm256_setzero_pd(), o7 = _mm256_setzero_pd(), v0, v1;
            for (int t = 0; t < n_pos; t++) {
                size_t base = (size_t)t * row + kv_offset + (size_t)d0;
                __m256d p = _mm256_set1_pd((double)scratch[t]);
                load_kv8d(v_cache, kv_f16, base, &v0, &v1);
                o0 = _mm256_fmadd_pd(p, v0, o0);
                o1 = _mm256_fmadd_pd(p, v1, o1);
                load_kv8d(v_cache, kv_f16, base + 8, &v0, &v1);
                o2 = _mm256_fmadd_pd(p, v0, o2);
                o3 = _mm256_fmadd_pd(p, v1, o3);
                load_kv8d(v_cache, kv_f16, base + 16, &v0, &v1);
                o4 = _mm256_fmadd_pd(p, v0, o4);
                o5 = _mm256_fmadd_pd(p, v1, o5);
                load_kv8d(v_cache, kv_f16, base + 24, &v0, &v1);
                o6 = _mm256_fmadd_pd(p, v0, o6);
                o7 = _mm256_fmadd_pd(p, v1, o7);
            }
            store_pd_pair(oh + d0, o0, o1);
            store_pd_pair(oh + d0 + 8, o2, o3);
            store_pd_pair(oh + d0 + 16, o4, o5);
            store_pd_pair(oh + d0 + 24, o6, o7);
        }
        for (; d0 + 8 <= vec_dim; d0 += 8) {
            __m256d o0 = _mm256_setzero_pd(), o1 = _mm256_setzero_pd(), v0, v1;
            for (int t = 0; t < n_pos; t++) {
                __m256d p = _mm256_set1_pd((double)scratch[t]);
                load_kv8d(v_cache, kv_f16, (size_t)t * row + kv_offset + (size_t)d0, &v0, &v1);
                o0 = _mm256_fmadd_pd(p, v0, o0);
                o1 = _mm256_fmadd_pd(p, v1, o1);
            }
            store_pd_pair(oh + d0, o0, o1);
        }
        for (int d = vec_dim; d < head_dim; d++) {
            double acc = 0.0;
            for (int t = 0; t < n_pos; t++)
                acc += (double)scratch[t] *
                       (double)kv_value(v_cache, kv_f16, (size_t)t * row + kv_offset + (size_t)d);
            oh[d] = (float)acc;
        }
    }
}

/* ---- conv1d ---- */

/* Exact int8 dot product (widened to int16, pairwise madd to int32). */
static inline int32_t dot_i8(const int8_t *a, const int8_t *b, int n) {
    __m256i acc = _mm256_setzero_si256();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i va = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256i vb = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + i)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(va, vb));
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    int32_t total = _mm_cvtsi128_si32(s);
    for (; i < n; i++) total += a[i] * b[i];
    return total;
}

/* For each output position, gathers its receptive field (zero where padded) into column
 * (row_length int8 values of scratch), then takes its dot product with every output channel's
 * weights; the int32 sums are exact, so the result equals the reference bit for bit. */
void bn_avx2_conv1d_core(float *out, const int8_t *w, const int8_t *q, float s_x, float s_w,
                         const bn_conv1d_shape *shape, const bn_conv1d_plan *plan, int8_t *column) {
    int row_length = plan->row_length, kernel = shape->kernel, length = shape->length;
    for (int l = 0; l < plan->out_length; l++) {
        int64_t start = (int64_t)l * shape->stride - shape->padding;
        for (int c = 0; c < shape->in_channels; c++) {
            const int8_t *qc = q + (size_t)c * (size_t)length;
            int8_t *col = column + (size_t)c * (size_t)kernel;
            for (int k = 0; k < kernel; k++) {
                int64_t p = start + (int64_t)k * shape->dilation;
                col[k] = p >= 0 && p < length ? qc[p] : 0;
            }
        }
        for (int o = 0; o < shape->out_channels; o++) {
            int32_t acc = dot_i8(w + (size_t)o * (size_t)row_length, column, row_length);
            out[(size_t)o * (size_t)plan->out_length + (size_t)l] = ((float)acc / s_x) * s_w;
        }
    }
}

/* ---- pooling ---- */

/* One output of max/avg pooling by the reference formula (edges of the output). */
static float pool_one(const float *in, int length, int64_t start, int kernel, bool is_max) {
    float m = -INFINITY, sum = 0.0f;
    bool nan = false;
    int count = 0;
    for (int k = 0; k < kernel; k++) {
        int64_t p = start + k;
        if (p < 0 || p >= length) continue;
        if (isnan(in[p]))
            nan = true;
        else if (in[p] > m)
            m = in[p];
        sum += in[p];
        count++;
    }
    if (is_max) return nan ? NAN : m;
    return sum / (float)count;
}

/* Pools 8 windows whose first elements are at base + offset lane, offset = lane * step (loads
 * for step 1, gathers otherwise), in the reference's order per lane. */
static inline __m256 pool8(const float *base, __m256i offset, int step, int kernel, bool is_max) {
    __m256 m = _mm256_set1_ps(-INFINITY), sum = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
    for (int k = 0; k < kernel; k++) {
        __m256 v = step == 1 ? _mm256_loadu_ps(base + k) : _mm256_i32gather_ps(base + k, offset, 4);
        if (is_max) {
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            m = _mm256_max_ps(v, m); /* keeps m on ties and NaN, like the strict > */
        } else {
            sum = _mm256_add_ps(sum, v);
        }
    }
    return is_max ? _mm256_blendv_ps(m, _mm256_set1_ps(NAN), nan)
                  : _mm256_div_ps(sum, _mm256_set1_ps((float)kernel));
}

/* Outputs whose window lies fully inside the input go 8 at a time; the others use pool_one.
 * Strides 2..4 pool every window start in the range with contiguous loads and keep every
 * stride-th result (cheaper than gathers while the waste is small); larger strides gather. */
static void pool1d(float *out, const float *input, const bn_pool1d_shape *shape, int out_length,
                   bool is_max) {
    int stride = shape->stride, kernel = shape->kernel, length = shape->length;
    /* interior: l*stride - padding >= 0 and l*stride - padding + kernel <= length */
    int64_t first = ((int64_t)shape->padding + stride - 1) / stride;
    int64_t room = (int64_t)length + shape->padding - kernel;
    int64_t last = room < 0 ? -1 : room / stride; /* inclusive */
    if (last >= out_length) last = out_length - 1;
    __m256i offset =
        _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride));
    bool dense = stride > 1 && stride <= 4;
    for (int c = 0; c < shape->channels; c++) {
        const float *in = input + (size_t)c * (size_t)length;
        float *oc = out + (size_t)c * (size_t)out_length;
        int64_t l = 0;
        for (; l < first && l < out_length; l++)
            oc[l] = pool_one(in, length, l * stride - shape->padding, kernel, is_max);
        for (; l + 7 <= last; l += 8) {
            int64_t start = l * stride - shape->padding;
            /* the dense form reads window starts up to start + 8 * stride - 1 */
            if (dense && start + 8 * stride - 1 + kernel <= length) {
                float all[32];
                for (int part = 0; part < stride; part++)
                    _mm256_storeu_ps(all + part * 8,
                                     pool8(in + start + part * 8, offset, 1, kernel, is_max));
                for (int j = 0; j < 8; j++) oc[l + j] = all[j * stride];
            } else {
                _mm256_storeu_ps(oc + l, pool8(in + start, offset, stride, kernel, is_max));
            }
        }
        for (; l < out_length; l++)
            oc[l] = pool_one(in, length, l * stride - shape->padding, kernel, is_max);
    }
}

void bn_avx2_max_pool1d(float *out, const float *input, const bn_pool1d_shape *shape,
                        int out_length) {
    pool1d(out, input, shape, out_length, true);
}

void bn_avx2_avg_pool1d(float *out, const float *input, const bn_pool1d_shape *shape,
                        int out_length) {
    pool1d(out, input, shape, out_length, false);
}

/* ---- batchnorm ---- */

void bn_avx2_batchnorm(float *out, const float *x, const float *mean, const float *var,
                       const float *gamma, const float *beta, int channels, int length, float eps) {
    for (int c = 0; c < channels; c++) {
        const float *xc = x + (size_t)c * (size_t)length;
        float *oc = out + (size_t)c * (size_t)length;
        float a = bn_ref_batchnorm_scale(var[c], gamma[c], eps), m = mean[c], b = beta[c];
        __m256 va = _mm256_set1_ps(a), vm = _mm256_set1_ps(m), vb = _mm256_set1_ps(b);
        int i = 0;
        for (; i + 8 <= length; i += 8)
            _mm256_storeu_ps(
                oc + i,
                _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xc + i), vm), va), vb));
        for (; i < length; i++) oc[i] = (xc[i] - m) * a + b;
    }
}
