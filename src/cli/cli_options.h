/*
 * cli_options.h: the option tables every command shares (option_parser.h is the loop): the
 * common options (model, threads, context, batch, device, kernels, progress; llama.cpp's names
 * and meanings, its options that mean nothing here accepted with a one-line note) and the
 * sampling options, with the same spellings, defaults and words in every command's --help.
 * Also here: model loading with those options, the default model, number parsing, whole-file
 * reading, and what the streaming commands share (Ctrl-C flag, stdout text callback). Nothing
 * here exits; only notes (stderr) and bn_cli_write_stdout print.
 */
#ifndef BN_CLI_OPTIONS_H
#define BN_CLI_OPTIONS_H

#include "bitnet.h"
#include "cli/option_parser.h"
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
/* The names --chat-format takes (chat/chat.h's table), for the option tables' value lists. */
#define BN_CLI_CHAT_FORMATS "bitnet|llama3|chatml|falcon3|plain|none"

/* Which common options a command takes (bn_cli_option.group of the common table). */
enum {
    BN_COMMON_MODEL = 1u << 0,    /* -m */
    BN_COMMON_THREADS = 1u << 1,  /* -t, -tb */
    BN_COMMON_CTX = 1u << 2,      /* -c */
    BN_COMMON_BATCH = 1u << 3,    /* -b, -ub */
    BN_COMMON_DEVICE = 1u << 4,   /* --device, -ngl, -fa, -ctk, -ctv, --mlock, --no-mmap */
    BN_COMMON_KERNELS = 1u << 5,  /* --isa, --tune, --verbose */
    BN_COMMON_PROGRESS = 1u << 6, /* --no-progress */
    BN_COMMON_LOAD = BN_COMMON_MODEL | BN_COMMON_THREADS | BN_COMMON_CTX | BN_COMMON_BATCH | BN_COMMON_DEVICE |
                     BN_COMMON_KERNELS | BN_COMMON_PROGRESS
};

/* The common options (llama.cpp's names and meanings). */
typedef struct bn_cli_common {
    const char *model_path; /* NULL: BITNET_MODEL, else the default model (bn_cli_resolve_model) */
    int n_threads;          /* default: online CPUs, at most 8 */
    bool threads_given;     /* -t was on the command line */
    int n_ctx;              /* 0: the model's training context */
    int n_batch;            /* -b: prompt tokens per forward pass (0: the engine's 512) */
    const char *isa;        /* NULL: best supported */
    bn_device device;       /* backend the model runs on (default CPU; BITNET_DEVICE) */
    int device_index;       /* GPU of --device cuda:N (default 0) */
    bool device_given;      /* --device was given (else -ngl may choose) */
    int gpu_layers;         /* -ngl; -1: not given */
    uint32_t kv_type_k;     /* -ctk, -ctv: ggml type ids (kernels/ops.h); bn_cli_common_init */
    uint32_t kv_type_v;     /* sets both to BN_TYPE_F16 */
    bool int8_lm_head;      /* set by the commands that have --int8-lm-head */
    int tune;               /* --tune: bn_tune_mode; -1 (default): BITNET_TUNE, else quick */
    bool verbose;           /* --verbose: the kernel tuning's choice on stderr after the load */
    bool progress;          /* false: --no-progress */
    const char *command;    /* for notes: "run" */
} bn_cli_common;

void bn_cli_common_init(bn_cli_common *c, const char *command);
extern const bn_cli_option bn_cli_common_options[];
/* A bn_cli_apply_fn for bn_cli_common_options (state: bn_cli_common). */
bn_cli_parse bn_cli_apply_common(void *state, const bn_cli_option *opt, const char *name, const char *value,
                                 bn_error *err);
/* The group of the common options in `mask`, for bn_cli_parse_options. */
bn_cli_group bn_cli_common_group(bn_cli_common *c, unsigned mask);

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
extern const bn_cli_option bn_cli_sampling_options[];
bn_cli_parse bn_cli_apply_sampling(void *state, const bn_cli_option *opt, const char *name, const char *value,
                                   bn_error *err);
