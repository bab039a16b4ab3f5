/*
 * cmd_bench.c: `bitnet bench`, llama-bench-style throughput of one model.
 *
 * pp<N>: one sequence, N random tokens decoded as one batch (the model chunks it into ubatches
 * and runs the GEMM path), logits for the last one only; tg<N>: N random tokens decoded one at a
 * time from an empty context, logits every step (sampling is not timed, as in llama-bench). Each
 * test runs once untimed (warm-up: pages the weights in and sizes the scratch buffers), then r
 * timed repetitions; the table shows mean ± sample standard deviation of tokens/s.
 *
 * Below the table it prints the decode arithmetic the acceptance bar needs: bytes read per
 * generated token (weights from the model, plus the KV cache at the tg test's mean context),
 * tokens/s x bytes/token, and a streaming read bandwidth measured in the same run with the same
 * thread count (tools/bandwidth.h), and their ratio. --json writes a receipt (tools/receipt.h)
 * whose kernel list comes from the kernel registry, counted over the timed repetitions only.
 */
#include "cli/cli_options.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "core/rss.h"
#include "core/sha256.h"
#include "kernels/cpu_features.h"
#include "kernels/ops.h"
#include "kernels/registry.h"
#include "kernels/threadpool.h"
#include "model/model.h"
#include "model/tune.h"
#include "kernels/variants.h"
#include "quant/quant_format.h"
#include "tools/bandwidth.h"
#include "tools/receipt.h"

#include <ctype.h>
#include <jansson.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BN_BENCH_MAX_REPETITIONS 1000
#define BN_BENCH_MAX_VALUES 256 /* values of one list option (ranges included) */

/* A list option (-p 128,256 or 64-512*2): its values in the order given. */
typedef struct int_list {
    int values[BN_BENCH_MAX_VALUES];
    int n;
} int_list;

typedef enum bench_output { OUT_MD, OUT_CSV, OUT_JSON, OUT_JSONL } bench_output;

typedef struct bench_options {
    bn_cli_common common;   /* -m, --device/-ngl, --isa, --tune, --verbose, --no-progress */
    int_list prompts, gens, threads_list, batches;
    int repetitions;
    const char *json_path;
    bench_output output;
    uint64_t seed;
    bool bandwidth;
    size_t bandwidth_bytes;
    bool int8_lm_head;
    bool compare_variants;
    bool batch_given;       /* -b given: the table shows n_batch */
    int depth;              /* -d: the tg tests decode at positions depth.. (llama-bench's n_depth) */
    double kv_position_bytes; /* K and V of every layer, one position, in the cache types */
    double tg_tps;          /* the single configuration's tg mean t/s */
    char *model_path;       /* resolved (owned) */
    char variants_line[400]; /* the kernel variants of the CPU run, for the md footer */
    /* the configuration running now */
    int threads, n_batch, n_prompt, n_gen;
} bench_options;

/* Mean and sample standard deviation of one test's repetitions. */
typedef struct bench_stats {
    bool present;
    int n_tokens;
    int repetitions;
    double mean_tps;
    double stdev_tps;
    double mean_seconds;
    double stdev_seconds;
    const double *samples; /* seconds of each repetition (the run's buffer) */
} bench_stats;

enum { BENCH_PROMPT = 1, BENCH_GEN, BENCH_THREADS, BENCH_BATCH, BENCH_REPS, BENCH_OUTPUT, BENCH_JSON, BENCH_SEED,
       BENCH_INT8_HEAD, BENCH_COMPARE, BENCH_KV_F32, BENCH_DEPTH, BENCH_NO_BANDWIDTH, BENCH_BANDWIDTH_MB,
       BENCH_IGNORED };

static const bn_cli_option bench_table[] = {
    {BENCH_PROMPT, "-p|--n-prompt", "LIST", "prompt-processing tests pp<N>: N tokens in one batch (default\n"
                                           "512; 0 skips)", 0, 0, NULL},
    {BENCH_GEN, "-n|--n-gen", "LIST", "generation tests tg<N>: N tokens one at a time (default 128;\n0 skips)", 0, 0, NULL},
    {BENCH_THREADS, "-t|--threads", "LIST", "thread counts (default: online CPUs)", 0, 0, NULL},
    {BENCH_BATCH, "-b|--batch-size|-ub|--ubatch-size", "LIST", "prompt tokens per forward pass of the pp tests (default 512)", 0, 0, NULL},
    {BENCH_REPS, "-r|--repetitions", "N", "timed repetitions per test after one warm-up (default 5)", 0, 0, NULL},
    {BENCH_OUTPUT, "-o|--output", "FMT", "md (default: a table and the bandwidth arithmetic), csv, json\n"
                                        "(one array) or jsonl (one object per line); a row is printed as\n"
                                        "soon as its test finishes", 0, 0, "md|csv|json|jsonl"},
    {BENCH_JSON, "--json", "FILE", "write the receipt (JSON, schema 1.0.0) to FILE (one value per\nlist)", 0, 0, NULL},
    {BENCH_SEED, "--seed|-s", "N", "seed of the random tokens (default 42)", 0, 0, NULL},
    {BENCH_INT8_HEAD, "--int8-lm-head", NULL, "LM head in int8 with per-row scales instead of F16", 0, 0, NULL},
    {BENCH_COMPARE, "--compare-variants", NULL, "instead of the tests above: run pp and tg with the variants\n"
                                                "the load chose (default) and with each whole-path variant\n"
                                                "forced, interleaved, -r rounds; prints median t/s, each as %\n"
                                                "of the best, and the default's tg over the stream beside it", 0, 0, NULL},
    {BENCH_KV_F32, "--kv-f32", NULL, "KV cache in F32 instead of F16 (-ctk f32 -ctv f32 too)", 0, 0, NULL},
    {BENCH_DEPTH, "-d|--n-depth", "N", "the tg tests decode after N prompt tokens (written once per tg\n"
                                      "test, untimed; default 0). With -ctk/-ctv other than f16 and\n"
                                      "one value per list, the tg test runs again with an f16 cache\n"
                                      "and both KV sizes and speeds are printed (-p N -n M -d N: tg at\n"
                                      "a context of N)", 0, 0, NULL},
    {BENCH_NO_BANDWIDTH, "--no-bandwidth", NULL, "skip the streaming read bandwidth measurement", 0, 0, NULL},
    {BENCH_BANDWIDTH_MB, "--bandwidth-mb", "N", "buffer of the bandwidth measurement in MiB (default 512)", 0, 0, NULL},
    /* llama-bench options with no meaning here: accepted with a note */
    {BENCH_IGNORED, "-mmp|--mmap|-nkvo|--no-kv-offload|--delay|-pg|--n-prompt-gen|-sm|--split-mode|-mg|--main-gpu",
     "X", NULL, BN_OPT_HIDDEN, 0, NULL},
    {BENCH_IGNORED, "--progress", NULL, NULL, BN_OPT_HIDDEN, 0, NULL},
    {0},
};

const bn_cli_spec bn_bench_spec = {
    .name = "bench",
    .synopsis = "[-m MODEL] [-p LIST] [-n LIST] [-t LIST] [-b LIST] [-o md|csv|json|jsonl] [options]",
    .about = "llama-bench's tests: each combination of -t and -b loads the model, then runs every\n"
             "pp and tg test. A LIST is llama-bench's: values separated by commas, each a number or\n"
             "a range FIRST-LAST, FIRST-LAST+STEP or FIRST-LAST*FACTOR (-p 128-512*2 is 128,256,512).\n",
    .notes = "With one value per list, below the table: decode bytes per token, tg over the streaming\n"
             "read bandwidth measured in the same run, and with --json the receipt.\n",
    .options = bench_table,
    .common = BN_COMMON_MODEL | BN_COMMON_DEVICE | BN_COMMON_KERNELS | BN_COMMON_PROGRESS,
};

