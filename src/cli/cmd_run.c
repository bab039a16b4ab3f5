/*
 * cmd_run.c: `bitnet run -m MODEL -p TEXT [options]`: generates text from a prompt and streams it
 * to stdout as it is produced (one flush per token), then prints the prompt and generation speeds
 * to stderr. Without -m it runs the model shipped in models/; without -p a default prompt, so a
 * bare `bitnet run` shows text. --chat-format wraps the prompt as one user message.
 */
#include "cli/cli_options.h"
#include "cli/commands.h"
#include "kernels/cpu_features.h"
#include "tools/generate.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PROMPT "In the beginning"
#define DEFAULT_MAX_TOKENS 128

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

/* After a wrong option: the synopsis and where the options are described. */
static void short_usage(void) {
    fprintf(stderr, "usage: bitnet run [-m MODEL] [-p TEXT] [options]\n"
                    "`bitnet run --help` describes the options.\n");
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: bitnet run [-m MODEL] [-p TEXT] [options]\n\n"
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

static bool write_text(void *user, const char *text, size_t len) {
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

static void print_speed(const char *what, int tokens, double ms) {
    fprintf(stderr, "%s: %d tokens in %.2f ms (%.2f tokens/s)\n", what, tokens, ms,
            ms > 0 ? tokens * 1000.0 / ms : 0.0);
}

int bn_cmd_run(int argc, char **argv, bn_error *err) {
    bn_cli_common common;
    bn_cli_common_init(&common);
    bn_cli_sampling sampling;
    bn_cli_sampling_init(&sampling, DEFAULT_MAX_TOKENS);
    const char *prompt = DEFAULT_PROMPT, *format_name = NULL;
    bool no_bos = false, echo = true;
    int rc = BN_EXIT_ERROR;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bn_cli_parse r = bn_cli_parse_common(&common, argc, argv, &i, err);
        if (r == BN_CLI_NOT_MINE) r = bn_cli_parse_sampling(&sampling, argc, argv, &i, err);
        if (r == BN_CLI_CONSUMED) continue;
        if (r == BN_CLI_NOT_MINE) {
            if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
                usage(stdout);
                bn_cli_sampling_free(&sampling);
                return BN_EXIT_OK;
            } else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && i + 1 < argc) {
                prompt = argv[++i];
                continue;
            } else if (!strcmp(a, "--chat-format") && i + 1 < argc) {
                format_name = argv[++i];
                continue;
            } else if (!strcmp(a, "--no-bos")) {
                no_bos = true;
                continue;
            } else if (!strcmp(a, "--no-echo")) {
                echo = false;
                continue;
            }
            bn_error_set(err, BN_ERR_INVALID, "unknown option or missing value '%s'", a);
        }
        fprintf(stderr, "bitnet run: %s\n", err->message);
        short_usage();
        bn_cli_sampling_free(&sampling);
        bn_error_clear(err);
        return BN_EXIT_USAGE;
    }

    bn_model *model = NULL;
    bn_tokenizer *tok = NULL;
    char *path = NULL;
    bn_generation gen = {0};
    bn_sampler *sampler = NULL;
    bn_tokens ids = {0};
    bn_chat_text chat = {0};
    bn_generate_result result = {0};
    if (bn_cli_load_model(&model, &tok, &path, &common, err) != BN_OK) goto done;
    const bn_model_config *cfg = bn_model_get_config(model);
    fprintf(stderr, "model: %s (%s, %d layers, dim %d, vocab %d), isa %s, %d threads\n", path,
            cfg->arch_name, cfg->n_layers, cfg->dim, cfg->n_vocab, bn_isa_name(bn_isa_active()),
            common.n_threads);

    if (format_name) {
        const bn_chat_format *format;
        if (bn_cli_chat_format(&format, model, format_name, err) != BN_OK) goto done;
        bn_chat_message message = {"user", prompt};
        if (bn_chat_render(&chat, format, &message, 1, true, err) != BN_OK) goto done;
        if (bn_generate_tokenize_chat(&ids, tok, format, &chat, 0, !no_bos, err) != BN_OK) goto done;
        echo = false;
    } else if (bn_tokenizer_encode(tok, prompt, strlen(prompt), !no_bos, false, &ids, err) != BN_OK) {
        goto done;
    }
    if (ids.n == 0) {
        bn_error_set(err, BN_ERR_INVALID, "the prompt is empty (no tokens)");
        goto done;
    }
    if (bn_sampler_create(&sampler, &sampling.params, (size_t)cfg->n_vocab, err) != BN_OK) goto done;
    if (bn_generation_init(&gen, model, common.n_ctx, err) != BN_OK) goto done;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);

    if (echo) write_text(NULL, prompt, strlen(prompt));
    bn_generate_config config = {
        .max_tokens = sampling.params.max_tokens,
        .stops = sampling.stops,
        .n_stops = sampling.n_stops,
        .detok_flags = BN_DETOK_SKIP_SPECIAL,
        .on_text = write_text,
        .cancel = &interrupted,
    };
    if (bn_generate(&result, &gen, tok, sampler, ids.ids, ids.n, &config, err) != BN_OK) {
        fputc('\n', stdout);
        goto done;
    }
    fputc('\n', stdout);
    fflush(stdout);
    print_speed("prompt", result.n_prefilled, result.prefill_ms);
    print_speed("generation", result.n_generated, result.generate_ms);
    fprintf(stderr, "stopped: %s, seed %llu\n", bn_finish_reason_name(result.finish),
            (unsigned long long)bn_sampler_seed(sampler));
    rc = BN_EXIT_OK;
done:
    bn_generate_result_free(&result);
    bn_chat_text_free(&chat);
    bn_tokens_free(&ids);
    bn_sampler_free(sampler);
    if (gen.seq) bn_generation_free(&gen);
    bn_tokenizer_free(tok);
    bn_model_free(model);
    free(path);
    bn_cli_sampling_free(&sampling);
    return rc;
}
