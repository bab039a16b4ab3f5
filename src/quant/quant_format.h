/*
 * quant_format.h: the table of tensor formats, one row per ggml type id this project knows
 * (F32, F16, BF16, Q8_0, Q4_K, Q6_K, TQ1_0, TQ2_0, I2_S). The GGUF reader takes tensor sizes from it; the
 * ternary formats add their pack/unpack reference routines (see quant/ternary.h).
 */
#ifndef BN_QUANT_FORMAT_H
#define BN_QUANT_FORMAT_H

#include "bitnet.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum bn_tensor_type {
    BN_TYPE_F32 = 0,
    BN_TYPE_F16 = 1,
    BN_TYPE_Q8_0 = 8,
    BN_TYPE_Q4_K = 12,
    BN_TYPE_Q6_K = 14,
    BN_TYPE_BF16 = 30,
    BN_TYPE_TQ1_0 = 34,
    BN_TYPE_TQ2_0 = 35,
    BN_TYPE_I2_S = 36
} bn_tensor_type;

typedef struct bn_quant_format {
    uint32_t type_id;
    const char *name;          /* lower case, as ggml prints it: "f32", "i2_s", "tq2_0" */
    uint32_t block_elements;   /* elements per block (1 for plain floats) */
    uint32_t block_bytes;      /* bytes per block */
    uint32_t tensor_extra_bytes; /* bytes after all blocks (I2_S: 32 for the scale and padding) */
    uint32_t row_multiple;     /* ne[0] must be a multiple of this */
    bool ternary;
} bn_quant_format;

/* NULL when the type id is not one this project knows. */
const bn_quant_format *bn_quant_format_get(uint32_t type_id);

/* Bytes a tensor of n_elements (row length row_len) occupies. Fails with BN_ERR_UNSUPPORTED for
 * an unknown type and BN_ERR_FORMAT when the row length does not fit the format's blocks or the
 * size overflows; the message names the type id (the caller adds the tensor name). */
bn_status bn_quant_tensor_bytes(uint32_t type_id, uint64_t n_elements, uint64_t row_len,
                                uint64_t *out_bytes, bn_error *err);

#endif
