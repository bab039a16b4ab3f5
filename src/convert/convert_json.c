/*
 * convert_json.c: helpers shared by the safetensors and Hugging Face config readers (see
 * convert_json.h). jansson does the parsing (it validates UTF-8 and refuses NUL bytes in
 * strings); this file turns its errors into the project's one-line messages.
 */
#include "convert/convert_json.h"
#include "gguf/gguf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef unsigned long long ull;

const char *bn_convert_quote(const char *s, char *buf, size_t cap) {
    bn_gguf_string str = {s ? strlen(s) : 0, s ? s : ""};
    return bn_gguf_string_quote(str, buf, cap);
}

bn_status bn_convert_read_file(const char *path, size_t max, char **data, size_t *size, bn_error *err) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return bn_error_set(err, BN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return bn_error_set(err, BN_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > max) {
        fclose(f);
        return bn_error_set(err, BN_ERR_FORMAT, "%s: %llu bytes exceeds the %llu-byte limit for this file",
                            path, (ull)sb.st_size, (ull)max);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return bn_error_set(err, BN_ERR_NOMEM, "%s: out of memory for %llu bytes", path, (ull)n);
    }
    size_t got = fread(buf, 1, n, f);
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed || got != n) {
        free(buf);
        return bn_error_set(err, BN_ERR_IO, "%s: read %llu of %llu bytes", path, (ull)got, (ull)n);
    }
    buf[n] = '\0';
    *data = buf;
    *size = n;
    return BN_OK;
}

const char *bn_convert_json_type(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "real";
    case JSON_TRUE: case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

bn_status bn_convert_parse_object(const char *text, size_t len, size_t flags, const char *what,
                                  uint64_t base_offset, json_t **out, bn_error *err) {
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(text ? text : "", text ? len : 0, flags, &jerr);
    if (!root) {
        /* jansson quotes the token it stopped at; quoted again so no control byte escapes */
        char q[sizeof jerr.text + 4];
        bn_convert_quote(jerr.text, q, sizeof q);
        uint64_t at = base_offset + (uint64_t)(jerr.position > 0 ? jerr.position : 0);
        return bn_error_set(err, BN_ERR_FORMAT, "%s: line %d column %d (byte %llu): %s", what, jerr.line,
                            jerr.column, (ull)at, q);
    }
    if (!json_is_object(root)) {
        const char *type = bn_convert_json_type(root);
        json_decref(root);
        return bn_error_set(err, BN_ERR_FORMAT, "%s is an %s, not an object", what, type);
    }
    *out = root;
    return BN_OK;
}
