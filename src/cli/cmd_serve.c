/*
 * cmd_serve.c: `bitnet serve`, the OpenAI-compatible HTTP server (src/server/).
 *
 * Every option with a value can also come from the environment: BITNET_ plus the long option name
 * in upper case with dashes as underscores (BITNET_PORT, BITNET_API_KEY, BITNET_MODEL, ...), applied
 * by the option layer first, so the command line overrides them (API keys from both add up).
 * SIGINT/SIGTERM drain: /ready turns 503, the listening socket and idle connections close, running
 * requests finish (up to --shutdown-timeout seconds; a second signal cancels them at once), exit 0;
 * SIGHUP is ignored.
 */
#include "cli/commands.h"

#ifndef BITNET_HAVE_SERVER
/* A build configured with -DBITNET_SERVER=OFF (no libmicrohttpd) still has the command, which
 * says why it cannot run. */
int bn_cmd_serve(int argc, char **argv, bn_error *err) {
    (void)argc;
    (void)argv;
    bn_error_set(err, BN_ERR_UNSUPPORTED,
                 "this build has no HTTP server (configured with -DBITNET_SERVER=OFF)");
    return BN_EXIT_ERROR;
}
#else
#include "cli/cli_options.h"
#include "cli/cli_speculation.h"
#include "kernels/tuner.h"
#include "server/server.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    SERVE_HOST = 1, SERVE_PORT, SERVE_PARALLEL, SERVE_QUEUE, SERVE_API_KEY, SERVE_API_KEY_FILE, SERVE_RPM, SERVE_TPM,
    SERVE_MAX_BODY, SERVE_ALIAS, SERVE_FORMAT, SERVE_PREFILL_CHUNK, SERVE_CACHE_RAM, SERVE_NO_PROMPT_CACHE,
    SERVE_CONTEXT_SHIFT, SERVE_KEEP, SERVE_SHUTDOWN_TIMEOUT, SERVE_LOG_FORMAT, SERVE_INT8_HEAD, SERVE_SSL_CERT,
    SERVE_SSL_KEY, SERVE_ALLOWED_HOSTS, SERVE_CORS, SERVE_PROXY, SERVE_MAX_CONNECTIONS, SERVE_MAX_CLIENT,
    SERVE_HEADER_TIMEOUT, SERVE_BODY_TIMEOUT, SERVE_AUTH_FAIL, SERVE_READY_QUEUE_MAX, SERVE_NO_WEBUI, SERVE_IGNORED
};

