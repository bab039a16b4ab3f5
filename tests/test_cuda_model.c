/*
 * test_cuda_model.c: the whole model on the CUDA backend against the CPU backend, on small
 * synthetic models (I2_S under bitnet-b1.58), F16 and F32 KV caches and the int8 LM head; TQ2_0 and
 * TQ1_0 models (llama.cpp's `bitnet`) are refused with an error naming Q8_K (their activations,
 * spec 9.3, are not in the CUDA kernels yet). Needs a CUDA build and a GPU, else it prints why and exits
 * 77 (skipped).
 *
 * Checks: a 40-token prompt prefilled in one batch and then 8 greedy decode steps give, at every
 * position, logits bit-identical to the CPU's (both backends compute spec section 4.1's arithmetic
 * operation by operation in the same order; the models' widths are multiples of 16, so not even
 * SiLU's glibc-expf tail is involved); the cosine >= 0.999, position 0 within 5e-3 absolute and
 * greedy agreement outside near-ties (< 1e-3) are still reported to say how far apart they are
 * if they ever differ. The GPU is also batch invariant (one sequence alone and
 * the same sequence inside a batch with two others at other positions: identical logits, memcmp),
 * reports "cuda" as its backend and counts cuda.* kernels for the ternary product, attention and
 * RMSNorm in the registry (what receipts are built from). bn_model_decode_hidden's final hidden
 * states (what embeddings pool) are bit-identical to the CPU's too. Host memory: the backend binds
 * the weights from the mapped file straight into device memory, so loading a model of about 100
 * MiB of ternary weights on the GPU (once the CUDA context exists) grows the process's anonymous
 * memory (RssAnon) by a few MiB at most, never by a host copy of the weights (the CPU backend's
 * repacked matrices would be that copy).
 */
#include "testutil.h"

#include <stdio.h>

#ifndef BITNET_HAVE_CUDA

int main(void) {
    printf("SKIPPED: this build has no CUDA backend (nvcc was not found or BITNET_CUDA=OFF)\n");
    return 77;
}

#else

#include "kernels/cuda/cuda_backend.h"
#include "kernels/registry.h"
#include "model/model.h"
#include "model/synth.h"
#include "quant/quant_format.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { PROMPT = 40, DECODE = 8 };

static bn_model *load(const char *path, bn_device device, uint32_t kv_type, bool int8_head) {
    bn_model_options o = bn_model_options_default();
    o.device = device;
    o.kv_type_k = o.kv_type_v = kv_type;
    o.int8_lm_head = int8_head;
    o.n_threads = 2;
    bn_model *m = NULL;
    bn_error err;
    bn_status st = bn_model_load(path, &o, &m, &err);
    CHECK_OK(st, &err);
    return st == BN_OK ? m : NULL;
}

/* Prefill of the prompt (one batch) then greedy decode; logits of every position to out
 * ((PROMPT + DECODE) x n_vocab); the decoded tokens to tokens[PROMPT..]. When forced is non-NULL
 * its tokens are fed instead of this model's own greedy choices (so both backends see the same
 * sequence). */
static bool run(bn_model *m, int32_t *tokens, const int32_t *forced, float *out) {
    int n_vocab = bn_model_get_config(m)->n_vocab;
    bn_sequence *seq = NULL;
    bn_error err;
    bn_status st = bn_sequence_create(m, 64, &seq, &err);
    CHECK_OK(st, &err);
    if (st != BN_OK) return false;
    bn_batch_entry e[PROMPT];
    for (int i = 0; i < PROMPT; i++) e[i] = (bn_batch_entry){seq, i, tokens[i], true};
    st = bn_model_decode(m, e, PROMPT, out, &err);
    CHECK_OK(st, &err);
    for (int step = 0; step < DECODE && st == BN_OK; step++) {
        const float *last = out + (size_t)(PROMPT + step - 1) * n_vocab;
        int best = 0;
        for (int v = 1; v < n_vocab; v++)
            if (last[v] > last[best]) best = v;
        tokens[PROMPT + step] = forced ? forced[PROMPT + step] : best;
        bn_batch_entry one = {seq, PROMPT + step, tokens[PROMPT + step], true};
        st = bn_model_decode(m, &one, 1, out + (size_t)(PROMPT + step) * n_vocab, &err);
        CHECK_OK(st, &err);
    }
    bn_sequence_free(seq);
    return st == BN_OK;
}

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++)
        ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb);
}

