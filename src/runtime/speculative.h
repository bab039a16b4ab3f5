/*
 * speculative.h: speculative decoding that keeps the output exact. A drafter proposes the next k
 * tokens of a sequence; the model runs the pending token and the k drafts in one forward step
 * (reading the weights once, as for one token) and the generation core steps over the k + 1
 * rows of logits in order, keeping drafts while each sampled token equals the draft.
 *
 * Why the output is unchanged: by batch invariance (model.h) row j of the step is bit for bit the
 * logits plain decoding would compute after the same tokens, and the generation (runtime/
 * generation.h) samples from it exactly as a plain step would, consuming its random stream the
 * same way. So greedy output is token-for-token plain greedy output, and a seeded sampled run gives
 * the same tokens as the plain run with that seed. For sampled outputs this is the standard
 * speculative rejection sampling (accept draft d with probability min(1, p(d) / q(d)), else sample
 * from norm(max(0, p - q))) for drafters that propose deterministically, q the point mass on d:
 * sampling s ~ p and accepting iff s == d accepts with probability p(d), and a rejected step's s
 * is distributed as p without d, renormalized, which is norm(max(0, p - q)). All three drafters
 * here propose deterministically (the draft model greedily).
 *
 * Drafters:
 *   ngram   prompt lookup: the longest suffix of the sequence (ngram_max down to ngram_min tokens)
 *           that occurred before, most recent occurrence first; proposes what followed it.
 *   draft   a second, smaller model with the same vocabulary (bn_spec_check_vocab) keeps its own
 *           sequence in step with the target's tokens and proposes its greedy continuation.
 *   replay  the ids of a previous plain run: proposes the next ones while the output so far
 *           equals their prefix (measures the verification path at full acceptance).
 *
 * Draft length adapts: per sequence, the acceptance rate a of drafted tokens (decayed counts) and
 * the measured time of a forward step per batch size (bn_spec_costs, shared by the sequences of
 * one model) choose the k in [draft_min, draft_max] that maximises expected tokens per step,
 * (1 + a + ... + a^k), over the step's cost relative to one token. When that is k = 0 the
 * sequence decodes plainly, drafting one token every BN_SPEC_PROBE_EVERY steps to keep measuring.
 */
#ifndef BN_RUNTIME_SPECULATIVE_H
#define BN_RUNTIME_SPECULATIVE_H

#include "bitnet.h"
#include "model/model.h"
#include "runtime/generation.h"
#include "tokenizer/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum bn_spec_mode {
    BN_SPEC_NONE = 0,
    BN_SPEC_NGRAM,
    BN_SPEC_DRAFT,
    BN_SPEC_REPLAY
} bn_spec_mode;

/* "none", "ngram", "draft", "replay" -> *out; BN_ERR_INVALID naming the value otherwise. */
bn_status bn_spec_mode_parse(bn_spec_mode *out, const char *name, bn_error *err);
const char *bn_spec_mode_name(bn_spec_mode mode);

/* Most drafted tokens one step verifies. */
#define BN_SPEC_DRAFT_LIMIT 16
/* A sequence whose controller chose no draft still drafts one token this often (steps). */
#define BN_SPEC_PROBE_EVERY 16
/* Batch sizes (tokens) whose step time bn_spec_costs keeps. */
#define BN_SPEC_COST_SIZES 64

typedef struct bn_spec_config {
    bn_spec_mode mode;
    int draft_max;          /* 1..BN_SPEC_DRAFT_LIMIT (default 8) */
    int draft_min;          /* 0..draft_max: the controller never drafts fewer when it can */
    bool fixed;             /* always draft_max (no adaptation): benchmarks and tests */
    int ngram_min;          /* 1..ngram_max (default 2) */
    int ngram_max;          /* default 4, at most 16 */
    bn_model *draft_model;  /* DRAFT: the caller's, outlives every bn_spec made with it */
    const int32_t *replay;  /* REPLAY: ids of a previous run's output (copied) */
    size_t n_replay;
} bn_spec_config;

/* draft_max 8, draft_min 0, adaptive, ngram 2..4, the rest zero/NULL. */
bn_spec_config bn_spec_config_default(void);

/* Checks a configuration (ranges, the draft model or replay ids for their modes). */
bn_status bn_spec_config_check(const bn_spec_config *config, bn_error *err);