static const bn_cli_option serve_table[] = {
    {SERVE_HOST, "--host", "ADDR", "address or host name to listen on: 127.0.0.1 (default), ::1,\n0.0.0.0, :: (IPv6 and IPv4), localhost", 0, 0, NULL},
    {SERVE_PORT, "--port", "N", "TCP port; 0 picks a free one (default 8080)", 0, 0, NULL},
    {SERVE_PARALLEL, "--parallel|-np", "N", "sequences decoded together, each with its own KV cache (default 4)", 0, 0, NULL},
    {SERVE_QUEUE, "--queue", "N", "requests' choices waiting for a slot before 503 (default 64)", 0, 0, NULL},
    {SERVE_API_KEY, "--api-key", "KEY", "accept this Bearer key (repeatable; none: no authentication)", 0, 0, NULL},
    {SERVE_API_KEY_FILE, "--api-key-file", "FILE", "accept every non-empty line of FILE as a key", 0, 0, NULL},
    {SERVE_RPM, "--rate-limit-rpm", "N", "requests per minute per key (default 0: unlimited)", 0, 0, NULL},
    {SERVE_TPM, "--rate-limit-tpm", "N", "prompt + max tokens per minute per key (default 0: unlimited)", 0, 0, NULL},
    {SERVE_MAX_BODY, "--max-body", "BYTES", "largest request body (default 1048576)", 0, 0, NULL},
    {SERVE_ALIAS, "--model-alias|-a|--alias", "NAME", "model id served (default: the file name without .gguf)", 0, 0, NULL},
    {SERVE_FORMAT, "--chat-format|--chat-template", "NAME", "bitnet, llama3, chatml, falcon3, plain or none (default:\nthe model's chat template, else its Instruct family's\nformat, else none: plain completion)", 0, 0,
     BN_CLI_CHAT_FORMATS},
    {SERVE_PREFILL_CHUNK, "--prefill-chunk", "N", "prompt tokens per batched step over all slots (default 256;\n-b sets it too)", 0, 0, NULL},
    {SERVE_CACHE_RAM, "--cache-ram", "MB", "host memory for saved prompt caches; a request reuses the\n"
                                          "longest cached prefix of its prompt from an idle slot or from\n"
                                          "this store (default 512; 0: idle slots only)", 0, 0, NULL},
    {SERVE_NO_PROMPT_CACHE, "--no-prompt-cache", NULL, "prefill every prompt from its first token (a baseline)", 0, 0, NULL},
    {SERVE_CONTEXT_SHIFT, "--context-shift", NULL, "a full slot drops the oldest half of its tokens after --keep\n"
                                                  "and goes on, instead of ending with \"length\" (default off;\n"
                                                  "BITNET_CONTEXT_SHIFT=1)", 0, 0, NULL},
    {SERVE_KEEP, "--keep", "N", "tokens a context shift keeps at the start (default 0)", 0, 0, NULL},
    {SERVE_SHUTDOWN_TIMEOUT, "--shutdown-timeout", "S", "seconds running requests get on SIGINT/SIGTERM (default 30)", 0, 0, NULL},
    {SERVE_READY_QUEUE_MAX, "--ready-queue-max", "N", "GET /ready answers 503 while N or more requests' choices wait\n"
                                                    "for a slot, so a load balancer sends new work elsewhere\n"
                                                    "(default: the --queue size)", 0, 0, NULL},
    {SERVE_LOG_FORMAT, "--log-format", "FMT", "text or json: one JSON object per line, a request's line with\n"
                                            "its fields (method, path, status, duration_ms, client, token\n"
                                            "counts, finish_reason) (default text)", 0, 0, "text|json"},
    {SERVE_INT8_HEAD, "--int8-lm-head", NULL, "LM head in int8 with per-row scales instead of F16 (faster\n"
                                              "batches, logits differ slightly; BITNET_INT8_LM_HEAD=1)", 0, 0, NULL},
    {SERVE_NO_WEBUI, "--no-webui", NULL, "no chat page at GET / (then a 404 like any unknown path)", 0, 0, NULL},
    {SERVE_IGNORED, "-cb|--cont-batching|--metrics|--slots|--props|--jinja|--embedding|--embeddings",
     NULL, "llama-server options with no meaning here (batching, /metrics\nand the templates are always on): accepted with a note", 0, 0, NULL},
    {0},
};

static const bn_cli_option serve_security_table[] = {
    {SERVE_SSL_CERT, "--ssl-cert-file", "FILE", "serve HTTPS with this PEM certificate (chain) ...", 0, 0, NULL},
    {SERVE_SSL_KEY, "--ssl-key-file", "FILE", "... and this PEM private key", 0, 0, NULL},
    {SERVE_ALLOWED_HOSTS, "--allowed-hosts", "LIST", "Host names accepted besides loopback names when bound to a\n"
                                                   "loopback address, or the only ones accepted on another address\n"
                                                   "(comma-separated, repeatable; * accepts any; default: none)", 0, 0, NULL},
    {SERVE_CORS, "--cors-origin", "ORIGIN", "answer cross-origin browser requests from ORIGIN with CORS\n"
                                          "headers (repeatable; * for any); other origins get 403", 0, 0, NULL},
    {SERVE_PROXY, "--trusted-proxy", "ADDR", "peer address of a load balancer: its X-Forwarded-For names the\n"
                                           "client, and its connections skip the per-client limit (repeatable)", 0, 0, NULL},
    {SERVE_MAX_CONNECTIONS, "--max-connections", "N", "open connections in all (default 1024)", 0, 0, NULL},
    {SERVE_MAX_CLIENT, "--max-client-connections", "N", "connections one client address may have waiting for a request\n"
                                                      "(head or body arriving, or idle); one more closes its oldest\n"
                                                      "waiting one (default 32; 0: no limit)", 0, 0, NULL},
    {SERVE_HEADER_TIMEOUT, "--header-timeout|-to|--timeout", "S", "seconds a connection may take to send a request head, idle\n"
                                                                  "keep-alive time included (default 10)", 0, 0, NULL},
    {SERVE_BODY_TIMEOUT, "--body-timeout", "S", "seconds a request body may take to arrive (default 60)", 0, 0, NULL},
    {SERVE_AUTH_FAIL, "--auth-fail-limit", "N", "failed API-key checks per minute per client before 429\n(default 10; 0: no limit)", 0, 0, NULL},
    {0},
};

