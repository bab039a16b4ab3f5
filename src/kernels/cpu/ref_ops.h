/*
 * ref_ops.h: scalar reference kernels of the non-matmul operations in kernels/ops.h (norms, RoPE,
 * softmax, activations, attention, and the auxiliary conv/pool/batchnorm ops). These define the
 * result of every op; the AVX2/AVX-512 paths (ops_isa.h) are tested against them. They run on any
 * CPU and are the production path where no SIMD path exists.
 *
 * Design: the ops of the forward pass (RMSNorm, RoPE, attention with its softmax, the FFN
 * activations) follow spec section 4.1 operation by operation: the arithmetic of bitnet.cpp's
 * batch path (ggml's AVX-512 build), fixed down to the lane order of every float reduction
 * (kernels/cpu/exact_arith.h), because random-weight models amplify a 1-ulp difference through
 * int8 rounding flips. Every SIMD path gives the same bits. The auxiliary ops (GELU, SiLU as an
 * activation alone, conv/pool/batchnorm) keep double evaluation of their transcendental parts;
 * their element-wise float formulas are written so the SIMD paths reproduce them bit for bit.
 *
 * The functions here take validated arguments; kernels/ops.c validates (the shape checkers below
 * are shared by every path so all paths accept exactly the same inputs).
 */
#ifndef BN_KERNELS_CPU_REF_OPS_H
#define BN_KERNELS_CPU_REF_OPS_H

#include "bitnet.h"
#include "kernels/ops.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- per-token and element-wise ops (semantics in kernels/ops.h) ---- */

/* Per token (spec 4.1): sum = the float squares x_i * x_i added in order in double;
 * scale = bn_rmsnorm_scale(sum) (mean rounded to float, 1.0f / sqrtf(mean + eps) in float);
 * out = (x * scale) * weight in float. */
void bn_ref_rmsnorm(float *out, const float *x, const float *weight, int n_tokens, int cols,
                    float eps);
/* The sequential double sum of the float squares of n values (RMSNorm's definition; the SIMD
 * paths sum in lanes and fall back to this where the lanes' sum could round differently). */
double bn_ref_sum_squares(const float *x, int n);

/* theta_scale = powf(freq_base, -2.0f / rope_dim), in float. */
float bn_ref_rope_theta_scale(int rope_dim, float freq_base);
/* cos and sin of the first count angles of a position (spec 4.1): theta = (float)pos, then
 * theta *= theta_scale after each pair, in float; cosf and sinf of glibc. */
void bn_ref_rope_angles(float *cos_out, float *sin_out, int count, int rope_dim, int32_t pos,
                        float freq_base);
/* bn_ref_rope_angles with ggml's frequency factors and linear scaling (rope_yarn without
 * extrapolation): pair j's angle is freq_scale * (theta / freq_factors[j]) (factors NULL: theta),
 * theta iterated as above. With no factors and freq_scale 1 the same floats as bn_ref_rope_angles. */
void bn_ref_rope_angles_scaled(float *cos_out, float *sin_out, int count, int rope_dim, int32_t pos,
                               float freq_base, const float *freq_factors, float freq_scale);
/* NORM rotation (llama) of pairs (2j, 2j + 1) with the angles of a table (count = rope_dim / 2 after
 * the clamp), each pair rounded as the NEOX rotation below. */
void bn_ref_rope_norm_table(float *x, int n_heads, int head_dim, int rope_dim, const float *cos_table,
                            const float *sin_table);
/* NEOX rotation of pairs (i, i + rope_dim / 2): x0' = fmaf(x0, c, -(x1 * s)),
 * x1' = fmaf(x0, s, x1 * c) with x1 * s and x1 * c rounded first. rope_dim is clamped to
 * head_dim and rounded down to even; dims >= rope_dim are untouched. freq_base > 0. */
void bn_ref_rope_neox(float *x, int n_heads, int head_dim, int rope_dim, int32_t pos,
                      float freq_base);
/* The same rotation with the angles from a table (half = rope_dim / 2 entries after the clamp,
 * as bn_ref_rope_angles gives them). */
void bn_ref_rope_neox_table(float *x, int n_heads, int head_dim, int rope_dim, const float *cos_table,
                            const float *sin_table);

