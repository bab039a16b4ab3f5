/*
 * transport.c: the server's HTTP transport on libmicrohttpd (see server.h): the listening socket
 * (IPv4, IPv6, host names, TLS), the connection table with its per-client limit and its header and
 * body deadlines, request framing checks, body collection, responses with their CORS headers, the
 * SSE stream reader and the request log.
 *
 * Hostile clients: a connection that has not sent a complete request head within
 * --header-timeout, or its body within --body-timeout, is shut down by the watchdog thread; a
 * client address with more than --max-client-connections connections waiting for a request loses
 * its oldest waiting one, so a flood of slow connections from one address never locks others (or
 * the same address's next real request) out. Two Content-Length values, or Content-Length with
 * Transfer-Encoding, answer 400 and close the connection (request smuggling).
 */
#include "server/server_internal.h"

#include "server/wire_json.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- responses */

enum MHD_Result bn_respond(bn_request_ctx *c, struct MHD_Connection *conn, int status, char *text,
                           const char *type, int retry_after, const char *allow, bool close) {
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
    /* while draining, a keep-alive connection ends with this response: the client's (or the
     * load balancer's) next request opens a connection, to another replica */
    if (close || bn_server_draining(c->srv)) MHD_add_response_header(r, "Connection", "close");
    if (c->slot_hint[0]) MHD_add_response_header(r, "X-Bitnet-Slot-Hint", c->slot_hint);
    if (c->origin) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", c->origin);
        MHD_add_response_header(r, "Access-Control-Expose-Headers", "Retry-After, X-Bitnet-Slot-Hint");
    }
    if (c->srv->cfg.n_cors_origins) MHD_add_response_header(r, "Vary", "Origin");
    for (const char *const *h = c->extra_headers; h && h[0] && h[1]; h += 2) MHD_add_response_header(r, h[0], h[1]);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    c->status = status;
    c->answered = true;
    bn_metrics_request(&c->srv->metrics, c->endpoint, status);
    return ret;
}

enum MHD_Result bn_respond_json(bn_request_ctx *c, struct MHD_Connection *conn, int status, json_t *body,
                                int retry_after, const char *allow) {
    char *text = bn_json_dump(body);
    if (!text) text = strdup("{}");
    return bn_respond(c, conn, status, text, "application/json", retry_after, allow, false);
}

enum MHD_Result bn_respond_error(bn_request_ctx *c, struct MHD_Connection *conn, const bn_api_error *e,
                                 int retry_after) {
    return bn_respond_json(c, conn, e->status, bn_api_error_json(e), retry_after, NULL);
}

bool bn_peer_closed(struct MHD_Connection *conn) {
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

typedef struct stream_reader {
    bn_completion *completion;
    struct MHD_Connection *conn;
} stream_reader;

/* Blocks until the completion has SSE text (or ends); a client that went away cancels it. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_reader *rd = cls;
    for (;;) {
        ssize_t n = bn_completion_read_stream(rd->completion, buf, max, 50);
        if (n > 0) return n;
        if (n < 0) return MHD_CONTENT_READER_END_OF_STREAM;
        if (bn_peer_closed(rd->conn)) {
            bn_completion_cancel(rd->completion);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void stream_free(void *cls) {
    stream_reader *rd = cls;
    bn_completion_cancel(rd->completion); /* no-op once it has finished */
    bn_completion_unref(rd->completion);
    free(rd);
}

enum MHD_Result bn_respond_stream(bn_request_ctx *c, struct MHD_Connection *conn) {
    stream_reader *rd = malloc(sizeof *rd);
    if (!rd) return MHD_NO;
    rd->completion = c->completion;
    rd->conn = conn;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, rd, stream_free);
    if (!resp) {
        free(rd);
        return MHD_NO;
    }
    bn_completion_ref(rd->completion); /* the request context keeps its own for the log */
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    if (c->slot_hint[0]) MHD_add_response_header(resp, "X-Bitnet-Slot-Hint", c->slot_hint);
    if (c->origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", c->origin);
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", "X-Bitnet-Slot-Hint");
    }
    if (c->srv->cfg.n_cors_origins) MHD_add_response_header(resp, "Vary", "Origin");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    c->status = 200;
    c->answered = true;
    bn_metrics_request(&c->srv->metrics, c->endpoint, 200);
    return ret;
}

