/*
 * cmd_perplexity.c: `bitnet perplexity [-m MODEL] -f TEXT_FILE [-c CTX] [-b BATCH] [--json]`:
 * perplexity of a text file with llama.cpp's protocol (tools/perplexity.h), progress per window
 * on stderr, the result with its error estimate on stdout.
 */
#include "cli/cli_options.h"
#include "cli/commands.h"
#include "tools/perplexity.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CTX 512

/* After a wrong option: the synopsis and where the options are described. */
static void short_usage(void) {
    fprintf(stderr, "usage: bitnet perplexity [-m MODEL] -f TEXT_FILE [options]\n"
                    "`bitnet perplexity --help` describes the options.\n");
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: bitnet perplexity [-m MODEL] -f TEXT_FILE [options]\n\n"
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

/* Reads a whole file (caller frees *out). */
static bn_status read_file(const char *path, char **out, size_t *len, bn_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return bn_error_set(err, BN_ERR_IO, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 1 << 20;
            char *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return bn_error_set(err, BN_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = grown;
        }
        size_t got = fread(buf + n, 1, 65536, f);
        n += got;
        if (got < 65536) break;
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return bn_error_set(err, BN_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return BN_OK;
}

int bn_cmd_perplexity(int argc, char **argv, bn_error *err) {
    bn_cli_common common;
    bn_cli_common_init(&common);
    const char *file = NULL;
    int batch = 256;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bn_cli_parse r = bn_cli_parse_common(&common, argc, argv, &i, err);
        if (r == BN_CLI_CONSUMED) continue;
        if (r == BN_CLI_NOT_MINE) {
            if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
                usage(stdout);
                return BN_EXIT_OK;
            } else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && i + 1 < argc) {
                file = argv[++i];
                continue;
            } else if ((!strcmp(a, "-b") || !strcmp(a, "--batch")) && i + 1 < argc) {
                if (bn_cli_parse_int(argv[++i], 1, 1 << 20, &batch)) continue;
                bn_error_set(err, BN_ERR_INVALID, "invalid value '%s' for %s (expected an integer >= 1)",
                             argv[i], a);
            } else if (!strcmp(a, "--json")) {
                json = true;
                continue;
            } else {
                bn_error_set(err, BN_ERR_INVALID, "unknown option or missing value '%s'", a);
            }
        }
        fprintf(stderr, "bitnet perplexity: %s\n", err->message);
        short_usage();
        bn_error_clear(err);
        return BN_EXIT_USAGE;
    }
    if (!file) {
        fprintf(stderr, "bitnet perplexity: -f TEXT_FILE is required\n");
        short_usage();
        return BN_EXIT_USAGE;
    }

    int rc = BN_EXIT_ERROR;
    char *text = NULL, *path = NULL;
    size_t text_len = 0;
    bn_model *model = NULL;
    bn_tokenizer *tok = NULL;
    bn_tokens ids = {0};
    if (read_file(file, &text, &text_len, err) != BN_OK) goto done;
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
            file, ids.n, ids.n / (size_t)n_ctx, n_ctx, n_ctx - 1 - n_ctx / 2, (int)bos);
    bn_perplexity_result r;
    if (bn_perplexity(&r, model, ids.ids, ids.n, n_ctx, batch, bos, on_progress, NULL, err) != BN_OK)
        goto done;
    if (json)
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