const bn_cli_spec bn_serve_spec = {
    .name = "serve",
    .synopsis = "[-m MODEL] [options]",
    .about = "OpenAI-compatible server: GET /health, /live, /ready, /metrics, /v1/models, /props,\n"
             "POST /v1/completions, /v1/chat/completions, /v1/responses, /tokenize, /detokenize (see\n"
             "docs/SERVER.md, docs/openapi.yaml), and a chat page for a browser at GET /\n"
             "(--no-webui: none).\n"
             "Security and limits: docs/SERVER.md, \"Security\". Replicas behind a load balancer:\n"
             "docs/DEPLOY.md.\n",
    .notes = "Signals: SIGINT/SIGTERM drain the server: /ready and /health answer 503 at once, the\n"
             "listening socket closes, idle keep-alive connections close, and running requests finish\n"
             "for up to --shutdown-timeout seconds (a second SIGINT/SIGTERM cancels them at once);\n"
             "requests cut short answer 503 server_shutdown (a stream ends with that error event and\n"
             "no [DONE]). Exit status 0. SIGHUP is ignored (logged).\n\n"
             "Each option with a value can be set by the environment variable BITNET_<OPTION> (upper\n"
             "case, dashes as underscores): BITNET_PORT=9000, BITNET_API_KEY=secret, BITNET_MODEL=m.gguf;\n"
             "the command line overrides it (API keys from both add up).\n",
    .env_prefix = "BITNET_",
    .options = serve_table,
    .more_options = serve_security_table,
    .more_title = "security and limits",
    .extra_options = bn_cli_speculation_options,
    .extra_title = "speculative decoding (per slot; ngram or draft)",
    .common = BN_COMMON_LOAD & ~BN_COMMON_PROGRESS,
};

typedef struct key_list {
    char **items;
    size_t n;
} key_list;

static bool key_add(key_list *k, const char *s, size_t len) {
    char **grown = realloc(k->items, (k->n + 1) * sizeof *grown);
    if (!grown) return false;
    k->items = grown;
    if (!(k->items[k->n] = strndup(s, len))) return false;
    k->n++;
    return true;
}

/* Adds each comma-separated item of v (surrounding spaces trimmed). */
static bool list_add_items(key_list *k, const char *v) {
    while (*v) {
        while (*v == ' ' || *v == ',') v++;
        size_t n = strcspn(v, ",");
        size_t m = n;
        while (m && v[m - 1] == ' ') m--;
        if (m && !key_add(k, v, m)) return false;
        v += n;
    }
    return true;
}

static void list_free(key_list *k, bool wipe) {
    for (size_t i = 0; i < k->n; i++) {
        if (wipe) memset(k->items[i], 0, strlen(k->items[i]));
        free(k->items[i]);
    }
    free(k->items);
}

/* Milliseconds on the monotonic clock. */
static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One key per non-empty line (surrounding whitespace trimmed, '#' starts a comment line); lines of
 * any length (getline), so a long key is never split into shorter valid ones. */
static bn_status read_key_file(key_list *k, const char *path, bn_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) return bn_error_set(err, BN_ERR_IO, "--api-key-file %s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    bn_status st = BN_OK;
    while (!st && (got = getline(&line, &cap, f)) >= 0) {
        size_t n = (size_t)got;
        while (n && isspace((unsigned char)line[n - 1])) n--;
        size_t b = 0;
        while (b < n && isspace((unsigned char)line[b])) b++;
        if (n > b && line[b] != '#' && !key_add(k, line + b, n - b)) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    }
    free(line);
    fclose(f);
    if (!st && k->n == 0) st = bn_error_set(err, BN_ERR_INVALID, "--api-key-file %s: no keys in the file", path);
    return st;
}

