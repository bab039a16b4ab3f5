/*
 * test_grammar.c: the grammar core (sampling/grammar.h) and the JSON Schema compiler
 * (sampling/json_schema.h) without a model: what the builder refuses, what the matcher accepts
 * (ambiguous alternatives, empty rules, right recursion, UTF-8 classes against a direct check of
 * every code point), that try and accept agree and the shortest completion is always a sentence,
 * and per schema keyword documents that must and must not match; bounded integers checked against
 * every integer in a window.
 */
#include "testutil.h"

#include "sampling/gbnf.h"
#include "sampling/grammar.h"
#include "sampling/json_schema.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool matches(const bn_grammar *g, const char *text, size_t n) {
    bn_grammar_matcher *m = NULL;
    bn_error err;
    if (bn_grammar_matcher_new(&m, g, &err) != BN_OK) return false;
    bool ok = bn_grammar_matcher_accept(m, (const uint8_t *)text, n) && bn_grammar_matcher_outlook(m).accepting;
    bn_grammar_matcher_free(m);
    return ok;
}

static bool matches_str(const bn_grammar *g, const char *text) { return matches(g, text, strlen(text)); }

/* root ::= "a" root | "b" x ; x ::= "" | "c" x ; plus an ambiguous rule: amb ::= "ab" | "a" y ; y ::= "b" | "bc" */
static void test_builder_and_matcher(void) {
    bn_error err;
    bn_grammar_builder *b;
    CHECK_OK(bn_grammar_builder_new(&b, &err), &err);
    int root = bn_grammar_rule(b, "root"), x = bn_grammar_rule(b, "x"), amb = bn_grammar_rule(b, "amb"),
        y = bn_grammar_rule(b, "y");
    int a = bn_grammar_alt(b, root);
    bn_grammar_add_literal(b, a, "a", 1);
    bn_grammar_add_ref(b, a, root);
    a = bn_grammar_alt(b, root);
    bn_grammar_add_literal(b, a, "b", 1);
    bn_grammar_add_ref(b, a, x);
    a = bn_grammar_alt(b, root);
    bn_grammar_add_literal(b, a, "=", 1);
    bn_grammar_add_ref(b, a, amb);
    bn_grammar_alt(b, x);
    a = bn_grammar_alt(b, x);
    bn_grammar_add_literal(b, a, "c", 1);
    bn_grammar_add_ref(b, a, x);
    bn_grammar_add_literal(b, bn_grammar_alt(b, amb), "ab", 2);
    a = bn_grammar_alt(b, amb);
    bn_grammar_add_literal(b, a, "a", 1);
    bn_grammar_add_ref(b, a, y);
    bn_grammar_add_literal(b, bn_grammar_alt(b, y), "b", 1);
    bn_grammar_add_literal(b, bn_grammar_alt(b, y), "bc", 2);
    bn_grammar *g = NULL;
    CHECK_OK(bn_grammar_builder_finish(b, root, &g, &err), &err);
    if (!g) return;
    CHECK(bn_grammar_min_len(g) == 1);
    CHECK(matches_str(g, "b") && matches_str(g, "aaab") && matches_str(g, "abccc") && matches_str(g, "=ab") &&
          matches_str(g, "=abc"));
    CHECK(!matches_str(g, "a") && !matches_str(g, "ba") && !matches_str(g, "=a") && !matches_str(g, "=abcc") &&
          !matches_str(g, ""));
    /* long right recursion: constant work per byte, accepted */
    size_t n = 200000;
    char *long_text = malloc(n + 2);
    memset(long_text, 'a', n);
    long_text[n] = 'b';
    CHECK(matches(g, long_text, n + 1));
    free(long_text);

    bn_grammar_matcher *m;
    CHECK_OK(bn_grammar_matcher_new(&m, g, &err), &err);
    bn_grammar_outlook o = bn_grammar_matcher_outlook(m);
    CHECK(o.ok && !o.accepting && o.can_continue && o.completion_len == 1);
    CHECK(bn_grammar_matcher_allows_byte(m, 'a') && bn_grammar_matcher_allows_byte(m, '=') &&
          !bn_grammar_matcher_allows_byte(m, 'c'));
    o = bn_grammar_matcher_try(m, (const uint8_t *)"=a", 2);
    CHECK(o.ok && !o.accepting && o.completion_len == 1);
    o = bn_grammar_matcher_try(m, (const uint8_t *)"=ab", 3);
    CHECK(o.ok && o.accepting && o.can_continue); /* "=ab" or "=abc" */
    o = bn_grammar_matcher_try(m, (const uint8_t *)"=abc", 4);
    CHECK(o.ok && o.accepting && !o.can_continue);
    CHECK(!bn_grammar_matcher_try(m, (const uint8_t *)"=abcc", 5).ok);
    /* try leaves the state alone; a refused accept too */
    CHECK(!bn_grammar_matcher_accept(m, (const uint8_t *)"c", 1));
    CHECK(bn_grammar_matcher_accept(m, (const uint8_t *)"aa", 2));
    char buf[16];
    CHECK(bn_grammar_matcher_completion(m, buf, sizeof buf) == 1 && !strcmp(buf, "b"));
    CHECK(bn_grammar_matcher_completion(m, buf, 1) == (size_t)-1);
    bn_grammar_matcher_free(m);
    bn_grammar_free(g);

    /* a first byte that ends the sentence leaves no stack (the first-byte cache holds none) */
    CHECK_OK(bn_grammar_builder_new(&b, &err), &err);
    root = bn_grammar_rule(b, "root");
    bn_grammar_add_literal(b, bn_grammar_alt(b, root), "a", 1);
    CHECK_OK(bn_grammar_builder_finish(b, root, &g, &err), &err);
    CHECK_OK(bn_grammar_matcher_new(&m, g, &err), &err);
    o = bn_grammar_matcher_try(m, (const uint8_t *)"a", 1);
    CHECK(o.ok && o.accepting && !o.can_continue && o.completion_len == 0);
    CHECK(!bn_grammar_matcher_try(m, (const uint8_t *)"aa", 2).ok);
    bn_grammar_matcher_free(m);
    bn_grammar_free(g);

    /* nested alternatives that can all match nothing: each (position, continuation) is expanded
     * once per byte, so 40 levels cost linear time (they took 2^40 expansions once) */
    static const char nested[] = "root ::= (\"a\"* | \"b\"*){40} \"c\"\n";
    CHECK_OK(bn_gbnf_compile(nested, strlen(nested), &g, &err), &err);
    if (g) {
        CHECK(matches_str(g, "c") && matches_str(g, "aabbac") && !matches_str(g, "aabba"));
        bn_grammar_free(g);
    }

    /* refusals: left recursion (also through an empty rule), undefined rules, no way to end */
    static const char *const why[] = {"left recursive", "left recursive", "not defined", "never end"};
    for (int k = 0; k < 4; k++) {
        CHECK_OK(bn_grammar_builder_new(&b, &err), &err);
        int r = bn_grammar_rule(b, "root"), e = bn_grammar_rule(b, "e");
        bn_grammar_alt(b, e);
        a = bn_grammar_alt(b, r);
        if (k == 0) bn_grammar_add_ref(b, a, r), bn_grammar_add_literal(b, a, "x", 1);
        if (k == 1) bn_grammar_add_ref(b, a, e), bn_grammar_add_ref(b, a, r);
        if (k < 2) bn_grammar_add_literal(b, bn_grammar_alt(b, r), "y", 1); /* finite, but left recursive */
        if (k == 2) bn_grammar_add_ref(b, a, bn_grammar_rule(b, "missing"));
        if (k == 3) bn_grammar_add_literal(b, a, "x", 1), bn_grammar_add_ref(b, a, r);
        CHECK(bn_grammar_builder_finish(b, r, &g, &err) != BN_OK && g == NULL);
        CHECKF(strstr(err.message, why[k]) != NULL, "case %d: %s", k, err.message);
    }
}

