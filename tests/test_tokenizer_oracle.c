/*
 * test_tokenizer_oracle.c: the small vocabulary of the bitnet.cpp oracle model (759 tokens, 500
 * merges; tests/data/oracle-a) against Hugging Face's tokenizer on the 374-string corpus
 * (tests/data/tokenizer/oracle_a_expected.json, from tests/js/gen-expected.mjs):
 *   - tokenizer.json imported (GPT-2 ByteLevel split)             == HF with that file ("ids");
 *   - model.gguf (no tokenizer.ggml.pre: LLaMA-3 split)           == HF with the LLaMA-3 split
 *                                                                    and ignore_merges ("ids_llama3");
 *   - model.gguf with the GPT-2 split forced                      == "ids";
 *   - the GGUF's vocabulary is the tokenizer.json's, token for token;
 *   - llama.cpp's default split (bitnet.cpp's fallback) splits as its four patterns say.
 */
#include "tokenizer_expected.h"

static bn_tokenizer *from_model(bn_pretokenizer pre) {
    char *path = bn_test_path(bn_test_source_dir(), "tests/data/oracle-a/model.gguf");
    bn_error err;
    bn_gguf *g = NULL;
    bn_tokenizer *tok = NULL;
    CHECK_OK(bn_gguf_open(path, &g, &err), &err);
    if (g) {
        bn_tokenizer_options o = {.pre = pre};
        CHECK_OK(bn_tokenizer_from_gguf(&tok, g, &o, &err), &err);
        bn_gguf_close(g);
    }
    free(path);
    return tok;
}

/* The ids of a text encoded piece by piece (each piece alone through tok). */
static void encode_pieces(const bn_tokenizer *tok, const char *const *pieces, size_t n, bn_tokens *out) {
    bn_error err;
    for (size_t i = 0; i < n; i++)
        CHECK_OK(bn_tokenizer_encode(tok, pieces[i], strlen(pieces[i]), false, false, out, &err), &err);
}

static void check_default_split(const bn_tokenizer *dflt, const bn_tokenizer *gpt2, const char *text,
                                const char *const *pieces, size_t n) {
    bn_tokens want = {0}, got = {0};
    bn_error err;
    encode_pieces(gpt2, pieces, n, &want);
    CHECK_OK(bn_tokenizer_encode(dflt, text, strlen(text), false, false, &got, &err), &err);
    bool same = got.n == want.n && !memcmp(got.ids, want.ids, got.n * sizeof *got.ids);
    CHECKF(same, "default split of \"%s\"", text);
    bn_tokens_free(&want);
    bn_tokens_free(&got);
}

/* Writes a variant of the oracle tokenizer.json to dir/name after edit(root); returns its path. */
static char *write_variant(const char *dir, const char *name, void (*edit)(json_t *)) {
    char *src = bn_test_path(bn_test_source_dir(), "tests/data/oracle-a/tokenizer.json");
    json_error_t jerr;
    json_t *root = json_load_file(src, 0, &jerr);
    free(src);
    CHECK(root != NULL);
    edit(root);
    char *path = bn_test_path(dir, name);
    CHECK(json_dump_file(root, path, 0) == 0);
    json_decref(root);
    return path;
}

static void edit_pair_merges(json_t *root) {
    json_t *merges = json_object_get(json_object_get(root, "model"), "merges");
    size_t i;
    json_t *m;
    json_array_foreach(merges, i, m) {
        const char *s = json_string_value(m);
        const char *space = strchr(s + 1, ' ');
        json_t *pair = json_array();
        json_array_append_new(pair, json_stringn(s, (size_t)(space - s)));
        json_array_append_new(pair, json_string(space + 1));
        json_array_set_new(merges, i, pair);
    }
}
static void edit_wordpiece(json_t *root) {
    json_object_set_new(json_object_get(root, "model"), "type", json_string("WordPiece"));
}
static void edit_metaspace(json_t *root) {
    json_t *pt = json_object();
    json_object_set_new(pt, "type", json_string("Metaspace"));
    json_object_set_new(root, "pre_tokenizer", pt);
}
static void edit_bad_merge(json_t *root) {
    json_array_set_new(json_object_get(json_object_get(root, "model"), "merges"), 3, json_integer(7));
}

