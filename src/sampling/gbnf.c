/*
 * gbnf.c: GBNF text -> grammar builder (see gbnf.h).
 *
 * A recursive-descent parser that emits straight into a bn_grammar_builder. Each item of a
 * sequence (literal, class, `.`, rule reference, group) is parsed into a pending `item` and
 * emitted into the current alternative once the postfix operators after it are known: a postfix
 * turns the item into a rule, because bn_grammar_add_repeat repeats rules. A literal's bytes and a
 * class's ranges wait in the parser's scratch buffers, which is safe because an item is always
 * emitted before the next one is parsed (a group emits its inside into its own rule).
 *
 * Rule names live in a hash table beside the builder that remembers where each name was first
 * used and where it was defined, so that an undefined rule is reported at its first use and a
 * second definition at its place.
 */
#include "sampling/gbnf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_OFFSET SIZE_MAX
#define NAME_SLOTS (2 * BN_GBNF_MAX_RULES) /* power of two, at most half full */

typedef enum item_kind { ITEM_LITERAL, ITEM_CLASS, ITEM_REF, ITEM_REPEAT } item_kind;

typedef struct item {
    item_kind kind;
    bool negate;  /* ITEM_CLASS */
    int rule;     /* ITEM_REF: the rule; ITEM_REPEAT: the repeated rule */
    int min, max; /* ITEM_REPEAT (max -1: unbounded) */
} item;

typedef struct name_entry {
    char *name;
    int rule;
    size_t first_use;  /* offset of the first reference, NO_OFFSET if none */
    size_t defined_at; /* offset of the definition, NO_OFFSET if none */
} name_entry;

typedef struct parser {
    const char *text;
    size_t len, pos;
    bn_grammar_builder *b;
    bn_error *err;
    bn_status status; /* the first error; BN_OK while parsing goes well */
    int depth;        /* parentheses open */
    const char *rule_name; /* the rule being defined: base name of its helper rules */
    long repeat_total;
    name_entry *names;
    int n_names;
    int *slots; /* NAME_SLOTS indices into names, -1 empty */
    uint8_t *lit; /* the pending literal's UTF-8 bytes */
    size_t lit_len, lit_cap;
    uint32_t *ranges; /* the pending class: n_ranges pairs [lo, hi] */
    size_t n_ranges, cap_ranges;
} parser;

/* ---------------------------------------------------------------- text and errors */



/* 1-based line and column (in characters) of a byte offset. */
static void position(const parser *p, size_t at, size_t *line, size_t *column) {
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < at && i < p->len; i++) {
        uint8_t c = (uint8_t)p->text[i];
        if (c == '\n') {
            (*line)++;
            *column = 1;
        } else if ((c & 0xc0) != 0x80) {
            (*column)++;
        }
    }
}

