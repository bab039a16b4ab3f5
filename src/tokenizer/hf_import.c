/*
 * hf_import.c: a Hugging Face tokenizer.json turned into the GGUF tokenizer metadata that
 * bn_tokenizer_from_gguf reads, so that synthetic models can carry a real vocabulary (LLaMA-3's,
 * Mistral's) and tests can compare with Hugging Face's own tokenizer.
 *
 * Mapping: model.vocab and added_tokens give the token list (ids not used by either become
 * "[PAD<id>]" of type UNUSED); added tokens are CONTROL when "special" is true and USER_DEFINED
 * otherwise. Two kinds of file:
 *   - byte-level BPE: model.merges (either "a b" strings or [a, b] pairs) become "a b" strings in
 *     rank order. The pre-tokenizer must be one this engine implements: ByteLevel with its own
 *     (GPT-2) regex, written as pre = "gpt2", or the LLaMA-3 Split followed by ByteLevel without
 *     regex, written as no `pre` key (which means LLaMA-3 with ignore_merges here, as in the
 *     official BitNet GGUF). A caller that names the pre-tokenizer (bn_hf_vocab_options.pre,
 *     `bitnet convert --pre`) skips the recognition, and any pre_tokenizer is then accepted.
 *   - SentencePiece converted to BPE (LLaMA-2, Mistral): byte_fallback, spaces made ▁ by the
 *     normalizer (Replace, after a Prepend of ▁ when a space prefix is added) or by a Metaspace
 *     pre-tokenizer that does not split. Written as model "llama" with scores instead of merges:
 *     the converters order the merges by the rank of the piece they make, which is what the
 *     score -(id - first learned id) reproduces for SentencePiece's highest-score-first merging;
 *     the <0xNN> pieces become BYTE, model.unk_token UNKNOWN.
 */
#include "tokenizer/tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LLAMA3_SPLIT_REGEX                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*" \
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

#define SPM_SPACE "\xe2\x96\x81" /* ▁, U+2581 */

void bn_hf_vocab_free(bn_hf_vocab *v) {
    if (v->tokens)
        for (uint32_t i = 0; i < v->n_tokens; i++) free(v->tokens[i]);
    if (v->merges)
        for (uint32_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens);
    free(v->token_types);
    free(v->merges);
    free(v->scores);
    memset(v, 0, sizeof *v);
}

bn_tokenizer_vocab bn_hf_vocab_view(const bn_hf_vocab *v) {
    bn_tokenizer_vocab view = {
        .model = v->model, .tokens = (const char *const *)v->tokens, .token_lens = NULL,
        .token_types = v->token_types, .n_tokens = v->n_tokens, .merges = (const char *const *)v->merges,
        .n_merges = v->n_merges, .scores = v->scores, .bos_id = v->bos_id, .eos_id = v->eos_id,
        .eot_id = -1, .unk_id = v->unk_id, .add_bos = v->add_bos, .add_space_prefix = v->add_space_prefix,
        .pre = v->pre,
    };
    return view;
}

static bool bool_field(const json_t *obj, const char *key, bool dflt) {
    const json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* A pre_tokenizer for messages: its type, with a Sequence's member types ("Sequence[Split,
 * ByteLevel]"), "null" when absent; cut to size. */
static void describe_pre(const json_t *pt, char *out, size_t size) {
    const char *type = json_string_value(json_object_get(pt, "type"));
    size_t n = (size_t)snprintf(out, size, "%s", !pt || json_is_null(pt) ? "null" : type ? type : "(no type)");
    if (!type || strcmp(type, "Sequence") != 0) return;
    size_t i;
    const json_t *member;
    json_array_foreach(json_object_get(pt, "pretokenizers"), i, member) {
        const char *t = json_string_value(json_object_get(member, "type"));
        if (n >= size) return;
        n += (size_t)snprintf(out + n, size - n, "%s%s", i ? ", " : "[", t ? t : "?");
    }
    if (n < size) snprintf(out + n, size - n, "]");
}

