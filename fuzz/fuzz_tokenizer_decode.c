/*
 * fuzz_tokenizer_decode.c: decoding arbitrary id sequences, out-of-range ids included, with the
 * tokenizer of tests/data/oracle-a (fuzz_tokenizer_common.h), whole and streamed.
 *
 * Input: one flag byte (bit 0 skip_special, bit 1 replace invalid UTF-8), then ids of 2 bytes
 * each: most map into [0, n_vocab), one selector value in 16 gives a raw 32-bit id (negative
 * and huge values).
 *
 * Properties: whole-sequence decode fails with BN_ERR_RANGE exactly when an id is out of range
 * and otherwise returns the concatenated token bytes (special tokens dropped with skip_special),
 * NUL-terminated; the streaming detokenizer rejects out-of-range ids with BN_ERR_RANGE without
 * changing its state, and what it emits for the valid ids, flushed, equals the whole decode;
 * with BN_DETOK_REPLACE_INVALID every emitted piece is valid UTF-8 and, when the whole decode is
 * valid UTF-8, the output equals it. Without the flag the only invalid UTF-8 emitted is the
 * documented pass-through of bytes that can never form a character: when the whole decode is
 * valid UTF-8, every streamed piece is too (a character split across tokens is held back).
 */
#include "bitnet.h"
#include "fuzz_tokenizer_common.h"

#define MAX_IDS 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const bn_tokenizer *tok = bn_fuzz_tokenizer();
    uint32_t n_vocab = bn_tokenizer_n_vocab(tok);
    bn_fuzz_input in = bn_fuzz_input_make(data, size);
    uint8_t flags = bn_fuzz_u8(&in);
    bool skip_special = flags & 1, replace = flags & 2;

    static int32_t ids[MAX_IDS], valid[MAX_IDS];
    size_t n = 0, n_valid = 0;
    bool any_invalid = false;
    while (bn_fuzz_left(&in) > 0 && n < MAX_IDS) {
        uint16_t v = bn_fuzz_u16(&in);
        int32_t id = (v & 0xF000) == 0xF000 ? (int32_t)bn_fuzz_u32(&in) : (int32_t)(v % (n_vocab + 8));
        ids[n++] = id;
        if (id >= 0 && (uint32_t)id < n_vocab) valid[n_valid++] = id;
        else any_invalid = true;
    }

    bn_error err;
    char *whole = NULL;
    size_t whole_len = 0;
    bn_status st = bn_tokenizer_decode(tok, ids, n, skip_special, &whole, &whole_len, &err);
    if (any_invalid) {
        BN_FUZZ_CHECK(st == BN_ERR_RANGE && err.message[0], "out-of-range id gave status %d", (int)st);
        free(whole);
        whole = NULL;
    } else {
        BN_FUZZ_CHECK(st == BN_OK, "decode failed: %s", err.message);
        free(whole);
        whole = NULL;
    }
    /* the reference: the valid ids decoded whole, checked against the token table */
    st = bn_tokenizer_decode(tok, valid, n_valid, skip_special, &whole, &whole_len, &err);
    BN_FUZZ_CHECK(st == BN_OK && whole && whole[whole_len] == '\0', "decode of valid ids failed: %s", err.message);
    size_t at = 0;
    for (size_t i = 0; i < n_valid; i++) {
        if (skip_special && bn_tokenizer_token_type(tok, valid[i]) == BN_TOKEN_CONTROL) continue;
        size_t tl;
        const uint8_t *tb = bn_tokenizer_token_bytes(tok, valid[i], &tl);
        BN_FUZZ_CHECK(tb != NULL, "no bytes for id %d", valid[i]);
        BN_FUZZ_CHECK(at + tl <= whole_len && memcmp(whole + at, tb, tl) == 0, "token %d bytes at %zu", valid[i], at);
        at += tl;
    }
    BN_FUZZ_CHECK(at == whole_len, "decode gave %zu bytes, tokens hold %zu", whole_len, at);

    bool whole_valid = bn_fuzz_utf8_valid_prefix((const uint8_t *)whole, whole_len) == whole_len;
    bn_detokenizer d;
    bn_detokenizer_init(&d, tok, (skip_special ? BN_DETOK_SKIP_SPECIAL : 0) | (replace ? BN_DETOK_REPLACE_INVALID : 0));
    size_t cap = whole_len * 3 + 16, out_len = 0;
    char *out = malloc(cap);
    if (!out) abort();
    for (size_t i = 0; i <= n; i++) {
        const char *piece;
        size_t piece_len;
        if (i < n) {
            st = bn_detokenizer_push(&d, ids[i], &piece, &piece_len, &err);
            if (ids[i] < 0 || (uint32_t)ids[i] >= n_vocab) {
                BN_FUZZ_CHECK(st == BN_ERR_RANGE, "streaming id %d gave status %d", ids[i], (int)st);
                continue;
            }
        } else {
            st = bn_detokenizer_flush(&d, &piece, &piece_len, &err);
        }
        BN_FUZZ_CHECK(st == BN_OK, "detokenizer failed: %s", err.message);
        BN_FUZZ_CHECK(piece[piece_len] == '\0', "piece not NUL-terminated");
        if (replace || whole_valid)
            BN_FUZZ_CHECK(bn_fuzz_utf8_valid_prefix((const uint8_t *)piece, piece_len) == piece_len,
                          "invalid UTF-8 emitted (replace %d, decode valid %d)", replace, whole_valid);
        BN_FUZZ_CHECK(out_len + piece_len <= cap, "output grew past 3x the decode");
        memcpy(out + out_len, piece, piece_len);
        out_len += piece_len;
    }
    BN_FUZZ_CHECK(d.n_pending == 0, "bytes pending after flush");
    bn_detokenizer_free(&d);
    if (!replace || whole_valid)
        BN_FUZZ_CHECK(out_len == whole_len && memcmp(out, whole, whole_len) == 0,
                      "streamed %zu bytes differ from the %zu of the whole decode", out_len, whole_len);
    free(out);
    free(whole);
    return 0;
}
