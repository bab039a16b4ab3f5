/*
 * head_avx512.c: AVX-512 (F/BW/VL + VNNI) LM head kernels; contracts and the exact arithmetic
 * in head_ref.h.
 *
 * Design: the head streams a few hundred MB per token, so each kernel is built to keep up with
 * memory, not just to be correct:
 *   - every weight stream is prefetched HEAD_PREFETCH_BYTES ahead (T0): without it the Q6_K
 *     head read at 6 GB/s on one thread of an Intel Xeon whose stream probe reads 10-14;
 *   - F32 / BF16 keep one 16-float accumulator per output, lane = column % 16 (the F16 head's
 *     order), and take two rows per pass: one row's chain of FMAs waits on each FMA's latency;
 *   - Q8_0 puts rows r and r + 1 in the two halves of one 512-bit vector (each half is one row's
 *     8 ggml lanes), for the same reason;
 *   - Q6_K / Q4_K decode a block into four 512-bit vectors laid out like the Q8_K activations
 *     (values 64v .. 64v + 63), form int16 pair products with vpmaddubsw as ggml's AVX2 code
 *     does, and apply the 16- / 32-value scales with one vpdpwssd (int16 scale words); the
 *     two 256-bit halves of the int32 sums join before the float step.
 * The integers are exact whatever the order (nothing saturates for codes the quantizers write),
 * so the float steps see ggml's values and do ggml's operations in ggml's order. Each row is
 * taken against up to 4 tokens at a time (a weight block decoded once per 4 tokens), the count
 * a constant inside each kernel so that the accumulators stay in registers.
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
/* Bytes ahead of the weight being read that each stream prefetches. One thread of the Xeon
 * above, 131072 x 2048 Q6_K head: 2 KiB 11.2 GB/s, 4 KiB 10.4, 8 KiB 10.6, 16 KiB 11.9,
 * none 7.5 (noisy, shared machine); 8 KiB is also the I2_S GEMV's distance. */
#define HEAD_PREFETCH_BYTES 8192

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

static inline __attribute__((always_inline)) __m512 load_weights(const void *w, int c,
                                                                 const int bf16) {
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

/* Rows r .. r + nr - 1 (nr = 1 or 2, rows row_elems apart) against n tokens (constants after
 * inlining): two rows keep two independent chains of fused multiply-adds in flight, where one
 * row's chain waits for each FMA's latency. */
static inline __attribute__((always_inline)) void
float_rows_tokens(float *y, int rows, const void *w, size_t row_elems, const int nr, const float *x,
                  const int n, int cols, const int bf16) {
    const int cols16 = cols / 16 * 16;
    const size_t elem_bytes = bf16 ? 2 : 4;
    __m512 acc[2][TOKENS];
#pragma GCC unroll 2
    for (int i = 0; i < nr; i++)
#pragma GCC unroll 4
        for (int t = 0; t < n; t++) acc[i][t] = _mm512_setzero_ps();
    for (int c = 0; c < cols16; c += 16) {
#pragma GCC unroll 2
        for (int i = 0; i < nr; i++) {
            const char *wi = (const char *)w + (size_t)i * row_elems * elem_bytes;
            _mm_prefetch(wi + (size_t)c * elem_bytes + HEAD_PREFETCH_BYTES, _MM_HINT_T0);
            const __m512 wv = load_weights(wi, c, bf16);
#pragma GCC unroll 4
            for (int t = 0; t < n; t++)
                acc[i][t] =
                    _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + (size_t)t * cols + c), acc[i][t]);
        }
    }
    for (int i = 0; i < nr; i++) {
        const void *wi = (const char *)w + (size_t)i * row_elems * elem_bytes;
        for (int t = 0; t < n; t++)
            y[(size_t)t * rows + i] =
                float_finish(acc[i][t], wi, x + (size_t)t * cols, cols16, cols, bf16);
    }
}

