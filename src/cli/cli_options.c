/*
 * cli_options.c: shared option groups of the commands and their option loop (see cli_options.h),
 * the default-model lookup, small number parsers, whole-file reading, and the Ctrl-C flag and
 * stdout callback of the streaming commands.
 */
#include "cli/cli_options.h"

#include "cli/commands.h"
#include "cli/progress.h"
#include "kernels/cpu_features.h"
#include "kernels/ops.h"
#include "kernels/variants.h"
#include "model/tune.h"
#include "quant/quant_format.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bool bn_cli_parse_int(const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

bool bn_cli_parse_float(const char *s, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;
    *out = (float)v;
    return true;
}

double bn_cli_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

bn_cli_parse bn_cli_bad_value(const char *option, const char *value, const char *expected, bn_error *err) {
    bn_error_set(err, BN_ERR_INVALID, "invalid value '%s' for %s (expected %s)", value, option, expected);
    return BN_CLI_BAD;
}

/* A one-line note on stderr about an option that means nothing (or less) here. */
static void note(const bn_cli_common *c, const char *fmt, const char *name, const char *value) {
    fprintf(stderr, "bitnet %s: note: ", c->command ? c->command : "");
    fprintf(stderr, fmt, name, value ? value : "");
    fputc('\n', stderr);
}

/* ---- common options ---- */

enum {
    OPT_MODEL = 1, OPT_THREADS, OPT_THREADS_BATCH, OPT_CTX, OPT_BATCH, OPT_DEVICE, OPT_GPU_LAYERS,
    OPT_FLASH_ATTN, OPT_CACHE_TYPE_K, OPT_CACHE_TYPE_V, OPT_MLOCK, OPT_ISA, OPT_TUNE, OPT_VERBOSE, OPT_NO_PROGRESS, OPT_IGNORED_FLAG
};

const bn_cli_option bn_cli_common_options[] = {
    {OPT_MODEL, "-m|--model", "FILE", "GGUF model (default: BITNET_MODEL, else " BN_CLI_DEFAULT_MODEL ")", 0,
     BN_COMMON_MODEL, NULL},
    {OPT_THREADS, "-t|--threads", "N", "threads (default: online CPUs, at most 8; more than the CPUs\nare capped with a note)", 0,
     BN_COMMON_THREADS, NULL},
    {OPT_THREADS_BATCH, "-tb|--threads-batch", "N", "accepted for llama.cpp command lines; the prompt uses -t\nthreads too", 0,
     BN_COMMON_THREADS, NULL},
    {OPT_CTX, "-c|--ctx-size", "N", "context size in tokens (default: the model's training context;\nmore than that is allowed with a warning; a file whose\ntraining context is over 1048576 loads only with -c N <= 1048576)", 0,
     BN_COMMON_CTX, NULL},
    {OPT_BATCH, "-b|--batch-size|-ub|--ubatch-size", "N", "prompt tokens per forward pass (default 512)", 0,
     BN_COMMON_BATCH, NULL},
    {OPT_DEVICE, "--device|-dev", "NAME", "cpu (default), cuda (GPU 0) or cuda:N (GPU N); BITNET_DEVICE\nsets it too", 0, BN_COMMON_DEVICE, "cpu|cuda|cuda:0|cuda:1"},
    {OPT_GPU_LAYERS, "-ngl|--gpu-layers|--n-gpu-layers", "N", "llama.cpp's GPU offload: N > 0 means --device cuda (the whole\nmodel; on a build or machine without a GPU: the CPU, with a note)", 0,
     BN_COMMON_DEVICE, NULL},
    {OPT_FLASH_ATTN, "-fa|--flash-attn", "on|off|auto", "accepted with a note (attention is always fused here)",
     BN_OPT_OPTIONAL, BN_COMMON_DEVICE, "on|off|auto|0|1|0,1|1,0"},
    {OPT_CACHE_TYPE_K, "-ctk|--cache-type-k", "TYPE", "K cache type: f16 (default), f32 or q8_0 (llama.cpp's int8\nblocks: about half the bytes of f16, logits change slightly);\nother llama.cpp types (q4_0, ...) keep f16, with a note", 0,
     BN_COMMON_DEVICE, "f16|f32|q8_0|q4_0"},
    {OPT_CACHE_TYPE_V, "-ctv|--cache-type-v", "TYPE", "V cache type: f16 (default), f32 or q8_0, as -ctk", 0,
     BN_COMMON_DEVICE, "f16|f32|q8_0|q4_0"},
    {OPT_MLOCK, "--mlock|--no-mmap|--no-warmup|--log-disable|--color|--simple-io", NULL,
     "llama.cpp options with no meaning here: accepted with a note", 0, BN_COMMON_DEVICE, NULL},
    {OPT_ISA, "--isa", "NAME", "CPU kernel path of every kernel: scalar, avx2, avx512 (x86-64),\n"
                               "neon, neondot (aarch64) (default:\n"
                               "BITNET_ISA, else what the tuner chose per kernel class; see --tune;\n"
                               "BITNET_VARIANT=gemv=avx512.nta,head=avx2 forces variants,\n"
                               "BITNET_PREFETCH=t0|nta|none the one-token prefetch hint and\n"
                               "BITNET_GFNI=0 turns off avx512's GFNI decoding)", 0,
     BN_COMMON_KERNELS, "scalar|avx2|avx512|neon|neondot"},
    {OPT_TUNE, "--tune", "off|quick|full", "kernel tuning at load: time each kernel's variants on this model\n"
                                          "and bind the fastest (default: BITNET_TUNE, else quick: about\n"
                                          "300 ms, then cached in $XDG_CACHE_HOME/bitnet/tune.json; full:\n"
                                          "about 3 s, always measured); --isa and BITNET_VARIANT=CLASS=NAME\n"
                                          "still force a path or variant", 0, BN_COMMON_KERNELS, "off|quick|full"},
    {OPT_VERBOSE, "-v|--verbose", NULL, "print the kernel variants chosen at load (and their timings)", 0,
     BN_COMMON_KERNELS, NULL},
    {OPT_NO_PROGRESS, "--no-progress", NULL, "no progress lines on stderr (model load, long work); without a\nterminal on stderr only one line per stage is printed", 0,
     BN_COMMON_PROGRESS, NULL},
    {0},
};

