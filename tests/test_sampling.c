/*
 * test_sampling.c: the sampler's distributions (temperature, top-k, top-p, min-p) against their
 * definitions with fixed seeds, penalties, logit bias, the allowed-token mask, seeds, log-probs,
 * hostile logits, and the stop-string scanner including matches split across stream chunks.
 */
#include "sampling/sampler.h"
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define DRAWS 20000

static bn_sampler_params plain_params(float temperature, uint64_t seed) {
    bn_sampler_params p = bn_sampler_params_default();
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

static bn_sampler *make(const bn_sampler_params *p, size_t n_vocab) {
    bn_sampler *s = NULL;
    bn_error err;
    bn_status st = bn_sampler_create(&s, p, n_vocab, &err);
    CHECK_OK(st, &err);
    return s;
}

/* Draws `draws` tokens from fixed logits into counts[n]; returns false on any error/invalid id. */
static bool draw_counts(bn_sampler *s, const float *logits, size_t n, int draws, int *counts) {
    bn_error err;
    memset(counts, 0, n * sizeof *counts);
    for (int i = 0; i < draws; i++) {
        int32_t t = -1;
        if (bn_sampler_sample(s, &t, logits, n, &err) != BN_OK || t < 0 || (size_t)t >= n) return false;
        counts[t]++;
    }
    return true;
}

/* Pearson chi-square of counts against expected probabilities (cells with p == 0 must be empty:
 * any count there returns +inf). */
static double chi_square(const int *counts, const double *p, size_t n, int draws) {
    double chi = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = p[i] * draws;
        if (e == 0.0) {
            if (counts[i]) return INFINITY;
            continue;
        }
        chi += (counts[i] - e) * (counts[i] - e) / e;
    }
    return chi;
}

static void softmax(double *p, const float *logits, size_t n, double t) {
    double max = -INFINITY, sum = 0.0;
    for (size_t i = 0; i < n; i++) if (logits[i] / t > max) max = logits[i] / t;
    for (size_t i = 0; i < n; i++) sum += (p[i] = exp(logits[i] / t - max));
    for (size_t i = 0; i < n; i++) p[i] /= sum;
}

static double entropy_of_counts(const int *counts, size_t n, int draws) {
    double h = 0.0;
    for (size_t i = 0; i < n; i++)
        if (counts[i]) h -= (double)counts[i] / draws * log((double)counts[i] / draws);
    return h;
}

/* The chi-square bound used everywhere: well above the 0.999 quantile for the degrees of
 * freedom in these tests (<= 9: 27.9), far below what a wrong distribution gives (hundreds). */
#define CHI_BOUND 32.0

static void test_temperature(void) {
    const float logits[6] = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, -3.0f};
    const float temps[3] = {0.5f, 1.0f, 2.0f};
    double entropy[3];
    int counts[6];
    double p[6];
    for (int k = 0; k < 3; k++) {
        bn_sampler_params sp = plain_params(temps[k], 1234 + k);
        bn_sampler *s = make(&sp, 6);
        if (!s) return;
        CHECK(draw_counts(s, logits, 6, DRAWS, counts));
        softmax(p, logits, 6, temps[k]);
        double chi = chi_square(counts, p, 6, DRAWS);
        CHECKF(chi < CHI_BOUND, "T=%g chi-square %.1f", (double)temps[k], chi);
        entropy[k] = entropy_of_counts(counts, 6, DRAWS);
        if (k == 0) { /* the test can tell: the same counts are far from softmax(logits / 1) */
            softmax(p, logits, 6, 1.0);
            double wrong = chi_square(counts, p, 6, DRAWS);
            CHECKF(wrong > 10 * CHI_BOUND, "T=0.5 counts vs T=1 chi-square only %.1f", wrong);
        }
        bn_sampler_free(s);
    }
    CHECKF(entropy[0] < entropy[1] && entropy[1] < entropy[2], "entropy %.3f %.3f %.3f", entropy[0],
           entropy[1], entropy[2]);
}

static void test_greedy(void) {
    bn_sampler_params sp = bn_sampler_params_greedy();
    bn_sampler *s = make(&sp, 5);
    if (!s) return;
    bn_error err;
    int32_t t = -1;
    const float a[5] = {0.1f, 3.0f, -2.0f, 2.9f, 3.0f}; /* tie between 1 and 4: lowest id */
    CHECK_OK(bn_sampler_sample(s, &t, a, 5, &err), &err);
    CHECK(t == 1);
    const float b[5] = {-5.0f, -4.0f, -3.0f, -2.0f, -1.0f};
    CHECK_OK(bn_sampler_sample(s, &t, b, 5, &err), &err);
    CHECK(t == 4);
    CHECK(bn_sampler_sample(s, &t, b, 4, &err) == BN_ERR_INVALID); /* wrong n_vocab */
    bn_sampler_free(s);
}

/* Plain greedy (nothing edits the logits) takes a one-pass shortcut; a neutral logit bias (+0 on
 * the last token) sends the same logits through the whole pipeline. Both must pick the same
 * token: the first largest, NaN and -inf never (unless nothing else is left), +inf first. */
