/*
 * session.c: prefill with cached-prefix reuse, the generation loop over bn_gen and the context
 * shift of `bitnet run` / `bitnet chat` (see session.h).
 */
#include "runtime/session.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Prompt entries per bn_model_decode call, so a cancel is noticed during a long prefill. */
#define PREFILL_CHUNK 512

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

bn_status bn_session_init(bn_session *s, bn_model *model, const bn_session_options *options,
                          bn_error *err) {
    memset(s, 0, sizeof *s);
    s->model = model;
    if (options) s->options = *options;
    size_t n_vocab = (size_t)bn_model_get_config(model)->n_vocab;
    s->logits = malloc(n_vocab * sizeof *s->logits);
    if (!s->logits) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %zu logits", n_vocab);
    bn_status st = bn_sequence_create(model, s->options.capacity, &s->seq, err);
    if (st != BN_OK) {
        free(s->logits);
        s->logits = NULL;
    }
    return st;
}

void bn_session_free(bn_session *s) {
    free(s->rows);
    bn_sequence_free(s->seq);
    bn_tokens_free(&s->cached);
    free(s->logits);
    memset(s, 0, sizeof *s);
}

void bn_session_clear(bn_session *s) {
    bn_sequence_clear(s->seq);
    s->cached.n = 0;
    s->first_prompt = 0;
    s->shifted = false;
}

void bn_session_set_spec(bn_session *s, bn_spec *spec) { s->spec = spec; }

int bn_session_capacity(const bn_session *s) { return bn_sequence_capacity(s->seq); }

static bool cancelled(const bn_session_io *io) { return io && io->cancel && *io->cancel; }

/* Feeds ids[0..n) at the end of the sequence; the logits of the last one go to s->logits. */
static bn_status feed(bn_session *s, const int32_t *ids, size_t n, const bn_session_io *io,
                      bool *was_cancelled, bn_error *err) {
    bn_batch_entry entries[PREFILL_CHUNK];
    for (size_t begin = 0; begin < n; begin += PREFILL_CHUNK) {
        if (begin > 0 && cancelled(io)) {
            *was_cancelled = true;
            return BN_OK;
        }
        size_t count = n - begin < PREFILL_CHUNK ? n - begin : PREFILL_CHUNK;
        int32_t pos0 = bn_sequence_length(s->seq);
        for (size_t i = 0; i < count; i++)
            entries[i] = (bn_batch_entry){s->seq, pos0 + (int32_t)i, ids[begin + i], begin + i == n - 1};
        bn_status st = bn_model_decode(s->model, entries, (int)count,
                                       begin + count == n ? s->logits : NULL, err);
        if (st != BN_OK) return st;
        for (size_t i = 0; i < count; i++)
            if ((st = bn_tokens_push(&s->cached, ids[begin + i], err)) != BN_OK) return st;
    }
    return BN_OK;
}

/* Drops the oldest half of the tokens after `keep` (false when there is nothing to drop). */
static bn_status shift(bn_session *s, bn_session_stats *stats, bool *shifted, bn_error *err) {
    int length = bn_sequence_length(s->seq);
    int keep = s->options.keep < 0 ? s->first_prompt : s->options.keep;
    if (keep > length - 2) keep = length - 2;
    if (keep < 0) keep = 0;
    int n_discard = (length - keep) / 2;
    *shifted = false;
    if (n_discard < 1) return BN_OK;
    bn_status st = bn_sequence_shift(s->seq, keep, n_discard, err);
    if (st != BN_OK) {
        s->cached.n = 0;
        return st;
    }
    memmove(s->cached.ids + keep, s->cached.ids + keep + n_discard,
            (s->cached.n - (size_t)keep - (size_t)n_discard) * sizeof *s->cached.ids);
    s->cached.n -= (size_t)n_discard;
    s->shifted = true;
    stats->n_shifts++;
    stats->n_dropped += n_discard;
    stats->n_gen_cached = stats->n_gen_cached < (int)s->cached.n - keep ? stats->n_gen_cached
                                                                        : (int)s->cached.n - keep;
    *shifted = true;
    return BN_OK;
}