/* Decodes one UTF-8 character of exactly n bytes; -1 when invalid. */
static long decode_utf8(const uint8_t *s, size_t n) {
    long cp;
    if (n == 1) return s[0] < 0x80 ? s[0] : -1;
    if (n == 2) cp = s[0] & 0x1f;
    else if (n == 3) cp = s[0] & 0x0f;
    else cp = s[0] & 0x07;
    if ((s[0] & (n == 2 ? 0xe0 : n == 3 ? 0xf0 : 0xf8)) != (n == 2 ? 0xc0 : n == 3 ? 0xe0 : 0xf0)) return -1;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return -1;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const long min_of[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_of[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
    return cp;
}

static void test_codepoints(void) {
    const uint32_t ranges[] = {'a', 'z', 0xe9, 0xe9, 0x7ff, 0x801, 0xd000, 0xe100, 0xfff0, 0x10010, 0x10fff0, 0x10ffff};
    for (int negate = 0; negate < 2; negate++) {
        bn_error err;
        bn_grammar_builder *b;
        CHECK_OK(bn_grammar_builder_new(&b, &err), &err);
        int root = bn_grammar_rule(b, "root");
        bn_grammar_add_codepoints(b, bn_grammar_alt(b, root), ranges, 6, negate);
        bn_grammar *g = NULL;
        CHECK_OK(bn_grammar_builder_finish(b, root, &g, &err), &err);
        if (!g) return;
        /* every byte string of 1 to 4 bytes that is one valid character: accepted iff in class;
         * invalid sequences never */
        int wrong = 0;
        for (long cp = 0; cp <= 0x10ffff; cp += cp < 0x20000 ? 1 : 61) {
            uint8_t s[4];
            size_t n;
            if (cp < 0x80) s[0] = (uint8_t)cp, n = 1;
            else if (cp < 0x800) s[0] = (uint8_t)(0xc0 | cp >> 6), s[1] = (uint8_t)(0x80 | (cp & 0x3f)), n = 2;
            else if (cp < 0x10000)
                s[0] = (uint8_t)(0xe0 | cp >> 12), s[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f)),
                s[2] = (uint8_t)(0x80 | (cp & 0x3f)), n = 3;
            else
                s[0] = (uint8_t)(0xf0 | cp >> 18), s[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f)),
                s[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f)), s[3] = (uint8_t)(0x80 | (cp & 0x3f)), n = 4;
            bool in = false;
            for (int i = 0; i < 6; i++) in |= cp >= (long)ranges[2 * i] && cp <= (long)ranges[2 * i + 1];
            bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
            bool expect = !surrogate && (negate ? !in : in);
            if (matches(g, (const char *)s, n) != expect) wrong++;
        }
        CHECKF(wrong == 0, "negate %d: %d code points wrong", negate, wrong);
        /* overlong and stray bytes */
        static const char *const bad[] = {"\xc0\xa9", "\xe0\x80\xa9", "\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80"};
        for (size_t i = 0; i < 5; i++) CHECK(!matches_str(g, bad[i]) && decode_utf8((const uint8_t *)bad[i], strlen(bad[i])) < 0);
        bn_grammar_free(g);
    }
}

