/*
 * request.c: OpenAI request bodies -> bn_api_request (see request.h). Each field has one small
 * reader that either stores the value or fills the 400 error naming the field.
 */
#include "server/request.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bn_api_error_set(bn_api_error *e, int status, const char *type, const char *param,
                      const char *code, const char *fmt, ...) {
    if (!e) return;
    e->status = status;
    e->type = type;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

#define INVALID "invalid_request_error"

bn_status bn_api_refuse(bn_api_error *e, const char *param, const char *code, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bn_api_error_set(e, 400, INVALID, param, code, "'%s': %s", param, msg);
    return BN_ERR_INVALID;
}

bn_status bn_api_oom(bn_api_error *e) {
    bn_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return BN_ERR_NOMEM;
}

static char *dup_str(const char *s) { return s ? strdup(s) : NULL; }

/* Reads an optional number in [lo, hi]; absent or null keeps *out. */
static bn_status get_number(const json_t *obj, const char *name, double lo, double hi, float *out,
                            bn_api_error *e) {
    const json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v)) return BN_OK;
    if (!json_is_number(v)) return bn_api_refuse(e, name, NULL, "expected a number");
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi) return bn_api_refuse(e, name, NULL, "%g is outside [%g, %g]", d, lo, hi);
    *out = (float)d;
    return BN_OK;
}

static bn_status get_int(const json_t *obj, const char *name, long long lo, long long hi, long long *out,
                         bool *present, bn_api_error *e) {
    const json_t *v = json_object_get(obj, name);
    if (present) *present = false;
    if (!v || json_is_null(v)) return BN_OK;
    if (!json_is_integer(v)) return bn_api_refuse(e, name, NULL, "expected an integer");
    long long x = json_integer_value(v);
    if (x < lo || x > hi) return bn_api_refuse(e, name, NULL, "%lld is outside [%lld, %lld]", x, lo, hi);
    *out = x;
    if (present) *present = true;
    return BN_OK;
}

static bn_status get_bool(const json_t *obj, const char *name, bool *out, bn_api_error *e) {
    const json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v)) return BN_OK;
    if (!json_is_boolean(v)) return bn_api_refuse(e, name, NULL, "expected a boolean");
    *out = json_is_true(v);
    return BN_OK;
}

static bn_status parse_stop(bn_api_request *r, const json_t *root, bn_api_error *e) {
    const json_t *v = json_object_get(root, "stop");
    if (!v || json_is_null(v)) return BN_OK;
    size_t n = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;
    if (!json_is_string(v) && !json_is_array(v)) return bn_api_refuse(e, "stop", NULL, "expected a string or an array of strings");
    if (n > BN_API_MAX_STOPS) return bn_api_refuse(e, "stop", NULL, "at most %d stop sequences", BN_API_MAX_STOPS);
    r->stops = calloc(n ? n : 1, sizeof *r->stops);
    if (!r->stops) return bn_api_oom(e);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_is_string(v) ? v : json_array_get(v, i);
        if (!json_is_string(s)) return bn_api_refuse(e, "stop", NULL, "element %zu is not a string", i);
        if (json_string_length(s) == 0 || json_string_length(s) > 256)
            return bn_api_refuse(e, "stop", NULL, "element %zu must have 1 to 256 bytes", i);
        if (!(r->stops[i] = dup_str(json_string_value(s)))) return bn_api_oom(e);
        r->n_stops = i + 1;
    }
    return BN_OK;
}

