/*
 * hf_config.c: config.json, generation_config.json and tokenizer_config.json of a Hugging Face
 * checkpoint (see hf_config.h for what is read and what is refused).
 *
 * Design: small typed getters (integer in a range, positive number, string, boolean, token ids)
 * each name the field in their message; the readers call them field by field and then check the
 * relations between fields. The file name is prefixed once at the end, so every message reads
 * "NAME: field 'FIELD': PROBLEM". Nested fields are named with dots ("rope_scaling.factor").
 */
#include "convert/hf_config.h"
#include "convert/convert_json.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef long long ll;

/* ---- typed getters: absent and null are the same ---- */

static const json_t *get(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

static bn_status missing(const char *field, bn_error *err) {
    return bn_error_set(err, BN_ERR_FORMAT, "field '%s' is missing", field);
}

static bn_status wrong_type(const char *field, const json_t *v, const char *want, bn_error *err) {
    return bn_error_set(err, BN_ERR_FORMAT, "field '%s' has JSON type %s, expected %s", field,
                        bn_convert_json_type(v), want);
}

/* An integer of v checked against [lo, hi] (lo >= 0). */
static bn_status check_int(const json_t *v, const char *field, ll lo, ll hi, ll *out, bn_error *err) {
    if (!json_is_integer(v)) return wrong_type(field, v, "integer", err);
    ll i = json_integer_value(v);
    if (i < 0) return bn_error_set(err, BN_ERR_FORMAT, "field '%s': %lld is negative", field, i);
    if (i == 0 && lo > 0) return bn_error_set(err, BN_ERR_FORMAT, "field '%s': 0 must be positive", field);
    if (i < lo) return bn_error_set(err, BN_ERR_FORMAT, "field '%s': %lld is below the minimum %lld", field, i, lo);
    if (i > hi) return bn_error_set(err, BN_ERR_FORMAT, "field '%s': %lld exceeds the limit of %lld", field, i, hi);
    *out = i;
    return BN_OK;
}

/* A required positive dimension <= hi. */
static bn_status get_dim(const json_t *obj, const char *key, ll hi, uint32_t *out, bn_error *err) {
    const json_t *v = get(obj, key);
    if (!v) return missing(key, err);
    ll i;
    bn_status st = check_int(v, key, 1, hi, &i, err);
    if (!st) *out = (uint32_t)i;
    return st;
}

/* A number (integer or real) that JSON guarantees finite. */
static bn_status check_number(const json_t *v, const char *field, double *out, bn_error *err) {
    if (!json_is_number(v)) return wrong_type(field, v, "number", err);
    *out = json_number_value(v);
    return BN_OK;
}

static bn_status check_positive(const json_t *v, const char *field, double *out, bn_error *err) {
    bn_status st = check_number(v, field, out, err);
    if (st) return st;
    if (!(*out > 0) || !isfinite(*out))
        return bn_error_set(err, BN_ERR_FORMAT, "field '%s': %g must be positive", field, *out);
    return BN_OK;
}

/* A norm epsilon: in (0, 1). */
static bn_status check_eps(const json_t *v, const char *field, double *out, bn_error *err) {
    bn_status st = check_positive(v, field, out, err);
    if (!st && !(*out < 1))
        return bn_error_set(err, BN_ERR_FORMAT, "field '%s': %g is not below 1", field, *out);
    return st;
}

static bn_status check_string(const json_t *v, const char *field, const char **out, bn_error *err) {
    if (!json_is_string(v)) return wrong_type(field, v, "string", err);
    *out = json_string_value(v);
    return BN_OK;
}

static bn_status get_bool(const json_t *obj, const char *key, const char *field, bool *has, bool *out,
                          bn_error *err) {
    const json_t *v = get(obj, key);
    if (has) *has = v != NULL;
    if (!v) return BN_OK;
    if (!json_is_boolean(v)) return wrong_type(field, v, "boolean", err);
    *out = json_is_true(v);
    return BN_OK;
}

static bn_status unsupported_value(const char *field, const char *value, const char *accepted, bn_error *err) {
    char q[BN_CONVERT_QUOTE_MAX];
    return bn_error_set(err, BN_ERR_UNSUPPORTED, "field '%s': '%s' is not supported (accepted: %s)", field,
                        bn_convert_quote(value, q, sizeof q), accepted);
}

/* Token ids: an integer or a list of integers, each in [0, limit). */
static bn_status get_token_ids(const json_t *obj, const char *key, ll limit, const char *limit_name,
                               bn_hf_token_ids *out, bn_error *err) {
    memset(out, 0, sizeof *out);
    const json_t *v = get(obj, key);
    if (!v) return BN_OK;
    size_t n = 1;
    if (json_is_array(v)) {
        n = json_array_size(v);
        if (n > BN_HF_MAX_TOKEN_IDS)
            return bn_error_set(err, BN_ERR_FORMAT, "field '%s': %zu ids exceed the limit of %d", key, n,
                                BN_HF_MAX_TOKEN_IDS);
    } else if (!json_is_integer(v)) {
        return wrong_type(key, v, "integer or list of integers", err);
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        char field[64];
        if (json_is_array(v)) snprintf(field, sizeof field, "%s[%zu]", key, i);
        else snprintf(field, sizeof field, "%s", key);
        ll id;
        bn_status st = check_int(e, field, 0, INT32_MAX, &id, err);
        if (st) return st;
        if (id >= limit)
            return bn_error_set(err, BN_ERR_FORMAT, "field '%s': %lld is not below %s %lld", field, id, limit_name,
                                limit);
        out->ids[out->n++] = (int32_t)id;
    }
    return BN_OK;
}

/* ---- config.json ---- */

static const char *const arch_names[] = {
    [BN_HF_ARCH_BITNET] = "BitNetForCausalLM",
    [BN_HF_ARCH_BITNET_1BITLLM] = "BitnetForCausalLM",
    [BN_HF_ARCH_LLAMA] = "LlamaForCausalLM",
};

const char *bn_hf_arch_name(bn_hf_arch arch) {
    return (unsigned)arch < sizeof arch_names / sizeof arch_names[0] ? arch_names[arch] : "invalid";
}

static bn_status parse_arch(const json_t *root, bn_hf_arch *out, bn_error *err) {
    const json_t *v = get(root, "architectures");
    if (!v) return missing("architectures", err);
    if (!json_is_array(v)) return wrong_type("architectures", v, "list of strings", err);
    if (json_array_size(v) == 0) return bn_error_set(err, BN_ERR_FORMAT, "field 'architectures' is empty");
    const char *name = NULL;
    bn_status st = check_string(json_array_get(v, 0), "architectures[0]", &name, err);
    if (st) return st;
    for (size_t i = 0; i < sizeof arch_names / sizeof arch_names[0]; i++) {
        if (!strcmp(name, arch_names[i])) {
            *out = (bn_hf_arch)i;
            return BN_OK;
        }
    }
    char q[BN_CONVERT_QUOTE_MAX];
    return bn_error_set(err, BN_ERR_UNSUPPORTED,
                        "field 'architectures[0]': class '%s' is not supported (supported: BitNetForCausalLM, "
                        "BitnetForCausalLM, LlamaForCausalLM)",
                        bn_convert_quote(name, q, sizeof q));
}

/* rope_scaling (or v5's rope_parameters, whose extra keys such as rope_theta are ignored here):
 * field names the object in messages. */
static bn_status parse_rope_scaling(const json_t *v, const char *field, bn_hf_rope_scaling *out, bn_error *err) {
    memset(out, 0, sizeof *out);
    out->type = BN_HF_ROPE_NONE;
    if (!v) return BN_OK;
    if (!json_is_object(v)) return wrong_type(field, v, "object or null", err);
    char f[96], f2[96];
    const char *type = NULL, *rope_type = NULL;
    bn_status st;
    const json_t *t = get(v, "type"), *rt = get(v, "rope_type");
    snprintf(f, sizeof f, "%s.type", field);
    if (t && (st = check_string(t, f, &type, err))) return st;
    snprintf(f2, sizeof f2, "%s.rope_type", field);
    if (rt && (st = check_string(rt, f2, &rope_type, err))) return st;
    if (type && rope_type && strcmp(type, rope_type) != 0) {
        char q[BN_CONVERT_QUOTE_MAX], q2[BN_CONVERT_QUOTE_MAX];
        return bn_error_set(err, BN_ERR_FORMAT, "field '%s': type '%s' and rope_type '%s' disagree", field,
                            bn_convert_quote(type, q, sizeof q), bn_convert_quote(rope_type, q2, sizeof q2));
    }
    if (!type) type = rope_type;
    if (!type) return missing(f2, err);
    if (!strcmp(type, "default")) return BN_OK;
    if (strcmp(type, "linear") != 0 && strcmp(type, "llama3") != 0)
        return unsupported_value(rope_type ? f2 : f, type, "default, linear, llama3", err);
    out->type = !strcmp(type, "linear") ? BN_HF_ROPE_LINEAR : BN_HF_ROPE_LLAMA3;
    const json_t *factor = get(v, "factor");
    snprintf(f, sizeof f, "%s.factor", field);
    if (!factor) return missing(f, err);
    if ((st = check_positive(factor, f, &out->factor, err))) return st;
    if (out->type == BN_HF_ROPE_LINEAR) return BN_OK;
    static const char *const keys[] = {"low_freq_factor", "high_freq_factor"};
    double *dst[] = {&out->low_freq_factor, &out->high_freq_factor};
    for (int i = 0; i < 2; i++) {
        snprintf(f, sizeof f, "%s.%s", field, keys[i]);
        const json_t *x = get(v, keys[i]);
        if (!x) return missing(f, err);
        if ((st = check_positive(x, f, dst[i], err))) return st;
    }
    if (!(out->high_freq_factor > out->low_freq_factor))
        return bn_error_set(err, BN_ERR_FORMAT,
                            "field '%s.high_freq_factor': %g is not above low_freq_factor %g (the smoothing "
                            "divides by their difference)",
                            field, out->high_freq_factor, out->low_freq_factor);
    snprintf(f, sizeof f, "%s.original_max_position_embeddings", field);
    const json_t *x = get(v, "original_max_position_embeddings");
    if (!x) return missing(f, err);
    ll n;
    if ((st = check_int(x, f, 1, BN_HF_MAX_POSITIONS, &n, err))) return st;
    out->original_max_position_embeddings = (uint32_t)n;
    return BN_OK;
}

/* rope_theta and rope scaling, from the top level or transformers v5's rope_parameters. */
static bn_status parse_rope(const json_t *root, bn_hf_config *c, bn_error *err) {
    const json_t *params = get(root, "rope_parameters");
    if (params && !json_is_object(params)) return wrong_type("rope_parameters", params, "object or null", err);
    const json_t *theta = get(root, "rope_theta");
    const json_t *params_theta = params ? get(params, "rope_theta") : NULL;
    bn_status st;
    if (theta) {
        if ((st = check_positive(theta, "rope_theta", &c->rope_theta, err))) return st;
        double other;
        if (params_theta) {
            if ((st = check_positive(params_theta, "rope_parameters.rope_theta", &other, err))) return st;
            if (other != c->rope_theta)
                return bn_error_set(err, BN_ERR_FORMAT, "field 'rope_theta': %g disagrees with rope_parameters.rope_theta %g",
                                    c->rope_theta, other);
        }
    } else if (params_theta) {
        if ((st = check_positive(params_theta, "rope_parameters.rope_theta", &c->rope_theta, err))) return st;
    } else {
        return missing("rope_theta", err);
    }
    /* rope_scaling wins; v5's rope_parameters without a type is no scaling */
    const json_t *scaling = get(root, "rope_scaling");
    if (!scaling && params && (get(params, "type") || get(params, "rope_type")))
        return parse_rope_scaling(params, "rope_parameters", &c->rope_scaling, err);
    return parse_rope_scaling(scaling, "rope_scaling", &c->rope_scaling, err);
}

static bn_status parse_dtype(const json_t *root, bn_hf_dtype *out, bn_error *err) {
    static const char *const keys[] = {"torch_dtype", "dtype"};
    *out = BN_HF_DTYPE_UNSET;
    for (int k = 0; k < 2; k++) {
        const json_t *v = get(root, keys[k]);
        if (!v) continue;
        const char *s = NULL;
        bn_status st = check_string(v, keys[k], &s, err);
        if (st) return st;
        bn_hf_dtype d;
        if (!strcmp(s, "float32")) d = BN_HF_DTYPE_F32;
        else if (!strcmp(s, "float16")) d = BN_HF_DTYPE_F16;
        else if (!strcmp(s, "bfloat16")) d = BN_HF_DTYPE_BF16;
        else return unsupported_value(keys[k], s, "float32, float16, bfloat16", err);
        if (*out != BN_HF_DTYPE_UNSET && *out != d)
            return bn_error_set(err, BN_ERR_FORMAT, "field 'dtype': '%s' disagrees with torch_dtype", s);
        *out = d;
    }
    return BN_OK;
}

static void free_quantization(bn_hf_quantization *q) {
    for (uint32_t i = 0; i < q->n_modules_to_not_convert; i++) free(q->modules_to_not_convert[i]);
    free(q->modules_to_not_convert);
    memset(q, 0, sizeof *q);
}

static bn_status parse_quantization(const json_t *root, bn_hf_quantization *q, bn_error *err) {
    memset(q, 0, sizeof *q);
    const json_t *v = get(root, "quantization_config");
    if (!v) return BN_OK;
    if (!json_is_object(v)) return wrong_type("quantization_config", v, "object or null", err);
    const char *s = NULL;
    bn_status st;
    const json_t *method = get(v, "quant_method");
    if (!method) return missing("quantization_config.quant_method", err);
    if ((st = check_string(method, "quantization_config.quant_method", &s, err))) return st;
    if (strcmp(s, "bitnet") != 0) return unsupported_value("quantization_config.quant_method", s, "bitnet", err);
    q->present = true;
    const json_t *cls = get(v, "linear_class");
    if (cls) {
        if ((st = check_string(cls, "quantization_config.linear_class", &s, err))) return st;
        if (strcmp(s, "bitlinear") != 0 && strcmp(s, "autobitlinear") != 0)
            return unsupported_value("quantization_config.linear_class", s, "bitlinear, autobitlinear", err);
        q->autobitlinear = !strcmp(s, "autobitlinear");
    }
    const json_t *mode = get(v, "quantization_mode");
    if (mode) {
        if ((st = check_string(mode, "quantization_config.quantization_mode", &s, err))) return st;
        if (strcmp(s, "online") != 0 && strcmp(s, "offline") != 0)
            return unsupported_value("quantization_config.quantization_mode", s, "offline, online", err);
        q->online = !strcmp(s, "online");
    }
    q->scale_multiplies = q->autobitlinear;
    if ((st = get_bool(v, "use_rms_norm", "quantization_config.use_rms_norm", NULL, &q->use_rms_norm, err)))
        return st;
    q->rms_norm_eps = 1e-6;
    const json_t *eps = get(v, "rms_norm_eps");
    if (eps && (st = check_eps(eps, "quantization_config.rms_norm_eps", &q->rms_norm_eps, err))) return st;
    const json_t *modules = get(v, "modules_to_not_convert");
    if (!modules) return BN_OK;
    if (!json_is_array(modules))
        return wrong_type("quantization_config.modules_to_not_convert", modules, "list of strings or null", err);
    size_t n = json_array_size(modules);
    q->modules_to_not_convert = calloc(n ? n : 1, sizeof *q->modules_to_not_convert);
    if (!q->modules_to_not_convert) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char field[80];
        snprintf(field, sizeof field, "quantization_config.modules_to_not_convert[%zu]", i);
        if ((st = check_string(json_array_get(modules, i), field, &s, err))) return st;
        if (!(q->modules_to_not_convert[i] = strdup(s))) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        q->n_modules_to_not_convert++;
    }
    return BN_OK;
}

