/*
 * model_internal.h: what the model's own files share (config.c, loader.c, kv_cache.c, forward.c,
 * model.c, tune.c): the weights as the file holds them, the scratch buffers and the model struct
 * itself. Nothing outside src/model includes this (tests that look inside a model aside).
 *
 * Like llama2.c's three structs: bn_model_config (hyper-parameters), bn_model_weights (views of
 * the mapped file's tensors, which the backend binds into its own layout: backend/backend.h),
 * bn_forward_state (activations of one chunk).
 */
#ifndef BN_MODEL_INTERNAL_H
#define BN_MODEL_INTERNAL_H

#include "backend/backend.h"
#include "kernels/threadpool.h"
#include "model/model.h"
#include "model/tune.h"

typedef struct bn_model_weights {
    bn_weight_views views;   /* what the backend binds (backend/weight_views.h) */
    bn_layer_views *layers;  /* views.layers, n_layers, owned */
    float **converted;       /* owned: F32 copies of F16 norm weights (n_converted) */
    int n_converted;
} bn_model_weights;

struct bn_sequence {
    bn_model *model;
    bn_kv_cache cache;
    int32_t length;
    int32_t next; /* bn_model_decode's validation: the next position while walking a batch */
};

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

/* loader.c: finds every tensor (presence, type and shape checked, norms finite) and fills the
 * views a backend binds; copies nothing but F16 norms (as F32); frees what it made on failure. */
bn_status bn_model_weights_load(bn_model_weights *weights, bn_model_config *config,
                                const bn_gguf *gguf, const bn_model_options *options,
                                bn_error *err);
void bn_model_weights_release(bn_model_weights *weights);

/* forward.c: runs n <= ubatch validated entries through the network; for the entries that want
 * output, writes their logits to logits (rows in entry order), or when logits is NULL their final
 * hidden states (dim floats each, host memory) to hidden. */
bn_status bn_model_forward(bn_model *model, const bn_batch_entry *entries, int n, float *logits,
                           float *hidden, bn_error *err);
void bn_forward_state_release(bn_forward_state *state, bn_backend *backend);

#endif
