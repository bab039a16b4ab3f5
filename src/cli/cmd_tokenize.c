/*
 * cmd_tokenize.c: `bitnet tokenize` (text -> token ids) and `bitnet detokenize` (ids -> text),
 * both with the tokenizer built from a GGUF file's metadata (src/tokenizer). The text goes out
 * byte for byte, so `detokenize` of `tokenize --no-bos`'s output gives back the input.
 */
#include "cli/cli_options.h"
#include "cli/commands.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


enum { TOK_NO_BOS = 1, TOK_SPECIALS, TOK_JSON, TOK_PRE, TOK_SKIP_SPECIAL, TOK_PROMPT, TOK_IDS };

static const bn_cli_option tokenize_table[] = {
    {TOK_NO_BOS, "--no-bos", NULL, "do not prepend BOS (by default BOS is added when the model's\n"
                                   "tokenizer.ggml.add_bos_token asks for it)", 0, 0, NULL},
    {TOK_SPECIALS, "--specials", NULL, "match special tokens written in TEXT (\"<|eot_id|>\") as their ids;\n"
                                       "without it they are encoded as ordinary text", 0, 0, NULL},
    {TOK_JSON, "--json", NULL, "print a JSON array of ids instead", 0, 0, NULL},
    {TOK_PROMPT, "-p|--prompt", "TEXT", "the text (llama-tokenize's spelling; or give TEXT as the argument)", 0, 0, NULL},
    {TOK_IDS, "--ids|--log-disable", NULL, NULL, BN_OPT_HIDDEN, 0, NULL}, /* llama-tokenize: ids are what it prints */
    {TOK_PRE, "--pre", "NAME", "override the pre-tokenizer of a byte-level BPE vocabulary, with the\n"
                              "names GGUF files use: llama3 (also llama-bpe, llama-v3, falcon3),\n"
                              "gpt2 (also gpt-2), or default / llamacpp-default (llama.cpp's and so\n"
                              "bitnet.cpp's fallback split, for comparisons); not for SentencePiece", 0, 0,
     "llama3|llama-bpe|llama-v3|falcon3|gpt2|gpt-2|default|llamacpp-default"},
    {0},
};

const bn_cli_spec bn_tokenize_spec = {
    .name = "tokenize",
    .synopsis = "[-m MODEL] [--no-bos] [--specials] [--json] [--pre NAME] [--] TEXT",
    .about = "Prints the token ids of TEXT (space-separated, one line) using the tokenizer in the\n"
             "GGUF file MODEL (byte-level BPE or SentencePiece). Any bytes are accepted: invalid\n"
             "UTF-8 is encoded byte by byte.\n"
             "`--` ends the options (TEXT may start with '-').\n",
    .notes = "exit status: 0 success, 1 error (unreadable model, unsupported tokenizer), 2 usage error\n",
    .arguments = true,
    .options = tokenize_table,
    .common = BN_COMMON_MODEL,
};

static const bn_cli_option detokenize_table[] = {
    {TOK_SKIP_SPECIAL, "--skip-special", NULL, "leave out control tokens (<|begin_of_text|>, <|eot_id|>, ...)", 0, 0, NULL},
    {0},
};

const bn_cli_spec bn_detokenize_spec = {
    .name = "detokenize",
    .synopsis = "[-m MODEL] [--skip-special] [--] ID...",
    .about = "Prints the text of the token ids (decimal) using the tokenizer in the GGUF file MODEL,\n"
             "byte for byte, followed by a newline. Special tokens are printed as their text.\n"
             "SentencePiece: the one space the tokenizer put before the text is left out.\n",
    .notes = "exit status: 0 success, 1 error (unreadable model, id outside the vocabulary), 2 usage error\n",
    .arguments = true,
    .options = detokenize_table,
    .common = BN_COMMON_MODEL,
};

typedef struct tokenize_options {
    bn_cli_common common;
    const char *text;
    bool bos, specials, json, skip_special;
    bn_pretokenizer pre;
    int32_t *ids; /* detokenize: the ids given (owned) */
    size_t n_ids;
} tokenize_options;

