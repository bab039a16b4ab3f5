/*
 * head_avx2.c: AVX2 (+FMA, F16C) LM head kernels; contracts and the exact arithmetic in
 * head_ref.h.
 *
 * Design: ggml's own AVX2 formulation, so each float operation is the one head_ref.h defines,
 * written to keep up with memory (a call streams every weight byte once, far past any cache):
 *   - Prefetch: every 64-byte line of the weights is prefetched HEAD_PREFETCH_BYTES ahead into
 *     L1 (rows are contiguous, so past a row's end is simply the next rows), which the hardware
 *     prefetcher alone did not keep up with.
 *   - F32 / BF16: two 8-float accumulators per (row, token), lanes 0..7 and 8..15 of the F16
 *     head's order, one fused multiply-add per product. That order makes each accumulator one
 *     dependency chain, so a one-token call takes two rows at once (four chains in flight).
 *   - Quantized types: per block, the int32 lanes come from ggml's int16 steps: maddubs of the
 *     unsigned codes with the q8 bytes (Q6_K: minus maddubs(32, q8), the codes' offset; Q8_0:
 *     the sign trick), madd with the scales as int16 words (Q8_0: with ones), then one
 *     _mm256_fmadd_ps per block with the block's float scale; the horizontal sums are ggml's.
 *     A block is decoded 32 codes at a time straight into the products (no decoded block kept
 *     in memory), each chunk's scale words made by one byte shuffle (Q4_K's 6-bit scales
 *     unpacked with ggml's mask steps), so a core decodes faster than memory delivers.
 * Each row is taken against up to 4 tokens at a time, so a weight block is decoded once per 4
 * tokens (the results per token are those of a one-token call: nothing crosses tokens); the
 * token count is a constant in each inlined copy, so the accumulators stay in registers.
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
#ifndef HEAD_PREFETCH_BYTES
#define HEAD_PREFETCH_BYTES 8192
#endif

#define INLINE static inline __attribute__((always_inline))

/* Prefetch of the lines of [p + ahead, p + ahead + bytes), one per 64-byte line. */
INLINE void prefetch_ahead(const void *p, size_t ahead, int bytes) {
    for (int line = 0; line < bytes; line += 64)
        _mm_prefetch((const char *)p + ahead + line, _MM_HINT_T0);
}

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

/* fp16 bits as 8 equal floats. */
INLINE __m256 fp16_splat(uint16_t h) { return _mm256_cvtph_ps(_mm_set1_epi16((short)h)); }

/* ---- F32 / BF16 ---- */

INLINE __m256 load_weights(const void *w, int c, const int bf16) {
    if (bf16) {
        const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + c));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    return _mm256_loadu_ps((const float *)w + c);
}

/* One output from its two accumulators: the scalar tail (columns from..cols-1) joins its lanes,
 * then the F16 head's pairwise reduction. */
static float float_finish(__m256 lo, __m256 hi, const void *w, const float *x, int from, int cols,
                          int bf16) {
    float lanes[BN_F16_LANES];
    _mm256_storeu_ps(lanes, lo);
    _mm256_storeu_ps(lanes + 8, hi);
    for (int c = from; c < cols; c++) {
        const float wc = bf16 ? bn_bf16_to_fp32(((const uint16_t *)w)[c]) : ((const float *)w)[c];
        lanes[c % BN_F16_LANES] = fmaf(wc, x[c], lanes[c % BN_F16_LANES]);
    }
    return bn_f16_reduce_lanes(lanes);
}

/* nr consecutive rows against n tokens (constants after inlining; nr * n <= TOKENS). Each row
 * is its own weight stream, prefetching HEAD_PREFETCH_BYTES past the last row's stream: the nr
 * streams together prefetch each line once. */
