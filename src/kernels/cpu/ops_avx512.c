/*
 * ops_avx512.c: AVX-512 paths of the ops where 16 lanes and masked tails pay: RMSNorm, softmax
 * and attention (above all over the F16 KV cache, converted 16 values per instruction). Other
 * ops run their AVX2 kernel on AVX-512 CPUs. Semantics and accuracy as in ops_avx2.c: the same
 * float formulas as the reference, reductions in lane order; softmax and attention follow the
 * reference formula by formula with their sums and exp in double (see ops_avx2.c), so they give
 * its floats except within a few double ulps of a float rounding boundary.
 */
#include "kernels/cpu/ops_isa.h"

#include <immintrin.h>
#include <math.h>

static inline __mmask16 tail_mask(int n) { return (__mmask16)((1u << n) - 1u); }

/* exp(x) for 8 doubles: the reduction and degree-13 Taylor polynomial of ops_avx2.c's exp4d;
 * scalef applies 2^n. x is clamped to [-110, 89], where the float result is 0 or +inf anyway. */
static inline __m512d exp8d(__m512d x) {
    __m512d xc = _mm512_min_pd(_mm512_max_pd(x, _mm512_set1_pd(-110.0)), _mm512_set1_pd(89.0));
    __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(xc, _mm512_set1_pd(1.4426950408889634)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.93147180369123816490e-01), xc);
    r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.90821492927058770002e-10), r);
    __m512d p = _mm512_set1_pd(bn_exp_inv_factorial[13]);
    for (int k = 12; k >= 0; k--) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(bn_exp_inv_factorial[k]));
    return _mm512_scalef_pd(p, n);
}

/* The two halves of 16 floats as doubles. */
static inline __m512d low_pd(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
static inline __m512d high_pd(__m512 v) {
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

void bn_avx512_rmsnorm(float *out, const float *x, const float *weight, int n_tokens, int cols,
                       float eps) {
    bn_prefetch_floats(weight, cols);
    for (int t = 0; t < n_tokens; t++) {
        const float *xt = x + (size_t)t * (size_t)cols;
        float *ot = out + (size_t)t * (size_t)cols;
        __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
        int i = 0;
        for (; i < cols; i += 16) {
            __mmask16 m = cols - i >= 16 ? (__mmask16)0xffff : tail_mask(cols - i);
            __m512 v = _mm512_maskz_loadu_ps(m, xt + i);
            __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
            __m512d hi =
                _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
            a0 = _mm512_fmadd_pd(lo, lo, a0);
            a1 = _mm512_fmadd_pd(hi, hi, a1);
        }
        double ss = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
        float scale = (float)(1.0 / sqrt(ss / cols + (double)eps));
        __m512 vs = _mm512_set1_ps(scale);
        for (i = 0; i < cols; i += 16) {
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
    /* as the reference: e = (float)exp((double)(x - max)), the sum of the e in double */
    __m256 vm = _mm256_set1_ps(max);
    __m512d sum = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 8) {
        __mmask8 m = n - i >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (n - i)) - 1u);
        __m256 d = _mm256_sub_ps(_mm256_maskz_loadu_ps(m, x + i), vm);
        __m256 e = _mm256_maskz_mov_ps(m, _mm512_cvtpd_ps(exp8d(_mm512_cvtps_pd(d))));
        _mm256_mask_storeu_ps(x + i, m, e);
        sum = _mm512_add_pd(sum, _mm512_cvtps_pd(e));
    }
    __m512 inv = _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(sum)));
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

/* 16 cache values (masked) as float. */
static inline __m512 load_kv16(const void *cache, bool f16, size_t index, __mmask16 m) {
    if (f16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)cache + index));
    return _mm512_maskz_loadu_ps(m, (const float *)cache + index);
}

/* q . k of one position in double as the reference (products of floats are exact in double):
 * two accumulators, every 16 dims masked to head_dim. */
static inline float score1(const float *qh, const void *k_cache, bool f16, size_t base,
                           int head_dim, float scale) {
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    for (int d = 0; d < head_dim; d += 16) {
        __mmask16 m = head_dim - d >= 16 ? (__mmask16)0xffff : tail_mask(head_dim - d);
        __m512 qv = _mm512_maskz_loadu_ps(m, qh + d);
        __m512 k = load_kv16(k_cache, f16, base + (size_t)d, m);
        a0 = _mm512_fmadd_pd(low_pd(qv), low_pd(k), a0);
        a1 = _mm512_fmadd_pd(high_pd(qv), high_pd(k), a1);
    }
    return (float)_mm512_reduce_add_pd(_mm512_add_pd(a0, a1)) * scale;
}

