/*
 * test_server_embed.c: embeddings without HTTP: the engine's embedding jobs and
 * /v1/embeddings' request parsing and response text (server/embeddings.h).
 *
 * Engine: every vector equals an independent computation, the mean (in double) over the input's
 * positions (a leading BOS left out unless it is the whole input) of the "result_norm" rows the
 * tensor observer sees during a plain bn_model_decode, L2-normalized; each has norm 1; the same
 * input gives the same vector bit for bit, wherever it sits in a job and whatever runs beside it
 * (generation jobs decoding in the same steps still give their greedy reference tokens);
 * different inputs give different vectors. Inputs are split over steps (a small prefill chunk).
 * Cancelling, stopping the engine with jobs queued, a full queue and bad configs end or refuse a
 * job with the right status, its callback called exactly once.
 *
 * Parsing: the four input forms, encoding_format and dimensions, and one refusal per bad field
 * naming it. The response: OpenAI's shape, floats that parse back to the same float32, and base64
 * that decodes to the little-endian float32 bytes.
 */
#include "testutil.h"

#include "model/model.h"
#include "model/synth.h"
#include "server/embeddings.h"
#include "server/engine.h"
#include "tokenizer/tokenizer.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N_INPUTS = 7, MAX_TOKENS = 40, N_GEN = 10 };

static int dim;

/* ---------------------------------------------------------------- reference */

typedef struct norm_rows {
    float *rows; /* MAX_TOKENS x dim, by position */
} norm_rows;

static void observe(void *context, const char *name, const char *op, const float *rows, const int32_t *pos, int n,
                    int width) {
    (void)op;
    norm_rows *c = context;
    if (strcmp(name, "result_norm") != 0 || width != dim) return;
    for (int i = 0; i < n; i++)
        if (pos[i] >= 0 && pos[i] < MAX_TOKENS)
            memcpy(c->rows + (size_t)pos[i] * (size_t)dim, rows + (size_t)i * (size_t)dim, (size_t)dim * sizeof(float));
}

/* The embedding as documented, from the observer's rows of a plain decode (the model must not be
 * in use by an engine). */
static void reference(bn_model *m, const int32_t *ids, int n, int32_t bos, float *out) {
    norm_rows c = {calloc((size_t)MAX_TOKENS * (size_t)dim, sizeof(float))};
    float *logits = malloc((size_t)n * (size_t)bn_model_get_config(m)->n_vocab * sizeof *logits);
    bn_sequence *seq = NULL;
    bn_error err;
    CHECK_OK(bn_sequence_create(m, MAX_TOKENS, &seq, &err), &err);
    bn_batch_entry e[MAX_TOKENS];
    for (int i = 0; i < n; i++) e[i] = (bn_batch_entry){seq, i, ids[i], true};
    CHECK_OK(bn_model_set_observer(m, observe, &c, &err), &err);
    CHECK_OK(bn_model_decode(m, e, n, logits, &err), &err);
    CHECK_OK(bn_model_set_observer(m, NULL, NULL, &err), &err);
    int first = ids[0] == bos && n > 1 ? 1 : 0;
    double *mean = calloc((size_t)dim, sizeof *mean), norm = 0;
    for (int d = 0; d < dim; d++) {
        for (int t = first; t < n; t++) mean[d] += c.rows[(size_t)t * (size_t)dim + (size_t)d];
        mean[d] /= n - first;
        norm += mean[d] * mean[d];
    }
    for (int d = 0; d < dim; d++) out[d] = (float)(mean[d] / sqrt(norm));
    free(mean);
    free(logits);
    free(c.rows);
    bn_sequence_free(seq);
}

/* ---------------------------------------------------------------- engine */

typedef struct waiter {
    pthread_mutex_t mu;
    int calls;
    bn_status status;
} waiter;

static void on_done(void *user, bn_status status, const char *message) {
    (void)message;
    waiter *w = user;
    pthread_mutex_lock(&w->mu);
    w->calls++;
    w->status = status;
    pthread_mutex_unlock(&w->mu);
}

static int calls(waiter *w) {
    pthread_mutex_lock(&w->mu);
    int n = w->calls;
    pthread_mutex_unlock(&w->mu);
    return n;
}

static void wait_calls(waiter *w, int n) {
    for (int i = 0; i < 6000 && calls(w) < n; i++) usleep(5000);
}

typedef struct gen_tokens {
    pthread_mutex_t mu;
    int32_t tokens[4][N_GEN];
    int n[4];
    int done;
} gen_tokens;