static bn_status parse_heads(const json_t *root, bn_hf_config *c, bn_error *err) {
    bn_status st;
    if ((st = get_dim(root, "num_attention_heads", BN_HF_MAX_DIM, &c->num_attention_heads, err))) return st;
    c->num_key_value_heads = c->num_attention_heads;
    if (get(root, "num_key_value_heads") &&
        (st = get_dim(root, "num_key_value_heads", BN_HF_MAX_DIM, &c->num_key_value_heads, err)))
        return st;
    if (c->num_key_value_heads > c->num_attention_heads || c->num_attention_heads % c->num_key_value_heads != 0)
        return bn_error_set(err, BN_ERR_FORMAT, "field 'num_key_value_heads': %u does not divide num_attention_heads %u",
                            c->num_key_value_heads, c->num_attention_heads);
    c->head_dim_given = get(root, "head_dim") != NULL;
    if (c->head_dim_given) {
        if ((st = get_dim(root, "head_dim", BN_HF_MAX_DIM, &c->head_dim, err))) return st;
        if (c->head_dim % 2)
            return bn_error_set(err, BN_ERR_FORMAT, "field 'head_dim': %u is odd (RoPE rotates pairs)", c->head_dim);
        return BN_OK;
    }
    if (c->hidden_size % c->num_attention_heads != 0)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "field 'num_attention_heads': %u does not divide hidden_size %u (and head_dim is absent)",
                            c->num_attention_heads, c->hidden_size);
    c->head_dim = c->hidden_size / c->num_attention_heads;
    if (c->head_dim % 2)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "field 'num_attention_heads': head_dim = hidden_size %u / %u = %u is odd (RoPE rotates "
                            "pairs)",
                            c->hidden_size, c->num_attention_heads, c->head_dim);
    return BN_OK;
}

