/*
 * server.h: the OpenAI-compatible HTTP server behind `bitnet serve`.
 *
 * Design: libmicrohttpd runs one thread per connection; a request's body is read, authorized,
 * rate-limited, parsed (request.h), tokenized and turned into engine jobs (engine.h). Streaming
 * responses are a libmicrohttpd callback response that blocks on the request's condition
 * variable until the engine thread has appended the next SSE event; non-streaming requests wait
 * in the handler and answer with one JSON body. Either way the waiting thread watches the socket,
 * so a client that goes away cancels its jobs and frees their slots at the next engine step.
 * Routes, fields and errors are documented in docs/openapi.yaml and docs/SERVER.md.
 */
#ifndef BN_SERVER_SERVER_H
#define BN_SERVER_SERVER_H

#include "bitnet.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct bn_server_config {
    const char *model_path;
    const char *host;            /* default 127.0.0.1 */
    int port;                    /* 0: any free port (bn_server_port tells which) */
    int parallel;                /* slots; default 4 */
    int n_ctx;                   /* per slot; 0: the model's training context */
    int n_threads;
    const char *const *api_keys; /* copied */
    size_t n_api_keys;
    double rate_limit_rpm, rate_limit_tpm; /* 0: unlimited */
    size_t max_body;             /* bytes; default 1 MiB */
    int queue;                   /* jobs waiting for a slot; default 64 */
    const char *model_alias;     /* NULL: file name without .gguf */
    bool log_json;
    const char *chat_format;     /* NULL: detected from the model */
    int prefill_chunk;           /* 0: 256 */
    int cache_ram_mb;            /* host store of prompt caches (engine.h); 0: off */
    bool no_prompt_cache;        /* no prefix reuse at all */
    bool context_shift;          /* full slots shift instead of ending (default off) */
    int keep;                    /* tokens a context shift keeps */
    bool int8_lm_head;           /* int8 LM head with per-row scales (default: F16) */
    const char *tune;            /* kernel tuning at load, "off" | "quick" | "full" (model/tune.h);
                                    NULL: BITNET_TUNE, else quick */
} bn_server_config;

typedef struct bn_server bn_server;

/* Starts listening (GET /health answers 503 until bn_server_load_model succeeds). On success the
 * caller owns *out (bn_server_free). */
bn_status bn_server_start(bn_server **out, const bn_server_config *config, bn_error *err);
/* Loads the model and tokenizer and starts the engine; then the server is ready. */
bn_status bn_server_load_model(bn_server *s, bn_error *err);
int bn_server_port(const bn_server *s);
const char *bn_server_model_id(const bn_server *s);
/* Stops accepting connections, lets running requests finish for up to timeout_s seconds, then
 * cancels the rest and stops every thread. */
void bn_server_stop(bn_server *s, double timeout_s);
void bn_server_free(bn_server *s);

/* One log line on stderr in the configured format (text or JSON): level and message. */
void bn_server_log(bn_server *s, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
