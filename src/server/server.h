/*
 * server.h: the OpenAI-compatible HTTP server behind `bitnet serve`.
 *
 * Design, one concern per file: transport.c runs libmicrohttpd (one thread per connection, TLS,
 * IPv4/IPv6, connection limits and deadlines, request framing checks, the request log);
 * routes.c holds the route table and the checks every request passes (Host, Origin and CORS,
 * media type, API key, rate limits); planning.c turns a parsed request (request.h) into engine
 * jobs (engine.h); completion.c builds the OpenAI JSON on the connection's thread from the events
 * the engine thread queues. The thread that waits for a generation watches the socket, so a
 * client that goes away cancels its jobs and frees their slots at the next engine step. Routes,
 * fields and errors are documented in docs/openapi.yaml and docs/SERVER.md.
 */
#ifndef BN_SERVER_SERVER_H
#define BN_SERVER_SERVER_H

#include "bitnet.h"
#include "runtime/speculative.h"

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
    /* transport and hardening (docs/SERVER.md, "Security") */
    const char *ssl_cert_file, *ssl_key_file; /* both: HTTPS (PEM files) */
    const char *const *allowed_hosts;   /* Host names accepted besides loopback names; "*": any */
    size_t n_allowed_hosts;
    const char *const *cors_origins;    /* origins answered with CORS headers; "*": any */
    size_t n_cors_origins;
    const char *const *trusted_proxies; /* peer addresses whose X-Forwarded-For names the client */
    size_t n_trusted_proxies;
    int max_connections;         /* open connections in all; default 1024 */
    int max_client_connections;  /* connections of one client address waiting for a request
                                    (head or body still arriving, or idle); a new one past this
                                    closes the client's oldest waiting one; 0: no limit
                                    (bitnet serve's default: 32) */
    double header_timeout;       /* seconds a connection may take to send a request head
                                    (idle keep-alive included); 0: none (bitnet serve: 10) */
    double body_timeout;         /* seconds from the head to the end of the body; 0: none
                                    (bitnet serve: 60) */
    int auth_fail_limit;         /* failed authentications per minute per client before 429;
                                    <= 0: unlimited (bitnet serve's default: 10) */
    int ready_queue_max;         /* GET /ready answers 503 while this many jobs or more wait for a
                                    slot; <= 0: the queue's size (at least 1) */
    bool no_webui;               /* no chat page: GET / answers 404 (webui.c) */
    bn_spec_config spec;         /* speculative decoding per slot (engine.h; mode NONE: off) */
    int device;                  /* bn_device (model/model.h): where the model runs (default CPU) */
    int device_index;            /* the GPU of cuda:N */
    bool device_fallback;        /* -ngl without --device: the CPU when no GPU is usable (a note) */
    bool kv_types_set;           /* kv_type_k / kv_type_v given (else the F16 cache) */
    uint32_t kv_type_k, kv_type_v; /* KV cache types (-ctk / -ctv: F16, F32, Q8_0) */
    const char *draft_model_path; /* --spec draft: loaded with the model, vocabulary checked */
} bn_server_config;

typedef struct bn_server bn_server;

/* Starts listening (GET /health answers 503 until bn_server_load_model succeeds). On success the
 * caller owns *out (bn_server_free). */
bn_status bn_server_start(bn_server **out, const bn_server_config *config, bn_error *err);
/* Loads the model and tokenizer and starts the engine; then the server is ready. */
bn_status bn_server_load_model(bn_server *s, bn_error *err);
int bn_server_port(const bn_server *s);
const char *bn_server_model_id(const bn_server *s);
/* The drain: closes the listening socket (new connections are refused), makes /ready and
 * /health answer 503 at once, closes idle keep-alive connections and answers every later request
 * with Connection: close (a load balancer's pooled connection moves to another replica); running
 * requests go on. */
void bn_server_begin_stop(bn_server *s);
/* Requests (generations) still running. */
int bn_server_inflight(const bn_server *s);
/* bn_server_begin_stop, then waits up to timeout_s seconds for running requests, cancels the
 * rest (a cut request answers 503 server_shutdown, a cut stream ends with that error and no
 * [DONE]) and stops every thread. */
void bn_server_stop(bn_server *s, double timeout_s);
/* The address clients reach: "127.0.0.1", "[::1]", a host name. */
const char *bn_server_url_host(const bn_server *s);
bool bn_server_tls(const bn_server *s);
void bn_server_free(bn_server *s);

/* One log line on stderr in the configured format (text or JSON): level and message. */
void bn_server_log(bn_server *s, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
