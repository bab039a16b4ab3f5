/*
 * fuzz_tokenizer.c: libFuzzer target for the tokenizer's handling of untrusted text.
 *
 * Byte-level BPE: the input is encoded with the oracle model's vocabulary
 * (tests/data/oracle-a/model.gguf) under each pre-tokenizer, with and without special-token
 * parsing; decoding the ids must give back the input byte for byte, and the streaming
 * detokenizer must produce the same bytes.
 *
 * SentencePiece: a toy vocabulary built here (<unk>, <s>, </s>, the 256 byte pieces, ▁ runs of
 * score -1e9, a few scored merges, letters) with and without the space prefix, and one without
 * byte pieces (characters it lacks become <unk>). With parse_special off, decoding gives back the
 * input with each ▁ (U+2581) as a space; with it on, the same with <s>, </s> and <unk> as their
 * ids and a space after each (the ▁ the encoder puts before text that follows a special token).
 * The streaming detokenizer gives the same bytes, with the one leading space the whole-sequence
 * decode drops. Every id is in range; the unknown-piece vocabulary only has to encode.
 */
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bn_tokenizer *tokenizers[3];
static bn_tokenizer *spm[3]; /* space prefix on, off, no byte pieces */

#define SP "\xe2\x96\x81"

static void load_spm(void) {
    static const struct {
        const char *text;
        float score;
    } pieces[] = {
        {SP, -50},      {SP SP, -1e9f}, {SP SP SP SP, -1e9f}, {SP "t", -1}, {"he", -2},  {SP "the", -3},
        {"in", -4},     {"ing", -5},    {SP "a", -6},         {"ab", -7},   {"bc", -7},  {"abc", -8},
        {"t", -60},     {"h", -60},     {"e", -60},           {"i", -60},   {"n", -60},  {"g", -60},
        {"a", -60},     {"b", -60},     {"c", -60},           {"<", -60},   {">", -60},  {"s", -60},
        {"/", -60},     {"\xc3\xa9", -60}, {"\xe4\xb8\xad", -60}, {"\xc3\xa9t", -9}, {"<u", -10},
    };
    enum { N_PIECES = sizeof pieces / sizeof pieces[0], N = 3 + 256 + N_PIECES };
    static char bytes[256][7];
    const char *text[N] = {"<unk>", "<s>", "</s>"};
    int32_t types[N] = {BN_TOKEN_UNKNOWN, BN_TOKEN_CONTROL, BN_TOKEN_CONTROL};
    float scores[N] = {0};
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        text[3 + b] = bytes[b];
        types[3 + b] = BN_TOKEN_BYTE;
    }
    for (int i = 0; i < N_PIECES; i++) {
        text[259 + i] = pieces[i].text;
        types[259 + i] = BN_TOKEN_NORMAL;
        scores[259 + i] = pieces[i].score;
    }
    bn_tokenizer_vocab v = {
        .model = "llama", .tokens = text, .token_types = types, .n_tokens = N, .scores = scores,
        .bos_id = 1, .eos_id = 2, .eot_id = -1, .unk_id = 0, .add_bos = -1, .add_space_prefix = -1,
    };
    bn_error err;
    if (bn_tokenizer_from_vocab(&spm[0], &v, NULL, &err) != BN_OK) abort();
    v.add_space_prefix = 0;
    if (bn_tokenizer_from_vocab(&spm[1], &v, NULL, &err) != BN_OK) abort();
    v.add_space_prefix = -1;
    for (int b = 0; b < 256; b++) types[3 + b] = BN_TOKEN_NORMAL;
    if (bn_tokenizer_from_vocab(&spm[2], &v, NULL, &err) != BN_OK) abort();
}

/* What decoding the SentencePiece encoding of data gives: each ▁ a space, special-token text kept
 * with a space after it when text follows (the ▁ the encoder adds there), and, with the prefix,
 * one leading space less. Returns the length written to out (room for 2 * size + 1 bytes). */
static size_t spm_expected(const uint8_t *data, size_t size, bool parse_special, bool prefix, uint8_t *out) {
    static const char *const specials[] = {"<unk>", "</s>", "<s>"};
    size_t o = 0, i = 0;
    bool after_special = true;
    while (i < size) {
        size_t match = 0;
        for (int k = 0; parse_special && k < 3 && !match; k++) {
            size_t l = strlen(specials[k]);
            if (l <= size - i && !memcmp(data + i, specials[k], l)) match = l;
        }
        if (match) {
            memcpy(out + o, data + i, match);
            o += match;
            i += match;
            after_special = true;
            continue;
        }
        if (after_special && prefix) out[o++] = ' ';
        after_special = false;
        if (size - i >= 3 && !memcmp(data + i, SP, 3)) {
            out[o++] = ' ';
            i += 3;
        } else {
            out[o++] = data[i++];
        }
    }
    if (prefix && o > 0 && out[0] == ' ') {
        memmove(out, out + 1, o - 1);
        o--;
    }
    return o;
}

static void check_spm(const bn_tokenizer *tok, const uint8_t *data, size_t size, bool parse_special, bool exact) {
    bn_tokens ids = {0};
    bn_error err;
    if (bn_tokenizer_encode(tok, (const char *)data, size, false, parse_special, &ids, &err) != BN_OK) abort();
    for (size_t k = 0; k < ids.n; k++)
        if (ids.ids[k] < 0 || (uint32_t)ids.ids[k] >= bn_tokenizer_n_vocab(tok)) abort();
    char *text = NULL;
    size_t len = 0;
    if (bn_tokenizer_decode(tok, ids.ids, ids.n, false, &text, &len, &err) != BN_OK) abort();
    if (exact) {
        uint8_t *want = malloc(2 * size + 1);
        size_t want_len = spm_expected(data, size, parse_special, bn_tokenizer_add_space_prefix(tok), want);
        if (len != want_len || memcmp(text, want, len) != 0) abort();
        free(want);
    }
    /* Streaming: the same bytes, the leading space kept. */
    bn_detokenizer d;
    bn_detokenizer_init(&d, tok, 0);
    size_t pos = 0;
    bool skipped_space = false;
    for (size_t k = 0; k <= ids.n; k++) {
        const char *piece;
        size_t plen;
        bn_status st = k < ids.n ? bn_detokenizer_push(&d, ids.ids[k], &piece, &plen, &err)
                                 : bn_detokenizer_flush(&d, &piece, &plen, &err);
        if (st != BN_OK) abort();
        if (pos == 0 && !skipped_space && plen > 0 && bn_tokenizer_add_space_prefix(tok)) {
            skipped_space = true;
            if (piece[0] == ' ') piece++, plen--;
        }
        if (pos + plen > len || memcmp(piece, text + pos, plen) != 0) abort();
        pos += plen;
    }
    if (pos != len) abort();
    bn_detokenizer_free(&d);
    free(text);
    bn_tokens_free(&ids);
}

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
    if (!spm[0]) load_spm();
    for (int special = 0; special < 2; special++) {
        check_spm(spm[0], data, size, special, true);
        check_spm(spm[1], data, size, special, true);
        check_spm(spm[2], data, size, special, false);
    }
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
