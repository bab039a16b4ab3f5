/*
 * matmul_avx2.c: AVX2 (+FMA, F16C) matrix kernels; contracts in ref_matmul.h / matmul_isa.h.
 *
 * Ternary: codes are used unsigned (0, 1, 2 = w + 1) as the u8 operand of maddubs against the
 * int8 activations, and the activation sum is subtracted afterwards (spec section 4). An I2_S
 * block is one 32-byte load whose 2-bit field n (bits 7-2n..6-2n) lines up with activations
 * 32n..32n+31, so shifts and a mask give four code vectors; TQ2_0 is the same per half block
 * with field n at bits 2n+1..2n; TQ1_0 is decoded per block to 256 codes (base-3 digits by a
 * byte multiply and two unsigned compares). maddubs pairs stay within int16 (2 * 2 * 128 per
 * pair, four pairs per block). GEMV runs over the I2S_TILE8 layout one tile of 8 rows at a time
 * (one sequential stream, software prefetch) sharing the activation loads; GEMM reuses each
 * decoded weight block across 4 tokens, token tiles outside and rows inside.
 *
 * F16: 16 lanes (two 8-float accumulators) per output, one fused multiply-add per product, as
 * the reference defines; GEMV reads two sequential row streams with a short prefetch, GEMM converts a
 * weight chunk once per 4 tokens.
 * Int8: maddubs(|q|, w * sign(q)) (weights are within -127..127, so negation is exact).
 */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#include "kernels/cpu/matmul_isa.h"

#include "quant/quant_format.h"
#include "quant/ternary.h"

#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

/* Bytes ahead of the current load (8-16 KiB is the plateau on the 2B-4T shapes). */
#define PREFETCH_DISTANCE 12288

static inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* ---- activation quantization ---- */

void bn_avx2_quantize_activations(int8_t *q, float *scales, int32_t *sums, const float *x,
                                  int n_tokens, int cols) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int t = 0; t < n_tokens; t++) {
        const float *xt = x + (size_t)t * cols;
        int8_t *qt = q + (size_t)t * cols;
        __m256 vmax = _mm256_setzero_ps();
        int c = 0;
        /* max(abs, acc) keeps acc for a NaN element, as the reference's `a > max` does */
        for (; c + 8 <= cols; c += 8)
            vmax = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(xt + c), abs_mask), vmax);
        float lanes[8];
        _mm256_storeu_ps(lanes, vmax);
        float max_abs = 0.0f;
        for (int i = 0; i < 8; i++)
            if (lanes[i] > max_abs) max_abs = lanes[i];
        for (; c < cols; c++)
            if (fabsf(xt[c]) > max_abs) max_abs = fabsf(xt[c]);
        double denominator = max_abs > 1e-5f ? (double)max_abs : 1e-5;
        float scale = (float)(127.0 / denominator);
        const __m256 vs = _mm256_set1_ps(scale);
        c = 0;
        for (; c + 32 <= cols; c += 32) {
            __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xt + c), vs));
            __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xt + c + 8), vs));
            __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xt + c + 16), vs));
            __m256i e = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xt + c + 24), vs));
            __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(d, e));
            _mm256_storeu_si256((__m256i *)(qt + c), _mm256_permutevar8x32_epi32(packed, order));
        }
        for (; c < cols; c++) {
            float v = nearbyintf(xt[c] * scale);
            qt[c] = (int8_t)(!(v >= -128.0f) ? -128 : v > 127.0f ? 127 : (int)v);
        }
        int32_t sum = 0;
        for (c = 0; c < cols; c++) sum += qt[c];
        scales[t] = scale;
        sums[t] = sum;
    }
}

/* ---- ternary ---- */

