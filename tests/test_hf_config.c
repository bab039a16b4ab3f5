/*
 * test_hf_config.c: the Hugging Face JSON readers (src/convert/hf_config.h).
 *
 * Valid config.json documents modelled on the real checkpoints of spec/HF_CHECKPOINTS.md
 * (microsoft/bitnet-b1.58-2B-4T and its -bf16 twin, tiiuae/Falcon3-1B-Instruct-1.58bit,
 * 1bitLLM/bitnet_b1_58-large, HF1BitLLM's duplicate "quantization_config" key) plus Llama-3.1
 * rope scaling, linear scaling and transformers v5's rope_parameters: every field read is
 * compared with the document, derived values included (head_dim, num_key_value_heads default,
 * the weight_scale direction). Then a malformed set: each document differs from a valid one in
 * one field and must be refused with the listed status and a message that starts with the name
 * and names the field. generation_config.json and tokenizer_config.json likewise, and the _load
 * functions on files (a missing optional file is "absent", a missing config.json an error).
 */
#include "convert/hf_config.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

#define CONFIG_2B4T                                                                                         \
    "{\"architectures\": [\"BitNetForCausalLM\"], \"auto_map\": {\"AutoConfig\": "                           \
    "\"configuration_bitnet.BitNetConfig\"}, \"attention_bias\": false, \"bos_token_id\": 128000, "          \
    "\"eos_token_id\": 128001, \"hidden_act\": \"relu2\", \"hidden_size\": 2560, \"initializer_range\": "   \
    "0.02, \"intermediate_size\": 6912, \"max_position_embeddings\": 4096, \"model_type\": \"bitnet\", "    \
    "\"rms_norm_eps\": 1e-05, \"num_attention_heads\": 20, \"num_hidden_layers\": 30, "                      \
    "\"num_key_value_heads\": 5, \"rope_theta\": 500000.0, \"tie_word_embeddings\": true, "                  \
    "\"torch_dtype\": \"bfloat16\", \"use_cache\": true, \"vocab_size\": 128256, \"quantization_config\": " \
    "{\"linear_class\": \"autobitlinear\", \"quant_method\": \"bitnet\", \"quantization_mode\": \"%s\"}}"

#define CONFIG_FALCON3                                                                                      \
    "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false, \"eos_token_id\": 11, "         \
    "\"head_dim\": 256, \"hidden_act\": \"silu\", \"hidden_size\": 2048, \"intermediate_size\": 8192, "     \
    "\"is_bitnet_config\": true, \"max_position_embeddings\": 8192, \"model_type\": \"llama\", "             \
    "\"num_attention_heads\": 8, \"num_hidden_layers\": 18, \"num_key_value_heads\": 4, "                    \
    "\"quantization_config\": {\"modules_to_not_convert\": [\"lm_head\"], \"quant_method\": \"bitnet\"}, "   \
    "\"rms_norm_eps\": 1e-06, \"rope_scaling\": null, \"rope_theta\": 1000042, \"tie_word_embeddings\": "    \
    "false, \"torch_dtype\": \"bfloat16\", \"vocab_size\": 131072}"

#define CONFIG_1BITLLM                                                                                      \
    "{\"architectures\": [\"BitnetForCausalLM\"], \"bos_token_id\": 1, \"eos_token_id\": 2, "                \
    "\"hidden_act\": \"silu\", \"hidden_size\": 1536, \"input_bits\": 8, \"intermediate_size\": 4096, "     \
    "\"max_position_embeddings\": 2048, \"model_type\": \"llama\", \"num_attention_heads\": 16, "            \
    "\"num_hidden_layers\": 24, \"num_key_value_heads\": 16, \"pad_token_id\": 32000, \"rms_norm_eps\": "    \
    "1e-05, \"rope_scaling\": null, \"rope_theta\": 10000.0, \"tie_word_embeddings\": true, "                \
    "\"torch_dtype\": \"float16\", \"vocab_size\": 32002, \"weight_bits\": 1}"

/* The fields every malformed case starts from (a small Llama config), one of them replaced or left
 * out; model_type closes the list so that any field can be dropped. */
#define F_HIDDEN "\"hidden_size\": 64, "
#define F_INTER "\"intermediate_size\": 128, "
#define F_LAYERS "\"num_hidden_layers\": 2, "
#define F_HEADS "\"num_attention_heads\": 4, "
#define F_VOCAB "\"vocab_size\": 100, "
#define F_MAXPOS "\"max_position_embeddings\": 256, "
#define F_EPS "\"rms_norm_eps\": 1e-5, "
#define F_THETA "\"rope_theta\": 10000, "
#define F_ACT "\"hidden_act\": \"silu\", "
#define F_END "\"model_type\": \"llama\""
#define BASE_FIELDS F_HIDDEN F_INTER F_LAYERS F_HEADS F_VOCAB F_MAXPOS F_EPS F_THETA F_ACT F_END
#define VALID_SMALL "{\"architectures\": [\"LlamaForCausalLM\"], " BASE_FIELDS "}"