static inline __attribute__((always_inline)) void float_head(float *y, const bn_head_matrix *m,
                                                             const bn_head_act *act, int row_begin,
                                                             int row_end, const int bf16) {
    const size_t row_elems = (size_t)m->cols;
    for (int r = row_begin; r < row_end; r += 2) {
        const int nr = row_end - r >= 2 ? 2 : 1;
        const void *w = bf16 ? (const void *)((const uint16_t *)m->data + (size_t)r * row_elems)
                             : (const void *)((const float *)m->data + (size_t)r * row_elems);
        for (int t0 = 0; t0 < act->n_tokens; t0 += TOKENS) {
            const int n = act->n_tokens - t0 < TOKENS ? act->n_tokens - t0 : TOKENS;
            float *yt = y + (size_t)t0 * m->rows + r;
            const float *xt = act->x + (size_t)t0 * m->cols;
#define FLOAT_ROWS(NR, N) float_rows_tokens(yt, m->rows, w, row_elems, NR, xt, N, m->cols, bf16)
            if (nr == 2) {
                switch (n) {
                case 1: FLOAT_ROWS(2, 1); break;
                case 2: FLOAT_ROWS(2, 2); break;
                case 3: FLOAT_ROWS(2, 3); break;
                default: FLOAT_ROWS(2, 4); break;
                }
            } else {
                switch (n) {
                case 1: FLOAT_ROWS(1, 1); break;
                case 2: FLOAT_ROWS(1, 2); break;
                case 3: FLOAT_ROWS(1, 3); break;
                default: FLOAT_ROWS(1, 4); break;
                }
            }
#undef FLOAT_ROWS
        }
    }
}

void bn_avx512_head_f32(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                        int row_end) {
    float_head(y, m, act, row_begin, row_end, 0);
}

void bn_avx512_head_bf16(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                         int row_end) {
    float_head(y, m, act, row_begin, row_end, 1);
}

/* ---- quantized types: a row against tokens [t0, t0 + n) ---- */

/* Q8_0, one row against tokens [t0, t0 + n) (the last row of an odd range). */
static inline __attribute__((always_inline)) void q8_0_row_n(float *y, int rows,
                                                             const bn_q8_0_block *w, int nb,
                                                             const bn_head_act *act, int t0,
                                                             const int n) {
    const __m256i zero = _mm256_setzero_si256();
    __m256 acc[TOKENS];
    for (int t = 0; t < n; t++) acc[t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const __m256i qw = _mm256_loadu_si256((const __m256i *)w[b].qs);
        const __m256i ax = _mm256_sign_epi8(qw, qw);
        const float dw = _cvtsh_ss(w[b].d);
#pragma GCC unroll 4
        for (int t = 0; t < n; t++) {
            const bn_q8_0_block *a = (const bn_q8_0_block *)bn_head_act_row(act, t0 + t) + b;
            const __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)a->qs), qw);
            const __m256 q = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(zero, ax, sy));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * _cvtsh_ss(a->d)), q, acc[t]);
        }
    }
    for (int t = 0; t < n; t++) y[(size_t)(t0 + t) * rows] = hsum8(acc[t]);
}

/* Q8_0, rows r and r + 1 (blocks nb apart) in one 512-bit vector: lanes 0..7 are row r's 8
 * float lanes, 8..15 row r + 1's, so one instruction does each step for both rows and the two
 * chains of per-block FMAs overlap. The sign trick without vpsignb: |w| (vpabsb) times a
 * negated (wrapping) where w < 0; where w = 0 the product is 0 whatever a is. */
static inline __attribute__((always_inline)) void q8_0_pair_n(float *y, int rows,
                                                              const bn_q8_0_block *w, int nb,
                                                              const bn_head_act *act, int t0,
                                                              const int n) {
    __m512 acc[TOKENS];
    for (int t = 0; t < n; t++) acc[t] = _mm512_setzero_ps();
    const bn_q8_0_block *w1 = w + nb;
    for (int b = 0; b < nb; b++) {
        _mm_prefetch((const char *)&w[b] + HEAD_PREFETCH_BYTES, _MM_HINT_T0);
        _mm_prefetch((const char *)&w1[b] + HEAD_PREFETCH_BYTES, _MM_HINT_T0);
        const __m512i qw =
            _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)w[b].qs)),
                               _mm256_loadu_si256((const __m256i *)w1[b].qs), 1);
        const __m512i ax = _mm512_abs_epi8(qw);
        const __mmask64 negative = _mm512_movepi8_mask(qw);
        const float dw0 = _cvtsh_ss(w[b].d), dw1 = _cvtsh_ss(w1[b].d);