/* int16 partial dot of one I2_S block (32 bytes at w) with activations x[0..127]. */
static inline __m256i i2s_block(__m256i w, const int8_t *x) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(w, 6), m3);
    __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(w, 4), m3);
    __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(w, 2), m3);
    __m256i c3 = _mm256_and_si256(w, m3);
    __m256i s0 = _mm256_maddubs_epi16(c0, _mm256_loadu_si256((const __m256i *)x));
    __m256i s1 = _mm256_maddubs_epi16(c1, _mm256_loadu_si256((const __m256i *)(x + 32)));
    __m256i s2 = _mm256_maddubs_epi16(c2, _mm256_loadu_si256((const __m256i *)(x + 64)));
    __m256i s3 = _mm256_maddubs_epi16(c3, _mm256_loadu_si256((const __m256i *)(x + 96)));
    return _mm256_add_epi16(_mm256_add_epi16(s0, s1), _mm256_add_epi16(s2, s3));
}

/* GEMV over one full tile of 8 rows (layout I2S_TILE8, one sequential stream); each block's
 * activation registers feed 8 rows. Raw sums (codes * q) per row. */
static void i2s_gemv_tile(int32_t raw[BN_I2S_TILE_ROWS], const uint8_t *tile, const int8_t *x,
                          int cols) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[BN_I2S_TILE_ROWS];
#pragma GCC unroll 8
    for (int r = 0; r < BN_I2S_TILE_ROWS; r++) acc[r] = _mm256_setzero_si256();
    const int pairs = cols / 256;
    for (int p = 0; p < pairs; p++) {
        const uint8_t *wp = tile + (size_t)p * 64 * BN_I2S_TILE_ROWS;
        for (int h = 0; h < 2; h++) {
            const int8_t *xb = x + (size_t)p * 256 + 128 * h;
#pragma GCC unroll 8
            for (int r = 0; r < BN_I2S_TILE_ROWS; r++) {
                const uint8_t *wb = wp + 64 * r + 32 * h;
                if (h == 0) _mm_prefetch((const char *)(wb + PREFETCH_DISTANCE), _MM_HINT_T0);
                __m256i s = i2s_block(_mm256_loadu_si256((const __m256i *)wb), xb);
                acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(s, ones));
            }
        }
    }
    const uint8_t *tails = tile + (size_t)pairs * 64 * BN_I2S_TILE_ROWS;
    for (int r = 0; r < BN_I2S_TILE_ROWS; r++) {
        if (cols % 256) {
            __m256i s = i2s_block(_mm256_loadu_si256((const __m256i *)(tails + 32 * r)),
                                  x + (size_t)pairs * 256);
            acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(s, ones));
        }
        raw[r] = hsum_epi32(acc[r]);
    }
}

/* One row (any layout) against up to 4 tokens (GEMM tile): codes decoded once per block. Inlined
 * with a constant n (see i2s_row_tokens) so the accumulators stay in registers. */
static inline __attribute__((always_inline)) void i2s_row_tokens_n(int32_t *raw, bn_i2s_row w,
                                                                   const int8_t *x, const int n,
                                                                   int cols) {
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
    const int blocks = cols / BN_I2S_BLOCK;
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = b / 2 < cols / 256
                                   ? w.first + (size_t)(b / 2) * w.pair_stride + 32 * (b % 2)
                                   : w.tail;
        __m256i packed = _mm256_loadu_si256((const __m256i *)block);
        __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(packed, 6), m3);
        __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(packed, 4), m3);
        __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(packed, 2), m3);
        __m256i c3 = _mm256_and_si256(packed, m3);
        for (int t = 0; t < n; t++) {
            const int8_t *xb = x + (size_t)t * cols + (size_t)b * BN_I2S_BLOCK;
            __m256i s0 = _mm256_maddubs_epi16(c0, _mm256_loadu_si256((const __m256i *)xb));
            __m256i s1 = _mm256_maddubs_epi16(c1, _mm256_loadu_si256((const __m256i *)(xb + 32)));
            __m256i s2 = _mm256_maddubs_epi16(c2, _mm256_loadu_si256((const __m256i *)(xb + 64)));
            __m256i s3 = _mm256_maddubs_epi16(c3, _mm256_loadu_si256((const __m256i *)(xb + 96)));
            __m256i s = _mm256_add_epi16(_mm256_add_epi16(s0, s1), _mm256_add_epi16(s2, s3));
            acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(s, ones));
        }
    }
    for (int t = 0; t < n; t++) raw[t] = hsum_epi32(acc[t]);
}