/* Records the first error, placed at byte offset `at`. */
static void fail_at(parser *p, size_t at, bn_status status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail_at(parser *p, size_t at, bn_status status, const char *fmt, ...) {
    if (p->status != BN_OK) return;
    char msg[BN_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t line, column;
    position(p, at, &line, &column);
    p->status = bn_error_set(p->err, status, "grammar: line %zu, column %zu: %s", line, column, msg);
}

static void fail_nomem(parser *p) {
    if (p->status == BN_OK) p->status = bn_error_set(p->err, BN_ERR_NOMEM, "grammar: out of memory");
}

/* What stands at `at`, for messages: "'x'", "U+00E9", "end of line", "end of input". */
static const char *describe(const parser *p, size_t at, char *buf, size_t cap) {
    if (at >= p->len) return "end of input";
    uint8_t c = (uint8_t)p->text[at];
    if (c == '\n' || c == '\r') return "end of line";
    if (c >= 0x20 && c < 0x7f) {
        snprintf(buf, cap, "'%c'", c);
    } else {
        uint32_t cp = c;
        bn_utf8_decode((const uint8_t *)p->text + at, p->len - at, &cp);
        snprintf(buf, cap, "U+%04X", (unsigned)cp);
    }
    return buf;
}

/* Refuses text that is not UTF-8 or holds a NUL byte, naming the place. */
static void check_text(parser *p) {
    for (size_t i = 0; i < p->len;) {
        uint32_t cp;
        size_t n = bn_utf8_decode((const uint8_t *)p->text + i, p->len - i, &cp);
        if (n == 0) {
            fail_at(p, i, BN_ERR_FORMAT, "invalid UTF-8");
            return;
        }
        if (cp == 0) {
            fail_at(p, i, BN_ERR_FORMAT, "NUL byte in the grammar text");
            return;
        }
        i += n;
    }
}

static bool at_end(const parser *p) { return p->pos >= p->len; }
static char peek(const parser *p) { return p->pos < p->len ? p->text[p->pos] : '\0'; }
static bool is_word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_postfix(char c) { return c == '*' || c == '+' || c == '?' || c == '{'; }

/* Skips spaces, tabs and comments, and newlines too where the syntax lets a rule go on. */
static void skip_space(parser *p, bool newline_ok) {
    while (!at_end(p)) {
        char c = peek(p);
        if (c == ' ' || c == '\t' || (newline_ok && (c == '\n' || c == '\r'))) {
            p->pos++;
        } else if (c == '#') {
            while (!at_end(p) && peek(p) != '\n' && peek(p) != '\r') p->pos++;
        } else {
            break;
        }
    }
}

/* ---------------------------------------------------------------- names */

/* The entry of name text[start..start+n), created (with its builder rule) on first sight;
 * NULL on error. */
static name_entry *name_entry_of(parser *p, size_t start, size_t n) {
    const char *s = p->text + start;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    size_t slot = h & (NAME_SLOTS - 1);
    for (; p->slots[slot] >= 0; slot = (slot + 1) & (NAME_SLOTS - 1)) {
        name_entry *e = &p->names[p->slots[slot]];
        if (strlen(e->name) == n && !memcmp(e->name, s, n)) return e;
    }
    if (p->n_names == BN_GBNF_MAX_RULES) {
        fail_at(p, start, BN_ERR_RANGE, "more than %d rule names", BN_GBNF_MAX_RULES);
        return NULL;
    }
    name_entry *e = &p->names[p->n_names];
    e->name = malloc(n + 1);
    if (!e->name) {
        fail_nomem(p);
        return NULL;
    }
    memcpy(e->name, s, n);
    e->name[n] = '\0';
    e->first_use = e->defined_at = NO_OFFSET;
    e->rule = bn_grammar_rule(p->b, e->name);
    if (e->rule < 0) {
        free(e->name);
        fail_nomem(p);
        return NULL;
    }
    p->slots[slot] = p->n_names++;
    return e;
}

/* ---------------------------------------------------------------- items */

static bool lit_push(parser *p, uint32_t cp) {
    if (p->lit_len + 4 > p->lit_cap) {
        size_t cap = p->lit_cap ? 2 * p->lit_cap : 64;
        uint8_t *lit = realloc(p->lit, cap);
        if (!lit) {
            fail_nomem(p);
            return false;
        }
        p->lit = lit;
        p->lit_cap = cap;
    }
    p->lit_len += bn_utf8_encode(cp, p->lit + p->lit_len);
    return true;
}

static bool range_push(parser *p, uint32_t lo, uint32_t hi) {
    if (p->n_ranges == p->cap_ranges) {
        size_t cap = p->cap_ranges ? 2 * p->cap_ranges : 16;
        uint32_t *r = realloc(p->ranges, 2 * cap * sizeof *r);
        if (!r) {
            fail_nomem(p);
            return false;
        }
        p->ranges = r;
        p->cap_ranges = cap;
    }
    p->ranges[2 * p->n_ranges] = lo;
    p->ranges[2 * p->n_ranges + 1] = hi;
    p->n_ranges++;
    return true;
}

/* The code point of `digits` hex digits at p->pos (an escape that started at `at`). */
static bool parse_hex(parser *p, size_t at, int digits, uint32_t *cp) {
    uint32_t v = 0;
    for (int i = 0; i < digits; i++) {
        char c = peek(p);
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) {
            fail_at(p, at, BN_ERR_FORMAT, "escape \\%c needs %d hex digits", p->text[at + 1], digits);
            return false;
        }
        v = v << 4 | (uint32_t)d;
        p->pos++;
    }
    if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        fail_at(p, at, BN_ERR_FORMAT, "invalid code point U+%04X (a surrogate or above U+10FFFF)", (unsigned)v);
        return false;
    }
    *cp = v;
    return true;
}

