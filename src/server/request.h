/*
 * request.h: OpenAI request bodies (POST /v1/completions, POST /v1/chat/completions) parsed and
 * validated into plain structs, and the OpenAI error object every failure becomes.
 *
 * Design: parsing is a pure function of the body text (plus the vocabulary size, for token ids and
 * logit_bias), with no server state, so the fuzz targets call it directly. Every rejected field
 * gives HTTP 400 with `param` naming the field ("messages[2].content", "logit_bias.99999") and a
 * message saying what was expected. JSON itself is parsed by jansson (invalid UTF-8, duplicate
 * keys, NUL in strings and nesting deeper than jansson's limit are all rejected there).
 */
#ifndef BN_SERVER_REQUEST_H
#define BN_SERVER_REQUEST_H

#include "bitnet.h"
#include "sampling/sampler.h"

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* OpenAI's {"error":{"message","type","param","code"}} plus the HTTP status. Empty param/code
 * are sent as null. */
typedef struct bn_api_error {
    int status;
    const char *type; /* static: "invalid_request_error", "authentication_error", ... */
    char param[96];
    char code[48];
    char message[512];
} bn_api_error;

void bn_api_error_set(bn_api_error *e, int status, const char *type, const char *param,
                      const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* A 400 invalid_request_error about one field: the message is "'<param>': <text>"; code may be
 * NULL. Returns BN_ERR_INVALID. */
bn_status bn_api_refuse(bn_api_error *e, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A 500 server_error "out of memory". Returns BN_ERR_NOMEM. */
bn_status bn_api_oom(bn_api_error *e);

#define BN_API_MAX_N 16        /* choices per prompt */
#define BN_API_MAX_PROMPTS 32  /* prompts of one completions request */
#define BN_API_MAX_STOPS 4
#define BN_API_MAX_TOOLS 64
#define BN_API_MAX_TOKENS (1 << 20)

typedef enum bn_tool_choice {
    BN_TOOL_CHOICE_NONE = 0,
    BN_TOOL_CHOICE_AUTO,
    BN_TOOL_CHOICE_REQUIRED,
    BN_TOOL_CHOICE_NAMED
} bn_tool_choice;

typedef enum bn_response_format {
    BN_RESPONSE_TEXT = 0,
    BN_RESPONSE_JSON_OBJECT,
    BN_RESPONSE_JSON_SCHEMA,
    BN_RESPONSE_GBNF,   /* llama-server's `grammar`: schema holds the GBNF text */
    BN_RESPONSE_REGEX,  /* vLLM's `guided_regex`: schema holds the expression */
    BN_RESPONSE_CHOICE  /* vLLM's `guided_choice`: schema holds the JSON array of strings */
} bn_response_format;

/* One prompt of /v1/completions: text or token ids. */
typedef struct bn_api_prompt {
    bool is_tokens;
    char *text;   /* owned, NUL-terminated (may contain no NUL: jansson rejects \u0000) */
    size_t text_len;
    int32_t *ids; /* owned */
    size_t n_ids;
} bn_api_prompt;

/* A chat message with its content flattened to text: text parts joined, an assistant's
 * tool_calls rendered as the JSON the model is asked to produce (see docs/SERVER.md). */
typedef struct bn_api_message {
    char *role;    /* system, user, assistant, tool ("developer" becomes system); owned */
    char *content; /* owned, never NULL */
} bn_api_message;

typedef struct bn_api_tool {
    char *name;        /* owned */
    char *description; /* owned, may be NULL */
    char *parameters;  /* JSON Schema as compact JSON text; owned, may be NULL */
} bn_api_tool;

typedef struct bn_api_request {
    bool chat;
    char *model;
    /* completions */
    bn_api_prompt *prompts;
    size_t n_prompts;
    bool echo;
    /* chat */
    bn_api_message *messages;
    size_t n_messages;
    bn_api_tool *tools;
    size_t n_tools;
    bn_tool_choice tool_choice; /* default: auto with tools, none without */
    int named_tool;             /* index into tools for BN_TOOL_CHOICE_NAMED */
    bn_response_format response_format;
    char *schema;               /* json_schema.schema as compact JSON text (or the grammar,
                                 * expression or choices: see bn_response_format); owned */
    const char *schema_param;   /* static: the field the schema came from, for errors */
    /* sampling and limits */
    float temperature, top_p, presence_penalty, frequency_penalty;
    /* llama.cpp / vLLM extensions (docs/SERVER.md) */
    int32_t top_k;              /* 0: off (-1 is accepted as off) */
    float min_p, typical_p, repetition_penalty; /* off: 0, 1, 1 */
    int32_t penalty_last_n;     /* repeat_last_n; -1: the whole context (the default) */
    bool ignore_eos;
    bool has_seed;
    uint64_t seed;
    int32_t max_tokens;         /* -1: not given */
    int n;
    int logprobs;               /* -1: off; else the number of top alternatives (0..20) */
    char **stops;               /* owned */
    size_t n_stops;
    bn_logit_bias *biases;      /* owned */
    size_t n_biases;
    bool stream, include_usage;
    char *user;                 /* owned, may be NULL */
} bn_api_request;

typedef struct bn_api_limits {
    int32_t n_vocab; /* token ids (prompts, logit_bias) must be below it */
} bn_api_limits;

/* Parses a body of len bytes. On success *out is filled (caller frees with bn_api_request_free)
 * and BN_OK returned; on failure *out is zeroed, *error filled (status 400) and BN_ERR_INVALID
 * returned. */
bn_status bn_server_parse_completion_request(bn_api_request *out, bn_api_error *error,
                                             const char *json, size_t len,
                                             const bn_api_limits *limits);
bn_status bn_server_parse_chat_request(bn_api_request *out, bn_api_error *error, const char *json,
                                       size_t len, const bn_api_limits *limits);
void bn_api_request_free(bn_api_request *r);

/* A request body of len bytes as a JSON object (jansson, duplicate keys refused): a new
 * reference, or NULL with *e set (400, saying where the JSON breaks or that it is no object). */
json_t *bn_api_load_object(const char *json, size_t len, bn_api_error *e);

/* The text that tells the model which functions it may call (prepended to the system message;
 * documented in docs/SERVER.md). Caller frees; NULL on out-of-memory. */
char *bn_api_tools_prompt(const bn_api_request *r);

/* Sampler parameters from a request: OpenAI's defaults (temperature 1, top_p 1, no top-k, min-p,
 * typical-p or repetition penalty), the request's values, bias and seed (plus seed_offset, so
 * choices differ). n_ctx bounds the penalty window (penalty_last_n -1 means all of it). */
bn_sampler_params bn_api_sampler_params(const bn_api_request *r, uint64_t seed_offset, int n_ctx);

#endif
