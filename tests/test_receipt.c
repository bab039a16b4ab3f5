/*
 * test_receipt.c: receipts and the pieces `bitnet bench` builds them from.
 * - SHA-256 (OpenSSL underneath): published test vectors, and a file hash across chunk
 *   boundaries equal to the in-memory hash.
 * - peak RSS: positive, never below the current RSS, and grows when 64 MiB are touched.
 * - streaming bandwidth: the AVX2 and scalar summing loops agree; a small measurement reads every
 *   byte (its checksum passes) and reports its buffer and thread count.
 * - the receipt builder's output passes the verifier; the builder refuses NaN figures.
 * - deleting any required field of a good receipt is rejected naming that field.
 * - cuda receipts: kernel-id classification of the main ops, --require-gpu-kernels, a main op on
 *   the CPU, foreign and duplicate ids.
 * - every receipt in tests/data/receipts/expected.tsv gets its expected verdict and reason.
 * - random byte corruptions of a good receipt never crash the verifier (run under ASan in CI).
 */
#include "core/rss.h"
#include "core/sha256.h"
#include "kernels/cpu_features.h"
#include "kernels/threadpool.h"
#include "testutil.h"
#include "tools/bandwidth.h"
#include "tools/receipt.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_sha256(void) {
    bn_error err;
    char hex[BN_SHA256_HEX_SIZE];
    CHECK_OK(bn_sha256_hex(hex, "", 0, &err), &err);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    CHECK_OK(bn_sha256_hex(hex, "abc", 3, &err), &err);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));

    char *dir = bn_test_tmpdir("receipt_sha256");
    char *path = bn_test_path(dir, "million-a.bin");
    size_t n = 1000000;
    char *a = malloc(n);
    memset(a, 'a', n);
    CHECK(bn_test_write_file(path, a, n));
    CHECK_OK(bn_sha256_file_hex(hex, path, &err), &err);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    free(a);

    /* 3 MiB + 17 bytes: several read chunks and a partial last one. */
    size_t big = (3u << 20) + 17;
    unsigned char *data = malloc(big);
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 7);
    for (size_t i = 0; i < big; i++) data[i] = (unsigned char)bn_test_rng_next(&rng);
    CHECK(bn_test_write_file(path, data, big));
    char from_file[BN_SHA256_HEX_SIZE], from_memory[BN_SHA256_HEX_SIZE];
    CHECK_OK(bn_sha256_file_hex(from_file, path, &err), &err);
    CHECK_OK(bn_sha256_hex(from_memory, data, big, &err), &err);
    CHECK(!strcmp(from_file, from_memory));
    free(data);

    char *missing = bn_test_path(dir, "does-not-exist.gguf");
    CHECK(bn_sha256_file_hex(hex, missing, &err) == BN_ERR_IO);
    CHECK_STR_CONTAINS(err.message, "does-not-exist.gguf");
    free(missing);
    free(path);
    free(dir);
}

static void test_rss(void) {
    bn_error err;
    uint64_t peak0 = 0, current = 0, peak1 = 0;
    /* Current first: the peak read afterwards can only be larger. */
    CHECK_OK(bn_current_rss_bytes(&current, &err), &err);
    CHECK_OK(bn_peak_rss_bytes(&peak0, &err), &err);
    CHECK(peak0 > 0);
    CHECK(peak0 >= current);
    size_t size = (size_t)64 << 20;
    volatile unsigned char *block = malloc(size);
    for (size_t i = 0; i < size; i += 4096) block[i] = 1;
    CHECK_OK(bn_peak_rss_bytes(&peak1, &err), &err);
    CHECKF(peak1 >= current + ((uint64_t)60 << 20), "peak %llu, before %llu",
           (unsigned long long)peak1, (unsigned long long)current);
    free((void *)block);
}

static void test_bandwidth(void) {
    size_t bytes = (size_t)1 << 20;
    uint64_t *data = aligned_alloc(64, bytes);
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 11);
    uint64_t expected = 0;
    for (size_t i = 0; i < bytes / 8; i++) {
        data[i] = bn_test_rng_next(&rng);
        expected += data[i];
    }
    CHECK(bn_bandwidth_sum_scalar(data, bytes) == expected);
#ifdef BN_ARCH_X86
    if (bn_isa_supported(BN_ISA_AVX2)) CHECK(bn_bandwidth_sum_avx2(data, bytes) == expected);
