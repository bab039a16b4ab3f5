/*
 * test_gguf_roundtrip.c: the GGUF writer and reader against each other.
 *
 * - every metadata type (all scalars, arrays of every scalar type, arrays of strings, nested
 *   arrays three levels deep, empty arrays) and one tensor of every format in the table, in
 *   versions 2 and 3 and with two alignments: write -> read gives the same values, shapes, sizes
 *   and bytes; read -> write gives the identical file;
 * - Microsoft's oracle file copied through reader and writer is byte-identical;
 * - nesting: 64 levels read, 65 and a 100,000-deep array fail with the depth error (no stack
 *   overflow); the writer refuses what the reader would refuse;
 * - every truncation of a valid file fails cleanly, and random byte flips never crash;
 * - the typed getters and their error messages;
 * - bn_gguf_string_quote: escapes, UTF-8 kept, cuts with "..." at every buffer size.
 */
#include "gguf/gguf.h"
#include "gguf/gguf_example.h"
#include "quant/quant_format.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const uint32_t all_types[] = {BN_TYPE_F32, BN_TYPE_F16, BN_TYPE_BF16, BN_TYPE_Q8_0,
                                     BN_TYPE_TQ1_0, BN_TYPE_TQ2_0, BN_TYPE_I2_S};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

typedef struct fixture {
    uint8_t *data[N_TYPES];
    uint64_t ne[N_TYPES][4];
    uint32_t n_dims[N_TYPES];
} fixture;

static const char *const strings[] = {"", "plain", "γειά σου", "tab\there", "\xf0\x9f\x98\x80"};
static const uint8_t u8s[] = {0, 1, 255};
static const int8_t i8s[] = {-128, 0, 127};
static const uint16_t u16s[] = {0, 65535};
static const int16_t i16s[] = {-32768, 32767};
static const uint32_t u32s[] = {0, 4294967295u, 7};
static const int32_t i32s[] = {-2147483647 - 1, 2147483647};
static const uint64_t u64s[] = {0, 18446744073709551615ull};
static const int64_t i64s[] = {INT64_MIN, INT64_MAX, -1};
static const float f32s[] = {0.0f, -0.0f, 1e-5f, 3.4e38f, -1.0f / 3.0f};
static const double f64s[] = {1e-300, -2.5, 3.141592653589793};
static const uint8_t bools[] = {1, 0, 0, 1};

static bn_gguf_value array_value(bn_gguf_type elem, uint64_t count, const void *raw,
                                 bn_gguf_string *strs, bn_gguf_value *items) {
    bn_gguf_value v;
    memset(&v, 0, sizeof v);
    v.type = BN_GGUF_ARRAY;
    v.as.arr.elem_type = elem;
    v.as.arr.count = count;
    v.as.arr.raw = raw;
    v.as.arr.strings = strs;
    v.as.arr.items = items;
    return v;
}

