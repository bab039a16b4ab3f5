/*
 * grammar_regex.c: regular expression -> grammar rule (see grammar_regex.h).
 *
 * Two passes. The parser checks the whole pattern and builds a small syntax tree (characters,
 * code point sets, concatenation, alternation, repetition) with each node's nullability, so that
 * a refused pattern leaves the builder untouched. The emitter then writes the tree into the
 * builder. One rewrite keeps the grammar free of left recursion, which the builder refuses: an
 * unbounded repetition of something that can match the empty text, x* with x nullable, becomes
 * (y1|...|yk)* where the y are the parts of x that cannot match the empty text, found by walking
 * x through its nullable nodes ((a?b?)* is (a|b)*, (a|b*)+ is (a|b)*): the language is the same.
 *
 * Sets are sorted, disjoint ranges of code points. \s and \S are approximated from below (see the
 * header), so every class keeps two sets as it is parsed: a lower and an upper bound of what its
 * parts match. [...] is the union of the lower bounds, [^...] the complement of the union of the
 * upper bounds; either way the result lies within ECMA's meaning.
 */
#include "sampling/grammar_regex.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CODE_POINT 0x10ffffu

typedef struct cpset {
    uint32_t *r; /* n pairs [lo, hi] */
    size_t n, cap;
} cpset;

typedef enum rx_kind { RX_CHAR, RX_SET, RX_CONCAT, RX_ALT, RX_REPEAT } rx_kind;

typedef struct rx_node {
    rx_kind kind;
    bool nullable;    /* matches the empty text */
    uint32_t cp;      /* RX_CHAR */
    int set;          /* RX_SET: index into rx.sets */
    int min, max;     /* RX_REPEAT (max -1: unbounded) */
    int first, last;  /* children of RX_CONCAT and RX_ALT; RX_REPEAT's item is `first` */
    int next;         /* next sibling, -1 at the end */
} rx_node;

typedef struct rx {
    const char *pat;
    size_t len, pos;
    unsigned flags;
    bn_error *err;
    bn_status status; /* the first error; BN_OK while all goes well */
    rx_node *nodes;
    int n_nodes, cap_nodes;
    cpset *sets;
    int n_sets, cap_sets;
    int dot_set; /* the set of `.`, made on first use; -1 before */
    long repeat_total;
    /* emission */
    bn_grammar_builder *b;
    uint8_t *lit; /* characters of a concatenation waiting to be added as one literal */
    size_t lit_len, lit_cap;
    int *stack; /* the non-nullable parts of repeated nullable nodes (see the top) */
    int stack_n;
} rx;

/* Line terminators (outside `.`), ECMA's white space and line terminators (\s), \d, \w. */
static const uint32_t line_terminators[] = {0x0a, 0x0a, 0x0d, 0x0d, 0x2028, 0x2029};
static const uint32_t space_full[] = {0x09, 0x0d, 0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a,
                                      0x2028, 0x2029, 0x202f, 0x202f, 0x205f, 0x205f, 0x3000, 0x3000,
                                      0xfeff, 0xfeff};
static const uint32_t space_ascii[] = {0x09, 0x0d, 0x20, 0x20};
static const uint32_t digits[] = {'0', '9'};
static const uint32_t word[] = {'0', '9', 'A', 'Z', '_', '_', 'a', 'z'};
#define PAIRS(t) (sizeof(t) / sizeof(t)[0] / 2)

/* ---------------------------------------------------------------- errors */

static void fail_at(rx *p, size_t at, bn_status status, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail_at(rx *p, size_t at, bn_status status, const char *fmt, ...) {
    if (p->status != BN_OK) return;
    char msg[BN_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->status = bn_error_set(p->err, status, "regex at offset %zu: %s", at, msg);
}

static void fail_nomem(rx *p) {
    if (p->status == BN_OK) p->status = bn_error_set(p->err, BN_ERR_NOMEM, "regex: out of memory");
}

/* ---------------------------------------------------------------- UTF-8 */



/* The JSON string content form of one code point: its escape if JSON requires one, else UTF-8. */
static size_t json_encode(uint32_t cp, uint8_t *out) {
    static const char short_escapes[] = "\"\"\\\\\bb\ff\nn\rr\tt";
    for (const char *e = short_escapes; *e; e += 2)
        if (cp == (uint8_t)e[0]) {
            out[0] = '\\';
            out[1] = (uint8_t)e[1];
            return 2;
        }
    if (cp < 0x20) return (size_t)sprintf((char *)out, "\\u%04x", (unsigned)cp);
    return bn_utf8_encode(cp, out);
}

/* ---------------------------------------------------------------- code point sets */

static bool cpset_add(cpset *s, uint32_t lo, uint32_t hi) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        uint32_t *r = realloc(s->r, 2 * cap * sizeof *r);
        if (!r) return false;
        s->r = r;
        s->cap = cap;
    }
    s->r[2 * s->n] = lo;
    s->r[2 * s->n + 1] = hi;
    s->n++;
    return true;
}