static void test_greedy_shortcut(void) {
    enum { N = 8 };
    const float cases[][N] = {
        {0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 0.0f, -3.0f, 1.5f},       /* tie: lowest id */
        {NAN, 1.0f, NAN, 3.0f, -INFINITY, 3.0f, NAN, 2.0f},       /* NaN first and between */
        {-INFINITY, -1e38f, NAN, -FLT_MAX, -INFINITY, -1e38f, NAN, -FLT_MAX},
        {1.0f, INFINITY, 2.0f, INFINITY, NAN, -INFINITY, 0.0f, 1.0f},
        {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN},                 /* nothing left: fallback */
        {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY},
        {-0.0f, 0.0f, -0.0f, 0.0f, -1.0f, -2.0f, -3.0f, -4.0f},   /* -0 == +0: the first */
    };
    const int32_t expected[] = {1, 3, 1, 1, 0, 0, 0};
    bn_logit_bias neutral = {N - 1, 0.0f};
    bn_sampler_params plain = bn_sampler_params_greedy(), full = plain;
    full.logit_bias = &neutral;
    full.n_logit_bias = 1;
    bn_sampler *a = make(&plain, N), *b = make(&full, N);
    bn_error err;
    for (size_t k = 0; a && b && k < sizeof cases / sizeof *cases; k++) {
        int32_t ta = -1, tb = -1;
        CHECK_OK(bn_sampler_sample(a, &ta, cases[k], N, &err), &err);
        CHECK_OK(bn_sampler_sample(b, &tb, cases[k], N, &err), &err);
        CHECKF(ta == expected[k] && tb == expected[k], "case %zu: shortcut %d, pipeline %d, expected %d",
               k, ta, tb, expected[k]);
    }
    bn_sampler_free(a);
    bn_sampler_free(b);
}

/* Random logits with no ties, and their ids sorted from the most likely. */
static void random_logits(float *logits, int32_t *order, size_t n, uint64_t seed, float scale) {
    bn_test_rng rng;
    bn_test_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        logits[i] = (bn_test_rng_float(&rng) - 0.5f) * scale;
        order[i] = (int32_t)i;
    }
    for (size_t i = 1; i < n; i++) /* insertion sort, descending */
        for (size_t j = i; j > 0 && logits[order[j]] > logits[order[j - 1]]; j--) {
            int32_t x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
}

static void test_top_k(void) {
    enum { N = 50, K = 5 };
    float logits[N];
    int32_t order[N];
    random_logits(logits, order, N, 7, 4.0f);
    bn_sampler_params sp = plain_params(1.5f, 99);
    sp.top_k = K;
    bn_sampler *s = make(&sp, N);
    if (!s) return;
    int counts[N];
    CHECK(draw_counts(s, logits, N, DRAWS, counts));
    double p[N] = {0};
    float top[K];
    for (int i = 0; i < K; i++) top[i] = logits[order[i]];
    double q[K];
    softmax(q, top, K, 1.5);
    for (int i = 0; i < K; i++) p[order[i]] = q[i];
    int outside = 0, seen = 0;
    for (int i = 0; i < N; i++) {
        if (p[i] == 0.0) outside += counts[i];
        else seen += counts[i] > 0;
    }
    CHECKF(outside == 0, "%d draws outside the top %d", outside, K);
    CHECK(seen == K);
    double chi = chi_square(counts, p, N, DRAWS);
    CHECKF(chi < CHI_BOUND, "top-k chi-square %.1f", chi);
    bn_sampler_free(s);
}

/* Logits whose softmax is exactly probs (up to rounding). */
static void logits_from_probs(float *logits, const double *probs, size_t n) {
    for (size_t i = 0; i < n; i++) logits[i] = (float)log(probs[i]);
}

static void check_truncated(const char *what, bn_sampler_params sp, const double *probs, size_t n,
                            size_t n_keep) {
    float logits[16];
    logits_from_probs(logits, probs, n);
    bn_sampler *s = make(&sp, n);
    if (!s) return;
    int counts[16];
    CHECK(draw_counts(s, logits, n, DRAWS, counts));
    double p[16], z = 0.0;
    for (size_t i = 0; i < n; i++) z += i < n_keep ? probs[i] : 0.0;
    for (size_t i = 0; i < n; i++) p[i] = i < n_keep ? probs[i] / z : 0.0;
    double chi = chi_square(counts, p, n, DRAWS);
    CHECKF(chi < CHI_BOUND, "%s: chi-square %.1f (kept %zu expected)", what, chi, n_keep);
    for (size_t i = 0; i < n_keep; i++) CHECKF(counts[i] > 0, "%s: token %zu never drawn", what, i);
    bn_sampler_free(s);
}

static void test_top_p(void) {
    const double probs[5] = {0.5, 0.2, 0.15, 0.1, 0.05};
    bn_sampler_params sp = plain_params(1.0f, 5);
    sp.top_p = 0.8f; /* 0.5 + 0.2 = 0.7 < 0.8 <= 0.85: three tokens */
    check_truncated("top_p 0.8", sp, probs, 5, 3);
    sp.top_p = 0.69f;
    check_truncated("top_p 0.69", sp, probs, 5, 2);
    sp.top_p = 0.0f;
    check_truncated("top_p 0", sp, probs, 5, 1);
    sp.top_p = 0.97f;
    check_truncated("top_p 0.97", sp, probs, 5, 5);

    /* a wide nucleus (hundreds of tokens) exercises the growing partial sort */
    enum { N = 2000 };
    static float logits[N];
    static int32_t order[N];
    static int counts[N];
    random_logits(logits, order, N, 11, 2.0f);
    double z = 0.0;
    for (int i = 0; i < N; i++) z += exp(logits[i]);
    double cum = 0.0;
    int nucleus = 0;
    while (cum < 0.9 * z) cum += exp(logits[order[nucleus++]]);
    sp = plain_params(1.0f, 6);
    sp.top_p = 0.9f;
    bn_sampler *s = make(&sp, N);
    if (!s) return;
    CHECK(draw_counts(s, logits, N, DRAWS, counts));
    int outside = 0, distinct = 0;
    for (int r = 0; r < N; r++) {
        if (r >= nucleus) outside += counts[order[r]];
        distinct += counts[order[r]] > 0;
    }
    CHECKF(nucleus > 300, "nucleus of %d tokens is too small for this test", nucleus);
    CHECKF(outside == 0, "%d draws outside the nucleus of %d", outside, nucleus);
    CHECKF(distinct > 256, "only %d distinct tokens drawn", distinct);
    bn_sampler_free(s);
}

