/*
 * speculative.c: drafters (n-gram lookup, draft model, replay), the adaptive draft length and
 * the verification loop of speculative decoding (see speculative.h).
 */
#include "runtime/speculative.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Weight of the past in the acceptance counts (per verification). */
#define ACCEPT_DECAY 0.9
/* Weight of the past in a batch size's step time. */
#define COST_DECAY 0.8
/* The step-time prior while nothing is measured: each extra token +10%. */
#define COST_PRIOR_PER_TOKEN 0.10
/* The most bytes of a replay file. */
#define REPLAY_FILE_MAX (64u << 20)

struct bn_spec {
    bn_spec_config cfg;  /* replay points at `replay` below */
    bn_tokens replay;
    double accepted_w;   /* decayed drafts accepted */
    double rejected_w;   /* decayed verifications that rejected a draft */
    int idle_steps;      /* steps without a draft since the last one */
    bn_spec_stats stats;
    /* DRAFT */
    bn_sequence *draft_seq;
    bn_tokens draft_cached; /* ids in draft_seq's cache */
    float *draft_logits;
    int draft_vocab;
};

bn_status bn_spec_mode_parse(bn_spec_mode *out, const char *name, bn_error *err) {
    static const char *const names[] = {"none", "ngram", "draft", "replay"};
    for (int i = 0; i < 4; i++)
        if (name && !strcmp(name, names[i])) {
            *out = (bn_spec_mode)i;
            return BN_OK;
        }
    return bn_error_set(err, BN_ERR_INVALID, "unknown speculation mode '%s' (ngram, draft, replay or none)",
                        name ? name : "");
}

const char *bn_spec_mode_name(bn_spec_mode mode) {
    switch (mode) {
    case BN_SPEC_NONE: return "none";
    case BN_SPEC_NGRAM: return "ngram";
    case BN_SPEC_DRAFT: return "draft";
    case BN_SPEC_REPLAY: return "replay";
    }
    return "unknown";
}

bn_spec_config bn_spec_config_default(void) {
    return (bn_spec_config){.mode = BN_SPEC_NONE, .draft_max = 8, .draft_min = 0, .ngram_min = 2, .ngram_max = 4};
}

bn_status bn_spec_config_check(const bn_spec_config *c, bn_error *err) {
    if (c->draft_max < 1 || c->draft_max > BN_SPEC_DRAFT_LIMIT)
        return bn_error_set(err, BN_ERR_INVALID, "--draft-max %d: must be 1..%d", c->draft_max, BN_SPEC_DRAFT_LIMIT);
    if (c->draft_min < 0 || c->draft_min > c->draft_max)
        return bn_error_set(err, BN_ERR_INVALID, "--draft-min %d: must be 0..%d (--draft-max)", c->draft_min,
                            c->draft_max);
    if (c->ngram_max < 1 || c->ngram_max > 16 || c->ngram_min < 1 || c->ngram_min > c->ngram_max)
        return bn_error_set(err, BN_ERR_INVALID, "n-gram sizes %d..%d: must be within 1..16, min <= max",
                            c->ngram_min, c->ngram_max);
    if (c->mode == BN_SPEC_DRAFT && !c->draft_model)
        return bn_error_set(err, BN_ERR_INVALID, "--spec draft needs a draft model (--model-draft FILE)");
    if (c->mode == BN_SPEC_REPLAY && (!c->replay || c->n_replay == 0))
        return bn_error_set(err, BN_ERR_INVALID, "--spec replay needs the ids of a previous run (--spec-replay FILE)");
    return BN_OK;
}

bn_status bn_spec_check_vocab(const bn_tokenizer *target, int target_vocab, const bn_tokenizer *draft,
                              int draft_vocab, bn_error *err) {
    if (target_vocab != draft_vocab)
        return bn_error_set(err, BN_ERR_INVALID,
                            "the draft model's vocabulary has %d tokens, the model's %d: a draft model must "
                            "share the vocabulary", draft_vocab, target_vocab);
    if (bn_tokenizer_n_vocab(target) != bn_tokenizer_n_vocab(draft))
        return bn_error_set(err, BN_ERR_INVALID,
                            "the draft model's tokenizer has %u tokens, the model's %u: a draft model must "
                            "share the vocabulary", bn_tokenizer_n_vocab(draft), bn_tokenizer_n_vocab(target));
    for (uint32_t id = 0; id < bn_tokenizer_n_vocab(target); id++) {
        size_t la = 0, lb = 0;
        const uint8_t *a = bn_tokenizer_token_bytes(target, (int32_t)id, &la);
        const uint8_t *b = bn_tokenizer_token_bytes(draft, (int32_t)id, &lb);
        bool same = (!a) == (!b) && la == lb && (!a || !la || !memcmp(a, b, la)) &&
                    bn_tokenizer_token_type(target, (int32_t)id) == bn_tokenizer_token_type(draft, (int32_t)id);
        if (!same)
            return bn_error_set(err, BN_ERR_INVALID,
                                "the draft model's token %u differs from the model's: a draft model must "
                                "share the vocabulary", id);
    }
    return BN_OK;
}

