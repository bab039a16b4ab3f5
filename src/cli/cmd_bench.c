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
#include "core/rss.h"
#include "core/sha256.h"
#include "kernels/cpu_features.h"
#include "kernels/registry.h"
#include "kernels/threadpool.h"
#include "model/model.h"
#include "model/tune.h"
#include "kernels/variants.h"
#include "quant/quant_format.h"
#include "tools/bandwidth.h"
#include "tools/receipt.h"

#include <ctype.h>
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

typedef struct bench_options {
    const char *model_path;
    int threads;
    int n_prompt;
    int n_gen;
    int repetitions;
    const char *json_path;
    const char *isa;
    const char *device;
    uint64_t seed;
    bool bandwidth;
    size_t bandwidth_bytes;
    bool int8_lm_head;
    bool kv_f32;
    int tune;              /* bn_tune_mode; -1: BITNET_TUNE, else quick */
    bool verbose;
    bool compare_variants;
} bench_options;

/* Mean and sample standard deviation of one test's repetitions. */
typedef struct bench_stats {
    bool present;
    int n_tokens;
    int repetitions;
    double mean_tps;
    double stdev_tps;
    double mean_seconds;
} bench_stats;

static void usage(FILE *out) {
    fprintf(out,
            "usage: bitnet bench -m MODEL [options]\n"
            "  -m, --model FILE       GGUF model\n"
            "  -t, --threads N        threads (default: online CPUs)\n"
            "  -p, --n-prompt N       prompt-processing test pp<N>: N tokens in one batch (default 512; 0 skips)\n"
            "  -n, --n-gen N          generation test tg<N>: N tokens one at a time (default 128; 0 skips)\n"
            "  -r, --repetitions N    timed repetitions per test after one warm-up (default 5)\n"
            "  --json FILE            write the receipt (JSON, schema 1.0.0) to FILE\n"
            "  --isa NAME             force the CPU kernel path of every kernel: scalar, avx2, avx512\n"
            "                         (default: BITNET_ISA, else what the tuner chose per kernel class;\n"
            "                         BITNET_VARIANT=CLASS=NAME,... forces variants, BITNET_PREFETCH=\n"
            "                         t0|nta|none the one-token prefetch hint, BITNET_GFNI=0 no GFNI)\n"
            "  --device cpu|cuda      backend (default cpu)\n"
            "  --seed N               seed of the random tokens (default 42)\n"
            "  --int8-lm-head         LM head in int8 with per-row scales instead of F16\n"
            BN_CLI_TUNE_HELP
            "  --verbose              print the kernel variants chosen at load and their timings\n"
            "  --compare-variants     instead of the tests above: run pp and tg with the variants\n"
            "                         the load chose (default) and with each whole-path variant\n"
            "                         forced, interleaved, -r rounds; prints median t/s, each as %%\n"
            "                         of the best, and the default's tg over the stream beside it\n"
            "  --kv-f32               KV cache in F32 instead of F16\n"
            "  --no-bandwidth         skip the streaming read bandwidth measurement\n"
            "  --bandwidth-mb N       buffer of the bandwidth measurement in MiB (default 512)\n");
}

/* Parses a decimal integer in [min, max]; false (message printed) otherwise. */
static bool parse_int(int *out, const char *text, const char *option, long min, long max) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < min || value > max) {
        fprintf(stderr, "bitnet bench: %s needs an integer in %ld..%ld, got \"%s\"\n", option, min,
                max, text);
        return false;
    }
    *out = (int)value;
    return true;
}

static int online_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 && n <= 1024 ? (int)n : 1;
}