static void i2s_row_tokens(int32_t *raw, bn_i2s_row w, const int8_t *x, int n, int cols) {
    switch (n) {
    case 1: i2s_row_tokens_n(raw, w, x, 1, cols); break;
    case 2: i2s_row_tokens_n(raw, w, x, 2, cols); break;
    case 3: i2s_row_tokens_n(raw, w, x, 3, cols); break;
    default: i2s_row_tokens_n(raw, w, x, 4, cols); break;
    }
}

static void i2s_sums(int32_t *out, const bn_ternary_matrix *m, const bn_act_view *act,
                     int row_begin, int row_end) {
    const int n_tokens = act->n_tokens;
    int r = row_begin;
    /* One token, or a decode batch of a few: the GEMV's sequential tile sweep once per token (the
     * first sweep streams the tile, the others find it in L1). The per-row path below reads a
     * tiled matrix with a stride and no prefetch: two tokens that way took longer than two GEMVs. */
    if (n_tokens <= 8 && m->layout == BN_LAYOUT_I2S_TILE8 && r % BN_I2S_TILE_ROWS == 0) {
        for (; r + BN_I2S_TILE_ROWS <= row_end; r += BN_I2S_TILE_ROWS)
            for (int t = 0; t < n_tokens; t++) {
                int32_t raw[BN_I2S_TILE_ROWS];
                i2s_gemv_tile(raw, bn_i2s_row_at(m, r).first, act->q + (size_t)t * m->cols, m->cols);
                for (int i = 0; i < BN_I2S_TILE_ROWS; i++)
                    out[(size_t)(r - row_begin + i) * n_tokens + t] = raw[i] - act->sums[t];
            }
    }
    /* Token tiles outside, rows inside: the tile's activations and the chunk's rows stay in
     * L1/L2 while every row of the chunk passes over them. */
    const int first_row = r;
    for (int t0 = 0; t0 < n_tokens; t0 += 4) {
        int n = n_tokens - t0 < 4 ? n_tokens - t0 : 4;
        for (r = first_row; r < row_end; r++) {
            /* the first token tile streams the tiled weights in a strided order: prefetch the
             * tile two ahead, an eighth per row (later token tiles find the chunk in L1/L2) */
            if (t0 == 0 && m->layout == BN_LAYOUT_I2S_TILE8) {
                const size_t tile_bytes = (size_t)BN_I2S_TILE_ROWS * (size_t)(m->cols / 4);
                const uint8_t *ahead = m->data + (size_t)(r - r % BN_I2S_TILE_ROWS) * (size_t)(m->cols / 4) +
                                       2 * tile_bytes + (size_t)(r % BN_I2S_TILE_ROWS) * (tile_bytes / 8);
                for (size_t b = 0; b < tile_bytes / 8; b += 64) _mm_prefetch((const char *)(ahead + b), _MM_HINT_T0);
            }
            int32_t raw[4];
            i2s_row_tokens(raw, bn_i2s_row_at(m, r), act->q + (size_t)t0 * m->cols, n, m->cols);
            for (int t = 0; t < n; t++)
                out[(size_t)(r - row_begin) * n_tokens + t0 + t] = raw[t] - act->sums[t0 + t];
        }
    }
}

/* Multiplies every byte by k modulo 256. */
static inline __m256i mul_bytes(__m256i v, int k) {
    const __m256i vk = _mm256_set1_epi16((short)k), low = _mm256_set1_epi16(0x00ff);
    __m256i even = _mm256_and_si256(_mm256_mullo_epi16(v, vk), low);
    __m256i odd = _mm256_slli_epi16(_mm256_mullo_epi16(_mm256_srli_epi16(v, 8), vk), 8);
    return _mm256_or_si256(even, odd);
}