static bn_grammar *schema(const char *text) {
    bn_grammar *g = NULL;
    bn_error err;
    CHECKF(bn_json_schema_grammar(&g, text, &err) == BN_OK, "%s: %s", text, err.message);
    return g;
}

static void test_integer_bounds(void) {
    static const char *const bounds[] = {
        "\"minimum\":-57,\"maximum\":1003", "\"minimum\":0", "\"maximum\":-10", "\"exclusiveMinimum\":-1,\"exclusiveMaximum\":100",
        "\"minimum\":7,\"maximum\":7", "\"minimum\":-999,\"maximum\":-100", "\"minimum\":1.5,\"maximum\":20.5", "\"minimum\":120"};
    static const long lo[] = {-57, 0, -1000000, 0, 7, -999, 2, 120}, hi[] = {1003, 1000000, -10, 99, 7, -100, 20, 1000000};
    for (size_t k = 0; k < sizeof bounds / sizeof bounds[0]; k++) {
        char text[256];
        snprintf(text, sizeof text, "{\"type\":\"integer\",%s}", bounds[k]);
        bn_grammar *g = schema(text);
        if (!g) continue;
        int wrong = 0;
        for (long v = -1200; v <= 1200; v++) {
            char num[32];
            snprintf(num, sizeof num, "%ld", v);
            if (matches_str(g, num) != (v >= lo[k] && v <= hi[k])) wrong++;
        }
        CHECKF(wrong == 0, "%s: %d integers wrong", bounds[k], wrong);
        CHECK(!matches_str(g, "007") && !matches_str(g, "-0") && !matches_str(g, "1.0"));
        bn_grammar_free(g);
    }
    bn_grammar *g = schema("{\"type\":\"number\",\"minimum\":0,\"maximum\":1}");
    if (g) {
        CHECK(matches_str(g, "0") && matches_str(g, "1") && matches_str(g, "0.25") && matches_str(g, "0.999"));
        CHECK(!matches_str(g, "1.5") && !matches_str(g, "-0.5") && !matches_str(g, "2") && !matches_str(g, "1e3"));
        bn_grammar_free(g);
    }
    g = schema("{\"type\":\"number\",\"exclusiveMinimum\":-2,\"maximum\":3.5}");
    if (g) {
        CHECK(matches_str(g, "-1") && matches_str(g, "-1.75") && matches_str(g, "3") && matches_str(g, "2.5") && matches_str(g, "-0.5"));
        CHECK(!matches_str(g, "-2") && !matches_str(g, "3.75") && !matches_str(g, "4") && !matches_str(g, "-2.5"));
        bn_grammar_free(g);
    }
}

