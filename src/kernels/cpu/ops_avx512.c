/*
 * ops_avx512.c: AVX-512 paths of the ops where 16 lanes and masked tails pay: RMSNorm, softmax
 * and attention (above all over the F16 KV cache, converted 16 values per instruction). Other
 * ops run their AVX2 kernel on AVX-512 CPUs. Semantics and accuracy as in ops_avx2.c: the same
 * float formulas as the reference, reductions in lane order, exp accurate to about 2 ulp.
 */
#include "kernels/cpu/ops_isa.h"

#include <immintrin.h>
#include <math.h>

static inline __mmask16 tail_mask(int n) { return (__mmask16)((1u << n) - 1u); }

/* exp(x) for 16 floats: the reduction and Taylor polynomial of ops_avx2.c's exp8; scalef applies
 * 2^n with one rounding (subnormal results included) and overflows to +inf. NaN stays NaN. */
static inline __m512 exp16(__m512 x) {
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606820309417e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512 result = _mm512_scalef_ps(p, n);
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_mov_ps(result, nan, x);
}

void bn_avx512_rmsnorm(float *out, const float *x, const float *weight, int n_tokens, int cols,
                       float eps) {
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
    __m512 vm = _mm512_set1_ps(max);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm));
        e = _mm512_maskz_mov_ps(m, e);
        _mm512_mask_storeu_ps(x + i, m, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(
            s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
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

/* Scores of `count` (1..4) consecutive positions from row offset base: one accumulator chain
 * per position over head_dim (masked tail), so grouping does not change any score. */
static inline void scores4(float *scores, const float *qh, const void *k_cache, bool f16,
                           size_t base, size_t row, int count, int head_dim, __mmask16 last,
                           float scale) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    if (count == 4) {
        for (int d = 0; d < head_dim; d += 16) {
            __mmask16 m = head_dim - d >= 16 ? (__mmask16)0xffff : last;
            __m512 qv = _mm512_maskz_loadu_ps(m, qh + d);
            acc[0] = _mm512_fmadd_ps(qv, load_kv16(k_cache, f16, base + (size_t)d, m), acc[0]);
            acc[1] =
                _mm512_fmadd_ps(qv, load_kv16(k_cache, f16, base + row + (size_t)d, m), acc[1]);
            acc[2] =
                _mm512_fmadd_ps(qv, load_kv16(k_cache, f16, base + 2 * row + (size_t)d, m), acc[2]);
            acc[3] =
                _mm512_fmadd_ps(qv, load_kv16(k_cache, f16, base + 3 * row + (size_t)d, m), acc[3]);
        }
    } else {
        for (int j = 0; j < count; j++)
            for (int d = 0; d < head_dim; d += 16) {
                __mmask16 m = head_dim - d >= 16 ? (__mmask16)0xffff : last;
                acc[j] = _mm512_fmadd_ps(
                    _mm512_maskz_loadu_ps(m, qh + d),
                    load_kv16(k_cache, f16, base + (size_t)j * row + (size_t)d, m), acc[j]);
            }
    }
    for (int j = 0; j < count; j++) scores[j] = _mm512_reduce_add_ps(acc[j]) * scale;
}

void bn_avx512_attention(float *out, const float *q, const void *k_cache, const void *v_cache,
                         bool kv_f16, int n_heads, int n_kv_heads, int head_dim, int32_t pos,
                         float *scratch, int head_begin, int head_end) {
    int group = n_heads / n_kv_heads;
    size_t row = (size_t)n_kv_heads * (size_t)head_dim;
    float scale = (float)(1.0 / sqrt((double)head_dim));
    int n_pos = pos + 1;
    const __mmask16 full = 0xffff;
    __mmask16 last = (head_dim & 15) ? tail_mask(head_dim & 15) : full;
    for (int h = head_begin; h < head_end; h++) {
        const float *qh = q + (size_t)h * (size_t)head_dim;
        size_t kv_offset = (size_t)(h / group) * (size_t)head_dim;
        /* scores: q . k_t for every cached position, four positions per pass */
        for (int t = 0; t < n_pos; t += 4)
            scores4(scratch + t, qh, k_cache, kv_f16, (size_t)t * row + kv_offset, row,
                    n_pos - t < 4 ? n_pos - t : 4, head_dim, last, scale);
        bn_avx512_softmax(scratch, n_pos);
        /* out = sum_t p_t v_t, 64 dims at a time in registers, then 16 (masked); every lane
         * sums over t in order */
        float *oh = out + (size_t)h * (size_t)head_dim;
        int d0 = 0;
        for (; d0 + 64 <= head_dim; d0 += 64) {
            __m512 o0 = _mm512_setzero_ps(), o1 = _mm512_setzero_ps();
            __m512 o2 = _mm512_setzero_ps(), o3 = _mm512_setzero_ps();
            for (int t = 0; t < n_pos; t++) {
                size_t base = (size_t)t * row + kv_offset + (size_t)d0;
                __m512 p = _mm512_set1_ps(scratch[t]);
                o0 = _mm512_fmadd_ps(p, load_kv16(v_cache, kv_f16, base, full), o0);
                o1 = _mm512_fmadd_ps(p, load_kv16(v_cache, kv_f16, base + 16, full), o1);
                o2 = _mm512_fmadd_ps(p, load_kv16(v_cache, kv_f16, base + 32, full), o2);
                o3 = _mm512_fmadd_ps(p, load_kv16(v_cache, kv_f16, base + 48, full), o3);
            }
            _mm512_storeu_ps(oh + d0, o0);
            _mm512_storeu_ps(oh + d0 + 16, o1);
            _mm512_storeu_ps(oh + d0 + 32, o2);
            _mm512_storeu_ps(oh + d0 + 48, o3);
        }
        for (; d0 < head_dim; d0 += 16) {
            __mmask16 m = head_dim - d0 >= 16 ? full : last;
            __m512 o0 = _mm512_setzero_ps();
            for (int t = 0; t < n_pos; t++)
                o0 = _mm512_fmadd_ps(
                    _mm512_set1_ps(scratch[t]),
                    load_kv16(v_cache, kv_f16, (size_t)t * row + kv_offset + (size_t)d0, m), o0);
            _mm512_mask_storeu_ps(oh + d0, m, o0);
        }
    }
}
