/*
 * grammar.c: the grammar builder, its checks, and the matcher (see grammar.h).
 *
 * Layout of a frozen grammar: every alternative is a run of elements in one array, closed by an
 * END element; rest[e] is the length of the shortest text from element e to the END of its run.
 * A matcher node is (pos, parent): "match the elements from pos on, then continue with parent".
 * A head is a node whose pos is a byte set. A reference is expanded into one new node per
 * alternative of the rule, all sharing one continuation node (the element after the reference);
 * a reference that is the last element of its run continues directly with its own parent, so right
 * recursion does not grow the stack.
 */
#include "sampling/grammar.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { E_END = 0, E_SET, E_REF };
enum { NIL = -1 };
#define LEN_INF ((size_t)1 << 40)
/* Leftmost chains deeper than this are refused at build time (they are expanded recursively). */
#define MAX_LEFT_DEPTH 1000

typedef struct elem {
    int32_t kind;
    int32_t arg; /* E_SET: index of the set; E_REF: rule */
} elem;

typedef struct b_alt {
    elem *items;
    int n, cap;
} b_alt;

typedef struct b_rule {
    char *name;
    int *alts;
    int n_alts, cap_alts;
} b_rule;

struct bn_grammar_builder {
    b_rule *rules;
    int n_rules, cap_rules;
    b_alt *alts;
    int n_alts, cap_alts;
    uint64_t (*sets)[4];
    int n_sets, cap_sets;
    int fresh;
    bn_status failed;
    char message[BN_ERROR_MESSAGE_MAX];
};

struct bn_grammar {
    int n_rules;
    char **names;
    int *alt_first;   /* per rule: index of its first alternative in alt_pos */
    int *alt_count;
    int *alt_pos;     /* per alternative: its first element */
    elem *elems;
    int n_elems;
    uint64_t (*sets)[4];
    int n_sets;
    size_t *rest;     /* per element */
    size_t *min_len;  /* per rule */
    int *best_alt;    /* per rule: an alternative (index into alt_pos) of length min_len */
    int start;        /* element: a run [REF root, END] */
};

/* ---------------------------------------------------------------- builder */

static bool grow(void **p, int *cap, int need, size_t size) {
    if (need <= *cap) return true;
    int c = *cap ? *cap : 8;
    while (c < need) {
        if (c > (1 << 28)) return false;
        c *= 2;
    }
    void *q = realloc(*p, (size_t)c * size);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

void bn_grammar_builder_fail(bn_grammar_builder *b, bn_status status, const char *fmt, ...) {
    if (b->failed) return;
    b->failed = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->message, sizeof b->message, fmt, ap);
    va_end(ap);
}

bool bn_grammar_builder_failed(const bn_grammar_builder *b) { return b->failed != BN_OK; }

static void oom(bn_grammar_builder *b) { bn_grammar_builder_fail(b, BN_ERR_NOMEM, "out of memory building a grammar"); }

bn_status bn_grammar_builder_new(bn_grammar_builder **out, bn_error *err) {
    *out = calloc(1, sizeof **out);
    return *out ? BN_OK : bn_error_set(err, BN_ERR_NOMEM, "out of memory for a grammar");
}

void bn_grammar_builder_free(bn_grammar_builder *b) {
    if (!b) return;
    for (int i = 0; i < b->n_rules; i++) {
        free(b->rules[i].name);
        free(b->rules[i].alts);
    }
    for (int i = 0; i < b->n_alts; i++) free(b->alts[i].items);
    free(b->rules);
    free(b->alts);
    free(b->sets);
    free(b);
}

static int new_rule(bn_grammar_builder *b, const char *name) {
    if (b->n_rules >= (1 << 24) || !grow((void **)&b->rules, &b->cap_rules, b->n_rules + 1, sizeof *b->rules)) {
        oom(b);
        return -1;
    }
    b_rule *r = &b->rules[b->n_rules];
    memset(r, 0, sizeof *r);
    if (!(r->name = strdup(name))) {
        oom(b);
        return -1;
    }
    return b->n_rules++;
}

int bn_grammar_rule(bn_grammar_builder *b, const char *name) {
    for (int i = 0; i < b->n_rules; i++)
        if (!strcmp(b->rules[i].name, name)) return i;
    return new_rule(b, name);
}

int bn_grammar_fresh_rule(bn_grammar_builder *b, const char *base) {
    char name[96];
    /* '#' never appears in a name bn_grammar_rule is asked for (GBNF names are [A-Za-z0-9_-]) */
    snprintf(name, sizeof name, "%.64s#%d", base, ++b->fresh);
    return new_rule(b, name);
}

int bn_grammar_alt(bn_grammar_builder *b, int rule) {
    if (rule < 0 || rule >= b->n_rules) {
        bn_grammar_builder_fail(b, BN_ERR_STATE, "grammar: no rule %d", rule);
        return -1;
    }
    b_rule *r = &b->rules[rule];
    if (!grow((void **)&b->alts, &b->cap_alts, b->n_alts + 1, sizeof *b->alts) ||
        !grow((void **)&r->alts, &r->cap_alts, r->n_alts + 1, sizeof *r->alts)) {
        oom(b);
        return -1;
    }
    memset(&b->alts[b->n_alts], 0, sizeof(b_alt));
    r->alts[r->n_alts++] = b->n_alts;
    return b->n_alts++;
}