/* Base-3 digit of scaled bytes: (t * 3) >> 8 = (t >= 86) + (t >= 171). */
static inline __m256i tq1_digit(__m256i t) {
    __m256i ge86 = _mm256_cmpeq_epi8(_mm256_max_epu8(t, _mm256_set1_epi8((char)86)), t);
    __m256i ge171 = _mm256_cmpeq_epi8(_mm256_max_epu8(t, _mm256_set1_epi8((char)171)), t);
    return _mm256_sub_epi8(_mm256_sub_epi8(_mm256_setzero_si256(), ge86), ge171);
}

/* Codes (0..2, natural column order) of one 256-weight block. */
static void tq1_decode(uint8_t codes[256], const uint8_t *block) {
    static const int pow3[5] = {1, 3, 9, 27, 81};
    __m256i qs = _mm256_loadu_si256((const __m256i *)block);
    for (int n = 0; n < 5; n++)
        _mm256_storeu_si256((__m256i *)(codes + 32 * n), tq1_digit(mul_bytes(qs, pow3[n])));
    /* 16 bytes, 5 digits each: digits n and n + 1 come from the two halves of one vector */
    __m128i tail = _mm_loadu_si128((const __m128i *)(block + 32));
    __m256i both = _mm256_set_m128i(tail, tail);
    for (int n = 0; n < 4; n += 2) {
        __m256i shifted = _mm256_blend_epi32(mul_bytes(both, pow3[n]),
                                             mul_bytes(both, pow3[n + 1]), 0xf0);
        _mm256_storeu_si256((__m256i *)(codes + 160 + 16 * n), tq1_digit(shifted));
    }
    _mm_storeu_si128((__m128i *)(codes + 160 + 64),
                     _mm256_castsi256_si128(tq1_digit(mul_bytes(both, pow3[4]))));
    for (int j = 0; j < 4; j++)
        for (int n = 0; n < 4; n++) codes[240 + j + 4 * n] = (uint8_t)bn_tq1_digit(block[48 + j], n);
}

/* The eight int32 lanes (ref_matmul.h) of 256 codes in natural order against x, before the lane
 * sums are taken off: maddubs pairs bytes 2k, 2k + 1 into int16 lane k (at most 8 x 2 x 3 x 128
 * over a block: no overflow), madd pairs int16 lanes 2L, 2L + 1 into int32 lane L, so lane L holds
 * bytes 4L..4L+3 of every 32-byte chunk: columns with (i % 32) / 4 == L. */
static inline __m256i codes_lanes256(const uint8_t *codes, const int8_t *x) {
    __m256i s = _mm256_setzero_si256();
    for (int i = 0; i < 256; i += 32)
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(codes + i)),
                                                     _mm256_loadu_si256((const __m256i *)(x + i))));
    return _mm256_madd_epi16(s, _mm256_set1_epi16(1));
}

/* The same for one TQ2_0 block (qs): field n of half h is the 32-column chunk 128h + 32n. */
static inline __m256i tq2_block_lanes(const uint8_t *qs, const int8_t *x) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i s = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
        __m256i w = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
        const int8_t *xh = x + 128 * h;
        for (int n = 0; n < 4; n++) {
            const __m256i field = _mm256_and_si256(_mm256_srli_epi16(w, 2 * n), m3);
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(field, _mm256_loadu_si256((const __m256i *)(xh + 32 * n))));
        }
    }
    return _mm256_madd_epi16(s, _mm256_set1_epi16(1));
}

/* TQ formats: row by row, block by block, every token per block (one decode per block); eight
 * lanes per block, less the activations' lane sums. */