static void on_event(void *user, const bn_engine_event *ev) {
    gen_tokens *g = user;
    pthread_mutex_lock(&g->mu);
    if (ev->kind == BN_ENGINE_TOKEN && ev->sample && g->n[ev->index] < N_GEN)
        g->tokens[ev->index][g->n[ev->index]++] = ev->sample->token;
    if (ev->kind == BN_ENGINE_FINISH) g->done++;
    pthread_mutex_unlock(&g->mu);
}

/* Greedy tokens of one sequence, a token per decode after the prompt. */
static void greedy(bn_model *m, const int32_t *prompt, int n, int32_t *out) {
    bn_sequence *seq = NULL;
    bn_error err;
    CHECK_OK(bn_sequence_create(m, 128, &seq, &err), &err);
    int n_vocab = bn_model_get_config(m)->n_vocab;
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    for (int i = 0; i < n; i++) {
        bn_batch_entry e = {seq, i, prompt[i], i == n - 1};
        bn_model_decode(m, &e, 1, logits, &err);
    }
    for (int k = 0; k < N_GEN; k++) {
        int best = 0;
        for (int v = 1; v < n_vocab; v++)
            if (logits[v] > logits[best]) best = v;
        out[k] = best;
        bn_batch_entry e = {seq, bn_sequence_length(seq), best, true};
        bn_model_decode(m, &e, 1, logits, &err);
    }
    free(logits);
    bn_sequence_free(seq);
}

static double max_diff(const float *a, const float *b) {
    double worst = 0;
    for (int d = 0; d < dim; d++) worst = fmax(worst, fabs((double)a[d] - b[d]));
    return worst;
}

