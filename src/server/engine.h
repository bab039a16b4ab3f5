/*
 * engine.h: the server's scheduler. One engine thread owns the model and runs continuous
 * batching: --parallel slots (each a sequence with its own KV cache) decode together in one
 * bn_model_decode() per step; prompts of newly admitted jobs are prefilled in chunks inside the
 * same steps, after the decoding slots' tokens, so running streams keep flowing; jobs beyond the
 * slots wait in a bounded FIFO queue.
 *
 * A job is one choice of one request: prompt ids in, events out. The engine samples (per-job
 * sampler and seed), detokenizes (UTF-8 never split), applies stop strings (with hold-back) and,
 * when the job has a JSON grammar, masks every token that cannot continue valid JSON within the
 * tokens left. Events are delivered on the engine thread through the job's callback; the FINISH
 * event is always the last one, exactly once per submitted job, after which the engine forgets
 * the job. A job whose cancel flag is set finishes (reason CANCELLED) at the next step, freeing
 * its slot at once.
 */
#ifndef BN_SERVER_ENGINE_H
#define BN_SERVER_ENGINE_H

#include "bitnet.h"
#include "model/model.h"
#include "sampling/sampler.h"
#include "server/json_grammar.h"
#include "tokenizer/tokenizer.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum bn_engine_finish {
    BN_ENGINE_FINISH_STOP = 0, /* end-of-generation token, stop string, or the JSON document ended */
    BN_ENGINE_FINISH_LENGTH,   /* max_tokens or the slot's context */
    BN_ENGINE_FINISH_CANCELLED,
    BN_ENGINE_FINISH_ERROR     /* the model or sampler failed: message in the event */
} bn_engine_finish;

typedef enum bn_engine_event_kind { BN_ENGINE_TOKEN = 0, BN_ENGINE_FINISH } bn_engine_event_kind;

typedef struct bn_engine_event {
    bn_engine_event_kind kind;
    int index;             /* the job's choice index */
    /* TOKEN: text that became final with this token (may be empty), and the token itself */
    const char *text;
    size_t text_len;
    bool token_in_output;  /* false for a token that ends the generation (EOG, stop) */
    const bn_sample_result *sample;
    /* FINISH */
    bn_engine_finish finish;
    int n_prompt, n_generated;
    const char *message;
} bn_engine_event;

typedef void (*bn_engine_event_fn)(void *user, const bn_engine_event *ev);

typedef struct bn_engine_job_config {
    const int32_t *prompt;  /* copied */
    size_t n_prompt;        /* >= 1 and <= the slot context */
    bn_sampler_params sampling; /* logit_bias copied */
    int32_t max_tokens;     /* >= 1 */
    const char *const *stops; /* copied */
    size_t n_stops;
    bool stop_at_eog;       /* end at EOS/EOT (always true except for tests) */
    const bn_json_grammar *grammar; /* may be NULL; must outlive the job */
    bool want_logprobs;
    int index;
    const atomic_bool *cancel; /* may be NULL; must outlive the job */
    bn_engine_event_fn on_event;
    void *user;
    double submit_ms;       /* for time-to-first-token */
} bn_engine_job_config;

typedef struct bn_engine_stats {
    int n_slots, busy_slots, queued;
    int64_t kv_used, kv_capacity; /* cells (tokens) over all slots */
} bn_engine_stats;

/* Latency observer (metrics): called on the engine thread. */
typedef struct bn_engine_observer {
    void (*first_token)(void *user, double seconds);
    void (*inter_token)(void *user, double seconds);
    void (*tokens)(void *user, int n_prompt, int n_generated);
    void *user;
} bn_engine_observer;

typedef struct bn_engine bn_engine;

/* Creates n_slots sequences of n_ctx positions each and starts the engine thread. The model and
 * tokenizer must outlive the engine. prefill_chunk: prompt tokens per step over all slots (0:
 * 256). Owned by the caller: bn_engine_free (stops the thread; queued and running jobs finish
 * as cancelled). */
bn_status bn_engine_create(bn_engine **out, bn_model *model, const bn_tokenizer *tok, int n_slots,
                           int n_ctx, int max_queue, int prefill_chunk,
                           const bn_engine_observer *observer, bn_error *err);
void bn_engine_free(bn_engine *e);

/* Queues n jobs atomically: either all are queued or none (BN_ERR_RANGE when the queue has no
 * room for n more, BN_ERR_INVALID for a bad config). */
bn_status bn_engine_submit(bn_engine *e, const bn_engine_job_config *jobs, size_t n, bn_error *err);
void bn_engine_get_stats(bn_engine *e, bn_engine_stats *out);
int bn_engine_ctx(const bn_engine *e);

/* Monotonic milliseconds. */
double bn_engine_now_ms(void);

#endif
