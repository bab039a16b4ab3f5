/*
 * test_safetensors.c: the safetensors reader (src/convert/safetensors.h).
 *
 * 1. Valid files written here: several dtypes and shapes (a scalar, a zero-size tensor, 1-D to
 *    4-D), entries in a JSON order that is neither offset nor name order, with and without
 *    __metadata__, with the Rust writer's space padding; every accessor is checked against what
 *    was written (dtype, shape, element count, offsets, byte size, the data bytes themselves,
 *    file and name order, lookups, metadata), through bn_safetensors_open (mmap) and
 *    bn_safetensors_open_memory.
 * 2. The malformed corpus tests/data/safetensors-malformed/ (scripts/make_safetensors_corpus.py):
 *    every file listed in expected.txt is refused with the listed status and a message that
 *    starts with the file name, contains the listed text and is one line; the valid-* controls
 *    open; every .safetensors in the folder is listed.
 * 3. Directories: a single model.safetensors; shards with model.safetensors.index.json opened
 *    as one set (lookups across shards, each tensor's file); an index naming a missing shard, a
 *    path-traversal shard name, a tensor missing from its shard, a tensor the index does not
 *    list or places elsewhere, a malformed shard, malformed index documents, an empty directory.
 */
#include "convert/safetensors.h"
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* ---- building files ---- */

/* 8-byte length + header + data into a malloc'd buffer. */
static uint8_t *make_file(const char *header, const uint8_t *data, size_t data_len, size_t *size) {
    size_t n = strlen(header);
    *size = 8 + n + data_len;
    uint8_t *buf = malloc(*size);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, header, n);
    if (data_len) memcpy(buf + 8 + n, data, data_len);
    return buf;
}

static bool write_st(const char *path, const char *header, const uint8_t *data, size_t data_len) {
    size_t size;
    uint8_t *buf = make_file(header, data, data_len, &size);
    bool ok = bn_test_write_file(path, buf, size);
    free(buf);
    return ok;
}

static void fill(uint8_t *data, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) data[i] = (uint8_t)(i * 31u + seed * 7u + 1u);
}

/* ---- 1. valid files ---- */

typedef struct want_tensor {
    const char *name;
    bn_safetensors_dtype dtype;
    uint32_t n_dims;
    uint64_t shape[4];
    uint64_t begin, end;
} want_tensor;

/* In JSON order: the header below lists them in this order. */
static const want_tensor multi[] = {
    {"model.norm.weight", BN_SAFETENSORS_F32, 1, {3}, 40, 52},
    {"lm_head.weight", BN_SAFETENSORS_BF16, 2, {4, 3}, 0, 24},
    {"zero", BN_SAFETENSORS_I32, 2, {0, 7}, 24, 24},
    {"packed", BN_SAFETENSORS_U8, 3, {2, 1, 3}, 24, 30},
    {"scalar", BN_SAFETENSORS_F64, 0, {0}, 30, 38},
    {"mask", BN_SAFETENSORS_BOOL, 1, {2}, 38, 40},
    {"z.f16", BN_SAFETENSORS_F16, 4, {1, 2, 1, 2}, 52, 60},
    {"i64", BN_SAFETENSORS_I64, 1, {1}, 60, 68},
};
#define N_MULTI (sizeof multi / sizeof multi[0])
#define MULTI_DATA 68
static const char multi_header[] =
    "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[40,52]},"
    "\"lm_head.weight\":{\"shape\":[4,3],\"dtype\":\"BF16\",\"data_offsets\":[0,24]},"
    "\"zero\":{\"dtype\":\"I32\",\"shape\":[0,7],\"data_offsets\":[24,24]},"
    "\"packed\":{\"data_offsets\":[24,30],\"dtype\":\"U8\",\"shape\":[2,1,3]},"
    "\"scalar\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[30,38]},"
    "\"mask\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[38,40]},"
    "\"z.f16\":{\"dtype\":\"F16\",\"shape\":[1,2,1,2],\"data_offsets\":[52,60]},"
    "\"i64\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[60,68]}}";