static void test_engine(bn_model *m, const bn_tokenizer *tok) {
    const int32_t bos = bn_tokenizer_bos(tok);
    int32_t ids[N_INPUTS][MAX_TOKENS];
    size_t n_tokens[N_INPUTS] = {1, 1, 2, 13, 40, 9, 13}; /* [BOS] alone, one token, BOS + one, ... */
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 3);
    for (int i = 0; i < N_INPUTS; i++)
        for (size_t t = 0; t < n_tokens[i]; t++) ids[i][t] = (int32_t)bn_test_rng_range(&rng, 0, 258);
    ids[0][0] = bos, ids[2][0] = bos, ids[4][0] = bos;
    memcpy(ids[6], ids[3], sizeof ids[3]); /* the same input twice */
    float want[N_INPUTS][256];
    CHECK(dim <= 256);
    for (int i = 0; i < N_INPUTS; i++) reference(m, ids[i], (int)n_tokens[i], bos, want[i]);

    bn_engine *e = NULL;
    bn_error err;
    /* a prefill chunk of 7: inputs split over steps, several short ones in one step */
    const bn_engine_options eo = {.n_slots = 2, .n_ctx = 64, .max_queue = 4, .prefill_chunk = 7};
    CHECK_OK(bn_engine_create(&e, m, tok, &eo, NULL, &err), &err);
    if (!e) return;
    const int32_t *inputs[N_INPUTS];
    for (int i = 0; i < N_INPUTS; i++) inputs[i] = ids[i];
    float got[N_INPUTS][256];
    waiter w = {.calls = 0};
    pthread_mutex_init(&w.mu, NULL);
    bn_engine_embed_config job = {.inputs = inputs, .n_tokens = n_tokens, .n_inputs = N_INPUTS, .bos = bos,
                                  .out = &got[0][0], .done = on_done, .user = &w};
    /* generation jobs decoding in the same steps */
    gen_tokens g = {.done = 0};
    pthread_mutex_init(&g.mu, NULL);
    int32_t prompts[2][5] = {{bos, 65, 66, 67, 68}, {bos, 100, 101, 102, 103}};
    bn_engine_job_config gens[2];
    for (int k = 0; k < 2; k++)
        gens[k] = (bn_engine_job_config){
            .prompt = prompts[k], .n_prompt = 5,
            .gen = {.sampling = bn_sampler_params_greedy(), .max_tokens = N_GEN, .ignore_eog = true,
                    .want_logprobs = true},
            .index = k, .on_event = on_event, .user = &g, .submit_ms = bn_engine_now_ms()};
    CHECK_OK(bn_engine_submit(e, gens, 2, &err), &err);
    CHECK_OK(bn_engine_submit_embed(e, &job, &err), &err);
    wait_calls(&w, 1);
    for (int i = 0; i < 600 && g.done < 2; i++) usleep(5000);
    CHECK(w.calls == 1 && w.status == BN_OK);
    for (int i = 0; i < N_INPUTS; i++) {
        double norm = 0;
        for (int d = 0; d < dim; d++) norm += (double)got[i][d] * got[i][d];
        CHECKF(max_diff(got[i], want[i]) < 1e-6, "input %d: engine vs reference mean: %g", i,
               max_diff(got[i], want[i]));
        CHECKF(fabs(sqrt(norm) - 1) < 1e-5, "input %d: norm %g", i, sqrt(norm));
    }
    CHECK(!memcmp(got[3], got[6], sizeof got[3]));
    for (int i = 0; i < N_INPUTS; i++)
        for (int k = i + 1; k < N_INPUTS; k++)
            if (k != 6 || i != 3) CHECKF(max_diff(got[i], got[k]) > 1e-3, "inputs %d and %d differ", i, k);

    /* the same inputs again, alone and one at a time: the same bits */
    for (int i = 0; i < N_INPUTS; i++) {
        float again[256];
        bn_engine_embed_config one = job;
        one.inputs = &inputs[i];
        one.n_tokens = &n_tokens[i];
        one.n_inputs = 1;
        one.out = again;
        CHECK_OK(bn_engine_submit_embed(e, &one, &err), &err);
        wait_calls(&w, 2 + i);
        CHECKF(w.status == BN_OK && !memcmp(again, got[i], (size_t)dim * sizeof(float)), "input %d alone", i);
    }

    /* refusals: a token past the vocabulary, an input longer than the context, no inputs */
    int32_t bad_ids[2] = {1, bn_model_get_config(m)->n_vocab};
    const int32_t *bad_inputs[1] = {bad_ids};
    size_t two = 2, too_long = 65;
    bn_engine_embed_config bad = job;
    bad.inputs = bad_inputs, bad.n_tokens = &two, bad.n_inputs = 1;
    CHECK(bn_engine_submit_embed(e, &bad, &err) == BN_ERR_INVALID && strstr(err.message, "token id"));
    bad.n_tokens = &too_long;
    CHECK(bn_engine_submit_embed(e, &bad, &err) == BN_ERR_INVALID && strstr(err.message, "context"));
    bad.n_inputs = 0;
    CHECK(bn_engine_submit_embed(e, &bad, &err) == BN_ERR_INVALID);

    /* a cancelled job ends with BN_ERR_STATE, once */
    int before = calls(&w);
    atomic_bool cancel = true;
    bn_engine_embed_config cancelled = job;
    cancelled.cancel = &cancel;
    CHECK_OK(bn_engine_submit_embed(e, &cancelled, &err), &err);
    wait_calls(&w, before + 1);
    usleep(20000);
    CHECK(calls(&w) == before + 1 && w.status == BN_ERR_STATE);
    CHECK(g.done == 2);
    for (int k = 0; k < 2; k++) {
        int32_t ref[N_GEN];
        greedy(m, prompts[k], 5, ref);
        CHECKF(g.n[k] == N_GEN && !memcmp(ref, g.tokens[k], sizeof ref),
               "generation job %d beside embeddings: its greedy reference tokens", k);
    }

    /* a full queue, then stopping the engine: every queued job ends (BN_ERR_STATE) exactly once */
    before = calls(&w);
    int accepted = 0;
    bn_status st = BN_OK;
    for (int k = 0; k < 20 && st == BN_OK; k++)
        if ((st = bn_engine_submit_embed(e, &job, &err)) == BN_OK) accepted++;
    CHECKF(st == BN_ERR_RANGE && accepted >= 4, "queue full after %d jobs: %s", accepted, err.message);
    bn_engine_free(e);
    CHECK(calls(&w) == before + accepted);
    pthread_mutex_destroy(&w.mu);
    pthread_mutex_destroy(&g.mu);
}

/* ---------------------------------------------------------------- parsing and response */

static bn_embed_limits limits;

static bool parses(const char *body, bn_embed_request *r) {
    bn_api_error e = {0};
    bn_status st = bn_embed_parse(r, &e, body, strlen(body), &limits);
    CHECKF(st == BN_OK, "%s: %s", body, e.message);
    return st == BN_OK;
}

static void refused(const char *body, int status, const char *param, const char *code) {
    bn_embed_request r;
    bn_api_error e = {0};
    bn_status st = bn_embed_parse(&r, &e, body, strlen(body), &limits);
    CHECKF(st != BN_OK && e.status == status && !strcmp(e.param, param) && !strcmp(e.code, code ? code : "") &&
               e.message[0],
           "%s: status %d param '%s' code '%s': %s", body, e.status, e.param, e.code, e.message);
    CHECK(r.inputs == NULL && r.n_inputs == 0);
}

