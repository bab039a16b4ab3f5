/*
 * test_tokenizer.c: the byte-level BPE tokenizer on a small hand-made vocabulary: merge order,
 * ignore_merges, special and user-defined tokens, BOS, invalid UTF-8 (byte-wise, round trip,
 * random bytes), out-of-range ids, the streaming detokenizer (characters split across tokens),
 * fixed-capacity output, and malformed vocabularies (from arrays and from GGUF metadata).
 */
#include "testutil.h"
#include "tokenizer/tokenizer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* Ids of the hand-made vocabulary: 0..255 are the bytes, in byte order. */
enum { T_HE = 256, T_LL, T_HELL, T_HELLO, T_GW, T_OR, T_GWOR, T_BOS, T_EOT, T_TAG, T_GWORLD, T_COUNT };

static char byte_tokens[256][4];

/* GPT-2's byte -> unicode mapping written out independently of the tokenizer. */
static void make_byte_tokens(void) {
    int next = 256;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        int cp = printable ? b : next++;
        char *o = byte_tokens[b];
        if (cp < 0x80) {
            o[0] = (char)cp;
            o[1] = 0;
        } else {
            o[0] = (char)(0xC0 | (cp >> 6));
            o[1] = (char)(0x80 | (cp & 0x3F));
            o[2] = 0;
        }
    }
}

static const char *tokens[T_COUNT];
static int32_t types[T_COUNT];
static const char *const merges[] = {"h e", "l l", "he ll", "hell o", "\xc4\xa0 w", "o r", "\xc4\xa0w or"};

static bn_tokenizer_vocab small_vocab(void) {
    make_byte_tokens();
    for (int b = 0; b < 256; b++) {
        tokens[b] = byte_tokens[b];
        types[b] = BN_TOKEN_NORMAL;
    }
    const char *extra[] = {"he", "ll", "hell", "hello", "\xc4\xa0w", "or", "\xc4\xa0wor", "<|bos|>",
                           "<|eot_id|>", "<tag>", "\xc4\xa0world"};
    const int32_t extra_types[] = {1, 1, 1, 1, 1, 1, 1, BN_TOKEN_CONTROL, BN_TOKEN_CONTROL,
                                   BN_TOKEN_USER_DEFINED, 1};
    for (int i = 0; i < T_COUNT - 256; i++) {
        tokens[256 + i] = extra[i];
        types[256 + i] = extra_types[i];
    }
    bn_tokenizer_vocab v = {
        .tokens = tokens, .token_types = types, .n_tokens = T_COUNT, .merges = merges,
        .n_merges = sizeof merges / sizeof merges[0], .bos_id = T_BOS, .eos_id = -1, .eot_id = -1,
        .add_bos = -1, .pre = NULL,
    };
    return v;
}

static bn_tokenizer *make(bn_pretokenizer pre) {
    bn_tokenizer_vocab v = small_vocab();
    bn_tokenizer_options o = {.pre = pre};
    bn_tokenizer *tok = NULL;
    bn_error err;
    CHECK_OK(bn_tokenizer_from_vocab(&tok, &v, &o, &err), &err);
    return tok;
}

/* Encodes and compares with an expected list (terminated by -2). */
static bool encodes_to(const bn_tokenizer *tok, const char *text, size_t len, bool bos, bool special,
                       const int32_t *want) {
    bn_tokens got = {0};
    bn_error err;
    bool ok = bn_tokenizer_encode(tok, text, len, bos, special, &got, &err) == BN_OK;
    size_t n = 0;
    while (want[n] != -2) n++;
    ok = ok && got.n == n && (n == 0 || memcmp(got.ids, want, n * sizeof *want) == 0);
    if (!ok) {
        fprintf(stderr, "  got:");
        for (size_t i = 0; i < got.n; i++) fprintf(stderr, " %d", got.ids[i]);
        fprintf(stderr, "\n");
    }
    bn_tokens_free(&got);
    return ok;
}
#define ENC(tok, text, bos, special, ...) \
    encodes_to(tok, text, sizeof(text) - 1, bos, special, (const int32_t[]){__VA_ARGS__, -2})