/* A writer with every metadata type and one tensor of every format (plus a zero tensor). */
static bn_gguf_writer *build(fixture *fx, uint32_t version, uint32_t alignment, bn_error *err) {
    bn_gguf_writer *w = bn_gguf_writer_new();
    bn_gguf_writer_set_version(w, version);
    CHECK_OK(bn_gguf_writer_add_u32(w, "general.alignment", alignment, err), err);
    CHECK_OK(bn_gguf_writer_add_u8(w, "t.u8", 250, err), err);
    CHECK_OK(bn_gguf_writer_add_i8(w, "t.i8", -7, err), err);
    CHECK_OK(bn_gguf_writer_add_u16(w, "t.u16", 65000, err), err);
    CHECK_OK(bn_gguf_writer_add_i16(w, "t.i16", -32768, err), err);
    CHECK_OK(bn_gguf_writer_add_u32(w, "t.u32", 4000000000u, err), err);
    CHECK_OK(bn_gguf_writer_add_i32(w, "t.i32", -5, err), err);
    CHECK_OK(bn_gguf_writer_add_u64(w, "t.u64", 18446744073709551615ull, err), err);
    CHECK_OK(bn_gguf_writer_add_i64(w, "t.i64", INT64_MIN, err), err);
    CHECK_OK(bn_gguf_writer_add_f32(w, "t.f32", 1e-5f, err), err);
    CHECK_OK(bn_gguf_writer_add_f64(w, "t.f64", -1.0 / 3.0, err), err);
    CHECK_OK(bn_gguf_writer_add_bool(w, "t.bool_true", true, err), err);
    CHECK_OK(bn_gguf_writer_add_bool(w, "t.bool_false", false, err), err);
    CHECK_OK(bn_gguf_writer_add_string(w, "t.string", "héllo, world", err), err);
    CHECK_OK(bn_gguf_writer_add_string(w, "t.empty_string", "", err), err);
    CHECK_OK(bn_gguf_writer_add_array(w, "a.u8", BN_GGUF_UINT8, u8s, 3, err), err);
    CHECK_OK(bn_gguf_writer_add_array(w, "a.i8", BN_GGUF_INT8, i8s, 3, err), err);
    CHECK_OK(bn_gguf_writer_add_array(w, "a.u16", BN_GGUF_UINT16, u16s, 2, err), err);
    CHECK_OK(bn_gguf_writer_add_array(w, "a.i16", BN_GGUF_INT16, i16s, 2, err), err);
    CHECK_OK(bn_gguf_writer_add_array(w, "a.u32", BN_GGUF_UINT32, u32s, 3, err), err);
    CHECK_OK(bn_gguf_writer_add_array(w, "a.i32", BN_GGUF_INT32, i32s, 2, err), err);
    CHECK_OK(bn_gguf_writer_add_array(w, "a.u64", BN_GGUF_UINT64, u64s, 2, err), err);
    CHECK_OK(bn_gguf_writer_add_array(w, "a.i64", BN_GGUF_INT64, i64s, 3, err), err);
    CHECK_OK(bn_gguf_writer_add_array(w, "a.f32", BN_GGUF_FLOAT32, f32s, 5, err), err);
    CHECK_OK(bn_gguf_writer_add_array(w, "a.f64", BN_GGUF_FLOAT64, f64s, 3, err), err);
    CHECK_OK(bn_gguf_writer_add_array(w, "a.bool", BN_GGUF_BOOL, bools, 4, err), err);
    CHECK_OK(bn_gguf_writer_add_array(w, "a.empty", BN_GGUF_UINT8, NULL, 0, err), err);
    CHECK_OK(bn_gguf_writer_add_string_array(w, "a.strings", strings, 5, err), err);
    /* nested: [[1,2,3],[7]], [["x"],[]], [[[−128],[0,127]],[]] */
    bn_gguf_value rows[2] = {array_value(BN_GGUF_UINT32, 3, u32s, NULL, NULL),
                             array_value(BN_GGUF_UINT32, 1, &u32s[2], NULL, NULL)};
    bn_gguf_value nested = array_value(BN_GGUF_ARRAY, 2, NULL, NULL, rows);
    CHECK_OK(bn_gguf_writer_add_value(w, "n.u32", &nested, err), err);
    bn_gguf_string x = {1, "x"};
    bn_gguf_value srows[2] = {array_value(BN_GGUF_STRING, 1, NULL, &x, NULL),
                              array_value(BN_GGUF_STRING, 0, NULL, NULL, NULL)};
    bn_gguf_value snested = array_value(BN_GGUF_ARRAY, 2, NULL, NULL, srows);
    CHECK_OK(bn_gguf_writer_add_value(w, "n.strings", &snested, err), err);
    bn_gguf_value inner[2] = {array_value(BN_GGUF_INT8, 1, i8s, NULL, NULL),
                              array_value(BN_GGUF_INT8, 2, &i8s[1], NULL, NULL)};
    bn_gguf_value middle[2] = {array_value(BN_GGUF_ARRAY, 2, NULL, NULL, inner),
                               array_value(BN_GGUF_ARRAY, 0, NULL, NULL, NULL)};
    bn_gguf_value outer = array_value(BN_GGUF_ARRAY, 2, NULL, NULL, middle);
    CHECK_OK(bn_gguf_writer_add_value(w, "n.three_levels", &outer, err), err);
    for (size_t i = 0; i < N_TYPES; i++) {
        char name[64];
        snprintf(name, sizeof name, "tensor.%s", bn_quant_format_get(all_types[i])->name);
        CHECK_OK(bn_gguf_writer_add_tensor(w, name, all_types[i], fx->n_dims[i], fx->ne[i], fx->data[i], err), err);
    }
    uint64_t zero_ne[2] = {256, 3};
    CHECK_OK(bn_gguf_writer_add_tensor(w, "tensor.zeros", BN_TYPE_I2_S, 2, zero_ne, NULL, err), err);
    return w;
}