/* The `pre` value equivalent to the file's pre_tokenizer (NULL: LLaMA-3, written as absent). */
static bn_status detect_pre(const json_t *root, const char *path, const char **pre, bn_error *err) {
    const json_t *pt = json_object_get(root, "pre_tokenizer");
    const char *type = json_string_value(json_object_get(pt, "type"));
    const json_t *model = json_object_get(root, "model");
    bool ignore_merges = bool_field(model, "ignore_merges", false);
    if (type && !strcmp(type, "ByteLevel") && bool_field(pt, "use_regex", true) &&
        !bool_field(pt, "add_prefix_space", false)) {
        if (ignore_merges)
            return bn_error_set(err, BN_ERR_UNSUPPORTED, "%s: model.ignore_merges with the GPT-2 split is not supported", path);
        *pre = "gpt2";
        return BN_OK;
    }
    if (type && !strcmp(type, "Sequence")) {
        const json_t *list = json_object_get(pt, "pretokenizers");
        const json_t *split = json_array_get(list, 0), *bl = json_array_get(list, 1);
        const char *regex = json_string_value(json_object_get(json_object_get(split, "pattern"), "Regex"));
        const char *split_type = json_string_value(json_object_get(split, "type"));
        const char *bl_type = json_string_value(json_object_get(bl, "type"));
        if (json_array_size(list) == 2 && split_type && !strcmp(split_type, "Split") && regex &&
            !strcmp(regex, LLAMA3_SPLIT_REGEX) && bl_type && !strcmp(bl_type, "ByteLevel") &&
            !bool_field(bl, "use_regex", true) && !bool_field(bl, "add_prefix_space", false)) {
            if (!ignore_merges)
                return bn_error_set(err, BN_ERR_UNSUPPORTED,
                                    "%s: the LLaMA-3 split without model.ignore_merges is not supported", path);
            *pre = NULL;
            return BN_OK;
        }
    }
    char what[160];
    describe_pre(pt, what, sizeof what);
    return bn_error_set(err, BN_ERR_UNSUPPORTED,
                        "%s: pre_tokenizer %s is neither GPT-2 ByteLevel nor the LLaMA-3 split (`bitnet convert "
                        "--pre NAME` names the split to use instead)",
                        path, what);
}

static bool string_field_is(const json_t *obj, const char *key, const char *want) {
    const char *v = json_string_value(json_object_get(obj, key));
    return v && !strcmp(v, want);
}

/* A normalizer that only replaces " " by ▁. */
static bool is_space_replace(const json_t *n) {
    return string_field_is(n, "type", "Replace") && string_field_is(json_object_get(n, "pattern"), "String", " ") &&
           string_field_is(n, "content", SPM_SPACE);
}

/* Whether the file is SentencePiece converted to BPE, and whether a ▁ is put before the text:
 * the normalizer [Prepend ▁,] Replace " " -> ▁ without a pre-tokenizer (LLaMA-2's "legacy"
 * form), or no normalizer and a Metaspace pre-tokenizer with replacement ▁ and split false.
 * Such a file that this engine cannot reproduce (no byte_fallback, a splitting Metaspace, more
 * normalizers) is an error. */
static bn_status detect_spm(const json_t *root, const char *path, bool *spm, bool *space_prefix, bn_error *err) {
    const json_t *norm = json_object_get(root, "normalizer");
    const json_t *pt = json_object_get(root, "pre_tokenizer");
    const json_t *model = json_object_get(root, "model");
    *spm = false;
    *space_prefix = false;
    bool replace = false, prepend = false, other = false;
    if (is_space_replace(norm)) {
        replace = true;
    } else if (string_field_is(norm, "type", "Sequence")) {
        size_t i;
        const json_t *n;
        json_array_foreach(json_object_get(norm, "normalizers"), i, n) {
            if (is_space_replace(n) && !replace) replace = true;
            else if (i == 0 && string_field_is(n, "type", "Prepend") && string_field_is(n, "prepend", SPM_SPACE))
                prepend = true;
            else other = true;
        }
    }
    bool metaspace = string_field_is(pt, "type", "Metaspace") && string_field_is(pt, "replacement", SPM_SPACE);
    if (!replace && !metaspace) return BN_OK;
    if (replace && (other || (pt && !json_is_null(pt))))
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "%s: a ▁ normalizer with other normalizers or a pre-tokenizer is not supported", path);
    if (metaspace) {
        if (norm && !json_is_null(norm))
            return bn_error_set(err, BN_ERR_UNSUPPORTED, "%s: a normalizer before Metaspace is not supported", path);
        if (!json_is_false(json_object_get(pt, "split")))
            return bn_error_set(err, BN_ERR_UNSUPPORTED,
                                "%s: a Metaspace pre-tokenizer that splits words is not SentencePiece", path);
        const char *scheme = json_string_value(json_object_get(pt, "prepend_scheme"));
        prepend = scheme ? strcmp(scheme, "never") != 0 : bool_field(pt, "add_prefix_space", true);
    }
    if (!bool_field(model, "byte_fallback", false))
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "%s: a SentencePiece-style BPE without byte_fallback is not supported", path);
    *spm = true;
    *space_prefix = prepend;
    return BN_OK;
}

