/*
 * synth.h: synthetic ternary models with seeded random weights, in the layouts of the files people
 * run (spec sections 1, 9.1, 9.2):
 *   - bitnet-b1.58 (section 1): the official 2B-4T tensor table, sub-norms, squared ReLU, head tied
 *     to token_embd (an output.weight, when asked for, is written but the engine ignores it);
 *   - bitnet (9.2, llama.cpp's 1bitLLM architecture): the same tensors, hidden_activation "relu2"
 *     or "silu", optional F32 {1} per-projection scales `blk.N.<proj>.scale`;
 *   - llama (9.1, Falcon3 / Llama3 1.58-bit): no sub-norms, SiLU, optional untied output.weight,
 *     optional attention.key_length/value_length (head size != dim / heads) and rope_freqs.
 * Projections in I2_S, TQ2_0 or TQ1_0 under any architecture; token_embd (and output.weight) in
 * F32, F16, BF16, Q8_0, Q6_K or Q4_K, quantized from the same drawn floats; tokenizer metadata,
 * general.name and tokenizer.chat_template (by default the BITNET-marked 2B-4T template for
 * bitnet-b1.58, as the official file carries one, and none for the other architectures).
 *
 * Used by `bitnet synth`, the tests and the benchmarks: the official weights cannot be downloaded
 * here, and any shape (up to the full Llama3-8B one) can be made on demand. Tensor data is
 * generated one tensor (the embedding and head: a slice of rows) at a time and written into
 * place, so memory stays small whatever the model size.
 */
#ifndef BN_MODEL_SYNTH_H
#define BN_MODEL_SYNTH_H

#include "bitnet.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum bn_synth_arch {
    BN_SYNTH_ARCH_DEFAULT = 0,   /* bitnet-b1.58 for I2_S projections, bitnet for TQ2_0 / TQ1_0 */
    BN_SYNTH_ARCH_BITNET_B158,   /* general.architecture "bitnet-b1.58" */
    BN_SYNTH_ARCH_BITNET,        /* "bitnet" */
    BN_SYNTH_ARCH_LLAMA          /* "llama" */
} bn_synth_arch;

typedef enum bn_synth_activation {
    BN_SYNTH_ACT_DEFAULT = 0, /* the architecture's: squared ReLU, SiLU for llama */
    BN_SYNTH_ACT_RELU2,
    BN_SYNTH_ACT_SILU         /* bitnet and llama only */
} bn_synth_activation;

#define BN_SYNTH_TIED (-1) /* head_type: no output.weight, token_embd is the LM head */

/* Fill with bn_synth_preset() first: it sets every field, and zero is not every field's default. */
typedef struct bn_synth_options {
    bn_synth_arch arch;
    int n_layers, dim, ffn_dim, n_heads, n_kv_heads;
    int head_dim;           /* 0: dim / n_heads; another value (llama only) writes key_length */
    int n_vocab;            /* 0: the tokenizer's own size (byte vocabulary: 262 tokens) */
    int n_ctx;              /* ARCH.context_length */
    float rope_base, rms_eps;
    uint64_t seed;
    uint32_t format;        /* projections: BN_TYPE_I2_S, BN_TYPE_TQ2_0 or BN_TYPE_TQ1_0 */
    uint32_t embd_type;     /* token_embd: BN_TYPE_F32, F16 (preset), BF16, Q8_0, Q6_K, Q4_K */
    int32_t head_type;      /* BN_SYNTH_TIED (preset), or one of embd_type's types for output.weight */
    bn_synth_activation activation;
    bool proj_scales;       /* bitnet: F32 {1} blk.N.<proj>.scale tensors, values in [0.5, 2] */
    bool rope_freqs;        /* llama: F32 rope_freqs.weight of head_dim / 2 values in [1, 8] */
    const char *vocab_json; /* Hugging Face tokenizer.json to import; NULL: byte vocabulary */
    const char *omit_tensor; /* tests: leave this tensor out (a broken file on purpose) */
    const char *name;       /* general.name; NULL: "synthetic-bitnet" or "synthetic-llama" */
    const char *chat_template; /* tokenizer.chat_template: NULL the architecture's default (see
                                * above), "" none, else this text (bn_synth_chat_template) */
    /* Called after each tensor's data is written (NULL: not): tensors done of total. */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void *progress_user;
} bn_synth_options;

/* Presets: "tiny" (2 layers, 256 wide), "small" (4 layers, 512 wide), "2b4t" (the full
 * bitnet-b1.58-2B-4T shape, vocab 128256), and at real shapes for benchmarks "falcon3-1b",
 * "falcon3-3b", "llama3-8b" (llama) and "bitnet-large" (bitnet, SiLU: 1bitLLM bitnet_b1_58-large).
 * Presets with a real vocabulary size pad the byte vocabulary with reserved special tokens.
 * Unknown name -> BN_ERR_INVALID. */
bn_status bn_synth_preset(bn_synth_options *out, const char *name, bn_error *err);

/* Checks the dimensions against each other, the projection format's and the embedding and head
 * types' block sizes, and the options against the architecture. */
bn_status bn_synth_validate(const bn_synth_options *options, bn_error *err);

/* Writes the model to path. */
bn_status bn_synth_write(const char *path, const bn_synth_options *options, bn_error *err);

/* A chat template in the style of a family, carrying the marker bitnet-c (chat/chat.h) and
 * llama.cpp select its format by: "bitnet" (System:/User:/Assistant: turns, the BITNET marker),
 * "llama3", "chatml", "falcon3" (Falcon3-Instruct's <|system|>/<|user|>/<|assistant|> lines with
 * assistant turns closed by </s>, the marker llama.cpp's built-in detection needs). NULL for
 * other names. */
const char *bn_synth_chat_template(const char *name);

/* "llama", "bitnet", "bitnet-b1.58" -> the architecture; false for other names. */
bool bn_synth_arch_from_name(const char *name, bn_synth_arch *out);

/* "f32", "f16", "bf16", "q8_0", "q6_k", "q4_k" -> the BN_TYPE_* token_embd and output.weight
 * can take; false for other names. */
bool bn_synth_float_type_from_name(const char *name, uint32_t *out);

/* The byte-level vocabulary of small synthetic models: 256 byte tokens (GPT-2 byte-to-unicode
 * order), 3 merged tokens, then <|begin_of_text|>, <|end_of_text|>, <|eot_id|>. */
#define BN_SYNTH_BYTE_VOCAB 262
#define BN_SYNTH_BOS 259
#define BN_SYNTH_EOS 260
#define BN_SYNTH_EOT 261

#endif
