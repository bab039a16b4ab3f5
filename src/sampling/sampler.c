/*
 * sampler.c: the token sampler and the stop-string scanner (see sampler.h for the pipeline).
 *
 * Truncation works on an index array over a private float copy of the logits. Candidates are
 * ordered by (logit descending, id ascending), a strict total order, so every selection gives
 * the same set whatever algorithm picks it and results are reproducible. Top-k is a quickselect
 * (O(n)); top-p sorts only a growing prefix (32, 256, ... best tokens) until the cumulative
 * probability reaches top_p, so the usual small nucleus costs O(n) rather than a full sort.
 * Probabilities are summed in double so that 128k terms lose nothing to rounding.
 */
#include "sampling/sampler.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bn_sampler {
    bn_sampler_params params; /* params.logit_bias points at `bias` below */
    bn_logit_bias *bias;
    size_t n_vocab;
    uint64_t seed;
    uint64_t rng[4]; /* xoshiro256** */
    int32_t *window; /* ring buffer of the last penalty_last_n accepted tokens */
    uint8_t *window_gen; /* per window entry: 1 for a generated token, 0 for context */
    size_t window_len;
    size_t window_head; /* next slot to write */
    float *work;        /* n_vocab: the logits as the pipeline changes them */
    int32_t *idx;       /* n_vocab: candidate ids */
    int32_t *counts;    /* n_vocab: occurrences in the window; all zero between calls */
    float *shift;       /* n_vocab: typical-p's distance from the entropy */
    const uint64_t *allowed_bits;
    bn_token_filter_fn filter;
    void *filter_user;
};

/* ---- PRNG: splitmix64 expands the seed into xoshiro256** state ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4]) {
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_double(uint64_t s[4]) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

/* Uniform in [0, n), n > 0. */
static size_t rng_below(uint64_t s[4], size_t n) {
    size_t k = (size_t)(rng_double(s) * (double)n);
    return k < n ? k : n - 1;
}

static void rng_seed(uint64_t s[4], uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) s[i] = splitmix64(&x);
}

/* ---- parameters ---- */

bn_sampler_params bn_sampler_params_default(void) {
    bn_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.typical_p = 1.0f;
    p.repetition_penalty = 1.0f;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.penalty_last_n = 64;
    p.seed = BN_SAMPLER_SEED_RANDOM;
    p.n_top_logprobs = 0;
    return p;
}

bn_sampler_params bn_sampler_params_greedy(void) {
    bn_sampler_params p = bn_sampler_params_default();
    p.temperature = 0.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 0;
    return p;
}

static bn_status validate_params(const bn_sampler_params *p, size_t n_vocab, bn_error *err) {
    if (n_vocab == 0 || n_vocab > (size_t)INT32_MAX)
        return bn_error_set(err, BN_ERR_INVALID, "sampler: n_vocab %zu out of range", n_vocab);
    if (isnan(p->temperature))
        return bn_error_set(err, BN_ERR_INVALID, "sampler: temperature is NaN");
    if (p->top_k < 0)
        return bn_error_set(err, BN_ERR_INVALID, "sampler: top_k %d is negative", (int)p->top_k);
    if (!(p->top_p >= 0.0f && p->top_p <= 1.0f))
        return bn_error_set(err, BN_ERR_INVALID, "sampler: top_p %g not in [0, 1]", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return bn_error_set(err, BN_ERR_INVALID, "sampler: min_p %g not in [0, 1]", (double)p->min_p);
    if (!(p->typical_p > 0.0f && p->typical_p <= 1.0f))
        return bn_error_set(err, BN_ERR_INVALID, "sampler: typical_p %g not in (0, 1]", (double)p->typical_p);
    if (!(p->repetition_penalty > 0.0f && isfinite(p->repetition_penalty)))
        return bn_error_set(err, BN_ERR_INVALID, "sampler: repetition_penalty %g must be finite and > 0",
                            (double)p->repetition_penalty);
    if (!isfinite(p->presence_penalty))
        return bn_error_set(err, BN_ERR_INVALID, "sampler: presence_penalty is not finite");
    if (!isfinite(p->frequency_penalty))
        return bn_error_set(err, BN_ERR_INVALID, "sampler: frequency_penalty is not finite");
    if (p->penalty_last_n < 0 || p->penalty_last_n > BN_SAMPLER_MAX_PENALTY_WINDOW)
        return bn_error_set(err, BN_ERR_INVALID, "sampler: penalty_last_n %d not in [0, %d]",
                            (int)p->penalty_last_n, BN_SAMPLER_MAX_PENALTY_WINDOW);
    if (p->n_top_logprobs < 0 || p->n_top_logprobs > BN_SAMPLER_MAX_TOP_LOGPROBS)
        return bn_error_set(err, BN_ERR_INVALID, "sampler: n_top_logprobs %d not in [0, %d]",
                            (int)p->n_top_logprobs, BN_SAMPLER_MAX_TOP_LOGPROBS);
    if (p->n_logit_bias > 0 && !p->logit_bias)
        return bn_error_set(err, BN_ERR_INVALID, "sampler: n_logit_bias %zu with no array", p->n_logit_bias);
    for (size_t i = 0; i < p->n_logit_bias; i++) {
        const bn_logit_bias *b = &p->logit_bias[i];
        if (b->token < 0 || (size_t)b->token >= n_vocab)
            return bn_error_set(err, BN_ERR_RANGE, "sampler: logit_bias[%zu] token %d not in [0, %zu)",
                                i, (int)b->token, n_vocab);
        if (isnan(b->bias))
            return bn_error_set(err, BN_ERR_INVALID, "sampler: logit_bias[%zu] (token %d) is NaN", i,
                                (int)b->token);
    }
    return BN_OK;
}

/* A seed from the clock and an address, for BN_SAMPLER_SEED_RANDOM only. */
static uint64_t fresh_seed(const void *salt) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    x ^= (uint64_t)(uintptr_t)salt;
    uint64_t seed = splitmix64(&x);
    return seed == BN_SAMPLER_SEED_RANDOM ? 0 : seed;
}