static bn_status parse_logit_bias(bn_api_request *r, const json_t *root, const bn_api_limits *lim,
                                  bn_api_error *e) {
    const json_t *v = json_object_get(root, "logit_bias");
    if (!v || json_is_null(v)) return BN_OK;
    if (!json_is_object(v)) return bn_api_refuse(e, "logit_bias", NULL, "expected an object mapping token ids to numbers");
    size_t n = json_object_size(v);
    if (n > 1024) return bn_api_refuse(e, "logit_bias", NULL, "at most 1024 entries");
    r->biases = calloc(n ? n : 1, sizeof *r->biases);
    if (!r->biases) return bn_api_oom(e);
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)v, key, value) {
        char param[96];
        snprintf(param, sizeof param, "logit_bias.%.40s", key);
        char *end;
        long id = strtol(key, &end, 10);
        if (!*key || *end || id < 0 || id >= lim->n_vocab || (key[0] == '0' && key[1]))
            return bn_api_refuse(e, param, NULL, "not a token id in [0, %d)", lim->n_vocab);
        if (!json_is_number(value)) return bn_api_refuse(e, param, NULL, "expected a number");
        double b = json_number_value(value);
        if (!(b >= -100 && b <= 100)) return bn_api_refuse(e, param, NULL, "%g is outside [-100, 100]", b);
        r->biases[r->n_biases].token = (int32_t)id;
        r->biases[r->n_biases].bias = (float)b;
        r->n_biases++;
    }
    return BN_OK;
}

/* Fields both endpoints share. */
static bn_status parse_common(bn_api_request *r, const json_t *root, const bn_api_limits *lim,
                              bn_api_error *e) {
    const json_t *model = json_object_get(root, "model");
    if (!model) return bn_api_refuse(e, "model", NULL, "is required");
    if (!json_is_string(model)) return bn_api_refuse(e, "model", NULL, "expected a string");
    if (!(r->model = dup_str(json_string_value(model)))) return bn_api_oom(e);
    bn_status st;
    r->temperature = 1.0f, r->top_p = 1.0f;
    if ((st = get_number(root, "temperature", 0, 2, &r->temperature, e)) ||
        (st = get_number(root, "top_p", 0, 1, &r->top_p, e)) ||
        (st = get_number(root, "presence_penalty", -2, 2, &r->presence_penalty, e)) ||
        (st = get_number(root, "frequency_penalty", -2, 2, &r->frequency_penalty, e)))
        return st;
    /* the llama.cpp / vLLM extension fields, by their usual names */
    r->typical_p = 1.0f, r->repetition_penalty = 1.0f, r->penalty_last_n = -1;
    long long x = 0;
    bool present;
    if ((st = get_int(root, "top_k", -1, INT32_MAX, &x, &present, e))) return st;
    if (present) r->top_k = x < 0 ? 0 : (int32_t)x;
    if ((st = get_number(root, "min_p", 0, 1, &r->min_p, e)) ||
        (st = get_number(root, "typical_p", 0, 1, &r->typical_p, e)) ||
        (st = get_number(root, "repetition_penalty", 0, 100, &r->repetition_penalty, e)) ||
        (st = get_number(root, "repeat_penalty", 0, 100, &r->repetition_penalty, e)))
        return st;
    if (r->typical_p <= 0.0f) return bn_api_refuse(e, "typical_p", NULL, "must be above 0 (1 turns it off)");
    if (r->repetition_penalty <= 0.0f)
        return bn_api_refuse(e, json_object_get(root, "repeat_penalty") ? "repeat_penalty" : "repetition_penalty", NULL,
                   "must be above 0 (1 turns it off)");
    if ((st = get_int(root, "repeat_last_n", -1, BN_SAMPLER_MAX_PENALTY_WINDOW, &x, &present, e))) return st;
    if (present) r->penalty_last_n = (int32_t)x;
    if ((st = get_bool(root, "ignore_eos", &r->ignore_eos, e))) return st;
    const json_t *gg = json_object_get(root, "guided_grammar");
    if (gg && !json_is_null(gg))
        return bn_api_refuse(e, "guided_grammar", NULL, "is not supported: give a GBNF grammar in `grammar`, or a JSON Schema "
                                        "(response_format, json_schema or guided_json)");
    static const struct { const char *name; bn_response_format format; } constraints[] = {
        {"grammar", BN_RESPONSE_GBNF}, {"guided_regex", BN_RESPONSE_REGEX}, {"guided_choice", BN_RESPONSE_CHOICE}};
    for (size_t i = 0; i < sizeof constraints / sizeof *constraints; i++) {
        const char *name = constraints[i].name;
        const json_t *v = json_object_get(root, name);
        if (!v || json_is_null(v)) continue;
        if (r->schema) return bn_api_refuse(e, name, NULL, "only one of grammar, guided_regex and guided_choice may be given");
        if (constraints[i].format == BN_RESPONSE_CHOICE) {
            if (!json_is_array(v) || json_array_size(v) == 0) return bn_api_refuse(e, name, NULL, "expected a non-empty array of strings");
            for (size_t k = 0; k < json_array_size(v); k++)
                if (!json_is_string(json_array_get(v, k))) return bn_api_refuse(e, name, NULL, "expected a non-empty array of strings");
            r->schema = json_dumps(v, JSON_COMPACT);
        } else {
            if (!json_is_string(v) || json_string_length(v) == 0) return bn_api_refuse(e, name, NULL, "expected a non-empty string");
            r->schema = dup_str(json_string_value(v));
        }
        if (!r->schema) return bn_api_oom(e);
        r->response_format = constraints[i].format;
        r->schema_param = name;
    }
    for (int i = 0; i < 2; i++) {
        const char *name = i == 0 ? "json_schema" : "guided_json";
        const json_t *v = json_object_get(root, name);
        if (!v || json_is_null(v)) continue;
        if (!json_is_object(v)) return bn_api_refuse(e, name, NULL, "expected a JSON Schema object");
        if (r->schema) return bn_api_refuse(e, name, NULL, "only one of json_schema, guided_json, grammar, guided_regex and guided_choice may be given");
        r->response_format = BN_RESPONSE_JSON_SCHEMA;
        r->schema_param = name;
        if (!(r->schema = json_dumps(v, JSON_COMPACT))) return bn_api_oom(e);
    }
    r->max_tokens = -1;
    if ((st = get_int(root, "max_tokens", 1, BN_API_MAX_TOKENS, &x, &present, e))) return st;
    if (present) r->max_tokens = (int32_t)x;
    r->n = 1;
    if ((st = get_int(root, "n", 1, BN_API_MAX_N, &x, &present, e))) return st;
    if (present) r->n = (int)x;
    if ((st = get_int(root, "seed", INT64_MIN, INT64_MAX, &x, &r->has_seed, e))) return st;
    r->seed = (uint64_t)x;
    if ((st = get_bool(root, "stream", &r->stream, e))) return st;
    const json_t *so = json_object_get(root, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) return bn_api_refuse(e, "stream_options", NULL, "expected an object");
        const json_t *iu = json_object_get(so, "include_usage");
        if (iu && !json_is_boolean(iu) && !json_is_null(iu))
            return bn_api_refuse(e, "stream_options.include_usage", NULL, "expected a boolean");
        r->include_usage = json_is_true(iu);
    }
    const json_t *user = json_object_get(root, "user");
    if (user && !json_is_null(user)) {
        if (!json_is_string(user)) return bn_api_refuse(e, "user", NULL, "expected a string");
        if (!(r->user = dup_str(json_string_value(user)))) return bn_api_oom(e);
    }
    if ((st = parse_stop(r, root, e)) || (st = parse_logit_bias(r, root, lim, e))) return st;
    return BN_OK;
}

