/*
 * matmul_avx512gfni.c: the one-token I2_S tile GEMV of the AVX-512 path with the 2-bit fields
 * decoded by GFNI (one vgf2p8affineqb per field instead of a shift and a mask), compiled with
 * -mgfni on its own so the rest of the AVX-512 path still runs on AVX-512 CPUs without GFNI
 * (Cascade Lake); matmul_avx512.c calls it for the GEMV variants with GFNI (kernels/variants.h). The decode is what a
 * memory-bound GEMV spends its instructions on: fewer of them per cache line leave the core room
 * for more loads in flight. Measured on the development machine at 2 threads with the probe at
 * 79-84 GB/s: the 2B-4T projections in model order, four rounds, 74.0-75.6 GB/s against 68.8-71.0
 * with shift and mask; in the model (bench_decode_batch batch 1, five paired runs at 81-83 GB/s)
 * the ternary projections took 7.26-7.44 ms per token against 7.41-7.54; equal at about 50 GB/s.
 * The integer sums are the same.
 */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#include "kernels/cpu/matmul_isa.h"

#include <immintrin.h>

/* The GF(2) matrix that moves bits shift and shift + 1 of every byte to bits 0 and 1 and clears
 * the others: byte 7 - i of the qword is the mask of the input bits that form output bit i. */
#define GFNI_FIELD_MATRIX(shift) ((long long)((1ULL << (shift)) << 56 | (1ULL << ((shift) + 1)) << 48))

#define GEMV_PREFETCH_DISTANCE BN_I2S_GEMV_PREFETCH_DISTANCE
#define I2S_GEMV_TILE_NAME gemv_tile_gfni
#define I2S_GEMV_FIELD(packed, shift) \
    _mm512_gf2p8affine_epi64_epi8((packed), _mm512_set1_epi64(GFNI_FIELD_MATRIX(shift)), 0)
#include "kernels/cpu/i2s_gemv_tile.h"

void bn_avx512gfni_i2s_gemv_tile(int32_t raw[BN_I2S_TILE_ROWS], const uint8_t *tile,
                                 const int8_t *xp, int cols, bn_prefetch_hint hint) {
    gemv_tile_gfni(raw, tile, xp, cols, hint);
}