static void test_parse(const bn_tokenizer *tok) {
    limits = (bn_embed_limits){.tok = tok, .model_id = "m", .n_vocab = 262, .n_ctx = 8, .dim = 256};
    bn_embed_request r;
    const int32_t bos = bn_tokenizer_bos(tok);
    if (parses("{\"model\":\"m\",\"input\":\"ab\"}", &r)) {
        CHECK(r.n_inputs == 1 && r.inputs[0].n >= 2 && r.inputs[0].ids[0] == bos && !r.base64);
        CHECK(r.n_tokens == r.inputs[0].n);
        bn_embed_request_free(&r);
    }
    if (parses("{\"model\":\"m\",\"input\":[\"ab\",\"c\"],\"encoding_format\":\"base64\",\"dimensions\":256,"
               "\"user\":\"u\"}", &r)) {
        CHECK(r.n_inputs == 2 && r.base64 && r.n_tokens == r.inputs[0].n + r.inputs[1].n);
        bn_embed_request_free(&r);
    }
    if (parses("{\"model\":\"m\",\"input\":[5,6,7],\"encoding_format\":\"float\",\"dimensions\":null}", &r)) {
        CHECK(r.n_inputs == 1 && r.inputs[0].n == 3 && r.inputs[0].ids[0] == 5 && r.inputs[0].ids[2] == 7);
        bn_embed_request_free(&r);
    }
    if (parses("{\"model\":\"m\",\"input\":[[5],[6,7]]}", &r)) {
        CHECK(r.n_inputs == 2 && r.inputs[1].n == 2 && r.inputs[1].ids[1] == 7 && r.n_tokens == 3);
        bn_embed_request_free(&r);
    }
    refused("{\"model\":\"m\"}", 400, "input", NULL);
    refused("{\"model\":\"m\",\"input\":null}", 400, "input", NULL);
    refused("{\"model\":\"m\",\"input\":5}", 400, "input", NULL);
    refused("{\"model\":\"m\",\"input\":\"\"}", 400, "input", NULL);
    refused("{\"model\":\"m\",\"input\":[]}", 400, "input", NULL);
    refused("{\"model\":\"m\",\"input\":[\"a\",\"\"]}", 400, "input[1]", NULL);
    refused("{\"model\":\"m\",\"input\":[\"a\",5]}", 400, "input[1]", NULL);
    refused("{\"model\":\"m\",\"input\":[\"a\",{}]}", 400, "input[1]", NULL);
    refused("{\"model\":\"m\",\"input\":[[1],[]]}", 400, "input[1]", NULL);
    refused("{\"model\":\"m\",\"input\":[1,2,262]}", 400, "input[2]", NULL);
    refused("{\"model\":\"m\",\"input\":[1,-1]}", 400, "input[1]", NULL);
    refused("{\"model\":\"m\",\"input\":[1,2.5]}", 400, "input[1]", NULL);
    refused("{\"model\":\"m\",\"input\":[[1],[2,\"x\"]]}", 400, "input[1][1]", NULL);
    refused("{\"model\":\"m\",\"input\":\"abcdefghijklmnop\"}", 400, "input", "context_length_exceeded");
    refused("{\"model\":\"m\",\"input\":[\"a\",[1,2,3,4,5,6,7,8,9]]}", 400, "input[1]", "context_length_exceeded");
    refused("{\"input\":\"a\"}", 400, "model", NULL);
    refused("{\"model\":5,\"input\":\"a\"}", 400, "model", NULL);
    refused("{\"model\":\"other\",\"input\":\"a\"}", 404, "model", "model_not_found");
    refused("{\"model\":\"m\",\"input\":\"a\",\"encoding_format\":\"hex\"}", 400, "encoding_format", NULL);
    refused("{\"model\":\"m\",\"input\":\"a\",\"encoding_format\":1}", 400, "encoding_format", NULL);
    refused("{\"model\":\"m\",\"input\":\"a\",\"dimensions\":128}", 400, "dimensions", NULL);
    refused("{\"model\":\"m\",\"input\":\"a\",\"dimensions\":\"256\"}", 400, "dimensions", NULL);
    refused("{\"model\":\"m\",\"input\":\"a\",\"user\":5}", 400, "user", NULL);
    refused("{\"model\":\"m\",\"input\":\"a\"", 400, "", NULL);
    refused("[1]", 400, "", NULL);
    /* too many inputs */
    size_t cap = 64 + 4 * (BN_EMBED_MAX_INPUTS + 1);
    char *many = malloc(cap);
    size_t len = (size_t)snprintf(many, cap, "{\"model\":\"m\",\"input\":[");
    for (int i = 0; i <= BN_EMBED_MAX_INPUTS; i++)
        len += (size_t)snprintf(many + len, cap - len, "%s\"a\"", i ? "," : "");
    snprintf(many + len, cap - len, "]}");
    refused(many, 400, "input", NULL);
    free(many);
}

