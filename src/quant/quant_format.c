/*
 * quant_format.c: the format table. Adding a format means adding one row here (and its
 * pack/unpack and kernels elsewhere), not editing switch statements across the tree.
 */
#include "quant/quant_format.h"

static const bn_quant_format formats[] = {
    {BN_TYPE_F32, "f32", 1, 4, 0, 1, false},
    {BN_TYPE_F16, "f16", 1, 2, 0, 1, false},
    {BN_TYPE_Q8_0, "q8_0", 32, 34, 0, 32, false},
    {BN_TYPE_Q4_K, "q4_K", 256, 144, 0, 256, false},
    {BN_TYPE_Q6_K, "q6_K", 256, 210, 0, 256, false},
    {BN_TYPE_BF16, "bf16", 1, 2, 0, 1, false},
    {BN_TYPE_TQ1_0, "tq1_0", 256, 54, 0, 256, true},
    {BN_TYPE_TQ2_0, "tq2_0", 256, 66, 0, 256, true},
    /* I2_S: 4 codes per byte in 128-weight blocks over the flattened tensor, then one float32
     * per-tensor scale padded to 32 bytes (spec section 2). */
    {BN_TYPE_I2_S, "i2_s", 128, 32, 32, 128, true},
};

const bn_quant_format *bn_quant_format_get(uint32_t type_id) {
    for (unsigned i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (formats[i].type_id == type_id) return &formats[i];
    return NULL;
}

bn_status bn_quant_tensor_bytes(uint32_t type_id, uint64_t n_elements, uint64_t row_len,
                                uint64_t *out_bytes, bn_error *err) {
    const bn_quant_format *format = bn_quant_format_get(type_id);
    if (!format) return bn_error_set(err, BN_ERR_UNSUPPORTED, "unknown tensor type id %u", type_id);
    if (row_len == 0 || row_len % format->row_multiple != 0)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "row length %llu is not a multiple of %u required by type %s",
                            (unsigned long long)row_len, format->row_multiple, format->name);
    if (n_elements % format->block_elements != 0)
        return bn_error_set(err, BN_ERR_FORMAT, "element count %llu is not a multiple of %u (%s)",
                            (unsigned long long)n_elements, format->block_elements, format->name);
    uint64_t blocks = n_elements / format->block_elements;
    if (blocks > (UINT64_MAX - format->tensor_extra_bytes) / format->block_bytes)
        return bn_error_set(err, BN_ERR_FORMAT, "size of %llu elements of %s overflows",
                            (unsigned long long)n_elements, format->name);
    *out_bytes = blocks * format->block_bytes + format->tensor_extra_bytes;
    return BN_OK;
}
