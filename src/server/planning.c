/*
 * planning.c: a parsed request -> prompt ids, grammar, stops, limits and jobs (see planning.h).
 */
#include "server/planning.h"

#include "sampling/gbnf.h"
#include "sampling/grammar_regex.h"
#include "sampling/json_schema.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tokenizes one completions prompt into *ids and its echo text (owned). */
static bn_status tokenize_prompt(const bn_tokenizer *tok, const bn_api_prompt *p, bn_tokens *ids, char **echo,
                                 size_t *echo_len, bn_error *err) {
    if (p->is_tokens) {
        for (size_t i = 0; i < p->n_ids; i++)
            if (bn_tokens_push(ids, p->ids[i], err)) return err->code;
        bn_detokenizer d;
        bn_detokenizer_init(&d, tok, BN_DETOK_REPLACE_INVALID);
        char *text = NULL;
        size_t len = 0;
        bn_status st = BN_OK;
        for (size_t i = 0; i <= p->n_ids && !st; i++) {
            const char *piece;
            size_t n;
            st = i < p->n_ids ? bn_detokenizer_push(&d, p->ids[i], &piece, &n, err)
                              : bn_detokenizer_flush(&d, &piece, &n, err);
            if (st) break;
            char *grown = realloc(text, len + n + 1);
            if (!grown) {
                st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
                break;
            }
            text = grown;
            memcpy(text + len, piece, n);
            len += n;
            text[len] = '\0';
        }
        bn_detokenizer_free(&d);
        if (st) {
            free(text);
            return st;
        }
        *echo = text ? text : strdup("");
        *echo_len = len;
        return *echo ? BN_OK : bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    }
    bn_status st = bn_tokenizer_encode(tok, p->text, p->text_len, bn_tokenizer_add_bos(tok), false, ids, err);
    if (st) return st;
    *echo = strdup(p->text);
    *echo_len = p->text_len;
    return *echo ? BN_OK : bn_error_set(err, BN_ERR_NOMEM, "out of memory");
}

/* Renders the chat prompt (tools text added to the system message) into *text. */
static bn_status render_chat(const bn_plan_context *ctx, const bn_api_request *r, bool with_tools, bn_chat_text *text,
                             bn_error *err) {
    size_t n = r->n_messages + 1;
    bn_chat_message *msgs = calloc(n, sizeof *msgs);
    char *tools_text = with_tools ? bn_api_tools_prompt(r) : NULL;
    char *merged = NULL;
    bn_status st = BN_OK;
    if (!msgs || (with_tools && !tools_text)) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    size_t m = 0;
    if (!st && tools_text) {
        if (r->n_messages && !strcmp(r->messages[0].role, "system")) {
            size_t a = strlen(r->messages[0].content), b = strlen(tools_text);
            merged = malloc(a + b + 3);
            if (!merged) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
            else snprintf(merged, a + b + 3, "%s\n\n%s", r->messages[0].content, tools_text);
        } else {
            msgs[m++] = (bn_chat_message){"system", tools_text};
        }
    }
    for (size_t i = 0; !st && i < r->n_messages; i++)
        msgs[m++] = (bn_chat_message){r->messages[i].role, i == 0 && merged ? merged : r->messages[i].content};
    if (!st) st = bn_chat_render(text, ctx->format, msgs, m, true, err);
    free(msgs);
    free(tools_text);
    free(merged);
    return st;
}

/* Tools are in the prompt unless tool_choice is "none". */
static bool wants_tools(const bn_api_request *r) { return r->tool_choice != BN_TOOL_CHOICE_NONE; }

bn_status bn_plan_chat_text(bn_chat_text *text, const bn_plan_context *ctx, const bn_api_request *r, bn_error *err) {
    return render_chat(ctx, r, wants_tools(r), text, err);
}

/* Renders and tokenizes the chat prompt. */
static bn_status chat_prompt(const bn_plan_context *ctx, const bn_api_request *r, bool with_tools, bn_tokens *ids,
                             bn_error *err) {
    bn_chat_text text = {0};
    bn_status st = render_chat(ctx, r, with_tools, &text, err);
    if (!st) st = bn_chat_tokenize(ids, ctx->tok, ctx->format, &text, 0, true, err);
    bn_chat_text_free(&text);
    return st;
}

/* The grammar of a text constraint: GBNF, a regular expression over the whole output, or one of
 * several strings. */
