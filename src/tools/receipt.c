/*
 * receipt.c: building and verifying benchmark receipts (see receipt.h for the schema). Both
 * directions use jansson. The verifier walks the schema field by field with small typed getters
 * that name the field's dotted path in every message ("model.sha256: expected a string, got an
 * integer"), then checks the cross-field rules (backend consistency of the kernel list).
 */
#include "tools/receipt.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- building ---- */

void bn_receipt_timestamp_now(char out[BN_RECEIPT_TIMESTAMP_SIZE]) {
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(out, BN_RECEIPT_TIMESTAMP_SIZE, "%Y-%m-%dT%H:%M:%SZ", &utc);
}

/* A tiny builder state: the first failure is remembered and later calls do nothing. */
typedef struct builder {
    bn_status status;
    bn_error *err;
} builder;

static void set_value(builder *b, json_t *object, const char *key, json_t *value, const char *what) {
    if (b->status != BN_OK) {
        json_decref(value);
        return;
    }
    if (!value || json_object_set_new(object, key, value) != 0) {
        b->status = bn_error_set(b->err, BN_ERR_INVALID,
                                 "receipt: cannot store %s (a key that is not UTF-8, or out of memory)",
                                 what);
    }
}

static void set_string(builder *b, json_t *object, const char *key, const char *value) {
    if (b->status != BN_OK) return;
    if (!value) {
        b->status = bn_error_set(b->err, BN_ERR_INVALID, "receipt: %s is not set", key);
        return;
    }
    json_t *s = json_string(value);
    if (!s) {
        b->status = bn_error_set(b->err, BN_ERR_INVALID, "receipt: %s is not valid UTF-8", key);
        return;
    }
    set_value(b, object, key, s, key);
}

static void set_uint(builder *b, json_t *object, const char *key, uint64_t value) {
    if (b->status != BN_OK) return;
    if (value > (uint64_t)INT64_MAX) {
        b->status = bn_error_set(b->err, BN_ERR_RANGE, "receipt: %s = %llu exceeds int64", key,
                                 (unsigned long long)value);
        return;
    }
    set_value(b, object, key, json_integer((json_int_t)value), key);
}

static void set_real(builder *b, json_t *object, const char *key, double value) {
    if (b->status != BN_OK) return;
    if (!isfinite(value)) {
        b->status = bn_error_set(b->err, BN_ERR_RANGE, "receipt: %s is not finite", key);
        return;
    }
    set_value(b, object, key, json_real(value), key);
}

static json_t *new_object(builder *b) {
    json_t *o = json_object();
    if (!o && b->status == BN_OK) b->status = bn_error_set(b->err, BN_ERR_NOMEM, "receipt: out of memory");
    return o;
}

static void add_result(builder *b, json_t *results, const char *key, const bn_receipt_result *r) {
    if (!r->present || b->status != BN_OK) return;
    json_t *o = new_object(b);
    set_uint(b, o, "n_tokens", (uint64_t)(r->n_tokens > 0 ? r->n_tokens : 0));
    set_uint(b, o, "repetitions", (uint64_t)(r->repetitions > 0 ? r->repetitions : 0));
    set_real(b, o, "tokens_per_second", r->tokens_per_second);
    set_real(b, o, "stdev", r->stdev);
    set_value(b, results, key, o, key);
}