/* Softmax in place, defined for every input (the result always sums to 1 unless it is NaN):
 *   - any NaN in x: every output is NaN;
 *   - max is +inf: the +inf entries share 1 equally, everything else is 0;
 *   - all entries -inf: uniform 1/n (there is no information to prefer any entry);
 *   - otherwise (spec 4.1, ggml's soft_max): e_i = bn_expf_ggml(x_i - max); the e of each
 *     16-element chunk (zero-padded) summed by the 16-lane halving tree in float, the chunk sums
 *     added in double; p_i = e_i * (float)(1.0 / sum). x_i - max may round to -inf for huge
 *     ranges (e.g. -3e38 and 3e38), which gives exactly 0.
 * n <= 0 does nothing. */
void bn_ref_softmax(float *x, int n);
/* The exp pass of the above: x_i = bn_expf_ggml(x_i - max) in place; returns the double sum of
 * the chunk trees. */
double bn_ref_softmax_exp_sum(float *x, int n, float max);
/* The special cases above, shared by every path: given max (over x) and whether x has a NaN,
 * fills x and returns true when the input is one of them; false means "finite max, compute". */
bool bn_ref_softmax_special(float *x, int n, float max, bool has_nan);

/* out = r*r*up with r = gate < 0 ? 0 : gate (a NaN gate stays NaN). */
void bn_ref_relu2_mul(float *out, const float *gate, const float *up, int n);
/* out = silu(gate) * up as ggml's AVX-512 build computes it (spec 4.1): for the elements of
 * the full groups of 16 from the start, silu(x) = x / (1.0f + bn_expf_ggml(-x)); for the rest,
 * x / (1.0f + expf(-x)) with glibc's expf; all in float. Groups count from gate[0], so a caller
 * runs it per row of the FFN width. */
void bn_ref_silu_mul(float *out, const float *gate, const float *up, int n);
void bn_ref_add(float *x, const float *y, int n);
void bn_ref_embedding_row_f16(float *out, const uint16_t *row, int cols);

/* Activations (float in, float out). ReLU: x < 0 ? 0 : x (NaN and -0 pass through, as MAXPS with
 * 0 first does). SiLU: x / (1 + exp(-x)) in double. GELU (tanh form) via the exact identity
 * 0.5 x (1 + tanh(y)) = x / (1 + exp(-2y)), y = sqrt(2/pi) (x + 0.044715 x^3), in double: no
 * cancellation for negative x. -inf maps to -0 for SiLU and GELU (the limit), NaN stays NaN. */
float bn_ref_relu(float x);
float bn_ref_silu(float x);
float bn_ref_gelu(float x);
void bn_ref_activation_apply(float *out, const float *x, int n, bn_activation act);

/* Attention (semantics in kernels/ops.h), spec 4.1: with an F16 K cache q is rounded to F16
 * (bn_ref_query_value); score_t = bn_ref_score_dot(q, k_t) * bn_attention_scale(head_dim) in
 * float; p = bn_ref_softmax(scores); out[d] = the 16-lane sum of p_t * v_t[d] over the positions
 * (lane l takes the positions t = l mod 16 in order, each step fmaf(v, p, lane), then
 * bn_tree16). Cache values are read as float: F16 converted exactly, Q8_0 as (float)q * d with d
 * the block's fp16 scale converted exactly (a product of at most 19 significant bits, so exact).
 * A q8_0 cache thus gives, bit for bit, the F32 attention of its dequantized rows, and every
 * path computes the same products whatever order it converts in. The query of a q8_0 K cache
 * stays float (llama.cpp quantizes it to Q8_0 blocks for an integer dot): one rounding less, and
 * the F32 path's lane order carries over unchanged, so every ISA and CUDA give the same bits; a
 * decode step reads the same cache bytes either way (the integer dot's speed was not measured).
 * Preconditions (the op has no error return; the model
 * checks them once at load): n_kv_heads >= 1 divides n_heads, head_dim >= 1, pos >= 0, caches
 * hold rows 0..pos (q8_0: n_kv_heads * head_dim % 32 == 0). Only rows 0..pos are read, so the
 * result depends on nothing but this token's query and its cache prefix. */
void bn_ref_attention(float *out, const float *q, const void *k_cache, const void *v_cache,
                      uint32_t k_type, uint32_t v_type, int n_heads, int n_kv_heads, int head_dim,
                      int32_t pos, float *scratch, int head_begin, int head_end);