static void check_multi(const bn_safetensors *f, const uint8_t *data, const char *label) {
    CHECKF(bn_safetensors_count(f) == N_MULTI, "%s: %zu tensors", label, bn_safetensors_count(f));
    CHECK(bn_safetensors_header_size(f) == strlen(multi_header));
    CHECK(bn_safetensors_data_size(f) == MULTI_DATA);
    CHECK(bn_safetensors_metadata_count(f) == 0);
    CHECK(bn_safetensors_metadata_get(f, "format") == NULL);
    uint64_t data_start = 8 + strlen(multi_header);
    for (size_t i = 0; i < N_MULTI; i++) {
        const want_tensor *w = &multi[i];
        const bn_safetensors_tensor *t = bn_safetensors_find(f, w->name);
        CHECKF(t != NULL, "%s: %s not found", label, w->name);
        if (!t) continue;
        CHECKF(!strcmp(t->name, w->name) && t->dtype == w->dtype && t->n_dims == w->n_dims, "%s: %s", label, w->name);
        uint64_t n = 1;
        for (uint32_t d = 0; d < w->n_dims; d++) {
            CHECKF(t->shape[d] == w->shape[d], "%s: %s shape[%u] = %llu", label, w->name, d,
                   (unsigned long long)t->shape[d]);
            n *= w->shape[d];
        }
        for (uint32_t d = w->n_dims; d < BN_SAFETENSORS_MAX_DIMS; d++) CHECK(t->shape[d] == 0);
        CHECKF(t->n_elements == n, "%s: %s n_elements %llu", label, w->name, (unsigned long long)t->n_elements);
        CHECKF(t->begin == w->begin && t->end == w->end && t->size == w->end - w->begin &&
                   t->size == n * bn_safetensors_dtype_size(w->dtype),
               "%s: %s offsets [%llu, %llu) size %llu", label, w->name, (unsigned long long)t->begin,
               (unsigned long long)t->end, (unsigned long long)t->size);
        CHECK(t->file_offset == data_start + w->begin);
        CHECK(t->file == f);
        CHECKF(memcmp(t->data, data + w->begin, t->size) == 0, "%s: %s data", label, w->name);
    }
    CHECK(bn_safetensors_find(f, "missing") == NULL);
    CHECK(bn_safetensors_find(f, "") == NULL);
    CHECK(bn_safetensors_find(f, "model.norm") == NULL);
    /* file order: by begin, then end, then name ("zero" [24,24) before "packed" [24,30)) */
    static const char *const file_order[] = {"lm_head.weight", "zero", "packed", "scalar", "mask",
                                             "model.norm.weight", "z.f16", "i64"};
    static const char *const name_order[] = {"i64", "lm_head.weight", "mask", "model.norm.weight",
                                             "packed", "scalar", "z.f16", "zero"};
    for (size_t i = 0; i < N_MULTI; i++) {
        const bn_safetensors_tensor *a = bn_safetensors_at(f, i), *s = bn_safetensors_at_sorted(f, i);
        CHECKF(a && !strcmp(a->name, file_order[i]), "%s: file order %zu is %s", label, i, a ? a->name : "NULL");
        CHECKF(s && !strcmp(s->name, name_order[i]), "%s: name order %zu is %s", label, i, s ? s->name : "NULL");
        CHECK(bn_safetensors_find(f, name_order[i]) == s);
    }
    CHECK(bn_safetensors_at(f, N_MULTI) == NULL);
    CHECK(bn_safetensors_at_sorted(f, N_MULTI) == NULL);
}

