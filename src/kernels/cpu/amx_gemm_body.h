/*
 * amx_gemm_body.h: the AMX int8 I2_S GEMM (layouts in amx_tiles.h), written once and compiled
 * twice: by matmul_amx.c over the AMX instructions and by amx_emulation_avx2.c over their scalar
 * emulation, which the tests run against the scalar reference on any AVX2 CPU.
 *
 * The including file defines AMX_FN(name) (the entry point's name) and the tile operations
 * AMX_LOADCONFIG(config), AMX_RELEASE(), AMX_ZERO(t), AMX_LOAD(t, base, stride),
 * AMX_STORE(t, base, stride) and AMX_DPBSSD(c, a, b), with t, c, a, b literal tile numbers (the
 * instructions encode them), and includes this file after immintrin.h.
 *
 * Tiles: C 0..3 (rows 16i.. of the 32-row block x tokens 16j.. of the 32-token block in tile
 * 2i + j), A 4 and 5 (the block's two 16-row weight tiles), B 6 and 7 (its two token groups).
 * A worker's span of rows goes 32 rows at a time: the rows are expanded to int8 A tiles once
 * (AVX2: shift, mask, subtract one, 16 instructions per 128 weights) into the worker's scratch,
 * then every 32 tokens of the call take 4 TDPBSSD per 64 columns against them. Expanding on the
 * fly costs no memory beside the 2-bit weights (a cached int8 copy would be 4x the model); the
 * expansion is read once per 128 tokens (a pass of kernels/matmul.c), about 1/16 of the tile
 * work. Rows past the span's end are expanded as zeros and tokens past the call's end are zero
 * tokens in the B tiles; their sums are computed and dropped.
 */
#include "kernels/cpu/amx_tiles.h"

#include "kernels/scratch.h"
#include "quant/ternary.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Rows [r0, r0 + 16) of an I2_S matrix as A tiles: tile kb (at a + kb KiB) holds columns
 * 64kb..64kb+63 of the 16 rows, each weight -1, 0 or +1; rows at or past row_end are zero. */
static void expand_i2s_rows(int8_t *a, const bn_ternary_matrix *m, int r0, int row_end) {
    const int blocks = m->cols / BN_I2S_BLOCK, pairs = m->cols / 256;
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    for (int i = 0; i < BN_AMX_TILE_ROWS; i++) {
        int8_t *row = a + BN_AMX_TILE_K * i;
        if (r0 + i >= row_end) {
            for (int kb = 0; kb < 2 * blocks; kb++)
                memset(row + (size_t)kb * BN_AMX_TILE_BYTES, 0, BN_AMX_TILE_K);
            continue;
        }
        const bn_i2s_row where = bn_i2s_row_at(m, r0 + i);
        for (int b = 0; b < blocks; b++) {
            const uint8_t *block =
                b / 2 < pairs ? where.first + (size_t)(b / 2) * where.pair_stride + 32 * (b % 2)
                              : where.tail;
            /* byte j holds columns j, 32 + j, 64 + j, 96 + j of the block in bits 7:6 .. 1:0 */
            const __m256i w = _mm256_loadu_si256((const __m256i *)block);
            int8_t *low = row + (size_t)(2 * b) * BN_AMX_TILE_BYTES,
                   *high = low + BN_AMX_TILE_BYTES;
            _mm256_storeu_si256(
                (__m256i *)low,
                _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(w, 6), m3), one));
            _mm256_storeu_si256(
                (__m256i *)(low + 32),
                _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(w, 4), m3), one));
            _mm256_storeu_si256(
                (__m256i *)high,
                _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(w, 2), m3), one));
            _mm256_storeu_si256((__m256i *)(high + 32),
                                _mm256_sub_epi8(_mm256_and_si256(w, m3), one));
        }
    }
}

void AMX_FN(tile_activations)(int8_t *tiles, const int8_t *q, int n_tokens, int cols) {
    const int kbs = cols / BN_AMX_TILE_K;
    for (int g = 0; g * BN_AMX_TILE_TOKENS < n_tokens; g++)
        for (int kb = 0; kb < kbs; kb++) {
            int8_t *tile = tiles + ((size_t)g * kbs + kb) * BN_AMX_TILE_BYTES;
            for (int n = 0; n < BN_AMX_TILE_TOKENS; n++) {
                const int t = BN_AMX_TILE_TOKENS * g + n;
                const int8_t *src = q + (size_t)t * cols + (size_t)kb * BN_AMX_TILE_K;
                for (int k = 0; k < BN_AMX_TILE_K / 4; k++) {
                    int32_t four = 0;
                    if (t < n_tokens) memcpy(&four, src + 4 * k, 4);
                    memcpy(tile + BN_AMX_TILE_K * k + 4 * n, &four, 4);
                }
            }
        }
}

/* C tile c (literal) of the block at rows r0 + 16i, tokens t0 + 16j into out: straight when all
 * 16 x 16 sums are wanted, else through a bounce buffer. */
