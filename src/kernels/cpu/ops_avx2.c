/*
 * ops_avx2.c: AVX2 + FMA + F16C paths of the non-matmul ops (declared in ops_isa.h; semantics in
 * ref_ops.h). Each gives the scalar reference's bits: element-wise formulas use the same
 * operations in the same order (FMA exactly where the reference has fmaf), and the ops of spec
 * section 4.1 keep ggml's 16-lane order in pairs of 8-lane registers (low = lanes 0-7, high =
 * lanes 8-15). The auxiliary SiLU/GELU activations use a vector exp accurate to about 2 ulp
 * (exp8) and are within 1e-5 relative of the reference.
 */
#include "kernels/cpu/ops_isa.h"

#include "kernels/cpu/exact_arith.h"

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

/* bn_expf_ggml on 8 floats: ggml_v_expf's operations; 2^n (|n| <= 192) applied as two exact
 * powers of two, so the result rounds once, as vscalefps does. */
static inline __m256 expf_ggml8(__m256 x) {
    const __m256 shift = _mm256_set1_ps(BN_EXPF_SHIFT);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(BN_EXPF_LOG2E), shift);
    const __m256 n = _mm256_sub_ps(z, shift);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(BN_EXPF_LN2_LO),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(BN_EXPF_LN2_HI), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(BN_EXPF_C5), b, _mm256_set1_ps(BN_EXPF_C4)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(BN_EXPF_C3), b, _mm256_set1_ps(BN_EXPF_C2))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(BN_EXPF_C1), b, _mm256_set1_ps(1.0f)));
    const __m256 abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 big = _mm256_cmp_ps(abs_n, _mm256_set1_ps(BN_EXPF_N_LIMIT), _CMP_GT_OQ);
    const __m256i ni = _mm256_cvttps_epi32(_mm256_andnot_ps(big, n)); /* 0 where big or NaN */
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 p1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    const __m256 result = _mm256_mul_ps(_mm256_mul_ps(j, p1), p2);
    const __m256 non_positive = _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ);
    const __m256 limit = _mm256_andnot_ps(non_positive, _mm256_set1_ps(INFINITY));
    return _mm256_blendv_ps(result, limit, big);
}

/* bn_tree16 of 16 lanes held as low (0-7) and high (8-15). */
static inline float tree16(__m256 low, __m256 high) {
    const __m256 a = _mm256_add_ps(low, high);
    const __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));
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
        /* the float squares summed in double lanes; the reference's sequential sum where the
         * lanes could round the mean differently (bn_rmsnorm_mean_certain) */
        __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
        __m256d a2 = _mm256_setzero_pd(), a3 = _mm256_setzero_pd();
        int i = 0;
        for (; i + 16 <= cols; i += 16) {
            __m256 v = _mm256_loadu_ps(xt + i), u = _mm256_loadu_ps(xt + i + 8);
            v = _mm256_mul_ps(v, v);
            u = _mm256_mul_ps(u, u);
            a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
            a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
            a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm256_castps256_ps128(u)));
            a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm256_extractf128_ps(u, 1)));
        }
        double lanes = hsum4d(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
        for (; i < cols; i++) {
            const float square = xt[i] * xt[i];
            lanes += (double)square;
        }
        float mean;
        if (!bn_rmsnorm_mean_certain(lanes, cols, &mean))
            mean = bn_rmsnorm_mean(bn_ref_sum_squares(xt, cols), cols);
        const float scale = bn_rmsnorm_scale(mean, eps);
        __m256 vs = _mm256_set1_ps(scale);
        i = 0;
        for (; i + 8 <= cols; i += 8)
            _mm256_storeu_ps(ot + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xt + i), vs),
                                                   _mm256_loadu_ps(weight + i)));
        for (; i < cols; i++) ot[i] = (xt[i] * scale) * weight[i];
    }
}

/* Rotates dims [0, half) with [half, 2 half) of every head (bn_ref_rope_neox_table's fmaf:
 * x1 * s and x1 * c rounded, the other product fused). */
static void rope_rotate(float *x, int n_heads, int head_dim, int half, const float *c,
                        const float *s) {
    for (int h = 0; h < n_heads; h++) {
        float *x0 = x + (size_t)h * (size_t)head_dim;
        float *x1 = x0 + half;
        int j = 0;
        for (; j + 8 <= half; j += 8) {
            __m256 a = _mm256_loadu_ps(x0 + j), b = _mm256_loadu_ps(x1 + j);
            __m256 vc = _mm256_loadu_ps(c + j), vs = _mm256_loadu_ps(s + j);
            _mm256_storeu_ps(x0 + j, _mm256_fmsub_ps(a, vc, _mm256_mul_ps(b, vs)));
            _mm256_storeu_ps(x1 + j, _mm256_fmadd_ps(a, vs, _mm256_mul_ps(b, vc)));
        }
        for (; j < half; j++) {
            const float a = x0[j], b = x1[j];
            const float b_sin = b * s[j], b_cos = b * c[j];
            x0[j] = fmaf(a, c[j], -b_sin);
            x1[j] = fmaf(a, s[j], b_cos);
        }
    }
}