static void test_multi(const char *dir) {
    uint8_t data[MULTI_DATA];
    fill(data, sizeof data, 1);
    char *path = bn_test_path(dir, "multi.safetensors");
    CHECK(write_st(path, multi_header, data, sizeof data));
    bn_error err;
    bn_safetensors *f = NULL;
    CHECK_OK(bn_safetensors_open(path, &f, &err), &err);
    if (f) {
        CHECK(!strcmp(bn_safetensors_path(f), path));
        check_multi(f, data, "mmap");
    }
    bn_safetensors_close(f);

    size_t size;
    uint8_t *buf = make_file(multi_header, data, sizeof data, &size);
    f = NULL;
    CHECK_OK(bn_safetensors_open_memory(buf, size, "mem.safetensors", &f, &err), &err);
    if (f) {
        CHECK(!strcmp(bn_safetensors_path(f), "mem.safetensors"));
        check_multi(f, data, "memory");
        const bn_safetensors_tensor *t = bn_safetensors_find(f, "lm_head.weight");
        CHECK(t && t->data == buf + 8 + strlen(multi_header)); /* a view into the buffer, not a copy */
    }
    bn_safetensors_close(f);
    /* one byte short: the last tensor (i64) no longer fits */
    f = NULL;
    bn_status st = bn_safetensors_open_memory(buf, size - 1, "short", &f, &err);
    CHECK(st == BN_ERR_FORMAT && f == NULL);
    CHECK_STR_CONTAINS(err.message, "short: tensor 'i64': field 'data_offsets' [60, 68]: end is past the 67-byte data area");
    free(buf);
    free(path);
}

static void test_metadata_and_padding(const char *dir) {
    uint8_t data[16];
    fill(data, sizeof data, 2);
    /* leading newline and trailing spaces, as the Rust writer pads to 8 bytes */
    static const char header[] =
        "\n {\"__metadata__\":{\"format\":\"pt\",\"note\":\"a \\\"quoted\\\" \\u00e9\"},"
        "\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}       ";
    char *path = bn_test_path(dir, "meta.safetensors");
    CHECK(write_st(path, header, data, sizeof data));
    bn_error err;
    bn_safetensors *f = NULL;
    CHECK_OK(bn_safetensors_open(path, &f, &err), &err);
    if (f) {
        CHECK(bn_safetensors_count(f) == 1);
        CHECK(bn_safetensors_find(f, "__metadata__") == NULL);
        CHECK(bn_safetensors_metadata_count(f) == 2);
        const char *k = NULL, *v = NULL;
        CHECK(bn_safetensors_metadata_at(f, 0, &k, &v) && !strcmp(k, "format") && !strcmp(v, "pt"));
        CHECK(bn_safetensors_metadata_at(f, 1, &k, &v) && !strcmp(k, "note") && !strcmp(v, "a \"quoted\" \xc3\xa9"));
        CHECK(!bn_safetensors_metadata_at(f, 2, &k, &v));
        CHECK(bn_safetensors_metadata_get(f, "note") && !strcmp(bn_safetensors_metadata_get(f, "note"), v));
        CHECK(bn_safetensors_metadata_get(f, "missing") == NULL);
        const bn_safetensors_tensor *t = bn_safetensors_find(f, "w");
        CHECK(t && t->size == 16 && memcmp(t->data, data, 16) == 0);
    }
    bn_safetensors_close(f);
    free(path);

    /* an empty object: no tensors, an empty data area */
    size_t size;
    uint8_t *buf = make_file("{}", NULL, 0, &size);
    f = NULL;
    CHECK_OK(bn_safetensors_open_memory(buf, size, NULL, &f, &err), &err);
    if (f) {
        CHECK(bn_safetensors_count(f) == 0 && bn_safetensors_data_size(f) == 0);
        CHECK(bn_safetensors_at(f, 0) == NULL && bn_safetensors_find(f, "w") == NULL);
        CHECK(!strcmp(bn_safetensors_path(f), "<memory>"));
    }
    bn_safetensors_close(f);
    free(buf);

    /* F8 tensors open (they are sized) but are not supported for conversion */
    uint8_t f8[6];
    fill(f8, sizeof f8, 3);
    buf = make_file("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[3],\"data_offsets\":[0,3]},"
                    "\"b\":{\"dtype\":\"F8_E5M2\",\"shape\":[3],\"data_offsets\":[3,6]}}",
                    f8, sizeof f8, &size);
    f = NULL;
    CHECK_OK(bn_safetensors_open_memory(buf, size, "f8", &f, &err), &err);
    if (f) {
        const bn_safetensors_tensor *a = bn_safetensors_find(f, "a"), *b = bn_safetensors_find(f, "b");
        CHECK(a && a->dtype == BN_SAFETENSORS_F8_E4M3 && !bn_safetensors_dtype_supported(a->dtype));
        CHECK(b && b->dtype == BN_SAFETENSORS_F8_E5M2 && !bn_safetensors_dtype_supported(b->dtype));
    }
    bn_safetensors_close(f);
    free(buf);

    /* a zero-size tensor inside another's bytes overlaps nothing */
    uint8_t eight[8] = {0};
    buf = make_file("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
                    "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}}",
                    eight, 8, &size);
    f = NULL;
    CHECK_OK(bn_safetensors_open_memory(buf, size, "zero", &f, &err), &err);
    CHECK(f && bn_safetensors_count(f) == 2);
    bn_safetensors_close(f);
    free(buf);

    /* open of a missing path */
    char *missing = bn_test_path(dir, "missing.safetensors");
    f = NULL;
    CHECK(bn_safetensors_open(missing, &f, &err) == BN_ERR_IO && f == NULL);
    CHECK_STR_CONTAINS(err.message, missing);
    CHECK(bn_safetensors_open(dir, &f, &err) == BN_ERR_IO && f == NULL); /* a directory */
    free(missing);
}

