/*
 * engine.h: the server's scheduler. One engine thread owns the model and runs continuous
 * batching: --parallel slots (each a sequence with its own KV cache) decode together in one
 * bn_model_decode() per step; prompts of newly admitted jobs are prefilled in chunks inside the
 * same steps, after the decoding slots' tokens, so running streams keep flowing; jobs beyond the
 * slots wait in a bounded FIFO queue.
 *
 * A job is one choice of one request: prompt ids in, events out. Every step of a job goes through
 * the generation core (runtime/generation.h: sampling, grammar, detokenizing, stop strings,
 * finish reasons), the same one `bitnet run` and `bitnet chat` use. Events are delivered on the
 * engine thread through the job's callback; the FINISH event is always the last one, exactly once
 * per submitted job, after which the engine forgets the job. A job whose cancel flag is set
 * finishes (reason CANCELLED) at the next step, freeing its slot at once.
 *
 * Prompt cache: a slot keeps the ids of its KV cache after its job ends. A new job goes to the
 * idle slot whose cache shares the longest prefix with its prompt (least recently used among
 * equals) and prefills only the rest; with cache_ram_mb > 0, a bounded store of recently used
 * caches (host memory, least recently used dropped first) also offers prefixes, copied into the
 * slot. A slot's cache is saved to the store when a job takes the slot for a prompt that shares
 * less than half of it. Reuse changes no output: the logits of a token depend only on its
 * sequence's tokens (batch invariance). A sequence that went through a context shift is never
 * offered.
 *
 * Speculative decoding (options.spec, runtime/speculative.h): each decoding slot adds its drafts
 * after its pending token in the step's batch, all with logits, and the generation core steps over
 * those rows, keeping the drafts while each sampled token equals the draft; rejected drafts leave
 * the slot's cache. Outputs are unchanged by batch invariance. Each slot has its own drafter
 * state; the step times per batch size that choose the draft length are the engine's, measured
 * on its steps without prompt tokens.
 *
 * Embeddings (POST /v1/embeddings): an embedding job is a list of inputs (token ids) whose pooled
 * final hidden states are wanted. The engine thread runs it because it owns the model; it needs
 * no slot and no sampling, so it has its own FIFO queue. Each step, before building the
 * generation batch, the engine runs up to prefill_chunk tokens (at most the model's ubatch) of
 * the job at the head of that queue through one bn_model_decode_hidden() call (one input, or
 * several short ones together), so running streams keep flowing during a long embedding
 * request as they do during a long prefill. Each input runs on a sequence of its own, created
 * with exactly its length as capacity and freed when it ends, so no slot's prompt cache is
 * touched. An input's rows are summed (in double, in order) as they come; at its end the mean
 * is L2-normalized into the job's output. By batch invariance the vector is the same whatever
 * else runs in the step and however the input is split.
 */
#ifndef BN_SERVER_ENGINE_H
#define BN_SERVER_ENGINE_H

#include "bitnet.h"
#include "model/model.h"
#include "runtime/generation.h"
#include "runtime/speculative.h"
#include "tokenizer/tokenizer.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
    bn_finish_reason finish;   /* ERROR: message says why */
    int n_prompt, n_generated;
    int n_cached;              /* prompt tokens the prompt cache supplied */
    const char *message;
} bn_engine_event;

typedef void (*bn_engine_event_fn)(void *user, const bn_engine_event *ev);

typedef struct bn_engine_job_config {
    const int32_t *prompt;  /* copied */
    size_t n_prompt;        /* >= 1 and <= the slot context */
    bn_gen_config gen;      /* max_tokens >= 1; logit_bias and stops copied; the grammar must
                             * outlive the job */
    int index;
    const atomic_bool *cancel; /* may be NULL; must outlive the job */
    bn_engine_event_fn on_event;
    void *user;
    double submit_ms;       /* for time-to-first-token */
} bn_engine_job_config;

