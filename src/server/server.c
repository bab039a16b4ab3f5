/*
 * server.c: routes, authorization, rate limits, request -> jobs, and the responses (JSON and
 * SSE) of the OpenAI-compatible server (see server.h). Response bodies are built with jansson.
 *
 * A generation (struct gen) is shared by the connection thread and the engine thread: the engine
 * appends per-choice text and SSE events under gen->mu; the connection thread sends them. It is
 * reference-counted: one reference per unfinished job plus one for the connection.
 */
#include "server/server.h"

#include "chat/chat.h"
#include "kernels/tuner.h"
#include "model/model.h"
#include "model/tune.h"
#include "server/auth.h"
#include "server/engine.h"
#include "sampling/json_grammar.h"
#include "server/metrics.h"
#include "server/request.h"
#include "tokenizer/tokenizer.h"
#include "runtime/generation.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { STATE_LOADING = 0, STATE_READY = 1, STATE_STOPPING = 2 };

struct bn_server {
    bn_server_config cfg;
    char *model_path, *host, *chat_format_name;
    char model_id[256];
    long created;
    struct MHD_Daemon *daemon;
    int port;
    atomic_int state;
    atomic_int inflight;
    atomic_ullong next_id;
    bn_model *model;
    bn_tokenizer *tok;
    const bn_chat_format *format;
    bn_engine *engine;
    bn_metrics metrics;
    bn_auth auth;
    pthread_mutex_t log_mu;
};

/* ---------------------------------------------------------------- logging */

void bn_server_log(bn_server *s, const char *level, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    pthread_mutex_lock(&s->log_mu);
    if (s->cfg.log_json) {
        json_t *o = json_pack("{s:s,s:s,s:s}", "time", ts, "level", level, "msg", msg);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (text) fprintf(stderr, "%s\n", text);
        free(text);
        json_decref(o);
    } else {
        fprintf(stderr, "%s %s %s\n", ts, level, msg);
    }
    fflush(stderr);
    pthread_mutex_unlock(&s->log_mu);
}

/* ---------------------------------------------------------------- small helpers */

/* Valid UTF-8 copy of bytes (invalid sequences become U+FFFD); caller frees. */
static char *utf8_sanitize(const uint8_t *p, size_t n, size_t *out_len) {
    char *out = malloc(n * 3 + 1);
    if (!out) return NULL;
    size_t o = 0, i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t need = c < 0x80 ? 0 : (c >= 0xC2 && c <= 0xDF) ? 1 : (c >= 0xE0 && c <= 0xEF) ? 2
                                 : (c >= 0xF0 && c <= 0xF4) ? 3 : 99;
        bool ok = need != 99;
        for (size_t k = 1; ok && k <= need; k++) {
            if (i + k >= n) {
                ok = false;
                break;
            }
            uint8_t d = p[i + k];
            uint8_t lo = 0x80, hi = 0xBF;
            if (k == 1 && c == 0xE0) lo = 0xA0;
            if (k == 1 && c == 0xED) hi = 0x9F;
            if (k == 1 && c == 0xF0) lo = 0x90;
            if (k == 1 && c == 0xF4) hi = 0x8F;
            if (d < lo || d > hi) ok = false;
        }
        if (!ok) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(out + o, p + i, need + 1);
        o += need + 1;
        i += need + 1;
    }
    out[o] = '\0';
    if (out_len) *out_len = o;
    return out;
}

static json_t *json_text(const char *s, size_t n) {
    json_t *v = json_stringn(s, n);
    if (v) return v;
    size_t len;
    char *clean = utf8_sanitize((const uint8_t *)s, n, &len);
    v = clean ? json_stringn(clean, len) : NULL;
    free(clean);
    return v ? v : json_string("");
}

static char *dump(json_t *v) {
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    return text;
}

static json_t *error_json(const bn_api_error *e) {
    return json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", e->message, "type",
                     e->type ? e->type : "invalid_request_error", "param",
                     e->param[0] ? json_string(e->param) : json_null(), "code",
                     e->code[0] ? json_string(e->code) : json_null());
}

static const char *const routes[] = {"/health", "/metrics", "/v1/models", "/v1/completions",
                                     "/v1/chat/completions"};

/* ---------------------------------------------------------------- connection state */

typedef struct gen gen;

typedef struct conn_ctx {
    bn_server *srv;
    char *body;
    size_t len, cap;
    bool too_large;
    bool answered;
    const char *endpoint;
    double start_ms;
    int status;
    int n_prompt, n_generated;
} conn_ctx;

/* Queues `text` (owned; MHD frees it) as the answer, with Retry-After when retry_after > 0 and
 * Allow when allow is non-NULL, and records the status for the access metrics. */
static enum MHD_Result send_response(conn_ctx *c, struct MHD_Connection *conn, int status, char *text,
                                     const char *type, int retry_after, const char *allow) {
    if (!text) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", retry_after);
        MHD_add_response_header(r, "Retry-After", v);
    }
    if (allow) MHD_add_response_header(r, "Allow", allow);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    c->status = status;
    c->answered = true;
    bn_metrics_request(&c->srv->metrics, c->endpoint, status);
    return ret;
}

static enum MHD_Result send_json(conn_ctx *c, struct MHD_Connection *conn, int status, json_t *body,
                                 int retry_after, const char *allow) {
    char *text = dump(body);
    if (!text) text = strdup("{}");
    return send_response(c, conn, status, text, "application/json", retry_after, allow);
}

static enum MHD_Result send_error(conn_ctx *c, struct MHD_Connection *conn, const bn_api_error *e,
                                  int retry_after) {
    return send_json(c, conn, e->status, error_json(e), retry_after, NULL);
}

static enum MHD_Result send_text(conn_ctx *c, struct MHD_Connection *conn, int status, char *text,
                                 const char *type) {
    return send_response(c, conn, status, text, type, 0, NULL);
}

/* True when the peer has closed its end of the connection. */
static bool peer_closed(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info) return true;
    int fd = info->connect_fd;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)) return true;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ---------------------------------------------------------------- generations */

typedef enum tool_mode { TOOLS_OFF = 0, TOOLS_AUTO, TOOLS_FORCED } tool_mode;