static void test_dtypes(void) {
    static const struct {
        const char *name;
        size_t size;
        bool supported;
    } want[BN_SAFETENSORS_DTYPE_COUNT] = {
        {"F64", 8, true}, {"F32", 4, true}, {"F16", 2, true}, {"BF16", 2, true}, {"I64", 8, true},
        {"I32", 4, true}, {"I16", 2, true}, {"I8", 1, true},  {"U64", 8, true},  {"U32", 4, true},
        {"U16", 2, true}, {"U8", 1, true},  {"BOOL", 1, true}, {"F8_E4M3", 1, false}, {"F8_E5M2", 1, false},
    };
    for (int i = 0; i < BN_SAFETENSORS_DTYPE_COUNT; i++) {
        bn_safetensors_dtype d = (bn_safetensors_dtype)i, parsed = BN_SAFETENSORS_DTYPE_COUNT;
        CHECKF(!strcmp(bn_safetensors_dtype_name(d), want[i].name), "dtype %d name %s", i, bn_safetensors_dtype_name(d));
        CHECK(bn_safetensors_dtype_size(d) == want[i].size);
        CHECK(bn_safetensors_dtype_supported(d) == want[i].supported);
        CHECK(bn_safetensors_dtype_parse(want[i].name, &parsed) && parsed == d);
    }
    bn_safetensors_dtype d;
    CHECK(!bn_safetensors_dtype_parse("f32", &d));
    CHECK(!bn_safetensors_dtype_parse("F4", &d));
    CHECK(!bn_safetensors_dtype_parse("", &d));
    CHECK(bn_safetensors_dtype_size(BN_SAFETENSORS_DTYPE_COUNT) == 0);
    CHECK(!strcmp(bn_safetensors_dtype_name(BN_SAFETENSORS_DTYPE_COUNT), "invalid"));
}

/* ---- 2. the malformed corpus ---- */

typedef struct entry {
    char file[128];
    char status[16];
    char expect[400];
} entry;

static int load_manifest(const char *path, entry *entries, int cap) {
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, fp) && n < cap) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\n")] = '\0';
        char *t1 = strchr(line, '\t');
        char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2) continue;
        *t1 = *t2 = '\0';
        if (strlen(line) >= sizeof entries[n].file || strlen(t1 + 1) >= sizeof entries[n].status ||
            strlen(t2 + 1) >= sizeof entries[n].expect)
            continue;
        memcpy(entries[n].file, line, strlen(line) + 1);
        memcpy(entries[n].status, t1 + 1, strlen(t1 + 1) + 1);
        memcpy(entries[n].expect, t2 + 1, strlen(t2 + 1) + 1);
        n++;
    }
    fclose(fp);
    return n;
}

