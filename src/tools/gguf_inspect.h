/*
 * gguf_inspect.h: the report behind `bitnet inspect`: a validated GGUF file's header, metadata
 * (long arrays summarised), tensor table and per-type totals, as text or as JSON (jansson).
 * Sizes and offsets are plain decimal byte counts.
 */
#ifndef BN_TOOLS_GGUF_INSPECT_H
#define BN_TOOLS_GGUF_INSPECT_H

#include "gguf/gguf.h"

#include <stdio.h>

/* Arrays longer than this show only their first BN_INSPECT_ARRAY_ITEMS items. */
#define BN_INSPECT_ARRAY_ITEMS 8

/* Writes the report for gguf to out. Fails only on an output error or out of memory. */
bn_status bn_gguf_inspect_text(FILE *out, const bn_gguf *gguf, bn_error *err);
bn_status bn_gguf_inspect_json(FILE *out, const bn_gguf *gguf, bn_error *err);

#endif