typedef struct doc_case {
    const char *schema;
    const char *yes[4];
    const char *no[4];
} doc_case;

static void test_schema_keywords(void) {
    static const doc_case cases[] = {
        {"{\"anyOf\":[{\"type\":\"string\",\"maxLength\":2},{\"type\":\"integer\",\"minimum\":5}]}",
         {"\"ab\"", "5", "123"}, {"\"abc\"", "4", "true"}},
        {"{\"oneOf\":[{\"type\":\"null\"},{\"enum\":[\"x\",1,[2]]}]}", {"null", "\"x\"", "1", "[2]"}, {"2", "\"y\"", "[1]"}},
        {"{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},\"kids\":{\"type\":\"array\","
         "\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"]}},\"$ref\":\"#/$defs/node\"}",
         {"{\"v\":1}", "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[]},{\"v\":3}]}"}, {"{\"kids\":[]}", "{\"v\":1,\"kids\":[{}]}"}},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"const\":\"on\"},\"b\":{\"type\":[\"string\",\"null\"]}},\"required\":[\"a\"],"
         "\"additionalProperties\":false}", {"{\"a\":\"on\"}", "{\"a\":\"on\",\"b\":null}", "{\"a\":\"on\",\"b\":\"z\"}"},
         {"{\"a\":\"off\"}", "{\"b\":null}", "{\"a\":\"on\",\"c\":1}"}},
        {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", {"\"ab\"", "\"\xc3\xa9\xc3\xa9\xc3\xa9\"", "\"a\\n\""},
         {"\"a\"", "\"abcd\"", "\"\""}},
        {"{\"type\":\"array\",\"items\":{\"type\":\"boolean\"},\"minItems\":1,\"maxItems\":2}", {"[true]", "[true,false]", "[ false , true ]"},
         {"[]", "[true,true,true]", "[1]"}},
        {"{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"items\":false}",
         {"[1,\"a\"]", "[1]", "[]"}, {"[1,\"a\",2]", "[\"a\"]"}},
        {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"number\"},\"minProperties\":1}", {"{\"x\":1}", "{\"x\":1,\"y\":2.5}"},
         {"{}", "{\"x\":\"1\"}"}},
        {"{\"type\":\"string\",\"nullable\":true,\"enum\":[\"a\",null]}", {"\"a\"", "null"}, {"\"b\""}},
        {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},"
         "{\"properties\":{\"b\":{\"type\":\"boolean\"}},\"required\":[\"b\"]}]}", {"{\"a\":1,\"b\":true}"}, {"{\"a\":1}", "{\"b\":true}"}},
        /* each part's additionalProperties sees only its own properties: c is never generated */
        {"{\"allOf\":[{\"properties\":{\"a\":{\"type\":\"integer\"}},\"additionalProperties\":false},"
         "{\"properties\":{\"a\":{\"minimum\":3},\"c\":{}}}]}", {"{\"a\":3}", "{}"}, {"{\"a\":2}", "{\"a\":3,\"c\":1}"}},
        {"{\"type\":\"object\",\"anyOf\":[{\"required\":[\"x\"]},{\"required\":[\"y\"]}],\"properties\":{\"x\":{\"type\":\"integer\"},"
         "\"y\":{\"type\":\"string\"}}}", {"{\"x\":1}", "{\"y\":\"s\"}", "{\"x\":1,\"y\":\"s\"}"}, {"{}", "{\"x\":\"s\"}"}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        bn_grammar *g = schema(cases[k].schema);
        if (!g) continue;
        for (int i = 0; i < 4 && cases[k].yes[i]; i++) CHECKF(matches_str(g, cases[k].yes[i]), "schema %zu: %s refused", k, cases[k].yes[i]);
        for (int i = 0; i < 4 && cases[k].no[i]; i++) CHECKF(!matches_str(g, cases[k].no[i]), "schema %zu: %s accepted", k, cases[k].no[i]);
        /* random walks end in documents the grammar accepts and jansson parses */
        bn_grammar_matcher *m;
        bn_error err;
        CHECK_OK(bn_grammar_matcher_new(&m, g, &err), &err);
        bn_test_rng rng;
        bn_test_rng_seed(&rng, 7 + k);
        for (int walk = 0; walk < 50; walk++) {
            bn_grammar_matcher_reset(m);
            char doc[4096];
            size_t len = 0;
            int steps = (int)bn_test_rng_range(&rng, 0, 60);
            for (int s = 0; s < steps && bn_grammar_matcher_outlook(m).can_continue; s++) {
                uint8_t allowed[256];
                int n = 0;
                for (int c = 1; c < 256; c++)
                    if (bn_grammar_matcher_allows_byte(m, (uint8_t)c) && bn_grammar_matcher_try(m, (const uint8_t *)&(uint8_t){(uint8_t)c}, 1).ok)
                        allowed[n++] = (uint8_t)c;
                if (!n) break;
                uint8_t c = allowed[bn_test_rng_range(&rng, 0, n - 1)];
                CHECK(bn_grammar_matcher_accept(m, &c, 1));
                doc[len++] = (char)c;
            }
            size_t more = bn_grammar_matcher_completion(m, doc + len, sizeof doc - len);
            CHECK(more != (size_t)-1 && more == bn_grammar_matcher_outlook(m).completion_len);
            if (more == (size_t)-1) continue;
            CHECK(bn_grammar_matcher_accept(m, (const uint8_t *)doc + len, more) && bn_grammar_matcher_outlook(m).accepting);
            json_t *v = json_loadb(doc, len + more, JSON_DECODE_ANY, NULL);
            CHECKF(v != NULL, "schema %zu walk %d: %.*s", k, walk, (int)(len + more), doc);
            json_decref(v);
        }
        bn_grammar_matcher_free(m);
        bn_grammar_free(g);
    }
    /* refused keywords name themselves and their place */
    static const struct { const char *schema, *message; } refused[] = {
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"not\":{}}}}", "schema.properties.a.not: keyword not supported"},
        {"{\"type\":\"array\",\"uniqueItems\":true}", "schema.uniqueItems"},
        {"{\"type\":\"object\",\"patternProperties\":{}}", "schema.patternProperties"},
        {"{\"$ref\":\"http://example.com/s.json\"}", "only local references"},
        {"{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", "no integer"},
        {"{\"type\":\"widget\"}", "unknown type"},
        {"false", "accepts nothing"},
        {"{\"allOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "exclude each other"},
        {"{\"additionalProperties\":false,\"allOf\":[{\"properties\":{\"a\":{}},\"required\":[\"a\"]}]}", "excludes it"},
    };
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        bn_grammar *g = NULL;
        bn_error err;
        CHECK(bn_json_schema_grammar(&g, refused[k].schema, &err) != BN_OK && g == NULL);
        CHECKF(strstr(err.message, refused[k].message) != NULL, "%s: %s", refused[k].schema, err.message);
    }
}

int main(void) {
    test_builder_and_matcher();
    test_codepoints();
    test_integer_bounds();
    test_schema_keywords();
    return bn_test_finish("test_grammar");
}