static void check_refusal(const entry *e, const char *name, bn_status st, const bn_error *err) {
    bn_status want = !strcmp(e->status, "UNSUPPORTED") ? BN_ERR_UNSUPPORTED : BN_ERR_FORMAT;
    CHECKF(st == want, "%s: status %s, expected %s (%s)", e->file, bn_status_name(st), e->status, err->message);
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s: ", name);
    CHECKF(!strncmp(err->message, prefix, strlen(prefix)), "%s: message does not start with the file name: %s",
           e->file, err->message);
    CHECKF(strstr(err->message, e->expect) != NULL, "%s:\n    expected: %s\n    got:      %s", e->file, e->expect,
           err->message);
    CHECKF(strchr(err->message, '\n') == NULL && strchr(err->message, '\x1b') == NULL,
           "%s: message has a control byte", e->file);
}

static void test_corpus(void) {
    char *dir = bn_test_path(bn_test_source_dir(), "tests/data/safetensors-malformed");
    char *manifest = bn_test_path(dir, "expected.txt");
    static entry entries[256];
    int n = load_manifest(manifest, entries, 256);
    CHECKF(n >= 50, "manifest %s lists %d cases", manifest, n);
    int valid = 0;
    for (int i = 0; i < n; i++) {
        const entry *e = &entries[i];
        char *path = bn_test_path(dir, e->file);
        bool ok = !strcmp(e->status, "OK");
        valid += ok;
        bn_error err;
        bn_error_clear(&err);
        bn_safetensors *f = NULL;
        bn_status st = bn_safetensors_open(path, &f, &err);
        if (ok) {
            CHECKF(st == BN_OK && f != NULL, "%s: valid control refused: %s", e->file, err.message);
        } else {
            CHECKF(st != BN_OK && f == NULL, "%s was accepted", e->file);
            if (st != BN_OK) check_refusal(e, path, st, &err);
        }
        bn_safetensors_close(f);
        /* an exact-size heap copy, so ASan sees any read past the end */
        size_t size = 0;
        uint8_t *bytes = bn_test_read_file(path, &size);
        CHECKF(bytes != NULL, "cannot read %s", path);
        if (bytes) {
            uint8_t *exact = malloc(size ? size : 1);
            memcpy(exact, bytes, size);
            f = NULL;
            st = bn_safetensors_open_memory(size ? exact : NULL, size, e->file, &f, &err);
            if (ok) CHECKF(st == BN_OK, "%s: valid control refused from memory: %s", e->file, err.message);
            else if (st != BN_OK) check_refusal(e, e->file, st, &err);
            else CHECKF(false, "%s was accepted from memory", e->file);
            bn_safetensors_close(f);
            free(exact);
            free(bytes);
        }
        free(path);
    }
    CHECKF(valid >= 3, "%d valid controls", valid);
    /* every corpus file is listed, and the messages are all different */
    DIR *d = opendir(dir);
    CHECKF(d != NULL, "cannot list %s", dir);
    int files = 0;
    for (struct dirent *de; d && (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        if (len < 12 || strcmp(de->d_name + len - 12, ".safetensors") != 0) continue;
        files++;
        bool listed = false;
        for (int i = 0; i < n && !listed; i++) listed = !strcmp(entries[i].file, de->d_name);
        CHECKF(listed, "%s is not listed in expected.txt", de->d_name);
    }
    if (d) closedir(d);
    CHECKF(files == n, "%d corpus files, %d manifest entries", files, n);
    free(manifest);
    free(dir);
}

/* ---- 3. directories ---- */

static char *subdir(const char *root, const char *name) {
    char *p = bn_test_path(root, name);
    mkdir(p, 0755);
    return p;
}

static void put(const char *dir, const char *file, const char *text) {
    char *p = bn_test_path(dir, file);
    CHECKF(bn_test_write_file(p, text, strlen(text)), "cannot write %s", p);
    free(p);
}

static void put_st(const char *dir, const char *file, const char *header, size_t data_len, unsigned seed) {
    uint8_t data[256];
    fill(data, data_len, seed);
    char *p = bn_test_path(dir, file);
    CHECKF(write_st(p, header, data, data_len), "cannot write %s", p);
    free(p);
}

#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"
static const char shard1_header[] =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"model.layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"model.embed.weight\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[8,16]}}";
static const char shard2_header[] =
    "{\"model.norm.weight\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]}}";