typedef struct bn_engine_stats {
    int n_slots, busy_slots, queued;
    int64_t kv_used, kv_capacity; /* cells (tokens) over all slots */
    /* prompt cache, since start */
    int64_t cache_lookups;        /* jobs admitted */
    int64_t cache_hits;           /* of them, with a reused prefix */
    int64_t cache_reused_tokens;  /* prompt tokens not prefilled thanks to it */
    int64_t store_hits;           /* hits served from the host store */
    int64_t store_entries, store_bytes, store_limit_bytes; /* now */
    int64_t context_shifts;
    /* speculative decoding (--spec), since start: decode steps of running jobs, tokens drafted,
     * drafts confirmed, tokens sampled in those steps */
    int64_t spec_steps, spec_drafted, spec_accepted, spec_tokens;
} bn_engine_stats;

typedef struct bn_engine_options {
    int n_slots;          /* 1..256 */
    int n_ctx;            /* per slot; 0: the model's training context */
    int max_queue;        /* >= 0 */
    int prefill_chunk;    /* prompt tokens per step over all slots; 0: 256 */
    int cache_ram_mb;     /* host store of prompt caches; 0: off */
    bool no_prompt_cache; /* every prompt is prefilled from position 0 (baselines, debugging) */
    bool context_shift;   /* a full slot drops the oldest half after `keep` instead of ending */
    int keep;             /* tokens a context shift keeps */
    bn_spec_config spec;  /* speculative decoding per slot (mode NONE: off; no replay); a draft
                           * model must outlive the engine and is used on its thread only */
} bn_engine_options;

/* Latency observer (metrics): called on the engine thread. */
typedef struct bn_engine_observer {
    void (*first_token)(void *user, double seconds);
    void (*inter_token)(void *user, double seconds);
    void (*tokens)(void *user, int n_prompt, int n_generated);
    void *user;
} bn_engine_observer;

typedef struct bn_engine bn_engine;

/* Creates the slots' sequences and starts the engine thread. The model and tokenizer must outlive
 * the engine. Owned by the caller: bn_engine_free (stops the thread; queued and running jobs
 * finish as cancelled). */
bn_status bn_engine_create(bn_engine **out, bn_model *model, const bn_tokenizer *tok,
                           const bn_engine_options *options, const bn_engine_observer *observer,
                           bn_error *err);
void bn_engine_free(bn_engine *e);

/* Queues n jobs atomically: either all are queued or none (BN_ERR_RANGE only when the queue has
 * no room for n more; BN_ERR_INVALID for a bad config, a sampler parameter included). */
bn_status bn_engine_submit(bn_engine *e, const bn_engine_job_config *jobs, size_t n, bn_error *err);
void bn_engine_get_stats(bn_engine *e, bn_engine_stats *out);
int bn_engine_ctx(const bn_engine *e);

/* Called once on the engine thread when an embedding job ends: BN_OK (every vector written),
 * BN_ERR_STATE (cancelled, or the engine stopped) or another failure, with message saying why. */
typedef void (*bn_engine_embed_done_fn)(void *user, bn_status status, const char *message);

typedef struct bn_engine_embed_config {
    const int32_t *const *inputs; /* n_inputs token lists; not copied: they, n_tokens and out must
                                   * stay valid until done is called */
    const size_t *n_tokens;       /* each in [1, the slot context]; ids below n_vocab */
    size_t n_inputs;              /* >= 1 */
    int32_t bos;                  /* a first token equal to this runs but is not pooled, unless it is
                                   * the whole input; -1: every token is pooled */
    float *out;                   /* n_inputs x dim: each input's mean final hidden state (after
                                   * the output RMSNorm), L2-normalized */
    const atomic_bool *cancel;    /* may be NULL; must outlive the job */
    bn_engine_embed_done_fn done;
    void *user;
} bn_engine_embed_config;

/* Queues an embedding job (see the header comment): BN_ERR_RANGE when --queue embedding jobs
 * already wait, BN_ERR_STATE while stopping, BN_ERR_INVALID for a bad config. */
bn_status bn_engine_submit_embed(bn_engine *e, const bn_engine_embed_config *job, bn_error *err);

/* Monotonic milliseconds. */
double bn_engine_now_ms(void);

#endif
