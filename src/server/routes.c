/*
 * routes.c: the route table {method, path, handler} and the checks every request passes, in this
 * order: Host (when bound to loopback, only loopback names and --allowed-hosts: DNS rebinding),
 * Origin (same origin or --cors-origin: CSRF), route and method (OPTIONS answers preflights, HEAD
 * works like GET), media type (POST bodies are application/json), API key (failures rate-limited
 * per client), body size, server state, requests per minute. Then the handler: health, live,
 * ready, metrics, models, tokenize/detokenize/props/apply-template (utility_routes.c), the chat
 * page at / (webui.c; absent with --no-webui), embeddings (embeddings.c, an engine job), or a generation
 * (planning.h -> engine jobs -> completion.h): completions, chat, or responses (responses.h: the
 * Responses API translated into a chat request).
 */
#include "server/server_internal.h"

#include "server/planning.h"
#include "server/responses.h"
#include "server/routing_key.h"
#include "server/wire_json.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum MHD_Result (*route_fn)(bn_request_ctx *c, struct MHD_Connection *conn, const char *url);

typedef struct route {
    const char *method;   /* GET or POST (GET routes also answer HEAD) */
    const char *path;
    bool prefix;          /* path is a prefix followed by a non-empty parameter */
    const char *endpoint; /* name in metrics and logs */
    bool open;            /* no API key needed */
    route_fn fn;
} route;

/* ---------------------------------------------------------------- handlers */

static enum MHD_Result health(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    (void)url;
    int state = atomic_load(&c->srv->state);
    bool ready = state == BN_STATE_READY;
    const char *name = ready ? "ok" : state == BN_STATE_LOADING ? "loading" : state == BN_STATE_BROKEN ? "broken" : "stopping";
    return bn_respond_json(c, conn, ready ? 200 : 503, json_pack("{s:s}", "status", name), ready ? 0 : 1, NULL);
}

/* Liveness: the process answers HTTP (whatever its state). */
static enum MHD_Result live(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    (void)url;
    return bn_respond_json(c, conn, 200, json_pack("{s:s}", "status", "alive"), 0, NULL);
}

const char *bn_server_not_ready_reason(bn_server *s) {
    int state = atomic_load(&s->state);
    if (state == BN_STATE_LOADING) return "loading";
    if (state == BN_STATE_STOPPING) return "draining";
    if (state == BN_STATE_BROKEN) return "model_file_changed";
    bn_engine_stats st = {0};
    bn_engine_get_stats(s->engine, &st);
    return st.queued >= s->cfg.ready_queue_max ? "queue_full" : NULL;
}

/* Readiness, for a load balancer: model loaded, not draining, queue below --ready-queue-max. */
static enum MHD_Result ready(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    (void)url;
    bn_server *s = c->srv;
    const char *why = bn_server_not_ready_reason(s);
    bn_engine_stats st = {0};
    int state = atomic_load(&s->state);
    if (state == BN_STATE_READY || state == BN_STATE_BROKEN) bn_engine_get_stats(s->engine, &st);
    json_t *body = json_pack("{s:s,s:i,s:i,s:i,s:i}", "status", why ? "not_ready" : "ready", "queued", st.queued,
                             "ready_queue_max", s->cfg.ready_queue_max, "busy_slots", st.busy_slots, "slots",
                             st.n_slots);
    if (why && body) json_object_set_new(body, "reason", json_string(why));
    return bn_respond_json(c, conn, why ? 503 : 200, body, why ? 1 : 0, NULL);
}

static enum MHD_Result metrics(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    (void)url;
    bn_server *s = c->srv;
    bn_engine_stats st = {0};
    int state = atomic_load(&s->state);
    bool loaded = state == BN_STATE_READY || state == BN_STATE_BROKEN; /* stopping: the engine may be gone */
    if (loaded) bn_engine_get_stats(s->engine, &st);
    const bn_metrics_state ms = {.ready = bn_server_not_ready_reason(s) == NULL, .draining = state == BN_STATE_STOPPING,
                                 .inflight = atomic_load(&s->inflight), .ready_queue_max = s->cfg.ready_queue_max,
                                 .device = s->device_desc,
                                 .gpu = loaded && s->model ? bn_model_gpu_name(s->model) : NULL};
    char *text = bn_metrics_render(&s->metrics, loaded ? &st : NULL, &ms);
    if (!text) return MHD_NO;
    return bn_respond(c, conn, 200, text, "text/plain; version=0.0.4; charset=utf-8", 0, NULL, false);
}