static void test_min_p(void) {
    const double probs[5] = {0.4, 0.3, 0.15, 0.1, 0.05};
    bn_sampler_params sp = plain_params(1.0f, 8);
    sp.min_p = 0.3f; /* threshold 0.12: keeps 0.4, 0.3, 0.15 */
    check_truncated("min_p 0.3", sp, probs, 5, 3);
    sp.min_p = 0.8f; /* threshold 0.32: keeps 0.4 */
    check_truncated("min_p 0.8", sp, probs, 5, 1);
    sp.min_p = 0.1f; /* threshold 0.04: keeps all */
    check_truncated("min_p 0.1", sp, probs, 5, 5);
}

/* Locally typical sampling: probabilities {0.5, 0.3, 0.2} have entropy H = 1.0297 nats; the
 * distances |-log p - H| are 0.337, 0.174, 0.579, so the typical order is token 1, 0, 2. */
static void test_typical_p(void) {
    const double probs[3] = {0.5, 0.3, 0.2};
    float logits[3];
    logits_from_probs(logits, probs, 3);
    static const struct { float typical_p; double expect[3]; } cases[] = {
        {0.25f, {0.0, 1.0, 0.0}},           /* token 1 alone reaches 0.25 */
        {0.7f, {0.5 / 0.8, 0.3 / 0.8, 0.0}}, /* 0.3 + 0.5 reaches 0.7 */
        {0.9f, {0.5, 0.3, 0.2}},            /* all three */
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        bn_sampler_params sp = plain_params(1.0f, 31 + k);
        sp.typical_p = cases[k].typical_p;
        bn_sampler *s = make(&sp, 3);
        if (!s) continue;
        int counts[3];
        CHECK(draw_counts(s, logits, 3, DRAWS, counts));
        double chi = chi_square(counts, cases[k].expect, 3, DRAWS);
        CHECKF(chi < CHI_BOUND, "typical_p %.2f: chi-square %.1f (%d %d %d)", (double)cases[k].typical_p, chi,
               counts[0], counts[1], counts[2]);
        for (int i = 0; i < 3; i++)
            if (cases[k].expect[i] == 0.0) CHECKF(counts[i] == 0, "typical_p %.2f drew token %d", (double)cases[k].typical_p, i);
        bn_sampler_free(s);
    }
}

/* OpenAI's presence/frequency penalties count generated tokens only; the repetition penalty also
 * sees context (prompt) tokens. */
static void test_penalty_context(void) {
    const float a[2] = {1.0f, 0.9f};
    bn_sampler_params sp = bn_sampler_params_greedy();
    sp.presence_penalty = 0.5f;
    sp.frequency_penalty = 0.5f;
    bn_sampler *s = make(&sp, 2);
    int32_t t = -1;
    bn_error err;
    if (s) {
        for (int i = 0; i < 3; i++) bn_sampler_accept_context(s, 0);
        CHECK_OK(bn_sampler_sample(s, &t, a, 2, &err), &err);
        CHECK(t == 0); /* context copies of token 0: no presence/frequency penalty */
        bn_sampler_free(s);
    }
    sp = bn_sampler_params_greedy();
    sp.repetition_penalty = 1.5f;
    s = make(&sp, 2);
    if (s) {
        bn_sampler_accept_context(s, 0);
        CHECK_OK(bn_sampler_sample(s, &t, a, 2, &err), &err);
        CHECK(t == 1); /* 1.0 / 1.5 < 0.9 */
        bn_sampler_free(s);
    }
}

static void test_truncation_order(void) {
    /* top-p is computed over the top-k set renormalised: top_k 2 leaves {0.4, 0.3} -> 0.571, 0.429;
     * top_p 0.55 then keeps one token (over the full set it would need two) */
    const double probs[5] = {0.4, 0.3, 0.15, 0.1, 0.05};
    bn_sampler_params sp = plain_params(1.0f, 9);
    sp.top_k = 2;
    sp.top_p = 0.55f;
    check_truncated("top_k 2 + top_p 0.55", sp, probs, 5, 1);
    sp.top_p = 0.6f;
    check_truncated("top_k 2 + top_p 0.6", sp, probs, 5, 2);
    /* temperature before truncation: T = 0.5 squares the ratios, 0.4^2:0.3^2:0.15^2... */
    sp = plain_params(0.5f, 10);
    sp.top_k = 3;
    double sq[5];
    for (int i = 0; i < 5; i++) sq[i] = probs[i] * probs[i];
    double z = sq[0] + sq[1] + sq[2] + sq[3] + sq[4];
    for (int i = 0; i < 5; i++) sq[i] /= z;
    float logits[5];
    logits_from_probs(logits, probs, 5);
    bn_sampler *s = make(&sp, 5);
    if (!s) return;
    int counts[5];
    CHECK(draw_counts(s, logits, 5, DRAWS, counts));
    double zz = sq[0] + sq[1] + sq[2], p[5] = {sq[0] / zz, sq[1] / zz, sq[2] / zz, 0, 0};
    double chi = chi_square(counts, p, 5, DRAWS);
    CHECKF(chi < CHI_BOUND, "T 0.5 + top_k 3: chi-square %.1f", chi);
    bn_sampler_free(s);
}