bool bn_grammar_rule_defined(const bn_grammar_builder *b, int rule) {
    return rule >= 0 && rule < b->n_rules && b->rules[rule].n_alts > 0;
}

static void add_elem(bn_grammar_builder *b, int alt, int kind, int arg) {
    if (alt < 0 || alt >= b->n_alts) {
        if (!b->failed) bn_grammar_builder_fail(b, BN_ERR_STATE, "grammar: no alternative %d", alt);
        return;
    }
    b_alt *a = &b->alts[alt];
    if (!grow((void **)&a->items, &a->cap, a->n + 1, sizeof *a->items)) {
        oom(b);
        return;
    }
    a->items[a->n++] = (elem){kind, arg};
}

void bn_grammar_add_byteset(bn_grammar_builder *b, int alt, const uint64_t set[4]) {
    if (!(set[0] | set[1] | set[2] | set[3])) {
        bn_grammar_builder_fail(b, BN_ERR_INVALID, "grammar: an empty set of characters can never match");
        return;
    }
    int found = -1;
    for (int i = b->n_sets - 1; i >= 0 && i >= b->n_sets - 64 && found < 0; i--)
        if (!memcmp(b->sets[i], set, sizeof b->sets[i])) found = i;
    if (found < 0) {
        if (!grow((void **)&b->sets, &b->cap_sets, b->n_sets + 1, sizeof *b->sets)) {
            oom(b);
            return;
        }
        memcpy(b->sets[b->n_sets], set, sizeof b->sets[0]);
        found = b->n_sets++;
    }
    add_elem(b, alt, E_SET, found);
}

void bn_grammar_add_byte_range(bn_grammar_builder *b, int alt, uint8_t lo, uint8_t hi) {
    uint64_t set[4] = {0};
    for (unsigned c = lo; c <= hi; c++) set[c / 64] |= 1ull << (c % 64);
    bn_grammar_add_byteset(b, alt, set);
}

void bn_grammar_add_literal(bn_grammar_builder *b, int alt, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) bn_grammar_add_byte_range(b, alt, (uint8_t)s[i], (uint8_t)s[i]);
}

void bn_grammar_add_ref(bn_grammar_builder *b, int alt, int rule) {
    if (rule < 0 || rule >= b->n_rules) {
        if (!b->failed) bn_grammar_builder_fail(b, BN_ERR_STATE, "grammar: reference to no rule");
        return;
    }
    add_elem(b, alt, E_REF, rule);
}

void bn_grammar_add_repeat(bn_grammar_builder *b, int alt, int item, int min, int max) {
    if (min < 0 || min > BN_GRAMMAR_MAX_REPEAT || max > BN_GRAMMAR_MAX_REPEAT || (max >= 0 && max < min)) {
        bn_grammar_builder_fail(b, BN_ERR_INVALID, "grammar: repetition {%d,%d} out of range (at most %d)", min,
                                max, BN_GRAMMAR_MAX_REPEAT);
        return;
    }
    for (int i = 0; i < min; i++) bn_grammar_add_ref(b, alt, item);
    if (max == min) return;
    const char *base = item >= 0 && item < b->n_rules ? b->rules[item].name : "item";
    if (max < 0) { /* star ::= item star | empty */
        int star = bn_grammar_fresh_rule(b, base);
        if (star < 0) return;
        int a = bn_grammar_alt(b, star);
        bn_grammar_add_ref(b, a, item);
        bn_grammar_add_ref(b, a, star);
        bn_grammar_alt(b, star);
        bn_grammar_add_ref(b, alt, star);
        return;
    }
    /* opt_k ::= item opt_(k-1) | empty, opt_1 ::= item | empty */
    int prev = -1;
    for (int k = 1; k <= max - min; k++) {
        int opt = bn_grammar_fresh_rule(b, base);
        if (opt < 0) return;
        int a = bn_grammar_alt(b, opt);
        bn_grammar_add_ref(b, a, item);
        if (prev >= 0) bn_grammar_add_ref(b, a, prev);
        bn_grammar_alt(b, opt);
        prev = opt;
    }
    bn_grammar_add_ref(b, alt, prev);
}

/* ---- code point classes to UTF-8 byte sequences */