static bn_status text_grammar(bn_grammar **out, bn_response_format format, const char *text, bn_error *err) {
    if (format == BN_RESPONSE_GBNF) return bn_gbnf_compile(text, strlen(text), out, err);
    bn_grammar_builder *b;
    bn_status st = bn_grammar_builder_new(&b, err);
    if (st) return st;
    int root = bn_grammar_rule(b, "root");
    if (format == BN_RESPONSE_REGEX) {
        int body = -1;
        if ((st = bn_grammar_regex(b, text, 0, &body, err))) {
            bn_grammar_builder_free(b);
            return st;
        }
        bn_grammar_add_ref(b, bn_grammar_alt(b, root), body);
    } else {
        json_t *choices = json_loads(text, 0, NULL);
        for (size_t i = 0; i < json_array_size(choices); i++) {
            const char *s = json_string_value(json_array_get(choices, i));
            bn_grammar_add_literal(b, bn_grammar_alt(b, root), s, strlen(s));
        }
        if (!choices) bn_grammar_builder_fail(b, BN_ERR_NOMEM, "out of memory");
        json_decref(choices);
    }
    return bn_grammar_builder_finish(b, root, out, err);
}

/* The grammar a request asks for outside tools: response_format, json_schema, guided_json,
 * grammar, guided_regex, guided_choice. */
static bn_status format_grammar(bn_plan *p, const bn_api_request *r, bn_error *err) {
    switch (r->response_format) {
    case BN_RESPONSE_TEXT: return BN_OK;
    case BN_RESPONSE_JSON_OBJECT: return bn_json_schema_grammar(&p->grammar, NULL, err);
    case BN_RESPONSE_JSON_SCHEMA: return bn_json_schema_grammar(&p->grammar, r->schema, err);
    default: return text_grammar(&p->grammar, r->response_format, r->schema, err);
    }
}

/* The grammar a chat request asks for (response_format, tool_choice required or named). */
static bn_status chat_grammar(bn_plan *p, const bn_api_request *r, const char **param, bn_error *err) {
    *param = "response_format";
    if (r->tool_choice == BN_TOOL_CHOICE_NAMED) {
        *param = "tools";
        return bn_json_schema_grammar(&p->grammar, r->tools[r->named_tool].parameters, err);
    }
    if (r->tool_choice == BN_TOOL_CHOICE_REQUIRED) {
        *param = "tools";
        const char **names = calloc(r->n_tools, sizeof *names), **schemas = calloc(r->n_tools, sizeof *schemas);
        bn_status st = !names || !schemas ? bn_error_set(err, BN_ERR_NOMEM, "out of memory") : BN_OK;
        for (size_t i = 0; !st && i < r->n_tools; i++) names[i] = r->tools[i].name, schemas[i] = r->tools[i].parameters;
        if (!st) st = bn_json_tool_call_grammar(&p->grammar, names, schemas, r->n_tools, err);
        free(names);
        free(schemas);
        return st;
    }
    if (r->response_format != BN_RESPONSE_JSON_OBJECT && r->schema_param) *param = r->schema_param;
    return format_grammar(p, r, err);
}

/* An error from the tokenizer or the template: out of memory is the server's fault, the rest the
 * request's. */
static bn_status internal_error(bn_api_error *e, const bn_error *err) {
    bool oom = err->code == BN_ERR_NOMEM;
    bn_api_error_set(e, oom ? 500 : 400, oom ? "server_error" : "invalid_request_error", NULL, NULL, "%s", err->message);
    return err->code ? err->code : BN_ERR_INVALID;
}