static void fixture_init(fixture *fx) {
    static const uint64_t shapes[N_TYPES][4] = {{5, 3, 2, 1}, {7, 1, 1, 1}, {3, 2, 1, 1},   {64, 2, 1, 1},
                                                {256, 2, 1, 1}, {512, 1, 1, 1}, {256, 2, 2, 2}};
    static const uint32_t dims[N_TYPES] = {3, 1, 2, 2, 2, 1, 4};
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 42);
    for (size_t i = 0; i < N_TYPES; i++) {
        uint64_t n = 1, bytes = 0;
        for (int d = 0; d < 4; d++) fx->ne[i][d] = shapes[i][d], n *= shapes[i][d];
        fx->n_dims[i] = dims[i];
        bn_error err;
        CHECK_OK(bn_quant_tensor_bytes(all_types[i], n, shapes[i][0], &bytes, &err), &err);
        fx->data[i] = malloc(bytes);
        for (uint64_t b = 0; b < bytes; b++) fx->data[i][b] = (uint8_t)bn_test_rng_next(&rng);
    }
}

static bool array_raw_eq(const bn_gguf *g, const char *key, bn_gguf_type elem, const void *raw, uint64_t count) {
    const bn_gguf_array *a;
    bn_error err;
    if (bn_gguf_get_array(g, key, elem, &a, &err) != BN_OK) return false;
    return a->count == count && (count == 0 || !memcmp(a->raw, raw, count * bn_gguf_type_size(elem)));
}