#endif
#ifdef BN_ARCH_ARM64
    CHECK(bn_bandwidth_sum_neon(data, bytes) == expected);
#endif
    free(data);

    bn_error err;
    bn_threadpool *pool = NULL;
    CHECK_OK(bn_threadpool_create(3, &pool, &err), &err);
    bn_bandwidth_result result;
    CHECK_OK(bn_measure_read_bandwidth(&result, pool, ((size_t)4 << 20) + 100, 3, &err), &err);
    CHECK(result.buffer_bytes == (size_t)4 << 20); /* rounded down to whole pages */
    CHECK(result.threads == 3);
    CHECK(result.passes == 3);
    CHECK(result.median_bytes_per_second > 0 && isfinite(result.median_bytes_per_second));
    CHECK(result.best_bytes_per_second >= result.median_bytes_per_second);
    CHECK(bn_measure_read_bandwidth(&result, pool, (size_t)4 << 20, 0, &err) == BN_ERR_INVALID);
    /* the probe: kept buffer, repeated short measurements, each checksummed */
    bn_bandwidth_probe *probe = NULL;
    CHECK_OK(bn_bandwidth_probe_create(&probe, pool, ((size_t)2 << 20) + 5, &err), &err);
    if (probe) {
        CHECK(bn_bandwidth_probe_bytes(probe) == (size_t)2 << 20);
        for (int i = 0; i < 3; i++) {
            double bps = 0;
            CHECK_OK(bn_bandwidth_probe_run(probe, pool, 2, &bps, &err), &err);
            CHECK(bps > 0 && isfinite(bps));
        }
        double bps;
        CHECK(bn_bandwidth_probe_run(probe, pool, 0, &bps, &err) == BN_ERR_INVALID);
        bn_bandwidth_probe_free(probe);
    }
    bn_threadpool_free(pool);
}

/* A complete receipt as `bitnet bench` fills it. */
static void fill_receipt(bn_receipt *r, bn_receipt_kernel *kernels, bn_receipt_tensor_type *types) {
    memset(r, 0, sizeof *r);
    kernels[0] = (bn_receipt_kernel){"cpu.i2s.gemv.avx2", 4200, 812.5};
    kernels[1] = (bn_receipt_kernel){"cpu.rmsnorm.scalar", 900, 3.25};
    kernels[2] = (bn_receipt_kernel){"cpu.attention.avx2", 300, 10.0};
    types[0] = (bn_receipt_tensor_type){"i2_s", 210};
    types[1] = (bn_receipt_tensor_type){"f32", 121};
    types[2] = (bn_receipt_tensor_type){"f16", 1};
    r->engine_version = "0.1.0";
    r->git_commit = "0123456789ab";
    r->model_path = "model.gguf";
    r->model_sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    r->architecture = "bitnet-b1.58";
    r->parameter_count = 2412820480ull;
    r->model_file_bytes = 1187801280ull;
    r->tensor_types = types;
    r->n_tensor_types = 3;
    r->backend = "cpu";
    r->compute_path = "real";
    r->cpu_features = "sse4.2 avx2 fma";
    r->isa = "avx2";
    r->threads = 2;
    r->kernels = kernels;
    r->n_kernels = 3;
    r->pp = (bn_receipt_result){true, 512, 5, 104.5, 1.5};
    r->tg = (bn_receipt_result){true, 128, 5, 15.9, 0.25};
    r->peak_rss_bytes = 1300000000ull;
    r->seed = 42;
    r->bandwidth = (bn_receipt_bandwidth){.present = true,
                                          .bytes_per_token = 1181650000ull,
                                          .tg_effective_gb_per_s = 18.79,
                                          .stream_read_gb_per_s = 21.5,
                                          .stream_buffer_bytes = 512u << 20,
                                          .beside_present = true,
                                          .stream_beside_tg_gb_per_s = 22.4,
                                          .ratio_beside_tg = 0.84};
}

/* Required fields: removing any of them must be rejected with "<path>: missing". */
static const char *const required_paths[] = {
    "schema_version", "timestamp", "engine", "engine.version", "engine.git_commit", "model",
    "model.path", "model.sha256", "model.architecture", "model.parameter_count",
    "model.tensor_types", "backend", "compute_path", "cpu", "cpu.features", "cpu.isa", "threads",
    "kernels", "kernels[0].id", "kernels[0].calls", "kernels[0].time_ms", "results",
    "results.pp.n_tokens", "results.pp.repetitions", "results.pp.tokens_per_second",
    "results.pp.stdev", "results.tg.tokens_per_second", "peak_rss_bytes", "seed",
    "bandwidth.bytes_per_token", "bandwidth.tg_effective_gb_per_s", "bandwidth.stream_read_gb_per_s",
    "bandwidth.stream_buffer_bytes",
};