/* One character of a literal or class: an escape or a UTF-8 code point. */
static bool parse_char(parser *p, uint32_t *cp) {
    size_t at = p->pos;
    if (peek(p) != '\\') {
        size_t n = bn_utf8_decode((const uint8_t *)p->text + at, p->len - at, cp); /* valid: checked */
        p->pos += n;
        return true;
    }
    if (at + 1 >= p->len) {
        fail_at(p, at, BN_ERR_FORMAT, "unterminated escape");
        return false;
    }
    char e = p->text[at + 1];
    p->pos = at + 2;
    switch (e) {
    case 'x': return parse_hex(p, at, 2, cp);
    case 'u': return parse_hex(p, at, 4, cp);
    case 'U': return parse_hex(p, at, 8, cp);
    case 'n': *cp = '\n'; return true;
    case 'r': *cp = '\r'; return true;
    case 't': *cp = '\t'; return true;
    case '\\': case '"': case '[': case ']': *cp = (uint8_t)e; return true;
    default: {
        char what[16];
        fail_at(p, at, BN_ERR_FORMAT, "unknown escape '\\' followed by %s", describe(p, at + 1, what, sizeof what));
        return false;
    }
    }
}

/* "..." into the literal buffer. */
static bool parse_literal(parser *p) {
    size_t open = p->pos++;
    p->lit_len = 0;
    for (;;) {
        if (at_end(p)) {
            fail_at(p, open, BN_ERR_FORMAT, "unterminated string");
            return false;
        }
        if (peek(p) == '"') {
            p->pos++;
            return true;
        }
        uint32_t cp;
        if (!parse_char(p, &cp) || !lit_push(p, cp)) return false;
    }
}

/* [...] or [^...] into the range buffer. */
static bool parse_class(parser *p, bool *negate) {
    size_t open = p->pos++;
    p->n_ranges = 0;
    *negate = peek(p) == '^';
    if (*negate) p->pos++;
    for (;;) {
        if (at_end(p)) {
            fail_at(p, open, BN_ERR_FORMAT, "unterminated character class");
            return false;
        }
        if (peek(p) == ']') {
            p->pos++;
            break;
        }
        size_t at = p->pos;
        uint32_t lo, hi;
        if (!parse_char(p, &lo)) return false;
        hi = lo;
        if (peek(p) == '-' && p->pos + 1 < p->len && p->text[p->pos + 1] != ']') {
            p->pos++;
            if (!parse_char(p, &hi)) return false;
            if (hi < lo) {
                fail_at(p, at, BN_ERR_FORMAT, "character range U+%04X-U+%04X is reversed", (unsigned)lo, (unsigned)hi);
                return false;
            }
        }
        if (!range_push(p, lo, hi)) return false;
    }
    if (p->n_ranges == 0) {
        fail_at(p, open, BN_ERR_FORMAT, "empty character class");
        return false;
    }
    return true;
}