bn_status bn_sampler_create(bn_sampler **out, const bn_sampler_params *params, size_t n_vocab,
                            bn_error *err) {
    if (!out || !params) return bn_error_set(err, BN_ERR_INVALID, "sampler: NULL argument");
    *out = NULL;
    bn_status st = validate_params(params, n_vocab, err);
    if (st != BN_OK) return st;

    bn_sampler *s = calloc(1, sizeof *s);
    if (!s) return bn_error_set(err, BN_ERR_NOMEM, "sampler: out of memory");
    s->params = *params;
    s->n_vocab = n_vocab;
    s->work = malloc(n_vocab * sizeof *s->work);
    s->idx = malloc(n_vocab * sizeof *s->idx);
    s->counts = calloc(n_vocab, sizeof *s->counts);
    s->shift = malloc(n_vocab * sizeof *s->shift);
    if (params->penalty_last_n > 0) {
        s->window = malloc((size_t)params->penalty_last_n * sizeof *s->window);
        s->window_gen = malloc((size_t)params->penalty_last_n);
    }
    if (params->n_logit_bias > 0) {
        s->bias = malloc(params->n_logit_bias * sizeof *s->bias); /* n <= SIZE_MAX / 8 as it exists */
        if (s->bias) memcpy(s->bias, params->logit_bias, params->n_logit_bias * sizeof *s->bias);
    }
    if (!s->work || !s->idx || !s->counts || !s->shift || (params->penalty_last_n > 0 && (!s->window || !s->window_gen)) ||
        (params->n_logit_bias > 0 && !s->bias)) {
        bn_sampler_free(s);
        return bn_error_set(err, BN_ERR_NOMEM, "sampler: out of memory for n_vocab %zu", n_vocab);
    }
    s->params.logit_bias = s->bias;
    s->seed = params->seed == BN_SAMPLER_SEED_RANDOM ? fresh_seed(s) : params->seed;
    rng_seed(s->rng, s->seed);
    *out = s;
    return BN_OK;
}

void bn_sampler_free(bn_sampler *s) {
    if (!s) return;
    free(s->bias);
    free(s->window);
    free(s->window_gen);
    free(s->work);
    free(s->idx);
    free(s->counts);
    free(s->shift);
    free(s);
}

uint64_t bn_sampler_seed(const bn_sampler *s) { return s->seed; }

void bn_sampler_reset(bn_sampler *s) {
    s->window_len = 0;
    s->window_head = 0;
    rng_seed(s->rng, s->seed);
}

static void window_push(bn_sampler *s, int32_t token, uint8_t generated) {
    size_t cap = (size_t)s->params.penalty_last_n;
    if (cap == 0 || token < 0 || (size_t)token >= s->n_vocab) return;
    s->window[s->window_head] = token;
    s->window_gen[s->window_head] = generated;
    s->window_head = (s->window_head + 1) % cap;
    if (s->window_len < cap) s->window_len++;
}