static int utf8_len(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

size_t bn_utf8_encode(uint32_t cp, uint8_t out[4]) {
    size_t n = (size_t)utf8_len(cp);
    if (n == 1) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    for (size_t i = n - 1; i > 0; i--) {
        out[i] = (uint8_t)(0x80 | (cp & 0x3f));
        cp >>= 6;
    }
    out[0] = (uint8_t)((n == 2 ? 0xc0 : n == 3 ? 0xe0 : 0xf0) | cp);
    return n;
}

size_t bn_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (len == 0 || c > 0xf4 || len > n) return 0;
    uint32_t v = c & (0x3f >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    static const uint32_t min_of_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min_of_len[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

bool bn_grammar_merge_repeats(int *a, int *b, int c, int d) {
    if (*a > 1) return false;
    long max = *b == 0 || d == 0 ? 0 : *b < 0 || d < 0 ? -1 : (long)*b * d;
    if (max > BN_GRAMMAR_MAX_REPEAT) return false;
    *a = *a * c;
    *b = (int)max;
    return true;
}

/* One alternative per block of code points [lo, hi] whose UTF-8 forms differ only in byte ranges. */
static void utf8_split(bn_grammar_builder *b, int rule, uint32_t lo, uint32_t hi) {
    if (lo > hi || b->failed) return;
    static const uint32_t len_max[] = {0x7f, 0x7ff, 0xffff};
    for (int i = 0; i < 3; i++)
        if (lo <= len_max[i] && hi > len_max[i]) {
            utf8_split(b, rule, lo, len_max[i]);
            utf8_split(b, rule, len_max[i] + 1, hi);
            return;
        }
    int n = utf8_len(lo);
    for (int i = 1; i < n; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if (lo & m) {
                utf8_split(b, rule, lo, lo | m);
                utf8_split(b, rule, (lo | m) + 1, hi);
                return;
            }
            if ((hi & m) != m) {
                utf8_split(b, rule, lo, (hi & ~m) - 1);
                utf8_split(b, rule, hi & ~m, hi);
                return;
            }
        }
    }
    uint8_t a[4], z[4];
    bn_utf8_encode(lo, a);
    bn_utf8_encode(hi, z);
    int alt = bn_grammar_alt(b, rule);
    for (int i = 0; i < n; i++) bn_grammar_add_byte_range(b, alt, a[i], z[i]);
}

static int compare_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void bn_grammar_add_codepoints(bn_grammar_builder *b, int alt, const uint32_t *ranges, size_t n_ranges,
                               bool negate) {
    if (b->failed) return;
    /* normalize into sorted, merged [lo, hi] pairs within 0..10FFFF */
    uint32_t *r = malloc((n_ranges + 3) * 2 * sizeof *r);
    if (!r) {
        oom(b);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < n_ranges; i++) {
        uint32_t lo = ranges[2 * i], hi = ranges[2 * i + 1];
        if (lo > hi) {
            uint32_t t = lo;
            lo = hi;
            hi = t;
        }
        if (lo > 0x10ffff) continue;
        if (hi > 0x10ffff) hi = 0x10ffff;
        r[2 * n] = lo;
        r[2 * n + 1] = hi;
        n++;
    }
    qsort(r, n, 2 * sizeof *r, compare_u32);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && r[2 * i] <= r[2 * m - 1] + 1) {
            if (r[2 * i + 1] > r[2 * m - 1]) r[2 * m - 1] = r[2 * i + 1];
        } else {
            r[2 * m] = r[2 * i];
            r[2 * m + 1] = r[2 * i + 1];
            m++;
        }
    }
    if (negate) { /* complement within 0..10FFFF */
        uint32_t *c = malloc((m + 1) * 2 * sizeof *c);
        if (!c) {
            free(r);
            oom(b);
            return;
        }
        size_t k = 0;
        uint32_t next = 0;
        for (size_t i = 0; i < m; i++) {
            if (r[2 * i] > next) c[2 * k] = next, c[2 * k + 1] = r[2 * i] - 1, k++;
            next = r[2 * i + 1] + 1;
        }
        if (next <= 0x10ffff) c[2 * k] = next, c[2 * k + 1] = 0x10ffff, k++;
        free(r);
        r = c;
        m = k;
    }
    int rule = bn_grammar_fresh_rule(b, "char");
    bool any = false;
    for (size_t i = 0; i < m && rule >= 0; i++) {
        uint32_t lo = r[2 * i], hi = r[2 * i + 1];
        /* surrogates are not characters */
        if (lo < 0xd800 && hi >= 0xd800) {
            utf8_split(b, rule, lo, 0xd7ff);
            any = true;
            lo = 0xe000;
        } else if (lo >= 0xd800 && lo <= 0xdfff) {
            lo = 0xe000;
        }
        if (lo <= hi) {
            utf8_split(b, rule, lo, hi);
            any = true;
        }
    }
    free(r);
    if (rule < 0) return;
    if (!any) {
        bn_grammar_builder_fail(b, BN_ERR_INVALID, "grammar: a character class that matches no character");
        return;
    }
    bn_grammar_add_ref(b, alt, rule);
}

/* ---------------------------------------------------------------- finishing */

void bn_grammar_free(bn_grammar *g) {
    if (!g) return;
    for (int i = 0; i < g->n_rules; i++) free(g->names[i]);
    free(g->names);
    free(g->alt_first);
    free(g->alt_count);
    free(g->alt_pos);
    free(g->elems);
    free(g->sets);
    free(g->rest);
    free(g->min_len);
    free(g->best_alt);
    free(g);
}