static void test_basics(void) {
    bn_tokenizer *tok = make(BN_PRE_AUTO);
    if (!tok) return;
    CHECK(bn_tokenizer_pre(tok) == BN_PRE_LLAMA3); /* no `pre`: LLaMA-3 split + ignore_merges */
    CHECK(bn_tokenizer_n_vocab(tok) == T_COUNT);
    CHECK(bn_tokenizer_bos(tok) == T_BOS && bn_tokenizer_add_bos(tok));
    CHECK(bn_tokenizer_eot(tok) == T_EOT); /* found by its text */
    CHECK(bn_tokenizer_is_eog(tok, T_EOT) && !bn_tokenizer_is_eog(tok, T_BOS) && !bn_tokenizer_is_eog(tok, -1));
    CHECK(bn_tokenizer_token_type(tok, T_TAG) == BN_TOKEN_USER_DEFINED);
    CHECK(bn_tokenizer_token_type(tok, 99999) == BN_TOKEN_UNDEFINED);
    size_t len;
    const uint8_t *b = bn_tokenizer_token_bytes(tok, T_GWORLD, &len);
    CHECK(len == 6 && !memcmp(b, " world", 6)); /* byte-level form decoded */
    b = bn_tokenizer_token_bytes(tok, 10, &len);
    CHECK(len == 1 && b[0] == '\n');
    CHECK(bn_tokenizer_token_bytes(tok, T_COUNT, &len) == NULL);
    CHECK(!strcmp(bn_tokenizer_token_text(tok, T_GW, &len), "\xc4\xa0w") && len == 3);
    CHECK(bn_tokenizer_find(tok, "<tag>") == T_TAG && bn_tokenizer_find(tok, "nope") == -1);

    CHECK(ENC(tok, "hello", false, false, T_HELLO));
    CHECK(ENC(tok, "hello", true, false, T_BOS, T_HELLO));
    CHECK(ENC(tok, "hel", false, false, T_HE, 'l'));   /* "he l" is no merge */
    CHECK(ENC(tok, "ellh", false, false, 'e', T_LL, 'h'));
    CHECK(ENC(tok, "hellohello", false, false, T_HELLO, T_HELLO)); /* not in the vocabulary: merges */
    /* ignore_merges: " world" is in the vocabulary but merges only reach " wor" + l + d. */
    CHECK(ENC(tok, " world", false, false, T_GWORLD));
    CHECK(ENC(tok, "hello world", false, false, T_HELLO, T_GWORLD));
    CHECK(ENC(tok, " worlds", false, false, T_GWOR, 'l', 'd', 's'));
    /* Special tokens: control ones only when asked, user-defined always. */
    CHECK(ENC(tok, "<|eot_id|>he", false, true, T_EOT, T_HE));
    CHECK(ENC(tok, "<|eot_id|>", false, false, '<', '|', 'e', 'o', 't', '_', 'i', 'd', '|', '>'));
    CHECK(ENC(tok, "a<tag>b", false, false, 'a', T_TAG, 'b'));
    CHECK(ENC(tok, "a<tag>b", false, true, 'a', T_TAG, 'b'));
    CHECK(ENC(tok, "<|bos|><|bos|>", true, true, T_BOS, T_BOS, T_BOS));
    CHECK(ENC(tok, "", true, false, T_BOS));
    /* Whitespace and newline handling of the LLaMA-3 split: "\n\n" then " he". */
    CHECK(ENC(tok, "\n\n he", false, false, '\n', '\n', ' ', T_HE));
    /* Appending: encode adds to what is already there. */
    bn_tokens t = {0};
    bn_error err;
    CHECK_OK(bn_tokenizer_encode(tok, "he", 2, false, false, &t, &err), &err);
    CHECK_OK(bn_tokenizer_encode(tok, "he", 2, false, false, &t, &err), &err);
    CHECK(t.n == 2 && t.ids[0] == T_HE && t.ids[1] == T_HE);
    bn_tokens_free(&t);
    /* Fixed capacity: too small -> BN_ERR_RANGE; what fitted stays. */
    int32_t storage[2];
    bn_tokens fixed = bn_tokens_fixed(storage, 2);
    CHECK(bn_tokenizer_encode(tok, "a b c d", 7, false, false, &fixed, &err) == BN_ERR_RANGE);
    CHECK(fixed.n == 2 && storage[0] == 'a');
    bn_tokenizer_free(tok);

    /* GPT-2 split: no ignore_merges, so " world" is built by merges. */
    tok = make(BN_PRE_GPT2);
    if (tok) {
        CHECK(ENC(tok, " world", false, false, T_GWOR, 'l', 'd'));
        CHECK(ENC(tok, "\n\n he", false, false, '\n', '\n', ' ', T_HE));
        bn_tokenizer_free(tok);
    }
    /* llama.cpp's default split: punctuation first ("a+b" -> a | + | b), digits in threes. */
    tok = make(BN_PRE_LLAMACPP_DEFAULT);
    if (tok) {
        CHECK(ENC(tok, "a+b", false, false, 'a', '+', 'b'));
        CHECK(ENC(tok, "1234567", false, false, '1', '2', '3', '4', '5', '6', '7'));
        bn_tokenizer_free(tok);
    }
    /* add_bos_token false: no BOS even when asked. */
    bn_tokenizer_vocab v = small_vocab();
    v.add_bos = 0;
    tok = NULL;
    CHECK_OK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err), &err);
    if (tok) {
        CHECK(!bn_tokenizer_add_bos(tok));
        CHECK(ENC(tok, "he", true, false, T_HE));
        bn_tokenizer_free(tok);
    }
}