/* ---------------------------------------------------------------- connections */

/* The peer's numeric address; IPv4-mapped IPv6 addresses as plain IPv4. */
static void peer_text(const struct sockaddr *sa, char *out, size_t cap) {
    snprintf(out, cap, "unknown");
    if (!sa) return;
    socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (getnameinfo(sa, len, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST) != 0) snprintf(out, cap, "unknown");
    if (!strncmp(out, "::ffff:", 7) && strchr(out + 7, '.')) memmove(out, out + 7, strlen(out + 7) + 1);
}

void bn_conn_set_phase(bn_server *s, bn_conn *k, bn_conn_phase phase) {
    if (!k) return;
    pthread_mutex_lock(&s->conn_mu);
    k->phase = phase;
    k->since_ms = bn_engine_now_ms();
    pthread_mutex_unlock(&s->conn_mu);
}

/* Shuts a connection's socket down: its thread sees the end of the stream and closes it. Called
 * with conn_mu held (the connection cannot close meanwhile, so fd is still its socket). */
static void conn_shut(bn_server *s, bn_conn *k, bn_close_reason why) {
    if (k->closing) return;
    k->closing = true;
    shutdown(k->fd, SHUT_RDWR);
    bn_metrics_closed(&s->metrics, why);
}

/* A new connection: in the table; past the client's limit of waiting connections, its oldest
 * waiting one is closed. */
static void connection_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    bn_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        bn_conn *k = *socket_context;
        if (!k) return;
        pthread_mutex_lock(&s->conn_mu);
        if (k->prev) k->prev->next = k->next;
        else s->conns = k->next;
        if (k->next) k->next->prev = k->prev;
        s->n_conns--;
        pthread_mutex_unlock(&s->conn_mu);
        bn_metrics_connections(&s->metrics, -1);
        free(k);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *fdi = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ai = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    /* SSE events are small writes: without TCP_NODELAY, Nagle's algorithm holds each one until the
     * client's delayed ACK (tens of milliseconds of added inter-token latency). */
    int one = 1;
    if (fdi) setsockopt(fdi->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bn_conn *k = calloc(1, sizeof *k);
    if (!k || !fdi) {
        free(k);
        return;
    }
    k->fd = fdi->connect_fd;
    peer_text(ai ? ai->client_addr : NULL, k->peer, sizeof k->peer);
    k->from_proxy = bn_is_trusted_proxy(s, k->peer);
    k->phase = BN_CONN_WAITING;
    k->since_ms = bn_engine_now_ms();
    pthread_mutex_lock(&s->conn_mu);
    if (!k->from_proxy && s->cfg.max_client_connections > 0) {
        int waiting = 0;
        bn_conn *oldest = NULL;
        for (bn_conn *o = s->conns; o; o = o->next) {
            if (o->closing || o->phase == BN_CONN_BUSY || strcmp(o->peer, k->peer) != 0) continue;
            waiting++;
            if (!oldest || o->since_ms < oldest->since_ms) oldest = o;
        }
        if (waiting >= s->cfg.max_client_connections && oldest) conn_shut(s, oldest, BN_CLOSE_CLIENT_LIMIT);
    }
    k->next = s->conns;
    if (s->conns) s->conns->prev = k;
    s->conns = k;
    s->n_conns++;
    pthread_mutex_unlock(&s->conn_mu);
    bn_metrics_connections(&s->metrics, +1);
    *socket_context = k;
}

/* Every 200 ms: connections past their header or body deadline are shut down; while the server
 * drains, so are idle ones (a pooled keep-alive connection must not bring new requests to a
 * replica on its way out). */