static json_t *model_json(bn_server *s) {
    /* OpenAI's fields, then where the model runs ("cpu", "cuda:0"; empty while loading) */
    return json_pack("{s:s,s:s,s:I,s:s,s:s}", "id", s->model_id, "object", "model", "created", (json_int_t)s->created,
                     "owned_by", "bitnet-c", "device", s->device_desc);
}

static enum MHD_Result models(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    (void)url;
    return bn_respond_json(c, conn, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", model_json(c->srv)), 0, NULL);
}

static enum MHD_Result model_one(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    const char *id = url + strlen("/v1/models/");
    if (strcmp(id, c->srv->model_id) != 0) {
        bn_api_error e;
        bn_api_error_set(&e, 404, "invalid_request_error", "model", "model_not_found", "The model '%.100s' does not exist", id);
        return bn_respond_error(c, conn, &e, 0);
    }
    return bn_respond_json(c, conn, 200, model_json(c->srv), 0, NULL);
}

typedef enum generation_api { API_COMPLETIONS, API_CHAT, API_RESPONSES } generation_api;

/* A generation: parse, plan, reserve tokens, submit the jobs, then stream or wait. */
static enum MHD_Result generation(bn_request_ctx *c, struct MHD_Connection *conn, generation_api api) {
    bn_server *s = c->srv;
    bn_api_error e = {0};
    if (!bn_server_model_intact(s, &e)) return bn_respond_error(c, conn, &e, 0);
    /* token ids must fit both the tokenizer and the model's logits */
    int32_t tok_vocab = (int32_t)bn_tokenizer_n_vocab(s->tok), model_vocab = bn_model_get_config(s->model)->n_vocab;
    bn_api_limits lim = {tok_vocab < model_vocab ? tok_vocab : model_vocab};
    bn_api_request req;
    bn_responses *wire = NULL; /* API_RESPONSES: moves into the completion */
    const char *body = c->body ? c->body : "";
    if (api == API_RESPONSES ? bn_responses_parse_request(&req, &wire, &e, body, c->len, &lim)
        : api == API_CHAT    ? bn_server_parse_chat_request(&req, &e, body, c->len, &lim)
                             : bn_server_parse_completion_request(&req, &e, body, c->len, &lim))
        return bn_respond_error(c, conn, &e, 0);
    bn_routing_key(&req, c->slot_hint);
    int n_ctx = bn_engine_ctx(s->engine);
    bn_plan plan;
    const bn_plan_context pctx = {.tok = s->tok, .format = s->format, .model_id = s->model_id, .n_ctx = n_ctx};
    enum MHD_Result ret;
    bn_completion *comp = NULL;
    bn_engine_job_config *jobs = NULL;
    if (bn_plan_request(&plan, &pctx, &req, &e)) {
        if (wire) bn_responses_plan_error(&e);
        ret = bn_respond_error(c, conn, &e, 0);
        goto done;
    }
    int retry = 0;
    if (!bn_auth_take_tokens(&s->auth, c->key, plan.reserved_tokens, bn_engine_now_ms() / 1e3, &retry)) {
        bn_metrics_reject(&s->metrics, BN_REJECT_RATE_LIMIT);
        bn_api_error_set(&e, 429, "rate_limit_error", NULL, "rate_limit_exceeded",
                         "Rate limit reached for tokens per minute (limit %.0f); retry in %d s", s->cfg.rate_limit_tpm, retry);
        ret = bn_respond_error(c, conn, &e, retry);
        goto done;
    }
    char fingerprint[64];
    snprintf(fingerprint, sizeof fingerprint, "bitnet-c-%s", bn_version());
    const bn_completion_setup setup = {.tok = s->tok, .model_id = s->model_id, .fingerprint = fingerprint,
                                       .req = &req, .plan = &plan, .responses = wire};
    int n_choices = plan.n_choices;
    jobs = calloc((size_t)n_choices, sizeof *jobs);
    const bn_api_request *r = &req; /* jobs are built before req moves into the completion; the
                                       arrays they point to (logit_bias) move with it */
    double now = bn_engine_now_ms();
    for (int k = 0; jobs && k < n_choices; k++) jobs[k] = bn_plan_job(&plan, r, k, n_ctx);
    comp = jobs ? bn_completion_create(&setup) : NULL;
    if (comp) wire = NULL;
    if (!comp) {
        bn_auth_refund_tokens(&s->auth, c->key, plan.reserved_tokens, now / 1e3);
        bn_api_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
        ret = bn_respond_error(c, conn, &e, 0);
        goto done;
    }
    for (int k = 0; k < n_choices; k++) {
        jobs[k].cancel = bn_completion_cancel_flag(comp);
        jobs[k].on_event = bn_completion_on_event;
        jobs[k].user = comp;
        jobs[k].submit_ms = now;
    }
    bn_completion_expect_jobs(comp, n_choices);
    bn_error err;
    bn_error_clear(&err);
    if (bn_engine_submit(s->engine, jobs, (size_t)n_choices, &err) != BN_OK) {
        bn_completion_jobs_refused(comp, n_choices);
        bn_auth_refund_tokens(&s->auth, c->key, plan.reserved_tokens, bn_engine_now_ms() / 1e3);
        if (err.code == BN_ERR_RANGE || err.code == BN_ERR_STATE) {
            bn_metrics_reject(&s->metrics, BN_REJECT_OVERLOAD);
            bn_api_error_set(&e, 503, "server_error", NULL, "server_overloaded", "The server is overloaded: %s; retry later",
                             err.message);
            ret = bn_respond_error(c, conn, &e, 1);
        } else {
            bn_api_error_set(&e, 400, "invalid_request_error", NULL, NULL, "%s", err.message);
            ret = bn_respond_error(c, conn, &e, 0);
        }
        goto done;
    }
    c->completion = comp;
    comp = NULL;
    c->reserved_tokens = plan.reserved_tokens;
    c->inflight = true;
    atomic_fetch_add(&s->inflight, 1);
    if (bn_completion_streaming(c->completion)) {
        ret = bn_respond_stream(c, conn);
        goto done;
    }
    /* non-streaming: wait here, watching the socket */
    while (!bn_completion_wait(c->completion, 50))
        if (!bn_completion_cancelled(c->completion) && bn_peer_closed(conn)) bn_completion_cancel(c->completion);
    if (bn_completion_cancelled(c->completion)) {
        c->status = 499;
        bn_metrics_request(&s->metrics, c->endpoint, 499);
        ret = MHD_NO;
        goto done;
    }
    char *text = bn_completion_body(c->completion, &e);
    ret = text ? bn_respond(c, conn, 200, text, "application/json", 0, NULL, false)
               : bn_respond_error(c, conn, &e, e.status == 503 ? 1 : 0);
done:
    free(jobs);
    bn_completion_unref(comp);
    bn_plan_free(&plan);
    bn_api_request_free(&req);
    bn_responses_free(wire);
    return ret;
}

static enum MHD_Result completions(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    (void)url;
    return generation(c, conn, API_COMPLETIONS);
}

static enum MHD_Result chat_completions(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    (void)url;
    return generation(c, conn, API_CHAT);
}

static enum MHD_Result responses(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    (void)url;
    return generation(c, conn, API_RESPONSES);
}

static const route routes[] = {
    {"GET", "/", false, "/", true, bn_route_chat_page},
    {"GET", "/health", false, "/health", true, health},
    {"GET", "/live", false, "/live", true, live},
    {"GET", "/ready", false, "/ready", true, ready},
    {"GET", "/metrics", false, "/metrics", true, metrics},
    {"GET", "/v1/models", false, "/v1/models", false, models},
    {"GET", "/v1/models/", true, "/v1/models/{model}", false, model_one},
    {"POST", "/v1/completions", false, "/v1/completions", false, completions},
    {"POST", "/v1/chat/completions", false, "/v1/chat/completions", false, chat_completions},
    {"POST", "/v1/responses", false, "/v1/responses", false, responses},
    {"POST", "/v1/embeddings", false, "/v1/embeddings", false, bn_route_embeddings},
    {"POST", "/tokenize", false, "/tokenize", false, bn_route_tokenize},
    {"POST", "/detokenize", false, "/detokenize", false, bn_route_detokenize},
    {"GET", "/props", false, "/props", false, bn_route_props},
    {"POST", "/apply-template", false, "/apply-template", false, bn_route_apply_template},
};

/* ---------------------------------------------------------------- checks */

bool bn_is_trusted_proxy(const bn_server *s, const char *addr) {
    for (size_t i = 0; i < s->cfg.n_trusted_proxies; i++)
        if (!strcmp(s->trusted_proxies[i], addr)) return true;
    return false;
}

static bool list_has(char *const *list, size_t n, const char *v, size_t len) {
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == len && !strncasecmp(list[i], v, len)) return true;
    return false;
}

