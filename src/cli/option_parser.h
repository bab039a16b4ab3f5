/*
 * option_parser.h: the one option layer of every `bitnet` command. A command describes its options
 * as a table (bn_cli_option: spellings, value name, help text) and says which shared groups it
 * takes (the common model/thread/context options, the sampling options); from that one
 * description come the parsing, the --help text, the unknown-option suggestions and the shell
 * completion scripts (`bitnet completion bash|zsh`).
 *
 * Spellings follow llama.cpp: `--opt value`, `--opt=value`, a short option glued to its value
 * (`-n3`, `-c2048`), multi-letter short options (`-ngl 99`, `-fa`, `-ctk q8_0`), and `--` ending
 * the options (everything after it is an argument, even when it starts with '-'). An argument
 * that looks like a negative number ("-5") is an argument, not an option. An unknown option names
 * the nearest known spelling ("did you mean --n-predict?").
 *
 * Ownership: the parser keeps pointers into argv (values are never copied); nothing here exits.
 */
#ifndef BN_CLI_OPTION_PARSER_H
#define BN_CLI_OPTION_PARSER_H

#include "bitnet.h"

#include <stdbool.h>
#include <stdio.h>

/* Result of applying one option. */
typedef enum bn_cli_parse {
    BN_CLI_NOT_MINE = 0, /* (internal) not an option of this group */
    BN_CLI_CONSUMED = 1, /* applied */
    BN_CLI_BAD = -1      /* an invalid value: err holds the one-line message */
} bn_cli_parse;

/* Option flags. */
enum {
    BN_OPT_HIDDEN = 1u << 0,   /* accepted, not listed in --help (an old or alternative spelling) */
    BN_OPT_OPTIONAL = 1u << 1, /* flag that may take a value: `--opt=V`, or the next argument when it
                                  is one of `choices` ("-fa on") */
};

/* One option of a table; a table ends with an entry whose names is NULL. */
typedef struct bn_cli_option {
    int id;              /* what the handler switches on */
    const char *names;   /* spellings separated by '|': "-n|--n-predict"; the first long one
                            names the option in messages and environment variables */
    const char *metavar; /* the value's name in --help ("N", "FILE"); NULL: a flag */
    const char *help;    /* help text; '\n' continues on the next line */
    unsigned flags;      /* BN_OPT_* */
    unsigned group;      /* for the shared tables: the BN_COMMON_* bit a command must ask for */
    const char *choices; /* values offered by shell completion ("cpu|cuda"); NULL: any */
} bn_cli_option;

/* Applies option `opt` (spelled `name` on the command line) with `value` (NULL for a flag) to
 * `state`; returns BN_CLI_CONSUMED or BN_CLI_BAD with err set. Called with opt == NULL for an
 * argument that is not an option (value: the argument). */
typedef bn_cli_parse (*bn_cli_apply_fn)(void *state, const bn_cli_option *opt, const char *name,
                                        const char *value, bn_error *err);

/* One table and where its options go. */
typedef struct bn_cli_group {
    const char *title;            /* heading in --help ("options", "common options") */
    const bn_cli_option *options; /* ends with {0} */
    unsigned mask;                /* only the options whose group bit is in mask (0: all) */
    bn_cli_apply_fn apply;
    void *state;
} bn_cli_group;

#define BN_CLI_MAX_GROUPS 5

/* What a command is, for the parser, --help and the completion scripts (cli_options.h's
 * bn_cli_parse_command turns it into groups). */
typedef struct bn_cli_spec {
    const char *name;      /* "run" */
    const char *synopsis;  /* "[-m MODEL] [-p TEXT] [options]" */
    const char *about;     /* paragraphs printed between the usage line and the options */
    const char *notes;     /* printed after the options (NULL: none) */
    bool arguments;        /* takes arguments besides options (given to the first group's apply
                              with opt == NULL); false: an argument is a usage error */
    const char *env_prefix; /* "BITNET_": every option with a value can also come from
                              BITNET_<LONG NAME> (applied before the command line); NULL: none */
    const bn_cli_option *options;      /* the command's own table */
    const bn_cli_option *more_options; /* a second own table with its own heading (NULL: none) */
    const char *more_title;
    const bn_cli_option *extra_options; /* a third own table with its own heading (NULL: none) */
    const char *extra_title;
    unsigned common;                   /* the common options it takes (cli_options.h BN_COMMON_*) */
    bool sampling;                     /* takes the sampling options */
} bn_cli_spec;

/* The option loop. Returns -1 when every argument was taken (the command goes on), BN_EXIT_OK (0)
 * after --help printed the help to stdout, or BN_EXIT_USAGE (2) after a one-line message
 * ("bitnet NAME: ...") and the synopsis went to stderr. groups[0] is the command's own table. */
int bn_cli_parse_options(const bn_cli_spec *spec, const bn_cli_group *groups, int n_groups,
                         int argc, char **argv, bn_error *err);

/* Prints the full help of a command: usage line, about, each group's options, notes. */
void bn_cli_print_help(FILE *out, const bn_cli_spec *spec, const bn_cli_group *groups,
                       int n_groups);

/* Prints the help lines of one table (those in mask; hidden ones left out). */
void bn_cli_print_options(FILE *out, const bn_cli_option *options, unsigned mask);

/* After a bad option: prints "bitnet COMMAND: <err's message>", the usage line and where the
 * options are described, to stderr; clears err. Returns BN_EXIT_USAGE (2). */
int bn_cli_usage_error(const char *command, const char *synopsis, bn_error *err);

/* The spelling in `names` ("-n|--n-predict") closest to `given` by edit distance, written to
 * out; false when nothing is close enough to suggest. */
bool bn_cli_nearest_name(char *out, size_t size, const char *given, const bn_cli_group *groups,
                         int n_groups);

/* Writes each spelling of `options` (in mask, hidden ones too) to out, separated by spaces;
 * with_values: only those that take a value (false: only flags). Returns the count written. */
int bn_cli_list_names(FILE *out, const bn_cli_option *options, unsigned mask, int with_values);

#endif
