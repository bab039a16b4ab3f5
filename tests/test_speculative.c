/*
 * test_speculative.c: speculative decoding (runtime/speculative.h) keeps the output exact.
 *   - the drafters on chosen histories: n-gram lookup (longest suffix, most recent occurrence,
 *     the cut at max), replay (follows the output while it equals the replay's prefix);
 *   - replay files (bn_spec_read_ids) and the draft model's vocabulary check;
 *   - the draft-length controller on chosen costs and acceptance;
 *   - greedy output with speculation (ngram, ngram with a fixed draft length, replay at full and
 *     broken acceptance, a draft model that agrees and one that does not) equals plain greedy
 *     output token for token, on the shipped model and on synthetic bitnet-b1.58 / bitnet /
 *     llama models (I2_S, TQ2_0, TQ1_0), under every ISA path the CPU has, with 1 and 2 threads;
 *   - sampled output: a seeded run gives the plain run's tokens, and over many seeds the token
 *     distribution at a verified position matches plain sampling (chi-square).
 */
#include "kernels/cpu_features.h"
#include "model/model.h"
#include "model/synth.h"
#include "quant/quant_format.h"
#include "runtime/session.h"
#include "runtime/speculative.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KJV_MODEL "models/kjv-bitnet.gguf"

static bn_spec *make_spec(bn_spec_config c) {
    bn_spec *s = NULL;
    bn_error err;
    CHECK_OK(bn_spec_create(&s, &c, 64, &err), &err);
    return s;
}

static int propose(bn_spec *s, const int32_t *h, size_t n, size_t n_prompt, int max, int32_t *out) {
    int k = -1;
    bn_error err;
    CHECK_OK(bn_spec_propose(s, h, n, n_prompt, max, out, &k, &err), &err);
    return k;
}

static void test_drafters(void) {
    bn_spec_config c = bn_spec_config_default();
    c.mode = BN_SPEC_NGRAM;
    bn_spec *s = make_spec(c);
    int32_t out[BN_SPEC_DRAFT_LIMIT];
    /* the suffix 1 2 3 occurred at 0 (followed by 4 9) and at 5 (followed by 7): most recent wins */
    const int32_t h1[] = {1, 2, 3, 4, 9, 1, 2, 3, 7, 8, 1, 2, 3};
    int k = propose(s, h1, 13, 0, 8, out);
    CHECKF(k == 5 && out[0] == 7 && out[1] == 8 && out[2] == 1 && out[4] == 3, "ngram: %d drafts, first %d", k, out[0]);
    CHECK(propose(s, h1, 13, 0, 2, out) == 2 && out[0] == 7 && out[1] == 8);
    /* a longer suffix beats a more recent shorter one: 5 6 occurs late, 4 5 6 early */
    const int32_t h2[] = {4, 5, 6, 11, 12, 5, 6, 13, 4, 5, 6};
    k = propose(s, h2, 11, 0, 3, out);
    CHECKF(k == 3 && out[0] == 11 && out[1] == 12 && out[2] == 5, "ngram longest: %d drafts, first %d", k, out[0]);
    /* nothing repeats (n-grams of 2 and more): no draft */
    const int32_t h3[] = {1, 2, 3, 4, 5, 1};
    CHECK(propose(s, h3, 6, 0, 4, out) == 0);
    bn_spec_free(s);
    c.ngram_min = 1;
    s = make_spec(c);
    CHECK(propose(s, h3, 6, 0, 4, out) == 4 && out[0] == 2 && out[3] == 5);
    bn_spec_free(s);

    /* replay follows the output (history after n_prompt) while it equals the replay's prefix */
    const int32_t replay[] = {20, 21, 22, 23, 24};
    c = bn_spec_config_default();
    c.mode = BN_SPEC_REPLAY;
    c.replay = replay;
    c.n_replay = 5;
    s = make_spec(c);
    const int32_t h4[] = {9, 9, 9, 20, 21};
    CHECK(propose(s, h4, 3, 3, 8, out) == 5 && out[0] == 20);
    CHECK(propose(s, h4, 5, 3, 2, out) == 2 && out[0] == 22 && out[1] == 23);
    const int32_t h5[] = {9, 9, 9, 20, 99};
    CHECK(propose(s, h5, 5, 3, 8, out) == 0);
    const int32_t h6[] = {9, 20, 21, 22, 23, 24};
    CHECK(propose(s, h6, 6, 1, 8, out) == 0); /* the replay is used up */
    bn_spec_free(s);

    /* configurations that cannot work are refused */
    bn_error err;
    c = bn_spec_config_default();
    c.mode = BN_SPEC_DRAFT;
    CHECK(bn_spec_config_check(&c, &err) == BN_ERR_INVALID && strstr(err.message, "--model-draft"));
    c.mode = BN_SPEC_REPLAY;
    CHECK(bn_spec_config_check(&c, &err) == BN_ERR_INVALID && strstr(err.message, "--spec-replay"));
    c = bn_spec_config_default();
    c.draft_max = BN_SPEC_DRAFT_LIMIT + 1;
    CHECK(bn_spec_config_check(&c, &err) == BN_ERR_INVALID);
    c.draft_max = 4, c.draft_min = 5;
    CHECK(bn_spec_config_check(&c, &err) == BN_ERR_INVALID);
    bn_spec_mode mode;
    CHECK(bn_spec_mode_parse(&mode, "replay", &err) == BN_OK && mode == BN_SPEC_REPLAY);
    CHECK(bn_spec_mode_parse(&mode, "lookahead", &err) == BN_ERR_INVALID && strstr(err.message, "lookahead"));
}