static bool round_trips(const bn_tokenizer *tok, const char *text, size_t len) {
    bn_tokens ids = {0};
    bn_error err;
    char *back = NULL;
    size_t back_len = 0;
    bool ok = bn_tokenizer_encode(tok, text, len, false, false, &ids, &err) == BN_OK &&
              bn_tokenizer_decode(tok, ids.ids, ids.n, false, &back, &back_len, &err) == BN_OK &&
              back_len == len && memcmp(back, text, len) == 0;
    /* The streaming detokenizer gives the same bytes. */
    bn_detokenizer d;
    bn_detokenizer_init(&d, tok, 0);
    char *streamed = malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; ok && i < ids.n; i++) {
        const char *piece;
        size_t plen;
        ok = bn_detokenizer_push(&d, ids.ids[i], &piece, &plen, &err) == BN_OK && n + plen <= len;
        if (ok) memcpy(streamed + n, piece, plen), n += plen;
    }
    const char *rest;
    size_t rest_len;
    ok = ok && bn_detokenizer_flush(&d, &rest, &rest_len, &err) == BN_OK && n + rest_len == len;
    if (ok) memcpy(streamed + n, rest, rest_len);
    ok = ok && memcmp(streamed, text, len) == 0;
    free(streamed);
    bn_detokenizer_free(&d);
    free(back);
    bn_tokens_free(&ids);
    return ok;
}