static void sequence(int32_t *out, int n, bn_sampler *s, size_t n_vocab, uint64_t logit_seed) {
    float *logits = malloc(n_vocab * sizeof *logits);
    bn_test_rng rng;
    bn_test_rng_seed(&rng, logit_seed);
    bn_error err;
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < n_vocab; j++) logits[j] = bn_test_rng_float(&rng) * 3.0f;
        out[i] = -1;
        bn_sampler_sample(s, &out[i], logits, n_vocab, &err);
    }
    free(logits);
}

static void test_seed(void) {
    enum { N = 200, V = 1000 };
    int32_t a[N], b[N], c[N], d[N];
    bn_sampler_params sp = bn_sampler_params_default();
    sp.seed = 42;
    sp.repetition_penalty = 1.1f;
    sp.presence_penalty = 0.3f;
    bn_sampler *s1 = make(&sp, V), *s2 = make(&sp, V);
    sp.seed = 43;
    bn_sampler *s3 = make(&sp, V);
    if (!s1 || !s2 || !s3) return;
    CHECK(bn_sampler_seed(s1) == 42);
    sequence(a, N, s1, V, 1);
    srand(12345); /* global state must not matter */
    for (int i = 0; i < 100; i++) (void)rand();
    sequence(b, N, s2, V, 1);
    sequence(c, N, s3, V, 1);
    CHECK(!memcmp(a, b, sizeof a));
    int same = 0;
    for (int i = 0; i < N; i++) same += a[i] == c[i];
    CHECKF(same < N / 2, "seeds 42 and 43 agree on %d of %d tokens", same, N);
    bn_sampler_reset(s1); /* forgets the window and restarts the PRNG */
    sequence(d, N, s1, V, 1);
    CHECK(!memcmp(a, d, sizeof a));
    bn_sampler_free(s1);
    bn_sampler_free(s2);
    bn_sampler_free(s3);

    sp.seed = BN_SAMPLER_SEED_RANDOM;
    bn_sampler *r = make(&sp, V);
    if (r) CHECK(bn_sampler_seed(r) != BN_SAMPLER_SEED_RANDOM);
    bn_sampler_free(r);
}

/* Greedy choice after accepting `history`, under the given penalties. */
static int32_t greedy_after(const float *logits, size_t n, const int32_t *history, size_t n_history,
                            float rep, float presence, float frequency, int32_t window) {
    bn_sampler_params sp = bn_sampler_params_greedy();
    sp.repetition_penalty = rep;
    sp.presence_penalty = presence;
    sp.frequency_penalty = frequency;
    sp.penalty_last_n = window;
    bn_sampler *s = make(&sp, n);
    if (!s) return -1;
    for (size_t i = 0; i < n_history; i++) bn_sampler_accept(s, history[i]);
    int32_t t = -1;
    bn_error err;
    CHECK_OK(bn_sampler_sample(s, &t, logits, n, &err), &err);
    bn_sampler_free(s);
    return t;
}

static void test_penalties_greedy(void) {
    const int32_t once[1] = {0}, thrice[3] = {0, 0, 0};
    const float a[2] = {1.0f, 0.9f};
    CHECK(greedy_after(a, 2, once, 1, 1.0f, 0.0f, 0.0f, 64) == 0);
    CHECK(greedy_after(a, 2, once, 1, 1.0f, 0.2f, 0.0f, 64) == 1);   /* 1.0 - 0.2 < 0.9 */
    CHECK(greedy_after(a, 2, thrice, 3, 1.0f, 0.05f, 0.0f, 64) == 0); /* presence ignores count */
    CHECK(greedy_after(a, 2, once, 1, 1.0f, 0.0f, 0.05f, 64) == 0);  /* 1.0 - 0.05 > 0.9 */
    CHECK(greedy_after(a, 2, thrice, 3, 1.0f, 0.0f, 0.05f, 64) == 1); /* 1.0 - 0.15 < 0.9 */
    CHECK(greedy_after(a, 2, once, 1, 1.0f, -0.5f, 0.0f, 64) == 0);  /* negative: encourages */
    const float b[2] = {0.9f, 1.0f};
    CHECK(greedy_after(b, 2, once, 1, 1.0f, -0.2f, 0.0f, 64) == 0);
    /* repetition: positive logits divided, negative multiplied */
    const float c[2] = {2.0f, 1.6f};
    CHECK(greedy_after(c, 2, once, 1, 1.3f, 0.0f, 0.0f, 64) == 1);   /* 2 / 1.3 = 1.54 */
    CHECK(greedy_after(c, 2, once, 1, 1.2f, 0.0f, 0.0f, 64) == 0);   /* 2 / 1.2 = 1.67 */
    const float d[2] = {-1.0f, -1.2f};
    CHECK(greedy_after(d, 2, once, 1, 1.3f, 0.0f, 0.0f, 64) == 1);   /* -1.3 < -1.2 */
    CHECK(greedy_after(d, 2, once, 1, 1.1f, 0.0f, 0.0f, 64) == 0);   /* -1.1 > -1.2 */
    /* the window: token 0 has left a window of 2 */
    const int32_t old[3] = {0, 1, 1};
    const float e[3] = {1.0f, 0.0f, 0.95f};
    CHECK(greedy_after(e, 3, old, 3, 1.0f, 0.2f, 0.0f, 2) == 0);
    CHECK(greedy_after(e, 3, old, 3, 1.0f, 0.2f, 0.0f, 3) == 2);
    CHECK(greedy_after(e, 3, old, 3, 1.0f, 0.2f, 0.0f, 0) == 0);     /* window 0: no penalties */
}

