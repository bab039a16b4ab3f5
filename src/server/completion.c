/*
 * completion.c: a request in flight; engine events queued, OpenAI JSON built on the connection's
 * thread (see completion.h).
 */
#include "server/completion.h"

#include "runtime/generation.h"
#include "server/wire_json.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One engine event, copied off the engine thread's buffers. */
typedef struct event {
    struct event *next;
    bn_engine_event_kind kind;
    int index;
    bool in_output, has_sample;
    bn_sample_result sample;
    bn_finish_reason finish;
    int n_generated, n_cached;
    size_t text_len;
    char text[];
} event;

/* One choice as the connection thread renders it. */
typedef struct choice {
    char *text;
    size_t len, cap;
    size_t echo_len;        /* completions with echo: the prompt text at the start of text */
    json_t *logprobs;       /* chat: array of content entries; completions: object of arrays */
    int finish;             /* bn_finish_reason, -1 while running */
    int n_generated;
    int n_cached;           /* prompt tokens the prompt cache supplied */
    bool streamed_any;      /* stream: content already sent (so no tool call can follow) */
    bool holding;           /* stream, tools auto: output starts with '{' and is held */
} choice;

struct bn_completion {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool cancel;
    int refs;
    /* fixed at creation */
    const bn_tokenizer *tok;
    char model_id[256], fingerprint[64], id[64];
    long created;
    bn_api_request req;
    bn_grammar *grammar;
    bool chat, stream, include_usage;
    bn_responses *responses; /* POST /v1/responses: its wire shapes (responses.h); NULL otherwise */
    bn_tool_mode tools;
    int named_tool;
    int n_choices, prompt_tokens;
    /* engine side, under mu */
    event *head, **tail;
    int jobs_left;
    bool all_finished, cut;
    int completion_tokens;  /* from the FINISH events */
    int tokens_so_far;      /* output tokens seen, for a log line before the FINISH events */
    int *cached;            /* per choice, from its FINISH */
    int first_finish;       /* choice 0's reason, -1 while running */
    char error[256];
    /* connection side: only the thread that reads the completion */
    choice *choices;
    char *out;
    size_t out_len, out_cap, out_sent;
    bool started, ended, out_failed;
};

static atomic_ullong next_serial;