static void tq_sums(int32_t *out, const bn_ternary_matrix *m, const bn_act_view *act,
                    int row_begin, int row_end) {
    const int blocks = m->cols / BN_TQ_BLOCK, n_tokens = act->n_tokens;
    const bool tq2 = m->file_type == BN_TYPE_TQ2_0;
    const size_t block_bytes = tq2 ? BN_TQ2_BLOCK_BYTES : BN_TQ1_BLOCK_BYTES;
    uint8_t codes[256];
    for (int r = row_begin; r < row_end; r++) {
        const uint8_t *row = m->data + (size_t)r * blocks * block_bytes;
        for (int b = 0; b < blocks; b++) {
            const uint8_t *block = row + (size_t)b * block_bytes;
            _mm_prefetch((const char *)(block + PREFETCH_DISTANCE), _MM_HINT_T0);
            if (!tq2) tq1_decode(codes, block);
            for (int t = 0; t < n_tokens; t++) {
                const int8_t *x = act->q + (size_t)t * m->cols + (size_t)b * BN_TQ_BLOCK;
                const __m256i raw = tq2 ? tq2_block_lanes(block, x) : codes_lanes256(codes, x);
                const size_t at = ((size_t)t * blocks + b) * BN_TQ_LANES;
                const __m256i lane_sums = _mm256_loadu_si256((const __m256i *)(act->lane_sums + at));
                _mm256_storeu_si256((__m256i *)(out + ((size_t)(r - row_begin) * n_tokens + t) * blocks * BN_TQ_LANES +
                                                (size_t)b * BN_TQ_LANES),
                                    _mm256_sub_epi32(raw, lane_sums));
            }
        }
    }
}

void bn_avx2_ternary_sums(int32_t *out, const bn_ternary_matrix *matrix, const bn_act_view *act,
                          int row_begin, int row_end) {
    if (matrix->file_type == BN_TYPE_I2_S)
        i2s_sums(out, matrix, act, row_begin, row_end);
    else
        tq_sums(out, matrix, act, row_begin, row_end);
}

/* ---- float finish of I2_S sums: 8 rows of one token per vector (see matmul_avx512.c) ---- */

void bn_avx2_ternary_finish_i2s(float *y, int rows, float tensor_scale, const int32_t *sums,
                                const float *scales, int n_tokens, int row_begin, int row_end) {
    const __m256 ts = _mm256_set1_ps(tensor_scale);
    const __m256i index =
        _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(n_tokens));
    int r0 = row_begin;
    for (; r0 + 8 <= row_end; r0 += 8) {
        const int32_t *block = sums + (size_t)(r0 - row_begin) * (size_t)n_tokens;
        for (int t = 0; t < n_tokens; t++) {
            __m256i s = _mm256_i32gather_epi32(block + t, index, 4);
            __m256 v = _mm256_div_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(scales[t]));
            _mm256_storeu_ps(y + (size_t)t * (size_t)rows + (size_t)r0, _mm256_mul_ps(v, ts));
        }
    }
    for (int t = 0; t < n_tokens; t++)
        for (int r = r0; r < row_end; r++)
            y[(size_t)t * (size_t)rows + (size_t)r] =
                (float)sums[(size_t)(r - row_begin) * (size_t)n_tokens + (size_t)t] / scales[t] *
                tensor_scale;
}

/* ---- F16 ---- */

/* One output from its two 8-lane accumulators: the scalar tail (columns from..cols-1) joins
 * its lanes, then the shared pairwise reduction. */
static inline float f16_finish(__m256 lo, __m256 hi, const uint16_t *w, const float *x, int from,
                               int cols) {
    if (from == cols) { /* no tail: the halving tree of bn_f16_reduce_lanes in registers */
        __m256 half = _mm256_add_ps(lo, hi);
        __m128 quarter = _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
        __m128 eighth = _mm_add_ps(quarter, _mm_movehl_ps(quarter, quarter));
        return _mm_cvtss_f32(_mm_add_ss(eighth, _mm_movehdup_ps(eighth)));
    }
    float lanes[BN_F16_LANES];
    _mm256_storeu_ps(lanes, lo);
    _mm256_storeu_ps(lanes + 8, hi);
    for (int c = from; c < cols; c++)
        lanes[c % BN_F16_LANES] = fmaf(_cvtsh_ss(w[c]), x[c], lanes[c % BN_F16_LANES]);
    return bn_f16_reduce_lanes(lanes);
}