bn_status bn_spec_read_ids(bn_tokens *ids, const char *path, int n_vocab, bn_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return bn_error_set(err, BN_ERR_IO, "%s: %s", path, strerror(errno));
    bn_status st = BN_OK;
    size_t bytes = 0, line = 1;
    long long value = -1;
    int c;
    while (st == BN_OK && (c = fgetc(f)) != EOF) {
        if (++bytes > REPLAY_FILE_MAX) {
            st = bn_error_set(err, BN_ERR_RANGE, "%s: more than %u bytes", path, REPLAY_FILE_MAX);
        } else if (c >= '0' && c <= '9') {
            value = (value < 0 ? 0 : value) * 10 + (c - '0');
            if (value >= n_vocab)
                st = bn_error_set(err, BN_ERR_RANGE, "%s:%zu: a token id at or above %d, outside the vocabulary",
                                  path, line, n_vocab);
        } else if (isspace(c)) {
            if (value >= 0) st = bn_tokens_push(ids, (int32_t)value, err);
            value = -1;
            if (c == '\n') line++;
        } else {
            st = bn_error_set(err, BN_ERR_INVALID, "%s:%zu: '%c' is not part of a token id (decimal ids separated "
                              "by white space)", path, line, isprint(c) ? c : '?');
        }
    }
    if (st == BN_OK && value >= 0) st = bn_tokens_push(ids, (int32_t)value, err);
    if (st == BN_OK && ferror(f)) st = bn_error_set(err, BN_ERR_IO, "%s: read error", path);
    if (st == BN_OK && ids->n == 0) st = bn_error_set(err, BN_ERR_INVALID, "%s: no token ids", path);
    fclose(f);
    return st;
}

void bn_spec_costs_record(bn_spec_costs *costs, int n_tokens, double ms) {
    if (n_tokens < 1 || n_tokens > BN_SPEC_COST_SIZES || !(ms > 0)) return;
    double *m = &costs->ms[n_tokens];
    *m = *m > 0 ? COST_DECAY * *m + (1 - COST_DECAY) * ms : ms;
}

double bn_spec_costs_ratio(const bn_spec_costs *costs, int n_tokens) {
    if (n_tokens <= 1) return 1.0;
    if (n_tokens > BN_SPEC_COST_SIZES) n_tokens = BN_SPEC_COST_SIZES;
    const double one = costs->ms[1];
    const double prior = 1.0 + COST_PRIOR_PER_TOKEN * (n_tokens - 1);
    if (!(one > 0)) return prior;
    if (costs->ms[n_tokens] > 0) return costs->ms[n_tokens] / one;
    int lo = n_tokens - 1, hi = n_tokens + 1;
    while (lo > 1 && !(costs->ms[lo] > 0)) lo--;
    while (hi <= BN_SPEC_COST_SIZES && !(costs->ms[hi] > 0)) hi++;
    if (hi > BN_SPEC_COST_SIZES) {
        /* beyond the largest measured size: extend it by the steeper of the prior's slope and
         * the measured one */
        const double at = costs->ms[lo] / one;
        double slope = lo > 1 ? (at - 1.0) / (lo - 1) : COST_PRIOR_PER_TOKEN;
        if (slope < COST_PRIOR_PER_TOKEN) slope = COST_PRIOR_PER_TOKEN;
        return at + slope * (n_tokens - lo);
    }
    const double a = costs->ms[lo] / one, b = costs->ms[hi] / one;
    return a + (b - a) * (double)(n_tokens - lo) / (double)(hi - lo);
}

