/*
 * bench_kernels.c: kernel benchmark (a measurement, not a test). In one run it
 *   1. measures streaming read bandwidth at 1 and 2 threads over a buffer far larger than the
 *      last-level cache (a plain summing loop, best of a few passes);
 *   2. times GEMV on the 2B-4T shapes (ternary I2_S 2560x2560, 640x2560, 6912x2560, 2560x6912 as
 *      rows x cols; the F16 and int8 LM head 128256x2560), rotating through enough copies of the
 *      weights (>= 256 MiB) that the caches cannot hold them, and prints per path and thread
 *      count: time per call, weight GB/s, % of the measured bandwidth, speedup over scalar, and
 *      the bandwidth probed right before and after that row (a shared machine's bandwidth moves
 *      from one second to the next) with the row's % of it;
 *   3. times the LM head in every other type a file may store it in (F32, BF16, Q8_0, Q6_K, Q4_K;
 *      kernels/head.h) at the Falcon3-1B shape 131072x2048, per path and thread count, one copy
 *      (0.2-1 GB, far larger than any cache), quantization of the activations included;
 *   4. times GEMM over 64 tokens against 64 separate GEMVs (tokens/s of each).
 * Every figure is the best of several rounds. On a machine shared with other work, --cpu-time
 * times with the calling thread's CPU clock instead of the wall clock (time spent descheduled is
 * then not counted; memory stalls still are).
 * Usage: bench_kernels [--quick] [--cpu-time] [--heads]   (--quick: smaller buffers, shorter
 * windows; --heads: the bandwidth and section 3 only)
 */
#include "core/fp16.h"
#include "kernels/cpu_features.h"
#include "kernels/head.h"
#include "kernels/ops.h"
#include "kernels/threadpool.h"
#include "kernels/variants.h"
#include "quant/quant_format.h"
#include "tools/bandwidth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool quick, cpu_time, heads_only;
static bn_threadpool *pools[3]; /* [1] = NULL (caller thread), [2] = two threads */
static double bandwidth[3];     /* GB/s at 1 and 2 threads */
static bn_bandwidth_probe *probe; /* kept buffer for the probes beside each GEMV row */

