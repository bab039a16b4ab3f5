/*
 * model.h: a loaded BitNet b1.58 model and the one forward step the CLI and the server call.
 *
 * Design: a model is the memory-mapped GGUF file plus a config read from its metadata, weights
 * bound to the kernels' formats, and a backend (CPU or CUDA, options.device) that runs the operations of
 * forward.c. Sequences own their KV cache. bn_model_decode() runs one step over a batch of
 * entries (sequence, position, token) taken from any number of sequences, so the weights are read
 * once per step for all of them: the matmuls are GEMMs over all entries' tokens, attention runs per
 * entry over its own sequence's cache. bn_model_decode_hidden() is the same step ending before the
 * LM head: it returns the final (normed) hidden states instead of logits.
 *
 * Batch invariance: the logits (and hidden states) of an entry depend only on its sequence's tokens, never on the rest
 * of the batch, the chunking of a prefill, the order of sequences or the thread count (bit for bit).
 *
 * A model is not thread-safe: one bn_model_decode() at a time per model (its scratch buffers are
 * shared); sequences belong to the model that created them.
 */
#ifndef BN_MODEL_MODEL_H
#define BN_MODEL_MODEL_H

#include "bitnet.h"
#include "gguf/gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum bn_model_arch {
    BN_ARCH_BITNET_B158 = 0, /* "bitnet-b1.58" and "bitnet-25" (Microsoft's bitnet.cpp) */
    BN_ARCH_BITNET = 1,      /* "bitnet" (upstream llama.cpp: TQ1_0/TQ2_0, optional .scale) */
    BN_ARCH_LLAMA = 2        /* "llama" with ternary projections (Falcon3-1.58bit, Llama3-8B-1.58;
                              * spec 9.1): NORM RoPE, no sub-norms, SiLU, optional output */
} bn_model_arch;

typedef enum bn_ffn_activation {
    BN_FFN_RELU2 = 0, /* relu(gate)^2 * up */
    BN_FFN_SILU = 1   /* silu(gate) * up */
} bn_ffn_activation;

/* The largest context_length a file may state without the caller asking for a smaller context
 * (bn_model_options.n_ctx): 2^20 tokens. A hostile or broken file would otherwise size every
 * sequence's KV cache by it. */
#define BN_MODEL_MAX_CTX (1 << 20)

/* Hyper-parameters, from the file's metadata (spec section 1). */
typedef struct bn_model_config {
    bn_model_arch arch;
    char arch_name[32];     /* general.architecture as found */
    int n_vocab;
    int n_ctx_train;        /* ARCH.context_length */
    int dim;                /* ARCH.embedding_length */
    int n_layers;           /* ARCH.block_count */
    int ffn_dim;            /* ARCH.feed_forward_length */
    int n_heads;            /* ARCH.attention.head_count */
    int n_kv_heads;         /* ARCH.attention.head_count_kv (default n_heads) */
    int head_dim;           /* ARCH.attention.key_length, or dim / n_heads */
    int q_dim;              /* n_heads * head_dim (dim unless key_length says otherwise) */
    int kv_dim;             /* n_kv_heads * head_dim */
    int rope_dim;           /* ARCH.rope.dimension_count (default head_dim) */
    float rope_base;        /* ARCH.rope.freq_base (default 10000) */
    float rope_freq_scale;  /* 1 / ARCH.rope.scaling.factor of linear scaling (default 1) */
    bool rope_norm;         /* RoPE pairs (2i, 2i+1) (llama) instead of NEOX (i, i + n_rot/2) */
    bool sub_norms;         /* attn_sub_norm / ffn_sub_norm present (bitnet-b1.58, bitnet) */
    float rms_eps;          /* ARCH.attention.layer_norm_rms_epsilon */
    bn_ffn_activation ffn_activation;
    bool tied_output;       /* the LM head is token_embd (no output.weight, or bitnet-b1.58) */
    uint32_t embd_type;     /* ggml type of token_embd (F32, F16, BF16, Q8_0, Q6_K, Q4_K) */
    uint32_t head_type;     /* ggml type of the LM head */
    uint32_t projection_type; /* ggml type id of the ternary projections (I2_S, TQ2_0, TQ1_0) */
    uint64_t n_params;      /* elements of all tensors */
} bn_model_config;

