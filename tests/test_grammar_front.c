/*
 * test_grammar_front.c: the two text front ends of the grammar builder: GBNF (sampling/gbnf.h)
 * and regular expressions (sampling/grammar_regex.h). For each: sentences that must be accepted
 * and refused, whole and as prefixes; random walks from fixed seeds (random allowed bytes, then
 * the matcher's shortest completion) that must end in accepted sentences, checked against
 * independent oracles (jansson for JSON text and JSON string content, POSIX regexec and PCRE2
 * for patterns); error messages for malformed and unsupported input; and the limits.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "sampling/gbnf.h"
#include "sampling/grammar.h"
#include "sampling/grammar_regex.h"
#include "testutil.h"

#include <jansson.h>
#include <pcre2.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>

#define WALKS 200
#define SENTENCE_MAX 8192

/* ---------------------------------------------------------------- helpers */

/* The outlook after feeding s[0..n) from the start (ok false when a byte is refused). */
static bn_grammar_outlook feed(const bn_grammar *g, const char *s, size_t n) {
    bn_grammar_outlook refused = {0};
    bn_grammar_matcher *m = NULL;
    bn_error err;
    if (bn_grammar_matcher_new(&m, g, &err) != BN_OK) return refused;
    bn_grammar_outlook o = bn_grammar_matcher_accept(m, (const uint8_t *)s, n) ? bn_grammar_matcher_outlook(m) : refused;
    bn_grammar_matcher_free(m);
    return o;
}

static bool accepts(const bn_grammar *g, const char *s) {
    bn_grammar_outlook o = feed(g, s, strlen(s));
    return o.ok && o.accepting;
}

/* A prefix of a sentence that is not a sentence itself. */
static bool is_strict_prefix(const bn_grammar *g, const char *s) {
    bn_grammar_outlook o = feed(g, s, strlen(s));
    return o.ok && !o.accepting && o.can_continue;
}

/* A sentence after which nothing may follow. */
static bool is_final(const bn_grammar *g, const char *s) {
    bn_grammar_outlook o = feed(g, s, strlen(s));
    return o.ok && o.accepting && !o.can_continue;
}

static bn_grammar *gbnf(const char *text) {
    bn_grammar *g = NULL;
    bn_error err = {0};
    bn_status st = bn_gbnf_compile(text, strlen(text), &g, &err);
    CHECKF(st == BN_OK, "GBNF %s: %s", text, err.message);
    return g;
}

static void gbnf_refused(const char *text, bn_status status, const char *fragment) {
    bn_grammar *g = NULL;
    bn_error err = {0};
    bn_status st = bn_gbnf_compile(text, strlen(text), &g, &err);
    CHECKF(st == status && g == NULL, "GBNF %s: status %d (wanted %d): %s", text, (int)st, (int)status, err.message);
    CHECKF(strstr(err.message, fragment) != NULL, "GBNF %s: wanted \"%s\" in \"%s\"", text, fragment, err.message);
    bn_grammar_free(g);
}

static bn_grammar *regex(const char *pattern, unsigned flags) {
    bn_grammar_builder *b = NULL;
    bn_grammar *g = NULL;
    bn_error err = {0};
    int rule = -1;
    if (bn_grammar_builder_new(&b, &err) != BN_OK) return NULL;
    bn_status st = bn_grammar_regex(b, pattern, flags, &rule, &err);
    CHECKF(st == BN_OK, "regex %s: %s", pattern, err.message);
    if (st != BN_OK) {
        bn_grammar_builder_free(b);
        return NULL;
    }
    st = bn_grammar_builder_finish(b, rule, &g, &err);
    CHECKF(st == BN_OK, "regex %s: finish: %s", pattern, err.message);
    return g;
}

static void regex_refused(const char *pattern, bn_status status, const char *fragment) {
    bn_grammar_builder *b = NULL;
    bn_error err = {0};
    int rule = 7;
    if (bn_grammar_builder_new(&b, &err) != BN_OK) return;
    bn_status st = bn_grammar_regex(b, pattern, 0, &rule, &err);
    CHECKF(st == status && rule == -1, "regex %s: status %d (wanted %d): %s", pattern, (int)st, (int)status,
           err.message);
    CHECKF(strstr(err.message, fragment) != NULL, "regex %s: wanted \"%s\" in \"%s\"", pattern, fragment, err.message);
    bn_grammar_builder_free(b);
}

/* A random sentence: up to max_steps random allowed bytes, then the shortest completion, all of
 * which the matcher must take and end accepting. Returns its length, or -1 (with a failed check). */
static long random_sentence(const bn_grammar *g, bn_test_rng *rng, int max_steps, char *out, size_t cap) {
    bn_grammar_matcher *m = NULL;
    bn_error err;
    if (bn_grammar_matcher_new(&m, g, &err) != BN_OK) {
        CHECKF(false, "matcher: %s", err.message);
        return -1;
    }
    size_t len = 0;
    int steps = (int)bn_test_rng_range(rng, 0, max_steps);
    for (int i = 0; i < steps && len + 1 < cap / 2; i++) {
        uint8_t allowed[256];
        int n = 0;
        for (int c = 0; c < 256; c++)
            if (bn_grammar_matcher_allows_byte(m, (uint8_t)c)) allowed[n++] = (uint8_t)c;
        if (n == 0) break;
        uint8_t c = allowed[bn_test_rng_range(rng, 0, n - 1)];
        bn_grammar_outlook o = bn_grammar_matcher_try(m, &c, 1);
        bool took = bn_grammar_matcher_accept(m, &c, 1);
        CHECKF(took == o.ok, "try and accept disagree on byte 0x%02x after %.*s", c, (int)len, out);
        if (!took) break; /* an allowed first byte may still lead nowhere (union of the stacks) */
        out[len++] = (char)c;
    }
    bn_grammar_outlook before = bn_grammar_matcher_outlook(m);
    size_t n = bn_grammar_matcher_completion(m, out + len, cap - len);
    long result = -1;
    if (n == (size_t)-1) {
        CHECKF(false, "completion does not fit after %.*s", (int)len, out);
    } else {
        CHECKF(n == before.completion_len, "completion of %zu bytes, outlook said %zu", n, before.completion_len);
        bool took = bn_grammar_matcher_accept(m, (const uint8_t *)out + len, n);
        bn_grammar_outlook o = bn_grammar_matcher_outlook(m);
        CHECKF(took && o.accepting, "completion not accepted: %.*s", (int)(len + n), out);
        if (took && o.accepting) result = (long)(len + n);
    }
    bn_grammar_matcher_free(m);
    return result;
}

