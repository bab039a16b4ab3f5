/*
 * head_avx512.c: AVX-512 (F/BW/VL + VNNI) LM head kernels; contracts and the exact arithmetic
 * in head_ref.h.
 *
 * Design: F32 / BF16 keep one 16-float accumulator per output, lane = column % 16, which is
 * the F16 head's lane order itself. The quantized types keep ggml's 8 float lanes (256-bit
 * vectors, the arithmetic head_ref.h defines) and form each block's int32 lanes with vpdpbusd,
 * one instruction for the four byte products of a lane where AVX2 needs maddubs + madd; the
 * integers are the same (neither path saturates), so the float steps see the same values.
 * Each row is taken against up to 4 tokens at a time (a weight block decoded once per 4 tokens).
 */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#include "kernels/cpu/head_ref.h"

#include "core/fp16.h"
#include "kernels/cpu/ref_matmul.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define TOKENS 4 /* tokens per pass over a row */

static inline float hsum8(__m256 v) {
    float lanes[BN_HEAD_LANES];
    _mm256_storeu_ps(lanes, v);
    return bn_head_hsum8(lanes);
}

static inline float hsum4(__m128 v) {
    float lanes[4];
    _mm_storeu_ps(lanes, v);
    return bn_head_hsum4(lanes);
}

/* ---- F32 / BF16 ---- */

static inline __attribute__((always_inline)) __m512 load_weights(const void *w, int c, const int bf16) {
    if (bf16) {
        const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + c));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    return _mm512_loadu_ps((const float *)w + c);
}

/* One output from its accumulator: the scalar tail (columns from..cols-1) joins its lanes, then
 * the F16 head's pairwise reduction. */
static float float_finish(__m512 acc, const void *w, const float *x, int from, int cols, int bf16) {
    float lanes[BN_F16_LANES];
    _mm512_storeu_ps(lanes, acc);
    for (int c = from; c < cols; c++) {
        const float wc = bf16 ? bn_bf16_to_fp32(((const uint16_t *)w)[c]) : ((const float *)w)[c];
        lanes[c % BN_F16_LANES] = fmaf(wc, x[c], lanes[c % BN_F16_LANES]);
    }
    return bn_f16_reduce_lanes(lanes);
}

/* One row against n tokens (a constant after inlining). */
static inline __attribute__((always_inline)) void float_row_tokens(float *y, int rows, const void *w,
                                                                   const float *x, const int n,
                                                                   int cols, const int bf16) {
    const int cols16 = cols / 16 * 16;
    __m512 acc[TOKENS];
#pragma GCC unroll 4
    for (int t = 0; t < n; t++) acc[t] = _mm512_setzero_ps();
    for (int c = 0; c < cols16; c += 16) {
        const __m512 wv = load_weights(w, c, bf16);
#pragma GCC unroll 4
        for (int t = 0; t < n; t++)
            acc[t] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + (size_t)t * cols + c), acc[t]);
    }
    for (int t = 0; t < n; t++)
        y[(size_t)t * rows] = float_finish(acc[t], w, x + (size_t)t * cols, cols16, cols, bf16);
}

static inline __attribute__((always_inline)) void float_head(float *y, const bn_head_matrix *m,
                                                             const bn_head_act *act, int row_begin,
                                                             int row_end, const int bf16) {
    const size_t row_elems = (size_t)m->cols;
    for (int r = row_begin; r < row_end; r++) {
        const void *w = bf16 ? (const void *)((const uint16_t *)m->data + (size_t)r * row_elems)
                             : (const void *)((const float *)m->data + (size_t)r * row_elems);
        for (int t0 = 0; t0 < act->n_tokens; t0 += TOKENS) {
            const int n = act->n_tokens - t0 < TOKENS ? act->n_tokens - t0 : TOKENS;
            float *yt = y + (size_t)t0 * m->rows + r;
            const float *xt = act->x + (size_t)t0 * m->cols;
            switch (n) {
            case 1: float_row_tokens(yt, m->rows, w, xt, 1, m->cols, bf16); break;
            case 2: float_row_tokens(yt, m->rows, w, xt, 2, m->cols, bf16); break;
            case 3: float_row_tokens(yt, m->rows, w, xt, 3, m->cols, bf16); break;
            default: float_row_tokens(yt, m->rows, w, xt, 4, m->cols, bf16); break;
            }
        }
    }
}

