/*
 * grammar.h: context-free grammars over bytes for constrained decoding, and the matcher that
 * tells, for every candidate token, whether its bytes keep the output a prefix of a sentence of the
 * grammar. Every constraint the server offers compiles to this one form: JSON Schema
 * (json_schema.h), llama.cpp's GBNF text (gbnf.h), regular expressions inside a schema's
 * `pattern` (grammar_regex.h) and the tool-call wrapper.
 *
 * The grammar: rules, each a list of alternatives; an alternative is a sequence of elements, each
 * either one byte out of a set of bytes or a reference to a rule. Text is UTF-8: a character class
 * over code points becomes a rule whose alternatives are byte sequences
 * (bn_grammar_add_codepoints). Repetition is written with rules (x ::= item x | empty: the
 * matcher handles right recursion in constant stack).
 *
 * A grammar is built with a builder (rules named or fresh, alternatives appended to) and frozen by
 * bn_grammar_builder_finish, which checks it: every rule defined, no left recursion (also none
 * through rules that can match nothing), every rule able to produce a finite text. It then knows
 * for every rule its shortest text, which gives each matcher state its shortest completion.
 *
 * The matcher is a set of stacks (a nondeterministic pushdown machine, as llama.cpp's grammar
 * sampler): each stack a path of positions in the grammar, stored as shared nodes (hash-consed, so
 * equal stacks are equal ids) whose `sum` is the length of the shortest text that empties the
 * stack. So the shortest completion of a state is a minimum over its stacks, without search.
 * Checking a token (bn_grammar_matcher_try) feeds its bytes and rolls everything back; the first
 * byte's result is cached per state, since most tokens of a vocabulary share few first bytes.
 */
#ifndef BN_SAMPLING_GRAMMAR_H
#define BN_SAMPLING_GRAMMAR_H

#include "bitnet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bn_grammar bn_grammar;
typedef struct bn_grammar_builder bn_grammar_builder;

/* ---------------------------------------------------------------- building */

/* A builder owns everything until bn_grammar_builder_finish (which frees it) or
 * bn_grammar_builder_free. Out of memory while adding is remembered and reported by finish, so
 * front ends need not check every call. */
bn_status bn_grammar_builder_new(bn_grammar_builder **out, bn_error *err);
void bn_grammar_builder_free(bn_grammar_builder *b);

/* The rule named `name` (created, with no alternatives yet, on first use); -1 out of memory.
 * Names are what error messages show. */
int bn_grammar_rule(bn_grammar_builder *b, const char *name);
/* A new rule named "<base>-<n>", never returned by bn_grammar_rule; -1 out of memory. */
int bn_grammar_fresh_rule(bn_grammar_builder *b, const char *base);
/* Starts a new, empty alternative of `rule` and returns its handle (for the add functions); an
 * alternative left empty matches the empty text. -1 out of memory. */
int bn_grammar_alt(bn_grammar_builder *b, int rule);
/* Whether the rule has at least one alternative (GBNF: "defined"). */
bool bn_grammar_rule_defined(const bn_grammar_builder *b, int rule);

/* Appends to alternative `alt`: one byte out of set (bit c of set[c / 64]) */
void bn_grammar_add_byteset(bn_grammar_builder *b, int alt, const uint64_t set[4]);
/* one byte in [lo, hi] */
void bn_grammar_add_byte_range(bn_grammar_builder *b, int alt, uint8_t lo, uint8_t hi);
/* the bytes s[0..n) in order */
void bn_grammar_add_literal(bn_grammar_builder *b, int alt, const char *s, size_t n);
/* a reference to a rule */
void bn_grammar_add_ref(bn_grammar_builder *b, int alt, int rule);

/* One code point out of a union of ranges ranges[2i]..ranges[2i+1] (inclusive, any order, may
 * overlap), or, with negate, any code point outside them. Surrogates (D800-DFFF) and code points
 * above 10FFFF are never matched. Appends a reference to a fresh rule of UTF-8 byte sequences. An
 * empty class is remembered as an error. */
void bn_grammar_add_codepoints(bn_grammar_builder *b, int alt, const uint32_t *ranges, size_t n_ranges,
                               bool negate);

