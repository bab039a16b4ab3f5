/*
 * planning.h: request planning for the generation routes. A parsed OpenAI request (request.h)
 * becomes a plan: the prompt token ids (chat template rendered, tools text added, completions
 * prompts tokenized or taken as ids), the JSON grammar (response_format, json_schema, forced tool
 * calls), the stop strings (the request's and the chat format's), the token limit per choice and
 * the engine jobs, one per choice. Every refusal (unknown model, empty or too long prompt, bad
 * schema) is an OpenAI error; nothing here touches the network or the engine, so the unit tests
 * plan requests without a server.
 */
#ifndef BN_SERVER_PLANNING_H
#define BN_SERVER_PLANNING_H

#include "chat/chat.h"
#include "sampling/grammar.h"
#include "server/engine.h"
#include "server/request.h"
#include "tokenizer/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum bn_tool_mode { BN_TOOLS_OFF = 0, BN_TOOLS_AUTO, BN_TOOLS_FORCED } bn_tool_mode;

/* What a plan is made against (borrowed). */
typedef struct bn_plan_context {
    const bn_tokenizer *tok;
    const bn_chat_format *format;
    const char *model_id;
    int n_ctx;               /* per slot */
} bn_plan_context;

typedef struct bn_plan {
    bool chat;
    size_t n_prompts;        /* chat: 1 */
    bn_tokens *ids;          /* n_prompts; owned */
    char **echo;             /* n_prompts: completions' prompt text for echo; owned */
    size_t *echo_len;
    bn_grammar *grammar;      /* owned; NULL: unconstrained */
    bn_tool_mode tools;
    int named_tool;          /* forced with a named tool: its index; -1 otherwise */
    const char *stops[BN_API_MAX_STOPS + 8]; /* borrowed from the request and the chat format */
    size_t n_stops;
    int max_tokens;          /* per choice */
    int n_choices;           /* n_prompts x n */
    int prompt_tokens;       /* over all prompts */
    double reserved_tokens;  /* prompt tokens + max_tokens per choice (tokens-per-minute limit) */
} bn_plan;

/* Plans request r (which must outlive the plan). On success BN_OK; on a refusal *e is filled (its
 * status 4xx or 500) and the status returned is not BN_OK. The plan is always safe to free. */
bn_status bn_plan_request(bn_plan *p, const bn_plan_context *ctx, const bn_api_request *r, bn_api_error *e);
void bn_plan_free(bn_plan *p);

/* The prompt text a chat request renders to (the chat format, with the tools text unless
 * tool_choice is "none"), exactly what bn_plan_request tokenizes; for POST /apply-template. On
 * success the caller owns *text (bn_chat_text_free). */
bn_status bn_plan_chat_text(bn_chat_text *text, const bn_plan_context *ctx, const bn_api_request *r, bn_error *err);

/* The engine job of choice k (0 <= k < n_choices): prompt, sampling, limits, stops, grammar. The
 * caller sets index, cancel, on_event, user and submit_ms. */
bn_engine_job_config bn_plan_job(const bn_plan *p, const bn_api_request *r, int k, int n_ctx);

#endif