/* A decimal repetition count at p->pos. */
static bool parse_count(parser *p, int *out) {
    size_t at = p->pos;
    if (!is_digit(peek(p))) {
        char what[16];
        fail_at(p, at, BN_ERR_FORMAT, "expected a number, got %s", describe(p, at, what, sizeof what));
        return false;
    }
    long v = 0;
    while (is_digit(peek(p))) {
        if (v <= BN_GRAMMAR_MAX_REPEAT) v = v * 10 + (peek(p) - '0');
        p->pos++;
    }
    if (v > BN_GRAMMAR_MAX_REPEAT) {
        fail_at(p, at, BN_ERR_RANGE, "repetition count %.*s is above the limit of %d", (int)(p->pos - at),
                p->text + at, BN_GRAMMAR_MAX_REPEAT);
        return false;
    }
    *out = (int)v;
    return true;
}

/* One postfix operator: * + ? {m} {m,} {m,n}. */
static bool parse_postfix(parser *p, bool nested, int *min, int *max) {
    size_t at = p->pos;
    char c = p->text[p->pos++];
    skip_space(p, nested);
    if (c == '*') *min = 0, *max = -1;
    else if (c == '+') *min = 1, *max = -1;
    else if (c == '?') *min = 0, *max = 1;
    else {
        if (!parse_count(p, min)) return false;
        skip_space(p, nested);
        if (peek(p) == '}') {
            *max = *min;
        } else if (peek(p) == ',') {
            p->pos++;
            skip_space(p, nested);
            *max = -1;
            if (is_digit(peek(p))) {
                if (!parse_count(p, max)) return false;
                skip_space(p, nested);
            }
            if (peek(p) != '}') {
                char what[16];
                fail_at(p, p->pos, BN_ERR_FORMAT, "expected '}' to close the repetition, got %s",
                        describe(p, p->pos, what, sizeof what));
                return false;
            }
        } else {
            char what[16];
            fail_at(p, p->pos, BN_ERR_FORMAT, "expected ',' or '}' in the repetition, got %s",
                    describe(p, p->pos, what, sizeof what));
            return false;
        }
        p->pos++;
        skip_space(p, nested);
        if (*max >= 0 && *max < *min) {
            fail_at(p, at, BN_ERR_FORMAT, "repetition {%d,%d} has its minimum above its maximum", *min, *max);
            return false;
        }
    }
    p->repeat_total += *max < 0 ? *min + 1 : *max;
    if (p->repeat_total > BN_GBNF_MAX_REPEAT_TOTAL) {
        fail_at(p, at, BN_ERR_RANGE, "repetition counts add up to more than %d", BN_GBNF_MAX_REPEAT_TOTAL);
        return false;
    }
    return true;
}

static void parse_alternatives(parser *p, int rule, bool nested);

/* ( alternatives ) as a fresh rule. */
static bool parse_group(parser *p, item *it) {
    size_t open = p->pos++;
    if (p->depth >= BN_GBNF_MAX_DEPTH) {
        fail_at(p, open, BN_ERR_RANGE, "parentheses nested deeper than %d", BN_GBNF_MAX_DEPTH);
        return false;
    }
    skip_space(p, true);
    int rule = bn_grammar_fresh_rule(p->b, p->rule_name);
    if (rule < 0) {
        fail_nomem(p);
        return false;
    }
    p->depth++;
    parse_alternatives(p, rule, true);
    p->depth--;
    if (p->status != BN_OK) return false;
    if (peek(p) != ')') {
        size_t line, column;
        position(p, open, &line, &column);
        char what[16];
        fail_at(p, p->pos, BN_ERR_FORMAT, "expected ')' to close the '(' of line %zu, column %zu, got %s", line,
                column, describe(p, p->pos, what, sizeof what));
        return false;
    }
    p->pos++;
    it->kind = ITEM_REF;
    it->rule = rule;
    return true;
}

