/*
 * ops_isa.h: the AVX2 (ops_avx2.c) and AVX-512 (ops_avx512.c) paths of the non-matmul ops. Only
 * kernels/ops.c calls these, and only when bn_isa_active() says the CPU runs that path; the
 * generic code never includes an intrinsics header. Each function has the semantics of its
 * scalar reference in ref_ops.h: bit-identical where the reference is a plain float formula
 * (add, relu2_mul, ReLU, embedding, RoPE rotation, batchnorm, pooling, conv1d), within 1e-5
 * relative where the reference reduces in double or uses exp (rmsnorm, softmax, attention, SiLU,
 * GELU). Arguments are validated by the caller.
 */
#ifndef BN_KERNELS_CPU_OPS_ISA_H
#define BN_KERNELS_CPU_OPS_ISA_H

#include "kernels/cpu/ref_ops.h"

#include <stdbool.h>
#include <stdint.h>

/* 1/k! for k = 0..13: the Taylor coefficients of the double exp of the softmax paths. */
static const double bn_exp_inv_factorial[14] = {
    1.0,           1.0,            1.0 / 2,          1.0 / 6,           1.0 / 24,
    1.0 / 120,     1.0 / 720,      1.0 / 5040,       1.0 / 40320,       1.0 / 362880,
    1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};

void bn_avx2_rmsnorm(float *out, const float *x, const float *weight, int n_tokens, int cols,
                     float eps);
void bn_avx2_rope_neox(float *x, int n_heads, int head_dim, int rope_dim, int32_t pos,
                       float freq_base);
void bn_avx2_softmax(float *x, int n);
void bn_avx2_relu2_mul(float *out, const float *gate, const float *up, int n);
void bn_avx2_silu_mul(float *out, const float *gate, const float *up, int n);
void bn_avx2_add(float *x, const float *y, int n);
void bn_avx2_embedding_row_f16(float *out, const uint16_t *row, int cols);
void bn_avx2_activation_apply(float *out, const float *x, int n, bn_activation act);
void bn_avx2_attention(float *out, const float *q, const void *k_cache, const void *v_cache,
                       bool kv_f16, int n_heads, int n_kv_heads, int head_dim, int32_t pos,
                       float *scratch,
                       int head_begin, int head_end);
/* column: plan->row_length bytes of scratch. */
void bn_avx2_conv1d_core(float *out, const int8_t *w, const int8_t *q, float s_x, float s_w,
                         const bn_conv1d_shape *shape, const bn_conv1d_plan *plan, int8_t *column);
void bn_avx2_max_pool1d(float *out, const float *input, const bn_pool1d_shape *shape,
                        int out_length);
void bn_avx2_avg_pool1d(float *out, const float *input, const bn_pool1d_shape *shape,
                        int out_length);
void bn_avx2_batchnorm(float *out, const float *x, const float *mean, const float *var,
                       const float *gamma, const float *beta, int channels, int length, float eps);

void bn_avx512_rmsnorm(float *out, const float *x, const float *weight, int n_tokens, int cols,
                       float eps);
void bn_avx512_softmax(float *x, int n);
void bn_avx512_attention(float *out, const float *q, const void *k_cache, const void *v_cache,
                         bool kv_f16, int n_heads, int n_kv_heads, int head_dim, int32_t pos,
                         float *scratch,
                       int head_begin, int head_end);

#endif
