/*
 * test_kv_q8_0.c: the q8_0 KV cache (llama.cpp's -ctk/-ctv q8_0; kernels/ops.h).
 *
 *   - the row quantizer on edge cases, byte for byte: an all-zero block (d = 0, q = 0), a block
 *     whose largest magnitude is negative (q = -127), values exactly halfway between two steps
 *     (round half to even, as ggml's AVX2 quantize_row_q8_0 that llama.cpp's x86 build writes its
 *     cache with; the portable quantize_row_q8_0_ref would round them away from zero), and the
 *     decode d * q;
 *   - the shipped model (models/kjv-bitnet.gguf) decoding text with a q8_0 cache against an f16
 *     one: max |logit difference| <= KV_Q8_0_MAX_DIFF and the same top-1 token at >= 95% of
 *     the positions (measured on this 81-token text: max 0.139, mean 0.017, top-1 81 of 81);
 *     the same q8_0 decode bit for bit on every ISA path this CPU has (scalar reference,
 *     AVX2, AVX-512);
 *   - save / restore of a q8_0 sequence (state size, identical next logits) and context shift:
 *     the moved K rows are the old rows dequantized, rotated by -n_discard and quantized again;
 *     V rows are moved unchanged.
 */
#include "core/fp16.h"
#include "kernels/cpu/act_blocks.h"
#include "kernels/cpu_features.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "quant/quant_format.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KJV_MODEL "models/kjv-bitnet.gguf"
#define KV_Q8_0_MAX_DIFF 0.25f

static void test_quantizer(void) {
    float x[64];
    bn_q8_0_block blocks[2];
    /* block 0 all zero; block 1 with amax 127 (d = 1, id = 1 exactly) and halfway values */
    memset(x, 0, sizeof x);
    const float halves[] = {2.5f, 3.5f, -2.5f, 0.5f, -0.5f, 1.5f, -127.0f, 126.5f, 100.25f, -1e-3f};
    const int8_t want[] = {2, 4, -2, 0, 0, 2, -127, 126, 100, 0};
    for (int i = 0; i < 10; i++) x[32 + i] = halves[i];
    bn_kv_encode_row(blocks, BN_TYPE_Q8_0, x, 64);
    CHECK(blocks[0].d == 0);
    bool zero = true;
    for (int i = 0; i < 32; i++) zero = zero && blocks[0].qs[i] == 0;
    CHECK(zero);
    CHECKF(blocks[1].d == 0x3c00, "d of amax 127 = fp16 1.0, got 0x%04x", blocks[1].d);
    for (int i = 0; i < 10; i++)
        CHECKF(blocks[1].qs[i] == want[i], "q(%g) = %d, want %d (half to even)", halves[i], blocks[1].qs[i], want[i]);
    for (int i = 10; i < 32; i++) CHECK(blocks[1].qs[i] == 0);

    /* negative largest magnitude: d = fp16(amax / 127), q = -127 there, the rest x * 127 / amax */
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) * 0.01f;
    x[7] = -3.0f;
    bn_kv_encode_row(blocks, BN_TYPE_Q8_0, x, 32);
    CHECK(blocks[0].d == bn_fp32_to_fp16(3.0f / 127.0f));
    CHECK(blocks[0].qs[7] == -127);
    for (int i = 0; i < 32; i++)
        if (i != 7) CHECK(blocks[0].qs[i] == (int8_t)nearbyintf(x[i] * (127.0f / 3.0f)));
    float back[32];
    bn_kv_decode_row(back, BN_TYPE_Q8_0, blocks, 32);
    for (int i = 0; i < 32; i++) CHECK(back[i] == (float)blocks[0].qs[i] * bn_fp16_to_fp32(blocks[0].d));

    CHECK(bn_kv_type_bytes(BN_TYPE_Q8_0, 640) == 680 && bn_kv_type_bytes(BN_TYPE_F16, 640) == 1280);
    uint32_t type = 0;
    CHECK(bn_kv_type_parse(&type, "q8_0", NULL) == BN_OK && type == BN_TYPE_Q8_0);
    CHECK(bn_kv_type_parse(&type, "q4_0", NULL) == BN_ERR_INVALID);
}

