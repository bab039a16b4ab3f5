/*
 * ops.h: the CPU operations the forward pass and the tools call. Each function here is a
 * dispatch point: it picks the active ISA path (kernels/cpu_features.h), counts the call in the
 * kernel registry under the id of the kernel that ran, and splits rows over the thread pool
 * (NULL = run on the calling thread). The scalar reference of each op (kernels/cpu/ref_ops.h, kernels/cpu/ref_matmul.h)
 * defines its result; SIMD paths are tested against it.
 *
 * Conventions: output first, then inputs, then sizes. Matrices are row-major with `cols` the row
 * length (GGUF ne[0]) and `rows` the output features (ne[1]); a batch of n_tokens vectors is
 * token-major (n_tokens x cols). For every matrix op, the result for one token does not depend on
 * n_tokens, the other tokens or the thread count (bit-identical), which batch invariance of the
 * model relies on.
 */
#ifndef BN_KERNELS_OPS_H
#define BN_KERNELS_OPS_H

#include "bitnet.h"
#include "core/large_alloc.h"
#include "kernels/threadpool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- activation quantization (spec section 4) ----
 * Per token: scale = (float)(127.0 / max(max|x|, 1e-5)) computed in double, q = clamp(
 * nearbyintf(x * scale), -128, 127), sum = sum of q. Identical int8 values on every path. */
void bn_quantize_activations(int8_t *q, float *scales, int32_t *sums, const float *x, int n_tokens,
                             int cols);

/* Q8_K activations (spec section 9.3), what the TQ1_0 / TQ2_0 matmuls take: per token and
 * 256-column block, int8 q (n_tokens x cols, natural order), the block's scale d
 * (block_scales[t * cols/256 + b]) and its 8 lane sums (lane_sums[(t * cols/256 + b) * 8 + L] =
 * sum of q over columns 32L..32L+31 of the block; kernels/cpu/ref_matmul.h). cols % 256 == 0. */
void bn_quantize_activations_q8k(int8_t *q, float *block_scales, int32_t *lane_sums, const float *x,
                                 int n_tokens, int cols);
/* Whether a ternary file type takes Q8_K activations (TQ1_0, TQ2_0) rather than the per-token
 * quantization of bn_quantize_activations (I2_S). */
bool bn_ternary_type_uses_q8k(uint32_t file_type);

/* ---- ternary matrices ----
 * A ternary weight matrix prepared for the kernels from its file form (I2_S, TQ2_0 or TQ1_0).
 * Preparation may repack into an internal layout (owned by the matrix); it validates the data
 * (I2_S code 3 is rejected with an error naming the tensor). */
typedef struct bn_ternary_matrix {
    uint32_t file_type;   /* BN_TYPE_I2_S / TQ2_0 / TQ1_0 */
    int rows, cols;
    float tensor_scale;   /* I2_S per-tensor scale; 1 for block-scaled formats */
    const uint8_t *data;  /* kernel layout (may point into the file mapping) */
    void *owned;          /* allocation behind data when repacked on its own (bn_large_alloc);
                           * NULL when data is the file's or an arena's */
    size_t owned_bytes;   /* its size */
    int layout;           /* kernel-private layout tag */
} bn_ternary_matrix;

/* name is used in error messages. file_data must hold the format's size for rows x cols. */
bn_status bn_ternary_matrix_prepare(bn_ternary_matrix *matrix, const char *name, uint32_t file_type,
                                    int rows, int cols, const void *file_data, bn_error *err);
/* The same, with a repacked layout placed in arena while it has room (else, or with NULL, in an
 * allocation of the matrix's own); the arena must outlive the matrix. */
bn_status bn_ternary_matrix_prepare_in(bn_ternary_matrix *matrix, const char *name,
                                       uint32_t file_type, int rows, int cols,
                                       const void *file_data, bn_large_arena *arena,
                                       bn_error *err);
/* Bytes a prepared rows x cols matrix of file_type takes in an arena (0: it reads the file's
 * bytes in place). */
size_t bn_ternary_matrix_repack_bytes(uint32_t file_type, int rows, int cols);
void bn_ternary_matrix_release(bn_ternary_matrix *matrix);

/* I2_S: y[t][r] = (sum_c w[r][c] * q[t][c]) / scales[t] * tensor_scale, with q, scales and sums
 * from bn_quantize_activations. TQ formats: q, scales and sums are bn_quantize_activations_q8k's
 * (q, block_scales, lane_sums) and y is llama.cpp's AVX2 dot product over the blocks
 * (kernels/cpu/ref_matmul.h). One token is a GEMV, several a GEMM; results per token are
 * identical either way. */
void bn_ternary_matmul(bn_threadpool *pool, float *y, const bn_ternary_matrix *matrix,
                       const int8_t *q, const float *scales, const int32_t *sums, int n_tokens);