void bn_sampler_accept(bn_sampler *s, int32_t token) { window_push(s, token, 1); }

void bn_sampler_accept_context(bn_sampler *s, int32_t token) { window_push(s, token, 0); }

void bn_sampler_set_allowed(bn_sampler *s, const uint64_t *bits) { s->allowed_bits = bits; }

void bn_sampler_set_filter(bn_sampler *s, bn_token_filter_fn fn, void *user) {
    s->filter = fn;
    s->filter_user = user;
}

/* ---- ordering helpers over s->work ---- */

/* The strict total order of candidates: higher logit first, lower id among equals. */
static inline bool ranks_before(const float *v, int32_t a, int32_t b) {
    return v[a] > v[b] || (v[a] == v[b] && a < b);
}

static void swap_idx(int32_t *x, size_t i, size_t j) {
    int32_t t = x[i];
    x[i] = x[j];
    x[j] = t;
}

/* Rearranges idx[0..n) so that idx[0..m) are the m best candidates (in no particular order). */
static void select_best(int32_t *idx, size_t n, size_t m, const float *v) {
    size_t lo = 0, hi = n; /* the boundary m lies in [lo, hi) */
    while (hi - lo > 1 && m > lo && m < hi) {
        size_t mid = lo + (hi - lo) / 2, last = hi - 1;
        /* median of three into idx[last] as the pivot */
        if (ranks_before(v, idx[mid], idx[lo])) swap_idx(idx, mid, lo);
        if (ranks_before(v, idx[last], idx[lo])) swap_idx(idx, last, lo);
        if (ranks_before(v, idx[mid], idx[last])) swap_idx(idx, mid, last);
        int32_t pivot = idx[last];
        size_t store = lo;
        for (size_t i = lo; i < last; i++)
            if (ranks_before(v, idx[i], pivot)) swap_idx(idx, i, store++);
        swap_idx(idx, store, last);
        /* idx[lo..store) rank before the pivot at idx[store]; idx(store..hi) after it */
        if (store == m || store + 1 == m) return;
        if (m < store) hi = store;
        else lo = store + 1;
    }
}

static int compare_ranked(const void *a, const void *b, void *ctx) {
    const float *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (ranks_before(v, x, y)) return -1;
    if (ranks_before(v, y, x)) return 1;
    return 0;
}

static void sort_ranked(int32_t *idx, size_t n, const float *v) {
    qsort_r(idx, n, sizeof *idx, compare_ranked, (void *)v);
}

/* ---- the pipeline ---- */

static bool token_allowed(const bn_sampler *s, int32_t t) {
    if (s->allowed_bits && !((s->allowed_bits[(size_t)t / 64] >> ((size_t)t % 64)) & 1u)) return false;
    if (s->filter && !s->filter(s->filter_user, t)) return false;
    return true;
}

static inline float sanitize(float x) { return isnan(x) ? -INFINITY : x; }

static void apply_penalties(bn_sampler *s) {
    const bn_sampler_params *p = &s->params;
    if (s->window_len == 0 ||
        (p->repetition_penalty == 1.0f && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f))
        return;
    /* counts[t] = 1 + the generated copies of t (so context-only tokens are seen too) */
    for (size_t i = 0; i < s->window_len; i++) {
        int32_t t = s->window[i];
        if (s->counts[t] == 0) s->counts[t] = 1;
        s->counts[t] += s->window_gen[i];
    }
    for (size_t i = 0; i < s->window_len; i++) {
        int32_t t = s->window[i];
        int32_t count = s->counts[t] - 1;
        if (s->counts[t] == 0) continue; /* already applied for an earlier copy of t */
        float l = s->work[t];
        if (p->repetition_penalty != 1.0f)
            l = l > 0.0f ? l / p->repetition_penalty : l * p->repetition_penalty;
        if (count > 0) l -= p->presence_penalty + p->frequency_penalty * (float)count;
        s->work[t] = isnan(l) ? -INFINITY : l;
        s->counts[t] = 0;
    }
}