/* What a verification's deltas go to: the text callback, and a cancel from it. */
typedef struct step_ctx {
    bn_gen *g;
    const bn_session_io *io;
} step_ctx;

/* Hands a delta's text out; a callback that refuses more ends the generation (as cancelled). */
static bool deliver(void *user, const bn_gen_delta *delta) {
    step_ctx *c = user;
    const bn_session_io *io = c->io;
    if (delta->text_len && io && io->on_text && !io->on_text(io->user, delta->text, delta->text_len) &&
        delta->finish == BN_FINISH_NONE) {
        bn_gen_delta rest;
        bn_gen_finish(c->g, BN_FINISH_CANCELLED, &rest);
        if (rest.text_len) io->on_text(io->user, rest.text, rest.text_len);
        return false;
    }
    return !cancelled(io);
}

/* One generation step: the pending token and the drafts (none without speculation) in one
 * forward pass, then the generation over their rows (speculative.h). Drafts the model did not
 * confirm leave the cache; *pending becomes the last sampled token. */
static bn_status spec_step(bn_session *s, bn_gen *g, int32_t *pending, size_t n_prompt,
                           const bn_session_io *io, bn_session_stats *stats, bn_error *err) {
    const int capacity = bn_sequence_capacity(s->seq);
    const int length = bn_sequence_length(s->seq);
    int32_t draft[BN_SPEC_DRAFT_LIMIT];
    int n_draft = 0;
    bn_status st;
    if (s->spec) {
        int limit = capacity - length - 1;
        int32_t max_tokens = bn_gen_max_tokens(g);
        if (max_tokens >= 0 && max_tokens - bn_gen_n_generated(g) - 1 < limit)
            limit = max_tokens - bn_gen_n_generated(g) - 1;
        int want = bn_spec_want(s->spec, &s->costs, limit);
        if (want > 0) {
            if ((st = bn_tokens_push(&s->cached, *pending, err)) != BN_OK) return st;
            st = bn_spec_propose(s->spec, s->cached.ids, s->cached.n, n_prompt, want, draft, &n_draft, err);
            s->cached.n--;
            if (st != BN_OK) return st;
        }
    }
    const size_t n_vocab = (size_t)bn_model_get_config(s->model)->n_vocab;
    if (1 + n_draft > s->rows_cap) {
        float *rows = realloc(s->rows, (size_t)(1 + n_draft) * n_vocab * sizeof *rows);
        if (!rows) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %d rows of logits", 1 + n_draft);
        s->rows = rows;
        s->rows_cap = 1 + n_draft;
    }
    bn_batch_entry entries[1 + BN_SPEC_DRAFT_LIMIT];
    entries[0] = (bn_batch_entry){s->seq, length, *pending, true};
    for (int j = 0; j < n_draft; j++) entries[1 + j] = (bn_batch_entry){s->seq, length + 1 + j, draft[j], true};
    double t0 = now_ms();
    if ((st = bn_model_decode(s->model, entries, 1 + n_draft, s->rows, err)) != BN_OK) return st;
    bn_spec_costs_record(&s->costs, 1 + n_draft, now_ms() - t0);
    for (int j = 0; j <= n_draft; j++)
        if ((st = bn_tokens_push(&s->cached, entries[j].token, err)) != BN_OK) return st;
    int ctx_left = s->options.context_shift ? INT32_MAX : capacity - (length + 1);
    int accepted = 0, sampled = 0;
    step_ctx c = {g, io};
    st = bn_spec_verify(g, s->rows, n_vocab, draft, n_draft, ctx_left,
                        deliver, &c, &accepted, &sampled, pending, err);
    /* the cache keeps the pending token and the confirmed drafts */
    bn_sequence_truncate(s->seq, length + 1 + accepted);
    s->cached.n = (size_t)length + 1 + (size_t)accepted;
    stats->n_gen_cached += 1 + accepted;
    stats->n_steps++;
    stats->n_drafted += n_draft;
    stats->n_accepted += accepted;
    if (s->spec) bn_spec_record(s->spec, n_draft, accepted, sampled);
    return st;
}

