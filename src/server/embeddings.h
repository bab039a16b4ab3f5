/*
 * embeddings.h: POST /v1/embeddings in OpenAI's shape. The request body becomes token lists (text
 * tokenized as completions prompts are, with the model's BOS rule; token ids as given), the engine
 * runs them (bn_engine_submit_embed: the mean of the final hidden states, L2-normalized), and the
 * vectors go back as JSON floats or as base64 of little-endian float32 (encoding_format).
 *
 * Design: parsing and the response text are pure functions of their inputs (the body, the
 * tokenizer and the limits; the vectors), like request.h's, so tests call them without a server.
 * Every refusal is an OpenAI error naming the field ("input[2]", "dimensions").
 */
#ifndef BN_SERVER_EMBEDDINGS_H
#define BN_SERVER_EMBEDDINGS_H

#include "bitnet.h"
#include "server/request.h"
#include "tokenizer/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BN_EMBED_MAX_INPUTS 2048 /* inputs of one request, as OpenAI allows */

typedef struct bn_embed_limits {
    const bn_tokenizer *tok;
    const char *model_id; /* the one model served: another name is 404 model_not_found */
    int32_t n_vocab;      /* token ids must be below it */
    int n_ctx;            /* tokens per input (BOS included) */
    int dim;              /* the model's hidden size: the only `dimensions` accepted */
} bn_embed_limits;

typedef struct bn_embed_request {
    bn_tokens *inputs;    /* n_inputs token lists, owned */
    size_t n_inputs;
    size_t n_tokens;      /* over all inputs: usage.prompt_tokens */
    bool base64;          /* encoding_format "base64" (else "float") */
} bn_embed_request;

/* Parses a body of len bytes. On success *out is filled (free with bn_embed_request_free) and
 * BN_OK returned; on failure *out is empty, *e filled (400, 404 for another model, 500 when
 * memory runs out) and an error returned. */
bn_status bn_embed_parse(bn_embed_request *out, bn_api_error *e, const char *json, size_t len,
                         const bn_embed_limits *lim);
void bn_embed_request_free(bn_embed_request *r);

/* The response body for the request's vectors (n_inputs x dim floats): {"object":"list","data":
 * [{"object":"embedding","index","embedding"}],"model","usage"}. Caller frees; NULL on
 * out-of-memory. */
char *bn_embed_response(const bn_embed_request *r, const float *vectors, int dim, const char *model_id);

#endif
