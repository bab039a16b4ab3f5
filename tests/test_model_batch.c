/*
 * test_model_batch.c: the model API (bn_model_decode and sequences) on a small synthetic model.
 *
 * Batch invariance, each checked with memcmp against the logits of the sequence run alone in one
 * batch: prefill chunking (1, 3, 7 entries per step and a small internal ubatch), batch
 * composition (other sequences at other positions in the same batch, interleaved), the order of
 * sequences in the batch, thread counts 1..4, for the F16 and the F32 KV cache. Then the rules
 * of a step: context full is BN_ERR_RANGE, a wrong position or a bad token fails the whole batch
 * and leaves every sequence unchanged, clearing a sequence starts it over, a 4096-token prompt
 * runs with one thread; and a file missing a tensor, or with one of the wrong type or shape, fails
 * to load with an error naming the tensor (and the expected and found type or shape); a
 * `bitnet-25` file is the same model.
 */
#include "kernels/cpu_features.h"
#include "model/model.h"
#include "kernels/cpu/ref_matmul.h"
#include "backend/cpu/backend_cpu.h"
#include "model/model_internal.h"
#include "model/synth.h"
#include "quant/quant_format.h"
#include "gguf/gguf.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NA = 20, NB = 13, NC = 9, PREFIX_B = 5 };

static int tok_a[NA], tok_b[PREFIX_B + NB], tok_c[NC];
static int n_vocab;

static bn_model *load(const char *path, int threads, uint32_t kv_type, int ubatch) {
    bn_model_options o = bn_model_options_default();
    o.n_threads = threads;
    o.kv_type_k = o.kv_type_v = kv_type;
    o.ubatch = ubatch;
    bn_model *m = NULL;
    bn_error err;
    bn_status st = bn_model_load(path, &o, &m, &err);
    CHECK_OK(st, &err);
    return st == BN_OK ? m : NULL;
}

static size_t row_bytes(void) { return (size_t)n_vocab * sizeof(float); }

/* Runs tokens through seq (starting at its current length) in steps of `step` entries, all
 * wanting logits; logits of every entry go to out. */
static bool run_steps(bn_model *m, bn_sequence *seq, const int *tokens, int n, int step, float *out) {
    bn_batch_entry *e = malloc((size_t)step * sizeof *e);
    bool ok = true;
    for (int begin = 0; begin < n && ok; begin += step) {
        int count = n - begin < step ? n - begin : step;
        int base = bn_sequence_length(seq);
        for (int i = 0; i < count; i++) e[i] = (bn_batch_entry){seq, base + i, tokens[begin + i], true};
        bn_error err;
        bn_status st = bn_model_decode(m, e, count, out + (size_t)begin * n_vocab, &err);
        CHECK_OK(st, &err);
        ok = st == BN_OK;
    }
    free(e);
    return ok;
}

/* Logits of A alone, one batch. */
static float *alone(bn_model *m) {
    bn_sequence *seq;
    bn_error err;
    CHECK_OK(bn_sequence_create(m, 64, &seq, &err), &err);
    float *out = malloc(NA * row_bytes());
    run_steps(m, seq, tok_a, NA, NA, out);
    bn_sequence_free(seq);
    return out;
}

/* A, B (after a prefix of its own) and C in one batch, entries interleaved in the given order of
 * sequences; returns A's logits. */