/* ---------------------------------------------------------------- GBNF */

static void test_gbnf_basics(void) {
    bn_grammar *g = gbnf("root ::= \"yes\" | \"no\"");
    if (g) {
        CHECK(is_final(g, "yes"));
        CHECK(is_final(g, "no"));
        CHECK(is_strict_prefix(g, "ye"));
        CHECK(!feed(g, "yess", 4).ok);
        CHECK(!feed(g, "maybe", 5).ok);
        CHECK(!accepts(g, ""));
        CHECK(bn_grammar_min_len(g) == 2);
    }
    bn_grammar_free(g);

    /* rules used before their definition, comments, blank lines, CRLF */
    g = gbnf("# a greeting\r\n\r\nroot ::= greet \" \" name # then a name\r\n"
             "greet ::= \"hi\" | \"hello\"\r\n\n"
             "name ::= [A-Z] [a-z]*\n");
    if (g) {
        CHECK(accepts(g, "hi Bob"));
        CHECK(accepts(g, "hello X"));
        CHECK(is_strict_prefix(g, "hello "));
        CHECK(!feed(g, "hi bob", 6).ok);
        CHECK(!feed(g, "hey Bob", 7).ok);
    }
    bn_grammar_free(g);

    /* a rule goes on after ::=, after |, and inside parentheses */
    g = gbnf("root ::=\n  \"a\" |\n  \"b\" (\n \"c\"\n | \"d\"\n )\nother ::= \"x\"\n");
    if (g) {
        CHECK(accepts(g, "a"));
        CHECK(accepts(g, "bc"));
        CHECK(accepts(g, "bd"));
        CHECK(!feed(g, "x", 1).ok);
    }
    bn_grammar_free(g);

    /* empty alternatives and an empty rule */
    g = gbnf("root ::= \"a\" opt \"c\"\nopt ::= | \"b\"\nnothing ::=\n");
    if (g) {
        CHECK(accepts(g, "ac"));
        CHECK(accepts(g, "abc"));
        CHECK(!feed(g, "abbc", 4).ok);
    }
    bn_grammar_free(g);

    /* a user's rule named like a helper rule ("root-1", the group's) stays its own rule */
    g = gbnf("root ::= (\"a\") root-1\nroot-1 ::= \"b\"");
    if (g) {
        CHECK(accepts(g, "ab"));
        CHECK(!accepts(g, "aa"));
        CHECK(!accepts(g, "bb"));
    }
    bn_grammar_free(g);

    /* names with digits, dashes and underscores; whitespace between items is free */
    g = gbnf("root::=a-1   b_2\na-1 ::= \"1\"\nb_2::=\"2\"");
    if (g) CHECK(is_final(g, "12"));
    bn_grammar_free(g);
}

static void test_gbnf_literals_and_classes(void) {
    bn_grammar *g = gbnf("root ::= \"q\\\"\\\\\\n\\r\\t\\[\\]\\x41\\u00e9\\U0001F600\"");
    if (g) CHECK(is_final(g, "q\"\\\n\r\t[]A\xc3\xa9\xf0\x9f\x98\x80"));
    bn_grammar_free(g);

    /* raw UTF-8 in literals and classes, ranges of code points */
    g = gbnf("root ::= \"\xc3\xa9t\xc3\xa9\" [\xce\xb1-\xcf\x89]+");
    if (g) {
        CHECK(accepts(g, "\xc3\xa9t\xc3\xa9\xce\xb1\xcf\x89"));
        CHECK(!feed(g, "\xc3\xa9t\xc3\xa9" "a", 6).ok);
    }
    bn_grammar_free(g);

    g = gbnf("root ::= [a-cx] [^a-z\\n] [-z] [a-] [\\]\\[] [\\x30-\\x39] [\\u0100-\\U0001ffff]");
    if (g) {
        CHECK(accepts(g, "xA-a]0\xc4\x80"));
        CHECK(accepts(g, "c\xc3\xa9z-[9\xf0\x9f\x98\x80"));
        CHECK(!feed(g, "d", 1).ok);
        CHECK(!feed(g, "aa", 2).ok);
        CHECK(!feed(g, "a\n", 2).ok);
        CHECK(!feed(g, "aA-a]0\xc3\xbf", 8).ok); /* U+00FF is below U+0100 */
    }
    bn_grammar_free(g);

    /* `.` is any code point, newline included, never a lone continuation or surrogate */
    g = gbnf("root ::= \".\" . \".\"");
    if (g) {
        CHECK(accepts(g, ".x."));
        CHECK(accepts(g, ".\n."));
        CHECK(accepts(g, ".\xf4\x8f\xbf\xbf."));
        CHECK(!feed(g, ".\x80", 2).ok);
        CHECK(!feed(g, ".\xed\xa0\x80", 4).ok);
        CHECK(!feed(g, ".\xc0\xaf", 3).ok);
    }
    bn_grammar_free(g);
}