static bn_status parse_config(const json_t *root, bn_hf_config *c, bn_error *err) {
    bn_status st;
    if ((st = parse_arch(root, &c->arch, err)) ||
        (st = get_dim(root, "hidden_size", BN_HF_MAX_DIM, &c->hidden_size, err)) ||
        (st = get_dim(root, "intermediate_size", BN_HF_MAX_DIM, &c->intermediate_size, err)) ||
        (st = get_dim(root, "num_hidden_layers", BN_HF_MAX_DIM, &c->num_hidden_layers, err)) ||
        (st = parse_heads(root, c, err)) ||
        (st = get_dim(root, "vocab_size", BN_HF_MAX_VOCAB, &c->vocab_size, err)) ||
        (st = get_dim(root, "max_position_embeddings", BN_HF_MAX_POSITIONS, &c->max_position_embeddings, err)))
        return st;
    const json_t *eps = get(root, "rms_norm_eps");
    if (!eps) return missing("rms_norm_eps", err);
    if ((st = check_eps(eps, "rms_norm_eps", &c->rms_norm_eps, err))) return st;
    if ((st = parse_rope(root, c, err))) return st;
    const json_t *act = get(root, "hidden_act");
    const char *s = NULL;
    if (!act) return missing("hidden_act", err);
    if ((st = check_string(act, "hidden_act", &s, err))) return st;
    if (!strcmp(s, "silu") || !strcmp(s, "swish")) c->hidden_act = BN_HF_ACT_SILU;
    else if (!strcmp(s, "relu2")) c->hidden_act = BN_HF_ACT_RELU2;
    else return unsupported_value("hidden_act", s, "silu, swish, relu2", err);
    if ((st = get_bool(root, "tie_word_embeddings", "tie_word_embeddings", NULL, &c->tie_word_embeddings, err)) ||
        (st = get_token_ids(root, "bos_token_id", c->vocab_size, "vocab_size", &c->bos_token_id, err)) ||
        (st = get_token_ids(root, "eos_token_id", c->vocab_size, "vocab_size", &c->eos_token_id, err)) ||
        (st = parse_dtype(root, &c->torch_dtype, err)))
        return st;
    return parse_quantization(root, &c->quantization, err);
}