static float *mixed(bn_model *m, const int order[3]) {
    bn_sequence *s[3];
    bn_error err;
    for (int i = 0; i < 3; i++) CHECK_OK(bn_sequence_create(m, 64, &s[i], &err), &err);
    float *scratch = malloc((PREFIX_B + NB) * row_bytes());
    run_steps(m, s[1], tok_b, PREFIX_B, PREFIX_B, scratch); /* B starts at position 5 */
    const int *toks[3] = {tok_a, tok_b + PREFIX_B, tok_c};
    const int lens[3] = {NA, NB, NC};
    bn_batch_entry e[NA + NB + NC];
    int rows_a[NA], n = 0, n_out = 0, next[3] = {0, 0, 0};
    /* round-robin over the sequences in `order`, one entry each, until all are in */
    for (bool more = true; more;) {
        more = false;
        for (int k = 0; k < 3; k++) {
            int q = order[k];
            if (next[q] >= lens[q]) continue;
            more = true;
            bool want = q == 0 || next[q] % 2 == 0; /* B and C: logits for some entries only */
            if (q == 0) rows_a[next[q]] = n_out;
            e[n++] = (bn_batch_entry){s[q], bn_sequence_length(s[q]) + next[q], toks[q][next[q]], want};
            n_out += want;
            next[q]++;
        }
    }
    float *all = malloc((size_t)n_out * row_bytes());
    CHECK_OK(bn_model_decode(m, e, n, all, &err), &err);
    CHECK(bn_sequence_length(s[0]) == NA && bn_sequence_length(s[1]) == PREFIX_B + NB);
    float *a = malloc(NA * row_bytes());
    for (int i = 0; i < NA; i++) memcpy(a + (size_t)i * n_vocab, all + (size_t)rows_a[i] * n_vocab, row_bytes());
    free(all), free(scratch);
    for (int i = 0; i < 3; i++) bn_sequence_free(s[i]);
    return a;
}

static void invariance(const char *path, uint32_t kv_type) {
    const char *kv = kv_type == BN_TYPE_F16 ? "F16 KV" : kv_type == BN_TYPE_F32 ? "F32 KV" : "Q8_0 KV";
    bn_model *m = load(path, 1, kv_type, 0);
    if (!m) return;
    float *ref = alone(m);

    static const int steps[] = {1, 3, 7};
    for (int i = 0; i < 3; i++) {
        bn_sequence *seq;
        bn_error err;
        CHECK_OK(bn_sequence_create(m, 64, &seq, &err), &err);
        float *out = malloc(NA * row_bytes());
        run_steps(m, seq, tok_a, NA, steps[i], out);
        CHECKF(!memcmp(out, ref, NA * row_bytes()), "%s: prefill in steps of %d is bit-identical", kv, steps[i]);
        free(out);
        bn_sequence_free(seq);
    }
    static const int orders[3][3] = {{0, 1, 2}, {2, 0, 1}, {1, 2, 0}};
    for (int i = 0; i < 3; i++) {
        float *a = mixed(m, orders[i]);
        CHECKF(!memcmp(a, ref, NA * row_bytes()), "%s: batch with other sequences (order %d%d%d) is bit-identical",
               kv, orders[i][0], orders[i][1], orders[i][2]);
        free(a);
    }
    bn_model_free(m);

    for (int threads = 1; threads <= 4; threads++) {
        bn_model *mt = load(path, threads, kv_type, threads == 2 ? 4 : 0); /* ubatch 4: chunked inside */
        if (!mt) continue;
        float *a = alone(mt);
        CHECKF(!memcmp(a, ref, NA * row_bytes()), "%s: %d threads alone is bit-identical", kv, threads);
        free(a);
        static const int order[3] = {2, 1, 0};
        a = mixed(mt, order);
        CHECKF(!memcmp(a, ref, NA * row_bytes()), "%s: %d threads in a mixed batch is bit-identical", kv, threads);
        free(a);
        bn_model_free(mt);
    }
    free(ref);
}

