/*
 * matmul_avx2_body.h: the AVX2 integer matrix kernels (ternary I2_S/TQ2_0/TQ1_0 sums and int8
 * sums; contracts in ref_matmul.h / matmul_isa.h), written once and compiled twice: by
 * matmul_avx2.c with the int16 steps of plain AVX2 (maddubs, then madd with ones into int32
 * lanes) and by matmul_avxvnni.c with AVX-VNNI's vpdpbusd, which multiplies the u8 and s8 bytes
 * and adds each group of four straight into an int32 lane. Both fill the same int32 lanes with
 * the same exact sums (no int16 step saturates here: see the bounds at each use), so the two
 * variants ("avx2", "avx2.vnni"; kernels/variants.h) give identical results.
 *
 * The including file defines AVX2_BODY_VNNI (0 or 1) and AVX2_BODY_FN(name) (the name of an
 * entry point: bn_avx2_##name or bn_avxvnni_##name) and includes this file once, after
 * immintrin.h.
 */
#include "kernels/cpu/matmul_isa.h"

#include "quant/quant_format.h"
#include "quant/ternary.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

/* Bytes ahead of the current load (8-16 KiB is the plateau on the 2B-4T shapes). */
#define BODY_PREFETCH_DISTANCE 12288

static inline int32_t body_hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* acc + the dot products of four u8 x s8 vector pairs, per int32 lane (bytes 4L..4L+3 of each
 * pair into lane L). Plain AVX2 sums the four pairs' maddubs in int16 first: callers keep every
 * int16 sum of four pairs within range. */
static inline __m256i dot4_acc(__m256i acc, __m256i u0, __m256i s0, __m256i u1, __m256i s1,
                               __m256i u2, __m256i s2, __m256i u3, __m256i s3) {
#if AVX2_BODY_VNNI
    acc = _mm256_dpbusd_avx_epi32(acc, u0, s0);
    acc = _mm256_dpbusd_avx_epi32(acc, u1, s1);
    acc = _mm256_dpbusd_avx_epi32(acc, u2, s2);
    return _mm256_dpbusd_avx_epi32(acc, u3, s3);
#else
    const __m256i a = _mm256_add_epi16(_mm256_maddubs_epi16(u0, s0), _mm256_maddubs_epi16(u1, s1));
    const __m256i b = _mm256_add_epi16(_mm256_maddubs_epi16(u2, s2), _mm256_maddubs_epi16(u3, s3));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_add_epi16(a, b), _mm256_set1_epi16(1)));
#endif
}

/* acc + the dot product of one u8 x s8 pair per int32 lane (maddubs pairs must not saturate). */
static inline __m256i dot1_acc(__m256i acc, __m256i u, __m256i s) {
#if AVX2_BODY_VNNI
    return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc,
                            _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

/* ---- ternary: codes 0..2 (TQ2_0: 0..3) as the u8 operand, the int8 activations as the s8 ---- */

/* acc + the raw dot (codes * q) of one I2_S block (32 bytes at w) with activations x[0..127]
 * (int16 step: four pairs of codes <= 2 and |q| <= 128 stay within 2048). */
static inline __m256i i2s_block_acc(__m256i acc, __m256i w, const int8_t *x) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(w, 6), m3);
    __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(w, 4), m3);
    __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(w, 2), m3);
    __m256i c3 = _mm256_and_si256(w, m3);
    return dot4_acc(acc, c0, _mm256_loadu_si256((const __m256i *)x), c1,
                    _mm256_loadu_si256((const __m256i *)(x + 32)), c2,
                    _mm256_loadu_si256((const __m256i *)(x + 64)), c3,
                    _mm256_loadu_si256((const __m256i *)(x + 96)));
}

/* GEMV over one full tile of 8 rows (layout I2S_TILE8, one sequential stream); each block's
 * activation registers feed 8 rows. Raw sums (codes * q) per row. */
static void i2s_gemv_tile(int32_t raw[BN_I2S_TILE_ROWS], const uint8_t *tile, const int8_t *x,
                          int cols) {
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
                if (h == 0) _mm_prefetch((const char *)(wb + BODY_PREFETCH_DISTANCE), _MM_HINT_T0);
                acc[r] = i2s_block_acc(acc[r], _mm256_loadu_si256((const __m256i *)wb), xb);
            }
        }
    }
    const uint8_t *tails = tile + (size_t)pairs * 64 * BN_I2S_TILE_ROWS;
    for (int r = 0; r < BN_I2S_TILE_ROWS; r++) {
        if (cols % 256)
            acc[r] = i2s_block_acc(acc[r], _mm256_loadu_si256((const __m256i *)(tails + 32 * r)),
                                   x + (size_t)pairs * 256);
        raw[r] = body_hsum_epi32(acc[r]);
    }
}

/* One row (any layout) against up to 4 tokens (GEMM tile): codes decoded once per block. Inlined
 * with a constant n (see i2s_row_tokens) so the accumulators stay in registers. */
