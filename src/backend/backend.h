/*
 * backend.h: the operations forward.c runs, as a table of function pointers a backend fills, and
 * what they share with the model: the shape (bn_backend_config), the KV cache and a chunk's batch.
 *
 * Design: forward.c only says what happens (norm, projection, RoPE, attention, ...); a backend
 * decides where and how. Backends own their weights: after creation, bind_weights turns the
 * file's tensors (weight_views.h) into the backend's own layout (the CPU's repacked matrices in
 * host memory, the GPU's in device memory), and the operations name weights by layer and kind
 * (bn_linear_ref, bn_norm_ref), never by a host address. Activation buffers come from the
 * backend's alloc (device memory for a GPU backend), and the KV cache is reached through the
 * batch view. Every operation must compute each token's result independently of the other tokens
 * in the call and of the thread count (bit-identical), which batch invariance needs.
 *
 * The backends live in this folder (cpu/, cuda/) over the kernels of src/kernels/; nothing here
 * includes the model's headers.
 */
#ifndef BN_BACKEND_BACKEND_H
#define BN_BACKEND_BACKEND_H

#include "backend/weight_views.h"
#include "bitnet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bn_backend bn_backend;

/* The model's shape and the choices the operations follow (the model fills it from its config). */
typedef struct bn_backend_config {
    int n_layers, n_vocab;
    int dim, q_dim, kv_dim, ffn_dim;
    int n_heads, n_kv_heads, head_dim, rope_dim;
    float rope_base, rope_freq_scale;
    bool rope_norm;    /* RoPE pairs: NORM (llama) or NEOX */
    bool sub_norms;    /* attn_sub_norm and ffn_sub_norm exist (not llama) */
    bool ffn_silu;     /* FFN activation: silu(gate) * up, else relu(gate)^2 * up */
    bool int8_lm_head; /* the LM head in int8 with per-row scales (from the F16 head) */
} bn_backend_config;

/* The widest input a projection of the model takes (activation buffers of the quantizers). */
static inline int bn_backend_max_width(const bn_backend_config *c) {
    int width = c->dim > c->ffn_dim ? c->dim : c->ffn_dim;
    return width > c->q_dim ? width : c->q_dim;
}

/* A projection (or norm weight) of the model: layer and kind (weight_views.h). */
typedef struct bn_linear_ref {
    int layer;
    bn_linear_kind kind;
} bn_linear_ref;

typedef struct bn_norm_ref {
    int layer; /* ignored for BN_NORM_OUTPUT */
    bn_norm_kind kind;
} bn_norm_ref;

/* KV cache of one sequence: for each layer, capacity rows of kv_dim values for K and for V,
 * stored in k_type / v_type (F16, F32 or Q8_0: kernels/ops.h). Layer-major: row (layer, pos) is
 * element (layer * capacity + pos) * kv_dim on, bn_kv_type_bytes of that many values in bytes. */
typedef struct bn_kv_cache {
    int n_layers, capacity, kv_dim;
    uint32_t k_type, v_type;
    bn_backend *backend; /* allocated k and v */
    void *k, *v;         /* owned */
} bn_kv_cache;

/* kv_cache.c: allocates the storage through the backend (uninitialised: rows are written before
 * they are read); the cache owns it until bn_kv_cache_release. */
bn_status bn_kv_cache_init(bn_kv_cache *cache, bn_backend *backend, int n_layers, int capacity,
                           int kv_dim, uint32_t k_type, uint32_t v_type, bn_error *err);
void bn_kv_cache_release(bn_kv_cache *cache);
/* Bytes of n rows of K (of V). */
size_t bn_kv_cache_k_bytes(const bn_kv_cache *cache, size_t n_rows);
size_t bn_kv_cache_v_bytes(const bn_kv_cache *cache, size_t n_rows);
/* Start of the K (or V) rows of one layer. */
void *bn_kv_cache_layer_k(const bn_kv_cache *cache, int layer);
void *bn_kv_cache_layer_v(const bn_kv_cache *cache, int layer);