/* Host header (port removed) against the names this server answers to. */
static bool host_allowed(const bn_server *s, const char *host) {
    size_t nh = s->cfg.n_allowed_hosts;
    if (list_has(s->allowed_hosts, nh, "*", 1)) return true;
    if (!s->loopback && nh == 0) return true;
    if (!host) return true; /* HTTP/1.0 without Host (HTTP/1.1 without one is refused earlier) */
    const char *name = host;
    size_t len;
    if (host[0] == '[') { /* [v6]:port */
        name = host + 1;
        const char *end = strchr(name, ']');
        if (!end) return false;
        len = (size_t)(end - name);
    } else {
        const char *colon = strchr(host, ':');
        len = colon ? (size_t)(colon - host) : strlen(host);
    }
    if (len == 0 || len >= 256) return false;
    if (list_has(s->allowed_hosts, nh, name, len)) return true;
    char copy[256];
    memcpy(copy, name, len);
    copy[len] = '\0';
    if (!strcasecmp(copy, s->cfg.host)) return true;
    if (!s->loopback) return false;
    if (!strcasecmp(copy, "localhost") || (len > 10 && !strcasecmp(copy + len - 10, ".localhost"))) return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, copy, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, copy, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

/* Origin: a browser's cross-origin request is answered only for --cors-origin origins (then
 * with CORS headers); a same-origin one (Origin names the Host) needs nothing. */
static bool origin_allowed(bn_request_ctx *c, const char *origin, const char *host) {
    const bn_server *s = c->srv;
    size_t n = s->cfg.n_cors_origins;
    if (list_has(s->cors_origins, n, "*", 1)) {
        c->origin = "*";
        return true;
    }
    if (list_has(s->cors_origins, n, origin, strlen(origin))) {
        c->origin = origin;
        return true;
    }
    const char *authority = strstr(origin, "://");
    return authority && host && !strcasecmp(authority + 3, host);
}

static bool json_media_type(const char *type) {
    if (!type) return false;
    while (*type == ' ') type++;
    size_t n = strcspn(type, "; \t");
    return n == 16 && !strncasecmp(type, "application/json", 16);
}

static enum MHD_Result refuse(bn_request_ctx *c, struct MHD_Connection *conn, int status, bn_reject_reason why,
                              const char *code, const char *message) {
    bn_metrics_reject(&c->srv->metrics, why);
    bn_api_error e;
    bn_api_error_set(&e, status, "invalid_request_error", NULL, code, "%s", message);
    return bn_respond_error(c, conn, &e, 0);
}

enum MHD_Result bn_route_request(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    bn_server *s = c->srv;
    bn_api_error e = {0};
    const char *method = c->method;
    char message[512];
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    if (!host_allowed(s, host)) {
        snprintf(message, sizeof message,
                 "Host '%.200s' is not allowed: a server bound to a loopback address answers only loopback names "
                 "(add others with --allowed-hosts)", host);
        return refuse(c, conn, 403, BN_REJECT_HOST, "host_not_allowed", message);
    }
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (origin && !origin_allowed(c, origin, host)) {
        snprintf(message, sizeof message, "Origin '%.200s' is not allowed (add it with --cors-origin)", origin);
        return refuse(c, conn, 403, BN_REJECT_ORIGIN, "origin_not_allowed", message);
    }
    const route *rt = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0] && !rt; i++) {
        if (routes[i].fn == bn_route_chat_page && s->cfg.no_webui) continue;
        size_t n = strlen(routes[i].path);
        if (routes[i].prefix ? !strncmp(url, routes[i].path, n) && url[n] && !strchr(url + n, '/')
                             : !strcmp(url, routes[i].path))
            rt = &routes[i];
    }
    if (!rt) {
        bn_api_error_set(&e, 404, "invalid_request_error", NULL, "unknown_url", "Unknown request URL: %.8s %.200s",
                         method, url);
        return bn_respond_error(c, conn, &e, 0);
    }
    c->endpoint = rt->endpoint;
    bool post = !strcmp(rt->method, "POST");
    const char *allow = post ? "POST, OPTIONS" : "GET, HEAD, OPTIONS";
    if (!strcmp(method, "OPTIONS")) { /* CORS preflight, or a plain OPTIONS */
        static const char *const get_headers[] = {"Access-Control-Allow-Methods", "GET, HEAD, OPTIONS",
                                                  "Access-Control-Allow-Headers", "Authorization, Content-Type",
                                                  "Access-Control-Max-Age", "600", NULL};
        static const char *const post_headers[] = {"Access-Control-Allow-Methods", "POST, OPTIONS",
                                                   "Access-Control-Allow-Headers", "Authorization, Content-Type",
                                                   "Access-Control-Max-Age", "600", NULL};
        if (c->origin) c->extra_headers = post ? post_headers : get_headers;
        return bn_respond(c, conn, 204, strdup(""), "text/plain", 0, allow, false);
    }
    bool method_ok = post ? !strcmp(method, "POST") : !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (!method_ok) {
        bn_api_error_set(&e, 405, "invalid_request_error", NULL, "method_not_allowed",
                         "Method %.16s is not allowed for %.200s (allowed: %s)", method, url, allow);
        return bn_respond_json(c, conn, 405, bn_api_error_json(&e), 0, allow);
    }
    if (post && !json_media_type(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type")))
        return refuse(c, conn, 415, BN_REJECT_MEDIA_TYPE, "unsupported_media_type",
                      "The request body must be JSON, sent with 'Content-Type: application/json'");
    if (rt->open) return rt->fn(c, conn, url);
    double now_s = bn_engine_now_ms() / 1e3;
    int retry = 0;
    const char *authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (s->auth.n_keys && !bn_auth_fail_allowed(&s->auth, c->client, now_s, &retry)) {
        bn_metrics_reject(&s->metrics, BN_REJECT_AUTH_LIMIT);
        bn_api_error_set(&e, 429, "rate_limit_error", NULL, "too_many_failed_authentications",
                         "Too many failed authentications from this client; retry in %d s", retry);
        return bn_respond_error(c, conn, &e, retry);
    }
    c->key = bn_auth_check(&s->auth, authorization);
    if (c->key < 0) {
        bn_auth_fail_record(&s->auth, c->client, now_s);
        bn_metrics_reject(&s->metrics, BN_REJECT_AUTH);
        bn_api_error_set(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
                         authorization ? "Incorrect API key provided"
                                       : "You didn't provide an API key: send it as 'Authorization: Bearer KEY'");
        return bn_respond_error(c, conn, &e, 0);
    }
    if (c->too_large) {
        bn_metrics_reject(&s->metrics, BN_REJECT_TOO_LARGE);
        bn_api_error_set(&e, 413, "invalid_request_error", NULL, "request_too_large",
                         "The request body is larger than the limit of %zu bytes", s->cfg.max_body);
        return bn_respond_error(c, conn, &e, 0);
    }
    int state = atomic_load(&s->state);
    if (state != BN_STATE_READY) {
        if (state == BN_STATE_BROKEN && !bn_server_model_intact(s, &e)) return bn_respond_error(c, conn, &e, 0);
        bn_api_error_set(&e, 503, "server_error", NULL, state == BN_STATE_LOADING ? "model_loading" : "server_shutdown",
                         state == BN_STATE_LOADING ? "The model is loading; retry shortly" : "The server is shutting down");
        return bn_respond_error(c, conn, &e, 1);
    }
    if (!bn_auth_take_request(&s->auth, c->key, now_s, &retry)) {
        bn_metrics_reject(&s->metrics, BN_REJECT_RATE_LIMIT);
        bn_api_error_set(&e, 429, "rate_limit_error", NULL, "rate_limit_exceeded",
                         "Rate limit reached for requests per minute (limit %.0f); retry in %d s", s->cfg.rate_limit_rpm,
                         retry);
        return bn_respond_error(c, conn, &e, retry);
    }
    return rt->fn(c, conn, url);
}
