/*
 * cli_options.c: shared option groups of the commands and their option loop (see cli_options.h),
 * the default-model lookup, small number parsers, whole-file reading, and the Ctrl-C flag and
 * stdout callback of the streaming commands.
 */
#include "cli/cli_options.h"

#include "cli/commands.h"
#include "kernels/cpu_features.h"
#include "kernels/variants.h"
#include "model/tune.h"

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

/* The value of option argv[*i], advancing *i; NULL (err set) when it is the last argument. */
static const char *take_value(int argc, char **argv, int *i, bn_error *err) {
    if (*i + 1 >= argc) {
        bn_error_set(err, BN_ERR_INVALID, "option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static bn_cli_parse bad_value(const char *option, const char *value, const char *expected,
                              bn_error *err) {
    bn_error_set(err, BN_ERR_INVALID, "invalid value '%s' for %s (expected %s)", value, option,
                 expected);
    return BN_CLI_BAD;
}

static bool is(const char *a, const char *short_name, const char *long_name) {
    return (short_name && !strcmp(a, short_name)) || (long_name && !strcmp(a, long_name));
}

/* ---- common options ---- */

const char bn_cli_common_help[] =
    "  -m, --model FILE       GGUF model (default: " BN_CLI_DEFAULT_MODEL ")\n"
    "  -t, --threads N        threads (default: online CPUs, at most 8)\n"
    "  -c, --ctx-size N       context size in tokens (default: the model's training context)\n"
    "  --isa NAME             CPU kernel path of every kernel: scalar, avx2, avx512 (default:\n"
    "                         BITNET_ISA, else what the tuner chose per kernel class; see --tune;\n"
    "                         BITNET_VARIANT=gemv=avx512.nta,head=avx2 forces variants,\n"
    "                         BITNET_PREFETCH=t0|nta|none the one-token prefetch hint and\n"
    "                         BITNET_GFNI=0 turns off avx512's GFNI decoding)\n"
    BN_CLI_TUNE_HELP
    "  --verbose              print the kernel variants chosen at load (and their timings)\n";

bn_cli_parse bn_cli_parse_tune(int *mode, const char *option, const char *value, bn_error *err) {
    bn_tune_mode m;
    if (bn_tune_mode_parse(&m, value, NULL) != BN_OK) return bad_value(option, value, "off, quick or full", err);
    *mode = (int)m;
    return BN_CLI_CONSUMED;
}

void bn_cli_common_init(bn_cli_common *c) {
    memset(c, 0, sizeof *c);
    c->tune = BN_TUNE_FROM_ENV;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    c->n_threads = cpus < 1 ? 1 : cpus > 8 ? 8 : (int)cpus;
}

bn_cli_parse bn_cli_parse_common(bn_cli_common *c, int argc, char **argv, int *i, bn_error *err) {
    const char *a = argv[*i];
    const char *v;
    if (is(a, "-m", "--model")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        c->model_path = v;
    } else if (is(a, "-t", "--threads")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        if (!bn_cli_parse_int(v, 1, 1024, &c->n_threads))
            return bad_value(a, v, "an integer in 1..1024", err);
    } else if (is(a, "-c", "--ctx-size")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        if (!bn_cli_parse_int(v, 0, 1 << 24, &c->n_ctx))
            return bad_value(a, v, "an integer in 0..16777216", err);
    } else if (is(a, NULL, "--isa")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        if (strcmp(v, "scalar") && strcmp(v, "avx2") && strcmp(v, "avx512"))
            return bad_value(a, v, "scalar, avx2 or avx512", err);
        c->isa = v;
    } else if (is(a, NULL, "--tune")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        return bn_cli_parse_tune(&c->tune, a, v, err);
    } else if (is(a, NULL, "--verbose")) {
        c->verbose = true;
    } else {
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

const char bn_cli_sampling_help[] =
    "  -n, --n-predict N      tokens to generate at most (-1: until the context is full)\n"
    "  --temp T               temperature; 0 is greedy (default 0.8)\n"
    "  --top-k K              keep the K most likely tokens; 0 is off (default 40)\n"
    "  --top-p P              nucleus sampling in [0, 1]; 1 is off (default 0.95)\n"
    "  --min-p P              drop tokens below P times the best one's probability (default 0.05)\n"
    "  --typical P            locally typical sampling in (0, 1]; 1 is off (default 1)\n"
    "  --repeat-penalty X     repetition penalty > 0; 1 is off (default 1)\n"
    "  --repeat-last-n N      tokens the penalties look back over (default 64)\n"
    "  --presence-penalty X   OpenAI presence penalty in [-2, 2] (default 0)\n"
    "  --frequency-penalty X  OpenAI frequency penalty in [-2, 2] (default 0)\n"
    "  --logit-bias ID=BIAS   add BIAS to token ID's logit (-inf bans it); repeatable\n"
    "  --seed N               random seed; -1 picks one (default -1)\n"
    "  --stop STR             stop when the text contains STR (not printed); repeatable\n"
    "  --ignore-eos           keep generating past the end-of-generation token\n"
    "  --context-shift        when the context fills, drop the oldest half of the tokens after\n"
    "                         --keep and go on (default: stop, reason \"context\")\n"
    "  --keep N               tokens a context shift keeps at the start; -1: the first prompt\n"
    "                         (default -1)\n";

void bn_cli_sampling_init(bn_cli_sampling *s, int32_t default_max_tokens) {
    memset(s, 0, sizeof *s);
    s->params = bn_sampler_params_default();
    s->max_tokens = default_max_tokens;
    s->keep = -1;
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

static bn_cli_parse add_bias(bn_cli_sampling *s, const char *option, const char *v,
                             bn_error *err) {
    const char *eq = strchr(v, '=');
    if (!eq) return bad_value(option, v, "ID=BIAS", err);
    char id_text[32];
    size_t id_len = (size_t)(eq - v);
    if (id_len == 0 || id_len >= sizeof id_text) return bad_value(option, v, "ID=BIAS", err);
    memcpy(id_text, v, id_len);
    id_text[id_len] = '\0';
    int id;
    float bias;
    if (!bn_cli_parse_int(id_text, 0, INT32_MAX, &id)) return bad_value(option, v, "ID=BIAS", err);
    /* strtod accepts "inf" and "-inf"; NaN is refused by the range check */
    if (!bn_cli_parse_float(eq + 1, -INFINITY, INFINITY, &bias))
        return bad_value(option, v, "ID=BIAS with a numeric BIAS", err);
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

bn_cli_parse bn_cli_parse_sampling(bn_cli_sampling *s, int argc, char **argv, int *i,
                                   bn_error *err) {
    const char *a = argv[*i];
    bn_sampler_params *p = &s->params;
    const char *v;
    int iv;
    if (is(a, "-n", "--n-predict")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        if (!bn_cli_parse_int(v, -1, INT32_MAX, &iv))
            return bad_value(a, v, "an integer >= -1", err);
        s->max_tokens = iv;
    } else if (is(a, NULL, "--temp")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        if (!bn_cli_parse_float(v, 0.0, 1e6, &p->temperature))
            return bad_value(a, v, "a number >= 0", err);
    } else if (is(a, NULL, "--top-k")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        if (!bn_cli_parse_int(v, 0, INT32_MAX, &iv))
            return bad_value(a, v, "an integer >= 0", err);
        p->top_k = iv;
    } else if (is(a, NULL, "--top-p")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        if (!bn_cli_parse_float(v, 0.0, 1.0, &p->top_p))
            return bad_value(a, v, "a number in [0, 1]", err);
    } else if (is(a, NULL, "--min-p")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        if (!bn_cli_parse_float(v, 0.0, 1.0, &p->min_p))
            return bad_value(a, v, "a number in [0, 1]", err);
    } else if (is(a, NULL, "--typical")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        if (!bn_cli_parse_float(v, 1e-6, 1.0, &p->typical_p))
            return bad_value(a, v, "a number in (0, 1]", err);
    } else if (is(a, NULL, "--ignore-eos")) {
        s->ignore_eos = true;
    } else if (is(a, NULL, "--context-shift")) {
        s->context_shift = true;
    } else if (is(a, NULL, "--keep")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        if (!bn_cli_parse_int(v, -1, INT32_MAX, &iv)) return bad_value(a, v, "an integer >= -1", err);
        s->keep = iv;
    } else if (is(a, NULL, "--repeat-penalty")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        if (!bn_cli_parse_float(v, 1e-6, 1e6, &p->repetition_penalty))
            return bad_value(a, v, "a number > 0", err);
    } else if (is(a, NULL, "--repeat-last-n")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        if (!bn_cli_parse_int(v, 0, BN_SAMPLER_MAX_PENALTY_WINDOW, &iv))
            return bad_value(a, v, "an integer in 0..1048576", err);
        p->penalty_last_n = iv;
    } else if (is(a, NULL, "--presence-penalty")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        if (!bn_cli_parse_float(v, -2.0, 2.0, &p->presence_penalty))
            return bad_value(a, v, "a number in [-2, 2]", err);
    } else if (is(a, NULL, "--frequency-penalty")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        if (!bn_cli_parse_float(v, -2.0, 2.0, &p->frequency_penalty))
            return bad_value(a, v, "a number in [-2, 2]", err);
    } else if (is(a, NULL, "--logit-bias")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        return add_bias(s, a, v, err);
    } else if (is(a, NULL, "--seed")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        char *end;
        errno = 0;
        if (!strcmp(v, "-1")) {
            p->seed = BN_SAMPLER_SEED_RANDOM;
        } else {
            unsigned long long seed = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-' || seed == UINT64_MAX)
                return bad_value(a, v, "an integer >= 0, or -1", err);
            p->seed = (uint64_t)seed;
        }
    } else if (is(a, NULL, "--stop")) {
        if (!(v = take_value(argc, argv, i, err))) return BN_CLI_BAD;
        if (!*v) return bad_value(a, v, "a non-empty string", err);
        const char **grown = realloc(s->stops, (s->n_stops + 1) * sizeof *grown);
        if (!grown) {
            bn_error_set(err, BN_ERR_NOMEM, "out of memory for --stop");
            return BN_CLI_BAD;
        }
        s->stops = grown;
        s->stops[s->n_stops++] = v;
    } else {
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
    if (given) {
        if (!(*out = strdup(given))) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        return BN_OK;
    }
    if (bn_cli_find_in_tree(out, BN_CLI_DEFAULT_MODEL, err) == BN_OK) return BN_OK;
    return bn_error_set(err, BN_ERR_IO,
                        "no model given and the default model %s was not found; pass -m FILE, "
                        "write a synthetic one with `bitnet synth model.gguf --preset small` (random "
                        "weights: the text is noise), or download the official "
                        "microsoft/bitnet-b1.58-2B-4T-gguf file (ggml-model-i2_s.gguf)",
                        BN_CLI_DEFAULT_MODEL);
}

bn_status bn_cli_load_model(bn_model **model, bn_tokenizer **tok, char **path,
                            const bn_cli_common *c, bn_error *err) {
    *model = NULL;
    if (tok) *tok = NULL;
    *path = NULL;
    bn_status st = bn_cli_apply_isa(c, err);
    if (st == BN_OK) st = bn_cli_resolve_model(path, c->model_path, err);
    if (st != BN_OK) return st;
    bn_model_options options = bn_model_options_default();
    options.n_threads = c->n_threads;
    options.device = c->device;
    options.tune = c->tune;
    if ((st = bn_model_load(*path, &options, model, err)) != BN_OK) goto fail;
    if (c->verbose) {
        char text[4096];
        bn_model_tuning_describe(*model, text, sizeof text);
        fputs(text, stderr);
    }
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
                             bn_error *err) {
    if (name) {
        *out = bn_chat_format_find(name, err);
        return *out ? BN_OK : err ? err->code : BN_ERR_INVALID;
    }
    char *template_text = NULL;
    const bn_gguf_kv *kv = bn_gguf_find_kv(bn_model_get_gguf(model), "tokenizer.chat_template");
    if (kv && kv->value.type == BN_GGUF_STRING) {
        template_text = strndup(kv->value.as.str.data, kv->value.as.str.len);
        if (!template_text) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    }
    *out = bn_chat_format_detect(template_text, bn_model_get_config(model)->arch_name, NULL);
    free(template_text);
    return BN_OK;
}

/* ---- files ---- */

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

/* ---- what the interactive commands share ---- */

int bn_cli_usage_error(const char *command, const char *synopsis, bn_error *err) {
    fprintf(stderr, "bitnet %s: %s\n", command, err->message);
    fprintf(stderr, "usage: bitnet %s %s\n`bitnet %s --help` describes the options.\n", command,
            synopsis, command);
    bn_error_clear(err);
    return BN_EXIT_USAGE;
}

int bn_cli_parse_args(const bn_cli_command *cmd, bn_cli_common *common, bn_cli_sampling *sampling,
                      int argc, char **argv, bn_error *err) {
    int rc = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bn_cli_parse r = BN_CLI_NOT_MINE;
        if (common) r = bn_cli_parse_common(common, argc, argv, &i, err);
        if (r == BN_CLI_NOT_MINE && sampling) r = bn_cli_parse_sampling(sampling, argc, argv, &i, err);
        if (r == BN_CLI_NOT_MINE && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            cmd->usage(stdout);
            rc = BN_EXIT_OK;
            break;
        }
        if (r == BN_CLI_NOT_MINE && cmd->own) r = cmd->own(cmd->state, argc, argv, &i, err);
        if (r == BN_CLI_CONSUMED) continue;
        if (r == BN_CLI_NOT_MINE)
            bn_error_set(err, BN_ERR_INVALID, "unknown option or missing value '%s'", a);
        rc = bn_cli_usage_error(cmd->name, cmd->synopsis, err);
        break;
    }
    if (rc >= 0 && sampling) bn_cli_sampling_free(sampling);
    return rc;
}

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
