/*
 * metrics.c: counters, histograms and their Prometheus text exposition (see metrics.h).
 */
#include "server/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double ttft_bounds[BN_METRICS_BUCKETS] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                       1, 2.5, 5, 10, 30, 60};
static const double itl_bounds[BN_METRICS_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1, 0.25, 0.5, 1, 2.5, 5};
static const char *const reject_names[BN_REJECT_COUNT] = {"auth", "rate_limit", "overload", "too_large",
                                                          "auth_rate_limit", "host", "origin", "media_type",
                                                          "framing"};
static const char *const close_names[BN_CLOSE_COUNT] = {"client_limit", "header_timeout", "body_timeout", "drain"};

void bn_metrics_init(bn_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void bn_metrics_destroy(bn_metrics *m) { pthread_mutex_destroy(&m->mu); }

void bn_metrics_request(bn_metrics *m, const char *endpoint, int status) {
    pthread_mutex_lock(&m->mu);
    int i = 0;
    for (; i < m->n_requests; i++)
        if (m->requests[i].status == status && !strcmp(m->requests[i].endpoint, endpoint)) break;
    if (i == m->n_requests && i < BN_METRICS_MAX_SERIES) {
        snprintf(m->requests[i].endpoint, sizeof m->requests[i].endpoint, "%s", endpoint);
        m->requests[i].status = status;
        m->n_requests++;
    }
    if (i < m->n_requests) m->requests[i].count++;
    pthread_mutex_unlock(&m->mu);
}

void bn_metrics_reject(bn_metrics *m, bn_reject_reason reason) {
    pthread_mutex_lock(&m->mu);
    m->rejected[reason]++;
    pthread_mutex_unlock(&m->mu);
}

void bn_metrics_closed(bn_metrics *m, bn_close_reason reason) {
    pthread_mutex_lock(&m->mu);
    m->closed[reason]++;
    pthread_mutex_unlock(&m->mu);
}

void bn_metrics_connections(bn_metrics *m, int delta) {
    pthread_mutex_lock(&m->mu);
    m->open_connections += delta;
    pthread_mutex_unlock(&m->mu);
}

void bn_metrics_tokens(bn_metrics *m, int n_prompt, int n_generated) {
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += (uint64_t)n_prompt;
    m->generated_tokens += (uint64_t)n_generated;
    pthread_mutex_unlock(&m->mu);
}

static void observe(bn_metrics *m, bn_histogram *h, const double *bounds, double v) {
    pthread_mutex_lock(&m->mu);
    int b = 0;
    while (b < BN_METRICS_BUCKETS && v > bounds[b]) b++;
    h->counts[b]++;
    h->n++;
    h->sum += v;
    pthread_mutex_unlock(&m->mu);
}

void bn_metrics_ttft(bn_metrics *m, double s) { observe(m, &m->ttft, ttft_bounds, s); }
void bn_metrics_itl(bn_metrics *m, double s) { observe(m, &m->itl, itl_bounds, s); }

void bn_metrics_token_now(bn_metrics *m, double now_ms) {
    int64_t second = (int64_t)(now_ms / 1e3);
    int cell = (int)(second % (BN_METRICS_RATE_WINDOW + 1));
    pthread_mutex_lock(&m->mu);
    if (m->rate_second[cell] != second) {
        m->rate_second[cell] = second;
        m->rate_tokens[cell] = 0;
    }
    m->rate_tokens[cell]++;
    pthread_mutex_unlock(&m->mu);
}

/* Called with m->mu held. The current second is still filling: the window is the whole seconds
 * before it. */
static double token_rate_locked(const bn_metrics *m, double now_ms) {
    int64_t now_s = (int64_t)(now_ms / 1e3);
    uint64_t sum = 0;
    for (int i = 0; i <= BN_METRICS_RATE_WINDOW; i++)
        if (m->rate_second[i] < now_s && m->rate_second[i] >= now_s - BN_METRICS_RATE_WINDOW) sum += m->rate_tokens[i];
    return (double)sum / BN_METRICS_RATE_WINDOW;
}

static void obs_first(void *u, double s) {
    bn_metrics_ttft(u, s);
    bn_metrics_token_now(u, bn_engine_now_ms());
}
static void obs_inter(void *u, double s) {
    bn_metrics_itl(u, s);
    bn_metrics_token_now(u, bn_engine_now_ms());
}
static void obs_tokens(void *u, int p, int g) { bn_metrics_tokens(u, p, g); }

bn_engine_observer bn_metrics_observer(bn_metrics *m) {
    return (bn_engine_observer){obs_first, obs_inter, obs_tokens, m};
}

typedef struct text_buf {
    char *data;
    size_t len, cap;
    bool failed;
} text_buf;

static void put(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text_buf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->data && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
}

static void put_histogram(text_buf *b, const char *name, const char *help, const bn_histogram *h,
                          const double *bounds) {
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < BN_METRICS_BUCKETS; i++) {
        cum += h->counts[i];
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[BN_METRICS_BUCKETS];
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)cum, name,
        h->sum, name, (unsigned long long)h->n);
}

