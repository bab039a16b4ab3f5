/*
 * cuda_backend.h: the C interface of the CUDA kernels (the .cu files of this folder). The model's CUDA
 * backend (backend/cuda/backend_cuda.c) and the GPU tests call only what is declared here; nothing of
 * CUDA's own headers leaks into C code.
 *
 * Design: one context owns a CUDA stream; every kernel is queued on it in call order, so the
 * forward pass never waits for the GPU until the logits are copied back. All pointers given to
 * the kernel functions are device pointers unless a name says host. Each launch wrapper counts
 * its call in the kernel registry under a "cuda." id (what the receipts list); with timing on,
 * the time counted is the host-side launch time, not the GPU's execution time.
 *
 * Errors: allocation, copies and synchronisation return bn_status with a message naming the
 * operation (out-of-memory messages give the bytes asked for and the device's free and total
 * memory). Kernel launches cannot return an error to the forward pass, so the first failed launch
 * is kept in the context (sticky) and reported by the next bn_cuda_sync / bn_cuda_download.
 *
 * Results: every kernel of the forward pass computes what its CPU scalar reference computes, bit
 * for bit (spec section 4.1, bitnet.cpp's arithmetic): integer parts (activation quantization,
 * ternary and int8 dot products) are exact; float steps are explicit round-to-nearest operations
 * (fused multiply-adds exactly where the reference has fmaf, no contraction elsewhere) in the
 * reference's order, including the lane order of every float reduction (the score dot, softmax
 * chunk sums, P.V, the F16 head) and ggml's polynomial exp. One known exception: SiLU's elements
 * after the last full group of 16 in a row (glibc expf on the CPU) may differ by one ulp; the
 * backend requires ffn_dim % 16 == 0, so no model has them. The auxiliary SiLU and GELU
 * activations and batchnorm keep the reference's double evaluation.
 *
 * Every function is compiled only when the build has CUDA (BITNET_HAVE_CUDA).
 */
#ifndef BN_KERNELS_CUDA_BACKEND_H
#define BN_KERNELS_CUDA_BACKEND_H

#include "bitnet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- device and context ---- */

/* BN_OK when CUDA device `device` (0 for cuda:0) exists and is usable; name (may be NULL) gets its
 * name and compute capability. Otherwise BN_ERR_DEVICE saying why (no driver, no such device, ...). */
bn_status bn_cuda_device_info(int device, char *name, size_t name_size, bn_error *err);

typedef struct bn_cuda_context bn_cuda_context;

/* Selects device `device` (cudaSetDevice, for the calling thread) and creates a stream on it.
 * Owned by the caller (bn_cuda_context_free). */
bn_status bn_cuda_context_create(int device, bn_cuda_context **out, bn_error *err);
void bn_cuda_context_free(bn_cuda_context *ctx);

/* Device memory of bytes (256-byte aligned), for `what` (named in the out-of-memory message with
 * the sizes). Free with bn_cuda_free. */
bn_status bn_cuda_malloc(void **out, size_t bytes, const char *what, bn_error *err);
void bn_cuda_free(void *device_pointer);
/* Host to device, queued on the context's stream (the host buffer may be reused on return). */
bn_status bn_cuda_upload(bn_cuda_context *ctx, void *device_dst, const void *host_src, size_t bytes,
                         bn_error *err);
/* Device to host: waits for every queued kernel, then reports the first kernel error if any. */
bn_status bn_cuda_download(bn_cuda_context *ctx, void *host_dst, const void *device_src, size_t bytes,
                           bn_error *err);
/* Waits for the stream; BN_ERR_DEVICE naming the first failed launch or the failed wait. */
bn_status bn_cuda_sync(bn_cuda_context *ctx, bn_error *err);

/* ---- weights in the GPU layout ----
 * A ternary matrix repacked for the GPU (see cuda_layout.h): codes holds rows x cols/16 words,
 * word i of a row covering columns 16i..16i+15, column 16i + 4k + b in bits 2k+1:2k of byte b,
 * code c meaning weight c - 1. block_scales (TQ formats, NULL for I2_S) holds rows x cols/256
 * floats. */
#define BN_CUDA_FILE_I2_S  36 /* the ggml type ids of the source formats (quant/quant_format.h) */
#define BN_CUDA_FILE_TQ2_0 35
#define BN_CUDA_FILE_TQ1_0 34

typedef struct bn_cuda_ternary {
    uint32_t file_type; /* the format it was repacked from (names the kernel in the registry) */
    int rows, cols;
    const uint32_t *codes;
    const float *block_scales; /* NULL: one tensor scale */
    float tensor_scale; /* I2_S scale; 1 for block-scaled formats */
    bool has_out_scale; /* llama.cpp `bitnet` files: NAME.scale multiplies the output */
    float out_scale;
} bn_cuda_ternary;

/* One batch entry's KV cache as attention and kv_store see it: k and v are the cache's layer-0
 * bases (layer l starts capacity * kv_dim elements later; a q8_0 cache is one array of 34-byte
 * blocks, element i being q[i % 32] of block i / 32: kernels/ops.h), pos is the entry's position. */
typedef struct bn_cuda_kv_entry {
    void *k, *v;
    int32_t capacity;
    int32_t pos;
} bn_cuda_kv_entry;

/* ---- kernels (queued on ctx's stream; n is the number of tokens) ---- */

/* Spec section 4 per token: scale = (float)(127.0 / max(max|x|, 1e-5)) in double, q = clamp(
 * rint(x * scale), -128, 127). cols must be a multiple of 16. */
