/*
 * synth.h: synthetic BitNet b1.58 models with seeded random weights, in exactly the layout of the
 * official file (spec section 1): F16 token_embd (tied LM head), F32 norms, I2_S projections with
 * one float32 scale per tensor, tokenizer metadata. The same weights can be written as TQ2_0 or
 * TQ1_0 under llama.cpp's `bitnet` architecture (with hidden_activation "relu2").
 *
 * Used by `bitnet synth`, the tests and the benchmarks: the official weights cannot be downloaded
 * here, and any shape (up to the full 2B-4T one) can be made on demand. Tensor data is generated
 * one tensor (the embedding: a slice of rows) at a time and written into place, so memory stays
 * small whatever the model size.
 */
#ifndef BN_MODEL_SYNTH_H
#define BN_MODEL_SYNTH_H

#include "bitnet.h"

#include <stdint.h>

typedef struct bn_synth_options {
    int n_layers, dim, ffn_dim, n_heads, n_kv_heads;
    int n_vocab;            /* 0: the tokenizer's own size (byte vocabulary: 262 tokens) */
    int n_ctx;              /* ARCH.context_length */
    float rope_base;
    uint64_t seed;
    uint32_t format;        /* BN_TYPE_I2_S (bitnet-b1.58), BN_TYPE_TQ2_0 / TQ1_0 (bitnet) */
    const char *vocab_json; /* Hugging Face tokenizer.json to import; NULL: byte vocabulary */
    const char *omit_tensor; /* tests: leave this tensor out (a broken file on purpose) */
    /* Called after each tensor's data is written (NULL: not): tensors done of total. */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void *progress_user;
} bn_synth_options;

/* Presets: "tiny" (2 layers, 256 wide), "small" (4 layers, 512 wide), "2b4t" (the full
 * bitnet-b1.58-2B-4T shape, vocab 128256). Unknown name -> BN_ERR_INVALID. */
bn_status bn_synth_preset(bn_synth_options *out, const char *name, bn_error *err);

/* Checks the dimensions against each other and the format's block size. */
bn_status bn_synth_validate(const bn_synth_options *options, bn_error *err);

/* Writes the model to path. */
bn_status bn_synth_write(const char *path, const bn_synth_options *options, bn_error *err);

/* The byte-level vocabulary of small synthetic models: 256 byte tokens (GPT-2 byte-to-unicode
 * order), 3 merged tokens, then <|begin_of_text|>, <|end_of_text|>, <|eot_id|>. */
#define BN_SYNTH_BYTE_VOCAB 262
#define BN_SYNTH_BOS 259
#define BN_SYNTH_EOS 260
#define BN_SYNTH_EOT 261

#endif