/* Deletes the field at a dotted path ("kernels[0].id") from root; false if not found. */
static bool delete_path(json_t *root, const char *path) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *node = root;
    char *part = buf;
    for (;;) {
        char *dot = strchr(part, '.');
        if (dot) *dot = '\0';
        char *bracket = strchr(part, '[');
        int index = -1;
        if (bracket) {
            *bracket = '\0';
            index = atoi(bracket + 1);
        }
        if (!dot && index < 0) return json_object_del(node, part) == 0;
        node = json_object_get(node, part);
        if (index >= 0) node = json_array_get(node, (size_t)index);
        if (!node) return false;
        if (!dot) return false;
        part = dot + 1;
    }
}

static void test_builder_and_missing_fields(void) {
    bn_receipt r;
    bn_receipt_kernel kernels[3];
    bn_receipt_tensor_type types[3];
    fill_receipt(&r, kernels, types);
    bn_error err;
    char *text = NULL;
    CHECK_OK(bn_receipt_to_json(&text, &r, &err), &err);
    if (!text) return;
    char summary[256];
    CHECK_OK(bn_receipt_verify_json_summary(summary, sizeof summary, text, strlen(text), false, &err), &err);
    CHECK_STR_CONTAINS(summary, "cpu, bitnet-b1.58, 2 threads, isa avx2, pp512 104.50 t/s, tg128 15.90 t/s, 3 kernels");
    /* A cpu receipt never passes --require-gpu-kernels. */
    CHECK(bn_receipt_verify_json(text, strlen(text), true, &err) == BN_ERR_MISMATCH);

    json_error_t parse_error;
    json_t *root = json_loads(text, 0, &parse_error);
    CHECK(root != NULL);
    if (!root) {
        free(text);
        return;
    }
    CHECK(!strcmp(json_string_value(json_object_get(root, "schema_version")), "1.0.0"));
    CHECK(!strcmp(json_string_value(json_object_get(root, "compute_path")), "real"));
    json_t *k0 = json_array_get(json_object_get(root, "kernels"), 0);
    CHECK(!strcmp(json_string_value(json_object_get(k0, "id")), "cpu.i2s.gemv.avx2"));
    CHECK(json_integer_value(json_object_get(k0, "calls")) == 4200);
    json_t *bw = json_object_get(root, "bandwidth");
    CHECK(fabs(json_number_value(json_object_get(bw, "ratio")) - 18.79 / 21.5) < 1e-9);
    const char *ts = json_string_value(json_object_get(root, "timestamp"));
    CHECK(ts && strlen(ts) == 20 && ts[10] == 'T' && ts[19] == 'Z');

    for (size_t i = 0; i < sizeof required_paths / sizeof required_paths[0]; i++) {
        json_t *copy = json_deep_copy(root);
        CHECKF(delete_path(copy, required_paths[i]), "path %s not in the built receipt", required_paths[i]);
        char *broken = json_dumps(copy, 0);
        bn_error_clear(&err);
        bn_status status = bn_receipt_verify_json(broken, strlen(broken), false, &err);
        char expected[160];
        snprintf(expected, sizeof expected, "%s: missing", required_paths[i]);
        CHECKF(status == BN_ERR_FORMAT && strstr(err.message, expected),
               "deleting %s: status %d, message \"%s\"", required_paths[i], status, err.message);
        free(broken);
        json_decref(copy);
    }
    CHECK(fabs(json_number_value(json_object_get(bw, "stream_beside_tg_gb_per_s")) - 22.4) < 1e-9);
    CHECK(fabs(json_number_value(json_object_get(bw, "ratio_beside_tg")) - 0.84) < 1e-9);
    /* The probes beside tg are optional, but both or neither, and positive. */
    {
        json_t *c = json_deep_copy(root);
        json_t *cb = json_object_get(c, "bandwidth");
        json_object_del(cb, "ratio_beside_tg");
        char *t = json_dumps(c, 0);
        CHECK(bn_receipt_verify_json(t, strlen(t), false, &err) == BN_ERR_FORMAT &&
              strstr(err.message, "go together"));
        free(t);
        json_object_del(cb, "stream_beside_tg_gb_per_s");
        t = json_dumps(c, 0);
        CHECK_OK(bn_receipt_verify_json(t, strlen(t), false, &err), &err);
        free(t);
        json_object_set_new(cb, "stream_beside_tg_gb_per_s", json_real(-3.0));
        json_object_set_new(cb, "ratio_beside_tg", json_real(0.8));
        t = json_dumps(c, 0);
        CHECK(bn_receipt_verify_json(t, strlen(t), false, &err) == BN_ERR_MISMATCH &&
              strstr(err.message, "stream_beside_tg_gb_per_s"));
        free(t);
        json_decref(c);
    }
    /* The derived bandwidth.ratio may be left out. */
    json_t *copy = json_deep_copy(root);
    json_object_del(json_object_get(copy, "bandwidth"), "ratio");
    char *no_ratio = json_dumps(copy, 0);
    CHECK_OK(bn_receipt_verify_json(no_ratio, strlen(no_ratio), false, &err), &err);
    free(no_ratio);
    json_decref(copy);
    /* pp and tg are each optional, but not both. */
    copy = json_deep_copy(root);
    json_object_del(json_object_get(copy, "results"), "pp");
    char *one = json_dumps(copy, 0);
    CHECK_OK(bn_receipt_verify_json(one, strlen(one), false, &err), &err);
    free(one);
    json_object_del(json_object_get(copy, "results"), "tg");
    char *none = json_dumps(copy, 0);
    CHECK(bn_receipt_verify_json(none, strlen(none), false, &err) == BN_ERR_MISMATCH);
    CHECK_STR_CONTAINS(err.message, "results: neither pp nor tg present");
    free(none);
    json_decref(copy);
    json_decref(root);
    free(text);

    /* The builder refuses what JSON cannot say. */
    r.tg.tokens_per_second = NAN;
    CHECK(bn_receipt_to_json(&text, &r, &err) == BN_ERR_RANGE);
    CHECK(text == NULL);
    CHECK_STR_CONTAINS(err.message, "tokens_per_second is not finite");
}

