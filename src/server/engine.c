/*
 * engine.c: continuous batching over --parallel slots with a prompt cache (see engine.h). The
 * engine thread loops: admit queued jobs into the idle slots that cache the most of their
 * prompts, drop cancelled jobs, shift or end full ones, build one batch (one token per decoding
 * slot, then prompt chunks of prefilling slots up to the prefill budget), run bn_model_decode
 * once, and hand every row of logits to its job's generation (bn_gen_step), turning the deltas
 * into events. Before building that batch, a step runs one chunk of the embedding job at the head
 * of its own queue (embed_step, see engine.h).
 */
#include "server/engine.h"

#include "runtime/prompt_store.h"

#include <math.h>
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
    int n_cached;          /* prompt tokens the cache supplied */
    bn_gen *gen;
    int32_t pending;       /* sampled token not yet in the cache, or -1 */
    double last_ms;
    bn_engine *engine;
} job;

/* An embedding job (bn_engine_embed_config) and how far it has run. */
typedef struct embed_job {
    struct embed_job *next;
    bn_engine_embed_config cfg;
    size_t input;          /* the input running now */
    size_t done;           /* its tokens already run */
    bn_sequence *seq;      /* its sequence, while it is part-way */
    double *sum;           /* dim: its pooled rows so far */
} embed_job;

typedef struct slot {
    bn_sequence *seq;
    job *job;
    bn_spec *spec;         /* speculative decoding: the drafter state (NULL: off) */
    int32_t draft[BN_SPEC_DRAFT_LIMIT];
    int n_draft;           /* drafts after the pending token in this step's batch */
    bn_tokens cached;      /* ids at positions 0..length-1 of seq */
    bool shifted;          /* went through a context shift: never reused */
    uint64_t last_used;
} slot;

struct bn_engine {
    bn_model *model;
    const bn_tokenizer *tok;
    bn_engine_options opt;
    int n_vocab;
    slot *slots;
    bn_prompt_store *store;
    uint64_t tick;
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
    atomic_llong lookups, hits, reused, store_hits, store_entries, store_bytes, shifts;
    bn_batch_entry *entries;
    int *entry_slot;
    unsigned char *entry_role; /* ROLE_*: a prompt token, a slot's pending token, a draft */
    bn_spec_costs costs;
    atomic_llong spec_steps, spec_drafted, spec_accepted, spec_tokens;
    float *logits;
    int rr;                /* round-robin start for prefill */
    /* embeddings: the queue (under mu), the tokens of a step (prefill_chunk, at most the model's
     * ubatch), and one step's hidden rows, the sequences of its inputs and the tokens of each */
    embed_job *embed_head, *embed_tail;
    int embed_queued;
    int embed_chunk;
    int dim;
    float *hidden;
    bn_sequence **embed_seqs;
    int *embed_take;
};

double bn_engine_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void job_free(job *j) {
    if (!j) return;
    free(j->prompt);
    bn_gen_free(j->gen);
    free(j);
}

static void emit_finish(job *j, bn_finish_reason reason, const char *message) {
    bn_engine_event ev = {.kind = BN_ENGINE_FINISH, .index = j->cfg.index, .finish = reason,
                          .n_prompt = (int)j->cfg.n_prompt, .n_generated = j->gen ? bn_gen_n_generated(j->gen) : 0,
                          .n_cached = j->n_cached, .message = message};
    if (j->engine->observer.tokens && reason != BN_FINISH_CANCELLED)
        j->engine->observer.tokens(j->engine->observer.user, (int)j->cfg.n_prompt, ev.n_generated);
    j->cfg.on_event(j->cfg.user, &ev);
    job_free(j);
}

