/*
 * cmd_perplexity.c: `bitnet perplexity [-m MODEL] -f TEXT_FILE [-c CTX] [-b BATCH] [--json]`:
 * perplexity of a text file with llama.cpp's protocol (tools/perplexity.h), progress per window
 * on stderr, the result with its error estimate on stdout.
 */
#include "cli/cli_options.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "tools/perplexity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CTX 512

/* Per window: the running estimate, as the progress line (on a terminal) or one line each. */
static void on_progress(void *user, size_t window, size_t n_windows, const bn_perplexity_result *r) {
    bn_progress *p = user;
    if (p->live) {
        bn_progress_update(p, window, n_windows);
        return;
    }
    if (p->enabled)
        fprintf(stderr, "[%zu/%zu] ppl %.4f (%zu tokens scored)\n", window, n_windows, r->ppl, r->n_scored);
}

/* The options of `perplexity` beyond -m, -t, -c, --isa. */
typedef struct perplexity_options {
    const char *file;
    int batch;
    int chunks; /* > 0: at most this many windows */
    bool json;
} perplexity_options;

enum { PPL_FILE = 1, PPL_JSON, PPL_CHUNKS };

static const bn_cli_option perplexity_table[] = {
    {PPL_FILE, "-f|--file", "FILE", "the text", 0, 0, NULL},
    {PPL_JSON, "--json", NULL, "print the result as one JSON object", 0, 0, NULL},
    {PPL_CHUNKS, "--chunks", "N", "score the first N windows only (llama-perplexity's; default: all)", 0, 0, NULL},
    {0},
};

const bn_cli_spec bn_perplexity_spec = {
    .name = "perplexity",
    .synopsis = "[-m MODEL] -f TEXT_FILE [options]",
    .about = "Perplexity with llama.cpp's protocol: the whole file is tokenized (with BOS when the\n"
             "model adds one) and cut into non-overlapping windows of CTX tokens; the first token\n"
             "of each window is replaced by BOS and the second half of each window is scored\n"
             "(positions CTX/2 .. CTX-2 predicting the next token). Prints PPL = exp(mean NLL)\n"
             "and its error estimate PPL * sqrt(var(NLL) / (count - 1)).\n",
    .notes = "-c defaults to 512 here, or the training context when smaller; -b (tokens per decode\n"
             "call) to 256.\n",
    .options = perplexity_table,
    .common = BN_COMMON_LOAD,
};

static bn_cli_parse apply_perplexity(void *state, const bn_cli_option *opt, const char *name, const char *value,
                                     bn_error *err) {
    perplexity_options *o = state;
    switch (opt ? opt->id : 0) {
    case PPL_FILE: o->file = value; break;
    case PPL_JSON: o->json = true; break;
    case PPL_CHUNKS:
        if (!bn_cli_parse_int(value, -1, INT32_MAX, &o->chunks)) return bn_cli_bad_value(name, value, "an integer >= -1", err);
        break;
    default: return BN_CLI_NOT_MINE;
    }
    return BN_CLI_CONSUMED;
}

int bn_cmd_perplexity(int argc, char **argv, bn_error *err) {
    bn_cli_common common;
    bn_cli_common_init(&common, "perplexity");
    perplexity_options o = {0};
    int parsed = bn_cli_parse_command(&bn_perplexity_spec, apply_perplexity, &o, &common, NULL, argc, argv, err);
    if (parsed >= 0) return parsed;
    if (!o.file) {
        bn_error_set(err, BN_ERR_INVALID, "-f TEXT_FILE is required");
        return bn_cli_usage_error("perplexity", bn_perplexity_spec.synopsis, err);
    }
    o.batch = common.n_batch ? common.n_batch : 256;

    int rc = BN_EXIT_ERROR;
    bn_status st;
    char *text = NULL, *path = NULL;
    size_t text_len = 0;
    bn_model *model = NULL;
    bn_tokenizer *tok = NULL;
    bn_tokens ids = {0};
    if (bn_cli_read_file(&text, &text_len, o.file, SIZE_MAX, err) != BN_OK) goto done;
    if (bn_cli_load_model(&model, &tok, &path, &common, err) != BN_OK) goto done;
    const bn_model_config *cfg = bn_model_get_config(model);
    int n_ctx = common.n_ctx;
    if (n_ctx == 0) n_ctx = cfg->n_ctx_train < DEFAULT_CTX ? cfg->n_ctx_train : DEFAULT_CTX;
    if (n_ctx < 2) {
        bn_error_set(err, BN_ERR_INVALID, "-c %d: perplexity needs a context of at least 2", n_ctx);
        goto done;
    }
    if (bn_tokenizer_encode(tok, text, text_len, true, false, &ids, err) != BN_OK) goto done;
    if (o.chunks > 0 && ids.n > (size_t)o.chunks * (size_t)n_ctx) ids.n = (size_t)o.chunks * (size_t)n_ctx;
    int32_t bos = bn_tokenizer_add_bos(tok) ? bn_tokenizer_bos(tok) : -1;
    fprintf(stderr, "perplexity: %s: %zu tokens, %zu windows of %d, %d scored per window, BOS %d\n",
            o.file, ids.n, ids.n / (size_t)n_ctx, n_ctx, n_ctx - 1 - n_ctx / 2, (int)bos);
    bn_perplexity_result r;
    bn_progress progress;
    bn_progress_init(&progress, "perplexity", common.progress);
    bn_progress_begin(&progress, "scoring", "windows");
    st = bn_perplexity(&r, model, ids.ids, ids.n, n_ctx, o.batch, bos, on_progress, &progress, err);
    bn_progress_end(&progress);
    if (st != BN_OK) goto done;
    if (o.json)
        printf("{\"ppl\": %.10g, \"ppl_error\": %.10g, \"mean_nll\": %.10g, \"n_ctx\": %d, "
               "\"n_windows\": %zu, \"n_scored\": %zu, \"n_tokens\": %zu}\n",
               r.ppl, r.ppl_error, r.mean_nll, n_ctx, r.n_windows, r.n_scored, ids.n);
    else
        printf("Final estimate: PPL = %.4f +/- %.5f (%zu tokens scored in %zu windows of %d)\n",
               r.ppl, r.ppl_error, r.n_scored, r.n_windows, n_ctx);
    rc = BN_EXIT_OK;
done:
    bn_tokens_free(&ids);
    bn_tokenizer_free(tok);
    bn_model_free(model);
    free(path);
    free(text);
    return rc;
}
