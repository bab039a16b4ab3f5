/*
 * convert_vocab.c: the tokenizer part of a converted GGUF (see convert.h).
 *
 * Design: tokenizer.json is read by the tokenizer's own importer (bn_hf_vocab_load, the same
 * mapping `bitnet synth --vocab-json` uses), or, when a checkpoint has none, its SentencePiece
 * tokenizer.model by spm_model.c into the same bn_hf_vocab; and the keys are written here because a conversion
 * decides more than the importer does: the vocabulary is padded to the model's vocab_size (the
 * loader wants one token per embedding row; llama.cpp's converters pad with "[PAD<id>]" tokens of
 * type UNUSED too), BOS/EOS may come from generation_config.json or config.json, `pre` may be
 * overridden, and EOT and the chat template are added.
 */
#include "convert/convert_internal.h"
#include "convert/convert_json.h"
#include "convert/spm_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHAT_TEMPLATE_MAX (1u << 20)

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int32_t find_text(const bn_hf_vocab *v, const char *text) {
    for (uint32_t i = 0; i < v->n_tokens; i++)
        if (!strcmp(v->tokens[i], text)) return (int32_t)i;
    return -1;
}

/* Grows the vocabulary to n tokens with "[PAD<id>]" of type UNUSED (score -1000 for
 * SentencePiece, as llama.cpp pads). */
static bn_status pad_vocab(bn_hf_vocab *v, uint32_t n, bn_error *err) {
    if (n == v->n_tokens) return BN_OK;
    char **tokens = realloc(v->tokens, n * sizeof *tokens);
    if (tokens) v->tokens = tokens;
    int32_t *types = tokens ? realloc(v->token_types, n * sizeof *types) : NULL;
    if (types) v->token_types = types;
    float *scores = v->scores && types ? realloc(v->scores, n * sizeof *scores) : NULL;
    if (scores) v->scores = scores;
    if (!tokens || !types || (v->scores && !scores))
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %u tokens", n);
    for (uint32_t id = v->n_tokens; id < n; id++) {
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%u]", id);
        if (!(v->tokens[id] = strdup(pad))) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        v->token_types[id] = BN_TOKEN_UNUSED;
        if (v->scores) v->scores[id] = -1000.0f;
        v->n_tokens = id + 1;
    }
    return BN_OK;
}

/* BOS or EOS: the token tokenizer_config.json names (the importer's id), else the id of
 * generation_config.json, else config.json's, else the importer's id by the usual token text. */
static bn_status pick_special(const char *what, bool named, int32_t imported, const bn_hf_token_ids *generation,
                              const bn_hf_token_ids *config, uint32_t n_vocab, int32_t *out, bn_error *err) {
    const char *source = "tokenizer.json";
    *out = imported;
    if (!(named && imported >= 0)) {
        if (generation->n) *out = generation->ids[0], source = "generation_config.json";
        else if (config->n) *out = config->ids[0], source = "config.json";
    }
    if (*out >= (int64_t)n_vocab)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: %s_token_id %d is not below the vocabulary size %u", source, what,
                            *out, n_vocab);
    return BN_OK;
}

static bn_status load_chat_template(bn_convert *c, bn_error *err) {
    if (c->tokenizer_config.chat_template) {
        if (!(c->chat_template = strdup(c->tokenizer_config.chat_template)))
            return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        return BN_OK;
    }
    char *path = bn_convert_path(c->dir, "chat_template.jinja"); /* transformers >= 4.43 saves it apart */
    if (!path) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    bn_status st = BN_OK;
    if (file_exists(path)) {
        size_t size = 0;
        st = bn_convert_read_file(path, CHAT_TEMPLATE_MAX, &c->chat_template, &size, err);
        if (st == BN_OK && strlen(c->chat_template) != size)
            st = bn_error_set(err, BN_ERR_FORMAT, "%s: a chat template must not contain NUL bytes", path);
    }
    free(path);
    return st;
}

/* The token tokenizer_config.json names for BOS or EOS, when tokenizer.model's pieces have it
 * (hf_import does the same for tokenizer.json); else the trainer_spec's id stays. */
static void spm_named_special(const bn_hf_vocab *v, const char *text, int32_t *id) {
    const int32_t named = text ? find_text(v, text) : -1;
    if (named >= 0) *id = named;
}

