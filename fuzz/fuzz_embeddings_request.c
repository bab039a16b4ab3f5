/*
 * fuzz_embeddings_request.c: the server's POST /v1/embeddings body parser (server/embeddings.h) on
 * arbitrary bytes, with the tokenizer of fuzz_tokenizer_common.h, and the response text built for
 * what it accepts.
 *
 * Properties: a body is either accepted or refused with status 400 or 404 (500 only for
 * out-of-memory) and a message, leaving the request empty; an accepted body has 1 to
 * BN_EMBED_MAX_INPUTS inputs of 1 to n_ctx token ids each, all below n_vocab, counted in
 * n_tokens; its response parses as JSON with one embedding per input (a base64 string of
 * 4 x dim bytes, or dim numbers) and usage equal to n_tokens; freeing leaks nothing (ASan/LSan).
 */
#include "fuzz_tokenizer_common.h"
#include "server/embeddings.h"

#include <jansson.h>

enum { N_CTX = 64, DIM = 8 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const bn_tokenizer *tok = bn_fuzz_tokenizer_pre(BN_PRE_AUTO);
    const bn_embed_limits lim = {.tok = tok, .model_id = "m", .n_vocab = (int32_t)bn_tokenizer_n_vocab(tok),
                                 .n_ctx = N_CTX, .dim = DIM};
    bn_embed_request r;
    bn_api_error e = {0};
    if (bn_embed_parse(&r, &e, (const char *)data, size, &lim) != BN_OK) {
        BN_FUZZ_CHECK(e.status == 400 || e.status == 404 || e.status == 500, "status %d", e.status);
        BN_FUZZ_CHECK(e.message[0] != '\0', "refused without a message");
        BN_FUZZ_CHECK(r.inputs == NULL && r.n_inputs == 0 && r.n_tokens == 0, "a refused request kept state");
        return 0;
    }
    BN_FUZZ_CHECK(r.n_inputs >= 1 && r.n_inputs <= BN_EMBED_MAX_INPUTS, "%zu inputs", r.n_inputs);
    size_t total = 0;
    for (size_t i = 0; i < r.n_inputs; i++) {
        BN_FUZZ_CHECK(r.inputs[i].n >= 1 && r.inputs[i].n <= N_CTX, "input %zu has %zu tokens", i, r.inputs[i].n);
        for (size_t t = 0; t < r.inputs[i].n; t++)
            BN_FUZZ_CHECK(r.inputs[i].ids[t] >= 0 && r.inputs[i].ids[t] < lim.n_vocab, "input %zu: id %d", i,
                          r.inputs[i].ids[t]);
        total += r.inputs[i].n;
    }
    BN_FUZZ_CHECK(total == r.n_tokens, "n_tokens %zu, counted %zu", r.n_tokens, total);
    float *vectors = calloc(r.n_inputs * DIM, sizeof *vectors);
    for (size_t i = 0; vectors && i < r.n_inputs * DIM; i++) vectors[i] = (float)i * 0.25f - 3.0f;
    char *text = vectors ? bn_embed_response(&r, vectors, DIM, lim.model_id) : NULL;
    json_t *root = text ? json_loads(text, 0, NULL) : NULL;
    BN_FUZZ_CHECK(!text || root, "the response is not JSON: %.200s", text);
    json_t *items = json_object_get(root, "data");
    BN_FUZZ_CHECK(!root || json_array_size(items) == r.n_inputs, "%zu items for %zu inputs", json_array_size(items),
                  r.n_inputs);
    for (size_t i = 0; root && i < r.n_inputs; i++) {
        json_t *emb = json_object_get(json_array_get(items, i), "embedding");
        BN_FUZZ_CHECK(r.base64 ? json_string_length(emb) == (4 * DIM + 2) / 3 * 4 : json_array_size(emb) == DIM,
                      "embedding %zu has the wrong size", i);
    }
    BN_FUZZ_CHECK(!root || json_integer_value(json_object_get(json_object_get(root, "usage"), "prompt_tokens")) ==
                               (json_int_t)r.n_tokens, "usage differs from n_tokens");
    json_decref(root);
    free(text);
    free(vectors);
    bn_embed_request_free(&r);
    return 0;
}