/* One list item: N, FIRST-LAST, FIRST-LAST+STEP or FIRST-LAST*FACTOR. */
static bool add_range(int_list *l, const char *item, size_t len, long lo, long hi) {
    char text[64];
    if (len == 0 || len >= sizeof text) return false;
    memcpy(text, item, len);
    text[len] = '\0';
    char *end;
    errno = 0;
    long first = strtol(text, &end, 10), last = first, step = 1;
    char op = '+';
    if (*end == '-') {
        char *p = end + 1;
        last = strtol(p, &end, 10);
        if (end == p) return false;
        if (*end == '+' || *end == '*') {
            op = *end;
            p = end + 1;
            step = strtol(p, &end, 10);
            if (end == p) return false;
        }
    }
    if (errno || *end || first < lo || last > hi || last < first) return false;
    if ((op == '+' && step < 1) || (op == '*' && step < 2 && first != last)) return false;
    for (long v = first; v <= last;) {
        if (l->n == BN_BENCH_MAX_VALUES) return false;
        l->values[l->n++] = (int)v;
        if (op == '*' && v == 0) break;
        if (op == '+' ? v > LONG_MAX - step : v > LONG_MAX / step) break;
        v = op == '+' ? v + step : v * step;
    }
    return true;
}

static bn_cli_parse parse_list(int_list *l, const char *option, const char *v, long lo, long hi, bn_error *err) {
    l->n = 0;
    const char *p = v;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (!add_range(l, p, len, lo, hi)) {
            char expected[160];
            snprintf(expected, sizeof expected, "integers in %ld..%ld or ranges such as 1-4, 16-64+16, 128-512*2; "
                     "at most %d values", lo, hi, BN_BENCH_MAX_VALUES);
            return bn_cli_bad_value(option, v, expected, err);
        }
        if (!p[len]) break;
        p += len + 1;
    }
    return BN_CLI_CONSUMED;
}

static bn_cli_parse apply_bench(void *state, const bn_cli_option *opt, const char *a, const char *v, bn_error *err) {
    bench_options *o = state;
    int x;
    switch (opt ? opt->id : 0) {
    case BENCH_PROMPT: return parse_list(&o->prompts, a, v, 0, INT_MAX / 2, err);
    case BENCH_GEN: return parse_list(&o->gens, a, v, 0, INT_MAX / 2, err);
    case BENCH_THREADS: return parse_list(&o->threads_list, a, v, 1, 1024, err);
    case BENCH_BATCH:
        o->batch_given = true;
        return parse_list(&o->batches, a, v, 1, 1 << 20, err);
    case BENCH_REPS:
        if (!bn_cli_parse_int(v, 1, BN_BENCH_MAX_REPETITIONS, &o->repetitions))
            return bn_cli_bad_value(a, v, "an integer in 1..1000", err);
        break;
    case BENCH_OUTPUT:
        if (!strcmp(v, "md")) o->output = OUT_MD;
        else if (!strcmp(v, "csv")) o->output = OUT_CSV;
        else if (!strcmp(v, "json")) o->output = OUT_JSON;
        else if (!strcmp(v, "jsonl")) o->output = OUT_JSONL;
        else return bn_cli_bad_value(a, v, "md, csv, json or jsonl", err);
        break;
    case BENCH_JSON: o->json_path = v; break;
    case BENCH_SEED:
        if (!bn_cli_parse_int(v, 0, INT_MAX, &x)) return bn_cli_bad_value(a, v, "an integer >= 0", err);
        o->seed = (uint64_t)x;
        break;
    case BENCH_INT8_HEAD: o->int8_lm_head = true; break;
    case BENCH_COMPARE: o->compare_variants = true; break;
    case BENCH_KV_F32: o->common.kv_type_k = o->common.kv_type_v = BN_TYPE_F32; break;
    case BENCH_DEPTH:
        if (!bn_cli_parse_int(v, 0, 1 << 20, &o->depth)) return bn_cli_bad_value(a, v, "an integer in 0..1048576", err);
        break;
    case BENCH_NO_BANDWIDTH: o->bandwidth = false; break;
    case BENCH_BANDWIDTH_MB:
        if (!bn_cli_parse_int(v, 1, 1 << 20, &x)) return bn_cli_bad_value(a, v, "an integer in 1..1048576", err);
        o->bandwidth_bytes = (size_t)x << 20;
        break;
    case BENCH_IGNORED:
        fprintf(stderr, "bitnet bench: note: %s is accepted for llama-bench command lines and changes nothing here\n", a);
        break;
    default: return BN_CLI_NOT_MINE;
    }
    return BN_CLI_CONSUMED;
}