/* A cuda receipt built with the given kernel ids, verified with require_gpu_kernels. */
static bn_status verify_cuda_kernels(const char *const *ids, size_t n, bool require_gpu, bn_error *err) {
    bn_receipt r;
    bn_receipt_kernel kernels[8];
    bn_receipt_tensor_type types[3];
    fill_receipt(&r, kernels, types);
    for (size_t i = 0; i < n; i++) kernels[i] = (bn_receipt_kernel){ids[i], 10, 1.0};
    r.n_kernels = n;
    r.backend = "cuda";
    r.gpu_name = "NVIDIA H100";
    char *text = NULL;
    bn_status status = bn_receipt_to_json(&text, &r, err);
    if (status == BN_OK) status = bn_receipt_verify_json(text, strlen(text), require_gpu, err);
    free(text);
    return status;
}

static void test_gpu_kernel_rules(void) {
    bn_error err;
    /* Other spellings of the three main ops count too. */
    const char *const all[] = {"cuda.ternary_gemv", "cuda.flash_attn.decode", "cuda.rms_norm_f32",
                               "cuda.f16.gemv", "cpu.sampler.argmax"};
    CHECK_OK(verify_cuda_kernels(all, 5, true, &err), &err);
    const char *const no_norm[] = {"cuda.tq2_0.gemm", "cuda.attention", "cuda.f16.gemv"};
    CHECK_OK(verify_cuda_kernels(no_norm, 3, false, &err), &err);
    CHECK(verify_cuda_kernels(no_norm, 3, true, &err) == BN_ERR_MISMATCH);
    CHECK_STR_CONTAINS(err.message, "--require-gpu-kernels: no cuda rmsnorm kernel ran");
    const char *const no_matmul[] = {"cuda.attention", "cuda.rmsnorm"};
    CHECK(verify_cuda_kernels(no_matmul, 2, true, &err) == BN_ERR_MISMATCH);
    CHECK_STR_CONTAINS(err.message, "no cuda ternary matmul kernel ran");
    /* A cuda receipt whose main op ran on the CPU is inconsistent even without the option. */
    const char *const cpu_norm[] = {"cuda.i2s.gemv", "cuda.attention", "cpu.rmsnorm.avx2"};
    CHECK(verify_cuda_kernels(cpu_norm, 3, false, &err) == BN_ERR_MISMATCH);
    CHECK_STR_CONTAINS(err.message, "rmsnorm kernel \"cpu.rmsnorm.avx2\" ran on the CPU but backend is \"cuda\"");
    const char *const cpu_only[] = {"cpu.sampler.argmax"};
    CHECK(verify_cuda_kernels(cpu_only, 1, false, &err) == BN_ERR_MISMATCH);
    CHECK_STR_CONTAINS(err.message, "backend is \"cuda\" but no \"cuda.\" kernel ran");
    const char *const foreign[] = {"cuda.i2s.gemv", "metal.attention"};
    CHECK(verify_cuda_kernels(foreign, 2, false, &err) == BN_ERR_MISMATCH);
    CHECK_STR_CONTAINS(err.message, "belongs to neither the cpu nor the cuda backend");
    const char *const twice[] = {"cuda.i2s.gemv", "cuda.i2s.gemv"};
    CHECK(verify_cuda_kernels(twice, 2, false, &err) == BN_ERR_MISMATCH);
    CHECK_STR_CONTAINS(err.message, "listed twice");
}