/* The same for four consecutive positions sharing the q loads; each position keeps its own
 * accumulator pair (named registers, so nothing spills), so grouping changes no score. */
static inline void scores4(float *scores, const float *qh, const void *k_cache, bool f16,
                           size_t base, size_t row, int head_dim, float scale) {
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd(), b0 = _mm512_setzero_pd(),
            b1 = _mm512_setzero_pd(), c0 = _mm512_setzero_pd(), c1 = _mm512_setzero_pd(),
            d0 = _mm512_setzero_pd(), d1 = _mm512_setzero_pd();
    for (int d = 0; d < head_dim; d += 16) {
        __mmask16 m = head_dim - d >= 16 ? (__mmask16)0xffff : tail_mask(head_dim - d);
        __m512 qv = _mm512_maskz_loadu_ps(m, qh + d);
        __m512d q0 = low_pd(qv), q1 = high_pd(qv);
        __m512 k = load_kv16(k_cache, f16, base + (size_t)d, m);
        a0 = _mm512_fmadd_pd(q0, low_pd(k), a0);
        a1 = _mm512_fmadd_pd(q1, high_pd(k), a1);
        k = load_kv16(k_cache, f16, base + row + (size_t)d, m);
        b0 = _mm512_fmadd_pd(q0, low_pd(k), b0);
        b1 = _mm512_fmadd_pd(q1, high_pd(k), b1);
        k = load_kv16(k_cache, f16, base + 2 * row + (size_t)d, m);
        c0 = _mm512_fmadd_pd(q0, low_pd(k), c0);
        c1 = _mm512_fmadd_pd(q1, high_pd(k), c1);
        k = load_kv16(k_cache, f16, base + 3 * row + (size_t)d, m);
        d0 = _mm512_fmadd_pd(q0, low_pd(k), d0);
        d1 = _mm512_fmadd_pd(q1, high_pd(k), d1);
    }
    scores[0] = (float)_mm512_reduce_add_pd(_mm512_add_pd(a0, a1)) * scale;
    scores[1] = (float)_mm512_reduce_add_pd(_mm512_add_pd(b0, b1)) * scale;
    scores[2] = (float)_mm512_reduce_add_pd(_mm512_add_pd(c0, c1)) * scale;
    scores[3] = (float)_mm512_reduce_add_pd(_mm512_add_pd(d0, d1)) * scale;
}

static inline __mmask16 dims_mask(int left) {
    return left >= 16 ? (__mmask16)0xffff : left > 0 ? tail_mask(left) : (__mmask16)0;
}

/* 16 floats from two vectors of 8 doubles, stored under mask m. */
static inline void store_pd_pair(float *out, __mmask16 m, __m512d lo, __m512d hi) {
    __m512 v = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)), _mm512_cvtpd_ps(hi), 1);
    _mm512_mask_storeu_ps(out, m, v);
}