static void step_rules(const char *path) {
    bn_model *m = load(path, 2, BN_TYPE_F16, 0);
    if (!m) return;
    bn_error err;
    bn_sequence *a, *b;
    CHECK_OK(bn_sequence_create(m, 8, &a, &err), &err);
    CHECK_OK(bn_sequence_create(m, 0, &b, &err), &err);
    CHECK(bn_sequence_capacity(a) == 8);
    CHECK(bn_sequence_capacity(b) == 4096); /* the model's context_length */
    float *logits = malloc(16 * row_bytes());
    float *first = malloc(8 * row_bytes());
    CHECK(run_steps(m, a, tok_a, 8, 8, first));
    CHECK(bn_sequence_length(a) == 8);

    /* context full */
    bn_batch_entry e[2] = {{a, 8, tok_a[8], true}};
    bn_status st = bn_model_decode(m, e, 1, logits, &err);
    CHECK(st == BN_ERR_RANGE);
    CHECK_STR_CONTAINS(err.message, "context full");
    CHECK(bn_sequence_length(a) == 8);

    /* a failing entry fails the whole batch, and the good entry before it changes nothing */
    e[0] = (bn_batch_entry){b, 0, tok_b[0], true};
    e[1] = (bn_batch_entry){a, 3, tok_a[3], true};
    st = bn_model_decode(m, e, 2, logits, &err);
    CHECK(st == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "expected 8");
    CHECK(bn_sequence_length(b) == 0);
    e[1] = (bn_batch_entry){b, 1, n_vocab, true};
    st = bn_model_decode(m, e, 2, logits, &err);
    CHECK(st == BN_ERR_RANGE);
    CHECK_STR_CONTAINS(err.message, "vocabulary");
    CHECK(bn_sequence_length(b) == 0);
    e[1] = (bn_batch_entry){b, 0, tok_b[1], true}; /* the same position twice */
    CHECK(bn_model_decode(m, e, 2, logits, &err) == BN_ERR_INVALID);
    CHECK(bn_model_decode(m, e, 1, NULL, &err) == BN_ERR_INVALID); /* wants logits, no buffer */
    CHECK(bn_sequence_length(b) == 0);

    /* cleared: the same tokens give the same logits again (stale cache rows are never read) */
    bn_sequence_clear(a);
    CHECK(bn_sequence_length(a) == 0);
    CHECK(run_steps(m, a, tok_a, 8, 3, logits));
    CHECK(!memcmp(logits, first, 8 * row_bytes()));

    /* entries without logits write nothing */
    bn_sequence_clear(a);
    e[0] = (bn_batch_entry){a, 0, tok_a[0], false};
    CHECK_OK(bn_model_decode(m, e, 1, NULL, &err), &err);
    CHECK(bn_sequence_length(a) == 1);
    CHECK_OK(bn_model_decode(m, e, 0, NULL, &err), &err);

    /* the synthetic byte vocabulary is a working byte-level BPE vocabulary */
    bn_tokenizer *tok = NULL;
    CHECK_OK(bn_tokenizer_from_gguf(&tok, bn_model_get_gguf(m), NULL, &err), &err);
    if (tok) {
        bn_tokens ids = {0};
        CHECK_OK(bn_tokenizer_encode(tok, "the theme\n", 10, true, false, &ids, &err), &err);
        /* BOS, "the" (t + he), " the" (one merged token), "m", "e", "\n" */
        CHECKF(ids.n == 7 && ids.ids[0] == BN_SYNTH_BOS && ids.ids[2] == 257 && ids.ids[3] == 258,
               "encoded %zu ids", ids.n);
        CHECK(bn_tokenizer_eos(tok) == BN_SYNTH_EOS && bn_tokenizer_eot(tok) == BN_SYNTH_EOT);
        CHECK(bn_tokenizer_n_vocab(tok) == (uint32_t)n_vocab);
        char *text = NULL;
        size_t len = 0;
        CHECK_OK(bn_tokenizer_decode(tok, ids.ids, ids.n, true, &text, &len, &err), &err);
        CHECK(text && !strcmp(text, "the theme\n"));
        free(text);
        bn_tokens_free(&ids);
        bn_tokenizer_free(tok);
    }

    const bn_model_config *c = bn_model_get_config(m);
    CHECK(c->arch == BN_ARCH_BITNET_B158 && c->ffn_activation == BN_FFN_RELU2 && c->tied_output);
    CHECK(c->projection_type == BN_TYPE_I2_S);
    CHECK(!strcmp(bn_model_backend_name(m), "cpu"));
    free(logits), free(first);
    bn_sequence_free(a), bn_sequence_free(b);
    bn_model_free(m);
}

