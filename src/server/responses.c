/*
 * responses.c: POST /v1/responses (see responses.h). The first half translates a Responses body
 * into a chat-completions body, checking every field under its Responses name; the second half
 * builds the response object and the stream events from what completion.c reports.
 */
#include "server/responses.h"

#include "runtime/generation.h"
#include "server/wire_json.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INVALID "invalid_request_error"
#define MAX_INPUT_ITEMS 4000 /* the chat parser takes 4096 messages; instructions add one */

struct bn_responses {
    json_t *echo;        /* instructions, max_output_tokens, tools, text, ...: in every response object */
    char id[64], model[256];
    const char *id_suffix; /* the id after "resp_", for the output items' ids */
    long created;
    json_int_t sequence; /* stream: the next event's sequence_number */
    json_t *output;      /* stream: the output items done */
    bool message_open;   /* stream: the message item was added and is not done */
};

/* ---------------------------------------------------------------- errors */

/* Replaces the first `from` in the error's param and in its message by `to`: a chat parser's or
 * planner's name for a field becomes the Responses name. */
static void rename_field(bn_api_error *e, const char *from, const char *to) {
    char *texts[2] = {e->param, e->message};
    size_t caps[2] = {sizeof e->param, sizeof e->message};
    for (int k = 0; k < 2; k++) {
        char *at = strstr(texts[k], from);
        if (!at) continue;
        char rest[sizeof e->message];
        snprintf(rest, sizeof rest, "%s", at + strlen(from));
        snprintf(at, caps[k] - (size_t)(at - texts[k]), "%s%s", to, rest);
    }
}

/* The few refusals the chat parser makes after the checks here (a function name's characters, a
 * format combined with a forced tool), under their Responses names. */
static void chat_error_names(bn_api_error *e) {
    if (!strncmp(e->param, "tools[", 6)) rename_field(e, ".function.", ".");
    else if (!strncmp(e->param, "response_format.json_schema", 27)) rename_field(e, "response_format.json_schema", "text.format");
    else if (!strncmp(e->param, "response_format", 15)) rename_field(e, "response_format", "text.format");
}

void bn_responses_plan_error(bn_api_error *e) {
    if (!strcmp(e->param, "messages")) rename_field(e, "messages", "input");
    else if (!strncmp(e->param, "response_format", 15)) rename_field(e, "response_format", "text.format");
}

/* ---------------------------------------------------------------- request: checks */

/* Refuses a key of obj that is not in keys (NULL-terminated); its param is prefix.key. */
static bn_status only_keys(const json_t *obj, const char *prefix, const char *const *keys, bn_api_error *e) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], key)) i++;
        if (keys[i]) continue;
        char p[160];
        snprintf(p, sizeof p, "%s%s%.64s", prefix, prefix[0] ? "." : "", key);
        return bn_api_refuse(e, p, "unknown_parameter", "unknown parameter");
    }
    return BN_OK;
}

/* obj[name] as a string; NULL (with *e set) when absent or not a string. */
static const char *required_string(const json_t *obj, const char *prefix, const char *name, bn_api_error *e) {
    const char *s = json_string_value(json_object_get(obj, name));
    if (!s) {
        char p[160];
        snprintf(p, sizeof p, "%.120s.%.32s", prefix, name);
        bn_api_refuse(e, p, NULL, "expected a string");
    }
    return s;
}

/* obj[name] may be absent or null; otherwise it must be a string (want_object false) or an object. */
static bn_status optional_string_or_object(const json_t *obj, const char *prefix, const char *name, bool want_object,
                                           bn_api_error *e) {
    const json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v) || (want_object ? json_is_object(v) : json_is_string(v))) return BN_OK;
    char p[160];
    snprintf(p, sizeof p, "%s%s%s", prefix, prefix[0] ? "." : "", name);
    return bn_api_refuse(e, p, NULL, want_object ? "expected a JSON Schema object" : "expected a string");
}

static bn_status optional_bool(const json_t *obj, const char *prefix, const char *name, bn_api_error *e) {
    const json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v) || json_is_boolean(v)) return BN_OK;
    char p[160];
    snprintf(p, sizeof p, "%s%s%s", prefix, prefix[0] ? "." : "", name);
    return bn_api_refuse(e, p, NULL, "expected a boolean");
}

/* The top-level fields of POST /v1/responses. The sampling extensions of docs/SERVER.md are passed
 * to the chat parser under their own names, as are model, temperature, top_p, stream and user. */