void bn_avx2_rope_neox(float *x, int n_heads, int head_dim, int rope_dim, int32_t pos,
                       float freq_base) {
    if (rope_dim > head_dim) rope_dim = head_dim;
    const int half = rope_dim / 2;
    float c[256], s[256];
    if (half > 256) { /* the reference computes its own angles for very wide heads */
        bn_ref_rope_neox(x, n_heads, head_dim, rope_dim, pos, freq_base);
        return;
    }
    bn_ref_rope_angles(c, s, half, 2 * half, pos, freq_base);
    rope_rotate(x, n_heads, head_dim, half, c, s);
}

void bn_avx2_rope_neox_table(float *x, int n_heads, int head_dim, int rope_dim,
                             const float *cos_table, const float *sin_table) {
    if (rope_dim > head_dim) rope_dim = head_dim;
    rope_rotate(x, n_heads, head_dim, rope_dim / 2, cos_table, sin_table);
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
    /* e = expf_ggml(x - max), each 16-element chunk (zero past n) summed by the lane tree, the
     * chunk sums in double */
    const __m256 vm = _mm256_set1_ps(max);
    double sum = 0.0;
    for (i = 0; i < n; i += 16) {
        float chunk[16] = {0};
        const int count = n - i < 16 ? n - i : 16;
        memcpy(chunk, x + i, (size_t)count * sizeof(float));
        __m256 e0 = expf_ggml8(_mm256_sub_ps(_mm256_loadu_ps(chunk), vm));
        __m256 e1 = expf_ggml8(_mm256_sub_ps(_mm256_loadu_ps(chunk + 8), vm));
        if (count < 16) { /* lanes past n count as 0 */
            const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            e0 = _mm256_and_ps(e0, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(count), lane)));
            e1 = _mm256_and_ps(e1, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(count - 8), lane)));
        }
        _mm256_storeu_ps(chunk, e0);
        _mm256_storeu_ps(chunk + 8, e1);
        memcpy(x + i, chunk, (size_t)count * sizeof(float));
        sum += (double)tree16(e0, e1);
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
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    const int full = n - n % BN_EXACT_LANES;
    int i = 0;
    for (; i < full; i += 8) {
        const __m256 x = _mm256_loadu_ps(gate + i);
        const __m256 silu = _mm256_div_ps(x, _mm256_add_ps(one, expf_ggml8(_mm256_sub_ps(zero, x))));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) out[i] = (gate[i] / (1.0f + expf(-gate[i]))) * up[i];
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

/* 8 cache values from element index as float. A q8_0 group of 8 lies in one block (index is a
 * multiple of 8); (float)q * d is exact, as in the reference. */
static inline __attribute__((always_inline)) __m256 load_kv8(const void *cache, uint32_t type,
                                                             size_t index) {
    if (type == BN_TYPE_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)cache + index)));
    if (type == BN_TYPE_Q8_0) {
        const bn_q8_0_block *block = (const bn_q8_0_block *)cache + index / BN_Q8_0_BLOCK;
        const __m256 q = _mm256_cvtepi32_ps(
            _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(block->qs + index % BN_Q8_0_BLOCK))));
        return _mm256_mul_ps(q, _mm256_set1_ps(_cvtsh_ss(block->d)));
    }
    return _mm256_loadu_ps((const float *)cache + index);
}

/* Largest head_dim (a multiple of 16) these kernels take; others run the reference
 * (kernels/ops.c). */
#define ATTN_MAX_HEAD_DIM 256

bool bn_avx2_attention_supports(int head_dim) {
    return head_dim % 16 == 0 && head_dim <= ATTN_MAX_HEAD_DIM;
}

/* bn_ref_score_dot of one position: ggml's 4 accumulators of 16 lanes as 8 registers. */
static inline __attribute__((always_inline)) float score_dot(const float *qv, const void *k_cache,
                                                             uint32_t k_type, size_t base, int head_dim) {
    const int full = head_dim - head_dim % BN_SCORE_STEP;
    __m256 acc[8];
    for (int a = 0; a < 8; a++) acc[a] = _mm256_setzero_ps();
    for (int d = 0; d < full; d += BN_SCORE_STEP)
        for (int a = 0; a < 8; a++)
            acc[a] = _mm256_fmadd_ps(_mm256_loadu_ps(qv + d + 8 * a),
                                     load_kv8(k_cache, k_type, base + (size_t)(d + 8 * a)), acc[a]);
    /* accumulator k of ggml is acc[2k] (lanes 0-7) and acc[2k + 1] (lanes 8-15) */
    const __m256 low = _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6]));
    const __m256 high = _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7]));
    double sum = (double)tree16(low, high);
    if (full < head_dim) {
        float products[BN_SCORE_STEP];
        for (int d = full; d < head_dim; d += 8)
            _mm256_storeu_ps(products + (d - full),
                             _mm256_mul_ps(_mm256_loadu_ps(qv + d), load_kv8(k_cache, k_type, base + (size_t)d)));
        for (int d = 0; d < head_dim - full; d++) sum += (double)products[d];
    }
    return (float)sum;
}