static void test_invalid_utf8(void) {
    bn_tokenizer *tok = make(BN_PRE_AUTO);
    if (!tok) return;
    /* Each byte of an invalid sequence is its own token; valid text around it is encoded normally. */
    CHECK(ENC(tok, "he\xffhe", false, false, T_HE, 0xff, T_HE));
    CHECK(ENC(tok, "\xc3", false, false, 0xc3));                      /* truncated 2-byte */
    CHECK(ENC(tok, "\xe2\x82 he", false, false, 0xe2, 0x82, ' ', T_HE)); /* truncated 3-byte */
    CHECK(ENC(tok, "\xc0\xaf", false, false, 0xc0, 0xaf));            /* overlong */
    CHECK(ENC(tok, "\xed\xa0\x80", false, false, 0xed, 0xa0, 0x80));  /* surrogate */
    CHECK(ENC(tok, "\xf4\x90\x80\x80", false, false, 0xf4, 0x90, 0x80, 0x80)); /* > U+10FFFF */
    CHECK(ENC(tok, "\x80\x80", false, false, 0x80, 0x80));            /* lone continuations */
    CHECK(ENC(tok, "a\0b", false, false, 'a', 0, 'b'));               /* NUL is just a byte */
    static const char *const samples[] = {"he\xffhe", "\xc3", "\xe2\x82 he", "\xc0\xaf", "\xed\xa0\x80",
                                          "\xf0\x9f\x98", "\xf0\x9f\x98\x80\xf0", "<|eot_id\xff|>"};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
        CHECKF(round_trips(tok, samples[i], strlen(samples[i])), "sample %zu", i);
    /* Random bytes never fail and always round-trip. */
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 42);
    int failures = 0;
    for (int i = 0; i < 500; i++) {
        char buf[96];
        size_t len = (size_t)bn_test_rng_range(&rng, 0, sizeof buf);
        for (size_t k = 0; k < len; k++) {
            /* Mix ASCII, continuation and lead bytes so some sequences are valid. */
            int kind = (int)bn_test_rng_range(&rng, 0, 3);
            buf[k] = (char)(kind == 0 ? bn_test_rng_range(&rng, 0x20, 0x7e)
                            : kind == 1 ? bn_test_rng_range(&rng, 0x80, 0xbf)
                                        : bn_test_rng_range(&rng, 0xc0, 0xff));
        }
        if (!round_trips(tok, buf, len)) failures++;
    }
    CHECKF(failures == 0, "%d of 500 random byte strings did not round-trip", failures);
    bn_tokenizer_free(tok);
}