void bn_cli_common_init(bn_cli_common *c, const char *command) {
    memset(c, 0, sizeof *c);
    c->tune = BN_TUNE_FROM_ENV;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    c->n_threads = cpus < 1 ? 1 : cpus > 8 ? 8 : (int)cpus;
    c->gpu_layers = -1;
    c->kv_type_k = c->kv_type_v = BN_TYPE_F16;
    c->progress = true;
    c->command = command;
}

bn_cli_group bn_cli_common_group(bn_cli_common *c, unsigned mask) {
    return (bn_cli_group){"common options", bn_cli_common_options, mask, bn_cli_apply_common, c};
}

bn_cli_parse bn_cli_apply_common(void *state, const bn_cli_option *opt, const char *name, const char *v,
                                 bn_error *err) {
    bn_cli_common *c = state;
    int iv;
    switch (opt ? opt->id : 0) {
    case OPT_MODEL:
        if (!*v) return bn_cli_bad_value(name, v, "a file name", err);
        c->model_path = v;
        break;
    case OPT_THREADS:
        if (!bn_cli_parse_int(v, 1, 1024, &c->n_threads)) return bn_cli_bad_value(name, v, "an integer in 1..1024", err);
        c->threads_given = true;
        break;
    case OPT_THREADS_BATCH:
        if (!bn_cli_parse_int(v, -1, 1024, &iv)) return bn_cli_bad_value(name, v, "an integer in -1..1024", err);
        note(c, "%s is accepted for llama.cpp command lines; the prompt runs on -t threads", name, NULL);
        break;
    case OPT_CTX:
        if (!bn_cli_parse_int(v, 0, 1 << 24, &c->n_ctx)) return bn_cli_bad_value(name, v, "an integer in 0..16777216", err);
        break;
    case OPT_BATCH:
        if (!bn_cli_parse_int(v, 1, 1 << 20, &c->n_batch)) return bn_cli_bad_value(name, v, "an integer in 1..1048576", err);
        break;
    case OPT_DEVICE:
        if (bn_device_parse(&c->device, &c->device_index, v, NULL) != BN_OK)
            return bn_cli_bad_value(name, v, "cpu, cuda or cuda:N", err);
        c->device_given = true;
        break;
    case OPT_GPU_LAYERS:
        if (!bn_cli_parse_int(v, -1, 1 << 20, &c->gpu_layers)) return bn_cli_bad_value(name, v, "an integer >= -1", err);
        break;
    case OPT_FLASH_ATTN:
        if (v && strspn(v, "onfauti01,") != strlen(v)) return bn_cli_bad_value(name, v, "on, off or auto (or llama-bench's 0,1)", err);
        note(c, "%s%s is accepted for llama.cpp command lines; attention is always fused here", name, v ? " VALUE" : "");
        break;
    case OPT_CACHE_TYPE_K:
    case OPT_CACHE_TYPE_V: {
        uint32_t type = BN_TYPE_F16;
        if (bn_kv_type_parse(&type, v, NULL) != BN_OK) {
            if (strcmp(v, "q4_0") && strcmp(v, "q4_1") && strcmp(v, "q5_0") && strcmp(v, "q5_1") &&
                strcmp(v, "iq4_nl") && strcmp(v, "bf16"))
                return bn_cli_bad_value(name, v, "f16, f32, q8_0 or another llama.cpp cache type", err);
            note(c, "%s %s: this engine's KV cache is f16, f32 or q8_0; it stays f16", name, v);
        }
        if (opt->id == OPT_CACHE_TYPE_K) c->kv_type_k = type;
        else c->kv_type_v = type;
        break;
    }
    case OPT_MLOCK:
        note(c, "%s is accepted for llama.cpp command lines and has no effect here%s", name, "");
        break;
    case OPT_ISA:
        if (strcmp(v, "scalar") && strcmp(v, "avx2") && strcmp(v, "avx512") && strcmp(v, "neon") &&
            strcmp(v, "neondot"))
            return bn_cli_bad_value(name, v, "scalar, avx2, avx512, neon or neondot", err);
        c->isa = v;
        break;
    case OPT_TUNE: {
        bn_tune_mode m;
        if (bn_tune_mode_parse(&m, v, NULL) != BN_OK) return bn_cli_bad_value(name, v, "off, quick or full", err);
        c->tune = (int)m;
        break;
    }
    case OPT_VERBOSE:
        c->verbose = true;
        break;
    case OPT_NO_PROGRESS:
        c->progress = false;
        break;
    default:
        return BN_CLI_NOT_MINE;
    }
    return BN_CLI_CONSUMED;
}

