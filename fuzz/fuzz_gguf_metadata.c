/*
 * fuzz_gguf_metadata.c: GGUF metadata round trip. The fuzz bytes choose a version, a list of
 * key/value pairs of every type (strings with any bytes, numeric and bool arrays, string arrays,
 * arrays of arrays nested up to 6 deep) and optionally one tensor; the writer (gguf/gguf.h)
 * writes them to a file and the reader opens it.
 *
 * Properties: whatever the writer accepts, it writes a file the reader accepts, and the reader
 * returns exactly what was added: same version, same keys in the same order, same types, equal
 * scalars (float bit patterns, NaN as NaN), equal string bytes, equal array bytes, equal string
 * and nested array elements; the tensor comes back with its shape, type, an aligned offset and
 * its bytes (zeros when added without data). Rejections by the writer must carry a message.
 */
#include "bitnet.h"
#include "fuzz_input.h"
#include "gguf/gguf.h"
#include "quant/quant_format.h"

#include <unistd.h>

#define MAX_KVS 24
#define MAX_DEPTH 6

/* Everything allocated for one input, freed at the end. */
typedef struct arena {
    void *ptrs[4096];
    size_t n;
} arena;

static void *arena_alloc(arena *a, size_t size) {
    if (a->n == sizeof a->ptrs / sizeof a->ptrs[0]) return NULL;
    void *p = calloc(1, size ? size : 1);
    if (!p) abort();
    a->ptrs[a->n++] = p;
    return p;
}

static void arena_free(arena *a) {
    for (size_t i = 0; i < a->n; i++) free(a->ptrs[i]);
    a->n = 0;
}

/* A string value: up to 255 fuzz bytes, any content (NUL and invalid UTF-8 included). */
static bool make_string(bn_fuzz_input *in, arena *a, bn_gguf_string *out) {
    size_t len;
    const uint8_t *p = bn_fuzz_chunk(in, &len);
    char *copy = arena_alloc(a, len);
    if (!copy) return false;
    memcpy(copy, p, len);
    out->data = copy;
    out->len = len;
    return true;
}

static bool make_array(bn_fuzz_input *in, arena *a, bn_gguf_value *v, unsigned depth);

static bool make_value(bn_fuzz_input *in, arena *a, bn_gguf_value *v, bn_gguf_type type, unsigned depth) {
    memset(v, 0, sizeof *v);
    v->type = type;
    switch (type) {
    case BN_GGUF_UINT8: v->as.u64 = bn_fuzz_u8(in); break;
    case BN_GGUF_UINT16: v->as.u64 = bn_fuzz_u16(in); break;
    case BN_GGUF_UINT32: v->as.u64 = bn_fuzz_u32(in); break;
    case BN_GGUF_UINT64: v->as.u64 = bn_fuzz_u64(in); break;
    case BN_GGUF_INT8: v->as.i64 = (int8_t)bn_fuzz_u8(in); break;
    case BN_GGUF_INT16: v->as.i64 = (int16_t)bn_fuzz_u16(in); break;
    case BN_GGUF_INT32: v->as.i64 = (int32_t)bn_fuzz_u32(in); break;
    case BN_GGUF_INT64: v->as.i64 = (int64_t)bn_fuzz_u64(in); break;
    case BN_GGUF_FLOAT32: v->as.f64 = bn_fuzz_float(in); break;
    case BN_GGUF_FLOAT64: {
        uint64_t bits = bn_fuzz_u64(in);
        memcpy(&v->as.f64, &bits, sizeof bits);
        break;
    }
    case BN_GGUF_BOOL: v->as.b = bn_fuzz_bool(in); break;
    case BN_GGUF_STRING: return make_string(in, a, &v->as.str);
    case BN_GGUF_ARRAY: return make_array(in, a, v, depth);
    default: return false;
    }
    return true;
}

