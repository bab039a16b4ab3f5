/*
 * wire_json.c: UTF-8-safe JSON strings, dumps and OpenAI error objects (see wire_json.h).
 */
#include "server/wire_json.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Valid UTF-8 copy of bytes (invalid sequences become U+FFFD); caller frees. */
static char *utf8_sanitize(const uint8_t *p, size_t n, size_t *out_len) {
    char *out = malloc(n * 3 + 1);
    if (!out) return NULL;
    size_t o = 0, i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t need = c < 0x80 ? 0 : (c >= 0xC2 && c <= 0xDF) ? 1 : (c >= 0xE0 && c <= 0xEF) ? 2
                                 : (c >= 0xF0 && c <= 0xF4) ? 3 : 99;
        bool ok = need != 99;
        for (size_t k = 1; ok && k <= need; k++) {
            if (i + k >= n) {
                ok = false;
                break;
            }
            uint8_t d = p[i + k];
            uint8_t lo = 0x80, hi = 0xBF;
            if (k == 1 && c == 0xE0) lo = 0xA0;
            if (k == 1 && c == 0xED) hi = 0x9F;
            if (k == 1 && c == 0xF0) lo = 0x90;
            if (k == 1 && c == 0xF4) hi = 0x8F;
            if (d < lo || d > hi) ok = false;
        }
        if (!ok) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(out + o, p + i, need + 1);
        o += need + 1;
        i += need + 1;
    }
    out[o] = '\0';
    if (out_len) *out_len = o;
    return out;
}

json_t *bn_json_text(const char *s, size_t n) {
    json_t *v = json_stringn(s, n);
    if (v) return v;
    size_t len;
    char *clean = utf8_sanitize((const uint8_t *)s, n, &len);
    v = clean ? json_stringn(clean, len) : NULL;
    free(clean);
    return v ? v : json_string("");
}

char *bn_json_dump(json_t *v) {
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    return text;
}

json_t *bn_api_error_json(const bn_api_error *e) {
    return json_pack("{s:{s:o,s:s,s:o,s:o}}", "error", "message", bn_json_text(e->message, strlen(e->message)),
                     "type", e->type ? e->type : "invalid_request_error", "param",
                     e->param[0] ? bn_json_text(e->param, strlen(e->param)) : json_null(), "code",
                     e->code[0] ? json_string(e->code) : json_null());
}