INLINE void float_rows(float *y, int rows, const void *w, const int nr, const float *x,
                       const int n, int cols, const int bf16) {
    const int cols16 = cols / 16 * 16, width = bf16 ? 2 : 4; /* bytes per weight */
    const size_t row_bytes = (size_t)cols * width;
    const size_t ahead = (nr - 1) * row_bytes + HEAD_PREFETCH_BYTES;
    __m256 lo[TOKENS], hi[TOKENS]; /* row r, token t at r * n + t */
#pragma GCC unroll 4
    for (int i = 0; i < nr * n; i++) lo[i] = hi[i] = _mm256_setzero_ps();
    for (int c = 0; c < cols16; c += 16) {
#pragma GCC unroll 2
        for (int r = 0; r < nr; r++) {
            const char *wr = (const char *)w + r * row_bytes;
            prefetch_ahead(wr + (size_t)c * width, ahead, 16 * width);
            const __m256 w0 = load_weights(wr, c, bf16), w1 = load_weights(wr, c + 8, bf16);
#pragma GCC unroll 4
            for (int t = 0; t < n; t++) {
                const float *xt = x + (size_t)t * cols + c;
                lo[r * n + t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xt), lo[r * n + t]);
                hi[r * n + t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xt + 8), hi[r * n + t]);
            }
        }
    }
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < n; t++)
            y[(size_t)t * rows + r] = float_finish(lo[r * n + t], hi[r * n + t],
                                                   (const char *)w + r * row_bytes,
                                                   x + (size_t)t * cols, cols16, cols, bf16);
}

INLINE void float_head(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end, const int bf16) {
    const size_t row_bytes = (size_t)m->cols * (bf16 ? 2 : 4);
    int r = row_begin;
    if (act->n_tokens == 1) /* rows in pairs; an odd last row goes below */
        for (; r + 2 <= row_end; r += 2)
            float_rows(y + r, m->rows, (const char *)m->data + r * row_bytes, 2, act->x, 1,
                       m->cols, bf16);
    for (; r < row_end; r++) {
        const void *w = (const char *)m->data + r * row_bytes;
        for (int t0 = 0; t0 < act->n_tokens; t0 += TOKENS) {
            float *yt = y + (size_t)t0 * m->rows + r;
            const float *xt = act->x + (size_t)t0 * m->cols;
            switch (act->n_tokens - t0) {
            case 1: float_rows(yt, m->rows, w, 1, xt, 1, m->cols, bf16); break;
            case 2: float_rows(yt, m->rows, w, 1, xt, 2, m->cols, bf16); break;
            case 3: float_rows(yt, m->rows, w, 1, xt, 3, m->cols, bf16); break;
            default: float_rows(yt, m->rows, w, 1, xt, 4, m->cols, bf16); break;
            }
        }
    }
}

void bn_avx2_head_f32(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                      int row_end) {
    float_head(y, m, act, row_begin, row_end, 0);
}

void bn_avx2_head_bf16(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end) {
    float_head(y, m, act, row_begin, row_end, 1);
}

/* ---- quantized types: a row against tokens [t0, t0 + n), n a constant after inlining ---- */

INLINE __m256i load256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

INLINE void q8_0_row(float *y, int rows, const bn_q8_0_block *w, int nb, const bn_head_act *act,
                     int t0, const int n) {
    const __m256i ones = _mm256_set1_epi16(1);
    const bn_q8_0_block *a[TOKENS];
    __m256 acc[TOKENS];
    for (int t = 0; t < n; t++) {
        a[t] = bn_head_act_row(act, t0 + t);
        acc[t] = _mm256_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        prefetch_ahead(&w[b], HEAD_PREFETCH_BYTES, sizeof w[b]);
        const __m256i qw = load256(w[b].qs);
        const __m256i ax = _mm256_sign_epi8(qw, qw);
        const __m256 dw = fp16_splat(w[b].d);
        for (int t = 0; t < n; t++) {
            const __m256i sy = _mm256_sign_epi8(load256(a[t][b].qs), qw);
            const __m256i dot = _mm256_madd_epi16(ones, _mm256_maddubs_epi16(ax, sy));
            const __m256 d = _mm256_mul_ps(dw, fp16_splat(a[t][b].d));
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc[t]);
        }
    }
    for (int t = 0; t < n; t++) y[(size_t)(t0 + t) * rows] = hsum8(acc[t]);
}

/* Q6_K, chunk by chunk (chunk i = 4h + k, head_ref.h's numbering). The two high bits come from
 * qh by word shifts whose bits crossing into the neighbour byte are masked off. The scales
 * widen to int16 words; half h's eight in both 128-bit lanes, one byte shuffle per chunk gives
 * its scale vector: sc[8h + 2k] in ggml's lanes 0..3, sc[8h + 2k + 1] in lanes 4..7. */