static bn_status parse(const char *json, bn_hf_config *c, bn_error *err) {
    bn_error_clear(err);
    return bn_hf_config_parse(json, strlen(json), "config.json", c, err);
}

static void test_2b4t(const char *mode) {
    char json[4096];
    snprintf(json, sizeof json, CONFIG_2B4T, mode);
    bn_hf_config c;
    bn_error err;
    CHECK_OK(parse(json, &c, &err), &err);
    CHECK(c.arch == BN_HF_ARCH_BITNET && !strcmp(bn_hf_arch_name(c.arch), "BitNetForCausalLM"));
    CHECK(c.hidden_size == 2560 && c.intermediate_size == 6912 && c.num_hidden_layers == 30);
    CHECK(c.num_attention_heads == 20 && c.num_key_value_heads == 5);
    CHECK(c.head_dim == 128 && !c.head_dim_given);
    CHECK(c.vocab_size == 128256 && c.max_position_embeddings == 4096);
    CHECK(c.rms_norm_eps == 1e-5 && c.rope_theta == 500000.0);
    CHECK(c.rope_scaling.type == BN_HF_ROPE_NONE);
    CHECK(c.hidden_act == BN_HF_ACT_RELU2 && c.tie_word_embeddings);
    CHECK(c.bos_token_id.n == 1 && c.bos_token_id.ids[0] == 128000);
    CHECK(c.eos_token_id.n == 1 && c.eos_token_id.ids[0] == 128001);
    CHECK(c.torch_dtype == BN_HF_DTYPE_BF16);
    CHECK(c.quantization.present && c.quantization.autobitlinear && c.quantization.scale_multiplies);
    CHECK(c.quantization.online == !strcmp(mode, "online"));
    CHECK(!c.quantization.use_rms_norm && c.quantization.rms_norm_eps == 1e-6);
    CHECK(c.quantization.n_modules_to_not_convert == 0);
    bn_hf_config_free(&c);
}

static void test_falcon3(void) {
    bn_hf_config c;
    bn_error err;
    CHECK_OK(parse(CONFIG_FALCON3, &c, &err), &err);
    CHECK(c.arch == BN_HF_ARCH_LLAMA && !strcmp(bn_hf_arch_name(c.arch), "LlamaForCausalLM"));
    CHECK(c.hidden_size == 2048 && c.intermediate_size == 8192 && c.num_hidden_layers == 18);
    CHECK(c.num_attention_heads == 8 && c.num_key_value_heads == 4);
    CHECK(c.head_dim == 256 && c.head_dim_given);
    CHECK(c.vocab_size == 131072 && c.max_position_embeddings == 8192);
    CHECK(c.rms_norm_eps == 1e-6 && c.rope_theta == 1000042.0);
    CHECK(c.rope_scaling.type == BN_HF_ROPE_NONE);
    CHECK(c.hidden_act == BN_HF_ACT_SILU && !c.tie_word_embeddings);
    CHECK(c.bos_token_id.n == 0);
    CHECK(c.eos_token_id.n == 1 && c.eos_token_id.ids[0] == 11);
    CHECK(c.torch_dtype == BN_HF_DTYPE_BF16);
    /* no linear_class: bitlinear, W = t / weight_scale */
    CHECK(c.quantization.present && !c.quantization.autobitlinear && !c.quantization.scale_multiplies);
    CHECK(!c.quantization.online);
    CHECK(c.quantization.n_modules_to_not_convert == 1 && !strcmp(c.quantization.modules_to_not_convert[0], "lm_head"));
    bn_hf_config_free(&c);
    CHECK(c.quantization.modules_to_not_convert == NULL && c.quantization.n_modules_to_not_convert == 0);
}

static void test_1bitllm(void) {
    bn_hf_config c;
    bn_error err;
    CHECK_OK(parse(CONFIG_1BITLLM, &c, &err), &err);
    CHECK(c.arch == BN_HF_ARCH_BITNET_1BITLLM && !strcmp(bn_hf_arch_name(c.arch), "BitnetForCausalLM"));
    CHECK(c.hidden_size == 1536 && c.intermediate_size == 4096 && c.num_hidden_layers == 24);
    CHECK(c.num_attention_heads == 16 && c.num_key_value_heads == 16 && c.head_dim == 96);
    CHECK(c.vocab_size == 32002 && c.max_position_embeddings == 2048);
    CHECK(c.rms_norm_eps == 1e-5 && c.rope_theta == 10000.0);
    CHECK(c.hidden_act == BN_HF_ACT_SILU && c.tie_word_embeddings);
    CHECK(c.bos_token_id.n == 1 && c.bos_token_id.ids[0] == 1 && c.eos_token_id.n == 1 && c.eos_token_id.ids[0] == 2);
    CHECK(c.torch_dtype == BN_HF_DTYPE_F16);
    CHECK(!c.quantization.present); /* float latent weights */
    bn_hf_config_free(&c);
}