size_t bn_grammar_min_len(const bn_grammar *g) { return g->rest[g->start]; }
size_t bn_grammar_n_rules(const bn_grammar *g) { return (size_t)g->n_rules; }

static size_t add_len(size_t a, size_t b) { return a >= LEN_INF || b >= LEN_INF || a + b >= LEN_INF ? LEN_INF : a + b; }

/* Lengths of the alternatives' suffixes from the current rule lengths; returns whether any rule's
 * length went down. */
static bool relax(bn_grammar *g) {
    bool changed = false;
    for (int r = 0; r < g->n_rules; r++)
        for (int k = 0; k < g->alt_count[r]; k++) {
            int a = g->alt_first[r] + k, p = g->alt_pos[a];
            int end = p;
            while (g->elems[end].kind != E_END) end++;
            size_t len = 0;
            g->rest[end] = 0;
            for (int e = end - 1; e >= p; e--) {
                size_t l = g->elems[e].kind == E_SET ? 1 : g->min_len[g->elems[e].arg];
                len = add_len(len, l);
                g->rest[e] = len;
            }
            if (len < g->min_len[r]) {
                g->min_len[r] = len;
                g->best_alt[r] = a;
                changed = true;
            }
        }
    return changed;
}

/* Longest chain of leftmost references from rule r (-1: a cycle, i.e. left recursion). */
static int left_depth(const bn_grammar *g, int r, int *memo, uint8_t *state, int *culprit) {
    if (state[r] == 2) return memo[r];
    if (state[r] == 1) {
        *culprit = r;
        return -1;
    }
    state[r] = 1;
    int best = 0;
    for (int k = 0; k < g->alt_count[r]; k++)
        for (int e = g->alt_pos[g->alt_first[r] + k]; g->elems[e].kind == E_REF; e++) {
            int s = g->elems[e].arg;
            int d = left_depth(g, s, memo, state, culprit);
            if (d < 0) return -1;
            if (d + 1 > best) best = d + 1;
            if (g->min_len[s] != 0) break;
        }
    state[r] = 2;
    memo[r] = best;
    return best;
}

bn_status bn_grammar_builder_finish(bn_grammar_builder *b, int root, bn_grammar **out, bn_error *err) {
    *out = NULL;
    bn_status st = BN_OK;
    if (b->failed) st = bn_error_set(err, b->failed, "%s", b->message);
    else if (root < 0 || root >= b->n_rules) st = bn_error_set(err, BN_ERR_INVALID, "grammar: no start rule");
    for (int r = 0; !st && r < b->n_rules; r++)
        if (b->rules[r].n_alts == 0)
            st = bn_error_set(err, BN_ERR_INVALID, "grammar: rule '%s' is not defined", b->rules[r].name);
    bn_grammar *g = st ? NULL : calloc(1, sizeof *g);
    if (!st && !g) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory for a grammar");
    if (st) {
        bn_grammar_builder_free(b);
        return st;
    }
    size_t n_elems = 3;
    for (int a = 0; a < b->n_alts; a++) n_elems += (size_t)b->alts[a].n + 1;
    g->n_rules = b->n_rules;
    g->names = calloc((size_t)b->n_rules, sizeof *g->names);
    g->alt_first = calloc((size_t)b->n_rules, sizeof *g->alt_first);
    g->alt_count = calloc((size_t)b->n_rules, sizeof *g->alt_count);
    g->alt_pos = calloc((size_t)b->n_alts + 1, sizeof *g->alt_pos);
    g->elems = calloc(n_elems, sizeof *g->elems);
    g->rest = calloc(n_elems, sizeof *g->rest);
    g->min_len = calloc((size_t)b->n_rules, sizeof *g->min_len);
    g->best_alt = calloc((size_t)b->n_rules, sizeof *g->best_alt);
    if (n_elems > INT32_MAX || !g->names || !g->alt_first || !g->alt_count || !g->alt_pos || !g->elems ||
        !g->rest || !g->min_len || !g->best_alt) {
        bn_grammar_free(g);
        bn_grammar_builder_free(b);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory for a grammar");
    }
    /* lay out the alternatives rule by rule */
    int e = 0, a_out = 0;
    for (int r = 0; r < b->n_rules; r++) {
        g->names[r] = b->rules[r].name;
        b->rules[r].name = NULL;
        g->alt_first[r] = a_out;
        g->alt_count[r] = b->rules[r].n_alts;
        for (int k = 0; k < b->rules[r].n_alts; k++) {
            const b_alt *src = &b->alts[b->rules[r].alts[k]];
            g->alt_pos[a_out++] = e;
            for (int i = 0; i < src->n; i++) g->elems[e++] = src->items[i];
            g->elems[e++] = (elem){E_END, 0};
        }
        g->min_len[r] = LEN_INF;
        g->best_alt[r] = g->alt_first[r];
    }
    g->start = e;
    g->elems[e++] = (elem){E_REF, root};
    g->elems[e++] = (elem){E_END, 0};
    g->n_elems = e;
    g->sets = b->sets;
    g->n_sets = b->n_sets;
    b->sets = NULL;
    bn_grammar_builder_free(b);

    while (relax(g)) {}
    for (int r = 0; r < g->n_rules; r++)
        if (g->min_len[r] >= LEN_INF) {
            st = bn_error_set(err, BN_ERR_INVALID,
                              "grammar: rule '%s' can never end (every alternative refers back to it)", g->names[r]);
            break;
        }
    if (!st) {
        g->rest[g->start + 1] = 0;
        g->rest[g->start] = g->min_len[root];
        int *memo = calloc((size_t)g->n_rules, sizeof *memo);
        uint8_t *state = calloc((size_t)g->n_rules, 1);
        if (!memo || !state) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory for a grammar");
        for (int r = 0; !st && r < g->n_rules; r++) {
            int culprit = r;
            int d = left_depth(g, r, memo, state, &culprit);
            if (d < 0)
                st = bn_error_set(err, BN_ERR_INVALID, "grammar: rule '%s' is left recursive (it can start with itself)",
                                  g->names[culprit]);
            else if (d > MAX_LEFT_DEPTH)
                st = bn_error_set(err, BN_ERR_INVALID, "grammar: rule '%s' nests more than %d rules at its start",
                                  g->names[r], MAX_LEFT_DEPTH);
        }
        free(memo);
        free(state);
    }
    if (st) {
        bn_grammar_free(g);
        return st;
    }
    *out = g;
    return BN_OK;
}