void bn_hf_config_free(bn_hf_config *config) {
    if (!config) return;
    free_quantization(&config->quantization);
}

bn_status bn_hf_config_parse(const char *text, size_t len, const char *name, bn_hf_config *out, bn_error *err) {
    memset(out, 0, sizeof *out);
    if (!name) name = "<memory>";
    json_t *root = NULL;
    bn_status st = bn_convert_parse_object(text, len, 0, "JSON", 0, &root, err);
    if (!st) {
        st = parse_config(root, out, err);
        json_decref(root);
    }
    if (st) {
        bn_hf_config_free(out);
        memset(out, 0, sizeof *out);
        return bn_error_prefix(err, "%s: ", name);
    }
    return BN_OK;
}

bn_status bn_hf_config_load(const char *path, bn_hf_config *out, bn_error *err) {
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    bn_status st = bn_convert_read_file(path, BN_HF_JSON_MAX, &text, &len, err);
    if (st) return st;
    st = bn_hf_config_parse(text, len, path, out, err);
    free(text);
    return st;
}

/* ---- generation_config.json ---- */

bn_status bn_hf_generation_config_parse(const char *text, size_t len, const char *name,
                                        bn_hf_generation_config *out, bn_error *err) {
    memset(out, 0, sizeof *out);
    if (!name) name = "<memory>";
    json_t *root = NULL;
    bn_status st = bn_convert_parse_object(text, len, 0, "JSON", 0, &root, err);
    if (!st) {
        if (!(st = get_token_ids(root, "bos_token_id", (ll)INT32_MAX + 1, "2^31", &out->bos_token_id, err)))
            st = get_token_ids(root, "eos_token_id", (ll)INT32_MAX + 1, "2^31", &out->eos_token_id, err);
        json_decref(root);
    }
    if (st) {
        memset(out, 0, sizeof *out);
        return bn_error_prefix(err, "%s: ", name);
    }
    out->present = true;
    return BN_OK;
}