static void *watchdog_main(void *arg) {
    bn_server *s = arg;
    while (!atomic_load(&s->watchdog_stop)) {
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
        double now = bn_engine_now_ms();
        bool draining = bn_server_draining(s);
        pthread_mutex_lock(&s->conn_mu);
        for (bn_conn *k = s->conns; k; k = k->next) {
            double age_s = (now - k->since_ms) / 1e3;
            if (draining && k->phase == BN_CONN_WAITING)
                conn_shut(s, k, BN_CLOSE_DRAIN);
            else if (k->phase == BN_CONN_WAITING && s->cfg.header_timeout > 0 && age_s > s->cfg.header_timeout)
                conn_shut(s, k, BN_CLOSE_HEADER_TIMEOUT);
            else if (k->phase == BN_CONN_BODY && s->cfg.body_timeout > 0 && age_s > s->cfg.body_timeout)
                conn_shut(s, k, BN_CLOSE_BODY_TIMEOUT);
        }
        pthread_mutex_unlock(&s->conn_mu);
    }
    return NULL;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)(c | 32);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* URL unescaping that never decodes %00: a NUL would cut the path short ("/health%00x" answering
 * as "/health"); the escape stays as it is and the path matches no route. */
static size_t unescape_cb(void *cls, struct MHD_Connection *conn, char *uri) {
    (void)cls;
    (void)conn;
    char *w = uri;
    for (const char *r = uri; *r;) {
        int hi = r[0] == '%' ? hex_digit(r[1]) : -1;
        int lo = hi >= 0 ? hex_digit(r[2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - uri);
}

/* ---------------------------------------------------------------- requests */

typedef struct framing {
    int n_length;
    bool lengths_differ, has_transfer_encoding, has_host;
    const char *first_length;
} framing;

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    framing *f = cls;
    if (!strcasecmp(key, "Content-Length")) {
        if (f->n_length++ && strcmp(f->first_length, value ? value : "") != 0) f->lengths_differ = true;
        if (!f->first_length) f->first_length = value ? value : "";
    } else if (!strcasecmp(key, "Transfer-Encoding")) {
        f->has_transfer_encoding = true;
    } else if (!strcasecmp(key, "Host")) {
        f->has_host = true;
    }
    return MHD_YES;
}

/* Checks a request head before any body is read: ambiguous framing and HTTP/1.1 without Host
 * answer 400 and close the connection (nothing after them on it is read as a request). */
static bool head_refused(bn_request_ctx *c, struct MHD_Connection *conn, const char *version, enum MHD_Result *ret) {
    framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_header, &f);
    const char *why = NULL;
    bn_reject_reason reason = BN_REJECT_FRAMING;
    if (f.lengths_differ) why = "the request has two different Content-Length headers";
    else if (f.n_length && f.has_transfer_encoding) why = "the request has both Content-Length and Transfer-Encoding";
    else if (!f.has_host && version && !strcmp(version, "HTTP/1.1"))
        why = "an HTTP/1.1 request needs a Host header", reason = BN_REJECT_HOST;
    if (!why) return false;
    bn_metrics_reject(&c->srv->metrics, reason);
    bn_api_error e;
    bn_api_error_set(&e, 400, "invalid_request_error", NULL, "bad_request", "%s", why);
    *ret = bn_respond(c, conn, 400, bn_json_dump(bn_api_error_json(&e)), "application/json", 0, NULL, true);
    return true;
}

/* The client address a request is accounted to: the peer, or behind a trusted proxy the last
 * address of X-Forwarded-For. */