static void test_gbnf_repetition(void) {
    bn_grammar *g = gbnf("root ::= \"a\"* \"b\"+ \"c\"? \"d\"{2} \"e\"{1,} \"f\"{0,2} ( \"g\" \"h\" ){ 1 , 2 }");
    if (g) {
        CHECK(accepts(g, "bddegh"));
        CHECK(accepts(g, "aaabbbcddeeeffghgh"));
        CHECK(!feed(g, "bdegh", 5).ok);
        CHECK(!feed(g, "bddefffgh", 9).ok);
        CHECK(!feed(g, "bddeghghgh", 10).ok);
        CHECK(is_final(g, "bddeffghgh"));
        CHECK(bn_grammar_min_len(g) == 6);
    }
    bn_grammar_free(g);

    /* postfixes stack: ("ab"{2})* and references repeat */
    g = gbnf("root ::= \"ab\"{2}* x{3}\nx ::= [0-9]");
    if (g) {
        CHECK(accepts(g, "123"));
        CHECK(accepts(g, "abab123"));
        CHECK(!feed(g, "ab123", 5).ok);
        CHECK(!feed(g, "1234", 4).ok);
    }
    bn_grammar_free(g);

    /* stacked postfixes that can match nothing merge into one repetition; others nest */
    g = gbnf("root ::= \"a\"?* \"b\"{0,2}{2,3} \"c\"+? \"d\"{2}?");
    if (g) {
        CHECK(accepts(g, ""));
        CHECK(accepts(g, "aaabbbbccdd"));
        CHECK(accepts(g, "bbbbb"));
        CHECK(!accepts(g, "bbbbbbb"));
        CHECK(!accepts(g, "d"));
        CHECK(!accepts(g, "ddd"));
    }
    bn_grammar_free(g);

    /* right recursion */
    g = gbnf("root ::= \"(\" root \")\" | \"\"");
    if (g) {
        CHECK(accepts(g, "((()))"));
        CHECK(is_strict_prefix(g, "(()"));
        CHECK(!feed(g, "())", 3).ok);
    }
    bn_grammar_free(g);
}

/* A JSON grammar in GBNF whose random sentences jansson must parse. */
static void test_gbnf_json_walks(void) {
    const char *text =
        "root   ::= value\n"
        "value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
        "object ::= \"{\" ws ( member ( \",\" ws member )* )? \"}\" ws\n"
        "member ::= string \":\" ws value\n"
        "array  ::= \"[\" ws ( value ( \",\" ws value )* )? \"]\" ws\n"
        "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1f] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} ) )* \"\\\"\" ws\n"
        "number ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} ) ( \".\" [0-9]+ )? ( [eE] [-+]? [0-9]{1,2} )? ws\n"
        "ws     ::= [ \\t\\n]{0,4}\n";
    bn_grammar *g = gbnf(text);
    if (!g) return;
    CHECK(accepts(g, "{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\"]}"));
    CHECK(!feed(g, "{\"a\" 1}", 6).ok);
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 1234);
    static char s[SENTENCE_MAX];
    int parsed = 0;
    for (int i = 0; i < WALKS; i++) {
        long n = random_sentence(g, &rng, 60, s, sizeof s);
        if (n < 0) continue;
        json_error_t jerr;
        json_t *v = json_loadb(s, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        CHECKF(v != NULL, "not JSON (%s): %.*s", jerr.text, (int)n, s);
        parsed += v != NULL;
        json_decref(v);
    }
    CHECKF(parsed == WALKS, "%d of %d walks parsed", parsed, WALKS);
    bn_grammar_free(g);
}

/* Random sentences of a few grammars must be accepted (the walk checks that itself). */
static void test_gbnf_walks(void) {
    const char *grammars[] = {
        ("root ::= expr\nexpr ::= term ((\"+\" | \"-\") term)*\nterm ::= factor ((\"*\" | \"/\") factor)*\n"
         "factor ::= [0-9]+ | \"(\" expr \")\""),
        "root ::= (. | \"\\n\"){0,8} \"!\"",
        "root ::= ([^\\x00-\\x7f] [a-z]?){2,5}",
        "root ::= \"<\" tag \">\" ( root | [a-z]* ) \"</\" tag \">\"\ntag ::= \"a\" | \"b\"",
    };
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 99);
    static char s[SENTENCE_MAX];
    for (size_t k = 0; k < sizeof grammars / sizeof *grammars; k++) {
        bn_grammar *g = gbnf(grammars[k]);
        if (!g) continue;
        for (int i = 0; i < WALKS; i++) random_sentence(g, &rng, 40, s, sizeof s);
        bn_grammar_free(g);
    }
}

