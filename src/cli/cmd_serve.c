/*
 * cmd_serve.c: `bitnet serve`, the OpenAI-compatible HTTP server (src/server/).
 *
 * Every option can also come from the environment: BITNET_ plus the long option name in upper
 * case with dashes as underscores (BITNET_PORT, BITNET_API_KEY, BITNET_MODEL, ...). Environment
 * values are applied first, so the command line overrides them (API keys from both add up).
 * SIGINT/SIGTERM close the listening socket, let running requests finish (up to
 * --shutdown-timeout seconds; a second signal cancels them at once) and exit 0; SIGHUP is ignored.
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

static void usage(FILE *out) {
    fprintf(out,
            "usage: bitnet serve [-m MODEL] [options]\n\n"
            "OpenAI-compatible server: GET /health, GET /metrics, GET /v1/models,\n"
            "POST /v1/completions, POST /v1/chat/completions (see docs/SERVER.md, docs/openapi.yaml).\n\n"
            "%s"
            "  --host ADDR            address or host name to listen on: 127.0.0.1 (default), ::1,\n"
            "                         0.0.0.0, :: (IPv6 and IPv4), localhost\n"
            "  --port N               TCP port; 0 picks a free one (default 8080)\n"
            "  --parallel N           sequences decoded together, each with its own KV cache (default 4)\n"
            "  --queue N              requests' choices waiting for a slot before 503 (default 64)\n"
            "  --api-key KEY          accept this Bearer key (repeatable; none: no authentication)\n"
            "  --api-key-file FILE    accept every non-empty line of FILE as a key\n"
            "  --rate-limit-rpm N     requests per minute per key (default 0: unlimited)\n"
            "  --rate-limit-tpm N     prompt + max tokens per minute per key (default 0: unlimited)\n"
            "  --max-body BYTES       largest request body (default 1048576)\n"
            "  --model-alias NAME     model id served (default: the file name without .gguf)\n"
            "  --chat-format NAME     bitnet, llama3, chatml or plain (default: from the model)\n"
            "  --prefill-chunk N      prompt tokens per batched step over all slots (default 256)\n"
            "  --cache-ram MB         host memory for saved prompt caches; a request reuses the\n"
            "                         longest cached prefix of its prompt from an idle slot or from\n"
            "                         this store (default 512; 0: idle slots only)\n"
            "  --no-prompt-cache      prefill every prompt from its first token (a baseline)\n"
            "  --context-shift        a full slot drops the oldest half of its tokens after --keep\n"
            "                         and goes on, instead of ending with \"length\" (default off)\n"
            "  --keep N               tokens a context shift keeps at the start (default 0)\n"
            "  --shutdown-timeout S   seconds running requests get on SIGINT/SIGTERM (default 30)\n"
            "  --log-format FMT       text or json: one JSON object per line, a request's line with\n"
            "                         its fields (method, path, status, duration_ms, client, token\n"
            "                         counts, finish_reason) (default text)\n"
            "\nSecurity and limits (docs/SERVER.md, \"Security\"):\n"
            "  --ssl-cert-file FILE   serve HTTPS with this PEM certificate (chain) ...\n"
            "  --ssl-key-file FILE    ... and this PEM private key\n"
            "  --allowed-hosts LIST   Host names accepted besides loopback names when bound to a\n"
            "                         loopback address, or the only ones accepted on another address\n"
            "                         (comma-separated, repeatable; * accepts any; default: none)\n"
            "  --cors-origin ORIGIN   answer cross-origin browser requests from ORIGIN with CORS\n"
            "                         headers (repeatable; * for any); other origins get 403\n"
            "  --trusted-proxy ADDR   peer address of a load balancer: its X-Forwarded-For names the\n"
            "                         client, and its connections skip the per-client limit (repeatable)\n"
            "  --max-connections N    open connections in all (default 1024)\n"
            "  --max-client-connections N\n"
            "                         connections one client address may have waiting for a request\n"
            "                         (head or body arriving, or idle); one more closes its oldest\n"
            "                         waiting one (default 32; 0: no limit)\n"
            "  --header-timeout S     seconds a connection may take to send a request head, idle\n"
            "                         keep-alive time included (default 10)\n"
            "  --body-timeout S       seconds a request body may take to arrive (default 60)\n"
            "  --auth-fail-limit N    failed API-key checks per minute per client before 429\n"
            "                         (default 10; 0: no limit)\n"
            "  --int8-lm-head         LM head in int8 with per-row scales instead of F16 (faster\n"
            "                         batches, logits differ slightly; BITNET_INT8_LM_HEAD=1)\n"
            "  (--context-shift: BITNET_CONTEXT_SHIFT=1)\n\n"
            "Signals: SIGINT/SIGTERM close the listening socket and let running requests finish for up\n"
            "to --shutdown-timeout seconds (a second SIGINT/SIGTERM cancels them at once); requests cut\n"
            "short answer 503 server_shutdown. SIGHUP is ignored (logged).\n\n"
            "Each option can be set by the environment variable BITNET_<OPTION> (upper case,\n"
            "dashes as underscores): BITNET_PORT=9000, BITNET_API_KEY=secret, BITNET_MODEL=m.gguf.\n",
            bn_cli_common_help);
}

/* Options that take a value, in the form used for their environment variables. */
static const char *const env_options[] = {
    "--model", "--threads", "--ctx-size", "--isa", "--host", "--port", "--parallel", "--queue",
    "--api-key", "--api-key-file", "--rate-limit-rpm", "--rate-limit-tpm", "--max-body",
    "--model-alias", "--chat-format", "--prefill-chunk", "--shutdown-timeout", "--log-format", "--tune",
    "--cache-ram", "--keep", "--ssl-cert-file", "--ssl-key-file", "--allowed-hosts", "--cors-origin",
    "--trusted-proxy", "--max-connections", "--max-client-connections", "--header-timeout", "--body-timeout",
    "--auth-fail-limit"};

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