#pragma GCC unroll 4
        for (int t = 0; t < n; t++) {
            const bn_q8_0_block *a = (const bn_q8_0_block *)bn_head_act_row(act, t0 + t) + b;
            const __m512i qa = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)a->qs));
            const __m512i sy = _mm512_mask_sub_epi8(qa, negative, _mm512_setzero_si512(), qa);
            const __m512 q =
                _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ax, sy));
            const float da = _cvtsh_ss(a->d);
            const __m512 d =
                _mm512_insertf32x8(_mm512_set1_ps(dw0 * da), _mm256_set1_ps(dw1 * da), 1);
            acc[t] = _mm512_fmadd_ps(d, q, acc[t]);
        }
    }
    for (int t = 0; t < n; t++) {
        y[(size_t)(t0 + t) * rows] = hsum8(_mm512_castps512_ps256(acc[t]));
        y[(size_t)(t0 + t) * rows + 1] = hsum8(_mm512_extractf32x8_ps(acc[t], 1));
    }
}

/* Q6_K: a block's 256 codes in four 512-bit vectors, vector v holding values 64v .. 64v + 63
 * in order: vector 2h is chunks (h, 0) and (h, 1), the low nibbles of ql[64h .. 64h + 63];
 * vector 2h + 1 is chunks (h, 2) and (h, 3), their high nibbles; the two high bits come from
 * qh[32h .. 32h + 31], broadcast to both 256-bit halves and shifted per half (word shifts: the
 * bits that cross into the neighbour byte are masked off). Dword i of vector v is then ggml's
 * lane i % 8 of chunk 2v + i / 8, and its four bytes share scale 4v + i / 4. Per token:
 * p = maddubs(q6, q8) - maddubs(32, q8) (ggml's int16 steps; neither saturates), then
 * vpdpwssd with the scales as words; the two halves of the int32 sums join before the float
 * step. */
static inline __attribute__((always_inline)) void q6_k_row_n(float *y, int rows,
                                                             const bn_block_q6_k *w, int nb,
                                                             const bn_head_act *act, int t0,
                                                             const int n) {
    const __m512i m4 = _mm512_set1_epi8(0xF), m30 = _mm512_set1_epi8(0x30);
    const __m512i m32s = _mm512_set1_epi8(32);
    /* per-half shift counts (16 words each): high bits of chunks 0 | 1 and of 2 | 3 */
    const __m512i shift_lo = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i shift_hi = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    __m512i scale_index[4]; /* word w of vector v takes scale 4v + w / 8 */
    for (int v = 0; v < 4; v++) {
        int16_t index[32];
        for (int i = 0; i < 32; i++) index[i] = (int16_t)(4 * v + i / 8);
        scale_index[v] = _mm512_loadu_si512(index);
    }
    __m256 acc[TOKENS];
    for (int t = 0; t < n; t++) acc[t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const bn_block_q6_k *x = &w[b];
        for (int line = 0; line < (int)sizeof *x; line += 64)
            _mm_prefetch((const char *)x + HEAD_PREFETCH_BYTES + line, _MM_HINT_T0);
        __m512i q6[4], scale[4];
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m512i bits = _mm512_loadu_si512(x->ql + 64 * h);
            const __m512i high =
                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qh + 32 * h)));
            const __m512i high_lo = _mm512_and_si512(_mm512_sllv_epi16(high, shift_lo), m30);
            const __m512i high_hi = _mm512_and_si512(_mm512_srlv_epi16(high, shift_hi), m30);
            /* (a & m4) | c: ternary-logic table 0xEA */
            q6[2 * h] = _mm512_ternarylogic_epi32(bits, m4, high_lo, 0xEA);
            q6[2 * h + 1] =
                _mm512_ternarylogic_epi32(_mm512_srli_epi16(bits, 4), m4, high_hi, 0xEA);
        }
        const __m512i scales16 = _mm512_castsi256_si512(
            _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales)));
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) scale[v] = _mm512_permutexvar_epi16(scale_index[v], scales16);
        const float dw = _cvtsh_ss(x->d);