bn_status bn_receipt_to_json(char **out_text, const bn_receipt *r, bn_error *err) {
    *out_text = NULL;
    builder b = {BN_OK, err};
    json_t *root = new_object(&b);
    char now[BN_RECEIPT_TIMESTAMP_SIZE];
    bn_receipt_timestamp_now(now);

    set_string(&b, root, "schema_version", BN_RECEIPT_SCHEMA_VERSION);
    set_string(&b, root, "timestamp", r->timestamp ? r->timestamp : now);

    json_t *engine = new_object(&b);
    set_string(&b, engine, "name", "bitnet-c");
    set_string(&b, engine, "version", r->engine_version);
    set_string(&b, engine, "git_commit", r->git_commit);
    set_value(&b, root, "engine", engine, "engine");

    json_t *model = new_object(&b);
    set_string(&b, model, "path", r->model_path);
    set_string(&b, model, "sha256", r->model_sha256);
    set_string(&b, model, "architecture", r->architecture);
    set_uint(&b, model, "parameter_count", r->parameter_count);
    if (r->model_file_bytes) set_uint(&b, model, "file_bytes", r->model_file_bytes);
    json_t *types = new_object(&b);
    for (size_t i = 0; i < r->n_tensor_types; i++)
        set_uint(&b, types, r->tensor_types[i].name, r->tensor_types[i].count);
    set_value(&b, model, "tensor_types", types, "tensor_types");
    set_value(&b, root, "model", model, "model");

    set_string(&b, root, "backend", r->backend);
    set_string(&b, root, "compute_path", r->compute_path);
    json_t *cpu = new_object(&b);
    set_string(&b, cpu, "features", r->cpu_features);
    set_string(&b, cpu, "isa", r->isa);
    if (r->kernel_variants) set_string(&b, cpu, "variants", r->kernel_variants);
    if (r->tuning) set_string(&b, cpu, "tuning", r->tuning);
    set_value(&b, root, "cpu", cpu, "cpu");
    if (r->gpu_name) {
        json_t *gpu = new_object(&b);
        set_string(&b, gpu, "name", r->gpu_name);
        set_value(&b, root, "gpu", gpu, "gpu");
    }
    set_uint(&b, root, "threads", (uint64_t)(r->threads > 0 ? r->threads : 0));

    json_t *kernels = json_array();
    if (!kernels && b.status == BN_OK) b.status = bn_error_set(err, BN_ERR_NOMEM, "receipt: out of memory");
    for (size_t i = 0; i < r->n_kernels && b.status == BN_OK; i++) {
        json_t *k = new_object(&b);
        set_string(&b, k, "id", r->kernels[i].id);
        set_uint(&b, k, "calls", r->kernels[i].calls);
        set_real(&b, k, "time_ms", r->kernels[i].time_ms);
        if (b.status == BN_OK && json_array_append_new(kernels, k) != 0)
            b.status = bn_error_set(err, BN_ERR_NOMEM, "receipt: out of memory");
        else if (b.status != BN_OK)
            json_decref(k);
    }
    set_value(&b, root, "kernels", kernels, "kernels");

    json_t *results = new_object(&b);
    add_result(&b, results, "pp", &r->pp);
    add_result(&b, results, "tg", &r->tg);
    set_value(&b, root, "results", results, "results");

    set_uint(&b, root, "peak_rss_bytes", r->peak_rss_bytes);
    set_uint(&b, root, "seed", r->seed);
    if (r->bandwidth.present) {
        const bn_receipt_bandwidth *bw = &r->bandwidth;
        json_t *o = new_object(&b);
        set_uint(&b, o, "bytes_per_token", bw->bytes_per_token);
        set_real(&b, o, "tg_effective_gb_per_s", bw->tg_effective_gb_per_s);
        set_real(&b, o, "stream_read_gb_per_s", bw->stream_read_gb_per_s);
        /* Derived, so left out where the quotient is not a positive finite number (a figure
         * far outside any real measurement). */
        double ratio = bw->tg_effective_gb_per_s / bw->stream_read_gb_per_s;
        if (isfinite(ratio) && ratio > 0) set_real(&b, o, "ratio", ratio);
        set_uint(&b, o, "stream_buffer_bytes", bw->stream_buffer_bytes);
        if (bw->beside_present) {
            set_real(&b, o, "stream_beside_tg_gb_per_s", bw->stream_beside_tg_gb_per_s);
            set_real(&b, o, "ratio_beside_tg", bw->ratio_beside_tg);
        }
        set_value(&b, root, "bandwidth", o, "bandwidth");
    }

    if (b.status == BN_OK) {
        *out_text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        if (!*out_text) b.status = bn_error_set(err, BN_ERR_NOMEM, "receipt: cannot serialize");
    }
    json_decref(root);
    return b.status;
}