static bool make_array(bn_fuzz_input *in, arena *a, bn_gguf_value *v, unsigned depth) {
    bn_gguf_array *arr = &v->as.arr;
    uint8_t sel = bn_fuzz_u8(in);
    arr->elem_type = (bn_gguf_type)(sel % BN_GGUF_TYPE_COUNT);
    if (arr->elem_type == BN_GGUF_ARRAY && depth >= MAX_DEPTH) arr->elem_type = BN_GGUF_UINT8;
    arr->count = (uint64_t)bn_fuzz_range(in, 0, arr->elem_type == BN_GGUF_ARRAY ? 4 : 64);
    if (arr->elem_type == BN_GGUF_STRING) {
        arr->strings = arena_alloc(a, arr->count * sizeof *arr->strings);
        if (!arr->strings) return false;
        for (uint64_t i = 0; i < arr->count; i++)
            if (!make_string(in, a, &arr->strings[i])) return false;
    } else if (arr->elem_type == BN_GGUF_ARRAY) {
        arr->items = arena_alloc(a, arr->count * sizeof *arr->items);
        if (!arr->items) return false;
        for (uint64_t i = 0; i < arr->count; i++) {
            arr->items[i].type = BN_GGUF_ARRAY;
            if (!make_array(in, a, &arr->items[i], depth + 1)) return false;
        }
    } else {
        size_t es = bn_gguf_type_size(arr->elem_type);
        uint8_t *raw = arena_alloc(a, arr->count * es);
        if (!raw) return false;
        size_t got;
        const uint8_t *p = bn_fuzz_bytes(in, arr->count * es, &got);
        memcpy(raw, p, got);
        /* bools are 0/1 unless the top bit of the selector asks for raw (invalid) bytes */
        if (arr->elem_type == BN_GGUF_BOOL && !(sel & 0x80))
            for (uint64_t i = 0; i < arr->count; i++) raw[i] &= 1;
        arr->raw = raw;
    }
    return true;
}