static void test_read_ids(const char *dir) {
    char *path = bn_test_path(dir, "ids.txt");
    bn_tokens ids = {0};
    bn_error err;
    const char good[] = "12\n7 300\t\n0\n";
    CHECK(bn_test_write_file(path, good, strlen(good)));
    CHECK_OK(bn_spec_read_ids(&ids, path, 301, &err), &err);
    CHECK(ids.n == 4 && ids.ids[0] == 12 && ids.ids[1] == 7 && ids.ids[2] == 300 && ids.ids[3] == 0);
    bn_tokens_free(&ids);
    CHECK(bn_spec_read_ids(&ids, path, 300, &err) == BN_ERR_RANGE && strstr(err.message, ":2:"));
    bn_tokens_free(&ids);
    const char bad[] = "1 2 x3\n";
    CHECK(bn_test_write_file(path, bad, strlen(bad)));
    CHECK(bn_spec_read_ids(&ids, path, 300, &err) == BN_ERR_INVALID && strstr(err.message, "'x'"));
    bn_tokens_free(&ids);
    CHECK(bn_test_write_file(path, " \n", 2));
    CHECK(bn_spec_read_ids(&ids, path, 300, &err) == BN_ERR_INVALID && strstr(err.message, "no token ids"));
    bn_tokens_free(&ids);
    const char huge[] = "99999999999999999999999\n";
    CHECK(bn_test_write_file(path, huge, strlen(huge)));
    CHECK(bn_spec_read_ids(&ids, path, 300, &err) == BN_ERR_RANGE);
    bn_tokens_free(&ids);
    CHECK(bn_spec_read_ids(&ids, "/nonexistent/ids", 300, &err) == BN_ERR_IO);
    bn_tokens_free(&ids);
    free(path);
}