static void request_client(bn_request_ctx *c, struct MHD_Connection *conn) {
    bn_conn *k = c->conn_state;
    snprintf(c->client, sizeof c->client, "%s", k ? k->peer : "unknown");
    if (!k || !k->from_proxy) return;
    const char *xff = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-For");
    if (!xff) return;
    const char *last = strrchr(xff, ',');
    last = last ? last + 1 : xff;
    while (*last == ' ') last++;
    size_t n = strcspn(last, " ");
    if (n > 0 && n < sizeof c->client) snprintf(c->client, sizeof c->client, "%.*s", (int)n, last);
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_size,
                                 void **con_cls) {
    bn_server *s = cls;
    bn_request_ctx *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        c->srv = s;
        c->endpoint = "other";
        c->start_ms = bn_engine_now_ms();
        snprintf(c->method, sizeof c->method, "%s", method);
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        c->conn_state = info ? info->socket_context : NULL;
        *con_cls = c;
        request_client(c, conn);
        bn_conn_set_phase(s, c->conn_state, BN_CONN_BODY);
        enum MHD_Result ret;
        if (head_refused(c, conn, version, &ret)) return ret;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        unsigned long long length = cl ? strtoull(cl, NULL, 10) : 0;
        if (length > s->cfg.max_body) c->too_large = true;
        /* A body somewhat over the limit is read and dropped, so the client (still writing) gets
         * the 413 reliably; a huge one is answered at once and the connection closed unread. */
        if (length / 8 > s->cfg.max_body) {
            bn_conn_set_phase(s, c->conn_state, BN_CONN_BUSY);
            return bn_route_request(c, conn, url);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!c->too_large) {
            if (c->len + *upload_size > s->cfg.max_body) {
                c->too_large = true;
                free(c->body);
                c->body = NULL;
                c->len = c->cap = 0;
            } else if (!bn_text_append(&c->body, &c->len, &c->cap, upload_data, *upload_size)) {
                return MHD_NO;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (c->answered) return MHD_YES;
    bn_conn_set_phase(s, c->conn_state, BN_CONN_BUSY);
    return bn_route_request(c, conn, url);
}

/* One log line per request: text, or with --log-format json an object of fields. */
static void log_request(bn_server *s, bn_request_ctx *c, bool early) {
    bn_completion_counts counts = {0};
    if (c->completion) bn_completion_get_counts(c->completion, &counts);
    else counts.prompt_tokens = c->embed_tokens;
    double ms = bn_engine_now_ms() - c->start_ms;
    if (s->cfg.log_json) {
        char ts[32];
        bn_server_log_time(ts);
        json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:o,s:i,s:f,s:s,s:i,s:i,s:i,s:b}", "time", ts, "level", "info", "event",
                              "request", "method", bn_json_text(c->method, strlen(c->method)), "path",
                              json_string(c->endpoint), "status", c->status, "duration_ms", ms, "client", c->client,
                              "prompt_tokens", counts.prompt_tokens, "completion_tokens", counts.completion_tokens,
                              "cached_tokens", counts.cached_tokens, "closed_early", early);
        if (o && c->completion) {
            json_object_set_new(o, "id", json_string(bn_completion_id(c->completion)));
            json_object_set_new(o, "finish_reason", counts.cut ? json_string("server_shutdown")
                                                    : counts.finish ? json_string(counts.finish) : json_null());
        }
        char *text = bn_json_dump(o);
        if (text) bn_server_write_log(s, text);
        free(text);
        return;
    }
    bn_server_log(s, "info", "%s %s %d %.1fms client=%s prompt_tokens=%d completion_tokens=%d cached_tokens=%d%s%s",
                  c->method, c->endpoint, c->status, ms, c->client, counts.prompt_tokens, counts.completion_tokens,
                  counts.cached_tokens, counts.cut ? " (cut by shutdown)" : "", early ? " (connection closed early)" : "");
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)conn;
    bn_server *s = cls;
    bn_request_ctx *c = *con_cls;
    if (!c) return;
    log_request(s, c, toe != MHD_REQUEST_TERMINATED_COMPLETED_OK);
    if (c->completion) {
        bn_completion_counts counts;
        bn_completion_get_counts(c->completion, &counts);
        double used = counts.prompt_tokens + counts.completion_tokens;
        if (c->reserved_tokens > used)
            bn_auth_refund_tokens(&s->auth, c->key, c->reserved_tokens - used, bn_engine_now_ms() / 1e3);
        bn_completion_unref(c->completion);
    }
    if (c->inflight) atomic_fetch_sub(&s->inflight, 1);
    bn_conn_set_phase(s, c->conn_state, BN_CONN_WAITING);
    free(c->body);
    free(c);
    *con_cls = NULL;
}

/* ---------------------------------------------------------------- listening */

static bool is_loopback(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a)) return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

/* Reads a whole PEM file into memory (caller frees). */
static char *read_file(const char *path, const char *option, bn_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        bn_error_set(err, BN_ERR_IO, "%s %s: cannot open: %s", option, path, strerror(errno));
        return NULL;
    }
    char *data = NULL;
    size_t len = 0, cap = 0;
    char buf[4096];
    size_t n;
    bool ok = true;
    while (ok && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        ok = len + n <= (1u << 20) && bn_text_append(&data, &len, &cap, buf, n);
    }
    fclose(f);
    if (!ok || !data) {
        free(data);
        bn_error_set(err, BN_ERR_IO, "%s %s: %s", option, path, ok ? "empty file" : "larger than 1 MiB");
        return NULL;
    }
    return data;
}