/* Draws with the penalty window pinned to `count` copies of token 0 before every draw. */
static double penalised_chi(float presence, float frequency, int count, double *p0_out) {
    enum { N = 4 };
    const float logits[N] = {0.0f, 0.0f, 0.0f, 0.0f};
    bn_sampler_params sp = plain_params(1.0f, 77);
    sp.presence_penalty = presence;
    sp.frequency_penalty = frequency;
    sp.penalty_last_n = count;
    bn_sampler *s = make(&sp, N);
    if (!s) return INFINITY;
    int counts[N] = {0};
    bn_error err;
    for (int i = 0; i < DRAWS; i++) {
        for (int k = 0; k < count; k++) bn_sampler_accept(s, 0);
        int32_t t = -1;
        if (bn_sampler_sample(s, &t, logits, N, &err) != BN_OK || t < 0 || t >= N) {
            bn_sampler_free(s);
            return INFINITY;
        }
        counts[t]++;
    }
    bn_sampler_free(s);
    double w0 = exp(-(presence + frequency * count));
    double p[N] = {w0 / (w0 + 3), 1 / (w0 + 3), 1 / (w0 + 3), 1 / (w0 + 3)};
    *p0_out = (double)counts[0] / DRAWS;
    return chi_square(counts, p, N, DRAWS);
}

static void test_penalties_distribution(void) {
    double p_pres, p_f1, p_f3;
    double chi = penalised_chi(1.0f, 0.0f, 1, &p_pres);
    CHECKF(chi < CHI_BOUND, "presence 1.0: chi-square %.1f", chi);
    CHECKF(p_pres < 0.15, "presence-penalised token drawn with p %.3f (unpenalised 0.25)", p_pres);
    chi = penalised_chi(0.0f, 0.5f, 1, &p_f1);
    CHECKF(chi < CHI_BOUND, "frequency 0.5 x1: chi-square %.1f", chi);
    chi = penalised_chi(0.0f, 0.5f, 3, &p_f3);
    CHECKF(chi < CHI_BOUND, "frequency 0.5 x3: chi-square %.1f", chi);
    CHECKF(p_f3 < p_f1 && p_f1 < 0.25, "frequency: p %.3f (x1) %.3f (x3)", p_f1, p_f3);
}

static void test_logit_bias(void) {
    const float logits[4] = {3.0f, 2.0f, 1.0f, 0.0f};
    bn_logit_bias ban = {0, -INFINITY}, force = {3, INFINITY}, push = {2, 2.5f};
    bn_sampler_params sp = bn_sampler_params_greedy();
    sp.logit_bias = &ban;
    sp.n_logit_bias = 1;
    bn_sampler *s = make(&sp, 4);
    bn_error err;
    int32_t t = -1;
    if (s) {
        CHECK_OK(bn_sampler_sample(s, &t, logits, 4, &err), &err);
        CHECK(t == 1);
        bn_sampler_free(s);
    }
    sp.logit_bias = &push;
    s = make(&sp, 4);
    if (s) {
        CHECK_OK(bn_sampler_sample(s, &t, logits, 4, &err), &err);
        CHECK(t == 2); /* 1 + 2.5 > 3 */
        bn_sampler_free(s);
    }
    /* sampled: a banned token never appears, a forced one always does */
    int counts[4];
    sp = plain_params(2.0f, 3);
    sp.logit_bias = &ban;
    sp.n_logit_bias = 1;
    s = make(&sp, 4);
    if (s) {
        CHECK(draw_counts(s, logits, 4, 5000, counts));
        CHECK(counts[0] == 0 && counts[1] > 0 && counts[2] > 0 && counts[3] > 0);
        bn_sampler_free(s);
    }
    sp.logit_bias = &force;
    s = make(&sp, 4);
    if (s) {
        CHECK(draw_counts(s, logits, 4, 2000, counts));
        CHECK(counts[3] == 2000);
        bn_sampler_free(s);
    }
    /* forcing a token whose logit is -inf or NaN still forces it */
    const float hostile[4] = {3.0f, NAN, -INFINITY, 0.0f};
    bn_logit_bias force_nan = {1, INFINITY};
    sp.logit_bias = &force_nan;
    s = make(&sp, 4);
    if (s) {
        CHECK(draw_counts(s, hostile, 4, 200, counts));
        CHECK(counts[1] == 200);
        bn_sampler_free(s);
    }
    /* invalid bias entries are refused at creation */
    bn_logit_bias bad_id = {4, 1.0f}, bad_value = {1, NAN};
    bn_sampler *none = NULL;
    sp.logit_bias = &bad_id;
    CHECK(bn_sampler_create(&none, &sp, 4, &err) == BN_ERR_RANGE && none == NULL);
    CHECK_STR_CONTAINS(err.message, "token 4");
    sp.logit_bias = &bad_value;
    CHECK(bn_sampler_create(&none, &sp, 4, &err) == BN_ERR_INVALID);
}

