/*
 * sampler.h: choosing the next token from a row of logits, and the stop-string scanner the
 * generation loops (bitnet run, bitnet chat, the server) share.
 *
 * Design: bn_sampler_params is a plain struct (fill it from bn_sampler_params_default() and change
 * fields); bn_sampler is the state that lives for one generation: its own PRNG (so the same seed
 * and settings give the same tokens whatever else the process does), the window of recent tokens
 * the penalties look at, a copy of the logit bias and every scratch buffer, sized once for the
 * vocabulary at creation, so sampling a token never allocates.
 *
 * One call runs this pipeline over a private copy of the logits:
 *   1. NaN becomes -inf (a NaN logit can never be chosen).
 *   2. Logit bias: logit += bias; a bias of -inf bans the token, +inf forces it (see 6).
 *   3. Penalties over the window of the last penalty_last_n tokens: repetition (llama.cpp / HF
 *      style) for every token in the window, context or generated: a positive logit is divided by
 *      repetition_penalty, a negative one multiplied by it; then OpenAI's presence and frequency
 *      penalties for every token generated count > 0 times in the window (context tokens, those
 *      given to bn_sampler_accept_context, do not count for them):
 *      logit -= presence_penalty + frequency_penalty * count.
 *   4. The allowed-token mask (bitset and/or callback, for constrained decoding): every token not
 *      allowed becomes -inf.
 *   5. temperature <= 0: greedy (highest logit, lowest id among equals).
 *   6. Otherwise, if any logit is +inf the choice is uniform among the +inf tokens. Else the logits
 *      are divided by the temperature and truncated in the order HF transformers and vLLM use:
 *      top-k (keep the k highest), top-p (the smallest set of highest tokens whose probability,
 *      renormalised over the top-k set, reaches top_p), min-p (drop tokens whose probability is
 *      below min_p times the highest), typical-p (locally typical sampling as HF transformers:
 *      order what is left by |-log p - H|, H the entropy of its renormalised distribution, and
 *      keep the smallest such prefix whose probability reaches typical_p). One token is drawn
 *      from what is left.
 *   7. If every token is -inf after steps 1-4, the fallback is greedy over the model's own logits
 *      (NaN as -inf) restricted to tokens that are neither masked nor banned by a -inf bias; if
 *      those are all -inf too, the lowest such id. Only when no token is allowed at all does the
 *      call fail (BN_ERR_STATE). A call that returns BN_OK always yields 0 <= token < n_vocab.
 * The chosen token is then appended to the penalty window (bn_sampler_accept does the same for
 * prompt or forced tokens). A sampler belongs to one sequence and one thread at a time.
 *
 * Log-probabilities follow OpenAI's `logprobs` field: log-softmax of the model's logits as given
 * (NaN as -inf), before bias, penalties, mask, temperature and truncation; values below
 * BN_LOGPROB_FLOOR (including -inf) are reported as BN_LOGPROB_FLOOR so they stay valid JSON.
 */
#ifndef BN_SAMPLER_H
#define BN_SAMPLER_H

#include "bitnet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BN_SAMPLER_MAX_TOP_LOGPROBS 20
#define BN_SAMPLER_MAX_PENALTY_WINDOW (1 << 20)
/* Seed value meaning "choose one at creation" (bn_sampler_seed() tells which one was chosen). */
#define BN_SAMPLER_SEED_RANDOM UINT64_MAX
/* OpenAI reports this for tokens with (effectively) zero probability. */
#define BN_LOGPROB_FLOOR (-9999.0f)

typedef struct bn_logit_bias {
    int32_t token;
    float bias; /* added to the logit; -INFINITY bans the token, +INFINITY forces it */
} bn_logit_bias;

typedef struct bn_sampler_params {
    float temperature;        /* <= 0: greedy. Default 0.8 */
    int32_t top_k;            /* 0: off. Default 40 */
    float top_p;              /* in [0, 1]; 1: off. Default 0.95 */
    float min_p;              /* in [0, 1]; 0: off. Default 0.05 */
    float typical_p;          /* in (0, 1]; 1: off. Default 1 */
    float repetition_penalty; /* > 0; 1: off. Default 1.0 */
    float presence_penalty;   /* OpenAI range [-2, 2]; 0: off */
    float frequency_penalty;  /* OpenAI range [-2, 2]; 0: off */
    int32_t penalty_last_n;   /* how many recent tokens the penalties look at; 0: none. Default 64 */
    uint64_t seed;            /* BN_SAMPLER_SEED_RANDOM: chosen at creation */
    int32_t n_top_logprobs;   /* 0..BN_SAMPLER_MAX_TOP_LOGPROBS alternatives to report */
    const bn_logit_bias *logit_bias; /* copied by bn_sampler_create; may be NULL */
    size_t n_logit_bias;      /* the same token twice: the biases add up */
} bn_sampler_params;

