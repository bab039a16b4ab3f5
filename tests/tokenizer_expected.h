/*
 * tokenizer_expected.h: shared by the tokenizer corpus tests. Loads an expected-ids file written
 * by tests/js/gen-expected.mjs and checks a bn_tokenizer against one of its id lists, id for id,
 * plus the decode round trip. Header-only (static functions) because each test is one program.
 */
#ifndef BN_TEST_TOKENIZER_EXPECTED_H
#define BN_TEST_TOKENIZER_EXPECTED_H

#include "testutil.h"
#include "tokenizer/tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

/* The cases array of an expected file (caller json_decref's the returned root); NULL on error. */
static json_t *expected_load(const char *name, const json_t **cases) {
    char *path = bn_test_path(bn_test_source_dir(), name);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    CHECKF(root != NULL, "%s: %s", path, jerr.text);
    free(path);
    *cases = json_object_get(root, "cases");
    CHECK(json_array_size(*cases) >= 300);
    return root;
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Encodes every case and compares with cases[i][field]; returns the number of mismatches.
 * Also checks that decoding the ids gives back the text (where round_trip). */
static int expected_check(const bn_tokenizer *tok, const json_t *cases, const char *field, bool parse_special,
                          bool round_trip, const char *label) {
    int mismatches = 0, decode_failures = 0;
    size_t i;
    const json_t *c;
    json_array_foreach(cases, i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        size_t len = json_string_length(json_object_get(c, "text"));
        const json_t *want = json_object_get(c, field);
        bn_tokens got = {0};
        bn_error err;
        bn_status st = bn_tokenizer_encode(tok, text, len, false, parse_special, &got, &err);
        bool same = st == BN_OK && got.n == json_array_size(want);
        for (size_t k = 0; same && k < got.n; k++)
            same = got.ids[k] == json_integer_value(json_array_get(want, k));
        if (!same) {
            if (mismatches < 10) {
                fprintf(stderr, "MISMATCH [%s/%s] case %zu %s\n", label, field, i, st == BN_OK ? "" : err.message);
                fprintf(stderr, "  text: ");
                for (size_t k = 0; k < len; k++)
                    fprintf(stderr, (unsigned char)text[k] < 0x20 ? "\\x%02x" : "%c", (unsigned char)text[k]);
                fputc('\n', stderr);
                int32_t w[512];
                size_t nw = json_array_size(want) < 512 ? json_array_size(want) : 512;
                for (size_t k = 0; k < nw; k++) w[k] = (int32_t)json_integer_value(json_array_get(want, k));
                print_ids("want", w, nw);
                print_ids("got ", got.ids, got.n);
            }
            mismatches++;
        } else if (round_trip) {
            char *back = NULL;
            size_t back_len = 0;
            if (bn_tokenizer_decode(tok, got.ids, got.n, false, &back, &back_len, &err) != BN_OK ||
                back_len != len || memcmp(back, text, len) != 0) {
                if (decode_failures < 5) fprintf(stderr, "ROUND TRIP [%s] case %zu\n", label, i);
                decode_failures++;
            }
            free(back);
        }
        bn_tokens_free(&got);
    }
    CHECKF(mismatches == 0, "%s/%s: %d of %zu cases differ from Hugging Face", label, field, mismatches,
           json_array_size(cases));
    CHECKF(decode_failures == 0, "%s/%s: %d cases do not decode back to their text", label, field, decode_failures);
    printf("%s/%s: %zu cases, %d mismatches\n", label, field, json_array_size(cases), mismatches);
    return mismatches;
}

#endif