/* A 4096-token prompt through one bn_model_decode call with one thread (no big stack buffers). */
static void long_prompt(const char *dir) {
    bn_synth_options o;
    bn_error err;
    CHECK_OK(bn_synth_preset(&o, "tiny", &err), &err);
    o.n_layers = 1, o.dim = 128, o.ffn_dim = 256, o.n_heads = 1, o.n_kv_heads = 1, o.seed = 3;
    char *path = bn_test_path(dir, "long.gguf");
    CHECK_OK(bn_synth_write(path, &o, &err), &err);
    bn_model *m = load(path, 1, BN_TYPE_F16, 0);
    enum { N = 4096 };
    bn_batch_entry *e = malloc(N * sizeof *e);
    bn_sequence *seq = NULL;
    if (m && e && bn_sequence_create(m, N, &seq, &err) == BN_OK) {
        for (int i = 0; i < N; i++) e[i] = (bn_batch_entry){seq, i, (i * 7919) % BN_SYNTH_BYTE_VOCAB, i == N - 1};
        float *logits = malloc(BN_SYNTH_BYTE_VOCAB * sizeof *logits);
        CHECK_OK(bn_model_decode(m, e, N, logits, &err), &err);
        CHECK(bn_sequence_length(seq) == N);
        bool finite = true;
        for (int i = 0; i < BN_SYNTH_BYTE_VOCAB; i++) finite &= logits[i] == logits[i];
        CHECK(finite);
        free(logits);
    }
    bn_sequence_free(seq);
    free(e);
    bn_model_free(m);
    free(path);
}

static void missing_tensor(const char *dir) {
    bn_synth_options o;
    bn_error err;
    CHECK_OK(bn_synth_preset(&o, "tiny", &err), &err);
    o.omit_tensor = "blk.1.ffn_sub_norm.weight";
    char *path = bn_test_path(dir, "missing.gguf");
    CHECK_OK(bn_synth_write(path, &o, &err), &err);
    bn_model *m = NULL;
    CHECK(bn_model_load(path, NULL, &m, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "blk.1.ffn_sub_norm.weight: missing");
    CHECK(m == NULL);
    free(path);
}

/* Copies src to dst with tensor `name` (if any) replaced by zeros of another type / shape, and the
 * architecture bitnet-b1.58 renamed to new_arch (if given) in general.architecture and the keys. */
static bool broken_copy(const char *src, const char *dst, const char *name, uint32_t type, uint32_t n_dims,
                        const uint64_t *ne, const char *new_arch) {
    bn_gguf *g;
    bn_error err;
    if (bn_gguf_open(src, &g, &err) != BN_OK) return false;
    bn_gguf_writer *w = bn_gguf_writer_new();
    bn_status st = BN_OK;
    for (uint64_t i = 0; i < g->n_kv && st == BN_OK; i++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)g->kvs[i].key.len, g->kvs[i].key.data);
        const char *prefix = "bitnet-b1.58.";
        if (new_arch && !strncmp(key, prefix, strlen(prefix))) {
            char renamed[300];
            snprintf(renamed, sizeof renamed, "%s.%s", new_arch, key + strlen(prefix));
            st = bn_gguf_writer_add_value(w, renamed, &g->kvs[i].value, &err);
        } else if (new_arch && !strcmp(key, "general.architecture")) {
            st = bn_gguf_writer_add_string(w, key, new_arch, &err);
        } else {
            st = bn_gguf_writer_add_value(w, key, &g->kvs[i].value, &err);
        }
    }
    for (uint64_t i = 0; i < g->n_tensors && st == BN_OK; i++) {
        const bn_gguf_tensor *t = &g->tensors[i];
        char tname[256];
        snprintf(tname, sizeof tname, "%.*s", (int)t->name.len, t->name.data);
        if (name && !strcmp(tname, name))
            st = bn_gguf_writer_add_tensor(w, tname, type, n_dims, ne, NULL, &err);
        else
            st = bn_gguf_writer_add_tensor(w, tname, t->type, t->n_dims, t->ne, t->data, &err);
    }
    if (st == BN_OK) st = bn_gguf_writer_write(w, dst, &err);
    bn_gguf_writer_free(w);
    bn_gguf_close(g);
    return st == BN_OK;
}

