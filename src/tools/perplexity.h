/*
 * perplexity.h: perplexity of a token sequence with llama.cpp's protocol (`llama-perplexity`),
 * so numbers compare across engines and with the reference implementation:
 *
 *   - the text is tokenized as a prompt (BOS first when the tokenizer adds one, as llama.cpp's
 *     common_tokenize(..., add_special = true) does) and cut into non-overlapping windows of
 *     n_ctx tokens (a tail shorter than n_ctx is not scored);
 *   - the first token of every window is replaced by BOS (when the tokenizer adds one);
 *   - each window runs as a fresh sequence; only its second half is scored: the logits at
 *     positions first = n_ctx/2 .. n_ctx-2 predict the tokens at first+1 .. n_ctx-1, so a window
 *     contributes n_ctx - 1 - n_ctx/2 negative log-likelihoods;
 *   - PPL = exp(mean nll); its error estimate is PPL * sqrt(var(nll) / (count - 1)), with
 *     var = mean(nll^2) - mean(nll)^2.
 */
#ifndef BN_TOOLS_PERPLEXITY_H
#define BN_TOOLS_PERPLEXITY_H

#include "bitnet.h"
#include "model/model.h"

#include <stddef.h>
#include <stdint.h>

typedef struct bn_perplexity_result {
    double ppl;
    double ppl_error;   /* standard error as above (0 when count < 2) */
    double mean_nll;    /* nats per token */
    size_t n_windows;
    size_t n_scored;    /* tokens scored */
} bn_perplexity_result;

/* Called after each window with the running result. */
typedef void (*bn_perplexity_progress_fn)(void *user, size_t window, size_t n_windows,
                                          const bn_perplexity_result *running);

/* Scores tokens[0..n_tokens) (bos_id < 0: keep each window's first token).
 * n_ctx >= 2, batch >= 1 entries per decode call. Fails with BN_ERR_RANGE when fewer than n_ctx
 * tokens are given. tokens are not modified. */
bn_status bn_perplexity(bn_perplexity_result *out, bn_model *model, const int32_t *tokens,
                        size_t n_tokens, int n_ctx, int batch, int32_t bos_id,
                        bn_perplexity_progress_fn progress, void *user, bn_error *err);

#endif
