/*
 * ops_isa.h: the AVX2 (ops_avx2.c) and AVX-512 (ops_avx512.c) paths of the non-matmul ops. Only
 * kernels/ops.c calls these, and only when bn_isa_active() says the CPU runs that path; the
 * generic code never includes an intrinsics header. Each function has the semantics of its
 * scalar reference in ref_ops.h and gives its bits (the ops of spec section 4.1 included:
 * rmsnorm, RoPE, softmax, attention, silu_mul), except the auxiliary SiLU and GELU activations
 * (bn_activation_apply), within 1e-5 relative. Arguments are validated by the caller; the
 * attention kernels take the head sizes their *_supports function accepts.
 */
#ifndef BN_KERNELS_CPU_OPS_ISA_H
#define BN_KERNELS_CPU_OPS_ISA_H

#include "kernels/cpu/act_blocks.h"
#include "kernels/cpu/ref_ops.h"
#include "quant/quant_format.h"

#include <stdbool.h>
#include <stdint.h>

/* Prefetches the n floats of a norm's weight vector. RMSNorm reads it only in its second pass,
 * and a layer's norm weights were last read a whole token of weight streaming ago, so they come
 * from memory a line at a time; asked for before the first pass, they arrive while it runs (2B-4T
 * shape, one token: the norms took 0.29 ms per token, perf put 80% of it on the weight loads;
 * with the prefetch 0.23). */
static inline void bn_prefetch_floats(const float *v, int n) {
    for (int i = 0; i < n; i += 16) __builtin_prefetch(v + i, 0, 3);
}

/* Positions ahead that the SIMD attention loops prefetch K and V rows from. One head's slice of a
 * cache row is a few lines at a stride of the whole KV row, and a layer's cache was last read a
 * token of weight streaming ago, so the rows miss every cache and the hardware prefetchers do not
 * follow that pattern fast enough (2B-4T shape, batch 8 at about 80 positions, AVX-512: attention
 * 12.7 -> 4.3 ms of thread time per step; 4 and 16 positions ahead measured the same as 8). */
#define BN_KV_PREFETCH_POSITIONS 8

/* Byte address of element index of a cache of the type (kernels/ops.h: a q8_0 cache is one
 * array of blocks). */
static inline const char *bn_kv_element_address(const void *cache, uint32_t type, size_t index) {
    if (type == BN_TYPE_Q8_0)
        return (const char *)((const bn_q8_0_block *)cache + index / BN_Q8_0_BLOCK) + 2 + index % BN_Q8_0_BLOCK;
    return (const char *)cache + index * (type == BN_TYPE_F16 ? 2u : 4u);
}

/* Prefetches the lines of one head's slice (head_dim values from element index) of a cache (for
 * q8_0 from the first block's scale to the last block's end). */
static inline void bn_prefetch_kv_slice(const void *cache, uint32_t type, size_t index, int head_dim) {
    const char *p = bn_kv_element_address(cache, type, index);
    if (type == BN_TYPE_Q8_0) p -= 2 + index % BN_Q8_0_BLOCK;
    const uintptr_t first = (uintptr_t)p & ~(uintptr_t)63;
    const uintptr_t last = (uintptr_t)bn_kv_element_address(cache, type, index + (size_t)head_dim - 1) +
                           (type == BN_TYPE_F32 ? 3u : type == BN_TYPE_F16 ? 1u : 0u);
    for (uintptr_t line = first; line <= last; line += 64) __builtin_prefetch((const void *)line, 0, 3);
}

/* Prefetches the K and V slices (head at kv_offset, rows of row elements) of the positions
 * [from, to) that exist (below n_pos). */
static inline void bn_prefetch_kv_positions(const void *k_cache, uint32_t k_type, const void *v_cache,
                                            uint32_t v_type, size_t row, size_t kv_offset, int head_dim,
                                            int from, int to, int n_pos) {
    for (int t = from; t < to && t < n_pos; t++) {
        bn_prefetch_kv_slice(k_cache, k_type, (size_t)t * row + kv_offset, head_dim);
        bn_prefetch_kv_slice(v_cache, v_type, (size_t)t * row + kv_offset, head_dim);
    }
}

void bn_avx2_rmsnorm(float *out, const float *x, const float *weight, int n_tokens, int cols,
                     float eps);
void bn_avx2_rope_neox(float *x, int n_heads, int head_dim, int rope_dim, int32_t pos,
                       float freq_base);
void bn_avx2_rope_neox_table(float *x, int n_heads, int head_dim, int rope_dim,
                             const float *cos_table, const float *sin_table);
void bn_avx2_softmax(float *x, int n);
void bn_avx2_relu2_mul(float *out, const float *gate, const float *up, int n);
void bn_avx2_silu_mul(float *out, const float *gate, const float *up, int n);
void bn_avx2_add(float *x, const float *y, int n);
void bn_avx2_embedding_row_f16(float *out, const uint16_t *row, int cols);
void bn_avx2_activation_apply(float *out, const float *x, int n, bn_activation act);
bool bn_avx2_attention_supports(int head_dim);
void bn_avx2_attention(float *out, const float *q, const void *k_cache, const void *v_cache,
                       uint32_t k_type, uint32_t v_type, int n_heads, int n_kv_heads, int head_dim,
                       int32_t pos, float *scratch, int head_begin, int head_end);
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
bool bn_avx512_attention_supports(int head_dim);
void bn_avx512_attention(float *out, const float *q, const void *k_cache, const void *v_cache,
                         uint32_t k_type, uint32_t v_type, int n_heads, int n_kv_heads, int head_dim,
                         int32_t pos, float *scratch, int head_begin, int head_end);

#endif