/* Streaming read GB/s now, at this thread count (best of 2 passes over the probe buffer). */
static double probe_gbs(int threads) {
    double bps = 0;
    bn_error err;
    if (!probe || bn_bandwidth_probe_run(probe, pools[threads], 2, &bps, &err) != BN_OK) return 0;
    return bps / 1e9;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(cpu_time ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* ---- 1. bandwidth ---- */

typedef struct sum_job {
    const uint64_t *data;
    size_t n_words;
    uint64_t result[2];
} sum_job;

static void sum_worker(void *context, int thread_index, int n_threads) {
    sum_job *job = context;
    long begin, end;
    bn_threadpool_split((long)job->n_words, 64, thread_index, n_threads, &begin, &end);
    uint64_t a = 0, b = 0, c = 0, d = 0, e = 0, f = 0, g = 0, h = 0;
    for (long i = begin; i < end; i += 8) {
        a += job->data[i], b += job->data[i + 1], c += job->data[i + 2], d += job->data[i + 3];
        e += job->data[i + 4], f += job->data[i + 5], g += job->data[i + 6], h += job->data[i + 7];
    }
    job->result[thread_index] = a + b + c + d + e + f + g + h;
}

static void measure_bandwidth(void) {
    size_t bytes = (quick ? 512ull : 1024ull) << 20;
    uint64_t *buffer = malloc(bytes);
    if (!buffer) {
        fprintf(stderr, "cannot allocate the bandwidth buffer\n");
        exit(1);
    }
    memset(buffer, 1, bytes);
    sum_job job = {buffer, bytes / 8, {0, 0}};
    printf("streaming read bandwidth (%zu MiB buffer, best of %d)\n", bytes >> 20, quick ? 2 : 4);
    for (int threads = 1; threads <= 2; threads++) {
        double best = 1e30;
        for (int pass = 0; pass < (quick ? 2 : 4); pass++) {
            double t0 = now();
            bn_threadpool_run(pools[threads], sum_worker, &job);
            double t = now() - t0;
            if (t < best) best = t;
        }
        bandwidth[threads] = (double)bytes / best / 1e9;
        printf("  %d thread%s: %6.1f GB/s   (checksum %llu)\n", threads, threads > 1 ? "s" : " ",
               bandwidth[threads], (unsigned long long)(job.result[0] + job.result[1]));
    }
    free(buffer);
}

/* ---- 2. GEMV ---- */

/* Seconds per call: the best of several rounds, each running fn over at least one full rotation
 * of the copies (and min_calls calls) and a share of min_seconds. */
typedef void (*call_fn)(void *context, int copy, bn_threadpool *pool);

static double time_calls(call_fn fn, void *context, int copies, int threads, double min_seconds,
                         int min_calls) {
    const int rounds = quick ? 3 : 5;
    fn(context, 0, pools[threads]); /* warm-up (page faults, pool wake-up) */
    double best = 1e30;
    int next = 1;
    for (int round = 0; round < rounds; round++) {
        int calls = 0;
        double t0 = now(), elapsed;
        do {
            fn(context, next++ % copies, pools[threads]);
            calls++;
            elapsed = now() - t0;
        } while (elapsed < min_seconds / rounds || calls < min_calls || calls < copies);
        if (elapsed / calls < best) best = elapsed / calls;
        if (min_seconds == 0) break; /* slow paths: one round */
    }
    return best;
}

static const char *path_names[BN_ISA_COUNT] = {"scalar", "avx2", "avx512"};

static void print_header(void) {
    printf("%-22s %-7s %-16s %3s %11s %8s %7s %9s %8s %8s\n", "shape (rows x cols)", "type", "variant",
           "thr", "time/call", "GB/s", "% bw", "vs scalar", "beside", "% beside");
}

/* beside: the mean of the probes right before and after the row's timing (GB/s). */
static void print_row(const char *shape, const char *type, const char *variant, int threads, double seconds,
                      double bytes, double scalar_seconds, double beside) {
    double gbs = bytes / seconds / 1e9;
    char speedup[32] = "-";
    if (scalar_seconds > 0) snprintf(speedup, sizeof speedup, "%.1fx", scalar_seconds / seconds);
    printf("%-22s %-7s %-16s %3d %9.1f us %8.1f %6.0f%% %9s %8.1f %7.0f%%\n", shape, type,
           variant, threads, seconds * 1e6, gbs, 100.0 * gbs / bandwidth[threads], speedup,
           beside, beside > 0 ? 100.0 * gbs / beside : 0.0);
}

typedef struct ternary_bench {
    int rows, cols;
    size_t copy_bytes;
    int copies;
    uint8_t *arena;
    bn_ternary_matrix *matrices;
    int8_t *q;
    float scales[64];
    int32_t sums[64];
    float *y;
    int n_tokens;
} ternary_bench;

static void ternary_call(void *context, int copy, bn_threadpool *pool) {
    ternary_bench *b = context;
    bn_ternary_matmul(pool, b->y, &b->matrices[copy], b->q, b->scales, b->sums, b->n_tokens);
}

static bool ternary_setup(ternary_bench *b, int rows, int cols) {
    bn_error err;
    memset(b, 0, sizeof *b);
    b->rows = rows, b->cols = cols;
    size_t n = (size_t)rows * cols;
    b->copy_bytes = (n / 4 + 32 + 63) / 64 * 64;
    size_t pool_bytes = (quick ? 256ull : 512ull) << 20;
    b->copies = (int)(pool_bytes / b->copy_bytes);
    if (b->copies < 2) b->copies = 2;
    b->arena = aligned_alloc(64, b->copy_bytes * b->copies);
    b->matrices = calloc((size_t)b->copies, sizeof *b->matrices);
    b->q = malloc((size_t)64 * cols);
    b->y = malloc((size_t)64 * rows * sizeof *b->y);
    if (!b->arena || !b->matrices || !b->q || !b->y) return false;
    /* random valid I2_S bytes: each 2-bit field in 0..2 */
    uint8_t valid[81];
    int n_valid = 0;
    for (int v = 0; v < 256; v++)
        if (!(v & (v >> 1) & 0x55)) valid[n_valid++] = (uint8_t)v;
    for (int c = 0; c < b->copies; c++) {
        uint8_t *data = b->arena + (size_t)c * b->copy_bytes;
        for (size_t i = 0; i < n / 4; i += 8) {
            uint64_t r = rng_next();
            for (int k = 0; k < 8; k++) data[i + k] = valid[((r >> (8 * k)) & 0xff) % n_valid];
        }
        float scale = 0.0123f;
        memcpy(data + n / 4, &scale, 4);
        memset(data + n / 4 + 4, 0, 28);
        if (bn_ternary_matrix_prepare(&b->matrices[c], "bench", BN_TYPE_I2_S, rows, cols, data,
                                      &err) != BN_OK) {
            fprintf(stderr, "prepare: %s\n", err.message);
            return false;
        }
    }
    float *x = malloc((size_t)64 * cols * sizeof *x);
    for (size_t i = 0; i < (size_t)64 * cols; i++)
        x[i] = (float)((int64_t)(rng_next() % 2001) - 1000) / 1000.0f;
    bn_quantize_activations(b->q, b->scales, b->sums, x, 64, cols);
    free(x);
    return true;
}

static void ternary_free(ternary_bench *b) {
    for (int c = 0; c < b->copies && b->matrices; c++) bn_ternary_matrix_release(&b->matrices[c]);
    free(b->matrices), free(b->arena), free(b->q), free(b->y);
}

typedef struct head_bench {
    uint16_t *w;
    bn_int8_matrix int8;
    float *x;
    int8_t q[2560];
    float scale;
    int32_t sum;
    float *y;
    bool use_int8;
} head_bench;

static void head_call(void *context, int copy, bn_threadpool *pool) {
    (void)copy;
    head_bench *h = context;
    if (h->use_int8)
        bn_int8_matmul(pool, h->y, &h->int8, h->q, &h->scale, &h->sum, 1);
    else
        bn_f16_matmul(pool, h->y, h->w, h->x, 128256, 2560, 1);
}

/* ---- 3. the LM head in every type ---- */

typedef struct typed_head_bench {
    bn_head_matrix m;
    float x[2048], *y;
} typed_head_bench;

static void typed_head_call(void *context, int copy, bn_threadpool *pool) {
    (void)copy;
    typed_head_bench *h = context;
    bn_head_matmul(pool, h->y, &h->m, h->x, 1);
}

/* Random bytes with every fp16 block scale (d, dmin) set to a small normal value, so the bytes
 * are a valid file's: the kernels' speed does not depend on the values. */
static void fill_head_bytes(uint8_t *data, uint32_t type, int rows, int cols) {
    const size_t row_bytes = bn_head_row_bytes(type, cols), n = row_bytes * (size_t)rows;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = rng_next();
        memcpy(data + i, &r, n - i < 8 ? n - i : 8);
    }
    const uint16_t d = bn_fp32_to_fp16(0.0013f);
    if (type == BN_TYPE_F32) {
        float *f = (float *)data;
        for (size_t i = 0; i < n / 4; i++)
            f[i] = (float)((int64_t)(rng_next() % 2001) - 1000) / 20000.0f;
    } else if (type == BN_TYPE_BF16) {
        uint16_t *b = (uint16_t *)data;
        for (size_t i = 0; i < n / 2; i++) b[i] = (uint16_t)(0x3a00 | (b[i] & 0x81ff));
    } else if (type == BN_TYPE_Q8_0) {
        for (size_t i = 0; i < n; i += 34) memcpy(data + i, &d, 2);
    } else if (type == BN_TYPE_Q4_K) {
        for (size_t i = 0; i < n; i += 144) memcpy(data + i, &d, 2), memcpy(data + i + 2, &d, 2);
    } else if (type == BN_TYPE_Q6_K) {
        for (size_t i = 0; i < n; i += 210) memcpy(data + i + 208, &d, 2);
    }
}

static int bench_typed_heads(double window) {
    static const struct {
        uint32_t type;
        const char *name;
    } types[] = {{BN_TYPE_F32, "f32"},
                 {BN_TYPE_BF16, "bf16"},
                 {BN_TYPE_Q8_0, "q8_0"},
                 {BN_TYPE_Q6_K, "q6_k"},
                 {BN_TYPE_Q4_K, "q4_k"}};
    const int rows = 131072, cols = 2048;
    typed_head_bench h;
    h.y = malloc((size_t)rows * sizeof *h.y);
    if (!h.y) return 1;
    for (int i = 0; i < cols; i++) h.x[i] = (float)((int64_t)(rng_next() % 2001) - 1000) / 500.0f;
    printf("\nLM head per type, one token, Falcon3-1B shape (one copy; activation quantization "
           "included)\n");
    print_header();
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const size_t bytes = bn_head_row_bytes(types[k].type, cols) * (size_t)rows;
        uint8_t *data = aligned_alloc(64, (bytes + 63) / 64 * 64);
        bn_error err;
        if (!data) {
            fprintf(stderr, "out of memory for the %s head\n", types[k].name);
            free(h.y);
            return 1;
        }
        fill_head_bytes(data, types[k].type, rows, cols);
        if (bn_head_matrix_init(&h.m, "bench", types[k].type, rows, cols, data, &err) != BN_OK ||
            bn_head_reserve(&h.m, 1, &err) != BN_OK) {
            fprintf(stderr, "%s head: %s\n", types[k].name, err.message);
            free(data), free(h.y);
            return 1;
        }
        double scalar[3] = {0, 0, 0};
        for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
            if (!bn_isa_supported((bn_isa)isa) || (quick && isa == BN_ISA_SCALAR)) continue;
            bn_isa_set_active((bn_isa)isa);
            for (int threads = 1; threads <= 2; threads++) {
                double before = probe_gbs(threads);
                double t =
                    time_calls(typed_head_call, &h, 1, threads, isa ? window : 0.0, isa ? 3 : 1);
                double beside = 0.5 * (before + probe_gbs(threads));
                if (isa == BN_ISA_SCALAR) scalar[threads] = t;
                print_row("131072 x 2048", types[k].name, path_names[isa], threads, t,
                          (double)bytes, scalar[threads], beside);
            }
        }
        free(data);
    }
    free(h.y);
    return 0;
}