static bn_cli_parse apply_tokenize(void *state, const bn_cli_option *opt, const char *a, const char *v,
                                   bn_error *err) {
    tokenize_options *o = state;
    if (!opt) {
        if (o->ids) { /* detokenize: an id */
            char *end;
            errno = 0;
            long long id = strtoll(v, &end, 10);
            if (*v == '\0' || *end != '\0' || errno == ERANGE || id < INT32_MIN || id > INT32_MAX)
                return bn_error_set(err, BN_ERR_INVALID, "'%s' is not a token id", v), BN_CLI_BAD;
            o->ids[o->n_ids++] = (int32_t)id;
            return BN_CLI_CONSUMED;
        }
        if (o->text) return bn_error_set(err, BN_ERR_INVALID, "more than one TEXT given ('%s'); quote the text", v), BN_CLI_BAD;
        o->text = v;
        return BN_CLI_CONSUMED;
    }
    switch (opt->id) {
    case TOK_NO_BOS: o->bos = false; break;
    case TOK_SPECIALS: o->specials = true; break;
    case TOK_JSON: o->json = true; break;
    case TOK_IDS: break;
    case TOK_PROMPT:
        if (o->text) return bn_error_set(err, BN_ERR_INVALID, "more than one TEXT given ('%s')", v), BN_CLI_BAD;
        o->text = v;
        break;
    case TOK_SKIP_SPECIAL: o->skip_special = true; break;
    case TOK_PRE:
        o->pre = bn_tokenizer_pre_from_name(v, strlen(v));
        if (o->pre == BN_PRE_AUTO) return bn_cli_bad_value(a, v, BN_TOKENIZER_PRE_NAMES, err);
        break;
    default: return BN_CLI_NOT_MINE;
    }
    return BN_CLI_CONSUMED;
}

/* The tokenizer of -m, BITNET_MODEL or the shipped model. */
static bn_status load_tokenizer(const char *given, bn_pretokenizer pre, bn_tokenizer **out, bn_error *err) {
    char *path = NULL;
    bn_status st = bn_cli_resolve_model(&path, given, err);
    if (st != BN_OK) return st;
    bn_gguf *g = NULL;
    st = bn_gguf_open(path, &g, err);
    if (st != BN_OK) {
        free(path);
        return st;
    }
    bn_tokenizer_options opts = {.pre = pre};
    st = bn_tokenizer_from_gguf(out, g, &opts, err);
    bn_gguf_close(g);
    if (st != BN_OK) bn_error_prefix(err, "%s: ", path);
    free(path);
    return st;
}

int bn_cmd_tokenize(int argc, char **argv, bn_error *err) {
    tokenize_options o = {.bos = true, .pre = BN_PRE_AUTO};
    bn_cli_common_init(&o.common, "tokenize");
    int parsed = bn_cli_parse_command(&bn_tokenize_spec, apply_tokenize, &o, &o.common, NULL, argc, argv, err);
    if (parsed >= 0) return parsed;
    if (!o.text) {
        bn_error_set(err, BN_ERR_INVALID, "TEXT is required");
        return bn_cli_usage_error("tokenize", bn_tokenize_spec.synopsis, err);
    }
    const char *model = o.common.model_path, *text = o.text;
    const bool bos = o.bos, specials = o.specials, json = o.json;
    const bn_pretokenizer pre = o.pre;
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
    tokenize_options o = {.pre = BN_PRE_AUTO};
    bn_cli_common_init(&o.common, "detokenize");
    o.ids = malloc((size_t)(argc > 0 ? argc : 1) * sizeof *o.ids);
    if (!o.ids) return bn_error_set(err, BN_ERR_NOMEM, "out of memory"), BN_EXIT_ERROR;
    int parsed = bn_cli_parse_command(&bn_detokenize_spec, apply_tokenize, &o, &o.common, NULL, argc, argv, err);
    if (parsed >= 0) {
        free(o.ids);
        return parsed;
    }
    const char *model = o.common.model_path;
    int32_t *ids = o.ids;
    const size_t n = o.n_ids;
    const bool skip_special = o.skip_special;
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