static void test_response(void) {
    bn_embed_request r = {.n_inputs = 2, .n_tokens = 9};
    enum { D = 5 };
    const float v[2 * D] = {0.1f,  -1.0f / 3.0f, 1e-7f,  -2.5e-12f, 123.456f,
                            0.5f, 0.25f,        -0.125f, 3.4e38f,  1.17549435e-38f};
    for (int b = 0; b < 2; b++) {
        r.base64 = b;
        char *text = bn_embed_response(&r, v, D, "model \"x\"");
        json_t *root = text ? json_loads(text, 0, NULL) : NULL;
        CHECKF(root != NULL, "response parses: %s", text ? text : "(null)");
        json_t *data = json_object_get(root, "data"), *usage = json_object_get(root, "usage");
        CHECK(!strcmp(json_string_value(json_object_get(root, "object")), "list"));
        CHECK(!strcmp(json_string_value(json_object_get(root, "model")), "model \"x\""));
        CHECK(json_integer_value(json_object_get(usage, "prompt_tokens")) == 9 &&
              json_integer_value(json_object_get(usage, "total_tokens")) == 9);
        CHECK(json_array_size(data) == 2);
        for (size_t i = 0; i < json_array_size(data); i++) {
            json_t *item = json_array_get(data, i), *emb = json_object_get(item, "embedding");
            CHECK(!strcmp(json_string_value(json_object_get(item, "object")), "embedding") &&
                  json_integer_value(json_object_get(item, "index")) == (json_int_t)i);
            float back[D] = {0};
            if (b) {
                static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                const char *s = json_string_value(emb);
                uint8_t bytes[4 * D + 3];
                size_t nb = 0, n = s ? strlen(s) : 0;
                CHECK(n == (4 * D + 2) / 3 * 4);
                for (size_t k = 0; k < n; k += 4) {
                    uint32_t group = 0;
                    int pad = 0;
                    for (int q = 0; q < 4; q++) {
                        const char *p = s[k + (size_t)q] == '=' ? NULL : strchr(digits, s[k + (size_t)q]);
                        pad += !p;
                        group = group << 6 | (p ? (uint32_t)(p - digits) : 0);
                    }
                    for (int q = 0; q < 3 - pad; q++) bytes[nb++] = (uint8_t)(group >> (16 - 8 * q));
                }
                CHECK(nb == 4 * D);
                for (int d = 0; d < D; d++) {
                    uint32_t u = (uint32_t)bytes[4 * d] | (uint32_t)bytes[4 * d + 1] << 8 |
                                 (uint32_t)bytes[4 * d + 2] << 16 | (uint32_t)bytes[4 * d + 3] << 24;
                    memcpy(&back[d], &u, 4);
                }
            } else {
                CHECK(json_array_size(emb) == D);
                for (int d = 0; d < D; d++) back[d] = (float)json_number_value(json_array_get(emb, (size_t)d));
            }
            CHECKF(!memcmp(back, v + i * D, sizeof back), "%s vector %zu round-trips bit for bit",
                   b ? "base64" : "float", i);
        }
        json_decref(root);
        free(text);
    }
}

int main(void) {
    char *dir = bn_test_tmpdir("server_embed");
    char *path = bn_test_path(dir, "tiny.gguf");
    bn_error err;
    bn_synth_options o;
    CHECK_OK(bn_synth_preset(&o, "tiny", &err), &err);
    CHECK_OK(bn_synth_write(path, &o, &err), &err);
    bn_model_options mo = bn_model_options_default();
    bn_model *m = NULL;
    bn_tokenizer *tok = NULL;
    CHECK_OK(bn_model_load(path, &mo, &m, &err), &err);
    if (m) CHECK_OK(bn_tokenizer_from_gguf(&tok, bn_model_get_gguf(m), NULL, &err), &err);
    if (m && tok) {
        dim = bn_model_get_config(m)->dim;
        test_engine(m, tok);
        test_parse(tok);
    }
    test_response();
    bn_tokenizer_free(tok);
    bn_model_free(m);
    free(path);
    free(dir);
    return bn_test_finish("test_server_embed");
}