static void test_gbnf_errors(void) {
    gbnf_refused("root ::= \"a\"\nx ::= \"b\"\n\nfoo ::= x   bar", BN_ERR_FORMAT,
                 "grammar: line 4, column 13: undefined rule 'bar'");
    gbnf_refused("root ::= y\ny ::= \"a\" | y2 y3\n", BN_ERR_FORMAT, "line 2, column 13: undefined rule 'y2'");
    gbnf_refused("root ::= \"abc", BN_ERR_FORMAT, "line 1, column 10: unterminated string");
    gbnf_refused("root ::= [abc", BN_ERR_FORMAT, "line 1, column 10: unterminated character class");
    gbnf_refused("root ::= \"a\"\n\nitem = \"b\"", BN_ERR_FORMAT, "line 3, column 6: expected ::=");
    gbnf_refused("root\n::= \"a\"", BN_ERR_FORMAT, "line 1, column 5: expected ::=");
    gbnf_refused("item ::= \"a\"", BN_ERR_FORMAT, "no rule named 'root'");
    gbnf_refused("", BN_ERR_FORMAT, "no rule named 'root'");
    gbnf_refused("# only a comment\n", BN_ERR_FORMAT, "no rule named 'root'");
    gbnf_refused("root ::= \"a\"\n  | \"b\"", BN_ERR_FORMAT, "line 2, column 3: expected a rule name, got '|'");
    gbnf_refused("root ::= \"a\"\nroot ::= \"b\"", BN_ERR_FORMAT, "line 2, column 1: rule 'root' is defined twice");
    gbnf_refused("root ::= \"a\" )", BN_ERR_FORMAT, "column 14: unmatched ')'");
    gbnf_refused("root ::= ( \"a\"", BN_ERR_FORMAT, "expected ')' to close the '(' of line 1, column 10");
    gbnf_refused("root ::= ( \"a\" ]", BN_ERR_FORMAT, "got ']'");
    gbnf_refused("root ::= \"a\" @", BN_ERR_FORMAT, "column 14: unexpected '@'");
    gbnf_refused("root ::= \"a\" other ::= \"b\"", BN_ERR_FORMAT, "unexpected ::=");
    /* after '|' the rule goes on, also past a newline (as in llama.cpp) */
    gbnf_refused("root ::= \"a\" |\nx ::= \"b\"", BN_ERR_FORMAT, "line 2, column 3: unexpected ::=");
    gbnf_refused("root ::= * \"a\"", BN_ERR_FORMAT, "column 10: '*' must follow an item");
    gbnf_refused("root ::= \"a\" | {2}", BN_ERR_FORMAT, "'{' must follow an item");
    gbnf_refused("root ::= []", BN_ERR_FORMAT, "empty character class");
    gbnf_refused("root ::= [^]", BN_ERR_FORMAT, "empty character class");
    gbnf_refused("root ::= [z-a]", BN_ERR_FORMAT, "column 11: character range U+007A-U+0061 is reversed");
    gbnf_refused("root ::= \"\\q\"", BN_ERR_FORMAT, "column 11: unknown escape '\\' followed by 'q'");
    gbnf_refused("root ::= \"\\x4\"", BN_ERR_FORMAT, "escape \\x needs 2 hex digits");
    gbnf_refused("root ::= \"\\u12g4\"", BN_ERR_FORMAT, "escape \\u needs 4 hex digits");
    gbnf_refused("root ::= \"\\uD800\"", BN_ERR_FORMAT, "invalid code point U+D800");
    gbnf_refused("root ::= [\\U00110000]", BN_ERR_FORMAT, "invalid code point U+110000");
    gbnf_refused("root ::= \"a\\", BN_ERR_FORMAT, "unterminated escape");
    gbnf_refused("root ::= \"a\"{3", BN_ERR_FORMAT, "expected ',' or '}' in the repetition, got end of input");
    gbnf_refused("root ::= \"a\"{3,x}", BN_ERR_FORMAT, "expected '}' to close the repetition, got 'x'");
    gbnf_refused("root ::= \"a\"{x}", BN_ERR_FORMAT, "expected a number, got 'x'");
    gbnf_refused("root ::= \"a\"{5,3}", BN_ERR_FORMAT, "repetition {5,3} has its minimum above its maximum");
    gbnf_refused("root ::= \"a\"{10001}", BN_ERR_RANGE, "repetition count 10001 is above the limit of 10000");
    gbnf_refused("root ::= \"a\"{0,99999999999999999999}", BN_ERR_RANGE, "is above the limit of 10000");
    gbnf_refused("root ::= \"\xc3\x28\"", BN_ERR_FORMAT, "line 1, column 11: invalid UTF-8");
    gbnf_refused("root ::= \"\xed\xa0\x80\"", BN_ERR_FORMAT, "invalid UTF-8");  /* an encoded surrogate */
    gbnf_refused("root ::= \"\xc0\xaf\"", BN_ERR_FORMAT, "invalid UTF-8");      /* overlong */
    gbnf_refused("root ::= <[123]>", BN_ERR_FORMAT, "unexpected '<'");
    /* what the builder refuses comes back too */
    gbnf_refused("root ::= root \"a\" | \"b\"", BN_ERR_INVALID, "left recursive");
    gbnf_refused("root ::= (\"a\"?)*", BN_ERR_INVALID, "left recursive");
    gbnf_refused("root ::= \"a\" root", BN_ERR_INVALID, "can never end");

    /* a NUL byte inside the given length */
    bn_grammar *g = NULL;
    bn_error err = {0};
    CHECK(bn_gbnf_compile("root ::= \"a\0\"", 13, &g, &err) == BN_ERR_FORMAT && !g);
    CHECK_STR_CONTAINS(err.message, "column 12: NUL byte");
    /* the text need not end with NUL: the length rules */
    CHECK_OK(bn_gbnf_compile("root ::= \"ab\"garbage", 13, &g, &err), &err);
    if (g) CHECK(accepts(g, "ab"));
    bn_grammar_free(g);
}