bn_status bn_cli_apply_isa_name(const char *isa, bn_error *err) {
    if (bn_kernel_variant_check_environment(err) != BN_OK) return BN_ERR_INVALID;
    if (isa) return bn_isa_set_active_by_name(isa, err);
    return bn_isa_check_environment(err);
}

bn_status bn_cli_apply_isa(const bn_cli_common *c, bn_error *err) {
    return bn_cli_apply_isa_name(c->isa, err);
}

/* ---- sampling options ---- */

enum {
    SAMPLE_N = 1, SAMPLE_TEMP, SAMPLE_TOP_K, SAMPLE_TOP_P, SAMPLE_MIN_P, SAMPLE_TYPICAL, SAMPLE_REPEAT_PENALTY,
    SAMPLE_REPEAT_LAST_N, SAMPLE_PRESENCE, SAMPLE_FREQUENCY, SAMPLE_LOGIT_BIAS, SAMPLE_SEED, SAMPLE_STOP,
    SAMPLE_IGNORE_EOS, SAMPLE_CONTEXT_SHIFT, SAMPLE_NO_CONTEXT_SHIFT, SAMPLE_KEEP
};

const bn_cli_option bn_cli_sampling_options[] = {
    {SAMPLE_N, "-n|--n-predict|--predict", "N", "tokens to generate at most (-1: until the context is full)", 0, 0, NULL},
    {SAMPLE_TEMP, "--temp|--temperature", "T", "temperature; 0 is greedy (default 0.8)", 0, 0, NULL},
    {SAMPLE_TOP_K, "--top-k", "K", "keep the K most likely tokens; 0 is off (default 40)", 0, 0, NULL},
    {SAMPLE_TOP_P, "--top-p", "P", "nucleus sampling in [0, 1]; 1 is off (default 0.95)", 0, 0, NULL},
    {SAMPLE_MIN_P, "--min-p", "P", "drop tokens below P times the best one's probability (default 0.05)", 0, 0, NULL},
    {SAMPLE_TYPICAL, "--typical", "P", "locally typical sampling in (0, 1]; 1 is off (default 1)", 0, 0, NULL},
    {SAMPLE_REPEAT_PENALTY, "--repeat-penalty", "X", "repetition penalty > 0; 1 is off (default 1)", 0, 0, NULL},
    {SAMPLE_REPEAT_LAST_N, "--repeat-last-n", "N", "tokens the penalties look back over (default 64)", 0, 0, NULL},
    {SAMPLE_PRESENCE, "--presence-penalty", "X", "OpenAI presence penalty in [-2, 2] (default 0)", 0, 0, NULL},
    {SAMPLE_FREQUENCY, "--frequency-penalty", "X", "OpenAI frequency penalty in [-2, 2] (default 0)", 0, 0, NULL},
    {SAMPLE_LOGIT_BIAS, "-l|--logit-bias", "ID=BIAS", "add BIAS to token ID's logit (-inf bans it; llama.cpp's ID+BIAS\nand ID-BIAS also work); repeatable", 0, 0, NULL},
    {SAMPLE_SEED, "-s|--seed", "N", "random seed; -1 picks one (default -1)", 0, 0, NULL},
    {SAMPLE_STOP, "--stop|-r|--reverse-prompt", "STR", "stop when the text contains STR (not printed); repeatable", 0, 0, NULL},
    {SAMPLE_IGNORE_EOS, "--ignore-eos", NULL, "keep generating past the end-of-generation token", 0, 0, NULL},
    {SAMPLE_CONTEXT_SHIFT, "--context-shift", NULL, "when the context fills, drop the oldest half of the tokens after\n--keep and go on (default: stop, reason \"context\")", 0, 0, NULL},
    {SAMPLE_NO_CONTEXT_SHIFT, "--no-context-shift", NULL, NULL, BN_OPT_HIDDEN, 0, NULL},
    {SAMPLE_KEEP, "--keep", "N", "tokens a context shift keeps at the start; -1: the first prompt\n(default -1)", 0, 0, NULL},
    {0},
};

