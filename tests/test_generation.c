/*
 * test_generation.c: the generation core (runtime/generation.h) step by step on chosen logits:
 * stop strings with hold-back, end-of-generation, max_tokens, a full context, cancelling, UTF-8
 * held across tokens, stepping a finished generation; and the session (runtime/session.h) on a
 * synthetic model under every ISA path the CPU has: a reused prefix gives the same ids as a cold
 * run (greedy and seeded, penalties on), and a context shift keeps generating where its absence
 * ends with "context".
 */
#include "kernels/cpu_features.h"
#include "model/model.h"
#include "model/synth.h"
#include "runtime/generation.h"
#include "runtime/session.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bn_model *load_tiny(const char *path) {
    bn_model *m = NULL;
    bn_error err;
    bn_model_options mo = bn_model_options_default();
    CHECK_OK(bn_model_load(path, &mo, &m, &err), &err);
    return m;
}

/* A logits row that makes `token` the greedy choice. */
static void pick(float *row, size_t n, int32_t token) {
    for (size_t i = 0; i < n; i++) row[i] = 0.0f;
    row[token] = 10.0f;
}

/* The id of a one-byte token (the synthetic vocabulary has one per byte). */
static int32_t byte_id(const bn_tokenizer *tok, const char *text) {
    bn_tokens ids = {0};
    bn_error err;
    int32_t id = -1;
    if (bn_tokenizer_encode(tok, text, strlen(text), false, false, &ids, &err) == BN_OK && ids.n == 1) id = ids.ids[0];
    bn_tokens_free(&ids);
    return id;
}

typedef struct stepped {
    char text[256];
    size_t len;
    bn_finish_reason finish;
    int steps;
} stepped;

/* Steps g over the bytes of `script` (one greedy pick each) until it finishes. */
static void run_script(bn_gen *g, const bn_tokenizer *tok, size_t n_vocab, const char *script, int ctx_left,
                       stepped *out) {
    float *row = malloc(n_vocab * sizeof *row);
    memset(out, 0, sizeof *out);
    bn_error err;
    for (size_t i = 0; script[i] && row; i++) {
        char one[2] = {script[i], 0};
        int32_t id = byte_id(tok, one);
        if (id < 0) break;
        pick(row, n_vocab, id);
        bn_gen_delta d;
        CHECK_OK(bn_gen_step(g, row, ctx_left, &d, &err), &err);
        out->steps++;
        if (out->len + d.text_len < sizeof out->text) {
            memcpy(out->text + out->len, d.text, d.text_len);
            out->len += d.text_len;
        }
        out->finish = d.finish;
        if (d.finish != BN_FINISH_NONE) break;
    }
    free(row);
}

