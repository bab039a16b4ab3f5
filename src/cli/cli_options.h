/*
 * cli_options.h: the command-line options several commands share (model, threads, context, ISA,
 * sampling, stop strings), parsed in one place so `run`, `chat`, `perplexity`, `crossval` and the
 * server accept the same spellings and reject the same bad values.
 *
 * Design: each argument is offered first to these group parsers, then to the command's own; a
 * parser either consumes the option (and its value), says it is not one of its options, or fails
 * with a one-line message naming the option and the value. The loop itself (bn_cli_parse_args)
 * lives here too, so every command answers --help and a bad option the same way: the one-line
 * message and the synopsis, exit status 2. Also here: what the streaming commands share (Ctrl-C
 * flag, stdout text callback) and whole-file reading. Nothing here exits; only the usage helpers
 * and bn_cli_write_stdout print.
 */
#ifndef BN_CLI_OPTIONS_H
#define BN_CLI_OPTIONS_H

#include "bitnet.h"
#include "chat/chat.h"
#include "model/model.h"
#include "runtime/generation.h"
#include "runtime/session.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The model the repository ships in models/ (used when -m is absent). */
#define BN_CLI_DEFAULT_MODEL "models/kjv-bitnet.gguf"

/* Result of offering one argument to a group parser. */
typedef enum bn_cli_parse {
    BN_CLI_NOT_MINE = 0, /* not an option of this group: try the next parser */
    BN_CLI_CONSUMED = 1, /* consumed (with its value when it has one) */
    BN_CLI_BAD = -1      /* a missing or invalid value: err holds the one-line message */
} bn_cli_parse;

/* -m/--model, -t/--threads, -c/--ctx-size, --isa, --tune, --verbose. */
typedef struct bn_cli_common {
    const char *model_path; /* NULL: the default model (bn_cli_resolve_model) */
    int n_threads;          /* default: online CPUs, at most 8 */
    int n_ctx;              /* 0: the model's training context */
    const char *isa;        /* NULL: best supported */
    bn_device device;       /* backend the model runs on (default CPU) */
    int tune;               /* --tune: bn_tune_mode; -1 (default): BITNET_TUNE, else quick */
    bool verbose;           /* --verbose: the kernel tuning's choice on stderr after the load */
} bn_cli_common;

void bn_cli_common_init(bn_cli_common *c);
/* Offers argv[*i]; on BN_CLI_CONSUMED *i points at the last argument consumed. */
bn_cli_parse bn_cli_parse_common(bn_cli_common *c, int argc, char **argv, int *i, bn_error *err);
/* Help lines for these options (for a command's usage). */
extern const char bn_cli_common_help[];

/* Generation options: --temp, --top-k, --top-p, --min-p, --typical, --repeat-penalty,
 * --repeat-last-n, --presence-penalty, --frequency-penalty, --logit-bias ID=BIAS, --seed,
 * --stop STR, -n, --ignore-eos, --context-shift, --keep N. */
typedef struct bn_cli_sampling {
    bn_sampler_params params;  /* params.logit_bias points into `biases` */
    int32_t max_tokens;        /* -n; < 0: until the context is full */
    bool ignore_eos;           /* --ignore-eos */
    bool context_shift;        /* --context-shift */
    int keep;                  /* --keep; -1: the first prompt */
    bn_logit_bias *biases;     /* owned */
    size_t n_biases;
    const char **stops;        /* owned array; strings point into argv */
    size_t n_stops;
} bn_cli_sampling;

/* Defaults: bn_sampler_params_default(), max_tokens = default_max_tokens, no context shift. */
void bn_cli_sampling_init(bn_cli_sampling *s, int32_t default_max_tokens);
void bn_cli_sampling_free(bn_cli_sampling *s);
bn_cli_parse bn_cli_parse_sampling(bn_cli_sampling *s, int argc, char **argv, int *i,
                                   bn_error *err);
extern const char bn_cli_sampling_help[];

/* Number parsing: the whole string must be a number in [lo, hi]. */
bool bn_cli_parse_int(const char *s, long lo, long hi, int *out);
bool bn_cli_parse_float(const char *s, double lo, double hi, float *out);

/* Parses "1,2,3" into a new array (caller frees *out). BN_ERR_INVALID naming the position. */
bn_status bn_cli_parse_token_list(const char *list, int32_t **out, int *count, bn_error *err);

/* A file of the source tree: `relative` from the working directory, else from the source tree of
 * the running binary (/proc/self/exe/../..). BN_ERR_IO when neither exists. *out: caller frees. */
bn_status bn_cli_find_in_tree(char **out, const char *relative, bn_error *err);

/* The model file to open: `given` when non-NULL, else BN_CLI_DEFAULT_MODEL relative to the
 * working directory, else relative to the source tree of the running binary
 * (/proc/self/exe/../..). When no file exists the error says how to get one. *out is owned by
 * the caller (free). */
bn_status bn_cli_resolve_model(char **out, const char *given, bn_error *err);