bn_status bn_spec_create(bn_spec **out, const bn_spec_config *config, int capacity, bn_error *err) {
    *out = NULL;
    bn_status st = bn_spec_config_check(config, err);
    if (st != BN_OK) return st;
    bn_spec *s = calloc(1, sizeof *s);
    if (!s) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    s->cfg = *config;
    if (config->mode == BN_SPEC_REPLAY) {
        for (size_t i = 0; st == BN_OK && i < config->n_replay; i++) st = bn_tokens_push(&s->replay, config->replay[i], err);
        s->cfg.replay = s->replay.ids;
    } else {
        s->cfg.replay = NULL;
        s->cfg.n_replay = 0;
    }
    if (st == BN_OK && config->mode == BN_SPEC_DRAFT) {
        s->draft_vocab = bn_model_get_config(config->draft_model)->n_vocab;
        s->draft_logits = malloc((size_t)s->draft_vocab * sizeof *s->draft_logits);
        if (!s->draft_logits) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory for the draft model's logits");
        if (st == BN_OK) st = bn_sequence_create(config->draft_model, capacity, &s->draft_seq, err);
    }
    if (st != BN_OK) {
        bn_spec_free(s);
        return st;
    }
    *out = s;
    return BN_OK;
}

void bn_spec_free(bn_spec *s) {
    if (!s) return;
    bn_tokens_free(&s->replay);
    bn_sequence_free(s->draft_seq);
    bn_tokens_free(&s->draft_cached);
    free(s->draft_logits);
    free(s);
}

void bn_spec_restart(bn_spec *s) {
    s->accepted_w = s->rejected_w = 0;
    s->idle_steps = 0;
}

bn_spec_mode bn_spec_get_mode(const bn_spec *s) { return s->cfg.mode; }

int bn_spec_want(bn_spec *s, const bn_spec_costs *costs, int limit) {
    int max = s->cfg.draft_max < limit ? s->cfg.draft_max : limit;
    if (max <= 0 || s->cfg.mode == BN_SPEC_NONE) return 0;
    if (s->cfg.fixed) return max;
    /* acceptance per drafted token, Laplace-smoothed from the decayed counts */
    const double a = (s->accepted_w + 1.0) / (s->accepted_w + s->rejected_w + 2.0);
    double expected = 1.0, term = 1.0, best_rate = 1.0 / bn_spec_costs_ratio(costs, 1);
    int best = 0;
    for (int k = 1; k <= max; k++) {
        term *= a;
        expected += term;
        double rate = expected / bn_spec_costs_ratio(costs, k + 1);
        if (rate > best_rate) best_rate = rate, best = k;
    }
    int floor = s->cfg.draft_min < max ? s->cfg.draft_min : max;
    if (best < floor) best = floor;
    if (best == 0 && s->idle_steps + 1 >= BN_SPEC_PROBE_EVERY) best = 1;
    return best;
}

/* Most recent earlier occurrence of the longest suffix of h (ngram_max down to ngram_min tokens);
 * proposes what followed it. */
static int propose_ngram(const bn_spec *s, const int32_t *h, size_t n, int max, int32_t *out) {
    for (int len = s->cfg.ngram_max; len >= s->cfg.ngram_min; len--) {
        if ((size_t)len >= n) continue;
        const int32_t *suffix = h + n - len;
        for (size_t i = n - len; i-- > 0;) {
            if (h[i] != suffix[0] || memcmp(h + i, suffix, (size_t)len * sizeof *h) != 0) continue;
            size_t from = i + (size_t)len, k = 0;
            while (k < (size_t)max && from + k < n) {
                out[k] = h[from + k];
                k++;
            }
            if (k > 0) return (int)k;
        }
    }
    return 0;
}