static void test_gen_steps(const bn_tokenizer *tok, size_t n_vocab) {
    bn_error err;
    const char *stops[] = {"STOP"};
    bn_gen_config cfg = {.sampling = bn_sampler_params_greedy(), .max_tokens = -1, .stops = stops, .n_stops = 1};
    bn_gen *g = NULL;
    stepped s;
    /* a stop string: "ST" is held back until "STOP" completes, then cut */
    CHECK_OK(bn_gen_create(&g, tok, n_vocab, &cfg, &err), &err);
    if (!g) return;
    run_script(g, tok, n_vocab, "hi STOP more", 100, &s);
    CHECKF(s.finish == BN_FINISH_STOP && s.len == 3 && !memcmp(s.text, "hi ", 3) && s.steps == 7,
           "stop: finish %s, text '%.*s', %d steps", bn_finish_reason_name(s.finish), (int)s.len, s.text, s.steps);
    size_t len, n_ids, prefix;
    CHECK(!strcmp(bn_gen_text(g, &len), "hi ") && len == 3);
    bn_gen_ids_in_text(g, &n_ids, &prefix);
    CHECK(n_ids == 3 && prefix == 3);
    bn_gen_delta d;
    float *row = calloc(n_vocab, sizeof *row);
    CHECK(bn_gen_step(g, row, 100, &d, &err) == BN_ERR_STATE); /* finished */
    bn_gen_free(g);

    /* held-back text is released by a cancel */
    CHECK_OK(bn_gen_create(&g, tok, n_vocab, &cfg, &err), &err);
    run_script(g, tok, n_vocab, "abST", 100, &s);
    CHECK(s.finish == BN_FINISH_NONE && s.len == 2);
    bn_gen_finish(g, BN_FINISH_CANCELLED, &d);
    CHECK(d.finish == BN_FINISH_CANCELLED && d.text_len == 2 && !memcmp(d.text, "ST", 2));
    bn_gen_free(g);

    /* max_tokens, then a full context */
    cfg.max_tokens = 3;
    CHECK_OK(bn_gen_create(&g, tok, n_vocab, &cfg, &err), &err);
    run_script(g, tok, n_vocab, "abcdef", 100, &s);
    CHECK(s.finish == BN_FINISH_LENGTH && s.steps == 3 && s.len == 3 && bn_gen_n_generated(g) == 3);
    bn_gen_free(g);
    cfg.max_tokens = -1;
    CHECK_OK(bn_gen_create(&g, tok, n_vocab, &cfg, &err), &err);
    run_script(g, tok, n_vocab, "abST", 0, &s);
    CHECK(s.finish == BN_FINISH_CONTEXT && s.steps == 1 && s.len == 1);
    bn_gen_free(g);

    /* end of generation: the EOG token is not output, unless ignored */
    int32_t eos = bn_tokenizer_eos(tok);
    for (int ignore = 0; ignore < 2 && eos >= 0; ignore++) {
        cfg.ignore_eog = ignore;
        CHECK_OK(bn_gen_create(&g, tok, n_vocab, &cfg, &err), &err);
        pick(row, n_vocab, eos);
        CHECK_OK(bn_gen_step(g, row, 100, &d, &err), &err);
        CHECK(ignore ? d.finish == BN_FINISH_NONE && d.token_in_output
                     : d.finish == BN_FINISH_EOG && !d.token_in_output && d.token == eos);
        bn_gen_free(g);
    }
    cfg.ignore_eog = false;

    /* a two-byte character over two tokens comes out whole */
    int32_t lead = -1, cont = -1;
    for (int32_t t = 0; t < (int32_t)n_vocab; t++) {
        size_t n;
        const uint8_t *b = bn_tokenizer_token_bytes(tok, t, &n);
        if (b && n == 1 && b[0] == 0xC3) lead = t;
        if (b && n == 1 && b[0] == 0xA9) cont = t;
    }
    CHECK(lead >= 0 && cont >= 0);
    if (lead >= 0 && cont >= 0) {
        CHECK_OK(bn_gen_create(&g, tok, n_vocab, &cfg, &err), &err);
        pick(row, n_vocab, lead);
        CHECK_OK(bn_gen_step(g, row, 100, &d, &err), &err);
        CHECK(d.text_len == 0);
        pick(row, n_vocab, cont);
        CHECK_OK(bn_gen_step(g, row, 100, &d, &err), &err);
        CHECK(d.text_len == 2 && !memcmp(d.text, "\xC3\xA9", 2));
        bn_gen_free(g);
    }
    free(row);

    /* bad sampler parameters are refused at creation */
    cfg.sampling.typical_p = 0.0f;
    CHECK(bn_gen_create(&g, tok, n_vocab, &cfg, &err) == BN_ERR_INVALID && g == NULL);
}

/* One generation over a session; returns the output ids (caller frees) and the stats. */
static int32_t *generate(bn_session *s, const bn_tokenizer *tok, size_t n_vocab, const bn_gen_config *cfg,
                         const int32_t *prompt, size_t n, bn_session_stats *stats, size_t *n_out) {
    bn_gen *g = NULL;
    bn_error err;
    *n_out = 0;
    CHECK_OK(bn_gen_create(&g, tok, n_vocab, cfg, &err), &err);
    if (!g) return NULL;
    CHECK_OK(bn_session_generate(s, g, prompt, n, NULL, stats, &err), &err);
    const int32_t *ids = bn_gen_ids(g, n_out);
    int32_t *copy = malloc((*n_out ? *n_out : 1) * sizeof *copy);
    if (copy && *n_out) memcpy(copy, ids, *n_out * sizeof *copy);
    bn_gen_free(g);
    return copy;
}

