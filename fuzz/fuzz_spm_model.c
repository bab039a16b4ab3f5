/*
 * fuzz_spm_model.c: the SentencePiece tokenizer.model reader (convert/spm_model.h) on arbitrary
 * bytes: the whole input is given to bn_spm_model_parse; the seeds hold a valid toy model and
 * malformed variants of it.
 *
 * Properties beyond "no crash, no sanitizer report" (ASan catches any read past the input):
 *   - a failure fills the error (same code, a one-line message that starts with the file name,
 *     free of control bytes) and leaves nothing to free;
 *   - an accepted model is a "llama" vocabulary of at least one token, every token a string no
 *     longer than the input, types in 1-6, scores finite, unk/bos/eos ids -1 or below the token
 *     count, add_bos exactly when there is a BOS, and no merges or `pre`.
 */
#include "bitnet.h"
#include "convert/spm_model.h"
#include "fuzz_input.h"

static volatile size_t g_sink;

static void check_message(bn_status st, const bn_error *err) {
    BN_FUZZ_CHECK(err->code == st && memchr(err->message, 0, sizeof err->message), "error not filled (status %d)",
                  (int)st);
    BN_FUZZ_CHECK(!strncmp(err->message, "tokenizer.model: ", 17), "message does not name the file: %s",
                  err->message);
    for (const char *p = err->message; *p; p++)
        BN_FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte 0x%02x in message: %s",
                      (unsigned char)*p, err->message);
}

static void check_id(int32_t id, uint32_t n, const char *what) {
    BN_FUZZ_CHECK(id >= -1 && (id < 0 || (uint32_t)id < n), "%s %d of %u tokens", what, id, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_error err;
    bn_error_clear(&err);
    bn_hf_vocab v;
    bn_status st = bn_spm_model_parse(&v, data, size, "tokenizer.model", &err);
    if (st != BN_OK) {
        check_message(st, &err);
        BN_FUZZ_CHECK(!v.tokens && !v.token_types && !v.scores && !v.merges && v.n_tokens == 0,
                      "failed parse kept arrays");
        return 0;
    }
    BN_FUZZ_CHECK(v.model && !strcmp(v.model, "llama") && !v.merges && v.n_merges == 0 && !v.pre, "not SentencePiece");
    BN_FUZZ_CHECK(v.n_tokens >= 1 && v.tokens && v.token_types && v.scores, "%u tokens", v.n_tokens);
    for (uint32_t i = 0; i < v.n_tokens; i++) {
        BN_FUZZ_CHECK(v.tokens[i] != NULL, "token %u missing", i);
        const size_t len = strlen(v.tokens[i]);
        BN_FUZZ_CHECK(len <= size, "token %u longer than the input", i);
        g_sink += len;
        BN_FUZZ_CHECK(v.token_types[i] >= BN_TOKEN_NORMAL && v.token_types[i] <= BN_TOKEN_BYTE, "token %u type %d", i,
                      v.token_types[i]);
        BN_FUZZ_CHECK(isfinite(v.scores[i]), "token %u score %g", i, (double)v.scores[i]);
    }
    check_id(v.unk_id, v.n_tokens, "unk_id");
    check_id(v.bos_id, v.n_tokens, "bos_id");
    check_id(v.eos_id, v.n_tokens, "eos_id");
    BN_FUZZ_CHECK(v.add_bos == (v.bos_id >= 0), "add_bos %d with bos %d", (int)v.add_bos, v.bos_id);
    bn_hf_vocab_free(&v);
    return 0;
}