void bn_cli_sampling_init(bn_cli_sampling *s, int32_t default_max_tokens) {
    memset(s, 0, sizeof *s);
    s->params = bn_sampler_params_default();
    s->max_tokens = default_max_tokens;
    s->keep = -1;
}

bn_cli_group bn_cli_sampling_group(bn_cli_sampling *s) {
    return (bn_cli_group){"sampling options", bn_cli_sampling_options, 0, bn_cli_apply_sampling, s};
}

bn_gen_config bn_cli_gen_config(const bn_cli_sampling *s, const char *const *stops, size_t n_stops) {
    return (bn_gen_config){.sampling = s->params, .max_tokens = s->max_tokens, .stops = stops,
                           .n_stops = n_stops, .ignore_eog = s->ignore_eos,
                           .detok_flags = BN_DETOK_SKIP_SPECIAL};
}

bn_session_options bn_cli_session_options(const bn_cli_common *c, const bn_cli_sampling *s) {
    return (bn_session_options){.capacity = c->n_ctx, .context_shift = s->context_shift, .keep = s->keep};
}

void bn_cli_sampling_free(bn_cli_sampling *s) {
    free(s->biases);
    free(s->stops);
    memset(s, 0, sizeof *s);
}

/* ID=BIAS, or llama.cpp's ID+BIAS / ID-BIAS ("15043+1", "15043-inf"). */
static bn_cli_parse add_bias(bn_cli_sampling *s, const char *option, const char *v, bn_error *err) {
    size_t id_len = strspn(v, "0123456789");
    const char *bias_text = v + id_len;
    if (*bias_text == '=') bias_text++;
    else if (*bias_text != '+' && *bias_text != '-') return bn_cli_bad_value(option, v, "ID=BIAS", err);
    char id_text[32];
    if (id_len == 0 || id_len >= sizeof id_text) return bn_cli_bad_value(option, v, "ID=BIAS", err);
    memcpy(id_text, v, id_len);
    id_text[id_len] = '\0';
    int id;
    float bias;
    if (!bn_cli_parse_int(id_text, 0, INT32_MAX, &id)) return bn_cli_bad_value(option, v, "ID=BIAS", err);
    /* strtod accepts "inf" and "-inf"; NaN is refused by the range check */
    if (!bn_cli_parse_float(bias_text, -INFINITY, INFINITY, &bias))
        return bn_cli_bad_value(option, v, "ID=BIAS with a numeric BIAS", err);
    bn_logit_bias *grown = realloc(s->biases, (s->n_biases + 1) * sizeof *grown);
    if (!grown) {
        bn_error_set(err, BN_ERR_NOMEM, "out of memory for --logit-bias");
        return BN_CLI_BAD;
    }
    s->biases = grown;
    s->biases[s->n_biases++] = (bn_logit_bias){(int32_t)id, bias};
    s->params.logit_bias = s->biases;
    s->params.n_logit_bias = s->n_biases;
    return BN_CLI_CONSUMED;
}