/* One item (without its postfixes), then the space after it. */
static bool parse_item(parser *p, bool nested, item *it) {
    char c = peek(p);
    bool ok = true;
    if (c == '"') {
        it->kind = ITEM_LITERAL;
        ok = parse_literal(p);
    } else if (c == '[') {
        it->kind = ITEM_CLASS;
        ok = parse_class(p, &it->negate);
    } else if (c == '.') {
        p->pos++;
        p->n_ranges = 0;
        it->kind = ITEM_CLASS;
        it->negate = false;
        ok = range_push(p, 0, 0x10ffff);
    } else if (c == '(') {
        ok = parse_group(p, it);
    } else {
        size_t start = p->pos;
        while (is_word_char(peek(p))) p->pos++;
        name_entry *e = name_entry_of(p, start, p->pos - start);
        if (!e) return false;
        if (e->first_use == NO_OFFSET) e->first_use = start;
        it->kind = ITEM_REF;
        it->rule = e->rule;
    }
    if (ok) skip_space(p, nested);
    return ok;
}

static void emit(parser *p, int alt, const item *it) {
    switch (it->kind) {
    case ITEM_LITERAL:
        bn_grammar_add_literal(p->b, alt, (const char *)p->lit, p->lit_len);
        break;
    case ITEM_CLASS:
        bn_grammar_add_codepoints(p->b, alt, p->ranges, p->n_ranges, it->negate);
        break;
    case ITEM_REF:
        bn_grammar_add_ref(p->b, alt, it->rule);
        break;
    case ITEM_REPEAT:
        bn_grammar_add_repeat(p->b, alt, it->rule, it->min, it->max);
        break;
    }
}

/* The rule an item becomes when a postfix applies to it: a reference is its rule already. */
static int item_rule(parser *p, const item *it) {
    if (it->kind == ITEM_REF) return it->rule;
    int rule = bn_grammar_fresh_rule(p->b, p->rule_name);
    int alt = rule < 0 ? -1 : bn_grammar_alt(p->b, rule);
    if (alt < 0) {
        fail_nomem(p);
        return -1;
    }
    emit(p, alt, it);
    return rule;
}


/* Items with their postfixes, appended to `alt`, up to what cannot start an item. */
static void parse_sequence(parser *p, int alt, bool nested) {
    while (p->status == BN_OK && !at_end(p)) {
        char c = peek(p);
        if (is_postfix(c)) {
            fail_at(p, p->pos, BN_ERR_FORMAT, "'%c' must follow an item", c);
            return;
        }
        if (c != '"' && c != '[' && c != '.' && c != '(' && !is_word_char(c)) return;
        item it;
        if (!parse_item(p, nested, &it)) return;
        while (is_postfix(peek(p))) {
            int min, max;
            if (!parse_postfix(p, nested, &min, &max)) return;
            if (it.kind == ITEM_REPEAT && bn_grammar_merge_repeats(&it.min, &it.max, min, max)) continue;
            int rule = item_rule(p, &it);
            if (rule < 0) return;
            it = (item){.kind = ITEM_REPEAT, .rule = rule, .min = min, .max = max};
        }
        emit(p, alt, &it);
    }
}

/* sequence ( '|' sequence )* as alternatives of `rule`. */
static void parse_alternatives(parser *p, int rule, bool nested) {
    for (;;) {
        int alt = bn_grammar_alt(p->b, rule);
        if (alt < 0) {
            fail_nomem(p);
            return;
        }
        parse_sequence(p, alt, nested);
        if (p->status != BN_OK || peek(p) != '|') return;
        p->pos++;
        skip_space(p, true);
    }
}