/* ---------------------------------------------------------------- matcher */

typedef struct node {
    int32_t pos;
    int32_t parent;
    size_t sum; /* shortest text that empties this stack */
} node;

typedef struct head_list {
    int32_t *ids;
    int n, cap;
    bool accepting;
    bool overflow;
} head_list;

struct bn_grammar_matcher {
    const bn_grammar *g;
    node *nodes;
    uint32_t *chain;    /* per node: the next node in its hash bucket */
    uint32_t *seen;     /* per node: stamp of the last head list it joined */
    uint32_t n_nodes, cap_nodes;
    uint32_t *buckets;  /* node id + 1; 0: empty */
    uint32_t n_buckets;
    uint32_t stamp;
    bool exhausted;
    /* (pos, parent) pairs expanded during the current step (stamp): each is expanded once, so
     * nested empty-matching alternatives cost linear, not exponential, time */
    int64_t *visit_key;
    uint32_t *visit_stamp;
    uint32_t visit_cap, visit_count, visit_count_stamp;
    head_list now;      /* the state */
    uint64_t first[4];  /* union of the heads' byte sets */
    head_list scratch[2];
    /* first-byte cache: heads after byte c from `now`, kept in `pool` */
    uint32_t state_mark;
    int32_t cache_off[256], cache_n[256];
    uint8_t cache_flags[256]; /* 1: filled, 2: accepting */
    int32_t *pool;
    int pool_n, pool_cap;
};

static inline bool set_has(const uint64_t *set, uint8_t c) { return (set[c / 64] >> (c % 64)) & 1; }

static uint32_t node_hash(int32_t pos, int32_t parent) {
    uint64_t h = (uint64_t)(uint32_t)pos * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uint32_t)parent * 0xC2B2AE3D27D4EB4Full;
    return (uint32_t)(h >> 32);
}

static bool rehash(bn_grammar_matcher *m, uint32_t n_buckets) {
    uint32_t *buckets = calloc(n_buckets, sizeof *buckets);
    if (!buckets) return false;
    free(m->buckets);
    m->buckets = buckets;
    m->n_buckets = n_buckets;
    for (uint32_t i = 0; i < m->n_nodes; i++) { /* in id order: later ids head their chains */
        uint32_t b = node_hash(m->nodes[i].pos, m->nodes[i].parent) & (n_buckets - 1);
        m->chain[i] = m->buckets[b];
        m->buckets[b] = i + 1;
    }
    return true;
}

/* The node (pos, parent), made once; -1 when the store is full. */
static int32_t intern(bn_grammar_matcher *m, int32_t pos, int32_t parent) {
    uint32_t b = node_hash(pos, parent) & (m->n_buckets - 1);
    for (uint32_t i = m->buckets[b]; i; i = m->chain[i - 1])
        if (m->nodes[i - 1].pos == pos && m->nodes[i - 1].parent == parent) return (int32_t)(i - 1);
    if (m->n_nodes == m->cap_nodes) {
        if (m->cap_nodes >= BN_GRAMMAR_MAX_NODES) {
            m->exhausted = true;
            return -1;
        }
        uint32_t cap = m->cap_nodes * 2;
        node *nodes = realloc(m->nodes, cap * sizeof *nodes);
        if (nodes) m->nodes = nodes;
        uint32_t *chain = nodes ? realloc(m->chain, cap * sizeof *chain) : NULL;
        if (chain) m->chain = chain;
        uint32_t *seen = chain ? realloc(m->seen, cap * sizeof *seen) : NULL;
        if (!seen) {
            m->exhausted = true;
            return -1;
        }
        memset(seen + m->cap_nodes, 0, (cap - m->cap_nodes) * sizeof *seen);
        m->seen = seen;
        m->cap_nodes = cap;
    }
    uint32_t id = m->n_nodes++;
    const bn_grammar *g = m->g;
    m->nodes[id] = (node){pos, parent, add_len(g->rest[pos], parent == NIL ? 0 : m->nodes[parent].sum)};
    m->seen[id] = 0;
    m->chain[id] = m->buckets[b];
    m->buckets[b] = id + 1;
    if (m->n_nodes > m->n_buckets - m->n_buckets / 4 && m->n_buckets < (1u << 30)) /* load 3/4 */
        rehash(m, m->n_buckets * 2); /* failure only makes chains longer */
    return (int32_t)id;
}