/* Returns BN_EXIT_OK to go on, else the exit code. */
static int parse_options(bench_options *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->threads = online_cpus();
    o->n_prompt = 512;
    o->n_gen = 128;
    o->repetitions = 5;
    o->device = "cpu";
    o->seed = 42;
    o->bandwidth = true;
    o->bandwidth_bytes = BN_BANDWIDTH_DEFAULT_BYTES;
    o->tune = BN_TUNE_FROM_ENV;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes_value = true;
        int mb = 0, seed = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(a, "--no-bandwidth")) {
            o->bandwidth = false;
            takes_value = false;
        } else if (!strcmp(a, "--int8-lm-head")) {
            o->int8_lm_head = true;
            takes_value = false;
        } else if (!strcmp(a, "--kv-f32")) {
            o->kv_f32 = true;
            takes_value = false;
        } else if (!strcmp(a, "--verbose")) {
            o->verbose = true;
            takes_value = false;
        } else if (!strcmp(a, "--compare-variants")) {
            o->compare_variants = true;
            takes_value = false;
        } else if (!value) {
            fprintf(stderr, "bitnet bench: %s needs a value\n", a);
            return BN_EXIT_USAGE;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            o->model_path = value;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!parse_int(&o->threads, value, a, 1, 1024)) return BN_EXIT_USAGE;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            if (!parse_int(&o->n_prompt, value, a, 0, INT_MAX / 2)) return BN_EXIT_USAGE;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            if (!parse_int(&o->n_gen, value, a, 0, INT_MAX / 2)) return BN_EXIT_USAGE;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
            if (!parse_int(&o->repetitions, value, a, 1, BN_BENCH_MAX_REPETITIONS)) return BN_EXIT_USAGE;
        } else if (!strcmp(a, "--json")) {
            o->json_path = value;
        } else if (!strcmp(a, "--isa")) {
            o->isa = value;
        } else if (!strcmp(a, "--tune")) {
            bn_error e = {0};
            if (bn_cli_parse_tune(&o->tune, a, value, &e) != BN_CLI_CONSUMED) {
                fprintf(stderr, "bitnet bench: %s\n", e.message);
                return BN_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--device")) {
            o->device = value;
        } else if (!strcmp(a, "--seed")) {
            if (!parse_int(&seed, value, a, 0, INT_MAX)) return BN_EXIT_USAGE;
            o->seed = (uint64_t)seed;
        } else if (!strcmp(a, "--bandwidth-mb")) {
            if (!parse_int(&mb, value, a, 1, 1 << 20)) return BN_EXIT_USAGE;
            o->bandwidth_bytes = (size_t)mb << 20;
        } else {
            fprintf(stderr, "bitnet bench: unknown option %s\n", a);
            usage(stderr);
            return BN_EXIT_USAGE;
        }
        if (takes_value) i++;
    }
    if (!o->model_path) {
        fprintf(stderr, "bitnet bench: -m MODEL is required\n");
        usage(stderr);
        return BN_EXIT_USAGE;
    }
    if (o->n_prompt == 0 && o->n_gen == 0) {
        fprintf(stderr, "bitnet bench: -p 0 and -n 0 leave nothing to run\n");
        return BN_EXIT_USAGE;
    }
    if (o->compare_variants && (o->json_path || !strcmp(o->device, "cuda"))) {
        fprintf(stderr, "bitnet bench: --compare-variants compares CPU kernel variants; it takes no --json and no --device cuda\n");
        return BN_EXIT_USAGE;
    }
    if (strcmp(o->device, "cpu") != 0 && strcmp(o->device, "cuda") != 0) {
        fprintf(stderr, "bitnet bench: --device must be cpu or cuda, got \"%s\"\n", o->device);
        return BN_EXIT_USAGE;
    }
    return BN_EXIT_OK;
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
static bn_status run_generation(double *seconds, bench_run *run, int n_gen, int n_vocab,
                                uint64_t *rng, bn_error *err) {
    bn_sequence_clear(run->seq);
    double t0 = now_seconds();
    for (int i = 0; i < n_gen; i++) {
        bn_batch_entry entry = {run->seq, i, random_token(rng, n_vocab), true};
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

static void print_row(const char *model_name, const char *size, const char *params, const char *backend,
                      int threads, const char *test, const bench_stats *s) {
    printf("| %s | %s | %s | %s | %d | %s | %.2f ± %.2f |\n", model_name, size, params, backend,
           threads, test, s->mean_tps, s->stdev_tps);
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

static void print_bandwidth(const bench_bandwidth *b, const bench_stats *tg, const bench_options *o) {
    printf("\n");
    printf("decode bytes/token : %.2f MB = weights %.2f MB (ternary projections + LM head) + KV cache %.2f MB "
           "(%s, mean context %.1f)\n",
           b->bytes_per_token / 1e6, b->weight_bytes / 1e6, b->kv_bytes / 1e6, o->kv_f32 ? "f32" : "f16",
           b->mean_context);
    printf("tg%d effective     : %.2f GB/s = %.2f t/s x %.2f MB/token\n", tg->n_tokens, b->effective_gbps,
           tg->mean_tps, b->bytes_per_token / 1e6);
    if (!b->measured) return;
    printf("stream read        : %.2f GB/s (%d thread%s, %zu MiB buffer, %s loop, best of %d passes; median %.2f GB/s)\n",
           b->stream.best_bytes_per_second / 1e9, b->stream.threads, b->stream.threads > 1 ? "s" : "",
           b->stream.buffer_bytes >> 20,
           b->stream.path, b->stream.passes, b->stream.median_bytes_per_second / 1e9);
    printf("tg%d / stream read : %.1f%% (%.2f of %.2f GB/s)\n", tg->n_tokens,
           100.0 * b->effective_gbps * 1e9 / b->stream.best_bytes_per_second, b->effective_gbps,
           b->stream.best_bytes_per_second / 1e9);
    if (b->n_probes < 2) return;
    printf("stream beside tg   : %.2f GB/s mean of %d probes right before and after each repetition "
           "(min %.2f, max %.2f; best of %d passes each)\n",
           b->beside_mean_gbps, b->n_probes, b->beside_min_gbps, b->beside_max_gbps, BENCH_PROBE_PASSES);
    printf("tg%d / stream beside: %.1f%% (mean over repetitions of tokens/s x bytes/token over the mean of "
           "the probes before and after it:",
           tg->n_tokens, 100.0 * b->ratio_beside);
    for (int r = 0; r + 1 < b->n_probes; r++) printf(" %.1f%%", 100.0 * b->rep_ratio[r]);
    printf(")\n");
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
        for (int c = 0; c < BN_KCLASS_COUNT; c++) p->v[c] = (bn_kernel_variant){gemv[i].isa, gemv[i].prefetch, false};
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
                if (run_generation(&seconds, run, o->n_gen, config->n_vocab, rng, err) != BN_OK) goto done;
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
                           (uint64_t)llround(2.0 * config->n_layers * config->kv_dim * (o->kv_f32 ? 4 : 2) * (o->n_gen + 1) / 2.0);
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

static int bench(const bench_options *o, bn_error *err) {
    if (bn_cli_apply_isa_name(o->isa, err) != BN_OK) return BN_EXIT_ERROR;
    if (o->json_path && check_receipt_path(o->json_path, err) != BN_OK) return BN_EXIT_ERROR;

    bench_run run;
    memset(&run, 0, sizeof run);
    bn_model_options mo = bn_model_options_default();
    mo.device = !strcmp(o->device, "cuda") ? BN_DEVICE_CUDA : BN_DEVICE_CPU;
    mo.n_threads = o->threads;
    mo.int8_lm_head = o->int8_lm_head;
    mo.kv_f16 = !o->kv_f32;
    mo.tune = o->tune;
    double t_load = now_seconds();
    if (bn_model_load(o->model_path, &mo, &run.model, err) != BN_OK) return BN_EXIT_ERROR;
    t_load = now_seconds() - t_load;
    if (o->verbose) {
        char text[4096];
        bn_model_tuning_describe(run.model, text, sizeof text);
        fputs(text, stderr);
    }
    const bn_model_config *config = bn_model_get_config(run.model);
    fprintf(stderr, "bench: loaded %s (%s, %d layers, dim %d, vocab %d, context %d) in %.2f s\n",
            o->model_path, config->arch_name, config->n_layers, config->dim, config->n_vocab,
            config->n_ctx_train, t_load);

    int capacity = o->n_prompt > o->n_gen ? o->n_prompt : o->n_gen;
    if (capacity > config->n_ctx_train) {
        bn_error_set(err, BN_ERR_RANGE, "%s%d needs %d positions but the model's context is %d",
                     o->n_prompt > o->n_gen ? "pp" : "tg", capacity, capacity, config->n_ctx_train);
        release_run(&run);
        return BN_EXIT_ERROR;
    }
    run.entries = malloc((size_t)(o->n_prompt > 0 ? o->n_prompt : 1) * sizeof *run.entries);
    run.logits = malloc((size_t)config->n_vocab * sizeof *run.logits);
    run.seconds = malloc((size_t)o->repetitions * sizeof *run.seconds);
    if (!run.entries || !run.logits || !run.seconds) {
        release_run(&run);
        bn_error_set(err, BN_ERR_NOMEM, "bench: out of memory for %d entries", o->n_prompt);
        return BN_EXIT_ERROR;
    }
    if (bn_sequence_create(run.model, capacity, &run.seq, err) != BN_OK) {
        release_run(&run);
        return BN_EXIT_ERROR;
    }

    uint64_t rng = o->seed;
    double warm;
    bench_stats pp = {0}, tg = {0};
    /* Warm-ups first (a full prompt and one generated token), then counts start from zero, so the
     * receipt's kernel list covers exactly the timed repetitions. */
    if (o->n_prompt > 0 && run_prompt(&warm, &run, o->n_prompt, config->n_vocab, &rng, err) != BN_OK)
        goto fail;
    if (o->n_gen > 0 && run_generation(&warm, &run, 1, config->n_vocab, &rng, err) != BN_OK) goto fail;
    if (o->compare_variants) {
        int rc = compare_variants(o, &run, config, &rng, err);
        release_run(&run);
        return rc;
    }
    bn_kernel_set_timing(true);
    bn_kernel_reset_counts();
    if (o->n_prompt > 0) {
        for (int r = 0; r < o->repetitions; r++) {
            if (run_prompt(&run.seconds[r], &run, o->n_prompt, config->n_vocab, &rng, err) != BN_OK)
                goto fail;
        }
        compute_stats(&pp, run.seconds, o->repetitions, o->n_prompt);
    }
    /* Peak RSS before any bandwidth buffer exists (the tg repetitions allocate nothing new). */
    uint64_t peak_rss = 0;
    if (bn_peak_rss_bytes(&peak_rss, err) != BN_OK) goto fail;
    bench_bandwidth bw;
    memset(&bw, 0, sizeof bw);
    if (o->n_gen > 0) {
        /* A shared machine's bandwidth moves from one second to the next, so besides the figure
         * after the tests the bandwidth is probed right before and after each repetition. */
        bn_threadpool *probe_pool = NULL;
        bn_bandwidth_probe *probe = NULL;
        if (o->bandwidth) {
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
        bn_status st = BN_OK;
        for (int r = 0; r < o->repetitions && st == BN_OK; r++) {
            st = run_generation(&run.seconds[r], &run, o->n_gen, config->n_vocab, &rng, err);
            if (st == BN_OK && probe)
                st = bn_bandwidth_probe_run(probe, probe_pool, BENCH_PROBE_PASSES, &bw.probe_bps[r + 1], err);
        }
        if (probe) bw.n_probes = o->repetitions + 1;
        bn_bandwidth_probe_free(probe);
        bn_threadpool_free(probe_pool);
        if (st != BN_OK) goto fail;
        compute_stats(&tg, run.seconds, o->repetitions, o->n_gen);
    }
    bn_kernel_set_timing(false);
    bn_kernel_stats kernel_stats[BN_KERNEL_MAX];
    size_t n_kernels = bn_kernel_snapshot(kernel_stats, BN_KERNEL_MAX);

    /* Decode bytes per token: the weights once, plus K and V of every layer over the context. */
    bw.weight_bytes = bn_model_bytes_per_token(run.model);
    bw.mean_context = (o->n_gen + 1) / 2.0;
    double kv_row = 2.0 * config->n_layers * config->kv_dim * (o->kv_f32 ? 4 : 2);
    bw.kv_bytes = (uint64_t)llround(kv_row * bw.mean_context);
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

    printf("| model | size | params | backend | threads | test | t/s |\n");
    printf("| ----- | ---: | -----: | ------- | ------: | ---: | --: |\n");
    char test[32];
    if (pp.present) {
        snprintf(test, sizeof test, "pp%d", pp.n_tokens);
        print_row(model_name, size, params, backend, o->threads, test, &pp);
    }
    if (tg.present) {
        snprintf(test, sizeof test, "tg%d", tg.n_tokens);
        print_row(model_name, size, params, backend, o->threads, test, &tg);
        print_bandwidth(&bw, &tg, o);
    }
    printf("\nisa %s, peak RSS %.1f MB, seed %llu, build %s (bitnet-c %s)\n", bn_isa_name(bn_isa_active()),
           peak_rss / 1e6, (unsigned long long)o->seed, bn_git_commit(), bn_version());
    if (!strcmp(bn_model_backend_name(run.model), "cpu")) {
        char variants[256];
        bn_model_tuning_summary(run.model, variants, sizeof variants);
        const bn_model_tuning *t = bn_model_get_tuning(run.model);
        printf("kernel variants %s (tuning %s, %s)\n", variants, bn_tune_mode_name(t->mode), t->source);
    }
    fflush(stdout);

    if (o->json_path) {
        if (write_receipt(o, &run, &pp, &tg, &bw, kernel_stats, n_kernels, peak_rss, err) != BN_OK)
            goto fail;
        fprintf(stderr, "bench: receipt written to %s\n", o->json_path);
    }
    release_run(&run);
    return BN_EXIT_OK;

fail:
    bn_kernel_set_timing(false);
    release_run(&run);
    return BN_EXIT_ERROR;
}

int bn_cmd_bench(int argc, char **argv, bn_error *err) {
    bench_options o;
    int rc = parse_options(&o, argc, argv);
    if (rc < 0) return BN_EXIT_OK;
    if (rc != BN_EXIT_OK) return rc;
    return bench(&o, err);
}