void bn_avx512_head_f32(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                        int row_end) {
    float_head(y, m, act, row_begin, row_end, 0);
}

void bn_avx512_head_bf16(float *y, const bn_head_matrix *m, const bn_head_act *act,
                         int row_begin, int row_end) {
    float_head(y, m, act, row_begin, row_end, 1);
}

/* ---- quantized types: a row against tokens [t0, t0 + n) ---- */

static inline const void *act_row(const bn_head_act *act, int t) {
    return (const uint8_t *)act->blocks + (size_t)t * act->token_bytes;
}

static void q8_0_row(float *y, int rows, const bn_q8_0_block *w, int nb, const bn_head_act *act,
                     int t0, int n) {
    const __m256i zero = _mm256_setzero_si256();
    __m256 acc[TOKENS];
    for (int t = 0; t < n; t++) acc[t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const __m256i qw = _mm256_loadu_si256((const __m256i *)w[b].qs);
        const __m256i ax = _mm256_sign_epi8(qw, qw);
        const float dw = _cvtsh_ss(w[b].d);
        for (int t = 0; t < n; t++) {
            const bn_q8_0_block *a = (const bn_q8_0_block *)act_row(act, t0 + t) + b;
            const __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)a->qs), qw);
            const __m256 q = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(zero, ax, sy));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * _cvtsh_ss(a->d)), q, acc[t]);
        }
    }
    for (int t = 0; t < n; t++) y[(size_t)(t0 + t) * rows] = hsum8(acc[t]);
}

static void q6_k_row(float *y, int rows, const bn_block_q6_k *w, int nb, const bn_head_act *act,
                     int t0, int n) {
    const __m256i m4 = _mm256_set1_epi8(0xF), m3 = _mm256_set1_epi8(3), m32s = _mm256_set1_epi8(32);
    const __m256i zero = _mm256_setzero_si256();
    __m256 acc[TOKENS];
    for (int t = 0; t < n; t++) acc[t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const bn_block_q6_k *x = &w[b];
        __m256i q6[8], scale[8]; /* per half h and chunk k: index 4h + k */
        for (int h = 0; h < 2; h++) {
            const __m256i bits1 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h));
            const __m256i bits2 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h + 32));
            const __m256i bitsh = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * h));
            const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(bitsh, m3), 4);
            const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bitsh, 2), m3), 4);
            const __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bitsh, 4), m3), 4);
            const __m256i h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bitsh, 6), m3), 4);
            q6[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(bits1, m4), h0);
            q6[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(bits2, m4), h1);
            q6[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits1, 4), m4), h2);
            q6[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits2, 4), m4), h3);
            for (int k = 0; k < 4; k++)
                scale[4 * h + k] = _mm256_setr_m128i(_mm_set1_epi32(x->scales[8 * h + 2 * k]),
                                                     _mm_set1_epi32(x->scales[8 * h + 2 * k + 1]));
        }
        const float dw = _cvtsh_ss(x->d);
        for (int t = 0; t < n; t++) {
            const bn_q8k_block *a = (const bn_q8k_block *)act_row(act, t0 + t) + b;
            __m256i sumi = _mm256_setzero_si256();
            for (int i = 0; i < 8; i++) {
                const __m256i q8 = _mm256_loadu_si256((const __m256i *)(a->qs + 32 * i));
                const __m256i p = _mm256_sub_epi32(_mm256_dpbusd_epi32(zero, q6[i], q8),
                                                   _mm256_dpbusd_epi32(zero, m32s, q8));
                sumi = _mm256_add_epi32(sumi, _mm256_mullo_epi32(scale[i], p));
            }
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(a->d * dw), _mm256_cvtepi32_ps(sumi), acc[t]);
        }
    }
    for (int t = 0; t < n; t++) y[(size_t)(t0 + t) * rows] = hsum8(acc[t]);
}