INLINE void q6_k_row(float *y, int rows, const bn_block_q6_k *w, int nb, const bn_head_act *act,
                     int t0, const int n) {
    const __m256i m4 = _mm256_set1_epi8(0xF), m30 = _mm256_set1_epi8(0x30);
    const __m256i m32s = _mm256_set1_epi8(32);
    const bn_q8k_block *a[TOKENS];
    __m256 acc[TOKENS];
    for (int t = 0; t < n; t++) {
        a[t] = bn_head_act_row(act, t0 + t);
        acc[t] = _mm256_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        const bn_block_q6_k *x = &w[b];
        prefetch_ahead(x, HEAD_PREFETCH_BYTES, sizeof *x);
        const __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
        const __m256i halves[2] = {_mm256_permute4x64_epi64(scales, 0x44),
                                   _mm256_permute4x64_epi64(scales, 0xEE)};
        __m256i sumi[TOKENS];
        for (int t = 0; t < n; t++) sumi[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            const int h = i / 4, k = i % 4;
            const __m256i bits = load256(x->ql + 64 * h + 32 * (k & 1));
            const __m256i qh = load256(x->qh + 32 * h);
            const __m256i low = _mm256_and_si256(k < 2 ? bits : _mm256_srli_epi16(bits, 4), m4);
            const __m256i high = k == 0   ? _mm256_slli_epi16(qh, 4)
                                 : k == 1 ? _mm256_slli_epi16(qh, 2)
                                 : k == 2 ? qh
                                          : _mm256_srli_epi16(qh, 2);
            const __m256i q6 = _mm256_or_si256(low, _mm256_and_si256(high, m30));
            const __m256i pick = _mm256_setr_m128i(_mm_set1_epi16((short)(0x0100 + 0x0404 * k)),
                                                   _mm_set1_epi16((short)(0x0302 + 0x0404 * k)));
            const __m256i scale = _mm256_shuffle_epi8(halves[h], pick);
#pragma GCC unroll 4
            for (int t = 0; t < n; t++) {
                const __m256i q8 = load256(a[t][b].qs + 32 * i);
                const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q6, q8),
                                                     _mm256_maddubs_epi16(m32s, q8));
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(scale, p16));
            }
        }
        const __m256 dw = fp16_splat(x->d);
        for (int t = 0; t < n; t++) {
            const __m256 d = _mm256_mul_ps(_mm256_broadcast_ss(&a[t][b].d), dw);
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
    for (int t = 0; t < n; t++) y[(size_t)(t0 + t) * rows] = hsum8(acc[t]);
}

/* Q4_K's 12 packed scale bytes unpacked as bn_q4k_scale_min does (ggml's mask steps, on 64-bit
 * words): bytes 0..3 sc[0..3], 4..7 mn[0..3], 8..11 sc[4..7], 12..15 mn[4..7]. */
INLINE __m128i q4_k_scales_mins(const uint8_t *packed) {
    uint64_t lo;
    uint32_t hi;
    memcpy(&lo, packed, 8);
    memcpy(&hi, packed + 8, 4);
    const uint64_t six = 0x3f3f3f3f3f3f3f3full, four = 0x0f0f0f0f0f0f0f0full;
    const uint64_t top = 0xc0c0c0c0c0c0c0c0ull;
    const uint64_t upper = ((hi | (uint64_t)(hi >> 4) << 32) & four) | ((lo & top) >> 2);
    return _mm_set_epi64x((long long)upper, (long long)(lo & six));
}

/* Q4_K, 32-byte group j by group j: its low nibbles are chunk 2j, its high nibbles chunk 2j + 1.
 * Byte shuffles of the unpacked scales (index byte, then 0xFF for a zero byte) give a chunk's
 * scale in every word and the eight mins as words. */