static bn_status open_set(const char *dir, bn_safetensors_set **set, bn_error *err) {
    *set = NULL;
    bn_error_clear(err);
    return bn_safetensors_set_open(dir, set, err);
}

/* A sharded directory with this index text; returns the directory (caller frees). */
static char *sharded(const char *root, const char *name, const char *index) {
    char *dir = subdir(root, name);
    put_st(dir, SHARD1, shard1_header, 16, 1);
    put_st(dir, SHARD2, shard2_header, 6, 2);
    if (index) put(dir, BN_SAFETENSORS_INDEX_FILE, index);
    return dir;
}

static const char good_index[] =
    "{\"metadata\":{\"total_size\":22},\"weight_map\":{"
    "\"model.norm.weight\":\"" SHARD2 "\","
    "\"model.layers.0.weight\":\"" SHARD1 "\","
    "\"model.embed.weight\":\"" SHARD1 "\"}}";

static void expect_set_error(const char *root, const char *name, const char *index, bn_status want,
                             const char *expect) {
    char *dir = sharded(root, name, index);
    bn_safetensors_set *set;
    bn_error err;
    bn_status st = open_set(dir, &set, &err);
    CHECKF(st == want && set == NULL, "%s: status %s (%s)", name, bn_status_name(st), err.message);
    CHECKF(strstr(err.message, expect) != NULL, "%s:\n    expected: %s\n    got:      %s", name, expect, err.message);
    bn_safetensors_set_close(set);
    free(dir);
}

