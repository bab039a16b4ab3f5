/*
 * engine.c: continuous batching over --parallel slots (see engine.h). The engine thread loops:
 * admit queued jobs into free slots, drop cancelled jobs, build one batch (one token per decoding
 * slot, then prompt chunks of prefilling slots up to the prefill budget), run bn_model_decode
 * once, and turn every row of logits into a sampled token and events.
 */
#include "server/engine.h"

#include "tools/generate.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct job {
    struct job *next;
    bn_engine_job_config cfg;
    int32_t *prompt;
    size_t n_prefilled;
    bn_logit_bias *biases;
    char **stops;
    bn_sampler *sampler;
    bn_detokenizer detok;
    char *text;            /* everything generated so far (for stop strings) */
    size_t text_len, text_cap;
    size_t emitted;        /* bytes of text already sent */
    int n_generated;
    int32_t pending;       /* sampled token not yet in the cache, or -1 */
    bn_json_state gstate;
    size_t completion_now; /* shortest completion of gstate before this step's token */
    int tokens_left;       /* for the grammar filter: tokens that may follow the one sampled */
    double last_ms;
    bn_engine *engine;
} job;

typedef struct slot {
    bn_sequence *seq;
    job *job;
} slot;

struct bn_engine {
    bn_model *model;
    const bn_tokenizer *tok;
    int n_vocab, n_ctx, n_slots, max_queue, prefill_chunk;
    slot *slots;
    bn_engine_observer observer;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    job *queue_head, *queue_tail;
    int queued;
    atomic_int busy;
    atomic_llong kv_used;
    bn_batch_entry *entries;
    int *entry_slot;
    float *logits;
    int rr;                /* round-robin start for prefill */
};

double bn_engine_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void job_free(job *j) {
    if (!j) return;
    free(j->prompt);
    free(j->biases);
    for (size_t i = 0; i < j->cfg.n_stops; i++) free(j->stops ? j->stops[i] : NULL);
    free(j->stops);
    bn_sampler_free(j->sampler);
    bn_detokenizer_free(&j->detok);
    free(j->text);
    free(j);
}

static void emit_finish(job *j, bn_engine_finish reason, const char *message) {
    bn_engine_event ev = {.kind = BN_ENGINE_FINISH, .index = j->cfg.index, .finish = reason,
                          .n_prompt = (int)j->cfg.n_prompt, .n_generated = j->n_generated,
                          .message = message};
    if (j->engine->observer.tokens && reason != BN_ENGINE_FINISH_CANCELLED)
        j->engine->observer.tokens(j->engine->observer.user, (int)j->cfg.n_prompt, j->n_generated);
    j->cfg.on_event(j->cfg.user, &ev);
    job_free(j);
}

static bool grammar_filter(void *user, int32_t token) {
    job *j = user;
    const bn_tokenizer *tok = j->engine->tok;
    if (bn_tokenizer_token_type(tok, token) == BN_TOKEN_CONTROL) return false;
    size_t len = 0;
    const uint8_t *bytes = bn_tokenizer_token_bytes(tok, token, &len);
    if (!bytes || len == 0) return false;
    bn_json_state next = j->gstate;
    if (!bn_json_state_feed(&next, bytes, len)) return false;
    if (bn_json_state_done(&next)) return true;
    size_t left = j->tokens_left > 0 ? (size_t)j->tokens_left : 0;
    /* max_tokens too small for any complete document: valid bytes only (ends with "length") */
    if (j->completion_now > left + 1) return true;
    /* one byte lengthens the shortest completion by at most max_growth */
    size_t growth = bn_json_grammar_max_growth(j->cfg.grammar);
    if (j->completion_now <= left && len <= left / growth && j->completion_now + len * growth <= left) return true;
    return bn_json_state_completion_len(&next, left) <= left;
}