bn_cli_parse bn_cli_apply_sampling(void *state, const bn_cli_option *opt, const char *a, const char *v,
                                   bn_error *err) {
    bn_cli_sampling *s = state;
    bn_sampler_params *p = &s->params;
    int iv;
    switch (opt ? opt->id : 0) {
    case SAMPLE_N:
        if (!bn_cli_parse_int(v, -2, INT32_MAX, &iv)) return bn_cli_bad_value(a, v, "an integer >= -1", err);
        s->max_tokens = iv < 0 ? -1 : iv; /* llama.cpp's -2 (until the context is full) is -1 here */
        break;
    case SAMPLE_TEMP:
        if (!bn_cli_parse_float(v, 0.0, 1e6, &p->temperature)) return bn_cli_bad_value(a, v, "a number >= 0", err);
        break;
    case SAMPLE_TOP_K:
        if (!bn_cli_parse_int(v, 0, INT32_MAX, &iv)) return bn_cli_bad_value(a, v, "an integer >= 0", err);
        p->top_k = iv;
        break;
    case SAMPLE_TOP_P:
        if (!bn_cli_parse_float(v, 0.0, 1.0, &p->top_p)) return bn_cli_bad_value(a, v, "a number in [0, 1]", err);
        break;
    case SAMPLE_MIN_P:
        if (!bn_cli_parse_float(v, 0.0, 1.0, &p->min_p)) return bn_cli_bad_value(a, v, "a number in [0, 1]", err);
        break;
    case SAMPLE_TYPICAL:
        if (!bn_cli_parse_float(v, 1e-6, 1.0, &p->typical_p)) return bn_cli_bad_value(a, v, "a number in (0, 1]", err);
        break;
    case SAMPLE_IGNORE_EOS:
        s->ignore_eos = true;
        break;
    case SAMPLE_CONTEXT_SHIFT:
        s->context_shift = true;
        break;
    case SAMPLE_NO_CONTEXT_SHIFT:
        s->context_shift = false;
        break;
    case SAMPLE_KEEP:
        if (!bn_cli_parse_int(v, -1, INT32_MAX, &iv)) return bn_cli_bad_value(a, v, "an integer >= -1", err);
        s->keep = iv;
        break;
    case SAMPLE_REPEAT_PENALTY:
        if (!bn_cli_parse_float(v, 1e-6, 1e6, &p->repetition_penalty)) return bn_cli_bad_value(a, v, "a number > 0", err);
        break;
    case SAMPLE_REPEAT_LAST_N:
        if (!bn_cli_parse_int(v, 0, BN_SAMPLER_MAX_PENALTY_WINDOW, &iv))
            return bn_cli_bad_value(a, v, "an integer in 0..1048576", err);
        p->penalty_last_n = iv;
        break;
    case SAMPLE_PRESENCE:
        if (!bn_cli_parse_float(v, -2.0, 2.0, &p->presence_penalty)) return bn_cli_bad_value(a, v, "a number in [-2, 2]", err);
        break;
    case SAMPLE_FREQUENCY:
        if (!bn_cli_parse_float(v, -2.0, 2.0, &p->frequency_penalty)) return bn_cli_bad_value(a, v, "a number in [-2, 2]", err);
        break;
    case SAMPLE_LOGIT_BIAS:
        return add_bias(s, a, v, err);
    case SAMPLE_SEED:
        if (!strcmp(v, "-1")) {
            p->seed = BN_SAMPLER_SEED_RANDOM;
        } else {
            char *end;
            errno = 0;
            unsigned long long seed = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-' || seed == UINT64_MAX)
                return bn_cli_bad_value(a, v, "an integer >= 0, or -1", err);
            p->seed = (uint64_t)seed;
        }
        break;
    case SAMPLE_STOP: {
        if (!*v) return bn_cli_bad_value(a, v, "a non-empty string", err);
        const char **grown = realloc(s->stops, (s->n_stops + 1) * sizeof *grown);
        if (!grown) {
            bn_error_set(err, BN_ERR_NOMEM, "out of memory for --stop");
            return BN_CLI_BAD;
        }
        s->stops = grown;
        s->stops[s->n_stops++] = v;
        break;
    }
    default:
        return BN_CLI_NOT_MINE;
    }
    return BN_CLI_CONSUMED;
}