bn_completion *bn_completion_create(const bn_completion_setup *setup) {
    const bn_api_request *r = setup->req;
    const bn_plan *p = setup->plan;
    bn_completion *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->choices = calloc((size_t)p->n_choices, sizeof *c->choices);
    c->cached = calloc((size_t)p->n_choices, sizeof *c->cached);
    bool ok = c->choices && c->cached;
    for (int k = 0; ok && k < p->n_choices; k++) {
        choice *ch = &c->choices[k];
        ch->finish = -1;
        size_t prompt = (size_t)k / (size_t)r->n;
        if (!r->chat && r->echo) { /* offsets then count the echo */
            ok = bn_text_append(&ch->text, &ch->len, &ch->cap, p->echo[prompt], p->echo_len[prompt]);
            ch->echo_len = p->echo_len[prompt];
        }
    }
    if (!ok) {
        for (int k = 0; c->choices && k < p->n_choices; k++) free(c->choices[k].text);
        free(c->choices);
        free(c->cached);
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->refs = 1;
    c->tail = &c->head;
    c->tok = setup->tok;
    snprintf(c->model_id, sizeof c->model_id, "%s", setup->model_id);
    snprintf(c->fingerprint, sizeof c->fingerprint, "%s", setup->fingerprint ? setup->fingerprint : "");
    c->req = *setup->req;
    memset(setup->req, 0, sizeof *setup->req);
    c->grammar = setup->plan->grammar;
    setup->plan->grammar = NULL;
    c->responses = setup->responses;
    c->chat = c->req.chat;
    c->stream = c->req.stream;
    c->include_usage = c->req.stream && c->req.include_usage;
    c->tools = p->tools;
    c->named_tool = p->named_tool;
    c->n_choices = p->n_choices;
    c->prompt_tokens = p->prompt_tokens;
    c->first_finish = -1;
    unsigned long long serial = atomic_fetch_add(&next_serial, 1);
    c->created = (long)time(NULL);
    snprintf(c->id, sizeof c->id, "%s%llx%04llx", c->responses ? "resp_" : c->chat ? "chatcmpl-" : "cmpl-",
             (unsigned long long)c->created, serial);
    if (c->responses) bn_responses_bind(c->responses, c->id, c->created, c->model_id);
    return c;
}

static void destroy(bn_completion *c) {
    for (event *e = c->head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    for (int i = 0; i < c->n_choices; i++) {
        free(c->choices[i].text);
        json_decref(c->choices[i].logprobs);
    }
    free(c->choices);
    free(c->cached);
    free(c->out);
    bn_api_request_free(&c->req);
    bn_grammar_free(c->grammar);
    bn_responses_free(c->responses);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

void bn_completion_ref(bn_completion *c) {
    pthread_mutex_lock(&c->mu);
    c->refs++;
    pthread_mutex_unlock(&c->mu);
}

void bn_completion_unref(bn_completion *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (last) destroy(c);
}

void bn_completion_expect_jobs(bn_completion *c, int n_jobs) {
    pthread_mutex_lock(&c->mu);
    c->refs += n_jobs;
    c->jobs_left += n_jobs;
    pthread_mutex_unlock(&c->mu);
}

void bn_completion_jobs_refused(bn_completion *c, int n_jobs) {
    pthread_mutex_lock(&c->mu);
    c->refs -= n_jobs;
    c->jobs_left -= n_jobs;
    pthread_mutex_unlock(&c->mu);
}

const atomic_bool *bn_completion_cancel_flag(bn_completion *c) { return &c->cancel; }
void bn_completion_cancel(bn_completion *c) { atomic_store(&c->cancel, true); }
bool bn_completion_cancelled(bn_completion *c) { return atomic_load(&c->cancel); }
const char *bn_completion_id(const bn_completion *c) { return c->id; }
bool bn_completion_streaming(const bn_completion *c) { return c->stream; }

/* ---------------------------------------------------------------- engine thread */

void bn_completion_on_event(void *user, const bn_engine_event *ev) {
    bn_completion *c = user;
    size_t text_len = ev->kind == BN_ENGINE_TOKEN ? ev->text_len : 0;
    event *e = malloc(sizeof *e + text_len + 1);
    pthread_mutex_lock(&c->mu);
    if (e) {
        e->next = NULL;
        e->kind = ev->kind;
        e->index = ev->index;
        e->in_output = ev->token_in_output;
        e->has_sample = ev->kind == BN_ENGINE_TOKEN && ev->sample;
        if (e->has_sample) e->sample = *ev->sample;
        e->finish = ev->finish;
        e->n_generated = ev->n_generated;
        e->n_cached = ev->n_cached;
        e->text_len = text_len;
        if (text_len) memcpy(e->text, ev->text, text_len);
        e->text[text_len] = '\0';
        *c->tail = e;
        c->tail = &e->next;
    } else if (!c->error[0]) {
        snprintf(c->error, sizeof c->error, "out of memory");
    }
    bool last_ref = false;
    if (ev->kind == BN_ENGINE_TOKEN && ev->token_in_output) c->tokens_so_far++;
    if (ev->kind == BN_ENGINE_FINISH) {
        c->completion_tokens += ev->n_generated;
        c->cached[ev->index] = ev->n_cached;
        if (ev->index == 0) c->first_finish = (int)ev->finish;
        if (ev->finish == BN_FINISH_ERROR && !c->error[0])
            snprintf(c->error, sizeof c->error, "generation failed: %s", ev->message ? ev->message : "unknown error");
        /* only a server shutdown cancels a job whose client did not */
        if (ev->finish == BN_FINISH_CANCELLED && !atomic_load(&c->cancel)) c->cut = true;
        if (--c->jobs_left == 0) c->all_finished = true;
        last_ref = --c->refs == 0;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (last_ref) destroy(c);
}

/* ---------------------------------------------------------------- connection thread: JSON */

static void out_append(bn_completion *c, const char *s, size_t n) {
    if (!bn_text_append(&c->out, &c->out_len, &c->out_cap, s, n)) c->out_failed = true;
}

/* Appends `data: <json>\n\n` (takes the reference). */
static void sse_event(bn_completion *c, json_t *chunk) {
    char *text = bn_json_dump(chunk);
    if (!text) {
        c->out_failed = true;
        return;
    }
    out_append(c, "data: ", 6);
    out_append(c, text, strlen(text));
    out_append(c, "\n\n", 2);
    free(text);
}

/* Responses API events (responses.h): `event: <type>` and `data: <json>` each (takes the array). */
static void responses_events(bn_completion *c, json_t *events) {
    if (!events) {
        c->out_failed = true;
        return;
    }
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev) {
        const char *type = json_string_value(json_object_get(ev, "type"));
        out_append(c, "event: ", 7);
        out_append(c, type, strlen(type));
        out_append(c, "\n", 1);
        sse_event(c, json_incref(ev));
    }
    json_decref(events);
}

static bool choice_append(choice *ch, const char *s, size_t n) {
    return bn_text_append(&ch->text, &ch->len, &ch->cap, s, n);
}

static json_t *chunk_base(bn_completion *c) {
    return json_pack("{s:s,s:s,s:I,s:s,s:[]}", "id", c->id, "object",
                     c->chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t)c->created,
                     "model", c->model_id, "choices");
}

static json_t *token_text_json(const bn_tokenizer *tok, int32_t id, json_t **bytes_out) {
    size_t len = 0;
    const uint8_t *bytes = bn_tokenizer_token_bytes(tok, id, &len);
    if (bytes_out) {
        *bytes_out = json_array();
        for (size_t i = 0; i < len; i++) json_array_append_new(*bytes_out, json_integer(bytes[i]));
    }
    return bn_json_text(bytes ? (const char *)bytes : "", len);
}

/* The logprobs of one token: chat form (an entry of content[]) or completions form (appended to
 * the arrays of the choice's object). Returns the chat entry (new reference) or NULL. */
static json_t *logprob_entry(bn_completion *c, choice *ch, const bn_sample_result *r, size_t offset) {
    const bn_tokenizer *tok = c->tok;
    if (c->chat) {
        json_t *bytes;
        json_t *tops = json_array();
        for (int i = 0; i < r->n_top; i++) {
            json_t *tb;
            json_t *tt = token_text_json(tok, r->top[i].token, &tb);
            json_array_append_new(tops, json_pack("{s:o,s:f,s:o}", "token", tt, "logprob",
                                                  (double)r->top[i].logprob, "bytes", tb));
        }
        json_t *text = token_text_json(tok, r->token, &bytes);
        return json_pack("{s:o,s:f,s:o,s:o}", "token", text, "logprob", (double)r->logprob, "bytes", bytes,
                         "top_logprobs", tops);
    }
    if (!ch->logprobs)
        ch->logprobs = json_pack("{s:[],s:[],s:[],s:[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
    json_t *lp = ch->logprobs;
    json_array_append_new(json_object_get(lp, "tokens"), token_text_json(tok, r->token, NULL));
    json_array_append_new(json_object_get(lp, "token_logprobs"), json_real(r->logprob));
    json_t *top = json_object();
    for (int i = 0; i < r->n_top; i++) {
        json_t *tt = token_text_json(tok, r->top[i].token, NULL);
        if (!json_object_get(top, json_string_value(tt)))
            json_object_set_new(top, json_string_value(tt), json_real(r->top[i].logprob));
        json_decref(tt);
    }
    json_array_append_new(json_object_get(lp, "top_logprobs"), top);
    json_array_append_new(json_object_get(lp, "text_offset"), json_integer((json_int_t)offset));
    return NULL;
}

static const char *finish_name(const choice *ch, bool tool_call) {
    return tool_call ? "tool_calls" : bn_finish_reason_openai((bn_finish_reason)ch->finish);
}

/* Tool call parsed from a choice's text; NULL when it is not one. New reference. */
static json_t *parse_tool_call(bn_completion *c, const choice *ch, int index) {
    bool natural_end = ch->finish == BN_FINISH_EOG || ch->finish == BN_FINISH_STOP || ch->finish == BN_FINISH_GRAMMAR;
    if (c->tools == BN_TOOLS_OFF || !natural_end || !ch->text) return NULL;
    json_t *v = json_loadb(ch->text, ch->len, 0, NULL);
    if (!json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    const char *name = NULL;
    json_t *args = NULL;
    if (c->tools == BN_TOOLS_FORCED && c->named_tool >= 0) {
        name = c->req.tools[c->named_tool].name;
        args = json_incref(v);
    } else {
        const char *n = json_string_value(json_object_get(v, "name"));
        for (size_t i = 0; n && i < c->req.n_tools; i++)
            if (!strcmp(c->req.tools[i].name, n)) name = c->req.tools[i].name;
        json_t *a = json_object_get(v, "arguments");
        if (name && json_is_object(a)) args = json_incref(a);
        else if (name && json_is_string(a)) args = json_loads(json_string_value(a), 0, NULL);
        if (!json_is_object(args)) {
            json_decref(args);
            args = NULL;
            name = NULL;
        }
    }
    json_decref(v);
    if (!name) return NULL;
    char *arg_text = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    char id[48];
    snprintf(id, sizeof id, "call_%s_%d", c->id + (c->responses ? 5 : 9), index); /* the id's hex part */
    json_t *call = json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", id, "type", "function", "function", "name", name,
                             "arguments", arg_text ? arg_text : "{}");
    free(arg_text);
    return call;
}

/* usage, with prompt_tokens_details.cached_tokens: per prompt, what its first choice's job took
 * from the prompt cache. */
static json_t *usage_json(bn_completion *c) {
    int cached = 0, generated = 0;
    int per_prompt = c->req.n > 0 ? c->req.n : 1;
    for (int k = 0; k < c->n_choices; k++) {
        generated += c->choices[k].n_generated;
        if (k % per_prompt == 0) cached += c->choices[k].n_cached;
    }
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", c->prompt_tokens, "completion_tokens", generated,
                     "total_tokens", c->prompt_tokens + generated, "prompt_tokens_details", "cached_tokens", cached);
}

static void stream_content(bn_completion *c, int index, const char *text, size_t len, json_t *lp_entry) {
    if (c->responses) { /* one choice, no logprobs */
        json_decref(lp_entry);
        responses_events(c, bn_responses_stream_text(c->responses, text, len));
        return;
    }
    json_t *chunk = chunk_base(c);
    json_t *ch;
    if (c->chat) {
        json_t *lp = lp_entry ? json_pack("{s:[o]}", "content", lp_entry) : json_null();
        ch = json_pack("{s:i,s:{s:o},s:o,s:n}", "index", index, "delta", "content", bn_json_text(text, len),
                       "logprobs", lp, "finish_reason");
    } else {
        ch = json_pack("{s:o,s:i,s:n,s:n}", "text", bn_json_text(text, len), "index", index, "logprobs",
                       "finish_reason");
    }
    json_array_append_new(json_object_get(chunk, "choices"), ch);
    sse_event(c, chunk);
}

static void on_token(bn_completion *c, const event *ev) {
    choice *ch = &c->choices[ev->index];
    size_t offset = ch->len;
    if (!choice_append(ch, ev->text, ev->text_len)) c->out_failed = true;
    json_t *lp_entry = NULL;
    if (ev->has_sample && ev->in_output) {
        lp_entry = logprob_entry(c, ch, &ev->sample, offset);
        if (lp_entry && !c->stream) {
            if (!ch->logprobs) ch->logprobs = json_array();
            json_array_append(ch->logprobs, lp_entry);
        }
    }
    if (!c->stream || c->tools == BN_TOOLS_FORCED || ch->holding) {
        json_decref(lp_entry);
        return;
    }
    if (c->tools == BN_TOOLS_AUTO && !ch->streamed_any) {
        size_t i = 0;
        while (i < ch->len && (ch->text[i] == ' ' || ch->text[i] == '\n')) i++;
        if (i == ch->len || ch->text[i] == '{') { /* undecided, or a tool call: held */
            ch->holding = i < ch->len;
            json_decref(lp_entry);
            return;
        }
        /* not a tool call: release everything held */
        ch->streamed_any = true;
        stream_content(c, ev->index, ch->text, ch->len, lp_entry);
        return;
    }
    if (ev->text_len == 0 && !lp_entry) return;
    if (c->chat) ch->streamed_any = true;
    if (!c->chat && ch->logprobs && ev->has_sample && ev->in_output) {
        /* completions stream: this token's logprobs as a one-element object */
        json_t *lp = ch->logprobs;
        size_t last = json_array_size(json_object_get(lp, "tokens")) - 1;
        json_t *one = json_pack("{s:[O],s:[O],s:[O],s:[O]}", "tokens",
                                json_array_get(json_object_get(lp, "tokens"), last), "token_logprobs",
                                json_array_get(json_object_get(lp, "token_logprobs"), last), "top_logprobs",
                                json_array_get(json_object_get(lp, "top_logprobs"), last), "text_offset",
                                json_array_get(json_object_get(lp, "text_offset"), last));
        json_t *chunk = chunk_base(c);
        json_array_append_new(json_object_get(chunk, "choices"),
                              json_pack("{s:o,s:i,s:o,s:n}", "text", bn_json_text(ev->text, ev->text_len), "index",
                                        ev->index, "logprobs", one, "finish_reason"));
        sse_event(c, chunk);
        return;
    }
    stream_content(c, ev->index, ev->text, ev->text_len, lp_entry);
}

static void stream_finish_choice(bn_completion *c, int index) {
    choice *ch = &c->choices[index];
    json_t *call = c->chat && !ch->streamed_any ? parse_tool_call(c, ch, index) : NULL;
    if (c->chat && !call && !ch->streamed_any && ch->len > 0) stream_content(c, index, ch->text, ch->len, NULL);
    if (c->responses) { /* the output item is complete: no finish chunk */
        responses_events(c, bn_responses_stream_item(c->responses, ch->text ? ch->text : "", ch->len, call, ch->finish));
        json_decref(call);
        return;
    }
    if (call) {
        json_t *delta_call = json_pack("{s:i,s:O,s:s,s:O}", "index", 0, "id", json_object_get(call, "id"), "type",
                                       "function", "function", json_object_get(call, "function"));
        json_t *c1 = chunk_base(c);
        json_array_append_new(json_object_get(c1, "choices"),
                              json_pack("{s:i,s:{s:[o]},s:n,s:n}", "index", index, "delta", "tool_calls",
                                        delta_call, "logprobs", "finish_reason"));
        sse_event(c, c1);
    }
    json_t *chunk = chunk_base(c);
    if (c->chat)
        json_array_append_new(json_object_get(chunk, "choices"),
                              json_pack("{s:i,s:{},s:n,s:s}", "index", index, "delta", "logprobs",
                                        "finish_reason", finish_name(ch, call != NULL)));
    else
        json_array_append_new(json_object_get(chunk, "choices"),
                              json_pack("{s:s,s:i,s:n,s:s}", "text", "", "index", index, "logprobs",
                                        "finish_reason", finish_name(ch, false)));
    json_decref(call);
    sse_event(c, chunk);
}

/* The first events of a stream: each chat choice's role, each completions choice's echo. */
static void stream_start(bn_completion *c) {
    if (c->responses) {
        responses_events(c, bn_responses_stream_start(c->responses));
        return;
    }
    for (int k = 0; k < c->n_choices; k++) {
        json_t *chunk = chunk_base(c);
        if (c->chat)
            json_array_append_new(json_object_get(chunk, "choices"),
                                  json_pack("{s:i,s:{s:s,s:s},s:n,s:n}", "index", k, "delta", "role", "assistant",
                                            "content", "", "logprobs", "finish_reason"));
        else if (c->req.echo)
            json_array_append_new(json_object_get(chunk, "choices"),
                                  json_pack("{s:o,s:i,s:n,s:n}", "text",
                                            bn_json_text(c->choices[k].text, c->choices[k].echo_len), "index", k,
                                            "logprobs", "finish_reason"));
        else {
            json_decref(chunk);
            continue;
        }
        sse_event(c, chunk);
    }
}

static json_t *shutdown_error(bn_completion *c) {
    int generated = 0;
    for (int k = 0; k < c->n_choices; k++) generated += c->choices[k].n_generated;
    bn_api_error e;
    bn_api_error_set(&e, 503, "server_error", NULL, "server_shutdown",
                     "The server shut down before the generation finished (%d tokens generated); retry the request",
                     generated);
    return bn_api_error_json(&e);
}

/* The end of a stream: the error of a failed or cut generation, usage, [DONE]. */
static void stream_end(bn_completion *c, bool cut, const char *error) {
    if (c->responses) { /* response.completed, .incomplete or .failed; no [DONE] in this API */
        json_t *usage = usage_json(c), *shutdown = cut ? shutdown_error(c) : NULL;
        const char *why = json_string_value(json_object_get(json_object_get(shutdown, "error"), "message"));
        const bn_responses_end end = {.finish = c->choices[0].finish, .usage = usage,
                                      .error_code = cut ? "server_shutdown" : "server_error",
                                      .error = cut ? (why ? why : "server shutdown") : error[0] ? error : NULL};
        responses_events(c, bn_responses_stream_end(c->responses, &end));
        json_decref(usage);
        json_decref(shutdown);
        return;
    }
    if (cut) { /* no [DONE]: the stream is incomplete */
        sse_event(c, shutdown_error(c));
        return;
    }
    if (error[0]) {
        bn_api_error e;
        bn_api_error_set(&e, 500, "server_error", NULL, NULL, "%s", error);
        sse_event(c, bn_api_error_json(&e));
    }
    if (c->include_usage) {
        json_t *chunk = chunk_base(c);
        json_object_set_new(chunk, "usage", usage_json(c));
        sse_event(c, chunk);
    }
    out_append(c, "data: [DONE]\n\n", 14);
}

/* Renders what the engine queued; at the end of a stream, its last events. */
static void drain(bn_completion *c) {
    pthread_mutex_lock(&c->mu);
    event *list = c->head;
    c->head = NULL;
    c->tail = &c->head;
    bool finished = c->all_finished, cut = c->cut;
    char error[256];
    snprintf(error, sizeof error, "%s", c->error);
    pthread_mutex_unlock(&c->mu);
    if (c->stream && !c->started) stream_start(c);
    c->started = true;
    for (event *e = list, *next; e; e = next) {
        next = e->next;
        if (e->kind == BN_ENGINE_TOKEN) {
            on_token(c, e);
        } else {
            choice *ch = &c->choices[e->index];
            ch->finish = (int)e->finish;
            ch->n_generated = e->n_generated;
            ch->n_cached = e->n_cached;
            if (c->stream && e->finish != BN_FINISH_CANCELLED) stream_finish_choice(c, e->index);
        }
        free(e);
    }
    if (finished && !c->ended) {
        if (c->stream) stream_end(c, cut, error);
        c->ended = true;
    }
}

ssize_t bn_completion_read_stream(bn_completion *c, char *buf, size_t max, int wait_ms) {
    for (int pass = 0; pass < 2; pass++) {
        drain(c);
        if (c->out_sent < c->out_len) {
            size_t n = c->out_len - c->out_sent;
            if (n > max) n = max;
            memcpy(buf, c->out + c->out_sent, n);
            c->out_sent += n;
            return (ssize_t)n;
        }
        if (c->ended || c->out_failed) return -1;
        if (pass == 0) bn_completion_wait(c, wait_ms);
    }
    return 0;
}

bool bn_completion_wait(bn_completion *c, int wait_ms) {
    /* The events so far become the choices' text now: the queue stays short, and the wait below
     * blocks until new events arrive (with events left queued it would return at once, and the
     * caller's loop would spin on a core for the whole generation). */
    drain(c);
    pthread_mutex_lock(&c->mu);
    if (!c->head && !c->all_finished && wait_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)wait_ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    bool done = c->all_finished;
    pthread_mutex_unlock(&c->mu);
    return done;
}

size_t bn_completion_queued_events(bn_completion *c) {
    pthread_mutex_lock(&c->mu);
    size_t n = 0;
    for (const event *e = c->head; e; e = e->next) n++;
    pthread_mutex_unlock(&c->mu);
    return n;
}

char *bn_completion_body(bn_completion *c, bn_api_error *e) {
    drain(c);
    pthread_mutex_lock(&c->mu);
    bool cut = c->cut;
    char error[256];
    snprintf(error, sizeof error, "%s", c->error);
    pthread_mutex_unlock(&c->mu);
    if (cut) {
        json_t *v = shutdown_error(c);
        json_t *inner = json_object_get(v, "error");
        bn_api_error_set(e, 503, "server_error", NULL, "server_shutdown", "%s",
                         json_string_value(json_object_get(inner, "message")));
        json_decref(v);
        return NULL;
    }
    if (error[0] || c->out_failed) {
        bn_api_error_set(e, 500, "server_error", NULL, NULL, "%s", error[0] ? error : "out of memory");
        return NULL;
    }
    if (c->responses) {
        choice *ch = &c->choices[0];
        json_t *call = parse_tool_call(c, ch, 0), *usage = usage_json(c);
        const bn_responses_end end = {.finish = ch->finish, .usage = usage};
        char *text = bn_json_dump(bn_responses_body(c->responses, ch->text ? ch->text : "", ch->len, call, &end));
        json_decref(call);
        json_decref(usage);
        if (!text) bn_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return text;
    }
    json_t *choices = json_array();
    for (int i = 0; i < c->n_choices; i++) {
        choice *ch = &c->choices[i];
        if (c->chat) {
            json_t *call = parse_tool_call(c, ch, i);
            json_t *msg = json_pack("{s:s,s:o,s:n}", "role", "assistant", "content",
                                    call ? json_null() : bn_json_text(ch->text ? ch->text : "", ch->len), "refusal");
            if (call) json_object_set_new(msg, "tool_calls", json_pack("[o]", call));
            json_t *lp = ch->logprobs ? json_pack("{s:O}", "content", ch->logprobs) : json_null();
            json_array_append_new(choices, json_pack("{s:i,s:o,s:o,s:s}", "index", i, "message", msg, "logprobs", lp,
                                                     "finish_reason", finish_name(ch, call != NULL)));
        } else {
            json_array_append_new(choices, json_pack("{s:o,s:i,s:O,s:s}", "text",
                                                     bn_json_text(ch->text ? ch->text : "", ch->len), "index", i,
                                                     "logprobs", ch->logprobs ? ch->logprobs : json_null(),
                                                     "finish_reason", finish_name(ch, false)));
        }
    }
    json_t *body = json_pack("{s:s,s:s,s:I,s:s,s:o,s:o}", "id", c->id, "object",
                             c->chat ? "chat.completion" : "text_completion", "created", (json_int_t)c->created,
                             "model", c->model_id, "choices", choices, "usage", usage_json(c));
    if (c->chat && body) json_object_set_new(body, "system_fingerprint", json_string(c->fingerprint));
    char *text = bn_json_dump(body);
    if (!text) bn_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return text;
}

void bn_completion_get_counts(bn_completion *c, bn_completion_counts *out) {
    pthread_mutex_lock(&c->mu);
    int per_prompt = c->req.n > 0 ? c->req.n : 1;
    out->prompt_tokens = c->prompt_tokens;
    out->completion_tokens = c->all_finished || c->completion_tokens > c->tokens_so_far ? c->completion_tokens
                                                                                        : c->tokens_so_far;
    out->cached_tokens = 0;
    for (int k = 0; k < c->n_choices; k += per_prompt) out->cached_tokens += c->cached[k];
    out->finished = c->all_finished;
    out->cut = c->cut;
    out->finish = c->first_finish >= 0 ? bn_finish_reason_openai((bn_finish_reason)c->first_finish) : NULL;
    pthread_mutex_unlock(&c->mu);
}