/* Drops every node made after `mark` (they were made last, so they head their chains). */
static void rollback(bn_grammar_matcher *m, uint32_t mark) {
    while (m->n_nodes > mark) {
        uint32_t id = --m->n_nodes;
        uint32_t b = node_hash(m->nodes[id].pos, m->nodes[id].parent) & (m->n_buckets - 1);
        m->buckets[b] = m->chain[id];
    }
}

static void push_head(bn_grammar_matcher *m, head_list *out, int32_t id) {
    if (m->seen[id] == m->stamp) return;
    if (out->n == BN_GRAMMAR_MAX_STACKS) {
        out->overflow = true;
        return;
    }
    if (out->n == out->cap) {
        int cap = out->cap ? out->cap * 2 : 16;
        int32_t *ids = realloc(out->ids, (size_t)cap * sizeof *ids);
        if (!ids) {
            out->overflow = true;
            return;
        }
        out->ids = ids;
        out->cap = cap;
    }
    m->seen[id] = m->stamp;
    out->ids[out->n++] = id;
}

/* Whether (pos, parent) was expanded already in this step; marks it. Out of memory: false (the
 * pair is then expanded again, which is only slower). */
static bool visited(bn_grammar_matcher *m, int32_t pos, int32_t parent) {
    if (m->visit_count_stamp != m->stamp) m->visit_count = 0, m->visit_count_stamp = m->stamp;
    if (2 * (m->visit_count + 1) > m->visit_cap) {
        uint32_t cap = m->visit_cap ? m->visit_cap * 2 : 1024;
        int64_t *keys = malloc(cap * sizeof *keys);
        uint32_t *stamps = calloc(cap, sizeof *stamps);
        if (!keys || !stamps || cap > (1u << 28)) {
            free(keys);
            free(stamps);
            return false;
        }
        for (uint32_t i = 0; i < m->visit_cap; i++) { /* keep this step's entries */
            if (m->visit_stamp[i] != m->stamp) continue;
            uint32_t h = (uint32_t)((uint64_t)m->visit_key[i] * 0x9E3779B97F4A7C15ull >> 32) & (cap - 1);
            while (stamps[h] == m->stamp) h = (h + 1) & (cap - 1);
            keys[h] = m->visit_key[i];
            stamps[h] = m->stamp;
        }
        free(m->visit_key);
        free(m->visit_stamp);
        m->visit_key = keys;
        m->visit_stamp = stamps;
        m->visit_cap = cap;
    }
    int64_t key = (int64_t)pos << 32 | (uint32_t)parent;
    uint32_t h = (uint32_t)((uint64_t)key * 0x9E3779B97F4A7C15ull >> 32) & (m->visit_cap - 1);
    for (; m->visit_stamp[h] == m->stamp; h = (h + 1) & (m->visit_cap - 1))
        if (m->visit_key[h] == key) return true;
    m->visit_key[h] = key;
    m->visit_stamp[h] = m->stamp;
    m->visit_count++;
    return false;
}

/* Adds to `out` the heads reached from "match from pos, then parent": references expanded, ends
 * of runs popped. */
static void expand(bn_grammar_matcher *m, int32_t pos, int32_t parent, head_list *out, int depth) {
    const bn_grammar *g = m->g;
    for (;;) {
        if (visited(m, pos, parent)) return;
        const elem *e = &g->elems[pos];
        if (e->kind == E_END) {
            if (parent == NIL) {
                out->accepting = true;
                return;
            }
            pos = m->nodes[parent].pos;
            parent = m->nodes[parent].parent;
            continue;
        }
        if (e->kind == E_SET) {
            int32_t id = intern(m, pos, parent);
            if (id < 0) out->overflow = true;
            else push_head(m, out, id);
            return;
        }
        break;
    }
    if (depth > MAX_LEFT_DEPTH + 8) { /* cannot happen in a checked grammar */
        out->overflow = true;
        return;
    }
    const elem *e = &g->elems[pos];
    int32_t cont = parent;
    if (g->elems[pos + 1].kind != E_END) {
        cont = intern(m, pos + 1, parent);
        if (cont < 0) {
            out->overflow = true;
            return;
        }
    }
    int r = e->arg;
    for (int k = 0; k < g->alt_count[r] && !out->overflow; k++)
        expand(m, g->alt_pos[g->alt_first[r] + k], cont, out, depth + 1);
}