static void top2(const float *x, int n, int *best, float *gap) {
    int b = 0, s = -1;
    for (int i = 1; i < n; i++) {
        if (x[i] > x[b])
            s = b, b = i;
        else if (s < 0 || x[i] > x[s])
            s = i;
    }
    *best = b;
    *gap = x[b] - x[s];
}

static void compare(const char *path, const char *label, uint32_t kv_type, bool int8_head) {
    bn_model *cpu = load(path, BN_DEVICE_CPU, kv_type, int8_head);
    bn_model *gpu = load(path, BN_DEVICE_CUDA, kv_type, int8_head);
    if (!cpu || !gpu) {
        bn_model_free(cpu), bn_model_free(gpu);
        return;
    }
    CHECK(!strcmp(bn_model_backend_name(gpu), "cuda"));
    int n_vocab = bn_model_get_config(cpu)->n_vocab;
    size_t total = (size_t)(PROMPT + DECODE) * n_vocab;
    float *lc = malloc(total * sizeof(float)), *lg = malloc(total * sizeof(float));
    int32_t tc[PROMPT + DECODE], tg[PROMPT + DECODE];
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 99);
    for (int i = 0; i < PROMPT; i++) tc[i] = tg[i] = (int32_t)bn_test_rng_range(&rng, 0, n_vocab - 1);
    bn_kernel_reset_counts();
    bool ok = run(cpu, tc, NULL, lc) && run(gpu, tg, tc, lg);
    if (ok) {
        double min_cos = 1, max_abs0 = 0;
        int first_divergence = -1;
        for (int p = 0; p < PROMPT + DECODE; p++) {
            double c = cosine(lc + (size_t)p * n_vocab, lg + (size_t)p * n_vocab, n_vocab);
            if (c < min_cos) min_cos = c;
        }
        for (int v = 0; v < n_vocab; v++) max_abs0 = fmax(max_abs0, fabs((double)lc[v] - lg[v]));
        for (int p = PROMPT - 1; p < PROMPT + DECODE; p++) {
            int bc, bg;
            float gap, gap_g;
            top2(lc + (size_t)p * n_vocab, n_vocab, &bc, &gap);
            top2(lg + (size_t)p * n_vocab, n_vocab, &bg, &gap_g);
            if (bc != bg && gap >= 1e-3f && first_divergence < 0) first_divergence = p;
            if (gap < 1e-3f) break; /* a near-tie: later tokens may legitimately differ */
        }
        int identical = 0;
        for (int p = 0; p < PROMPT + DECODE; p++)
            identical += !memcmp(lc + (size_t)p * n_vocab, lg + (size_t)p * n_vocab, n_vocab * sizeof(float));
        printf("%s: min cosine %.6f, position 0 max abs diff %.3g, %d of %d positions identical\n", label,
               min_cos, max_abs0, identical, PROMPT + DECODE);
        /* every op computes the CPU reference's arithmetic in its order: identical logits */
        CHECKF(identical == PROMPT + DECODE, "%s: only %d of %d positions identical", label, identical,
               PROMPT + DECODE);
        CHECKF(min_cos >= 0.999, "%s: min cosine %.6f < 0.999", label, min_cos);
        CHECKF(max_abs0 <= 5e-3, "%s: position 0 differs by %.3g", label, max_abs0);
        CHECKF(first_divergence < 0, "%s: greedy token differs at position %d", label, first_divergence);
    }
    /* the receipts' evidence: the main ops ran as cuda kernels */
    bn_kernel_stats stats[BN_KERNEL_MAX];
    size_t n = bn_kernel_snapshot(stats, BN_KERNEL_MAX);
    bool ternary = false, attention = false, rmsnorm = false;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(stats[i].id, "cuda.", 5)) continue;
        ternary |= strstr(stats[i].id, ".gemv") && !strstr(stats[i].id, "f16") && !strstr(stats[i].id, "i8.");
        attention |= !strcmp(stats[i].id, "cuda.attention");
        rmsnorm |= !strcmp(stats[i].id, "cuda.rmsnorm");
    }
    CHECKF(ternary && attention && rmsnorm, "%s: cuda kernels missing from the registry", label);
    free(lc), free(lg);
    bn_model_free(cpu), bn_model_free(gpu);
}