static void check_contents(const bn_gguf *g, const fixture *fx, uint32_t version, uint32_t alignment) {
    bn_error err;
    CHECK(g->version == version);
    CHECK(g->alignment == alignment);
    CHECK(g->n_kv == 31);
    CHECK(g->n_tensors == N_TYPES + 1);
    CHECK(g->data_offset % alignment == 0);
    uint64_t u = 0;
    int64_t i = 0;
    float f = 0;
    bool b = false;
    bn_gguf_string s;
    CHECK(bn_gguf_find_kv(g, "t.u8")->value.type == BN_GGUF_UINT8 && bn_gguf_find_kv(g, "t.u8")->value.as.u64 == 250);
    CHECK(bn_gguf_find_kv(g, "t.i8")->value.type == BN_GGUF_INT8 && bn_gguf_find_kv(g, "t.i8")->value.as.i64 == -7);
    CHECK(bn_gguf_find_kv(g, "t.u16")->value.type == BN_GGUF_UINT16 && bn_gguf_find_kv(g, "t.u16")->value.as.u64 == 65000);
    CHECK(bn_gguf_find_kv(g, "t.i16")->value.type == BN_GGUF_INT16 && bn_gguf_find_kv(g, "t.i16")->value.as.i64 == -32768);
    CHECK(bn_gguf_get_u64(g, "t.u32", &u, &err) == BN_OK && u == 4000000000u);
    CHECK(bn_gguf_get_i64(g, "t.i32", &i, &err) == BN_OK && i == -5);
    CHECK(bn_gguf_get_u64(g, "t.u64", &u, &err) == BN_OK && u == 18446744073709551615ull);
    CHECK(bn_gguf_get_i64(g, "t.i64", &i, &err) == BN_OK && i == INT64_MIN);
    CHECK(bn_gguf_get_f32(g, "t.f32", &f, &err) == BN_OK && f == 1e-5f);
    CHECK(bn_gguf_find_kv(g, "t.f32")->value.type == BN_GGUF_FLOAT32);
    CHECK(bn_gguf_find_kv(g, "t.f64")->value.type == BN_GGUF_FLOAT64 &&
          bn_gguf_find_kv(g, "t.f64")->value.as.f64 == -1.0 / 3.0);
    CHECK(bn_gguf_get_bool(g, "t.bool_true", &b, &err) == BN_OK && b);
    CHECK(bn_gguf_get_bool(g, "t.bool_false", &b, &err) == BN_OK && !b);
    CHECK(bn_gguf_get_string(g, "t.string", &s, &err) == BN_OK && bn_gguf_string_eq(s, "héllo, world"));
    CHECK(bn_gguf_get_string(g, "t.empty_string", &s, &err) == BN_OK && s.len == 0);
    CHECK(array_raw_eq(g, "a.u8", BN_GGUF_UINT8, u8s, 3));
    CHECK(array_raw_eq(g, "a.i8", BN_GGUF_INT8, i8s, 3));
    CHECK(array_raw_eq(g, "a.u16", BN_GGUF_UINT16, u16s, 2));
    CHECK(array_raw_eq(g, "a.i16", BN_GGUF_INT16, i16s, 2));
    CHECK(array_raw_eq(g, "a.u32", BN_GGUF_UINT32, u32s, 3));
    CHECK(array_raw_eq(g, "a.i32", BN_GGUF_INT32, i32s, 2));
    CHECK(array_raw_eq(g, "a.u64", BN_GGUF_UINT64, u64s, 2));
    CHECK(array_raw_eq(g, "a.i64", BN_GGUF_INT64, i64s, 3));
    CHECK(array_raw_eq(g, "a.f32", BN_GGUF_FLOAT32, f32s, 5));
    CHECK(array_raw_eq(g, "a.f64", BN_GGUF_FLOAT64, f64s, 3));
    CHECK(array_raw_eq(g, "a.bool", BN_GGUF_BOOL, bools, 4));
    CHECK(array_raw_eq(g, "a.empty", BN_GGUF_UINT8, NULL, 0));
    const bn_gguf_array *a;
    CHECK(bn_gguf_get_array(g, "a.i8", BN_GGUF_INT8, &a, &err) == BN_OK && bn_gguf_array_i64(a, 0) == -128);
    CHECK(bn_gguf_get_array(g, "a.i64", BN_GGUF_INT64, &a, &err) == BN_OK && bn_gguf_array_i64(a, 1) == INT64_MAX);
    CHECK(bn_gguf_get_array(g, "a.f32", BN_GGUF_FLOAT32, &a, &err) == BN_OK && bn_gguf_array_f64(a, 4) == (double)(-1.0f / 3.0f));
    CHECK(bn_gguf_get_array(g, "a.u32", BN_GGUF_UINT32, &a, &err) == BN_OK && bn_gguf_array_u64(a, 1) == 4294967295u);
    if (bn_gguf_get_array(g, "a.strings", BN_GGUF_STRING, &a, &err) == BN_OK && a->count == 5) {
        for (int k = 0; k < 5; k++) CHECKF(bn_gguf_string_eq(a->strings[k], strings[k]), "string %d", k);
    } else {
        CHECK(!"a.strings");
    }
    if (bn_gguf_get_array(g, "n.u32", BN_GGUF_ARRAY, &a, &err) == BN_OK && a->count == 2) {
        CHECK(a->items[0].type == BN_GGUF_ARRAY && a->items[0].as.arr.count == 3);
        CHECK(bn_gguf_array_u64(&a->items[0].as.arr, 2) == 7 && bn_gguf_array_u64(&a->items[1].as.arr, 0) == 7);
    } else {
        CHECK(!"n.u32");
    }
    if (bn_gguf_get_array(g, "n.strings", BN_GGUF_ARRAY, &a, &err) == BN_OK && a->count == 2) {
        CHECK(a->items[0].as.arr.elem_type == BN_GGUF_STRING && bn_gguf_string_eq(a->items[0].as.arr.strings[0], "x"));
        CHECK(a->items[1].as.arr.elem_type == BN_GGUF_STRING && a->items[1].as.arr.count == 0);
    } else {
        CHECK(!"n.strings");
    }
    if (bn_gguf_get_array(g, "n.three_levels", BN_GGUF_ARRAY, &a, &err) == BN_OK && a->count == 2) {
        const bn_gguf_array *mid = &a->items[0].as.arr;
        CHECK(mid->elem_type == BN_GGUF_ARRAY && mid->count == 2);
        CHECK(mid->count == 2 && bn_gguf_array_i64(&mid->items[0].as.arr, 0) == -128);
        CHECK(mid->count == 2 && bn_gguf_array_i64(&mid->items[1].as.arr, 1) == 127);
        CHECK(a->items[1].as.arr.elem_type == BN_GGUF_ARRAY && a->items[1].as.arr.count == 0);
    } else {
        CHECK(!"n.three_levels");
    }
    for (size_t k = 0; k < N_TYPES; k++) {
        char name[64];
        snprintf(name, sizeof name, "tensor.%s", bn_quant_format_get(all_types[k])->name);
        const bn_gguf_tensor *t = bn_gguf_find_tensor(g, name);
        CHECKF(t != NULL, "%s", name);
        if (!t) continue;
        uint64_t n = 1, bytes = 0;
        for (int d = 0; d < 4; d++) n *= fx->ne[k][d];
        bn_quant_tensor_bytes(all_types[k], n, fx->ne[k][0], &bytes, &err);
        CHECKF(t->type == all_types[k] && t->n_dims == fx->n_dims[k] && t->n_elements == n, "%s", name);
        CHECKF(!memcmp(t->ne, fx->ne[k], sizeof t->ne), "%s shape", name);
        CHECKF(t->size == bytes && t->file_offset % alignment == 0, "%s size %llu", name, (unsigned long long)t->size);
        CHECKF(!memcmp(t->data, fx->data[k], bytes), "%s data", name);
    }
    const bn_gguf_tensor *z = bn_gguf_find_tensor(g, "tensor.zeros");
    CHECK(z && z->size == 256 * 3 / 4 + 32);
    bool zero = z != NULL;
    for (uint64_t k = 0; z && k < z->size; k++) zero = zero && z->data[k] == 0;
    CHECK(zero);
    CHECK(bn_gguf_find_tensor(g, "tensor.none") == NULL && bn_gguf_find_kv(g, "t") == NULL);
}