/* Where the options go. */
typedef struct serve_options {
    bn_server_config cfg;
    double shutdown_timeout;
    key_list keys, hosts, origins, proxies;
    bn_cli_speculation spec;
} serve_options;

static bn_cli_parse apply_serve(void *state, const bn_cli_option *opt, const char *a, const char *v, bn_error *err) {
    serve_options *o = state;
    bn_server_config *cfg = &o->cfg;
    float f = 0;
    int x = 0;
    bool ok = true;
    switch (opt ? opt->id : 0) {
    case SERVE_HOST: ok = *v, cfg->host = v; break;
    case SERVE_PORT: ok = bn_cli_parse_int(v, 0, 65535, &cfg->port); break;
    case SERVE_PARALLEL: ok = bn_cli_parse_int(v, 1, 256, &cfg->parallel); break;
    case SERVE_QUEUE: ok = bn_cli_parse_int(v, 0, 1 << 20, &cfg->queue); break;
    case SERVE_API_KEY:
        if (!*v) return bn_cli_bad_value(a, v, "a non-empty key", err);
        if (!key_add(&o->keys, v, strlen(v))) return bn_error_set(err, BN_ERR_NOMEM, "out of memory"), BN_CLI_BAD;
        break;
    case SERVE_API_KEY_FILE:
        if (read_key_file(&o->keys, v, err) != BN_OK) return BN_CLI_BAD;
        break;
    case SERVE_RPM: ok = bn_cli_parse_float(v, 0, 1e9, &f), cfg->rate_limit_rpm = f; break;
    case SERVE_TPM: ok = bn_cli_parse_float(v, 0, 1e12, &f), cfg->rate_limit_tpm = f; break;
    case SERVE_MAX_BODY: ok = bn_cli_parse_int(v, 16, 1 << 30, &x), cfg->max_body = (size_t)x; break;
    case SERVE_ALIAS: ok = *v, cfg->model_alias = v; break;
    case SERVE_FORMAT: cfg->chat_format = v; break;
    case SERVE_PREFILL_CHUNK: ok = bn_cli_parse_int(v, 1, 1 << 16, &cfg->prefill_chunk); break;
    case SERVE_CACHE_RAM: ok = bn_cli_parse_int(v, 0, 1 << 24, &cfg->cache_ram_mb); break;
    case SERVE_NO_PROMPT_CACHE: cfg->no_prompt_cache = true; break;
    case SERVE_CONTEXT_SHIFT: cfg->context_shift = true; break;
    case SERVE_KEEP: ok = bn_cli_parse_int(v, 0, 1 << 24, &cfg->keep); break;
    case SERVE_SHUTDOWN_TIMEOUT: ok = bn_cli_parse_float(v, 0, 86400, &f), o->shutdown_timeout = f; break;
    case SERVE_LOG_FORMAT:
        ok = !strcmp(v, "text") || !strcmp(v, "json");
        cfg->log_json = ok && !strcmp(v, "json");
        break;
    case SERVE_INT8_HEAD: cfg->int8_lm_head = true; break;
    case SERVE_NO_WEBUI: cfg->no_webui = true; break;
    case SERVE_SSL_CERT: ok = *v, cfg->ssl_cert_file = v; break;
    case SERVE_SSL_KEY: ok = *v, cfg->ssl_key_file = v; break;
    case SERVE_ALLOWED_HOSTS: ok = *v && list_add_items(&o->hosts, v); break;
    case SERVE_CORS: ok = *v && key_add(&o->origins, v, strlen(v)); break;
    case SERVE_PROXY: ok = *v && list_add_items(&o->proxies, v); break;
    case SERVE_MAX_CONNECTIONS: ok = bn_cli_parse_int(v, 1, 1 << 20, &cfg->max_connections); break;
    case SERVE_MAX_CLIENT: ok = bn_cli_parse_int(v, 0, 1 << 20, &cfg->max_client_connections); break;
    case SERVE_HEADER_TIMEOUT: ok = bn_cli_parse_float(v, 0.1f, 86400, &f), cfg->header_timeout = f; break;
    case SERVE_BODY_TIMEOUT: ok = bn_cli_parse_float(v, 0.1f, 86400, &f), cfg->body_timeout = f; break;
    case SERVE_AUTH_FAIL: ok = bn_cli_parse_int(v, 0, 1 << 20, &cfg->auth_fail_limit); break;
    case SERVE_READY_QUEUE_MAX: ok = bn_cli_parse_int(v, 1, 1 << 20, &cfg->ready_queue_max); break;
    case SERVE_IGNORED:
        fprintf(stderr, "bitnet serve: note: %s is accepted for llama-server command lines and changes nothing here\n", a);
        break;
    default: return bn_cli_apply_speculation(&o->spec, opt, a, v, err);
    }
    if (!ok) return bn_cli_bad_value(a, v, opt->metavar ? opt->metavar : "a value", err);
    return BN_CLI_CONSUMED;
}

