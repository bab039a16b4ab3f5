/*
 * cmd_tokenize.c: `bitnet tokenize` (text -> token ids) and `bitnet detokenize` (ids -> text),
 * both with the tokenizer built from a GGUF file's metadata (src/tokenizer). The text goes out
 * byte for byte, so `detokenize` of `tokenize --no-bos`'s output gives back the input.
 */
#include "cli/commands.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tokenize_usage(FILE *out) {
    fprintf(out,
            "usage: bitnet tokenize -m MODEL [--no-bos] [--specials] [--json] [--pre NAME] [--] TEXT\n\n"
            "Prints the token ids of TEXT (space-separated, one line) using the tokenizer in the\n"
            "GGUF file MODEL. Any bytes are accepted: invalid UTF-8 is encoded byte by byte.\n\n"
            "options:\n"
            "  -m, --model MODEL  GGUF file whose tokenizer.ggml.* metadata is used\n"
            "  --no-bos           do not prepend BOS (by default BOS is added when the model's\n"
            "                     tokenizer.ggml.add_bos_token asks for it)\n"
            "  --specials         match special tokens written in TEXT (\"<|eot_id|>\") as their ids;\n"
            "                     without it they are encoded as ordinary text\n"
            "  --json             print a JSON array of ids instead\n"
            "  --pre NAME         override the pre-tokenizer: llama3, gpt2, or llamacpp-default\n"
            "                     (llama.cpp's and so bitnet.cpp's fallback split, for comparisons)\n"
            "  --                 end of options (TEXT may start with '-')\n"
            "  -h, --help         show this help\n\n"
            "exit status: 0 success, 1 error (unreadable model, unsupported tokenizer), 2 usage error\n");
}

static void detokenize_usage(FILE *out) {
    fprintf(out,
            "usage: bitnet detokenize -m MODEL [--skip-special] [--] ID...\n\n"
            "Prints the text of the token ids (decimal) using the tokenizer in the GGUF file MODEL,\n"
            "byte for byte, followed by a newline. Special tokens are printed as their text.\n\n"
            "options:\n"
            "  -m, --model MODEL  GGUF file whose tokenizer.ggml.* metadata is used\n"
            "  --skip-special     leave out control tokens (<|begin_of_text|>, <|eot_id|>, ...)\n"
            "  --                 end of options\n"
            "  -h, --help         show this help\n\n"
            "exit status: 0 success, 1 error (unreadable model, id outside the vocabulary), 2 usage error\n");
}