/* A Prometheus label value: s without the characters that would need escaping (quote, backslash,
 * line breaks become '_'), cut to size; "" for NULL. */
static void label_value(char *out, size_t size, const char *s) {
    size_t n = 0;
    for (; s && s[n] && n + 1 < size; n++) out[n] = s[n] == '"' || s[n] == '\\' || s[n] == '\n' || s[n] == '\r' ? '_' : s[n];
    out[n] = '\0';
}

char *bn_metrics_render(bn_metrics *m, const bn_engine_stats *stats, const bn_metrics_state *state) {
    text_buf b = {0};
    double now_ms = bn_engine_now_ms();
    pthread_mutex_lock(&m->mu);
    put(&b, "# HELP bitnet_generated_tokens_per_second Tokens generated per second over the last %d s.\n"
            "# TYPE bitnet_generated_tokens_per_second gauge\nbitnet_generated_tokens_per_second %.3f\n",
        BN_METRICS_RATE_WINDOW, token_rate_locked(m, now_ms));
    put(&b, "# HELP bitnet_requests_total HTTP requests by endpoint and status code.\n"
            "# TYPE bitnet_requests_total counter\n");
    for (int i = 0; i < m->n_requests; i++)
        put(&b, "bitnet_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n", m->requests[i].endpoint,
            m->requests[i].status, (unsigned long long)m->requests[i].count);
    put(&b, "# HELP bitnet_prompt_tokens_total Prompt tokens processed.\n"
            "# TYPE bitnet_prompt_tokens_total counter\nbitnet_prompt_tokens_total %llu\n",
        (unsigned long long)m->prompt_tokens);
    put(&b, "# HELP bitnet_generated_tokens_total Tokens generated.\n"
            "# TYPE bitnet_generated_tokens_total counter\nbitnet_generated_tokens_total %llu\n",
        (unsigned long long)m->generated_tokens);
    put(&b, "# HELP bitnet_rejected_requests_total Requests rejected before generation, by reason.\n"
            "# TYPE bitnet_rejected_requests_total counter\n");
    for (int r = 0; r < BN_REJECT_COUNT; r++)
        put(&b, "bitnet_rejected_requests_total{reason=\"%s\"} %llu\n", reject_names[r],
            (unsigned long long)m->rejected[r]);
    put(&b, "# HELP bitnet_connections_closed_total Connections the server closed itself, by reason.\n"
            "# TYPE bitnet_connections_closed_total counter\n");
    for (int r = 0; r < BN_CLOSE_COUNT; r++)
        put(&b, "bitnet_connections_closed_total{reason=\"%s\"} %llu\n", close_names[r],
            (unsigned long long)m->closed[r]);
    put(&b, "# HELP bitnet_open_connections Open client connections.\n# TYPE bitnet_open_connections gauge\n"
            "bitnet_open_connections %d\n", m->open_connections);
    put_histogram(&b, "bitnet_time_to_first_token_seconds", "Time from request to first generated token.",
                  &m->ttft, ttft_bounds);
    put_histogram(&b, "bitnet_inter_token_latency_seconds", "Time between consecutive generated tokens.",
                  &m->itl, itl_bounds);
    pthread_mutex_unlock(&m->mu);
    bn_engine_stats zero = {0};
    if (!stats) stats = &zero;
    const bn_metrics_state no_state = {0};
    if (!state) state = &no_state;
    put(&b, "# HELP bitnet_ready 1 while GET /ready answers 200 (model loaded, not draining, queue below "
            "--ready-queue-max).\n# TYPE bitnet_ready gauge\nbitnet_ready %d\n", state->ready);
    put(&b, "# HELP bitnet_draining 1 after SIGTERM/SIGINT while running requests finish.\n"
            "# TYPE bitnet_draining gauge\nbitnet_draining %d\n", state->draining);
    put(&b, "# HELP bitnet_inflight_requests Generation requests being answered (queued or running).\n"
            "# TYPE bitnet_inflight_requests gauge\nbitnet_inflight_requests %d\n", state->inflight);
    put(&b, "# HELP bitnet_ready_queue_max Queue depth at which /ready turns 503 (--ready-queue-max).\n"
            "# TYPE bitnet_ready_queue_max gauge\nbitnet_ready_queue_max %d\n", state->ready_queue_max);
    char gpu[128];
    label_value(gpu, sizeof gpu, state->gpu);
    if (state->device && *state->device)
        put(&b, "# HELP bitnet_device_info The device serving the model (label device: cpu or cuda:N; gpu: its "
                "name).\n# TYPE bitnet_device_info gauge\nbitnet_device_info{device=\"%s\",gpu=\"%s\"} 1\n",
            state->device, gpu);
    put(&b, "# HELP bitnet_queue_depth Jobs waiting for a slot.\n# TYPE bitnet_queue_depth gauge\n"
            "bitnet_queue_depth %d\n", stats->queued);
    put(&b, "# HELP bitnet_slots Sequence slots (--parallel).\n# TYPE bitnet_slots gauge\nbitnet_slots %d\n",
        stats->n_slots);
    put(&b, "# HELP bitnet_busy_slots Slots running a job.\n# TYPE bitnet_busy_slots gauge\n"
            "bitnet_busy_slots %d\n", stats->busy_slots);
    put(&b, "# HELP bitnet_kv_cache_used_cells KV-cache positions in use over all slots.\n"
            "# TYPE bitnet_kv_cache_used_cells gauge\nbitnet_kv_cache_used_cells %lld\n",
        (long long)stats->kv_used);
    put(&b, "# HELP bitnet_kv_cache_capacity_cells KV-cache positions over all slots.\n"
            "# TYPE bitnet_kv_cache_capacity_cells gauge\nbitnet_kv_cache_capacity_cells %lld\n",
        (long long)stats->kv_capacity);
    put(&b, "# HELP bitnet_kv_cache_usage_ratio Fraction of the KV cache in use.\n"
            "# TYPE bitnet_kv_cache_usage_ratio gauge\nbitnet_kv_cache_usage_ratio %.6f\n",
        stats->kv_capacity ? (double)stats->kv_used / (double)stats->kv_capacity : 0.0);
    const struct { const char *name, *type, *help; int64_t value; } cache_series[] = {
        {"bitnet_prompt_cache_lookups_total", "counter", "Jobs admitted (each looks up the prompt cache).",
         stats->cache_lookups},
        {"bitnet_prompt_cache_hits_total", "counter", "Jobs that reused a cached prompt prefix.", stats->cache_hits},
        {"bitnet_prompt_cache_reused_tokens_total", "counter",
         "Prompt tokens taken from the cache instead of prefilled.", stats->cache_reused_tokens},
        {"bitnet_prompt_cache_store_hits_total", "counter", "Hits served from the host store (--cache-ram).",
         stats->store_hits},
        {"bitnet_prompt_cache_store_entries", "gauge", "Sequences in the host store.", stats->store_entries},
        {"bitnet_prompt_cache_store_bytes", "gauge", "Bytes the host store holds (limit: --cache-ram).",
         stats->store_bytes},
        {"bitnet_context_shifts_total", "counter", "Context shifts of full slots (--context-shift).",
         stats->context_shifts},
        {"bitnet_spec_steps_total", "counter", "Decode steps of running jobs under speculative decoding (--spec).",
         stats->spec_steps},
        {"bitnet_spec_drafted_tokens_total", "counter", "Tokens drafted for verification (--spec).",
         stats->spec_drafted},
        {"bitnet_spec_accepted_tokens_total", "counter", "Drafted tokens the model confirmed (--spec).",
         stats->spec_accepted},
        {"bitnet_spec_generated_tokens_total", "counter",
         "Tokens sampled in those steps; divided by the steps: tokens per step (--spec).", stats->spec_tokens},
    };
    for (size_t i = 0; i < sizeof cache_series / sizeof *cache_series; i++)
        put(&b, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", cache_series[i].name, cache_series[i].help,
            cache_series[i].name, cache_series[i].type, cache_series[i].name, (long long)cache_series[i].value);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}