/* Refuses a draft model whose vocabulary differs from the target's: the sizes, or the bytes or
 * type of any token (naming the first differing id). */
bn_status bn_spec_check_vocab(const bn_tokenizer *target, int target_vocab, const bn_tokenizer *draft,
                              int draft_vocab, bn_error *err);

/* Reads a replay file: token ids as decimal numbers separated by white space (what `bitnet run
 * --output-ids FILE` writes), each in [0, n_vocab). *ids is the caller's (bn_tokens_free). */
bn_status bn_spec_read_ids(bn_tokens *ids, const char *path, int n_vocab, bn_error *err);

/* The time of a forward step per batch size, measured where steps run (one per model and thread
 * count: a session, a server engine). Plain-data; zero-initialise, then record. */
typedef struct bn_spec_costs {
    double ms[BN_SPEC_COST_SIZES + 1]; /* decayed mean per batch size, 0: not measured */
} bn_spec_costs;

/* Records one forward step of n_tokens tokens (sizes above BN_SPEC_COST_SIZES are ignored). */
void bn_spec_costs_record(bn_spec_costs *costs, int n_tokens, double ms);
/* A step of n_tokens relative to one token: measured sizes as recorded, others interpolated
 * linearly between measured neighbours, or with no measurement a prior of +10% per token. */
double bn_spec_costs_ratio(const bn_spec_costs *costs, int n_tokens);

typedef struct bn_spec_stats {
    long long steps;    /* forward steps during generation (each verifies 0..k drafts) */
    long long drafted;  /* tokens proposed */
    long long accepted; /* of them, confirmed by the model */
    long long tokens;   /* tokens the generation sampled in those steps */
} bn_spec_stats;

typedef struct bn_spec bn_spec;

/* One sequence's drafting state (for DRAFT: a sequence of capacity positions on the draft model,
 * 0 = its training context). The caller frees with bn_spec_free. */
bn_status bn_spec_create(bn_spec **out, const bn_spec_config *config, int capacity, bn_error *err);
void bn_spec_free(bn_spec *s);
/* A new generation on the same sequence (a server slot's next job): the acceptance rate starts
 * over; the draft model's cache is kept for prefix reuse; stats are kept (bn_spec_stats_reset). */
void bn_spec_restart(bn_spec *s);
bn_spec_mode bn_spec_get_mode(const bn_spec *s);

/* How many drafts the controller wants now, at most `limit` (what the context, max_tokens and
 * the batch leave room for). */
int bn_spec_want(bn_spec *s, const bn_spec_costs *costs, int limit);

/* Proposes up to max tokens to follow history[0..n) (every token of the sequence, the pending
 * one last; history[n_prompt..n) is the output so far) into out[]; *n_out may be 0. For DRAFT this
 * runs the draft model (errors are its errors; the state stays usable). */
bn_status bn_spec_propose(bn_spec *s, const int32_t *history, size_t n, size_t n_prompt, int max,
                          int32_t *out, int *n_out, bn_error *err);

/* Records a verification: n_drafted proposed, n_accepted kept, n_sampled tokens the generation
 * sampled in the step. */
void bn_spec_record(bn_spec *s, int n_drafted, int n_accepted, int n_sampled);
const bn_spec_stats *bn_spec_get_stats(const bn_spec *s);
void bn_spec_stats_reset(bn_spec *s);

/* Called for each step of a verification with its delta; returning false stops the verification
 * after that step (the caller ends the generation). */
typedef bool (*bn_spec_delta_fn)(void *user, const bn_gen_delta *delta);

/* Steps g over the logits of one verification: rows holds 1 + n_draft rows of n_vocab floats, row
 * 0 after the pending token, row j after draft[j - 1]. Stops after the first sampled token that is
 * not the next draft, after a step that finishes the generation, or when on_delta returns false.
 * ctx_left is the positions free after the pending token (what a plain step passes; row j gets
 * ctx_left - j). *n_accepted: drafts the model confirmed (their cache rows are valid); *n_sampled:
 * steps taken; *next: the last sampled token (the next pending one while g runs). */
bn_status bn_spec_verify(bn_gen *g, const float *rows, size_t n_vocab, const int32_t *draft,
                         int n_draft, int ctx_left, bn_spec_delta_fn on_delta, void *user,
                         int *n_accepted, int *n_sampled, int32_t *next, bn_error *err);

#endif