static void test_controller(void) {
    bn_spec_costs costs;
    memset(&costs, 0, sizeof costs);
    /* nothing measured: the prior, +10% per token */
    CHECK(fabs(bn_spec_costs_ratio(&costs, 5) - 1.4) < 1e-9);
    bn_spec_costs_record(&costs, 1, 10.0);
    bn_spec_costs_record(&costs, 3, 12.0);
    bn_spec_costs_record(&costs, 5, 20.0);
    CHECK(fabs(bn_spec_costs_ratio(&costs, 3) - 1.2) < 1e-9);
    CHECK(fabs(bn_spec_costs_ratio(&costs, 4) - 1.6) < 1e-9); /* between 3 and 5 */
    CHECK(fabs(bn_spec_costs_ratio(&costs, 7) - 2.5) < 1e-9); /* past 5: the measured slope */
    bn_spec_costs_record(&costs, 5, 10.0);                    /* decayed mean: 0.8 * 20 + 0.2 * 10 */
    CHECK(fabs(bn_spec_costs_ratio(&costs, 5) - 1.8) < 1e-9);

    bn_spec_config c = bn_spec_config_default();
    c.mode = BN_SPEC_NGRAM;
    c.draft_max = 6;
    bn_spec *s = make_spec(c);
    bn_spec_costs cheap;
    memset(&cheap, 0, sizeof cheap);
    for (int n = 1; n <= 8; n++) bn_spec_costs_record(&cheap, n, 10.0 + 0.1 * n); /* almost free */
    for (int i = 0; i < 20; i++) bn_spec_record(s, 6, 6, 7);
    CHECKF(bn_spec_want(s, &cheap, 100) == 6, "full acceptance, cheap batches: want %d", bn_spec_want(s, &cheap, 100));
    CHECK(bn_spec_want(s, &cheap, 3) == 3); /* the caller's limit */
    bn_spec_costs dear;
    memset(&dear, 0, sizeof dear);
    for (int n = 1; n <= 8; n++) bn_spec_costs_record(&dear, n, 10.0 * n); /* each token costs a pass */
    CHECK(bn_spec_want(s, &dear, 100) == 0);
    /* everything rejected: no drafts at +30% per token, then one probe every BN_SPEC_PROBE_EVERY
     * steps; nearly free batches still pay for a draft at low acceptance */
    bn_spec_costs mid;
    memset(&mid, 0, sizeof mid);
    for (int n = 1; n <= 8; n++) bn_spec_costs_record(&mid, n, 10.0 + 3.0 * (n - 1));
    for (int i = 0; i < 40; i++) bn_spec_record(s, 2, 0, 1);
    CHECK(bn_spec_want(s, &mid, 100) == 0);
    CHECK(bn_spec_want(s, &cheap, 100) >= 1);
    for (int i = 0; i < BN_SPEC_PROBE_EVERY - 2; i++) bn_spec_record(s, 0, 0, 1);
    CHECK(bn_spec_want(s, &mid, 100) == 0);
    bn_spec_record(s, 0, 0, 1);
    CHECK(bn_spec_want(s, &mid, 100) == 1);
    const bn_spec_stats *st = bn_spec_get_stats(s);
    CHECK(st->steps == 20 + 40 + BN_SPEC_PROBE_EVERY - 1 && st->drafted == 120 + 80 && st->accepted == 120);
    bn_spec_free(s);
    /* --draft-fixed always drafts the most; --draft-min is a floor */
    c.fixed = true;
    s = make_spec(c);
    CHECK(bn_spec_want(s, &dear, 100) == 6 && bn_spec_want(s, &dear, 2) == 2);
    bn_spec_free(s);
    c.fixed = false;
    c.draft_min = 2;
    s = make_spec(c);
    CHECK(bn_spec_want(s, &dear, 100) == 2);
    bn_spec_free(s);
}

static bn_model *load(const char *path, int threads) {
    bn_model *m = NULL;
    bn_error err;
    bn_model_options mo = bn_model_options_default();
    mo.n_threads = threads;
    mo.tune = 0;
    CHECK_OK(bn_model_load(path, &mo, &m, &err), &err);
    return m;
}

/* One generation on a fresh session of m with spec (NULL: plain); the output ids (caller frees). */
static int32_t *generate(bn_model *m, const bn_tokenizer *tok, bn_spec *spec, const bn_gen_config *cfg,
                         const int32_t *prompt, size_t n, size_t *n_out, bn_session_stats *stats) {
    bn_session s;
    bn_gen *g = NULL;
    bn_error err;
    *n_out = 0;
    const bn_session_options so = {.capacity = 256};
    CHECK_OK(bn_session_init(&s, m, &so, &err), &err);
    bn_session_set_spec(&s, spec);
    CHECK_OK(bn_gen_create(&g, tok, (size_t)bn_model_get_config(m)->n_vocab, cfg, &err), &err);
    int32_t *copy = NULL;
    if (g && bn_session_generate(&s, g, prompt, n, NULL, stats, &err) == BN_OK) {
        const int32_t *ids = bn_gen_ids(g, n_out);
        copy = malloc((*n_out + 1) * sizeof *copy);
        if (copy) memcpy(copy, ids, *n_out * sizeof *copy);
        /* the cache holds the prompt and every output token but the last */
        CHECKF(s.cached.n == (size_t)bn_sequence_length(s.seq) && s.cached.n == n + *n_out - 1 &&
                   !memcmp(s.cached.ids + n, ids, (*n_out - 1) * sizeof *ids),
               "cache of %zu ids for a prompt of %zu and %zu output", s.cached.n, n, *n_out);
    } else {
        CHECKF(false, "generate: %s", err.message);
    }
    bn_gen_free(g);
    bn_session_free(&s);
    return copy;
}