static const char *const known_fields[] = {
    "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "stream", "stream_options",
    "tools", "tool_choice", "parallel_tool_calls", "max_tool_calls", "text", "metadata", "user", "store",
    "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "service_tier", "truncation", "include",
    "top_logprobs", "background", "previous_response_id", "conversation", "reasoning", "prompt",
    "seed", "top_k", "min_p", "typical_p", "repetition_penalty", "repeat_penalty", "repeat_last_n", "ignore_eos",
    "presence_penalty", "frequency_penalty", "stop", "logit_bias", "grammar", "guided_regex", "guided_choice",
    "guided_json", NULL};

static const char *const chat_fields[] = {
    "model", "temperature", "top_p", "stream", "user", "seed", "top_k", "min_p", "typical_p", "repetition_penalty",
    "repeat_penalty", "repeat_last_n", "ignore_eos", "presence_penalty", "frequency_penalty", "stop", "logit_bias",
    "grammar", "guided_regex", "guided_choice", "guided_json",
    NULL};

/* Fields accepted only as null or the one value that describes what this server does anyway. */
typedef struct limited_field {
    const char *name;
    const char *allowed; /* JSON text of the value accepted besides null; NULL: only null */
    const char *why;
} limited_field;

static const limited_field limited_fields[] = {
    {"previous_response_id", NULL,
     "this server is stateless and stores no responses: send the whole conversation as input items (the earlier "
     "output items, function_call and function_call_output items included)"},
    {"conversation", NULL,
     "this server is stateless and keeps no conversations: send the whole conversation as input items"},
    {"prompt", NULL, "stored prompt templates are not supported: send instructions and input"},
    {"reasoning", NULL, "reasoning settings are not supported by this model"},
    {"background", "false", "background responses are not supported (they need stored state)"},
    {"include", "[]", "no additional output data is available"},
    {"truncation", "\"disabled\"",
     "truncation is not supported: a conversation longer than the context is refused (context_length_exceeded)"},
    {"top_logprobs", "0", "log-probabilities are not available on /v1/responses (use /v1/chat/completions)"},
};

/* Unknown fields, refused ones, and the accepted fields that change nothing here (checked for
 * their type, so a mistake still answers 400). */
static bn_status check_fields(const json_t *root, bn_api_error *e) {
    bn_status st = only_keys(root, "", known_fields, e);
    for (size_t i = 0; !st && i < sizeof limited_fields / sizeof *limited_fields; i++) {
        const limited_field *f = &limited_fields[i];
        const json_t *v = json_object_get(root, f->name);
        if (!v || json_is_null(v)) continue;
        json_t *allowed = f->allowed ? json_loads(f->allowed, JSON_DECODE_ANY, NULL) : NULL;
        bool same = allowed && json_equal(allowed, (json_t *)v);
        json_decref(allowed);
        if (!same) st = bn_api_refuse(e, f->name, "unsupported_parameter", "%s", f->why);
    }
    static const char *const strings[] = {"safety_identifier", "prompt_cache_key", "prompt_cache_retention",
                                          "service_tier"};
    for (size_t i = 0; !st && i < sizeof strings / sizeof *strings; i++)
        st = optional_string_or_object(root, "", strings[i], false, e);
    if (!st) st = optional_bool(root, "", "store", e);
    if (!st) st = optional_bool(root, "", "parallel_tool_calls", e);
    const json_t *v = json_object_get(root, "max_tool_calls");
    if (!st && v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) >= 1))
        st = bn_api_refuse(e, "max_tool_calls", NULL, "expected an integer of at least 1 (a response makes at most one call)");
    const json_t *so = json_object_get(root, "stream_options");
    if (!st && so && !json_is_null(so)) {
        static const char *const keys[] = {"include_obfuscation", NULL};
        if (!json_is_object(so)) st = bn_api_refuse(e, "stream_options", NULL, "expected an object");
        if (!st) st = only_keys(so, "stream_options", keys, e);
        if (!st) st = optional_bool(so, "stream_options", "include_obfuscation", e);
    }
    const json_t *md = json_object_get(root, "metadata");
    if (!st && md && !json_is_null(md)) {
        if (!json_is_object(md) || json_object_size(md) > 16)
            return bn_api_refuse(e, "metadata", NULL, "expected an object of at most 16 string values");
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)md, key, value) {
            if (strlen(key) <= 64 && json_is_string(value) && json_string_length(value) <= 512) continue;
            char p[96];
            snprintf(p, sizeof p, "metadata.%.64s", key);
            return bn_api_refuse(e, p, NULL, "expected a string of at most 512 characters under a key of at most 64");
        }
    }
    return st;
}

/* ---------------------------------------------------------------- request: translation */

/* Appends a new reference to arr; false on out-of-memory. */
static bool append_new(json_t *arr, json_t *v) { return v && json_array_append_new(arr, v) == 0; }