/* Reads an optional file: *text NULL (and BN_OK) when it does not exist. */
static bn_status read_optional(const char *path, char **text, size_t *len, bn_error *err) {
    *text = NULL;
    *len = 0;
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        if (errno == ENOENT) return BN_OK;
        return bn_error_set(err, BN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    fclose(probe);
    return bn_convert_read_file(path, BN_HF_JSON_MAX, text, len, err);
}

bn_status bn_hf_generation_config_load(const char *path, bn_hf_generation_config *out, bn_error *err) {
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    bn_status st = read_optional(path, &text, &len, err);
    if (st || !text) return st;
    st = bn_hf_generation_config_parse(text, len, path, out, err);
    free(text);
    return st;
}

/* ---- tokenizer_config.json ---- */

void bn_hf_tokenizer_config_free(bn_hf_tokenizer_config *config) {
    if (!config) return;
    free(config->chat_template);
    free(config->bos_token);
    free(config->eos_token);
    memset(config, 0, sizeof *config);
}

static bn_status copy_string(const char *s, char **out, bn_error *err) {
    *out = strdup(s);
    return *out ? BN_OK : bn_error_set(err, BN_ERR_NOMEM, "out of memory");
}

/* A string, or a list of {"name", "template"} of which "default" is taken. */
static bn_status parse_chat_template(const json_t *root, char **out, bn_error *err) {
    const json_t *v = get(root, "chat_template");
    if (!v) return BN_OK;
    if (json_is_string(v)) return copy_string(json_string_value(v), out, err);
    if (!json_is_array(v)) return wrong_type("chat_template", v, "string or list of named templates", err);
    const char *found = NULL;
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        char field[64];
        snprintf(field, sizeof field, "chat_template[%zu]", i);
        if (!json_is_object(e)) return wrong_type(field, e, "object", err);
        const char *name = NULL, *tmpl = NULL;
        bn_status st;
        const json_t *n = get(e, "name"), *t = get(e, "template");
        snprintf(field, sizeof field, "chat_template[%zu].name", i);
        if (!n) return missing(field, err);
        if ((st = check_string(n, field, &name, err))) return st;
        snprintf(field, sizeof field, "chat_template[%zu].template", i);
        if (!t) return missing(field, err);
        if ((st = check_string(t, field, &tmpl, err))) return st;
        if (!strcmp(name, "default")) found = tmpl;
    }
    if (!found)
        return bn_error_set(err, BN_ERR_FORMAT, "field 'chat_template': none of its %zu templates is named 'default'",
                            json_array_size(v));
    return copy_string(found, out, err);
}