/* A writer holding everything g holds, tensor data by pointer into g. */
static bn_gguf_writer *copy_of(const bn_gguf *g, bn_error *err) {
    bn_gguf_writer *w = bn_gguf_writer_new();
    bn_gguf_writer_set_version(w, g->version);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        char *key = strndup(g->kvs[i].key.data, g->kvs[i].key.len);
        CHECK_OK(bn_gguf_writer_add_value(w, key, &g->kvs[i].value, err), err);
        free(key);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const bn_gguf_tensor *t = &g->tensors[i];
        char *name = strndup(t->name.data, t->name.len);
        CHECK_OK(bn_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, err), err);
        free(name);
    }
    return w;
}

static bool files_equal(const char *a, const char *b) {
    size_t na, nb;
    uint8_t *da = bn_test_read_file(a, &na), *db = bn_test_read_file(b, &nb);
    bool eq = da && db && na == nb && !memcmp(da, db, na);
    free(da);
    free(db);
    return eq;
}

static void test_roundtrip(const char *dir, uint32_t version, uint32_t alignment) {
    fixture fx;
    fixture_init(&fx);
    bn_error err;
    char n1[64], n2[64];
    snprintf(n1, sizeof n1, "v%u_a%u_first.gguf", version, alignment);
    snprintf(n2, sizeof n2, "v%u_a%u_second.gguf", version, alignment);
    char *p1 = bn_test_path(dir, n1), *p2 = bn_test_path(dir, n2);
    bn_gguf_writer *w = build(&fx, version, alignment, &err);
    CHECK_OK(bn_gguf_writer_write(w, p1, &err), &err);
    bn_gguf_writer_free(w);
    bn_gguf *g = NULL;
    CHECK_OK(bn_gguf_open(p1, &g, &err), &err);
    if (g) {
        check_contents(g, &fx, version, alignment);
        bn_gguf_writer *w2 = copy_of(g, &err);
        CHECK_OK(bn_gguf_writer_write(w2, p2, &err), &err);
        bn_gguf_writer_free(w2);
        CHECKF(files_equal(p1, p2), "write -> read -> write of %s is not byte-identical", n1);
        /* the same bytes through bn_gguf_open_memory */
        bn_gguf *m = NULL;
        CHECK_OK(bn_gguf_open_memory(g->base, g->size, "mem", &m, &err), &err);
        if (m) check_contents(m, &fx, version, alignment);
        bn_gguf_close(m);
        bn_gguf_close(g);
    }
    for (size_t i = 0; i < N_TYPES; i++) free(fx.data[i]);
    free(p1);
    free(p2);
}