#pragma GCC unroll 4
        for (int t = 0; t < n; t++) {
            const bn_q8k_block *a = (const bn_q8k_block *)bn_head_act_row(act, t0 + t) + b;
            __m512i sumi = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) {
                const __m512i q8 = _mm512_loadu_si512(a->qs + 64 * v);
                const __m512i p = _mm512_sub_epi16(_mm512_maddubs_epi16(q6[v], q8),
                                                   _mm512_maddubs_epi16(m32s, q8));
                sumi = _mm512_dpwssd_epi32(sumi, p, scale[v]);
            }
            const __m256i lanes =
                _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(a->d * dw), _mm256_cvtepi32_ps(lanes), acc[t]);
        }
    }
    for (int t = 0; t < n; t++) y[(size_t)(t0 + t) * rows] = hsum8(acc[t]);
}

/* Q4_K's 6-bit scales and mins as 16 int16 words (scales 0..7, then mins 0..7): the values
 * of bn_q4k_scale_min, unpacked four bytes at a time in one 128-bit vector. The block's first
 * 16 bytes are d, dmin and the 12 packed bytes P0 | P1 | P2 (dwords 1..3): scales 0..3 =
 * P0 & 63, mins 0..3 = P1 & 63, scales 4..7 = (P2 & 15) | (P0 >> 6) << 4, mins 4..7 =
 * (P2 >> 4) | (P1 >> 6) << 4 (per byte; the word shifts below mask off what crosses bytes). */
static inline __m256i q4_k_scales_mins(const bn_block_q4_k *x) {
    const __m128i head = _mm_loadu_si128((const __m128i *)x);
    const __m128i p01 = _mm_shuffle_epi32(head, _MM_SHUFFLE(2, 2, 1, 1)); /* P0 P0 P1 P1 */
    const __m128i p2 = _mm_srlv_epi32(_mm_shuffle_epi32(head, _MM_SHUFFLE(3, 3, 3, 3)),
                                      _mm_setr_epi32(0, 0, 0, 4));
    const __m128i low6 = _mm_and_si128(p01, _mm_set1_epi8(63));
    const __m128i high = _mm_or_si128(_mm_and_si128(p2, _mm_set1_epi8(15)),
                                      _mm_and_si128(_mm_srli_epi32(p01, 2), _mm_set1_epi8(0x30)));
    return _mm256_cvtepu8_epi16(_mm_blend_epi32(low6, high, 0xA));
}

/* Q4_K: the codes of 32-byte group j in one 512-bit vector, low nibbles (values 64j ..
 * 64j + 31, scale 2j) in the lower half and high nibbles (64j + 32 .., scale 2j + 1) in the
 * upper, so dword i is ggml's lane i % 8 of one of its 32-byte steps and the vector lines up
 * with a->qs + 64j. Per token: maddubs (int16 pairs, no saturation: 2 * 15 * 128) and vpdpwssd
 * with the scales as words; the min term as ggml (hadd of bsums, madd with the mins). */
static inline __attribute__((always_inline)) void q4_k_row_n(float *y, int rows,
                                                             const bn_block_q4_k *w, int nb,
                                                             const bn_head_act *act, int t0,
                                                             const int n) {
    const __m512i m4 = _mm512_set1_epi8(0xF);
    const __m512i nibble_shift =
        _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    __m512i scale_index[4]; /* word w of vector j takes scale 2j + w / 16 */
    for (int j = 0; j < 4; j++) {
        int16_t index[32];
        for (int i = 0; i < 32; i++) index[i] = (int16_t)(2 * j + i / 16);
        scale_index[j] = _mm512_loadu_si512(index);
    }
    __m256 acc[TOKENS];
    __m128 acc_min[TOKENS];
    for (int t = 0; t < n; t++) {
        acc[t] = _mm256_setzero_ps();
        acc_min[t] = _mm_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        const bn_block_q4_k *x = &w[b];
        for (int line = 0; line < (int)sizeof *x; line += 64)
            _mm_prefetch((const char *)x + HEAD_PREFETCH_BYTES + line, _MM_HINT_T0);
        const __m256i scales_mins = q4_k_scales_mins(x);
        const __m128i mins = _mm256_extracti128_si256(scales_mins, 1);
        const __m512i scales16 = _mm512_castsi256_si512(scales_mins);
        __m512i q4[4], scale[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m512i bits =
                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qs + 32 * j)));
            q4[j] = _mm512_and_si512(_mm512_srlv_epi16(bits, nibble_shift), m4);
            scale[j] = _mm512_permutexvar_epi16(scale_index[j], scales16);
        }
        const float dw = _cvtsh_ss(x->d), dminw = _cvtsh_ss(x->dmin);
