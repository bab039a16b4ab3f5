/*
 * gguf_quote.c: a string from a file made safe to print in a message (bn_gguf_string_quote,
 * gguf.h).
 *
 * Design: a hostile file can put anything in a string it stores (escape sequences that move a
 * terminal's cursor, newlines that forge log lines, megabytes of text). Every message that shows
 * such a string goes through here: bytes below 0x20, DEL and backslash are written as C escapes
 * (\n, \t, \\, \xNN), other bytes (UTF-8 included) as they are, and a string longer than the
 * buffer ends in "...". The result is always NUL-terminated.
 */
#include "gguf/gguf.h"

#include <stdio.h>
#include <string.h>

/* The escape of byte c (without the backslash) into out; its length (0: printed as is). */
static int escape_of(unsigned char c, char out[4]) {
    switch (c) {
    case '\n': return out[0] = 'n', 1;
    case '\t': return out[0] = 't', 1;
    case '\r': return out[0] = 'r', 1;
    case '\\': return out[0] = '\\', 1;
    default:
        if (c >= 0x20 && c != 0x7f) return 0;
        snprintf(out, 4, "x%02x", c);
        return 3;
    }
}

const char *bn_gguf_string_quote(bn_gguf_string s, char *buf, size_t cap) {
    if (cap == 0) return "";
    static const char ellipsis[] = "...";
    size_t n = 0;
    for (uint64_t i = 0; i < s.len; i++) {
        char esc[4];
        const int k = escape_of((unsigned char)s.data[i], esc);
        const size_t need = k ? (size_t)k + 1 : 1;
        /* room for this byte's text, and for "..." + NUL should more follow */
        const size_t reserve = i + 1 < s.len ? sizeof ellipsis : 1;
        if (n + need + reserve > cap) {
            if (cap >= sizeof ellipsis) {
                while (n + sizeof ellipsis > cap) n--;
                memcpy(buf + n, ellipsis, sizeof ellipsis);
            } else {
                buf[0] = '\0';
            }
            return buf;
        }
        if (k) {
            buf[n++] = '\\';
            memcpy(buf + n, esc, (size_t)k);
            n += (size_t)k;
        } else {
            buf[n++] = s.data[i];
        }
    }
    buf[n] = '\0';
    return buf;
}