static void test_variants(void) {
    bn_hf_config c;
    bn_error err;
    /* HF1BitLLM: two quantization_config keys, the last wins (here the first would be refused) */
    CHECK_OK(parse("{\"architectures\": [\"LlamaForCausalLM\"], " BASE_FIELDS ", \"quantization_config\": "
                   "{\"quant_method\": \"gptq\"}, \"quantization_config\": {\"quant_method\": \"bitnet\", "
                   "\"linear_class\": \"bitlinear\"}}",
                   &c, &err),
             &err);
    CHECK(c.quantization.present && !c.quantization.scale_multiplies);
    bn_hf_config_free(&c);

    /* Llama 3.1: llama3 rope scaling, eos list, num_key_value_heads defaulting to the heads */
    CHECK_OK(parse("{\"architectures\": [\"LlamaForCausalLM\"], " BASE_FIELDS ", \"eos_token_id\": [1, 8, 9], "
                   "\"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                   "\"original_max_position_embeddings\": 128, \"rope_type\": \"llama3\"}, "
                   "\"quantization_config\": null, \"tie_word_embeddings\": null}",
                   &c, &err),
             &err);
    CHECK(c.num_key_value_heads == 4 && c.head_dim == 16);
    CHECK(c.eos_token_id.n == 3 && c.eos_token_id.ids[0] == 1 && c.eos_token_id.ids[1] == 8 && c.eos_token_id.ids[2] == 9);
    CHECK(c.rope_scaling.type == BN_HF_ROPE_LLAMA3 && c.rope_scaling.factor == 8.0);
    CHECK(c.rope_scaling.low_freq_factor == 1.0 && c.rope_scaling.high_freq_factor == 4.0);
    CHECK(c.rope_scaling.original_max_position_embeddings == 128);
    CHECK(!c.quantization.present && !c.tie_word_embeddings && c.torch_dtype == BN_HF_DTYPE_UNSET);
    bn_hf_config_free(&c);

    /* linear scaling, spelled with the old "type" key; the v5 "dtype" key */
    CHECK_OK(parse("{\"architectures\": [\"LlamaForCausalLM\"], " BASE_FIELDS
                   ", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}, \"dtype\": \"float32\"}",
                   &c, &err),
             &err);
    CHECK(c.rope_scaling.type == BN_HF_ROPE_LINEAR && c.rope_scaling.factor == 2.0);
    CHECK(c.torch_dtype == BN_HF_DTYPE_F32);
    bn_hf_config_free(&c);

    /* "default" scaling is none */
    CHECK_OK(parse("{\"architectures\": [\"LlamaForCausalLM\"], " BASE_FIELDS
                   ", \"rope_scaling\": {\"rope_type\": \"default\", \"factor\": 3}}",
                   &c, &err),
             &err);
    CHECK(c.rope_scaling.type == BN_HF_ROPE_NONE);
    bn_hf_config_free(&c);

    /* transformers v5: rope_theta and scaling inside rope_parameters */
    static const char v5[] =
        "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 32, "
        "\"vocab_size\": 100, \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-6, \"hidden_act\": \"swish\", "
        "\"rope_parameters\": {\"rope_theta\": 250000.0, \"rope_type\": \"linear\", \"factor\": 4}}";
    CHECK_OK(parse(v5, &c, &err), &err);
    CHECK(c.rope_theta == 250000.0 && c.rope_scaling.type == BN_HF_ROPE_LINEAR && c.rope_scaling.factor == 4.0);
    CHECK(c.num_key_value_heads == 2 && c.head_dim == 32 && c.head_dim_given && c.hidden_act == BN_HF_ACT_SILU);
    bn_hf_config_free(&c);
    CHECK_OK(parse("{\"architectures\": [\"LlamaForCausalLM\"], " BASE_FIELDS
                   ", \"rope_parameters\": {\"rope_theta\": 10000}}",
                   &c, &err),
             &err);
    CHECK(c.rope_scaling.type == BN_HF_ROPE_NONE);
    bn_hf_config_free(&c);

    /* the limits themselves are accepted */
    CHECK_OK(parse("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 1048576, \"intermediate_size\": "
                   "1048576, \"num_hidden_layers\": 1, \"num_attention_heads\": 1, \"vocab_size\": 16777216, "
                   "\"max_position_embeddings\": 16777216, \"rms_norm_eps\": 0.5, \"rope_theta\": 1, "
                   "\"hidden_act\": \"silu\", \"eos_token_id\": 16777215}",
                   &c, &err),
             &err);
    CHECK(c.head_dim == 1048576 && c.eos_token_id.ids[0] == 16777215);
    bn_hf_config_free(&c);
}

typedef struct bad_case {
    const char *json;
    bn_status status;
    const char *expect; /* after "config.json: " */
} bad_case;