static bool same_string(bn_gguf_string a, bn_gguf_string b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static void check_same(const bn_gguf_value *want, const bn_gguf_value *got, const char *key) {
    BN_FUZZ_CHECK(want->type == got->type, "key '%s': type %d came back as %d", key, (int)want->type,
                  (int)got->type);
    switch (want->type) {
    case BN_GGUF_UINT8: case BN_GGUF_UINT16: case BN_GGUF_UINT32: case BN_GGUF_UINT64:
        BN_FUZZ_CHECK(want->as.u64 == got->as.u64, "key '%s': %llu came back as %llu", key,
                      (unsigned long long)want->as.u64, (unsigned long long)got->as.u64);
        break;
    case BN_GGUF_INT8: case BN_GGUF_INT16: case BN_GGUF_INT32: case BN_GGUF_INT64:
        BN_FUZZ_CHECK(want->as.i64 == got->as.i64, "key '%s': %lld came back as %lld", key,
                      (long long)want->as.i64, (long long)got->as.i64);
        break;
    case BN_GGUF_FLOAT32:
        BN_FUZZ_CHECK(bn_fuzz_same_float((float)want->as.f64, (float)got->as.f64), "key '%s': %g came back as %g",
                      key, want->as.f64, got->as.f64);
        break;
    case BN_GGUF_FLOAT64:
        BN_FUZZ_CHECK((isnan(want->as.f64) && isnan(got->as.f64)) ||
                          memcmp(&want->as.f64, &got->as.f64, sizeof(double)) == 0,
                      "key '%s': %g came back as %g", key, want->as.f64, got->as.f64);
        break;
    case BN_GGUF_BOOL: BN_FUZZ_CHECK(want->as.b == got->as.b, "key '%s': bool", key); break;
    case BN_GGUF_STRING:
        BN_FUZZ_CHECK(same_string(want->as.str, got->as.str), "key '%s': string of %llu bytes differs", key,
                      (unsigned long long)want->as.str.len);
        break;
    case BN_GGUF_ARRAY: {
        const bn_gguf_array *w = &want->as.arr, *g = &got->as.arr;
        BN_FUZZ_CHECK(w->elem_type == g->elem_type && w->count == g->count,
                      "key '%s': array of %llu %s came back as %llu %s", key, (unsigned long long)w->count,
                      bn_gguf_type_name(w->elem_type), (unsigned long long)g->count, bn_gguf_type_name(g->elem_type));
        if (w->elem_type == BN_GGUF_STRING) {
            for (uint64_t i = 0; i < w->count; i++)
                BN_FUZZ_CHECK(same_string(w->strings[i], g->strings[i]), "key '%s': string element %llu", key,
                              (unsigned long long)i);
        } else if (w->elem_type == BN_GGUF_ARRAY) {
            for (uint64_t i = 0; i < w->count; i++) check_same(&w->items[i], &g->items[i], key);
        } else {
            size_t n = (size_t)w->count * bn_gguf_type_size(w->elem_type);
            BN_FUZZ_CHECK(n == 0 || memcmp(w->raw, g->raw, n) == 0, "key '%s': array bytes differ", key);
        }
        break;
    }
    default: BN_FUZZ_CHECK(0, "key '%s': unexpected type %d", key, (int)want->type);
    }
}

static const uint32_t tensor_types[] = {BN_TYPE_F32, BN_TYPE_F16, BN_TYPE_BF16, BN_TYPE_Q8_0,
                                        BN_TYPE_I2_S, BN_TYPE_TQ2_0, BN_TYPE_TQ1_0};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[256];
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/bn_fuzz_gguf_metadata_%d.gguf", dir && *dir ? dir : "/tmp",
                 (int)getpid());
    }
    bn_fuzz_input in = bn_fuzz_input_make(data, size);
    arena a = {.n = 0};
    bn_error err;
    bn_gguf_writer *w = bn_gguf_writer_new();
    if (!w) abort();
    uint32_t version = bn_fuzz_bool(&in) ? 2 : 3;
    bn_gguf_writer_set_version(w, version);

    char keys[MAX_KVS][64];
    bn_gguf_value values[MAX_KVS];
    size_t n_kv = 0;
    for (size_t i = 0; i < MAX_KVS && bn_fuzz_left(&in) > 0; i++) {
        uint8_t op = bn_fuzz_u8(&in);
        if (op == 0xff) break; /* end of metadata, a tensor may follow */
        size_t klen;
        const uint8_t *kp = bn_fuzz_bytes(&in, bn_fuzz_range(&in, 0, 40), &klen);
        char *key = keys[n_kv];
        memcpy(key, kp, klen);
        key[klen] = '\0';
        if (!key[0]) snprintf(key, sizeof keys[0], "k%zu", i);
        bn_gguf_value *v = &values[n_kv];
        if (!make_value(&in, &a, v, (bn_gguf_type)(op % BN_GGUF_TYPE_COUNT), 0)) break;
        /* a huge alignment would only make the file huge (gigabytes of padding) */
        if (!strcmp(key, "general.alignment") && v->type == BN_GGUF_UINT32 && v->as.u64 > 4096)
            v->as.u64 = 4096;
        bn_status st;
        /* scalars go through the typed adders, the rest through add_value */
        switch (v->type) {
        case BN_GGUF_UINT8: st = bn_gguf_writer_add_u8(w, key, (uint8_t)v->as.u64, &err); break;
        case BN_GGUF_INT16: st = bn_gguf_writer_add_i16(w, key, (int16_t)v->as.i64, &err); break;
        case BN_GGUF_UINT32: st = bn_gguf_writer_add_u32(w, key, (uint32_t)v->as.u64, &err); break;
        case BN_GGUF_INT64: st = bn_gguf_writer_add_i64(w, key, v->as.i64, &err); break;
        case BN_GGUF_FLOAT32: st = bn_gguf_writer_add_f32(w, key, (float)v->as.f64, &err); break;
        case BN_GGUF_FLOAT64: st = bn_gguf_writer_add_f64(w, key, v->as.f64, &err); break;
        case BN_GGUF_BOOL: st = bn_gguf_writer_add_bool(w, key, v->as.b, &err); break;
        default: st = bn_gguf_writer_add_value(w, key, v, &err); break;
        }
        if (st != BN_OK) {
            BN_FUZZ_CHECK(err.code == st && err.message[0], "writer rejected '%s' without a message", key);
            continue;
        }
        n_kv++;
    }

    /* optional tensor */
    bool has_tensor = bn_fuzz_bool(&in);
    uint32_t ttype = tensor_types[bn_fuzz_u8(&in) % (sizeof tensor_types / sizeof tensor_types[0])];
    const bn_quant_format *fmt = bn_quant_format_get(ttype);
    uint64_t ne[2] = {(uint64_t)fmt->block_elements * (uint64_t)bn_fuzz_range(&in, 1, 4),
                      (uint64_t)bn_fuzz_range(&in, 1, 3)};
    uint64_t tbytes = 0;
    if (bn_quant_tensor_bytes(ttype, ne[0] * ne[1], ne[0], &tbytes, NULL) != BN_OK) has_tensor = false;
    uint8_t *tdata = NULL;
    bool with_data = bn_fuzz_bool(&in);
    if (has_tensor) {
        if (with_data) {
            tdata = arena_alloc(&a, tbytes);
            if (!tdata) abort();
            size_t got;
            const uint8_t *p = bn_fuzz_bytes(&in, tbytes, &got);
            memcpy(tdata, p, got);
        }
        bn_status st = bn_gguf_writer_add_tensor(w, "fuzz.tensor", ttype, 2, ne, tdata, &err);
        BN_FUZZ_CHECK(st == BN_OK, "writer rejected a valid tensor: %s", err.message);
    }

    bn_status st = bn_gguf_writer_write(w, path, &err);
    BN_FUZZ_CHECK(st == BN_OK, "write failed: %s", err.message);
    bn_gguf *g = NULL;
    st = bn_gguf_open(path, &g, &err);
    BN_FUZZ_CHECK(st == BN_OK, "the reader rejected what the writer wrote: %s", err.message);
    BN_FUZZ_CHECK(g->version == version, "version %u came back as %u", version, g->version);
    BN_FUZZ_CHECK(g->n_kv == n_kv, "%zu keys came back as %llu", n_kv, (unsigned long long)g->n_kv);
    for (size_t i = 0; i < n_kv; i++) {
        BN_FUZZ_CHECK(bn_gguf_string_eq(g->kvs[i].key, keys[i]), "key %zu '%s' came back as another", i, keys[i]);
        check_same(&values[i], &g->kvs[i].value, keys[i]);
    }
    BN_FUZZ_CHECK(g->n_tensors == (has_tensor ? 1u : 0u), "%llu tensors", (unsigned long long)g->n_tensors);
    if (has_tensor) {
        const bn_gguf_tensor *t = &g->tensors[0];
        BN_FUZZ_CHECK(t->type == ttype && t->n_dims == 2 && t->ne[0] == ne[0] && t->ne[1] == ne[1] &&
                          t->size == tbytes,
                      "tensor came back with another shape or type");
        BN_FUZZ_CHECK(t->file_offset % g->alignment == 0, "tensor offset %llu, alignment %u",
                      (unsigned long long)t->file_offset, g->alignment);
        for (uint64_t i = 0; i < tbytes; i++)
            BN_FUZZ_CHECK(t->data[i] == (tdata ? tdata[i] : 0), "tensor byte %llu differs", (unsigned long long)i);
    }
    bn_gguf_close(g);
    unlink(path);
    bn_gguf_writer_free(w);
    arena_free(&a);
    return 0;
}