static void test_oracle_copy(const char *dir) {
    char *src = bn_test_path(bn_test_source_dir(), "tests/data/oracle-a/model.gguf");
    char *dst = bn_test_path(dir, "oracle_copy.gguf");
    bn_gguf *g = NULL;
    bn_error err;
    CHECK_OK(bn_gguf_open(src, &g, &err), &err);
    if (g) {
        CHECK(g->n_kv == 23 && g->n_tensors == 24 && g->version == 3);
        const bn_gguf_tensor *q = bn_gguf_find_tensor(g, "blk.0.attn_q.weight");
        CHECK(q && q->type == BN_TYPE_I2_S && q->size == 256 * 256 / 4 + 32);
        uint32_t vocab = 0;
        CHECK(bn_gguf_get_u32(g, "bitnet-b1.58.vocab_size", &vocab, &err) == BN_OK && vocab == 759);
        bn_gguf_writer *w = copy_of(g, &err);
        CHECK_OK(bn_gguf_writer_write(w, dst, &err), &err);
        bn_gguf_writer_free(w);
        CHECKF(files_equal(src, dst), "oracle file copied through reader and writer differs");
        bn_gguf_close(g);
    }
    free(src);
    free(dst);
}

/* A file with one key holding `depth` nested arrays (the innermost empty), built by hand. */
static uint8_t *nested_file(uint64_t depth, size_t *size) {
    static const char key[] = "deep";
    size_t n = 24 + 8 + 4 + 4 + depth * 12;
    uint8_t *p = calloc(1, n), *q = p;
    memcpy(q, "GGUF", 4), q += 4;
    *q = 3, q += 4;
    q += 8;          /* n_tensors 0 */
    *q = 1, q += 8;  /* n_kv 1 */
    *q = 4, q += 8;  /* key length */
    memcpy(q, key, 4), q += 4;
    *q = BN_GGUF_ARRAY, q += 4;
    for (uint64_t d = 0; d < depth; d++) {
        bool last = d + 1 == depth;
        *q = last ? BN_GGUF_UINT8 : BN_GGUF_ARRAY, q += 4;
        *q = last ? 0 : 1, q += 8;
    }
    *size = (size_t)(q - p);
    return p;
}

static void test_nesting(void) {
    bn_error err;
    bn_gguf *g = NULL;
    size_t size;
    uint8_t *ok = nested_file(BN_GGUF_MAX_ARRAY_DEPTH, &size);
    CHECK_OK(bn_gguf_open_memory(ok, size, "deep64", &g, &err), &err);
    if (g) {
        /* the writer copies the deepest nesting the reader accepts, and no deeper */
        bn_gguf_writer *w = bn_gguf_writer_new();
        CHECK_OK(bn_gguf_writer_add_value(w, "deep", &g->kvs[0].value, &err), &err);
        bn_gguf_value one_more;
        memset(&one_more, 0, sizeof one_more);
        one_more.type = BN_GGUF_ARRAY;
        one_more.as.arr.elem_type = BN_GGUF_ARRAY;
        one_more.as.arr.count = 1;
        one_more.as.arr.items = (bn_gguf_value *)&g->kvs[0].value;
        CHECK(bn_gguf_writer_add_value(w, "deeper", &one_more, &err) == BN_ERR_INVALID);
        CHECK_STR_CONTAINS(err.message, "nested deeper than 64");
        bn_gguf_writer_free(w);
    }
    bn_gguf_close(g);
    free(ok);
    uint64_t depths[] = {BN_GGUF_MAX_ARRAY_DEPTH + 1, 100000};
    for (int i = 0; i < 2; i++) {
        uint8_t *p = nested_file(depths[i], &size);
        g = NULL;
        CHECK(bn_gguf_open_memory(p, size, "deep.gguf", &g, &err) == BN_ERR_FORMAT && g == NULL);
        CHECK_STR_CONTAINS(err.message, "deep.gguf: key 'deep' (at offset 24): ");
        CHECK_STR_CONTAINS(err.message, "nesting deeper than 64 levels");
        free(p);
    }
}

