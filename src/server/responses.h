/*
 * responses.h: POST /v1/responses, OpenAI's Responses API, without state.
 *
 * Design: a Responses request is translated into the chat-completions request it means and parsed
 * by request.c's chat parser, so planning, the engine and completion.c run it exactly as they run
 * a chat request: `instructions` becomes a first system message, `input` items become messages
 * (a function_call item an assistant message's tool call, a function_call_output item a tool
 * message), the flat function tools become chat tools, `text.format` becomes response_format and
 * `max_output_tokens` max_tokens. Only the wire shape differs: completion.c gives this module the
 * text, the tool call and the usage it has, and sends the response object or the stream events
 * built here (numbered, in OpenAI's order).
 *
 * Nothing is stored: previous_response_id and conversation are refused (400), `store` is accepted
 * and answered as false. A field this server cannot honour (reasoning, built-in tools such as
 * web_search, background: true, ...) or does not know is refused naming it, never ignored.
 */
#ifndef BN_SERVER_RESPONSES_H
#define BN_SERVER_RESPONSES_H

#include "bitnet.h"
#include "server/request.h"

#include <jansson.h>

#include <stddef.h>

/* One Responses request's wire state: the request fields a response object repeats, its id, and
 * the stream's event numbering and output items. */
typedef struct bn_responses bn_responses;

/* Parses a POST /v1/responses body of len bytes. On success *out is the equivalent chat request
 * (caller frees with bn_api_request_free), *wire the response's state (caller frees with
 * bn_responses_free, or moves it into a completion) and BN_OK is returned. On failure *out is
 * zeroed, *wire NULL, *e filled (400 with param naming the Responses field, "input[2].content[0]";
 * 500 on out-of-memory) and the status returned. */
bn_status bn_responses_parse_request(bn_api_request *out, bn_responses **wire, bn_api_error *e, const char *json,
                                     size_t len, const bn_api_limits *limits);
void bn_responses_free(bn_responses *w);

/* A planning refusal (planning.h) in the Responses API's names: the prompt's "messages" is
 * "input", "response_format" is "text.format". */
void bn_responses_plan_error(bn_api_error *e);

/* The response's id, creation time and model (completion.c, when it creates the completion). */
void bn_responses_bind(bn_responses *w, const char *id, long created, const char *model);

/* How the generation ended, from completion.c. */
typedef struct bn_responses_end {
    int finish;             /* bn_finish_reason of the one choice */
    const json_t *usage;    /* chat-shaped usage: prompt_tokens, completion_tokens,
                               prompt_tokens_details.cached_tokens */
    const char *error_code; /* a failed generation: its code ("server_shutdown", "server_error") */
    const char *error;      /* a failed generation: its message; NULL when it ended normally */
} bn_responses_end;

/* Stream events. Each call returns the events to send, in order, as an array (new reference;
 * NULL on out-of-memory) of objects {"type", "sequence_number", ...}; completion.c frames each as
 * `event: <type>` and `data: <json>`. */
/* response.created, response.in_progress */
json_t *bn_responses_stream_start(bn_responses *w);
/* Output text: the first opens the message item (response.output_item.added,
 * response.content_part.added), then response.output_text.delta (none for empty text). */
json_t *bn_responses_stream_text(bn_responses *w, const char *text, size_t len);
/* The generation's output is complete: call (chat-shaped, {"id", "function": {"name",
 * "arguments"}}; NULL when the output is text) becomes a function_call item (added, arguments
 * delta and done, done); otherwise the message item of text (opened if no text came) is closed
 * (output_text.done, content_part.done, output_item.done). finish is the bn_finish_reason. */
json_t *bn_responses_stream_item(bn_responses *w, const char *text, size_t len, const json_t *call, int finish);
/* response.completed, response.incomplete (max_output_tokens) or response.failed (end->error),
 * with the whole response object. */
json_t *bn_responses_stream_end(bn_responses *w, const bn_responses_end *end);

/* Non-streaming: the response object for the output text or call (as bn_responses_stream_item
 * takes them). New reference; NULL on out-of-memory. */
json_t *bn_responses_body(bn_responses *w, const char *text, size_t len, const json_t *call,
                          const bn_responses_end *end);

#endif