/* A new stamp for the next step (0 stays "never"). */
static void next_stamp(bn_grammar_matcher *m) {
    if (++m->stamp == 0) { /* wrapped: forget every stamp */
        memset(m->seen, 0, m->cap_nodes * sizeof *m->seen);
        if (m->visit_stamp) memset(m->visit_stamp, 0, m->visit_cap * sizeof *m->visit_stamp);
        m->stamp = 1;
    }
}

/* out = the heads after byte c from `in`. */
static void step(bn_grammar_matcher *m, const int32_t *in, int n_in, uint8_t c, head_list *out) {
    out->n = 0;
    out->accepting = false;
    out->overflow = false;
    next_stamp(m);
    const bn_grammar *g = m->g;
    for (int i = 0; i < n_in && !out->overflow; i++) {
        const node *nd = &m->nodes[in[i]];
        if (set_has(g->sets[g->elems[nd->pos].arg], c)) expand(m, nd->pos + 1, nd->parent, out, 0);
    }
}

static size_t min_sum(const bn_grammar_matcher *m, const head_list *h) {
    if (h->accepting) return 0;
    size_t best = LEN_INF;
    for (int i = 0; i < h->n; i++)
        if (m->nodes[h->ids[i]].sum < best) best = m->nodes[h->ids[i]].sum;
    return best;
}

static bn_grammar_outlook outlook_of(const bn_grammar_matcher *m, const head_list *h) {
    bn_grammar_outlook o = {0};
    o.ok = !h->overflow && (h->n > 0 || h->accepting);
    if (!o.ok) return o;
    o.accepting = h->accepting;
    o.can_continue = h->n > 0;
    o.completion_len = min_sum(m, h);
    return o;
}

static void state_changed(bn_grammar_matcher *m) {
    const bn_grammar *g = m->g;
    memset(m->first, 0, sizeof m->first);
    for (int i = 0; i < m->now.n; i++) {
        const uint64_t *set = g->sets[g->elems[m->nodes[m->now.ids[i]].pos].arg];
        for (int k = 0; k < 4; k++) m->first[k] |= set[k];
    }
    memset(m->cache_flags, 0, sizeof m->cache_flags);
    m->pool_n = 0;
    m->state_mark = m->n_nodes;
}

static void copy_heads(head_list *dst, const head_list *src, bool *ok) {
    if (dst->cap < src->n) {
        int32_t *ids = realloc(dst->ids, (size_t)src->n * sizeof *ids);
        if (!ids) {
            *ok = false;
            return;
        }
        dst->ids = ids;
        dst->cap = src->n;
    }
    if (src->n) memcpy(dst->ids, src->ids, (size_t)src->n * sizeof *dst->ids);
    dst->n = src->n;
    dst->accepting = src->accepting;
    dst->overflow = src->overflow;
}

void bn_grammar_matcher_reset(bn_grammar_matcher *m) {
    rollback(m, 0);
    m->exhausted = false;
    next_stamp(m);
    m->now.n = 0;
    m->now.accepting = false;
    m->now.overflow = false;
    expand(m, m->g->start, NIL, &m->now, 0);
    state_changed(m);
}

void bn_grammar_matcher_free(bn_grammar_matcher *m) {
    if (!m) return;
    free(m->nodes);
    free(m->chain);
    free(m->seen);
    free(m->buckets);
    free(m->now.ids);
    free(m->scratch[0].ids);
    free(m->scratch[1].ids);
    free(m->pool);
    free(m->visit_key);
    free(m->visit_stamp);
    free(m);
}

bn_status bn_grammar_matcher_new(bn_grammar_matcher **out, const bn_grammar *g, bn_error *err) {
    *out = NULL;
    bn_grammar_matcher *m = calloc(1, sizeof *m);
    if (!m) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for a grammar matcher");
    m->g = g;
    m->cap_nodes = 1024;
    m->nodes = malloc(m->cap_nodes * sizeof *m->nodes);
    m->chain = malloc(m->cap_nodes * sizeof *m->chain);
    m->seen = calloc(m->cap_nodes, sizeof *m->seen);
    if (!m->nodes || !m->chain || !m->seen || !rehash(m, 2048)) {
        bn_grammar_matcher_free(m);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory for a grammar matcher");
    }
    bn_grammar_matcher_reset(m);
    if (m->now.overflow) {
        bn_grammar_matcher_free(m);
        return bn_error_set(err, BN_ERR_NOMEM, "grammar: the start state needs more than %d stacks",
                            BN_GRAMMAR_MAX_STACKS);
    }
    *out = m;
    return BN_OK;
}