bn_cli_group bn_cli_sampling_group(bn_cli_sampling *s);

/* The groups of a command's spec: its own table(s) with apply/state, then the common options in
 * spec->common (state common) and the sampling options when spec->sampling (state sampling).
 * groups has room for BN_CLI_MAX_GROUPS; returns the count. apply/state/common/sampling may be
 * NULL when only the tables are needed (help, completion). */
int bn_cli_spec_groups(bn_cli_group *groups, const bn_cli_spec *spec, bn_cli_apply_fn apply, void *state,
                       bn_cli_common *common, bn_cli_sampling *sampling);
/* bn_cli_parse_options over bn_cli_spec_groups: -1 to go on, else the exit code (see there). */
int bn_cli_parse_command(const bn_cli_spec *spec, bn_cli_apply_fn apply, void *state, bn_cli_common *common,
                         bn_cli_sampling *sampling, int argc, char **argv, bn_error *err);

/* A value error: "invalid value 'V' for OPTION (expected EXPECTED)"; returns BN_CLI_BAD. */
bn_cli_parse bn_cli_bad_value(const char *option, const char *value, const char *expected, bn_error *err);

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

/* Applies --isa when set; otherwise checks that BITNET_ISA (if set) names a path this CPU has. */
bn_status bn_cli_apply_isa(const bn_cli_common *c, bn_error *err);
/* The same for commands with their own option structs (isa: the --isa value or NULL). */
bn_status bn_cli_apply_isa_name(const char *isa, bn_error *err);

/* Resolves the model path (bn_cli_resolve_model), applies --isa, loads the model with the thread
 * count and builds its tokenizer (tok may be NULL when not needed), with progress on stderr
 * (--no-progress: none), a warning when -c exceeds the training context, and -ngl's fallback to
 * the CPU when no GPU is usable. The caller owns *model,
 * *tok and *path (bn_model_free, bn_tokenizer_free, free); nothing is left allocated on failure. */
bn_status bn_cli_load_model(bn_model **model, bn_tokenizer **tok, char **path,
                            bn_cli_common *c, bn_error *err);
/* Loads path with options, as bn_cli_load_model does after resolving the path: progress on
 * stderr, -ngl's CPU fallback, --verbose's tuning report, the -c warning. */
bn_status bn_cli_load_with(bn_model **model, const char *path, bn_model_options *options, bn_cli_common *c,
                           bn_error *err);
/* The model options of the common options: threads (capped at the online CPUs with a note),
 * batch, context size (-c: a file whose context_length is over 2^20 loads only with it), KV
 * type, tuning, device (-ngl N > 0 means cuda unless --device was given). */
void bn_cli_model_options(bn_model_options *options, bn_cli_common *c);
/* Online CPUs (1..1024). */
int bn_cli_online_cpus(void);
/* c->n_threads, capped at the online CPUs with a note on stderr. */
int bn_cli_thread_count(const bn_cli_common *c);

/* The chat format: `name` when given (BN_ERR_INVALID listing the valid names when unknown), else
 * the one the model's file selects (bn_chat_format_for_gguf), whose note, when it has one, is
 * printed on stderr as "bitnet COMMAND: note: ...". */
bn_status bn_cli_chat_format(const bn_chat_format **out, const bn_model *model, const char *name,
                             const char *command, bn_error *err);

/* Reads the whole file at `path` into *out, NUL-terminated (*len bytes before the NUL). A file of
 * more than max_bytes is BN_ERR_RANGE; BN_ERR_IO names the path when it cannot be opened or read.
 * *out is owned by the caller (free); nothing is left allocated on failure. */
bn_status bn_cli_read_file(char **out, size_t *len, const char *path, size_t max_bytes,
                           bn_error *err);

/* llama.cpp's -e: \n \r \t \\ \' \" \xNN in text[0..len) become what they stand for, in place (any
 * other backslash stays); NUL-terminates and returns the new length. */
size_t bn_cli_unescape(char *text, size_t len);

/* Monotonic milliseconds. */
double bn_cli_now_ms(void);

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
