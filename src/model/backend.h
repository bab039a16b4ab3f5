/*
 * backend.h: the operations forward.c runs, as a table of function pointers a backend fills.
 *
 * Design: forward.c only says what happens (norm, projection, RoPE, attention, ...); a backend
 * decides where and how. Activation buffers come from the backend's alloc (device memory for a
 * GPU backend), weights are the model's bn_linear / F16 tables, and the KV cache is reached
 * through the batch view. Every operation must compute each token's result independently of the
 * other tokens in the call and of the thread count (bit-identical), which batch invariance needs.
 * The CPU backend (backend_cpu.c) calls the kernels of kernels/ops.h.
 */
#ifndef BN_MODEL_BACKEND_H
#define BN_MODEL_BACKEND_H

#include "model/model_internal.h"

typedef struct bn_backend bn_backend;

/* The widest input a projection of the model takes (activation buffers of the quantizers). */
static inline int bn_backend_max_width(const bn_model_config *c) {
    int width = c->dim > c->ffn_dim ? c->dim : c->ffn_dim;
    return width > c->q_dim ? width : c->q_dim;
}

struct bn_backend {
    const char *name;
    void *impl; /* backend-private state */
    const bn_model_config *config;

    void (*destroy)(bn_backend *backend);
    /* Activation buffer of bytes (64-byte aligned), NULL on out-of-memory; free with release. */
    void *(*alloc)(bn_backend *backend, size_t bytes);
    void (*release)(bn_backend *backend, void *buffer);
    /* Copies between a buffer from alloc (at an offset) and host memory, for moving KV cache rows
     * (prompt cache, context shift); waits until the copy is done. */
    bn_status (*to_host)(bn_backend *backend, void *host_dst, const void *buffer_src, size_t bytes,
                         bn_error *err);
    bn_status (*from_host)(bn_backend *backend, void *buffer_dst, const void *host_src, size_t bytes,
                           bn_error *err);
    /* Sizes the backend's own scratch for chunks of n_tokens tokens attending over up to
     * max_context positions; called before a chunk runs, so the operations below cannot fail. */
    bn_status (*reserve)(bn_backend *backend, int n_tokens, int max_context, bn_error *err);

    /* x[t] = token_embd[tokens[t]] (ids already validated). */
    void (*embed)(bn_backend *backend, float *x, const bn_model_weights *weights,
                  const int32_t *tokens, int n);
    /* out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight; out may equal x. */
    void (*rmsnorm)(bn_backend *backend, float *out, const float *x, const float *weight, int n,
                    int cols, float eps);
    /* y = W x with W1.58 A8 (activations quantized per token), times the optional out_scale. */
    void (*linear)(bn_backend *backend, float *y, const bn_linear *w, const float *x, int n);
    /* Optional (NULL: linear on each): ys[i] = ws[i] x for n_parts projections of the same x,
     * each exactly as linear would give it; the CPU quantizes x once and runs them together. */
    void (*linear_parts)(bn_backend *backend, float *const *ys, const bn_linear *const *ws,
                         int n_parts, const float *x, int n);
    /* RoPE in place (NEOX pairs, or NORM for llama: config->rope_norm) on n tokens of n_heads
     * heads, each at its own position. */
    void (*rope)(bn_backend *backend, float *x, int n_heads, const int32_t *pos, int n);
    /* Writes k[t], v[t] into row pos[t] of layer's cache of entry t, in the cache's type. */
    void (*kv_store)(bn_backend *backend, const bn_batch_view *batch, int layer, const float *k,
                     const float *v);
    /* out[t] = causal attention of q[t] over its cache's rows 0..pos[t] of layer, read back in the
     * cache's storage type. */
    void (*attention)(bn_backend *backend, float *out, const float *q, const bn_batch_view *batch,
                      int layer);
    /* out = act(gate) * up over n_values values, rows of the FFN width (out may equal gate). */
    void (*ffn_activation)(bn_backend *backend, float *out, const float *gate, const float *up,
                           size_t n_values, bn_ffn_activation activation);
    /* x += y over n_values values. */
    void (*add)(bn_backend *backend, float *x, const float *y, size_t n_values);
    /* dst[i] = src[rows[i]] for i < n (rows of cols floats). */
    void (*gather_rows)(bn_backend *backend, float *dst, const float *src, const int32_t *rows,
                        int n, int cols);
    /* logits[t] = LM head x[t] into host memory (n x n_vocab). */
    void (*lm_head)(bn_backend *backend, float *logits, const bn_model_weights *weights,
                    const float *x, int n);
    /* Optional (NULL for the CPU): called at the end of every chunk; waits for queued device work
     * and reports the first failure of this chunk's operations. */
    bn_status (*finish)(bn_backend *backend, bn_error *err);
};

/* The CPU backend over kernels/ops.h with pool (NULL: one thread), for the model's weights (its
 * head and RoPE factors; they outlive the backend). Owned by the caller (backend->destroy). */
bn_status bn_backend_cpu_create(const bn_model_config *config, const bn_model_weights *weights,
                                bn_threadpool *pool, bn_backend **out, bn_error *err);

/* The CUDA backend (backend_cuda.c): uploads weights (ternary ones repacked for the GPU) once.
 * BN_ERR_DEVICE when the build has no CUDA or no usable device exists. Owned by the caller. */
bn_status bn_backend_cuda_create(const bn_model_config *config, const bn_model_weights *weights,
                                 bn_backend **out, bn_error *err);
/* The GPU's name for a CUDA backend ("NVIDIA H100 ... (sm_90, 79.1 GiB)"), else NULL. */
const char *bn_backend_cuda_device(const bn_backend *backend);

#endif