/* msg.content from a Responses content: a string, or an array of input_text / output_text parts
 * (chat text parts, joined by the chat parser as it joins chat parts). */
static bn_status set_content(json_t *msg, const json_t *content, const char *p, bn_api_error *e) {
    if (!content || json_is_null(content)) return bn_api_refuse(e, p, NULL, "is required");
    if (json_is_string(content)) return json_object_set(msg, "content", (json_t *)content) ? bn_api_oom(e) : BN_OK;
    if (!json_is_array(content)) return bn_api_refuse(e, p, NULL, "expected a string or an array of input_text parts");
    json_t *parts = json_array();
    if (!parts || json_object_set_new(msg, "content", parts)) return bn_api_oom(e);
    for (size_t i = 0; i < json_array_size(content); i++) {
        const json_t *part = json_array_get(content, i);
        char pp[160];
        snprintf(pp, sizeof pp, "%s[%zu]", p, i);
        if (!json_is_object(part)) return bn_api_refuse(e, pp, NULL, "expected a content part object");
        const char *type = required_string(part, pp, "type", e);
        if (!type) return BN_ERR_INVALID;
        bool input = !strcmp(type, "input_text"), output = !strcmp(type, "output_text");
        if (!input && !output)
            return bn_api_refuse(e, pp, "unsupported_parameter",
                          "content parts of type \"%.32s\" are not supported (only input_text and output_text)", type);
        static const char *const input_keys[] = {"type", "text", NULL};
        /* an earlier response's part, as sent (parsed: what the SDKs' parse helpers add) */
        static const char *const output_keys[] = {"type", "text", "annotations", "logprobs", "parsed", NULL};
        bn_status st = only_keys(part, pp, input ? input_keys : output_keys, e);
        if (st) return st;
        const char *text = required_string(part, pp, "text", e);
        if (!text) return BN_ERR_INVALID;
        if (!append_new(parts, json_pack("{s:s,s:O}", "type", "text", "text", json_object_get(part, "text"))))
            return bn_api_oom(e);
    }
    return BN_OK;
}

/* A message item -> a chat message. */
static bn_status message_item(json_t *messages, const json_t *item, const char *p, bn_api_error *e) {
    static const char *const keys[] = {"type", "role", "content", "id", "status", NULL};
    bn_status st = only_keys(item, p, keys, e);
    if (st) return st;
    char rp[160], cp[160];
    snprintf(rp, sizeof rp, "%s.role", p);
    snprintf(cp, sizeof cp, "%s.content", p);
    const char *role = json_string_value(json_object_get(item, "role"));
    if (!role) return bn_api_refuse(e, rp, NULL, "expected one of user, system, developer, assistant");
    if (strcmp(role, "user") && strcmp(role, "system") && strcmp(role, "developer") && strcmp(role, "assistant"))
        return bn_api_refuse(e, rp, NULL,
                      "\"%.32s\" is not one of user, system, developer, assistant (a tool's result is a "
                      "function_call_output item)", role);
    json_t *msg = json_pack("{s:s}", "role", role);
    if (!append_new(messages, msg)) return bn_api_oom(e);
    return set_content(msg, json_object_get(item, "content"), cp, e);
}

/* A function_call item -> a tool call of an assistant message. Consecutive calls, and a call
 * after the assistant's text, are one assistant turn, as a chat message with tool_calls is. */
static bn_status call_item(json_t *messages, const json_t *item, const char *p, bn_api_error *e) {
    static const char *const keys[] = {"type", "call_id", "name", "arguments", "id", "status", "parsed_arguments", NULL};
    bn_status st = only_keys(item, p, keys, e);
    if (st) return st;
    const char *call_id = required_string(item, p, "call_id", e);
    const char *name = call_id ? required_string(item, p, "name", e) : NULL;
    const char *arguments = name ? required_string(item, p, "arguments", e) : NULL;
    if (!arguments) return BN_ERR_INVALID;
    json_t *last = json_array_size(messages) ? json_array_get(messages, json_array_size(messages) - 1) : NULL;
    const char *last_role = json_string_value(json_object_get(last, "role"));
    if (!last_role || strcmp(last_role, "assistant")) {
        last = json_pack("{s:s,s:n}", "role", "assistant", "content");
        if (!append_new(messages, last)) return bn_api_oom(e);
    }
    json_t *calls = json_object_get(last, "tool_calls");
    if (!calls && (!(calls = json_array()) || json_object_set_new(last, "tool_calls", calls))) return bn_api_oom(e);
    json_t *call = json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", call_id, "type", "function", "function", "name", name,
                             "arguments", arguments);
    return append_new(calls, call) ? BN_OK : bn_api_oom(e);
}