static void test_session(bn_model *m, const bn_tokenizer *tok, const char *isa) {
    const size_t n_vocab = (size_t)bn_model_get_config(m)->n_vocab;
    bn_error err;
    enum { N = 24, G = 12 };
    int32_t prompt[N + G + 2];
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 3);
    for (int i = 0; i < N; i++) prompt[i] = (int32_t)bn_test_rng_range(&rng, 0, 256);
    for (int mode = 0; mode < 2; mode++) {
        bn_gen_config cfg = {.sampling = bn_sampler_params_greedy(), .max_tokens = G, .ignore_eog = true};
        if (mode == 1) {
            cfg.sampling = bn_sampler_params_default();
            cfg.sampling.seed = 42;
            cfg.sampling.temperature = 1.2f;
            cfg.sampling.top_k = 0;
            cfg.sampling.min_p = 0.0f;
            cfg.sampling.typical_p = 0.9f;
            cfg.sampling.repetition_penalty = 1.2f;
            cfg.sampling.presence_penalty = 0.5f;
        }
        bn_session warm, cold;
        const bn_session_options so = {.capacity = 128};
        CHECK_OK(bn_session_init(&warm, m, &so, &err), &err);
        CHECK_OK(bn_session_init(&cold, m, &so, &err), &err);
        bn_session_stats st;
        size_t n1, n2, n3;
        int32_t *first = generate(&warm, tok, n_vocab, &cfg, prompt, N, &st, &n1);
        CHECK(first && n1 == G && st.n_reused == 0 && st.finish == BN_FINISH_LENGTH);
        if (first) memcpy(prompt + N, first, G * sizeof *prompt);
        prompt[N + G] = 7, prompt[N + G + 1] = 9;
        int32_t *again = generate(&warm, tok, n_vocab, &cfg, prompt, N + G + 2, &st, &n2);
        CHECKF(st.n_reused == N + G - 1 && st.n_prefilled == 3, "%s mode %d: %d reused, %d prefilled", isa, mode,
               st.n_reused, st.n_prefilled);
        int32_t *ref = generate(&cold, tok, n_vocab, &cfg, prompt, N + G + 2, &st, &n3);
        CHECK(st.n_reused == 0);
        CHECKF(again && ref && n2 == n3 && !memcmp(again, ref, n2 * sizeof *ref),
               "%s mode %d: the reused prefix changed the output", isa, mode);
        free(first), free(again), free(ref);
        bn_session_free(&warm);
        bn_session_free(&cold);
    }
    /* context shift in a 32-position session */
    for (int shift = 0; shift < 2; shift++) {
        bn_session s;
        const bn_session_options so = {.capacity = 32, .context_shift = shift, .keep = 4};
        CHECK_OK(bn_session_init(&s, m, &so, &err), &err);
        bn_gen_config cfg = {.sampling = bn_sampler_params_greedy(), .max_tokens = 60, .ignore_eog = true};
        bn_session_stats st;
        size_t n;
        int32_t *out = generate(&s, tok, n_vocab, &cfg, prompt, 10, &st, &n);
        if (shift) {
            CHECKF(st.finish == BN_FINISH_LENGTH && n == 60 && st.n_shifts >= 2 &&
                   s.cached.n == (size_t)bn_sequence_length(s.seq) && !memcmp(s.cached.ids, prompt, 4 * sizeof *prompt),
                   "%s shift: finish %s, %zu tokens, %d shifts", isa, bn_finish_reason_name(st.finish), n, st.n_shifts);
            /* a new prompt that does not continue the shifted cache starts over */
            free(generate(&s, tok, n_vocab, &cfg, prompt, 10, &st, &n));
            CHECK(st.n_reused == 0);
        } else {
            CHECKF(st.finish == BN_FINISH_CONTEXT && n == 32 - 10 + 1 && st.n_shifts == 0,
                   "%s no shift: finish %s after %zu tokens", isa, bn_finish_reason_name(st.finish), n);
        }
        free(out);
        bn_session_free(&s);
    }
}

int main(void) {
    char *dir = bn_test_tmpdir("generation");
    char *path = bn_test_path(dir, "tiny.gguf");
    bn_error err;
    bn_synth_options o;
    CHECK_OK(bn_synth_preset(&o, "tiny", &err), &err);
    CHECK_OK(bn_synth_write(path, &o, &err), &err);
    static const bn_isa isas[] = {BN_ISA_SCALAR, BN_ISA_AVX2, BN_ISA_AVX512};
    const bn_isa best = bn_isa_active();
    for (size_t i = 0; i < sizeof isas / sizeof *isas; i++) {
        if (!bn_isa_supported(isas[i])) {
            printf("isa %s: not on this CPU, skipped\n", bn_isa_name(isas[i]));
            continue;
        }
        bn_isa_set_active(isas[i]);
        bn_model *m = load_tiny(path);
        bn_tokenizer *tok = NULL;
        if (m) CHECK_OK(bn_tokenizer_from_gguf(&tok, bn_model_get_gguf(m), NULL, &err), &err);
        if (m && tok) {
            if (i == 0) test_gen_steps(tok, (size_t)bn_model_get_config(m)->n_vocab);
            test_session(m, tok, bn_isa_name(isas[i]));
        }
        bn_tokenizer_free(tok);
        bn_model_free(m);
    }
    bn_isa_set_active(best);
    free(path);
    free(dir);
    return bn_test_finish("test_generation");
}
