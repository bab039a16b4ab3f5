/*
 * model_internal.h: what the model's own files share (config.c, loader.c, kv_cache.c,
 * forward.c, the backends): the weights as the kernels see them, the KV cache, the scratch
 * buffers and the model struct itself. Nothing outside src/model includes this.
 *
 * Like llama2.c's three structs: bn_model_config (hyper-parameters), bn_model_weights (pointers
 * into the mapped file, or prepared kernel layouts), bn_forward_state (activations of one chunk).
 */
#ifndef BN_MODEL_INTERNAL_H
#define BN_MODEL_INTERNAL_H

#include "kernels/head.h"
#include "kernels/ops.h"
#include "kernels/threadpool.h"
#include "model/model.h"
#include "model/tune.h"

typedef struct bn_backend bn_backend; /* model/backend.h */

/* A ternary projection: the prepared matrix and, for llama.cpp's `bitnet` files, the optional
 * scalar (tensor NAME.scale, shape {1}) that multiplies the projection's output. */
typedef struct bn_linear {
    bn_ternary_matrix matrix;
    bool has_out_scale;
    float out_scale;
} bn_linear;

typedef struct bn_layer_weights {
    const float *attn_norm;     /* dim */
    bn_linear wq, wk, wv;       /* dim -> q_dim, kv_dim, kv_dim */
    const float *attn_sub_norm; /* dim (NULL without sub-norms: llama) */
    bn_linear wo;               /* q_dim -> dim */
    const float *ffn_norm;      /* dim */
    bn_linear w_gate, w_up;     /* dim -> ffn_dim */
    const float *ffn_sub_norm;  /* ffn_dim (NULL without sub-norms) */
    bn_linear w_down;           /* ffn_dim -> dim */
} bn_layer_weights;

typedef struct bn_model_weights {
    bn_head_matrix embd;        /* token_embd, n_vocab x dim, any head type (kernels/head.h) */
    bn_head_matrix head;        /* the LM head (embd's data when tied) */
    const uint16_t *token_embd; /* embd's data when it is F16, else NULL (F16-only consumers:
                                 * the CUDA backend) */
    const uint16_t *output;     /* the same for the head (also the int8 head's source) */
    const float *output_norm;   /* dim */
    const float *rope_freqs;    /* llama: rope_freqs.weight (rope_dim / 2 divisors), or NULL */
    void *output_copy;          /* owned (bn_large_alloc), output_copy_bytes: the head in huge pages */
    size_t output_copy_bytes;
    float **converted;          /* owned: F32 copies of F16 norm weights (n_converted) */
    int n_converted;
    bool has_int8_output;
    bn_int8_matrix output_int8; /* options.int8_lm_head */
    bn_layer_weights *layers;   /* n_layers, owned */
    bn_large_arena arena;       /* the layers' repacked matrices, one huge-page region */
} bn_model_weights;

/* KV cache of one sequence: for each layer, capacity rows of kv_dim values for K and for V,
 * stored as F16 or F32. Layer-major: row (layer, pos) starts at (layer * capacity + pos) * kv_dim. */
typedef struct bn_kv_cache {
    int n_layers, capacity, kv_dim;
    bool f16;
    bn_backend *backend; /* allocated k and v */
    void *k, *v;         /* owned */
} bn_kv_cache;

/* Allocates the storage through the backend (uninitialised: rows are written before they are
 * read); the cache owns it until bn_kv_cache_release. */
bn_status bn_kv_cache_init(bn_kv_cache *cache, bn_backend *backend, int n_layers, int capacity,
                           int kv_dim, bool f16, bn_error *err);
void bn_kv_cache_release(bn_kv_cache *cache);
size_t bn_kv_cache_element_size(const bn_kv_cache *cache);
/* Start of the K (or V) rows of one layer. */
void *bn_kv_cache_layer_k(const bn_kv_cache *cache, int layer);
void *bn_kv_cache_layer_v(const bn_kv_cache *cache, int layer);

struct bn_sequence {
    bn_model *model;
    bn_kv_cache cache;
    int32_t length;
    int32_t next; /* bn_model_decode's validation: the next position while walking a batch */
};

/* The entries of one forward chunk as the backend sees them. */
typedef struct bn_batch_view {
    int n;
    const int32_t *pos;           /* n positions */
    const int32_t *tokens;        /* n token ids */
    bn_kv_cache *const *caches;   /* n caches (entries of one sequence share theirs) */
} bn_batch_view;

/* Activation buffers of one forward chunk (ubatch tokens), token-major. Grown on demand. */
typedef struct bn_forward_state {
    int capacity;       /* tokens the buffers hold */
    float *x;           /* residual stream, n x dim */
    float *xb;          /* normed input / projection output, n x dim */
    float *q;           /* n x dim */
    float *k, *v;       /* n x kv_dim */
    float *att;         /* attention output, n x dim */
    float *hb, *hb2;    /* FFN hidden, n x ffn_dim */
    float *out;         /* final hidden of the entries that want logits, n x dim */
    int32_t *pos, *tokens;
    bn_kv_cache **caches;
    int32_t *logit_rows; /* chunk rows of the entries that want logits */
} bn_forward_state;

struct bn_model {
    bn_model_config config;
    bn_model_options options;
    bn_gguf *gguf;              /* owned: the mapping the weights point into */
    bn_model_weights weights;
    bn_threadpool *pool;        /* owned; NULL for one thread */
    bn_backend *backend;        /* owned */
    bn_forward_state state;
    bn_tensor_observer observer; /* bn_model_set_observer; NULL: none */
    void *observer_context;
    bn_model_tuning tuning;     /* what the load's kernel tuning did (tune.h) */
};

/* tune.c: runs (or reads from the cache) the kernel tuning of a loaded CPU model and binds its
 * choice (tune.h); BN_ERR_INVALID for a bad mode or BITNET_TUNE, BN_ERR_NOMEM. */
bn_status bn_model_tune(bn_model *model, bn_error *err);

/* config.c: reads the hyper-parameters from metadata; errors name the key. */
bn_status bn_model_config_read(bn_model_config *config, const bn_gguf *gguf, bn_error *err);

/* loader.c: binds every tensor (presence, type and shape checked) and prepares the ternary
 * matrices; frees what it made on failure. */
bn_status bn_model_weights_load(bn_model_weights *weights, bn_model_config *config,
                                const bn_gguf *gguf, const bn_model_options *options,
                                bn_threadpool *pool, bn_error *err);
void bn_model_weights_release(bn_model_weights *weights, int n_layers);

/* forward.c: runs n <= ubatch validated entries through the network; for the entries that want
 * output, writes their logits to logits (rows in entry order), or when logits is NULL their final
 * hidden states (dim floats each, host memory) to hidden. */
bn_status bn_model_forward(bn_model *model, const bn_batch_entry *entries, int n, float *logits,
                           float *hidden, bn_error *err);
void bn_forward_state_release(bn_forward_state *state, bn_backend *backend);

#endif
