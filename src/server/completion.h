/*
 * completion.h: one generation request in flight and its OpenAI wire format: the SSE chunks of a
 * stream, or the final JSON body (choices, tool calls, logprobs, usage); for POST /v1/responses the
 * Responses API's events and response object, built by responses.h.
 *
 * Design: the engine thread only queues events (a copy of each token's text and sample, each
 * choice's finish) under the completion's mutex and signals; the connection's thread takes the
 * queue and builds the JSON, so a slow client or a large logprobs object never holds up the
 * engine. Reference-counted: one reference for the connection plus one per unfinished job.
 */
#ifndef BN_SERVER_COMPLETION_H
#define BN_SERVER_COMPLETION_H

#include "server/engine.h"
#include "server/planning.h"
#include "server/request.h"
#include "server/responses.h"
#include "tokenizer/tokenizer.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct bn_completion bn_completion;

typedef struct bn_completion_setup {
    const bn_tokenizer *tok;     /* borrowed; outlives the completion */
    const char *model_id;        /* copied */
    const char *fingerprint;     /* system_fingerprint of chat bodies; copied */
    bn_api_request *req;         /* moved in (the completion frees it) */
    bn_plan *plan;               /* its grammar and echo texts are moved in */
    bn_responses *responses;     /* POST /v1/responses: its wire state, moved in on success (the
                                    Responses shapes of responses.h replace the chat ones); else NULL */
} bn_completion_setup;

/* NULL on out-of-memory (then the request, the plan and the responses state are left as they
 * were). The caller holds the connection's reference. */
bn_completion *bn_completion_create(const bn_completion_setup *setup);
void bn_completion_ref(bn_completion *c);
/* Drops one reference. */
void bn_completion_unref(bn_completion *c);

/* Jobs: n_jobs references are taken before bn_engine_submit; give them back when it fails. */
void bn_completion_expect_jobs(bn_completion *c, int n_jobs);
void bn_completion_jobs_refused(bn_completion *c, int n_jobs);
/* The engine's event callback (user = the completion). */
void bn_completion_on_event(void *user, const bn_engine_event *ev);
const atomic_bool *bn_completion_cancel_flag(bn_completion *c);
/* The client went away: the jobs finish (CANCELLED) at the engine's next step. */
void bn_completion_cancel(bn_completion *c);
bool bn_completion_cancelled(bn_completion *c);
const char *bn_completion_id(const bn_completion *c);
bool bn_completion_streaming(const bn_completion *c);

/* Stream: copies up to max bytes of SSE text into buf, waiting up to wait_ms for more. Returns
 * the bytes copied (0: nothing yet) or -1 when the stream is over and everything was read. */
ssize_t bn_completion_read_stream(bn_completion *c, char *buf, size_t max, int wait_ms);
/* Non-streaming: turns the events queued so far into the choices' text, then waits up to wait_ms
 * for more (it returns at once when events arrived meanwhile); true once every job has finished.
 * Called from the connection's thread only. */
bool bn_completion_wait(bn_completion *c, int wait_ms);
/* Engine events queued and not yet read by the connection's thread. */
size_t bn_completion_queued_events(bn_completion *c);
/* Non-streaming, after bn_completion_wait returned true: the JSON body (caller frees), or NULL
 * with *e set (a failed generation, a shutdown that cut it, out of memory). */
char *bn_completion_body(bn_completion *c, bn_api_error *e);

/* Token counts so far (for the request log and the token refund). */
typedef struct bn_completion_counts {
    int prompt_tokens, completion_tokens, cached_tokens;
    bool finished;       /* every job ended */
    bool cut;            /* ended by a server shutdown, not by the client or the model */
    const char *finish;  /* the first choice's OpenAI finish reason, NULL while running */
} bn_completion_counts;
void bn_completion_get_counts(bn_completion *c, bn_completion_counts *out);

#endif