typedef struct choice {
    char *text;
    size_t len, cap;
    json_t *logprobs;       /* chat: array of content entries; completions: object of arrays */
    int finish;             /* bn_finish_reason, -1 while running */
    int n_generated;
    int n_cached;           /* prompt tokens the prompt cache supplied */
    bool streamed_any;      /* stream: content already sent (so no tool call can follow) */
    bool holding;           /* stream, tools auto: output starts with '{' and is held */
} choice;

struct gen {
    bn_server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool cancel;
    int refs;
    bool chat, stream, include_usage;
    tool_mode tools;
    int named_tool;         /* forced with a named tool: its index; -1: {"name","arguments"} form */
    int n_choices, jobs_left;
    char id[64];
    long created;
    char *out;
    size_t out_len, out_cap, out_sent;
    bool complete;
    choice *choices;
    int prompt_tokens, completion_tokens;
    bn_api_request req;
    bn_json_grammar *grammar;
    int key;
    double reserved_tokens;
    char error[256];
};

static void gen_unref_locked_out(gen *g) {
    /* called with g->mu held; unlocks */
    bool last = --g->refs == 0;
    pthread_mutex_unlock(&g->mu);
    if (!last) return;
    bn_server *s = g->srv;
    for (int i = 0; g->choices && i < g->n_choices; i++) {
        free(g->choices[i].text);
        json_decref(g->choices[i].logprobs);
    }
    free(g->choices);
    free(g->out);
    bn_api_request_free(&g->req);
    bn_json_grammar_free(g->grammar);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
    atomic_fetch_sub(&s->inflight, 1);
}

static void gen_unref(gen *g) {
    pthread_mutex_lock(&g->mu);
    gen_unref_locked_out(g);
}

static bool out_append(gen *g, const char *s, size_t n) {
    return bn_text_append(&g->out, &g->out_len, &g->out_cap, s, n);
}

/* Appends `data: <json>\n\n` (takes the reference). */
static void sse_event(gen *g, json_t *chunk) {
    char *text = dump(chunk);
    if (!text) return;
    out_append(g, "data: ", 6);
    out_append(g, text, strlen(text));
    out_append(g, "\n\n", 2);
    free(text);
}

static bool choice_append(choice *c, const char *s, size_t n) {
    return bn_text_append(&c->text, &c->len, &c->cap, s, n);
}

static json_t *chunk_base(gen *g) {
    return json_pack("{s:s,s:s,s:I,s:s,s:[]}", "id", g->id, "object",
                     g->chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t)g->created,
                     "model", g->srv->model_id, "choices");
}

static json_t *token_text_json(const bn_tokenizer *tok, int32_t id, json_t **bytes_out) {
    size_t len = 0;
    const uint8_t *bytes = bn_tokenizer_token_bytes(tok, id, &len);
    if (bytes_out) {
        *bytes_out = json_array();
        for (size_t i = 0; i < len; i++) json_array_append_new(*bytes_out, json_integer(bytes[i]));
    }
    return json_text(bytes ? (const char *)bytes : "", len);
}

/* The logprobs of one token: chat form (an entry of content[]) or completions form (appended to
 * the arrays of `lp`). Returns the chat entry (new reference) or NULL. */