/* ---- token lists ---- */

bn_status bn_cli_parse_token_list(const char *list, int32_t **out, int *count, bn_error *err) {
    size_t cap = 1;
    for (const char *p = list; *p; p++) cap += *p == ',';
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %zu token ids", cap);
    int n = 0;
    const char *p = list;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            free(ids);
            return bn_error_set(err, BN_ERR_INVALID, "--tokens: invalid token id at character %ld",
                                (long)(p - list) + 1);
        }
        ids[n++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (n == 0) {
        free(ids);
        return bn_error_set(err, BN_ERR_INVALID, "--tokens: no token ids");
    }
    *out = ids;
    *count = n;
    return BN_OK;
}

/* ---- default model ---- */

static bool file_exists(const char *path) { return access(path, R_OK) == 0; }

bn_status bn_cli_find_in_tree(char **out, const char *relative, bn_error *err) {
    *out = NULL;
    if (file_exists(relative)) {
        if (!(*out = strdup(relative))) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        return BN_OK;
    }
    /* The binary lives in <source>/<build>/bin/bitnet: look two levels above its folder. */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        for (int up = 0; up < 3; up++) { /* drop "bitnet", "bin", "<build>" */
            char *slash = strrchr(exe, '/');
            if (slash) *slash = '\0';
        }
        size_t need = strlen(exe) + 1 + strlen(relative) + 1;
        char *candidate = malloc(need);
        if (!candidate) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        snprintf(candidate, need, "%s/%s", exe, relative);
        if (file_exists(candidate)) {
            *out = candidate;
            return BN_OK;
        }
        free(candidate);
    }
    return bn_error_set(err, BN_ERR_IO, "%s: not found (looked in the working directory and the "
                        "source tree of this binary)", relative);
}

bn_status bn_cli_resolve_model(char **out, const char *given, bn_error *err) {
    *out = NULL;
    if (!given) {
        const char *env = getenv("BITNET_MODEL");
        if (env && *env) given = env;
    }
    if (given) {
        if (!(*out = strdup(given))) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        return BN_OK;
    }
    if (bn_cli_find_in_tree(out, BN_CLI_DEFAULT_MODEL, err) == BN_OK) return BN_OK;
    return bn_error_set(err, BN_ERR_IO,
                        "no model given and the default model %s was not found; pass -m FILE (or set "
                        "BITNET_MODEL), write a synthetic one with `bitnet synth model.gguf --preset small` "
                        "(random weights: the text is noise), or download the official "
                        "microsoft/bitnet-b1.58-2B-4T-gguf file (ggml-model-i2_s.gguf)",
                        BN_CLI_DEFAULT_MODEL);
}

int bn_cli_online_cpus(void) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus < 1 ? 1 : cpus > 1024 ? 1024 : (int)cpus;
}

int bn_cli_thread_count(const bn_cli_common *c) {
    const int cpus = bn_cli_online_cpus();
    if (c->n_threads <= cpus) return c->n_threads;
    fprintf(stderr, "bitnet %s: note: -t %d is more than the %d online CPUs; using %d threads\n",
            c->command ? c->command : "", c->n_threads, cpus, cpus);
    return cpus;
}