static void test_gbnf_limits(void) {
    /* the text length */
    size_t big = BN_GBNF_MAX_TEXT + 1;
    char *text = malloc(big + 1);
    memset(text, ' ', big);
    memcpy(text, "root ::= \"a\"", 12);
    text[big] = '\0';
    bn_grammar *g = NULL;
    bn_error err = {0};
    CHECK(bn_gbnf_compile(text, big, &g, &err) == BN_ERR_RANGE && !g);
    CHECK_STR_CONTAINS(err.message, "above the limit of 65536");
    CHECK_OK(bn_gbnf_compile(text, big - 1, &g, &err), &err);
    bn_grammar_free(g);
    g = NULL;

    /* parentheses: 64 deep is fine, 65 is not (and nothing recurses without bound) */
    char deep[512];
    for (int depth = 64; depth <= 65; depth++) {
        size_t n = (size_t)sprintf(deep, "root ::= ");
        for (int i = 0; i < depth; i++) deep[n++] = '(';
        deep[n++] = '"';
        deep[n++] = 'a';
        deep[n++] = '"';
        for (int i = 0; i < depth; i++) deep[n++] = ')';
        deep[n] = '\0';
        bn_status st = bn_gbnf_compile(deep, n, &g, &err);
        if (depth == 64) {
            CHECK_OK(st, &err);
            if (g) CHECK(accepts(g, "a"));
        } else {
            CHECK(st == BN_ERR_RANGE);
            CHECK_STR_CONTAINS(err.message, "column 74: parentheses nested deeper than 64");
        }
        bn_grammar_free(g);
        g = NULL;
    }
    /* unclosed parentheses, far deeper than the limit */
    memset(text, '(', BN_GBNF_MAX_TEXT);
    memcpy(text, "root ::= ", 9);
    CHECK(bn_gbnf_compile(text, BN_GBNF_MAX_TEXT, &g, &err) == BN_ERR_RANGE);
    CHECK_STR_CONTAINS(err.message, "nested deeper than 64");

    /* distinct rule names */
    size_t n = (size_t)sprintf(text, "root ::= r0\n");
    for (int i = 0; i < BN_GBNF_MAX_RULES; i++) n += (size_t)sprintf(text + n, "r%d ::= \"x\"\n", i);
    CHECK(bn_gbnf_compile(text, n, &g, &err) == BN_ERR_RANGE);
    CHECK_STR_CONTAINS(err.message, "more than 4096 rule names");

    /* a chain of 3000 rules, defined top-down, is fine */
    n = (size_t)sprintf(text, "root ::= r0\n");
    for (int i = 0; i < 3000; i++) n += (size_t)sprintf(text + n, "r%d ::= \"x\" r%d\n", i, i + 1);
    n += (size_t)sprintf(text + n, "r3000 ::= \"!\"\n");
    CHECK_OK(bn_gbnf_compile(text, n, &g, &err), &err);
    if (g) CHECK(bn_grammar_min_len(g) == 3001);
    bn_grammar_free(g);
    g = NULL;

    /* the sum of repetition counts */
    n = (size_t)sprintf(text, "root ::= ");
    for (int i = 0; i < 11; i++) n += (size_t)sprintf(text + n, "\"a\"{0,10000} ");
    CHECK(bn_gbnf_compile(text, n, &g, &err) == BN_ERR_RANGE);
    CHECK_STR_CONTAINS(err.message, "repetition counts add up to more than 100000");
    free(text);
}

/* ---------------------------------------------------------------- regular expressions */

typedef struct regex_case {
    const char *pattern;
    const char *accepted[6];
    const char *refused[6];
} regex_case;