/* A token named in tokenizer_config.json: a string or {"content": string}. */
static const char *config_token(const json_t *config, const char *key) {
    const json_t *v = json_object_get(config, key);
    if (json_is_string(v)) return json_string_value(v);
    return json_string_value(json_object_get(v, "content"));
}

static int32_t find_token(const bn_hf_vocab *v, const char *text) {
    if (!text) return -1;
    for (uint32_t i = 0; i < v->n_tokens; i++)
        if (v->tokens[i] && !strcmp(v->tokens[i], text)) return (int32_t)i;
    return -1;
}

static bn_status set_token(bn_hf_vocab *v, int64_t id, const char *text, int32_t type, const char *path,
                           bn_error *err) {
    if (id < 0 || (uint64_t)id >= v->n_tokens)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: token id %lld out of range", path, (long long)id);
    if (v->tokens[id]) {
        if (!strcmp(v->tokens[id], text)) { /* an added token that is also in model.vocab */
            if (type != BN_TOKEN_NORMAL) v->token_types[id] = type;
            return BN_OK;
        }
        return bn_error_set(err, BN_ERR_FORMAT, "%s: id %lld is used by two tokens", path, (long long)id);
    }
    v->tokens[id] = strdup(text);
    if (!v->tokens[id]) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    v->token_types[id] = type;
    return BN_OK;
}

/* True when the piece is <0xNN> (two upper-case hex digits, as the converters write them). */
static bool is_byte_piece(const char *t) {
    return strlen(t) == 6 && !strncmp(t, "<0x", 3) && t[5] == '>' && strchr("0123456789ABCDEF", t[3]) &&
           strchr("0123456789ABCDEF", t[4]);
}

static bool only_spaces(const char *t) {
    if (!*t) return false;
    for (; *t; t += 3)
        if (strncmp(t, SPM_SPACE, 3) != 0) return false;
    return true;
}

/* SentencePiece: BYTE and UNKNOWN types, then the scores of MODEL_FORMAT.md 9.3. */
static bn_status spm_types_and_scores(bn_hf_vocab *v, const char *unk_token, const char *path, bn_error *err) {
    v->unk_id = find_token(v, unk_token ? unk_token : "<unk>");
    if (v->unk_id >= 0) v->token_types[v->unk_id] = BN_TOKEN_UNKNOWN;
    for (uint32_t i = 0; i < v->n_tokens; i++)
        if (v->token_types[i] == BN_TOKEN_NORMAL && is_byte_piece(v->tokens[i])) v->token_types[i] = BN_TOKEN_BYTE;
    v->scores = malloc((v->n_tokens ? v->n_tokens : 1) * sizeof *v->scores);
    if (!v->scores) return bn_error_set(err, BN_ERR_NOMEM, "%s: out of memory", path);
    uint32_t first_learned = 0;
    while (first_learned < v->n_tokens && v->token_types[first_learned] != BN_TOKEN_NORMAL) first_learned++;
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        if (v->token_types[i] != BN_TOKEN_NORMAL) v->scores[i] = 0.0f;
        else if (only_spaces(v->tokens[i])) v->scores[i] = -1e9f;
        else v->scores[i] = -(float)(i - first_learned);
    }
    return BN_OK;
}

bn_status bn_hf_vocab_load(bn_hf_vocab *out, const char *path, bn_error *err) {
    return bn_hf_vocab_load_with(out, path, NULL, err);
}

