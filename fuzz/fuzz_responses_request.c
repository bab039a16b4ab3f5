/*
 * fuzz_responses_request.c: the server's POST /v1/responses body parser (server/responses.h) on
 * arbitrary bytes, and the response object and stream events built for what it accepts.
 *
 * Properties: a body is either accepted or rejected with status 400 (500 only for out-of-memory)
 * and a message, leaving the request zeroed and no wire state; an accepted body is a chat request
 * of one choice, without logprobs, whose messages have the four chat roles, whose named tool is in
 * its list and whose schema errors name text.format.schema; its response object and stream events
 * build (message and function-call forms), the events numbered 0, 1, 2, ... with a type each;
 * freeing leaks nothing (ASan/LSan).
 */
#include "fuzz_input.h"
#include "bitnet.h"
#include "runtime/generation.h"
#include "server/responses.h"

/* Checks one event array and counts its events into *next (the expected next sequence number). */
static void check_events(json_t *events, json_int_t *next) {
    BN_FUZZ_CHECK(json_is_array(events), "events not built");
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev) {
        BN_FUZZ_CHECK(json_string_value(json_object_get(ev, "type")) != NULL, "event without a type");
        json_int_t seq = json_integer_value(json_object_get(ev, "sequence_number"));
        BN_FUZZ_CHECK(seq == *next, "sequence_number %lld, expected %lld", (long long)seq, (long long)*next);
        (*next)++;
    }
    json_decref(events);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_api_limits limits = {1000};
    bn_api_request r;
    bn_responses *w = (bn_responses *)1;
    bn_api_error e = {0};
    bn_status st = bn_responses_parse_request(&r, &w, &e, (const char *)data, size, &limits);
    if (st != BN_OK) {
        BN_FUZZ_CHECK((e.status == 400 || e.status == 500) && e.message[0] && e.type, "status %d message '%s'",
                      e.status, e.message);
        BN_FUZZ_CHECK(w == NULL && r.model == NULL && r.messages == NULL && r.tools == NULL, "rejected request not zeroed");
        return 0;
    }
    BN_FUZZ_CHECK(w != NULL && r.chat && r.model && r.n == 1 && r.logprobs == -1, "accepted: chat, one choice");
    BN_FUZZ_CHECK(r.n_messages >= 1 && r.messages, "no messages");
    for (size_t i = 0; i < r.n_messages; i++) {
        const char *role = r.messages[i].role;
        BN_FUZZ_CHECK(role && r.messages[i].content &&
                          (!strcmp(role, "system") || !strcmp(role, "user") || !strcmp(role, "assistant") ||
                           !strcmp(role, "tool")),
                      "message %zu", i);
    }
    BN_FUZZ_CHECK(r.max_tokens == -1 || (r.max_tokens >= 1 && r.max_tokens <= BN_API_MAX_TOKENS), "max_tokens %d",
                  r.max_tokens);
    BN_FUZZ_CHECK(r.tool_choice != BN_TOOL_CHOICE_NAMED || (r.named_tool >= 0 && (size_t)r.named_tool < r.n_tools),
                  "named tool %d of %zu", r.named_tool, r.n_tools);
    BN_FUZZ_CHECK(r.response_format != BN_RESPONSE_JSON_SCHEMA ||
                      (r.schema && !strcmp(r.schema_param, "text.format.schema")),
                  "schema source");
    bn_responses_bind(w, "resp_0123456789ab", 1, "model");
    json_t *usage = json_pack("{s:i,s:i,s:{s:i}}", "prompt_tokens", 3, "completion_tokens", 2, "prompt_tokens_details",
                              "cached_tokens", 1);
    json_t *call = json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", "call_0123456789ab_0", "type", "function", "function",
                             "name", "f", "arguments", "{}");
    bool as_call = size % 2 == 1;
    const bn_responses_end end = {.finish = size % 3 ? BN_FINISH_EOG : BN_FINISH_LENGTH, .usage = usage};
    json_t *body = bn_responses_body(w, "text", 4, as_call ? call : NULL, &end);
    BN_FUZZ_CHECK(json_is_object(body) && json_is_array(json_object_get(body, "output")) &&
                      json_object_get(body, "instructions") && json_object_get(body, "tools"),
                  "response object");
    json_decref(body);
    json_int_t next = 0;
    check_events(bn_responses_stream_start(w), &next);
    if (!as_call) check_events(bn_responses_stream_text(w, "te", 2), &next);
    check_events(bn_responses_stream_item(w, "text", 4, as_call ? call : NULL, end.finish), &next);
    check_events(bn_responses_stream_end(w, &end), &next);
    json_decref(usage);
    json_decref(call);
    bn_responses_free(w);
    bn_api_request_free(&r);
    return 0;
}
