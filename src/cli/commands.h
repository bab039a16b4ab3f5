/*
 * commands.h: the subcommands of the `bitnet` binary. Each lives in its own cmd_<name>.c and
 * is listed once in main.c's table. A command returns the process exit code; it prints its own
 * output, and errors come back to main() through bn_error (exit 1) or as a usage problem (exit 2).
 */
#ifndef BN_CLI_COMMANDS_H
#define BN_CLI_COMMANDS_H

#include "bitnet.h"

/* Exit codes shared by every command. */
enum { BN_EXIT_OK = 0, BN_EXIT_ERROR = 1, BN_EXIT_USAGE = 2 };

typedef int (*bn_command_fn)(int argc, char **argv, bn_error *err);

typedef struct bn_command {
    const char *name;
    const char *summary;
    bn_command_fn run;
} bn_command;

int bn_cmd_inspect(int argc, char **argv, bn_error *err);
int bn_cmd_tokenize(int argc, char **argv, bn_error *err);
int bn_cmd_detokenize(int argc, char **argv, bn_error *err);
int bn_cmd_eval(int argc, char **argv, bn_error *err);
int bn_cmd_synth(int argc, char **argv, bn_error *err);
int bn_cmd_gguf_example(int argc, char **argv, bn_error *err);
int bn_cmd_bench(int argc, char **argv, bn_error *err);
int bn_cmd_verify_receipt(int argc, char **argv, bn_error *err);
int bn_cmd_run(int argc, char **argv, bn_error *err);
int bn_cmd_chat(int argc, char **argv, bn_error *err);
int bn_cmd_perplexity(int argc, char **argv, bn_error *err);
int bn_cmd_crossval(int argc, char **argv, bn_error *err);
int bn_cmd_serve(int argc, char **argv, bn_error *err);

#endif