static bn_status parse_token_array(int32_t **ids, size_t *n, const json_t *arr, const char *param,
                                   const bn_api_limits *lim, bn_api_error *e) {
    size_t count = json_array_size(arr);
    if (count == 0) return bn_api_refuse(e, param, NULL, "a token array must not be empty");
    if (count > BN_API_MAX_TOKENS) return bn_api_refuse(e, param, NULL, "too many tokens");
    *ids = malloc(count * sizeof **ids);
    if (!*ids) return bn_api_oom(e);
    *n = count;
    for (size_t i = 0; i < count; i++) {
        const json_t *t = json_array_get(arr, i);
        if (!json_is_integer(t)) return bn_api_refuse(e, param, NULL, "element %zu is not an integer token id", i);
        json_int_t id = json_integer_value(t);
        if (id < 0 || id >= lim->n_vocab) return bn_api_refuse(e, param, NULL, "token id %lld is outside [0, %d)", (long long)id, lim->n_vocab);
        (*ids)[i] = (int32_t)id;
    }
    return BN_OK;
}

static bn_status parse_prompt(bn_api_request *r, const json_t *root, const bn_api_limits *lim,
                              bn_api_error *e) {
    const json_t *p = json_object_get(root, "prompt");
    if (!p) return bn_api_refuse(e, "prompt", NULL, "is required");
    if (json_is_string(p)) {
        r->prompts = calloc(1, sizeof *r->prompts);
        if (!r->prompts) return bn_api_oom(e);
        r->n_prompts = 1;
        r->prompts[0].text_len = json_string_length(p);
        if (!(r->prompts[0].text = dup_str(json_string_value(p)))) return bn_api_oom(e);
        return BN_OK;
    }
    if (!json_is_array(p) || json_array_size(p) == 0)
        return bn_api_refuse(e, "prompt", NULL, "expected a string, an array of strings, an array of token ids or an array of token arrays");
    const json_t *first = json_array_get(p, 0);
    if (json_is_integer(first)) { /* one prompt as token ids */
        r->prompts = calloc(1, sizeof *r->prompts);
        if (!r->prompts) return bn_api_oom(e);
        r->n_prompts = 1;
        r->prompts[0].is_tokens = true;
        return parse_token_array(&r->prompts[0].ids, &r->prompts[0].n_ids, p, "prompt", lim, e);
    }
    size_t n = json_array_size(p);
    if (n > BN_API_MAX_PROMPTS) return bn_api_refuse(e, "prompt", NULL, "at most %d prompts", BN_API_MAX_PROMPTS);
    r->prompts = calloc(n, sizeof *r->prompts);
    if (!r->prompts) return bn_api_oom(e);
    r->n_prompts = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *item = json_array_get(p, i);
        char param[32];
        snprintf(param, sizeof param, "prompt[%zu]", i);
        if (json_is_string(item)) {
            r->prompts[i].text_len = json_string_length(item);
            if (!(r->prompts[i].text = dup_str(json_string_value(item)))) return bn_api_oom(e);
        } else if (json_is_array(item)) {
            r->prompts[i].is_tokens = true;
            bn_status st = parse_token_array(&r->prompts[i].ids, &r->prompts[i].n_ids, item, param, lim, e);
            if (st) return st;
        } else {
            return bn_api_refuse(e, param, NULL, "expected a string or an array of token ids");
        }
    }
    return BN_OK;
}