/* Greedy output with every drafter equals plain greedy output (label names the case). */
static void check_greedy(bn_model *m, const bn_tokenizer *tok, bn_model *draft_same, bn_model *draft_other,
                         const char *label) {
    const int n_vocab = bn_model_get_config(m)->n_vocab;
    enum { P = 24, G = 40 };
    int32_t prompt[P];
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 11);
    /* a prompt that repeats itself, so the n-gram lookup finds drafts */
    for (int i = 0; i < 12; i++) prompt[i] = prompt[i + 12] = (int32_t)bn_test_rng_range(&rng, 0, n_vocab < 256 ? n_vocab : 256);
    bn_gen_config cfg = {.sampling = bn_sampler_params_greedy(), .max_tokens = G, .ignore_eog = true};
    bn_session_stats st;
    size_t n_ref = 0, n = 0;
    int32_t *ref = generate(m, tok, NULL, &cfg, prompt, P, &n_ref, &st);
    CHECKF(ref && n_ref == G && st.n_steps == G - 1 && st.n_drafted == 0, "%s: plain run", label);
    if (!ref) return;
    int32_t broken[G];
    memcpy(broken, ref, sizeof broken);
    broken[G / 2] = (broken[G / 2] + 1) % n_vocab;
    for (int c = 0; c < 7; c++) {
        bn_spec_config sc = bn_spec_config_default();
        const char *what = "";
        switch (c) {
        case 0: sc.mode = BN_SPEC_NGRAM, what = "ngram"; break;
        case 1: sc.mode = BN_SPEC_NGRAM, sc.fixed = true, sc.draft_max = 4, sc.ngram_min = 1, what = "ngram fixed"; break;
        case 2: sc.mode = BN_SPEC_REPLAY, sc.replay = ref, sc.n_replay = G, sc.fixed = true, what = "replay"; break;
        case 3: sc.mode = BN_SPEC_REPLAY, sc.replay = broken, sc.n_replay = G, sc.fixed = true, sc.draft_max = 5,
                what = "replay broken"; break;
        case 4: sc.mode = BN_SPEC_DRAFT, sc.draft_model = draft_same, sc.fixed = true, sc.draft_max = 3,
                what = "draft (same model)"; break;
        case 5: sc.mode = BN_SPEC_DRAFT, sc.draft_model = draft_other, sc.fixed = true, sc.draft_max = 3,
                what = "draft (other model)"; break;
        case 6: sc.mode = BN_SPEC_NGRAM, sc.draft_max = BN_SPEC_DRAFT_LIMIT, sc.fixed = true, sc.ngram_min = 1,
                what = "ngram 16"; break;
        }
        if (sc.mode == BN_SPEC_DRAFT && !sc.draft_model) continue;
        bn_spec *spec = NULL;
        bn_error err;
        CHECK_OK(bn_spec_create(&spec, &sc, 256, &err), &err);
        if (!spec) continue;
        int32_t *out = generate(m, tok, spec, &cfg, prompt, P, &n, &st);
        CHECKF(out && n == n_ref && !memcmp(out, ref, n * sizeof *out), "%s, %s: output differs from plain decoding",
               label, what);
        const bn_spec_stats *ss = bn_spec_get_stats(spec);
        CHECK(ss->accepted == st.n_accepted && ss->drafted == st.n_drafted && ss->steps == st.n_steps);
        if (c == 2 || c == 4) /* full acceptance: every draft kept, far fewer steps */
            CHECKF(st.n_accepted == st.n_drafted && st.n_drafted > 0 && st.n_steps < G / 2,
                   "%s, %s: %d of %d accepted in %d steps", label, what, st.n_accepted, st.n_drafted, st.n_steps);
        if (c == 3) CHECKF(st.n_accepted < st.n_drafted, "%s: the broken replay was rejected somewhere", label);
        if (c == 1) CHECKF(st.n_drafted > 0, "%s: the n-gram lookup drafted nothing", label);
        free(out);
        bn_spec_free(spec);
    }
    free(ref);
}