static bool even_only(void *user, int32_t token) {
    (*(int *)user)++;
    return token % 2 == 0;
}

static void test_mask(void) {
    enum { N = 100 };
    float logits[N];
    for (int i = 0; i < N; i++) logits[i] = (float)(i % 7);
    uint64_t bits[2] = {0, 0};
    bits[0] |= 1ull << 3;
    bits[1] |= 1ull << (70 - 64);
    bn_sampler_params sp = plain_params(1.0f, 4);
    bn_sampler *s = make(&sp, N);
    if (!s) return;
    bn_sampler_set_allowed(s, bits);
    int counts[N];
    CHECK(draw_counts(s, logits, N, 2000, counts));
    CHECK(counts[3] + counts[70] == 2000 && counts[3] > 0 && counts[70] > 0);
    /* allowed tokens all -inf: the fallback still keeps to the mask (token 5 is not allowed) */
    float dead[N];
    for (int i = 0; i < N; i++) dead[i] = i == 5 ? 10.0f : -INFINITY;
    bn_error err;
    int32_t t = -1;
    CHECK_OK(bn_sampler_sample(s, &t, dead, N, &err), &err);
    CHECK(t == 3); /* fallback: lowest allowed id */
    /* nothing allowed: an error, token untouched */
    uint64_t none[2] = {0, 0};
    bn_sampler_set_allowed(s, none);
    t = 1234;
    CHECK(bn_sampler_sample(s, &t, logits, N, &err) == BN_ERR_STATE && t == 1234);
    bn_sampler_set_allowed(s, NULL);
    int calls = 0;
    bn_sampler_set_filter(s, even_only, &calls);
    CHECK(draw_counts(s, logits, N, 1000, counts));
    int odd = 0;
    for (int i = 1; i < N; i += 2) odd += counts[i];
    CHECK(odd == 0 && calls >= 1000 * N);
    bn_sampler_set_filter(s, NULL, NULL);
    bn_sampler_free(s);

    /* the mask wins over a bias that forces a disallowed token */
    bn_logit_bias force = {5, INFINITY};
    sp.logit_bias = &force;
    sp.n_logit_bias = 1;
    s = make(&sp, N);
    if (!s) return;
    bn_sampler_set_allowed(s, bits);
    CHECK(draw_counts(s, logits, N, 500, counts));
    CHECK(counts[3] + counts[70] == 500);
    bn_sampler_free(s);
}

static void test_logprobs(void) {
    const float logits[4] = {(float)log(0.5), (float)log(0.25), (float)log(0.125), (float)log(0.125)};
    bn_sampler_params sp = bn_sampler_params_greedy();
    sp.n_top_logprobs = 3;
    bn_sampler *s = make(&sp, 4);
    if (!s) return;
    bn_sample_result r;
    bn_error err;
    CHECK_OK(bn_sampler_sample_ex(s, &r, logits, 4, &err), &err);
    CHECK(r.token == 0 && fabsf(r.logprob - logf(0.5f)) < 1e-5f);
    CHECK(r.n_top == 3);
    CHECK(r.top[0].token == 0 && r.top[1].token == 1 && r.top[2].token == 2); /* tie: lower id */
    CHECK(fabsf(r.top[1].logprob - logf(0.25f)) < 1e-5f && fabsf(r.top[2].logprob - logf(0.125f)) < 1e-5f);
    bn_sampler_free(s);

    /* +inf logits share the mass; -inf and NaN report the floor */
    const float odd[5] = {INFINITY, NAN, -INFINITY, INFINITY, 1e30f};
    sp.n_top_logprobs = 5;
    s = make(&sp, 5);
    if (!s) return;
    CHECK_OK(bn_sampler_sample_ex(s, &r, odd, 5, &err), &err);
    CHECK(r.token == 0 && fabsf(r.logprob - (float)-log(2.0)) < 1e-6f);
    CHECK(r.n_top == 5 && r.top[0].token == 0 && r.top[1].token == 3 && r.top[2].token == 4);
    CHECK(r.top[4].logprob == BN_LOGPROB_FLOOR && r.top[2].logprob == BN_LOGPROB_FLOOR);
    bn_sampler_free(s);

    /* n_top larger than the vocabulary */
    sp.n_top_logprobs = 20;
    s = make(&sp, 2);
    if (!s) return;
    const float two[2] = {0.0f, 0.0f};
    CHECK_OK(bn_sampler_sample_ex(s, &r, two, 2, &err), &err);
    CHECK(r.n_top == 2 && fabsf(r.logprob - logf(0.5f)) < 1e-6f);
    bn_sampler_free(s);
}

