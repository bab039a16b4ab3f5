/*
 * convert_json.h: what the Hugging Face readers of src/convert/ share (not a public interface):
 * reading a whole small file, parsing JSON with jansson into one-line errors, naming a JSON
 * value's type, and quoting untrusted C strings for messages.
 */
#ifndef BN_CONVERT_JSON_H
#define BN_CONVERT_JSON_H

#include "bitnet.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define BN_CONVERT_QUOTE_MAX 96 /* buffer size for bn_convert_quote, as BN_GGUF_QUOTE_MAX */

/* s (NUL-terminated, from a file) made safe for a message through bn_gguf_string_quote: control
 * bytes escaped, cut with "..." to fit cap. Returns buf. */
const char *bn_convert_quote(const char *s, char *buf, size_t cap);

/* Reads the whole regular file at path into a malloc'd buffer (NUL-terminated for convenience;
 * *size excludes the NUL). Files larger than max bytes are refused (BN_ERR_FORMAT) before any
 * allocation. The caller frees *data. Errors name the path. */
bn_status bn_convert_read_file(const char *path, size_t max, char **data, size_t *size, bn_error *err);

/* Parses text[0..len) as one JSON object (jansson flags as given: JSON_REJECT_DUPLICATES or 0).
 * On success *out is a new reference the caller releases with json_decref. On failure the error
 * (BN_ERR_FORMAT, without the file name: the caller prefixes it) reads "WHAT: line L column C
 * (byte B): <jansson's text, quoted>", where B is the position in text plus base_offset (the
 * text's offset in its file), or, for a valid document that is not an object, "WHAT is an array,
 * not an object". */
bn_status bn_convert_parse_object(const char *text, size_t len, size_t flags, const char *what,
                                  uint64_t base_offset, json_t **out, bn_error *err);

/* "object", "array", "string", "integer", "real", "boolean" or "null". */
const char *bn_convert_json_type(const json_t *v);

#endif
