/*
 * weight_views.h: the model's weights as the file holds them, which a backend's bind_weights
 * (backend.h) turns into a layout of its own that it owns.
 *
 * Design: the loader (model/loader.c) checks every tensor (presence, type, shape, finite norms)
 * and fills these views; it repacks nothing. A view points at the tensor's bytes in the file (a
 * read-only mapping, or the file read into memory) in the file's format (spec sections 2 and 3);
 * norm weights are F32 (the loader converts F16 norms into copies it owns). The views and what
 * they point at outlive every backend bound from them. Nothing here depends on the model's
 * headers: backends include this, never model/.
 */
#ifndef BN_BACKEND_WEIGHT_VIEWS_H
#define BN_BACKEND_WEIGHT_VIEWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The ternary projections of a layer, in the order a decode step reads them. */
typedef enum bn_linear_kind {
    BN_LINEAR_Q,    /* attn_q: dim -> q_dim */
    BN_LINEAR_K,    /* attn_k: dim -> kv_dim */
    BN_LINEAR_V,    /* attn_v: dim -> kv_dim */
    BN_LINEAR_O,    /* attn_output: q_dim -> dim */
    BN_LINEAR_GATE, /* ffn_gate: dim -> ffn_dim */
    BN_LINEAR_UP,   /* ffn_up: dim -> ffn_dim */
    BN_LINEAR_DOWN, /* ffn_down: ffn_dim -> dim */
    BN_LINEAR_KINDS
} bn_linear_kind;

/* The norm weights of a layer, and the model's output norm (not per layer). */
typedef enum bn_norm_kind {
    BN_NORM_ATTN,     /* attn_norm: dim */
    BN_NORM_ATTN_SUB, /* attn_sub_norm: q_dim (absent without sub-norms: llama) */
    BN_NORM_FFN,      /* ffn_norm: dim */
    BN_NORM_FFN_SUB,  /* ffn_sub_norm: ffn_dim (absent without sub-norms) */
    BN_NORM_LAYER_KINDS,
    BN_NORM_OUTPUT = BN_NORM_LAYER_KINDS /* output_norm: dim */
} bn_norm_kind;

/* One tensor of rows x cols (ggml's ne1 x ne0) in its file type. */
typedef struct bn_tensor_view {
    char name[96]; /* the tensor's name, for error messages */
    uint32_t type; /* ggml type id (quant/quant_format.h) */
    int rows, cols;
    const void *data; /* the file's bytes */
    uint64_t bytes;   /* their size */
} bn_tensor_view;

/* A ternary projection (I2_S, TQ2_0 or TQ1_0) and, for llama.cpp's `bitnet` files, the scalar
 * (tensor NAME.scale) that multiplies its output. */
typedef struct bn_linear_view {
    bn_tensor_view weight;
    bool has_out_scale;
    float out_scale;
} bn_linear_view;

typedef struct bn_layer_views {
    const float *norms[BN_NORM_LAYER_KINDS]; /* F32; NULL for an absent sub-norm */
    bn_linear_view linears[BN_LINEAR_KINDS];
} bn_layer_views;

typedef struct bn_weight_views {
    int n_layers;
    bn_tensor_view token_embd; /* n_vocab rows of dim, a head type (kernels/head.h) */
    bn_tensor_view output;     /* the LM head; token_embd's view when tied */
    const float *output_norm;  /* dim */
    const float *rope_freqs;   /* llama: rope_dim / 2 divisors, or NULL */
    const bn_layer_views *layers;
    bool file_mapped; /* data lies in a read-only file mapping whose pages a backend may drop
                       * (madvise) once it holds its own copy */
} bn_weight_views;

#endif