/* out (8 dims) = the 16-lane P.V sum over positions 0..n_pos-1: accumulator l takes the
 * positions t = l mod 16, then the lane tree across the accumulators. */
static inline __attribute__((always_inline)) void weighted_values8(float *out, const float *probs,
                                                                   const void *v_cache, uint32_t v_type,
                                                                   size_t base, size_t row, int n_pos) {
    __m256 acc[16];
    for (int l = 0; l < 16; l++) acc[l] = _mm256_setzero_ps();
    for (int t = 0; t < n_pos; t++)
        acc[t % 16] = _mm256_fmadd_ps(load_kv8(v_cache, v_type, base + (size_t)t * row),
                                      _mm256_set1_ps(probs[t]), acc[t % 16]);
    for (int l = 0; l < 8; l++) acc[l] = _mm256_add_ps(acc[l], acc[l + 8]);
    for (int l = 0; l < 4; l++) acc[l] = _mm256_add_ps(acc[l], acc[l + 4]);
    acc[0] = _mm256_add_ps(acc[0], acc[2]);
    acc[1] = _mm256_add_ps(acc[1], acc[3]);
    _mm256_storeu_ps(out, _mm256_add_ps(acc[0], acc[1]));
}

/* The attention of heads [head_begin, head_end); inlined once per cache-type pair below, so the
 * type tests of the loads fold away. */
static inline __attribute__((always_inline)) void attention_heads(
    float *out, const float *q, const void *k_cache, const void *v_cache, uint32_t k_type,
    uint32_t v_type, int n_heads, int n_kv_heads, int head_dim, int32_t pos, float *scratch,
    int head_begin, int head_end) {
    const int group = n_heads / n_kv_heads, n_pos = pos + 1;
    const size_t row = (size_t)n_kv_heads * (size_t)head_dim;
    const float scale = bn_attention_scale(head_dim);
    float qv[ATTN_MAX_HEAD_DIM];
    for (int h = head_begin; h < head_end; h++) {
        const float *qh = q + (size_t)h * (size_t)head_dim;
        const size_t kv_offset = (size_t)(h / group) * (size_t)head_dim;
        /* the query as the scores use it: rounded to F16 with an F16 K cache (RNE, as F16C does) */
        for (int d = 0; d < head_dim; d += 8) {
            __m256 v = _mm256_loadu_ps(qh + d);
            if (k_type == BN_TYPE_F16)
                v = _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
            _mm256_storeu_ps(qv + d, v);
        }
        bn_prefetch_kv_positions(k_cache, k_type, v_cache, v_type, row, kv_offset, head_dim, 0,
                                 BN_KV_PREFETCH_POSITIONS, n_pos);
        for (int t = 0; t < n_pos; t++) {
            bn_prefetch_kv_positions(k_cache, k_type, v_cache, v_type, row, kv_offset, head_dim,
                                     t + BN_KV_PREFETCH_POSITIONS, t + 1 + BN_KV_PREFETCH_POSITIONS, n_pos);
            scratch[t] = score_dot(qv, k_cache, k_type, (size_t)t * row + kv_offset, head_dim) * scale;
        }
        bn_avx2_softmax(scratch, n_pos);
        float *oh = out + (size_t)h * (size_t)head_dim;
        for (int d = 0; d < head_dim; d += 8)
            weighted_values8(oh + d, scratch, v_cache, v_type, kv_offset + (size_t)d, row, n_pos);
    }
}

void bn_avx2_attention(float *out, const float *q, const void *k_cache, const void *v_cache,
                       uint32_t k_type, uint32_t v_type, int n_heads, int n_kv_heads, int head_dim,
                       int32_t pos, float *scratch, int head_begin, int head_end) {
#define ATTENTION_TYPED(K, V)                                                                      \
    attention_heads(out, q, k_cache, v_cache, K, V, n_heads, n_kv_heads, head_dim, pos, scratch,    \
                    head_begin, head_end)
    if (k_type == BN_TYPE_F16 && v_type == BN_TYPE_F16) ATTENTION_TYPED(BN_TYPE_F16, BN_TYPE_F16);
    else if (k_type == BN_TYPE_Q8_0 && v_type == BN_TYPE_Q8_0) ATTENTION_TYPED(BN_TYPE_Q8_0, BN_TYPE_Q8_0);
    else if (k_type == BN_TYPE_F32 && v_type == BN_TYPE_F32) ATTENTION_TYPED(BN_TYPE_F32, BN_TYPE_F32);
    else ATTENTION_TYPED(k_type, v_type); /* mixed types: tested at run time */
#undef ATTENTION_TYPED
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