/* At least max_connections + a margin of descriptors (the model, logs, the engine's threads). */
static void raise_fd_limit(bn_server *s) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t want = (rlim_t)s->cfg.max_connections + 128;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        int fit = rl.rlim_cur > 192 ? (int)rl.rlim_cur - 128 : 64;
        bn_server_log(s, "warn", "--max-connections %d: the open-file limit is %llu; serving at most %d connections",
                      s->cfg.max_connections, (unsigned long long)rl.rlim_cur, fit);
        s->cfg.max_connections = fit;
    }
}

bn_status bn_transport_start(bn_server *s, bn_error *err) {
    const char *host = s->cfg.host;
    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0 || !res)
        return bn_error_set(err, BN_ERR_INVALID, "--host %s: not an address or a known host name (%s)", host,
                            gai_strerror(gai));
    const struct addrinfo *pick = res;
    for (const struct addrinfo *a = res; a; a = a->ai_next) /* a name with both: IPv4 first */
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    struct sockaddr_storage addr;
    memcpy(&addr, pick->ai_addr, pick->ai_addrlen);
    freeaddrinfo(res);
    bool v6 = addr.ss_family == AF_INET6;
    s->loopback = is_loopback((struct sockaddr *)&addr);
    bool any6 = v6 && IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&addr)->sin6_addr);
    if (strchr(host, ':')) snprintf(s->url_host, sizeof s->url_host, "[%s]", host);
    else snprintf(s->url_host, sizeof s->url_host, "%s", host);

    bool tls = s->cfg.ssl_cert_file || s->cfg.ssl_key_file;
    if (tls && !(s->cfg.ssl_cert_file && s->cfg.ssl_key_file))
        return bn_error_set(err, BN_ERR_INVALID, "HTTPS needs both --ssl-cert-file and --ssl-key-file");
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "this libmicrohttpd has no TLS support");
    if (tls) {
        if (!(s->ssl_cert = read_file(s->cfg.ssl_cert_file, "--ssl-cert-file", err))) return err->code;
        if (!(s->ssl_key = read_file(s->cfg.ssl_key_file, "--ssl-key-file", err))) return err->code;
    }
    raise_fd_limit(s);
    /* poll(), not select(): connection sockets past FD_SETSIZE (1024) must work. No
     * MHD_OPTION_LISTENING_ADDRESS_REUSE (SO_REUSEPORT): a second server on a port in use fails
     * here instead of sharing the traffic. */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC;
    if (v6) flags |= any6 ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
    if (tls) flags |= MHD_USE_TLS;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)s->cfg.port, NULL, NULL, access_cb, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, completed_cb, s, MHD_OPTION_NOTIFY_CONNECTION, connection_cb, s,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_cb, s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, s->ssl_cert,
        MHD_OPTION_HTTPS_MEM_KEY, s->ssl_key, MHD_OPTION_END);
    if (!s->daemon) {
        int e = errno;
        return bn_error_set(err, BN_ERR_IO, "cannot listen on %s:%d (%s)", s->url_host, s->cfg.port,
                            tls ? "bad certificate or key, or the address is in use" : strerror(e));
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->cfg.port;
    atomic_store(&s->watchdog_stop, false);
    if (pthread_create(&s->watchdog, NULL, watchdog_main, s) != 0)
        return bn_error_set(err, BN_ERR_NOMEM, "cannot start the connection watchdog thread");
    s->watchdog_running = true;
    return BN_OK;
}

void bn_transport_close_listener(bn_server *s) {
    if (!s->daemon || s->listen_closed) return;
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd); /* new connections are refused, not left hanging */
    s->listen_closed = true;
}

void bn_transport_stop(bn_server *s) {
    if (s->daemon) {
        bn_transport_close_listener(s);
        MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
    }
    if (s->watchdog_running) {
        atomic_store(&s->watchdog_stop, true);
        pthread_join(s->watchdog, NULL);
        s->watchdog_running = false;
    }
}