static void test_decode_and_stream(void) {
    bn_tokenizer *tok = make(BN_PRE_AUTO);
    if (!tok) return;
    bn_error err;
    char *text = NULL;
    size_t len = 0;
    int32_t ids[] = {T_BOS, T_HELLO, T_GWORLD, T_EOT};
    CHECK_OK(bn_tokenizer_decode(tok, ids, 4, false, &text, &len, &err), &err);
    CHECK(text && !strcmp(text, "<|bos|>hello world<|eot_id|>") && len == 28);
    free(text);
    CHECK_OK(bn_tokenizer_decode(tok, ids, 4, true, &text, &len, &err), &err);
    CHECK(text && !strcmp(text, "hello world"));
    free(text);
    /* Out-of-range ids are errors, not crashes. */
    int32_t bad[] = {T_HE, T_COUNT};
    CHECK(bn_tokenizer_decode(tok, bad, 2, false, &text, &len, &err) == BN_ERR_RANGE && text == NULL);
    CHECK_STR_CONTAINS(err.message, "position 1");
    int32_t negative[] = {-1};
    CHECK(bn_tokenizer_decode(tok, negative, 1, false, &text, &len, &err) == BN_ERR_RANGE);

    bn_detokenizer d;
    bn_detokenizer_init(&d, tok, 0);
    const char *piece;
    size_t plen;
    /* "é" (c3 a9) split over two byte tokens: nothing, then the whole character. */
    CHECK_OK(bn_detokenizer_push(&d, T_HE, &piece, &plen, &err), &err);
    CHECK(plen == 2 && !strcmp(piece, "he"));
    CHECK_OK(bn_detokenizer_push(&d, 0xc3, &piece, &plen, &err), &err);
    CHECK(plen == 0 && piece[0] == '\0');
    CHECK(bn_detokenizer_push(&d, T_COUNT + 5, &piece, &plen, &err) == BN_ERR_RANGE); /* state kept */
    CHECK(bn_detokenizer_push(&d, -3, &piece, &plen, &err) == BN_ERR_RANGE);
    CHECK_OK(bn_detokenizer_push(&d, 0xa9, &piece, &plen, &err), &err);
    CHECK(plen == 2 && !memcmp(piece, "\xc3\xa9", 2));
    /* A 4-byte emoji over four tokens. */
    const uint8_t emoji[4] = {0xf0, 0x9f, 0x98, 0x80};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(bn_detokenizer_push(&d, emoji[i], &piece, &plen, &err), &err);
        CHECK(plen == 0);
    }
    CHECK_OK(bn_detokenizer_push(&d, emoji[3], &piece, &plen, &err), &err);
    CHECK(plen == 4 && !memcmp(piece, emoji, 4));
    /* A held lead byte followed by ASCII can never complete: both come out as they are. */
    CHECK_OK(bn_detokenizer_push(&d, 0xe2, &piece, &plen, &err), &err);
    CHECK(plen == 0);
    CHECK_OK(bn_detokenizer_push(&d, 'x', &piece, &plen, &err), &err);
    CHECK(plen == 2 && !memcmp(piece, "\xe2x", 2));
    /* End of stream returns what is held. */
    CHECK_OK(bn_detokenizer_push(&d, 0xe2, &piece, &plen, &err), &err);
    CHECK_OK(bn_detokenizer_push(&d, 0x82, &piece, &plen, &err), &err);
    CHECK(plen == 0);
    CHECK_OK(bn_detokenizer_flush(&d, &piece, &plen, &err), &err);
    CHECK(plen == 2 && !memcmp(piece, "\xe2\x82", 2));
    CHECK_OK(bn_detokenizer_flush(&d, &piece, &plen, &err), &err);
    CHECK(plen == 0);
    bn_detokenizer_free(&d);

    /* Replacing invalid bytes and skipping specials. */
    bn_detokenizer_init(&d, tok, BN_DETOK_REPLACE_INVALID | BN_DETOK_SKIP_SPECIAL);
    CHECK_OK(bn_detokenizer_push(&d, 0xff, &piece, &plen, &err), &err);
    CHECK(plen == 3 && !memcmp(piece, "\xef\xbf\xbd", 3));
    CHECK_OK(bn_detokenizer_push(&d, T_EOT, &piece, &plen, &err), &err);
    CHECK(plen == 0);
    CHECK_OK(bn_detokenizer_push(&d, T_TAG, &piece, &plen, &err), &err); /* user-defined: shown */
    CHECK(plen == 5 && !strcmp(piece, "<tag>"));
    CHECK_OK(bn_detokenizer_push(&d, 0xf0, &piece, &plen, &err), &err);
    CHECK_OK(bn_detokenizer_push(&d, 0x9f, &piece, &plen, &err), &err);
    CHECK_OK(bn_detokenizer_flush(&d, &piece, &plen, &err), &err);
    CHECK(plen == 3 && !memcmp(piece, "\xef\xbf\xbd", 3)); /* one U+FFFD for the cut character */
    bn_detokenizer_free(&d);
    bn_tokenizer_free(tok);
}