static int usage_error(const char *cmd, void (*usage)(FILE *), const char *fmt, const char *arg) {
    fprintf(stderr, "bitnet %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    usage(stderr);
    return BN_EXIT_USAGE;
}

static bn_status load_tokenizer(const char *path, bn_pretokenizer pre, bn_tokenizer **out, bn_error *err) {
    bn_gguf *g = NULL;
    bn_status st = bn_gguf_open(path, &g, err);
    if (st != BN_OK) return st;
    bn_tokenizer_options opts = {.pre = pre};
    st = bn_tokenizer_from_gguf(out, g, &opts, err);
    bn_gguf_close(g);
    if (st != BN_OK) bn_error_prefix(err, "%s: ", path);
    return st;
}

int bn_cmd_tokenize(int argc, char **argv, bn_error *err) {
    const char *model = NULL, *text = NULL;
    bool bos = true, specials = false, json = false, options_done = false;
    bn_pretokenizer pre = BN_PRE_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && a[0] == '-' && a[1] != '\0') {
            if (!strcmp(a, "--")) {
                options_done = true;
            } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                tokenize_usage(stdout);
                return BN_EXIT_OK;
            } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
                if (i + 1 >= argc) return usage_error("tokenize", tokenize_usage, "%s needs a value", a);
                model = argv[++i];
            } else if (!strcmp(a, "--no-bos")) {
                bos = false;
            } else if (!strcmp(a, "--specials")) {
                specials = true;
            } else if (!strcmp(a, "--json")) {
                json = true;
            } else if (!strcmp(a, "--pre")) {
                if (i + 1 >= argc) return usage_error("tokenize", tokenize_usage, "%s needs a value", a);
                const char *name = argv[++i];
                if (!strcmp(name, "llama3")) pre = BN_PRE_LLAMA3;
                else if (!strcmp(name, "gpt2")) pre = BN_PRE_GPT2;
                else if (!strcmp(name, "llamacpp-default")) pre = BN_PRE_LLAMACPP_DEFAULT;
                else return usage_error("tokenize", tokenize_usage, "unknown pre-tokenizer '%s'", name);
            } else {
                return usage_error("tokenize", tokenize_usage, "unknown option '%s'", a);
            }
        } else if (text) {
            return usage_error("tokenize", tokenize_usage, "more than one TEXT given ('%s'); quote the text", a);
        } else {
            text = a;
        }
    }
    if (!model) return usage_error("tokenize", tokenize_usage, "%s", "-m MODEL is required");
    if (!text) return usage_error("tokenize", tokenize_usage, "%s", "TEXT is required");

    bn_tokenizer *tok = NULL;
    if (load_tokenizer(model, pre, &tok, err) != BN_OK) return BN_EXIT_ERROR;
    bn_tokens ids = {0};
    bn_status st = bn_tokenizer_encode(tok, text, strlen(text), bos, specials, &ids, err);
    if (st == BN_OK) {
        fputs(json ? "[" : "", stdout);
        for (size_t i = 0; i < ids.n; i++) printf("%s%d", i == 0 ? "" : json ? ", " : " ", ids.ids[i]);
        fputs(json ? "]\n" : "\n", stdout);
    }
    bn_tokens_free(&ids);
    bn_tokenizer_free(tok);
    return st == BN_OK ? BN_EXIT_OK : BN_EXIT_ERROR;
}

int bn_cmd_detokenize(int argc, char **argv, bn_error *err) {
    const char *model = NULL;
    bool skip_special = false, options_done = false;
    int32_t *ids = malloc((size_t)(argc > 0 ? argc : 1) * sizeof *ids);
    if (!ids) return bn_error_set(err, BN_ERR_NOMEM, "out of memory"), BN_EXIT_ERROR;
    size_t n = 0;
    int rc = BN_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        /* A negative number is an id (rejected later as out of range), not an option. */
        bool looks_numeric = a[0] == '-' && a[1] >= '0' && a[1] <= '9';
        if (!options_done && a[0] == '-' && a[1] != '\0' && !looks_numeric) {
            if (!strcmp(a, "--")) {
                options_done = true;
            } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                detokenize_usage(stdout);
                free(ids);
                return BN_EXIT_OK;
            } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
                if (i + 1 >= argc) {
                    rc = usage_error("detokenize", detokenize_usage, "%s needs a value", a);
                    break;
                }
                model = argv[++i];
            } else if (!strcmp(a, "--skip-special")) {
                skip_special = true;
            } else {
                rc = usage_error("detokenize", detokenize_usage, "unknown option '%s'", a);
                break;
            }
        } else {
            char *end;
            errno = 0;
            long long v = strtoll(a, &end, 10);
            if (*a == '\0' || *end != '\0' || errno == ERANGE || v < INT32_MIN || v > INT32_MAX) {
                rc = usage_error("detokenize", detokenize_usage, "'%s' is not a token id", a);
                break;
            }
            ids[n++] = (int32_t)v;
        }
    }
    if (rc == BN_EXIT_OK && !model) rc = usage_error("detokenize", detokenize_usage, "%s", "-m MODEL is required");
    if (rc != BN_EXIT_OK) {
        free(ids);
        return rc;
    }
    bn_tokenizer *tok = NULL;
    if (load_tokenizer(model, BN_PRE_AUTO, &tok, err) != BN_OK) {
        free(ids);
        return BN_EXIT_ERROR;
    }
    char *text = NULL;
    size_t len = 0;
    bn_status st = bn_tokenizer_decode(tok, ids, n, skip_special, &text, &len, err);
    if (st == BN_OK) {
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
    }
    free(text);
    free(ids);
    bn_tokenizer_free(tok);
    return st == BN_OK ? BN_EXIT_OK : BN_EXIT_ERROR;
}