/* The replay ids after the output so far, while the output equals their prefix. */
static int propose_replay(const bn_spec *s, const int32_t *h, size_t n, size_t n_prompt, int max, int32_t *out) {
    if (n_prompt > n) return 0;
    size_t done = n - n_prompt;
    if (done > s->cfg.n_replay || memcmp(h + n_prompt, s->cfg.replay, done * sizeof *h) != 0) return 0;
    int k = 0;
    while (k < max && done + (size_t)k < s->cfg.n_replay) {
        out[k] = s->cfg.replay[done + (size_t)k];
        k++;
    }
    return k;
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Runs ids[0..n) on the draft sequence (chunks of at most 512 entries); logits of the last one. */
static bn_status draft_feed(bn_spec *s, const int32_t *ids, size_t n, bn_error *err) {
    enum { CHUNK = 512 };
    bn_batch_entry entries[CHUNK];
    for (size_t begin = 0; begin < n; begin += CHUNK) {
        size_t count = n - begin < CHUNK ? n - begin : CHUNK;
        int32_t pos0 = bn_sequence_length(s->draft_seq);
        for (size_t i = 0; i < count; i++)
            entries[i] = (bn_batch_entry){s->draft_seq, pos0 + (int32_t)i, ids[begin + i], begin + i == n - 1};
        bn_status st = bn_model_decode(s->cfg.draft_model, entries, (int)count,
                                       begin + count == n ? s->draft_logits : NULL, err);
        if (st != BN_OK) {
            bn_sequence_clear(s->draft_seq);
            s->draft_cached.n = 0;
            return st;
        }
        for (size_t i = 0; i < count; i++)
            if ((st = bn_tokens_push(&s->draft_cached, ids[begin + i], err)) != BN_OK) {
                bn_sequence_clear(s->draft_seq);
                s->draft_cached.n = 0;
                return st;
            }
    }
    return BN_OK;
}

/* The draft model's greedy continuation of h: its cache is cut to the longest common prefix
 * (keeping the last token of h to run for logits), the rest of h is run, then each draft. */
static bn_status propose_draft(bn_spec *s, const int32_t *h, size_t n, int max, int32_t *out, int *n_out,
                               bn_error *err) {
    *n_out = 0;
    const int capacity = bn_sequence_capacity(s->draft_seq);
    if (n == 0 || n > (size_t)capacity) return BN_OK;
    size_t common = 0;
    while (common < s->draft_cached.n && common < n - 1 && s->draft_cached.ids[common] == h[common]) common++;
    bn_sequence_truncate(s->draft_seq, (int)common);
    s->draft_cached.n = common;
    bn_status st = draft_feed(s, h + common, n - common, err);
    if (st != BN_OK) return st;
    /* each draft after the first needs a position for its predecessor */
    if ((size_t)max > (size_t)capacity - n + 1) max = (int)((size_t)capacity - n + 1);
    for (int k = 0; k < max; k++) {
        out[k] = argmax(s->draft_logits, s->draft_vocab);
        *n_out = k + 1;
        if (k + 1 < max && (st = draft_feed(s, &out[k], 1, err)) != BN_OK) return st;
    }
    return BN_OK;
}

bn_status bn_spec_propose(bn_spec *s, const int32_t *history, size_t n, size_t n_prompt, int max,
                          int32_t *out, int *n_out, bn_error *err) {
    *n_out = 0;
    if (max > BN_SPEC_DRAFT_LIMIT) max = BN_SPEC_DRAFT_LIMIT;
    if (max <= 0) return BN_OK;
    switch (s->cfg.mode) {
    case BN_SPEC_NONE: return BN_OK;
    case BN_SPEC_NGRAM: *n_out = propose_ngram(s, history, n, max, out); return BN_OK;
    case BN_SPEC_REPLAY: *n_out = propose_replay(s, history, n, n_prompt, max, out); return BN_OK;
    case BN_SPEC_DRAFT: return propose_draft(s, history, n, max, out, n_out, err);
    }
    return BN_OK;
}

void bn_spec_record(bn_spec *s, int n_drafted, int n_accepted, int n_sampled) {
    s->stats.steps++;
    s->stats.drafted += n_drafted;
    s->stats.accepted += n_accepted;
    s->stats.tokens += n_sampled;
    if (n_drafted == 0) {
        s->idle_steps++;
        return;
    }
    s->idle_steps = 0;
    s->accepted_w = ACCEPT_DECAY * s->accepted_w + n_accepted;
    s->rejected_w = ACCEPT_DECAY * s->rejected_w + (n_accepted < n_drafted ? 1.0 : 0.0);
}

const bn_spec_stats *bn_spec_get_stats(const bn_spec *s) { return &s->stats; }
void bn_spec_stats_reset(bn_spec *s) { memset(&s->stats, 0, sizeof s->stats); }

bn_status bn_spec_verify(bn_gen *g, const float *rows, size_t n_vocab, const int32_t *draft,
                         int n_draft, int ctx_left, bn_spec_delta_fn on_delta, void *user,
                         int *n_accepted, int *n_sampled, int32_t *next, bn_error *err) {
    *n_accepted = 0;
    *n_sampled = 0;
    *next = -1;
    for (int j = 0; j <= n_draft; j++) {
        bn_gen_delta delta;
        int left = ctx_left == INT32_MAX ? INT32_MAX : ctx_left - j;
        bn_status st = bn_gen_step(g, rows + (size_t)j * n_vocab, left, &delta, err);
        if (st != BN_OK) return st;
        if (delta.token >= 0) (*n_sampled)++;
        *next = delta.token;
        bool go_on = on_delta ? on_delta(user, &delta) : true;
        bool match = j < n_draft && delta.token == draft[j];
        if (match) (*n_accepted)++;
        if (!match || !go_on || delta.finish != BN_FINISH_NONE) break;
    }
    return BN_OK;
}