/* Sampled output: a seeded run with speculation gives the plain run's tokens, and across seeds the
 * token at a verified position has the plain distribution (chi-square, 2 x C table). */
static void check_sampled(bn_model *m, const bn_tokenizer *tok) {
    const int n_vocab = bn_model_get_config(m)->n_vocab;
    bn_tokens prompt = {0};
    bn_error err;
    const char *text = "And God said, Let there be light: and there was light. And God saw the light, that";
    CHECK_OK(bn_tokenizer_encode(tok, text, strlen(text), true, false, &prompt, &err), &err);
    enum { G = 6, RUNS = 400, POS = 1 };
    /* the drafts: the greedy continuation (replay), which sampled runs follow often but not always */
    bn_gen_config cfg = {.sampling = bn_sampler_params_greedy(), .max_tokens = G, .ignore_eog = true};
    bn_session_stats st;
    size_t n_greedy = 0;
    int32_t *greedy = generate(m, tok, NULL, &cfg, prompt.ids, prompt.n, &n_greedy, &st);
    cfg.sampling = bn_sampler_params_default();
    cfg.sampling.temperature = 0.8f;
    bn_spec_config sc = bn_spec_config_default();
    sc.mode = BN_SPEC_REPLAY, sc.fixed = true, sc.draft_max = 4, sc.replay = greedy, sc.n_replay = n_greedy;
    bn_spec *spec = NULL;
    CHECK_OK(bn_spec_create(&spec, &sc, 256, &err), &err);
    int *plain_count = calloc((size_t)n_vocab, sizeof *plain_count);
    int *spec_count = calloc((size_t)n_vocab, sizeof *spec_count);
    int identical = 0, drafted = 0, accepted = 0;
    for (int r = 0; r < RUNS && spec && plain_count && spec_count; r++) {
        size_t n1 = 0, n2 = 0, n3 = 0;
        cfg.sampling.seed = 1000 + (uint64_t)r;
        int32_t *a = generate(m, tok, NULL, &cfg, prompt.ids, prompt.n, &n1, &st);
        int32_t *b = generate(m, tok, spec, &cfg, prompt.ids, prompt.n, &n2, &st);
        drafted += st.n_drafted, accepted += st.n_accepted;
        identical += a && b && n1 == n2 && !memcmp(a, b, n1 * sizeof *a);
        /* the distribution test draws the two samples from different seeds */
        cfg.sampling.seed = 900000 + (uint64_t)r;
        int32_t *c = generate(m, tok, spec, &cfg, prompt.ids, prompt.n, &n3, &st);
        if (a && n1 > POS) plain_count[a[POS]]++;
        if (c && n3 > POS) spec_count[c[POS]]++;
        free(a), free(b), free(c);
    }
    printf("sampled: %d of %d drafts accepted over %d runs\n", accepted, drafted, RUNS);
    CHECKF(identical == RUNS, "seeded runs with speculation equal plain ones: %d of %d", identical, RUNS);
    CHECKF(drafted > RUNS && accepted > 0 && accepted < drafted, "sampled verification exercised: %d of %d accepted",
           accepted, drafted);
    /* chi-square homogeneity over the tokens seen at least 10 times in all, the rest pooled */
    double chi2 = 0.0;
    int cells = 0, pool_a = 0, pool_b = 0;
    for (int t = 0; t < n_vocab && plain_count && spec_count; t++) {
        int a = plain_count[t], b = spec_count[t];
        if (a + b < 10) {
            pool_a += a, pool_b += b;
            continue;
        }
        double e = (a + b) / 2.0;
        chi2 += (a - e) * (a - e) / e + (b - e) * (b - e) / e;
        cells++;
    }
    if (pool_a + pool_b >= 10) {
        double e = (pool_a + pool_b) / 2.0;
        chi2 += (pool_a - e) * (pool_a - e) / e + (pool_b - e) * (pool_b - e) / e;
        cells++;
    }
    const int df = cells - 1;
    /* the 0.999 quantile of chi-square(df) by Wilson-Hilferty (z = 3.09) */
    const double z = 3.09, h = 2.0 / (9.0 * df);
    const double critical = df * pow(1.0 - h + z * sqrt(h), 3.0);
    printf("chi-square: %.2f with %d degrees of freedom (critical %.2f at p = 0.001), %d cells\n", chi2, df,
           critical, cells);
    CHECKF(df >= 3 && chi2 < critical, "chi-square %.2f >= %.2f (df %d)", chi2, critical, df);
    free(plain_count), free(spec_count);
    free(greedy);
    bn_spec_free(spec);
    bn_tokens_free(&prompt);
}