static void test_regex_languages(void) {
    static const regex_case cases[] = {
        {"^abc$", {"abc"}, {"", "ab", "abcd", "xabc"}},
        {"abc", {"abc"}, {"xabc", "abcx"}}, /* always the anchored language */
        {"^a|b$", {"a", "b"}, {"ab", ""}},
        {"^[a-z]{2,4}-\\d{3}$", {"ab-123", "abcd-000"}, {"a-123", "abcde-123", "ab-12", "AB-123"}},
        {"^(foo|bar)+baz?$", {"foobarba", "barbaz", "foofoobaz"}, {"ba", "foo", "foobazz"}},
        {"^\\w+@\\w+\\.com$", {"a_1@b2.com"}, {"a@b.org", "@b.com", "a@b-c.com"}},
        {"^\\+?[0-9 ()-]{7,15}$", {"+1 (555) 123-456", "1234567"}, {"123456", "++1234567"}},
        {"^x*?y+?z??$", {"y", "xxyyz"}, {"x", "z"}},
        {"^(?:ab){2}(?<tail>c|d){0,2}$", {"abab", "ababcd"}, {"ab", "ababccc"}},
        {"^a{3,}$", {"aaa", "aaaaaa"}, {"aa"}},
        {"^a{0}b$", {"b"}, {"ab"}},
        {"^.{2}$", {"ab", "\xc3\xa9\t", "\xf0\x9f\x98\x80z"}, {"a\n", "\r ", "\xe2\x80\xa8z", "a"}},
        {"^[^abc]$", {"d", "\n", "\xc3\xa9"}, {"a", "c"}},
        {"^[\\d\\s]+$", {"1 2\t3\n", "\x0b\x0c"}, {"a", "\xc2\xa0"}}, /* \s: ASCII only */
        {"^\\S$", {"a", "\xc3\xa9"}, {" ", "\xc2\xa0", "\xe3\x80\x80", "\xef\xbb\xbf"}},
        {"^[^\\S]$", {" "}, {"\xc2\xa0", "a"}}, /* [^\S]: inside ECMA's \s, and only its ASCII part */
        {"^[^\\s]$", {"a"}, {" ", "\xc2\xa0", "\xe2\x80\xa8"}},
        {"^\\W\\D$", {"-a", "\xc3\xa9\xc3\xa9"}, {"a-", "-1"}},
        {"^[\\w-]+$", {"a-b_c"}, {"a b"}},
        {"^\\.\\\\\\/\\-\\(\\)\\[\\]\\{\\}\\|\\^\\$\\*\\+\\?$", {".\\/-()[]{}|^$*+?"}, {"x"}},
        {"^\\n\\t\\r\\f\\v\\x41\\u00e9\\u{1F600}\\uD83D\\uDE00\\cJ$",
         {"\n\t\r\f\vA\xc3\xa9\xf0\x9f\x98\x80\xf0\x9f\x98\x80\n"}, {"x"}},
        {"^[\\b]$", {"\b"}, {"b"}},
        {"^a{$", {"a{"}, {"a"}}, /* a lone { is a character */
        {"^a{1,x}}]$", {"a{1,x}}]"}, {"a"}},
        {"^(a?b?)*c$", {"c", "abababc", "bbaac"}, {"", "abd"}},
        {"^(a|b*)+$", {"", "a", "bbabab"}, {"c"}},
        {"^(|x)+y$", {"y", "xxy"}, {"x"}},
        {"^((a*)*|b)*$", {"", "aaba", "bbb"}, {"c"}},
        {"^(a?){3}$", {"", "a", "aaa"}, {"aaaa"}},
        {"^((a?)?){30}b$", {"b", "aaab"}, {"a"}},
        {"^(a?b?){0,50}c$", {"c", "ababbac"}, {"abca"}},
        {"^(a?b?){2}c$", {"c", "ababc", "bac"}, {"abababc"}},
        {"^((ab)+){2,3}$", {"abab", "ababab", "abababababab"}, {"ab"}},
        {"^((a?){2}){3}(b{1,2}){2}$", {"bb", "aaaaaabbbb"}, {"aaaaaaabb", "b", "bbbbb"}},
        {"^[\xce\xb1-\xcf\x89]+\xc3\xa9?$", {"\xce\xb1\xcf\x89", "\xce\xbb\xc3\xa9"}, {"a", "\xc3\xa9"}},
        {"^[^\\u0000-\\uffff]$", {"\xf0\x9f\x98\x80"}, {"\xef\xbf\xbf", "a"}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const regex_case *c = &cases[k];
        bn_grammar *g = regex(c->pattern, 0);
        if (!g) continue;
        for (int i = 0; i < 6 && c->accepted[i]; i++)
            CHECKF(accepts(g, c->accepted[i]), "/%s/ should accept \"%s\"", c->pattern, c->accepted[i]);
        for (int i = 0; i < 6 && c->refused[i]; i++)
            CHECKF(!accepts(g, c->refused[i]), "/%s/ should refuse \"%s\"", c->pattern, c->refused[i]);
        bn_grammar_free(g);
    }

    bn_grammar *g = regex("^abc$", 0);
    if (g) {
        CHECK(is_final(g, "abc"));
        CHECK(is_strict_prefix(g, "ab"));
    }
    bn_grammar_free(g);

    g = regex("^a\\0b$", 0); /* \0 is NUL when no digit follows */
    if (g) {
        bn_grammar_outlook o = feed(g, "a\0b", 3);
        CHECK(o.ok && o.accepting);
    }
    bn_grammar_free(g);
}

/* JSON string content: escapes where JSON needs them, raw UTF-8 elsewhere. */
static void test_regex_json_content(void) {
    bn_grammar *g = regex("^a\"b\\\\c$", BN_REGEX_JSON_STRING);
    if (g) {
        CHECK(is_final(g, "a\\\"b\\\\c"));
        CHECK(!accepts(g, "a\"b\\c"));
    }
    bn_grammar_free(g);

    g = regex("^[^a]$", BN_REGEX_JSON_STRING);
    if (g) {
        static const char *const yes[] = {"\\n", "\\t", "\\r", "\\b", "\\f", "\\\"", "\\\\", "\\u0001",
                                          "\\u000b", "\\u001f", "\\u0000", "/", "\x7f", "\xc3\xa9"};
        static const char *const no[] = {"\n", "\"", "\\", "\x01", "\\u0041", "\\/", "\\u000a",
                                         "\\u001F", "\\u0022", "a", "\\a", "\\u0020"};
        for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) CHECKF(accepts(g, yes[i]), "[^a] should accept %s", yes[i]);
        for (size_t i = 0; i < sizeof no / sizeof *no; i++) CHECKF(!accepts(g, no[i]), "[^a] should refuse %s", no[i]);
    }
    bn_grammar_free(g);

    g = regex("^.$", BN_REGEX_JSON_STRING);
    if (g) {
        CHECK(accepts(g, "\\t"));
        CHECK(accepts(g, "\\u0002"));
        CHECK(accepts(g, "\\\""));
        CHECK(!accepts(g, "\\n"));
        CHECK(!accepts(g, "\\r"));
        CHECK(!accepts(g, "\xe2\x80\xa9"));
        CHECK(!accepts(g, "\t"));
    }
    bn_grammar_free(g);

    g = regex("^\\s+$", BN_REGEX_JSON_STRING);
    if (g) {
        CHECK(accepts(g, " \\t\\n\\r\\f\\u000b"));
        CHECK(!accepts(g, "\\b"));
        CHECK(!accepts(g, "\t"));
    }
    bn_grammar_free(g);

    g = regex("^\\x00\\x1f\\x7f$", BN_REGEX_JSON_STRING);
    if (g) CHECK(is_final(g, "\\u0000\\u001f\x7f"));
    bn_grammar_free(g);
}

/* Random JSON string contents: jansson must decode them, and the oracle must accept the text. */
typedef bool (*oracle_fn)(const void *oracle, const char *s, size_t n);

static bool posix_oracle(const void *oracle, const char *s, size_t n) {
    return strlen(s) == n && regexec((const regex_t *)oracle, s, 0, NULL, 0) == 0;
}