static json_t *logprob_entry(gen *g, choice *c, const bn_sample_result *r, size_t offset) {
    const bn_tokenizer *tok = g->srv->tok;
    if (g->chat) {
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
    if (!c->logprobs)
        c->logprobs = json_pack("{s:[],s:[],s:[],s:[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
    json_t *lp = c->logprobs;
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

static const char *finish_name(gen *g, const choice *c, bool tool_call) {
    if (tool_call) return "tool_calls";
    (void)g;
    return bn_finish_reason_openai((bn_finish_reason)c->finish);
}

/* Tool call parsed from a choice's text; NULL when it is not one. New reference. */
static json_t *parse_tool_call(gen *g, const choice *c, int index) {
    bool natural_end = c->finish == BN_FINISH_EOG || c->finish == BN_FINISH_STOP || c->finish == BN_FINISH_GRAMMAR;
    if (g->tools == TOOLS_OFF || !natural_end || !c->text) return NULL;
    json_t *v = json_loadb(c->text, c->len, 0, NULL);
    if (!json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    const char *name = NULL;
    json_t *args = NULL;
    if (g->tools == TOOLS_FORCED && g->named_tool >= 0) {
        name = g->req.tools[g->named_tool].name;
        args = json_incref(v);
    } else {
        const char *n = json_string_value(json_object_get(v, "name"));
        for (size_t i = 0; n && i < g->req.n_tools; i++)
            if (!strcmp(g->req.tools[i].name, n)) name = g->req.tools[i].name;
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
    snprintf(id, sizeof id, "call_%s_%d", g->id + 9, index);
    json_t *call = json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", id, "type", "function", "function", "name", name,
                             "arguments", arg_text ? arg_text : "{}");
    free(arg_text);
    return call;
}

/* usage, with prompt_tokens_details.cached_tokens: per prompt, what its first choice's job took
 * from the prompt cache. */
static json_t *usage_json(gen *g) {
    int cached = 0;
    int per_prompt = g->req.n > 0 ? g->req.n : 1;
    for (int k = 0; k < g->n_choices; k += per_prompt) cached += g->choices[k].n_cached;
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", g->prompt_tokens, "completion_tokens",
                     g->completion_tokens, "total_tokens", g->prompt_tokens + g->completion_tokens,
                     "prompt_tokens_details", "cached_tokens", cached);
}

static void stream_content(gen *g, int index, const char *text, size_t len, json_t *lp_entry) {
    json_t *chunk = chunk_base(g);
    json_t *ch;
    if (g->chat) {
        json_t *lp = lp_entry ? json_pack("{s:[o]}", "content", lp_entry) : json_null();
        ch = json_pack("{s:i,s:{s:o},s:o,s:n}", "index", index, "delta", "content", json_text(text, len),
                       "logprobs", lp, "finish_reason");
    } else {
        ch = json_pack("{s:o,s:i,s:n,s:n}", "text", json_text(text, len), "index", index, "logprobs",
                       "finish_reason");
    }
    json_array_append_new(json_object_get(chunk, "choices"), ch);
    sse_event(g, chunk);
}

static void on_token(gen *g, const bn_engine_event *ev) {
    choice *c = &g->choices[ev->index];
    size_t offset = c->len;
    choice_append(c, ev->text, ev->text_len);
    json_t *lp_entry = NULL;
    if (ev->sample && ev->token_in_output) {
        lp_entry = logprob_entry(g, c, ev->sample, offset);
        if (lp_entry && !g->stream) {
            if (!c->logprobs) c->logprobs = json_array();
            json_array_append(c->logprobs, lp_entry);
        }
    }
    if (!g->stream) {
        json_decref(lp_entry);
        return;
    }
    if (g->tools == TOOLS_FORCED) {
        json_decref(lp_entry);
        return;
    }
    if (g->tools == TOOLS_AUTO && !c->streamed_any) {
        size_t i = 0;
        while (i < c->len && (c->text[i] == ' ' || c->text[i] == '\n')) i++;
        if (i == c->len) { /* only whitespace so far: undecided */
            json_decref(lp_entry);
            return;
        }
        if (c->text[i] == '{') {
            c->holding = true;
            json_decref(lp_entry);
            return;
        }
        /* not a tool call: release everything held */
        c->streamed_any = true;
        stream_content(g, ev->index, c->text, c->len, lp_entry);
        return;
    }
    if (c->holding) {
        json_decref(lp_entry);
        return;
    }
    if (ev->text_len == 0 && !lp_entry) return;
    if (g->chat) c->streamed_any = true;
    if (!g->chat && c->logprobs && lp_entry == NULL && ev->sample && ev->token_in_output) {
        /* completions stream: this token's logprobs as a one-element object */
        json_t *lp = c->logprobs;
        size_t last = json_array_size(json_object_get(lp, "tokens")) - 1;
        json_t *one = json_pack("{s:[O],s:[O],s:[O],s:[O]}", "tokens",
                                json_array_get(json_object_get(lp, "tokens"), last), "token_logprobs",
                                json_array_get(json_object_get(lp, "token_logprobs"), last), "top_logprobs",
                                json_array_get(json_object_get(lp, "top_logprobs"), last), "text_offset",
                                json_array_get(json_object_get(lp, "text_offset"), last));
        json_t *chunk = chunk_base(g);
        json_array_append_new(json_object_get(chunk, "choices"),
                              json_pack("{s:o,s:i,s:o,s:n}", "text", json_text(ev->text, ev->text_len), "index",
                                        ev->index, "logprobs", one, "finish_reason"));
        sse_event(g, chunk);
        return;
    }
    stream_content(g, ev->index, ev->text, ev->text_len, lp_entry);
}

static void stream_finish_choice(gen *g, int index) {
    choice *c = &g->choices[index];
    json_t *call = g->chat && !c->streamed_any ? parse_tool_call(g, c, index) : NULL;
    if (g->chat && !call && !c->streamed_any && c->len > 0) stream_content(g, index, c->text, c->len, NULL);
    json_t *chunk = chunk_base(g);
    if (call) {
        json_t *delta_call = json_pack("{s:i,s:O,s:s,s:O}", "index", 0, "id", json_object_get(call, "id"), "type",
                                       "function", "function", json_object_get(call, "function"));
        json_t *c1 = chunk_base(g);
        json_array_append_new(json_object_get(c1, "choices"),
                              json_pack("{s:i,s:{s:[o]},s:n,s:n}", "index", index, "delta", "tool_calls",
                                        delta_call, "logprobs", "finish_reason"));
        sse_event(g, c1);
    }
    if (g->chat)
        json_array_append_new(json_object_get(chunk, "choices"),
                              json_pack("{s:i,s:{},s:n,s:s}", "index", index, "delta", "logprobs",
                                        "finish_reason", finish_name(g, c, call != NULL)));
    else
        json_array_append_new(json_object_get(chunk, "choices"),
                              json_pack("{s:s,s:i,s:n,s:s}", "text", "", "index", index, "logprobs",
                                        "finish_reason", finish_name(g, c, false)));
    json_decref(call);
    sse_event(g, chunk);
}

static void build_final(gen *g) {
    json_t *choices = json_array();
    for (int i = 0; i < g->n_choices; i++) {
        choice *c = &g->choices[i];
        if (g->chat) {
            json_t *call = parse_tool_call(g, c, i);
            json_t *msg = json_pack("{s:s,s:o,s:n}", "role", "assistant", "content",
                                    call ? json_null() : json_text(c->text ? c->text : "", c->len), "refusal");
            if (call) json_object_set_new(msg, "tool_calls", json_pack("[o]", call));
            json_t *lp = c->logprobs ? json_pack("{s:O}", "content", c->logprobs) : json_null();
            json_array_append_new(choices, json_pack("{s:i,s:o,s:o,s:s}", "index", i, "message", msg, "logprobs", lp,
                                                     "finish_reason", finish_name(g, c, call != NULL)));
        } else {
            json_array_append_new(choices, json_pack("{s:o,s:i,s:O,s:s}", "text", json_text(c->text ? c->text : "", c->len),
                                                     "index", i, "logprobs", c->logprobs ? c->logprobs : json_null(),
                                                     "finish_reason", finish_name(g, c, false)));
        }
    }
    json_t *body = json_pack("{s:s,s:s,s:I,s:s,s:o,s:o}", "id", g->id, "object",
                             g->chat ? "chat.completion" : "text_completion", "created", (json_int_t)g->created,
                             "model", g->srv->model_id, "choices", choices, "usage", usage_json(g));
    if (g->chat) {
        char fp[64];
        snprintf(fp, sizeof fp, "bitnet-c-%s", bn_version());
        json_object_set_new(body, "system_fingerprint", json_string(fp));
    }
    char *text = dump(body);
    if (text) out_append(g, text, strlen(text));
    free(text);
}

static void on_event(void *user, const bn_engine_event *ev) {
    gen *g = user;
    pthread_mutex_lock(&g->mu);
    if (ev->kind == BN_ENGINE_TOKEN) {
        on_token(g, ev);
        pthread_cond_broadcast(&g->cv);
        pthread_mutex_unlock(&g->mu);
        return;
    }
    choice *c = &g->choices[ev->index];
    c->finish = (int)ev->finish;
    c->n_generated = ev->n_generated;
    c->n_cached = ev->n_cached;
    g->completion_tokens += ev->n_generated;
    if (ev->finish == BN_FINISH_ERROR && !g->error[0])
        snprintf(g->error, sizeof g->error, "generation failed: %s", ev->message ? ev->message : "unknown error");
    if (g->stream && ev->finish != BN_FINISH_CANCELLED) stream_finish_choice(g, ev->index);
    if (--g->jobs_left == 0) {
        if (g->stream) {
            if (g->error[0]) {
                bn_api_error e;
                bn_api_error_set(&e, 500, "server_error", NULL, NULL, "%s", g->error);
                sse_event(g, error_json(&e));
            }
            if (g->include_usage) {
                json_t *chunk = chunk_base(g);
                json_object_set_new(chunk, "usage", usage_json(g));
                sse_event(g, chunk);
            }
            out_append(g, "data: [DONE]\n\n", 14);
        } else if (!g->error[0]) {
            build_final(g);
        }
        if (g->reserved_tokens > g->prompt_tokens + g->completion_tokens)
            bn_auth_refund_tokens(&g->srv->auth, g->key, g->reserved_tokens - g->prompt_tokens - g->completion_tokens,
                                  bn_engine_now_ms() / 1e3);
        g->complete = true;
    }
    pthread_cond_broadcast(&g->cv);
    gen_unref_locked_out(g);
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    struct { gen *g; struct MHD_Connection *conn; } *rd = cls;
    gen *g = rd->g;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        if (g->out_sent < g->out_len) {
            size_t n = g->out_len - g->out_sent;
            if (n > max) n = max;
            memcpy(buf, g->out + g->out_sent, n);
            g->out_sent += n;
            pthread_mutex_unlock(&g->mu);
            return (ssize_t)n;
        }
        if (g->complete) {
            pthread_mutex_unlock(&g->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        if (g->out_sent == g->out_len && !g->complete && peer_closed(rd->conn)) {
            atomic_store(&g->cancel, true);
            pthread_mutex_unlock(&g->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void sse_free(void *cls) {
    struct { gen *g; struct MHD_Connection *conn; } *rd = cls;
    atomic_store(&rd->g->cancel, true);
    gen_unref(rd->g);
    free(rd);
}

/* ---------------------------------------------------------------- request handling */

static void prompt_error(bn_api_error *e, int n_prompt, int n_ctx) {
    bn_api_error_set(e, 400, "invalid_request_error", "messages", "context_length_exceeded",
                     "This model's maximum context length is %d tokens, however your prompt has %d tokens.",
                     n_ctx, n_prompt);
}

/* Tokenizes one completions prompt into *ids (caller frees) and its echo text. */
static bn_status tokenize_prompt(bn_server *s, const bn_api_prompt *p, bn_tokens *ids, char **echo,
                                 size_t *echo_len, bn_error *err) {
    if (p->is_tokens) {
        for (size_t i = 0; i < p->n_ids; i++)
            if (bn_tokens_push(ids, p->ids[i], err)) return err->code;
        bn_detokenizer d;
        bn_detokenizer_init(&d, s->tok, BN_DETOK_REPLACE_INVALID);
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
    bn_status st = bn_tokenizer_encode(s->tok, p->text, p->text_len, bn_tokenizer_add_bos(s->tok), false, ids, err);
    if (st) return st;
    *echo = strdup(p->text);
    *echo_len = p->text_len;
    return *echo ? BN_OK : bn_error_set(err, BN_ERR_NOMEM, "out of memory");
}

/* Renders and tokenizes the chat prompt (tools text added to the system message). */
static bn_status chat_prompt(bn_server *s, const bn_api_request *r, bool with_tools, bn_tokens *ids,
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
    bn_chat_text text = {0};
    if (!st) st = bn_chat_render(&text, s->format, msgs, m, true, err);
    if (!st) st = bn_chat_tokenize(ids, s->tok, s->format, &text, 0, true, err);
    bn_chat_text_free(&text);
    free(msgs);
    free(tools_text);
    free(merged);
    return st;
}

static const char *auth_header(struct MHD_Connection *conn) {
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
}

static enum MHD_Result handle_generation(conn_ctx *c, struct MHD_Connection *conn, bool chat, int key) {
    bn_server *s = c->srv;
    bn_api_error e = {0};
    /* token ids must fit both the tokenizer and the model's logits */
    int32_t tok_vocab = (int32_t)bn_tokenizer_n_vocab(s->tok), model_vocab = bn_model_get_config(s->model)->n_vocab;
    bn_api_limits lim = {tok_vocab < model_vocab ? tok_vocab : model_vocab};
    gen *g = calloc(1, sizeof *g);
    if (!g) return MHD_NO;
    bn_status pst = chat ? bn_server_parse_chat_request(&g->req, &e, c->body ? c->body : "", c->len, &lim)
                         : bn_server_parse_completion_request(&g->req, &e, c->body ? c->body : "", c->len, &lim);
    if (pst) {
        free(g);
        return send_error(c, conn, &e, 0);
    }
    bn_api_request *r = &g->req;
    g->srv = s;
    g->chat = chat;
    g->key = key;
    g->stream = r->stream;
    g->include_usage = r->stream && r->include_usage;
    g->named_tool = -1;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    atomic_fetch_add(&s->inflight, 1);
    g->refs = 1;
    int n_ctx = bn_engine_ctx(s->engine);
    enum MHD_Result ret;
    bn_error err;
    bn_error_clear(&err);
    size_t n_prompts = chat ? 1 : r->n_prompts;
    bn_tokens *ids = calloc(n_prompts, sizeof *ids);
    char **echo = calloc(n_prompts, sizeof *echo);
    size_t *echo_len = calloc(n_prompts, sizeof *echo_len);
    bn_engine_job_config *jobs = NULL;
    if (!ids || !echo || !echo_len) goto oom;
    if (strcmp(r->model, s->model_id) != 0) {
        bn_api_error_set(&e, 404, "invalid_request_error", "model", "model_not_found",
                         "The model '%.100s' does not exist; this server serves '%s'", r->model, s->model_id);
        ret = send_error(c, conn, &e, 0);
        goto done;
    }
    if (chat) {
        g->tools = r->tool_choice == BN_TOOL_CHOICE_NONE ? TOOLS_OFF
                 : r->tool_choice == BN_TOOL_CHOICE_AUTO ? TOOLS_AUTO : TOOLS_FORCED;
        if (chat_prompt(s, r, g->tools != TOOLS_OFF, &ids[0], &err)) goto internal;
        bn_status gst = BN_OK;
        const char *param = "response_format";
        if (r->tool_choice == BN_TOOL_CHOICE_NAMED) {
            g->named_tool = r->named_tool;
            param = "tools";
            gst = bn_json_grammar_from_schema(&g->grammar, r->tools[r->named_tool].parameters, &err);
        } else if (r->tool_choice == BN_TOOL_CHOICE_REQUIRED) {
            const char **names = calloc(r->n_tools, sizeof *names), **schemas = calloc(r->n_tools, sizeof *schemas);
            if (!names || !schemas) gst = bn_error_set(&err, BN_ERR_NOMEM, "out of memory");
            for (size_t i = 0; !gst && i < r->n_tools; i++) names[i] = r->tools[i].name, schemas[i] = r->tools[i].parameters;
            param = "tools";
            if (!gst) gst = bn_json_grammar_tool_call(&g->grammar, names, schemas, r->n_tools, &err);
            free(names);
            free(schemas);
        } else if (r->response_format == BN_RESPONSE_JSON_OBJECT) {
            gst = bn_json_grammar_from_schema(&g->grammar, NULL, &err);
        } else if (r->response_format == BN_RESPONSE_JSON_SCHEMA) {
            param = r->schema_param;
            gst = bn_json_grammar_from_schema(&g->grammar, r->schema, &err);
        }
        if (gst == BN_ERR_NOMEM) goto oom;
        if (gst) {
            bn_api_error_set(&e, 400, "invalid_request_error", param, NULL, "'%s': %s", param, err.message);
            ret = send_error(c, conn, &e, 0);
            goto done;
        }
    } else {
        for (size_t p = 0; p < n_prompts; p++)
            if (tokenize_prompt(s, &r->prompts[p], &ids[p], &echo[p], &echo_len[p], &err)) goto internal;
        if (r->response_format == BN_RESPONSE_JSON_SCHEMA) { /* json_schema / guided_json */
            bn_status gst = bn_json_grammar_from_schema(&g->grammar, r->schema, &err);
            if (gst == BN_ERR_NOMEM) goto oom;
            if (gst) {
                const char *param = r->schema_param;
                bn_api_error_set(&e, 400, "invalid_request_error", param, NULL, "'%s': %s", param, err.message);
                ret = send_error(c, conn, &e, 0);
                goto done;
            }
        }
    }
    int max_prompt = 0;
    for (size_t p = 0; p < n_prompts; p++) {
        if (ids[p].n == 0) {
            bn_api_error_set(&e, 400, "invalid_request_error", "prompt", NULL,
                             "'prompt': the prompt is empty and the model has no BOS token");
            ret = send_error(c, conn, &e, 0);
            goto done;
        }
        if (ids[p].n > (size_t)n_ctx) {
            prompt_error(&e, (int)ids[p].n, n_ctx);
            snprintf(e.param, sizeof e.param, "%s", chat ? "messages" : "prompt");
            ret = send_error(c, conn, &e, 0);
            goto done;
        }
        if ((int)ids[p].n > max_prompt) max_prompt = (int)ids[p].n;
        g->prompt_tokens += (int)ids[p].n;
    }
    int room = n_ctx - max_prompt + 1;
    int max_tokens = r->max_tokens < 0 || r->max_tokens > room ? room : r->max_tokens;
    /* tokens per minute: the prompts plus the most that can be generated */
    g->n_choices = (int)n_prompts * r->n;
    g->reserved_tokens = (double)g->prompt_tokens + (double)max_tokens * g->n_choices;
    int retry = 0;
    if (!bn_auth_take_tokens(&s->auth, key, g->reserved_tokens, bn_engine_now_ms() / 1e3, &retry)) {
        g->reserved_tokens = 0;
        bn_metrics_reject(&s->metrics, BN_REJECT_RATE_LIMIT);
        bn_api_error_set(&e, 429, "rate_limit_error", NULL, "rate_limit_exceeded",
                         "Rate limit reached for tokens per minute (limit %.0f); retry in %d s", s->cfg.rate_limit_tpm, retry);
        ret = send_error(c, conn, &e, retry);
        goto done;
    }
    g->choices = calloc((size_t)g->n_choices, sizeof *g->choices);
    jobs = calloc((size_t)g->n_choices, sizeof *jobs);
    if (!g->choices || !jobs) goto oom;
    unsigned long long idn = atomic_fetch_add(&s->next_id, 1);
    snprintf(g->id, sizeof g->id, "%s%llx%04llx", chat ? "chatcmpl-" : "cmpl-", (unsigned long long)time(NULL), idn);
    g->created = (long)time(NULL);
    const char *const *fmt_stops = chat ? s->format->stop_strings : NULL;
    size_t n_fmt_stops = 0;
    while (fmt_stops && fmt_stops[n_fmt_stops]) n_fmt_stops++;
    const char *stops[BN_API_MAX_STOPS + 8];
    size_t n_stops = 0;
    for (size_t i = 0; i < r->n_stops; i++) stops[n_stops++] = r->stops[i];
    for (size_t i = 0; i < n_fmt_stops && n_stops < sizeof stops / sizeof stops[0]; i++) stops[n_stops++] = fmt_stops[i];
    double now = bn_engine_now_ms();
    for (int k = 0; k < g->n_choices; k++) {
        size_t p = (size_t)k / (size_t)r->n;
        choice *ch = &g->choices[k];
        ch->finish = -1;
        if (!chat && r->echo) choice_append(ch, echo[p], echo_len[p]); /* offsets then count the echo */
        jobs[k] = (bn_engine_job_config){
            .prompt = ids[p].ids, .n_prompt = ids[p].n,
            .gen = {.sampling = bn_api_sampler_params(r, (uint64_t)k, n_ctx), .max_tokens = max_tokens,
                    .stops = stops, .n_stops = n_stops, .ignore_eog = r->ignore_eos, .grammar = g->grammar,
                    .want_logprobs = r->logprobs >= 0, .detok_flags = BN_DETOK_REPLACE_INVALID},
            .index = k, .cancel = &g->cancel, .on_event = on_event, .user = g, .submit_ms = now};
    }
    if (g->stream && chat) {
        for (int k = 0; k < g->n_choices; k++) {
            json_t *chunk = chunk_base(g);
            json_array_append_new(json_object_get(chunk, "choices"),
                                  json_pack("{s:i,s:{s:s,s:s},s:n,s:n}", "index", k, "delta", "role", "assistant",
                                            "content", "", "logprobs", "finish_reason"));
            sse_event(g, chunk);
        }
    }
    if (g->stream && !chat && r->echo) {
        for (int k = 0; k < g->n_choices; k++) {
            size_t p = (size_t)k / (size_t)r->n;
            json_t *chunk = chunk_base(g);
            json_array_append_new(json_object_get(chunk, "choices"),
                                  json_pack("{s:o,s:i,s:n,s:n}", "text", json_text(echo[p], echo_len[p]), "index", k,
                                            "logprobs", "finish_reason"));
            sse_event(g, chunk);
        }
    }
    g->jobs_left = g->n_choices;
    pthread_mutex_lock(&g->mu);
    g->refs += g->n_choices;
    pthread_mutex_unlock(&g->mu);
    if (bn_engine_submit(s->engine, jobs, (size_t)g->n_choices, &err) != BN_OK) {
        pthread_mutex_lock(&g->mu);
        g->refs -= g->n_choices;
        pthread_mutex_unlock(&g->mu);
        bn_auth_refund_tokens(&s->auth, key, g->reserved_tokens, bn_engine_now_ms() / 1e3);
        if (err.code == BN_ERR_RANGE || err.code == BN_ERR_STATE) {
            bn_metrics_reject(&s->metrics, BN_REJECT_OVERLOAD);
            bn_api_error_set(&e, 503, "server_error", NULL, "server_overloaded",
                             "The server is overloaded: %s; retry later", err.message);
            ret = send_error(c, conn, &e, 1);
            goto done;
        }
        bn_api_error_set(&e, 400, "invalid_request_error", NULL, NULL, "%s", err.message);
        ret = send_error(c, conn, &e, 0);
        goto done;
    }
    c->n_prompt = g->prompt_tokens;
    if (g->stream) {
        struct rd { gen *g; struct MHD_Connection *conn; } *rd = malloc(sizeof *rd);
        if (!rd) goto cancel_oom;
        rd->g = g, rd->conn = conn;
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_reader, rd, sse_free);
        if (!resp) {
            free(rd);
            goto cancel_oom;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        c->status = 200;
        c->answered = true;
        bn_metrics_request(&s->metrics, c->endpoint, 200);
        g = NULL; /* the response owns the connection's reference */
        goto done;
    }
    /* non-streaming: wait here, watching the socket */
    pthread_mutex_lock(&g->mu);
    while (!g->complete) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        if (!g->complete && !atomic_load(&g->cancel) && peer_closed(conn)) atomic_store(&g->cancel, true);
    }
    bool cancelled = atomic_load(&g->cancel);
    char *body = g->out ? strdup(g->out) : NULL;
    char error[256];
    snprintf(error, sizeof error, "%s", g->error);
    c->n_generated = g->completion_tokens;
    pthread_mutex_unlock(&g->mu);
    if (cancelled) {
        free(body);
        c->status = 499;
        bn_metrics_request(&s->metrics, c->endpoint, 499);
        ret = MHD_NO;
        goto done;
    }
    if (error[0] || !body) {
        free(body);
        bn_api_error_set(&e, 500, "server_error", NULL, NULL, "%s", error[0] ? error : "out of memory");
        ret = send_error(c, conn, &e, 0);
        goto done;
    }
    ret = send_text(c, conn, 200, body, "application/json");
    goto done;
cancel_oom:
    atomic_store(&g->cancel, true);
oom:
    bn_api_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
    ret = send_error(c, conn, &e, 0);
    goto done;
internal:
    bn_api_error_set(&e, err.code == BN_ERR_NOMEM ? 500 : 400, err.code == BN_ERR_NOMEM ? "server_error" : "invalid_request_error",
                     NULL, NULL, "%s", err.message);
    ret = send_error(c, conn, &e, 0);
done:
    for (size_t p = 0; ids && p < n_prompts; p++) bn_tokens_free(&ids[p]);
    for (size_t p = 0; echo && p < n_prompts; p++) free(echo[p]);
    free(ids);
    free(echo);
    free(echo_len);
    free(jobs);
    if (g) gen_unref(g);
    return ret;
}

static json_t *model_json(bn_server *s) {
    return json_pack("{s:s,s:s,s:I,s:s}", "id", s->model_id, "object", "model", "created", (json_int_t)s->created,
                     "owned_by", "bitnet-c");
}

static enum MHD_Result handle(conn_ctx *c, struct MHD_Connection *conn, const char *url, const char *method) {
    bn_server *s = c->srv;
    bn_api_error e = {0};
    int route = -1;
    for (int i = 0; i < (int)(sizeof routes / sizeof routes[0]); i++)
        if (!strcmp(url, routes[i])) route = i;
    bool model_route = !strncmp(url, "/v1/models/", 11) && url[11];
    if (model_route) route = 2;
    c->endpoint = route >= 0 ? (model_route ? "/v1/models/{model}" : routes[route]) : "other";
    if (route < 0) {
        bn_api_error_set(&e, 404, "invalid_request_error", NULL, "unknown_url", "Unknown request URL: %.8s %.200s",
                         method, url);
        return send_error(c, conn, &e, 0);
    }
    bool is_get = !strcmp(method, "GET");
    bool want_post = route >= 3;
    if (want_post ? strcmp(method, "POST") != 0 : !is_get) {
        bn_api_error_set(&e, 405, "invalid_request_error", NULL, "method_not_allowed",
                         "Method %.16s is not allowed for %.200s (allowed: %s)", method, url,
                         want_post ? "POST" : "GET");
        return send_json(c, conn, 405, error_json(&e), 0, want_post ? "POST" : "GET");
    }
    int state = atomic_load(&s->state);
    if (route == 0) {
        bool ready = state == STATE_READY;
        return send_json(c, conn, ready ? 200 : 503, json_pack("{s:s}", "status", ready ? "ok" : state == STATE_LOADING ? "loading" : "stopping"),
                         ready ? 0 : 1, NULL);
    }
    if (route == 1) {
        bn_engine_stats st = {0};
        if (state == STATE_READY) bn_engine_get_stats(s->engine, &st);
        char *text = bn_metrics_render(&s->metrics, state == STATE_READY ? &st : NULL);
        if (!text) return MHD_NO;
        return send_text(c, conn, 200, text, "text/plain; version=0.0.4; charset=utf-8");
    }
    int key = bn_auth_check(&s->auth, auth_header(conn));
    if (key < 0) {
        bn_metrics_reject(&s->metrics, BN_REJECT_AUTH);
        bn_api_error_set(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
                         auth_header(conn) ? "Incorrect API key provided" :
                         "You didn't provide an API key: send it as 'Authorization: Bearer KEY'");
        return send_error(c, conn, &e, 0);
    }
    if (c->too_large) {
        bn_metrics_reject(&s->metrics, BN_REJECT_TOO_LARGE);
        bn_api_error_set(&e, 413, "invalid_request_error", NULL, "request_too_large",
                         "The request body is larger than the limit of %zu bytes", s->cfg.max_body);
        return send_error(c, conn, &e, 0);
    }
    if (state != STATE_READY) {
        bn_api_error_set(&e, 503, "server_error", NULL, "model_loading",
                         state == STATE_LOADING ? "The model is loading; retry shortly" : "The server is shutting down");
        return send_error(c, conn, &e, 1);
    }
    int retry = 0;
    if (!bn_auth_take_request(&s->auth, key, bn_engine_now_ms() / 1e3, &retry)) {
        bn_metrics_reject(&s->metrics, BN_REJECT_RATE_LIMIT);
        bn_api_error_set(&e, 429, "rate_limit_error", NULL, "rate_limit_exceeded",
                         "Rate limit reached for requests per minute (limit %.0f); retry in %d s", s->cfg.rate_limit_rpm, retry);
        return send_error(c, conn, &e, retry);
    }
    if (route == 2) {
        if (model_route) {
            if (strcmp(url + 11, s->model_id) != 0) {
                bn_api_error_set(&e, 404, "invalid_request_error", "model", "model_not_found",
                                 "The model '%.100s' does not exist", url + 11);
                return send_error(c, conn, &e, 0);
            }
            return send_json(c, conn, 200, model_json(s), 0, NULL);
        }
        return send_json(c, conn, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", model_json(s)), 0, NULL);
    }
    return handle_generation(c, conn, route == 4, key);
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_size,
                                 void **con_cls) {
    (void)version;
    bn_server *s = cls;
    conn_ctx *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        c->srv = s;
        c->endpoint = "other";
        c->start_ms = bn_engine_now_ms();
        *con_cls = c;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        unsigned long long length = cl ? strtoull(cl, NULL, 10) : 0;
        if (length > s->cfg.max_body) c->too_large = true;
        /* A body somewhat over the limit is read and dropped, so the client (still writing) gets
         * the 413 reliably; a huge one is answered at once and the connection closed unread. */
        if (length / 8 > s->cfg.max_body) return handle(c, conn, url, method);
        return MHD_YES;
    }
    if (*upload_size) {
        if (!c->too_large) {
            if (c->len + *upload_size > s->cfg.max_body) {
                c->too_large = true;
                free(c->body);
                c->body = NULL;
                c->len = c->cap = 0;
            } else {
                if (!bn_text_append(&c->body, &c->len, &c->cap, upload_data, *upload_size))
                    return MHD_NO;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (c->answered) return MHD_YES;
    return handle(c, conn, url, method);
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)conn;
    bn_server *s = cls;
    conn_ctx *c = *con_cls;
    if (!c) return;
    const char *how = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)";
    bn_server_log(s, "info", "%s %d %.1fms prompt_tokens=%d completion_tokens=%d%s", c->endpoint, c->status,
                  bn_engine_now_ms() - c->start_ms, c->n_prompt, c->n_generated, how);
    free(c->body);
    free(c);
    *con_cls = NULL;
}

/* SSE events are small writes: without TCP_NODELAY, Nagle's algorithm holds each one until the
 * client's delayed ACK (tens of milliseconds of added inter-token latency). */
static void connection_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    (void)cls;
    (void)socket_context;
    if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    int one = 1;
    if (info) setsockopt(info->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---------------------------------------------------------------- lifecycle */

bn_status bn_server_start(bn_server **out, const bn_server_config *config, bn_error *err) {
    *out = NULL;
    bn_server *s = calloc(1, sizeof *s);
    if (!s) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    s->cfg = *config;
    pthread_mutex_init(&s->log_mu, NULL);
    bn_metrics_init(&s->metrics);
    if (!s->cfg.host) s->cfg.host = "127.0.0.1";
    if (s->cfg.parallel <= 0) s->cfg.parallel = 4;
    if (s->cfg.queue < 0) s->cfg.queue = 64;
    if (s->cfg.max_body == 0) s->cfg.max_body = 1 << 20;
    if (s->cfg.n_threads <= 0) s->cfg.n_threads = 1;
    s->model_path = config->model_path ? strdup(config->model_path) : NULL;
    s->host = strdup(s->cfg.host);
    s->chat_format_name = config->chat_format ? strdup(config->chat_format) : NULL;
    s->cfg.model_path = s->model_path;
    s->cfg.host = s->host;
    s->cfg.chat_format = s->chat_format_name;
    s->cfg.api_keys = NULL;
    bn_status st = BN_OK;
    if (!s->model_path || !s->host || !bn_auth_init(&s->auth, config->api_keys, config->n_api_keys,
                                                    config->rate_limit_rpm, config->rate_limit_tpm))
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    if (!st) {
        const char *base = strrchr(s->model_path, '/');
        base = base ? base + 1 : s->model_path;
        if (config->model_alias) snprintf(s->model_id, sizeof s->model_id, "%s", config->model_alias);
        else snprintf(s->model_id, sizeof s->model_id, "%s", base);
        size_t n = strlen(s->model_id);
        if (!config->model_alias && n > 5 && !strcmp(s->model_id + n - 5, ".gguf")) s->model_id[n - 5] = '\0';
        struct stat sb;
        s->created = stat(s->model_path, &sb) == 0 ? (long)sb.st_mtime : (long)time(NULL);
        struct sockaddr_in addr = {0};
        addr.sin_family = AF_INET;
        addr.sin_port = htons((uint16_t)s->cfg.port);
        if (inet_pton(AF_INET, s->cfg.host, &addr.sin_addr) != 1)
            st = bn_error_set(err, BN_ERR_INVALID, "--host %s: not an IPv4 address", s->cfg.host);
        if (!st) {
            /* without MHD_OPTION_LISTENING_ADDRESS_REUSE (SO_REUSEPORT): a second server on a port
             * in use fails here instead of sharing the traffic */
            s->daemon = MHD_start_daemon(
                MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC, (uint16_t)s->cfg.port,
                NULL, NULL, access_cb, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                MHD_OPTION_NOTIFY_COMPLETED, completed_cb, s, MHD_OPTION_NOTIFY_CONNECTION, connection_cb, s,
                MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
            if (!s->daemon)
                st = bn_error_set(err, BN_ERR_IO, "cannot listen on %s:%d (%s)", s->cfg.host, s->cfg.port, strerror(errno));
        }
        if (!st) {
            const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
            s->port = info ? info->port : s->cfg.port;
        }
    }
    if (st) {
        bn_server_free(s);
        return st;
    }
    *out = s;
    return BN_OK;
}

bn_status bn_server_load_model(bn_server *s, bn_error *err) {
    bn_model_options mo = bn_model_options_default();
    mo.n_threads = s->cfg.n_threads;
    mo.int8_lm_head = s->cfg.int8_lm_head;
    bn_status st = BN_OK;
    if (s->cfg.tune) {
        bn_tune_mode mode;
        st = bn_tune_mode_parse(&mode, s->cfg.tune, err);
        mo.tune = (int)mode;
    }
    if (!st) st = bn_model_load(s->model_path, &mo, &s->model, err);
    if (!st) st = bn_tokenizer_from_gguf(&s->tok, bn_model_get_gguf(s->model), NULL, err);
    if (!st) {
        if (s->cfg.chat_format) {
            s->format = bn_chat_format_find(s->cfg.chat_format, err);
            if (!s->format) st = err ? err->code : BN_ERR_INVALID;
        } else {
            char *tmpl = NULL;
            const bn_gguf_kv *kv = bn_gguf_find_kv(bn_model_get_gguf(s->model), "tokenizer.chat_template");
            if (kv && kv->value.type == BN_GGUF_STRING) tmpl = strndup(kv->value.as.str.data, kv->value.as.str.len);
            s->format = bn_chat_format_detect(tmpl, bn_model_get_config(s->model)->arch_name, NULL);
            free(tmpl);
        }
    }
    bn_engine_observer obs = bn_metrics_observer(&s->metrics);
    const bn_engine_options engine_options = {
        .n_slots = s->cfg.parallel, .n_ctx = s->cfg.n_ctx, .max_queue = s->cfg.queue,
        .prefill_chunk = s->cfg.prefill_chunk, .cache_ram_mb = s->cfg.cache_ram_mb,
        .no_prompt_cache = s->cfg.no_prompt_cache,
        .context_shift = s->cfg.context_shift, .keep = s->cfg.keep};
    if (!st) st = bn_engine_create(&s->engine, s->model, s->tok, &engine_options, &obs, err);
    if (st) return st;
    atomic_store(&s->state, STATE_READY);
    char variants[256];
    bn_model_tuning_summary(s->model, variants, sizeof variants);
    const bn_model_tuning *tuning = bn_model_get_tuning(s->model);
    bn_server_log(s, "info", "model %s loaded: %d slots of %d tokens, prompt cache %s (store %d MB), context shift %s, chat format %s, LM head %s, kernels %s (tuning %s, %s)",
                  s->model_id, s->cfg.parallel, bn_engine_ctx(s->engine), s->cfg.no_prompt_cache ? "off" : "on", s->cfg.cache_ram_mb,
                  s->cfg.context_shift ? "on" : "off", s->format->name,
                  s->cfg.int8_lm_head ? "int8" : "f16", variants, bn_tune_mode_name(tuning->mode), tuning->source);
    return BN_OK;
}

int bn_server_port(const bn_server *s) { return s->port; }
const char *bn_server_model_id(const bn_server *s) { return s->model_id; }

void bn_server_stop(bn_server *s, double timeout_s) {
    if (!s->daemon) return;
    atomic_store(&s->state, STATE_STOPPING);
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    double deadline = bn_engine_now_ms() + timeout_s * 1e3;
    while (atomic_load(&s->inflight) > 0 && bn_engine_now_ms() < deadline) usleep(20000);
    if (atomic_load(&s->inflight) > 0)
        bn_server_log(s, "warn", "%d requests still running after %.0f s: cancelling them", atomic_load(&s->inflight),
                      timeout_s);
    bn_engine_free(s->engine); /* cancels what is left; their responses end */
    s->engine = NULL;
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void bn_server_free(bn_server *s) {
    if (!s) return;
    if (s->daemon) bn_server_stop(s, 0);
    bn_engine_free(s->engine);
    bn_tokenizer_free(s->tok);
    bn_model_free(s->model);
    bn_auth_destroy(&s->auth);
    bn_metrics_destroy(&s->metrics);
    pthread_mutex_destroy(&s->log_mu);
    free(s->model_path);
    free(s->host);
    free(s->chat_format_name);
    free(s);
}