static inline __m256 load_f16(const uint16_t *w) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w));
}

/* One F16 row against n tokens (a constant after inlining, so the accumulators stay in
 * registers), prefetching the next row; the same per-lane order as the one-token path. */
static inline __attribute__((always_inline)) void f16_row_tokens(float *y, int rows,
                                                                 const uint16_t *wr, const float *x,
                                                                 const int n, int cols, int cols16) {
    __m256 lo[4], hi[4];
#pragma GCC unroll 4
    for (int t = 0; t < n; t++) lo[t] = hi[t] = _mm256_setzero_ps();
    for (int c = 0; c < cols16; c += 16) {
        _mm_prefetch((const char *)(wr + cols + c), _MM_HINT_T0);
        __m256 w0 = load_f16(wr + c), w1 = load_f16(wr + c + 8);
#pragma GCC unroll 4
        for (int t = 0; t < n; t++) {
            const float *xt = x + (size_t)t * cols + c;
            lo[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xt), lo[t]);
            hi[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xt + 8), hi[t]);
        }
    }
    for (int t = 0; t < n; t++)
        y[(size_t)t * rows] = f16_finish(lo[t], hi[t], wr, x + (size_t)t * cols, cols16, cols);
}

/* One token: two sequential row streams with a short software prefetch, as in matmul_avx512.c. */
static void f16_gemv_two_streams(float *y, const uint16_t *w, const float *x, int cols, int cols16,
                                 int row_begin, int row_end) {
    const int half = (row_end - row_begin) / 2;
    for (int i = 0; i < half; i++) {
        const int ra = row_begin + i, rb = row_begin + half + i;
        const uint16_t *wa = w + (size_t)ra * cols, *wb = w + (size_t)rb * cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
        for (int c = 0; c < cols16; c += 16) {
            __m256 x0 = _mm256_loadu_ps(x + c), x1 = _mm256_loadu_ps(x + c + 8);
            _mm_prefetch((const char *)(wa + c + BN_F16_PREFETCH_AHEAD), _MM_HINT_T0);
            _mm_prefetch((const char *)(wb + c + BN_F16_PREFETCH_AHEAD), _MM_HINT_T0);
            a0 = _mm256_fmadd_ps(load_f16(wa + c), x0, a0);
            a1 = _mm256_fmadd_ps(load_f16(wa + c + 8), x1, a1);
            b0 = _mm256_fmadd_ps(load_f16(wb + c), x0, b0);
            b1 = _mm256_fmadd_ps(load_f16(wb + c + 8), x1, b1);
        }
        y[ra] = f16_finish(a0, a1, wa, x, cols16, cols);
        y[rb] = f16_finish(b0, b1, wb, x, cols16, cols);
    }
    for (int r = row_begin + 2 * half; r < row_end; r++) {
        const uint16_t *wr = w + (size_t)r * cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (int c = 0; c < cols16; c += 16) {
            a0 = _mm256_fmadd_ps(load_f16(wr + c), _mm256_loadu_ps(x + c), a0);
            a1 = _mm256_fmadd_ps(load_f16(wr + c + 8), _mm256_loadu_ps(x + c + 8), a1);
        }
        y[r] = f16_finish(a0, a1, wr, x, cols16, cols);
    }
}