bn_status bn_plan_request(bn_plan *p, const bn_plan_context *ctx, const bn_api_request *r, bn_api_error *e) {
    memset(p, 0, sizeof *p);
    p->chat = r->chat;
    p->named_tool = -1;
    p->n_prompts = r->chat ? 1 : r->n_prompts;
    bn_error err;
    bn_error_clear(&err);
    if (strcmp(r->model, ctx->model_id) != 0) {
        bn_api_error_set(e, 404, "invalid_request_error", "model", "model_not_found",
                         "The model '%.100s' does not exist; this server serves '%s'", r->model, ctx->model_id);
        return BN_ERR_INVALID;
    }
    p->ids = calloc(p->n_prompts, sizeof *p->ids);
    p->echo = calloc(p->n_prompts, sizeof *p->echo);
    p->echo_len = calloc(p->n_prompts, sizeof *p->echo_len);
    if (!p->ids || !p->echo || !p->echo_len) {
        bn_error_set(&err, BN_ERR_NOMEM, "out of memory");
        return internal_error(e, &err);
    }
    const char *param = r->schema_param;
    bn_status gst = BN_OK;
    if (r->chat) {
        p->tools = !wants_tools(r) ? BN_TOOLS_OFF
                 : r->tool_choice == BN_TOOL_CHOICE_AUTO ? BN_TOOLS_AUTO : BN_TOOLS_FORCED;
        if (r->tool_choice == BN_TOOL_CHOICE_NAMED) p->named_tool = r->named_tool;
        if (chat_prompt(ctx, r, p->tools != BN_TOOLS_OFF, &p->ids[0], &err)) return internal_error(e, &err);
        gst = chat_grammar(p, r, &param, &err);
    } else {
        for (size_t i = 0; i < p->n_prompts; i++)
            if (tokenize_prompt(ctx->tok, &r->prompts[i], &p->ids[i], &p->echo[i], &p->echo_len[i], &err))
                return internal_error(e, &err);
        gst = format_grammar(p, r, &err); /* json_schema, guided_json, grammar, guided_regex, guided_choice */
    }
    if (gst == BN_ERR_NOMEM) return internal_error(e, &err);
    if (gst) {
        bn_api_error_set(e, 400, "invalid_request_error", param, NULL, "'%s': %s", param, err.message);
        return gst;
    }
    int max_prompt = 0;
    for (size_t i = 0; i < p->n_prompts; i++) {
        size_t n = p->ids[i].n;
        if (n == 0) {
            bn_api_error_set(e, 400, "invalid_request_error", "prompt", NULL,
                             "'prompt': the prompt is empty and the model has no BOS token");
            return BN_ERR_INVALID;
        }
        if (n > (size_t)ctx->n_ctx) {
            bn_api_error_set(e, 400, "invalid_request_error", r->chat ? "messages" : "prompt", "context_length_exceeded",
                             "This model's maximum context length is %d tokens, however your prompt has %zu tokens.",
                             ctx->n_ctx, n);
            return BN_ERR_INVALID;
        }
        if ((int)n > max_prompt) max_prompt = (int)n;
        p->prompt_tokens += (int)n;
    }
    int room = ctx->n_ctx - max_prompt + 1;
    p->max_tokens = r->max_tokens < 0 || r->max_tokens > room ? room : r->max_tokens;
    p->n_choices = (int)p->n_prompts * r->n;
    p->reserved_tokens = (double)p->prompt_tokens + (double)p->max_tokens * p->n_choices;
    for (size_t i = 0; i < r->n_stops; i++) p->stops[p->n_stops++] = r->stops[i];
    const char *const *fmt_stops = r->chat ? ctx->format->stop_strings : NULL;
    for (size_t i = 0; fmt_stops && fmt_stops[i] && p->n_stops < sizeof p->stops / sizeof p->stops[0]; i++)
        p->stops[p->n_stops++] = fmt_stops[i];
    return BN_OK;
}

bn_engine_job_config bn_plan_job(const bn_plan *p, const bn_api_request *r, int k, int n_ctx) {
    size_t prompt = (size_t)k / (size_t)r->n;
    return (bn_engine_job_config){
        .prompt = p->ids[prompt].ids, .n_prompt = p->ids[prompt].n,
        .gen = {.sampling = bn_api_sampler_params(r, (uint64_t)k, n_ctx), .max_tokens = p->max_tokens,
                .stops = p->stops, .n_stops = p->n_stops, .ignore_eog = r->ignore_eos, .grammar = p->grammar,
                .want_logprobs = r->logprobs >= 0, .detok_flags = BN_DETOK_REPLACE_INVALID},
        .index = k};
}

void bn_plan_free(bn_plan *p) {
    for (size_t i = 0; p->ids && i < p->n_prompts; i++) bn_tokens_free(&p->ids[i]);
    for (size_t i = 0; p->echo && i < p->n_prompts; i++) free(p->echo[i]);
    free(p->ids);
    free(p->echo);
    free(p->echo_len);
    bn_grammar_free(p->grammar);
    memset(p, 0, sizeof *p);
}
