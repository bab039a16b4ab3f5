/*
 * wire_json.h: the JSON pieces every server response shares: strings that are always valid UTF-8
 * (model text and client-supplied text may not be), compact dumps, and OpenAI's error object.
 */
#ifndef BN_SERVER_WIRE_JSON_H
#define BN_SERVER_WIRE_JSON_H

#include "server/request.h"

#include <jansson.h>
#include <stddef.h>

/* A JSON string of n bytes; invalid UTF-8 sequences become U+FFFD. Never NULL except on
 * out-of-memory. */
json_t *bn_json_text(const char *s, size_t n);
/* Compact text of v (caller frees; NULL on out-of-memory); takes the reference. */
char *bn_json_dump(json_t *v);
/* {"error":{"message","type","param","code"}}: empty param/code as null, the message made valid
 * UTF-8 (it may quote a URL or a field name the client sent). New reference. */
json_t *bn_api_error_json(const bn_api_error *e);

#endif
