/*
 * i2s_gemv_tile.h: the one-token I2_S GEMV over one full tile (layout I2S_TILE8), written once
 * and compiled twice: by matmul_avx512.c with the 2-bit fields decoded by shift and mask, and by
 * matmul_avx512gfni.c with one GF(2) affine instruction per field (GFNI), which the AVX-512 path
 * uses for the GEMV variants with GFNI (kernels/variants.h) where the CPU has it. Both give the
 * same integer sums.
 *
 * The including file defines I2S_GEMV_TILE_NAME (the function to define) and
 * I2S_GEMV_FIELD(packed, shift) (the 0..2 codes of the 2-bit field at bit `shift` of every byte
 * of packed, for shift 6, 4 and 2; the field at bit 0 is a mask), and includes this file after
 * immintrin.h and the prefetch distance (GEMV_PREFETCH_DISTANCE). The prefetch hint (T0, NTA or
 * none) is an argument: a knob of the GEMV variants (kernels/variants.h).
 */
#include "kernels/cpu/ref_matmul.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

#ifndef BN_KERNELS_CPU_I2S_GEMV_TILE_HELPERS
#define BN_KERNELS_CPU_I2S_GEMV_TILE_HELPERS
/* Raw sum (codes * q) of an odd trailing I2_S block, with natural-order activations. */
static inline __m256i i2s_tail_block(__m256i acc, const uint8_t *w, const int8_t *x) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i packed = _mm256_loadu_si256((const __m256i *)w);
    acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(packed, 6), m3),
                              _mm256_loadu_si256((const __m256i *)x));
    acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(packed, 4), m3),
                              _mm256_loadu_si256((const __m256i *)(x + 32)));
    acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(packed, 2), m3),
                              _mm256_loadu_si256((const __m256i *)(x + 64)));
    acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(packed, m3),
                              _mm256_loadu_si256((const __m256i *)(x + 96)));
    return acc;
}

static inline int32_t reduce256(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}
#endif

/* GEMV over one full tile of BN_I2S_TILE_ROWS rows: the tile is one sequential stream of 64-byte
 * pairs, row after row, pair after pair; each activation register set feeds 8 rows. Raw sums
 * (codes * q) per row. */
static void I2S_GEMV_TILE_NAME(int32_t raw[BN_I2S_TILE_ROWS], const uint8_t *tile, const int8_t *xp,
                               int cols, bn_prefetch_hint hint) {
    __m512i acc[BN_I2S_TILE_ROWS];
#pragma GCC unroll 8
    for (int r = 0; r < BN_I2S_TILE_ROWS; r++) acc[r] = _mm512_setzero_si512();
    const __m512i m3 = _mm512_set1_epi8(3);
    const int pairs = cols / 256;
    for (int p = 0; p < pairs; p++) {
        const int8_t *xb = xp + (size_t)p * 256;
        __m512i x0 = _mm512_loadu_si512(xb), x1 = _mm512_loadu_si512(xb + 64);
        __m512i x2 = _mm512_loadu_si512(xb + 128), x3 = _mm512_loadu_si512(xb + 192);
        const uint8_t *wp = tile + (size_t)p * 64 * BN_I2S_TILE_ROWS;
#pragma GCC unroll 8
        for (int r = 0; r < BN_I2S_TILE_ROWS; r++) {
            const uint8_t *wb = wp + 64 * r;
            /* the hint must be a constant: branches the predictor always gets right */
            if (hint == BN_PREFETCH_T0)
                _mm_prefetch((const char *)(wb + GEMV_PREFETCH_DISTANCE), _MM_HINT_T0);
            else if (hint == BN_PREFETCH_NTA)
                _mm_prefetch((const char *)(wb + GEMV_PREFETCH_DISTANCE), _MM_HINT_NTA);
            __m512i packed = _mm512_loadu_si512(wb);
            acc[r] = _mm512_dpbusd_epi32(acc[r], I2S_GEMV_FIELD(packed, 6), x0);
            acc[r] = _mm512_dpbusd_epi32(acc[r], I2S_GEMV_FIELD(packed, 4), x1);
            acc[r] = _mm512_dpbusd_epi32(acc[r], I2S_GEMV_FIELD(packed, 2), x2);
            acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_and_si512(packed, m3), x3);
        }
    }
    const uint8_t *tails = tile + (size_t)pairs * 64 * BN_I2S_TILE_ROWS;
    for (int r = 0; r < BN_I2S_TILE_ROWS; r++) {
        int32_t sum = _mm512_reduce_add_epi32(acc[r]);
        if (cols % 256)
            sum += reduce256(i2s_tail_block(_mm256_setzero_si256(), tails + 32 * r,
                                            xp + (size_t)pairs * 256));
        raw[r] = sum;
    }
}