/* ---- verifying ---- */

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown value";
}

typedef enum field_kind { FIELD_OBJECT, FIELD_ARRAY, FIELD_STRING, FIELD_INTEGER, FIELD_NUMBER } field_kind;

static const char *kind_name(field_kind kind) {
    switch (kind) {
    case FIELD_OBJECT: return "an object";
    case FIELD_ARRAY: return "an array";
    case FIELD_STRING: return "a string";
    case FIELD_INTEGER: return "an integer";
    case FIELD_NUMBER: return "a number";
    }
    return "?";
}

static bool kind_matches(const json_t *v, field_kind kind) {
    switch (kind) {
    case FIELD_OBJECT: return json_is_object(v);
    case FIELD_ARRAY: return json_is_array(v);
    case FIELD_STRING: return json_is_string(v);
    case FIELD_INTEGER: return json_is_integer(v);
    case FIELD_NUMBER: return json_is_number(v);
    }
    return false;
}

/* Field `key` of object `parent` (whose path is `where`, "" at the root) with the given kind;
 * NULL with the error set when missing or mistyped. */
static json_t *get_field(const json_t *parent, const char *where, const char *key, field_kind kind,
                         bn_error *err) {
    json_t *v = json_object_get(parent, key);
    const char *dot = where[0] ? "." : "";
    if (!v) {
        bn_error_set(err, BN_ERR_FORMAT, "%s%s%s: missing", where, dot, key);
        return NULL;
    }
    if (!kind_matches(v, kind)) {
        bn_error_set(err, BN_ERR_FORMAT, "%s%s%s: expected %s, got %s", where, dot, key,
                     kind_name(kind), json_type_name(v));
        return NULL;
    }
    return v;
}

/* A non-empty string field. */
static const char *get_string(const json_t *parent, const char *where, const char *key,
                              bn_error *err) {
    json_t *v = get_field(parent, where, key, FIELD_STRING, err);
    if (!v) return NULL;
    if (json_string_length(v) == 0) {
        bn_error_set(err, BN_ERR_FORMAT, "%s%s%s: empty string", where, where[0] ? "." : "", key);
        return NULL;
    }
    return json_string_value(v);
}

/* An integer field >= min. */
static bool get_integer(long long *out, const json_t *parent, const char *where, const char *key,
                        long long min, bn_error *err) {
    json_t *v = get_field(parent, where, key, FIELD_INTEGER, err);
    if (!v) return false;
    long long value = json_integer_value(v);
    if (value < min) {
        bn_error_set(err, BN_ERR_MISMATCH, "%s%s%s: %lld is below the minimum %lld", where,
                     where[0] ? "." : "", key, value, min);
        return false;
    }
    *out = value;
    return true;
}

/* A finite number field, > 0 when positive is set, else >= 0. */
static bool get_number(double *out, const json_t *parent, const char *where, const char *key,
                       bool positive, bn_error *err) {
    json_t *v = get_field(parent, where, key, FIELD_NUMBER, err);
    if (!v) return false;
    double value = json_number_value(v);
    const char *dot = where[0] ? "." : "";
    if (!isfinite(value)) {
        bn_error_set(err, BN_ERR_MISMATCH, "%s%s%s: not a finite number", where, dot, key);
        return false;
    }
    if (positive ? !(value > 0) : !(value >= 0)) {
        bn_error_set(err, BN_ERR_MISMATCH, "%s%s%s: %g must be %s", where, dot, key, value,
                     positive ? "positive" : "non-negative");
        return false;
    }
    *out = value;
    return true;
}

