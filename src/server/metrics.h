/*
 * metrics.h: the server's counters and latency histograms, rendered as Prometheus text for
 * GET /metrics.
 *
 * Design: one mutex-protected struct; counters are cumulative since start, histograms use fixed
 * bucket bounds (seconds) chosen for CPU token latencies. Gauges (queue depth, busy slots, KV
 * cache use) are read from the engine at render time, not stored here.
 */
#ifndef BN_SERVER_METRICS_H
#define BN_SERVER_METRICS_H

#include "server/engine.h"

#include <pthread.h>
#include <stdint.h>

typedef enum bn_reject_reason {
    BN_REJECT_AUTH = 0,
    BN_REJECT_RATE_LIMIT,
    BN_REJECT_OVERLOAD,
    BN_REJECT_TOO_LARGE,
    BN_REJECT_AUTH_LIMIT,  /* too many failed authentications from one client */
    BN_REJECT_HOST,        /* Host header not allowed (DNS rebinding) or missing */
    BN_REJECT_ORIGIN,      /* cross-origin request from an origin not in --cors-origin */
    BN_REJECT_MEDIA_TYPE,  /* POST body not application/json */
    BN_REJECT_FRAMING,     /* conflicting Content-Length / Transfer-Encoding */
    BN_REJECT_COUNT
} bn_reject_reason;

/* Why the server closed a connection on its own. */
typedef enum bn_close_reason {
    BN_CLOSE_CLIENT_LIMIT = 0, /* the client's oldest waiting connection, past --max-client-connections */
    BN_CLOSE_HEADER_TIMEOUT,   /* no complete request head within --header-timeout */
    BN_CLOSE_BODY_TIMEOUT,     /* no complete body within --body-timeout */
    BN_CLOSE_DRAIN,            /* idle while the server drains */
    BN_CLOSE_COUNT
} bn_close_reason;

#define BN_METRICS_MAX_SERIES 128
#define BN_METRICS_BUCKETS 12
#define BN_METRICS_RATE_WINDOW 10 /* seconds the tokens-per-second gauges average over */

typedef struct bn_histogram {
    uint64_t counts[BN_METRICS_BUCKETS + 1]; /* last: +Inf */
    uint64_t n;
    double sum;
} bn_histogram;

typedef struct bn_metrics {
    pthread_mutex_t mu;
    struct {
        char endpoint[40];
        int status;
        uint64_t count;
    } requests[BN_METRICS_MAX_SERIES];
    int n_requests;
    uint64_t prompt_tokens, generated_tokens;
    uint64_t rejected[BN_REJECT_COUNT];
    uint64_t closed[BN_CLOSE_COUNT];
    int open_connections;
    bn_histogram ttft, itl;
    /* tokens generated per whole second of the monotonic clock, a ring over the rate window
     * (and the second each cell counts) */
    uint64_t rate_tokens[BN_METRICS_RATE_WINDOW + 1];
    int64_t rate_second[BN_METRICS_RATE_WINDOW + 1];
} bn_metrics;

/* What the server state adds to /metrics (read at render time). */
typedef struct bn_metrics_state {
    int ready;             /* 1: /ready answers 200 */
    int draining;          /* 1: stopping after SIGTERM/SIGINT */
    int inflight;          /* generations being answered */
    int ready_queue_max;   /* /ready's queue bound */
    const char *device;    /* "cpu", "cuda:N"; NULL or "" while loading */
    const char *gpu;       /* the GPU's name on CUDA, else NULL */
} bn_metrics_state;

void bn_metrics_init(bn_metrics *m);
void bn_metrics_destroy(bn_metrics *m);
/* endpoint: the route ("/v1/completions"), or "other" for unknown paths. */
void bn_metrics_request(bn_metrics *m, const char *endpoint, int status);
void bn_metrics_reject(bn_metrics *m, bn_reject_reason reason);
void bn_metrics_closed(bn_metrics *m, bn_close_reason reason);
/* delta: +1 when a connection opens, -1 when it closes. */
void bn_metrics_connections(bn_metrics *m, int delta);
void bn_metrics_tokens(bn_metrics *m, int n_prompt, int n_generated);
void bn_metrics_ttft(bn_metrics *m, double seconds);
void bn_metrics_itl(bn_metrics *m, double seconds);
/* An engine observer that feeds m. */
bn_engine_observer bn_metrics_observer(bn_metrics *m);

/* One generated token now (for the tokens-per-second gauge). */
void bn_metrics_token_now(bn_metrics *m, double now_ms);

/* The Prometheus text (caller frees); stats may be NULL while the model loads. */
char *bn_metrics_render(bn_metrics *m, const bn_engine_stats *stats, const bn_metrics_state *state);

#endif