void bn_avx2_f16_matmul(float *y, const uint16_t *w, const float *x, int rows, int cols,
                        int n_tokens, int row_begin, int row_end, bn_prefetch_hint hint) {
    (void)hint; /* the hardware prefetchers follow its streams */
    const int cols16 = cols / 16 * 16;
    if (n_tokens == 1) {
        f16_gemv_two_streams(y, w, x, cols, cols16, row_begin, row_end);
        return;
    }
    int r = row_begin;
    for (; r < row_end; r++) {
        const uint16_t *wr = w + (size_t)r * cols;
        for (int t0 = 0; t0 < n_tokens; t0 += 4) {
            int n = n_tokens - t0 < 4 ? n_tokens - t0 : 4;
            const float *xt = x + (size_t)t0 * cols;
            float *yt = y + (size_t)t0 * rows + r;
            switch (n) {
            case 1: f16_row_tokens(yt, rows, wr, xt, 1, cols, cols16); break;
            case 2: f16_row_tokens(yt, rows, wr, xt, 2, cols, cols16); break;
            case 3: f16_row_tokens(yt, rows, wr, xt, 3, cols, cols16); break;
            default: f16_row_tokens(yt, rows, wr, xt, 4, cols, cols16); break;
            }
        }
    }
}

/* ---- int8 ---- */

/* GEMV over 4 rows sharing the activation loads, prefetching the next pass's rows. */
static void int8_gemv4(int32_t *out, const int8_t *w, const int8_t *x, const uint8_t *x_abs,
                       int cols) {
    const int cols32 = cols / 32 * 32;
    const __m256i ones = _mm256_set1_epi16(1);
    const size_t ahead = 4 * (size_t)cols;
    __m256i acc[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) acc[i] = _mm256_setzero_si256();
    for (int c = 0; c < cols32; c += 32) {
        __m256i xv = _mm256_loadu_si256((const __m256i *)(x + c));
        __m256i xa = _mm256_loadu_si256((const __m256i *)(x_abs + c));
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const int8_t *wr = w + (size_t)i * cols + c;
            _mm_prefetch((const char *)(wr + ahead), _MM_HINT_T0);
            __m256i p = _mm256_maddubs_epi16(xa, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)wr), xv));
            acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(p, ones));
        }
    }
    for (int i = 0; i < 4; i++) {
        int32_t sum = hsum_epi32(acc[i]);
        for (int c = cols32; c < cols; c++) sum += w[(size_t)i * cols + c] * x[c];
        out[i] = sum;
    }
}

void bn_avx2_int8_sums(int32_t *out, const bn_int8_matrix *matrix, const bn_act_view *act,
                       int row_begin, int row_end) {
    const int cols = matrix->cols, cols32 = cols / 32 * 32, n_tokens = act->n_tokens;
    const __m256i ones = _mm256_set1_epi16(1);
    int r = row_begin;
    if (n_tokens == 1)
        for (; r + 4 <= row_end; r += 4)
            int8_gemv4(out + (r - row_begin), matrix->q + (size_t)r * cols, act->q,
                       act->q_unsigned, cols);
    for (; r < row_end; r++) {
        const int8_t *wr = matrix->q + (size_t)r * cols;
        for (int t0 = 0; t0 < n_tokens; t0 += 4) {
            int n = n_tokens - t0 < 4 ? n_tokens - t0 : 4;
            __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(),
                              _mm256_setzero_si256(), _mm256_setzero_si256()};
            for (int c = 0; c < cols32; c += 32) {
                __m256i wv = _mm256_loadu_si256((const __m256i *)(wr + c));
                if (n_tokens == 1)
                    _mm_prefetch((const char *)(wr + c + PREFETCH_DISTANCE), _MM_HINT_T0);
                for (int t = 0; t < n; t++) {
                    size_t off = (size_t)(t0 + t) * cols + c;
                    __m256i xv = _mm256_loadu_si256((const __m256i *)(act->q + off));
                    __m256i xa = _mm256_loadu_si256((const __m256i *)(act->q_unsigned + off));
                    __m256i p = _mm256_maddubs_epi16(xa, _mm256_sign_epi8(wv, xv));
                    acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(p, ones));
                }
            }
            for (int t = 0; t < n; t++) {
                const int8_t *xt = act->q + (size_t)(t0 + t) * cols;
                int32_t sum = hsum_epi32(acc[t]);
                for (int c = cols32; c < cols; c++) sum += wr[c] * xt[c];
                out[(size_t)(r - row_begin) * n_tokens + t0 + t] = sum;
            }
        }
    }
}