/* One sequence alone vs the same tokens inside a batch with two other sequences. */
static void batch_invariance(const char *path) {
    bn_model *gpu = load(path, BN_DEVICE_CUDA, BN_TYPE_F16, false);
    if (!gpu) return;
    int n_vocab = bn_model_get_config(gpu)->n_vocab;
    enum { N = 12 };
    int32_t tokens[N];
    for (int i = 0; i < N; i++) tokens[i] = (i * 37 + 11) % n_vocab;
    float *alone = malloc((size_t)N * n_vocab * sizeof(float));
    float *mixed = malloc((size_t)3 * N * n_vocab * sizeof(float));
    bn_sequence *a = NULL, *b = NULL, *c = NULL;
    bn_error err;
    CHECK_OK(bn_sequence_create(gpu, 600, &a, &err), &err);
    CHECK_OK(bn_sequence_create(gpu, 600, &b, &err), &err);
    CHECK_OK(bn_sequence_create(gpu, 600, &c, &err), &err);
    bn_batch_entry e[3 * N];
    for (int i = 0; i < N; i++) e[i] = (bn_batch_entry){a, i, tokens[i], true};
    CHECK_OK(bn_model_decode(gpu, e, N, alone, &err), &err);
    /* b first gets a 300-token prefix so the batch mixes contexts of very different lengths */
    bn_batch_entry *prefix = malloc(300 * sizeof *prefix);
    for (int i = 0; i < 300; i++) prefix[i] = (bn_batch_entry){b, i, (i * 7) % n_vocab, false};
    CHECK_OK(bn_model_decode(gpu, prefix, 300, NULL, &err), &err);
    free(prefix);
    /* b and c interleaved: entry 2i is b's, entry 2i + 1 is c's (the same tokens as a's) */
    int k = 0;
    for (int i = 0; i < N; i++) {
        e[k++] = (bn_batch_entry){b, 300 + i, tokens[(i + 3) % N], true};
        e[k++] = (bn_batch_entry){c, i, tokens[i], true};
    }
    CHECK_OK(bn_model_decode(gpu, e, k, mixed, &err), &err);
    int differ = 0;
    for (int i = 0; i < N; i++)
        differ += memcmp(alone + (size_t)i * n_vocab, mixed + (size_t)(2 * i + 1) * n_vocab,
                         n_vocab * sizeof(float)) != 0;
    CHECKF(differ == 0, "batch invariance on the GPU: %d of %d positions differ", differ, N);
    bn_sequence_free(a), bn_sequence_free(b), bn_sequence_free(c);
    free(alone), free(mixed);
    bn_model_free(gpu);
}

/* bn_model_decode_hidden (embeddings' final hidden states) on the GPU equals the CPU's, bit for
 * bit, like the logits computed from them. */
static void hidden_states(const char *path) {
    bn_model *cpu = load(path, BN_DEVICE_CPU, BN_TYPE_F16, false), *gpu = load(path, BN_DEVICE_CUDA, BN_TYPE_F16, false);
    if (!cpu || !gpu) {
        bn_model_free(cpu), bn_model_free(gpu);
        return;
    }
    enum { N = 20 };
    int dim = bn_model_get_config(gpu)->dim, n_vocab = bn_model_get_config(gpu)->n_vocab;
    float *rows[2];
    bn_model *models[2] = {cpu, gpu};
    for (int k = 0; k < 2; k++) {
        rows[k] = calloc((size_t)N * (size_t)dim, sizeof(float));
        bn_sequence *seq = NULL;
        bn_error err;
        CHECK_OK(bn_sequence_create(models[k], N, &seq, &err), &err);
        bn_batch_entry e[N];
        for (int i = 0; i < N; i++) e[i] = (bn_batch_entry){seq, i, (i * 53 + 7) % n_vocab, true};
        if (seq) CHECK_OK(bn_model_decode_hidden(models[k], e, N, rows[k], &err), &err);
        bn_sequence_free(seq);
    }
    CHECKF(!memcmp(rows[0], rows[1], (size_t)N * (size_t)dim * sizeof(float)),
           "final hidden states on the GPU equal the CPU's");
    free(rows[0]), free(rows[1]);
    bn_model_free(cpu), bn_model_free(gpu);
}