json_t *bn_api_load_object(const char *json, size_t len, bn_api_error *e) {
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        bn_api_error_set(e, 400, INVALID, NULL, NULL,
                         "We could not parse the JSON body of your request: %s (line %d, column %d)",
                         jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        bn_api_error_set(e, 400, INVALID, NULL, NULL, "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

bn_status bn_server_parse_completion_request(bn_api_request *out, bn_api_error *error,
                                             const char *json, size_t len,
                                             const bn_api_limits *limits) {
    memset(out, 0, sizeof *out);
    json_t *root = bn_api_load_object(json, len, error);
    if (!root) return BN_ERR_INVALID;
    bn_status st = parse_common(out, root, limits, error);
    if (!st) st = parse_prompt(out, root, limits, error);
    if (!st) st = get_bool(root, "echo", &out->echo, error);
    long long x = 0;
    bool present = false;
    if (!st) st = get_int(root, "logprobs", 0, 5, &x, &present, error);
    out->logprobs = present ? (int)x : -1;
    if (!st && out->max_tokens < 0) out->max_tokens = 16; /* OpenAI's default for completions */
    if (!st) {
        const json_t *suffix = json_object_get(root, "suffix");
        if (suffix && !json_is_null(suffix)) st = bn_api_refuse(error, "suffix", NULL, "is not supported");
    }
    if (!st && (size_t)out->n * out->n_prompts > 64)
        st = bn_api_refuse(error, "n", NULL, "n times the number of prompts must be at most 64");
    json_decref(root);
    if (st) bn_api_request_free(out);
    return st ? BN_ERR_INVALID : BN_OK;
}

/* ---------------------------------------------------------------- chat */

/* Appends s to a growable string; false on out-of-memory. */
static bool append(char **buf, size_t *len, const char *s, size_t n) {
    char *grown = realloc(*buf, *len + n + 1);
    if (!grown) return false;
    memcpy(grown + *len, s, n);
    *len += n;
    grown[*len] = '\0';
    *buf = grown;
    return true;
}

static bn_status parse_content(char **out, const json_t *content, const char *param, bool allow_null,
                               bn_api_error *e) {
    size_t len = 0;
    *out = NULL;
    if (!content || json_is_null(content)) {
        if (!allow_null) return bn_api_refuse(e, param, NULL, "is required");
    } else if (json_is_string(content)) {
        if (!append(out, &len, json_string_value(content), json_string_length(content))) return bn_api_oom(e);
    } else if (json_is_array(content)) {
        for (size_t i = 0; i < json_array_size(content); i++) {
            const json_t *part = json_array_get(content, i);
            char p[128];
            snprintf(p, sizeof p, "%s[%zu]", param, i);
            const char *type = json_string_value(json_object_get(part, "type"));
            const json_t *text = json_object_get(part, "text");
            if (!json_is_object(part) || !type) return bn_api_refuse(e, p, NULL, "expected a content part with a type");
            if (strcmp(type, "text") != 0) return bn_api_refuse(e, p, NULL, "content parts of type \"%.32s\" are not supported (only text)", type);
            if (!json_is_string(text)) return bn_api_refuse(e, p, NULL, "a text part needs a string 'text'");
            if (i > 0 && !append(out, &len, "\n", 1)) return bn_api_oom(e);
            if (!append(out, &len, json_string_value(text), json_string_length(text))) return bn_api_oom(e);
        }
    } else {
        return bn_api_refuse(e, param, NULL, "expected a string or an array of content parts");
    }
    if (!*out && !append(out, &len, "", 0)) return bn_api_oom(e);
    return BN_OK;
}

/* An assistant message's tool_calls, appended to its content as the JSON the model produces. */
static bn_status render_tool_calls(char **content, const json_t *calls, const char *param, bn_api_error *e) {
    if (!json_is_array(calls)) return bn_api_refuse(e, param, NULL, "expected an array");
    size_t len = strlen(*content);
    for (size_t i = 0; i < json_array_size(calls); i++) {
        const json_t *call = json_array_get(calls, i);
        const json_t *fn = json_object_get(call, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        char p[128];
        snprintf(p, sizeof p, "%s[%zu].function", param, i);
        if (!json_is_object(call) || !name || !args) return bn_api_refuse(e, p, NULL, "needs a name and arguments (a string)");
        json_t *parsed = json_loads(args, JSON_DECODE_ANY, NULL);
        json_t *obj = json_pack("{s:s,s:o}", "name", name, "arguments", parsed ? parsed : json_string(args));
        char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
        json_decref(obj);
        if (!text) return bn_api_oom(e);
        bool ok = (len == 0 || append(content, &len, "\n", 1)) && append(content, &len, text, strlen(text));
        free(text);
        if (!ok) return bn_api_oom(e);
    }
    return BN_OK;
}

static bn_status parse_messages(bn_api_request *r, const json_t *root, bn_api_error *e) {
    const json_t *msgs = json_object_get(root, "messages");
    if (!msgs) return bn_api_refuse(e, "messages", NULL, "is required");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) return bn_api_refuse(e, "messages", NULL, "expected a non-empty array");
    size_t n = json_array_size(msgs);
    if (n > 4096) return bn_api_refuse(e, "messages", NULL, "at most 4096 messages");
    r->messages = calloc(n, sizeof *r->messages);
    if (!r->messages) return bn_api_oom(e);
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(msgs, i);
        char p[64];
        snprintf(p, sizeof p, "messages[%zu]", i);
        if (!json_is_object(m)) return bn_api_refuse(e, p, NULL, "expected an object");
        const json_t *role_v = json_object_get(m, "role");
        char rp[80];
        snprintf(rp, sizeof rp, "%s.role", p);
        if (!json_is_string(role_v)) return bn_api_refuse(e, rp, NULL, "expected one of system, developer, user, assistant, tool");
        const char *role = json_string_value(role_v);
        if (!strcmp(role, "developer")) role = "system";
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "tool"))
            return bn_api_refuse(e, rp, NULL, "\"%.32s\" is not one of system, developer, user, assistant, tool", role);
        if (!(r->messages[i].role = dup_str(role))) return bn_api_oom(e);
        r->n_messages = i + 1;
        char cp[80];
        snprintf(cp, sizeof cp, "%s.content", p);
        const json_t *calls = json_object_get(m, "tool_calls");
        bool is_assistant = !strcmp(role, "assistant");
        bool has_calls = is_assistant && calls && !json_is_null(calls);
        bn_status st = parse_content(&r->messages[i].content, json_object_get(m, "content"), cp, has_calls, e);
        if (st) return st;
        if (has_calls) {
            char tp[80];
            snprintf(tp, sizeof tp, "%s.tool_calls", p);
            if ((st = render_tool_calls(&r->messages[i].content, calls, tp, e))) return st;
        }
        if (!strcmp(role, "tool")) {
            char tp[80];
            snprintf(tp, sizeof tp, "%s.tool_call_id", p);
            if (!json_is_string(json_object_get(m, "tool_call_id"))) return bn_api_refuse(e, tp, NULL, "is required for tool messages");
        }
    }
    return BN_OK;
}

