/*
 * server.c: the server's lifecycle (start, model load, graceful stop, free), its log lines, and
 * the guard against a model file changing under its memory mapping (see server.h; the transport,
 * routes, planning and wire format live in transport.c, routes.c, planning.c, completion.c).
 */
#include "server/server_internal.h"

#include "kernels/tuner.h"
#include "model/tune.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- logging */

void bn_server_log_time(char ts[32]) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts, 32, "%.19s.%03dZ", base, (int)(now.tv_nsec / 1000000L));
}

void bn_server_write_log(bn_server *s, const char *line) {
    pthread_mutex_lock(&s->log_mu);
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
    pthread_mutex_unlock(&s->log_mu);
}

void bn_server_log(bn_server *s, const char *level, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char ts[32];
    bn_server_log_time(ts);
    if (s->cfg.log_json) {
        json_t *o = json_pack("{s:s,s:s,s:s}", "time", ts, "level", level, "msg", msg);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (text) bn_server_write_log(s, text);
        free(text);
        json_decref(o);
        return;
    }
    char line[1100];
    snprintf(line, sizeof line, "%s %s %s", ts, level, msg);
    bn_server_write_log(s, line);
}

/* ---------------------------------------------------------------- the model file */

/* A SIGBUS while the model is mapped means its file shrank under the mapping (a page past the
 * new end was touched). The handler can only write and exit: the message is prepared at load. */
static char sigbus_message[600];
static size_t sigbus_message_len;

static void on_sigbus(int sig) {
    (void)sig;
    if (sigbus_message_len) {
        ssize_t w = write(STDERR_FILENO, sigbus_message, sigbus_message_len);
        (void)w;
    }
    _exit(1);
}