/* tokenizer.json through the importer; without it, a SentencePiece tokenizer.model. */
static bn_status load_vocab_file(bn_convert *c, bn_error *err) {
    char *json_path = bn_convert_path(c->dir, "tokenizer.json");
    char *model_path = json_path ? bn_convert_path(c->dir, "tokenizer.model") : NULL;
    bn_status st = BN_OK;
    const char *pre = c->options.pre;
    if (pre && bn_tokenizer_pre_from_name(pre, strlen(pre)) == BN_PRE_AUTO) {
        st = bn_error_set(err, BN_ERR_INVALID, "--pre '%s' is not a known pre-tokenizer (%s)", pre,
                          BN_TOKENIZER_PRE_NAMES);
    } else if (!json_path || !model_path) {
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    } else if (file_exists(json_path)) {
        const bn_hf_vocab_options options = {.pre = c->options.pre};
        c->info.vocab_file = "tokenizer.json";
        st = bn_hf_vocab_load_with(&c->vocab, json_path, &options, err);
    } else if (file_exists(model_path)) {
        c->info.vocab_file = "tokenizer.model";
        st = bn_spm_model_load(&c->vocab, model_path, err);
        if (st == BN_OK) {
            spm_named_special(&c->vocab, c->tokenizer_config.bos_token, &c->vocab.bos_id);
            spm_named_special(&c->vocab, c->tokenizer_config.eos_token, &c->vocab.eos_id);
        }
    } else {
        st = bn_error_set(err, BN_ERR_IO,
                          "%s: missing (the converter reads the vocabulary from tokenizer.json, or from a "
                          "SentencePiece tokenizer.model when there is no tokenizer.json; neither is there)",
                          json_path);
    }
    free(json_path);
    free(model_path);
    return st;
}

bn_status bn_convert_vocab_load(bn_convert *c, bn_error *err) {
    bn_status st = load_vocab_file(c, err);
    if (st != BN_OK) return st;

    bn_convert_info *info = &c->info;
    const bn_hf_vocab *v = &c->vocab;
    info->n_tokens = v->n_tokens;
    if (v->n_tokens > info->n_vocab)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "%s has %u tokens but the model has %u (config.json vocab_size, the rows of "
                            "embed_tokens)",
                            info->vocab_file, v->n_tokens, info->n_vocab);
    if ((st = pad_vocab(&c->vocab, info->n_vocab, err))) return st;
    info->tokenizer = v->model;

    const bn_hf_tokenizer_config *tc = &c->tokenizer_config;
    if ((st = pick_special("bos", tc->bos_token != NULL, v->bos_id, &c->generation.bos_token_id,
                           &c->config.bos_token_id, info->n_vocab, &info->bos, err)) ||
        (st = pick_special("eos", tc->eos_token != NULL, v->eos_id, &c->generation.eos_token_id,
                           &c->config.eos_token_id, info->n_vocab, &info->eos, err)))
        return st;
    info->eot = find_text(v, "<|eot_id|>");

    const bool spm = v->scores != NULL;
    if (c->options.pre) {
        if (spm)
            return bn_error_set(err, BN_ERR_INVALID,
                                "--pre '%s': %s is a SentencePiece vocabulary, which has no pre-tokenizer",
                                c->options.pre, info->vocab_file);
        c->pre = c->options.pre;
    } else if (!spm) {
        c->pre = v->pre ? v->pre : "llama-bpe"; /* the importer's NULL is the LLaMA-3 split */
    }
    info->pre = c->pre;
    if ((st = load_chat_template(c, err))) return st;
    info->chat_template = c->chat_template != NULL;
    return BN_OK;
}

bn_status bn_convert_vocab_write(const bn_convert *c, bn_gguf_writer *w, bn_error *err) {
    const bn_hf_vocab *v = &c->vocab;
    const bn_convert_info *info = &c->info;
    const bool spm = v->scores != NULL;
    const char *const *tokens = (const char *const *)v->tokens;
    bn_status st = bn_gguf_writer_add_string(w, "tokenizer.ggml.model", v->model, err);
    if (!st && c->pre) st = bn_gguf_writer_add_string(w, "tokenizer.ggml.pre", c->pre, err);
    if (!st) st = bn_gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", tokens, v->n_tokens, err);
    if (!st && spm) st = bn_gguf_writer_add_array(w, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, v->scores, v->n_tokens, err);
    if (!st) st = bn_gguf_writer_add_array(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, v->token_types, v->n_tokens, err);
    if (!st && !spm)
        st = bn_gguf_writer_add_string_array(w, "tokenizer.ggml.merges", (const char *const *)v->merges, v->n_merges, err);
    if (!st && info->bos >= 0) st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)info->bos, err);
    if (!st && info->eos >= 0) st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)info->eos, err);
    if (!st && spm && v->unk_id >= 0)
        st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk_id, err);
    if (!st && info->eot >= 0) st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)info->eot, err);
    const bn_hf_tokenizer_config *tc = &c->tokenizer_config;
    const bool add_bos = info->bos >= 0 && (tc->has_add_bos_token ? tc->add_bos_token : true);
    if (!st) st = bn_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", add_bos, err);
    if (!st && spm) st = bn_gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", v->add_space_prefix, err);
    if (!st && c->chat_template) st = bn_gguf_writer_add_string(w, "tokenizer.chat_template", c->chat_template, err);
    return st;
}
