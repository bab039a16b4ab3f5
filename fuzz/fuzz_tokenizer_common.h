/*
 * fuzz_tokenizer_common.h: the tokenizer both tokenizer targets fuzz: the 759-token byte-level
 * BPE vocabulary of tests/data/oracle-a/model.gguf (256 byte symbols, 500 merges, BOS/EOS/EOT),
 * loaded once per process (once per pre-tokenizer). BITNET_SOURCE_DIR in the environment overrides the source tree the
 * binary was configured from.
 */
#ifndef BN_FUZZ_TOKENIZER_COMMON_H
#define BN_FUZZ_TOKENIZER_COMMON_H

#include "fuzz_input.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

/* pre: BN_PRE_AUTO (the file's own: LLaMA-3), BN_PRE_GPT2 or BN_PRE_LLAMACPP_DEFAULT. */
static inline const bn_tokenizer *bn_fuzz_tokenizer_pre(bn_pretokenizer pre) {
    static bn_tokenizer *toks[4];
    int slot = pre == BN_PRE_GPT2 ? 1 : pre == BN_PRE_LLAMACPP_DEFAULT ? 2 : 0;
    if (toks[slot]) return toks[slot];
    const char *root = getenv("BITNET_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/oracle-a/model.gguf", root && *root ? root : BITNET_SOURCE_DIR);
    bn_gguf *g = NULL;
    bn_error err;
    bn_tokenizer_options opts = {.pre = slot == 0 ? BN_PRE_AUTO : pre};
    if (bn_gguf_open(path, &g, &err) != BN_OK || bn_tokenizer_from_gguf(&toks[slot], g, &opts, &err) != BN_OK) {
        fprintf(stderr, "fuzz: cannot load the tokenizer of %s: %s\n", path, err.message);
        abort();
    }
    bn_gguf_close(g);
    return toks[slot];
}

static inline const bn_tokenizer *bn_fuzz_tokenizer(void) { return bn_fuzz_tokenizer_pre(BN_PRE_AUTO); }

/* Length of the valid UTF-8 prefix of s (Unicode scalar values only, shortest forms). */
static inline size_t bn_fuzz_utf8_valid_prefix(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (i + len > n) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += len;
    }
    return n;
}

#endif