static bool valid_function_name(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bn_status parse_tools(bn_api_request *r, const json_t *root, bn_api_error *e) {
    const json_t *tools = json_object_get(root, "tools");
    if (tools && !json_is_null(tools)) {
        if (!json_is_array(tools)) return bn_api_refuse(e, "tools", NULL, "expected an array");
        size_t n = json_array_size(tools);
        if (n > BN_API_MAX_TOOLS) return bn_api_refuse(e, "tools", NULL, "at most %d tools", BN_API_MAX_TOOLS);
        r->tools = calloc(n ? n : 1, sizeof *r->tools);
        if (!r->tools) return bn_api_oom(e);
        for (size_t i = 0; i < n; i++) {
            const json_t *t = json_array_get(tools, i);
            char p[64];
            snprintf(p, sizeof p, "tools[%zu]", i);
            const char *type = json_string_value(json_object_get(t, "type"));
            if (!json_is_object(t) || !type || strcmp(type, "function"))
                return bn_api_refuse(e, p, NULL, "expected {\"type\": \"function\", \"function\": {...}}");
            const json_t *fn = json_object_get(t, "function");
            const char *name = json_string_value(json_object_get(fn, "name"));
            char fp[96];
            snprintf(fp, sizeof fp, "%s.function.name", p);
            if (!json_is_object(fn) || !name || !valid_function_name(name))
                return bn_api_refuse(e, fp, NULL, "expected a name of 1 to 64 letters, digits, '_' or '-'");
            for (size_t k = 0; k < i; k++)
                if (!strcmp(r->tools[k].name, name)) return bn_api_refuse(e, fp, NULL, "\"%s\" is defined twice", name);
            bn_api_tool *tool = &r->tools[i];
            r->n_tools = i + 1;
            if (!(tool->name = dup_str(name))) return bn_api_oom(e);
            const json_t *desc = json_object_get(fn, "description");
            if (desc && !json_is_null(desc)) {
                snprintf(fp, sizeof fp, "%s.function.description", p);
                if (!json_is_string(desc)) return bn_api_refuse(e, fp, NULL, "expected a string");
                if (!(tool->description = dup_str(json_string_value(desc)))) return bn_api_oom(e);
            }
            const json_t *params = json_object_get(fn, "parameters");
            if (params && !json_is_null(params)) {
                snprintf(fp, sizeof fp, "%s.function.parameters", p);
                if (!json_is_object(params)) return bn_api_refuse(e, fp, NULL, "expected a JSON Schema object");
                if (!(tool->parameters = json_dumps(params, JSON_COMPACT))) return bn_api_oom(e);
            }
        }
    }
    r->tool_choice = r->n_tools ? BN_TOOL_CHOICE_AUTO : BN_TOOL_CHOICE_NONE;
    const json_t *tc = json_object_get(root, "tool_choice");
    if (!tc || json_is_null(tc)) return BN_OK;
    if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        if (!strcmp(s, "none")) r->tool_choice = BN_TOOL_CHOICE_NONE;
        else if (!strcmp(s, "auto")) r->tool_choice = BN_TOOL_CHOICE_AUTO;
        else if (!strcmp(s, "required")) r->tool_choice = BN_TOOL_CHOICE_REQUIRED;
        else return bn_api_refuse(e, "tool_choice", NULL, "expected none, auto, required or {\"type\":\"function\",\"function\":{\"name\":...}}");
    } else if (json_is_object(tc)) {
        const char *name = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
        if (!name) return bn_api_refuse(e, "tool_choice", NULL, "a named tool choice needs function.name");
        r->tool_choice = BN_TOOL_CHOICE_NAMED;
        r->named_tool = -1;
        for (size_t i = 0; i < r->n_tools; i++)
            if (!strcmp(r->tools[i].name, name)) r->named_tool = (int)i;
        if (r->named_tool < 0) return bn_api_refuse(e, "tool_choice", NULL, "function \"%.64s\" is not in tools", name);
    } else {
        return bn_api_refuse(e, "tool_choice", NULL, "expected a string or an object");
    }
    if (r->tool_choice != BN_TOOL_CHOICE_NONE && r->n_tools == 0)
        return bn_api_refuse(e, "tool_choice", NULL, "needs tools");
    return BN_OK;
}