/* Hugging Face import: merges as [a, b] pairs equal "a b" strings; unsupported files are errors. */
static void test_hf_import(const bn_hf_vocab *strings) {
    char *dir = bn_test_tmpdir("tokenizer-hf");
    bn_error err;
    char *path = write_variant(dir, "pairs.json", edit_pair_merges);
    bn_hf_vocab pairs;
    CHECK_OK(bn_hf_vocab_load(&pairs, path, &err), &err);
    CHECK(pairs.n_merges == strings->n_merges && pairs.n_tokens == strings->n_tokens);
    int differ = 0;
    for (uint32_t i = 0; i < pairs.n_merges && i < strings->n_merges; i++)
        differ += strcmp(pairs.merges[i], strings->merges[i]) != 0;
    CHECKF(differ == 0, "%d merges differ between the pair and string forms", differ);
    bn_hf_vocab_free(&pairs);
    remove(path);
    free(path);

    void (*bad[])(json_t *) = {edit_wordpiece, edit_metaspace, edit_bad_merge};
    const bn_status want[] = {BN_ERR_UNSUPPORTED, BN_ERR_UNSUPPORTED, BN_ERR_FORMAT};
    for (size_t i = 0; i < 3; i++) {
        path = write_variant(dir, "bad.json", bad[i]);
        bn_hf_vocab v;
        CHECKF(bn_hf_vocab_load(&v, path, &err) == want[i], "variant %zu: %s", i, err.message);
        CHECK_STR_CONTAINS(err.message, "bad.json");
        remove(path);
        free(path);
    }
    bn_hf_vocab v;
    CHECK(bn_hf_vocab_load(&v, "/nonexistent/tokenizer.json", &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "/nonexistent/tokenizer.json");
    /* The GGUF writer path: the keys it writes read back as the same tokenizer. */
    bn_gguf_writer *w = bn_gguf_writer_new();
    char *src = bn_test_path(bn_test_source_dir(), "tests/data/oracle-a/tokenizer.json");
    CHECK_OK(bn_tokenizer_add_hf_json_metadata(w, src, &err), &err);
    CHECK(bn_tokenizer_add_hf_json_metadata(w, src, &err) == BN_ERR_INVALID); /* duplicate keys */
    path = bn_test_path(dir, "tok.gguf");
    CHECK_OK(bn_gguf_writer_write(w, path, &err), &err);
    bn_gguf_writer_free(w);
    bn_gguf *g = NULL;
    CHECK_OK(bn_gguf_open(path, &g, &err), &err);
    if (g) {
        bn_gguf_string pre;
        CHECK_OK(bn_gguf_get_string(g, "tokenizer.ggml.pre", &pre, &err), &err);
        CHECK(bn_gguf_string_eq(pre, "gpt2"));
        uint32_t bos = 0;
        CHECK_OK(bn_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos, &err), &err);
        CHECK(bos == 756);
        bn_tokenizer *tok = NULL;
        CHECK_OK(bn_tokenizer_from_gguf(&tok, g, NULL, &err), &err);
        CHECK(tok && bn_tokenizer_pre(tok) == BN_PRE_GPT2 && bn_tokenizer_eot(tok) == 758);
        bn_tokenizer_free(tok);
        bn_gguf_close(g);
    }
    remove(path);
    free(path);
    free(src);
    remove(dir);
    free(dir);
}

int main(void) {
    const json_t *cases;
    json_t *root = expected_load("tests/data/tokenizer/oracle_a_expected.json", &cases);
    bn_error err;

    char *json_path = bn_test_path(bn_test_source_dir(), "tests/data/oracle-a/tokenizer.json");
    bn_hf_vocab hv;
    CHECK_OK(bn_hf_vocab_load(&hv, json_path, &err), &err);
    free(json_path);
    CHECK(hv.n_tokens == 759 && hv.n_merges == 500);
    CHECK(hv.pre && !strcmp(hv.pre, "gpt2"));
    CHECK(hv.bos_id == 756 && hv.eos_id == 757 && hv.add_bos);
    bn_tokenizer_vocab view = bn_hf_vocab_view(&hv);
    bn_tokenizer *from_json = NULL;
    CHECK_OK(bn_tokenizer_from_vocab(&from_json, &view, NULL, &err), &err);

    bn_tokenizer *model = from_model(BN_PRE_AUTO);
    bn_tokenizer *model_gpt2 = from_model(BN_PRE_GPT2);
    bn_tokenizer *model_default = from_model(BN_PRE_LLAMACPP_DEFAULT);
    if (from_json && model && model_gpt2 && model_default) {
        CHECK(bn_tokenizer_pre(model) == BN_PRE_LLAMA3);
        CHECK(bn_tokenizer_n_vocab(model) == 759);
        CHECK(bn_tokenizer_bos(model) == 756 && bn_tokenizer_eos(model) == 757 && bn_tokenizer_eot(model) == 758);
        CHECK(bn_tokenizer_add_bos(model));
        int differ = 0;
        for (int32_t id = 0; id < 759; id++) {
            size_t la, lb;
            const char *a = bn_tokenizer_token_text(model, id, &la), *b = bn_tokenizer_token_text(from_json, id, &lb);
            if (la != lb || memcmp(a, b, la) || bn_tokenizer_token_type(model, id) != bn_tokenizer_token_type(from_json, id))
                differ++;
        }
        CHECKF(differ == 0, "%d tokens differ between model.gguf and tokenizer.json", differ);

        expected_check(from_json, cases, "ids", true, true, "oracle-json");
        expected_check(from_json, cases, "ids_plain", false, true, "oracle-json");
        expected_check(model_gpt2, cases, "ids", true, true, "oracle-gguf-gpt2");
        expected_check(model, cases, "ids_llama3", true, true, "oracle-gguf");

        /* The prompt of the oracle's logits starts with BOS; encoding adds it. */
        bn_tokens ids = {0};
        CHECK_OK(bn_tokenizer_encode(model, "the", 3, true, false, &ids, &err), &err);
        CHECK(ids.n >= 2 && ids.ids[0] == 756);
        bn_tokens_free(&ids);

        /* llama.cpp's default split: punctuation runs first, then GPT-2, then digits, then
         * groups of three ASCII digits; the pieces are BPE'd alone. */
        check_default_split(model_default, model_gpt2, "a+b", (const char *const[]){"a", "+", "b"}, 3);
        check_default_split(model_default, model_gpt2, "he's here",
                            (const char *const[]){"he", "'", "s", " here"}, 4);
        check_default_split(model_default, model_gpt2, " 1234567",
                            (const char *const[]){" ", "123", "456", "7"}, 4);
        check_default_split(model_default, model_gpt2, "hello, world!!",
                            (const char *const[]){"hello", ",", " world", "!!"}, 4);
        check_default_split(model_default, model_gpt2, "x  y",
                            (const char *const[]){"x", " ", " y"}, 3);
    }
    test_hf_import(&hv);
    bn_tokenizer_free(from_json);
    bn_tokenizer_free(model);
    bn_tokenizer_free(model_gpt2);
    bn_tokenizer_free(model_default);
    bn_hf_vocab_free(&hv);
    json_decref(root);
    return bn_test_finish("test_tokenizer_oracle");
}
