/*
 * head.h: the LM head and the token embedding in every type a GGUF file may store them in (F32,
 * F16, BF16, Q8_0, Q4_K, Q6_K).
 *
 * Design: the arithmetic is ggml's, operation for operation, as Microsoft's bitnet.cpp (an x86
 * AVX-512 build of ggml, clang -O3, -ffp-contract=on) computes it (spec sections 4.1 and 9.3):
 *   - an embedding row is ggml's dequantize_row_* (fp16 / bf16 conversion for the float types);
 *   - F16 head: bn_f16_matmul (kernels/ops.h); F32 and BF16 heads take the same 16-lane order
 *     with float activations (ref_matmul.h: lane c % 16, fused multiply-adds, pairwise reduction);
 *   - Q8_0 head: activations quantized per token to Q8_0, then ggml's AVX2 vec_dot_q8_0_q8_0;
 *   - Q4_K / Q6_K heads: activations quantized per token to Q8_K, then ggml's AVX2
 *     vec_dot_q4_K_q8_K / vec_dot_q6_K_q8_K.
 * The exact float steps are written down in cpu/head_ref.h. Every ISA path (scalar, AVX2,
 * AVX-512) gives the same bits, for any thread count and batch size: a token's result never
 * depends on the other tokens.
 */
#ifndef BN_KERNELS_HEAD_H
#define BN_KERNELS_HEAD_H

#include "bitnet.h"
#include "kernels/threadpool.h"

#include <stddef.h>
#include <stdint.h>

typedef struct bn_head_matrix {
    uint32_t type;    /* BN_TYPE_F32, F16, BF16, Q8_0, Q4_K, Q6_K */
    int rows, cols;   /* rows: vocabulary; cols: hidden size (row length, GGUF ne[0]) */
    const void *data; /* the file's bytes, rows one after another (not owned) */
} bn_head_matrix;

/* Checks the type (BN_ERR_UNSUPPORTED naming name and the type for others) and the shape (cols
 * a multiple of the type's block: 32 for Q8_0, 256 for K-quants; BN_ERR_FORMAT naming name), and
 * fills *m. data must hold rows * bn_head_row_bytes(type, cols) bytes. */
bn_status bn_head_matrix_init(bn_head_matrix *m, const char *name, uint32_t type, int rows, int cols,
                              const void *data, bn_error *err);
/* Bytes of one row of cols values; 0 for a type this module does not take or a bad cols. */
size_t bn_head_row_bytes(uint32_t type, int cols);
/* Row `row` as float, exactly as ggml's dequantize_row_* / fp16 / bf16 conversion gives it
 * (embedding lookup); out holds cols floats. */
void bn_head_dequantize_row(float *out, const bn_head_matrix *m, int row);
/* Grows the calling thread's scratch for the quantized activations of n_tokens x cols
 * (BN_ERR_NOMEM when it cannot); float types need none. */
bn_status bn_head_reserve(const bn_head_matrix *m, int n_tokens, bn_error *err);
/* y[t * rows + r] = head row r . x[t] for n_tokens token-major float rows x (cols each), rows
 * split over pool (NULL = calling thread). Cannot fail: without scratch it quantizes the
 * activations block by block where they are used (same bits, slower). */
void bn_head_matmul(bn_threadpool *pool, float *y, const bn_head_matrix *m, const float *x,
                    int n_tokens);

#endif