/* Where the forward pass runs. */
typedef enum bn_device {
    BN_DEVICE_CPU = 0,
    BN_DEVICE_CUDA = 1 /* GPU 0; fails with BN_ERR_DEVICE without CUDA in the build or a GPU */
} bn_device;

/* "cpu" / "cuda" / "cuda:N" (N: the GPU's index, 0..63; "cuda" is "cuda:0") -> *out and *index
 * (index may be NULL when only the kind matters); BN_ERR_INVALID naming the value otherwise. */
bn_status bn_device_parse(bn_device *out, int *index, const char *name, bn_error *err);
const char *bn_device_name(bn_device device);

typedef struct bn_model_options {
    int n_threads;          /* >= 1 */
    uint32_t kv_type_k;     /* KV cache storage of K and of V, ggml type ids (kernels/ops.h): */
    uint32_t kv_type_v;     /* BN_TYPE_F16 (default), BN_TYPE_F32 or BN_TYPE_Q8_0 (-ctk/-ctv) */
    bool int8_lm_head;      /* LM head in int8 with per-row scales instead of F16 */
    int ubatch;             /* tokens per internal forward chunk (0: default 512) */
    int n_ctx;              /* the context the caller's sequences will use (0: the file's
                               context_length); a file whose context_length is over
                               BN_MODEL_MAX_CTX loads only with 0 < n_ctx <= BN_MODEL_MAX_CTX */
    bn_device device;       /* backend (default CPU) */
    int device_index;       /* which GPU for BN_DEVICE_CUDA (default 0: cuda:0) */
    int tune;               /* bn_tune_mode (kernels/tuner.h, model/tune.h): -1 BITNET_TUNE or
                               quick (default), 0 off, 1 quick, 2 full */
    /* Called during the load (NULL: not): stage "loading model" with layers done of total, then
     * "tuning kernels" (0 of 1, then 1 of 1). Runs on the loading thread. */
    void (*progress)(void *user, const char *stage, uint64_t done, uint64_t total);
    void *progress_user;
} bn_model_options;

/* n_threads 1, kv types F16, int8_lm_head false, ubatch 0, n_ctx 0, device CPU, tune -1. */
bn_model_options bn_model_options_default(void);

typedef struct bn_model bn_model;
typedef struct bn_sequence bn_sequence;

/* Loads and validates the model at path. On success *out is owned by the caller (bn_model_free).
 * Errors name the tensor or metadata key ("blk.3.ffn_sub_norm.weight: missing"), and for a value
 * that disagrees with another both values: the vocabulary (tokenizer.ggml.tokens) against
 * token_embd's rows, ARCH.block_count against the blocks the tensors name, context_length against
 * BN_MODEL_MAX_CTX (see options.n_ctx); norm weights must be finite and not all zero. */
bn_status bn_model_load(const char *path, const bn_model_options *options, bn_model **out,
                        bn_error *err);
void bn_model_free(bn_model *model);

const bn_model_config *bn_model_get_config(const bn_model *model);
const bn_model_options *bn_model_get_options(const bn_model *model);
/* The parsed file (metadata for the tokenizer, tensor list); lives as long as the model. */
const bn_gguf *bn_model_get_gguf(const bn_model *model);
/* Bytes of weights read per generated token (ternary projections + LM head), for bandwidth math. */
uint64_t bn_model_bytes_per_token(const bn_model *model);
/* Name of the backend running the model ("cpu" or "cuda"). */
const char *bn_model_backend_name(const bn_model *model);
/* The GPU running the model ("NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)"), NULL on the CPU. */
const char *bn_model_gpu_name(const bn_model *model);

/* A sequence with its own KV cache for positions 0..capacity-1 (capacity 0: the model's training
 * context). Owned by the caller: bn_sequence_free (before bn_model_free). */