static inline __attribute__((always_inline)) void
i2s_row_tokens_n(int32_t *raw, bn_i2s_row w, const int8_t *x, const int n, int cols) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
    const int blocks = cols / BN_I2S_BLOCK;
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block =
            b / 2 < cols / 256 ? w.first + (size_t)(b / 2) * w.pair_stride + 32 * (b % 2) : w.tail;
        __m256i packed = _mm256_loadu_si256((const __m256i *)block);
        __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(packed, 6), m3);
        __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(packed, 4), m3);
        __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(packed, 2), m3);
        __m256i c3 = _mm256_and_si256(packed, m3);
        for (int t = 0; t < n; t++) {
            const int8_t *xb = x + (size_t)t * cols + (size_t)b * BN_I2S_BLOCK;
            acc[t] = dot4_acc(acc[t], c0, _mm256_loadu_si256((const __m256i *)xb), c1,
                              _mm256_loadu_si256((const __m256i *)(xb + 32)), c2,
                              _mm256_loadu_si256((const __m256i *)(xb + 64)), c3,
                              _mm256_loadu_si256((const __m256i *)(xb + 96)));
        }
    }
    for (int t = 0; t < n; t++) raw[t] = body_hsum_epi32(acc[t]);
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
     * tiled matrix with a stride and no prefetch: two tokens that way took longer than two GEMVs.
     */
    if (n_tokens <= 8 && m->layout == BN_LAYOUT_I2S_TILE8 && r % BN_I2S_TILE_ROWS == 0) {
        for (; r + BN_I2S_TILE_ROWS <= row_end; r += BN_I2S_TILE_ROWS)
            for (int t = 0; t < n_tokens; t++) {
                int32_t raw[BN_I2S_TILE_ROWS];
                i2s_gemv_tile(raw, bn_i2s_row_at(m, r).first, act->q + (size_t)t * m->cols,
                              m->cols);
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
                const uint8_t *ahead =
                    m->data + (size_t)(r - r % BN_I2S_TILE_ROWS) * (size_t)(m->cols / 4) +
                    2 * tile_bytes + (size_t)(r % BN_I2S_TILE_ROWS) * (tile_bytes / 8);
                for (size_t b = 0; b < tile_bytes / 8; b += 64)
                    _mm_prefetch((const char *)(ahead + b), _MM_HINT_T0);
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
        __m256i shifted =
            _mm256_blend_epi32(mul_bytes(both, pow3[n]), mul_bytes(both, pow3[n + 1]), 0xf0);
        _mm256_storeu_si256((__m256i *)(codes + 160 + 16 * n), tq1_digit(shifted));
    }
    _mm_storeu_si128((__m128i *)(codes + 160 + 64),
                     _mm256_castsi256_si128(tq1_digit(mul_bytes(both, pow3[4]))));
    for (int j = 0; j < 4; j++)
        for (int n = 0; n < 4; n++)
            codes[240 + j + 4 * n] = (uint8_t)bn_tq1_digit(block[48 + j], n);
}

/* The eight int32 lanes (ref_matmul.h) of 256 codes in natural order against x, before the lane
 * sums are taken off: lane L gets bytes 4L..4L+3 of every 32-byte chunk, the columns with
 * (i % 32) / 4 == L (int16 step: at most 4 x 2 x 3 x 128 per group of four chunks). */
static inline __m256i codes_lanes256(const uint8_t *codes, const int8_t *x) {
    __m256i s = _mm256_setzero_si256();
    for (int i = 0; i < 256; i += 128) {
        const __m256i *c = (const __m256i *)(codes + i), *xi = (const __m256i *)(x + i);
        s = dot4_acc(s, _mm256_loadu_si256(c), _mm256_loadu_si256(xi), _mm256_loadu_si256(c + 1),
                     _mm256_loadu_si256(xi + 1), _mm256_loadu_si256(c + 2),
                     _mm256_loadu_si256(xi + 2), _mm256_loadu_si256(c + 3),
                     _mm256_loadu_si256(xi + 3));
    }
    return s;
}

/* The same for one TQ2_0 block (qs): field n of half h is the 32-column chunk 128h + 32n. */
static inline __m256i tq2_block_lanes(const uint8_t *qs, const int8_t *x) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i s = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
        __m256i w = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
        const int8_t *xh = x + 128 * h;
        s = dot4_acc(s, _mm256_and_si256(w, m3), _mm256_loadu_si256((const __m256i *)xh),
                     _mm256_and_si256(_mm256_srli_epi16(w, 2), m3),
                     _mm256_loadu_si256((const __m256i *)(xh + 32)),
                     _mm256_and_si256(_mm256_srli_epi16(w, 4), m3),
                     _mm256_loadu_si256((const __m256i *)(xh + 64)),
                     _mm256_and_si256(_mm256_srli_epi16(w, 6), m3),
                     _mm256_loadu_si256((const __m256i *)(xh + 96)));
    }
    return s;
}

