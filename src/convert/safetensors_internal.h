/*
 * safetensors_internal.h: what the safetensors file reader and the index/set reader share (not
 * a public interface).
 */
#ifndef BN_CONVERT_SAFETENSORS_INTERNAL_H
#define BN_CONVERT_SAFETENSORS_INTERNAL_H

#include "convert/safetensors.h"

/* A tensor name from a header or an index: 1..BN_SAFETENSORS_MAX_NAME bytes (jansson has already
 * checked UTF-8 and the absence of NUL bytes). The message names the problem, not the tensor
 * (the caller prefixes it). */
bn_status bn_safetensors_check_name(const char *name, bn_error *err);

#endif
