/*
 * main.c: the `bitnet` binary. Dispatches to a subcommand and is the only place (with the
 * commands' own usage output) that prints errors: one line, "bitnet <command>: <message>".
 */
#include "cli/commands.h"

#include "cli/option_parser.h"

#include <stdio.h>
#include <string.h>

#ifdef BITNET_HAVE_SERVER
#define SERVE_SPEC (&bn_serve_spec)
#else
#define SERVE_SPEC NULL
#endif

const bn_command bn_commands[] = {
    {"run", "generate text from a prompt (default model: models/)", bn_cmd_run, &bn_run_spec},
    {"chat", "interactive chat in the model's chat format", bn_cmd_chat, &bn_chat_spec},
    {"perplexity", "perplexity of a text file (llama.cpp's protocol)", bn_cmd_perplexity, &bn_perplexity_spec},
    {"crossval", "per-position logits comparison against a reference or another backend", bn_cmd_crossval,
     &bn_crossval_spec},
    {"serve", "OpenAI-compatible HTTP server (completions, chat, tools, SSE)", bn_cmd_serve, SERVE_SPEC},
    {"inspect", "print GGUF metadata and tensors", bn_cmd_inspect, &bn_inspect_spec},
    {"tokenize", "print the token ids of a text", bn_cmd_tokenize, &bn_tokenize_spec},
    {"detokenize", "print the text of token ids", bn_cmd_detokenize, &bn_detokenize_spec},
    {"eval", "logits of a token sequence as float32 (for comparisons)", bn_cmd_eval, &bn_eval_spec},
    {"synth", "write a synthetic BitNet b1.58 model with seeded random weights", bn_cmd_synth, &bn_synth_spec},
    {"convert", "convert a Hugging Face BitNet b1.58 checkpoint (safetensors) to GGUF", bn_cmd_convert,
     &bn_convert_spec},
    {"gguf-example", "write an example GGUF file (small, or the 2B-4T tensor table)", bn_cmd_gguf_example,
     &bn_gguf_example_spec},
    {"bench", "pp/tg throughput table (llama-bench style) and a JSON receipt", bn_cmd_bench, &bn_bench_spec},
    {"verify-receipt", "check a bench receipt (schema, real compute, kernels ran)", bn_cmd_verify_receipt,
     &bn_verify_spec},
    {"completion", "print a bash or zsh completion script (bitnet completion bash|zsh)", bn_cmd_completion, NULL},
    {0},
};

static void print_usage(FILE *out) {
    fprintf(out, "usage: bitnet <command> [options]\n\ncommands:\n");
    for (size_t i = 0; bn_commands[i].name; i++)
        fprintf(out, "  %-16s %s\n", bn_commands[i].name, bn_commands[i].summary);
    fprintf(out, "\n`bitnet <command> --help` describes each command.\n"
                 "`bitnet --version` prints the version and git commit.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return BN_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_usage(stdout);
        return BN_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("bitnet-c %s (%s)\n", bn_version(), bn_git_commit());
        return BN_EXIT_OK;
    }
    for (size_t i = 0; bn_commands[i].name; i++) {
        if (strcmp(argv[1], bn_commands[i].name) != 0) continue;
        bn_error err;
        bn_error_clear(&err);
        int rc = bn_commands[i].run(argc - 1, argv + 1, &err);
        if (rc != BN_EXIT_OK && err.code != BN_OK) fprintf(stderr, "bitnet %s: %s\n", argv[1], err.message);
        return rc;
    }
    fprintf(stderr, "bitnet: unknown command '%s'\n", argv[1]);
    print_usage(stderr);
    return BN_EXIT_USAGE;
}
