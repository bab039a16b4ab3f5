/*
 * crossval.h: per-position comparison of the logits two implementations give for the same token
 * ids (`bitnet crossval`), and the logits sources it compares: a loaded model on a chosen CPU
 * kernel path, or an external reference program run as a subprocess.
 *
 * Design: a source is one function "logits of every position of these ids" (plus "logits of the
 * last position", which a model answers incrementally from its KV cache for greedy runs), so the
 * comparison code does not care where the numbers come from. Metrics per position, with P the
 * softmax of the other side (the reference) and Q the engine's:
 *   cosine of the two logit vectors, max |difference|, top-1 agreement, top-5 overlap
 *   (|top5(engine) ∩ top5(other)|), KL(P || Q) in nats.
 * spec/MODEL_FORMAT.md section 8 gives the tolerances that separate correct from wrong.
 */
#ifndef BN_TOOLS_CROSSVAL_H
#define BN_TOOLS_CROSSVAL_H

#include "bitnet.h"
#include "kernels/cpu_features.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bn_crossval_position {
    double cosine;
    double max_abs_diff;
    double kl;             /* KL(softmax(other) || softmax(engine)), nats */
    int32_t top1_engine, top1_other;
    int top5_overlap;      /* 0..5 */
} bn_crossval_position;

typedef struct bn_crossval_summary {
    size_t n_positions;
    double min_cosine, mean_cosine;
    size_t min_cosine_pos;
    double pos0_max_abs_diff, max_abs_diff;
    double mean_kl, max_kl;
    size_t n_top1_agree;
    double mean_top5_overlap;
    bool any_nonfinite;    /* a NaN or infinite logit on either side */
} bn_crossval_summary;

/* Compares one position's logits (n_vocab >= 5 for a full top-5; fewer is handled). */
void bn_crossval_compare(bn_crossval_position *out, const float *engine, const float *other,
                         size_t n_vocab);
void bn_crossval_summarize(bn_crossval_summary *out, const bn_crossval_position *positions,
                           size_t n, const float *engine, const float *other, size_t n_vocab);

/* Top-1 id and top-1 minus top-2 logit (lowest id among equals). */
void bn_crossval_top2(int32_t *top1, double *gap, const float *logits, size_t n_vocab);

/* ---- logits sources ---- */

typedef struct bn_logits_source bn_logits_source;
struct bn_logits_source {
    const char *name;
    size_t n_vocab;
    /* out: n x n_vocab logits of every position of tokens[0..n) */
    bn_status (*all)(bn_logits_source *src, float *out, const int32_t *tokens, size_t n,
                     bn_error *err);
    /* out: n_vocab logits of the last position of tokens[0..n) */
    bn_status (*last)(bn_logits_source *src, float *out, const int32_t *tokens, size_t n,
                      bn_error *err);
    /* optional (NULL: stepped with `last`): out gets the n_steps greedy ids after tokens */
    bn_status (*greedy)(bn_logits_source *src, int32_t *out, const int32_t *tokens, size_t n,
                        int n_steps, bn_error *err);
    void (*destroy)(bn_logits_source *src);
    void *impl;
};

/* A loaded model (not owned) run on kernel path isa; the ISA is made active before each of its
 * calls, so two sources on different paths can alternate in one process. *out is freed with
 * out->destroy(out) (it frees only what it created). */
bn_status bn_logits_source_model(bn_logits_source **out, bn_model *model, bn_isa isa,
                                 const char *name, bn_error *err);

/* An external program (reference/bitnet_ref.py's interface): `CMD logits -m MODEL --tokens 1,2,3
 * --out FILE` must write n x n_vocab little-endian float32 to FILE and exit 0 (its stdout is
 * discarded); `CMD generate -m MODEL --tokens 1,2,3 -n N` must print the N greedy ids as the
 * first integers of its output. command is passed to /bin/sh as given (quote paths with spaces);
 * model is quoted here. */
bn_status bn_logits_source_command(bn_logits_source **out, const char *command, const char *model,
                                   size_t n_vocab, bn_error *err);

/* Runs `CMD tokenize -m MODEL --prompt TEXT` and parses the integers it prints as token ids
 * (appended to *ids). */
bn_status bn_crossval_command_tokenize(bn_tokens *ids, const char *command, const char *model,
                                       const char *text, bn_error *err);

/* n_steps greedy steps from tokens[0..n) on each source (each continues its own text), and the
 * first step where the two chose different tokens, with the top-1 minus top-2 logit gap of each
 * side at that step (a small gap means a near-tie, not a bug). */
typedef struct bn_crossval_greedy {
    int n_steps;           /* steps run on each side */
    int first_diff;        /* step index of the first difference, -1 when none */
    int32_t *engine_ids;   /* n_steps ids each (owned: bn_crossval_greedy_free) */
    int32_t *other_ids;
    double engine_gap, other_gap; /* top-1 minus top-2 logit at first_diff */
    /* the other side's gap at each step 0..n_steps-1 (owned); NAN where unknown (a reference
     * program that generates by itself reports only the gap at first_diff) */
    double *other_gaps;
} bn_crossval_greedy;

/* The near-tie rule: the two greedy runs must be identical up to the first step where the other
 * side's top-2 gap is below tie (a near-tie, where a rounding difference may pick either token).
 * Returns true when it holds; *tie_step gets that first near-tie step (-1: none before the first
 * difference or the end). */
bool bn_crossval_greedy_rule(const bn_crossval_greedy *g, double tie, int *tie_step);

bn_status bn_crossval_run_greedy(bn_crossval_greedy *out, bn_logits_source *engine,
                                 bn_logits_source *other, const int32_t *tokens, size_t n,
                                 int n_steps, bn_error *err);
void bn_crossval_greedy_free(bn_crossval_greedy *g);

#endif