#define STORE_C(c, i, j)                                                                           \
    do {                                                                                           \
        const int rows_ = row_end - (r0 + 16 * (i)), tokens_ = n_tokens - (t0 + 16 * (j));         \
        int32_t *to_ = out + (size_t)(r0 + 16 * (i)-row_begin) * n_tokens + t0 + 16 * (j);         \
        if (rows_ >= 16 && tokens_ >= 16) {                                                        \
            AMX_STORE(c, to_, (size_t)n_tokens * 4);                                               \
        } else {                                                                                   \
            int32_t bounce_[16 * 16];                                                              \
            AMX_STORE(c, bounce_, 64);                                                             \
            for (int m_ = 0; m_ < rows_ && m_ < 16; m_++)                                          \
                memcpy(to_ + (size_t)m_ * n_tokens, bounce_ + 16 * m_,                             \
                       (size_t)(tokens_ < 16 ? tokens_ : 16) * 4);                                 \
        }                                                                                          \
    } while (0)

/* One block: na (1, 2) row tiles at a against nb (1, 2) token groups at b over all kbs column
 * tiles (constants after inlining, so every tile number is a literal). */
static inline __attribute__((always_inline)) void
tile_block(int32_t *out, int n_tokens, int row_begin, int row_end, int r0, int t0, const int8_t *a,
           const int8_t *b, size_t tile_set, int kbs, const int na, const int nb) {
    AMX_ZERO(0);
    if (nb == 2) AMX_ZERO(1);
    if (na == 2) AMX_ZERO(2);
    if (na == 2 && nb == 2) AMX_ZERO(3);
    for (int kb = 0; kb < kbs; kb++) {
        const size_t at = (size_t)kb * BN_AMX_TILE_BYTES;
        AMX_LOAD(4, a + at, BN_AMX_TILE_K);
        AMX_LOAD(6, b + at, BN_AMX_TILE_K);
        AMX_DPBSSD(0, 4, 6);
        if (nb == 2) {
            AMX_LOAD(7, b + tile_set + at, BN_AMX_TILE_K);
            AMX_DPBSSD(1, 4, 7);
        }
        if (na == 2) {
            AMX_LOAD(5, a + tile_set + at, BN_AMX_TILE_K);
            AMX_DPBSSD(2, 5, 6);
            if (nb == 2) AMX_DPBSSD(3, 5, 7);
        }
    }
    STORE_C(0, 0, 0);
    if (nb == 2) STORE_C(1, 0, 1);
    if (na == 2) STORE_C(2, 1, 0);
    if (na == 2 && nb == 2) STORE_C(3, 1, 1);
}

void AMX_FN(ternary_sums)(int32_t *out, const bn_ternary_matrix *matrix, const bn_act_view *act,
                          int row_begin, int row_end) {
    const int kbs = matrix->cols / BN_AMX_TILE_K, n_tokens = act->n_tokens;
    /* one row tile's A tiles, and one token group's B tiles: 16 x cols bytes each */
    const size_t tile_set = (size_t)kbs * BN_AMX_TILE_BYTES;
    int8_t *a = bn_thread_scratch(BN_SCRATCH_AMX_WEIGHTS, 2 * tile_set);
    if (!a || !act->q_tiles) { /* same sums, no scratch needed */
        bn_ref_ternary_sums(out, matrix, act, row_begin, row_end);
        return;
    }
    bn_amx_tile_config config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    for (int t = 0; t < 8; t++) {
        config.rows[t] = 16;
        config.colsb[t] = 64;
    }
    AMX_LOADCONFIG(&config);
    const int groups = (n_tokens + BN_AMX_TILE_TOKENS - 1) / BN_AMX_TILE_TOKENS;
    for (int r0 = row_begin; r0 < row_end; r0 += 2 * BN_AMX_TILE_ROWS) {
        const bool two_rows = row_end - r0 > BN_AMX_TILE_ROWS;
        expand_i2s_rows(a, matrix, r0, row_end);
        if (two_rows) expand_i2s_rows(a + tile_set, matrix, r0 + BN_AMX_TILE_ROWS, row_end);
        for (int g = 0; g < groups; g += 2) {
            const int t0 = g * BN_AMX_TILE_TOKENS;
            const int8_t *b = act->q_tiles + (size_t)g * tile_set;
            const bool two_groups = groups - g > 1;
            if (two_rows && two_groups)
                tile_block(out, n_tokens, row_begin, row_end, r0, t0, a, b, tile_set, kbs, 2, 2);
            else if (two_rows)
                tile_block(out, n_tokens, row_begin, row_end, r0, t0, a, b, tile_set, kbs, 2, 1);
            else if (two_groups)
                tile_block(out, n_tokens, row_begin, row_end, r0, t0, a, b, tile_set, kbs, 1, 2);
            else
                tile_block(out, n_tokens, row_begin, row_end, r0, t0, a, b, tile_set, kbs, 1, 1);
        }
    }
    AMX_RELEASE();
}

#undef STORE_C
