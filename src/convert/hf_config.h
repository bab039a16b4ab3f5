/*
 * hf_config.h: the JSON files of a Hugging Face checkpoint that a converter reads besides the
 * tensors: config.json (hyper-parameters, architecture, quantization), generation_config.json
 * (bos/eos ids) and tokenizer_config.json (chat template, special tokens).
 *
 * Contract: each reader parses the whole document with jansson and fills a plain struct, or fails
 * with one line that starts with the file name and names the field ("config.json: field
 * 'num_attention_heads': 0 must be positive"); strings from the file are quoted (control bytes
 * escaped). Duplicate keys are accepted and the last one wins, as with Python's json module that
 * wrote and reads these files (HF1BitLLM's config.json has two "quantization_config" keys). Keys
 * a reader does not know are ignored; null counts as absent for optional fields.
 *
 * config.json: architectures[0] must be one of the classes of spec/HF_CHECKPOINTS.md section 0
 * (BN_ERR_UNSUPPORTED naming any other). Required: architectures, hidden_size,
 * intermediate_size, num_hidden_layers, num_attention_heads, vocab_size,
 * max_position_embeddings, rms_norm_eps, rope_theta (top level, or inside transformers v5's
 * rope_parameters), hidden_act. Optional with transformers' defaults: num_key_value_heads
 * (= num_attention_heads), head_dim (= hidden_size / num_attention_heads, which must then divide
 * evenly), rope_scaling (none), tie_word_embeddings (false: the default of LlamaConfig and
 * BitNetConfig), bos/eos_token_id (none; an integer or a list of integers, each < vocab_size),
 * torch_dtype (or v5's "dtype"), quantization_config. Sizes must be positive and at most
 * BN_HF_MAX_DIM (vocab and positions: BN_HF_MAX_VOCAB, BN_HF_MAX_POSITIONS); head_dim must be even.
 *
 * The weight_scale direction (spec/HF_CHECKPOINTS.md section 0): quantization_config.linear_class
 * "autobitlinear" means W = t * weight_scale (microsoft/bitnet-b1.58-2B-4T); anything else (key
 * absent or "bitlinear") means W = t / weight_scale (Falcon3, Falcon-E, HF1BitLLM).
 * quantization_mode "online" means the weights are float masters without weight_scale tensors.
 */
#ifndef BN_CONVERT_HF_CONFIG_H
#define BN_CONVERT_HF_CONFIG_H

#include "bitnet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BN_HF_JSON_MAX (16u << 20)     /* bytes of any of these files */
#define BN_HF_MAX_DIM (1u << 20)       /* hidden/intermediate size, layers, heads, head_dim */
#define BN_HF_MAX_VOCAB (1u << 24)
#define BN_HF_MAX_POSITIONS (1u << 24)
#define BN_HF_MAX_TOKEN_IDS 16         /* entries of a bos/eos id list */

typedef enum bn_hf_arch {
    BN_HF_ARCH_BITNET,         /* "BitNetForCausalLM": microsoft/bitnet-b1.58-2B-4T(-bf16) */
    BN_HF_ARCH_BITNET_1BITLLM, /* "BitnetForCausalLM" (lower-case n): 1bitLLM/bitnet_b1_58-* */
    BN_HF_ARCH_LLAMA           /* "LlamaForCausalLM": Falcon3/Falcon-E 1.58-bit, HF1BitLLM */
} bn_hf_arch;

/* The class name as written in config.json. */
const char *bn_hf_arch_name(bn_hf_arch arch);

typedef enum bn_hf_activation {
    BN_HF_ACT_SILU,  /* "silu" (or its alias "swish"): silu(gate) * up */
    BN_HF_ACT_RELU2  /* "relu2": relu(gate)^2 * up */
} bn_hf_activation;

typedef enum bn_hf_rope_type {
    BN_HF_ROPE_NONE,   /* rope_scaling absent, null, or of type "default" */
    BN_HF_ROPE_LINEAR, /* positions divided by factor */
    BN_HF_ROPE_LLAMA3  /* Llama 3.1 frequency smoothing */
} bn_hf_rope_type;

typedef struct bn_hf_rope_scaling {
    bn_hf_rope_type type;
    double factor;                              /* LINEAR, LLAMA3: > 0 */
    double low_freq_factor, high_freq_factor;   /* LLAMA3: 0 < low < high */
    uint32_t original_max_position_embeddings;  /* LLAMA3: >= 1 */
} bn_hf_rope_scaling;