/* TQ formats: row by row, block by block, every token per block (one decode per block); eight
 * lanes per block, less the activations' lane sums. */
static void tq_sums(int32_t *out, const bn_ternary_matrix *m, const bn_act_view *act, int row_begin,
                    int row_end) {
    const int blocks = m->cols / BN_TQ_BLOCK, n_tokens = act->n_tokens;
    const bool tq2 = m->file_type == BN_TYPE_TQ2_0;
    const size_t block_bytes = tq2 ? BN_TQ2_BLOCK_BYTES : BN_TQ1_BLOCK_BYTES;
    uint8_t codes[256];
    for (int r = row_begin; r < row_end; r++) {
        const uint8_t *row = m->data + (size_t)r * blocks * block_bytes;
        for (int b = 0; b < blocks; b++) {
            const uint8_t *block = row + (size_t)b * block_bytes;
            _mm_prefetch((const char *)(block + BODY_PREFETCH_DISTANCE), _MM_HINT_T0);
            if (!tq2) tq1_decode(codes, block);
            for (int t = 0; t < n_tokens; t++) {
                const int8_t *x = act->q + (size_t)t * m->cols + (size_t)b * BN_TQ_BLOCK;
                const __m256i raw = tq2 ? tq2_block_lanes(block, x) : codes_lanes256(codes, x);
                const size_t at = ((size_t)t * blocks + b) * BN_TQ_LANES;
                const __m256i lane_sums =
                    _mm256_loadu_si256((const __m256i *)(act->lane_sums + at));
                _mm256_storeu_si256(
                    (__m256i *)(out +
                                ((size_t)(r - row_begin) * n_tokens + t) * blocks * BN_TQ_LANES +
                                (size_t)b * BN_TQ_LANES),
                    _mm256_sub_epi32(raw, lane_sums));
            }
        }
    }
}

void AVX2_BODY_FN(ternary_sums)(int32_t *out, const bn_ternary_matrix *matrix,
                                const bn_act_view *act, int row_begin, int row_end) {
    if (matrix->file_type == BN_TYPE_I2_S)
        i2s_sums(out, matrix, act, row_begin, row_end);
    else
        tq_sums(out, matrix, act, row_begin, row_end);
}

/* ---- int8: |q| (u8, at most 128) against w * sign(q) (|w| <= 127): maddubs pairs stay within
 * 2 * 128 * 127 ---- */

/* GEMV over 4 rows sharing the activation loads, prefetching the next pass's rows. */
static void int8_gemv4(int32_t *out, const int8_t *w, const int8_t *x, const uint8_t *x_abs,
                       int cols) {
    const int cols32 = cols / 32 * 32;
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
            acc[i] =
                dot1_acc(acc[i], xa, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)wr), xv));
        }
    }
    for (int i = 0; i < 4; i++) {
        int32_t sum = body_hsum_epi32(acc[i]);
        for (int c = cols32; c < cols; c++) sum += w[(size_t)i * cols + c] * x[c];
        out[i] = sum;
    }
}

void AVX2_BODY_FN(int8_sums)(int32_t *out, const bn_int8_matrix *matrix, const bn_act_view *act,
                             int row_begin, int row_end) {
    const int cols = matrix->cols, cols32 = cols / 32 * 32, n_tokens = act->n_tokens;
    int r = row_begin;
    if (n_tokens == 1)
        for (; r + 4 <= row_end; r += 4)
            int8_gemv4(out + (r - row_begin), matrix->q + (size_t)r * cols, act->q, act->q_unsigned,
                       cols);
    for (; r < row_end; r++) {
        const int8_t *wr = matrix->q + (size_t)r * cols;
        for (int t0 = 0; t0 < n_tokens; t0 += 4) {
            int n = n_tokens - t0 < 4 ? n_tokens - t0 : 4;
            __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(),
                              _mm256_setzero_si256(), _mm256_setzero_si256()};
            for (int c = 0; c < cols32; c += 32) {
                __m256i wv = _mm256_loadu_si256((const __m256i *)(wr + c));
                if (n_tokens == 1)
                    _mm_prefetch((const char *)(wr + c + BODY_PREFETCH_DISTANCE), _MM_HINT_T0);
                for (int t = 0; t < n; t++) {
                    size_t off = (size_t)(t0 + t) * cols + c;
                    __m256i xv = _mm256_loadu_si256((const __m256i *)(act->q + off));
                    __m256i xa = _mm256_loadu_si256((const __m256i *)(act->q_unsigned + off));
                    acc[t] = dot1_acc(acc[t], xa, _mm256_sign_epi8(wv, xv));
                }
            }
            for (int t = 0; t < n; t++) {
                const int8_t *xt = act->q + (size_t)(t0 + t) * cols;
                int32_t sum = body_hsum_epi32(acc[t]);
                for (int c = cols32; c < cols; c++) sum += wr[c] * xt[c];
                out[(size_t)(r - row_begin) * n_tokens + t0 + t] = sum;
            }
        }
    }
}