/* Steps 1-4 of the pipeline into s->work. */
static void prepare_logits(bn_sampler *s, const float *logits) {
    size_t n = s->n_vocab;
    for (size_t i = 0; i < n; i++) s->work[i] = sanitize(logits[i]);
    for (size_t i = 0; i < s->params.n_logit_bias; i++) {
        const bn_logit_bias *b = &s->bias[i];
        float v = s->work[b->token] + b->bias;
        s->work[b->token] = isnan(v) ? b->bias : v; /* inf + -inf: the bias decides */
    }
    apply_penalties(s);
    if (s->allowed_bits || s->filter)
        for (size_t i = 0; i < n; i++)
            if (!token_allowed(s, (int32_t)i)) s->work[i] = -INFINITY;
}

/* Step 7: greedy over the raw logits among tokens neither masked nor banned; -1 if none. */
static int32_t fallback_token(bn_sampler *s, const float *logits) {
    size_t n = s->n_vocab;
    for (size_t i = 0; i < n; i++) s->idx[i] = 1;
    for (size_t i = 0; i < s->params.n_logit_bias; i++)
        if (s->bias[i].bias == -INFINITY) s->idx[s->bias[i].token] = 0;
    int32_t best = -1;
    float best_v = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!s->idx[i] || !token_allowed(s, (int32_t)i)) continue;
        float v = sanitize(logits[i]);
        if (best < 0 || v > best_v) {
            best = (int32_t)i;
            best_v = v;
        }
    }
    return best;
}

/* Steps 5-6 over s->work; -1 when every token is -inf. */
typedef struct typical_order {
    const float *shift, *v;
} typical_order;

/* By |-log p - H| ascending; equal shifts in the rank order (logit descending, id ascending). */
static int compare_typical(const void *a, const void *b, void *ctx) {
    const typical_order *o = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (o->shift[x] != o->shift[y]) return o->shift[x] < o->shift[y] ? -1 : 1;
    return ranks_before(o->v, x, y) ? -1 : ranks_before(o->v, y, x) ? 1 : 0;
}

/* Locally typical sampling over idx[0..keep) (scaled logits in s->work, the best at 0): returns
 * how many of the reordered candidates stay. */
static size_t typical_truncate(bn_sampler *s, size_t keep) {
    const float *v = s->work;
    double z = 0.0, weighted = 0.0;
    for (size_t j = 0; j < keep; j++) {
        double l = (double)v[s->idx[j]], w = exp(l);
        z += w;
        if (w > 0.0) weighted += w * l;
    }
    const double log_z = log(z);
    const double entropy = log_z - weighted / z; /* -sum p log p with log p = l - log z */
    for (size_t j = 0; j < keep; j++) {
        int32_t t = s->idx[j];
        double neg_log_p = log_z - (double)v[t];
        s->shift[t] = (float)fabs(neg_log_p - entropy);
    }
    typical_order order = {s->shift, v};
    qsort_r(s->idx, keep, sizeof *s->idx, compare_typical, &order);
    const double target = (double)s->params.typical_p * z;
    double cum = 0.0;
    for (size_t j = 0; j < keep; j++) {
        cum += exp((double)v[s->idx[j]]);
        if (cum >= target) return j + 1;
    }
    return keep;
}

