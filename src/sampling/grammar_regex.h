/*
 * grammar_regex.h: a regular expression (JSON Schema `pattern`, a subset of ECMA-262 syntax)
 * compiled into a rule of a grammar builder (grammar.h).
 *
 * The rule matches whole strings of the pattern's language, as if anchored by ^ and $: that is a
 * subset of what an unanchored JSON Schema pattern accepts, so generated text still validates.
 * ^ at the start and $ at the end of the pattern (or of a top-level alternative) are accepted and
 * dropped; anywhere else they are refused.
 *
 * Supported: literal characters (UTF-8; code point semantics, as with ECMA's u flag); `.` (any
 * code point except the line terminators \n \r U+2028 U+2029); escapes \d \D \w \W (ASCII, as
 * ECMA defines them), \s (space, \t \n \v \f \r: the ASCII part of ECMA's \s, so a subset), \S
 * (everything outside ECMA's full \s, so again a subset), \n \t \r \f \v \0 \cX \xHH \uHHHH
 * (surrogate pairs combine) \u{H...}, and any escaped punctuation (\. \\ \/ \- ...); classes
 * [...] with ranges, negation and the escapes above (\b inside a class is backspace); groups
 * (...), (?:...), (?<name>...); alternation |; quantifiers * + ? {n} {n,} {n,m}, each with an
 * optional lazy ? (the language is the same). A lone { that does not start a quantifier, and lone
 * } and ], are literal characters (ECMA's Annex B).
 *
 * Refused with BN_ERR_UNSUPPORTED and a message naming the construct: backreferences (\1, \k<>),
 * lookahead and lookbehind ((?= (?! (?<= (?<!), word boundaries (\b \B), inline flags ((?i)),
 * possessive quantifiers (a*+), Unicode property escapes (\p{..}), POSIX classes ([[:alpha:]]),
 * \A \Z \z, octal escapes. Syntax errors (unbalanced parentheses, nothing to repeat, a class that
 * matches no character, ...) give BN_ERR_FORMAT; limits BN_ERR_RANGE. Messages read
 * "regex at offset 3: lookahead (?= is not supported".
 *
 * With BN_REGEX_JSON_STRING the rule matches the JSON string content (what stands between the
 * quotes) of the strings the pattern matches: ", \ and U+0000-U+001F appear as the escapes \" \\
 * \b \f \n \r \t or \u00xx (lowercase hex), every other character as its raw UTF-8. Classes and
 * `.` include control characters where the pattern says so, written as their escapes (so `.`
 * can produce \t or \u0001), never as raw bytes.
 */
#ifndef BN_SAMPLING_GRAMMAR_REGEX_H
#define BN_SAMPLING_GRAMMAR_REGEX_H

#include "bitnet.h"
#include "sampling/grammar.h"

/* The rule matches JSON string content (see above) instead of raw UTF-8 text. */
#define BN_REGEX_JSON_STRING 1u

/* Limits: pattern bytes, nesting of groups, and the sum of the counts of all quantifiers (each
 * bounded repetition expands into that many rules). */
#define BN_REGEX_MAX_PATTERN 4096
#define BN_REGEX_MAX_DEPTH 64
#define BN_REGEX_MAX_REPEAT_TOTAL 100000

/* Compiles the NUL-terminated `pattern` into a new rule of `b` whose id goes to *rule_out.
 * On error nothing has been added to the builder (but for running out of memory, which the
 * builder remembers as well). */
bn_status bn_grammar_regex(bn_grammar_builder *b, const char *pattern, unsigned flags, int *rule_out,
                           bn_error *err);

#endif