static void test_sets(const char *root) {
    bn_safetensors_set *set;
    bn_error err;

    /* a single file */
    char *single = subdir(root, "single");
    put_st(single, BN_SAFETENSORS_SINGLE_FILE, shard2_header, 6, 5);
    CHECK_OK(open_set(single, &set, &err), &err);
    if (set) {
        CHECK(!bn_safetensors_set_indexed(set) && bn_safetensors_set_n_files(set) == 1);
        CHECK(bn_safetensors_set_count(set) == 1);
        const bn_safetensors_tensor *t = bn_safetensors_set_find(set, "model.norm.weight");
        CHECK(t && t->file == bn_safetensors_set_file(set, 0) && t->dtype == BN_SAFETENSORS_F16);
        CHECK(bn_safetensors_set_at(set, 0) == t && bn_safetensors_set_at(set, 1) == NULL);
        CHECK(bn_safetensors_set_file(set, 1) == NULL);
    }
    bn_safetensors_set_close(set);
    free(single);

    /* shards with an index */
    char *dir = sharded(root, "sharded", good_index);
    CHECK_OK(open_set(dir, &set, &err), &err);
    if (set) {
        CHECK(bn_safetensors_set_indexed(set));
        CHECK(bn_safetensors_set_n_files(set) == 2);
        CHECK(bn_safetensors_set_count(set) == 3);
        const bn_safetensors *f1 = bn_safetensors_set_file(set, 0), *f2 = bn_safetensors_set_file(set, 1);
        CHECK(f1 && strstr(bn_safetensors_path(f1), SHARD1) && f2 && strstr(bn_safetensors_path(f2), SHARD2));
        CHECK(f1 && bn_safetensors_metadata_get(f1, "format") && !strcmp(bn_safetensors_metadata_get(f1, "format"), "pt"));
        static const char *const order[] = {"model.embed.weight", "model.layers.0.weight", "model.norm.weight"};
        static const int file_of[] = {0, 0, 1};
        for (int i = 0; i < 3; i++) {
            const bn_safetensors_tensor *t = bn_safetensors_set_at(set, (size_t)i);
            CHECKF(t && !strcmp(t->name, order[i]), "set order %d: %s", i, t ? t->name : "NULL");
            CHECK(bn_safetensors_set_find(set, order[i]) == t);
            CHECK(t && t->file == bn_safetensors_set_file(set, (size_t)file_of[i]));
        }
        const bn_safetensors_tensor *norm = bn_safetensors_set_find(set, "model.norm.weight");
        uint8_t want[6];
        fill(want, 6, 2);
        CHECK(norm && norm->size == 6 && memcmp(norm->data, want, 6) == 0);
        const bn_safetensors_tensor *emb = bn_safetensors_set_find(set, "model.embed.weight");
        uint8_t want1[16];
        fill(want1, 16, 1);
        CHECK(emb && emb->dtype == BN_SAFETENSORS_BF16 && memcmp(emb->data, want1 + 8, 8) == 0);
        CHECK(bn_safetensors_set_find(set, "lm_head.weight") == NULL);
        CHECK(bn_safetensors_set_at(set, 3) == NULL);
    }
    bn_safetensors_set_close(set);
    /* the index wins over a model.safetensors beside it */
    put_st(dir, BN_SAFETENSORS_SINGLE_FILE, "{}", 0, 0);
    CHECK_OK(open_set(dir, &set, &err), &err);
    CHECK(set && bn_safetensors_set_indexed(set) && bn_safetensors_set_count(set) == 3);
    bn_safetensors_set_close(set);
    free(dir);

    /* an index naming a missing file */
    char *missing = subdir(root, "missing-shard");
    put_st(missing, SHARD1, shard1_header, 16, 1);
    put(missing, BN_SAFETENSORS_INDEX_FILE, good_index);
    bn_status st = open_set(missing, &set, &err);
    CHECK(st == BN_ERR_IO && set == NULL);
    CHECK_STR_CONTAINS(err.message, "shard '" SHARD2 "' named by the index is missing");
    CHECK_STR_CONTAINS(err.message, BN_SAFETENSORS_INDEX_FILE ": ");
    free(missing);

    /* path traversal and other non-plain names, refused before any file is touched */
    expect_set_error(root, "traversal", "{\"weight_map\":{\"model.norm.weight\":\"../" SHARD2 "\"}}", BN_ERR_FORMAT,
                     "field 'weight_map': tensor 'model.norm.weight': shard '../" SHARD2
                     "' is not a plain file name (it contains a path separator)");
    expect_set_error(root, "absolute", "{\"weight_map\":{\"a\":\"/etc/passwd\"}}", BN_ERR_FORMAT,
                     "shard '/etc/passwd' is not a plain file name");
    expect_set_error(root, "dotdot", "{\"weight_map\":{\"a\":\"..\"}}", BN_ERR_FORMAT,
                     "shard '..' is not a plain file name (it names a directory)");
    expect_set_error(root, "backslash", "{\"weight_map\":{\"a\":\"..\\\\x.safetensors\"}}", BN_ERR_FORMAT,
                     "is not a plain file name (it contains a path separator)");
    expect_set_error(root, "empty-shard", "{\"weight_map\":{\"a\":\"\"}}", BN_ERR_FORMAT,
                     "tensor 'a': empty shard file name");
    /* tensors and shards disagree */
    expect_set_error(root, "tensor-missing",
                     "{\"weight_map\":{\"model.norm.weight\":\"" SHARD2 "\",\"model.layers.0.weight\":\"" SHARD1
                     "\",\"model.embed.weight\":\"" SHARD1 "\",\"model.layers.1.weight\":\"" SHARD1 "\"}}",
                     BN_ERR_FORMAT, "tensor 'model.layers.1.weight' is not in its shard '" SHARD1 "'");
    expect_set_error(root, "tensor-unlisted",
                     "{\"weight_map\":{\"model.norm.weight\":\"" SHARD2 "\",\"model.layers.0.weight\":\"" SHARD1 "\"}}",
                     BN_ERR_FORMAT, "shard '" SHARD1 "' holds tensor 'model.embed.weight', which the index does not list");
    expect_set_error(root, "tensor-elsewhere",
                     "{\"weight_map\":{\"model.norm.weight\":\"" SHARD1 "\",\"model.layers.0.weight\":\"" SHARD1
                     "\",\"model.embed.weight\":\"" SHARD1 "\"}}",
                     BN_ERR_FORMAT, "tensor 'model.norm.weight' is not in its shard '" SHARD1 "'");
    expect_set_error(root, "tensor-in-other-shard",
                     "{\"weight_map\":{\"model.norm.weight\":\"" SHARD2 "\",\"model.layers.0.weight\":\"" SHARD2
                     "\",\"model.embed.weight\":\"" SHARD1 "\"}}",
                     BN_ERR_FORMAT, "holds tensor 'model.layers.0.weight', which the index places in shard '" SHARD2 "'");
    /* malformed index documents */
    expect_set_error(root, "index-array", "[]", BN_ERR_FORMAT, "index JSON is an array, not an object");
    expect_set_error(root, "index-syntax", "{\"weight_map\":", BN_ERR_FORMAT, "index JSON: line 1");
    expect_set_error(root, "index-no-map", "{\"metadata\":{}}", BN_ERR_FORMAT, "field 'weight_map' is missing");
    expect_set_error(root, "index-map-array", "{\"weight_map\":[]}", BN_ERR_FORMAT,
                     "field 'weight_map' has JSON type array, expected object");
    expect_set_error(root, "index-map-empty", "{\"weight_map\":{}}", BN_ERR_FORMAT, "field 'weight_map' is empty");
    expect_set_error(root, "index-shard-int", "{\"weight_map\":{\"a\":1}}", BN_ERR_FORMAT,
                     "field 'weight_map': tensor 'a': shard has JSON type integer, expected string");
    expect_set_error(root, "index-duplicate", "{\"weight_map\":{\"a\":\"" SHARD1 "\",\"a\":\"" SHARD2 "\"}}",
                     BN_ERR_FORMAT, "duplicate object key near '\"a\"'");
    expect_set_error(root, "index-empty-name", "{\"weight_map\":{\"\":\"" SHARD1 "\"}}", BN_ERR_FORMAT,
                     "tensor '': empty name");

    /* a malformed shard: its own message, naming it */
    char *bad = sharded(root, "bad-shard", good_index);
    put_st(bad, SHARD2, "{\"model.norm.weight\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 2);
    st = open_set(bad, &set, &err);
    CHECK(st == BN_ERR_FORMAT && set == NULL);
    CHECK_STR_CONTAINS(err.message, SHARD2 ": tensor 'model.norm.weight': field 'data_offsets' [0, 8] hold 8 bytes");
    free(bad);

    /* nothing there */
    char *empty = subdir(root, "empty-dir");
    st = open_set(empty, &set, &err);
    CHECK(st == BN_ERR_IO && set == NULL);
    CHECK_STR_CONTAINS(err.message, "neither model.safetensors.index.json nor model.safetensors is there");
    free(empty);
}

static void test_index_parse(void) {
    bn_safetensors_index index;
    bn_error err;
    CHECK_OK(bn_safetensors_index_parse(good_index, strlen(good_index), "idx", &index, &err), &err);
    CHECK(index.n_entries == 3 && index.n_shards == 2);
    if (index.n_entries == 3 && index.n_shards == 2) {
        CHECK(!strcmp(index.entries[0].tensor, "model.embed.weight") && !strcmp(index.entries[0].shard, SHARD1));
        CHECK(!strcmp(index.entries[1].tensor, "model.layers.0.weight") && !strcmp(index.entries[1].shard, SHARD1));
        CHECK(!strcmp(index.entries[2].tensor, "model.norm.weight") && !strcmp(index.entries[2].shard, SHARD2));
        CHECK(!strcmp(index.shards[0], SHARD1) && !strcmp(index.shards[1], SHARD2));
    }
    bn_safetensors_index_free(&index);
    CHECK(index.n_entries == 0 && index.entries == NULL);
    bn_status st = bn_safetensors_index_parse("{\"weight_map\":{\"a\":\"b/c\"}}", 26, "idx", &index, &err);
    CHECK(st == BN_ERR_FORMAT && index.n_entries == 0 && index.entries == NULL);
    CHECK_STR_CONTAINS(err.message, "idx: field 'weight_map': tensor 'a': shard 'b/c' is not a plain file name");
}

int main(void) {
    char *dir = bn_test_tmpdir("test_safetensors");
    test_dtypes();
    test_multi(dir);
    test_metadata_and_padding(dir);
    test_corpus();
    test_sets(dir);
    test_index_parse();
    free(dir);
    return bn_test_finish("test_safetensors");
}
