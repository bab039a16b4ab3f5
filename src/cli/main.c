/*
 * main.c: the `bitnet` binary. Dispatches to a subcommand and is the only place (with the
 * commands' own usage output) that prints errors: one line, "bitnet <command>: <message>".
 */
#include "cli/commands.h"

#include <stdio.h>
#include <string.h>

static const bn_command commands[] = {
    {"inspect", "print GGUF metadata and tensors", bn_cmd_inspect},
};

static void print_usage(FILE *out) {
    fprintf(out, "usage: bitnet <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-16s %s\n", commands[i].name, commands[i].summary);
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
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        bn_error err;
        bn_error_clear(&err);
        int rc = commands[i].run(argc - 1, argv + 1, &err);
        if (rc != BN_EXIT_OK && err.code != BN_OK) fprintf(stderr, "bitnet %s: %s\n", argv[1], err.message);
        return rc;
    }
    fprintf(stderr, "bitnet: unknown command '%s'\n", argv[1]);
    print_usage(stderr);
    return BN_EXIT_USAGE;
}
