/*
 * fuzz_tokenizer.c: libFuzzer target for the tokenizer's handling of untrusted text. The input
 * is encoded with the oracle model's vocabulary (tests/data/oracle-a/model.gguf) under each
 * pre-tokenizer, with and without special-token parsing; decoding the ids must give back the
 * input byte for byte, and the streaming detokenizer must produce the same bytes.
 */
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bn_tokenizer *tokenizers[3];

static void load(void) {
    bn_error err;
    bn_gguf *g = NULL;
    if (bn_gguf_open(BITNET_SOURCE_DIR "/tests/data/oracle-a/model.gguf", &g, &err) != BN_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.message);
        abort();
    }
    const bn_pretokenizer pres[3] = {BN_PRE_LLAMA3, BN_PRE_GPT2, BN_PRE_LLAMACPP_DEFAULT};
    for (int i = 0; i < 3; i++) {
        bn_tokenizer_options o = {.pre = pres[i]};
        if (bn_tokenizer_from_gguf(&tokenizers[i], g, &o, &err) != BN_OK) abort();
    }
    bn_gguf_close(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tokenizers[0]) load();
    for (int i = 0; i < 6; i++) {
        const bn_tokenizer *tok = tokenizers[i % 3];
        bool special = i >= 3;
        bn_tokens ids = {0};
        bn_error err;
        if (bn_tokenizer_encode(tok, (const char *)data, size, false, special, &ids, &err) != BN_OK) abort();
        char *text = NULL;
        size_t len = 0;
        if (bn_tokenizer_decode(tok, ids.ids, ids.n, false, &text, &len, &err) != BN_OK) abort();
        if (len != size || memcmp(text, data, size) != 0) abort();
        bn_detokenizer d;
        bn_detokenizer_init(&d, tok, 0);
        size_t pos = 0;
        for (size_t k = 0; k < ids.n; k++) {
            const char *piece;
            size_t plen;
            if (bn_detokenizer_push(&d, ids.ids[k], &piece, &plen, &err) != BN_OK) abort();
            if (pos + plen > size || memcmp(piece, data + pos, plen) != 0) abort();
            pos += plen;
        }
        const char *rest;
        size_t rest_len;
        if (bn_detokenizer_flush(&d, &rest, &rest_len, &err) != BN_OK) abort();
        if (pos + rest_len != size || memcmp(rest, data + pos, rest_len) != 0) abort();
        bn_detokenizer_free(&d);
        free(text);
        bn_tokens_free(&ids);
    }
    return 0;
}