static void test_bad_vocabularies(void) {
    bn_error err;
    bn_tokenizer *tok = NULL;
    bn_tokenizer_vocab v = small_vocab();
    const char *bad_merges[] = {"h e", "x zz"};
    v.merges = bad_merges;
    v.n_merges = 2;
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_FORMAT && tok == NULL);
    CHECK_STR_CONTAINS(err.message, "merges[1]");
    const char *no_space[] = {"he"};
    v.merges = no_space;
    v.n_merges = 1;
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_FORMAT);
    v = small_vocab();
    v.pre = "mystery";
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.message, "mystery");
    /* The pre-tokenizer names files use (llama.cpp's spellings included). */
    const struct {
        const char *name;
        bn_pretokenizer pre;
    } names[] = {{"gpt2", BN_PRE_GPT2},       {"gpt-2", BN_PRE_GPT2},     {"llama3", BN_PRE_LLAMA3},
                 {"llama-bpe", BN_PRE_LLAMA3}, {"llama-v3", BN_PRE_LLAMA3}, {"falcon3", BN_PRE_LLAMA3},
                 {"default", BN_PRE_LLAMACPP_DEFAULT}, {"llamacpp-default", BN_PRE_LLAMACPP_DEFAULT}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        v = small_vocab();
        v.pre = names[i].name;
        CHECK_OK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err), &err);
        CHECKF(tok && bn_tokenizer_pre(tok) == names[i].pre, "pre %s", names[i].name);
        CHECK(bn_tokenizer_pre_from_name(names[i].name, strlen(names[i].name)) == names[i].pre);
        /* " world" is one vocabulary entry that merges cannot build: ignore_merges (falcon3 is
         * llama.cpp's LLaMA-3 type) takes it whole, the GPT-2 split does not. */
        if (tok && names[i].pre == BN_PRE_LLAMA3) CHECKF(ENC(tok, " world", false, false, T_GWORLD), "%s", names[i].name);
        if (tok && names[i].pre == BN_PRE_GPT2) CHECKF(ENC(tok, " world", false, false, T_GWOR, 'l', 'd'), "%s", names[i].name);
        bn_tokenizer_free(tok);
        tok = NULL;
    }
    CHECK(bn_tokenizer_pre_from_name("gpt", 3) == BN_PRE_AUTO);
    CHECK(bn_tokenizer_pre_from_name("falcon", 6) == BN_PRE_AUTO);
    v = small_vocab();
    v.pre = "qwen2\n";
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.message, "'qwen2\\n'");
    CHECK_STR_CONTAINS(err.message, "falcon3");
    /* 'none' is SentencePiece's and no option for byte-level BPE. */
    v = small_vocab();
    bn_tokenizer_options none = {.pre = BN_PRE_NONE};
    CHECK(bn_tokenizer_from_vocab(&tok, &v, &none, &err) == BN_ERR_INVALID && tok == NULL);
    v = small_vocab();
    v.bos_id = T_COUNT;
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_FORMAT);
    v = small_vocab();
    int32_t bad_types[T_COUNT];
    memcpy(bad_types, types, sizeof bad_types);
    bad_types[7] = 42;
    v.token_types = bad_types;
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_FORMAT);
    v = small_vocab();
    v.n_tokens = 0;
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_FORMAT);
    /* A vocabulary without a token for some byte: encoding that byte is an error, not a crash. */
    v = small_vocab();
    const char *tokens2[T_COUNT];
    memcpy(tokens2, tokens, sizeof tokens2);
    tokens2['z'] = "[unused]";
    v.tokens = tokens2;
    CHECK_OK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err), &err);
    if (tok) {
        bn_tokens ids = {0};
        CHECK(bn_tokenizer_encode(tok, "zz", 2, false, false, &ids, &err) == BN_ERR_UNSUPPORTED);
        CHECK_STR_CONTAINS(err.message, "0x7a");
        bn_tokens_free(&ids);
        bn_tokenizer_free(tok);
    }
}

/* GGUF metadata problems, through the writer and the reader. */
static bn_status from_gguf_keys(void (*add)(bn_gguf_writer *), bn_error *err) {
    char *dir = bn_test_tmpdir("tokenizer-gguf");
    char *path = bn_test_path(dir, "t.gguf");
    bn_gguf_writer *w = bn_gguf_writer_new();
    add(w);
    bn_error werr;
    bn_status st = bn_gguf_writer_write(w, path, &werr);
    bn_gguf_writer_free(w);
    bn_gguf *g = NULL;
    if (st == BN_OK) st = bn_gguf_open(path, &g, err);
    bn_tokenizer *tok = NULL;
    if (st == BN_OK) st = bn_tokenizer_from_gguf(&tok, g, NULL, err);
    bn_tokenizer_free(tok);
    bn_gguf_close(g);
    remove(path);
    remove(dir);
    free(path);
    free(dir);
    return st;
}