/* Appends item{min,max} (max < 0: unbounded) of a rule: refs to helper rules, right recursive.
 * min and max are capped at BN_GRAMMAR_MAX_REPEAT (an error beyond). */
#define BN_GRAMMAR_MAX_REPEAT 10000
void bn_grammar_add_repeat(bn_grammar_builder *b, int alt, int item_rule, int min, int max);

/* (x{a,b}){c,d} as one x{a*c,b*d}, which is exact when a <= 1 (every count in between splits into
 * c to d parts of a to b); false (nothing changed) otherwise. Front ends merge stacked repetitions
 * with it: nested repetitions of what can match the empty text would be refused as left recursive
 * or expand slowly. Counts are -1 for unbounded. */
bool bn_grammar_merge_repeats(int *a, int *b, int c, int d);

/* UTF-8 for the front ends: the length (1 to 4) of the valid sequence at s[0..n) and its code point
 * in *cp, 0 when invalid (overlong, surrogate, above 10FFFF, truncated); and a code point's bytes
 * (returns their count). */
size_t bn_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
size_t bn_utf8_encode(uint32_t cp, uint8_t out[4]);

/* Records an error (the first one wins; finish reports it). Front ends use it for their own
 * messages so that one error path covers everything. */
void bn_grammar_builder_fail(bn_grammar_builder *b, bn_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool bn_grammar_builder_failed(const bn_grammar_builder *b);

/* Checks the grammar (see the top) and freezes it with `root` as the start rule. Frees the
 * builder in every case. The grammar is immutable afterwards (shareable by threads); the caller
 * frees it with bn_grammar_free. */
bn_status bn_grammar_builder_finish(bn_grammar_builder *b, int root, bn_grammar **out, bn_error *err);
void bn_grammar_free(bn_grammar *g);

/* Bytes of the shortest sentence. */
size_t bn_grammar_min_len(const bn_grammar *g);
size_t bn_grammar_n_rules(const bn_grammar *g);

/* ---------------------------------------------------------------- matching */

typedef struct bn_grammar_matcher bn_grammar_matcher;

/* A matcher at the start of the grammar (owned by the caller, one thread at a time). The grammar
 * must outlive it. */
bn_status bn_grammar_matcher_new(bn_grammar_matcher **out, const bn_grammar *g, bn_error *err);
void bn_grammar_matcher_free(bn_grammar_matcher *m);
void bn_grammar_matcher_reset(bn_grammar_matcher *m);

/* What the state after some bytes would be. */
typedef struct bn_grammar_outlook {
    bool ok;               /* the bytes continue a sentence */
    bool accepting;        /* the output could end here */
    bool can_continue;     /* more bytes could follow */
    size_t completion_len; /* bytes of the shortest completion (0 when accepting) */
} bn_grammar_outlook;

/* Feeds bytes to a copy of the state and reports the outcome; the matcher is unchanged. */
bn_grammar_outlook bn_grammar_matcher_try(bn_grammar_matcher *m, const uint8_t *bytes, size_t n);
/* Feeds bytes. false when they do not continue a sentence (or resources ran out): the state is
 * then unchanged. */
bool bn_grammar_matcher_accept(bn_grammar_matcher *m, const uint8_t *bytes, size_t n);
/* The current state. */
bn_grammar_outlook bn_grammar_matcher_outlook(const bn_grammar_matcher *m);
/* Whether the next byte could be c (cheap: the union of the stacks' byte sets). */
bool bn_grammar_matcher_allows_byte(const bn_grammar_matcher *m, uint8_t c);
/* Writes the shortest completion into buf (NUL-terminated, at most cap-1 bytes); returns its
 * length, or (size_t)-1 when it does not fit. Bytes are chosen printable where the grammar
 * allows (the lowest byte >= 0x20 of a set, else its lowest). */
size_t bn_grammar_matcher_completion(const bn_grammar_matcher *m, char *buf, size_t cap);

/* Limits: stacks alive at once and nodes in a matcher's store. A text that needs more is refused
 * (as an invalid continuation). */
#define BN_GRAMMAR_MAX_STACKS 4096
#define BN_GRAMMAR_MAX_NODES (1u << 24)

#endif