int bn_cmd_serve(int argc, char **argv, bn_error *err) {
    /* environment first, then the command line */
    char **args = calloc((size_t)argc + 2 * (sizeof env_options / sizeof env_options[0]) + 1, sizeof *args);
    char env_names[sizeof env_options / sizeof env_options[0]][40];
    if (!args) return bn_error_set(err, BN_ERR_NOMEM, "out of memory"), BN_EXIT_ERROR;
    int n_args = 0;
    args[n_args++] = argv[0];
    for (size_t i = 0; i < sizeof env_options / sizeof env_options[0]; i++) {
        char *name = env_names[i];
        snprintf(name, sizeof env_names[i], "BITNET_");
        for (const char *p = env_options[i] + 2; *p; p++) {
            size_t l = strlen(name);
            name[l] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
            name[l + 1] = '\0';
        }
        const char *v = getenv(name);
        if (v && *v) {
            args[n_args++] = (char *)env_options[i];
            args[n_args++] = (char *)v;
        }
    }
    for (int i = 1; i < argc; i++) args[n_args++] = argv[i];

    bn_cli_common common;
    bn_cli_common_init(&common);
    bn_server_config cfg = {.host = "127.0.0.1", .port = 8080, .parallel = 4, .queue = 64, .max_body = 1 << 20,
                            .cache_ram_mb = 512, .max_connections = 1024, .max_client_connections = 32,
                            .header_timeout = 10, .body_timeout = 60, .auth_fail_limit = 10};
    const char *shift_env = getenv("BITNET_CONTEXT_SHIFT");
    cfg.context_shift = shift_env && *shift_env && strcmp(shift_env, "0") != 0;
    const char *int8_env = getenv("BITNET_INT8_LM_HEAD");
    cfg.int8_lm_head = int8_env && *int8_env && strcmp(int8_env, "0") != 0;
    double shutdown_timeout = 30;
    key_list keys = {0}, hosts = {0}, origins = {0}, proxies = {0};
    int rc = BN_EXIT_OK;
    for (int i = 1; i < n_args && rc == BN_EXIT_OK; i++) {
        const char *a = args[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(args);
            return BN_EXIT_OK;
        }
        if (!strcmp(a, "--int8-lm-head")) { /* the options without a value */
            cfg.int8_lm_head = true;
            continue;
        }
        if (!strcmp(a, "--context-shift")) {
            cfg.context_shift = true;
            continue;
        }
        if (!strcmp(a, "--no-prompt-cache")) {
            cfg.no_prompt_cache = true;
            continue;
        }
        bn_cli_parse r = bn_cli_parse_common(&common, n_args, args, &i, err);
        if (r == BN_CLI_CONSUMED) continue;
        if (r == BN_CLI_BAD) {
            rc = BN_EXIT_USAGE;
            break;
        }
        const char *v = i + 1 < n_args ? args[i + 1] : NULL;
        int x = 0;
        float f = 0;
        bool ok = v != NULL;
        if (!strcmp(a, "--host")) cfg.host = v;
        else if (!strcmp(a, "--port")) ok = ok && bn_cli_parse_int(v, 0, 65535, &cfg.port);
        else if (!strcmp(a, "--parallel")) ok = ok && bn_cli_parse_int(v, 1, 256, &cfg.parallel);
        else if (!strcmp(a, "--queue")) ok = ok && bn_cli_parse_int(v, 0, 1 << 20, &cfg.queue);
        else if (!strcmp(a, "--api-key")) ok = ok && *v && key_add(&keys, v, strlen(v));
        else if (!strcmp(a, "--api-key-file")) {
            if (ok && read_key_file(&keys, v, err)) rc = BN_EXIT_ERROR;
        } else if (!strcmp(a, "--rate-limit-rpm")) ok = ok && bn_cli_parse_float(v, 0, 1e9, &f), cfg.rate_limit_rpm = f;
        else if (!strcmp(a, "--rate-limit-tpm")) ok = ok && bn_cli_parse_float(v, 0, 1e12, &f), cfg.rate_limit_tpm = f;
        else if (!strcmp(a, "--max-body")) ok = ok && bn_cli_parse_int(v, 16, 1 << 30, &x), cfg.max_body = (size_t)x;
        else if (!strcmp(a, "--model-alias")) ok = ok && *v, cfg.model_alias = v;
        else if (!strcmp(a, "--chat-format")) cfg.chat_format = v;
        else if (!strcmp(a, "--prefill-chunk")) ok = ok && bn_cli_parse_int(v, 1, 1 << 16, &cfg.prefill_chunk);
        else if (!strcmp(a, "--cache-ram")) ok = ok && bn_cli_parse_int(v, 0, 1 << 24, &cfg.cache_ram_mb);
        else if (!strcmp(a, "--keep")) ok = ok && bn_cli_parse_int(v, 0, 1 << 24, &cfg.keep);
        else if (!strcmp(a, "--shutdown-timeout")) ok = ok && bn_cli_parse_float(v, 0, 86400, &f), shutdown_timeout = f;
        else if (!strcmp(a, "--ssl-cert-file")) ok = ok && *v, cfg.ssl_cert_file = v;
        else if (!strcmp(a, "--ssl-key-file")) ok = ok && *v, cfg.ssl_key_file = v;
        else if (!strcmp(a, "--allowed-hosts")) ok = ok && *v && list_add_items(&hosts, v);
        else if (!strcmp(a, "--cors-origin")) ok = ok && *v && key_add(&origins, v, strlen(v));
        else if (!strcmp(a, "--trusted-proxy")) ok = ok && *v && list_add_items(&proxies, v);
        else if (!strcmp(a, "--max-connections")) ok = ok && bn_cli_parse_int(v, 1, 1 << 20, &cfg.max_connections);
        else if (!strcmp(a, "--max-client-connections")) ok = ok && bn_cli_parse_int(v, 0, 1 << 20, &cfg.max_client_connections);
        else if (!strcmp(a, "--header-timeout")) ok = ok && bn_cli_parse_float(v, 0.1f, 86400, &f), cfg.header_timeout = f;
        else if (!strcmp(a, "--body-timeout")) ok = ok && bn_cli_parse_float(v, 0.1f, 86400, &f), cfg.body_timeout = f;
        else if (!strcmp(a, "--auth-fail-limit")) ok = ok && bn_cli_parse_int(v, 0, 1 << 20, &cfg.auth_fail_limit);
        else if (!strcmp(a, "--log-format")) ok = ok && (!strcmp(v, "text") || !strcmp(v, "json")), cfg.log_json = ok && !strcmp(v, "json");
        else {
            bn_error_set(err, BN_ERR_INVALID, "unknown option '%s'", a);
            rc = BN_EXIT_USAGE;
            break;
        }
        if (rc) break;
        if (!ok) {
            bn_error_set(err, BN_ERR_INVALID, "%s: invalid or missing value%s%s", a, v ? " " : "", v ? v : "");
            rc = BN_EXIT_USAGE;
            break;
        }
        i++;
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
        bn_server_stop(srv, 0);
        bn_server_log(srv, "info", "stopped");
    }
    bn_server_free(srv);
    list_free(&keys, true);
    list_free(&hosts, false);
    list_free(&origins, false);
    list_free(&proxies, false);
    free(model_path);
    free(args);
    if (rc == BN_EXIT_USAGE) {
        fprintf(stderr, "bitnet serve: %s\n", err->message);
        usage(stderr);
        bn_error_clear(err);
    }
    return rc;
}
#endif /* BITNET_HAVE_SERVER */
