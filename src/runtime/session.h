/*
 * session.h: one sequence driven by the generation core for `bitnet run` and `bitnet chat`:
 * prompt prefill with reuse of the longest cached prefix, then bn_gen steps, streaming final text
 * through a callback, with an optional context shift when the sequence fills.
 *
 * Design: a bn_session keeps the sequence together with the ids its KV cache holds, so a prompt
 * that extends the previous one (a chat turn appends to the conversation) has only its new tokens
 * prefilled. A prompt that diverges from the cache is recomputed from the first differing
 * position. After a context shift the cache no longer equals a prefill of its ids (the kept rows
 * saw the dropped tokens), so it is reused only by a prompt that continues all of it.
 *
 * Context shift (off unless enabled): when the sequence is full during generation, the first
 * `keep` tokens stay, the oldest half of the rest is dropped (bn_sequence_shift) and generation
 * goes on; with shifting off, or when nothing can be dropped, a full sequence ends the generation
 * with BN_FINISH_CONTEXT.
 */
#ifndef BN_RUNTIME_SESSION_H
#define BN_RUNTIME_SESSION_H

#include "bitnet.h"
#include "model/model.h"
#include "runtime/generation.h"
#include "runtime/speculative.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bn_session_options {
    int capacity;       /* positions; 0: the model's training context */
    bool context_shift; /* shift instead of ending when the sequence fills */
    int keep;           /* tokens kept at the start by a shift (< 0: all of the first prompt) */
} bn_session_options;

typedef struct bn_session {
    bn_model *model;
    bn_sequence *seq;  /* owned */
    bn_tokens cached;  /* the ids at positions 0..length-1 (owned) */
    float *logits;     /* n_vocab scratch (owned) */
    bn_session_options options;
    int first_prompt;  /* tokens of the first prompt (what keep < 0 keeps) */
    bool shifted;      /* the cache went through a context shift */
    bn_spec *spec;     /* speculative decoding (borrowed; NULL: plain decoding) */
    bn_spec_costs costs; /* step time per batch size, for the draft length */
    float *rows;       /* logits of a generation step, rows_cap rows (owned) */
    int rows_cap;
} bn_session;

bn_status bn_session_init(bn_session *s, bn_model *model, const bn_session_options *options,
                          bn_error *err);
void bn_session_free(bn_session *s);
int bn_session_capacity(const bn_session *s);
/* Empties the KV cache: the next generation prefills its whole prompt (a chat's /clear). */
void bn_session_clear(bn_session *s);

/* Turns speculative decoding on (spec, which must outlive its use here) or off (NULL). The
 * output does not change (speculative.h); only its speed does. */
void bn_session_set_spec(bn_session *s, bn_spec *spec);

/* Receives final text; returning false stops the generation (as cancelled). */
typedef bool (*bn_session_text_fn)(void *user, const char *text, size_t len);

typedef struct bn_session_io {
    bn_session_text_fn on_text;          /* may be NULL */
    void *user;
    const volatile sig_atomic_t *cancel; /* checked between steps and prefill chunks; may be NULL */
} bn_session_io;

typedef struct bn_session_stats {
    int n_prompt;       /* prompt tokens */
    int n_reused;       /* of them, already in the cache */
    int n_prefilled;    /* of them, computed by this call */
    int n_generated;    /* tokens sampled (an end-of-generation token included) */
    int n_shifts;       /* context shifts during this call */
    int n_dropped;      /* tokens they dropped */
    int n_gen_cached;   /* generated tokens at the end of the cache afterwards */
    int n_steps;        /* forward steps of the generation (the first token comes from the prefill) */
    int n_drafted;      /* speculative drafts verified in them */
    int n_accepted;     /* of them, confirmed */
    double prefill_ms;
    double generate_ms; /* from the end of the prefill to the end */
    bn_finish_reason finish;
} bn_session_stats;

/* Runs prompt[0..n_prompt) (n_prompt >= 1) and generates with g (which gets the prompt tokens
 * in its penalty window first) until it finishes; the result text and ids are g's. The prompt and
 * every generated token but the last sampled one are in the cache afterwards (s->cached says
 * which). Errors: BN_ERR_RANGE when the prompt does not fit the context, and whatever the model
 * or the generation return. */
bn_status bn_session_generate(bn_session *s, bn_gen *g, const int32_t *prompt, size_t n_prompt,
                              const bn_session_io *io, bn_session_stats *stats, bn_error *err);

#endif