static void test_hostile(void) {
    bn_error err;
    int32_t t;
    const float nan8[8] = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    const float ninf8[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                            -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    const float mixed[8] = {NAN, -INFINITY, INFINITY, 1e38f, INFINITY, -1e38f, 0.0f, NAN};
    const float huge[8] = {1e38f, -1e38f, FLT_MAX, -FLT_MAX, 1e38f, 0.0f, 3e38f, -3e38f};
    const float denorm[8] = {1e-45f, 2e-45f, 1e-40f, 0.0f, -1e-45f, 1e-44f, 1e-39f, 5e-45f};
    const float temps[4] = {0.0f, 1e-30f, 0.7f, 1e30f};
    for (int ti = 0; ti < 4; ti++) {
        bn_sampler_params sp = bn_sampler_params_default();
        sp.temperature = temps[ti];
        sp.seed = 5;
        sp.repetition_penalty = 1.5f;
        sp.frequency_penalty = 1.0f;
        bn_sampler *s = make(&sp, 8);
        if (!s) return;
        const float *rows[5] = {nan8, ninf8, mixed, huge, denorm};
        int mixed_counts[8] = {0};
        for (int r = 0; r < 5; r++)
            for (int k = 0; k < 200; k++) {
                t = -1;
                bn_status st = bn_sampler_sample(s, &t, rows[r], 8, &err);
                CHECKF(st == BN_OK && t >= 0 && t < 8, "T %g row %d: status %d token %d", (double)temps[ti],
                       r, st, (int)t);
                if (st == BN_OK && t >= 0 && t < 8 && r == 2) mixed_counts[t]++;
                if (r < 2 && temps[ti] == 0.0f) CHECK(t == 0); /* all -inf/NaN: lowest id */
            }
        /* only the +inf tokens, 2 and 4, can come out of the mixed row */
        CHECK(mixed_counts[2] + mixed_counts[4] == 200);
        if (temps[ti] > 0.0f) CHECK(mixed_counts[2] > 0 && mixed_counts[4] > 0);
        bn_sampler_free(s);
    }
    /* n_vocab 1 */
    bn_sampler_params sp = bn_sampler_params_default();
    sp.seed = 1;
    bn_sampler *one = make(&sp, 1);
    if (one) {
        const float v1[3] = {NAN, -INFINITY, INFINITY};
        for (int i = 0; i < 3; i++) {
            t = -1;
            CHECK(bn_sampler_sample(one, &t, &v1[i], 1, &err) == BN_OK && t == 0);
        }
        bn_sampler_free(one);
    }
    /* random rows full of special values under random settings */
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 2024);
    const float specials[9] = {NAN, INFINITY, -INFINITY, 1e38f, -1e38f, 1e-45f, 0.0f, FLT_MAX, -FLT_MAX};
    int bad = 0;
    for (int trial = 0; trial < 2000; trial++) {
        size_t n = (size_t)bn_test_rng_range(&rng, 1, 64);
        float row[64];
        for (size_t i = 0; i < n; i++)
            row[i] = bn_test_rng_range(&rng, 0, 2) ? specials[bn_test_rng_range(&rng, 0, 8)]
                                                    : (bn_test_rng_float(&rng) - 0.5f) * 40.0f;
        bn_sampler_params p = bn_sampler_params_default();
        p.seed = (uint64_t)trial;
        p.temperature = (float)bn_test_rng_range(&rng, 0, 3) * 0.5f;
        p.top_k = (int32_t)bn_test_rng_range(&rng, 0, 5);
        p.top_p = bn_test_rng_float(&rng);
        p.min_p = bn_test_rng_float(&rng);
        p.repetition_penalty = 1.0f + bn_test_rng_float(&rng);
        p.presence_penalty = bn_test_rng_float(&rng) * 4.0f - 2.0f;
        p.n_top_logprobs = (int32_t)bn_test_rng_range(&rng, 0, 20);
        bn_sampler *s = NULL;
        if (bn_sampler_create(&s, &p, n, &err) != BN_OK) {
            bad++;
            continue;
        }
        for (int k = 0; k < 4; k++) {
            bn_sample_result r;
            if (bn_sampler_sample_ex(s, &r, row, n, &err) != BN_OK || r.token < 0 || (size_t)r.token >= n ||
                !(r.logprob <= 0.0f && r.logprob >= BN_LOGPROB_FLOOR) || r.n_top > p.n_top_logprobs)
                bad++;
        }
        bn_sampler_free(s);
    }
    CHECKF(bad == 0, "%d hostile samples failed or gave an invalid token", bad);
}