/* "YYYY-MM-DDTHH:MM:SS" with optional fraction, then "Z": ISO-8601 in UTC. */
static bool timestamp_valid(const char *s) {
    static const char pattern[] = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;
    for (; pattern[i]; i++) {
        if (pattern[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pattern[i]) return false;
    }
    int month = (s[5] - '0') * 10 + (s[6] - '0');
    int day = (s[8] - '0') * 10 + (s[9] - '0');
    int hour = (s[11] - '0') * 10 + (s[12] - '0');
    int minute = (s[14] - '0') * 10 + (s[15] - '0');
    int second = (s[17] - '0') * 10 + (s[18] - '0');
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
        return false;
    if (s[i] == '.') {
        i++;
        if (!isdigit((unsigned char)s[i])) return false;
        while (isdigit((unsigned char)s[i])) i++;
    }
    return s[i] == 'Z' && s[i + 1] == '\0';
}

static bool sha256_valid(const char *s) {
    for (int i = 0; i < 64; i++) {
        if (!(isdigit((unsigned char)s[i]) || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    }
    return s[64] == '\0';
}

typedef enum kernel_op { OP_OTHER, OP_TERNARY_MATMUL, OP_ATTENTION, OP_RMSNORM } kernel_op;

/* Which main op a kernel id implements, from the words in it after the backend prefix; see
 * receipt.h. */
static kernel_op classify_kernel(const char *id) {
    const char *dot = strchr(id, '.');
    const char *rest = dot ? dot + 1 : id;
    static const char *const ternary[] = {"i2s", "i2_s", "tq1", "tq2", "ternary"};
    for (size_t i = 0; i < sizeof ternary / sizeof ternary[0]; i++)
        if (strstr(rest, ternary[i])) return OP_TERNARY_MATMUL;
    if (strstr(rest, "attention") || strstr(rest, "attn")) return OP_ATTENTION;
    if (strstr(rest, "rmsnorm") || strstr(rest, "rms_norm")) return OP_RMSNORM;
    return OP_OTHER;
}

static const char *op_name(kernel_op op) {
    switch (op) {
    case OP_TERNARY_MATMUL: return "ternary matmul";
    case OP_ATTENTION: return "attention";
    case OP_RMSNORM: return "rmsnorm";
    case OP_OTHER: break;
    }
    return "other";
}

/* The kernel list: shape of each entry, unique ids, consistency with the backend. */
static bn_status verify_kernels(const json_t *kernels, const char *backend, bool require_gpu_kernels,
                                bn_error *err) {
    size_t n = json_array_size(kernels);
    if (n == 0) return bn_error_set(err, BN_ERR_MISMATCH, "kernels: empty (no kernel ran)");
    bool is_cuda = !strcmp(backend, "cuda");
    bool cuda_ran[4] = {false, false, false, false};
    size_t n_cuda = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *k = json_array_get(kernels, i);
        char where[64];
        snprintf(where, sizeof where, "kernels[%zu]", i);
        if (!json_is_object(k))
            return bn_error_set(err, BN_ERR_FORMAT, "%s: expected an object, got %s", where,
                                json_type_name(k));
        const char *id = get_string(k, where, "id", err);
        long long calls;
        double time_ms;
        if (!id || !get_integer(&calls, k, where, "calls", 1, err) ||
            !get_number(&time_ms, k, where, "time_ms", false, err))
            return err ? err->code : BN_ERR_FORMAT;
        for (size_t j = 0; j < i; j++) {
            const char *other = json_string_value(json_object_get(json_array_get(kernels, j), "id"));
            if (other && !strcmp(other, id))
                return bn_error_set(err, BN_ERR_MISMATCH, "%s: kernel id \"%s\" listed twice", where, id);
        }
        bool cpu_id = !strncmp(id, "cpu.", 4);
        bool cuda_id = !strncmp(id, "cuda.", 5);
        kernel_op op = classify_kernel(id);
        if (!is_cuda && !cpu_id)
            return bn_error_set(err, BN_ERR_MISMATCH,
                                "%s: kernel \"%s\" is not a CPU kernel (\"cpu.\" id) but backend is \"%s\"",
                                where, id, backend);
        if (is_cuda && !cpu_id && !cuda_id)
            return bn_error_set(err, BN_ERR_MISMATCH,
                                "%s: kernel \"%s\" belongs to neither the cpu nor the cuda backend",
                                where, id);
        if (is_cuda && cpu_id && op != OP_OTHER)
            return bn_error_set(err, BN_ERR_MISMATCH,
                                "%s: %s kernel \"%s\" ran on the CPU but backend is \"cuda\"", where,
                                op_name(op), id);
        if (cuda_id) {
            n_cuda++;
            cuda_ran[op] = true;
        }
    }
    if (is_cuda && n_cuda == 0)
        return bn_error_set(err, BN_ERR_MISMATCH, "kernels: backend is \"cuda\" but no \"cuda.\" kernel ran");
    if (require_gpu_kernels) {
        if (!is_cuda)
            return bn_error_set(err, BN_ERR_MISMATCH,
                                "--require-gpu-kernels: backend is \"%s\", no GPU kernel ran", backend);
        static const kernel_op required[] = {OP_TERNARY_MATMUL, OP_ATTENTION, OP_RMSNORM};
        for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
            if (!cuda_ran[required[i]])
                return bn_error_set(err, BN_ERR_MISMATCH,
                                    "--require-gpu-kernels: no cuda %s kernel ran", op_name(required[i]));
        }
    }
    return BN_OK;
}

/* One results entry (pp or tg); *present tells whether it was there. */
static bn_status verify_result(double *tokens_per_second, long long *n_tokens, bool *present,
                               const json_t *results, const char *key, bn_error *err) {
    json_t *r = json_object_get(results, key);
    *present = r != NULL;
    if (!r) return BN_OK;
    char where[32];
    snprintf(where, sizeof where, "results.%s", key);
    if (!json_is_object(r))
        return bn_error_set(err, BN_ERR_FORMAT, "%s: expected an object, got %s", where, json_type_name(r));
    long long repetitions;
    double stdev;
    if (!get_integer(n_tokens, r, where, "n_tokens", 1, err) ||
        !get_integer(&repetitions, r, where, "repetitions", 1, err) ||
        !get_number(tokens_per_second, r, where, "tokens_per_second", true, err) ||
        !get_number(&stdev, r, where, "stdev", false, err))
        return err ? err->code : BN_ERR_FORMAT;
    return BN_OK;
}

static bn_status verify_bandwidth(const json_t *root, bn_error *err) {
    json_t *bw = json_object_get(root, "bandwidth");
    if (!bw) return BN_OK;
    if (!json_is_object(bw))
        return bn_error_set(err, BN_ERR_FORMAT, "bandwidth: expected an object, got %s", json_type_name(bw));
    long long bytes_per_token, buffer;
    double effective, stream, ratio;
    if (!get_integer(&bytes_per_token, bw, "bandwidth", "bytes_per_token", 1, err) ||
        !get_number(&effective, bw, "bandwidth", "tg_effective_gb_per_s", true, err) ||
        !get_number(&stream, bw, "bandwidth", "stream_read_gb_per_s", true, err) ||
        !get_integer(&buffer, bw, "bandwidth", "stream_buffer_bytes", 1, err))
        return err ? err->code : BN_ERR_FORMAT;
    /* optional, both or neither: probes beside the tg repetitions */
    bool has_beside = json_object_get(bw, "stream_beside_tg_gb_per_s") != NULL;
    if (has_beside != (json_object_get(bw, "ratio_beside_tg") != NULL))
        return bn_error_set(err, BN_ERR_FORMAT,
                            "bandwidth: stream_beside_tg_gb_per_s and ratio_beside_tg go together");
    if (has_beside) {
        double beside, beside_ratio;
        if (!get_number(&beside, bw, "bandwidth", "stream_beside_tg_gb_per_s", true, err) ||
            !get_number(&beside_ratio, bw, "bandwidth", "ratio_beside_tg", true, err))
            return err ? err->code : BN_ERR_FORMAT;
    }
    if (!json_object_get(bw, "ratio")) return BN_OK;
    if (!get_number(&ratio, bw, "bandwidth", "ratio", true, err)) return err ? err->code : BN_ERR_FORMAT;
    if (fabs(ratio - effective / stream) > 1e-6 * (1 + ratio))
        return bn_error_set(err, BN_ERR_MISMATCH,
                            "bandwidth.ratio: %g is not tg_effective_gb_per_s / stream_read_gb_per_s = %g",
                            ratio, effective / stream);
    return BN_OK;
}

static bn_status verify_root(char *summary, size_t summary_size, const json_t *root,
                             bool require_gpu_kernels, bn_error *err) {
#define REQUIRE(expr) \
    do {              \
        if (!(expr)) return err ? err->code : BN_ERR_FORMAT; \
    } while (0)
    if (!json_is_object(root))
        return bn_error_set(err, BN_ERR_FORMAT, "receipt: expected a JSON object, got %s", json_type_name(root));
    const char *schema = get_string(root, "", "schema_version", err);
    REQUIRE(schema);
    if (strcmp(schema, BN_RECEIPT_SCHEMA_VERSION) != 0)
        return bn_error_set(err, BN_ERR_MISMATCH, "schema_version: \"%s\" is not \"%s\"", schema,
                            BN_RECEIPT_SCHEMA_VERSION);
    const char *timestamp = get_string(root, "", "timestamp", err);
    REQUIRE(timestamp);
    if (!timestamp_valid(timestamp))
        return bn_error_set(err, BN_ERR_FORMAT,
                            "timestamp: \"%s\" is not ISO-8601 UTC (YYYY-MM-DDTHH:MM:SSZ)", timestamp);

    json_t *engine = get_field(root, "", "engine", FIELD_OBJECT, err);
    REQUIRE(engine);
    REQUIRE(get_string(engine, "engine", "version", err));
    REQUIRE(get_string(engine, "engine", "git_commit", err));

    json_t *model = get_field(root, "", "model", FIELD_OBJECT, err);
    REQUIRE(model);
    REQUIRE(get_string(model, "model", "path", err));
    const char *sha = get_string(model, "model", "sha256", err);
    REQUIRE(sha);
    if (!sha256_valid(sha))
        return bn_error_set(err, BN_ERR_FORMAT, "model.sha256: \"%.80s\" is not 64 lower-case hex digits", sha);
    const char *architecture = get_string(model, "model", "architecture", err);
    REQUIRE(architecture);
    long long parameters;
    REQUIRE(get_integer(&parameters, model, "model", "parameter_count", 1, err));
    if (json_object_get(model, "file_bytes")) {
        long long file_bytes;
        REQUIRE(get_integer(&file_bytes, model, "model", "file_bytes", 1, err));
    }
    json_t *types = get_field(model, "model", "tensor_types", FIELD_OBJECT, err);
    REQUIRE(types);
    if (json_object_size(types) == 0)
        return bn_error_set(err, BN_ERR_MISMATCH, "model.tensor_types: empty");
    const char *type_name;
    json_t *count;
    json_object_foreach(types, type_name, count) {
        if (!json_is_integer(count) || json_integer_value(count) < 1)
            return bn_error_set(err, BN_ERR_FORMAT, "model.tensor_types.%s: expected a positive integer",
                                type_name);
    }

    const char *backend = get_string(root, "", "backend", err);
    REQUIRE(backend);
    if (strcmp(backend, "cpu") != 0 && strcmp(backend, "cuda") != 0)
        return bn_error_set(err, BN_ERR_MISMATCH, "backend: \"%s\" is neither \"cpu\" nor \"cuda\"", backend);
    const char *compute_path = get_string(root, "", "compute_path", err);
    REQUIRE(compute_path);
    if (strcmp(compute_path, "real") != 0)
        return bn_error_set(err, BN_ERR_MISMATCH, "compute_path: \"%s\" is not \"real\"", compute_path);

    json_t *cpu = get_field(root, "", "cpu", FIELD_OBJECT, err);
    REQUIRE(cpu);
    REQUIRE(get_string(cpu, "cpu", "features", err));
    const char *isa = get_string(cpu, "cpu", "isa", err);
    REQUIRE(isa);
    if (json_object_get(root, "gpu")) {
        json_t *gpu = get_field(root, "", "gpu", FIELD_OBJECT, err);
        REQUIRE(gpu);
        REQUIRE(get_string(gpu, "gpu", "name", err));
    }
    long long threads;
    REQUIRE(get_integer(&threads, root, "", "threads", 1, err));

    json_t *kernels = get_field(root, "", "kernels", FIELD_ARRAY, err);
    REQUIRE(kernels);
    if (verify_kernels(kernels, backend, require_gpu_kernels, err) != BN_OK) return err ? err->code : BN_ERR_MISMATCH;

    json_t *results = get_field(root, "", "results", FIELD_OBJECT, err);
    REQUIRE(results);
    double pp_tps = 0, tg_tps = 0;
    long long pp_n = 0, tg_n = 0;
    bool has_pp, has_tg;
    if (verify_result(&pp_tps, &pp_n, &has_pp, results, "pp", err) != BN_OK ||
        verify_result(&tg_tps, &tg_n, &has_tg, results, "tg", err) != BN_OK)
        return err ? err->code : BN_ERR_FORMAT;
    if (!has_pp && !has_tg) return bn_error_set(err, BN_ERR_MISMATCH, "results: neither pp nor tg present");

    long long peak_rss, seed;
    REQUIRE(get_integer(&peak_rss, root, "", "peak_rss_bytes", 1, err));
    REQUIRE(get_integer(&seed, root, "", "seed", 0, err));
    if (verify_bandwidth(root, err) != BN_OK) return err ? err->code : BN_ERR_FORMAT;
#undef REQUIRE

    if (summary && summary_size) {
        char pp_text[64] = "", tg_text[64] = "";
        if (has_pp) snprintf(pp_text, sizeof pp_text, ", pp%lld %.2f t/s", pp_n, pp_tps);
        if (has_tg) snprintf(tg_text, sizeof tg_text, ", tg%lld %.2f t/s", tg_n, tg_tps);
        snprintf(summary, summary_size, "%s, %s, %lld threads, isa %s%s%s, %zu kernels", backend,
                 architecture, threads, isa, pp_text, tg_text, json_array_size(kernels));
    }
    return BN_OK;
}

bn_status bn_receipt_verify_json_summary(char *summary, size_t summary_size, const char *json,
                                         size_t len, bool require_gpu_kernels, bn_error *err) {
    if (summary && summary_size) summary[0] = '\0';
    json_error_t parse_error;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &parse_error);
    if (!root)
        return bn_error_set(err, BN_ERR_FORMAT, "not valid JSON: %s (line %d, column %d)",
                            parse_error.text, parse_error.line, parse_error.column);
    bn_error local;
    bn_error *e = err ? err : &local;
    bn_error_clear(e);
    bn_status status = verify_root(summary, summary_size, root, require_gpu_kernels, e);
    json_decref(root);
    return status;
}

bn_status bn_receipt_verify_json(const char *json, size_t len, bool require_gpu_kernels,
                                 bn_error *err) {
    return bn_receipt_verify_json_summary(NULL, 0, json, len, require_gpu_kernels, err);
}