/* The same for n_parts matrices that share the input q (a layer's Q, K and V; gate and up): one
 * dispatch over their rows together, so the activation copies are made once and the threads share
 * the rows of all of them. ys[i] gets matrix i's result, exactly as bn_ternary_matmul would give
 * it. Matrices of different column counts or formats, or row counts that are not multiples of 16,
 * are run one by one instead. */
void bn_ternary_matmul_parts(bn_threadpool *pool, float *const *ys,
                             const bn_ternary_matrix *const *matrices, int n_parts,
                             const int8_t *q, const float *scales, const int32_t *sums,
                             int n_tokens);

/* ---- F16 and int8 matrices (embedding / tied LM head) ---- */
/* y[t][r] = sum_c f16(w[r][c]) * x[t][c] (float accumulation in a fixed order). */
void bn_f16_matmul(bn_threadpool *pool, float *y, const uint16_t *w, const float *x, int rows,
                   int cols, int n_tokens);

/* Int8 copy of an F16 matrix with per-row scales (optional LM head): w ~= q[r][c] * row_scale[r]. */
typedef struct bn_int8_matrix {
    int rows, cols;
    int8_t *q;
    float *row_scales;
} bn_int8_matrix;
bn_status bn_int8_matrix_from_f16(bn_int8_matrix *matrix, const uint16_t *w, int rows, int cols,
                                  bn_threadpool *pool, bn_error *err);
void bn_int8_matrix_release(bn_int8_matrix *matrix);
/* y[t][r] = (sum_c q_w[r][c] * q_x[t][c]) * row_scale[r] / x_scale[t]  (activations quantized
 * with bn_quantize_activations). */
void bn_int8_matmul(bn_threadpool *pool, float *y, const bn_int8_matrix *matrix, const int8_t *q,
                    const float *scales, const int32_t *sums, int n_tokens);

/* ---- element-wise and per-token ops ---- */
/* out = x / sqrt(mean(x^2) + eps) * weight, per token (out may equal x), in spec section 4.1's
 * arithmetic (float squares summed in double, the scale in float: ref_ops.h). */
void bn_rmsnorm(float *out, const float *x, const float *weight, int n_tokens, int cols, float eps);
/* NEOX RoPE in place on n_heads heads of head_dim: dimension i pairs with i + rope_dim/2,
 * theta_i = pos * freq_base^(-2i/rope_dim) as spec section 4.1 computes it (iterated in float,
 * glibc cosf/sinf), dims >= rope_dim untouched. */
void bn_rope_neox(float *x, int n_heads, int head_dim, int rope_dim, int32_t pos, float freq_base);
/* The angle table of one position for bn_rope_neox_table: cos and sin of theta_i for
 * i < min(rope_dim, head_dim) / 2 (each array that long). */
void bn_rope_neox_angles(float *cos_table, float *sin_table, int head_dim, int rope_dim, int32_t pos,
                         float freq_base);
/* bn_rope_neox with the angles from bn_rope_neox_angles: the same floats, without computing the
 * angles again (a forward step rotates q and k of every layer at the same positions). */
void bn_rope_neox_table(float *x, int n_heads, int head_dim, int rope_dim, const float *cos_table,
                        const float *sin_table);
/* bn_rope_neox_angles with ggml's frequency factors (NULL: none; rope_dim / 2 divisors of the
 * angles, llama's rope_freqs) and linear scaling (angle = freq_scale * (theta / factor)); with
 * neither, the same floats. */
void bn_rope_angles_scaled(float *cos_table, float *sin_table, int head_dim, int rope_dim, int32_t pos,
                           float freq_base, const float *freq_factors, float freq_scale);
/* NORM RoPE (llama: pairs 2i, 2i+1) in place with the angles of one position, rounded as the NEOX
 * rotation (spec 4.1). */
void bn_rope_norm_table(float *x, int n_heads, int head_dim, int rope_dim, const float *cos_table,
                        const float *sin_table);
/* In-place softmax (max subtracted; ggml's exp and 16-lane sums, spec section 4.1). */
void bn_softmax(float *x, int n);
/* out = relu(gate)^2 * up */
void bn_relu2_mul(float *out, const float *gate, const float *up, int n);
/* out = silu(gate) * up (spec section 4.1: groups of 16 from gate[0], so call it per row) */
void bn_silu_mul(float *out, const float *gate, const float *up, int n);
/* x += y */
void bn_add(float *x, const float *y, int n);
/* Row id of an F16 table as float. Out-of-range id -> BN_ERR_RANGE naming the id and the count. */
bn_status bn_embedding_lookup_f16(float *out, const uint16_t *table, int n_rows, int cols,
                                  int32_t id, bn_error *err);

/* ---- KV cache rows ----
 * The cache types, as ggml type ids (quant/quant_format.h): BN_TYPE_F16 (the default), BN_TYPE_F32
 * and BN_TYPE_Q8_0 (llama.cpp's -ctk/-ctv q8_0: ggml's block_q8_0, 32 values in 34 bytes, fp16 d
 * then int8 q[32], value = d * q). A q8_0 row is a whole number of blocks (kv_dim % 32 == 0), and
 * the cache is one array of blocks: element i of it is q[i % 32] of block i / 32. */