static void test_writer_rejects(void) {
    bn_error err;
    bn_gguf_writer *w = bn_gguf_writer_new();
    uint64_t ne[5] = {128, 2, 1, 1, 1};
    CHECK_OK(bn_gguf_writer_add_u32(w, "k", 1, &err), &err);
    CHECK(bn_gguf_writer_add_u8(w, "k", 1, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "duplicate key 'k'");
    CHECK(bn_gguf_writer_add_u32(w, "general.alignment", 0, &err) == BN_ERR_INVALID);
    CHECK(bn_gguf_writer_add_u32(w, "general.alignment", 3, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "not a power of two");
    CHECK(bn_gguf_writer_add_u64(w, "general.alignment", 32, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "must be a uint32");
    CHECK(bn_gguf_writer_add_u8(w, "bad\xff", 1, &err) == BN_ERR_INVALID);
    CHECK(bn_gguf_writer_add_u8(w, "", 1, &err) == BN_ERR_INVALID);
    CHECK(bn_gguf_writer_add_array(w, "s", BN_GGUF_STRING, NULL, 0, &err) == BN_ERR_INVALID);
    CHECK_OK(bn_gguf_writer_add_tensor(w, "t", BN_TYPE_I2_S, 2, ne, NULL, &err), &err);
    CHECK(bn_gguf_writer_add_tensor(w, "t", BN_TYPE_F32, 1, ne, NULL, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "duplicate tensor name 't'");
    CHECK(bn_gguf_writer_add_tensor(w, "u", 99, 1, ne, NULL, &err) == BN_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.message, "unknown tensor type id 99");
    CHECK(bn_gguf_writer_add_tensor(w, "u", BN_TYPE_F32, 5, ne, NULL, &err) == BN_ERR_INVALID);
    uint64_t zero[2] = {0, 1}, odd[2] = {100, 2};
    CHECK(bn_gguf_writer_add_tensor(w, "u", BN_TYPE_F32, 2, zero, NULL, &err) == BN_ERR_INVALID);
    CHECK(bn_gguf_writer_add_tensor(w, "u", BN_TYPE_I2_S, 2, odd, NULL, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "not a multiple of 128");
    bn_gguf_writer_set_version(w, 1);
    CHECK(bn_gguf_writer_write(w, "/nonexistent-dir/x.gguf", &err) == BN_ERR_INVALID);
    bn_gguf_writer_set_version(w, 3);
    CHECK(bn_gguf_writer_write(w, "/nonexistent-dir/x.gguf", &err) == BN_ERR_IO);
    CHECK_STR_CONTAINS(err.message, "/nonexistent-dir/x.gguf");
    bn_gguf_writer_free(w);
}

static void test_getters(const char *dir) {
    char *path = bn_test_path(dir, "example.gguf");
    bn_error err;
    CHECK_OK(bn_gguf_example_write_small(path, &err), &err);
    bn_gguf *g = NULL;
    CHECK_OK(bn_gguf_open(path, &g, &err), &err);
    if (g) {
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
        float f;
        bn_gguf_string s;
        const bn_gguf_array *a;
        CHECK(bn_gguf_get_u32(g, "example.uint8", &u32, &err) == BN_OK && u32 == 200);
        CHECK(bn_gguf_get_u32(g, "example.uint64", &u32, &err) == BN_ERR_FORMAT);
        CHECK_STR_CONTAINS(err.message, "does not fit in uint32");
        CHECK(bn_gguf_get_u64(g, "example.int8", &u64, &err) == BN_ERR_FORMAT);
        CHECK_STR_CONTAINS(err.message, "key 'example.int8' (at offset ");
        CHECK(bn_gguf_get_i64(g, "example.int16", &i64, &err) == BN_OK && i64 == -30000);
        CHECK(bn_gguf_get_i64(g, "example.uint64", &i64, &err) == BN_ERR_FORMAT);
        CHECK(bn_gguf_get_f32(g, "example.float64", &f, &err) == BN_OK && f == (float)3.141592653589793);
        CHECK(bn_gguf_get_f32(g, "example.int8", &f, &err) == BN_ERR_FORMAT);
        CHECK(bn_gguf_get_string(g, "missing.key", &s, &err) == BN_ERR_FORMAT);
        CHECK_STR_CONTAINS(err.message, "key 'missing.key' is missing");
        CHECK_STR_CONTAINS(err.message, "example.gguf");
        CHECK(bn_gguf_get_array(g, "example.string_array", BN_GGUF_UINT32, &a, &err) == BN_ERR_FORMAT);
        CHECK_STR_CONTAINS(err.message, "array of string, expected array of uint32");
        CHECK(bn_gguf_get_array(g, "example.string_array", BN_GGUF_TYPE_COUNT, &a, &err) == BN_OK && a->count == 4);
        CHECK(g->n_tensors == 7 && g->n_kv == 20);
        bn_gguf_close(g);
    }
    free(path);
}

/* Every cut of a valid file before its last tensor ends must fail with a message; random byte
 * flips must fail or succeed, never crash (ASan/UBSan turn a bad read into a failure). */
static void test_truncation_and_flips(const char *dir) {
    char *path = bn_test_path(dir, "example_cuts.gguf");
    bn_error err;
    CHECK_OK(bn_gguf_example_write_small(path, &err), &err);
    size_t size;
    uint8_t *bytes = bn_test_read_file(path, &size);
    if (!bytes) {
        CHECK(!"read example");
        free(path);
        return;
    }
    bn_gguf *g = NULL;
    CHECK_OK(bn_gguf_open_memory(bytes, size, "cut.gguf", &g, &err), &err);
    uint64_t end = 0;
    for (uint64_t i = 0; g && i < g->n_tensors; i++)
        if (g->tensors[i].file_offset + g->tensors[i].size > end) end = g->tensors[i].file_offset + g->tensors[i].size;
    bn_gguf_close(g);
    int accepted = 0, unnamed = 0;
    for (size_t cut = 0; cut < end; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1); /* an exact-size buffer: ASan sees any overread */
        memcpy(copy, bytes, cut);
        g = NULL;
        if (bn_gguf_open_memory(copy, cut, "cut.gguf", &g, &err) == BN_OK) accepted++;
        else if (strncmp(err.message, "cut.gguf: ", 10) != 0 || strchr(err.message, '\n')) unnamed++;
        bn_gguf_close(g);
        free(copy);
    }
    CHECKF(accepted == 0, "%d truncated copies were accepted", accepted);
    CHECKF(unnamed == 0, "%d errors did not start with the file name or had a newline", unnamed);
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 7);
    uint8_t *copy = malloc(size);
    for (int round = 0; round < 3000; round++) {
        memcpy(copy, bytes, size);
        int flips = (int)bn_test_rng_range(&rng, 1, 4);
        for (int k = 0; k < flips; k++)
            copy[bn_test_rng_range(&rng, 0, (int64_t)size - 1)] = (uint8_t)bn_test_rng_next(&rng);
        g = NULL;
        if (bn_gguf_open_memory(copy, size, "flip.gguf", &g, &err) == BN_OK) {
            for (uint64_t i = 0; i < g->n_tensors; i++)
                CHECK(g->tensors[i].file_offset + g->tensors[i].size <= size);
            bn_gguf_close(g);
        } else {
            CHECK(!strncmp(err.message, "flip.gguf: ", 11));
        }
    }
    free(copy);
    free(bytes);
    free(path);
}

static void test_quote(void) {
    char buf[BN_GGUF_QUOTE_MAX];
    const char raw[] = "a\x1b[2Jb\n\\c\x7f\xc3\xa9\0z";
    bn_gguf_string s = {sizeof raw - 1, raw};
    CHECK(!strcmp(bn_gguf_string_quote(s, buf, sizeof buf), "a\\x1b[2Jb\\n\\\\c\\x7f\xc3\xa9\\x00z"));
    /* every cap: NUL-terminated, within cap, a prefix of the full text or a prefix + "..." */
    char full[64];
    bn_gguf_string_quote(s, full, sizeof full);
    for (size_t cap = 1; cap <= strlen(full) + 1; cap++) {
        char small[64];
        memset(small, '#', sizeof small);
        const char *q = bn_gguf_string_quote(s, small, cap);
        const size_t n = strlen(q);
        CHECKF(n < cap && small[cap] == '#', "cap %zu wrote past the buffer", cap);
        if (n == strlen(full)) {
            CHECK(!strcmp(q, full));
        } else if (cap >= 4) {
            CHECKF(n >= 3 && !strcmp(q + n - 3, "...") && !strncmp(q, full, n - 3),
                   "cap %zu gave '%s'", cap, q);
        }
    }
    CHECK(!strcmp(bn_gguf_string_quote((bn_gguf_string){0, NULL}, buf, sizeof buf), ""));
    CHECK(!strcmp(bn_gguf_string_quote(s, buf, 0), ""));
}

int main(void) {
    test_quote();
    char *dir = bn_test_tmpdir("gguf_roundtrip");
    test_roundtrip(dir, 3, 32);
    test_roundtrip(dir, 2, 64);
    test_roundtrip(dir, 3, 1);
    test_oracle_copy(dir);
    test_nesting();
    test_writer_rejects();
    test_getters(dir);
    test_truncation_and_flips(dir);
    free(dir);
    return bn_test_finish("test_gguf_roundtrip");
}