bn_status bn_sequence_create(bn_model *model, int capacity, bn_sequence **out, bn_error *err);
void bn_sequence_free(bn_sequence *seq);
/* Forgets all tokens (length 0); the cache memory is kept. */
void bn_sequence_clear(bn_sequence *seq);
/* Keeps the first length tokens (cache rows 0..length-1) and forgets the rest; a length at or
 * above the current one changes nothing. Used to reuse a cached prompt prefix. */
void bn_sequence_truncate(bn_sequence *seq, int length);
/* KV cache rows as host bytes, for a prompt cache that outlives the sequence: the size of the
 * first n positions, a copy of them (n <= length), and writing such a copy back (the sequence then
 * holds exactly those n positions). A saved copy fits only sequences of the same model. */
size_t bn_sequence_state_bytes(const bn_sequence *seq, int n);
bn_status bn_sequence_save(const bn_sequence *seq, int n, void *host, bn_error *err);
bn_status bn_sequence_restore(bn_sequence *seq, const void *host, int n, bn_error *err);
/* Context shift (llama.cpp semantics): drops positions [keep, keep + n_discard), moves the later
 * rows down and re-rotates their K rows by -n_discard positions, so the sequence continues with
 * length - n_discard tokens. The result is not what a fresh prefill of the kept tokens gives (the
 * kept rows saw the dropped tokens). BN_ERR_RANGE when the ranges do not fit the sequence; a
 * backend failure empties the sequence. */
bn_status bn_sequence_shift(bn_sequence *seq, int keep, int n_discard, bn_error *err);
/* Tokens in the cache: the position the next token must have. */
int bn_sequence_length(const bn_sequence *seq);
int bn_sequence_capacity(const bn_sequence *seq);

/* One entry of a forward step. */
typedef struct bn_batch_entry {
    bn_sequence *seq;
    int32_t pos;      /* must equal the sequence's length plus the entries of the same sequence
                       * before this one in the batch (consecutive positions, in order) */
    int32_t token;
    bool want_logits;
} bn_batch_entry;

/* Runs one forward step over n entries. For each entry with want_logits, n_vocab float logits are
 * written to logits_out, rows in entry order (logits_out may be NULL when none want logits).
 * Everything is validated before any state changes: a token outside the vocabulary, a position
 * that is not the next one of its sequence, or a full context (pos >= capacity, BN_ERR_RANGE)
 * fails the whole call and leaves every sequence as it was. On success each sequence's length
 * grows by its number of entries. */
bn_status bn_model_decode(bn_model *model, const bn_batch_entry *entries, int n, float *logits_out,
                          bn_error *err);

/* bn_model_decode, except that each entry with want_logits gets its final hidden state instead of
 * logits: the dim floats of RMSNorm(x, output_norm) after the last layer, the vector the LM head
 * would multiply, as rows in entry order in hidden_out (host memory; may be NULL when no entry
 * wants one). The same forward pass, validation and batch invariance. Every backend. Used for
 * embeddings (server/engine.h). */
bn_status bn_model_decode_hidden(bn_model *model, const bn_batch_entry *entries, int n, float *hidden_out,
                                 bn_error *err);

/* Observer of the forward pass's intermediate results, for layer-by-layer comparisons with a
 * reference: called after each operation with the name bitnet.cpp's graph gives that result
 * ("attn_norm-3", "Qcur-3", ...; see forward.c), ggml's op name ("MUL_MAT", "ROPE", ...), and
 * the n rows of width floats (host memory, valid during the call) of the chunk's entries at
 * positions pos[0..n-1]. CPU backend only (BN_ERR_INVALID for a device backend); fn NULL turns
 * it off. */
typedef void (*bn_tensor_observer)(void *context, const char *name, const char *op,
                                   const float *rows, const int32_t *pos, int n, int width);
bn_status bn_model_set_observer(bn_model *model, bn_tensor_observer fn, void *context,
                                bn_error *err);

#endif
