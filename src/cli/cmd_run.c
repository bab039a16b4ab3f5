/*
 * cmd_run.c: `bitnet run -m MODEL -p TEXT [options]`: generates text from a prompt and streams it
 * to stdout as it is produced (one flush per token), then prints the prompt and generation speeds
 * to stderr. Without -m it runs the model shipped in models/; without -p a default prompt, so a
 * bare `bitnet run` shows text. --chat-format wraps the prompt as one user message.
 */
#include "cli/cli_options.h"
#include "cli/commands.h"
#include "kernels/cpu_features.h"
#include "runtime/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PROMPT "In the beginning"
#define DEFAULT_MAX_TOKENS 128
#define SYNOPSIS "[-m MODEL] [-p TEXT] [options]"

static void usage(FILE *out) {
    fprintf(out,
            "usage: bitnet run " SYNOPSIS "\n\n"
            "Generates text from a prompt and streams it to stdout; prompt and generation speed\n"
            "(tokens, ms, tokens/s) go to stderr. Ctrl-C stops the generation.\n\n"
            "options:\n"
            "  -p, --prompt TEXT      the prompt (default \"" DEFAULT_PROMPT "\")\n"
            "  --chat-format NAME     render the prompt as a user message in a chat format\n"
            "                         (bitnet, llama3, chatml, plain)\n"
            "  --no-bos               do not add the BOS token\n"
            "  --no-echo              do not print the prompt before the generated text\n"
            "%s"
            "  (-n defaults to %d here)\n"
            "%s"
            "  --help                 show this help\n",
            bn_cli_common_help, DEFAULT_MAX_TOKENS, bn_cli_sampling_help);
}

static void print_speed(const char *what, int tokens, double ms) {
    fprintf(stderr, "%s: %d tokens in %.2f ms (%.2f tokens/s)\n", what, tokens, ms,
            ms > 0 ? tokens * 1000.0 / ms : 0.0);
}

/* The options of `run` beyond the shared groups. */
typedef struct run_options {
    const char *prompt, *format_name;
    bool no_bos, echo;
} run_options;

static bn_cli_parse parse_own(void *state, int argc, char **argv, int *i, bn_error *err) {
    (void)err;
    run_options *o = state;
    const char *a = argv[*i];
    bool has_value = *i + 1 < argc;
    if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && has_value) {
        o->prompt = argv[++*i];
    } else if (!strcmp(a, "--chat-format") && has_value) {
        o->format_name = argv[++*i];
    } else if (!strcmp(a, "--no-bos")) {
        o->no_bos = true;
    } else if (!strcmp(a, "--no-echo")) {
        o->echo = false;
    } else {
        return BN_CLI_NOT_MINE;
    }
    return BN_CLI_CONSUMED;
}

int bn_cmd_run(int argc, char **argv, bn_error *err) {
    bn_cli_common common;
    bn_cli_common_init(&common);
    bn_cli_sampling sampling;
    bn_cli_sampling_init(&sampling, DEFAULT_MAX_TOKENS);
    run_options o = {.prompt = DEFAULT_PROMPT, .echo = true};
    const bn_cli_command cmd = {"run", SYNOPSIS, usage, parse_own, &o};
    int parsed = bn_cli_parse_args(&cmd, &common, &sampling, argc, argv, err);
    if (parsed >= 0) return parsed;

    int rc = BN_EXIT_ERROR;
    bn_model *model = NULL;
    bn_tokenizer *tok = NULL;
    char *path = NULL;
    bn_session session = {0};
    bn_gen *gen = NULL;
    bn_tokens ids = {0};
    bn_chat_text chat = {0};
    if (bn_cli_load_model(&model, &tok, &path, &common, err) != BN_OK) goto done;
    const bn_model_config *cfg = bn_model_get_config(model);
    fprintf(stderr, "model: %s (%s, %d layers, dim %d, vocab %d), isa %s, %d threads\n", path,
            cfg->arch_name, cfg->n_layers, cfg->dim, cfg->n_vocab, bn_isa_name(bn_isa_active()),
            common.n_threads);

    if (o.format_name) {
        const bn_chat_format *format;
        if (bn_cli_chat_format(&format, model, o.format_name, err) != BN_OK) goto done;
        bn_chat_message message = {"user", o.prompt};
        if (bn_chat_render(&chat, format, &message, 1, true, err) != BN_OK) goto done;
        if (bn_chat_tokenize(&ids, tok, format, &chat, 0, !o.no_bos, err) != BN_OK) goto done;
        o.echo = false;
    } else if (bn_tokenizer_encode(tok, o.prompt, strlen(o.prompt), !o.no_bos, false, &ids, err) != BN_OK) {
        goto done;
    }
    if (ids.n == 0) {
        bn_error_set(err, BN_ERR_INVALID, "the prompt is empty (no tokens)");
        goto done;
    }
    const bn_gen_config gen_config = bn_cli_gen_config(&sampling, sampling.stops, sampling.n_stops);
    if (bn_gen_create(&gen, tok, (size_t)cfg->n_vocab, &gen_config, err) != BN_OK) goto done;
    const bn_session_options session_options = bn_cli_session_options(&common, &sampling);
    if (bn_session_init(&session, model, &session_options, err) != BN_OK) goto done;

    bn_cli_catch_sigint();

    if (o.echo) bn_cli_write_stdout(NULL, o.prompt, strlen(o.prompt));
    const bn_session_io io = {.on_text = bn_cli_write_stdout, .cancel = &bn_cli_interrupted};
    bn_session_stats stats;
    if (bn_session_generate(&session, gen, ids.ids, ids.n, &io, &stats, err) != BN_OK) {
        fputc('\n', stdout);
        goto done;
    }
    fputc('\n', stdout);
    fflush(stdout);
    print_speed("prompt", stats.n_prefilled, stats.prefill_ms);
    print_speed("generation", stats.n_generated, stats.generate_ms);
    if (stats.n_shifts)
        fprintf(stderr, "context shifts: %d (%d tokens dropped)\n", stats.n_shifts, stats.n_dropped);
    fprintf(stderr, "stopped: %s, seed %llu\n", bn_finish_reason_name(stats.finish),
            (unsigned long long)bn_gen_seed(gen));
    rc = BN_EXIT_OK;
done:
    bn_chat_text_free(&chat);
    bn_tokens_free(&ids);
    bn_gen_free(gen);
    if (session.seq) bn_session_free(&session);
    bn_tokenizer_free(tok);
    bn_model_free(model);
    free(path);
    bn_cli_sampling_free(&sampling);
    return rc;
}