static void attention_per_head(float *out, const float *q, const void *k_cache, const void *v_cache,
                               bool kv_f16, int n_heads, int n_kv_heads, int head_dim, int32_t pos,
                               float *scratch, int head_begin, int head_end) {
    int group = n_heads / n_kv_heads;
    size_t row = (size_t)n_kv_heads * (size_t)head_dim;
    float scale = (float)(1.0 / sqrt((double)head_dim));
    int n_pos = pos + 1;
    for (int h = head_begin; h < head_end; h++) {
        const float *qh = q + (size_t)h * (size_t)head_dim;
        size_t kv_offset = (size_t)(h / group) * (size_t)head_dim;
        /* scores: q . k_t for every cached position, four positions per pass */
        bn_prefetch_kv_positions(k_cache, v_cache, kv_f16, row, kv_offset, head_dim, 0,
                                 BN_KV_PREFETCH_POSITIONS, n_pos);
        int t = 0;
        for (; t + 4 <= n_pos; t += 4) {
            bn_prefetch_kv_positions(k_cache, v_cache, kv_f16, row, kv_offset, head_dim,
                                     t + BN_KV_PREFETCH_POSITIONS, t + 4 + BN_KV_PREFETCH_POSITIONS, n_pos);
            scores4(scratch + t, qh, k_cache, kv_f16, (size_t)t * row + kv_offset, row, head_dim,
                    scale);
        }
        for (; t < n_pos; t++)
            scratch[t] = score1(qh, k_cache, kv_f16, (size_t)t * row + kv_offset, head_dim, scale);
        bn_avx512_softmax(scratch, n_pos);
        /* out = sum_t p_t v_t in double (exact products), 64 dims at a time in 8 registers
         * (masked past head_dim: a zero mask loads nothing) */
        float *oh = out + (size_t)h * (size_t)head_dim;
        for (int dd = 0; dd < head_dim; dd += 64) {
            const __mmask16 m0 = dims_mask(head_dim - dd), m1 = dims_mask(head_dim - dd - 16),
                            m2 = dims_mask(head_dim - dd - 32), m3 = dims_mask(head_dim - dd - 48);
            __m512d o0 = _mm512_setzero_pd(), o1 = _mm512_setzero_pd(), o2 = _mm512_setzero_pd(),
                    o3 = _mm512_setzero_pd(), o4 = _mm512_setzero_pd(), o5 = _mm512_setzero_pd(),
                    o6 = _mm512_setzero_pd(), o7 = _mm512_setzero_pd();
            for (int tt = 0; tt < n_pos; tt++) {
                size_t base = (size_t)tt * row + kv_offset + (size_t)dd;
                __m512d p = _mm512_set1_pd((double)scratch[tt]);
                __m512 v = load_kv16(v_cache, kv_f16, base, m0);
                o0 = _mm512_fmadd_pd(p, low_pd(v), o0);
                o1 = _mm512_fmadd_pd(p, high_pd(v), o1);
                v = load_kv16(v_cache, kv_f16, base + 16, m1);
                o2 = _mm512_fmadd_pd(p, low_pd(v), o2);
                o3 = _mm512_fmadd_pd(p, high_pd(v), o3);
                v = load_kv16(v_cache, kv_f16, base + 32, m2);
                o4 = _mm512_fmadd_pd(p, low_pd(v), o4);
                o5 = _mm512_fmadd_pd(p, high_pd(v), o5);
                v = load_kv16(v_cache, kv_f16, base + 48, m3);
                o6 = _mm512_fmadd_pd(p, low_pd(v), o6);
                o7 = _mm512_fmadd_pd(p, high_pd(v), o7);
            }
            store_pd_pair(oh + dd, m0, o0, o1);
            if (m1) store_pd_pair(oh + dd + 16, m1, o2, o3);
            if (m2) store_pd_pair(oh + dd + 32, m2, o4, o5);
            if (m3) store_pd_pair(oh + dd + 48, m3, o6, o7);
        }
    }
}

/* Grouped-query heads that share one KV head, G (2..4) at a time: each K and V row is loaded and
 * converted to double once for all G heads. Every head's sums run in the same order as in
 * attention_per_head (the same two accumulators per score over the dims, the same per-dim sum over
 * the positions), so the results are the same bits, for less conversion work. */
#define GROUP_MAX_HEAD_DIM 256
#define GROUP_MAX_POSITIONS 2048