void bn_cli_model_options(bn_model_options *options, bn_cli_common *c) {
    *options = bn_model_options_default();
    c->n_threads = bn_cli_thread_count(c);
    options->n_threads = c->n_threads;
    options->kv_type_k = c->kv_type_k;
    options->kv_type_v = c->kv_type_v;
    options->int8_lm_head = c->int8_lm_head;
    options->ubatch = c->n_batch;
    options->n_ctx = c->n_ctx;
    options->tune = c->tune;
    options->device = c->device;
    options->device_index = c->device_index;
    if (!c->device_given && c->gpu_layers > 0) {
#ifdef BITNET_HAVE_CUDA
        options->device = BN_DEVICE_CUDA;
#else
        fprintf(stderr, "bitnet %s: note: -ngl %d: this build has no CUDA backend; running on the CPU\n",
                c->command ? c->command : "", c->gpu_layers);
#endif
    }
}

bn_status bn_cli_load_with(bn_model **model, const char *path, bn_model_options *options, bn_cli_common *c,
                           bn_error *err) {
    bn_progress progress;
    bn_progress_init(&progress, c->command ? c->command : "", c->progress);
    options->progress = bn_progress_model_load;
    options->progress_user = &progress;
    bn_status st = bn_model_load(path, options, model, err);
    if (st == BN_ERR_DEVICE && options->device == BN_DEVICE_CUDA && !c->device_given) {
        /* -ngl asked for the GPU as llama.cpp does: without one, llama.cpp runs on the CPU */
        fprintf(stderr, "bitnet %s: note: -ngl %d: %s; running on the CPU\n", c->command ? c->command : "",
                c->gpu_layers, err->message);
        bn_error_clear(err);
        options->device = BN_DEVICE_CPU;
        st = bn_model_load(path, options, model, err);
    }
    bn_progress_end(&progress);
    options->progress = NULL;
    options->progress_user = NULL;
    if (st != BN_OK) return st;
    c->device = options->device;
    if (c->verbose) {
        char text[4096];
        bn_model_tuning_describe(*model, text, sizeof text);
        fputs(text, stderr);
    }
    const int n_ctx_train = bn_model_get_config(*model)->n_ctx_train;
    if (c->n_ctx > n_ctx_train)
        fprintf(stderr, "bitnet %s: warning: -c %d is more than the model's training context (%d); past %d "
                "tokens the model is outside what it was trained on\n", c->command ? c->command : "", c->n_ctx,
                n_ctx_train, n_ctx_train);
    return BN_OK;
}

bn_status bn_cli_load_model(bn_model **model, bn_tokenizer **tok, char **path, bn_cli_common *c,
                            bn_error *err) {
    *model = NULL;
    if (tok) *tok = NULL;
    *path = NULL;
    bn_status st = bn_cli_apply_isa(c, err);
    if (st == BN_OK) st = bn_cli_resolve_model(path, c->model_path, err);
    if (st != BN_OK) return st;
    bn_model_options options;
    bn_cli_model_options(&options, c);
    if ((st = bn_cli_load_with(model, *path, &options, c, err)) != BN_OK) goto fail;
    if (tok && (st = bn_tokenizer_from_gguf(tok, bn_model_get_gguf(*model), NULL, err)) != BN_OK) {
        bn_error_prefix(err, "%s: tokenizer: ", *path);
        goto fail;
    }
    return BN_OK;
fail:
    bn_model_free(*model);
    *model = NULL;
    free(*path);
    *path = NULL;
    return st;
}

bn_status bn_cli_chat_format(const bn_chat_format **out, const bn_model *model, const char *name,
                             const char *command, bn_error *err) {
    if (name) {
        *out = bn_chat_format_find(name, err);
        return *out ? BN_OK : err ? err->code : BN_ERR_INVALID;
    }
    bn_chat_choice choice;
    bn_status st = bn_chat_format_for_gguf(&choice, bn_model_get_gguf(model), err);
    if (st != BN_OK) return st;
    if (choice.note) fprintf(stderr, "bitnet %s: note: %s\n", command, choice.note);
    *out = choice.format;
    return BN_OK;
}

/* ---- files ---- */

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* llama.cpp's -e: \n \r \t \\ \' \" \xNN become what they stand for, in place; any other
 * backslash stays as it is. Returns the new length. */