/* A function_call_output item -> a tool message. */
static bn_status output_item(json_t *messages, const json_t *item, const char *p, bn_api_error *e) {
    static const char *const keys[] = {"type", "call_id", "output", "id", "status", NULL};
    bn_status st = only_keys(item, p, keys, e);
    if (st) return st;
    const char *call_id = required_string(item, p, "call_id", e);
    if (!call_id) return BN_ERR_INVALID;
    json_t *msg = json_pack("{s:s,s:s}", "role", "tool", "tool_call_id", call_id);
    if (!append_new(messages, msg)) return bn_api_oom(e);
    char op[160];
    snprintf(op, sizeof op, "%s.output", p);
    return set_content(msg, json_object_get(item, "output"), op, e);
}

/* instructions and input -> messages. */
static bn_status translate_input(const json_t *root, json_t *chat, json_t *echo, bn_api_error *e) {
    json_t *messages = json_array();
    if (!messages || json_object_set_new(chat, "messages", messages)) return bn_api_oom(e);
    const json_t *ins = json_object_get(root, "instructions");
    if (ins && !json_is_null(ins)) {
        if (!json_is_string(ins)) return bn_api_refuse(e, "instructions", NULL, "expected a string");
        if (!append_new(messages, json_pack("{s:s,s:O}", "role", "system", "content", ins))) return bn_api_oom(e);
    }
    if (json_object_set_new(echo, "instructions", json_is_string(ins) ? json_incref((json_t *)ins) : json_null()))
        return bn_api_oom(e);
    const json_t *input = json_object_get(root, "input");
    if (!input || json_is_null(input)) return bn_api_refuse(e, "input", NULL, "is required");
    if (json_is_string(input))
        return append_new(messages, json_pack("{s:s,s:O}", "role", "user", "content", input)) ? BN_OK : bn_api_oom(e);
    if (!json_is_array(input) || json_array_size(input) == 0)
        return bn_api_refuse(e, "input", NULL, "expected a string or a non-empty array of input items");
    if (json_array_size(input) > MAX_INPUT_ITEMS) return bn_api_refuse(e, "input", NULL, "at most %d items", MAX_INPUT_ITEMS);
    for (size_t i = 0; i < json_array_size(input); i++) {
        const json_t *item = json_array_get(input, i);
        char p[64];
        snprintf(p, sizeof p, "input[%zu]", i);
        if (!json_is_object(item)) return bn_api_refuse(e, p, NULL, "expected an input item object");
        const json_t *type_v = json_object_get(item, "type");
        if (type_v && !json_is_string(type_v)) {
            snprintf(p, sizeof p, "input[%zu].type", i);
            return bn_api_refuse(e, p, NULL, "expected a string");
        }
        const char *type = type_v ? json_string_value(type_v) : "message";
        bn_status st;
        if (!strcmp(type, "message")) st = message_item(messages, item, p, e);
        else if (!strcmp(type, "function_call")) st = call_item(messages, item, p, e);
        else if (!strcmp(type, "function_call_output")) st = output_item(messages, item, p, e);
        else
            st = bn_api_refuse(e, p, "unsupported_parameter",
                        "items of type \"%.40s\" are not supported (message, function_call, function_call_output)", type);
        if (st) return st;
    }
    return BN_OK;
}

