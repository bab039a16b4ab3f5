/*
 * gguf_internal.h: helpers shared by the GGUF reader and writer (not part of the public
 * interface): UTF-8 validation of keys and names, and quoting of untrusted names for one-line
 * error messages.
 */
#ifndef BN_GGUF_INTERNAL_H
#define BN_GGUF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when s[0..len) is well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF).
 * *bad_at (when non-NULL) gets the byte index of the first bad byte. */
bool bn_gguf_utf8_valid(const char *s, uint64_t len, uint64_t *bad_at);

/* Writes a printable rendering of s[0..len) into dst (always NUL-terminated): control bytes,
 * quotes, backslashes and (when s is not valid UTF-8) bytes >= 0x80 become \xNN; long names are
 * cut with "...". Keeps error messages on one line whatever the file contains. */
void bn_gguf_quote(char *dst, size_t cap, const char *s, uint64_t len);

#endif