static bool pcre_oracle(const void *oracle, const char *s, size_t n) {
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    int rc = pcre2_match((const pcre2_code *)oracle, (PCRE2_SPTR)s, n, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

static void walk_pattern(const char *pattern, const void *oracle, oracle_fn check, bn_test_rng *rng) {
    static char s[SENTENCE_MAX];
    static char quoted[SENTENCE_MAX + 2];
    for (unsigned flags = 0; flags <= BN_REGEX_JSON_STRING; flags += BN_REGEX_JSON_STRING) {
        bn_grammar *g = regex(pattern, flags);
        if (!g) continue;
        int good = 0;
        for (int i = 0; i < WALKS; i++) {
            long n = random_sentence(g, rng, 30, s, sizeof s);
            if (n < 0) continue;
            const char *text = s;
            size_t text_len = (size_t)n;
            json_t *v = NULL;
            if (flags & BN_REGEX_JSON_STRING) {
                quoted[0] = '"';
                memcpy(quoted + 1, s, (size_t)n);
                quoted[n + 1] = '"';
                json_error_t jerr;
                v = json_loadb(quoted, (size_t)n + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
                CHECKF(json_is_string(v), "/%s/: not a JSON string (%s): \"%.*s\"", pattern, jerr.text, (int)n, s);
                if (!json_is_string(v)) {
                    json_decref(v);
                    continue;
                }
                text = json_string_value(v);
                text_len = json_string_length(v);
            }
            bool ok = check(oracle, text, text_len);
            CHECKF(ok, "/%s/ (flags %u): the oracle refuses \"%.*s\"", pattern, flags, (int)text_len, text);
            good += ok;
            json_decref(v);
        }
        CHECKF(good == WALKS, "/%s/ (flags %u): %d of %d walks matched", pattern, flags, good, WALKS);
        bn_grammar_free(g);
    }
}

static void test_regex_walks(void) {
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 2024);
    /* the pattern, and the same language as a POSIX extended expression */
    static const char *const posix[][2] = {
        {"^[a-z]{2,4}-\\d{3}$", "[a-z]{2,4}-[0-9]{3}"},
        {"^(foo|bar)+baz?$", "(foo|bar)+baz?"},
        {"^\\w+@\\w+\\.com$", "[A-Za-z0-9_]+@[A-Za-z0-9_]+\\.com"},
        {"^[A-Z][a-z]*( [A-Z][a-z]*)*$", "[A-Z][a-z]*( [A-Z][a-z]*)*"},
        {"^\\+?[0-9 ()-]{7,15}$", "\\+?[0-9 ()-]{7,15}"},
        {"^(a|b)*c{2}(x{0,3}|yz?)$", "(a|b)*c{2}(x{0,3}|yz?)"},
        {"^(?:\\d{1,3}\\.){3}\\d{1,3}$", "([0-9]{1,3}\\.){3}[0-9]{1,3}"},
    };
    for (size_t k = 0; k < sizeof posix / sizeof *posix; k++) {
        char ere[256];
        snprintf(ere, sizeof ere, "^(%s)$", posix[k][1]);
        regex_t re;
        if (regcomp(&re, ere, REG_EXTENDED | REG_NOSUB) != 0) {
            CHECKF(false, "regcomp %s", ere);
            continue;
        }
        walk_pattern(posix[k][0], &re, posix_oracle, &rng);
        regfree(&re);
    }
    /* patterns beyond POSIX: PCRE2 (UTF, anchored at both ends) agrees with ECMA on them */
    static const char *const pcre[] = {
        "^[^\"\\\\]*$",
        "^.{1,5}$",
        "^\\S+\\s\\S+$",
        "^\\W\\w\\D\\d[\\s\\S]{0,3}$",
        "^(?<year>\\d{4})-(?:0[1-9]|1[0-2])$",
        "^[\xce\xb1-\xcf\x89]+\xc3\xa9?$",
        "^[^a-z]{1,3}$",
        "^(a?b?)*c$",
        "^(|x)+y$",
        "^[\\x00-\\x1f\"\\\\]{1,4}$",
        "^a\"b\\\\c\\/d$",
    };
    for (size_t k = 0; k < sizeof pcre / sizeof *pcre; k++) {
        int code;
        PCRE2_SIZE offset;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)pcre[k], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_DOLLAR_ENDONLY, &code,
                                       &offset, NULL);
        if (!re) {
            CHECKF(false, "pcre2_compile %s", pcre[k]);
            continue;
        }
        walk_pattern(pcre[k], re, pcre_oracle, &rng);
        pcre2_code_free(re);
    }
}