INLINE void q4_k_row(float *y, int rows, const bn_block_q4_k *w, int nb, const bn_head_act *act,
                     int t0, const int n) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const __m128i min_pick =
        _mm_setr_epi8(4, -1, 5, -1, 6, -1, 7, -1, 12, -1, 13, -1, 14, -1, 15, -1);
    const bn_q8k_block *a[TOKENS];
    __m256 acc[TOKENS];
    __m128 acc_min[TOKENS];
    for (int t = 0; t < n; t++) {
        a[t] = bn_head_act_row(act, t0 + t);
        acc[t] = _mm256_setzero_ps();
        acc_min[t] = _mm_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        const bn_block_q4_k *x = &w[b];
        prefetch_ahead(x, HEAD_PREFETCH_BYTES, sizeof *x);
        const __m128i packed = q4_k_scales_mins(x->scales);
        const __m128i mins = _mm_shuffle_epi8(packed, min_pick);
        const __m256i scales = _mm256_broadcastsi128_si256(packed);
        __m256i sumi[TOKENS];
        for (int t = 0; t < n; t++) sumi[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m256i bits = load256(x->qs + 32 * j);
            const __m256i q4l = _mm256_and_si256(bits, m4);
            const __m256i q4h = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            const int byte_l = 2 * j < 4 ? 2 * j : 2 * j + 4; /* sc[2j] in packed */
            const __m256i scale_l =
                _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(0xFF00 | byte_l)));
            const __m256i scale_h =
                _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(0xFF00 | (byte_l + 1))));
#pragma GCC unroll 4
            for (int t = 0; t < n; t++) {
                const int8_t *q8 = a[t][b].qs + 64 * j;
                const __m256i pl = _mm256_maddubs_epi16(q4l, load256(q8));
                const __m256i ph = _mm256_maddubs_epi16(q4h, load256(q8 + 32));
                const __m256i p = _mm256_add_epi32(_mm256_madd_epi16(scale_l, pl),
                                                   _mm256_madd_epi16(scale_h, ph));
                sumi[t] = _mm256_add_epi32(sumi[t], p);
            }
        }
        /* fl(-a.d * dmin) = fl(a.d * -dmin): negation is exact */
        const __m256 dw = fp16_splat(x->d);
        const __m128 ndmin =
            _mm_xor_ps(_mm256_castps256_ps128(fp16_splat(x->dmin)), _mm_set1_ps(-0.0f));
        for (int t = 0; t < n; t++) {
            const __m128i q8s = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)a[t][b].bsums),
                                               _mm_loadu_si128((const __m128i *)a[t][b].bsums + 1));
            const __m128 dmin = _mm_mul_ps(_mm_broadcast_ss(&a[t][b].d), ndmin);
            const __m128 prod = _mm_cvtepi32_ps(_mm_madd_epi16(mins, q8s));
            acc_min[t] = _mm_fmadd_ps(dmin, prod, acc_min[t]);
            const __m256 d = _mm256_mul_ps(_mm256_broadcast_ss(&a[t][b].d), dw);
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
    for (int t = 0; t < n; t++) y[(size_t)(t0 + t) * rows] = hsum8(acc[t]) + hsum4(acc_min[t]);
}

/* Every row of [row_begin, row_end) against every token, 4 tokens at a time, with row_fn
 * inlined for each token count. */
#define QUANT_HEAD(row_fn, block_type, nb)                                                     \
    for (int r = row_begin; r < row_end; r++) {                                                \
        const block_type *w = (const block_type *)m->data + (size_t)r * (nb);                 \
        for (int t0 = 0; t0 < act->n_tokens; t0 += TOKENS) {                                   \
            switch (act->n_tokens - t0) {                                                      \
            case 1: row_fn(y + r, m->rows, w, nb, act, t0, 1); break;                          \
            case 2: row_fn(y + r, m->rows, w, nb, act, t0, 2); break;                          \
            case 3: row_fn(y + r, m->rows, w, nb, act, t0, 3); break;                          \
            default: row_fn(y + r, m->rows, w, nb, act, t0, 4); break;                         \
            }                                                                                  \
        }                                                                                      \
    }

void bn_avx2_head_q8_0(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end) {
    QUANT_HEAD(q8_0_row, bn_q8_0_block, m->cols / BN_Q8_0_ROW_BLOCK)
}

void bn_avx2_head_q6_k(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end) {
    QUANT_HEAD(q6_k_row, bn_block_q6_k, m->cols / BN_QK_K)
}

void bn_avx2_head_q4_k(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end) {
    QUANT_HEAD(q4_k_row, bn_block_q4_k, m->cols / BN_QK_K)
}