bn_status bn_engine_submit(bn_engine *e, const bn_engine_job_config *cfgs, size_t n, bn_error *err) {
    job **made = calloc(n ? n : 1, sizeof *made);
    if (!made) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    bn_status st = BN_OK;
    for (size_t i = 0; i < n && !st; i++) {
        const bn_engine_job_config *c = &cfgs[i];
        if (c->n_prompt < 1 || c->n_prompt > (size_t)e->opt.n_ctx || c->gen.max_tokens < 1 || !c->on_event) {
            st = bn_error_set(err, BN_ERR_INVALID, "job %zu: prompt of %zu tokens for a context of %d, max_tokens %d",
                              i, c->n_prompt, e->opt.n_ctx, c->gen.max_tokens);
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
        j->prompt = malloc(c->n_prompt * sizeof *j->prompt);
        if (!j->prompt) {
            st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(j->prompt, c->prompt, c->n_prompt * sizeof *j->prompt);
        j->cfg.prompt = NULL;
        st = bn_gen_create(&j->gen, e->tok, (size_t)e->n_vocab, &c->gen, err);
        /* a bad job (a bias token past the vocabulary) is the request's fault, never "queue full" */
        if (st == BN_ERR_RANGE) {
            st = BN_ERR_INVALID;
            if (err) err->code = st;
        }
        /* the generation keeps its own copies of these */
        j->cfg.gen.stops = NULL;
        j->cfg.gen.n_stops = 0;
        j->cfg.gen.sampling.logit_bias = NULL;
        j->cfg.gen.sampling.n_logit_bias = 0;
        if (!st) bn_gen_accept(j->gen, c->prompt, c->n_prompt);
    }
    if (!st) {
        pthread_mutex_lock(&e->mu);
        if (e->stop) {
            st = bn_error_set(err, BN_ERR_STATE, "the server is shutting down");
        } else if ((size_t)e->queued + n > (size_t)e->opt.max_queue) {
            st = bn_error_set(err, BN_ERR_RANGE, "the queue is full (%d waiting, limit %d)", e->queued,
                              e->opt.max_queue);
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

static void emit_token(job *j, const bn_gen_delta *d) {
    bn_engine_event ev = {.kind = BN_ENGINE_TOKEN, .index = j->cfg.index, .text = d->text,
                          .text_len = d->text_len, .token_in_output = d->token_in_output, .sample = d->sample};
    j->cfg.on_event(j->cfg.user, &ev);
}

/* Releases a slot's job (already finished through emit_finish or about to be). */
static void slot_release(bn_engine *e, slot *s) {
    s->job = NULL;
    s->last_used = ++e->tick;
    atomic_fetch_sub(&e->busy, 1);
}

/* Ends the job in slot s early (cancel, full context, failure): the held text goes out first. */
static void end_job(bn_engine *e, slot *s, bn_finish_reason reason, const char *message) {
    job *j = s->job;
    bn_gen_delta d;
    bn_gen_finish(j->gen, reason, &d);
    if (d.text_len && reason != BN_FINISH_CANCELLED) emit_token(j, &d);
    slot_release(e, s);
    emit_finish(j, reason, message);
}

enum { ROLE_PROMPT = 0, ROLE_PENDING, ROLE_DRAFT };

/* A sampled token goes out with its latency (bn_spec_verify's callback). */
static bool deliver(void *user, const bn_gen_delta *d) {
    job *j = user;
    bn_engine *e = j->engine;
    if (d->token >= 0) {
        double now = bn_engine_now_ms();
        int n_generated = bn_gen_n_generated(j->gen);
        if (e->observer.first_token && n_generated == 1)
            e->observer.first_token(e->observer.user, (now - j->cfg.submit_ms) / 1e3);
        else if (e->observer.inter_token && n_generated > 1)
            e->observer.inter_token(e->observer.user, (now - j->last_ms) / 1e3);
        j->last_ms = now;
        emit_token(j, d);
    }
    return true;
}

/* Handles the rows of logits of the job in slot s: one after its last prompt token, or one after
 * its pending token and one after each of its n_draft drafts (the slot's cache holds them all
 * now; the drafts the generation does not confirm leave it). */
static void handle_rows(bn_engine *e, slot *s, const float *rows, int n_draft) {
    job *j = s->job;
    bn_error err;
    const int before = bn_sequence_length(s->seq) - n_draft; /* without the drafts */
    int ctx_left = bn_sequence_capacity(s->seq) - before;
    if (e->opt.context_shift) ctx_left = INT32_MAX; /* a full slot shifts before its next step */
    int accepted = 0, sampled = 0;
    int32_t next = -1;
    bn_status st = bn_spec_verify(j->gen, rows, (size_t)e->n_vocab, s->draft, n_draft, ctx_left, deliver, j,
                                  &accepted, &sampled, &next, &err);
    if (n_draft > accepted) {
        bn_sequence_truncate(s->seq, before + accepted);
        if (s->cached.n > (size_t)(before + accepted)) s->cached.n = (size_t)(before + accepted);
    }
    if (s->spec && j->pending >= 0) {
        bn_spec_record(s->spec, n_draft, accepted, sampled);
        atomic_fetch_add(&e->spec_steps, 1);
        atomic_fetch_add(&e->spec_drafted, n_draft);
        atomic_fetch_add(&e->spec_accepted, accepted);
        atomic_fetch_add(&e->spec_tokens, sampled);
    }
    if (st != BN_OK) {
        slot_release(e, s);
        emit_finish(j, BN_FINISH_ERROR, err.message);
        return;
    }
    bn_finish_reason finish = bn_gen_finish_reason(j->gen);
    if (finish != BN_FINISH_NONE) {
        slot_release(e, s);
        emit_finish(j, finish, NULL);
        return;
    }
    j->pending = next;
}

/* The drafts of a decoding slot for this step (none when the controller wants none, or the
 * drafter fails: drafts only ever save time). */
static void draft_slot(bn_engine *e, slot *s) {
    job *j = s->job;
    s->n_draft = 0;
    if (!s->spec) return;
    int limit = bn_sequence_capacity(s->seq) - bn_sequence_length(s->seq) - 1;
    int left = j->cfg.gen.max_tokens - bn_gen_n_generated(j->gen) - 1;
    if (left < limit) limit = left;
    int want = bn_spec_want(s->spec, &e->costs, limit);
    bn_error err;
    if (want <= 0 || bn_tokens_push(&s->cached, j->pending, &err) != BN_OK) return;
    if (bn_spec_propose(s->spec, s->cached.ids, s->cached.n, j->cfg.n_prompt, want, s->draft, &s->n_draft, &err) != BN_OK)
        s->n_draft = 0;
    s->cached.n--;
}

/* Puts job j into the idle slot whose cache (or a stored one) holds the most of its prompt. */
static void admit(bn_engine *e, job *j) {
    const size_t usable = j->cfg.n_prompt - 1; /* the last prompt token always runs, for logits */
    int best = -1, emptiest = -1;
    size_t best_common = 0, emptiest_common = 0;
    for (int i = 0; i < e->opt.n_slots; i++) {
        slot *s = &e->slots[i];
        if (s->job) continue;
        size_t c = s->shifted || e->opt.no_prompt_cache
                       ? 0 : bn_tokens_common_prefix(s->cached.ids, s->cached.n, j->prompt, usable);
        if (best < 0 || c > best_common || (c == best_common && s->last_used < e->slots[best].last_used))
            best = i, best_common = c;
        if (emptiest < 0 || c < emptiest_common || (c == emptiest_common && s->last_used < e->slots[emptiest].last_used))
            emptiest = i, emptiest_common = c;
    }
    size_t stored_common = 0;
    int entry = e->store ? bn_prompt_store_find(e->store, j->prompt, usable, &stored_common) : -1;
    bool from_store = entry >= 0 && stored_common > best_common;
    slot *s = &e->slots[from_store ? emptiest : best];
    size_t common = from_store ? stored_common : best_common;
    bn_error err;
    /* A cache mostly unrelated to the new prompt goes to the store before it is overwritten. */
    if (e->store && !s->shifted && s->cached.n > 0 && (from_store || 2 * common < s->cached.n))
        bn_prompt_store_save(e->store, s->seq, s->cached.ids, s->cached.n, &err);
    if (s->shifted) {
        s->shifted = false;
        s->cached.n = 0;
    }
    if (from_store) {
        /* the entry's first `common` ids are the prompt's */
        size_t n = 0;
        s->cached.n = 0;
        if (bn_prompt_store_restore(e->store, entry, s->seq, &n, &err) != BN_OK) common = 0;
        for (size_t i = 0; i < common; i++)
            if (bn_tokens_push(&s->cached, j->prompt[i], &err) != BN_OK) break;
        atomic_fetch_add(&e->store_hits, s->cached.n > 0);
    }
    if (common > s->cached.n) common = s->cached.n;
    bn_sequence_truncate(s->seq, (int)common);
    if (common == 0) bn_sequence_clear(s->seq);
    s->cached.n = common;
    j->n_prefilled = common;
    j->n_cached = (int)common;
    atomic_fetch_add(&e->lookups, 1);
    atomic_fetch_add(&e->hits, common > 0);
    atomic_fetch_add(&e->reused, (long long)common);
    if (e->store) {
        atomic_store(&e->store_entries, (long long)bn_prompt_store_entries(e->store));
        atomic_store(&e->store_bytes, (long long)bn_prompt_store_bytes(e->store));
    }
    s->job = j;
    s->last_used = ++e->tick;
    s->n_draft = 0;
    if (s->spec) bn_spec_restart(s->spec);
}

/* Context shift of a full slot: keeps opt.keep tokens, drops the oldest half of the rest. */
static bool shift_slot(bn_engine *e, slot *s) {
    int length = bn_sequence_length(s->seq);
    int keep = e->opt.keep < length - 2 ? e->opt.keep : length - 2;
    if (keep < 0) keep = 0;
    int n_discard = (length - keep) / 2;
    bn_error err;
    if (n_discard < 1 || bn_sequence_shift(s->seq, keep, n_discard, &err) != BN_OK) return false;
    memmove(s->cached.ids + keep, s->cached.ids + keep + n_discard,
            (s->cached.n - (size_t)keep - (size_t)n_discard) * sizeof *s->cached.ids);
    s->cached.n -= (size_t)n_discard;
    s->shifted = true;
    atomic_fetch_add(&e->shifts, 1);
    return true;
}

static long long kv_in_use(const bn_engine *e) {
    long long used = 0;
    for (int i = 0; i < e->opt.n_slots; i++)
        if (e->slots[i].job) used += bn_sequence_length(e->slots[i].seq);
    return used;
}

bn_status bn_engine_submit_embed(bn_engine *e, const bn_engine_embed_config *cfg, bn_error *err) {
    if (cfg->n_inputs < 1 || !cfg->inputs || !cfg->n_tokens || !cfg->out || !cfg->done)
        return bn_error_set(err, BN_ERR_INVALID, "embedding job: no inputs, output or callback");
    for (size_t i = 0; i < cfg->n_inputs; i++) {
        if (cfg->n_tokens[i] < 1 || cfg->n_tokens[i] > (size_t)e->opt.n_ctx)
            return bn_error_set(err, BN_ERR_INVALID, "embedding input %zu: %zu tokens for a context of %d", i,
                                cfg->n_tokens[i], e->opt.n_ctx);
        for (size_t t = 0; t < cfg->n_tokens[i]; t++)
            if (cfg->inputs[i][t] < 0 || cfg->inputs[i][t] >= e->n_vocab)
                return bn_error_set(err, BN_ERR_INVALID, "embedding input %zu: token id %d is outside [0, %d)", i,
                                    cfg->inputs[i][t], e->n_vocab);
    }
    embed_job *j = calloc(1, sizeof *j);
    double *sum = calloc((size_t)e->dim, sizeof *sum);
    if (!j || !sum) {
        free(j);
        free(sum);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    }
    j->cfg = *cfg;
    j->sum = sum;
    bn_status st = BN_OK;
    pthread_mutex_lock(&e->mu);
    if (e->stop) {
        st = bn_error_set(err, BN_ERR_STATE, "the server is shutting down");
    } else if (e->embed_queued >= e->opt.max_queue) {
        st = bn_error_set(err, BN_ERR_RANGE, "the embedding queue is full (%d waiting, limit %d)", e->embed_queued,
                          e->opt.max_queue);
    } else {
        if (e->embed_tail) e->embed_tail->next = j;
        else e->embed_head = j;
        e->embed_tail = j;
        e->embed_queued++;
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    if (st) {
        free(sum);
        free(j);
    }
    return st;
}

/* Takes the head embedding job off the queue and ends it: done(status, message), then freed. */
static void embed_finish(bn_engine *e, embed_job *j, bn_status status, const char *message) {
    pthread_mutex_lock(&e->mu);
    e->embed_head = j->next;
    if (!e->embed_head) e->embed_tail = NULL;
    e->embed_queued--;
    pthread_mutex_unlock(&e->mu);
    if (status == BN_OK && e->observer.tokens) {
        size_t total = 0;
        for (size_t i = 0; i < j->cfg.n_inputs; i++) total += j->cfg.n_tokens[i];
        e->observer.tokens(e->observer.user, total > INT32_MAX ? INT32_MAX : (int)total, 0);
    }
    bn_sequence_free(j->seq);
    j->cfg.done(j->cfg.user, status, message);
    free(j->sum);
    free(j);
}

/* The vector of a finished input: the mean of its pooled rows (sum over count), L2-normalized;
 * false when it is not finite. */
static bool embed_vector(float *out, double *sum, size_t count, int dim) {
    double norm = 0;
    for (int i = 0; i < dim; i++) {
        sum[i] /= (double)count;
        norm += sum[i] * sum[i];
    }
    norm = sqrt(norm);
    if (!isfinite(norm)) return false;
    for (int i = 0; i < dim; i++) out[i] = norm > 0 ? (float)(sum[i] / norm) : 0.0f;
    memset(sum, 0, (size_t)dim * sizeof *sum);
    return true;
}

/* One step of the embedding job at the head of the queue: up to embed_chunk of its tokens, from
 * the input it is in and the inputs after it (each on its own sequence), through one
 * bn_model_decode_hidden; every input that ends here gets its vector. */
static void embed_step(bn_engine *e) {
    pthread_mutex_lock(&e->mu);
    embed_job *j = e->embed_head; /* only this thread takes jobs off the queue */
    pthread_mutex_unlock(&e->mu);
    if (!j) return;
    const bn_engine_embed_config *c = &j->cfg;
    if (c->cancel && atomic_load(c->cancel)) {
        embed_finish(e, j, BN_ERR_STATE, "cancelled");
        return;
    }
    /* the step owns the sequences of its inputs (embed_seqs[k] for input j->input + k) until each
     * input ends, or hands the one left part-way back to the job */
    bn_error err;
    bn_status st = BN_OK;
    int n = 0, n_inputs = 0;
    for (size_t i = j->input; i < c->n_inputs && n < e->embed_chunk; i++) {
        bn_sequence *seq = i == j->input ? j->seq : NULL;
        if (!seq && (st = bn_sequence_create(e->model, (int)c->n_tokens[i], &seq, &err)) != BN_OK) break;
        size_t from = i == j->input ? j->done : 0, left = c->n_tokens[i] - from;
        int take = left < (size_t)(e->embed_chunk - n) ? (int)left : e->embed_chunk - n;
        for (int t = 0; t < take; t++)
            e->entries[n++] = (bn_batch_entry){seq, (int32_t)(from + (size_t)t), c->inputs[i][from + (size_t)t], true};
        e->embed_seqs[n_inputs] = seq;
        e->embed_take[n_inputs++] = take;
    }
    j->seq = NULL;
    if (st == BN_OK) st = bn_model_decode_hidden(e->model, e->entries, n, e->hidden, &err);
    const float *row = e->hidden;
    for (int k = 0; k < n_inputs && st == BN_OK; k++) {
        size_t i = j->input;
        /* a leading BOS runs (the model expects it) but is the same in every input: not pooled */
        bool skip_bos = c->bos >= 0 && c->inputs[i][0] == c->bos && c->n_tokens[i] > 1;
        for (int t = 0; t < e->embed_take[k]; t++, row += e->dim) {
            if (skip_bos && j->done + (size_t)t == 0) continue;
            for (int d = 0; d < e->dim; d++) j->sum[d] += row[d];
        }
        j->done += (size_t)e->embed_take[k];
        if (j->done < c->n_tokens[i]) { /* part-way (the step's last input): on at the next step */
            j->seq = e->embed_seqs[k];
            e->embed_seqs[k] = NULL;
            break;
        }
        if (!embed_vector(c->out + i * (size_t)e->dim, j->sum, c->n_tokens[i] - skip_bos, e->dim))
            st = bn_error_set(&err, BN_ERR_RANGE, "input %zu: the model's hidden state is not finite", i);
        j->input++, j->done = 0;
    }
    for (int k = 0; k < n_inputs; k++) bn_sequence_free(e->embed_seqs[k]);
    if (st != BN_OK) embed_finish(e, j, st, err.message);
    else if (j->input == c->n_inputs) embed_finish(e, j, BN_OK, NULL);
}

/* How long an idle engine gathers a burst of requests before its first step. */
#define ADMIT_WINDOW_MS 5

static void *engine_main(void *arg) {
    bn_engine *e = arg;
    job **admitted = calloc((size_t)e->opt.n_slots, sizeof *admitted);
    for (;;) {
        job *dropped = NULL;
        int n_admitted = 0;
        pthread_mutex_lock(&e->mu);
        while (!e->stop && atomic_load(&e->busy) == 0 && !e->queue_head && !e->embed_head)
            pthread_cond_wait(&e->cv, &e->mu);
        if (e->stop) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        /* An idle engine woken by a request waits a moment for the rest of a burst (clients that
         * start together reach it a few ms apart), so their prompts share the first step instead
         * of each one's prefill delaying the next one's first token. */
        if (atomic_load(&e->busy) == 0 && !e->embed_head && e->queued < e->opt.n_slots) {
            struct timespec deadline;
            clock_gettime(CLOCK_REALTIME, &deadline);
            deadline.tv_nsec += ADMIT_WINDOW_MS * 1000000L;
            if (deadline.tv_nsec >= 1000000000L) deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
            while (!e->stop && e->queued < e->opt.n_slots &&
                   pthread_cond_timedwait(&e->cv, &e->mu, &deadline) == 0) {
            }
        }
        int free_slots = e->opt.n_slots - atomic_load(&e->busy);
        while (e->queue_head && n_admitted < free_slots) {
            job *j = e->queue_head;
            e->queue_head = j->next;
            if (!e->queue_head) e->queue_tail = NULL;
            e->queued--;
            j->next = NULL;
            if (j->cfg.cancel && atomic_load(j->cfg.cancel)) {
                j->next = dropped;
                dropped = j;
                continue;
            }
            admitted[n_admitted++] = j;
            atomic_fetch_add(&e->busy, 1);
        }
        pthread_mutex_unlock(&e->mu);
        for (int k = 0; k < n_admitted; k++) admit(e, admitted[k]);
        while (dropped) {
            job *next = dropped->next;
            emit_finish(dropped, BN_FINISH_CANCELLED, NULL);
            dropped = next;
        }
        /* cancelled jobs leave their slots now; full ones shift or end */
        for (int i = 0; i < e->opt.n_slots; i++) {
            slot *s = &e->slots[i];
            if (!s->job) continue;
            if (s->job->cfg.cancel && atomic_load(s->job->cfg.cancel)) {
                end_job(e, s, BN_FINISH_CANCELLED, NULL);
            } else if (s->job->pending >= 0 && bn_sequence_length(s->seq) >= bn_sequence_capacity(s->seq)) {
                if (!e->opt.context_shift || !shift_slot(e, s)) end_job(e, s, BN_FINISH_CONTEXT, NULL);
            }
        }
        atomic_store(&e->kv_used, kv_in_use(e));
        embed_step(e);
        /* the batch: decoding slots first, then prompt chunks */
        int n = 0;
        for (int i = 0; i < e->opt.n_slots; i++) {
            slot *s = &e->slots[i];
            if (!s->job || s->job->pending < 0) continue;
            draft_slot(e, s);
            int pos = bn_sequence_length(s->seq);
            e->entries[n] = (bn_batch_entry){s->seq, pos, s->job->pending, true};
            e->entry_role[n] = ROLE_PENDING;
            e->entry_slot[n++] = i;
            for (int d = 0; d < s->n_draft; d++) {
                e->entries[n] = (bn_batch_entry){s->seq, pos + 1 + d, s->draft[d], true};
                e->entry_role[n] = ROLE_DRAFT;
                e->entry_slot[n++] = i;
            }
        }
        const int n_decoding = n;
        int budget = e->opt.prefill_chunk;
        for (int k = 0; k < e->opt.n_slots && budget > 0; k++) {
            int i = (e->rr + k) % e->opt.n_slots;
            slot *s = &e->slots[i];
            if (!s->job || s->job->pending >= 0) continue;
            job *j = s->job;
            size_t left = j->cfg.n_prompt - j->n_prefilled;
            size_t take = left < (size_t)budget ? left : (size_t)budget;
            int pos = bn_sequence_length(s->seq);
            for (size_t t = 0; t < take; t++) {
                bool last = j->n_prefilled + t + 1 == j->cfg.n_prompt;
                e->entries[n] = (bn_batch_entry){s->seq, pos + (int)t, j->prompt[j->n_prefilled + t], last};
                e->entry_role[n] = ROLE_PROMPT;
                e->entry_slot[n++] = i;
            }
            budget -= (int)take;
        }
        e->rr = (e->rr + 1) % e->opt.n_slots;
        if (n == 0) continue;
        bn_error err;
        double t0 = bn_engine_now_ms();
        if (bn_model_decode(e->model, e->entries, n, e->logits, &err) != BN_OK) {
            for (int i = 0; i < e->opt.n_slots; i++) {
                slot *s = &e->slots[i];
                bool in_batch = false;
                for (int k = 0; k < n; k++) in_batch |= e->entry_slot[k] == i;
                if (!s->job || !in_batch) continue;
                job *j = s->job;
                slot_release(e, s);
                emit_finish(j, BN_FINISH_ERROR, err.message);
            }
            continue;
        }
        if (n == n_decoding) bn_spec_costs_record(&e->costs, n, bn_engine_now_ms() - t0);
        /* every decoded token is in its slot's cache now, whatever its job does next */
        for (int k = 0; k < n; k++) {
            slot *s = &e->slots[e->entry_slot[k]];
            if (bn_tokens_push(&s->cached, e->entries[k].token, &err) != BN_OK) {
                bn_sequence_clear(s->seq); /* the ids are lost: the rows cannot be reused */
                s->cached.n = 0;
            }
        }
        int row = 0;
        for (int k = 0; k < n; k++) {
            slot *s = &e->slots[e->entry_slot[k]];
            if (e->entry_role[k] == ROLE_DRAFT) continue; /* its row goes with its pending token's */
            const int rows = e->entry_role[k] == ROLE_PENDING ? 1 + s->n_draft : e->entries[k].want_logits;
            const float *logits = e->logits + (size_t)row * (size_t)e->n_vocab;
            row += rows;
            if (!s->job) continue;
            if (e->entry_role[k] == ROLE_PROMPT) s->job->n_prefilled++;
            if (rows) handle_rows(e, s, logits, e->entry_role[k] == ROLE_PENDING ? s->n_draft : 0);
        }
        atomic_store(&e->kv_used, kv_in_use(e));
    }
    free(admitted);
    return NULL;
}

bn_status bn_engine_create(bn_engine **out, bn_model *model, const bn_tokenizer *tok,
                           const bn_engine_options *options, const bn_engine_observer *observer,
                           bn_error *err) {
    *out = NULL;
    bn_engine_options o = *options;
    if (o.n_slots < 1 || o.n_slots > 256) return bn_error_set(err, BN_ERR_INVALID, "--parallel %d: must be in [1, 256]", o.n_slots);
    if (o.max_queue < 0) return bn_error_set(err, BN_ERR_INVALID, "--queue %d: must be >= 0", o.max_queue);
    if (o.cache_ram_mb < 0) return bn_error_set(err, BN_ERR_INVALID, "--cache-ram %d: must be >= 0", o.cache_ram_mb);
    if (o.keep < 0) return bn_error_set(err, BN_ERR_INVALID, "--keep %d: must be >= 0", o.keep);
    if (o.spec.mode == BN_SPEC_REPLAY)
        return bn_error_set(err, BN_ERR_INVALID, "--spec replay: the server has no previous run to replay (ngram or draft)");
    if (o.spec.mode != BN_SPEC_NONE) {
        bn_status cst = bn_spec_config_check(&o.spec, err);
        if (cst != BN_OK) return cst;
    }
    const int per_slot = 1 + (o.spec.mode != BN_SPEC_NONE ? o.spec.draft_max : 0);
    const bn_model_config *cfg = bn_model_get_config(model);
    if (o.n_ctx <= 0) o.n_ctx = cfg->n_ctx_train;
    if (o.prefill_chunk <= 0) o.prefill_chunk = 256;
    bn_engine *e = calloc(1, sizeof *e);
    if (!e) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    e->model = model;
    e->tok = tok;
    e->opt = o;
    e->n_vocab = cfg->n_vocab;
    e->dim = cfg->dim;
    if (observer) e->observer = *observer;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    size_t max_entries = (size_t)o.n_slots * (size_t)per_slot + (size_t)o.prefill_chunk;
    e->slots = calloc((size_t)o.n_slots, sizeof *e->slots);
    e->entries = calloc(max_entries, sizeof *e->entries);
    e->entry_slot = calloc(max_entries, sizeof *e->entry_slot);
    e->entry_role = calloc(max_entries, sizeof *e->entry_role);
    /* rows: per decoding slot one plus its drafts, plus one per prefilling slot that completes */
    e->logits = malloc((size_t)(per_slot + 1) * (size_t)o.n_slots * (size_t)e->n_vocab * sizeof *e->logits);
    int ubatch = bn_model_get_options(model)->ubatch;
    e->embed_chunk = o.prefill_chunk < ubatch ? o.prefill_chunk : ubatch;
    e->hidden = malloc((size_t)e->embed_chunk * (size_t)e->dim * sizeof *e->hidden);
    e->embed_seqs = calloc((size_t)e->embed_chunk, sizeof *e->embed_seqs);
    e->embed_take = calloc((size_t)e->embed_chunk, sizeof *e->embed_take);
    bn_status st = BN_OK;
    if (!e->slots || !e->entries || !e->entry_slot || !e->entry_role || !e->logits || !e->hidden || !e->embed_seqs ||
        !e->embed_take)
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory for %d slots", o.n_slots);
    for (int i = 0; i < o.n_slots && !st; i++) st = bn_sequence_create(model, o.n_ctx, &e->slots[i].seq, err);
    for (int i = 0; i < o.n_slots && !st && o.spec.mode != BN_SPEC_NONE; i++)
        st = bn_spec_create(&e->slots[i].spec, &o.spec, o.n_ctx, err);
    if (!st && o.cache_ram_mb > 0 && !o.no_prompt_cache) st = bn_prompt_store_create(&e->store, (size_t)o.cache_ram_mb << 20, err);
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
        emit_finish(j, BN_FINISH_CANCELLED, NULL);
    }
    while (e->embed_head) embed_finish(e, e->embed_head, BN_ERR_STATE, "the server is shutting down");
    for (int i = 0; e->slots && i < e->opt.n_slots; i++) {
        if (e->slots[i].job) {
            job *j = e->slots[i].job;
            slot_release(e, &e->slots[i]);
            emit_finish(j, BN_FINISH_CANCELLED, NULL);
        }
        bn_sequence_free(e->slots[i].seq);
        bn_spec_free(e->slots[i].spec);
        bn_tokens_free(&e->slots[i].cached);
    }
    bn_prompt_store_free(e->store);
    free(e->slots);
    free(e->entries);
    free(e->entry_slot);
    free(e->entry_role);
    free(e->logits);
    free(e->hidden);
    free(e->embed_seqs);
    free(e->embed_take);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

void bn_engine_get_stats(bn_engine *e, bn_engine_stats *out) {
    pthread_mutex_lock(&e->mu);
    out->queued = e->queued;
    pthread_mutex_unlock(&e->mu);
    out->n_slots = e->opt.n_slots;
    out->busy_slots = atomic_load(&e->busy);
    out->kv_used = atomic_load(&e->kv_used);
    out->kv_capacity = (int64_t)e->opt.n_slots * e->opt.n_ctx;
    out->cache_lookups = atomic_load(&e->lookups);
    out->cache_hits = atomic_load(&e->hits);
    out->cache_reused_tokens = atomic_load(&e->reused);
    out->store_hits = atomic_load(&e->store_hits);
    out->store_entries = atomic_load(&e->store_entries);
    out->store_bytes = atomic_load(&e->store_bytes);
    out->store_limit_bytes = (int64_t)e->opt.cache_ram_mb << 20;
    out->context_shifts = atomic_load(&e->shifts);
    out->spec_steps = atomic_load(&e->spec_steps);
    out->spec_drafted = atomic_load(&e->spec_drafted);
    out->spec_accepted = atomic_load(&e->spec_accepted);
    out->spec_tokens = atomic_load(&e->spec_tokens);
}

int bn_engine_ctx(const bn_engine *e) { return e->opt.n_ctx; }
