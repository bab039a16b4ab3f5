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

#endif
