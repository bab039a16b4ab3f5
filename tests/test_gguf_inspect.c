/*
 * test_gguf_inspect.c: the JSON report of `bitnet inspect --json` (src/tools/gguf_inspect.c),
 * parsed back with jansson: header fields, every metadata type with its value (uint64 beyond
 * int64 as a decimal string), nested arrays, long arrays cut to their first items with the
 * full count, the tensor table (type names, shapes, byte sizes, offsets) and the per-type totals,
 * on the example file and on Microsoft's oracle file.
 */
#include "gguf/gguf.h"
#include "gguf/gguf_example.h"
#include "testutil.h"
#include "tools/gguf_inspect.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static json_t *report(const char *path) {
    bn_gguf *g = NULL;
    bn_error err;
    CHECK_OK(bn_gguf_open(path, &g, &err), &err);
    if (!g) return NULL;
    FILE *f = tmpfile();
    CHECK_OK(bn_gguf_inspect_json(f, g, &err), &err);
    rewind(f);
    json_error_t jerr;
    json_t *root = json_loadf(f, 0, &jerr);
    CHECKF(root != NULL, "report is not JSON: %s (line %d)", jerr.text, jerr.line);
    /* the text report of the same file also renders */
    FILE *t = tmpfile();
    CHECK_OK(bn_gguf_inspect_text(t, g, &err), &err);
    CHECK(ftell(t) > 0);
    fclose(t);
    fclose(f);
    bn_gguf_close(g);
    return root;
}

static json_t *meta(json_t *root, const char *key) {
    json_t *list = json_object_get(root, "metadata");
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *kv = json_array_get(list, i);
        if (!strcmp(json_string_value(json_object_get(kv, "key")) ? json_string_value(json_object_get(kv, "key")) : "", key)) return kv;
    }
    return NULL;
}

static const char *str(json_t *o, const char *field) {
    const char *s = json_string_value(json_object_get(o, field));
    return s ? s : "";
}

static long long num(json_t *o, const char *field) { return json_integer_value(json_object_get(o, field)); }

