/*
 * ops_avx512.c: AVX-512 paths of the ops where 16 lanes and masked tails pay: RMSNorm, softmax
 * and attention (above all over the F16 and Q8_0 KV caches, converted 16 values per instruction). Other
 * ops run their AVX2 kernel on AVX-512 CPUs. Each gives the scalar reference's bits (spec section
 * 4.1): 16 float lanes are ggml's own lane order here, one register per 16-lane sum.
 */
#include "kernels/cpu/ops_isa.h"

#include "kernels/cpu/exact_arith.h"

#include <immintrin.h>
#include <math.h>

static inline __mmask16 tail_mask(int n) { return (__mmask16)((1u << n) - 1u); }

/* bn_expf_ggml on 16 floats (ggml_v_expf itself: vscalefps applies 2^n). */
static inline __m512 expf_ggml16(__m512 x) {
    const __m512 shift = _mm512_set1_ps(BN_EXPF_SHIFT);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(BN_EXPF_LOG2E), shift);
    const __m512 n = _mm512_sub_ps(z, shift);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(BN_EXPF_LN2_LO),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(BN_EXPF_LN2_HI), x));
    const __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(BN_EXPF_N_LIMIT), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(BN_EXPF_C5), b, _mm512_set1_ps(BN_EXPF_C4)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(BN_EXPF_C3), b, _mm512_set1_ps(BN_EXPF_C2))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(BN_EXPF_C1), b, _mm512_set1_ps(1.0f)));
    const __m512 result = _mm512_scalef_ps(j, n);
    if (!big) return result;
    const __mmask16 non_positive = _mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ);
    const __m512 limit = _mm512_mask_blend_ps(non_positive, _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
    return _mm512_mask_blend_ps(big, result, limit);
}

/* bn_tree16 of the 16 lanes of v. */
static inline float tree16(__m512 v) {
    const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    const __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));
}

void bn_avx512_rmsnorm(float *out, const float *x, const float *weight, int n_tokens, int cols,
                       float eps) {
    bn_prefetch_floats(weight, cols);
    for (int t = 0; t < n_tokens; t++) {
        const float *xt = x + (size_t)t * (size_t)cols;
        float *ot = out + (size_t)t * (size_t)cols;
        /* the float squares summed in double lanes; the reference's sequential sum where the
         * lanes could round the mean differently (bn_rmsnorm_mean_certain) */
        __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
        for (int i = 0; i < cols; i += 16) {
            __mmask16 m = cols - i >= 16 ? (__mmask16)0xffff : tail_mask(cols - i);
            __m512 v = _mm512_maskz_loadu_ps(m, xt + i);
            v = _mm512_mul_ps(v, v);
            a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
            a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
        }
        float mean;
        if (!bn_rmsnorm_mean_certain(_mm512_reduce_add_pd(_mm512_add_pd(a0, a1)), cols, &mean))
            mean = bn_rmsnorm_mean(bn_ref_sum_squares(xt, cols), cols);
        __m512 vs = _mm512_set1_ps(bn_rmsnorm_scale(mean, eps));
        for (int i = 0; i < cols; i += 16) {
            __mmask16 m = cols - i >= 16 ? (__mmask16)0xffff : tail_mask(cols - i);
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xt + i), vs);
            _mm512_mask_storeu_ps(ot + i, m,
                                  _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, weight + i)));
        }
    }
}

void bn_avx512_softmax(float *x, int n) {
    if (n <= 0) return;
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    __mmask16 nan = 0;
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, x + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        vmax = _mm512_max_ps(v, vmax); /* a NaN v leaves vmax unchanged */
    }
    float max = _mm512_reduce_max_ps(vmax);
    if (bn_ref_softmax_special(x, n, max, nan != 0)) return;
    /* e = expf_ggml(x - max), each 16-element chunk (zero past n) summed by the lane tree, the
     * chunk sums in double */
    const __m512 vm = _mm512_set1_ps(max);
    double sum = 0.0;
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 e = _mm512_maskz_mov_ps(m, expf_ggml16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm)));
        _mm512_mask_storeu_ps(x + i, m, e);
        sum += (double)tree16(e);
    }
    __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

/* 16 cache values from element index as float. A q8_0 group of 16 lies in one block (index is a
 * multiple of 16); (float)q * d is exact, as in the reference. */
static inline __attribute__((always_inline)) __m512 load_kv16(const void *cache, uint32_t type,
                                                              size_t index) {
    if (type == BN_TYPE_F16)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)cache + index)));
    if (type == BN_TYPE_Q8_0) {
        const bn_q8_0_block *block = (const bn_q8_0_block *)cache + index / BN_Q8_0_BLOCK;
        const __m512 q = _mm512_cvtepi32_ps(
            _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(block->qs + index % BN_Q8_0_BLOCK))));
        return _mm512_mul_ps(q, _mm512_set1_ps(_cvtsh_ss(block->d)));
    }
    return _mm512_loadu_ps((const float *)cache + index);
}