int main(int argc, char **argv) {
    bn_error err;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--cpu-time") == 0) {
            cpu_time = true;
        } else if (strcmp(argv[i], "--heads") == 0) {
            heads_only = true;
        } else {
            fprintf(stderr, "usage: %s [--quick] [--cpu-time] [--heads]\n", argv[0]);
            return 2;
        }
    }
    if (bn_threadpool_create(2, &pools[2], &err) != BN_OK) {
        fprintf(stderr, "thread pool: %s\n", err.message);
        return 1;
    }
    char features[512], cpu[160];
    bn_cpu_features_describe(features, sizeof features);
    bn_cpu_model_name(cpu, sizeof cpu);
    printf("bitnet-c kernel benchmark%s, %s clock\ncpu: %s\ncpu features: %s\n\n", quick ? " (--quick)" : "",
           cpu_time ? "thread CPU" : "wall", cpu, features);
    measure_bandwidth();
    if (bn_bandwidth_probe_create(&probe, pools[2], (quick ? 256ull : 512ull) << 20, &err) != BN_OK)
        fprintf(stderr, "bandwidth probe: %s (the beside columns stay 0)\n", err.message);

    const double window = quick ? 0.15 : 0.5;
    if (heads_only) {
        const int rc = bench_typed_heads(window);
        bn_bandwidth_probe_free(probe);
        bn_threadpool_free(pools[2]);
        return rc;
    }
    const int shapes[4][2] = {{2560, 2560}, {640, 2560}, {6912, 2560}, {2560, 6912}};
    double gemv_seconds[4][BN_ISA_COUNT][3] = {{{0}}}; /* per path: its fastest variant */
    printf("\nGEMV, one token (weights rotate through >= %d MiB of copies)\n", quick ? 256 : 512);
    print_header();
    for (int s = 0; s < 4; s++) {
        ternary_bench b;
        if (!ternary_setup(&b, shapes[s][0], shapes[s][1])) {
            fprintf(stderr, "out of memory for shape %dx%d\n", shapes[s][0], shapes[s][1]);
            return 1;
        }
        b.n_tokens = 1;
        char shape[32];
        snprintf(shape, sizeof shape, "%d x %d", b.rows, b.cols);
        double bytes = (double)b.rows * b.cols / 4;
        /* every GEMV variant (kernels/variants.h): each path, on AVX-512 each prefetch hint with
         * and without GFNI */
        bn_kernel_variant variants[BN_KERNEL_VARIANTS_MAX];
        const int n_variants = bn_kernel_variants(BN_KCLASS_GEMV, variants);
        for (int v = 0; v < n_variants; v++) {
            const int isa = variants[v].isa;
            char name[BN_KERNEL_VARIANT_NAME_MAX];
            bn_kernel_variant_name(variants[v], BN_KCLASS_GEMV, name, sizeof name);
            bn_isa_set_active((bn_isa)isa);
            bn_kernel_bind(BN_KCLASS_GEMV, variants[v]);
            for (int threads = 1; threads <= 2; threads++) {
                double before = probe_gbs(threads);
                double t = time_calls(ternary_call, &b, b.copies, threads, window, 3);
                double beside = 0.5 * (before + probe_gbs(threads));
                if (gemv_seconds[s][isa][threads] == 0 || t < gemv_seconds[s][isa][threads])
                    gemv_seconds[s][isa][threads] = t;
                print_row(shape, "i2_s", name, threads, t, bytes, gemv_seconds[s][0][threads], beside);
            }
        }
        bn_kernel_unbind_all();
        ternary_free(&b);
    }

    head_bench h = {0};
    const size_t head_n = (size_t)128256 * 2560;
    h.w = malloc(head_n * sizeof *h.w);
    h.x = malloc(2560 * sizeof *h.x);
    h.y = malloc(128256 * sizeof *h.y);
    if (!h.w || !h.x || !h.y) return 1;
    for (size_t i = 0; i < head_n; i++)
        h.w[i] = bn_fp32_to_fp16((float)((int64_t)(rng_next() % 2001) - 1000) / 20000.0f);
    for (int i = 0; i < 2560; i++) h.x[i] = (float)((int64_t)(rng_next() % 2001) - 1000) / 500.0f;
    bn_quantize_activations(h.q, &h.scale, &h.sum, h.x, 1, 2560);
    if (bn_int8_matrix_from_f16(&h.int8, h.w, 128256, 2560, pools[2], &err) != BN_OK) {
        fprintf(stderr, "int8 head: %s\n", err.message);
        return 1;
    }
    for (int kind = 0; kind < 2; kind++) {
        h.use_int8 = kind == 1;
        double scalar[3] = {0, 0, 0};
        /* every head variant (the int8 head has no prefetch knob: its paths only) */
        bn_kernel_variant variants[BN_KERNEL_VARIANTS_MAX];
        const int n_variants = bn_kernel_variants(BN_KCLASS_HEAD, variants);
        for (int v = 0; v < n_variants; v++) {
            const int isa = variants[v].isa;
            if (kind == 1 && variants[v].prefetch != BN_PREFETCH_T0) continue;
            if (kind == 0 && variants[v].vnni) continue; /* AVX-VNNI: integer products only */
            char name[BN_KERNEL_VARIANT_NAME_MAX];
            bn_kernel_variant_name(variants[v], BN_KCLASS_HEAD, name, sizeof name);
            if (kind == 1 && !variants[v].vnni) snprintf(name, sizeof name, "%s", path_names[isa]);
            bn_isa_set_active((bn_isa)isa);
            bn_kernel_bind(BN_KCLASS_HEAD, variants[v]);
            for (int threads = 1; threads <= 2; threads++) {
                double before = probe_gbs(threads);
                double t = time_calls(head_call, &h, 1, threads, isa ? window : 0.0, isa ? 3 : 1);
                double beside = 0.5 * (before + probe_gbs(threads));
                if (isa == 0) scalar[threads] = t;
                print_row("128256 x 2560", kind ? "int8" : "f16", name, threads, t,
                          (double)head_n * (kind ? 1 : 2), isa ? scalar[threads] : 0, beside);
            }
        }
        bn_kernel_unbind_all();
    }
    bn_int8_matrix_release(&h.int8);
    free(h.w), free(h.x), free(h.y);
    if (bench_typed_heads(window) != 0) return 1;

    printf("\nGEMM over 64 tokens vs 64 separate GEMVs (i2_s)\n");
    printf("%-22s %-10s %3s %12s %12s %12s %8s\n", "shape (rows x cols)", "variant", "thr", "gemm64",
           "gemm tok/s", "gemv tok/s", "ratio");
    for (int s = 0; s < 4; s += 2) {
        ternary_bench b;
        if (!ternary_setup(&b, shapes[s][0], shapes[s][1])) return 1;
        b.n_tokens = 64;
        char shape[32];
        snprintf(shape, sizeof shape, "%d x %d", b.rows, b.cols);
        /* every variant of the gemm class: each path, AVX2 with and without AVX-VNNI, AVX-512
         * with and without AMX tiles (where the CPU grants them) */
        bn_kernel_variant variants[BN_KERNEL_VARIANTS_MAX];
        const int n_variants = bn_kernel_variants(BN_KCLASS_GEMM, variants);
        for (int v = 0; v < n_variants; v++) {
            const int isa = variants[v].isa;
            if (quick && isa == BN_ISA_SCALAR) continue;
            char name[BN_KERNEL_VARIANT_NAME_MAX];
            bn_kernel_variant_name(variants[v], BN_KCLASS_GEMM, name, sizeof name);
            bn_isa_set_active((bn_isa)isa);
            bn_kernel_bind(BN_KCLASS_GEMM, variants[v]);
            for (int threads = 1; threads <= 2; threads++) {
                /* compute-bound: 8 copies (>= 13 MiB) rotate, each weight load serves 8 tokens */
                double t = time_calls(ternary_call, &b, b.copies < 8 ? b.copies : 8, threads,
                                      isa ? window : 0.0, 2);
                double gemm_tps = 64.0 / t, gemv_tps = 1.0 / gemv_seconds[s][isa][threads];
                printf("%-22s %-10s %3d %9.2f ms %12.0f %12.0f %7.1fx\n", shape, name, threads,
                       t * 1e3, gemm_tps, gemv_tps, gemm_tps / gemv_tps);
            }
        }
        bn_kernel_unbind_all();
        ternary_free(&b);
    }
    bn_bandwidth_probe_free(probe);
    bn_threadpool_free(pools[2]);
    return 0;
}
