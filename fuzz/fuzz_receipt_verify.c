/*
 * fuzz_receipt_verify.c: the benchmark-receipt verifier (tools/receipt.h) on arbitrary bytes,
 * and the builder/verifier pair on fuzz-chosen receipts.
 *
 * Input: the first byte chooses. Below 0xC0 the whole input is the JSON text as it is (any
 * bytes, not NUL-terminated: ASan catches a read past len). From 0xC0 the rest fills a bn_receipt that obeys
 * the schema (positive counts, finite figures, unique "cpu." kernel ids, strings with any bytes
 * including quotes, control characters and invalid UTF-8), which bn_receipt_to_json serializes.
 *
 * Properties: the verifier returns BN_OK, BN_ERR_FORMAT or BN_ERR_MISMATCH, with a message on
 * failure; verifying with require_gpu_kernels accepts a subset of what verifying without it
 * accepts; the summary variant returns the same status and a NUL-terminated summary; any
 * receipt the builder serializes verifies (without GPU requirement), and the builder rejects
 * only invalid UTF-8 strings or integers beyond int64.
 */
#include "bitnet.h"
#include "fuzz_input.h"
#include "tools/receipt.h"

static void verify_raw(const char *json, size_t len) {
    bn_error err;
    bn_status plain = bn_receipt_verify_json(json, len, false, &err);
    BN_FUZZ_CHECK(plain == BN_OK || plain == BN_ERR_FORMAT || plain == BN_ERR_MISMATCH, "status %d", (int)plain);
    if (plain != BN_OK) BN_FUZZ_CHECK(err.code == plain && err.message[0], "failure without a message");
    bn_status gpu = bn_receipt_verify_json(json, len, true, &err);
    BN_FUZZ_CHECK(gpu == BN_OK || gpu == BN_ERR_FORMAT || gpu == BN_ERR_MISMATCH, "gpu status %d", (int)gpu);
    BN_FUZZ_CHECK(gpu != BN_OK || plain == BN_OK, "accepted with require_gpu_kernels but not without");
    char summary[256];
    memset(summary, 'x', sizeof summary);
    bn_status again = bn_receipt_verify_json_summary(summary, sizeof summary, json, len, false, &err);
    BN_FUZZ_CHECK(again == plain, "summary variant gave %d, plain %d", (int)again, (int)plain);
    if (again == BN_OK) BN_FUZZ_CHECK(memchr(summary, '\0', sizeof summary), "summary not NUL-terminated");
}

