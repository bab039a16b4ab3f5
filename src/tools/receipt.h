/*
 * receipt.h: benchmark receipts, the JSON record of one `bitnet bench` run (schema 1.0.0), and
 * their verifier. A receipt says which model (path, SHA-256, architecture), which engine build,
 * which backend and ISA path, and which kernels actually ran with their call counts and time,
 * taken from the kernel registry (never a fixed list), next to the pp/tg throughput.
 *
 * The builder takes a plain C struct and returns JSON text; the verifier takes bytes, so the
 * `verify-receipt` command, the tests and a fuzz target all call the same function on raw input.
 * The verifier accepts unknown extra fields (later schema additions), never a missing or
 * mistyped required one, and explains the first problem it finds in the error message.
 *
 * Schema 1.0.0 (required unless marked optional):
 *   schema_version "1.0.0"; timestamp "YYYY-MM-DDTHH:MM:SS[.fff]Z";
 *   engine {version, git_commit} (non-empty strings);
 *   model {path, sha256 (64 lower-case hex), architecture, parameter_count > 0,
 *          tensor_types {type name: count > 0, at least one}, file_bytes > 0 (optional)};
 *   backend "cpu" | "cuda"; compute_path "real";
 *   cpu {features, isa, variants (optional: the kernel variant of each class, kernels/variants.h),
 *        tuning (optional: the load's kernel tuning, model/tune.h)} (strings; the host CPU even
 *        for cuda); threads >= 1;
 *   kernels [{id, calls >= 1, time_ms >= 0}], non-empty, unique ids, each "cpu." or "cuda.";
 *   results {pp?, tg?} (at least one) each {n_tokens >= 1, repetitions >= 1,
 *            tokens_per_second > 0, stdev >= 0};
 *   peak_rss_bytes > 0; seed >= 0;
 *   bandwidth (optional) {bytes_per_token > 0, tg_effective_gb_per_s > 0,
 *            stream_read_gb_per_s > 0 (best pass), stream_buffer_bytes > 0, ratio (optional, derived:
 *            when present > 0 and = effective / stream)};
 *   gpu (optional) {name}.
 * All numbers finite. Backend consistency: a cpu receipt lists only "cpu." kernels; a cuda
 * receipt lists at least one "cuda." kernel and none of its main ops (ternary matmul, attention,
 * RMSNorm) ran as a "cpu." kernel. With require_gpu_kernels the receipt must be a cuda one in
 * which a "cuda." ternary matmul, attention and RMSNorm kernel each ran.
 *
 * Kernel ids are classified by what follows the backend prefix: a ternary matmul names a
 * ternary format ("i2s", "i2_s", "tq1", "tq2" or "ternary" anywhere in it: "cpu.i2s.gemv.avx2",
 * "cuda.tq2_0.gemm"); attention contains "attention" or "attn"; RMSNorm "rmsnorm" or "rms_norm".
 */
#ifndef BN_TOOLS_RECEIPT_H
#define BN_TOOLS_RECEIPT_H

#include "bitnet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BN_RECEIPT_SCHEMA_VERSION "1.0.0"
#define BN_RECEIPT_TIMESTAMP_SIZE 32

typedef struct bn_receipt_kernel {
    const char *id;
    uint64_t calls;
    double time_ms;
} bn_receipt_kernel;

typedef struct bn_receipt_tensor_type {
    const char *name; /* "i2_s", "f16", ... */
    uint64_t count;
} bn_receipt_tensor_type;

typedef struct bn_receipt_result {
    bool present;     /* false: the test was skipped (-p 0 / -n 0) and is left out */
    int n_tokens;
    int repetitions;
    double tokens_per_second; /* mean over repetitions */
    double stdev;             /* sample standard deviation over repetitions */
} bn_receipt_result;

typedef struct bn_receipt_bandwidth {
    bool present;
    uint64_t bytes_per_token;        /* bytes read per generated token at the tg mean context */
    double tg_effective_gb_per_s;    /* tg tokens/s x bytes_per_token / 1e9 */
    double stream_read_gb_per_s;     /* streaming read measured in the same run */
    uint64_t stream_buffer_bytes;
    /* optional (beside_present): the bandwidth probed right before and after each tg repetition
     * (mean of the probes) and the mean over repetitions of each one's effective GB/s over the
     * mean of its two probes */
    bool beside_present;
    double stream_beside_tg_gb_per_s;
    double ratio_beside_tg;
} bn_receipt_bandwidth;

/* Everything a receipt holds; strings are borrowed. */
typedef struct bn_receipt {
    const char *timestamp;      /* NULL: the current time */
    const char *engine_version;
    const char *git_commit;
    const char *model_path;
    const char *model_sha256;   /* 64 hex digits */
    const char *architecture;
    uint64_t parameter_count;
    uint64_t model_file_bytes;  /* 0: left out */
    const bn_receipt_tensor_type *tensor_types;
    size_t n_tensor_types;
    const char *backend;        /* "cpu" / "cuda" */
    const char *compute_path;   /* "real" */
    const char *cpu_features;
    const char *isa;
    const char *kernel_variants; /* "gemv=avx512.t0.gfni,gemm_few=avx512,...": NULL left out */
    const char *tuning;          /* "quick (measured)": NULL left out */
    const char *gpu_name;       /* NULL: left out */
    int threads;
    const bn_receipt_kernel *kernels;
    size_t n_kernels;
    bn_receipt_result pp, tg;
    uint64_t peak_rss_bytes;
    uint64_t seed;
    bn_receipt_bandwidth bandwidth;
} bn_receipt;

/* The current UTC time as "YYYY-MM-DDTHH:MM:SSZ". */
void bn_receipt_timestamp_now(char out[BN_RECEIPT_TIMESTAMP_SIZE]);

/* Serializes a receipt (pretty-printed, keys in schema order). *out_text is malloc'd and owned by
 * the caller (free). Fails on a NaN/infinite figure or an integer beyond JSON's int64. */
bn_status bn_receipt_to_json(char **out_text, const bn_receipt *receipt, bn_error *err);

/* Verifies receipt JSON of len bytes (need not be NUL-terminated). BN_OK when it satisfies the
 * schema and rules above; otherwise BN_ERR_FORMAT (not JSON, missing or mistyped field) or
 * BN_ERR_MISMATCH (a rule broken) with the reason. */
bn_status bn_receipt_verify_json(const char *json, size_t len, bool require_gpu_kernels,
                                 bn_error *err);
/* The same, and on success a one-line summary ("cpu, bitnet-b1.58, 2 threads, ...") written to
 * summary (may be NULL). */
bn_status bn_receipt_verify_json_summary(char *summary, size_t summary_size, const char *json,
                                         size_t len, bool require_gpu_kernels, bn_error *err);

#endif
