/*
 * generation.h: the one generation core. A bn_gen is the state of one generated sequence: its
 * sampler (seed, penalty window, logit bias), an optional grammar (sampling/grammar.h), the
 * detokenizer, the text so far with its stop-string hold-back, the log-probabilities of the last
 * token, the counters and the finish reason. One step function turns a row of logits into {token, final text, finish}.
 * `bitnet run`, `bitnet chat` (through bn_session, session.h) and every server slot (engine.c) run
 * it; none of them samples, detokenizes or scans for stop strings on its own.
 *
 * The caller owns the model side: it decodes the prompt, passes the logits of the last prompt token
 * to bn_gen_step, feeds the returned token while the finish reason is BN_FINISH_NONE, and steps
 * again. Text is handed out as soon as it is final: bytes of an unfinished UTF-8 character and a
 * tail that could still become a stop string are held back until a later step (or the end)
 * decides them.
 *
 * Rules, in the order one step applies them:
 *   1. max_tokens (>= 0) already reached: LENGTH, nothing sampled.
 *   2. Sample (grammar mask, bias, penalties, truncation: sampler.h).
 *   3. An end-of-generation token (unless ignore_eog; under a grammar only where the sentence may
 *      end, other control tokens never): EOG; the token is not part of the output.
 *   4. The token's bytes join the text; under a grammar they advance it, and a sentence that
 *      nothing can follow ends the generation (GRAMMAR).
 *   5. Without a grammar, the earliest stop string cuts the text there: STOP.
 *   6. max_tokens reached: LENGTH; no room left in the context for the token: CONTEXT.
 * A generation that ends for any reason but STOP releases everything it held back.
 *
 * Under a grammar the budget is counted in tokens: a token is allowed when the shortest completion
 * after it fits in the tokens left counted as bytes (one token per byte always exists), or when it
 * is the next token of the plan, the shortest completion encoded by the tokenizer, and the plan
 * fits. So the output closes validly whenever max_tokens holds the shortest sentence in tokens.
 */
#ifndef BN_RUNTIME_GENERATION_H
#define BN_RUNTIME_GENERATION_H

#include "bitnet.h"
#include "sampling/grammar.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum bn_finish_reason {
    BN_FINISH_NONE = 0,  /* still generating: feed the token and step again */
    BN_FINISH_LENGTH,    /* max_tokens generated */
    BN_FINISH_EOG,       /* the model produced an end-of-generation token (EOS/EOT) */
    BN_FINISH_STOP,      /* a stop string appeared */
    BN_FINISH_GRAMMAR,   /* the constrained JSON document is complete */
    BN_FINISH_CONTEXT,   /* the sequence is full */
    BN_FINISH_CANCELLED, /* the caller stopped it */
    BN_FINISH_ERROR      /* the model or the sampler failed */
} bn_finish_reason;

/* "length", "eog", "stop", "grammar", "context", "cancelled", "error" ("none" while running). */
const char *bn_finish_reason_name(bn_finish_reason reason);
/* OpenAI's finish_reason: "length" for LENGTH and CONTEXT, else "stop". */
const char *bn_finish_reason_openai(bn_finish_reason reason);

typedef struct bn_gen_config {
    bn_sampler_params sampling;     /* logit_bias copied */
    int32_t max_tokens;             /* < 0: no limit (the context ends it) */
    const char *const *stops;       /* copied; may be NULL */
    size_t n_stops;
    bool ignore_eog;                /* keep generating past EOS/EOT */
    const bn_grammar *grammar;      /* may be NULL; must outlive the generation */
    bool want_logprobs;             /* fill bn_gen_delta.sample */
    unsigned detok_flags;           /* BN_DETOK_* */
} bn_gen_config;

/* What one step produced. text is valid until the next call on the generation. */
typedef struct bn_gen_delta {
    int32_t token;                  /* -1 when nothing was sampled */
    const char *text;               /* text that became final with this step (may be empty) */
    size_t text_len;
    bool token_in_output;           /* false for an EOG token and for no token */
    const bn_sample_result *sample; /* with want_logprobs and a token; else NULL */
    bn_finish_reason finish;        /* BN_FINISH_NONE: feed `token` and step again */
} bn_gen_delta;

typedef struct bn_gen bn_gen;

/* Validates the config (sampler parameters, as bn_sampler_create) and creates a generation for a
 * vocabulary of n_vocab tokens. The tokenizer must outlive it. Caller frees with bn_gen_free. */
bn_status bn_gen_create(bn_gen **out, const bn_tokenizer *tok, size_t n_vocab,
                        const bn_gen_config *config, bn_error *err);
void bn_gen_free(bn_gen *g);

/* Adds prompt tokens to the penalty window (as context: the repetition penalty sees them, OpenAI's
 * presence and frequency penalties count generated tokens only). */
void bn_gen_accept(bn_gen *g, const int32_t *ids, size_t n);

/* One step on the logits of the last token in the sequence. ctx_left: positions still free in the
 * sequence, i.e. whether the returned token could be fed (0: the step ends with CONTEXT unless
 * something ended it first). Fails (BN_ERR_STATE) on a finished generation; a sampler or
 * detokenizer failure finishes it with BN_FINISH_ERROR and returns that error. */
bn_status bn_gen_step(bn_gen *g, const float *logits, int ctx_left, bn_gen_delta *out,
                      bn_error *err);

/* Ends a running generation early with `reason` (CANCELLED, CONTEXT, ERROR): *out receives the
 * held-back text, now final. Does nothing (empty delta) when it has finished already. */
void bn_gen_finish(bn_gen *g, bn_finish_reason reason, bn_gen_delta *out);

bn_finish_reason bn_gen_finish_reason(const bn_gen *g);
int bn_gen_n_generated(const bn_gen *g);   /* tokens sampled, an EOG token included */
int32_t bn_gen_max_tokens(const bn_gen *g); /* the config's max_tokens (< 0: no limit) */
uint64_t bn_gen_seed(const bn_gen *g);
/* The final text so far (stop string excluded once found), NUL-terminated. */
const char *bn_gen_text(const bn_gen *g, size_t *len);
/* The sampled ids in the output (no EOG token). */
const int32_t *bn_gen_ids(const bn_gen *g, size_t *n);
/* The longest run of output ids ids[0..*n_ids) whose bytes are exactly text[0..*text_len) (a stop
 * string or an unfinished character can leave text that no whole id produced). */
void bn_gen_ids_in_text(const bn_gen *g, size_t *n_ids, size_t *text_len);

/* Appends s[0..n) to *text, a NUL-terminated string of *len bytes in a buffer of *cap bytes (all
 * zero/NULL at first), growing the buffer by doubling (from 256 bytes). Returns false, changing
 * nothing, when memory or size_t runs out. The caller owns *text (free). */
bool bn_text_append(char **text, size_t *len, size_t *cap, const char *s, size_t n);

#endif
