/*
 * cmd_serve.c: `bitnet serve`, the OpenAI-compatible HTTP server (src/server/).
 *
 * Every option can also come from the environment: BITNET_ plus the long option name in upper
 * case with dashes as underscores (BITNET_PORT, BITNET_API_KEY, BITNET_MODEL, ...). Environment
 * values are applied first, so the command line overrides them (API keys from both add up).
 * SIGINT/SIGTERM stop accepting connections, let running requests finish (up to
 * --shutdown-timeout seconds) and exit 0.
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
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: bitnet serve [-m MODEL] [options]\n\n"
            "OpenAI-compatible server: GET /health, GET /metrics, GET /v1/models,\n"
            "POST /v1/completions, POST /v1/chat/completions (see docs/SERVER.md, docs/openapi.yaml).\n\n"
            "%s"
            "  --host ADDR            IPv4 address to listen on (default 127.0.0.1)\n"
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
            "  --log-format FMT       text or json (default text)\n"
            "  --int8-lm-head         LM head in int8 with per-row scales instead of F16 (faster\n"
            "                         batches, logits differ slightly; BITNET_INT8_LM_HEAD=1)\n"
            "  (--context-shift: BITNET_CONTEXT_SHIFT=1)\n\n"
            "Each option can be set by the environment variable BITNET_<OPTION> (upper case,\n"
            "dashes as underscores): BITNET_PORT=9000, BITNET_API_KEY=secret, BITNET_MODEL=m.gguf.\n",
            bn_cli_common_help);
}

/* Options that take a value, in the form used for their environment variables. */
static const char *const env_options[] = {
    "--model", "--threads", "--ctx-size", "--isa", "--host", "--port", "--parallel", "--queue",
    "--api-key", "--api-key-file", "--rate-limit-rpm", "--rate-limit-tpm", "--max-body",
    "--model-alias", "--chat-format", "--prefill-chunk", "--shutdown-timeout", "--log-format", "--tune",
    "--cache-ram", "--keep"};

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
                            .cache_ram_mb = 512};
    const char *shift_env = getenv("BITNET_CONTEXT_SHIFT");
    cfg.context_shift = shift_env && *shift_env && strcmp(shift_env, "0") != 0;
    const char *int8_env = getenv("BITNET_INT8_LM_HEAD");
    cfg.int8_lm_head = int8_env && *int8_env && strcmp(int8_env, "0") != 0;
    double shutdown_timeout = 30;
    key_list keys = {0};
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
        if (bn_server_start(&srv, &cfg, err)) rc = BN_EXIT_ERROR;
    }
    if (rc == BN_EXIT_OK) {
        printf("bitnet serve: listening on http://%s:%d (model %s, loading)\n", cfg.host, bn_server_port(srv),
               bn_server_model_id(srv));
        fflush(stdout);
        if (bn_server_load_model(srv, err)) rc = BN_EXIT_ERROR;
    }
    if (rc == BN_EXIT_OK) {
        printf("bitnet serve: ready on http://%s:%d%s\n", cfg.host, bn_server_port(srv),
               keys.n ? " (API keys required)" : "");
        fflush(stdout);
        int sig = 0;
        sigwait(&sigs, &sig);
        bn_server_log(srv, "info", "signal %d: no new connections; waiting up to %.0f s for running requests", sig,
                      shutdown_timeout);
        bn_server_stop(srv, shutdown_timeout);
        bn_server_log(srv, "info", "stopped");
    }
    bn_server_free(srv);
    for (size_t i = 0; i < keys.n; i++) {
        memset(keys.items[i], 0, strlen(keys.items[i]));
        free(keys.items[i]);
    }
    free(keys.items);
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