static void test_expected_table(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/receipts/expected.tsv", bn_test_source_dir());
    size_t size = 0;
    char *table = bn_test_read_file(path, &size);
    CHECKF(table != NULL, "cannot read %s", path);
    if (!table) return;
    table = realloc(table, size + 1);
    table[size] = '\0';
    int cases = 0, rejected = 0;
    for (char *line = strtok(table, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || !line[0]) continue;
        char *file = line, *option = strchr(file, '\t');
        if (!option) continue;
        *option++ = '\0';
        char *expected = strchr(option, '\t');
        if (!expected) continue;
        *expected++ = '\0';
        char receipt_path[1024];
        snprintf(receipt_path, sizeof receipt_path, "%s/tests/data/receipts/%s", bn_test_source_dir(), file);
        size_t len = 0;
        char *json = bn_test_read_file(receipt_path, &len);
        CHECKF(json != NULL, "cannot read %s", receipt_path);
        if (!json) continue;
        bn_error err;
        bn_error_clear(&err);
        bool gpu = !strcmp(option, "--require-gpu-kernels");
        bn_status status = bn_receipt_verify_json(json, len, gpu, &err);
        if (!strcmp(expected, "OK")) {
            CHECKF(status == BN_OK, "%s %s: rejected: %s", file, option, err.message);
        } else {
            CHECKF(status != BN_OK && strstr(err.message, expected), "%s %s: expected \"%s\", got \"%s\"",
                   file, option, expected, status == BN_OK ? "accepted" : err.message);
            rejected++;
        }
        cases++;
        free(json);
    }
    CHECKF(cases >= 20 && rejected >= 16, "%d cases, %d rejections", cases, rejected);
    free(table);
}

static void test_corruption_never_crashes(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/receipts/good-cpu.json", bn_test_source_dir());
    size_t len = 0;
    char *good = bn_test_read_file(path, &len);
    CHECK(good != NULL);
    if (!good) return;
    char *copy = malloc(len);
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 2026);
    int accepted = 0;
    for (int iteration = 0; iteration < 2000; iteration++) {
        memcpy(copy, good, len);
        int flips = (int)bn_test_rng_range(&rng, 1, 4);
        for (int f = 0; f < flips; f++)
            copy[bn_test_rng_range(&rng, 0, (int64_t)len - 1)] = (char)bn_test_rng_next(&rng);
        size_t cut = iteration % 5 == 0 ? (size_t)bn_test_rng_range(&rng, 0, (int64_t)len) : len;
        bn_error err;
        if (bn_receipt_verify_json(copy, cut, iteration % 2 == 0, &err) == BN_OK) accepted++;
    }
    /* Most corruptions break the syntax or a rule; a flip inside a free-text field may survive. */
    CHECKF(accepted < 1000, "%d of 2000 corrupted receipts accepted", accepted);
    free(copy);
    free(good);
}

int main(void) {
    test_sha256();
    test_rss();
    test_bandwidth();
    test_builder_and_missing_fields();
    test_gpu_kernel_rules();
    test_expected_table();
    test_corruption_never_crashes();
    return bn_test_finish("test_receipt");
}