/* The entries of one forward chunk as the backend sees them. */
typedef struct bn_batch_view {
    int n;
    const int32_t *pos;         /* n positions */
    const int32_t *tokens;      /* n token ids */
    bn_kv_cache *const *caches; /* n caches (entries of one sequence share theirs) */
} bn_batch_view;

struct bn_backend {
    const char *name;
    void *impl; /* backend-private state */
    bn_backend_config config;

    void (*destroy)(bn_backend *backend);
    /* Builds the backend's own copy of the weights from the file's (the views and what they point
     * at outlive the backend); called once, before any operation below. Errors name the tensor. */
    bn_status (*bind_weights)(bn_backend *backend, const bn_weight_views *views, bn_error *err);
    /* Activation buffer of bytes (64-byte aligned), NULL on out-of-memory; free with release. */
    void *(*alloc)(bn_backend *backend, size_t bytes);
    void (*release)(bn_backend *backend, void *buffer);
    /* Copies between a buffer from alloc (at an offset) and host memory, for moving KV cache rows
     * (prompt cache, context shift); waits until the copy is done. */
    bn_status (*to_host)(bn_backend *backend, void *host_dst, const void *buffer_src, size_t bytes,
                         bn_error *err);
    bn_status (*from_host)(bn_backend *backend, void *buffer_dst, const void *host_src,
                           size_t bytes, bn_error *err);
    /* Sizes the backend's own scratch for chunks of n_tokens tokens attending over up to
     * max_context positions; called before a chunk runs, so the operations below cannot fail. */
    bn_status (*reserve)(bn_backend *backend, int n_tokens, int max_context, bn_error *err);

    /* x[t] = token_embd[tokens[t]] (ids already validated). */
    void (*embed)(bn_backend *backend, float *x, const int32_t *tokens, int n);
    /* out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight; out may equal x. */
    void (*rmsnorm)(bn_backend *backend, float *out, const float *x, bn_norm_ref weight, int n,
                    int cols, float eps);
    /* y = W x with W1.58 A8 (activations quantized per token), times the optional out_scale. */
    void (*linear)(bn_backend *backend, float *y, bn_linear_ref w, const float *x, int n);
    /* Optional (NULL: linear on each): ys[i] = ws[i] x for n_parts projections of the same x,
     * each exactly as linear would give it; the CPU quantizes x once and runs them together. */
    void (*linear_parts)(bn_backend *backend, float *const *ys, const bn_linear_ref *ws,
                         int n_parts, const float *x, int n);
    /* RoPE in place (NEOX pairs, or NORM: config.rope_norm) on n tokens of n_heads heads, each
     * at its own position. */
    void (*rope)(bn_backend *backend, float *x, int n_heads, const int32_t *pos, int n);
    /* Writes k[t], v[t] into row pos[t] of layer's cache of entry t, in the cache's type. */
    void (*kv_store)(bn_backend *backend, const bn_batch_view *batch, int layer, const float *k,
                     const float *v);
    /* out[t] = causal attention of q[t] over its cache's rows 0..pos[t] of layer, read back in
     * the cache's storage type. */
    void (*attention)(bn_backend *backend, float *out, const float *q, const bn_batch_view *batch,
                      int layer);
    /* out = act(gate) * up (config.ffn_silu) over n_values values, rows of the FFN width (out
     * may equal gate). */
    void (*ffn_activation)(bn_backend *backend, float *out, const float *gate, const float *up,
                           size_t n_values);
    /* x += y over n_values values. */
    void (*add)(bn_backend *backend, float *x, const float *y, size_t n_values);
    /* dst[i] = src[rows[i]] for i < n (rows of cols floats). */
    void (*gather_rows)(bn_backend *backend, float *dst, const float *src, const int32_t *rows,
                        int n, int cols);
    /* logits[t] = LM head x[t] into host memory (n x n_vocab). */
    void (*lm_head)(bn_backend *backend, float *logits, const float *x, int n);
    /* Optional (NULL for the CPU): called at the end of every chunk; waits for queued device work
     * and reports the first failure of this chunk's operations. */
    bn_status (*finish)(bn_backend *backend, bn_error *err);
};

#endif