#define ARCH "\"architectures\": [\"LlamaForCausalLM\"], "
/* BASE_FIELDS with one of them left out */
#define NO_HIDDEN F_INTER F_LAYERS F_HEADS F_VOCAB F_MAXPOS F_EPS F_THETA F_ACT F_END
#define NO_INTER F_HIDDEN F_LAYERS F_HEADS F_VOCAB F_MAXPOS F_EPS F_THETA F_ACT F_END
#define NO_MAXPOS F_HIDDEN F_INTER F_LAYERS F_HEADS F_VOCAB F_EPS F_THETA F_ACT F_END
#define NO_EPS F_HIDDEN F_INTER F_LAYERS F_HEADS F_VOCAB F_MAXPOS F_THETA F_ACT F_END
#define NO_THETA F_HIDDEN F_INTER F_LAYERS F_HEADS F_VOCAB F_MAXPOS F_EPS F_ACT F_END
#define NO_ACT F_HIDDEN F_INTER F_LAYERS F_HEADS F_VOCAB F_MAXPOS F_EPS F_THETA F_END
/* duplicate keys: the last one is the value read, so a later key replaces a BASE_FIELDS value */
#define WITH(extra) "{" ARCH BASE_FIELDS ", " extra "}"

static const bad_case bad_configs[] = {
    {"", BN_ERR_FORMAT, "JSON: line 1 column 0 (byte 0): '[' or '{' expected near end of file"},
    {"[1]", BN_ERR_FORMAT, "JSON is an array, not an object"},
    {"{\"hidden_size\": }", BN_ERR_FORMAT, "JSON: line 1 column 17"},
    {"{" BASE_FIELDS "}", BN_ERR_FORMAT, "field 'architectures' is missing"},
    {"{\"architectures\": \"LlamaForCausalLM\", " BASE_FIELDS "}", BN_ERR_FORMAT,
     "field 'architectures' has JSON type string, expected list of strings"},
    {"{\"architectures\": [], " BASE_FIELDS "}", BN_ERR_FORMAT, "field 'architectures' is empty"},
    {"{\"architectures\": [7], " BASE_FIELDS "}", BN_ERR_FORMAT,
     "field 'architectures[0]' has JSON type integer, expected string"},
    {"{\"architectures\": [\"MistralForCausalLM\"], " BASE_FIELDS "}", BN_ERR_UNSUPPORTED,
     "field 'architectures[0]': class 'MistralForCausalLM' is not supported"},
    {"{\"architectures\": [\"bitnetforcausallm\"], " BASE_FIELDS "}", BN_ERR_UNSUPPORTED,
     "class 'bitnetforcausallm' is not supported"},
    {"{\"architectures\": [\"Evil\\u001b[2J\"], " BASE_FIELDS "}", BN_ERR_UNSUPPORTED,
     "class 'Evil\\x1b[2J' is not supported"},
    {"{" ARCH NO_HIDDEN "}", BN_ERR_FORMAT, "field 'hidden_size' is missing"},
    {"{" ARCH NO_HIDDEN ", \"hidden_size\": null}", BN_ERR_FORMAT, "field 'hidden_size' is missing"},
    {WITH("\"hidden_size\": \"2048\""), BN_ERR_FORMAT, "field 'hidden_size' has JSON type string, expected integer"},
    {WITH("\"hidden_size\": 64.0"), BN_ERR_FORMAT, "field 'hidden_size' has JSON type real, expected integer"},
    {WITH("\"hidden_size\": true"), BN_ERR_FORMAT, "field 'hidden_size' has JSON type boolean, expected integer"},
    {WITH("\"hidden_size\": -64"), BN_ERR_FORMAT, "field 'hidden_size': -64 is negative"},
    {WITH("\"hidden_size\": 0"), BN_ERR_FORMAT, "field 'hidden_size': 0 must be positive"},
    {WITH("\"hidden_size\": 1048577"), BN_ERR_FORMAT, "field 'hidden_size': 1048577 exceeds the limit of 1048576"},
    {WITH("\"hidden_size\": 9223372036854775807"), BN_ERR_FORMAT, "field 'hidden_size': 9223372036854775807 exceeds"},
    {"{" ARCH NO_INTER "}", BN_ERR_FORMAT, "field 'intermediate_size' is missing"},
    {WITH("\"intermediate_size\": 0"), BN_ERR_FORMAT, "field 'intermediate_size': 0 must be positive"},
    {WITH("\"num_hidden_layers\": 0"), BN_ERR_FORMAT, "field 'num_hidden_layers': 0 must be positive"},
    {WITH("\"num_hidden_layers\": 2000000"), BN_ERR_FORMAT, "field 'num_hidden_layers': 2000000 exceeds the limit"},
    {WITH("\"num_attention_heads\": 0"), BN_ERR_FORMAT, "field 'num_attention_heads': 0 must be positive"},
    {WITH("\"num_attention_heads\": 3"), BN_ERR_FORMAT,
     "field 'num_attention_heads': 3 does not divide hidden_size 64 (and head_dim is absent)"},
    {WITH("\"num_attention_heads\": 64"), BN_ERR_FORMAT,
     "field 'num_attention_heads': head_dim = hidden_size 64 / 64 = 1 is odd"},
    {WITH("\"num_key_value_heads\": 3"), BN_ERR_FORMAT, "field 'num_key_value_heads': 3 does not divide num_attention_heads 4"},
    {WITH("\"num_key_value_heads\": 8"), BN_ERR_FORMAT, "field 'num_key_value_heads': 8 does not divide num_attention_heads 4"},
    {WITH("\"num_key_value_heads\": 0"), BN_ERR_FORMAT, "field 'num_key_value_heads': 0 must be positive"},
    {WITH("\"head_dim\": 15"), BN_ERR_FORMAT, "field 'head_dim': 15 is odd"},
    {WITH("\"head_dim\": 0"), BN_ERR_FORMAT, "field 'head_dim': 0 must be positive"},
    {WITH("\"head_dim\": 2097152"), BN_ERR_FORMAT, "field 'head_dim': 2097152 exceeds the limit"},
    {WITH("\"vocab_size\": 0"), BN_ERR_FORMAT, "field 'vocab_size': 0 must be positive"},
    {WITH("\"vocab_size\": 16777217"), BN_ERR_FORMAT, "field 'vocab_size': 16777217 exceeds the limit of 16777216"},
    {"{" ARCH NO_MAXPOS "}", BN_ERR_FORMAT, "field 'max_position_embeddings' is missing"},
    {WITH("\"max_position_embeddings\": -1"), BN_ERR_FORMAT, "field 'max_position_embeddings': -1 is negative"},
    {"{" ARCH NO_EPS "}", BN_ERR_FORMAT, "field 'rms_norm_eps' is missing"},
    {WITH("\"rms_norm_eps\": 0"), BN_ERR_FORMAT, "field 'rms_norm_eps': 0 must be positive"},
    {WITH("\"rms_norm_eps\": -1e-6"), BN_ERR_FORMAT, "field 'rms_norm_eps': -1e-06 must be positive"},
    {WITH("\"rms_norm_eps\": 1.5"), BN_ERR_FORMAT, "field 'rms_norm_eps': 1.5 is not below 1"},
    {WITH("\"rms_norm_eps\": \"1e-5\""), BN_ERR_FORMAT, "field 'rms_norm_eps' has JSON type string, expected number"},
    {"{" ARCH NO_THETA "}", BN_ERR_FORMAT, "field 'rope_theta' is missing"},
    {WITH("\"rope_theta\": 0"), BN_ERR_FORMAT, "field 'rope_theta': 0 must be positive"},
    {WITH("\"rope_theta\": -10000.0"), BN_ERR_FORMAT, "field 'rope_theta': -10000 must be positive"},
    {WITH("\"rope_theta\": [10000]"), BN_ERR_FORMAT, "field 'rope_theta' has JSON type array, expected number"},
    {WITH("\"rope_parameters\": {\"rope_theta\": 500000}"), BN_ERR_FORMAT,
     "field 'rope_theta': 10000 disagrees with rope_parameters.rope_theta 500000"},
    {WITH("\"rope_parameters\": 5"), BN_ERR_FORMAT, "field 'rope_parameters' has JSON type integer, expected object or null"},
    {WITH("\"rope_scaling\": \"linear\""), BN_ERR_FORMAT, "field 'rope_scaling' has JSON type string, expected object or null"},
    {WITH("\"rope_scaling\": {\"factor\": 2}"), BN_ERR_FORMAT, "field 'rope_scaling.rope_type' is missing"},
    {WITH("\"rope_scaling\": {\"type\": 2, \"factor\": 2}"), BN_ERR_FORMAT,
     "field 'rope_scaling.type' has JSON type integer, expected string"},
    {WITH("\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 2}"), BN_ERR_UNSUPPORTED,
     "field 'rope_scaling.rope_type': 'yarn' is not supported (accepted: default, linear, llama3)"},
    {WITH("\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2}"), BN_ERR_UNSUPPORTED,
     "field 'rope_scaling.type': 'dynamic' is not supported"},
    {WITH("\"rope_scaling\": {\"type\": \"linear\", \"rope_type\": \"llama3\", \"factor\": 2}"), BN_ERR_FORMAT,
     "field 'rope_scaling': type 'linear' and rope_type 'llama3' disagree"},
    {WITH("\"rope_scaling\": {\"type\": \"linear\"}"), BN_ERR_FORMAT, "field 'rope_scaling.factor' is missing"},
    {WITH("\"rope_scaling\": {\"type\": \"linear\", \"factor\": 0}"), BN_ERR_FORMAT,
     "field 'rope_scaling.factor': 0 must be positive"},
    {WITH("\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"high_freq_factor\": 4, "
          "\"original_max_position_embeddings\": 8192}"),
     BN_ERR_FORMAT, "field 'rope_scaling.low_freq_factor' is missing"},
    {WITH("\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 4, "
          "\"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192}"),
     BN_ERR_FORMAT, "field 'rope_scaling.high_freq_factor': 4 is not above low_freq_factor 4"},
    {WITH("\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 1, "
          "\"high_freq_factor\": 4}"),
     BN_ERR_FORMAT, "field 'rope_scaling.original_max_position_embeddings' is missing"},
    {WITH("\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 1, "
          "\"high_freq_factor\": 4, \"original_max_position_embeddings\": 0}"),
     BN_ERR_FORMAT, "field 'rope_scaling.original_max_position_embeddings': 0 must be positive"},
    {"{" ARCH NO_ACT "}", BN_ERR_FORMAT, "field 'hidden_act' is missing"},
    {WITH("\"hidden_act\": \"gelu\""), BN_ERR_UNSUPPORTED, "field 'hidden_act': 'gelu' is not supported (accepted: silu, swish, relu2)"},
    {WITH("\"hidden_act\": 1"), BN_ERR_FORMAT, "field 'hidden_act' has JSON type integer, expected string"},
    {WITH("\"tie_word_embeddings\": \"true\""), BN_ERR_FORMAT,
     "field 'tie_word_embeddings' has JSON type string, expected boolean"},
    {WITH("\"bos_token_id\": \"1\""), BN_ERR_FORMAT,
     "field 'bos_token_id' has JSON type string, expected integer or list of integers"},
    {WITH("\"bos_token_id\": -1"), BN_ERR_FORMAT, "field 'bos_token_id': -1 is negative"},
    {WITH("\"bos_token_id\": 100"), BN_ERR_FORMAT, "field 'bos_token_id': 100 is not below vocab_size 100"},
    {WITH("\"eos_token_id\": [1, \"x\"]"), BN_ERR_FORMAT, "field 'eos_token_id[1]' has JSON type string, expected integer"},
    {WITH("\"eos_token_id\": [1, 2, 3000]"), BN_ERR_FORMAT, "field 'eos_token_id[2]': 3000 is not below vocab_size 100"},
    {WITH("\"eos_token_id\": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]"), BN_ERR_FORMAT,
     "field 'eos_token_id': 17 ids exceed the limit of 16"},
    {WITH("\"torch_dtype\": \"float64\""), BN_ERR_UNSUPPORTED,
     "field 'torch_dtype': 'float64' is not supported (accepted: float32, float16, bfloat16)"},
    {WITH("\"torch_dtype\": 16"), BN_ERR_FORMAT, "field 'torch_dtype' has JSON type integer, expected string"},
    {WITH("\"torch_dtype\": \"float16\", \"dtype\": \"bfloat16\""), BN_ERR_FORMAT,
     "field 'dtype': 'bfloat16' disagrees with torch_dtype"},
    {WITH("\"quantization_config\": \"bitnet\""), BN_ERR_FORMAT,
     "field 'quantization_config' has JSON type string, expected object or null"},
    {WITH("\"quantization_config\": {\"linear_class\": \"bitlinear\"}"), BN_ERR_FORMAT,
     "field 'quantization_config.quant_method' is missing"},
    {WITH("\"quantization_config\": {\"quant_method\": \"gptq\"}"), BN_ERR_UNSUPPORTED,
     "field 'quantization_config.quant_method': 'gptq' is not supported (accepted: bitnet)"},
    {WITH("\"quantization_config\": {\"quant_method\": \"bitnet\", \"linear_class\": \"AutoBitLinear\"}"),
     BN_ERR_UNSUPPORTED, "field 'quantization_config.linear_class': 'AutoBitLinear' is not supported"},
    {WITH("\"quantization_config\": {\"quant_method\": \"bitnet\", \"quantization_mode\": \"lazy\"}"),
     BN_ERR_UNSUPPORTED, "field 'quantization_config.quantization_mode': 'lazy' is not supported (accepted: offline, online)"},
    {WITH("\"quantization_config\": {\"quant_method\": \"bitnet\", \"use_rms_norm\": 1}"), BN_ERR_FORMAT,
     "field 'quantization_config.use_rms_norm' has JSON type integer, expected boolean"},
    {WITH("\"quantization_config\": {\"quant_method\": \"bitnet\", \"rms_norm_eps\": 0}"), BN_ERR_FORMAT,
     "field 'quantization_config.rms_norm_eps': 0 must be positive"},
    {WITH("\"quantization_config\": {\"quant_method\": \"bitnet\", \"modules_to_not_convert\": \"lm_head\"}"),
     BN_ERR_FORMAT, "field 'quantization_config.modules_to_not_convert' has JSON type string, expected list"},
    {WITH("\"quantization_config\": {\"quant_method\": \"bitnet\", \"modules_to_not_convert\": [\"lm_head\", 3]}"),
     BN_ERR_FORMAT, "field 'quantization_config.modules_to_not_convert[1]' has JSON type integer, expected string"},
};