/* Dims per step of the score dot (ggml_vec_dot_f16: 4 accumulators of 16 lanes). */
#define BN_SCORE_STEP 64
/* The query value the score uses: q rounded to F16 and back with an F16 K cache, else q. */
float bn_ref_query_value(float q, uint32_t k_type);
/* q . k of one position as ggml_vec_dot_f16 on AVX-512: dims below the last multiple of 64 go
 * to 4 accumulators of 16 lanes (dim d to accumulator (d / 16) % 4, lane d % 16, each step one
 * fmaf); acc0 + acc2 and acc1 + acc3, their sum, bn_tree16; then the remaining dims' float
 * products added one by one in double; rounded to float once. q is the raw query (rounded here
 * as bn_ref_query_value says), k the cache row at element index base. */
float bn_ref_score_dot(const float *q, const void *k_cache, uint32_t k_type, size_t base, int head_dim);
/* 1.0f / sqrtf(head_dim) in float, as llama.cpp computes the attention scale. */
float bn_attention_scale(int head_dim);

/* ---- auxiliary ops ---- */

/* A validated conv1d shape with its derived sizes. */
typedef struct bn_conv1d_plan {
    int out_length;
    int row_length;   /* in_channels * kernel: one output channel's weights */
    size_t n_weights; /* out_channels * row_length */
    size_t n_input;   /* in_channels * length */
    size_t n_output;  /* out_channels * out_length */
} bn_conv1d_plan;

/* Largest in_channels * kernel: |acc| <= 128 * row_length must fit an int32. */
#define BN_CONV1D_MAX_ROW (INT32_MAX / 128)

/* Validates the shape (every size > 0, padding >= 0, dilated kernel <= padded input, products
 * that fit, row_length <= BN_CONV1D_MAX_ROW) and fills plan. With need_i2s it also requires
 * n_weights to be a multiple of 128 (the I2_S block). Errors: BN_ERR_INVALID naming the field. */
bn_status bn_ref_conv1d_plan(bn_conv1d_plan *plan, const bn_conv1d_shape *shape, bool need_i2s,
                             bn_error *err);
/* Unpacks n (a multiple of 128) I2_S weights to int8 {-1, 0, +1}; code 3 -> BN_ERR_FORMAT
 * naming the weight index. */
bn_status bn_ref_i2s_unpack(int8_t *w, const uint8_t *data, size_t n, bn_error *err);
/* Quantizes x (n values) with one absmax scale exactly as spec section 4 (scale computed in
 * double and stored as float, q = clamp(nearbyintf(x * scale), -128, 127)); *scale gets s_x.
 * A non-finite value -> BN_ERR_INVALID naming its index. */
bn_status bn_ref_quantize_block(int8_t *q, float *scale, const float *x, size_t n, bn_error *err);
/* The convolution proper over unpacked weights w [out][in*kernel] (index c*kernel + k) and
 * quantized input q [in][length]: out[o][l] = ((float)acc / s_x) * s_w with the exact int32
 * acc = sum_c sum_k w[o][c][k] * q[c][l*stride - padding + k*dilation] (outside = 0). */
void bn_ref_conv1d_core(float *out, const int8_t *w, const int8_t *q, float s_x, float s_w,
                        const bn_conv1d_shape *shape, const bn_conv1d_plan *plan);

/* Validates (sizes > 0, 0 <= padding < kernel so every window holds a real element, kernel <=
 * padded input, products that fit) and returns the output length. */
bn_status bn_ref_pool1d_plan(int *out_length, const bn_pool1d_shape *shape, bn_error *err);
/* Max: NaN if the window holds one, else the largest element. Average: float sum of the valid
 * elements in window order, divided by their count. */
void bn_ref_max_pool1d(float *out, const float *input, const bn_pool1d_shape *shape,
                       int out_length);
void bn_ref_avg_pool1d(float *out, const float *input, const bn_pool1d_shape *shape,
                       int out_length);

/* Validates channels/length > 0, finite eps >= 0 and finite var[c] + eps > 0 for every c. */
bn_status bn_ref_batchnorm_check(const float *var, int channels, int length, float eps,
                                 bn_error *err);
/* a = (float)(gamma / sqrt(var + eps)) in double; every path computes y = (x - mean) * a + beta
 * in float with it. */
float bn_ref_batchnorm_scale(float var, float gamma, float eps);
void bn_ref_batchnorm(float *out, const float *x, const float *mean, const float *var,
                      const float *gamma, const float *beta, int channels, int length, float eps);

#endif