/* Returns -1 to go on, else the exit code. */
static int parse_options(bench_options *o, int argc, char **argv, bn_error *err) {
    memset(o, 0, sizeof *o);
    bn_cli_common_init(&o->common, "bench");
    o->prompts = (int_list){{512}, 1};
    o->gens = (int_list){{128}, 1};
    o->threads_list = (int_list){{bn_cli_online_cpus()}, 1};
    o->batches = (int_list){{0}, 1};
    o->repetitions = 5;
    o->seed = 42;
    o->bandwidth = true;
    o->bandwidth_bytes = BN_BANDWIDTH_DEFAULT_BYTES;
    int parsed = bn_cli_parse_command(&bn_bench_spec, apply_bench, o, &o->common, NULL, argc, argv, err);
    if (parsed >= 0) return parsed;
    bool any = false;
    for (int i = 0; i < o->prompts.n; i++) any = any || o->prompts.values[i] > 0;
    for (int i = 0; i < o->gens.n; i++) any = any || o->gens.values[i] > 0;
    if (!any) bn_error_set(err, BN_ERR_INVALID, "-p 0 and -n 0 leave nothing to run");
    const bool single = o->prompts.n == 1 && o->gens.n == 1 && o->threads_list.n == 1 && o->batches.n == 1;
    if (any && o->compare_variants && (o->json_path || o->common.device == BN_DEVICE_CUDA))
        bn_error_set(err, BN_ERR_INVALID, "--compare-variants compares CPU kernel variants; it takes no --json and no --device cuda");
    else if (any && !single && (o->json_path || o->compare_variants))
        bn_error_set(err, BN_ERR_INVALID, "%s needs one value for each of -p, -n, -t and -b",
                     o->json_path ? "--json (one receipt)" : "--compare-variants");
    if (err->code != BN_OK) return bn_cli_usage_error("bench", bn_bench_spec.synopsis, err);
    return -1;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* splitmix64: the random token ids, reproducible from --seed. */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int32_t random_token(uint64_t *state, int n_vocab) {
    return (int32_t)(next_random(state) % (uint64_t)n_vocab);
}

/* The resources of one bench run, released together. */
typedef struct bench_run {
    bn_model *model;
    bn_sequence *seq;
    bn_batch_entry *entries;
    float *logits;
    double *seconds;
    double *probe_bps, *rep_ratio; /* bandwidth probes beside the tg repetitions */
} bench_run;

/* One pp pass: the whole prompt as one batch into a cleared sequence. */
static bn_status run_prompt(double *seconds, bench_run *run, int n_prompt, int n_vocab,
                            uint64_t *rng, bn_error *err) {
    bn_sequence_clear(run->seq);
    for (int i = 0; i < n_prompt; i++) {
        run->entries[i] = (bn_batch_entry){run->seq, i, random_token(rng, n_vocab), i == n_prompt - 1};
    }
    double t0 = now_seconds();
    bn_status status = bn_model_decode(run->model, run->entries, n_prompt, run->logits, err);
    *seconds = now_seconds() - t0;
    return status;
}

/* One tg pass: n_gen single-token steps from an empty context. */
/* n_gen tokens one at a time from position depth (the sequence holds at least depth positions). */
static bn_status run_generation(double *seconds, bench_run *run, int depth, int n_gen, int n_vocab,
                                uint64_t *rng, bn_error *err) {
    bn_sequence_truncate(run->seq, depth);
    if (depth == 0) bn_sequence_clear(run->seq);
    double t0 = now_seconds();
    for (int i = 0; i < n_gen; i++) {
        bn_batch_entry entry = {run->seq, depth + i, random_token(rng, n_vocab), true};
        bn_status status = bn_model_decode(run->model, &entry, 1, run->logits, err);
        if (status != BN_OK) return status;
    }
    *seconds = now_seconds() - t0;
    return BN_OK;
}

static void compute_stats(bench_stats *s, const double *seconds, int reps, int n_tokens) {
    s->present = true;
    s->n_tokens = n_tokens;
    s->repetitions = reps;
    double sum = 0, sum_seconds = 0;
    for (int i = 0; i < reps; i++) {
        sum += n_tokens / seconds[i];
        sum_seconds += seconds[i];
    }
    s->mean_tps = sum / reps;
    s->mean_seconds = sum_seconds / reps;
    double squares = 0;
    for (int i = 0; i < reps; i++) {
        double d = n_tokens / seconds[i] - s->mean_tps;
        squares += d * d;
    }
    s->stdev_tps = reps > 1 ? sqrt(squares / (reps - 1)) : 0.0;
    double squares_seconds = 0;
    for (int i = 0; i < reps; i++) squares_seconds += (seconds[i] - s->mean_seconds) * (seconds[i] - s->mean_seconds);
    s->stdev_seconds = reps > 1 ? sqrt(squares_seconds / (reps - 1)) : 0.0;
    s->samples = seconds;
}

/* "1.10 GiB" / "12.50 MiB". */
static void format_size(char *buf, size_t size, uint64_t bytes) {
    if (bytes >= ((uint64_t)1 << 30))
        snprintf(buf, size, "%.2f GiB", (double)bytes / (double)((uint64_t)1 << 30));
    else
        snprintf(buf, size, "%.2f MiB", (double)bytes / (double)(1u << 20));
}

/* "2.41 B" / "12.35 M" / "900.00 K". */
static void format_params(char *buf, size_t size, uint64_t n) {
    if (n >= 1000000000ull) snprintf(buf, size, "%.2f B", (double)n / 1e9);
    else if (n >= 1000000ull) snprintf(buf, size, "%.2f M", (double)n / 1e6);
    else snprintf(buf, size, "%.2f K", (double)n / 1e3);
}

/* Tensor types of the file, counted ({"i2_s": 210, ...}); returns how many distinct types. */
static size_t count_tensor_types(bn_receipt_tensor_type *out, size_t max, const bn_gguf *gguf) {
    size_t n = 0;
    for (uint64_t i = 0; i < gguf->n_tensors; i++) {
        const bn_quant_format *format = bn_quant_format_get(gguf->tensors[i].type);
        const char *name = format ? format->name : "unknown";
        size_t j = 0;
        while (j < n && strcmp(out[j].name, name) != 0) j++;
        if (j == n) {
            if (n == max) continue;
            out[n].name = name;
            out[n].count = 0;
            n++;
        }
        out[j].count++;
    }
    return n;
}

static uint64_t tensor_bytes(const bn_gguf *gguf) {
    uint64_t total = 0;
    for (uint64_t i = 0; i < gguf->n_tensors; i++) total += gguf->tensors[i].size;
    return total;
}

/* Full read passes per bandwidth probe beside the tg repetitions (the fastest one counts). */
#define BENCH_PROBE_PASSES 3

/* The decode arithmetic of one run. */
typedef struct bench_bandwidth {
    uint64_t weight_bytes;   /* per token, from the model (ternary projections + LM head) */
    uint64_t kv_bytes;       /* per token, K and V of every layer at the mean tg context */
    double mean_context;
    uint64_t bytes_per_token;
    double effective_gbps;   /* tg tokens/s x bytes_per_token */
    bool measured;
    bn_bandwidth_result stream;
    /* probes right before and after each tg repetition (reps + 1 figures, bytes/s) */
    int n_probes;
    double *probe_bps;
    double beside_mean_gbps, beside_min_gbps, beside_max_gbps;
    double *rep_ratio; /* per repetition: effective over the mean of its two probes */
    double ratio_beside;
} bench_bandwidth;

/* Bytes of K and V of every layer for one position in the cache types. */
static double kv_position_bytes(const bn_model_config *config, uint32_t k_type, uint32_t v_type) {
    return (double)config->n_layers * (double)(bn_kv_type_bytes(k_type, (size_t)config->kv_dim) +
                                               bn_kv_type_bytes(v_type, (size_t)config->kv_dim));
}

/* "f16", or "q8_0/f16" when K and V differ. */
static const char *kv_label(const bench_options *o) {
    static char label[32];
    const char *k = bn_quant_format_get(o->common.kv_type_k)->name, *v = bn_quant_format_get(o->common.kv_type_v)->name;
    if (o->common.kv_type_k == o->common.kv_type_v) snprintf(label, sizeof label, "%s", k);
    else snprintf(label, sizeof label, "%s/%s", k, v);
    return label;
}

static void print_bandwidth(FILE *out, const bench_bandwidth *b, const bench_stats *tg, const bench_options *o) {
    fprintf(out, "\n");
    fprintf(out, "decode bytes/token : %.2f MB = weights %.2f MB (ternary projections + LM head) + KV cache %.2f MB "
           "(%s, mean context %.1f)\n",
           b->bytes_per_token / 1e6, b->weight_bytes / 1e6, b->kv_bytes / 1e6, kv_label(o), b->mean_context);
    fprintf(out, "tg%d effective     : %.2f GB/s = %.2f t/s x %.2f MB/token\n", tg->n_tokens, b->effective_gbps,
           tg->mean_tps, b->bytes_per_token / 1e6);
    if (!b->measured) return;
    fprintf(out, "stream read        : %.2f GB/s (%d thread%s, %zu MiB buffer, %s loop, best of %d passes; median %.2f GB/s)\n",
           b->stream.best_bytes_per_second / 1e9, b->stream.threads, b->stream.threads > 1 ? "s" : "",
           b->stream.buffer_bytes >> 20,
           b->stream.path, b->stream.passes, b->stream.median_bytes_per_second / 1e9);
    fprintf(out, "tg%d / stream read : %.1f%% (%.2f of %.2f GB/s)\n", tg->n_tokens,
           100.0 * b->effective_gbps * 1e9 / b->stream.best_bytes_per_second, b->effective_gbps,
           b->stream.best_bytes_per_second / 1e9);
    if (b->n_probes < 2) return;
    fprintf(out, "stream beside tg   : %.2f GB/s mean of %d probes right before and after each repetition "
           "(min %.2f, max %.2f; best of %d passes each)\n",
           b->beside_mean_gbps, b->n_probes, b->beside_min_gbps, b->beside_max_gbps, BENCH_PROBE_PASSES);
    fprintf(out, "tg%d / stream beside: %.1f%% (mean over repetitions of tokens/s x bytes/token over the mean of "
           "the probes before and after it:",
           tg->n_tokens, 100.0 * b->ratio_beside);
    for (int r = 0; r + 1 < b->n_probes; r++) fprintf(out, " %.1f%%", 100.0 * b->rep_ratio[r]);
    fprintf(out, ")\n");
}

static void release_run(bench_run *run) {
    bn_sequence_free(run->seq);
    bn_model_free(run->model);
    free(run->entries);
    free(run->logits);
    free(run->seconds);
    free(run->probe_bps);
    free(run->rep_ratio);
}

/* Builds, self-checks and writes the receipt. */
static bn_status write_receipt(const bench_options *o, bench_run *run, const bench_stats *pp,
                               const bench_stats *tg, const bench_bandwidth *bw,
                               const bn_kernel_stats *kernel_stats, size_t n_kernels,
                               uint64_t peak_rss, bn_error *err) {
    const bn_model_config *config = bn_model_get_config(run->model);
    const bn_gguf *gguf = bn_model_get_gguf(run->model);
    char sha[BN_SHA256_HEX_SIZE];
    if (bn_sha256_file_hex(sha, o->model_path, err) != BN_OK) return err->code;

    bn_receipt_tensor_type types[16];
    size_t n_types = count_tensor_types(types, sizeof types / sizeof types[0], gguf);
    bn_receipt_kernel *kernels = calloc(n_kernels ? n_kernels : 1, sizeof *kernels);
    if (!kernels) return bn_error_set(err, BN_ERR_NOMEM, "receipt: out of memory");
    for (size_t i = 0; i < n_kernels; i++) {
        kernels[i].id = kernel_stats[i].id;
        kernels[i].calls = kernel_stats[i].calls;
        kernels[i].time_ms = (double)kernel_stats[i].nanoseconds / 1e6;
    }
    char features[512];
    bn_cpu_features_describe(features, sizeof features);

    bn_receipt r;
    memset(&r, 0, sizeof r);
    r.engine_version = bn_version();
    r.git_commit = bn_git_commit();
    r.model_path = o->model_path;
    r.model_sha256 = sha;
    r.architecture = config->arch_name;
    r.parameter_count = config->n_params;
    r.model_file_bytes = gguf->size;
    r.tensor_types = types;
    r.n_tensor_types = n_types;
    r.backend = bn_model_backend_name(run->model);
    r.gpu_name = bn_model_gpu_name(run->model);
    r.compute_path = "real";
    r.cpu_features = features[0] ? features : "none";
    r.isa = bn_isa_name(bn_isa_active());
    char variants[256], tuning[64];
    bn_model_tuning_summary(run->model, variants, sizeof variants);
    const bn_model_tuning *t = bn_model_get_tuning(run->model);
    snprintf(tuning, sizeof tuning, "%s (%s)", bn_tune_mode_name(t->mode), t->source);
    if (!strcmp(bn_model_backend_name(run->model), "cpu")) r.kernel_variants = variants;
    r.tuning = tuning;
    r.threads = o->threads;
    r.kernels = kernels;
    r.n_kernels = n_kernels;
    r.pp = (bn_receipt_result){pp->present, pp->n_tokens, pp->repetitions, pp->mean_tps, pp->stdev_tps};
    r.tg = (bn_receipt_result){tg->present, tg->n_tokens, tg->repetitions, tg->mean_tps, tg->stdev_tps};
    r.peak_rss_bytes = peak_rss;
    r.seed = o->seed;
    if (tg->present && bw->measured) {
        r.bandwidth.present = true;
        r.bandwidth.bytes_per_token = bw->bytes_per_token;
        r.bandwidth.tg_effective_gb_per_s = bw->effective_gbps;
        r.bandwidth.stream_read_gb_per_s = bw->stream.best_bytes_per_second / 1e9;
        r.bandwidth.stream_buffer_bytes = bw->stream.buffer_bytes;
        if (bw->n_probes >= 2) {
            r.bandwidth.beside_present = true;
            r.bandwidth.stream_beside_tg_gb_per_s = bw->beside_mean_gbps;
            r.bandwidth.ratio_beside_tg = bw->ratio_beside;
        }
    }

    char *text = NULL;
    bn_status status = bn_receipt_to_json(&text, &r, err);
    free(kernels);
    if (status != BN_OK) return status;
    /* A receipt this command writes must pass its own verifier; anything else is a bug here. */
    if (bn_receipt_verify_json(text, strlen(text), false, err) != BN_OK) {
        free(text);
        return bn_error_prefix(err, "the receipt fails verification: ");
    }
    FILE *f = fopen(o->json_path, "w");
    if (!f) {
        free(text);
        return bn_error_set(err, BN_ERR_IO, "%s: cannot create: %s", o->json_path, strerror(errno));
    }
    bool ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    ok = (fclose(f) == 0) && ok;
    free(text);
    if (!ok) return bn_error_set(err, BN_ERR_IO, "%s: write failed", o->json_path);
    return BN_OK;
}

/* Fails now, not after minutes of benchmarking, when the receipt cannot be created; leaves no
 * file behind that was not there before. */
/* ---- --compare-variants ---- */

#define COMPARE_MAX_PROFILES (BN_KERNEL_VARIANTS_MAX + 1)

/* A binding of every class: the load's choice, or one whole-path variant forced everywhere. */
typedef struct variant_profile {
    char name[BN_KERNEL_VARIANT_NAME_MAX + 16];
    bn_kernel_variant v[BN_KCLASS_COUNT];
} variant_profile;

static double median(double *values, int n) {
    for (int i = 1; i < n; i++) /* insertion sort: a handful of rounds */
        for (int j = i; j > 0 && values[j] < values[j - 1]; j--) {
            double t = values[j];
            values[j] = values[j - 1];
            values[j - 1] = t;
        }
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

static int compare_variants(const bench_options *o, bench_run *run, const bn_model_config *config,
                            uint64_t *rng, bn_error *err) {
    variant_profile profiles[COMPARE_MAX_PROFILES];
    int n = 0;
    snprintf(profiles[0].name, sizeof profiles[0].name, "default");
    for (int c = 0; c < BN_KCLASS_COUNT; c++) profiles[0].v[c] = bn_kernel_variant_of((bn_kernel_class)c);
    n = 1;
    bn_kernel_variant gemv[BN_KERNEL_VARIANTS_MAX];
    const int n_gemv = bn_tune_candidates(BN_KCLASS_GEMV, gemv);
    for (int i = 0; i < n_gemv && n < COMPARE_MAX_PROFILES; i++, n++) {
        variant_profile *p = &profiles[n];
        bn_kernel_variant_name(gemv[i], BN_KCLASS_GEMV, p->name, sizeof p->name);
        for (int c = 0; c < BN_KCLASS_COUNT; c++) p->v[c] = (bn_kernel_variant){.isa = gemv[i].isa, .prefetch = gemv[i].prefetch, .vnni = gemv[i].vnni};
        p->v[BN_KCLASS_GEMV] = gemv[i];
    }
    /* A forced profile that binds every class as an earlier one does (the default, when the load
     * chose that whole-path variant) is the same configuration: it is run once and reported for
     * both, so the comparison is not between a configuration and its own noise. */
    int alias[COMPARE_MAX_PROFILES];
    for (int i = 0; i < n; i++) {
        alias[i] = i;
        for (int j = 0; j < i && alias[i] == i; j++) {
            bool same = true;
            for (int c = 0; c < BN_KCLASS_COUNT; c++)
                same = same && bn_kernel_variant_equal(bn_kernel_variant_forced((bn_kernel_class)c, profiles[i].v[c]),
                                                       bn_kernel_variant_forced((bn_kernel_class)c, profiles[j].v[c]));
            if (same) alias[i] = j;
        }
    }
    const int rounds = o->repetitions;
    double *pp = calloc((size_t)(n * rounds), sizeof *pp), *tg = calloc((size_t)(n * rounds), sizeof *tg);
    double *beside = calloc((size_t)(n * rounds), sizeof *beside); /* probes around each tg run */
    bn_threadpool *probe_pool = NULL;
    bn_bandwidth_probe *probe = NULL;
    int rc = BN_EXIT_ERROR;
    if (!pp || !tg || !beside) {
        bn_error_set(err, BN_ERR_NOMEM, "bench: out of memory");
        goto done;
    }
    if (o->bandwidth && o->n_gen > 0 &&
        ((o->threads > 1 && bn_threadpool_create(o->threads, &probe_pool, err) != BN_OK) ||
         bn_bandwidth_probe_create(&probe, probe_pool, o->bandwidth_bytes, err) != BN_OK))
        goto done;
    fprintf(stderr, "bench: comparing %d variants, %d interleaved rounds of%s%s\n", n, rounds,
            o->n_prompt ? " pp" : "", o->n_gen ? " tg" : "");
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < n; k++) {
            const int i = (k + r) % n; /* who goes first rotates */
            if (alias[i] != i) continue;
            for (int c = 0; c < BN_KCLASS_COUNT; c++) bn_kernel_bind((bn_kernel_class)c, profiles[i].v[c]);
            double seconds;
            if (o->n_prompt > 0) {
                if (run_prompt(&seconds, run, o->n_prompt, config->n_vocab, rng, err) != BN_OK) goto done;
                pp[i * rounds + r] = o->n_prompt / seconds;
            }
            if (o->n_gen > 0) {
                double before = 0, after = 0;
                /* every profile's tg is probed alike (a probe evicts the caches: a model that
                 * fits them would otherwise favour the unprobed profiles) */
                if (probe && bn_bandwidth_probe_run(probe, probe_pool, BENCH_PROBE_PASSES, &before, err) != BN_OK)
                    goto done;
                if (run_generation(&seconds, run, 0, o->n_gen, config->n_vocab, rng, err) != BN_OK) goto done;
                tg[i * rounds + r] = o->n_gen / seconds;
                if (probe) {
                    if (bn_bandwidth_probe_run(probe, probe_pool, BENCH_PROBE_PASSES, &after, err) != BN_OK) goto done;
                    beside[i * rounds + r] = 0.5 * (before + after);
                }
            }
            fprintf(stderr, "bench: round %d/%d %-18s", r + 1, rounds, profiles[i].name);
            if (o->n_prompt > 0) fprintf(stderr, " pp%d %.2f t/s", o->n_prompt, pp[i * rounds + r]);
            if (o->n_gen > 0) fprintf(stderr, " tg%d %.2f t/s", o->n_gen, tg[i * rounds + r]);
            fprintf(stderr, "\n");
        }
    }
    for (int i = 0; i < n; i++)
        if (alias[i] != i)
            for (int r = 0; r < rounds; r++) {
                pp[i * rounds + r] = pp[alias[i] * rounds + r];
                tg[i * rounds + r] = tg[alias[i] * rounds + r];
                beside[i * rounds + r] = beside[alias[i] * rounds + r];
            }
    double pp_median[COMPARE_MAX_PROFILES] = {0}, tg_median[COMPARE_MAX_PROFILES] = {0};
    double pp_best = 0, tg_best = 0;
    for (int i = 0; i < n; i++) {
        if (o->n_prompt > 0) pp_median[i] = median(pp + i * rounds, rounds);
        if (o->n_gen > 0) tg_median[i] = median(tg + i * rounds, rounds);
        if (i > 0 && pp_median[i] > pp_best) pp_best = pp_median[i];
        if (i > 0 && tg_median[i] > tg_best) tg_best = tg_median[i];
    }
    char cpu[160];
    bn_cpu_model_name(cpu, sizeof cpu);
    printf("%s, %d threads, %d rounds (profiles interleaved, median t/s)\n", cpu, o->threads, rounds);
    /* decode bytes per token: the weights once, K and V of every layer over the mean context */
    const uint64_t bytes = bn_model_bytes_per_token(run->model) +
                           (uint64_t)llround(o->kv_position_bytes * (o->n_gen + 1) / 2.0);
    double beside_ratio[COMPARE_MAX_PROFILES] = {0};
    for (int i = 0; probe && o->n_gen > 0 && i < n; i++) {
        double ratios[BN_BENCH_MAX_REPETITIONS];
        for (int r = 0; r < rounds; r++) ratios[r] = tg[i * rounds + r] * (double)bytes / beside[i * rounds + r];
        beside_ratio[i] = median(ratios, rounds);
    }
    printf("| variant | pp%d t/s | pp %% of best forced | tg%d t/s | tg %% of best forced | tg / stream beside |\n",
           o->n_prompt, o->n_gen);
    printf("| ------- | ---: | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < n; i++)
        printf("| %s%s%s%s | %.2f | %.1f%% | %.2f | %.1f%% | %.1f%% |\n", profiles[i].name,
               alias[i] != i ? " (= " : "", alias[i] != i ? profiles[alias[i]].name : "", alias[i] != i ? ")" : "",
               pp_median[i],
               pp_best > 0 ? 100 * pp_median[i] / pp_best : 0, tg_median[i],
               tg_best > 0 ? 100 * tg_median[i] / tg_best : 0, 100 * beside_ratio[i]);
    printf("default:");
    for (int c = 0; c < BN_KCLASS_COUNT; c++) {
        char name[BN_KERNEL_VARIANT_NAME_MAX];
        bn_kernel_variant_name(profiles[0].v[c], (bn_kernel_class)c, name, sizeof name);
        printf(" %s=%s", bn_kernel_class_name((bn_kernel_class)c), name);
    }
    const bn_model_tuning *t = bn_model_get_tuning(run->model);
    printf(" (tuning %s, %s)\n", bn_tune_mode_name(t->mode), t->source);
    if (o->n_gen > 0 && probe)
        printf("default tg%d / stream beside: %.1f%% (median over the rounds of tokens/s x %.2f MB per token over\n"
               "the mean of the probes right before and after the run)\n", o->n_gen, 100 * beside_ratio[0], bytes / 1e6);
    if (o->n_gen > 0)
        printf("default tg%d: %.1f%% of the best forced variant (%s 5%%)\n", o->n_gen, 100 * tg_median[0] / tg_best,
               tg_median[0] >= 0.95 * tg_best ? "within" : "NOT within");
    if (o->n_prompt > 0)
        printf("default pp%d: %.1f%% of the best forced variant (%s 5%%)\n", o->n_prompt, 100 * pp_median[0] / pp_best,
               pp_median[0] >= 0.95 * pp_best ? "within" : "NOT within");
    rc = BN_EXIT_OK;
done:
    for (int c = 0; c < BN_KCLASS_COUNT; c++) bn_kernel_bind((bn_kernel_class)c, profiles[0].v[c]);
    bn_bandwidth_probe_free(probe);
    bn_threadpool_free(probe_pool);
    free(pp), free(tg), free(beside);
    return rc;
}

static bn_status check_receipt_path(const char *path, bn_error *err) {
    bool existed = access(path, F_OK) == 0;
    FILE *f = fopen(path, "a");
    if (!f) return bn_error_set(err, BN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fclose(f);
    if (!existed) remove(path);
    return BN_OK;
}

/* The fields of one result row (llama-bench's names in csv/json). */
typedef struct bench_row {
    const char *model_type, *model_size, *model_params, *backend;
    uint64_t size_bytes, n_params;
    int threads, n_batch, n_prompt, n_gen, depth;
    const bench_stats *s;
} bench_row;

static void csv_string(const char *text) {
    putchar('"');
    for (const char *p = text; *p; p++) {
        if (*p == '"') putchar('"');
        putchar(*p);
    }
    putchar('"');
}

static const char *csv_fields =
    "build_commit,cpu_info,backends,isa,model_filename,model_type,model_size,model_n_params,n_batch,n_threads,"
    "n_prompt,n_gen,test_time,repetitions,avg_ns,stddev_ns,avg_ts,stddev_ts";

/* Prints one row as soon as its test has finished. */
static void emit_row(const bench_options *o, const bench_row *r, int *n_emitted) {
    const bench_stats *s = r->s;
    char test[32], when[32];
    if (r->n_gen && r->depth) snprintf(test, sizeof test, "tg%d @ d%d", s->n_tokens, r->depth);
    else snprintf(test, sizeof test, "%s%d", r->n_gen ? "tg" : "pp", s->n_tokens);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char cpu[160];
    bn_cpu_model_name(cpu, sizeof cpu);
    const int n_batch = r->n_batch ? r->n_batch : 512;
    if (o->output == OUT_MD) {
        if (o->batch_given)
            printf("| %s | %s | %s | %s | %d | %d | %s | %.2f ± %.2f |\n", r->model_type, r->model_size, r->model_params,
                   r->backend, r->threads, n_batch, test, s->mean_tps, s->stdev_tps);
        else
            printf("| %s | %s | %s | %s | %d | %s | %.2f ± %.2f |\n", r->model_type, r->model_size, r->model_params,
                   r->backend, r->threads, test, s->mean_tps, s->stdev_tps);
    } else if (o->output == OUT_CSV) {
        csv_string(bn_git_commit()), putchar(','), csv_string(cpu), putchar(','), csv_string(r->backend);
        putchar(','), csv_string(bn_isa_name(bn_isa_active())), putchar(','), csv_string(o->model_path);
        putchar(','), csv_string(r->model_type);
        printf(",%llu,%llu,%d,%d,%d,%d,", (unsigned long long)r->size_bytes, (unsigned long long)r->n_params, n_batch,
               r->threads, r->n_prompt, r->n_gen);
        csv_string(when);
        printf(",%d,%.0f,%.0f,%.6f,%.6f\n", s->repetitions, s->mean_seconds * 1e9, s->stdev_seconds * 1e9, s->mean_tps,
               s->stdev_tps);
    } else {
        json_t *samples = json_array();
        for (int i = 0; i < s->repetitions; i++) json_array_append_new(samples, json_real(s->n_tokens / s->samples[i]));
        json_t *row = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:i, s:i, s:i, s:s, s:i, s:f, s:f, s:f, "
                                "s:f, s:o}",
                                "build_commit", bn_git_commit(), "cpu_info", cpu, "backends", r->backend, "isa",
                                bn_isa_name(bn_isa_active()), "model_filename", o->model_path, "model_type",
                                r->model_type, "model_size", (json_int_t)r->size_bytes, "model_n_params",
                                (json_int_t)r->n_params, "n_batch", n_batch, "n_threads", r->threads, "n_prompt",
                                r->n_prompt, "n_gen", r->n_gen, "test_time", when, "repetitions", s->repetitions,
                                "avg_ns", s->mean_seconds * 1e9, "stddev_ns", s->stdev_seconds * 1e9, "avg_ts",
                                s->mean_tps, "stddev_ts", s->stdev_tps, "samples_ts", samples);
        if (row) { /* llama-bench's fields for the cache types and the depth */
            json_object_set_new(row, "type_k", json_string(bn_quant_format_get(o->common.kv_type_k)->name));
            json_object_set_new(row, "type_v", json_string(bn_quant_format_get(o->common.kv_type_v)->name));
            json_object_set_new(row, "n_depth", json_integer(r->n_gen ? r->depth : 0));
        }
        char *text = row ? json_dumps(row, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
        if (o->output == OUT_JSON) printf("%s\n  %s", *n_emitted ? "," : "", text ? text : "{}");
        else printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(row);
    }
    ++*n_emitted;
    fflush(stdout);
}

static void print_header(const bench_options *o) {
    if (o->output == OUT_MD) {
        if (o->batch_given) {
            printf("| model | size | params | backend | threads | n_batch | test | t/s |\n");
            printf("| ----- | ---: | -----: | ------- | ------: | ------: | ---: | --: |\n");
        } else {
            printf("| model | size | params | backend | threads | test | t/s |\n");
            printf("| ----- | ---: | -----: | ------- | ------: | ---: | --: |\n");
        }
    } else if (o->output == OUT_CSV) {
        printf("%s\n", csv_fields);
    } else if (o->output == OUT_JSON) {
        printf("[");
    }
    fflush(stdout);
}

/* Loads the model for the configuration (o->threads, o->n_batch) with progress on stderr. */
static bn_status load_config(bench_run *run, bench_options *o, double *seconds, bn_error *err) {
    bn_model_options mo;
    bn_cli_model_options(&mo, &o->common);
    mo.n_threads = o->threads; /* not capped: oversubscription is a measurement too */
    mo.ubatch = o->n_batch;
    mo.int8_lm_head = o->int8_lm_head;
    double t0 = now_seconds();
    bn_status st = bn_cli_load_with(&run->model, o->model_path, &mo, &o->common, err);
    *seconds = now_seconds() - t0;
    return st;
}

/* The pp and tg tests of one configuration; rows printed as they finish. With one configuration
 * and one test of each kind (`single`), also the bandwidth arithmetic and the receipt. */
static int bench_config(bench_options *o, bool single, int *n_emitted, uint64_t *peak_rss_out, bn_error *err) {
    bench_run run;
    memset(&run, 0, sizeof run);
    double t_load;
    if (load_config(&run, o, &t_load, err) != BN_OK) return BN_EXIT_ERROR;
    const bn_model_config *config = bn_model_get_config(run.model);
    o->kv_position_bytes = kv_position_bytes(config, o->common.kv_type_k, o->common.kv_type_v);
    fprintf(stderr, "bench: loaded %s (%s, %d layers, dim %d, vocab %d, context %d) in %.2f s, %d threads\n",
            o->model_path, config->arch_name, config->n_layers, config->dim, config->n_vocab, config->n_ctx_train,
            t_load, o->threads);

    int max_prompt = 0, max_gen = 0;
    for (int i = 0; i < o->prompts.n; i++) max_prompt = o->prompts.values[i] > max_prompt ? o->prompts.values[i] : max_prompt;
    for (int i = 0; i < o->gens.n; i++) max_gen = o->gens.values[i] > max_gen ? o->gens.values[i] : max_gen;
    o->n_prompt = max_prompt; /* what compare_variants and the single-run arithmetic use */
    o->n_gen = max_gen;
    int capacity = max_prompt > o->depth + max_gen ? max_prompt : o->depth + max_gen;
    if (capacity > config->n_ctx_train) {
        if (max_prompt >= o->depth + max_gen)
            bn_error_set(err, BN_ERR_RANGE, "pp%d needs %d positions but the model's context is %d", capacity,
                         capacity, config->n_ctx_train);
        else
            bn_error_set(err, BN_ERR_RANGE, "tg%d @ d%d needs %d positions but the model's context is %d", max_gen,
                         o->depth, capacity, config->n_ctx_train);
        release_run(&run);
        return BN_EXIT_ERROR;
    }
    const int max_batch = max_prompt > o->depth ? max_prompt : o->depth;
    run.entries = malloc((size_t)(max_batch > 0 ? max_batch : 1) * sizeof *run.entries);
    run.logits = malloc((size_t)config->n_vocab * sizeof *run.logits);
    run.seconds = malloc((size_t)o->repetitions * sizeof *run.seconds);
    if (!run.entries || !run.logits || !run.seconds) {
        release_run(&run);
        bn_error_set(err, BN_ERR_NOMEM, "bench: out of memory for %d entries", max_prompt);
        return BN_EXIT_ERROR;
    }
    if (bn_sequence_create(run.model, capacity, &run.seq, err) != BN_OK) {
        release_run(&run);
        return BN_EXIT_ERROR;
    }

    const bn_gguf *gguf = bn_model_get_gguf(run.model);
    char size[32], params[32], model_name[96], backend[16];
    format_size(size, sizeof size, tensor_bytes(gguf));
    format_params(params, sizeof params, config->n_params);
    const bn_quant_format *format = bn_quant_format_get(config->projection_type);
    char type_upper[16] = "?";
    if (format) {
        size_t i = 0;
        for (; format->name[i] && i + 1 < sizeof type_upper; i++)
            type_upper[i] = (char)toupper((unsigned char)format->name[i]);
        type_upper[i] = '\0';
    }
    snprintf(model_name, sizeof model_name, "%s %s %s", config->arch_name, params, type_upper);
    snprintf(backend, sizeof backend, "%s", bn_model_backend_name(run.model));
    for (char *c = backend; *c; c++) *c = (char)toupper((unsigned char)*c);
    bench_row row = {model_name, size, params, backend, tensor_bytes(gguf), config->n_params, o->threads, o->n_batch,
                     0, 0, o->depth, NULL};

    uint64_t rng = o->seed;
    double warm;
    bench_stats pp = {0}, tg = {0};
    /* Warm-ups first (the longest prompt and one generated token), then counts start from zero, so
     * the receipt's kernel list covers exactly the timed repetitions. */
    if (max_prompt > 0 && run_prompt(&warm, &run, max_prompt, config->n_vocab, &rng, err) != BN_OK) goto fail;
    if (max_gen > 0 && run_generation(&warm, &run, 0, 1, config->n_vocab, &rng, err) != BN_OK) goto fail;
    if (o->compare_variants) {
        int rc = compare_variants(o, &run, config, &rng, err);
        release_run(&run);
        return rc;
    }
    bn_kernel_set_timing(true);
    bn_kernel_reset_counts();
    bn_progress progress;
    /* on a terminal a live line per test; in a log the rows themselves are the lines */
    bn_progress_init(&progress, "bench", o->common.progress && isatty(STDERR_FILENO));
    for (int k = 0; k < o->prompts.n; k++) {
        const int n_prompt = o->prompts.values[k];
        if (n_prompt <= 0) continue;
        char stage[48];
        snprintf(stage, sizeof stage, "pp%d", n_prompt);
        bn_progress_begin(&progress, stage, "repetitions");
        for (int r = 0; r < o->repetitions; r++) {
            if (run_prompt(&run.seconds[r], &run, n_prompt, config->n_vocab, &rng, err) != BN_OK) goto fail;
            bn_progress_update(&progress, (uint64_t)r + 1, (uint64_t)o->repetitions);
        }
        bn_progress_end(&progress);
        compute_stats(&pp, run.seconds, o->repetitions, n_prompt);
        row.n_prompt = n_prompt, row.n_gen = 0, row.s = &pp;
        emit_row(o, &row, n_emitted);
    }
    /* Peak RSS before any bandwidth buffer exists (the tg repetitions allocate nothing new). */
    uint64_t peak_rss = 0;
    if (bn_peak_rss_bytes(&peak_rss, err) != BN_OK) goto fail;
    if (peak_rss > *peak_rss_out) *peak_rss_out = peak_rss;
    bench_bandwidth bw;
    memset(&bw, 0, sizeof bw);
    /* the context the tg tests decode after (each repetition truncates back to it) */
    if (max_gen > 0 && o->depth > 0 && run_prompt(&warm, &run, o->depth, config->n_vocab, &rng, err) != BN_OK)
        goto fail;
    for (int k = 0; k < o->gens.n; k++) {
        const int n_gen = o->gens.values[k];
        if (n_gen <= 0) continue;
        /* A shared machine's bandwidth moves from one second to the next, so besides the figure
         * after the tests the bandwidth is probed right before and after each repetition (with
         * one configuration, whose arithmetic is printed). */
        bn_threadpool *probe_pool = NULL;
        bn_bandwidth_probe *probe = NULL;
        if (single && o->bandwidth) {
            bw.probe_bps = run.probe_bps = calloc((size_t)o->repetitions + 1, sizeof *bw.probe_bps);
            bw.rep_ratio = run.rep_ratio = calloc((size_t)o->repetitions, sizeof *bw.rep_ratio);
            if (!bw.probe_bps || !bw.rep_ratio) {
                bn_error_set(err, BN_ERR_NOMEM, "bench: out of memory");
                goto fail;
            }
            if ((o->threads > 1 && bn_threadpool_create(o->threads, &probe_pool, err) != BN_OK) ||
                bn_bandwidth_probe_create(&probe, probe_pool, o->bandwidth_bytes, err) != BN_OK ||
                bn_bandwidth_probe_run(probe, probe_pool, BENCH_PROBE_PASSES, &bw.probe_bps[0], err) != BN_OK) {
                bn_bandwidth_probe_free(probe);
                bn_threadpool_free(probe_pool);
                goto fail;
            }
        }
        char stage[48];
        snprintf(stage, sizeof stage, "tg%d", n_gen);
        bn_progress_begin(&progress, stage, "repetitions");
        bn_status st = BN_OK;
        for (int r = 0; r < o->repetitions && st == BN_OK; r++) {
            st = run_generation(&run.seconds[r], &run, o->depth, n_gen, config->n_vocab, &rng, err);
            if (st == BN_OK && probe)
                st = bn_bandwidth_probe_run(probe, probe_pool, BENCH_PROBE_PASSES, &bw.probe_bps[r + 1], err);
            bn_progress_update(&progress, (uint64_t)r + 1, (uint64_t)o->repetitions);
        }
        bn_progress_end(&progress);
        if (probe) bw.n_probes = o->repetitions + 1;
        bn_bandwidth_probe_free(probe);
        bn_threadpool_free(probe_pool);
        if (st != BN_OK) goto fail;
        compute_stats(&tg, run.seconds, o->repetitions, n_gen);
        o->tg_tps = tg.mean_tps;
        row.n_prompt = 0, row.n_gen = n_gen, row.s = &tg;
        emit_row(o, &row, n_emitted);
    }
    bn_kernel_set_timing(false);
    if (!single) {
        release_run(&run);
        return BN_EXIT_OK;
    }
    bn_kernel_stats kernel_stats[BN_KERNEL_MAX];
    size_t n_kernels = bn_kernel_snapshot(kernel_stats, BN_KERNEL_MAX);

    /* Decode bytes per token: the weights once, plus K and V of every layer over the context. */
    bw.weight_bytes = bn_model_bytes_per_token(run.model);
    bw.mean_context = o->depth + (o->n_gen + 1) / 2.0;
    bw.kv_bytes = (uint64_t)llround(o->kv_position_bytes * bw.mean_context);
    bw.bytes_per_token = bw.weight_bytes + bw.kv_bytes;
    bw.effective_gbps = tg.present ? tg.mean_tps * (double)bw.bytes_per_token / 1e9 : 0;
    if (tg.present && bw.n_probes == o->repetitions + 1) {
        double sum = 0, ratios = 0;
        bw.beside_min_gbps = bw.beside_max_gbps = bw.probe_bps[0] / 1e9;
        for (int i = 0; i < bw.n_probes; i++) {
            double g = bw.probe_bps[i] / 1e9;
            sum += g;
            if (g < bw.beside_min_gbps) bw.beside_min_gbps = g;
            if (g > bw.beside_max_gbps) bw.beside_max_gbps = g;
        }
        bw.beside_mean_gbps = sum / bw.n_probes;
        for (int r = 0; r < o->repetitions; r++) {
            double effective = o->n_gen / run.seconds[r] * (double)bw.bytes_per_token;
            bw.rep_ratio[r] = effective / (0.5 * (bw.probe_bps[r] + bw.probe_bps[r + 1]));
            ratios += bw.rep_ratio[r];
        }
        bw.ratio_beside = ratios / o->repetitions;
    }
    if (tg.present && o->bandwidth) {
        bn_threadpool *pool = NULL;
        if (o->threads > 1 && bn_threadpool_create(o->threads, &pool, err) != BN_OK) goto fail;
        bn_status status = bn_measure_read_bandwidth(&bw.stream, pool, o->bandwidth_bytes,
                                                     BN_BANDWIDTH_DEFAULT_PASSES, err);
        bn_threadpool_free(pool);
        if (status != BN_OK) goto fail;
        bw.measured = true;
    }
    /* the arithmetic goes with the table; beside csv/json it goes to stderr */
    if (tg.present) print_bandwidth(o->output == OUT_MD ? stdout : stderr, &bw, &tg, o);
    if (!strcmp(bn_model_backend_name(run.model), "cpu")) {
        char variants[256];
        bn_model_tuning_summary(run.model, variants, sizeof variants);
        const bn_model_tuning *t = bn_model_get_tuning(run.model);
        snprintf(o->variants_line, sizeof o->variants_line, "kernel variants %s (tuning %s, %s)", variants,
                 bn_tune_mode_name(t->mode), t->source);
    }
    fflush(stdout);
    if (o->json_path) {
        if (write_receipt(o, &run, &pp, &tg, &bw, kernel_stats, n_kernels, peak_rss, err) != BN_OK) goto fail;
        fprintf(stderr, "bench: receipt written to %s\n", o->json_path);
    }
    release_run(&run);
    return BN_EXIT_OK;

fail:
    bn_kernel_set_timing(false);
    release_run(&run);
    return BN_EXIT_ERROR;
}

/* The tg test of the single configuration again with an f16 cache, beside a run with another
 * cache type: the model loaded with f16 K and V, the depth written, one warm-up token, then the
 * timed repetitions. *tps gets their mean t/s. */
static int bench_tg_f16(bench_options *o, double *tps, bn_error *err) {
    const uint32_t k_type = o->common.kv_type_k, v_type = o->common.kv_type_v;
    o->common.kv_type_k = o->common.kv_type_v = BN_TYPE_F16;
    bench_run run;
    memset(&run, 0, sizeof run);
    double t_load, warm;
    bn_status st = load_config(&run, o, &t_load, err);
    o->common.kv_type_k = k_type, o->common.kv_type_v = v_type;
    if (st != BN_OK) return BN_EXIT_ERROR;
    const int n_vocab = bn_model_get_config(run.model)->n_vocab;
    uint64_t rng = o->seed;
    run.entries = malloc((size_t)(o->depth > 0 ? o->depth : 1) * sizeof *run.entries);
    run.logits = malloc((size_t)n_vocab * sizeof *run.logits);
    run.seconds = malloc((size_t)o->repetitions * sizeof *run.seconds);
    if (!run.entries || !run.logits || !run.seconds) st = bn_error_set(err, BN_ERR_NOMEM, "bench: out of memory");
    if (st == BN_OK) st = bn_sequence_create(run.model, o->depth + o->n_gen, &run.seq, err);
    if (st == BN_OK && o->depth > 0) st = run_prompt(&warm, &run, o->depth, n_vocab, &rng, err);
    if (st == BN_OK) st = run_generation(&warm, &run, o->depth, 1, n_vocab, &rng, err);
    fprintf(stderr, "bench: tg%d with an f16 cache for comparison\n", o->n_gen);
    for (int r = 0; r < o->repetitions && st == BN_OK; r++)
        st = run_generation(&run.seconds[r], &run, o->depth, o->n_gen, n_vocab, &rng, err);
    if (st == BN_OK) {
        bench_stats tg = {0};
        compute_stats(&tg, run.seconds, o->repetitions, o->n_gen);
        *tps = tg.mean_tps;
    }
    release_run(&run);
    return st == BN_OK ? BN_EXIT_OK : BN_EXIT_ERROR;
}

/* The KV cache's size and the tg speed of the run against an f16 cache. */
static void print_kv_comparison(FILE *out, const bench_options *o, double f16_tps, double f16_position_bytes) {
    const int positions = o->depth + o->n_gen;
    char test[32];
    if (o->depth) snprintf(test, sizeof test, "tg%d @ d%d", o->n_gen, o->depth);
    else snprintf(test, sizeof test, "tg%d", o->n_gen);
    fprintf(out, "\nkv cache %-10s: %.1f KB per position, %.1f MB at the %d positions of %s (f16: %.1f KB, %.1f MB; "
            "%.1f%%)\n",
            kv_label(o), o->kv_position_bytes / 1e3, o->kv_position_bytes * positions / 1e6, positions, test,
            f16_position_bytes / 1e3, f16_position_bytes * positions / 1e6,
            100.0 * o->kv_position_bytes / f16_position_bytes);
    fprintf(out, "%-19s: %.2f t/s with a %s cache, %.2f t/s with f16 (%.3fx)\n", test, o->tg_tps, kv_label(o), f16_tps,
            f16_tps > 0 ? o->tg_tps / f16_tps : 0.0);
}

static int bench(bench_options *o, bn_error *err) {
    if (bn_cli_apply_isa(&o->common, err) != BN_OK) return BN_EXIT_ERROR;
    if (bn_cli_resolve_model(&o->model_path, o->common.model_path, err) != BN_OK) return BN_EXIT_ERROR;
    if (o->json_path && check_receipt_path(o->json_path, err) != BN_OK) return BN_EXIT_ERROR;
    const bool single = o->prompts.n == 1 && o->gens.n == 1 && o->threads_list.n == 1 && o->batches.n == 1;
    if (!o->compare_variants) print_header(o);
    int n_emitted = 0, rc = BN_EXIT_OK;
    uint64_t peak_rss = 0;
    for (int t = 0; t < o->threads_list.n && rc == BN_EXIT_OK; t++)
        for (int b = 0; b < o->batches.n && rc == BN_EXIT_OK; b++) {
            o->threads = o->threads_list.values[t];
            o->n_batch = o->batches.values[b];
            rc = bench_config(o, single, &n_emitted, &peak_rss, err);
        }
    if (o->compare_variants) return rc;
    const bool other_cache = o->common.kv_type_k != BN_TYPE_F16 || o->common.kv_type_v != BN_TYPE_F16;
    double f16_tps = 0;
    if (rc == BN_EXIT_OK && single && other_cache && o->n_gen > 0) rc = bench_tg_f16(o, &f16_tps, err);
    if (o->output == OUT_JSON) printf("\n]\n");
    if (rc == BN_EXIT_OK && single && other_cache && o->n_gen > 0) {
        bn_model_options defaults = bn_model_options_default();
        const double f16_bytes = o->kv_position_bytes *
                                 (double)(bn_kv_type_bytes(defaults.kv_type_k, 32) + bn_kv_type_bytes(defaults.kv_type_v, 32)) /
                                 (double)(bn_kv_type_bytes(o->common.kv_type_k, 32) + bn_kv_type_bytes(o->common.kv_type_v, 32));
        print_kv_comparison(o->output == OUT_MD ? stdout : stderr, o, f16_tps, f16_bytes);
    }
    if (rc == BN_EXIT_OK && o->output == OUT_MD) {
        printf("\nisa %s, peak RSS %.1f MB, seed %llu, build %s (bitnet-c %s)\n", bn_isa_name(bn_isa_active()),
               peak_rss / 1e6, (unsigned long long)o->seed, bn_git_commit(), bn_version());
        if (o->variants_line[0]) printf("%s\n", o->variants_line);
    }
    fflush(stdout);
    return rc;
}

int bn_cmd_bench(int argc, char **argv, bn_error *err) {
    bench_options o;
    int rc = parse_options(&o, argc, argv, err);
    if (rc >= 0) return rc;
    rc = bench(&o, err);
    free(o.model_path);
    return rc;
}