static void test_bad_configs(void) {
    for (size_t i = 0; i < sizeof bad_configs / sizeof bad_configs[0]; i++) {
        const bad_case *b = &bad_configs[i];
        bn_hf_config c;
        memset(&c, 0x5a, sizeof c);
        bn_error err;
        bn_status st = parse(b->json, &c, &err);
        CHECKF(st == b->status, "case %zu: status %s, expected %s (%s)", i, bn_status_name(st), bn_status_name(b->status),
               err.message);
        CHECKF(!strncmp(err.message, "config.json: ", 13), "case %zu: %s", i, err.message);
        CHECKF(strstr(err.message, b->expect) != NULL, "case %zu:\n    expected: %s\n    got:      %s", i, b->expect,
               err.message);
        CHECKF(c.quantization.modules_to_not_convert == NULL, "case %zu: a failed parse left strings", i);
        bn_hf_config_free(&c); /* nothing to free, and safe to call */
    }
    /* the small base document itself is valid, so each case fails only for its own field */
    bn_hf_config c;
    bn_error err;
    CHECK_OK(parse(VALID_SMALL, &c, &err), &err);
    CHECK(c.head_dim == 16 && c.num_key_value_heads == 4 && !c.quantization.present);
    bn_hf_config_free(&c);
}

static void test_generation_config(const char *dir) {
    bn_hf_generation_config g;
    bn_error err;
    static const char ok[] = "{\"bos_token_id\": 128000, \"eos_token_id\": [128001, 128009], \"temperature\": 0.6}";
    CHECK_OK(bn_hf_generation_config_parse(ok, strlen(ok), "generation_config.json", &g, &err), &err);
    CHECK(g.present && g.bos_token_id.n == 1 && g.bos_token_id.ids[0] == 128000);
    CHECK(g.eos_token_id.n == 2 && g.eos_token_id.ids[0] == 128001 && g.eos_token_id.ids[1] == 128009);
    static const char none[] = "{\"do_sample\": true, \"eos_token_id\": null}";
    CHECK_OK(bn_hf_generation_config_parse(none, strlen(none), "g", &g, &err), &err);
    CHECK(g.present && g.bos_token_id.n == 0 && g.eos_token_id.n == 0);
    static const struct {
        const char *json, *expect;
    } bad[] = {
        {"{\"eos_token_id\": -2}", "g: field 'eos_token_id': -2 is negative"},
        {"{\"bos_token_id\": \"<s>\"}", "g: field 'bos_token_id' has JSON type string"},
        {"{\"eos_token_id\": [2147483648]}", "g: field 'eos_token_id[0]': 2147483648 exceeds the limit of 2147483647"},
        {"{\"eos_token_id\": [1.5]}", "g: field 'eos_token_id[0]' has JSON type real, expected integer"},
        {"[]", "g: JSON is an array, not an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bn_status st = bn_hf_generation_config_parse(bad[i].json, strlen(bad[i].json), "g", &g, &err);
        CHECKF(st == BN_ERR_FORMAT && !g.present, "generation case %zu", i);
        CHECKF(strstr(err.message, bad[i].expect) != NULL, "generation case %zu:\n    expected: %s\n    got:      %s", i,
               bad[i].expect, err.message);
    }
    /* files: absent is fine, present is parsed, a directory is an error */
    char *path = bn_test_path(dir, "generation_config.json");
    CHECK_OK(bn_hf_generation_config_load(path, &g, &err), &err);
    CHECK(!g.present && g.eos_token_id.n == 0);
    CHECK(bn_test_write_file(path, ok, strlen(ok)));
    CHECK_OK(bn_hf_generation_config_load(path, &g, &err), &err);
    CHECK(g.present && g.eos_token_id.n == 2);
    CHECK(bn_test_write_file(path, "{\"eos_token_id\": -1}", 20));
    CHECK(bn_hf_generation_config_load(path, &g, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "generation_config.json: field 'eos_token_id': -1 is negative");
    CHECK(bn_hf_generation_config_load(dir, &g, &err) == BN_ERR_IO);
    free(path);
}

static void test_tokenizer_config(const char *dir) {
    bn_hf_tokenizer_config t;
    bn_error err;
    static const char ok[] =
        "{\"add_bos_token\": true, \"add_eos_token\": false, \"bos_token\": {\"__type\": \"AddedToken\", "
        "\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\", \"chat_template\": "
        "\"{% for m in messages %}{{ m['content'] }}{% endfor %}\", \"model_max_length\": 4096}";
    CHECK_OK(bn_hf_tokenizer_config_parse(ok, strlen(ok), "tokenizer_config.json", &t, &err), &err);
    CHECK(t.present && t.bos_token && !strcmp(t.bos_token, "<s>") && t.eos_token && !strcmp(t.eos_token, "</s>"));
    CHECK(t.chat_template && !strcmp(t.chat_template, "{% for m in messages %}{{ m['content'] }}{% endfor %}"));
    CHECK(t.has_add_bos_token && t.add_bos_token && t.has_add_eos_token && !t.add_eos_token);
    bn_hf_tokenizer_config_free(&t);
    CHECK(t.chat_template == NULL && t.bos_token == NULL && !t.present);

    static const char named[] =
        "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": \"default\", \"template\": "
        "\"D\"}], \"bos_token\": null}";
    CHECK_OK(bn_hf_tokenizer_config_parse(named, strlen(named), "t", &t, &err), &err);
    CHECK(t.chat_template && !strcmp(t.chat_template, "D") && t.bos_token == NULL && t.eos_token == NULL);
    CHECK(!t.has_add_bos_token && !t.has_add_eos_token);
    bn_hf_tokenizer_config_free(&t);

    static const struct {
        const char *json, *expect;
    } bad[] = {
        {"{\"chat_template\": 5}", "t: field 'chat_template' has JSON type integer, expected string or list"},
        {"{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}]}",
         "t: field 'chat_template': none of its 1 templates is named 'default'"},
        {"{\"chat_template\": [\"x\"]}", "t: field 'chat_template[0]' has JSON type string, expected object"},
        {"{\"chat_template\": [{\"name\": \"default\"}]}", "t: field 'chat_template[0].template' is missing"},
        {"{\"chat_template\": [{\"template\": \"x\"}]}", "t: field 'chat_template[0].name' is missing"},
        {"{\"bos_token\": 1}", "t: field 'bos_token' has JSON type integer, expected string or AddedToken object"},
        {"{\"eos_token\": {\"__type\": \"AddedToken\"}}", "t: field 'eos_token.content' is missing"},
        {"{\"eos_token\": {\"content\": 2}}", "t: field 'eos_token.content' has JSON type integer, expected string"},
        {"{\"add_bos_token\": \"true\"}", "t: field 'add_bos_token' has JSON type string, expected boolean"},
        {"{\"chat_template\": \"ok\", \"add_eos_token\": 0}", "t: field 'add_eos_token' has JSON type integer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bn_status st = bn_hf_tokenizer_config_parse(bad[i].json, strlen(bad[i].json), "t", &t, &err);
        CHECKF(st == BN_ERR_FORMAT && !t.present && !t.chat_template, "tokenizer case %zu", i);
        CHECKF(strstr(err.message, bad[i].expect) != NULL, "tokenizer case %zu:\n    expected: %s\n    got:      %s", i,
               bad[i].expect, err.message);
    }
    char *path = bn_test_path(dir, "tokenizer_config.json");
    CHECK_OK(bn_hf_tokenizer_config_load(path, &t, &err), &err);
    CHECK(!t.present && t.chat_template == NULL);
    CHECK(bn_test_write_file(path, ok, strlen(ok)));
    CHECK_OK(bn_hf_tokenizer_config_load(path, &t, &err), &err);
    CHECK(t.present && t.eos_token && !strcmp(t.eos_token, "</s>"));
    bn_hf_tokenizer_config_free(&t);
    free(path);
}

static void test_load(const char *dir) {
    bn_hf_config c;
    bn_error err;
    char *path = bn_test_path(dir, "config.json");
    CHECK(bn_hf_config_load(path, &c, &err) == BN_ERR_IO); /* config.json is not optional */
    CHECK_STR_CONTAINS(err.message, path);
    CHECK(bn_test_write_file(path, CONFIG_1BITLLM, strlen(CONFIG_1BITLLM)));
    CHECK_OK(bn_hf_config_load(path, &c, &err), &err);
    CHECK(c.arch == BN_HF_ARCH_BITNET_1BITLLM && c.vocab_size == 32002);
    bn_hf_config_free(&c);
    static const char bad[] = "{\"architectures\": [\"GPT2LMHeadModel\"]}";
    CHECK(bn_test_write_file(path, bad, strlen(bad)));
    CHECK(bn_hf_config_load(path, &c, &err) == BN_ERR_UNSUPPORTED);
    char want[1024];
    snprintf(want, sizeof want, "%s: field 'architectures[0]': class 'GPT2LMHeadModel' is not supported", path);
    CHECK_STR_CONTAINS(err.message, want);
    free(path);
}

int main(void) {
    char *dir = bn_test_tmpdir("test_hf_config");
    test_2b4t("offline");
    test_2b4t("online");
    test_falcon3();
    test_1bitllm();
    test_variants();
    test_bad_configs();
    test_generation_config(dir);
    test_tokenizer_config(dir);
    test_load(dir);
    free(dir);
    return bn_test_finish("test_hf_config");
}
