/*
 * gbnf.h: llama.cpp's GBNF grammar language (llama-server's `grammar` request field) compiled
 * into a grammar (grammar.h).
 *
 * Syntax, as llama.cpp parses it:
 *   name ::= body                rules; names are [A-Za-z0-9_-]+; the start rule is `root`
 *   a b  |  c                    sequences and alternatives
 *   "text"                       a literal; escapes \n \r \t \\ \" \[ \] \xHH \uHHHH \UHHHHHHHH
 *   [a-z_] [^"\\] .              classes of code points (ranges, negation), any code point
 *   ( ... )                      groups
 *   x* x+ x? x{m} x{m,} x{m,n}   repetition of the item before (stackable: x{2}*, x?* is x*)
 *   # ...                        a comment to the end of the line
 * A rule ends at a newline, except inside parentheses and right after `::=` or `|` (so a line
 * may end with `|`, but not start with it). Escapes give code points, written as UTF-8. Rules may
 * be used before they are defined; a rule defined twice is an error. Left recursion (also through
 * rules that can match nothing, as in (x?)*) is refused by the grammar builder, as llama.cpp
 * refuses it. Not supported: llama.cpp's token references (<[id]>, <token>).
 *
 * Errors name the place: "grammar: line 3, column 7: undefined rule 'foo'".
 */
#ifndef BN_SAMPLING_GBNF_H
#define BN_SAMPLING_GBNF_H

#include "bitnet.h"
#include "sampling/grammar.h"

#include <stddef.h>

/* Limits: grammar text, distinct rule names, nesting of parentheses, and the sum of the counts
 * of all repetitions (each bounded repetition expands into that many rules). */
#define BN_GBNF_MAX_TEXT (64 * 1024)
#define BN_GBNF_MAX_RULES 4096
#define BN_GBNF_MAX_DEPTH 64
#define BN_GBNF_MAX_REPEAT_TOTAL 100000

/* Compiles the GBNF text[0..len) (UTF-8; it need not be NUL-terminated) with `root` as the start
 * rule. The caller owns *out (bn_grammar_free); *out is NULL on error. */
bn_status bn_gbnf_compile(const char *text, size_t len, bn_grammar **out, bn_error *err);

#endif