/* tools (flat function tools) and tool_choice -> their chat forms. */
static bn_status translate_tools(const json_t *root, json_t *chat, json_t *echo, bn_api_error *e) {
    const json_t *tools = json_object_get(root, "tools");
    json_t *echo_tools = json_array();
    if (!echo_tools || json_object_set_new(echo, "tools", echo_tools)) return bn_api_oom(e);
    if (tools && !json_is_null(tools)) {
        if (!json_is_array(tools)) return bn_api_refuse(e, "tools", NULL, "expected an array of function tools");
        json_t *chat_tools = json_array();
        if (!chat_tools || json_object_set_new(chat, "tools", chat_tools)) return bn_api_oom(e);
        for (size_t i = 0; i < json_array_size(tools); i++) {
            const json_t *t = json_array_get(tools, i);
            char p[64];
            snprintf(p, sizeof p, "tools[%zu]", i);
            if (!json_is_object(t)) return bn_api_refuse(e, p, NULL, "expected a tool object");
            const char *type = required_string(t, p, "type", e);
            if (!type) return BN_ERR_INVALID;
            if (strcmp(type, "function")) {
                snprintf(p, sizeof p, "tools[%zu].type", i);
                return bn_api_refuse(e, p, "unsupported_parameter",
                              "built-in tools (\"%.40s\") are not supported: only function tools "
                              "{\"type\": \"function\", \"name\", \"description\", \"parameters\"}", type);
            }
            static const char *const keys[] = {"type", "name", "description", "parameters", "strict", NULL};
            bn_status st = only_keys(t, p, keys, e);
            if (!st) st = optional_string_or_object(t, p, "description", false, e);
            if (!st) st = optional_string_or_object(t, p, "parameters", true, e);
            if (!st) st = optional_bool(t, p, "strict", e);
            if (st) return st;
            const char *name = required_string(t, p, "name", e);
            if (!name) return BN_ERR_INVALID;
            const json_t *desc = json_object_get(t, "description"), *params = json_object_get(t, "parameters");
            const json_t *strict = json_object_get(t, "strict");
            json_t *fn = json_pack("{s:s}", "name", name);
            if (!append_new(chat_tools, json_pack("{s:s,s:o}", "type", "function", "function", fn))) return bn_api_oom(e);
            if ((json_is_string(desc) && json_object_set(fn, "description", (json_t *)desc)) ||
                (json_is_object(params) && json_object_set(fn, "parameters", (json_t *)params)))
                return bn_api_oom(e);
            if (!append_new(echo_tools, json_pack("{s:s,s:s,s:O,s:O,s:O}", "type", "function", "name", name,
                                                  "description", desc ? desc : json_null(), "parameters",
                                                  params ? params : json_null(), "strict",
                                                  strict ? strict : json_null())))
                return bn_api_oom(e);
        }
    }
    const json_t *tc = json_object_get(root, "tool_choice");
    json_t *echo_choice = NULL;
    if (!tc || json_is_null(tc)) {
        echo_choice = json_string("auto");
    } else if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        if (strcmp(s, "none") && strcmp(s, "auto") && strcmp(s, "required"))
            return bn_api_refuse(e, "tool_choice", NULL, "expected none, auto, required or {\"type\": \"function\", \"name\": ...}");
        if (json_object_set(chat, "tool_choice", (json_t *)tc)) return bn_api_oom(e);
        echo_choice = json_incref((json_t *)tc);
    } else if (json_is_object(tc)) {
        const char *type = required_string(tc, "tool_choice", "type", e);
        if (!type) return BN_ERR_INVALID;
        if (strcmp(type, "function"))
            return bn_api_refuse(e, "tool_choice.type", "unsupported_parameter",
                          "only a function can be chosen (\"%.40s\" is not a function tool choice)", type);
        static const char *const keys[] = {"type", "name", NULL};
        bn_status st = only_keys(tc, "tool_choice", keys, e);
        if (st) return st;
        const char *name = required_string(tc, "tool_choice", "name", e);
        if (!name) return BN_ERR_INVALID;
        if (json_object_set_new(chat, "tool_choice", json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", name)))
            return bn_api_oom(e);
        echo_choice = json_pack("{s:s,s:s}", "type", "function", "name", name);
    } else {
        return bn_api_refuse(e, "tool_choice", NULL, "expected a string or an object");
    }
    const json_t *parallel = json_object_get(root, "parallel_tool_calls");
    if (json_object_set_new(echo, "tool_choice", echo_choice) ||
        json_object_set_new(echo, "parallel_tool_calls", json_boolean(!json_is_false(parallel))))
        return bn_api_oom(e);
    return BN_OK;
}

/* text.format -> response_format. */
static bn_status translate_text(const json_t *root, json_t *chat, json_t *echo, bn_api_error *e) {
    const json_t *text = json_object_get(root, "text");
    const json_t *format = NULL;
    if (text && !json_is_null(text)) {
        static const char *const keys[] = {"format", NULL};
        if (!json_is_object(text)) return bn_api_refuse(e, "text", NULL, "expected an object with a format");
        bn_status st = only_keys(text, "text", keys, e);
        if (st) return st;
        format = json_object_get(text, "format");
        if (json_is_null(format)) format = NULL;
    }
    if (format) {
        if (!json_is_object(format)) return bn_api_refuse(e, "text.format", NULL, "expected an object with a type");
        const char *type = json_string_value(json_object_get(format, "type"));
        static const char *const plain_keys[] = {"type", NULL};
        static const char *const schema_keys[] = {"type", "name", "schema", "strict", "description", NULL};
        json_t *rf = NULL;
        bn_status st = BN_OK;
        if (type && (!strcmp(type, "text") || !strcmp(type, "json_object"))) {
            st = only_keys(format, "text.format", plain_keys, e);
            if (!st && !strcmp(type, "json_object") && !(rf = json_pack("{s:s}", "type", "json_object"))) st = bn_api_oom(e);
        } else if (type && !strcmp(type, "json_schema")) {
            st = only_keys(format, "text.format", schema_keys, e);
            const char *name = st ? NULL : required_string(format, "text.format", "name", e);
            const json_t *schema = json_object_get(format, "schema");
            if (!st && !name) st = BN_ERR_INVALID;
            if (!st && !json_is_object(schema)) st = bn_api_refuse(e, "text.format.schema", NULL, "expected a JSON Schema object");
            if (!st) st = optional_bool(format, "text.format", "strict", e);
            if (!st) st = optional_string_or_object(format, "text.format", "description", false, e);
            if (!st && !(rf = json_pack("{s:s,s:{s:s,s:O}}", "type", "json_schema", "json_schema", "name", name,
                                        "schema", schema)))
                st = bn_api_oom(e);
        } else {
            st = bn_api_refuse(e, "text.format.type", NULL, "expected text, json_object or json_schema");
        }
        if (st) return st;
        if (rf && json_object_set_new(chat, "response_format", rf)) return bn_api_oom(e);
    }
    json_t *echo_format = format ? json_incref((json_t *)format) : json_pack("{s:s}", "type", "text");
    return json_object_set_new(echo, "text", json_pack("{s:o}", "format", echo_format)) ? bn_api_oom(e) : BN_OK;
}

/* The fields the chat parser reads under the same names, max_output_tokens, and the echo of the
 * sampling fields and of those accepted without effect. */
static bn_status translate_fields(const json_t *root, json_t *chat, json_t *echo, bn_api_error *e) {
    for (size_t i = 0; chat_fields[i]; i++) {
        json_t *v = json_object_get(root, chat_fields[i]);
        if (v && json_object_set(chat, chat_fields[i], v)) return bn_api_oom(e);
    }
    const json_t *max = json_object_get(root, "max_output_tokens");
    if (max && !json_is_null(max)) {
        if (!json_is_integer(max) || json_integer_value(max) < 1 || json_integer_value(max) > BN_API_MAX_TOKENS)
            return bn_api_refuse(e, "max_output_tokens", NULL, "expected an integer in [1, %d]", BN_API_MAX_TOKENS);
        if (json_object_set(chat, "max_tokens", (json_t *)max)) return bn_api_oom(e);
    }
    json_t *temperature = json_object_get(root, "temperature"), *top_p = json_object_get(root, "top_p");
    json_t *user = json_object_get(root, "user"), *metadata = json_object_get(root, "metadata");
    json_t *fields = json_pack("{s:o,s:o,s:o,s:b,s:o,s:s,s:n,s:o,s:b}", "max_output_tokens",
                               json_is_integer(max) ? json_incref((json_t *)max) : json_null(), "temperature",
                               json_is_number(temperature) ? json_incref(temperature) : json_real(1.0), "top_p",
                               json_is_number(top_p) ? json_incref(top_p) : json_real(1.0), "store", 0, "user",
                               json_is_string(user) ? json_incref(user) : json_null(), "truncation", "disabled",
                               "previous_response_id", "metadata",
                               json_is_object(metadata) ? json_incref(metadata) : json_object(), "background", 0);
    bool ok = fields && json_object_update(echo, fields) == 0;
    json_decref(fields);
    return ok ? BN_OK : bn_api_oom(e);
}

bn_status bn_responses_parse_request(bn_api_request *out, bn_responses **wire, bn_api_error *e, const char *json,
                                     size_t len, const bn_api_limits *limits) {
    memset(out, 0, sizeof *out);
    *wire = NULL;
    json_t *root = bn_api_load_object(json, len, e);
    if (!root) return BN_ERR_INVALID;
    bn_responses *w = calloc(1, sizeof *w);
    json_t *chat = json_object();
    if (w) {
        w->echo = json_object();
        w->output = json_array();
    }
    bn_status st = w && chat && w->echo && w->output ? BN_OK : bn_api_oom(e);
    if (!st) st = check_fields(root, e);
    if (!st) st = translate_fields(root, chat, w->echo, e);
    if (!st) st = translate_input(root, chat, w->echo, e);
    if (!st) st = translate_tools(root, chat, w->echo, e);
    if (!st) st = translate_text(root, chat, w->echo, e);
    char *text = NULL;
    if (!st && !(text = json_dumps(chat, JSON_COMPACT))) st = bn_api_oom(e);
    if (!st) {
        st = bn_server_parse_chat_request(out, e, text, strlen(text), limits);
        if (st) chat_error_names(e);
        else if (out->response_format == BN_RESPONSE_JSON_SCHEMA) out->schema_param = "text.format.schema";
    }
    free(text);
    json_decref(chat);
    json_decref(root);
    if (st) {
        bn_responses_free(w);
        return st;
    }
    *wire = w;
    return BN_OK;
}

void bn_responses_free(bn_responses *w) {
    if (!w) return;
    json_decref(w->echo);
    json_decref(w->output);
    free(w);
}

void bn_responses_bind(bn_responses *w, const char *id, long created, const char *model) {
    snprintf(w->id, sizeof w->id, "%s", id);
    snprintf(w->model, sizeof w->model, "%s", model);
    const char *underscore = strchr(w->id, '_');
    w->id_suffix = underscore ? underscore + 1 : w->id;
    w->created = created;
}

/* ---------------------------------------------------------------- response objects */

static bool length_cut(int finish) { return finish == BN_FINISH_LENGTH || finish == BN_FINISH_CONTEXT; }

/* usage in the Responses names, from the chat-shaped usage; null without one. */
static json_t *usage_object(const json_t *chat_usage) {
    if (!chat_usage) return json_null();
    json_int_t in = json_integer_value(json_object_get(chat_usage, "prompt_tokens"));
    json_int_t out = json_integer_value(json_object_get(chat_usage, "completion_tokens"));
    json_int_t cached = json_integer_value(json_object_get(json_object_get(chat_usage, "prompt_tokens_details"),
                                                           "cached_tokens"));
    return json_pack("{s:I,s:{s:I},s:I,s:{s:i},s:I}", "input_tokens", in, "input_tokens_details", "cached_tokens",
                     cached, "output_tokens", out, "output_tokens_details", "reasoning_tokens", 0, "total_tokens",
                     in + out);
}

/* The response object: output, usage and error are taken (usage and error may be NULL: null). */
static json_t *response_object(const bn_responses *w, const char *status, json_t *output, json_t *usage,
                               json_t *error, const char *incomplete_reason) {
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:o,s:o,s:s,s:o,s:o}", "id", w->id, "object", "response", "created_at",
                          (json_int_t)w->created, "status", status, "error", error ? error : json_null(),
                          "incomplete_details",
                          incomplete_reason ? json_pack("{s:s}", "reason", incomplete_reason) : json_null(), "model",
                          w->model, "output", output, "usage", usage ? usage : json_null());
    if (o && json_object_update(o, w->echo)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void message_id(const bn_responses *w, char id[80]) { snprintf(id, 80, "msg_%s", w->id_suffix); }

/* The message item of text (status completed or incomplete). */
static json_t *message_output(const bn_responses *w, const char *text, size_t len, const char *status) {
    char id[80];
    message_id(w, id);
    return json_pack("{s:s,s:s,s:s,s:s,s:[{s:s,s:o,s:[]}]}", "type", "message", "id", id, "status", status, "role",
                     "assistant", "content", "type", "output_text", "text", bn_json_text(text, len), "annotations");
}

/* The function_call item of a chat-shaped call, with these arguments and status. */
static json_t *call_output(const bn_responses *w, const json_t *call, const char *arguments, const char *status) {
    char id[80];
    snprintf(id, sizeof id, "fc_%s", w->id_suffix);
    return json_pack("{s:s,s:s,s:O,s:O,s:s,s:s}", "type", "function_call", "id", id, "call_id",
                     json_object_get(call, "id"), "name", json_object_get(json_object_get(call, "function"), "name"),
                     "arguments", arguments, "status", status);
}

static const char *call_arguments(const json_t *call) {
    const char *a = json_string_value(json_object_get(json_object_get(call, "function"), "arguments"));
    return a ? a : "{}";
}

json_t *bn_responses_body(bn_responses *w, const char *text, size_t len, const json_t *call,
                          const bn_responses_end *end) {
    bool cut = !call && length_cut(end->finish);
    json_t *item = call ? call_output(w, call, call_arguments(call), "completed")
                        : message_output(w, text, len, cut ? "incomplete" : "completed");
    return response_object(w, cut ? "incomplete" : "completed", json_pack("[o]", item), usage_object(end->usage), NULL,
                           cut ? "max_output_tokens" : NULL);
}

/* ---------------------------------------------------------------- stream events */

/* Appends an event of this type with the next sequence number and the fields (taken). */
static bool push(bn_responses *w, json_t *events, const char *type, json_t *fields) {
    json_t *ev = fields ? json_pack("{s:s,s:I}", "type", type, "sequence_number", w->sequence++) : NULL;
    bool ok = ev && json_object_update(ev, fields) == 0 && json_array_append(events, ev) == 0;
    json_decref(ev);
    json_decref(fields);
    return ok;
}

/* events, or NULL (freed) when one of them could not be built. */
static json_t *events_or_null(json_t *events, bool ok) {
    if (ok) return events;
    json_decref(events);
    return NULL;
}

json_t *bn_responses_stream_start(bn_responses *w) {
    json_t *events = json_array();
    bool ok = events;
    for (int k = 0; ok && k < 2; k++)
        ok = push(w, events, k == 0 ? "response.created" : "response.in_progress",
                  json_pack("{s:o}", "response", response_object(w, "in_progress", json_array(), NULL, NULL, NULL)));
    return events_or_null(events, ok);
}

/* Adds the message item and its output_text part, unless they are open. */
static bool open_message(bn_responses *w, json_t *events) {
    if (w->message_open) return true;
    w->message_open = true;
    char id[80];
    message_id(w, id);
    int index = (int)json_array_size(w->output);
    return push(w, events, "response.output_item.added",
                json_pack("{s:i,s:{s:s,s:s,s:s,s:s,s:[]}}", "output_index", index, "item", "type", "message", "id", id,
                          "status", "in_progress", "role", "assistant", "content")) &&
           push(w, events, "response.content_part.added",
                json_pack("{s:s,s:i,s:i,s:{s:s,s:s,s:[]}}", "item_id", id, "output_index", index, "content_index", 0,
                          "part", "type", "output_text", "text", "", "annotations"));
}

json_t *bn_responses_stream_text(bn_responses *w, const char *text, size_t len) {
    json_t *events = json_array();
    if (!events || len == 0) return events;
    char id[80];
    message_id(w, id);
    bool ok = open_message(w, events) &&
              push(w, events, "response.output_text.delta",
                   json_pack("{s:s,s:i,s:i,s:o,s:[]}", "item_id", id, "output_index", (int)json_array_size(w->output),
                             "content_index", 0, "delta", bn_json_text(text, len), "logprobs"));
    return events_or_null(events, ok);
}

json_t *bn_responses_stream_item(bn_responses *w, const char *text, size_t len, const json_t *call, int finish) {
    json_t *events = json_array();
    int index = (int)json_array_size(w->output);
    bool ok = events;
    json_t *item;
    if (call) {
        const char *arguments = call_arguments(call);
        json_t *added = call_output(w, call, "", "in_progress");
        const char *id = json_string_value(json_object_get(added, "id"));
        item = call_output(w, call, arguments, "completed");
        ok = ok && added && item &&
             push(w, events, "response.output_item.added", json_pack("{s:i,s:O}", "output_index", index, "item", added)) &&
             push(w, events, "response.function_call_arguments.delta",
                  json_pack("{s:s,s:i,s:s}", "item_id", id, "output_index", index, "delta", arguments)) &&
             push(w, events, "response.function_call_arguments.done",
                  json_pack("{s:s,s:i,s:O,s:s}", "item_id", id, "output_index", index, "name",
                            json_object_get(item, "name"), "arguments", arguments));
        json_decref(added);
    } else {
        char id[80];
        message_id(w, id);
        item = message_output(w, text, len, length_cut(finish) ? "incomplete" : "completed");
        ok = ok && item && open_message(w, events) &&
             push(w, events, "response.output_text.done",
                  json_pack("{s:s,s:i,s:i,s:o,s:[]}", "item_id", id, "output_index", index, "content_index", 0, "text",
                            bn_json_text(text, len), "logprobs")) &&
             push(w, events, "response.content_part.done",
                  json_pack("{s:s,s:i,s:i,s:{s:s,s:o,s:[]}}", "item_id", id, "output_index", index, "content_index",
                            0, "part", "type", "output_text", "text", bn_json_text(text, len), "annotations"));
        w->message_open = false;
    }
    ok = ok && push(w, events, "response.output_item.done", json_pack("{s:i,s:O}", "output_index", index, "item", item)) &&
         json_array_append(w->output, item) == 0;
    json_decref(item);
    return events_or_null(events, ok);
}

json_t *bn_responses_stream_end(bn_responses *w, const bn_responses_end *end) {
    json_t *events = json_array();
    bool cut = length_cut(end->finish);
    const char *type = end->error ? "response.failed" : cut ? "response.incomplete" : "response.completed";
    const char *status = end->error ? "failed" : cut ? "incomplete" : "completed";
    json_t *error = end->error ? json_pack("{s:s,s:o}", "code", end->error_code ? end->error_code : "server_error",
                                           "message", bn_json_text(end->error, strlen(end->error)))
                               : NULL;
    json_t *response = response_object(w, status, json_incref(w->output), usage_object(end->usage), error,
                                       !end->error && cut ? "max_output_tokens" : NULL);
    bool ok = events && push(w, events, type, json_pack("{s:o}", "response", response));
    return events_or_null(events, ok);
}