/* name ::= alternatives, then the end of the line. */
static void parse_rule(parser *p) {
    size_t start = p->pos;
    char what[16];
    if (!is_word_char(peek(p))) {
        fail_at(p, start, BN_ERR_FORMAT, "expected a rule name, got %s%s", describe(p, start, what, sizeof what),
                peek(p) == '|' ? " (a rule goes on to the next line only after '|', '::=' or inside parentheses)"
                               : "");
        return;
    }
    while (is_word_char(peek(p))) p->pos++;
    size_t name_len = p->pos - start;
    skip_space(p, false);
    if (p->len - p->pos < 3 || memcmp(p->text + p->pos, "::=", 3) != 0) {
        fail_at(p, p->pos, BN_ERR_FORMAT, "expected ::= after the rule name '%.*s', got %s", (int)name_len,
                p->text + start, describe(p, p->pos, what, sizeof what));
        return;
    }
    name_entry *e = name_entry_of(p, start, name_len);
    if (!e) return;
    if (e->defined_at != NO_OFFSET) {
        size_t line, column;
        position(p, e->defined_at, &line, &column);
        fail_at(p, start, BN_ERR_FORMAT, "rule '%s' is defined twice (first on line %zu)", e->name, line);
        return;
    }
    e->defined_at = start;
    p->pos += 3;
    skip_space(p, true);
    p->rule_name = e->name;
    parse_alternatives(p, e->rule, false);
    if (p->status != BN_OK || at_end(p)) return;
    if (peek(p) == '\r' || peek(p) == '\n') {
        p->pos++;
    } else if (peek(p) == ')') {
        fail_at(p, p->pos, BN_ERR_FORMAT, "unmatched ')'");
    } else if (p->len - p->pos >= 3 && !memcmp(p->text + p->pos, "::=", 3)) {
        fail_at(p, p->pos, BN_ERR_FORMAT, "unexpected ::= (a rule starts on a new line)");
    } else {
        fail_at(p, p->pos, BN_ERR_FORMAT, "unexpected %s", describe(p, p->pos, what, sizeof what));
    }
}

/* After parsing: every used name defined, and a root. Returns the root rule or -1. */
static int check_names(parser *p) {
    const name_entry *undefined = NULL;
    for (int i = 0; i < p->n_names; i++) {
        const name_entry *e = &p->names[i];
        if (e->defined_at == NO_OFFSET && (!undefined || e->first_use < undefined->first_use)) undefined = e;
    }
    if (undefined) {
        fail_at(p, undefined->first_use, BN_ERR_FORMAT, "undefined rule '%s'", undefined->name);
        return -1;
    }
    for (int i = 0; i < p->n_names; i++)
        if (!strcmp(p->names[i].name, "root")) return p->names[i].rule;
    p->status = bn_error_set(p->err, BN_ERR_FORMAT, "grammar: no rule named 'root' (the start rule)");
    return -1;
}

bn_status bn_gbnf_compile(const char *text, size_t len, bn_grammar **out, bn_error *err) {
    *out = NULL;
    if (!text && len) return bn_error_set(err, BN_ERR_INVALID, "grammar: no text");
    if (len > BN_GBNF_MAX_TEXT)
        return bn_error_set(err, BN_ERR_RANGE, "grammar: %zu bytes of text, above the limit of %d", len,
                            BN_GBNF_MAX_TEXT);
    parser p = {.text = text, .len = len, .err = err};
    check_text(&p);
    if (p.status != BN_OK) return p.status;
    bn_status st = bn_grammar_builder_new(&p.b, err);
    if (st != BN_OK) return st;
    p.names = calloc(BN_GBNF_MAX_RULES, sizeof *p.names);
    p.slots = malloc(NAME_SLOTS * sizeof *p.slots);
    if (!p.names || !p.slots) fail_nomem(&p);
    else memset(p.slots, 0xff, NAME_SLOTS * sizeof *p.slots);

    skip_space(&p, true);
    while (p.status == BN_OK && !at_end(&p)) {
        parse_rule(&p);
        skip_space(&p, true);
    }
    int root = p.status == BN_OK ? check_names(&p) : -1;

    for (int i = 0; i < p.n_names; i++) free(p.names[i].name);
    free(p.names);
    free(p.slots);
    free(p.lit);
    free(p.ranges);
    if (p.status != BN_OK) {
        bn_grammar_builder_free(p.b);
        return p.status;
    }
    return bn_grammar_builder_finish(p.b, root, out, err);
}