static int32_t choose_token(bn_sampler *s) {
    const bn_sampler_params *p = &s->params;
    float *v = s->work;
    size_t n = s->n_vocab;

    if (p->temperature <= 0.0f) {
        int32_t best = -1;
        for (size_t i = 0; i < n; i++)
            if (v[i] > -INFINITY && (best < 0 || v[i] > v[best])) best = (int32_t)i;
        return best;
    }

    size_t n_cand = 0, n_posinf = 0;
    float max = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == INFINITY) n_posinf++;
        if (v[i] > -INFINITY) {
            s->idx[n_cand++] = (int32_t)i;
            if (v[i] > max) max = v[i];
        }
    }
    if (n_cand == 0) return -1;
    if (n_posinf > 0) { /* the +inf tokens share all the probability */
        size_t k = rng_below(s->rng, n_posinf);
        for (size_t j = 0; j < n_cand; j++)
            if (v[s->idx[j]] == INFINITY && k-- == 0) return s->idx[j];
    }

    /* temperature: scaled logits are <= 0 with the best at exactly 0 */
    double inv_t = 1.0 / (double)p->temperature;
    for (size_t j = 0; j < n_cand; j++) {
        int32_t t = s->idx[j];
        double scaled = ((double)v[t] - (double)max) * inv_t;
        v[t] = scaled < -FLT_MAX ? -INFINITY : (float)scaled;
    }

    size_t keep = n_cand;
    if (p->top_k > 0 && (size_t)p->top_k < keep) {
        select_best(s->idx, keep, (size_t)p->top_k, v);
        keep = (size_t)p->top_k;
    }

    if (p->top_p < 1.0f && keep > 1) {
        double z = 0.0;
        for (size_t j = 0; j < keep; j++) z += exp((double)v[s->idx[j]]);
        double target = (double)p->top_p * z;
        size_t m = keep < 32 ? keep : 32;
        for (;;) {
            select_best(s->idx, keep, m, v);
            sort_ranked(s->idx, m, v);
            double cum = 0.0;
            size_t j = 0;
            for (; j < m; j++) {
                cum += exp((double)v[s->idx[j]]);
                if (cum >= target) break;
            }
            if (j < m) {
                keep = j + 1;
                break;
            }
            if (m == keep) break; /* rounding kept cum below target: keep everything */
            m = m > keep / 8 ? keep : m * 8;
        }
    }

    if (p->min_p > 0.0f) {
        /* p_i / p_max = exp(scaled_i) since the best scaled logit is 0 */
        float threshold = logf(p->min_p);
        size_t kept = 0;
        for (size_t j = 0; j < keep; j++)
            if (v[s->idx[j]] >= threshold) s->idx[kept++] = s->idx[j];
        keep = kept; /* the best token always passes */
    }

    if (p->typical_p < 1.0f && keep > 1) keep = typical_truncate(s, keep);

    double sum = 0.0;
    for (size_t j = 0; j < keep; j++) sum += exp((double)v[s->idx[j]]);
    double u = rng_double(s->rng) * sum, acc = 0.0;
    int32_t last_positive = s->idx[0];
    for (size_t j = 0; j < keep; j++) {
        double w = exp((double)v[s->idx[j]]);
        if (w <= 0.0) continue;
        last_positive = s->idx[j];
        acc += w;
        if (u < acc) return s->idx[j];
    }
    return last_positive;
}

/* Log-probabilities from the model's logits (see sampler.h). */
typedef struct raw_stats {
    float max;
    size_t n_posinf;
    double log_z; /* log sum exp(l - max) */
} raw_stats;

static raw_stats raw_logit_stats(const float *logits, size_t n) {
    raw_stats r = {-INFINITY, 0, 0.0};
    for (size_t i = 0; i < n; i++) {
        float x = sanitize(logits[i]);
        if (x == INFINITY) r.n_posinf++;
        if (x > r.max) r.max = x;
    }
    if (r.n_posinf == 0 && r.max > -INFINITY) {
        double z = 0.0;
        for (size_t i = 0; i < n; i++) z += exp((double)sanitize(logits[i]) - (double)r.max);
        r.log_z = log(z);
    }
    return r;
}

static float raw_logprob(const raw_stats *r, float logit) {
    double lp;
    logit = sanitize(logit);
    if (r->n_posinf > 0) lp = logit == INFINITY ? -log((double)r->n_posinf) : -INFINITY;
    else if (r->max == -INFINITY) lp = -INFINITY;
    else lp = (double)logit - (double)r->max - r->log_z;
    return lp < (double)BN_LOGPROB_FLOOR ? BN_LOGPROB_FLOOR : (float)lp;
}

static void fill_top_logprobs(bn_sample_result *res, int32_t n_top, const float *logits, size_t n,
                              const raw_stats *r) {
    int32_t count = 0;
    int32_t ids[BN_SAMPLER_MAX_TOP_LOGPROBS];
    float vals[BN_SAMPLER_MAX_TOP_LOGPROBS];
    for (size_t i = 0; i < n && n_top > 0; i++) {
        float x = sanitize(logits[i]);
        if (count == n_top && !(x > vals[count - 1])) continue; /* ids ascend: ties keep the earlier */
        int32_t pos = count < n_top ? count++ : n_top - 1;
        while (pos > 0 && x > vals[pos - 1]) {
            vals[pos] = vals[pos - 1];
            ids[pos] = ids[pos - 1];
            pos--;
        }
        vals[pos] = x;
        ids[pos] = (int32_t)i;
    }
    res->n_top = count;
    for (int32_t j = 0; j < count; j++) {
        res->top[j].token = ids[j];
        res->top[j].logprob = raw_logprob(r, logits[ids[j]]);
    }
}

