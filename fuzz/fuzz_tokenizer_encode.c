/*
 * fuzz_tokenizer_encode.c: encoding arbitrary bytes and arbitrary Unicode with the byte-level BPE
 * tokenizer of tests/data/oracle-a (fuzz_tokenizer_common.h).
 *
 * Input: one flag byte, then the text. Flag bit 0 set: the rest is read as code points (3 bytes
 * each, reduced into U+0000..U+10FFFF without surrogates) and encoded as UTF-8, so every script
 * and plane is reached; clear: the bytes are the text as they are (invalid UTF-8 included).
 * Bit 1: add_bos. Bit 2: parse_special. Bits 3-5: capacity of a fixed id list for a second
 * encoding. Bits 6-7: the pre-tokenizer (the file's LLaMA-3 split, GPT-2, llama.cpp's default).
 *
 * Properties: every id is in [0, n_vocab); BOS comes first exactly when add_bos and the model
 * adds it; decode(encode(x)) == x byte for byte (BOS skipped), also with special-token parsing;
 * streaming the ids through the detokenizer gives the same bytes; encoding into a fixed list
 * that is too small fails with BN_ERR_RANGE after writing a prefix of the full encoding.
 */
#include "bitnet.h"
#include "fuzz_tokenizer_common.h"

#define MAX_TEXT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_fuzz_input in = bn_fuzz_input_make(data, size);
    uint8_t flags = bn_fuzz_u8(&in);
    static const bn_pretokenizer pres[4] = {BN_PRE_AUTO, BN_PRE_GPT2, BN_PRE_LLAMACPP_DEFAULT, BN_PRE_AUTO};
    const bn_tokenizer *tok = bn_fuzz_tokenizer_pre(pres[flags >> 6]);
    bool add_bos = flags & 2, parse_special = flags & 4;
    size_t fixed_cap = (flags >> 3) & 7;

    static char text[MAX_TEXT * 4];
    size_t len = 0;
    if (flags & 1) {
        while (bn_fuzz_left(&in) > 0 && len + 4 <= sizeof text) {
            uint32_t cp = (uint32_t)bn_fuzz_u8(&in) | (uint32_t)bn_fuzz_u8(&in) << 8 |
                          (uint32_t)bn_fuzz_u8(&in) << 16;
            cp %= 0x110000 - 0x800;
            if (cp >= 0xD800) cp += 0x800; /* skip the surrogates */
            if (cp < 0x80) {
                text[len++] = (char)cp;
            } else if (cp < 0x800) {
                text[len++] = (char)(0xC0 | cp >> 6);
                text[len++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                text[len++] = (char)(0xE0 | cp >> 12);
                text[len++] = (char)(0x80 | (cp >> 6 & 0x3F));
                text[len++] = (char)(0x80 | (cp & 0x3F));
            } else {
                text[len++] = (char)(0xF0 | cp >> 18);
                text[len++] = (char)(0x80 | (cp >> 12 & 0x3F));
                text[len++] = (char)(0x80 | (cp >> 6 & 0x3F));
                text[len++] = (char)(0x80 | (cp & 0x3F));
            }
        }
    } else {
        size_t n;
        const uint8_t *p = bn_fuzz_bytes(&in, MAX_TEXT, &n);
        memcpy(text, p, n);
        len = n;
    }

    bn_error err;
    bn_tokens ids = {0};
    bn_status st = bn_tokenizer_encode(tok, text, len, add_bos, parse_special, &ids, &err);
    BN_FUZZ_CHECK(st == BN_OK, "encode of %zu bytes failed: %s", len, err.message);
    uint32_t n_vocab = bn_tokenizer_n_vocab(tok);
    for (size_t i = 0; i < ids.n; i++)
        BN_FUZZ_CHECK(ids.ids[i] >= 0 && (uint32_t)ids.ids[i] < n_vocab, "id %d at %zu of %u", ids.ids[i], i, n_vocab);
    bool bos = add_bos && bn_tokenizer_add_bos(tok) && bn_tokenizer_bos(tok) >= 0;
    size_t first = bos ? 1 : 0;
    if (bos) BN_FUZZ_CHECK(ids.n >= 1 && ids.ids[0] == bn_tokenizer_bos(tok), "BOS missing");
    BN_FUZZ_CHECK(len == 0 || ids.n > first, "non-empty text gave no tokens");
    if (!parse_special)
        for (size_t i = first; i < ids.n; i++)
            BN_FUZZ_CHECK(bn_tokenizer_token_type(tok, ids.ids[i]) != BN_TOKEN_CONTROL,
                          "control token %d without parse_special", ids.ids[i]);

    /* decode(encode(x)) == x */
    char *out = NULL;
    size_t out_len = 0;
    const int32_t *body = ids.n > first ? ids.ids + first : NULL;
    st = bn_tokenizer_decode(tok, body, ids.n - first, false, &out, &out_len, &err);
    BN_FUZZ_CHECK(st == BN_OK, "decode failed: %s", err.message);
    BN_FUZZ_CHECK(out_len == len && memcmp(out, text, len) == 0 && out[out_len] == '\0',
                  "round trip changed the text: %zu bytes in, %zu out", len, out_len);
    free(out);

    /* the streaming detokenizer agrees */
    bn_detokenizer d;
    bn_detokenizer_init(&d, tok, 0);
    size_t pos = 0;
    for (size_t i = first; i <= ids.n; i++) {
        const char *piece;
        size_t piece_len;
        st = i < ids.n ? bn_detokenizer_push(&d, ids.ids[i], &piece, &piece_len, &err)
                       : bn_detokenizer_flush(&d, &piece, &piece_len, &err);
        BN_FUZZ_CHECK(st == BN_OK, "detokenizer failed: %s", err.message);
        BN_FUZZ_CHECK(pos + piece_len <= len && memcmp(text + pos, piece, piece_len) == 0,
                      "streamed bytes differ at %zu", pos);
        pos += piece_len;
    }
    BN_FUZZ_CHECK(pos == len, "streamed %zu of %zu bytes", pos, len);
    bn_detokenizer_free(&d);

    /* a fixed list that is too small: BN_ERR_RANGE after a prefix */
    if (fixed_cap < ids.n) {
        int32_t storage[8];
        bn_tokens fixed = bn_tokens_fixed(storage, fixed_cap);
        st = bn_tokenizer_encode(tok, text, len, add_bos, parse_special, &fixed, &err);
        BN_FUZZ_CHECK(st == BN_ERR_RANGE, "overfull fixed list gave status %d", (int)st);
        BN_FUZZ_CHECK(fixed.n <= fixed_cap && memcmp(fixed.ids, ids.ids, fixed.n * sizeof(int32_t)) == 0,
                      "fixed list holds %zu ids that are not a prefix", fixed.n);
    }
    bn_tokens_free(&ids);
    return 0;
}