static void wrong_tensors(const char *dir, const char *good) {
    static const struct {
        const char *name;
        uint32_t type, n_dims;
        uint64_t ne[2];
        const char *message;
    } cases[] = {
        {"blk.0.attn_sub_norm.weight", BN_TYPE_F32, 1, {128, 1},
         "blk.0.attn_sub_norm.weight: wrong shape: expected {256}, found {128}"},
        {"blk.1.ffn_norm.weight", BN_TYPE_BF16, 1, {256, 1}, "blk.1.ffn_norm.weight: type bf16 (30), expected f32 or f16"},
        {"blk.0.attn_k.weight", BN_TYPE_F16, 2, {256, 128},
         "blk.0.attn_k.weight: type f16 (1), expected i2_s, tq2_0 or tq1_0"},
        {"blk.1.ffn_down.weight", BN_TYPE_I2_S, 2, {256, 768},
         "blk.1.ffn_down.weight: wrong shape: expected {768, 256}, found {256, 768}"},
        {"token_embd.weight", BN_TYPE_I2_S, 2, {256, 262},
         "tensor token_embd.weight: type i2_s (id 36) is not supported for a head or embedding"},
    };
    char *path = bn_test_path(dir, "broken.gguf");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool written = broken_copy(good, path, cases[i].name, cases[i].type, cases[i].n_dims, cases[i].ne, NULL);
        CHECKF(written, "broken copy with %s", cases[i].name);
        bn_model *m = NULL;
        bn_error err;
        bn_error_clear(&err);
        CHECK(written && bn_model_load(path, NULL, &m, &err) != BN_OK && m == NULL);
        CHECK_STR_CONTAINS(err.message, cases[i].message);
    }
    free(path);
}

/* The older upload's architecture name "bitnet-25" is the same model. */
static void bitnet25(const char *dir, const char *good) {
    char *path = bn_test_path(dir, "bitnet25.gguf");
    CHECK(broken_copy(good, path, NULL, 0, 0, NULL, "bitnet-25"));
    bn_model *a = load(good, 1, BN_TYPE_F16, 0), *b = load(path, 1, BN_TYPE_F16, 0);
    if (a && b) {
        CHECK(!strcmp(bn_model_get_config(b)->arch_name, "bitnet-25"));
        CHECK(bn_model_get_config(b)->arch == BN_ARCH_BITNET_B158);
        float *la = alone(a), *lb = alone(b);
        CHECK(!memcmp(la, lb, NA * row_bytes()));
        free(la), free(lb);
    }
    bn_model_free(a), bn_model_free(b);
    free(path);
}

/* Truncating a sequence back to a prefix and running other tokens gives the same logits as a
 * fresh sequence that ran prefix + those tokens (chat reuses cached prefixes this way). */
