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
struct bn_cli_spec;

typedef struct bn_command {
    const char *name;
    const char *summary;
    bn_command_fn run;
    const struct bn_cli_spec *spec; /* NULL: no options (completion) */
} bn_command;

/* Every command, in the order `bitnet --help` lists them; ends with {0}. */
extern const bn_command bn_commands[];

int bn_cmd_inspect(int argc, char **argv, bn_error *err);
int bn_cmd_tokenize(int argc, char **argv, bn_error *err);
int bn_cmd_detokenize(int argc, char **argv, bn_error *err);
int bn_cmd_eval(int argc, char **argv, bn_error *err);
int bn_cmd_synth(int argc, char **argv, bn_error *err);
int bn_cmd_convert(int argc, char **argv, bn_error *err);
int bn_cmd_gguf_example(int argc, char **argv, bn_error *err);
int bn_cmd_bench(int argc, char **argv, bn_error *err);
int bn_cmd_verify_receipt(int argc, char **argv, bn_error *err);
int bn_cmd_run(int argc, char **argv, bn_error *err);
int bn_cmd_chat(int argc, char **argv, bn_error *err);
int bn_cmd_perplexity(int argc, char **argv, bn_error *err);
int bn_cmd_crossval(int argc, char **argv, bn_error *err);
int bn_cmd_serve(int argc, char **argv, bn_error *err);
int bn_cmd_completion(int argc, char **argv, bn_error *err);

/* Each command's options (option_parser.h), for --help, completion scripts and the tests. */
extern const struct bn_cli_spec bn_run_spec, bn_chat_spec, bn_perplexity_spec, bn_crossval_spec, bn_serve_spec,
    bn_inspect_spec, bn_tokenize_spec, bn_detokenize_spec, bn_eval_spec, bn_synth_spec, bn_convert_spec,
    bn_gguf_example_spec, bn_bench_spec, bn_verify_spec;

#endif
