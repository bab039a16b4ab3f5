/*
 * json_schema.h: JSON Schema (and the tool-call wrapper) compiled into a grammar (grammar.h) whose
 * sentences are JSON texts the schema accepts.
 *
 * Supported: type (one or a list), nullable (OpenAPI), enum, const, anyOf, oneOf (as anyOf: the
 * branches are not made exclusive), allOf (merged into one schema), $ref to "#", "#/$defs/...",
 * "#/definitions/..." or any local JSON pointer (recursion allowed), $defs/definitions;
 * objects: properties, required, additionalProperties (false, true or a schema); arrays: items,
 * prefixItems, minItems, maxItems; strings: minLength, maxLength, pattern (a regular expression,
 * grammar_regex.h), format date, time, date-time, duration, uuid, email, hostname, ipv4, ipv6, uri
 * (generated in a plain subset of each; other formats are annotations, as JSON Schema 2020-12
 * defines them by default); integers and numbers: minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum. Annotations (title, description, default, examples, ...)
 * are ignored. A keyword that would constrain the value in a way this compiler cannot enforce
 * (not, if/then/else, patternProperties, propertyNames, uniqueItems true, contains, multipleOf,
 * minProperties/maxProperties on objects with properties, dependentRequired, ...) is refused with
 * BN_ERR_UNSUPPORTED and a message naming it and its place ("schema.properties.a.multipleOf").
 *
 * What the grammar produces (always a subset of what the schema accepts): objects with declared
 * properties list them in the declared order, required ones always, optional ones or not, and no
 * others; objects without declared properties take any keys (of additionalProperties' schema).
 * Whitespace: at most four characters of space, tab or newline between tokens. Strings use the
 * short escapes and \u00XX for other control characters. Numbers have at most 15 integer digits,
 * 15 fraction digits and a 2-digit exponent; numbers under bounds have no exponent. A pattern is
 * matched whole (as if anchored by ^ and $).
 */
#ifndef BN_SAMPLING_JSON_SCHEMA_H
#define BN_SAMPLING_JSON_SCHEMA_H

#include "bitnet.h"
#include "sampling/grammar.h"

#include <stddef.h>

/* Compiles a schema given as JSON text. `schema_json` NULL: any JSON object (response_format
 * json_object). Errors name the place in the schema ("schema.properties.a: ..."). The caller owns
 * *out (bn_grammar_free). */
bn_status bn_json_schema_grammar(bn_grammar **out, const char *schema_json, bn_error *err);

/* A tool call: {"name":"NAME","arguments":ARGS} where NAME is one of names[0..n) and ARGS follows
 * the parameters schema of that name (schemas[i] JSON text, NULL: any object). */
bn_status bn_json_tool_call_grammar(bn_grammar **out, const char *const *names, const char *const *schemas,
                                    size_t n, bn_error *err);

#endif
