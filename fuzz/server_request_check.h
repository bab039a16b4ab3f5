/*
 * server_request_check.h: the property checks shared by fuzz_completion_request and
 * fuzz_chat_request, the server's request parsers (server/request.h) on arbitrary bodies.
 *
 * Properties: a body is either accepted (BN_OK) or rejected with status 400 and a message (500
 * only for out-of-memory); an accepted request satisfies every documented bound (n in [1, 16],
 * max_tokens in [1, 2^20] or unset for chat, at most 4 stop strings, token ids and logit-bias ids
 * below the vocabulary, a named tool inside the tool list, logprobs in range) and its tool prompt
 * renders; freeing it leaves nothing behind (ASan/LSan).
 */
#ifndef BN_FUZZ_SERVER_REQUEST_CHECK_H
#define BN_FUZZ_SERVER_REQUEST_CHECK_H

#include "bitnet.h"
#include "fuzz_input.h"
#include "server/request.h"

static inline int bn_fuzz_check_request(bool chat, const char *body, size_t len) {

    bn_api_limits limits = {1000};
    bn_api_request r;
    bn_api_error e = {0};
    bn_status st = chat ? bn_server_parse_chat_request(&r, &e, body, len, &limits)
                        : bn_server_parse_completion_request(&r, &e, body, len, &limits);
    if (st != BN_OK) {
        BN_FUZZ_CHECK((e.status == 400 || e.status == 500) && e.message[0] && e.type, "status %d message '%s'",
                      e.status, e.message);
        BN_FUZZ_CHECK(r.model == NULL && r.prompts == NULL && r.messages == NULL, "rejected request not zeroed");
        return 0;
    }
    BN_FUZZ_CHECK(r.model != NULL && r.chat == chat, "model missing");
    BN_FUZZ_CHECK(r.n >= 1 && r.n <= BN_API_MAX_N, "n %d", r.n);
    BN_FUZZ_CHECK((r.max_tokens >= 1 && r.max_tokens <= BN_API_MAX_TOKENS) || (chat && r.max_tokens == -1),
                  "max_tokens %d", r.max_tokens);
    BN_FUZZ_CHECK(r.n_stops <= BN_API_MAX_STOPS, "%zu stops", r.n_stops);
    BN_FUZZ_CHECK(r.temperature >= 0 && r.temperature <= 2 && r.top_p >= 0 && r.top_p <= 1, "sampling range");
    BN_FUZZ_CHECK(r.response_format != BN_RESPONSE_JSON_SCHEMA || (r.schema && r.schema_param), "schema source");
    /* every accepted request gives sampler parameters the sampler accepts (extension fields too) */
    bn_sampler_params sp = bn_api_sampler_params(&r, 1, 4096);
    bn_sampler *sampler = NULL;
    bn_error serr;
    bn_status sst = bn_sampler_create(&sampler, &sp, (size_t)limits.n_vocab, &serr);
    BN_FUZZ_CHECK(sst == BN_OK, "accepted request, refused sampler params: %s", serr.message);
    bn_sampler_free(sampler);
    for (size_t i = 0; i < r.n_biases; i++)
        BN_FUZZ_CHECK(r.biases[i].token >= 0 && r.biases[i].token < limits.n_vocab, "bias token %d", r.biases[i].token);
    for (size_t p = 0; p < r.n_prompts; p++)
        for (size_t i = 0; i < r.prompts[p].n_ids; i++)
            BN_FUZZ_CHECK(r.prompts[p].ids[i] >= 0 && r.prompts[p].ids[i] < limits.n_vocab, "prompt token");
    if (chat) {
        BN_FUZZ_CHECK(r.n_messages >= 1 && r.messages, "no messages");
        for (size_t i = 0; i < r.n_messages; i++) BN_FUZZ_CHECK(r.messages[i].role && r.messages[i].content, "message %zu", i);
        BN_FUZZ_CHECK(r.tool_choice != BN_TOOL_CHOICE_NAMED || (r.named_tool >= 0 && (size_t)r.named_tool < r.n_tools),
                      "named tool %d of %zu", r.named_tool, r.n_tools);
        BN_FUZZ_CHECK(r.logprobs >= -1 && r.logprobs <= BN_SAMPLER_MAX_TOP_LOGPROBS, "top_logprobs %d", r.logprobs);
        char *prompt = bn_api_tools_prompt(&r);
        BN_FUZZ_CHECK(prompt != NULL, "tools prompt");
        free(prompt);
    } else {
        BN_FUZZ_CHECK(r.n_prompts >= 1 && r.logprobs >= -1 && r.logprobs <= 5, "prompts %zu logprobs %d", r.n_prompts, r.logprobs);
    }
    bn_api_request_free(&r);
    return 0;
}

#endif