void bn_cuda_quantize(bn_cuda_context *ctx, int8_t *q, float *scales, const float *x, int n, int cols);
/* y[t][r] = ternary product of w with q[t] finished as the CPU's bn_ternary_finish, times
 * out_scale when set. One token: GEMV kernel; more: GEMM kernel (8 tokens per weight read).
 * Registry ids: cuda.{i2s,tq2,tq1}.{gemv,gemm} after the source format (one kernel serves all). */
void bn_cuda_ternary_matmul(bn_cuda_context *ctx, float *y, const bn_cuda_ternary *w, const int8_t *q,
                            const float *scales, int n);
/* y[t][r] = (float)(sum_c w[r][c] q[t][c]) * row_scales[r] / scales[t] (cols multiple of 16). */
void bn_cuda_int8_matmul(bn_cuda_context *ctx, float *y, const int8_t *w, const float *row_scales, int rows,
                         int cols, const int8_t *q, const float *scales, int n);
/* y[t][r] = the CPU's 16-lane F16 dot product of row r with x[t] (same order, same result). */
void bn_cuda_f16_matmul(bn_cuda_context *ctx, float *y, const uint16_t *w, const float *x, int rows, int cols,
                        int n);

/* bn_ref_rmsnorm per token (out may equal x). */
void bn_cuda_rmsnorm(bn_cuda_context *ctx, float *out, const float *x, const float *weight, int n, int cols,
                     float eps);
/* Pairs per head RoPE rotates: min(rope_dim, head_dim) / 2. */
int bn_cuda_rope_half(int head_dim, int rope_dim);
/* NEOX RoPE in place (bn_ref_rope_neox_table): angles (device) holds n rows of 2 * half floats,
 * row t the half cos values then the half sin values of token t's position, made on the host by
 * bn_ref_rope_angles (glibc cosf/sinf, which the device cannot reproduce), half =
 * bn_cuda_rope_half(head_dim, rope_dim). */
void bn_cuda_rope_neox(bn_cuda_context *ctx, float *x, int n_heads, int head_dim, int rope_dim,
                       const float *angles, int n);
/* Row entries[t].pos of layer's K and V of entry t gets k[t], v[t] in k_type / v_type (ggml type
 * ids: F32, F16, or Q8_0 quantized as bn_kv_encode_row does, so the bytes equal the CPU's). */
void bn_cuda_kv_store(bn_cuda_context *ctx, const bn_cuda_kv_entry *entries, int n, int layer, int kv_dim,
                      uint32_t k_type, uint32_t v_type, const float *k, const float *v);
/* Floats of scratch attention needs for n tokens over up to max_context positions (one score row
 * per token and head). */
size_t bn_cuda_attention_scratch_floats(int n, int n_heads, int max_context);
/* Causal GQA attention of q[t] over rows 0..entries[t].pos of layer; max_pos is the largest
 * entries[t].pos (host value, sizes the launch); scratch: of the size above for at least n
 * tokens and max_pos + 1 positions. bn_ref_attention bit for bit: q rounded to F16 with an F16 K
 * cache, q8_0 values read as (float)q * d, bn_ref_score_dot's lane order, bn_ref_softmax, the
 * 16-lane P.V order. */
void bn_cuda_attention(bn_cuda_context *ctx, float *out, const float *q, const bn_cuda_kv_entry *entries,
                       int n, int layer, int n_heads, int n_kv_heads, int head_dim, uint32_t k_type,
                       uint32_t v_type, int max_pos, float *scratch);
/* bn_ref_softmax of each of rows rows of n floats in place (its special cases too). */
void bn_cuda_softmax(bn_cuda_context *ctx, float *x, int rows, int n);
/* out = relu(gate)^2 * up (relu2 true, bn_ref_relu2_mul) or silu(gate) * up as bn_ref_silu_mul
 * applied to each row of row_width values (the FFN width; the last row may be shorter; 0 or more
 * than n_values: one row). out may equal gate. */
void bn_cuda_ffn_activation(bn_cuda_context *ctx, float *out, const float *gate, const float *up,
                            size_t n_values, size_t row_width, bool relu2);
void bn_cuda_add(bn_cuda_context *ctx, float *x, const float *y, size_t n_values);
/* x[t] = table[tokens[t]] as float (table: F16 rows of cols). */
void bn_cuda_embed(bn_cuda_context *ctx, float *x, const uint16_t *table, const int32_t *tokens, int n,
                   int cols);
/* dst[i] = src[rows[i]] (rows of cols floats; dst and src distinct). */
void bn_cuda_gather_rows(bn_cuda_context *ctx, float *dst, const float *src, const int32_t *rows, int n,
                         int cols);

/* ---- auxiliary kernels of the original plan ---- */
/* out = (x - mean[c]) * a[c] + beta[c] with a = (float)(gamma / sqrt(var + eps)) in double
 * (x: channels x length). Arguments validated by the caller (bn_ref_batchnorm_check). */
void bn_cuda_batchnorm(bn_cuda_context *ctx, float *out, const float *x, const float *mean, const float *var,
                       const float *gamma, const float *beta, int channels, int length, float eps);
/* act: 0 ReLU, 1 squared ReLU, 2 SiLU, 3 GELU (tanh form), the values of bn_activation. */
void bn_cuda_activation(bn_cuda_context *ctx, float *out, const float *x, size_t n, int act);

#ifdef __cplusplus
}
#endif

#endif