bn_status bn_session_generate(bn_session *s, bn_gen *g, const int32_t *prompt, size_t n_prompt,
                              const bn_session_io *io, bn_session_stats *stats, bn_error *err) {
    memset(stats, 0, sizeof *stats);
    const size_t capacity = (size_t)bn_sequence_capacity(s->seq);
    if (n_prompt == 0) return bn_error_set(err, BN_ERR_INVALID, "empty prompt");
    if (n_prompt > capacity)
        return bn_error_set(err, BN_ERR_RANGE, "the prompt has %zu tokens but the context holds %zu (use -c)",
                            n_prompt, capacity);

    /* Reuse the longest cached prefix; the last prompt token is always run for its logits. A
     * shifted cache is reused only by a prompt that continues all of it. */
    size_t common = 0;
    while (common < s->cached.n && common < n_prompt - 1 && s->cached.ids[common] == prompt[common]) common++;
    if (s->shifted && common < s->cached.n) common = 0;
    if (common < s->cached.n) {
        bn_sequence_truncate(s->seq, (int)common);
        s->cached.n = common;
        if (common == 0) s->shifted = false;
    }
    if (s->cached.n == 0) s->first_prompt = (int)n_prompt;
    stats->n_prompt = (int)n_prompt;
    stats->n_reused = (int)common;
    stats->n_prefilled = (int)(n_prompt - common);
    bn_gen_accept(g, prompt, n_prompt);

    bool was_cancelled = false;
    double t0 = now_ms();
    bn_status st = feed(s, prompt + common, n_prompt - common, io, &was_cancelled, err);
    double t1 = now_ms();
    stats->prefill_ms = t1 - t0;
    bn_gen_delta delta;
    int32_t pending = -1;
    if (st == BN_OK && was_cancelled) bn_gen_finish(g, BN_FINISH_CANCELLED, &delta);
    if (st == BN_OK && bn_gen_finish_reason(g) == BN_FINISH_NONE) {
        /* the first token, from the prompt's logits */
        if (cancelled(io)) {
            bn_gen_finish(g, BN_FINISH_CANCELLED, &delta);
        } else {
            int ctx_left = s->options.context_shift ? INT32_MAX : (int)capacity - bn_sequence_length(s->seq);
            if ((st = bn_gen_step(g, s->logits, ctx_left, &delta, err)) == BN_OK) {
                pending = delta.token;
                deliver(&(step_ctx){g, io}, &delta);
            }
        }
    }
    while (st == BN_OK && bn_gen_finish_reason(g) == BN_FINISH_NONE) {
        if ((size_t)bn_sequence_length(s->seq) >= capacity) {
            bool shifted = false;
            if (s->options.context_shift && (st = shift(s, stats, &shifted, err)) != BN_OK) break;
            if (!shifted) {
                bn_gen_finish(g, BN_FINISH_CONTEXT, &delta);
                if (delta.text_len && io && io->on_text) io->on_text(io->user, delta.text, delta.text_len);
                break;
            }
        }
        if (cancelled(io)) {
            /* as after every step, the last token is run: the cache holds the whole output */
            bool ignored;
            if (pending >= 0 && (st = feed(s, &pending, 1, NULL, &ignored, err)) == BN_OK) stats->n_gen_cached++;
            bn_gen_finish(g, BN_FINISH_CANCELLED, &delta);
            break;
        }
        if ((st = spec_step(s, g, &pending, n_prompt, io, stats, err)) != BN_OK) break;
    }
    stats->generate_ms = now_ms() - t1;
    stats->n_generated = bn_gen_n_generated(g);
    stats->finish = bn_gen_finish_reason(g);
    return st;
}
