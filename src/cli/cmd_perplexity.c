/*
 * cmd_perplexity.c: `bitnet perplexity [-m MODEL] -f TEXT_FILE [-c CTX] [-b BATCH] [--json]`:
 * perplexity of a text file with llama.cpp's protocol (tools/perplexity.h), progress per window
 * on stderr, the result with its error estimate on stdout.
 */
#include "cli/cli_options.h"
#include "cli/commands.h"
#include "tools/perplexity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CTX 512
#define SYNOPSIS "[-m MODEL] -f TEXT_FILE [options]"

static void usage(FILE *out) {
    fprintf(out,
            "usage: bitnet perplexity " SYNOPSIS "\n\n"
            "Perplexity with llama.cpp's protocol: the whole file is tokenized (with BOS when the\n"
            "model adds one) and cut into non-overlapping windows of CTX tokens; the first token\n"
            "of each window is replaced by BOS and the second half of each window is scored\n"
            "(positions CTX/2 .. CTX-2 predicting the next token). Prints PPL = exp(mean NLL)\n"
            "and its error estimate PPL * sqrt(var(NLL) / (count - 1)).\n\n"
            "options:\n"
            "  -f, --file FILE        the text\n"
            "%s"
            "  (-c defaults to %d here, or the training context when smaller)\n"
            "  -b, --batch N          tokens per decode call (default 256)\n"
            "  --json                 print the result as one JSON object\n"
            "  --help                 show this help\n",
            bn_cli_common_help, DEFAULT_CTX);
}

static void on_progress(void *user, size_t window, size_t n_windows,
                        const bn_perplexity_result *r) {
    (void)user;
    fprintf(stderr, "[%zu/%zu] ppl %.4f (%zu tokens scored)\n", window, n_windows, r->ppl,
            r->n_scored);
}

/* The options of `perplexity` beyond -m, -t, -c, --isa. */
typedef struct perplexity_options {
    const char *file;
    int batch;
    bool json;
} perplexity_options;

static bn_cli_parse parse_own(void *state, int argc, char **argv, int *i, bn_error *err) {
    perplexity_options *o = state;
    const char *a = argv[*i];
    bool has_value = *i + 1 < argc;
    if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && has_value) {
        o->file = argv[++*i];
    } else if ((!strcmp(a, "-b") || !strcmp(a, "--batch")) && has_value) {
        if (!bn_cli_parse_int(argv[++*i], 1, 1 << 20, &o->batch)) {
            bn_error_set(err, BN_ERR_INVALID, "invalid value '%s' for %s (expected an integer >= 1)",
                         argv[*i], a);
            return BN_CLI_BAD;
        }
    } else if (!strcmp(a, "--json")) {
        o->json = true;
    } else {
        return BN_CLI_NOT_MINE;
    }
    return BN_CLI_CONSUMED;
}

int bn_cmd_perplexity(int argc, char **argv, bn_error *err) {
    bn_cli_common common;
    bn_cli_common_init(&common);
    perplexity_options o = {.batch = 256};
    const bn_cli_command cmd = {"perplexity", SYNOPSIS, usage, parse_own, &o};
    int parsed = bn_cli_parse_args(&cmd, &common, NULL, argc, argv, err);
    if (parsed >= 0) return parsed;
    if (!o.file) {
        bn_error_set(err, BN_ERR_INVALID, "-f TEXT_FILE is required");
        return bn_cli_usage_error("perplexity", SYNOPSIS, err);
    }

    int rc = BN_EXIT_ERROR;
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
    int32_t bos = bn_tokenizer_add_bos(tok) ? bn_tokenizer_bos(tok) : -1;
    fprintf(stderr, "perplexity: %s: %zu tokens, %zu windows of %d, %d scored per window, BOS %d\n",
            o.file, ids.n, ids.n / (size_t)n_ctx, n_ctx, n_ctx - 1 - n_ctx / 2, (int)bos);
    bn_perplexity_result r;
    if (bn_perplexity(&r, model, ids.ids, ids.n, n_ctx, o.batch, bos, on_progress, NULL, err) != BN_OK)
        goto done;
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