/* Parses a --tune value into *mode (bn_tune_mode); BN_CLI_BAD with the message otherwise. */
bn_cli_parse bn_cli_parse_tune(int *mode, const char *option, const char *value, bn_error *err);
/* Help lines of --tune (shared by the commands that load a model). */
#define BN_CLI_TUNE_HELP                                                                          \
    "  --tune off|quick|full  kernel tuning at load: time each kernel's variants on this model\n" \
    "                         and bind the fastest (default: BITNET_TUNE, else quick: about\n"    \
    "                         300 ms, then cached in $XDG_CACHE_HOME/bitnet/tune.json; full:\n"  \
    "                         about 3 s, always measured); --isa and BITNET_VARIANT=CLASS=NAME\n" \
    "                         still force a path or variant\n"

/* Applies --isa when set; otherwise checks that BITNET_ISA (if set) names a path this CPU has. */
bn_status bn_cli_apply_isa(const bn_cli_common *c, bn_error *err);
/* The same for commands with their own option structs (isa: the --isa value or NULL). */
bn_status bn_cli_apply_isa_name(const char *isa, bn_error *err);

/* Resolves the model path (bn_cli_resolve_model), applies --isa, loads the model with the thread
 * count and builds its tokenizer (tok may be NULL when not needed). The caller owns *model,
 * *tok and *path (bn_model_free, bn_tokenizer_free, free); nothing is left allocated on failure. */
bn_status bn_cli_load_model(bn_model **model, bn_tokenizer **tok, char **path,
                            const bn_cli_common *c, bn_error *err);

/* The chat format: `name` when given (BN_ERR_INVALID listing the valid names when unknown), else
 * the one the model's tokenizer.chat_template and architecture select. */
bn_status bn_cli_chat_format(const bn_chat_format **out, const bn_model *model, const char *name,
                             bn_error *err);

/* Reads the whole file at `path` into *out, NUL-terminated (*len bytes before the NUL). A file of
 * more than max_bytes is BN_ERR_RANGE; BN_ERR_IO names the path when it cannot be opened or read.
 * *out is owned by the caller (free); nothing is left allocated on failure. */
bn_status bn_cli_read_file(char **out, size_t *len, const char *path, size_t max_bytes,
                           bn_error *err);

/* Monotonic milliseconds. */
double bn_cli_now_ms(void);

/* After a bad option: prints "bitnet COMMAND: <err's message>", then "usage: bitnet COMMAND
 * SYNOPSIS" and where the options are described, to stderr; clears err. Returns BN_EXIT_USAGE
 * (2), for the command to return. */
int bn_cli_usage_error(const char *command, const char *synopsis, bn_error *err);

/* A command's own options, offered each argument after the shared groups (same contract as the
 * group parsers); `state` is the command's option struct. */
typedef bn_cli_parse (*bn_cli_own_parser)(void *state, int argc, char **argv, int *i,
                                          bn_error *err);

/* What the option loop needs to know of a command. */
typedef struct bn_cli_command {
    const char *name;           /* "run" */
    const char *synopsis;       /* "[-m MODEL] [-p TEXT] [options]" */
    void (*usage)(FILE *out);   /* the full help */
    bn_cli_own_parser own;      /* NULL: no options of its own */
    void *state;                /* passed to own */
} bn_cli_command;

/* The option loop: offers each of argv[1..] to `common` and `sampling` (each when non-NULL), then
 * to cmd->own. --help / -h prints cmd->usage(stdout) and returns BN_EXIT_OK; an argument nobody
 * takes ("unknown option or missing value") or a bad value goes to bn_cli_usage_error and
 * returns BN_EXIT_USAGE; either way `sampling` is freed, so the command just returns that code.
 * Returns -1 when every argument was taken: the command goes on. */
int bn_cli_parse_args(const bn_cli_command *cmd, bn_cli_common *common, bn_cli_sampling *sampling,
                      int argc, char **argv, bn_error *err);

/* Set to 1 by the SIGINT handler bn_cli_catch_sigint installs; a generation polls it to stop. */
extern volatile sig_atomic_t bn_cli_interrupted;

/* Makes Ctrl-C set bn_cli_interrupted instead of ending the process. No SA_RESTART: a blocking
 * read (a chat prompt) returns EINTR. */
void bn_cli_catch_sigint(void);

/* The generation config of the sampling options: their sampler parameters, -n, --ignore-eos, the
 * given stop strings (kept by the caller) and the detokenizer flags of printed text. */
bn_gen_config bn_cli_gen_config(const bn_cli_sampling *s, const char *const *stops, size_t n_stops);
/* The session of -c, --context-shift and --keep. */
bn_session_options bn_cli_session_options(const bn_cli_common *c, const bn_cli_sampling *s);

/* A bn_session on_text callback: writes the text to stdout and flushes, so it streams. */
bool bn_cli_write_stdout(void *user, const char *text, size_t len);

#endif