static bn_model *load(uint32_t kv_type) {
    bn_model_options o = bn_model_options_default();
    o.kv_type_k = o.kv_type_v = kv_type;
    o.tune = 0;
    bn_model *m = NULL;
    bn_error err;
    CHECK_OK(bn_model_load(KJV_MODEL, &o, &m, &err), &err);
    return m;
}

/* Decodes tokens one at a time into seq (from its current length), logits of each to out. */
static void decode(bn_model *m, bn_sequence *seq, const int32_t *tokens, int n, float *out) {
    const int n_vocab = bn_model_get_config(m)->n_vocab;
    bn_error err;
    for (int i = 0; i < n; i++) {
        bn_batch_entry e = {seq, bn_sequence_length(seq), tokens[i], true};
        CHECK_OK(bn_model_decode(m, &e, 1, out + (size_t)i * n_vocab, &err), &err);
    }
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static void test_model(void) {
    bn_model *f16 = load(BN_TYPE_F16), *q8 = load(BN_TYPE_Q8_0);
    if (!f16 || !q8) return;
    bn_error err;
    bn_tokenizer *tok = NULL;
    CHECK_OK(bn_tokenizer_from_gguf(&tok, bn_model_get_gguf(f16), NULL, &err), &err);
    const char *text = "In the beginning God created the heaven and the earth. And the earth was without "
                       "form, and void; and darkness was upon the face of the deep. And the Spirit of God "
                       "moved upon the face of the waters. And God said, Let there be light: and there was "
                       "light. And God saw the light, that it was good: and God divided the light from the "
                       "darkness.";
    bn_tokens ids = {0};
    CHECK_OK(bn_tokenizer_encode(tok, text, strlen(text), true, false, &ids, &err), &err);
    const int n = (int)ids.n, n_vocab = bn_model_get_config(f16)->n_vocab;
    CHECK(n > 40 && n < 256);
    float *a = malloc((size_t)n * n_vocab * 4), *b = malloc((size_t)n * n_vocab * 4),
          *c = malloc((size_t)n * n_vocab * 4);
    bn_sequence *sa = NULL, *sb = NULL;
    CHECK_OK(bn_sequence_create(f16, 256, &sa, &err), &err);
    CHECK_OK(bn_sequence_create(q8, 256, &sb, &err), &err);
    decode(f16, sa, ids.ids, n, a);
    decode(q8, sb, ids.ids, n, b);
    double max_diff = 0, sum_diff = 0;
    int agree = 0;
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < n_vocab; i++) {
            double d = fabs((double)a[(size_t)t * n_vocab + i] - b[(size_t)t * n_vocab + i]);
            max_diff = d > max_diff ? d : max_diff;
            sum_diff += d;
        }
        agree += argmax(a + (size_t)t * n_vocab, n_vocab) == argmax(b + (size_t)t * n_vocab, n_vocab);
    }
    printf("q8_0 vs f16 KV cache over %d tokens: max |logit diff| %.4f, mean %.5f, top-1 agreement %d/%d\n", n,
           max_diff, sum_diff / ((double)n * n_vocab), agree, n);
    CHECKF(max_diff <= KV_Q8_0_MAX_DIFF, "max |diff| %.4f over %.2f", max_diff, KV_Q8_0_MAX_DIFF);
    CHECKF(agree * 100 >= n * 95, "top-1 agreement %d of %d", agree, n);
    CHECK(max_diff > 0); /* the cache really is quantized */

    /* the same bits on every path this CPU has */
    const bn_isa best = bn_isa_active();
    for (int p = 0; p < BN_ISA_COUNT; p++) {
        if (!bn_isa_supported((bn_isa)p)) continue;
        bn_isa_set_active((bn_isa)p);
        bn_sequence_clear(sb);
        decode(q8, sb, ids.ids, n, c);
        CHECKF(memcmp(b, c, (size_t)n * n_vocab * 4) == 0, "q8_0 decode on %s differs from %s",
               bn_isa_name((bn_isa)p), bn_isa_name(best));
    }
    bn_isa_set_active(best);

    /* save and restore: the state of k positions, then the next token from both sequences */
    const int k = n / 2;
    const bn_model_config *cfg = bn_model_get_config(q8);
    const size_t state = bn_sequence_state_bytes(sb, k);
    CHECK(state == (size_t)cfg->n_layers * k * 2 * (cfg->kv_dim / 32) * 34);
    uint8_t *saved = malloc(state);
    bn_sequence_truncate(sb, k);
    CHECK_OK(bn_sequence_save(sb, k, saved, &err), &err);
    bn_sequence *sc = NULL;
    CHECK_OK(bn_sequence_create(q8, 256, &sc, &err), &err);
    CHECK_OK(bn_sequence_restore(sc, saved, k, &err), &err);
    decode(q8, sb, ids.ids + k, 1, b);
    decode(q8, sc, ids.ids + k, 1, c);
    CHECK(memcmp(b, c, (size_t)n_vocab * 4) == 0);

    /* shift: keep 4, discard 8 of k + 1 positions */
    const int keep = 4, discard = 8, len = bn_sequence_length(sc);
    uint8_t *before = malloc(bn_sequence_state_bytes(sc, len)), *after = malloc(bn_sequence_state_bytes(sc, len));
    CHECK_OK(bn_sequence_save(sc, len, before, &err), &err);
    CHECK_OK(bn_sequence_shift(sc, keep, discard, &err), &err);
    CHECK(bn_sequence_length(sc) == len - discard);
    CHECK_OK(bn_sequence_save(sc, len - discard, after, &err), &err);
    const size_t row = bn_kv_type_bytes(BN_TYPE_Q8_0, (size_t)cfg->kv_dim);
    const int half = (cfg->rope_dim < cfg->head_dim ? cfg->rope_dim : cfg->head_dim) / 2;
    float *cos_t = malloc((size_t)half * 4), *sin_t = malloc((size_t)half * 4), *kr = malloc((size_t)cfg->kv_dim * 4);
    uint8_t *want = malloc(row);
    bn_rope_neox_angles(cos_t, sin_t, cfg->head_dim, cfg->rope_dim, -discard, cfg->rope_base);
    int bad_k = 0, bad_v = 0;
    for (int l = 0; l < cfg->n_layers; l++) {
        const uint8_t *old_k = before + (size_t)l * 2 * len * row, *old_v = old_k + (size_t)len * row;
        const uint8_t *new_k = after + (size_t)l * 2 * (len - discard) * row, *new_v = new_k + (size_t)(len - discard) * row;
        for (int r = 0; r < len - discard; r++) {
            const int from = r < keep ? r : r + discard;
            if (r < keep) {
                memcpy(want, old_k + (size_t)from * row, row);
            } else {
                bn_kv_decode_row(kr, BN_TYPE_Q8_0, old_k + (size_t)from * row, cfg->kv_dim);
                bn_rope_neox_table(kr, cfg->n_kv_heads, cfg->head_dim, cfg->rope_dim, cos_t, sin_t);
                bn_kv_encode_row(want, BN_TYPE_Q8_0, kr, cfg->kv_dim);
            }
            bad_k += memcmp(want, new_k + (size_t)r * row, row) != 0;
            bad_v += memcmp(old_v + (size_t)from * row, new_v + (size_t)r * row, row) != 0;
        }
    }
    CHECKF(bad_k == 0 && bad_v == 0, "shift: %d K rows and %d V rows differ", bad_k, bad_v);
    decode(q8, sc, ids.ids + k + 1, 1, c);
    bool finite = true;
    for (int i = 0; i < n_vocab; i++) finite = finite && isfinite(c[i]);
    CHECK(finite);

    free(cos_t), free(sin_t), free(kr), free(want), free(before), free(after), free(saved);
    bn_sequence_free(sa), bn_sequence_free(sb), bn_sequence_free(sc);
    bn_tokens_free(&ids);
    bn_tokenizer_free(tok);
    free(a), free(b), free(c);
    bn_model_free(f16), bn_model_free(q8);
}

/* A model whose KV rows are not whole q8_0 blocks is refused with a message naming the option. */
static void test_refusal(void) {
    bn_model_options o = bn_model_options_default();
    o.kv_type_k = BN_TYPE_Q8_0;
    o.kv_type_v = 99;
    bn_model *m = NULL;
    bn_error err;
    CHECK(bn_model_load(KJV_MODEL, &o, &m, &err) == BN_ERR_INVALID && m == NULL);
}

int main(void) {
    test_quantizer();
    test_model();
    test_refusal();
    return bn_test_finish("test_kv_q8_0");
}