static void test_params(void) {
    bn_error err;
    bn_sampler *s = NULL;
    bn_sampler_params p = bn_sampler_params_default();
    CHECK(bn_sampler_create(&s, &p, 0, &err) == BN_ERR_INVALID);
    p.top_p = 1.5f;
    CHECK(bn_sampler_create(&s, &p, 10, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "top_p");
    p = bn_sampler_params_default();
    p.temperature = NAN;
    CHECK(bn_sampler_create(&s, &p, 10, &err) == BN_ERR_INVALID);
    p = bn_sampler_params_default();
    p.repetition_penalty = 0.0f;
    CHECK(bn_sampler_create(&s, &p, 10, &err) == BN_ERR_INVALID);
    p = bn_sampler_params_default();
    p.top_k = -1;
    CHECK(bn_sampler_create(&s, &p, 10, &err) == BN_ERR_INVALID);
    p = bn_sampler_params_default();
    p.n_top_logprobs = 21;
    CHECK(bn_sampler_create(&s, &p, 10, &err) == BN_ERR_INVALID);
    p = bn_sampler_params_default();
    p.min_p = -0.1f;
    CHECK(bn_sampler_create(&s, &p, 10, &err) == BN_ERR_INVALID);
    CHECK(s == NULL);
    p = bn_sampler_params_default();
    CHECK(p.typical_p == 1.0f && p.temperature > 0.0f && p.top_k == 40);
}

/* ---- stop strings ---- */

static void test_stop_basic(void) {
    bn_stop_scan r;
    const char *one[1] = {"wor"};
    bn_stop_scan_text(&r, "Hello world", 11, 0, one, 1);
    CHECK(r.found && r.cut == 6 && r.emit_len == 6 && r.which == 0);

    const char *two[2] = {"END", "STOP"};
    const char *text = "abc STOP xyz END";
    bn_stop_scan_text(&r, text, strlen(text), 0, two, 2);
    CHECK(r.found && r.which == 1 && r.cut == 4);

    const char *eot[1] = {"<|eot|>"};
    bn_stop_scan_text(&r, "Hello <|e", 9, 0, eot, 1);
    CHECK(!r.found && r.emit_len == 6);
    bn_stop_scan_text(&r, "Hello <|x", 9, 0, eot, 1);
    CHECK(!r.found && r.emit_len == 9);

    const char *aab[1] = {"aab"};
    bn_stop_scan_text(&r, "aaab", 4, 0, aab, 1);
    CHECK(r.found && r.cut == 1);
    bn_stop_scan_text(&r, "xaa", 3, 0, aab, 1);
    CHECK(!r.found && r.emit_len == 1);

    /* the longest held-back tail over all stops; empty and NULL stops ignored */
    const char *mixed[4] = {"", NULL, "ab", "bcd"};
    bn_stop_scan_text(&r, "zzbc", 4, 0, mixed, 4);
    CHECK(!r.found && r.emit_len == 2);
    bn_stop_scan_text(&r, "zza", 3, 0, mixed, 4);
    CHECK(!r.found && r.emit_len == 2);
    bn_stop_scan_text(&r, "", 0, 0, mixed, 4);
    CHECK(!r.found && r.emit_len == 0);
    bn_stop_scan_text(&r, "anything", 8, 0, NULL, 0);
    CHECK(!r.found && r.emit_len == 8);
    /* multi-byte stop strings: held back and cut on character boundaries */
    const char *arrow[1] = {"\xe2\x86\x92" "END"};
    bn_stop_scan_text(&r, "a\xe2\x86\x92" "EN", 6, 0, arrow, 1);
    CHECK(!r.found && r.emit_len == 1);
    bn_stop_scan_text(&r, "a\xe2\x86\x92" "END!", 8, 1, arrow, 1);
    CHECK(r.found && r.cut == 1);
    /* a stop string at the very start, and at the same position: the one listed first */
    const char *same[2] = {"ab", "abc"};
    bn_stop_scan_text(&r, "abcd", 4, 0, same, 2);
    CHECK(r.found && r.cut == 0 && r.which == 0 && r.emit_len == 0);
}

/* Streams `text` in chunks of `chunk` bytes the way the server does and returns what was shown. */
static void stream(char *shown, const char *text, size_t chunk, const char *const *stops, size_t n_stops,
                   bool *stopped, bool *ever_showed_stop_start) {
    size_t len = strlen(text), have = 0, emitted = 0;
    *stopped = false;
    *ever_showed_stop_start = false;
    shown[0] = '\0';
    while (have < len) {
        have = have + chunk < len ? have + chunk : len;
        bn_stop_scan r;
        bn_stop_scan_text(&r, text, have, emitted, stops, n_stops);
        if (r.emit_len < emitted) *ever_showed_stop_start = true; /* would have to take text back */
        if (r.emit_len > emitted) {
            strncat(shown, text + emitted, r.emit_len - emitted);
            emitted = r.emit_len;
        }
        if (r.found) {
            *stopped = true;
            return;
        }
    }
    strcat(shown, text + emitted); /* end of generation: flush what was held back */
}

static void test_stop_streaming(void) {
    const char *stops[2] = {"\nUser:", "<|eot_id|>"};
    char shown[256];
    bool stopped, took_back;
    for (size_t chunk = 1; chunk <= 12; chunk++) {
        stream(shown, "The answer is 42.\nUser: hi", chunk, stops, 2, &stopped, &took_back);
        CHECKF(stopped && !strcmp(shown, "The answer is 42.") && !took_back, "chunk %zu: \"%s\"", chunk, shown);
        stream(shown, "Done<|eot_id|>extra", chunk, stops, 2, &stopped, &took_back);
        CHECKF(stopped && !strcmp(shown, "Done") && !took_back, "chunk %zu: \"%s\"", chunk, shown);
        /* near misses are shown in full once decided */
        stream(shown, "Line\nUsed <|eot_x|> ok\n", chunk, stops, 2, &stopped, &took_back);
        CHECKF(!stopped && !strcmp(shown, "Line\nUsed <|eot_x|> ok\n") && !took_back, "chunk %zu: \"%s\"",
               chunk, shown);
    }
    /* while undecided, the tail is held back */
    bn_stop_scan r;
    bn_stop_scan_text(&r, "Line\nUse", 8, 0, stops, 2);
    CHECK(!r.found && r.emit_len == 4);
    bn_stop_scan_text(&r, "Line\nUsed", 9, r.emit_len, stops, 2);
    CHECK(!r.found && r.emit_len == 9);
}

int main(void) {
    test_temperature();
    test_greedy();
    test_greedy_shortcut();
    test_top_k();
    test_top_p();
    test_min_p();
    test_typical_p();
    test_truncation_order();
    test_seed();
    test_penalty_context();
    test_penalties_greedy();
    test_penalties_distribution();
    test_logit_bias();
    test_mask();
    test_logprobs();
    test_hostile();
    test_params();
    test_stop_basic();
    test_stop_streaming();
    return bn_test_finish("test_sampling");
}