size_t bn_cli_unescape(char *text, size_t len) {
    size_t out = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c != '\\' || i + 1 >= len) {
            text[out++] = c;
            continue;
        }
        char n = text[i + 1];
        int hi, lo;
        switch (n) {
        case 'n': text[out++] = '\n'; i++; break;
        case 'r': text[out++] = '\r'; i++; break;
        case 't': text[out++] = '\t'; i++; break;
        case '\\': text[out++] = '\\'; i++; break;
        case '\'': text[out++] = '\''; i++; break;
        case '"': text[out++] = '"'; i++; break;
        case 'x':
            if (i + 3 < len && (hi = hex_value(text[i + 2])) >= 0 && (lo = hex_value(text[i + 3])) >= 0) {
                text[out++] = (char)(hi * 16 + lo);
                i += 3;
            } else {
                text[out++] = c;
            }
            break;
        default: text[out++] = c; break;
        }
    }
    text[out] = '\0';
    return out;
}


bn_status bn_cli_read_file(char **out, size_t *len, const char *path, size_t max_bytes,
                           bn_error *err) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return bn_error_set(err, BN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    /* reads at most max_bytes + 1 bytes: one more than allowed shows the file is too large */
    const size_t limit = max_bytes < SIZE_MAX ? max_bytes + 1 : SIZE_MAX;
    char *data = NULL;
    size_t size = 0, cap = 0;
    bn_status st = BN_OK;
    for (;;) {
        if (size + 1 >= cap) { /* room for at least one more byte and the NUL */
            size_t grown_cap = cap ? cap * 2 : 65536;
            char *grown = cap <= SIZE_MAX / 2 ? realloc(data, grown_cap) : NULL;
            if (!grown) {
                st = bn_error_set(err, BN_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            data = grown;
            cap = grown_cap;
        }
        size_t want = cap - 1 - size;
        if (want > limit - size) want = limit - size;
        size_t got = fread(data + size, 1, want, f);
        size += got;
        if (size > max_bytes) {
            st = bn_error_set(err, BN_ERR_RANGE, "%s: larger than %zu bytes", path, max_bytes);
            break;
        }
        if (got == 0) break;
    }
    if (st == BN_OK && ferror(f)) st = bn_error_set(err, BN_ERR_IO, "%s: read failed", path);
    fclose(f);
    if (st != BN_OK) {
        free(data);
        return st;
    }
    data[size] = '\0';
    *out = data;
    *len = size;
    return BN_OK;
}

/* ---- the option loop of a command ---- */

int bn_cli_spec_groups(bn_cli_group *groups, const bn_cli_spec *spec, bn_cli_apply_fn apply, void *state,
                       bn_cli_common *common, bn_cli_sampling *sampling) {
    int n = 0;
    groups[n++] = (bn_cli_group){"options", spec->options, 0, apply, state};
    if (spec->more_options) groups[n++] = (bn_cli_group){spec->more_title, spec->more_options, 0, apply, state};
    if (spec->extra_options) groups[n++] = (bn_cli_group){spec->extra_title, spec->extra_options, 0, apply, state};
    if (spec->common) groups[n++] = bn_cli_common_group(common, spec->common);
    if (spec->sampling) groups[n++] = bn_cli_sampling_group(sampling);
    return n;
}

int bn_cli_parse_command(const bn_cli_spec *spec, bn_cli_apply_fn apply, void *state, bn_cli_common *common,
                         bn_cli_sampling *sampling, int argc, char **argv, bn_error *err) {
    bn_cli_group groups[BN_CLI_MAX_GROUPS];
    int n = bn_cli_spec_groups(groups, spec, apply, state, common, sampling);
    int rc = bn_cli_parse_options(spec, groups, n, argc, argv, err);
    /* BITNET_DEVICE: the device of every command that takes --device, unless --device is given */
    const char *env = getenv("BITNET_DEVICE");
    if (rc < 0 && common && (spec->common & BN_COMMON_DEVICE) && !common->device_given && env && *env) {
        if (bn_device_parse(&common->device, &common->device_index, env, NULL) != BN_OK) {
            bn_error_set(err, BN_ERR_INVALID, "invalid value '%s' for BITNET_DEVICE (expected cpu, cuda or cuda:N)", env);
            return bn_cli_usage_error(spec->name, spec->synopsis, err);
        }
        common->device_given = true;
    }
    return rc;
}

/* ---- what the interactive commands share ---- */

volatile sig_atomic_t bn_cli_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    bn_cli_interrupted = 1;
}

void bn_cli_catch_sigint(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

bool bn_cli_write_stdout(void *user, const char *text, size_t len) {
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}
