/*
 * test_model_embed.c: bn_model_decode_hidden (the final hidden states that embeddings pool) on a
 * small synthetic model.
 *
 * Its rows are exactly what bn_model_decode's forward pass feeds the LM head: equal bit for bit
 * to the "result_norm" rows the tensor observer sees during a plain decode, and within float
 * rounding of a scalar RMSNorm (times output_norm.weight, read from the file) of the last layer's
 * residual rows ("l_out-N"). Batch invariance holds for them as for logits: prefill chunking, a
 * small internal ubatch, other sequences interleaved in the batch and two threads change no bit.
 * The step rules are bn_model_decode's: a bad token or a missing output buffer fails the whole
 * call and leaves the sequence as it was.
 */
#include "model/model.h"
#include "model/synth.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 23, N_OTHER = 11, MAX_POS = 64 };

static int dim, n_layers;

/* Rows of two observed results, by position (one sequence per run). */
typedef struct capture {
    char last_layer[32];  /* "l_out-<n_layers-1>" */
    float *norm;          /* MAX_POS x dim: result_norm */
    float *residual;      /* MAX_POS x dim: the last layer's output */
} capture;

static void observe(void *context, const char *name, const char *op, const float *rows, const int32_t *pos, int n,
                    int width) {
    (void)op;
    capture *c = context;
    float *into = !strcmp(name, "result_norm") ? c->norm : !strcmp(name, c->last_layer) ? c->residual : NULL;
    if (!into || width != dim) return;
    for (int i = 0; i < n; i++)
        if (pos[i] >= 0 && pos[i] < MAX_POS)
            memcpy(into + (size_t)pos[i] * (size_t)dim, rows + (size_t)i * (size_t)dim, (size_t)dim * sizeof(float));
}

static bn_model *load(const char *path, int threads, int ubatch) {
    bn_model_options o = bn_model_options_default();
    o.n_threads = threads;
    o.ubatch = ubatch;
    bn_model *m = NULL;
    bn_error err;
    CHECK_OK(bn_model_load(path, &o, &m, &err), &err);
    return m;
}

/* Runs tokens on seq from its current length in steps of `step` entries through
 * bn_model_decode_hidden, each step also carrying the next tokens of `other` (another sequence)
 * when given; the rows of seq's tokens go to out. */
static bool hidden_steps(bn_model *m, bn_sequence *seq, const int32_t *tokens, int n, int step, bn_sequence *other,
                         const int32_t *other_tokens, float *out) {
    bn_batch_entry *e = malloc((size_t)(2 * step) * sizeof *e);
    float *rows = malloc((size_t)(2 * step) * (size_t)dim * sizeof *rows);
    bool ok = e && rows;
    int done_other = 0;
    for (int begin = 0; ok && begin < n; begin += step) {
        int count = n - begin < step ? n - begin : step, k = 0;
        if (other && done_other < N_OTHER) { /* the other sequence first, then ours, alternating */
            e[k++] = (bn_batch_entry){other, bn_sequence_length(other), other_tokens[done_other++], true};
        }
        int base = bn_sequence_length(seq), first = k;
        for (int i = 0; i < count; i++) e[k++] = (bn_batch_entry){seq, base + i, tokens[begin + i], true};
        bn_error err;
        bn_status st = bn_model_decode_hidden(m, e, k, rows, &err);
        CHECK_OK(st, &err);
        ok = st == BN_OK;
        if (ok) memcpy(out + (size_t)begin * (size_t)dim, rows + (size_t)first * (size_t)dim,
                       (size_t)count * (size_t)dim * sizeof *rows);
    }
    free(e);
    free(rows);
    return ok;
}

/* The observer's rows during a plain decode of the tokens, and the hidden rows, compared. */
static void matches_observer(const char *path, const int32_t *tokens) {
    bn_model *m = load(path, 1, 0);
    if (!m) return;
    capture c = {.norm = calloc((size_t)MAX_POS * (size_t)dim, sizeof(float)),
                 .residual = calloc((size_t)MAX_POS * (size_t)dim, sizeof(float))};
    snprintf(c.last_layer, sizeof c.last_layer, "l_out-%d", n_layers - 1);
    float *logits = malloc((size_t)N * (size_t)bn_model_get_config(m)->n_vocab * sizeof *logits);
    float *hidden = malloc((size_t)N * (size_t)dim * sizeof *hidden);
    bn_sequence *seq = NULL;
    bn_error err;
    CHECK_OK(bn_sequence_create(m, 0, &seq, &err), &err);
    CHECK_OK(bn_model_set_observer(m, observe, &c, &err), &err);
    bn_batch_entry e[N];
    for (int i = 0; i < N; i++) e[i] = (bn_batch_entry){seq, i, tokens[i], true};
    CHECK_OK(bn_model_decode(m, e, N, logits, &err), &err);
    CHECK_OK(bn_model_set_observer(m, NULL, NULL, &err), &err);

    bn_sequence_clear(seq);
    CHECK_OK(bn_model_decode_hidden(m, e, N, hidden, &err), &err);
    CHECK(bn_sequence_length(seq) == N);
    CHECKF(!memcmp(hidden, c.norm, (size_t)N * (size_t)dim * sizeof *hidden),
           "the hidden rows are the result_norm rows the LM head multiplies, bit for bit");

    /* scalar reference: RMSNorm(x, output_norm) of the last layer's output, in double */
    const bn_gguf_tensor *g = bn_gguf_find_tensor(bn_model_get_gguf(m), "output_norm.weight");
    CHECK(g && g->n_elements == (uint64_t)dim);
    const float *gain = g ? (const float *)g->data : NULL;
    float eps = bn_model_get_config(m)->rms_eps;
    double worst = 0;
    for (int t = 0; gain && t < N; t++) {
        const float *x = c.residual + (size_t)t * (size_t)dim;
        double ss = 0;
        for (int i = 0; i < dim; i++) ss += (double)x[i] * x[i];
        double scale = 1.0 / sqrt(ss / dim + eps);
        for (int i = 0; i < dim; i++) {
            double want = x[i] * scale * gain[i], got = hidden[(size_t)t * (size_t)dim + (size_t)i];
            double diff = fabs(want - got) / (fabs(want) + 1e-3);
            if (diff > worst) worst = diff;
        }
    }
    CHECKF(worst < 1e-5, "the hidden rows equal a scalar RMSNorm of the last residual (worst relative diff %g)", worst);

    bn_sequence_free(seq);
    bn_model_free(m);
    free(logits);
    free(hidden);
    free(c.norm);
    free(c.residual);
}

