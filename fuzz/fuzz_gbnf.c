/*
 * fuzz_gbnf.c: the GBNF front end (sampling/gbnf.h) and the grammar matcher behind it. The input
 * is a count byte n, n choice bytes, then the GBNF text (the rest).
 *
 * Properties: compiling never crashes, and a refusal always has a message; on a compiled grammar,
 * each choice byte picks one of the bytes the matcher allows next, and try() and accept() agree
 * on it; the state's shortest completion has the length the outlook predicted, each of its bytes
 * is allowed in turn, and after all of them the state accepts. (An allowed byte may still be
 * refused when the matcher runs out of stacks, BN_GRAMMAR_MAX_STACKS, on a very ambiguous
 * grammar; the check ends there, since the API does not tell that case apart.)
 */
#include "bitnet.h"
#include "fuzz_input.h"
#include "sampling/gbnf.h"

#define COMPLETION_CAP 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_fuzz_input in = bn_fuzz_input_make(data, size);
    size_t n_choices;
    const uint8_t *choices = bn_fuzz_bytes(&in, bn_fuzz_u8(&in), &n_choices);
    size_t text_len;
    const uint8_t *text = bn_fuzz_bytes(&in, bn_fuzz_left(&in), &text_len);

    bn_grammar *g = NULL;
    bn_error err = {0};
    if (bn_gbnf_compile((const char *)text, text_len, &g, &err) != BN_OK) {
        BN_FUZZ_CHECK(g == NULL && err.message[0] != '\0', "a refusal without a message");
        return 0;
    }
    bn_grammar_matcher *m = NULL;
    if (bn_grammar_matcher_new(&m, g, &err) != BN_OK) { /* the start state may need too many stacks */
        bn_grammar_free(g);
        return 0;
    }
    static char out[COMPLETION_CAP];
    size_t len = 0;
    for (size_t i = 0; i < n_choices; i++) {
        uint8_t allowed[256];
        int n = 0;
        for (int c = 0; c < 256; c++)
            if (bn_grammar_matcher_allows_byte(m, (uint8_t)c)) allowed[n++] = (uint8_t)c;
        if (n == 0) break;
        uint8_t c = allowed[choices[i] % n];
        bn_grammar_outlook o = bn_grammar_matcher_try(m, &c, 1);
        bool took = bn_grammar_matcher_accept(m, &c, 1);
        BN_FUZZ_CHECK(took == o.ok, "try says %d, accept says %d for byte 0x%02x", o.ok, took, c);
        if (took) out[len++] = (char)c;
    }
    bn_grammar_outlook before = bn_grammar_matcher_outlook(m);
    BN_FUZZ_CHECK(before.ok, "the state after accepted bytes is dead: %.*s", (int)len, out);
    size_t n = bn_grammar_matcher_completion(m, out + len, sizeof out - len);
    if (n == (size_t)-1) {
        BN_FUZZ_CHECK(before.completion_len >= sizeof out - len, "a completion of %zu bytes did not fit",
                      before.completion_len);
    } else {
        BN_FUZZ_CHECK(n == before.completion_len, "completion of %zu bytes, outlook said %zu", n,
                      before.completion_len);
        size_t i = 0;
        for (; i < n; i++) {
            uint8_t c = (uint8_t)out[len + i];
            BN_FUZZ_CHECK(bn_grammar_matcher_allows_byte(m, c), "completion byte %zu not allowed: %.*s", i,
                          (int)(len + n), out);
            /* an allowed byte is refused only when the matcher runs out of stacks (an ambiguous
             * grammar): that ends the check */
            if (!bn_grammar_matcher_accept(m, &c, 1)) break;
        }
        BN_FUZZ_CHECK(i < n || bn_grammar_matcher_outlook(m).accepting, "completion not accepted: %.*s",
                      (int)(len + n), out);
    }
    bn_grammar_matcher_free(m);
    bn_grammar_free(g);
    return 0;
}