static inline __attribute__((always_inline)) void attention_group(
    float *out, const float *q, const void *k_cache, const void *v_cache, bool f16, size_t row,
    size_t kv_offset, int head_dim, int n_pos, float scale, const int G, double *qd, float *probs,
    double *probs_d) {
    /* q of the G heads in double (exact), 8 at a time (head_dim is a multiple of 16 here; the
     * scalar loop took 6% of the attention's time at batch 8) */
    for (int j = 0; j < G; j++)
        for (int d = 0; d < head_dim; d += 8)
            _mm512_storeu_pd(qd + j * head_dim + d,
                             _mm512_cvtps_pd(_mm256_loadu_ps(q + (size_t)j * head_dim + d)));
    /* scores, one position at a time for all G heads; the K and V rows come in ahead */
    bn_prefetch_kv_positions(k_cache, v_cache, f16, row, kv_offset, head_dim, 0,
                             BN_KV_PREFETCH_POSITIONS, n_pos);
    for (int t = 0; t < n_pos; t++) {
        const size_t base = (size_t)t * row + kv_offset;
        bn_prefetch_kv_positions(k_cache, v_cache, f16, row, kv_offset, head_dim,
                                 t + BN_KV_PREFETCH_POSITIONS, t + 1 + BN_KV_PREFETCH_POSITIONS, n_pos);
        __m512d a[4][2];
#pragma GCC unroll 4
        for (int j = 0; j < G; j++) a[j][0] = a[j][1] = _mm512_setzero_pd();
        for (int d = 0; d < head_dim; d += 16) {
            __m512 k = load_kv16(k_cache, f16, base + (size_t)d, (__mmask16)0xffff);
            __m512d k0 = low_pd(k), k1 = high_pd(k);
#pragma GCC unroll 4
            for (int j = 0; j < G; j++) {
                a[j][0] = _mm512_fmadd_pd(_mm512_loadu_pd(qd + j * head_dim + d), k0, a[j][0]);
                a[j][1] = _mm512_fmadd_pd(_mm512_loadu_pd(qd + j * head_dim + d + 8), k1, a[j][1]);
            }
        }
#pragma GCC unroll 4
        for (int j = 0; j < G; j++)
            probs[j * n_pos + t] = (float)_mm512_reduce_add_pd(_mm512_add_pd(a[j][0], a[j][1])) * scale;
    }
    /* softmax in float as the reference, then each probability once in double (exact) for the
     * broadcasts below (converting it per position and head took a scalar instruction each) */
    for (int j = 0; j < G; j++) {
        bn_avx512_softmax(probs + j * n_pos, n_pos);
        for (int t = 0; t < n_pos; t += 8) {
            const __mmask8 m = n_pos - t >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (n_pos - t)) - 1u);
            _mm512_mask_storeu_pd(probs_d + j * n_pos + t, m,
                                  _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, probs + j * n_pos + t)));
        }
    }
    /* out = sum_t p_t v_t in double, 16 dims at a time for the G heads (8 accumulators: with 32
     * dims, 16 accumulators, GCC kept them on the stack and stored all of them every position) */
    for (int dd = 0; dd < head_dim; dd += 16) {
        __m512d o[4][2];
#pragma GCC unroll 4
        for (int j = 0; j < G; j++) o[j][0] = o[j][1] = _mm512_setzero_pd();
        for (int t = 0; t < n_pos; t++) {
            const size_t base = (size_t)t * row + kv_offset + (size_t)dd;
            __m512 v0 = load_kv16(v_cache, f16, base, (__mmask16)0xffff);
            __m512d v00 = low_pd(v0), v01 = high_pd(v0);
#pragma GCC unroll 4
            for (int j = 0; j < G; j++) {
                __m512d p = _mm512_set1_pd(probs_d[j * n_pos + t]);
                o[j][0] = _mm512_fmadd_pd(p, v00, o[j][0]);
                o[j][1] = _mm512_fmadd_pd(p, v01, o[j][1]);
            }
        }
#pragma GCC unroll 4
        for (int j = 0; j < G; j++) store_pd_pair(out + (size_t)j * head_dim + dd, (__mmask16)0xffff, o[j][0], o[j][1]);
    }
}

void bn_avx512_attention(float *out, const float *q, const void *k_cache, const void *v_cache,
                         bool kv_f16, int n_heads, int n_kv_heads, int head_dim, int32_t pos,
                         float *scratch, int head_begin, int head_end) {
    const int group = n_heads / n_kv_heads, n_pos = pos + 1;
    if (group < 2 || head_dim % 16 || head_dim > GROUP_MAX_HEAD_DIM || n_pos > GROUP_MAX_POSITIONS) {
        attention_per_head(out, q, k_cache, v_cache, kv_f16, n_heads, n_kv_heads, head_dim, pos,
                           scratch, head_begin, head_end);
        return;
    }
    const size_t row = (size_t)n_kv_heads * (size_t)head_dim;
    const float scale = (float)(1.0 / sqrt((double)head_dim));
    /* 8 KiB of q in double, 32 KiB of score rows and 64 KiB of them in double at most, whatever
     * the batch: small enough for any thread stack */
    double qd[4 * GROUP_MAX_HEAD_DIM];
    float probs[4 * GROUP_MAX_POSITIONS];
    double probs_d[4 * GROUP_MAX_POSITIONS];
    int h = head_begin;
    while (h < head_end) {
        const int kv = h / group, group_end = (kv + 1) * group < head_end ? (kv + 1) * group : head_end;
        const int G = group_end - h < 4 ? group_end - h : 4;
        const size_t kv_offset = (size_t)kv * (size_t)head_dim;
        float *oh = out + (size_t)h * (size_t)head_dim;
        const float *qh = q + (size_t)h * (size_t)head_dim;
        switch (G) {
        case 1:
            attention_per_head(out, q, k_cache, v_cache, kv_f16, n_heads, n_kv_heads, head_dim, pos,
                               scratch, h, h + 1);
            break;
        case 2: attention_group(oh, qh, k_cache, v_cache, kv_f16, row, kv_offset, head_dim, n_pos, scale, 2, qd, probs, probs_d); break;
        case 3: attention_group(oh, qh, k_cache, v_cache, kv_f16, row, kv_offset, head_dim, n_pos, scale, 3, qd, probs, probs_d); break;
        default: attention_group(oh, qh, k_cache, v_cache, kv_f16, row, kv_offset, head_dim, n_pos, scale, 4, qd, probs, probs_d); break;
        }
        h += G;
    }
}