/* The heads after the first byte c of the state (cached until the state changes). */
static bool first_step(bn_grammar_matcher *m, uint8_t c, const int32_t **ids, int *n, bool *accepting) {
    if (!(m->cache_flags[c] & 1)) {
        head_list *h = &m->scratch[0];
        step(m, m->now.ids, m->now.n, c, h);
        if (h->overflow) return false;
        if (m->pool_n + h->n > m->pool_cap) {
            int cap = m->pool_cap ? m->pool_cap : 256;
            while (cap < m->pool_n + h->n) cap *= 2;
            int32_t *pool = realloc(m->pool, (size_t)cap * sizeof *pool);
            if (!pool) return false;
            m->pool = pool;
            m->pool_cap = cap;
        }
        if (h->n) memcpy(m->pool + m->pool_n, h->ids, (size_t)h->n * sizeof *h->ids);
        m->cache_off[c] = m->pool_n;
        m->cache_n[c] = h->n;
        m->cache_flags[c] = (uint8_t)(1 | (h->accepting ? 2 : 0));
        m->pool_n += h->n;
    }
    *ids = m->pool ? m->pool + m->cache_off[c] : NULL; /* NULL: no head (nothing pooled yet) */
    *n = m->cache_n[c];
    *accepting = m->cache_flags[c] & 2;
    return true;
}

bn_grammar_outlook bn_grammar_matcher_try(bn_grammar_matcher *m, const uint8_t *bytes, size_t n) {
    bn_grammar_outlook fail = {0};
    if (n == 0) return outlook_of(m, &m->now);
    if (!set_has(m->first, bytes[0])) return fail;
    const int32_t *ids;
    int n_ids;
    bool accepting;
    if (!first_step(m, bytes[0], &ids, &n_ids, &accepting)) return fail;
    if (n == 1) {
        head_list h = {(int32_t *)ids, n_ids, n_ids, accepting, false};
        return outlook_of(m, &h);
    }
    uint32_t mark = m->n_nodes;
    head_list *cur = NULL;
    bool ok = true;
    for (size_t i = 1; i < n && ok; i++) {
        if ((cur ? cur->n : n_ids) == 0) { /* nothing can follow an emptied stack */
            ok = false;
            break;
        }
        head_list *next = &m->scratch[i & 1];
        step(m, cur ? cur->ids : ids, cur ? cur->n : n_ids, bytes[i], next);
        cur = next;
        ok = !cur->overflow;
    }
    bn_grammar_outlook o = ok ? outlook_of(m, cur) : fail;
    rollback(m, mark);
    return o;
}

bool bn_grammar_matcher_accept(bn_grammar_matcher *m, const uint8_t *bytes, size_t n) {
    if (n == 0) return true;
    rollback(m, m->state_mark); /* the cache's nodes */
    uint32_t mark = m->n_nodes;
    head_list *cur = &m->now;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        head_list *next = &m->scratch[i & 1];
        step(m, cur->ids, cur->n, bytes[i], next);
        cur = next;
        ok = !cur->overflow && (cur->n > 0 || (cur->accepting && i + 1 == n));
    }
    if (ok) copy_heads(&m->now, cur, &ok);
    if (!ok) rollback(m, mark);
    state_changed(m);
    return ok;
}

bn_grammar_outlook bn_grammar_matcher_outlook(const bn_grammar_matcher *m) { return outlook_of(m, &m->now); }

bool bn_grammar_matcher_allows_byte(const bn_grammar_matcher *m, uint8_t c) { return set_has(m->first, c); }

static uint8_t pick_byte(const uint64_t *set) {
    for (unsigned c = 0x20; c < 0x7f; c++)
        if (set_has(set, (uint8_t)c)) return (uint8_t)c;
    for (unsigned c = 0; c < 256; c++)
        if (set_has(set, (uint8_t)c)) return (uint8_t)c;
    return 0;
}

/* Appends the shortest text of elements from pos to the end of its run. */
static bool emit_run(const bn_grammar *g, int pos, char *buf, size_t cap, size_t *len, int depth) {
    if (depth > 100000) return false;
    for (; g->elems[pos].kind != E_END; pos++) {
        const elem *e = &g->elems[pos];
        if (e->kind == E_SET) {
            if (*len + 1 >= cap) return false;
            buf[(*len)++] = (char)pick_byte(g->sets[e->arg]);
        } else if (!emit_run(g, g->alt_pos[g->best_alt[e->arg]], buf, cap, len, depth + 1)) {
            return false;
        }
    }
    return true;
}

size_t bn_grammar_matcher_completion(const bn_grammar_matcher *m, char *buf, size_t cap) {
    if (cap == 0) return (size_t)-1;
    buf[0] = '\0';
    if (m->now.accepting || m->now.n == 0) return 0;
    int32_t best = m->now.ids[0];
    for (int i = 1; i < m->now.n; i++)
        if (m->nodes[m->now.ids[i]].sum < m->nodes[best].sum) best = m->now.ids[i];
    size_t len = 0;
    for (int32_t id = best; id != NIL; id = m->nodes[id].parent)
        if (!emit_run(m->g, m->nodes[id].pos, buf, cap, &len, 0)) {
            buf[0] = '\0';
            return (size_t)-1;
        }
    buf[len] = '\0';
    return len;
}