bn_status bn_engine_submit(bn_engine *e, const bn_engine_job_config *cfgs, size_t n, bn_error *err) {
    job **made = calloc(n ? n : 1, sizeof *made);
    if (!made) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    bn_status st = BN_OK;
    for (size_t i = 0; i < n && !st; i++) {
        const bn_engine_job_config *c = &cfgs[i];
        if (c->n_prompt < 1 || c->n_prompt > (size_t)e->n_ctx || c->max_tokens < 1 || !c->on_event) {
            st = bn_error_set(err, BN_ERR_INVALID, "job %zu: prompt of %zu tokens for a context of %d, max_tokens %d",
                              i, c->n_prompt, e->n_ctx, c->max_tokens);
            break;
        }
        job *j = calloc(1, sizeof *j);
        if (!j) {
            st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
            break;
        }
        made[i] = j;
        j->engine = e;
        j->cfg = *c;
        j->pending = -1;
        bn_detokenizer_init(&j->detok, e->tok, BN_DETOK_REPLACE_INVALID);
        j->prompt = malloc(c->n_prompt * sizeof *j->prompt);
        j->stops = calloc(c->n_stops ? c->n_stops : 1, sizeof *j->stops);
        if (!j->prompt || !j->stops) {
            st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(j->prompt, c->prompt, c->n_prompt * sizeof *j->prompt);
        for (size_t s = 0; s < c->n_stops; s++)
            if (!(j->stops[s] = strdup(c->stops[s]))) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        j->cfg.prompt = NULL;
        j->cfg.stops = (const char *const *)j->stops;
        if (!st) st = bn_sampler_create(&j->sampler, &c->sampling, (size_t)e->n_vocab, err);
        if (st) break;
        j->cfg.sampling.logit_bias = NULL;
        if (c->grammar) {
            bn_json_state_init(&j->gstate, c->grammar);
            bn_sampler_set_filter(j->sampler, grammar_filter, j);
        }
        for (size_t p = 0; p < c->n_prompt; p++) bn_sampler_accept(j->sampler, c->prompt[p]);
    }
    if (!st) {
        pthread_mutex_lock(&e->mu);
        if (e->stop) {
            st = bn_error_set(err, BN_ERR_STATE, "the server is shutting down");
        } else if ((size_t)e->queued + n > (size_t)e->max_queue) {
            st = bn_error_set(err, BN_ERR_RANGE, "the queue is full (%d waiting, limit %d)", e->queued, e->max_queue);
        } else {
            for (size_t i = 0; i < n; i++) {
                if (e->queue_tail) e->queue_tail->next = made[i];
                else e->queue_head = made[i];
                e->queue_tail = made[i];
            }
            e->queued += (int)n;
            pthread_cond_signal(&e->cv);
        }
        pthread_mutex_unlock(&e->mu);
    }
    if (st)
        for (size_t i = 0; i < n; i++) job_free(made[i]);
    free(made);
    return st;
}

/* Appends text to the job's generated text. */
static bool text_append(job *j, const char *s, size_t n) {
    return bn_text_append(&j->text, &j->text_len, &j->text_cap, s, n);
}

static void emit_token(job *j, size_t upto, bool in_output, const bn_sample_result *res) {
    bn_engine_event ev = {.kind = BN_ENGINE_TOKEN, .index = j->cfg.index,
                          .text = j->text ? j->text + j->emitted : "", .text_len = upto - j->emitted,
                          .token_in_output = in_output, .sample = res};
    j->emitted = upto;
    j->cfg.on_event(j->cfg.user, &ev);
}

/* Releases a slot's job (already finished through emit_finish or about to be). */
static void slot_release(bn_engine *e, slot *s) {
    s->job = NULL;
    atomic_fetch_sub(&e->busy, 1);
}

/* Handles one sampled row for the job in slot s; returns true when the job goes on. */
static bool handle_logits(bn_engine *e, slot *s, const float *row) {
    job *j = s->job;
    bn_error err;
    bn_sample_result res;
    if (j->cfg.grammar) {
        j->completion_now = bn_json_state_completion_len(&j->gstate, (size_t)1 << 20);
        int ctx_left = bn_sequence_capacity(s->seq) - bn_sequence_length(s->seq);
        int left = j->cfg.max_tokens - j->n_generated;
        if (ctx_left + 1 < left) left = ctx_left + 1;
        j->tokens_left = left - 1;
    }
    /* log-probabilities cost an exp per vocabulary entry: only when the request asks for them */
    memset(&res, 0, sizeof res);
    bn_status sampled = j->cfg.want_logprobs
                            ? bn_sampler_sample_ex(j->sampler, &res, row, (size_t)e->n_vocab, &err)
                            : bn_sampler_sample(j->sampler, &res.token, row, (size_t)e->n_vocab, &err);
    if (sampled != BN_OK) {
        slot_release(e, s);
        emit_finish(j, BN_ENGINE_FINISH_ERROR, err.message);
        return false;
    }
    double now = bn_engine_now_ms();
    if (e->observer.first_token && j->n_generated == 0)
        e->observer.first_token(e->observer.user, (now - j->cfg.submit_ms) / 1e3);
    else if (e->observer.inter_token && j->n_generated > 0)
        e->observer.inter_token(e->observer.user, (now - j->last_ms) / 1e3);
    j->last_ms = now;
    j->n_generated++;
    const bn_sample_result *report = j->cfg.want_logprobs ? &res : NULL;
    int32_t t = res.token;
    const char *piece;
    size_t piece_len;
    bool end = false;
    bn_engine_finish reason = BN_ENGINE_FINISH_STOP;
    if (!j->cfg.grammar && j->cfg.stop_at_eog && bn_tokenizer_is_eog(e->tok, t)) {
        if (bn_detokenizer_flush(&j->detok, &piece, &piece_len, &err) == BN_OK) text_append(j, piece, piece_len);
        emit_token(j, j->text_len, false, report);
        slot_release(e, s);
        emit_finish(j, BN_ENGINE_FINISH_STOP, NULL);
        return false;
    }
    if (j->cfg.grammar) {
        size_t blen = 0;
        const uint8_t *bytes = bn_tokenizer_token_bytes(e->tok, t, &blen);
        bn_json_state_feed(&j->gstate, bytes, blen);
        end = bn_json_state_done(&j->gstate);
    }
    if (bn_detokenizer_push(&j->detok, t, &piece, &piece_len, &err) != BN_OK || !text_append(j, piece, piece_len)) {
        slot_release(e, s);
        emit_finish(j, BN_ENGINE_FINISH_ERROR, "detokenizer failed");
        return false;
    }
    bool length = j->n_generated >= j->cfg.max_tokens ||
                  bn_sequence_length(s->seq) >= bn_sequence_capacity(s->seq);
    if (end || length) {
        if (bn_detokenizer_flush(&j->detok, &piece, &piece_len, &err) == BN_OK) text_append(j, piece, piece_len);
    }
    size_t upto = j->text_len;
    if (!j->cfg.grammar && j->cfg.n_stops) {
        bn_stop_scan scan;
        bn_stop_scan_text(&scan, j->text, j->text_len, j->emitted, j->cfg.stops, j->cfg.n_stops);
        if (scan.found) {
            upto = scan.cut;
            end = true;
        } else if (!length) {
            upto = scan.emit_len;
        }
    }
    if (upto < j->emitted) upto = j->emitted;
    emit_token(j, upto, true, report);
    if (end || length) {
        if (!end) reason = BN_ENGINE_FINISH_LENGTH;
        slot_release(e, s);
        emit_finish(j, reason, NULL);
        return false;
    }
    j->pending = t;
    return true;
}

/* How long an idle engine gathers a burst of requests before its first step. */
#define ADMIT_WINDOW_MS 5

static void *engine_main(void *arg) {
    bn_engine *e = arg;
    for (;;) {
        job *dropped = NULL;
        pthread_mutex_lock(&e->mu);
        while (!e->stop && atomic_load(&e->busy) == 0 && !e->queue_head) pthread_cond_wait(&e->cv, &e->mu);
        if (e->stop) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        /* An idle engine woken by a request waits a moment for the rest of a burst (clients that
         * start together reach it a few ms apart), so their prompts share the first step instead
         * of each one's prefill delaying the next one's first token. */
        if (atomic_load(&e->busy) == 0 && e->queued < e->n_slots) {
            struct timespec deadline;
            clock_gettime(CLOCK_REALTIME, &deadline);
            deadline.tv_nsec += ADMIT_WINDOW_MS * 1000000L;
            if (deadline.tv_nsec >= 1000000000L) deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
            while (!e->stop && e->queued < e->n_slots &&
                   pthread_cond_timedwait(&e->cv, &e->mu, &deadline) == 0) {
            }
        }
        for (int i = 0; i < e->n_slots && e->queue_head; i++) {
            if (e->slots[i].job) continue;
            job *j = e->queue_head;
            e->queue_head = j->next;
            if (!e->queue_head) e->queue_tail = NULL;
            e->queued--;
            j->next = NULL;
            if (j->cfg.cancel && atomic_load(j->cfg.cancel)) {
                j->next = dropped;
                dropped = j;
                i--;
                continue;
            }
            bn_sequence_clear(e->slots[i].seq);
            e->slots[i].job = j;
            atomic_fetch_add(&e->busy, 1);
        }
        pthread_mutex_unlock(&e->mu);
        while (dropped) {
            job *next = dropped->next;
            emit_finish(dropped, BN_ENGINE_FINISH_CANCELLED, NULL);
            dropped = next;
        }
        /* cancelled or full jobs leave their slots now */
        for (int i = 0; i < e->n_slots; i++) {
            slot *s = &e->slots[i];
            if (!s->job) continue;
            if (s->job->cfg.cancel && atomic_load(s->job->cfg.cancel)) {
                job *j = s->job;
                slot_release(e, s);
                emit_finish(j, BN_ENGINE_FINISH_CANCELLED, NULL);
            } else if (s->job->pending >= 0 && bn_sequence_length(s->seq) >= bn_sequence_capacity(s->seq)) {
                job *j = s->job;
                slot_release(e, s);
                emit_finish(j, BN_ENGINE_FINISH_LENGTH, NULL);
            }
        }
        long long used = 0;
        for (int i = 0; i < e->n_slots; i++)
            if (e->slots[i].job) used += bn_sequence_length(e->slots[i].seq);
        atomic_store(&e->kv_used, used);
        /* the batch: decoding slots first, then prompt chunks */
        int n = 0;
        for (int i = 0; i < e->n_slots; i++) {
            slot *s = &e->slots[i];
            if (!s->job || s->job->pending < 0) continue;
            e->entries[n] = (bn_batch_entry){s->seq, bn_sequence_length(s->seq), s->job->pending, true};
            e->entry_slot[n++] = i;
        }
        int budget = e->prefill_chunk;
        for (int k = 0; k < e->n_slots && budget > 0; k++) {
            int i = (e->rr + k) % e->n_slots;
            slot *s = &e->slots[i];
            if (!s->job || s->job->pending >= 0) continue;
            job *j = s->job;
            size_t left = j->cfg.n_prompt - j->n_prefilled;
            size_t take = left < (size_t)budget ? left : (size_t)budget;
            int pos = bn_sequence_length(s->seq);
            for (size_t t = 0; t < take; t++) {
                bool last = j->n_prefilled + t + 1 == j->cfg.n_prompt;
                e->entries[n] = (bn_batch_entry){s->seq, pos + (int)t, j->prompt[j->n_prefilled + t], last};
                e->entry_slot[n++] = i;
            }
            budget -= (int)take;
        }
        e->rr = (e->rr + 1) % e->n_slots;
        if (n == 0) continue;
        bn_error err;
        if (bn_model_decode(e->model, e->entries, n, e->logits, &err) != BN_OK) {
            for (int i = 0; i < e->n_slots; i++) {
                slot *s = &e->slots[i];
                bool in_batch = false;
                for (int k = 0; k < n; k++) in_batch |= e->entry_slot[k] == i;
                if (!s->job || !in_batch) continue;
                job *j = s->job;
                slot_release(e, s);
                emit_finish(j, BN_ENGINE_FINISH_ERROR, err.message);
            }
            continue;
        }
        int row = 0;
        for (int k = 0; k < n; k++) {
            slot *s = &e->slots[e->entry_slot[k]];
            if (!s->job) continue;
            if (s->job->pending < 0) s->job->n_prefilled++;
            if (!e->entries[k].want_logits) continue;
            const float *logits = e->logits + (size_t)row++ * (size_t)e->n_vocab;
            handle_logits(e, s, logits);
        }
        used = 0;
        for (int i = 0; i < e->n_slots; i++)
            if (e->slots[i].job) used += bn_sequence_length(e->slots[i].seq);
        atomic_store(&e->kv_used, used);
    }
    return NULL;
}

bn_status bn_engine_create(bn_engine **out, bn_model *model, const bn_tokenizer *tok, int n_slots,
                           int n_ctx, int max_queue, int prefill_chunk,
                           const bn_engine_observer *observer, bn_error *err) {
    *out = NULL;
    if (n_slots < 1 || n_slots > 256) return bn_error_set(err, BN_ERR_INVALID, "--parallel %d: must be in [1, 256]", n_slots);
    if (max_queue < 0) return bn_error_set(err, BN_ERR_INVALID, "--queue %d: must be >= 0", max_queue);
    const bn_model_config *cfg = bn_model_get_config(model);
    if (n_ctx <= 0) n_ctx = cfg->n_ctx_train;
    if (prefill_chunk <= 0) prefill_chunk = 256;
    bn_engine *e = calloc(1, sizeof *e);
    if (!e) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    e->model = model;
    e->tok = tok;
    e->n_vocab = cfg->n_vocab;
    e->n_ctx = n_ctx;
    e->n_slots = n_slots;
    e->max_queue = max_queue;
    e->prefill_chunk = prefill_chunk;
    if (observer) e->observer = *observer;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    size_t max_entries = (size_t)n_slots + (size_t)prefill_chunk;
    e->slots = calloc((size_t)n_slots, sizeof *e->slots);
    e->entries = calloc(max_entries, sizeof *e->entries);
    e->entry_slot = calloc(max_entries, sizeof *e->entry_slot);
    /* rows: one per decoding slot plus one per prefilling slot that completes */
    e->logits = malloc((size_t)2 * (size_t)n_slots * (size_t)e->n_vocab * sizeof *e->logits);
    bn_status st = BN_OK;
    if (!e->slots || !e->entries || !e->entry_slot || !e->logits)
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory for %d slots", n_slots);
    for (int i = 0; i < n_slots && !st; i++) st = bn_sequence_create(model, n_ctx, &e->slots[i].seq, err);
    if (!st) {
        if (pthread_create(&e->thread, NULL, engine_main, e) != 0)
            st = bn_error_set(err, BN_ERR_STATE, "cannot start the engine thread");
        else
            e->thread_started = true;
    }
    if (st) {
        bn_engine_free(e);
        return st;
    }
    *out = e;
    return BN_OK;
}

void bn_engine_free(bn_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->thread_started) pthread_join(e->thread, NULL);
    while (e->queue_head) {
        job *j = e->queue_head;
        e->queue_head = j->next;
        emit_finish(j, BN_ENGINE_FINISH_CANCELLED, NULL);
    }
    for (int i = 0; e->slots && i < e->n_slots; i++) {
        if (e->slots[i].job) {
            job *j = e->slots[i].job;
            slot_release(e, &e->slots[i]);
            emit_finish(j, BN_ENGINE_FINISH_CANCELLED, NULL);
        }
        bn_sequence_free(e->slots[i].seq);
    }
    free(e->slots);
    free(e->entries);
    free(e->entry_slot);
    free(e->logits);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

void bn_engine_get_stats(bn_engine *e, bn_engine_stats *out) {
    pthread_mutex_lock(&e->mu);
    out->queued = e->queued;
    pthread_mutex_unlock(&e->mu);
    out->n_slots = e->n_slots;
    out->busy_slots = atomic_load(&e->busy);
    out->kv_used = atomic_load(&e->kv_used);
    out->kv_capacity = (int64_t)e->n_slots * e->n_ctx;
}

int bn_engine_ctx(const bn_engine *e) { return e->n_ctx; }