bn_status bn_hf_vocab_load_with(bn_hf_vocab *out, const char *path, const bn_hf_vocab_options *options,
                                bn_error *err) {
    memset(out, 0, sizeof *out);
    const char *pre_override = options ? options->pre : NULL;
    if (pre_override && bn_tokenizer_pre_from_name(pre_override, strlen(pre_override)) == BN_PRE_AUTO)
        return bn_error_set(err, BN_ERR_INVALID, "pre-tokenizer '%s' is not a known name (%s)", pre_override,
                            BN_TOKENIZER_PRE_NAMES);
    out->bos_id = out->eos_id = out->unk_id = -1;
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) return bn_error_set(err, BN_ERR_FORMAT, "%s:%d: %s", path, jerr.line, jerr.text);
    bn_status st = BN_OK;
    const json_t *model = json_object_get(root, "model");
    const json_t *vocab = json_object_get(model, "vocab");
    const json_t *merges = json_object_get(model, "merges");
    const json_t *added = json_object_get(root, "added_tokens");
    const char *type = json_string_value(json_object_get(model, "type"));
    bool spm = false;
    if (json_is_object(vocab) && (!type || strcmp(type, "BPE") == 0))
        st = detect_spm(root, path, &spm, &out->add_space_prefix, err);
    if (st != BN_OK) goto done;
    if (!json_is_object(vocab) || (!spm && !json_is_array(merges)) || (type && strcmp(type, "BPE") != 0)) {
        st = bn_error_set(err, BN_ERR_UNSUPPORTED, "%s: model is not BPE with vocab and merges", path);
        goto done;
    }
    out->model = spm ? "llama" : "gpt2";
    if (!spm && pre_override) out->pre = pre_override;
    else if (!spm) st = detect_pre(root, path, &out->pre, err);
    if (st != BN_OK) goto done;

    int64_t max_id = -1;
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)vocab, key, value) {
        if (!json_is_integer(value) || json_integer_value(value) < 0 || json_integer_value(value) >= INT32_MAX - 1) {
            st = bn_error_set(err, BN_ERR_FORMAT, "%s: model.vocab[\"%s\"] is not a valid id", path, key);
            goto done;
        }
        if (json_integer_value(value) > max_id) max_id = json_integer_value(value);
    }
    size_t i;
    json_array_foreach(added, i, value) {
        const json_t *id = json_object_get(value, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= INT32_MAX - 1 ||
            !json_is_string(json_object_get(value, "content"))) {
            st = bn_error_set(err, BN_ERR_FORMAT, "%s: added_tokens[%zu] lacks a valid id or content", path, i);
            goto done;
        }
        if (json_integer_value(id) > max_id) max_id = json_integer_value(id);
    }
    out->n_tokens = (uint32_t)(max_id + 1);
    out->tokens = calloc(out->n_tokens ? out->n_tokens : 1, sizeof *out->tokens);
    out->token_types = calloc(out->n_tokens ? out->n_tokens : 1, sizeof *out->token_types);
    out->n_merges = 0;
    size_t n_merges = spm ? 0 : json_array_size(merges); /* SentencePiece: scores instead */
    out->merges = calloc(n_merges ? n_merges : 1, sizeof *out->merges);
    if (!out->tokens || !out->token_types || !out->merges) {
        st = bn_error_set(err, BN_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    json_object_foreach((json_t *)vocab, key, value) {
        st = set_token(out, json_integer_value(value), key, BN_TOKEN_NORMAL, path, err);
        if (st != BN_OK) goto done;
    }
    json_array_foreach(added, i, value) {
        int32_t ttype = bool_field(value, "special", false) ? BN_TOKEN_CONTROL : BN_TOKEN_USER_DEFINED;
        st = set_token(out, json_integer_value(json_object_get(value, "id")),
                       json_string_value(json_object_get(value, "content")), ttype, path, err);
        if (st != BN_OK) goto done;
    }
    for (uint32_t id = 0; id < out->n_tokens; id++) {
        if (out->tokens[id]) continue;
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%u]", id);
        out->tokens[id] = strdup(pad);
        out->token_types[id] = BN_TOKEN_UNUSED;
        if (!out->tokens[id]) {
            st = bn_error_set(err, BN_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
    }
    for (i = 0; i < n_merges; i++) {
        value = json_array_get(merges, i);
        const char *a = NULL, *b = NULL;
        char *m = NULL;
        if (json_is_string(value)) {
            m = strdup(json_string_value(value));
        } else if (json_is_array(value) && json_array_size(value) == 2) {
            a = json_string_value(json_array_get(value, 0));
            b = json_string_value(json_array_get(value, 1));
            if (a && b) {
                size_t la = strlen(a), lb = strlen(b);
                if (la + lb + 2 > la) { /* cannot overflow for real strings; keeps the sum checked */
                    m = malloc(la + lb + 2);
                    if (m) {
                        memcpy(m, a, la);
                        m[la] = ' ';
                        memcpy(m + la + 1, b, lb + 1);
                    }
                }
            }
        }
        if (!m) {
            st = json_is_string(value) || (a && b)
                     ? bn_error_set(err, BN_ERR_NOMEM, "%s: out of memory", path)
                     : bn_error_set(err, BN_ERR_FORMAT, "%s: model.merges[%zu] is neither \"a b\" nor [a, b]", path, i);
            goto done;
        }
        out->merges[out->n_merges++] = m;
    }

    if (spm) {
        st = spm_types_and_scores(out, json_string_value(json_object_get(model, "unk_token")), path, err);
        if (st != BN_OK) goto done;
    }

    /* BOS/EOS: tokenizer_config.json beside the file, else the usual names. */
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    char *config_path = malloc(dir_len + sizeof "tokenizer_config.json");
    if (!config_path) {
        st = bn_error_set(err, BN_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    memcpy(config_path, path, dir_len);
    memcpy(config_path + dir_len, "tokenizer_config.json", sizeof "tokenizer_config.json");
    json_t *config = json_load_file(config_path, 0, &jerr);
    free(config_path);
    out->bos_id = find_token(out, config_token(config, "bos_token"));
    out->eos_id = find_token(out, config_token(config, "eos_token"));
    if (out->bos_id < 0) out->bos_id = find_token(out, spm ? "<s>" : "<|begin_of_text|>");
    if (out->eos_id < 0) out->eos_id = find_token(out, spm ? "</s>" : "<|end_of_text|>");
    out->add_bos = bool_field(config, "add_bos_token", out->bos_id >= 0) && out->bos_id >= 0;
    json_decref(config);
done:
    json_decref(root);
    if (st != BN_OK) bn_hf_vocab_free(out);
    return st;
}

bn_status bn_tokenizer_add_hf_json_metadata(bn_gguf_writer *w, const char *path, bn_error *err) {
    bn_hf_vocab v;
    bn_status st = bn_hf_vocab_load(&v, path, err);
    if (st != BN_OK) return st;
    const bool spm = v.scores != NULL;
    st = bn_gguf_writer_add_string(w, "tokenizer.ggml.model", v.model, err);
    if (st == BN_OK && v.pre) st = bn_gguf_writer_add_string(w, "tokenizer.ggml.pre", v.pre, err);
    if (st == BN_OK)
        st = bn_gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", (const char *const *)v.tokens, v.n_tokens, err);
    if (st == BN_OK && spm)
        st = bn_gguf_writer_add_array(w, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, v.scores, v.n_tokens, err);
    if (st == BN_OK)
        st = bn_gguf_writer_add_array(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, v.token_types, v.n_tokens, err);
    if (st == BN_OK && !spm)
        st = bn_gguf_writer_add_string_array(w, "tokenizer.ggml.merges", (const char *const *)v.merges, v.n_merges, err);
    if (st == BN_OK && v.bos_id >= 0)
        st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v.bos_id, err);
    if (st == BN_OK && v.eos_id >= 0)
        st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v.eos_id, err);
    if (st == BN_OK && v.unk_id >= 0)
        st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v.unk_id, err);
    if (st == BN_OK) st = bn_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", v.add_bos, err);
    if (st == BN_OK && spm)
        st = bn_gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", v.add_space_prefix, err);
    bn_hf_vocab_free(&v);
    return st;
}