static void truncate_reuse(const char *path) {
    bn_model *m = load(path, 2, BN_TYPE_F16, 0);
    if (!m) return;
    bn_sequence *seq, *fresh;
    bn_error err;
    CHECK_OK(bn_sequence_create(m, 64, &seq, &err), &err);
    CHECK_OK(bn_sequence_create(m, 64, &fresh, &err), &err);
    const int keep = 7;
    float *scratch = malloc(NA * row_bytes());
    float *reused = malloc(NC * row_bytes());
    float *want = malloc((keep + NC) * row_bytes());
    run_steps(m, seq, tok_a, NA, NA, scratch);
    bn_sequence_truncate(seq, keep);
    CHECK(bn_sequence_length(seq) == keep);
    bn_sequence_truncate(seq, NA); /* longer than the length: no change */
    CHECK(bn_sequence_length(seq) == keep);
    run_steps(m, seq, tok_c, NC, NC, reused);
    int prefix_then_c[keep + NC];
    memcpy(prefix_then_c, tok_a, keep * sizeof(int));
    memcpy(prefix_then_c + keep, tok_c, NC * sizeof(int));
    run_steps(m, fresh, prefix_then_c, keep + NC, 4, want);
    CHECK(memcmp(reused, want + (size_t)keep * n_vocab, NC * row_bytes()) == 0);
    free(scratch);
    free(reused);
    free(want);
    bn_sequence_free(seq);
    bn_sequence_free(fresh);
    bn_model_free(m);
}

/* The CPU backend places every repacked projection of every layer in its one arena (so the
 * matrices share whole huge pages): each I2_S matrix reads from inside it and owns nothing, and
 * the arena holds exactly their 4 KiB-aligned sizes. No arena under AddressSanitizer: each matrix
 * then has its own allocation. */
static void weights_arena(const char *path) {
    bn_model *m = load(path, 1, BN_TYPE_F16, 0);
    if (!m) return;
    const bn_large_arena *arena = bn_backend_cpu_arena(m->backend);
    size_t expected = 0;
    int inside = 0;
    const bn_ternary_matrix *all[7 * 64];
    const int total = bn_backend_cpu_matrices(m->backend, all, 7 * 64);
    CHECK(total == 7 * m->config.n_layers);
    for (int i = 0; i < total; i++) {
        const bn_ternary_matrix *mx = all[i];
        CHECK(mx->file_type == BN_TYPE_I2_S && mx->layout == BN_LAYOUT_I2S_TILE8);
        expected += (bn_ternary_matrix_repack_bytes(mx->file_type, mx->rows, mx->cols) + 4095) & ~(size_t)4095;
        inside += arena->base && mx->data >= arena->base && mx->data < arena->base + arena->size &&
                  mx->owned == NULL;
    }
    if (arena->base) {
        CHECKF(inside == total, "%d of %d projections in the arena", inside, total);
        CHECKF(arena->used <= expected && expected - arena->used < 4096 && arena->size >= arena->used,
               "arena used %zu of %zu, projections %zu", arena->used, arena->size, expected);
    } else {
        CHECK(inside == 0);
    }
    bn_model_free(m);
}

int main(void) {
    char *dir = bn_test_tmpdir("model_batch");
    char *path = bn_test_path(dir, "model.gguf");
    bn_synth_options o;
    bn_error err;
    CHECK_OK(bn_synth_preset(&o, "tiny", &err), &err);
    o.seed = 42;
    CHECK_OK(bn_synth_write(path, &o, &err), &err);
    n_vocab = BN_SYNTH_BYTE_VOCAB;
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 9);
    for (int i = 0; i < NA; i++) tok_a[i] = (int)bn_test_rng_range(&rng, 0, n_vocab - 1);
    for (int i = 0; i < PREFIX_B + NB; i++) tok_b[i] = (int)bn_test_rng_range(&rng, 0, n_vocab - 1);
    for (int i = 0; i < NC; i++) tok_c[i] = (int)bn_test_rng_range(&rng, 0, n_vocab - 1);

    weights_arena(path);
    invariance(path, BN_TYPE_F16);
    invariance(path, BN_TYPE_F32);
    invariance(path, BN_TYPE_Q8_0);
    step_rules(path);
    truncate_reuse(path);
    long_prompt(dir);
    missing_tensor(dir);
    wrong_tensors(dir, path);
    bitnet25(dir, path);

    free(path);
    free(dir);
    return bn_test_finish("test_model_batch");
}