/* Largest head_dim (a multiple of 16) and context these kernels take; others run the reference
 * (kernels/ops.c). The query of G heads in its rounded form and their score rows live on the
 * stack: 4 KiB and 32 KiB at most. */
#define ATTN_MAX_HEAD_DIM 256
#define ATTN_MAX_GROUP 4

bool bn_avx512_attention_supports(int head_dim) {
    return head_dim % 16 == 0 && head_dim <= ATTN_MAX_HEAD_DIM;
}

/* Scores of one position for G heads sharing a KV head (bn_ref_score_dot for each): the K row
 * is loaded and converted once; every head keeps ggml's 4 accumulators of 16 lanes. */
static inline __attribute__((always_inline)) void scores_group(
    float *scores, int n_pos, int t, const float *qv, const void *k_cache, uint32_t k_type, size_t base,
    int head_dim, float scale, const int G) {
    const int full = head_dim - head_dim % BN_SCORE_STEP;
    __m512 acc[ATTN_MAX_GROUP][4];
#pragma GCC unroll 4
    for (int j = 0; j < G; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = _mm512_setzero_ps();
    for (int d = 0; d < full; d += BN_SCORE_STEP) {
#pragma GCC unroll 4
        for (int a = 0; a < 4; a++) {
            const __m512 k = load_kv16(k_cache, k_type, base + (size_t)(d + 16 * a));
#pragma GCC unroll 4
            for (int j = 0; j < G; j++)
                acc[j][a] = _mm512_fmadd_ps(_mm512_loadu_ps(qv + j * head_dim + d + 16 * a), k, acc[j][a]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < G; j++) {
        const __m512 lanes = _mm512_add_ps(_mm512_add_ps(acc[j][0], acc[j][2]), _mm512_add_ps(acc[j][1], acc[j][3]));
        double sum = (double)tree16(lanes);
        if (full < head_dim) {
            /* the dims past the last 64: float products added one by one in double */
            float products[BN_SCORE_STEP];
            for (int d = full; d < head_dim; d += 16)
                _mm512_storeu_ps(products + (d - full), _mm512_mul_ps(_mm512_loadu_ps(qv + j * head_dim + d),
                                                                    load_kv16(k_cache, k_type, base + (size_t)d)));
            for (int d = 0; d < head_dim - full; d++) sum += (double)products[d];
        }
        scores[j * n_pos + t] = (float)sum * scale;
    }
}

/* out (16 dims) = the 16-lane P.V sum of one head over positions 0..n_pos-1: accumulator l
 * takes the positions t = l mod 16 (fmadd per position), then the lane tree across them. */
static inline __attribute__((always_inline)) void weighted_values16(
    float *out, const float *probs, const void *v_cache, uint32_t v_type, size_t base, size_t row, int n_pos) {
    __m512 acc[16];
#pragma GCC unroll 16
    for (int l = 0; l < 16; l++) acc[l] = _mm512_setzero_ps();
    int t = 0;
    for (; t + 16 <= n_pos; t += 16) {
#pragma GCC unroll 16
        for (int l = 0; l < 16; l++)
            acc[l] = _mm512_fmadd_ps(load_kv16(v_cache, v_type, base + (size_t)(t + l) * row),
                                     _mm512_set1_ps(probs[t + l]), acc[l]);
    }
    for (int l = 0; t + l < n_pos; l++)
        acc[l] = _mm512_fmadd_ps(load_kv16(v_cache, v_type, base + (size_t)(t + l) * row),
                                 _mm512_set1_ps(probs[t + l]), acc[l]);
#pragma GCC unroll 8
    for (int l = 0; l < 8; l++) acc[l] = _mm512_add_ps(acc[l], acc[l + 8]);
#pragma GCC unroll 4
    for (int l = 0; l < 4; l++) acc[l] = _mm512_add_ps(acc[l], acc[l + 4]);
    acc[0] = _mm512_add_ps(acc[0], acc[2]);
    acc[1] = _mm512_add_ps(acc[1], acc[3]);
    _mm512_storeu_ps(out, _mm512_add_ps(acc[0], acc[1]));
}

/* Attention of G (1..4) query heads that share one KV head, over positions 0..n_pos-1 in
 * blocks that fit the score rows; see bn_ref_attention. */
static inline __attribute__((always_inline)) void attention_group(
    float *out, const float *q, const void *k_cache, const void *v_cache, uint32_t k_type,
    uint32_t v_type, size_t row, size_t kv_offset, int head_dim, int n_pos, float *scores, const int G) {
    const float scale = bn_attention_scale(head_dim);
    float qv[ATTN_MAX_GROUP * ATTN_MAX_HEAD_DIM];
    /* the query as the scores use it: rounded to F16 with an F16 K cache (RNE, as F16C does) */
    for (int j = 0; j < G; j++)
        for (int d = 0; d < head_dim; d += 16) {
            __m512 v = _mm512_loadu_ps(q + (size_t)j * head_dim + d);
            if (k_type == BN_TYPE_F16) v = _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
            _mm512_storeu_ps(qv + j * head_dim + d, v);
        }
    bn_prefetch_kv_positions(k_cache, k_type, v_cache, v_type, row, kv_offset, head_dim, 0,
                             BN_KV_PREFETCH_POSITIONS, n_pos);
    for (int t = 0; t < n_pos; t++) {
        bn_prefetch_kv_positions(k_cache, k_type, v_cache, v_type, row, kv_offset, head_dim,
                                 t + BN_KV_PREFETCH_POSITIONS, t + 1 + BN_KV_PREFETCH_POSITIONS, n_pos);
        scores_group(scores, n_pos, t, qv, k_cache, k_type, (size_t)t * row + kv_offset, head_dim, scale, G);
    }
    for (int j = 0; j < G; j++) {
        bn_avx512_softmax(scores + j * n_pos, n_pos);
        for (int d = 0; d < head_dim; d += 16)
            weighted_values16(out + (size_t)j * head_dim + d, scores + j * n_pos, v_cache, v_type,
                              kv_offset + (size_t)d, row, n_pos);
    }
}

/* The heads [head_begin, head_end) in groups that share a KV head (heads_at_once at most, score
 * rows in scores); inlined once per cache-type pair below, so the type tests of the loads fold
 * away. */
static inline __attribute__((always_inline)) void attention_heads(
    float *out, const float *q, const void *k_cache, const void *v_cache, uint32_t k_type,
    uint32_t v_type, int n_heads, int n_kv_heads, int head_dim, int32_t pos, float *scores,
    int heads_at_once, int head_begin, int head_end) {
    const int group = n_heads / n_kv_heads, n_pos = pos + 1;
    const size_t row = (size_t)n_kv_heads * (size_t)head_dim;
    int h = head_begin;
    while (h < head_end) {
        const int kv = h / group, group_end = (kv + 1) * group < head_end ? (kv + 1) * group : head_end;
        const int G = group_end - h < heads_at_once ? group_end - h : heads_at_once;
        const size_t kv_offset = (size_t)kv * (size_t)head_dim;
        float *oh = out + (size_t)h * (size_t)head_dim;
        const float *qh = q + (size_t)h * (size_t)head_dim;
        switch (G) {
        case 1: attention_group(oh, qh, k_cache, v_cache, k_type, v_type, row, kv_offset, head_dim, n_pos, scores, 1); break;
        case 2: attention_group(oh, qh, k_cache, v_cache, k_type, v_type, row, kv_offset, head_dim, n_pos, scores, 2); break;
        case 3: attention_group(oh, qh, k_cache, v_cache, k_type, v_type, row, kv_offset, head_dim, n_pos, scores, 3); break;
        default: attention_group(oh, qh, k_cache, v_cache, k_type, v_type, row, kv_offset, head_dim, n_pos, scores, 4); break;
        }
        h += G;
    }
}

void bn_avx512_attention(float *out, const float *q, const void *k_cache, const void *v_cache,
                         uint32_t k_type, uint32_t v_type, int n_heads, int n_kv_heads, int head_dim,
                         int32_t pos, float *scratch, int head_begin, int head_end) {
    /* the score rows of up to 4 heads: in scratch when one head's row is all it holds */
    int heads_at_once = ATTN_MAX_GROUP;
    float *scores = NULL;
    float stack_scores[ATTN_MAX_GROUP * 2048];
    if (pos + 1 <= 2048)
        scores = stack_scores;
    else {
        scores = scratch;
        heads_at_once = 1;
    }
#define ATTENTION_TYPED(K, V)                                                                      \
    attention_heads(out, q, k_cache, v_cache, K, V, n_heads, n_kv_heads, head_dim, pos, scores,     \
                    heads_at_once, head_begin, head_end)
    if (k_type == BN_TYPE_F16 && v_type == BN_TYPE_F16) ATTENTION_TYPED(BN_TYPE_F16, BN_TYPE_F16);
    else if (k_type == BN_TYPE_Q8_0 && v_type == BN_TYPE_Q8_0) ATTENTION_TYPED(BN_TYPE_Q8_0, BN_TYPE_Q8_0);
    else if (k_type == BN_TYPE_F32 && v_type == BN_TYPE_F32) ATTENTION_TYPED(BN_TYPE_F32, BN_TYPE_F32);
    else ATTENTION_TYPED(k_type, v_type); /* mixed types: tested at run time */
#undef ATTENTION_TYPED
}