#pragma GCC unroll 4
        for (int t = 0; t < n; t++) {
            const bn_q8k_block *a = (const bn_q8k_block *)bn_head_act_row(act, t0 + t) + b;
            const __m128i q8s = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)a->bsums),
                                               _mm_loadu_si128((const __m128i *)(a->bsums + 8)));
            const __m128i prod = _mm_madd_epi16(mins, q8s);
            acc_min[t] =
                _mm_fmadd_ps(_mm_set1_ps(-a->d * dminw), _mm_cvtepi32_ps(prod), acc_min[t]);
            __m512i sumi = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m512i q8 = _mm512_loadu_si512(a->qs + 64 * j);
                sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(q4[j], q8), scale[j]);
            }
            const __m256i lanes =
                _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(a->d * dw), _mm256_cvtepi32_ps(lanes), acc[t]);
        }
    }
    for (int t = 0; t < n; t++) y[(size_t)(t0 + t) * rows] = hsum8(acc[t]) + hsum4(acc_min[t]);
}

/* Each quantized kernel with its token count a constant (1 .. TOKENS): the token loops unroll
 * and the accumulators stay in registers. */
#define TOKEN_DISPATCH(name, block_type)                                                           \
    static void name(float *y, int rows, const block_type *w, int nb, const bn_head_act *act,      \
                     int t0, int n) {                                                              \
        switch (n) {                                                                               \
        case 1: name##_n(y, rows, w, nb, act, t0, 1); break;                                       \
        case 2: name##_n(y, rows, w, nb, act, t0, 2); break;                                       \
        case 3: name##_n(y, rows, w, nb, act, t0, 3); break;                                       \
        default: name##_n(y, rows, w, nb, act, t0, TOKENS); break;                                 \
        }                                                                                          \
    }
TOKEN_DISPATCH(q8_0_row, bn_q8_0_block)
TOKEN_DISPATCH(q8_0_pair, bn_q8_0_block)
TOKEN_DISPATCH(q6_k_row, bn_block_q6_k)
TOKEN_DISPATCH(q4_k_row, bn_block_q4_k)
#undef TOKEN_DISPATCH

void bn_avx512_head_q8_0(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                         int row_end) {
    const int nb = m->cols / BN_Q8_0_ROW_BLOCK;
    for (int r = row_begin; r < row_end; r += 2) {
        const bn_q8_0_block *w = (const bn_q8_0_block *)m->data + (size_t)r * nb;
        for (int t0 = 0; t0 < act->n_tokens; t0 += TOKENS) {
            const int n = act->n_tokens - t0 < TOKENS ? act->n_tokens - t0 : TOKENS;
            if (row_end - r >= 2)
                q8_0_pair(y + r, m->rows, w, nb, act, t0, n);
            else
                q8_0_row(y + r, m->rows, w, nb, act, t0, n);
        }
    }
}

void bn_avx512_head_q6_k(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                         int row_end) {
    const int nb = m->cols / BN_QK_K;
    for (int r = row_begin; r < row_end; r++)
        for (int t0 = 0; t0 < act->n_tokens; t0 += TOKENS)
            q6_k_row(y + r, m->rows, (const bn_block_q6_k *)m->data + (size_t)r * nb, nb, act, t0,
                     act->n_tokens - t0 < TOKENS ? act->n_tokens - t0 : TOKENS);
}

void bn_avx512_head_q4_k(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                         int row_end) {
    const int nb = m->cols / BN_QK_K;
    for (int r = row_begin; r < row_end; r++)
        for (int t0 = 0; t0 < act->n_tokens; t0 += TOKENS)
            q4_k_row(y + r, m->rows, (const bn_block_q4_k *)m->data + (size_t)r * nb, nb, act, t0,
                     act->n_tokens - t0 < TOKENS ? act->n_tokens - t0 : TOKENS);
}