static bn_status parse_response_format(bn_api_request *r, const json_t *root, bn_api_error *e) {
    const json_t *rf = json_object_get(root, "response_format");
    if (!rf || json_is_null(rf)) return BN_OK;
    const char *type = json_string_value(json_object_get(rf, "type"));
    if (!json_is_object(rf) || !type) return bn_api_refuse(e, "response_format", NULL, "expected an object with a type");
    if (!strcmp(type, "text")) return BN_OK;
    if (r->schema) return bn_api_refuse(e, "response_format", NULL, "cannot be combined with json_schema or guided_json");
    if (!strcmp(type, "json_object")) {
        r->response_format = BN_RESPONSE_JSON_OBJECT;
        return BN_OK;
    }
    if (strcmp(type, "json_schema")) return bn_api_refuse(e, "response_format.type", NULL, "expected text, json_object or json_schema");
    const json_t *js = json_object_get(rf, "json_schema");
    if (!json_is_object(js)) return bn_api_refuse(e, "response_format.json_schema", NULL, "expected an object");
    const json_t *name = json_object_get(js, "name");
    if (!json_is_string(name)) return bn_api_refuse(e, "response_format.json_schema.name", NULL, "expected a string");
    const json_t *schema = json_object_get(js, "schema");
    if (!json_is_object(schema)) return bn_api_refuse(e, "response_format.json_schema.schema", NULL, "expected a JSON Schema object");
    r->response_format = BN_RESPONSE_JSON_SCHEMA;
    r->schema_param = "response_format.json_schema.schema";
    if (!(r->schema = json_dumps(schema, JSON_COMPACT))) return bn_api_oom(e);
    return BN_OK;
}

