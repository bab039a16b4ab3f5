/*
 * float_encode.h: float rows written in the types of embeddings and heads (F32, F16, BF16, Q8_0,
 * Q6_K, Q4_K), in ggml's layouts (ggml-common.h). Used by `bitnet synth` and `bitnet convert`.
 *
 * The block quantizers are simple: one scale per block (and per sub-block for the k-quants) taken
 * from the block's range, values rounded to the nearest step. They write valid blocks that decode
 * the way ggml decodes them; they do not search for the error-minimising scales llama-quantize
 * does, so their bytes differ from its files.
 */
#ifndef BN_QUANT_FLOAT_ENCODE_H
#define BN_QUANT_FLOAT_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether bn_quant_encode_row writes type (BN_TYPE_F32, F16, BF16, Q8_0, Q6_K, Q4_K). */
bool bn_quant_encodable(uint32_t type);

/* One row of n floats into out in type. n must be a whole number of the type's blocks and out
 * hold the row's bytes (bn_quant_tensor_bytes); type must be encodable (asserted). F16 and BF16
 * round to nearest even; a value beyond F16's range becomes infinity (callers that care check
 * first). */
void bn_quant_encode_row(uint8_t *out, uint32_t type, const float *x, size_t n);

#endif
