/*
 * ternary.h: reference pack/unpack of the three ternary file formats (spec sections 2 and 3).
 *
 *   I2_S  (36): 2-bit codes {0,1,2} = {-1,0,+1}, 128-weight blocks of 32 bytes over the flattened
 *               tensor (byte j holds weights j, 32+j, 64+j, 96+j in bits 7:6, 5:4, 3:2, 1:0), then
 *               one float32 tensor scale and padding (32 bytes). Code 3 is invalid.
 *   TQ2_0 (35): 256-weight blocks {qs[64], fp16 d}; per half of 128 weights, byte m holds weights
 *               m + 32n in bits 2n+1:2n. Value = (q - 1) * d (q = 3 decodes as +2, as llama.cpp).
 *   TQ1_0 (34): 256-weight blocks {qs[48], qh[4], fp16 d}; base-3 digits, 5 per qs byte and 4 per
 *               qh byte, stored as ceil(v * 256 / 243) so digit n is ((uint8)(b * 3^n) * 3) >> 8.
 *
 * These routines are the definition the kernels and their tests are checked against; they favour
 * clarity over speed (the kernels never unpack to float).
 */
#ifndef BN_QUANT_TERNARY_H
#define BN_QUANT_TERNARY_H

#include "bitnet.h"

#include <stddef.h>
#include <stdint.h>

#define BN_I2S_BLOCK 128        /* weights per I2_S block */
#define BN_I2S_BLOCK_BYTES 32
#define BN_TQ_BLOCK 256         /* weights per TQ1_0 / TQ2_0 block */
#define BN_TQ2_BLOCK_BYTES 66
#define BN_TQ1_BLOCK_BYTES 54

/* Bytes of an n_elements tensor in the given ternary format (BN_ERR_INVALID for a non-ternary
 * type or an element count that is not a whole number of blocks). */
bn_status bn_ternary_bytes(size_t *out_bytes, uint32_t type, size_t n_elements, bn_error *err);

/* Packs values (each -1, 0 or +1) into dst in the file form of type. I2_S: scale is the tensor
 * scale. TQ1_0/TQ2_0: block b gets fp16(block_scales[b]), or fp16(scale) for every block when
 * block_scales is NULL. dst must hold bn_ternary_bytes(); I2_S padding bytes are zeroed.
 * Values outside {-1,0,1} -> BN_ERR_INVALID naming the index. */
bn_status bn_ternary_pack(void *dst, uint32_t type, const int8_t *values, size_t n_elements,
                          float scale, const float *block_scales, bn_error *err);

/* Unpacks the ternary values (q - 1) without scales. I2_S code 3 -> BN_ERR_FORMAT naming the
 * element index; TQ2_0 code 3 yields +2 (llama.cpp's decoding). */
bn_status bn_ternary_unpack_values(int8_t *values, uint32_t type, const void *src,
                                   size_t n_elements, bn_error *err);

/* Unpacks to float: value * tensor scale (I2_S) or value * fp16 block scale (TQ formats). */
bn_status bn_ternary_unpack(float *dst, uint32_t type, const void *src, size_t n_elements,
                            bn_error *err);

/* The I2_S tensor scale stored after the n_elements / 4 code bytes. */
float bn_i2s_scale(const void *src, size_t n_elements);

/* Index of the first I2_S weight with the invalid code 3, or -1 when there is none. */
int64_t bn_i2s_find_code3(const void *src, size_t n_elements);

/* One base-3 digit of a TQ1_0 byte: digit n (0 = most significant) of b. */
static inline int bn_tq1_digit(uint8_t b, int n) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    uint8_t shifted = (uint8_t)(b * pow3[n]);
    return ((unsigned)shifted * 3u) >> 8;
}

#endif