static void add_tokens(bn_gguf_writer *w) {
    bn_tokenizer_vocab v = small_vocab();
    bn_gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", v.tokens, v.n_tokens, NULL);
}
static void keys_ok(bn_gguf_writer *w) {
    bn_gguf_writer_add_string(w, "tokenizer.ggml.model", "gpt2", NULL);
    add_tokens(w);
    bn_gguf_writer_add_string_array(w, "tokenizer.ggml.merges", merges, 7, NULL);
    bn_gguf_writer_add_array(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, types, T_COUNT, NULL);
    bn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", T_BOS, NULL);
    bn_gguf_writer_add_u32(w, "tokenizer.ggml.eot_token_id", T_TAG, NULL);
}
static void keys_wrong_model(bn_gguf_writer *w) {
    bn_gguf_writer_add_string(w, "tokenizer.ggml.model", "bert\x1b[2J", NULL); /* llama.cpp's WordPiece */
    add_tokens(w);
}
static void keys_no_tokens(bn_gguf_writer *w) { bn_gguf_writer_add_string(w, "tokenizer.ggml.model", "gpt2", NULL); }
static void keys_short_types(bn_gguf_writer *w) {
    bn_gguf_writer_add_string(w, "tokenizer.ggml.model", "gpt2", NULL);
    add_tokens(w);
    bn_gguf_writer_add_array(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, types, 3, NULL);
}
static void keys_string_bos(bn_gguf_writer *w) {
    bn_gguf_writer_add_string(w, "tokenizer.ggml.model", "gpt2", NULL);
    add_tokens(w);
    bn_gguf_writer_add_string(w, "tokenizer.ggml.bos_token_id", "1", NULL);
}
static void keys_bad_pre(bn_gguf_writer *w) {
    keys_ok(w);
    bn_gguf_writer_add_string(w, "tokenizer.ggml.pre", "qwen2", NULL);
}

static void test_gguf_metadata(void) {
    bn_error err;
    CHECK_OK(from_gguf_keys(keys_ok, &err), &err);
    CHECK(from_gguf_keys(keys_wrong_model, &err) == BN_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.message, "tokenizer.ggml.model");
    CHECK_STR_CONTAINS(err.message, "'bert\\x1b[2J'"); /* the file's string, quoted */
    CHECK(from_gguf_keys(keys_no_tokens, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "tokenizer.ggml.tokens");
    CHECK(from_gguf_keys(keys_short_types, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "token_type");
    CHECK(from_gguf_keys(keys_string_bos, &err) != BN_OK);
    CHECK(from_gguf_keys(keys_bad_pre, &err) == BN_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.message, "qwen2");
}

/* One tokenizer shared by threads (as the server does): every thread gets the single-thread ids. */
typedef struct thread_job {
    const bn_tokenizer *tok;
    const char *text;
    const bn_tokens *want;
    int mismatches;
} thread_job;

static void *encode_many(void *arg) {
    thread_job *job = arg;
    for (int i = 0; i < 200; i++) {
        bn_tokens got = {0};
        bn_error err;
        bool ok = bn_tokenizer_encode(job->tok, job->text, strlen(job->text), true, true, &got, &err) == BN_OK &&
                  got.n == job->want->n && !memcmp(got.ids, job->want->ids, got.n * sizeof *got.ids);
        job->mismatches += !ok;
        bn_tokens_free(&got);
    }
    return NULL;
}

static void test_threads(void) {
    bn_tokenizer *tok = make(BN_PRE_AUTO);
    if (!tok) return;
    const char *text = "hello world <|eot_id|> hellohello \xff worlds \n\n 12345 <tag>";
    bn_tokens want = {0};
    bn_error err;
    CHECK_OK(bn_tokenizer_encode(tok, text, strlen(text), true, true, &want, &err), &err);
    pthread_t threads[4];
    thread_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){tok, text, &want, 0};
        CHECK(pthread_create(&threads[i], NULL, encode_many, &jobs[i]) == 0);
    }
    int mismatches = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        mismatches += jobs[i].mismatches;
    }
    CHECKF(mismatches == 0, "%d encodes differed under threads", mismatches);
    bn_tokens_free(&want);
    bn_tokenizer_free(tok);
}

int main(void) {
    test_basics();
    test_invalid_utf8();
    test_decode_and_stream();
    test_bad_vocabularies();
    test_gguf_metadata();
    test_threads();
    return bn_test_finish("test_tokenizer");
}