static void test_regex_errors(void) {
    regex_refused("^(a)\\1$", BN_ERR_UNSUPPORTED, "regex at offset 4: backreferences (\\1) are not supported");
    regex_refused("(?<x>a)\\k<x>", BN_ERR_UNSUPPORTED, "named backreferences");
    regex_refused("a(?=b)", BN_ERR_UNSUPPORTED, "offset 1: lookahead '(?=' is not supported");
    regex_refused("a(?!b)", BN_ERR_UNSUPPORTED, "lookahead '(?!' is not supported");
    regex_refused("(?<=a)b", BN_ERR_UNSUPPORTED, "lookbehind '(?<=' is not supported");
    regex_refused("(?<!a)b", BN_ERR_UNSUPPORTED, "lookbehind '(?<!' is not supported");
    regex_refused("\\bword\\b", BN_ERR_UNSUPPORTED, "word boundaries (\\b)");
    regex_refused("a\\B", BN_ERR_UNSUPPORTED, "word boundaries (\\B)");
    regex_refused("(?i)abc", BN_ERR_UNSUPPORTED, "inline flags '(?i'");
    regex_refused("a*+", BN_ERR_UNSUPPORTED, "offset 1: possessive quantifiers");
    regex_refused("a{2}+", BN_ERR_UNSUPPORTED, "possessive quantifiers");
    regex_refused("(?P<n>a)", BN_ERR_UNSUPPORTED, "(?P...) groups are not supported");
    regex_refused("\\p{L}+", BN_ERR_UNSUPPORTED, "Unicode property escapes");
    regex_refused("[[:alpha:]]", BN_ERR_UNSUPPORTED, "POSIX classes ([:alpha:])");
    regex_refused("\\Aabc\\z", BN_ERR_UNSUPPORTED, "\\A is not supported");
    regex_refused("\\01", BN_ERR_UNSUPPORTED, "octal escapes");
    regex_refused("\\q", BN_ERR_UNSUPPORTED, "unknown escape \\q");
    regex_refused("\\uD800", BN_ERR_UNSUPPORTED, "lone surrogate (\\uD800)");
    regex_refused("a^b", BN_ERR_UNSUPPORTED, "offset 1: ^ is supported only at the start");
    regex_refused("(^a)", BN_ERR_UNSUPPORTED, "^ is supported only at the start");
    regex_refused("a$b", BN_ERR_UNSUPPORTED, "$ is supported only at the end");
    regex_refused("(a$)", BN_ERR_UNSUPPORTED, "$ is supported only at the end");
    regex_refused("(ab", BN_ERR_FORMAT, "offset 0: missing ')' for the group");
    regex_refused("ab)", BN_ERR_FORMAT, "offset 2: unmatched ')'");
    regex_refused("[ab", BN_ERR_FORMAT, "missing ']' for the class");
    regex_refused("*a", BN_ERR_FORMAT, "nothing to repeat before '*'");
    regex_refused("a**", BN_ERR_FORMAT, "offset 2: nothing to repeat");
    regex_refused("a|?", BN_ERR_FORMAT, "nothing to repeat before '?'");
    regex_refused("{2}", BN_ERR_FORMAT, "nothing to repeat before '{'");
    regex_refused("a{3,2}", BN_ERR_FORMAT, "numbers out of order in the quantifier {3,2}");
    regex_refused("[z-a]", BN_ERR_FORMAT, "range out of order");
    regex_refused("[\\d-z]", BN_ERR_UNSUPPORTED, "a range from a class escape");
    regex_refused("[a-\\d]", BN_ERR_UNSUPPORTED, "a range to a class escape");
    regex_refused("[]", BN_ERR_FORMAT, "the class matches no character");
    regex_refused("[^\\d\\D]", BN_ERR_FORMAT, "the class matches no character");
    regex_refused("\\x4g", BN_ERR_FORMAT, "\\x needs two hex digits");
    regex_refused("\\u12", BN_ERR_FORMAT, "\\u needs four hex digits");
    regex_refused("\\u{110000}", BN_ERR_FORMAT, "\\u{...} needs hex digits");
    regex_refused("\\c1", BN_ERR_FORMAT, "\\c needs a letter");
    regex_refused("ab\\", BN_ERR_FORMAT, "offset 2: the pattern ends with a lone backslash");
    regex_refused("(?<>a)", BN_ERR_FORMAT, "invalid group name");
    regex_refused("(?#comment)", BN_ERR_FORMAT, "invalid group syntax");
    regex_refused("a\xff", BN_ERR_FORMAT, "offset 1: invalid UTF-8");
    regex_refused("a{10001}", BN_ERR_RANGE, "repetition count above the limit of 10000");
    regex_refused("a{1,99999999999999999999}", BN_ERR_RANGE, "above the limit");

    /* flags and arguments */
    bn_grammar_builder *b = NULL;
    bn_error err = {0};
    int rule;
    if (bn_grammar_builder_new(&b, &err) != BN_OK) return;
    CHECK(bn_grammar_regex(b, "a", 2, &rule, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "unknown flags");
    CHECK(bn_grammar_regex(b, NULL, 0, &rule, &err) == BN_ERR_INVALID);
    /* refused patterns leave nothing behind: the builder still finishes with a good one */
    CHECK(bn_grammar_regex(b, "(a|b(?=c))", 0, &rule, &err) == BN_ERR_UNSUPPORTED);
    CHECK(bn_grammar_regex(b, "x(y|z)*[", 0, &rule, &err) == BN_ERR_FORMAT);
    CHECK_OK(bn_grammar_regex(b, "x(y|z)*", 0, &rule, &err), &err);
    bn_grammar *g = NULL;
    CHECK_OK(bn_grammar_builder_finish(b, rule, &g, &err), &err);
    if (g) CHECK(accepts(g, "xyzy"));
    bn_grammar_free(g);
}

static void test_regex_limits(void) {
    char *p = malloc(BN_REGEX_MAX_PATTERN + 2);
    memset(p, 'a', BN_REGEX_MAX_PATTERN + 1);
    p[BN_REGEX_MAX_PATTERN + 1] = '\0';
    regex_refused(p, BN_ERR_RANGE, "longer than 4096 bytes");
    p[BN_REGEX_MAX_PATTERN] = '\0';
    bn_grammar *g = regex(p, 0);
    if (g) CHECK(bn_grammar_min_len(g) == BN_REGEX_MAX_PATTERN);
    bn_grammar_free(g);

    /* groups: 64 deep is fine, 65 not; far deeper fails the same way */
    static const int depths[] = {64, 65, 2000};
    for (size_t k = 0; k < 3; k++) {
        int depth = depths[k];
        size_t n = 0;
        for (int i = 0; i < depth; i++) p[n++] = '(';
        p[n++] = 'a';
        for (int i = 0; i < depth; i++) p[n++] = ')';
        p[n] = '\0';
        if (depth == 64) {
            g = regex(p, 0);
            if (g) CHECK(accepts(g, "a"));
            bn_grammar_free(g);
        } else {
            regex_refused(p, BN_ERR_RANGE, "offset 64: groups nested deeper than 64");
        }
    }
    /* quantifier counts add up */
    size_t n = 0;
    for (int i = 0; i < 11; i++) n += (size_t)sprintf(p + n, "a{0,10000}");
    regex_refused(p, BN_ERR_RANGE, "quantifier counts add up to more than 100000");
    g = regex("^(?:a{10000}){10000}$", 0); /* nested counts add, they do not multiply */
    if (g) CHECK(bn_grammar_min_len(g) == 100000000u);
    bn_grammar_free(g);
    free(p);
}

int main(void) {
    test_gbnf_basics();
    test_gbnf_literals_and_classes();
    test_gbnf_repetition();
    test_gbnf_json_walks();
    test_gbnf_walks();
    test_gbnf_errors();
    test_gbnf_limits();
    test_regex_languages();
    test_regex_json_content();
    test_regex_walks();
    test_regex_errors();
    test_regex_limits();
    return bn_test_finish("test_grammar_front");
}