static void watch_model_file(bn_server *s) {
    s->model_fd = open(s->model_path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    s->model_size = s->model_fd >= 0 && fstat(s->model_fd, &sb) == 0 ? (long long)sb.st_size : -1;
    int n = snprintf(sigbus_message, sizeof sigbus_message,
                     "bitnet serve: fatal: SIGBUS reading the model file %s: it was truncated or rewritten while the "
                     "server was using it; exiting (restart the server with an intact file)\n", s->model_path);
    sigbus_message_len = n > 0 ? ((size_t)n < sizeof sigbus_message ? (size_t)n : sizeof sigbus_message - 1) : 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

bool bn_server_model_intact(bn_server *s, bn_api_error *e) {
    struct stat sb;
    long long now = s->model_fd >= 0 && fstat(s->model_fd, &sb) == 0 ? (long long)sb.st_size : -1;
    if (s->model_size < 0 || now == s->model_size) return true;
    int expected = BN_STATE_READY;
    if (atomic_compare_exchange_strong(&s->state, &expected, BN_STATE_BROKEN))
        bn_server_log(s, "error", "the model file %s changed size while serving (%lld bytes, %lld when loaded): "
                      "refusing generations; restart the server", s->model_path, now, s->model_size);
    bn_api_error_set(e, 503, "server_error", NULL, "model_file_changed",
                     "The model file changed on disk while the server was running (%lld bytes, %lld when loaded); "
                     "the server must be restarted", now, s->model_size);
    return false;
}

/* ---------------------------------------------------------------- lifecycle */

static char **copy_list(const char *const *items, size_t n, bool *ok) {
    if (!n) return NULL;
    char **out = calloc(n, sizeof *out);
    if (!out) {
        *ok = false;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!(out[i] = strdup(items[i]))) *ok = false;
    return out;
}

static void free_list(char **items, size_t n) {
    for (size_t i = 0; items && i < n; i++) free(items[i]);
    free(items);
}

bn_status bn_server_start(bn_server **out, const bn_server_config *config, bn_error *err) {
    *out = NULL;
    bn_server *s = calloc(1, sizeof *s);
    if (!s) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    s->cfg = *config;
    s->model_fd = -1;
    pthread_mutex_init(&s->log_mu, NULL);
    pthread_mutex_init(&s->conn_mu, NULL);
    bn_metrics_init(&s->metrics);
    if (!s->cfg.host) s->cfg.host = "127.0.0.1";
    if (s->cfg.parallel <= 0) s->cfg.parallel = 4;
    if (s->cfg.queue < 0) s->cfg.queue = 64;
    if (s->cfg.max_body == 0) s->cfg.max_body = 1 << 20;
    if (s->cfg.n_threads <= 0) s->cfg.n_threads = 1;
    if (s->cfg.max_connections <= 0) s->cfg.max_connections = 1024;
    if (s->cfg.max_client_connections < 0) s->cfg.max_client_connections = 0;
    if (s->cfg.ready_queue_max <= 0) s->cfg.ready_queue_max = s->cfg.queue > 0 ? s->cfg.queue : 1;
    bool ok = true;
    s->model_path = config->model_path ? strdup(config->model_path) : NULL;
    s->draft_model_path = config->draft_model_path ? strdup(config->draft_model_path) : NULL;
    s->cfg.draft_model_path = s->draft_model_path;
    if (config->draft_model_path && !s->draft_model_path) ok = false;
    s->host = strdup(s->cfg.host);
    s->chat_format_name = config->chat_format ? strdup(config->chat_format) : NULL;
    s->allowed_hosts = copy_list(config->allowed_hosts, config->n_allowed_hosts, &ok);
    s->cors_origins = copy_list(config->cors_origins, config->n_cors_origins, &ok);
    s->trusted_proxies = copy_list(config->trusted_proxies, config->n_trusted_proxies, &ok);
    s->cfg.model_path = s->model_path;
    s->cfg.host = s->host;
    s->cfg.chat_format = s->chat_format_name;
    s->cfg.api_keys = NULL;
    s->cfg.allowed_hosts = (const char *const *)s->allowed_hosts;
    s->cfg.cors_origins = (const char *const *)s->cors_origins;
    s->cfg.trusted_proxies = (const char *const *)s->trusted_proxies;
    bn_status st = BN_OK;
    if (!ok || !s->model_path || !s->host ||
        !bn_auth_init(&s->auth, config->api_keys, config->n_api_keys, config->rate_limit_rpm, config->rate_limit_tpm))
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    if (!st) {
        bn_auth_set_fail_limit(&s->auth, s->cfg.auth_fail_limit);
        const char *base = strrchr(s->model_path, '/');
        base = base ? base + 1 : s->model_path;
        if (config->model_alias) snprintf(s->model_id, sizeof s->model_id, "%s", config->model_alias);
        else snprintf(s->model_id, sizeof s->model_id, "%s", base);
        size_t n = strlen(s->model_id);
        if (!config->model_alias && n > 5 && !strcmp(s->model_id + n - 5, ".gguf")) s->model_id[n - 5] = '\0';
        struct stat sb;
        s->created = stat(s->model_path, &sb) == 0 ? (long)sb.st_mtime : (long)time(NULL);
        st = bn_transport_start(s, err);
    }
    if (st) {
        bn_server_free(s);
        return st;
    }
    *out = s;
    return BN_OK;
}

/* --spec draft: the draft model, loaded as the model is (no int8 head), with the same vocabulary. */
static bn_status load_draft_model(bn_server *s, const bn_model_options *model_options, bn_error *err) {
    if (!s->draft_model_path)
        return bn_error_set(err, BN_ERR_INVALID, "--spec draft needs a draft model (--model-draft FILE)");
    bn_model_options mo = *model_options;
    mo.int8_lm_head = false;
    mo.device = BN_DEVICE_CPU; /* the draft model runs beside the model, on the CPU */
    mo.progress = NULL;
    bn_tokenizer *draft_tok = NULL;
    bn_status st = bn_model_load(s->draft_model_path, &mo, &s->draft_model, err);
    if (!st) st = bn_tokenizer_from_gguf(&draft_tok, bn_model_get_gguf(s->draft_model), NULL, err);
    if (!st)
        st = bn_spec_check_vocab(s->tok, bn_model_get_config(s->model)->n_vocab, draft_tok,
                                 bn_model_get_config(s->draft_model)->n_vocab, err);
    bn_tokenizer_free(draft_tok);
    if (!st) s->cfg.spec.draft_model = s->draft_model;
    return st;
}

bn_status bn_server_load_model(bn_server *s, bn_error *err) {
    bn_model_options mo = bn_model_options_default();
    mo.n_threads = s->cfg.n_threads;
    mo.int8_lm_head = s->cfg.int8_lm_head;
    mo.n_ctx = s->cfg.n_ctx; /* a file whose context_length is over the limit loads with -c */
    bn_status st = BN_OK;
    if (s->cfg.tune) {
        bn_tune_mode mode;
        st = bn_tune_mode_parse(&mode, s->cfg.tune, err);
        mo.tune = (int)mode;
    }
    if (s->cfg.kv_types_set) {
        mo.kv_type_k = s->cfg.kv_type_k;
        mo.kv_type_v = s->cfg.kv_type_v;
    }
    mo.device = (bn_device)s->cfg.device;
    mo.device_index = s->cfg.device_index;
    if (!st) st = bn_model_load(s->model_path, &mo, &s->model, err);
    if (st == BN_ERR_DEVICE && s->cfg.device_fallback) {
        bn_server_log(s, "warn", "-ngl: %s; serving on the CPU", err ? err->message : "no usable GPU");
        mo.device = BN_DEVICE_CPU;
        st = bn_model_load(s->model_path, &mo, &s->model, err);
    }
    if (!st) {
        if (mo.device == BN_DEVICE_CUDA) snprintf(s->device_desc, sizeof s->device_desc, "cuda:%d", mo.device_index);
        else snprintf(s->device_desc, sizeof s->device_desc, "cpu");
    }
    if (!st) st = bn_tokenizer_from_gguf(&s->tok, bn_model_get_gguf(s->model), NULL, err);
    if (!st) {
        if (s->cfg.chat_format) {
            s->format = bn_chat_format_find(s->cfg.chat_format, err);
            if (!s->format) st = err ? err->code : BN_ERR_INVALID;
        } else {
            bn_chat_choice choice;
            st = bn_chat_format_for_gguf(&choice, bn_model_get_gguf(s->model), err);
            if (!st) s->format = choice.format;
            if (!st && choice.note) bn_server_log(s, "info", "chat format %s: %s", choice.format->name, choice.note);
        }
    }
    if (!st && s->cfg.spec.mode == BN_SPEC_DRAFT) st = load_draft_model(s, &mo, err);
    bn_engine_observer obs = bn_metrics_observer(&s->metrics);
    const bn_engine_options engine_options = {
        .n_slots = s->cfg.parallel, .n_ctx = s->cfg.n_ctx, .max_queue = s->cfg.queue,
        .prefill_chunk = s->cfg.prefill_chunk, .cache_ram_mb = s->cfg.cache_ram_mb,
        .no_prompt_cache = s->cfg.no_prompt_cache,
        .context_shift = s->cfg.context_shift, .keep = s->cfg.keep, .spec = s->cfg.spec};
    if (!st) st = bn_engine_create(&s->engine, s->model, s->tok, &engine_options, &obs, err);
    if (st) return st;
    watch_model_file(s);
    int expected = BN_STATE_LOADING;
    atomic_compare_exchange_strong(&s->state, &expected, BN_STATE_READY);
    char variants[256];
    bn_model_tuning_summary(s->model, variants, sizeof variants);
    const bn_model_tuning *tuning = bn_model_get_tuning(s->model);
    bn_server_log(s, "info", "model %s loaded on %s%s%s%s: %d slots of %d tokens, prompt cache %s (store %d MB), context shift %s, speculation %s (up to %d drafts), chat format %s, LM head %s, kernels %s (tuning %s, %s)",
                  s->model_id, s->device_desc, bn_model_gpu_name(s->model) ? " (" : "",
                  bn_model_gpu_name(s->model) ? bn_model_gpu_name(s->model) : "", bn_model_gpu_name(s->model) ? ")" : "",
                  s->cfg.parallel, bn_engine_ctx(s->engine), s->cfg.no_prompt_cache ? "off" : "on", s->cfg.cache_ram_mb,
                  s->cfg.context_shift ? "on" : "off", bn_spec_mode_name(s->cfg.spec.mode),
                  s->cfg.spec.mode != BN_SPEC_NONE ? s->cfg.spec.draft_max : 0, s->format->name,
                  s->cfg.int8_lm_head ? "int8" : "f16", variants, bn_tune_mode_name(tuning->mode), tuning->source);
    return BN_OK;
}

int bn_server_port(const bn_server *s) { return s->port; }
const char *bn_server_model_id(const bn_server *s) { return s->model_id; }
const char *bn_server_url_host(const bn_server *s) { return s->url_host; }
bool bn_server_tls(const bn_server *s) { return s->ssl_cert != NULL; }
int bn_server_inflight(const bn_server *s) { return atomic_load(&s->inflight); }
bool bn_server_draining(const bn_server *s) { return atomic_load(&s->state) == BN_STATE_STOPPING; }

void bn_server_begin_stop(bn_server *s) {
    atomic_store(&s->state, BN_STATE_STOPPING);
    bn_transport_close_listener(s);
}

void bn_server_stop(bn_server *s, double timeout_s) {
    if (!s->daemon) return;
    bn_server_begin_stop(s);
    double deadline = bn_engine_now_ms() + timeout_s * 1e3;
    while (atomic_load(&s->inflight) > 0 && bn_engine_now_ms() < deadline) usleep(20000);
    if (atomic_load(&s->inflight) > 0)
        bn_server_log(s, "warn", "%d requests still running: cancelling them", atomic_load(&s->inflight));
    bn_engine_free(s->engine); /* cancels what is left; their responses end with server_shutdown */
    s->engine = NULL;
    /* the cut responses get a moment to send their last bytes before the connections close */
    deadline = bn_engine_now_ms() + 2000;
    while (atomic_load(&s->inflight) > 0 && bn_engine_now_ms() < deadline) usleep(10000);
    bn_transport_stop(s);
}

void bn_server_free(bn_server *s) {
    if (!s) return;
    if (s->daemon) bn_server_stop(s, 0);
    bn_transport_stop(s);
    bn_engine_free(s->engine);
    bn_tokenizer_free(s->tok);
    bn_model_free(s->model);
    bn_model_free(s->draft_model);
    if (s->model_fd >= 0) close(s->model_fd);
    bn_auth_destroy(&s->auth);
    bn_metrics_destroy(&s->metrics);
    pthread_mutex_destroy(&s->log_mu);
    pthread_mutex_destroy(&s->conn_mu);
    free(s->model_path);
    free(s->draft_model_path);
    free(s->host);
    free(s->chat_format_name);
    free(s->ssl_cert);
    free(s->ssl_key);
    free_list(s->allowed_hosts, s->cfg.n_allowed_hosts);
    free_list(s->cors_origins, s->cfg.n_cors_origins);
    free_list(s->trusted_proxies, s->cfg.n_trusted_proxies);
    free(s);
}