static void q4_k_row(float *y, int rows, const bn_block_q4_k *w, int nb, const bn_head_act *act,
                     int t0, int n) {
    const __m256i m4 = _mm256_set1_epi8(0xF), zero = _mm256_setzero_si256();
    __m256 acc[TOKENS];
    __m128 acc_min[TOKENS];
    for (int t = 0; t < n; t++) {
        acc[t] = _mm256_setzero_ps();
        acc_min[t] = _mm_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        const bn_block_q4_k *x = &w[b];
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; j++) bn_q4k_scale_min(j, x->scales, &sc[j], &mn[j]);
        uint64_t mn8;
        memcpy(&mn8, mn, 8);
        const __m128i mins = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn8));
        __m256i q4[8]; /* low nibbles of 32-byte group j at 2j, high nibbles at 2j + 1 */
        for (int j = 0; j < 4; j++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * j));
            q4[2 * j] = _mm256_and_si256(bits, m4);
            q4[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
        }
        const float dw = _cvtsh_ss(x->d), dminw = _cvtsh_ss(x->dmin);
        for (int t = 0; t < n; t++) {
            const bn_q8k_block *a = (const bn_q8k_block *)act_row(act, t0 + t) + b;
            const __m128i q8s = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)a->bsums),
                                               _mm_loadu_si128((const __m128i *)(a->bsums + 8)));
            const __m128i prod = _mm_madd_epi16(mins, q8s);
            acc_min[t] = _mm_fmadd_ps(_mm_set1_ps(-a->d * dminw), _mm_cvtepi32_ps(prod), acc_min[t]);
            __m256i sumi = _mm256_setzero_si256();
            for (int i = 0; i < 8; i++) {
                const __m256i q8 = _mm256_loadu_si256((const __m256i *)(a->qs + 32 * i));
                const __m256i p = _mm256_dpbusd_epi32(zero, q4[i], q8);
                sumi = _mm256_add_epi32(sumi, _mm256_mullo_epi32(_mm256_set1_epi32(sc[i]), p));
            }
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(a->d * dw), _mm256_cvtepi32_ps(sumi), acc[t]);
        }
    }
    for (int t = 0; t < n; t++) y[(size_t)(t0 + t) * rows] = hsum8(acc[t]) + hsum4(acc_min[t]);
}

void bn_avx512_head_q8_0(float *y, const bn_head_matrix *m, const bn_head_act *act,
                         int row_begin, int row_end) {
    const int nb = m->cols / BN_Q8_0_ROW_BLOCK;
    for (int r = row_begin; r < row_end; r++)
        for (int t0 = 0; t0 < act->n_tokens; t0 += TOKENS)
            q8_0_row(y + r, m->rows, (const bn_q8_0_block *)m->data + (size_t)r * nb, nb, act, t0,
                     act->n_tokens - t0 < TOKENS ? act->n_tokens - t0 : TOKENS);
}

void bn_avx512_head_q6_k(float *y, const bn_head_matrix *m, const bn_head_act *act,
                         int row_begin, int row_end) {
    const int nb = m->cols / BN_QK_K;
    for (int r = row_begin; r < row_end; r++)
        for (int t0 = 0; t0 < act->n_tokens; t0 += TOKENS)
            q6_k_row(y + r, m->rows, (const bn_block_q6_k *)m->data + (size_t)r * nb, nb, act, t0,
                     act->n_tokens - t0 < TOKENS ? act->n_tokens - t0 : TOKENS);
}

void bn_avx512_head_q4_k(float *y, const bn_head_matrix *m, const bn_head_act *act,
                         int row_begin, int row_end) {
    const int nb = m->cols / BN_QK_K;
    for (int r = row_begin; r < row_end; r++)
        for (int t0 = 0; t0 < act->n_tokens; t0 += TOKENS)
            q4_k_row(y + r, m->rows, (const bn_block_q4_k *)m->data + (size_t)r * nb, nb, act, t0,
                     act->n_tokens - t0 < TOKENS ? act->n_tokens - t0 : TOKENS);
}