bn_status bn_server_parse_chat_request(bn_api_request *out, bn_api_error *error, const char *json,
                                       size_t len, const bn_api_limits *limits) {
    memset(out, 0, sizeof *out);
    out->chat = true;
    json_t *root = bn_api_load_object(json, len, error);
    if (!root) return BN_ERR_INVALID;
    bn_status st = parse_common(out, root, limits, error);
    long long x = 0;
    bool present = false;
    if (!st) st = get_int(root, "max_completion_tokens", 1, BN_API_MAX_TOKENS, &x, &present, error);
    if (!st && present) out->max_tokens = (int32_t)x;
    if (!st) st = parse_messages(out, root, error);
    bool logprobs = false;
    if (!st) st = get_bool(root, "logprobs", &logprobs, error);
    present = false;
    x = 0;
    if (!st) st = get_int(root, "top_logprobs", 0, BN_SAMPLER_MAX_TOP_LOGPROBS, &x, &present, error);
    if (!st && present && !logprobs) st = bn_api_refuse(error, "top_logprobs", NULL, "needs logprobs set to true");
    out->logprobs = logprobs ? (int)x : -1;
    if (!st) st = parse_tools(out, root, error);
    if (!st) st = parse_response_format(out, root, error);
    if (!st && out->response_format != BN_RESPONSE_TEXT &&
        (out->tool_choice == BN_TOOL_CHOICE_REQUIRED || out->tool_choice == BN_TOOL_CHOICE_NAMED))
        st = bn_api_refuse(error, "response_format", NULL, "cannot be combined with a required or named tool_choice");
    json_decref(root);
    if (st) bn_api_request_free(out);
    return st ? BN_ERR_INVALID : BN_OK;
}

