/*
 * bench_decode_batch.c: decode throughput at batch 1 and with B concurrent sequences, on the CPU
 * or the CUDA backend: `bench_decode_batch -m MODEL [--device cpu|cuda] [--batch B]
 * [--prompt N] [--steps N] [-t THREADS] [--kernel-times]`. --kernel-times turns on the registry's
 * timing and adds each kernel's milliseconds per decode step ("ms_per_step") to the JSON.
 *
 * Each sequence first gets a prompt of random token ids (one prefill call), then `steps` decode
 * steps run one token per sequence per bn_model_decode() call: batch 1 is one sequence, batch B
 * puts B sequences into every call (the server's scheduler does the same), so the weights are read
 * once per step for all of them. Reports tokens/s per configuration (aggregate over sequences for
 * B) and the registry's kernel ids that ran, as one JSON line per configuration on stdout.
 */
#include "kernels/registry.h"
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Decode `steps` tokens for each of `batch` sequences; returns aggregate tokens/s or < 0. */
static double run(bn_model *model, int batch, int prompt, int steps, bn_error *err) {
    const int n_vocab = bn_model_get_config(model)->n_vocab;
    bn_sequence **seqs = calloc((size_t)batch, sizeof *seqs);
    bn_batch_entry *entries = malloc((size_t)(prompt > batch ? prompt : batch) * sizeof *entries);
    float *logits = malloc((size_t)batch * (size_t)n_vocab * sizeof *logits);
    double tps = -1;
    unsigned seed = 7;
    if (!seqs || !entries || !logits) {
        bn_error_set(err, BN_ERR_NOMEM, "out of memory for a batch of %d", batch);
        goto done;
    }
    for (int b = 0; b < batch; b++) {
        if (bn_sequence_create(model, prompt + steps + 1, &seqs[b], err) != BN_OK) goto done;
        for (int i = 0; i < prompt; i++)
            entries[i] =
                (bn_batch_entry){seqs[b], i, (int32_t)(rand_r(&seed) % (unsigned)n_vocab), i == prompt - 1};
        if (bn_model_decode(model, entries, prompt, logits, err) != BN_OK) goto done;
    }
    bn_kernel_reset_counts();
    double t0 = now_seconds();
    for (int s = 0; s < steps; s++) {
        for (int b = 0; b < batch; b++)
            entries[b] =
                (bn_batch_entry){seqs[b], prompt + s, (int32_t)(rand_r(&seed) % (unsigned)n_vocab), true};
        if (bn_model_decode(model, entries, batch, logits, err) != BN_OK) goto done;
    }
    tps = (double)steps * batch / (now_seconds() - t0);
done:
    if (seqs)
        for (int b = 0; b < batch; b++) bn_sequence_free(seqs[b]);
    free(seqs), free(entries), free(logits);
    return tps;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    bn_model_options options = bn_model_options_default();
    int batch = 16, prompt = 64, steps = 64;
    bool kernel_times = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bn_error perr;
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v)
            path = v, i++;
        else if (!strcmp(a, "--device") && v && bn_device_parse(&options.device, &options.device_index, v, &perr) == BN_OK)
            i++;
        else if (!strcmp(a, "--batch") && v && (batch = atoi(v)) >= 1)
            i++;
        else if (!strcmp(a, "--prompt") && v && (prompt = atoi(v)) >= 1)
            i++;
        else if (!strcmp(a, "--steps") && v && (steps = atoi(v)) >= 1)
            i++;
        else if (!strcmp(a, "--kernel-times"))
            kernel_times = true;
        else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && v && (options.n_threads = atoi(v)) >= 1)
            i++;
        else {
            fprintf(stderr, "usage: bench_decode_batch -m MODEL [--device cpu|cuda] [--batch B] [--prompt N] "
                            "[--steps N] [-t THREADS] [--kernel-times]\n");
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "bench_decode_batch: -m MODEL is required\n");
        return 2;
    }
    bn_error err;
    bn_model *model = NULL;
    double t_load = now_seconds();
    if (bn_model_load(path, &options, &model, &err) != BN_OK) {
        fprintf(stderr, "bench_decode_batch: %s\n", err.message);
        return 1;
    }
    t_load = now_seconds() - t_load;
    const char *gpu = bn_model_gpu_name(model);
    fprintf(stderr, "loaded %s on %s%s%s in %.2f s\n", path, bn_model_backend_name(model), gpu ? ": " : "",
            gpu ? gpu : "", t_load);
    bn_kernel_set_timing(kernel_times);
    int batches[2] = {1, batch};
    int rc = 0;
    for (int k = 0; k < (batch > 1 ? 2 : 1); k++) {
        double tps = run(model, batches[k], prompt, steps, &err);
        if (tps < 0) {
            fprintf(stderr, "bench_decode_batch: batch %d: %s\n", batches[k], err.message);
            rc = 1;
            break;
        }
        bn_kernel_stats stats[BN_KERNEL_MAX];
        size_t n = bn_kernel_snapshot(stats, BN_KERNEL_MAX);
        printf("{\"backend\": \"%s\", \"gpu\": \"%s\", \"batch\": %d, \"prompt\": %d, \"steps\": %d, "
               "\"decode_tokens_per_second\": %.2f, \"kernels\": [",
               bn_model_backend_name(model), gpu ? gpu : "", batches[k], prompt, steps, tps);
        for (size_t i = 0; i < n; i++) {
            printf("%s{\"id\": \"%s\", \"calls\": %llu", i ? ", " : "", stats[i].id,
                   (unsigned long long)stats[i].calls);
            if (kernel_times) printf(", \"ms_per_step\": %.3f", (double)stats[i].nanoseconds / 1e6 / steps);
            printf("}");
        }
        printf("]}\n");
        fflush(stdout);
    }
    bn_model_free(model);
    return rc;
}