/* The hidden rows of the tokens run alone in one call, against chunked runs, a small ubatch, an
 * interleaved second sequence and two threads. */
static void invariance(const char *path, const int32_t *tokens, const int32_t *other_tokens) {
    size_t bytes = (size_t)N * (size_t)dim * sizeof(float);
    float *alone = malloc(bytes), *got = malloc(bytes);
    const struct { int threads, ubatch, step; bool other; const char *what; } runs[] = {
        {1, 0, N, false, "one call"},          {1, 0, 1, false, "one token per call"},
        {1, 0, 7, false, "7 tokens per call"}, {1, 5, N, false, "ubatch 5"},
        {1, 0, 3, true, "another sequence interleaved"}, {2, 4, 5, true, "2 threads, ubatch 4, interleaved"},
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        bn_model *m = load(path, runs[r].threads, runs[r].ubatch);
        if (!m) continue;
        bn_sequence *seq = NULL, *other = NULL;
        bn_error err;
        CHECK_OK(bn_sequence_create(m, 64, &seq, &err), &err);
        CHECK_OK(bn_sequence_create(m, 64, &other, &err), &err);
        if (seq && other &&
            hidden_steps(m, seq, tokens, N, runs[r].step, runs[r].other ? other : NULL, other_tokens, r ? got : alone))
            CHECKF(r == 0 || !memcmp(alone, got, bytes), "hidden rows unchanged by: %s", runs[r].what);
        bn_sequence_free(seq);
        bn_sequence_free(other);
        bn_model_free(m);
    }
    free(alone);
    free(got);
}

/* bn_model_decode's rules: everything is checked before any state changes. */
static void step_rules(const char *path, const int32_t *tokens) {
    bn_model *m = load(path, 1, 0);
    if (!m) return;
    bn_sequence *seq = NULL;
    bn_error err;
    CHECK_OK(bn_sequence_create(m, 8, &seq, &err), &err);
    float *rows = malloc(4 * (size_t)dim * sizeof *rows);
    bn_batch_entry e[3] = {{seq, 0, tokens[0], true}, {seq, 1, tokens[1], true}, {seq, 2, 1 << 20, true}};
    CHECK(bn_model_decode_hidden(m, e, 3, rows, &err) == BN_ERR_RANGE && bn_sequence_length(seq) == 0);
    CHECK(bn_model_decode_hidden(m, e, 2, NULL, &err) == BN_ERR_INVALID && bn_sequence_length(seq) == 0);
    e[1].want_logits = false;
    CHECK_OK(bn_model_decode_hidden(m, e, 2, rows, &err), &err);
    CHECK(bn_sequence_length(seq) == 2);
    bn_batch_entry full[7];
    for (int i = 0; i < 7; i++) full[i] = (bn_batch_entry){seq, 2 + i, tokens[i], true};
    CHECK(bn_model_decode_hidden(m, full, 7, rows, &err) == BN_ERR_RANGE && bn_sequence_length(seq) == 2);
    free(rows);
    bn_sequence_free(seq);
    bn_model_free(m);
}

int main(void) {
    char *dir = bn_test_tmpdir("model_embed");
    char *path = bn_test_path(dir, "model.gguf");
    bn_synth_options o;
    bn_error err;
    CHECK_OK(bn_synth_preset(&o, "tiny", &err), &err);
    o.seed = 11;
    CHECK_OK(bn_synth_write(path, &o, &err), &err);
    dim = o.dim;
    n_layers = o.n_layers;
    int32_t tokens[N], other[N_OTHER];
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 5);
    for (int i = 0; i < N; i++) tokens[i] = (int32_t)bn_test_rng_range(&rng, 0, BN_SYNTH_BYTE_VOCAB - 1);
    for (int i = 0; i < N_OTHER; i++) other[i] = (int32_t)bn_test_rng_range(&rng, 0, BN_SYNTH_BYTE_VOCAB - 1);

    matches_observer(path, tokens);
    invariance(path, tokens, other);
    step_rules(path, tokens);

    free(path);
    free(dir);
    return bn_test_finish("test_model_embed");
}