void bn_api_request_free(bn_api_request *r) {
    if (!r) return;
    free(r->model);
    for (size_t i = 0; i < r->n_prompts; i++) {
        free(r->prompts[i].text);
        free(r->prompts[i].ids);
    }
    free(r->prompts);
    for (size_t i = 0; i < r->n_messages; i++) {
        free(r->messages[i].role);
        free(r->messages[i].content);
    }
    free(r->messages);
    for (size_t i = 0; i < r->n_tools; i++) {
        free(r->tools[i].name);
        free(r->tools[i].description);
        free(r->tools[i].parameters);
    }
    free(r->tools);
    free(r->schema);
    for (size_t i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->stops);
    free(r->biases);
    free(r->user);
    memset(r, 0, sizeof *r);
}

char *bn_api_tools_prompt(const bn_api_request *r) {
    static const char intro[] =
        "You can call functions. To call one, reply with only a JSON object of the form "
        "{\"name\": <function name>, \"arguments\": <object of arguments>} and nothing else. "
        "Available functions:";
    char *out = NULL;
    size_t len = 0;
    if (!append(&out, &len, intro, sizeof intro - 1)) return NULL;
    for (size_t i = 0; i < r->n_tools; i++) {
        json_t *params = r->tools[i].parameters ? json_loads(r->tools[i].parameters, 0, NULL) : json_object();
        json_t *fn = json_pack("{s:s,s:s,s:o}", "name", r->tools[i].name, "description",
                               r->tools[i].description ? r->tools[i].description : "", "parameters",
                               params ? params : json_object());
        char *text = fn ? json_dumps(fn, JSON_COMPACT) : NULL;
        json_decref(fn);
        bool ok = text && append(&out, &len, "\n", 1) && append(&out, &len, text, strlen(text));
        free(text);
        if (!ok) {
            free(out);
            return NULL;
        }
    }
    return out;
}

bn_sampler_params bn_api_sampler_params(const bn_api_request *r, uint64_t seed_offset, int n_ctx) {
    bn_sampler_params p = bn_sampler_params_default();
    p.temperature = r->temperature;
    p.top_k = r->top_k;
    p.top_p = r->top_p;
    p.min_p = r->min_p;
    p.typical_p = r->typical_p;
    p.repetition_penalty = r->repetition_penalty;
    int window = r->penalty_last_n < 0 || r->penalty_last_n > n_ctx ? n_ctx : r->penalty_last_n;
    p.penalty_last_n = window < 0 ? 0 : window > BN_SAMPLER_MAX_PENALTY_WINDOW ? BN_SAMPLER_MAX_PENALTY_WINDOW : window;
    p.presence_penalty = r->presence_penalty;
    p.frequency_penalty = r->frequency_penalty;
    p.seed = r->has_seed ? r->seed + seed_offset : BN_SAMPLER_SEED_RANDOM;
    if (p.seed == BN_SAMPLER_SEED_RANDOM && r->has_seed) p.seed = 0;
    p.n_top_logprobs = r->logprobs > 0 ? r->logprobs : 0;
    p.logit_bias = r->biases;
    p.n_logit_bias = r->n_biases;
    return p;
}