static bool valid_utf8(const char *s) {
    const uint8_t *p = (const uint8_t *)s;
    while (*p) {
        uint32_t cp;
        int len;
        if (*p < 0x80) { p++; continue; }
        if (*p >= 0xC2 && *p <= 0xDF) { len = 2; cp = *p & 0x1F; }
        else if (*p >= 0xE0 && *p <= 0xEF) { len = 3; cp = *p & 0x0F; }
        else if (*p >= 0xF0 && *p <= 0xF4) { len = 4; cp = *p & 0x07; }
        else return false;
        for (int k = 1; k < len; k++) {
            if ((p[k] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (p[k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += len;
    }
    return true;
}

/* A non-empty string of up to 24 fuzz bytes (no NUL). */
static const char *fuzz_string(bn_fuzz_input *in, char *buf, const char *fallback) {
    size_t len;
    const uint8_t *p = bn_fuzz_bytes(in, (size_t)bn_fuzz_range(in, 0, 24), &len);
    size_t k = 0;
    for (size_t i = 0; i < len; i++)
        if (p[i]) buf[k++] = (char)p[i];
    buf[k] = '\0';
    return k ? buf : fallback;
}

static double positive(bn_fuzz_input *in) {
    float f = fabsf(bn_fuzz_finite_float(in));
    return f > 0 ? f : 1.0;
}

static void build_and_verify(bn_fuzz_input *in) {
    char s_path[32], s_arch[32], s_feat[32], s_isa[32], s_ver[32], s_commit[32], s_type[32];
    static const char *const kernel_ids[] = {"cpu.i2s.gemv.avx2", "cpu.rmsnorm.scalar", "cpu.attention.avx512",
                                             "cpu.f16.matmul", "cpu.tq2_0.gemm.scalar", "cpu.softmax"};
    bn_receipt r;
    memset(&r, 0, sizeof r);
    bool own_time = bn_fuzz_bool(in);
    r.timestamp = own_time ? "2026-11-26T11:31:05.123Z" : NULL;
    r.engine_version = fuzz_string(in, s_ver, "0.1.0");
    r.git_commit = fuzz_string(in, s_commit, "abc");
    r.model_path = fuzz_string(in, s_path, "m.gguf");
    r.model_sha256 = "dcf915ce7dc09ae02b5c39911bc2c9106524202ab0afb78761fb08020927bc47";
    r.architecture = fuzz_string(in, s_arch, "bitnet-b1.58");
    r.parameter_count = bn_fuzz_u64(in) % ((uint64_t)INT64_MAX) + 1;
    r.model_file_bytes = bn_fuzz_u32(in);
    bn_receipt_tensor_type types[2] = {{fuzz_string(in, s_type, "i2_s"), bn_fuzz_u16(in) + 1u}, {"f16", 1}};
    r.tensor_types = types;
    r.n_tensor_types = bn_fuzz_bool(in) && strcmp(types[0].name, "f16") ? 2 : 1;
    r.backend = "cpu";
    r.compute_path = "real";
    r.cpu_features = fuzz_string(in, s_feat, "avx2");
    r.isa = fuzz_string(in, s_isa, "avx2");
    r.gpu_name = bn_fuzz_bool(in) ? "none" : NULL;
    r.threads = (int)bn_fuzz_range(in, 1, 256);
    bn_receipt_kernel kernels[6];
    size_t first = (size_t)bn_fuzz_range(in, 0, 5);
    r.n_kernels = (size_t)bn_fuzz_range(in, 1, 6 - (int64_t)first);
    for (size_t i = 0; i < r.n_kernels; i++) {
        kernels[i].id = kernel_ids[first + i];
        kernels[i].calls = (uint64_t)bn_fuzz_u32(in) + 1u;
        kernels[i].time_ms = fabsf(bn_fuzz_finite_float(in));
    }
    r.kernels = kernels;
    uint8_t which = bn_fuzz_u8(in) % 3; /* pp, tg or both */
    bn_receipt_result *res[2] = {&r.pp, &r.tg};
    for (int i = 0; i < 2; i++) {
        res[i]->present = which == 2 || which == i;
        res[i]->n_tokens = (int)bn_fuzz_range(in, 1, 4096);
        res[i]->repetitions = (int)bn_fuzz_range(in, 1, 10);
        res[i]->tokens_per_second = positive(in);
        res[i]->stdev = fabsf(bn_fuzz_finite_float(in));
    }
    r.peak_rss_bytes = (uint64_t)bn_fuzz_u32(in) + 1u;
    r.seed = bn_fuzz_u32(in);
    if (bn_fuzz_bool(in)) {
        r.bandwidth.present = true;
        r.bandwidth.bytes_per_token = (uint64_t)bn_fuzz_u32(in) + 1u;
        r.bandwidth.tg_effective_gb_per_s = positive(in);
        r.bandwidth.stream_read_gb_per_s = positive(in);
        r.bandwidth.stream_buffer_bytes = (uint64_t)bn_fuzz_u32(in) + 1u;
    }

    bn_error err;
    char *json = NULL;
    bn_status st = bn_receipt_to_json(&json, &r, &err);
    bool strings_valid = valid_utf8(r.engine_version) && valid_utf8(r.git_commit) && valid_utf8(r.model_path) &&
                         valid_utf8(r.architecture) && valid_utf8(types[0].name) && valid_utf8(r.cpu_features) &&
                         valid_utf8(r.isa);
    if (st != BN_OK) {
        BN_FUZZ_CHECK(!strings_valid, "builder rejected a valid receipt: %s", err.message);
        return;
    }
    BN_FUZZ_CHECK(json != NULL, "builder OK without text");
    st = bn_receipt_verify_json(json, strlen(json), false, &err);
    BN_FUZZ_CHECK(st == BN_OK, "built receipt does not verify: %s\n%s", err.message, json);
    verify_raw(json, strlen(json));
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 0 && data[0] >= 0xC0) {
        bn_fuzz_input in = bn_fuzz_input_make(data + 1, size - 1);
        build_and_verify(&in);
        return 0;
    }
    /* a private copy of exactly the JSON bytes, so any read past size is an ASan error */
    char *json = malloc(size ? size : 1);
    if (!json) abort();
    memcpy(json, data, size);
    verify_raw(json, size);
    free(json);
    return 0;
}
