/*
 * perplexity.c: windows of n_ctx tokens through bn_model_decode in batches; only the entries
 * whose logits are scored ask for them, so the logits buffer is batch x n_vocab floats.
 */
#include "tools/perplexity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* -log softmax(logits)[target] in double precision. */
static double token_nll(const float *logits, size_t n_vocab, int32_t target) {
    float max = logits[0];
    for (size_t i = 1; i < n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (size_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - (double)max);
    return log(sum) + (double)max - (double)logits[target];
}

static void finish(bn_perplexity_result *r, double nll, double nll2) {
    double n = (double)r->n_scored;
    r->mean_nll = nll / n;
    r->ppl = exp(r->mean_nll);
    double var = nll2 / n - r->mean_nll * r->mean_nll;
    r->ppl_error = r->n_scored > 1 && var > 0 ? sqrt(var / (n - 1)) * r->ppl : 0.0;
}

bn_status bn_perplexity(bn_perplexity_result *out, bn_model *model, const int32_t *tokens,
                        size_t n_tokens, int n_ctx, int batch, int32_t bos_id,
                        bn_perplexity_progress_fn progress, void *user, bn_error *err) {
    memset(out, 0, sizeof *out);
    if (n_ctx < 2 || batch < 1)
        return bn_error_set(err, BN_ERR_INVALID, "perplexity: context %d (>= 2) and batch %d (>= 1)",
                            n_ctx, batch);
    if (n_tokens < (size_t)n_ctx)
        return bn_error_set(err, BN_ERR_RANGE,
                            "perplexity: the text has %zu tokens, fewer than one window of %d "
                            "(use a smaller -c)", n_tokens, n_ctx);
    if (batch > n_ctx) batch = n_ctx;
    const size_t n_vocab = (size_t)bn_model_get_config(model)->n_vocab;
    const size_t n_windows = n_tokens / (size_t)n_ctx;
    const int first = n_ctx / 2;

    bn_sequence *seq = NULL;
    bn_batch_entry *entries = malloc((size_t)batch * sizeof *entries);
    float *logits = malloc((size_t)batch * n_vocab * sizeof *logits);
    bn_status st = BN_OK;
    if (!entries || !logits) {
        st = bn_error_set(err, BN_ERR_NOMEM, "perplexity: out of memory for %d x %zu logits", batch,
                          n_vocab);
        goto done;
    }
    if ((st = bn_sequence_create(model, n_ctx, &seq, err)) != BN_OK) goto done;

    double nll = 0.0, nll2 = 0.0;
    for (size_t w = 0; w < n_windows; w++) {
        const int32_t *win = tokens + w * (size_t)n_ctx;
        bn_sequence_clear(seq);
        for (int begin = 0; begin < n_ctx; begin += batch) {
            int count = n_ctx - begin < batch ? n_ctx - begin : batch;
            int n_want = 0;
            for (int i = 0; i < count; i++) {
                int pos = begin + i;
                int32_t token = pos == 0 && bos_id >= 0 ? bos_id : win[pos];
                /* positions first .. n_ctx-2 predict a token inside the window */
                bool want = pos >= first && pos < n_ctx - 1;
                entries[i] = (bn_batch_entry){seq, pos, token, want};
                n_want += want;
            }
            if ((st = bn_model_decode(model, entries, count, n_want ? logits : NULL, err)) != BN_OK)
                goto done;
            int row = 0;
            for (int i = 0; i < count; i++) {
                if (!entries[i].want_logits) continue;
                double v = token_nll(logits + (size_t)row++ * n_vocab, n_vocab,
                                     win[entries[i].pos + 1]);
                nll += v;
                nll2 += v * v;
                out->n_scored++;
            }
        }
        out->n_windows = w + 1;
        finish(out, nll, nll2);
        if (progress) progress(user, w + 1, n_windows, out);
    }
done:
    bn_sequence_free(seq);
    free(logits);
    free(entries);
    if (st != BN_OK) memset(out, 0, sizeof *out);
    return st;
}
