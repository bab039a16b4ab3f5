/*
 * neon_isa.h: the aarch64 NEON kernels (matmul_neon.c, ops_neon.c: plain Advanced SIMD, every
 * ARMv8-A CPU) and NEON + dot product kernels (matmul_neondot.c, built with
 * -march=armv8.2-a+dotprod, run only where HWCAP_ASIMDDP says so). Only kernels/matmul.c and
 * kernels/ops.c call these, through their tables (BN_ARM_KERNEL), on the path bn_isa_active()
 * or the class's variant names; a path without an entry runs the next narrower one (neondot ->
 * neon -> scalar), so the receipt names what ran. head_neon.c's LM head kernels are reached the
 * same way from kernels/head.c.
 *
 * Each kernel has the contract of its scalar reference (ref_matmul.h, ref_ops.h) and gives its
 * bits: exact integer sums for the ternary and int8 kernels, the reference's float operations in
 * the reference's order for the others. Spec section 4.1 orders are orders on lanes, not on
 * registers: the 16-lane F16 dot product runs as four 4-lane registers holding lanes 0-3, 4-7,
 * 8-11 and 12-15, reduced by the same pairwise tree.
 */
#ifndef BN_KERNELS_CPU_NEON_ISA_H
#define BN_KERNELS_CPU_NEON_ISA_H

#include "kernels/cpu/head_ref.h"
#include "kernels/cpu/ref_matmul.h"
#include "kernels/cpu/ref_ops.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- matmul_neon.c ---- */
void bn_neon_quantize_activations(int8_t *q, float *scales, int32_t *sums, const float *x,
                                  int n_tokens, int cols);
/* I2_S, TQ2_0 and TQ1_0 sums. */
void bn_neon_ternary_sums(int32_t *out, const bn_ternary_matrix *matrix, const bn_act_view *act,
                          int row_begin, int row_end);
void bn_neon_f16_matmul(float *y, const uint16_t *w, const float *x, int rows, int cols,
                        int n_tokens, int row_begin, int row_end, bn_prefetch_hint hint);
void bn_neon_int8_sums(int32_t *out, const bn_int8_matrix *matrix, const bn_act_view *act,
                       int row_begin, int row_end);

/* ---- matmul_neondot.c ---- */
/* I2_S, TQ2_0 and TQ1_0, as bn_neon_ternary_sums. */
void bn_neondot_ternary_sums(int32_t *out, const bn_ternary_matrix *matrix, const bn_act_view *act,
                             int row_begin, int row_end);
void bn_neondot_int8_sums(int32_t *out, const bn_int8_matrix *matrix, const bn_act_view *act,
                          int row_begin, int row_end);

/* ---- head_neon.c: the LM head kernels of head_ref.h (the F16 head is bn_neon_f16_matmul) ---- */
void bn_neon_head_f32(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                      int row_end);
void bn_neon_head_bf16(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end);
void bn_neon_head_q8_0(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end);
void bn_neon_head_q4_k(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end);
void bn_neon_head_q6_k(float *y, const bn_head_matrix *m, const bn_head_act *act, int row_begin,
                       int row_end);

/* ---- ops_neon.c ---- */
void bn_neon_rmsnorm(float *out, const float *x, const float *weight, int n_tokens, int cols,
                     float eps);
void bn_neon_rope_neox(float *x, int n_heads, int head_dim, int rope_dim, int32_t pos,
                       float freq_base);
void bn_neon_rope_neox_table(float *x, int n_heads, int head_dim, int rope_dim,
                             const float *cos_table, const float *sin_table);
void bn_neon_relu2_mul(float *out, const float *gate, const float *up, int n);
void bn_neon_silu_mul(float *out, const float *gate, const float *up, int n);
void bn_neon_add(float *x, const float *y, int n);
void bn_neon_embedding_row_f16(float *out, const uint16_t *row, int cols);
void bn_neon_softmax(float *x, int n);
bool bn_neon_attention_supports(int head_dim);
void bn_neon_attention(float *out, const float *q, const void *k_cache, const void *v_cache,
                       uint32_t k_type, uint32_t v_type, int n_heads, int n_kv_heads, int head_dim,
                       int32_t pos, float *scratch, int head_begin, int head_end);

#endif