/* Greedy with nothing that edits the logits (no bias, penalty, mask or filter): steps 1-6 reduce
 * to the first largest logit that is not NaN or -inf, found in one pass over the logits instead of
 * a sanitized copy and a second pass (a server step samples up to --parallel rows of the
 * vocabulary one after another while the other threads wait). -1 when there is none. */
static bool plain_greedy(const bn_sampler *s) {
    const bn_sampler_params *p = &s->params;
    return p->temperature <= 0.0f && p->n_logit_bias == 0 && !s->allowed_bits && !s->filter &&
           p->repetition_penalty == 1.0f && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f;
}

static int32_t greedy_token(const float *logits, size_t n) {
    int32_t best = -1;
    float best_v = -INFINITY;
    for (size_t i = 0; i < n; i++) /* NaN, -inf and later equal values compare false */
        if (logits[i] > best_v) {
            best = (int32_t)i;
            best_v = logits[i];
        }
    return best;
}

static bn_status sample_impl(bn_sampler *s, bn_sample_result *res, const float *logits,
                             size_t n_vocab, bn_error *err) {
    if (!logits) return bn_error_set(err, BN_ERR_INVALID, "sampler: NULL logits");
    if (n_vocab != s->n_vocab)
        return bn_error_set(err, BN_ERR_INVALID, "sampler: %zu logits given, sampler made for %zu",
                            n_vocab, s->n_vocab);
    int32_t token;
    if (plain_greedy(s)) {
        token = greedy_token(logits, n_vocab);
    } else {
        prepare_logits(s, logits);
        token = choose_token(s);
    }
    if (token < 0) token = fallback_token(s, logits);
    if (token < 0)
        return bn_error_set(err, BN_ERR_STATE,
                            "sampler: no token is allowed (the mask and logit bias exclude all %zu)",
                            n_vocab);
    bn_sampler_accept(s, token);
    res->token = token;
    res->n_top = 0;
    res->logprob = 0.0f;
    return BN_OK;
}

bn_status bn_sampler_sample(bn_sampler *s, int32_t *token, const float *logits, size_t n_vocab,
                            bn_error *err) {
    if (!s || !token) return bn_error_set(err, BN_ERR_INVALID, "sampler: NULL argument");
    bn_sample_result res;
    bn_status st = sample_impl(s, &res, logits, n_vocab, err);
    if (st == BN_OK) *token = res.token;
    return st;
}

bn_status bn_sampler_sample_ex(bn_sampler *s, bn_sample_result *result, const float *logits,
                               size_t n_vocab, bn_error *err) {
    if (!s || !result) return bn_error_set(err, BN_ERR_INVALID, "sampler: NULL argument");
    bn_sample_result res;
    bn_status st = sample_impl(s, &res, logits, n_vocab, err);
    if (st != BN_OK) return st;
    raw_stats r = raw_logit_stats(logits, n_vocab);
    res.logprob = raw_logprob(&r, logits[res.token]);
    fill_top_logprobs(&res, s->params.n_top_logprobs, logits, n_vocab, &r);
    *result = res;
    return BN_OK;
}

/* ---- stop strings ---- */

void bn_stop_scan_text(bn_stop_scan *out, const char *text, size_t len, size_t from,
                       const char *const *stops, size_t n_stops) {
    out->found = false;
    out->which = 0;
    out->cut = len;
    if (from > len) from = len;
    /* earliest match: scan each stop over the text not yet ruled out */
    for (size_t i = 0; i < n_stops; i++) {
        size_t sl = stops[i] ? strlen(stops[i]) : 0;
        if (sl == 0 || sl > len - from) continue;
        const char *hit = memmem(text + from, len - from, stops[i], sl);
        if (!hit) continue;
        size_t pos = (size_t)(hit - text);
        if (!out->found || pos < out->cut) {
            out->found = true;
            out->which = i;
            out->cut = pos;
        }
    }
    if (out->found) {
        out->emit_len = out->cut;
        return;
    }
    /* hold back the longest tail of the text that begins some stop string */
    size_t hold = 0;
    for (size_t i = 0; i < n_stops; i++) {
        size_t sl = stops[i] ? strlen(stops[i]) : 0;
        size_t max_k = sl > 0 ? sl - 1 : 0;
        if (max_k > len) max_k = len;
        for (size_t k = max_k; k > hold; k--)
            if (memcmp(text + len - k, stops[i], k) == 0) {
                hold = k;
                break;
            }
    }
    out->emit_len = len - hold;
}