int bn_cmd_serve(int argc, char **argv, bn_error *err) {
    bn_cli_common common;
    bn_cli_common_init(&common, "serve");
    serve_options o = {.cfg = {.host = "127.0.0.1", .port = 8080, .parallel = 4, .queue = 64, .max_body = 1 << 20,
                               .cache_ram_mb = 512, .max_connections = 1024, .max_client_connections = 32,
                               .header_timeout = 10, .body_timeout = 60, .auth_fail_limit = 10},
                       .shutdown_timeout = 30};
    bn_cli_speculation_init(&o.spec);
    const char *shift_env = getenv("BITNET_CONTEXT_SHIFT");
    o.cfg.context_shift = shift_env && *shift_env && strcmp(shift_env, "0") != 0;
    const char *int8_env = getenv("BITNET_INT8_LM_HEAD");
    o.cfg.int8_lm_head = int8_env && *int8_env && strcmp(int8_env, "0") != 0;
    int parsed = bn_cli_parse_command(&bn_serve_spec, apply_serve, &o, &common, NULL, argc, argv, err);
    int rc = parsed < 0 ? BN_EXIT_OK : parsed == BN_EXIT_OK ? -1 : parsed; /* -1: --help printed */
    bn_server_config cfg = o.cfg;
    const double shutdown_timeout = o.shutdown_timeout;
    key_list keys = o.keys, hosts = o.hosts, origins = o.origins, proxies = o.proxies;
    if (rc == BN_EXIT_OK && o.spec.config.mode == BN_SPEC_REPLAY) {
        bn_error_set(err, BN_ERR_INVALID, "--spec replay: the server has no previous run to replay (ngram or draft)");
        rc = BN_EXIT_USAGE;
    } else if (rc == BN_EXIT_OK && (o.spec.draft_path != NULL) != (o.spec.config.mode == BN_SPEC_DRAFT)) {
        bn_error_set(err, BN_ERR_INVALID, o.spec.draft_path ? "--model-draft is for --spec draft"
                                                             : "--spec draft needs a draft model (--model-draft FILE)");
        rc = BN_EXIT_USAGE;
    } else if (rc == BN_EXIT_OK && o.spec.config.draft_min > o.spec.config.draft_max) {
        bn_error_set(err, BN_ERR_INVALID, "--draft-min %d is above --draft-max %d", o.spec.config.draft_min,
                     o.spec.config.draft_max);
        rc = BN_EXIT_USAGE;
    }
    if (rc == BN_EXIT_OK) {
        common.n_threads = bn_cli_thread_count(&common);
        if (common.n_batch) cfg.prefill_chunk = common.n_batch;
    }
    char *model_path = NULL;
    if (rc == BN_EXIT_OK && bn_cli_resolve_model(&model_path, common.model_path, err)) rc = BN_EXIT_ERROR;
    if (rc == BN_EXIT_OK && bn_cli_apply_isa(&common, err)) rc = BN_EXIT_ERROR;
    if (rc == BN_EXIT_OK && access(model_path, R_OK) != 0) {
        bn_error_set(err, BN_ERR_IO, "%s: cannot open: %s", model_path, strerror(errno));
        rc = BN_EXIT_ERROR;
    }
    bn_server *srv = NULL;
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    if (rc == BN_EXIT_OK) {
        /* every thread started from here on inherits the mask; this thread waits for them */
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        signal(SIGPIPE, SIG_IGN);
        cfg.model_path = model_path;
        cfg.spec = o.spec.config;
        /* -ngl N > 0 without --device means the GPU, falling back to the CPU with a note */
        cfg.device = common.device_given || common.gpu_layers <= 0 ? (int)common.device : (int)BN_DEVICE_CUDA;
        cfg.device_index = common.device_index;
        cfg.kv_types_set = true; /* -ctk / -ctv (f16 unless given) */
        cfg.kv_type_k = common.kv_type_k;
        cfg.kv_type_v = common.kv_type_v;
        cfg.device_fallback = !common.device_given && common.gpu_layers > 0;
        cfg.draft_model_path = o.spec.draft_path;
        cfg.n_ctx = common.n_ctx;
        cfg.n_threads = common.n_threads;
        cfg.tune = common.tune >= 0 ? bn_tune_mode_name((bn_tune_mode)common.tune) : NULL;
        cfg.api_keys = (const char *const *)keys.items;
        cfg.n_api_keys = keys.n;
        cfg.allowed_hosts = (const char *const *)hosts.items;
        cfg.n_allowed_hosts = hosts.n;
        cfg.cors_origins = (const char *const *)origins.items;
        cfg.n_cors_origins = origins.n;
        cfg.trusted_proxies = (const char *const *)proxies.items;
        cfg.n_trusted_proxies = proxies.n;
        if (bn_server_start(&srv, &cfg, err)) rc = BN_EXIT_ERROR;
    }
    const char *scheme = srv && bn_server_tls(srv) ? "https" : "http";
    if (rc == BN_EXIT_OK) {
        printf("bitnet serve: listening on %s://%s:%d (model %s, loading)\n", scheme, bn_server_url_host(srv),
               bn_server_port(srv), bn_server_model_id(srv));
        fflush(stdout);
        if (bn_server_load_model(srv, err)) rc = BN_EXIT_ERROR;
    }
    if (rc == BN_EXIT_OK) {
        printf("bitnet serve: ready on %s://%s:%d%s\n", scheme, bn_server_url_host(srv), bn_server_port(srv),
               keys.n ? " (API keys required)" : "");
        fflush(stdout);
        int sig = 0;
        for (;;) {
            sigwait(&sigs, &sig);
            if (sig != SIGHUP) break;
            bn_server_log(srv, "info", "SIGHUP ignored: SIGINT or SIGTERM stops the server");
        }
        bn_server_log(srv, "info", "%s: listening socket closed; waiting up to %.0f s for %d running requests (a second "
                      "signal cancels them)", sig == SIGINT ? "SIGINT" : "SIGTERM", shutdown_timeout,
                      bn_server_inflight(srv));
        bn_server_begin_stop(srv);
        double deadline = now_ms() + shutdown_timeout * 1e3;
        while (bn_server_inflight(srv) > 0 && now_ms() < deadline) {
            const struct timespec tick = {0, 100 * 1000000L};
            int got = sigtimedwait(&sigs, NULL, &tick);
            if (got == SIGHUP) bn_server_log(srv, "info", "SIGHUP ignored: SIGINT or SIGTERM stops the server");
            if (got == SIGINT || got == SIGTERM) {
                bn_server_log(srv, "warn", "second signal: cancelling %d running requests now", bn_server_inflight(srv));
                break;
            }
        }
        int cut = bn_server_inflight(srv);
        bn_server_stop(srv, 0);
        if (cut) bn_server_log(srv, "warn", "stopped: %d requests were cut short (they answered server_shutdown)", cut);
        else bn_server_log(srv, "info", "stopped: drained cleanly");
    }
    bn_server_free(srv);
    list_free(&keys, true);
    list_free(&hosts, false);
    list_free(&origins, false);
    list_free(&proxies, false);
    free(model_path);
    return rc < 0 ? BN_EXIT_OK : rc;
}
#endif /* BITNET_HAVE_SERVER */