/* bos_token / eos_token: a string or an AddedToken object's "content". */
static bn_status parse_token(const json_t *root, const char *key, char **out, bn_error *err) {
    const json_t *v = get(root, key);
    if (!v) return BN_OK;
    if (json_is_string(v)) return copy_string(json_string_value(v), out, err);
    if (!json_is_object(v)) return wrong_type(key, v, "string or AddedToken object", err);
    char field[48];
    snprintf(field, sizeof field, "%s.content", key);
    const json_t *content = get(v, "content");
    const char *s = NULL;
    if (!content) return missing(field, err);
    bn_status st = check_string(content, field, &s, err);
    if (st) return st;
    return copy_string(s, out, err);
}

bn_status bn_hf_tokenizer_config_parse(const char *text, size_t len, const char *name,
                                       bn_hf_tokenizer_config *out, bn_error *err) {
    memset(out, 0, sizeof *out);
    if (!name) name = "<memory>";
    json_t *root = NULL;
    bn_status st = bn_convert_parse_object(text, len, 0, "JSON", 0, &root, err);
    if (!st) {
        if (!(st = parse_chat_template(root, &out->chat_template, err)) &&
            !(st = parse_token(root, "bos_token", &out->bos_token, err)) &&
            !(st = parse_token(root, "eos_token", &out->eos_token, err)) &&
            !(st = get_bool(root, "add_bos_token", "add_bos_token", &out->has_add_bos_token, &out->add_bos_token, err)))
            st = get_bool(root, "add_eos_token", "add_eos_token", &out->has_add_eos_token, &out->add_eos_token, err);
        json_decref(root);
    }
    if (st) {
        bn_hf_tokenizer_config_free(out);
        return bn_error_prefix(err, "%s: ", name);
    }
    out->present = true;
    return BN_OK;
}

bn_status bn_hf_tokenizer_config_load(const char *path, bn_hf_tokenizer_config *out, bn_error *err) {
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    bn_status st = read_optional(path, &text, &len, err);
    if (st || !text) return st;
    st = bn_hf_tokenizer_config_parse(text, len, path, out, err);
    free(text);
    return st;
}