/* Adds the pairs of a table, or with `complement` the code points outside them (the table sorted). */
static bool cpset_add_table(cpset *s, const uint32_t *t, size_t pairs, bool complement) {
    if (!complement) {
        for (size_t i = 0; i < pairs; i++)
            if (!cpset_add(s, t[2 * i], t[2 * i + 1])) return false;
        return true;
    }
    uint32_t next = 0;
    for (size_t i = 0; i < pairs; i++) {
        if (t[2 * i] > next && !cpset_add(s, next, t[2 * i] - 1)) return false;
        next = t[2 * i + 1] + 1;
    }
    return next > MAX_CODE_POINT || cpset_add(s, next, MAX_CODE_POINT);
}

static int compare_range(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts and merges overlapping or adjacent ranges. */
static void cpset_normalize(cpset *s) {
    if (s->n == 0) return;
    qsort(s->r, s->n, 2 * sizeof *s->r, compare_range);
    size_t m = 0;
    for (size_t i = 0; i < s->n; i++) {
        uint32_t lo = s->r[2 * i], hi = s->r[2 * i + 1];
        if (m && lo <= s->r[2 * m - 1] + 1) {
            if (hi > s->r[2 * m - 1]) s->r[2 * m - 1] = hi;
        } else {
            s->r[2 * m] = lo;
            s->r[2 * m + 1] = hi;
            m++;
        }
    }
    s->n = m;
}

/* out = the code points of normalized s, without `remove` [lo, hi] ranges (normalized too). */
static bool cpset_subtract(cpset *out, const cpset *s, const uint32_t *remove, size_t n_remove) {
    for (size_t i = 0; i < s->n; i++) {
        uint32_t lo = s->r[2 * i], hi = s->r[2 * i + 1];
        for (size_t k = 0; k < n_remove && lo <= hi; k++) {
            uint32_t rlo = remove[2 * k], rhi = remove[2 * k + 1];
            if (rhi < lo || rlo > hi) continue;
            if (rlo > lo && !cpset_add(out, lo, rlo - 1)) return false;
            if (rhi >= hi) {
                lo = 1, hi = 0; /* nothing left */
                break;
            }
            lo = rhi + 1;
        }
        if (lo <= hi && !cpset_add(out, lo, hi)) return false;
    }
    return true;
}

static bool cpset_has(const cpset *s, uint32_t cp) {
    for (size_t i = 0; i < s->n; i++)
        if (s->r[2 * i] <= cp && cp <= s->r[2 * i + 1]) return true;
    return false;
}

/* ---------------------------------------------------------------- syntax tree */

static int new_node(rx *p, rx_kind kind) {
    if (p->n_nodes == p->cap_nodes) {
        int cap = p->cap_nodes ? 2 * p->cap_nodes : 64;
        rx_node *nodes = realloc(p->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) {
            fail_nomem(p);
            return -1;
        }
        p->nodes = nodes;
        p->cap_nodes = cap;
    }
    p->nodes[p->n_nodes] = (rx_node){.kind = kind, .nullable = kind == RX_CONCAT,
                                     .set = -1, .first = -1, .last = -1, .next = -1};
    return p->n_nodes++;
}

static void append_child(rx *p, int parent, int child) {
    rx_node *n = &p->nodes[parent];
    if (n->last < 0) n->first = child;
    else p->nodes[n->last].next = child;
    n->last = child;
}

/* Takes ownership of *s (normalized, non-empty) as a new set; returns its index or -1. */
static int add_set(rx *p, cpset *s) {
    if (p->n_sets == p->cap_sets) {
        int cap = p->cap_sets ? 2 * p->cap_sets : 16;
        cpset *sets = realloc(p->sets, (size_t)cap * sizeof *sets);
        if (!sets) {
            free(s->r);
            fail_nomem(p);
            return -1;
        }
        p->sets = sets;
        p->cap_sets = cap;
    }
    p->sets[p->n_sets] = *s;
    return p->n_sets++;
}

static int set_node(rx *p, int set) {
    if (set < 0) return -1;
    int n = new_node(p, RX_SET);
    if (n >= 0) p->nodes[n].set = set;
    return n;
}

/* ---------------------------------------------------------------- parser */

static bool at_end(const rx *p) { return p->pos >= p->len; }
static char peek(const rx *p) { return p->pos < p->len ? p->pat[p->pos] : '\0'; }
static char peek_at(const rx *p, size_t at) { return at < p->len ? p->pat[at] : '\0'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int hex_value(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Reads exactly `n` hex digits at p->pos; false (no error recorded) when they are not there. */
static bool read_hex(rx *p, int n, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < n; i++) {
        int d = hex_value(peek_at(p, p->pos + (size_t)i));
        if (d < 0) return false;
        v = v << 4 | (uint32_t)d;
    }
    p->pos += (size_t)n;
    *out = v;
    return true;
}

/* What an escape stands for: one code point, or a class (d D w W s S). */
typedef struct escape {
    bool is_class;
    char class_letter;
    uint32_t cp;
} escape;

/* \u escapes: \uHHHH (a surrogate pair of two combines), \u{H...}. p->pos is after the 'u'. */
static bool parse_unicode_escape(rx *p, size_t at, uint32_t *cp) {
    if (peek(p) == '{') {
        size_t i = p->pos + 1;
        uint32_t v = 0;
        while (hex_value(peek_at(p, i)) >= 0 && v <= MAX_CODE_POINT) v = v << 4 | (uint32_t)hex_value(peek_at(p, i++));
        if (i == p->pos + 1 || peek_at(p, i) != '}' || v > MAX_CODE_POINT) {
            fail_at(p, at, BN_ERR_FORMAT, "\\u{...} needs hex digits of a code point up to 10FFFF");
            return false;
        }
        p->pos = i + 1;
        *cp = v;
    } else if (!read_hex(p, 4, cp)) {
        fail_at(p, at, BN_ERR_FORMAT, "\\u needs four hex digits");
        return false;
    }
    if (*cp >= 0xd800 && *cp <= 0xdbff && peek(p) == '\\' && peek_at(p, p->pos + 1) == 'u') {
        size_t save = p->pos;
        uint32_t low;
        p->pos += 2;
        if (read_hex(p, 4, &low) && low >= 0xdc00 && low <= 0xdfff) {
            *cp = 0x10000 + ((*cp - 0xd800) << 10) + (low - 0xdc00);
            return true;
        }
        p->pos = save;
    }
    if (*cp >= 0xd800 && *cp <= 0xdfff) {
        fail_at(p, at, BN_ERR_UNSUPPORTED, "a lone surrogate (\\u%04X) is not supported", (unsigned)*cp);
        return false;
    }
    return true;
}

/* An escape at p->pos (the backslash), inside a class or not. */
static bool parse_escape(rx *p, bool in_class, escape *e) {
    size_t at = p->pos++;
    e->is_class = false;
    if (at_end(p)) {
        fail_at(p, at, BN_ERR_FORMAT, "the pattern ends with a lone backslash");
        return false;
    }
    char c = peek(p);
    switch (c) {
    case 'd': case 'D': case 'w': case 'W': case 's': case 'S':
        p->pos++;
        e->is_class = true;
        e->class_letter = c;
        return true;
    case 'b':
        if (in_class) {
            p->pos++;
            e->cp = 0x08;
            return true;
        }
        fail_at(p, at, BN_ERR_UNSUPPORTED, "word boundaries (\\b) are not supported");
        return false;
    case 'B':
        fail_at(p, at, BN_ERR_UNSUPPORTED, "word boundaries (\\B) are not supported");
        return false;
    case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9':
        fail_at(p, at, BN_ERR_UNSUPPORTED, "backreferences (\\%c) are not supported", c);
        return false;
    case 'k':
        fail_at(p, at, BN_ERR_UNSUPPORTED, "named backreferences (\\k<...>) are not supported");
        return false;
    case '0':
        p->pos++;
        if (is_digit(peek(p))) {
            fail_at(p, at, BN_ERR_UNSUPPORTED, "octal escapes (\\0%c) are not supported", peek(p));
            return false;
        }
        e->cp = 0;
        return true;
    case 'n': e->cp = '\n'; p->pos++; return true;
    case 't': e->cp = '\t'; p->pos++; return true;
    case 'r': e->cp = '\r'; p->pos++; return true;
    case 'f': e->cp = '\f'; p->pos++; return true;
    case 'v': e->cp = '\v'; p->pos++; return true;
    case 'c':
        if (!is_alpha(peek_at(p, p->pos + 1))) {
            fail_at(p, at, BN_ERR_FORMAT, "\\c needs a letter after it");
            return false;
        }
        e->cp = (uint32_t)peek_at(p, p->pos + 1) % 32;
        p->pos += 2;
        return true;
    case 'x':
        p->pos++;
        if (!read_hex(p, 2, &e->cp)) {
            fail_at(p, at, BN_ERR_FORMAT, "\\x needs two hex digits");
            return false;
        }
        return true;
    case 'u':
        p->pos++;
        return parse_unicode_escape(p, at, &e->cp);
    case 'p': case 'P':
        fail_at(p, at, BN_ERR_UNSUPPORTED, "Unicode property escapes (\\%c{...}) are not supported", c);
        return false;
    case 'A': case 'Z': case 'z': case 'G':
        fail_at(p, at, BN_ERR_UNSUPPORTED, "\\%c is not supported (the pattern is matched whole; ^ and $ may stand at its ends)", c);
        return false;
    default:
        if (is_alpha(c) || is_digit(c)) {
            fail_at(p, at, BN_ERR_UNSUPPORTED, "unknown escape \\%c", c);
            return false;
        }
        /* an escaped punctuation or other character stands for itself */
        p->pos += bn_utf8_decode((const uint8_t *)p->pat + p->pos, p->len - p->pos, &e->cp);
        return true;
    }
}

/* Adds the lower and upper bounds of a class escape (see the top). */
static bool add_class_escape(cpset *lower, cpset *upper, char letter) {
    switch (letter) {
    case 'd': return cpset_add_table(lower, digits, PAIRS(digits), false) && cpset_add_table(upper, digits, PAIRS(digits), false);
    case 'D': return cpset_add_table(lower, digits, PAIRS(digits), true) && cpset_add_table(upper, digits, PAIRS(digits), true);
    case 'w': return cpset_add_table(lower, word, PAIRS(word), false) && cpset_add_table(upper, word, PAIRS(word), false);
    case 'W': return cpset_add_table(lower, word, PAIRS(word), true) && cpset_add_table(upper, word, PAIRS(word), true);
    case 's':
        return cpset_add_table(lower, space_ascii, PAIRS(space_ascii), false) &&
               cpset_add_table(upper, space_full, PAIRS(space_full), false);
    default: /* 'S' */
        return cpset_add_table(lower, space_full, PAIRS(space_full), true) &&
               cpset_add_table(upper, space_ascii, PAIRS(space_ascii), true);
    }
}

/* One character or class escape inside [...]. */
static bool parse_class_atom(rx *p, escape *e) {
    if (peek(p) == '\\') return parse_escape(p, true, e);
    e->is_class = false;
    p->pos += bn_utf8_decode((const uint8_t *)p->pat + p->pos, p->len - p->pos, &e->cp);
    return true;
}

/* [...] or [^...]. */
static int parse_class(rx *p) {
    size_t open = p->pos++;
    bool negate = peek(p) == '^';
    if (negate) p->pos++;
    cpset lower = {0}, upper = {0}, result = {0};
    bool ok = true, nomem = false;
    for (;;) {
        if (at_end(p)) {
            fail_at(p, open, BN_ERR_FORMAT, "missing ']' for the class");
            ok = false;
            break;
        }
        if (peek(p) == ']') {
            p->pos++;
            break;
        }
        if (peek(p) == '[' && peek_at(p, p->pos + 1) == ':') { /* [[:alpha:]] */
            size_t i = p->pos + 2;
            while (is_alpha(peek_at(p, i))) i++;
            if (i > p->pos + 2 && peek_at(p, i) == ':' && peek_at(p, i + 1) == ']') {
                fail_at(p, p->pos, BN_ERR_UNSUPPORTED, "POSIX classes ([:%.*s:]) are not supported; use \\d, \\w, \\s or ranges",
                        (int)(i - p->pos - 2), p->pat + p->pos + 2);
                ok = false;
                break;
            }
        }
        size_t at = p->pos;
        escape a;
        if (!parse_class_atom(p, &a)) {
            ok = false;
            break;
        }
        bool range = peek(p) == '-' && p->pos + 1 < p->len && peek_at(p, p->pos + 1) != ']';
        if (range && a.is_class) {
            fail_at(p, at, BN_ERR_UNSUPPORTED, "a range from a class escape (\\%c-) is not supported", a.class_letter);
            ok = false;
            break;
        }
        if (a.is_class) {
            nomem = !add_class_escape(&lower, &upper, a.class_letter);
        } else {
            uint32_t hi = a.cp;
            if (range) {
                p->pos++;
                escape z;
                if (!parse_class_atom(p, &z)) {
                    ok = false;
                    break;
                }
                if (z.is_class) {
                    fail_at(p, at, BN_ERR_UNSUPPORTED, "a range to a class escape (-\\%c) is not supported", z.class_letter);
                    ok = false;
                    break;
                }
                if (z.cp < a.cp) {
                    fail_at(p, at, BN_ERR_FORMAT, "range out of order in the class (U+%04X-U+%04X)", (unsigned)a.cp,
                            (unsigned)z.cp);
                    ok = false;
                    break;
                }
                hi = z.cp;
            }
            nomem = !cpset_add(&lower, a.cp, hi) || !cpset_add(&upper, a.cp, hi);
        }
        if (nomem) break;
    }
    if (ok && !nomem) {
        cpset_normalize(&lower);
        cpset_normalize(&upper);
        static const uint32_t surrogates[] = {0xd800, 0xdfff};
        if (negate) {
            cpset outside = {0};
            nomem = !cpset_add_table(&outside, upper.r, upper.n, true) ||
                    !cpset_subtract(&result, &outside, surrogates, 1);
            free(outside.r);
        } else {
            nomem = !cpset_subtract(&result, &lower, surrogates, 1);
        }
    }
    free(lower.r);
    free(upper.r);
    if (nomem) fail_nomem(p);
    if (ok && !nomem && result.n == 0) fail_at(p, open, BN_ERR_FORMAT, "the class matches no character");
    if (p->status != BN_OK) {
        free(result.r);
        return -1;
    }
    return set_node(p, add_set(p, &result));
}

/* A set node of a class escape outside [...]: its lower bound. */
static int class_escape_node(rx *p, char letter) {
    cpset lower = {0}, upper = {0};
    bool ok = add_class_escape(&lower, &upper, letter);
    free(upper.r);
    if (!ok) {
        free(lower.r);
        fail_nomem(p);
        return -1;
    }
    cpset_normalize(&lower);
    return set_node(p, add_set(p, &lower));
}

static int dot_node(rx *p) {
    if (p->dot_set < 0) {
        cpset s = {0};
        if (!cpset_add_table(&s, line_terminators, PAIRS(line_terminators), true)) {
            free(s.r);
            fail_nomem(p);
            return -1;
        }
        p->dot_set = add_set(p, &s);
    }
    return set_node(p, p->dot_set);
}

static int char_node(rx *p, uint32_t cp) {
    int n = new_node(p, RX_CHAR);
    if (n >= 0) p->nodes[n].cp = cp;
    return n;
}

/* A decimal count at *i (saturating above the repetition limit); false when no digit is there. */
static bool read_count(const rx *p, size_t *i, long *v) {
    if (!is_digit(peek_at(p, *i))) return false;
    *v = 0;
    for (; is_digit(peek_at(p, *i)); (*i)++)
        if (*v <= BN_GRAMMAR_MAX_REPEAT) *v = *v * 10 + (peek_at(p, *i) - '0');
    return true;
}

/* {n} {n,} {n,m} at `at`: 1 with the counts and *end after the '}', 0 when the text there is not
 * a quantifier (a literal '{' then), -1 on error. */
static int brace_quantifier(rx *p, size_t at, int *min, int *max, size_t *end) {
    size_t i = at + 1;
    long lo, hi;
    if (!read_count(p, &i, &lo)) return 0;
    if (peek_at(p, i) == '}') {
        hi = lo;
    } else if (peek_at(p, i) == ',') {
        i++;
        hi = -1;
        if (peek_at(p, i) != '}' && !read_count(p, &i, &hi)) return 0;
    } else {
        return 0;
    }
    if (peek_at(p, i) != '}') return 0;
    if (lo > BN_GRAMMAR_MAX_REPEAT || hi > BN_GRAMMAR_MAX_REPEAT) {
        fail_at(p, at, BN_ERR_RANGE, "repetition count above the limit of %d", BN_GRAMMAR_MAX_REPEAT);
        return -1;
    }
    if (hi >= 0 && hi < lo) {
        fail_at(p, at, BN_ERR_FORMAT, "numbers out of order in the quantifier {%ld,%ld}", lo, hi);
        return -1;
    }
    *min = (int)lo;
    *max = (int)hi;
    *end = i + 1;
    return 1;
}

static int parse_disjunction(rx *p, int depth);

/* ( ... ), (?: ... ), (?<name> ... ); refuses the other (? forms. */
static int parse_group(rx *p, int depth) {
    size_t open = p->pos++;
    if (depth >= BN_REGEX_MAX_DEPTH) {
        fail_at(p, open, BN_ERR_RANGE, "groups nested deeper than %d", BN_REGEX_MAX_DEPTH);
        return -1;
    }
    if (peek(p) == '?') {
        char c = peek_at(p, p->pos + 1), c2 = peek_at(p, p->pos + 2);
        if (c == ':') {
            p->pos += 2;
        } else if (c == '=' || c == '!') {
            fail_at(p, open, BN_ERR_UNSUPPORTED, "lookahead '(?%c' is not supported", c);
            return -1;
        } else if (c == '<' && (c2 == '=' || c2 == '!')) {
            fail_at(p, open, BN_ERR_UNSUPPORTED, "lookbehind '(?<%c' is not supported", c2);
            return -1;
        } else if (c == '<') {
            size_t i = p->pos + 2;
            while (i < p->len && (is_alpha(p->pat[i]) || is_digit(p->pat[i]) || p->pat[i] == '_' || p->pat[i] == '$' ||
                                  (uint8_t)p->pat[i] >= 0x80))
                i++;
            if (i == p->pos + 2 || peek_at(p, i) != '>') {
                fail_at(p, open, BN_ERR_FORMAT, "invalid group name in (?<name>...)");
                return -1;
            }
            p->pos = i + 1;
        } else if (c == 'P') {
            fail_at(p, open, BN_ERR_UNSUPPORTED, "(?P...) groups are not supported; write (?<name>...)");
            return -1;
        } else if (c && strchr("imsxun-", c)) {
            fail_at(p, open, BN_ERR_UNSUPPORTED, "inline flags '(?%c' are not supported", c);
            return -1;
        } else {
            fail_at(p, open, BN_ERR_FORMAT, "invalid group syntax after '(?'");
            return -1;
        }
    }
    int inner = parse_disjunction(p, depth + 1);
    if (inner < 0) return -1;
    if (peek(p) != ')') {
        fail_at(p, open, BN_ERR_FORMAT, "missing ')' for the group");
        return -1;
    }
    p->pos++;
    return inner;
}

/* An atom: a character, a set, or a group. */
static int parse_atom(rx *p, int depth) {
    size_t at = p->pos;
    char c = peek(p);
    int min, max;
    size_t end;
    switch (c) {
    case '(':
        return parse_group(p, depth);
    case '[':
        return parse_class(p);
    case '.':
        p->pos++;
        return dot_node(p);
    case '\\': {
        escape e;
        if (!parse_escape(p, false, &e)) return -1;
        return e.is_class ? class_escape_node(p, e.class_letter) : char_node(p, e.cp);
    }
    case '*': case '+': case '?':
        fail_at(p, at, BN_ERR_FORMAT, "nothing to repeat before '%c'", c);
        return -1;
    case '{': {
        int q = brace_quantifier(p, at, &min, &max, &end);
        if (q != 0) {
            if (q > 0) fail_at(p, at, BN_ERR_FORMAT, "nothing to repeat before '{'");
            return -1;
        }
        p->pos++;
        return char_node(p, '{');
    }
    default: {
        uint32_t cp;
        p->pos += bn_utf8_decode((const uint8_t *)p->pat + at, p->len - at, &cp); /* valid: checked */
        return char_node(p, cp);
    }
    }
}


/* An atom and its quantifier, if any. */
static int parse_term(rx *p, int depth) {
    int atom = parse_atom(p, depth);
    if (atom < 0) return -1;
    size_t at = p->pos;
    int min, max;
    size_t end;
    char c = peek(p);
    if (c == '*') min = 0, max = -1, end = at + 1;
    else if (c == '+') min = 1, max = -1, end = at + 1;
    else if (c == '?') min = 0, max = 1, end = at + 1;
    else if (c == '{') {
        int q = brace_quantifier(p, at, &min, &max, &end);
        if (q <= 0) return q < 0 ? -1 : atom;
    } else {
        return atom;
    }
    p->pos = end;
    if (peek(p) == '?') p->pos++; /* lazy: the same language */
    if (peek(p) == '+') {
        fail_at(p, at, BN_ERR_UNSUPPORTED, "possessive quantifiers (like a*+) are not supported");
        return -1;
    }
    p->repeat_total += max < 0 ? min + 1 : max;
    if (p->repeat_total > BN_REGEX_MAX_REPEAT_TOTAL) {
        fail_at(p, at, BN_ERR_RANGE, "quantifier counts add up to more than %d", BN_REGEX_MAX_REPEAT_TOTAL);
        return -1;
    }
    /* ((x?)?){n} and the like: one repetition (see bn_grammar_merge_repeats) */
    int inner = atom;
    while (p->nodes[inner].kind == RX_CONCAT && p->nodes[inner].first >= 0 &&
           p->nodes[inner].first == p->nodes[inner].last)
        inner = p->nodes[inner].first;
    rx_node *r = &p->nodes[inner];
    if (r->kind == RX_REPEAT && bn_grammar_merge_repeats(&r->min, &r->max, min, max)) {
        r->nullable = r->min == 0 || r->max == 0 || p->nodes[r->first].nullable;
        return inner;
    }
    int n = new_node(p, RX_REPEAT);
    if (n < 0) return -1;
    r = &p->nodes[n];
    r->first = r->last = atom;
    r->min = min;
    r->max = max;
    r->nullable = min == 0 || max == 0 || p->nodes[atom].nullable;
    return n;
}

/* Terms up to '|', ')' or the end. At the top level, ^ may open it and $ close it. */
static int parse_alternative(rx *p, int depth) {
    int seq = new_node(p, RX_CONCAT);
    if (seq < 0) return -1;
    if (depth == 0 && peek(p) == '^') p->pos++;
    while (!at_end(p)) {
        char c = peek(p);
        if (c == '|' || c == ')') break;
        if (c == '^') {
            fail_at(p, p->pos, BN_ERR_UNSUPPORTED, "^ is supported only at the start of the pattern");
            return -1;
        }
        if (c == '$') {
            if (depth == 0 && (p->pos + 1 == p->len || p->pat[p->pos + 1] == '|')) {
                p->pos++;
                break;
            }
            fail_at(p, p->pos, BN_ERR_UNSUPPORTED, "$ is supported only at the end of the pattern");
            return -1;
        }
        int t = parse_term(p, depth);
        if (t < 0) return -1;
        append_child(p, seq, t);
        p->nodes[seq].nullable &= p->nodes[t].nullable;
    }
    return seq;
}

/* Alternatives separated by '|'. */
static int parse_disjunction(rx *p, int depth) {
    int first = parse_alternative(p, depth);
    if (first < 0 || peek(p) != '|') return first;
    int alt = new_node(p, RX_ALT);
    if (alt < 0) return -1;
    append_child(p, alt, first);
    p->nodes[alt].nullable = p->nodes[first].nullable;
    while (peek(p) == '|') {
        p->pos++;
        int a = parse_alternative(p, depth);
        if (a < 0) return -1;
        append_child(p, alt, a);
        p->nodes[alt].nullable |= p->nodes[a].nullable;
    }
    return alt;
}

/* ---------------------------------------------------------------- emission */

static bool lit_push(rx *p, uint32_t cp) {
    if (p->lit_len + 8 > p->lit_cap) {
        size_t cap = p->lit_cap ? 2 * p->lit_cap : 64;
        uint8_t *lit = realloc(p->lit, cap);
        if (!lit) {
            fail_nomem(p);
            return false;
        }
        p->lit = lit;
        p->lit_cap = cap;
    }
    p->lit_len += p->flags & BN_REGEX_JSON_STRING ? json_encode(cp, p->lit + p->lit_len) : bn_utf8_encode(cp, p->lit + p->lit_len);
    return true;
}

static void lit_flush(rx *p, int alt) {
    if (p->lit_len) bn_grammar_add_literal(p->b, alt, (const char *)p->lit, p->lit_len);
    p->lit_len = 0;
}

static int fresh_rule(rx *p) {
    int rule = bn_grammar_fresh_rule(p->b, "pattern");
    if (rule < 0) fail_nomem(p);
    return rule;
}

static int new_alt(rx *p, int rule) {
    int alt = bn_grammar_alt(p->b, rule);
    if (alt < 0) fail_nomem(p);
    return alt;
}

/* A set as JSON string content: characters JSON needs escaped become alternatives of their
 * escapes; controls without a short escape are \u000x or \u001x, one alternative for each. */
static void emit_json_set(rx *p, int alt, const cpset *s) {
    static const uint32_t needs_escape[] = {0x00, 0x1f, 0x22, 0x22, 0x5c, 0x5c};
    cpset rest = {0};
    if (!cpset_subtract(&rest, s, needs_escape, PAIRS(needs_escape))) {
        free(rest.r);
        fail_nomem(p);
        return;
    }
    bool any_escape = cpset_has(s, 0x22) || cpset_has(s, 0x5c);
    for (uint32_t c = 0; c < 0x20 && !any_escape; c++) any_escape = cpset_has(s, c);
    if (!any_escape) {
        bn_grammar_add_codepoints(p->b, alt, rest.r, rest.n, false);
        free(rest.r);
        return;
    }
    int rule = fresh_rule(p);
    if (rule >= 0 && rest.n) {
        int a = new_alt(p, rule);
        if (a >= 0) bn_grammar_add_codepoints(p->b, a, rest.r, rest.n, false);
    }
    free(rest.r);
    uint64_t low_digits[2][4] = {{0}};
    for (uint32_t c = 0; c < 0x80 && rule >= 0 && p->status == BN_OK; c++) {
        if (!cpset_has(s, c)) continue;
        uint8_t text[8];
        size_t n = json_encode(c, text);
        if (n == 6) { /* \u00XY: gather Y by X */
            uint8_t y = text[5];
            low_digits[c >> 4][y / 64] |= 1ull << (y % 64);
        } else if (n == 2) {
            int a = new_alt(p, rule);
            if (a >= 0) bn_grammar_add_literal(p->b, a, (const char *)text, n);
        }
    }
    for (int x = 0; x < 2 && rule >= 0 && p->status == BN_OK; x++) {
        if (!(low_digits[x][0] | low_digits[x][1])) continue;
        int a = new_alt(p, rule);
        if (a < 0) break;
        bn_grammar_add_literal(p->b, a, x ? "\\u001" : "\\u000", 5);
        bn_grammar_add_byteset(p->b, a, low_digits[x]);
    }
    if (rule >= 0) bn_grammar_add_ref(p->b, alt, rule);
}

static void emit(rx *p, int alt, int node);

/* A fresh rule matching `node` (its alternatives, if it is an alternation). */
static int rule_of(rx *p, int node) {
    int rule = fresh_rule(p);
    if (rule < 0) return -1;
    const rx_node *n = &p->nodes[node];
    if (n->kind == RX_ALT) {
        for (int c = n->first; c >= 0 && p->status == BN_OK; c = p->nodes[c].next) {
            int a = new_alt(p, rule);
            if (a >= 0) emit(p, a, c);
        }
    } else {
        int a = new_alt(p, rule);
        if (a >= 0) emit(p, a, node);
    }
    return rule;
}

/* Pushes the non-nullable parts of `node` (itself, if it is not nullable): see the top. */
static void collect_parts(rx *p, int node) {
    const rx_node *n = &p->nodes[node];
    if (!n->nullable) {
        p->stack[p->stack_n++] = node;
        return;
    }
    if (n->kind == RX_REPEAT && n->max == 0) return;
    for (int c = n->first; c >= 0; c = p->nodes[c].next) collect_parts(p, c);
}

static void emit_repeat(rx *p, int alt, const rx_node *n) {
    if (n->max == 0) return;
    if (n->min == 1 && n->max == 1) {
        emit(p, alt, n->first);
        return;
    }
    int rule;
    if (n->max < 0 && p->nodes[n->first].nullable) {
        int base = p->stack_n;
        collect_parts(p, n->first);
        if (p->stack_n == base) return; /* only the empty text: x* is empty */
        rule = fresh_rule(p);
        for (int i = base; i < p->stack_n && rule >= 0 && p->status == BN_OK; i++) {
            int a = new_alt(p, rule);
            if (a >= 0) emit(p, a, p->stack[i]);
        }
        p->stack_n = base;
        if (rule >= 0) bn_grammar_add_repeat(p->b, alt, rule, 0, -1);
        return;
    }
    rule = rule_of(p, n->first);
    if (rule >= 0) bn_grammar_add_repeat(p->b, alt, rule, n->min, n->max);
}

/* Appends what matches `node` to alternative `alt`. */
static void emit(rx *p, int alt, int node) {
    const rx_node *n = &p->nodes[node];
    switch (n->kind) {
    case RX_CHAR:
        if (lit_push(p, n->cp)) lit_flush(p, alt);
        break;
    case RX_SET:
        if (p->flags & BN_REGEX_JSON_STRING) emit_json_set(p, alt, &p->sets[n->set]);
        else bn_grammar_add_codepoints(p->b, alt, p->sets[n->set].r, p->sets[n->set].n, false);
        break;
    case RX_CONCAT:
        /* runs of characters become one literal */
        for (int c = n->first; c >= 0 && p->status == BN_OK; c = p->nodes[c].next) {
            if (p->nodes[c].kind == RX_CHAR) {
                lit_push(p, p->nodes[c].cp);
            } else {
                lit_flush(p, alt);
                emit(p, alt, c);
            }
        }
        lit_flush(p, alt);
        break;
    case RX_ALT: {
        int rule = rule_of(p, node);
        if (rule >= 0) bn_grammar_add_ref(p->b, alt, rule);
        break;
    }
    case RX_REPEAT:
        emit_repeat(p, alt, n);
        break;
    }
}

/* ---------------------------------------------------------------- entry */

bn_status bn_grammar_regex(bn_grammar_builder *b, const char *pattern, unsigned flags, int *rule_out,
                           bn_error *err) {
    if (!b || !pattern || !rule_out) return bn_error_set(err, BN_ERR_INVALID, "regex: missing argument");
    *rule_out = -1;
    if (flags & ~BN_REGEX_JSON_STRING) return bn_error_set(err, BN_ERR_INVALID, "regex: unknown flags 0x%x", flags);
    size_t len = strnlen(pattern, BN_REGEX_MAX_PATTERN + 1);
    if (len > BN_REGEX_MAX_PATTERN)
        return bn_error_set(err, BN_ERR_RANGE, "regex: the pattern is longer than %d bytes", BN_REGEX_MAX_PATTERN);
    rx p = {.pat = pattern, .len = len, .flags = flags, .err = err, .dot_set = -1, .b = b};
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = bn_utf8_decode((const uint8_t *)pattern + i, len - i, &cp);
        if (n == 0) {
            fail_at(&p, i, BN_ERR_FORMAT, "invalid UTF-8");
            return p.status;
        }
        i += n;
    }

    int root = parse_disjunction(&p, 0);
    if (p.status == BN_OK && !at_end(&p)) fail_at(&p, p.pos, BN_ERR_FORMAT, "unmatched ')'");

    if (p.status == BN_OK) {
        bool builder_failed = bn_grammar_builder_failed(b);
        p.stack = malloc((size_t)p.n_nodes * sizeof *p.stack);
        int rule = p.stack ? rule_of(&p, root) : -1;
        if (!p.stack) fail_nomem(&p);
        if (p.status == BN_OK && !builder_failed && bn_grammar_builder_failed(b)) fail_nomem(&p);
        if (p.status == BN_OK) *rule_out = rule;
    }
    for (int i = 0; i < p.n_sets; i++) free(p.sets[i].r);
    free(p.sets);
    free(p.nodes);
    free(p.lit);
    free(p.stack);
    return p.status;
}