/* The defaults listed above (llama.cpp's command-line defaults). */
bn_sampler_params bn_sampler_params_default(void);
/* Greedy, no penalties, no truncation: what `bitnet run --greedy` and tests use. */
bn_sampler_params bn_sampler_params_greedy(void);

typedef struct bn_token_logprob {
    int32_t token;
    float logprob;
} bn_token_logprob;

typedef struct bn_sample_result {
    int32_t token;
    float logprob;       /* of the chosen token */
    int32_t n_top;       /* entries filled in top[] (params.n_top_logprobs, at most n_vocab) */
    bn_token_logprob top[BN_SAMPLER_MAX_TOP_LOGPROBS]; /* most likely first, lower id on ties */
} bn_sample_result;

/* Says whether a token may be produced now (constrained decoding); called once per token id. */
typedef bool (*bn_token_filter_fn)(void *user, int32_t token);

typedef struct bn_sampler bn_sampler;

/* Validates params (BN_ERR_INVALID naming the field, BN_ERR_RANGE for a bias token id outside
 * [0, n_vocab)) and creates a sampler for a vocabulary of n_vocab tokens. The caller owns *out
 * and frees it with bn_sampler_free; params and its logit_bias array may be freed afterwards. */
bn_status bn_sampler_create(bn_sampler **out, const bn_sampler_params *params, size_t n_vocab,
                            bn_error *err);
void bn_sampler_free(bn_sampler *s);

/* The seed in use (the chosen one when params.seed was BN_SAMPLER_SEED_RANDOM). */
uint64_t bn_sampler_seed(const bn_sampler *s);
/* Forgets the penalty window and restarts the PRNG from the seed. */
void bn_sampler_reset(bn_sampler *s);
/* Appends a generated token to the penalty window (sampling does it for the tokens it chooses;
 * for tokens the caller forces). */
void bn_sampler_accept(bn_sampler *s, int32_t token);
/* Appends a context (prompt) token: only the repetition penalty sees it. */
void bn_sampler_accept_context(bn_sampler *s, int32_t token);

/* The allowed-token mask applied in step 4 until changed; NULL/NULL removes it. `bits` holds
 * n_vocab bits, token t allowed when bits[t / 64] >> (t % 64) & 1; the caller keeps it alive. */
void bn_sampler_set_allowed(bn_sampler *s, const uint64_t *bits);
void bn_sampler_set_filter(bn_sampler *s, bn_token_filter_fn fn, void *user);

/* Samples one token from logits[0..n_vocab) into *token (n_vocab must equal the one given at
 * creation). Fails with BN_ERR_INVALID on a size mismatch and BN_ERR_STATE when the mask and
 * bans allow no token; *token is then left unchanged. */
bn_status bn_sampler_sample(bn_sampler *s, int32_t *token, const float *logits, size_t n_vocab,
                            bn_error *err);
/* The same, also reporting log-probabilities (result may not be NULL). */
bn_status bn_sampler_sample_ex(bn_sampler *s, bn_sample_result *result, const float *logits,
                               size_t n_vocab, bn_error *err);

/*
 * Stop strings for streamed text. Given the whole text generated so far, bn_stop_scan_text finds
 * the earliest occurrence of any stop string (at equal positions the one listed first; empty
 * strings are ignored) and says how much text may be shown now:
 *   found:    the text ends at `cut` (the stop string and all after it are dropped); emit_len == cut.
 *   not found: emit_len = len minus the longest tail of the text that is the start of some stop
 *             string; those bytes must be held back until more text decides them.
 * `from` lets a streaming caller skip text already cleared: pass the previous call's emit_len
 * (no stop string can begin before it), or 0 to scan everything.
 * When the stop strings are valid UTF-8, cut and emit_len fall on character boundaries.
 */
typedef struct bn_stop_scan {
    bool found;
    size_t which;    /* index into stops when found */
    size_t cut;      /* when found: length of the text before the stop string */
    size_t emit_len; /* bytes of text[0..len) that are final */
} bn_stop_scan;

void bn_stop_scan_text(bn_stop_scan *out, const char *text, size_t len, size_t from,
                       const char *const *stops, size_t n_stops);

#endif /* BN_SAMPLER_H */