bool bn_kv_type_supported(uint32_t type);
/* "f16", "f32", "q8_0" -> *type (BN_ERR_INVALID naming the value otherwise). */
bn_status bn_kv_type_parse(uint32_t *type, const char *name, bn_error *err);
/* Values a row of the type must be a multiple of (32 for q8_0, else 1). */
int bn_kv_type_block(uint32_t type);
/* Bytes of n_values values of the type (n_values a multiple of bn_kv_type_block). */
size_t bn_kv_type_bytes(uint32_t type, size_t n_values);
/* One row of n values into the type: F16 rounds to nearest even (bn_fp32_to_fp16), Q8_0 blocks
 * are quantized by bn_quantize_row_q8_0 (kernels/cpu/act_blocks.h), which is ggml's
 * quantize_row_q8_0 as llama.cpp's x86 build runs it when it writes a q8_0 cache: d =
 * fp16(amax / 127), q = round-half-even(x * (127 / amax)); an all-zero block is d = 0, q = 0. */
void bn_kv_encode_row(void *dst, uint32_t type, const float *x, int n);
/* The inverse: F16 and Q8_0 (d * q, exact in float) values as float. */
void bn_kv_decode_row(float *out, uint32_t type, const void *src, int n);

/* ---- attention ----
 * Causal attention of one token at position pos over cache positions 0..pos of one sequence.
 * q: n_heads x head_dim. K/V cache rows: one row of n_kv_heads*head_dim values per position,
 * stored in k_type / v_type (the cache types above; K and V may differ, as llama.cpp's -ctk and
 * -ctv); query head h uses KV head h / (n_heads / n_kv_heads). scores scaled by
 * 1/sqrt(head_dim). out: n_heads x head_dim. scratch: pos + 1 floats. The arithmetic is spec
 * section 4.1's (q rounded to F16 with an F16 K cache, ggml's lane orders): bn_ref_attention in
 * kernels/cpu/ref_ops.h. A q8_0 cache is read as its exact float values d * q, so q8_0 attention
 * is F32 attention over the dequantized rows, bit for bit. */
void bn_attention(float *out, const float *q, const void *k_cache, const void *v_cache,
                  uint32_t k_type, uint32_t v_type, int n_heads, int n_kv_heads, int head_dim,
                  int32_t pos, float *scratch);
/* The same for query heads [head_begin, head_end) only (out and q still hold all heads), so
 * threads can split one token's heads; each head's result is the same as from bn_attention. */
void bn_attention_heads(float *out, const float *q, const void *k_cache, const void *v_cache,
                        uint32_t k_type, uint32_t v_type, int n_heads, int n_kv_heads,
                        int head_dim, int32_t pos, float *scratch, int head_begin, int head_end);

/* ---- auxiliary ops (original plan's kernel library; scalar + one SIMD path each) ---- */
typedef struct bn_conv1d_shape {
    int in_channels, out_channels, length; /* input [in_channels][length] */
    int kernel, stride, padding, dilation;
} bn_conv1d_shape;
/* Output length, or BN_ERR_INVALID for zero sizes, kernel larger than the padded input or an
 * overflowing product. */
bn_status bn_conv1d_output_length(const bn_conv1d_shape *shape, int *out_length, bn_error *err);
/* Ternary 1-D convolution: weights I2_S-packed [out_channels][in_channels * kernel] (w_data in the
 * file layout with its tensor scale), input quantized per call like a linear layer (one absmax
 * scale over the whole input). out: [out_channels][out_length] = acc / s_x * s_w. */
bn_status bn_conv1d_ternary(float *out, const uint8_t *w_data, const float *input,
                            const bn_conv1d_shape *shape, bn_error *err);

typedef struct bn_pool1d_shape {
    int channels, length, kernel, stride, padding;
} bn_pool1d_shape;
bn_status bn_pool1d_output_length(const bn_pool1d_shape *shape, int *out_length, bn_error *err);
/* Max ignores padding; average divides by the number of valid elements in the window. */
bn_status bn_max_pool1d(float *out, const float *input, const bn_pool1d_shape *shape, bn_error *err);
bn_status bn_avg_pool1d(float *out, const float *input, const bn_pool1d_shape *shape, bn_error *err);

/* y = (x - mean) / sqrt(var + eps) * gamma + beta per channel; x is [channels][length]. */
bn_status bn_batchnorm(float *out, const float *x, const float *mean, const float *var,
                       const float *gamma, const float *beta, int channels, int length, float eps,
                       bn_error *err);

typedef enum bn_activation { BN_ACT_RELU, BN_ACT_RELU2, BN_ACT_SILU, BN_ACT_GELU } bn_activation;
/* out = act(x) element-wise; GELU is the tanh form. */
void bn_activation_apply(float *out, const float *x, int n, bn_activation act);

#endif