static void test_example(const char *dir) {
    char *path = bn_test_path(dir, "example.gguf");
    bn_error err;
    CHECK_OK(bn_gguf_example_write_small(path, &err), &err);
    json_t *root = report(path);
    if (!root) {
        free(path);
        return;
    }
    CHECK(num(root, "version") == 3 && num(root, "alignment") == 32);
    CHECK(num(root, "file_size") > num(root, "data_offset") && num(root, "data_offset") % 32 == 0);
    CHECK(json_array_size(json_object_get(root, "metadata")) == 20);
    json_t *kv;
    CHECK((kv = meta(root, "example.uint8")) && !strcmp(str(kv, "type"), "uint8") && num(kv, "value") == 200);
    CHECK((kv = meta(root, "example.int8")) && !strcmp(str(kv, "type"), "int8") && num(kv, "value") == -100);
    CHECK((kv = meta(root, "example.uint16")) && num(kv, "value") == 60000);
    CHECK((kv = meta(root, "example.int16")) && num(kv, "value") == -30000);
    CHECK((kv = meta(root, "example.int32")) && num(kv, "value") == -2000000000);
    CHECK((kv = meta(root, "example.uint64")) && !strcmp(str(kv, "value"), "18446744073709551615"));
    CHECK((kv = meta(root, "example.int64")) && num(kv, "value") == -9000000000000000000ll);
    CHECK((kv = meta(root, "example.float32")) && json_real_value(json_object_get(kv, "value")) == (double)1e-5f);
    CHECK((kv = meta(root, "example.float64")) && json_real_value(json_object_get(kv, "value")) == 3.141592653589793);
    CHECK((kv = meta(root, "example.bool")) && json_is_true(json_object_get(kv, "value")));
    CHECK((kv = meta(root, "general.name")) && !strcmp(str(kv, "value"), "bitnet-c example file"));
    CHECK((kv = meta(root, "example.string_array")) && !strcmp(str(kv, "type"), "array") &&
          !strcmp(str(kv, "element_type"), "string") && num(kv, "count") == 4 &&
          !strcmp(json_string_value(json_array_get(json_object_get(kv, "items"), 2)), "γάμμα"));
    CHECK((kv = meta(root, "example.long_array")) && num(kv, "count") == 300 &&
          json_array_size(json_object_get(kv, "items")) == BN_INSPECT_ARRAY_ITEMS &&
          json_integer_value(json_array_get(json_object_get(kv, "items"), 7)) == 49 &&
          json_is_true(json_object_get(kv, "truncated")));
    if ((kv = meta(root, "example.nested_array"))) {
        json_t *inner = json_array_get(json_object_get(kv, "items"), 1);
        CHECK(!strcmp(str(kv, "element_type"), "array") && num(kv, "count") == 2);
        CHECK(!strcmp(str(inner, "element_type"), "uint32") && num(inner, "count") == 2 &&
              json_integer_value(json_array_get(json_object_get(inner, "items"), 1)) == 5);
    } else {
        CHECK(!"example.nested_array");
    }
    json_t *tensors = json_object_get(root, "tensors");
    CHECK(json_array_size(tensors) == 7);
    static const struct { const char *type; long long bytes, params; } rows[] = {
        {"f32", 32, 8}, {"f16", 64, 32}, {"bf16", 32, 16}, {"q8_0", 68, 64},
        {"tq1_0", 54, 256}, {"tq2_0", 66, 256}, {"i2_s", 96, 256}};
    for (size_t i = 0; i < 7; i++) {
        json_t *t = json_array_get(tensors, i);
        CHECKF(!strcmp(str(t, "type"), rows[i].type) && num(t, "bytes") == rows[i].bytes &&
                   num(t, "parameters") == rows[i].params,
               "tensor %zu", i);
        CHECKF(num(t, "file_offset") == num(root, "data_offset") + num(t, "offset"), "tensor %zu offset", i);
    }
    json_t *i2s = json_array_get(tensors, 6);
    CHECK(json_array_size(json_object_get(i2s, "shape")) == 2 &&
          json_integer_value(json_array_get(json_object_get(i2s, "shape"), 0)) == 128);
    json_t *totals = json_object_get(root, "totals");
    CHECK(num(totals, "tensors") == 7 && num(totals, "parameters") == 888 && num(totals, "bytes") == 412);
    CHECK(num(json_object_get(json_object_get(totals, "by_type"), "i2_s"), "bytes") == 96);
    json_decref(root);
    free(path);
}

static void test_oracle(void) {
    char *path = bn_test_path(bn_test_source_dir(), "tests/data/oracle-a/model.gguf");
    json_t *root = report(path);
    if (root) {
        CHECK(json_array_size(json_object_get(root, "metadata")) == 23);
        CHECK(json_array_size(json_object_get(root, "tensors")) == 24);
        json_t *kv = meta(root, "tokenizer.ggml.tokens");
        CHECK(kv && num(kv, "count") == 759 && json_array_size(json_object_get(kv, "items")) == 8 &&
              !strcmp(json_string_value(json_array_get(json_object_get(kv, "items"), 0)), "!"));
        kv = meta(root, "tokenizer.ggml.merges");
        CHECK(kv && num(kv, "count") == 500 && !strcmp(json_string_value(json_array_get(json_object_get(kv, "items"), 0)), "Ġ t"));
        json_t *by_type = json_object_get(json_object_get(root, "totals"), "by_type");
        CHECK(num(json_object_get(by_type, "i2_s"), "tensors") == 14 && num(json_object_get(by_type, "i2_s"), "bytes") == 393664);
        CHECK(num(json_object_get(by_type, "f16"), "bytes") == 388608 && num(json_object_get(by_type, "f32"), "tensors") == 9);
        json_decref(root);
    }
    free(path);
}

int main(void) {
    char *dir = bn_test_tmpdir("gguf_inspect");
    test_example(dir);
    test_oracle();
    free(dir);
    return bn_test_finish("test_gguf_inspect");
}