static char *synth(const char *dir, const char *name, const char *arch, uint32_t format, uint64_t seed) {
    bn_synth_options o;
    bn_error err;
    CHECK_OK(bn_synth_preset(&o, "tiny", &err), &err);
    bn_synth_arch a;
    CHECK(bn_synth_arch_from_name(arch, &a));
    o.arch = a;
    o.format = format;
    o.seed = seed;
    o.n_kv_heads = o.n_heads; /* TQ formats need K/V rows of whole 256-blocks */
    char *path = bn_test_path(dir, name);
    CHECK_OK(bn_synth_write(path, &o, &err), &err);
    return path;
}

int main(void) {
    char *dir = bn_test_tmpdir("speculative");
    test_drafters();
    test_read_ids(dir);
    test_controller();

    char *paths[4] = {
        synth(dir, "b158.gguf", "bitnet-b1.58", BN_TYPE_I2_S, 1),
        synth(dir, "bitnet.gguf", "bitnet", BN_TYPE_TQ2_0, 2),
        synth(dir, "llama.gguf", "llama", BN_TYPE_TQ1_0, 3),
        synth(dir, "other.gguf", "bitnet-b1.58", BN_TYPE_I2_S, 77), /* a draft model that disagrees */
    };
    bn_error err;
    const bn_isa best = bn_isa_active();
    for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
        if (!bn_isa_supported((bn_isa)isa)) {
            printf("isa %s: not on this CPU, skipped\n", bn_isa_name((bn_isa)isa));
            continue;
        }
        bn_isa_set_active((bn_isa)isa);
        for (int threads = 1; threads <= 2; threads++) {
            bn_model *other = load(paths[3], threads);
            for (int f = 0; f < 4; f++) {
                const char *path = f < 3 ? paths[f] : KJV_MODEL;
                bn_model *m = load(path, threads);
                bn_tokenizer *tok = NULL;
                if (m) CHECK_OK(bn_tokenizer_from_gguf(&tok, bn_model_get_gguf(m), NULL, &err), &err);
                if (m && tok) {
                    char label[128];
                    snprintf(label, sizeof label, "%s, %s, %d thread(s)", path, bn_isa_name((bn_isa)isa), threads);
                    /* the shipped model's vocabulary is not the synthetic one's: no other draft */
                    check_greedy(m, tok, m, f < 3 ? other : NULL, label);
                    if (f == 3 && isa == (int)best && threads == 1) check_sampled(m, tok);
                    if (f == 3 && other) {
                        bn_tokenizer *other_tok = NULL;
                        CHECK_OK(bn_tokenizer_from_gguf(&other_tok, bn_model_get_gguf(other), NULL, &err), &err);
                        CHECK(bn_spec_check_vocab(tok, bn_model_get_config(m)->n_vocab, other_tok,
                                                  bn_model_get_config(other)->n_vocab, &err) == BN_ERR_INVALID &&
                              strstr(err.message, "vocabulary"));
                        CHECK_OK(bn_spec_check_vocab(tok, bn_model_get_config(m)->n_vocab, tok,
                                                     bn_model_get_config(m)->n_vocab, &err), &err);
                        bn_tokenizer_free(other_tok);
                    }
                }
                bn_tokenizer_free(tok);
                bn_model_free(m);
            }
            bn_model_free(other);
        }
    }
    bn_isa_set_active(best);
    for (int i = 0; i < 4; i++) free(paths[i]);
    free(dir);
    return bn_test_finish("test_speculative");
}