/* The process's anonymous resident memory (RssAnon of /proc/self/status) in bytes; 0 if unknown. */
static uint64_t rss_anon_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "RssAnon: %llu kB", &kib) == 1) break;
    fclose(f);
    return (uint64_t)kib * 1024;
}

/* A CUDA load keeps no host copy of the weights: RssAnon grows by less than 16 MiB for a model of
 * about 100 MiB of I2_S projections (the CUDA context is made first by warm, so its own host
 * memory is not counted). */
static void host_memory_after_load(const char *dir, const char *warm) {
    bn_synth_options o;
    bn_error err;
    CHECK_OK(bn_synth_preset(&o, "small", &err), &err);
    o.n_layers = 8, o.dim = 2048, o.ffn_dim = 5632, o.n_heads = 16, o.n_kv_heads = 4;
    char *path = bn_test_path(dir, "rss.gguf");
    CHECK_OK(bn_synth_write(path, &o, &err), &err);
    bn_model *context = load(warm, BN_DEVICE_CUDA, BN_TYPE_F16, false);
    const uint64_t before = rss_anon_bytes();
    bn_model *gpu = load(path, BN_DEVICE_CUDA, BN_TYPE_F16, false);
    const uint64_t after = rss_anon_bytes();
    const double projections_mib = 8.0 * (4.0 * 2048 * 2048 + 3.0 * 2048 * 5632) / 4 / (1 << 20);
    printf("host RssAnon: %.1f MiB before a CUDA load, %.1f MiB after (%.0f MiB of I2_S projections)\n",
           before / 1048576.0, after / 1048576.0, projections_mib);
    if (gpu && before > 0)
        CHECKF(after < before + ((uint64_t)16 << 20), "a CUDA load grew RssAnon by %.1f MiB (a host copy?)",
               (after - (double)before) / 1048576.0);
    bn_model_free(gpu), bn_model_free(context);
    free(path);
}

int main(void) {
    char name[128];
    bn_error err;
    if (bn_cuda_device_info(0, name, sizeof name, &err) != BN_OK) {
        printf("SKIPPED: %s\n", err.message);
        return 77;
    }
    printf("device: %s\n", name);
    char *dir = bn_test_tmpdir("test_cuda_model");
    static const struct {
        uint32_t format;
        const char *file;
    } models[] = {{BN_TYPE_I2_S, "i2s.gguf"}, {BN_TYPE_TQ2_0, "tq2.gguf"}, {BN_TYPE_TQ1_0, "tq1.gguf"}};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        bn_synth_options o;
        CHECK_OK(bn_synth_preset(&o, "tiny", &err), &err);
        o.format = models[i].format;
        o.seed = 5 + i;
        /* TQ2_0 / TQ1_0 blocks are 256 wide, so the K/V projection's rows (kv-heads x head size)
         * must be too: all heads get their own K/V head (tiny's GQA 4/2 gives 128) */
        if (o.format != BN_TYPE_I2_S) o.n_kv_heads = o.n_heads;
        char *path = bn_test_path(dir, models[i].file);
        CHECK_OK(bn_synth_write(path, &o, &err), &err);
        if (o.format != BN_TYPE_I2_S) {
            /* TQ formats take Q8_K activations (spec 9.3), not in the CUDA kernels yet: refused */
            bn_model_options mo = bn_model_options_default();
            mo.device = BN_DEVICE_CUDA;
            bn_model *refused = NULL;
            CHECK(bn_model_load(path, &mo, &refused, &err) == BN_ERR_UNSUPPORTED);
            CHECKF(strstr(err.message, "Q8_K") != NULL, "refusal names Q8_K: %s", err.message);
            bn_model_free(refused);
            free(path);
            continue;
        }
        compare(path, models[i].file, BN_TYPE_F16, false);
        if (i == 0) {
            compare(path, "i2s.gguf, F32 KV cache", BN_TYPE_F32, false);
            compare(path, "i2s.gguf, q8_0 KV cache", BN_TYPE_Q8_0, false);
            compare(path, "i2s.gguf, int8 LM head", BN_TYPE_F16, true);
            batch_invariance(path);
            hidden_states(path);
            host_memory_after_load(dir, path);
        }
        free(path);
    }
    free(dir);
    return bn_test_finish("test_cuda_model");
}

#endif