typedef enum bn_hf_dtype {
    BN_HF_DTYPE_UNSET,
    BN_HF_DTYPE_F32,  /* "float32" */
    BN_HF_DTYPE_F16,  /* "float16" */
    BN_HF_DTYPE_BF16  /* "bfloat16" */
} bn_hf_dtype;

typedef struct bn_hf_token_ids {
    uint32_t n;                                 /* 0: absent */
    int32_t ids[BN_HF_MAX_TOKEN_IDS];
} bn_hf_token_ids;

typedef struct bn_hf_quantization {
    bool present;                  /* quantization_config given (quant_method "bitnet") */
    bool autobitlinear;            /* linear_class: "autobitlinear" (true) or "bitlinear"/absent */
    bool online;                   /* quantization_mode: "online" (true) or "offline"/absent */
    bool scale_multiplies;         /* W = t * weight_scale (autobitlinear); else W = t / weight_scale */
    bool use_rms_norm;             /* a norm inside each linear (no public checkpoint sets it) */
    double rms_norm_eps;           /* that norm's eps (default 1e-6) */
    uint32_t n_modules_to_not_convert;
    char **modules_to_not_convert; /* owned; e.g. "lm_head" */
} bn_hf_quantization;

typedef struct bn_hf_config {
    bn_hf_arch arch;
    uint32_t hidden_size;
    uint32_t intermediate_size;
    uint32_t num_hidden_layers;
    uint32_t num_attention_heads;
    uint32_t num_key_value_heads;
    uint32_t head_dim;             /* given, or hidden_size / num_attention_heads */
    bool head_dim_given;
    uint32_t vocab_size;
    uint32_t max_position_embeddings;
    double rms_norm_eps;           /* (0, 1) */
    double rope_theta;             /* > 0 */
    bn_hf_rope_scaling rope_scaling;
    bn_hf_activation hidden_act;
    bool tie_word_embeddings;
    bn_hf_token_ids bos_token_id, eos_token_id;
    bn_hf_dtype torch_dtype;
    bn_hf_quantization quantization;
} bn_hf_config;

/* config.json from text[0..len) (name is used in messages) or from a file. On success *out owns
 * its strings (bn_hf_config_free); on failure it holds nothing to free. */
bn_status bn_hf_config_parse(const char *text, size_t len, const char *name, bn_hf_config *out,
                             bn_error *err);
bn_status bn_hf_config_load(const char *path, bn_hf_config *out, bn_error *err);
void bn_hf_config_free(bn_hf_config *config);

/* generation_config.json: bos_token_id and eos_token_id (each optional: an integer or a list of
 * integers in [0, 2^31)). The file itself is optional: _load of a path that does not exist
 * returns BN_OK with present = false. */
typedef struct bn_hf_generation_config {
    bool present;
    bn_hf_token_ids bos_token_id, eos_token_id;
} bn_hf_generation_config;

bn_status bn_hf_generation_config_parse(const char *text, size_t len, const char *name,
                                        bn_hf_generation_config *out, bn_error *err);
bn_status bn_hf_generation_config_load(const char *path, bn_hf_generation_config *out, bn_error *err);

/* tokenizer_config.json: chat_template (a string, or a list of {"name", "template"} objects of
 * which the one named "default" is taken), bos_token / eos_token (a string, or an AddedToken
 * object whose "content" is taken), add_bos_token / add_eos_token (booleans). All optional; the
 * file too (_load of a missing path: BN_OK, present = false). Strings are owned copies
 * (bn_hf_tokenizer_config_free); NULL when absent. */
typedef struct bn_hf_tokenizer_config {
    bool present;
    char *chat_template;
    char *bos_token;
    char *eos_token;
    bool has_add_bos_token, add_bos_token;
    bool has_add_eos_token, add_eos_token;
} bn_hf_tokenizer_config;

bn_status bn_hf_tokenizer_config_parse(const char *text, size_t len, const char *name,
                                       bn_hf_tokenizer_config *out, bn_error *err);
bn_status bn_hf_tokenizer_config_load(const char *path, bn_hf_tokenizer_config *out, bn_error *err);
void bn_hf_tokenizer_config_free(bn_hf_tokenizer_config *config);

#endif
