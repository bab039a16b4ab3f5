/*
 * server_internal.h: the server's shared state and the calls between its parts: transport.c
 * (libmicrohttpd, connections, responses), routes.c (route table and request checks),
 * utility_routes.c (tokenize, detokenize, props), embeddings.c (POST /v1/embeddings), webui.c
 * (the chat page) and server.c (lifecycle, logging). Not a public interface.
 */
#ifndef BN_SERVER_SERVER_INTERNAL_H
#define BN_SERVER_SERVER_INTERNAL_H

#include "chat/chat.h"
#include "model/model.h"
#include "server/auth.h"
#include "server/completion.h"
#include "server/engine.h"
#include "server/metrics.h"
#include "server/request.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

enum { BN_STATE_LOADING = 0, BN_STATE_READY = 1, BN_STATE_STOPPING = 2, BN_STATE_BROKEN = 3 };

/* Where a connection is: waiting for a request head (new or idle keep-alive), receiving a body,
 * or with a request being answered. */
typedef enum bn_conn_phase { BN_CONN_WAITING = 0, BN_CONN_BODY, BN_CONN_BUSY } bn_conn_phase;

/* One open connection (the libmicrohttpd socket context), linked in the server's list. */
typedef struct bn_conn {
    struct bn_conn *prev, *next;
    int fd;
    char peer[64];          /* the peer's address as text */
    bool from_proxy;        /* the peer is a --trusted-proxy */
    bn_conn_phase phase;
    double since_ms;        /* when the phase began */
    bool closing;           /* shut down by a limit or deadline */
} bn_conn;

/* One request on a connection (libmicrohttpd's per-request context). */
typedef struct bn_request_ctx {
    bn_server *srv;
    bn_conn *conn_state;
    char *body;
    size_t len, cap;
    bool too_large, answered;
    const char *endpoint;   /* the route's name for metrics and logs; "other" */
    char method[16];
    char client[64];        /* the peer, or X-Forwarded-For's last entry behind a trusted proxy */
    const char *origin;     /* allowed CORS origin to answer with (NULL: none) */
    double start_ms;
    int status;
    bn_completion *completion; /* a generation's, for the log's token counts (a reference) */
    int embed_tokens;       /* an embeddings request's tokens, for the log's prompt_tokens */
    double reserved_tokens; /* tokens-per-minute reservation, settled when the request ends */
    int key;                /* the API key's index */
    bool inflight;          /* counted in bn_server.inflight until the response has gone */
    const char *const *extra_headers; /* name, value, ..., NULL: added to the next response */
    char slot_hint[24];     /* a generation's routing key (routing_key.h): X-Bitnet-Slot-Hint */
} bn_request_ctx;

struct bn_server {
    bn_server_config cfg;
    /* owned copies of the config's strings and lists */
    char *model_path, *host, *chat_format_name, *ssl_cert, *ssl_key, *draft_model_path;
    bn_model *draft_model; /* --spec draft (NULL: none) */
    char device_desc[64];  /* "cpu" or "cuda:N": where the model runs, for /props, /v1/models, /metrics */
    char **allowed_hosts, **cors_origins, **trusted_proxies;
    char url_host[300];
    bool loopback;          /* bound to a loopback address */
    char model_id[256];
    long created;
    struct MHD_Daemon *daemon;
    int port;
    bool listen_closed;
    atomic_int state;
    atomic_int inflight;
    bn_model *model;
    int model_fd;           /* the model file, to notice it shrinking under its mapping */
    long long model_size;
    bn_tokenizer *tok;
    const bn_chat_format *format;
    bn_engine *engine;
    bn_metrics metrics;
    bn_auth auth;
    pthread_mutex_t log_mu;
    /* connections (transport.c) */
    pthread_mutex_t conn_mu;
    bn_conn *conns;
    int n_conns;
    pthread_t watchdog;
    bool watchdog_running;
    atomic_bool watchdog_stop;
};

/* transport.c */
bn_status bn_transport_start(bn_server *s, bn_error *err);
void bn_transport_close_listener(bn_server *s);
void bn_transport_stop(bn_server *s);
/* Responses: text is owned (freed by libmicrohttpd); every response carries the request's CORS
 * headers; retry_after > 0 adds Retry-After, allow adds Allow, close adds Connection: close. */
enum MHD_Result bn_respond(bn_request_ctx *c, struct MHD_Connection *conn, int status, char *text,
                           const char *type, int retry_after, const char *allow, bool close);
enum MHD_Result bn_respond_json(bn_request_ctx *c, struct MHD_Connection *conn, int status, json_t *body,
                                int retry_after, const char *allow);
enum MHD_Result bn_respond_error(bn_request_ctx *c, struct MHD_Connection *conn, const bn_api_error *e,
                                 int retry_after);
/* A streaming response reading c->completion (which it holds a reference of). */
enum MHD_Result bn_respond_stream(bn_request_ctx *c, struct MHD_Connection *conn);
/* True when the peer has closed its end of the connection. */
bool bn_peer_closed(struct MHD_Connection *conn);
void bn_conn_set_phase(bn_server *s, bn_conn *k, bn_conn_phase phase);

/* routes.c: answers a request whose head and body have arrived. */
enum MHD_Result bn_route_request(bn_request_ctx *c, struct MHD_Connection *conn, const char *url);
/* True when addr (text) is one of the --trusted-proxy addresses. */
bool bn_is_trusted_proxy(const bn_server *s, const char *addr);

/* server.c: log lines (under the log mutex), the ISO-8601 UTC time they carry */
void bn_server_write_log(bn_server *s, const char *line);
void bn_server_log_time(char ts[32]);
/* utility_routes.c: POST /tokenize, POST /detokenize, GET /props, POST /apply-template
 * (llama-server's shapes). */
enum MHD_Result bn_route_tokenize(bn_request_ctx *c, struct MHD_Connection *conn, const char *url);
enum MHD_Result bn_route_detokenize(bn_request_ctx *c, struct MHD_Connection *conn, const char *url);
enum MHD_Result bn_route_props(bn_request_ctx *c, struct MHD_Connection *conn, const char *url);
enum MHD_Result bn_route_apply_template(bn_request_ctx *c, struct MHD_Connection *conn, const char *url);
/* embeddings.c: POST /v1/embeddings (an engine job; see embeddings.h). */
enum MHD_Result bn_route_embeddings(bn_request_ctx *c, struct MHD_Connection *conn, const char *url);
/* webui.c: GET /, the chat page (unless --no-webui). */
enum MHD_Result bn_route_chat_page(bn_request_ctx *c, struct MHD_Connection *conn, const char *url);

/* routes.c: why GET /ready answers 503 ("loading", "draining", "model_file_changed",
 * "queue_full"), or NULL when ready. */
const char *bn_server_not_ready_reason(bn_server *s);
/* True while the server drains (bn_server_begin_stop was called). */
bool bn_server_draining(const bn_server *s);

/* server.c: whether the model file still has the size it had when it was mapped; on a change
 * the server turns BROKEN (/health 503, generations 503) and *e says why. */
bool bn_server_model_intact(bn_server *s, bn_api_error *e);

#endif
