/*
 * test_model_reference.c: `bitnet eval` against an independent, straightforward float
 * implementation of spec section 4 written here from the spec (its own I2_S / TQ2_0 / TQ1_0
 * decoders, dequantized weights, the same int8 activation quantization, double accumulation).
 *
 * Checks, on synthetic models of 2 layers written by `bitnet synth`:
 *   - I2_S (bitnet-b1.58), TQ2_0 and TQ1_0 (llama.cpp `bitnet`, relu2) files each agree with the
 *     reference: position 0 within 1e-4 (relative to the largest logit), cosine >= 0.9995 at every
 *     position; with the F16 and the F32 KV cache, and with 1 and 3 threads;
 *   - TQ2_0 and TQ1_0 of the same weights give identical logits; against I2_S (per-token
 *     activations instead of Q8_K blocks) cosine >= 0.99;
 *   - the optional int8 LM head stays close to the F16 one (cosine >= 0.999);
 *   - `bitnet` files with per-projection .scale tensors (written here from the TQ2_0 one) match the
 *     reference, with squared ReLU when marked relu2 and SiLU when hidden_activation is absent.
 */
#include "core/fp16.h"
#include "gguf/gguf.h"
#include "quant/quant_format.h"
#include "logits_compare.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the reference model ---- */

typedef struct ref_model {
    int dim, ffn, n_layers, n_heads, n_kv_heads, head_dim, kv_dim, n_vocab, rope_dim;
    float eps, rope_base;
    bool silu;                          /* `bitnet` without hidden_activation = relu2 */
    bool q8k;                           /* TQ projections: Q8_K activations (spec 9.3) */
    float *embd;                        /* n_vocab x dim */
    float *output_norm;
    struct ref_layer {
        float *attn_norm, *attn_sub_norm, *ffn_norm, *ffn_sub_norm;
        float *w[7];                    /* q k v o gate up down, dequantized rows x cols */
        float out_scale[7];
    } *layers;
} ref_model;

static const char *const PROJ[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

/* Spec section 2: 128-weight blocks, byte j holds weights j, 32+j, 64+j, 96+j in bits 7:6..1:0;
 * codes 0,1,2 = -1,0,+1; one float32 scale after ne/4 bytes. */
static void dequant_i2s(float *out, const uint8_t *data, size_t n) {
    float scale;
    memcpy(&scale, data + n / 4, sizeof scale);
    for (size_t b = 0; b < n / 128; b++)
        for (int j = 0; j < 32; j++)
            for (int k = 0; k < 4; k++) {
                int code = (data[b * 32 + j] >> (6 - 2 * k)) & 3;
                out[b * 128 + (size_t)k * 32 + j] = (float)(code - 1) * scale;
            }
}

/* Spec section 3: {qs[64], fp16 d}; weight h*128 + m + 32n is bits 2n+1:2n of qs[32h + m]. */
static void dequant_tq2(float *out, const uint8_t *data, size_t n) {
    for (size_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = data + b * 66;
        uint16_t dh;
        memcpy(&dh, blk + 64, 2);
        float d = bn_fp16_to_fp32(dh);
        for (int h = 0; h < 2; h++)
            for (int m = 0; m < 32; m++)
                for (int q = 0; q < 4; q++)
                    out[b * 256 + (size_t)h * 128 + (size_t)m + 32 * (size_t)q] =
                        (float)(((blk[h * 32 + m] >> (2 * q)) & 3) - 1) * d;
    }
}

static int trit(uint8_t byte, int n) {
    static const int pow3[5] = {1, 3, 9, 27, 81};
    uint8_t shifted = (uint8_t)(byte * pow3[n]);
    return (shifted * 3) >> 8;
}

/* Spec section 3: {qs[48], qh[4], fp16 d}; qs[m] (m < 32) trit n = weight m + 32n; qs[32 + m]
 * trit n = weight 160 + m + 16n; qh[j] trit n = weight 240 + j + 4n. */
static void dequant_tq1(float *out, const uint8_t *data, size_t n) {
    for (size_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = data + b * 54;
        uint16_t dh;
        memcpy(&dh, blk + 52, 2);
        float d = bn_fp16_to_fp32(dh);
        float *o = out + b * 256;
        for (int t = 0; t < 5; t++) {
            for (int m = 0; m < 32; m++) o[m + 32 * t] = (float)(trit(blk[m], t) - 1) * d;
            for (int m = 0; m < 16; m++) o[160 + m + 16 * t] = (float)(trit(blk[32 + m], t) - 1) * d;
        }
        for (int t = 0; t < 4; t++)
            for (int j = 0; j < 4; j++) o[240 + j + 4 * t] = (float)(trit(blk[48 + j], t) - 1) * d;
    }
}

static float *load_tensor(const bn_gguf *g, const char *name, size_t expect_n) {
    const bn_gguf_tensor *t = bn_gguf_find_tensor(g, name);
    if (!t || t->n_elements != expect_n) {
        fprintf(stderr, "reference: tensor %s missing or of the wrong size\n", name);
        return NULL;
    }
    float *out = malloc(expect_n * sizeof *out);
    if (!out) return NULL;
    switch (t->type) {
    case 0: memcpy(out, t->data, expect_n * sizeof *out); break;
    case 1:
        for (size_t i = 0; i < expect_n; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            out[i] = bn_fp16_to_fp32(h);
        }
        break;
    case 36: dequant_i2s(out, t->data, expect_n); break;
    case 35: dequant_tq2(out, t->data, expect_n); break;
    case 34: dequant_tq1(out, t->data, expect_n); break;
    default: free(out); return NULL;
    }
    return out;
}

static uint64_t meta_u64(const bn_gguf *g, const char *arch, const char *suffix, uint64_t fallback) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint64_t v;
    return bn_gguf_get_u64(g, key, &v, NULL) == BN_OK ? v : fallback;
}

static float meta_f32(const bn_gguf *g, const char *arch, const char *suffix, float fallback) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    float v;
    return bn_gguf_get_f32(g, key, &v, NULL) == BN_OK ? v : fallback;
}

static bool ref_load(ref_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    bn_gguf *g;
    bn_error err;
    if (bn_gguf_open(path, &g, &err) != BN_OK) {
        fprintf(stderr, "reference: %s\n", err.message);
        return false;
    }
    bn_gguf_string a;
    bn_gguf_get_string(g, "general.architecture", &a, NULL);
    char arch[32];
    snprintf(arch, sizeof arch, "%.*s", (int)a.len, a.data);
    m->dim = (int)meta_u64(g, arch, "embedding_length", 0);
    m->ffn = (int)meta_u64(g, arch, "feed_forward_length", 0);
    m->n_layers = (int)meta_u64(g, arch, "block_count", 0);
    m->n_heads = (int)meta_u64(g, arch, "attention.head_count", 1);
    m->n_kv_heads = (int)meta_u64(g, arch, "attention.head_count_kv", (uint64_t)m->n_heads);
    m->head_dim = m->dim / m->n_heads;
    m->kv_dim = m->n_kv_heads * m->head_dim;
    m->rope_dim = (int)meta_u64(g, arch, "rope.dimension_count", (uint64_t)m->head_dim);
    m->eps = meta_f32(g, arch, "attention.layer_norm_rms_epsilon", 1e-5f);
    m->rope_base = meta_f32(g, arch, "rope.freq_base", 10000.0f);
    bn_gguf_string act = {0, NULL};
    bn_gguf_get_string(g, "bitnet.hidden_activation", &act, NULL);
    m->silu = !strcmp(arch, "bitnet") && !bn_gguf_string_eq(act, "relu2");
    const bn_gguf_tensor *q0 = bn_gguf_find_tensor(g, "blk.0.attn_q.weight");
    m->q8k = q0 && (q0->type == BN_TYPE_TQ2_0 || q0->type == BN_TYPE_TQ1_0);
    const bn_gguf_tensor *e = bn_gguf_find_tensor(g, "token_embd.weight");
    m->n_vocab = e ? (int)e->ne[1] : 0;
    bool ok = m->n_vocab > 0 && m->dim > 0;
    if (ok) ok = (m->embd = load_tensor(g, "token_embd.weight", (size_t)m->n_vocab * m->dim)) != NULL;
    if (ok) ok = (m->output_norm = load_tensor(g, "output_norm.weight", (size_t)m->dim)) != NULL;
    m->layers = calloc((size_t)m->n_layers, sizeof *m->layers);
    for (int l = 0; ok && l < m->n_layers; l++) {
        struct ref_layer *L = &m->layers[l];
        char name[96];
#define NORM(field, part, n)                                             \
    snprintf(name, sizeof name, "blk.%d.%s.weight", l, part);            \
    if (ok) ok = (L->field = load_tensor(g, name, (size_t)(n))) != NULL;
        NORM(attn_norm, "attn_norm", m->dim)
        NORM(attn_sub_norm, "attn_sub_norm", m->dim)
        NORM(ffn_norm, "ffn_norm", m->dim)
        NORM(ffn_sub_norm, "ffn_sub_norm", m->ffn)
#undef NORM
        const size_t sizes[7] = {(size_t)m->dim * m->dim, (size_t)m->dim * m->kv_dim, (size_t)m->dim * m->kv_dim,
                                 (size_t)m->dim * m->dim, (size_t)m->dim * m->ffn, (size_t)m->dim * m->ffn,
                                 (size_t)m->ffn * m->dim};
        for (int p = 0; p < 7 && ok; p++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, PROJ[p]);
            ok = (L->w[p] = load_tensor(g, name, sizes[p])) != NULL;
            snprintf(name, sizeof name, "blk.%d.%s.scale", l, PROJ[p]);
            const bn_gguf_tensor *s = bn_gguf_find_tensor(g, name);
            L->out_scale[p] = 1.0f;
            if (s) memcpy(&L->out_scale[p], s->data, sizeof(float));
        }
    }
    bn_gguf_close(g);
    return ok;
}

static void ref_free(ref_model *m) {
    free(m->embd), free(m->output_norm);
    for (int l = 0; m->layers && l < m->n_layers; l++) {
        struct ref_layer *L = &m->layers[l];
        free(L->attn_norm), free(L->attn_sub_norm), free(L->ffn_norm), free(L->ffn_sub_norm);
        for (int p = 0; p < 7; p++) free(L->w[p]);
    }
    free(m->layers);
}

static void rmsnorm(float *out, const float *x, const float *g, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) out[i] = x[i] * scale * g[i];
}

/* W1.58 A8 (spec section 4): int8 absmax quantization of x, then the dequantized weights. With
 * q8k (TQ formats, spec 9.3) x is quantized per 256-block as llama.cpp's Q8_K: m = the first
 * value of largest |x|, q = min(127, round(-127/m * x)), and each block's sum is scaled by -m/127;
 * the sums are taken in double here (the engine's lane order is checked by test_matmul). */
static void linear(float *y, const float *w, float out_scale, const float *x, int rows, int cols, bool q8k) {
    float *q = malloc((size_t)cols * sizeof *q);
    const int blocks = q8k ? cols / 256 : 1, width = cols / blocks;
    double *block_scale = malloc((size_t)blocks * sizeof *block_scale);
    for (int b = 0; b < blocks; b++) {
        const float *xb = x + (size_t)b * width;
        float *qb = q + (size_t)b * width;
        if (q8k) {
            float amax = 0, m = 0;
            for (int i = 0; i < width; i++)
                if (fabsf(xb[i]) > amax) amax = fabsf(xb[i]), m = xb[i];
            const float iscale = amax > 0 ? -127.0f / m : 0.0f;
            for (int i = 0; i < width; i++) {
                float r = nearbyintf(iscale * xb[i]);
                qb[i] = r > 127 ? 127 : r;
            }
            block_scale[b] = amax > 0 ? (double)(1.0f / iscale) : 0.0;
        } else {
            float amax = 0;
            for (int i = 0; i < width; i++) amax = fmaxf(amax, fabsf(xb[i]));
            float s = (float)(127.0 / fmax((double)amax, 1e-5));
            for (int i = 0; i < width; i++) {
                float r = nearbyintf(xb[i] * s);
                qb[i] = r > 127 ? 127 : r < -128 ? -128 : r;
            }
            block_scale[b] = 1.0 / s;
        }
    }
    for (int r = 0; r < rows; r++) {
        double acc = 0;
        for (int b = 0; b < blocks; b++) {
            double sum = 0;
            for (int c = b * width; c < (b + 1) * width; c++) sum += (double)w[(size_t)r * cols + c] * q[c];
            acc += sum * block_scale[b];
        }
        y[r] = (float)acc * out_scale;
    }
    free(q), free(block_scale);
}

static void rope(float *x, int n_heads, int head_dim, int rope_dim, int pos, float base) {
    for (int h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        for (int i = 0; i < rope_dim / 2; i++) {
            double theta = pos * pow((double)base, -2.0 * i / rope_dim);
            double c = cos(theta), s = sin(theta);
            double a = v[i], b = v[i + rope_dim / 2];
            v[i] = (float)(a * c - b * s);
            v[i + rope_dim / 2] = (float)(a * s + b * c);
        }
    }
}

/* Logits of every position of tokens (n x n_vocab), the KV cache rounded to fp16 when kv_f16. */
static float *ref_forward(const ref_model *m, const int *tokens, int n, bool kv_f16) {
    int D = m->dim, KV = m->kv_dim, F = m->ffn, HD = m->head_dim;
    float *logits = malloc((size_t)n * m->n_vocab * sizeof *logits);
    float *kc = malloc((size_t)m->n_layers * n * KV * sizeof *kc);
    float *vc = malloc((size_t)m->n_layers * n * KV * sizeof *vc);
    float *x = malloc(D * sizeof *x), *a = malloc(D * sizeof *a), *q = malloc(D * sizeof *q);
    float *k = malloc(KV * sizeof *k), *v = malloc(KV * sizeof *v), *att = malloc(D * sizeof *att);
    float *o = malloc(D * sizeof *o), *g = malloc(F * sizeof *g), *u = malloc(F * sizeof *u);
    double *scores = malloc((size_t)n * sizeof *scores);
    for (int p = 0; p < n; p++) {
        memcpy(x, m->embd + (size_t)tokens[p] * D, D * sizeof *x);
        for (int l = 0; l < m->n_layers; l++) {
            const struct ref_layer *L = &m->layers[l];
            rmsnorm(a, x, L->attn_norm, D, m->eps);
            linear(q, L->w[0], L->out_scale[0], a, D, D, m->q8k);
            linear(k, L->w[1], L->out_scale[1], a, KV, D, m->q8k);
            linear(v, L->w[2], L->out_scale[2], a, KV, D, m->q8k);
            rope(q, m->n_heads, HD, m->rope_dim, p, m->rope_base);
            rope(k, m->n_kv_heads, HD, m->rope_dim, p, m->rope_base);
            float *krow = kc + ((size_t)l * n + p) * KV, *vrow = vc + ((size_t)l * n + p) * KV;
            for (int i = 0; i < KV; i++) {
                krow[i] = kv_f16 ? bn_fp16_to_fp32(bn_fp32_to_fp16(k[i])) : k[i];
                vrow[i] = kv_f16 ? bn_fp16_to_fp32(bn_fp32_to_fp16(v[i])) : v[i];
            }
            for (int h = 0; h < m->n_heads; h++) {
                int kvh = h / (m->n_heads / m->n_kv_heads);
                double mx = -INFINITY, sum = 0;
                for (int t = 0; t <= p; t++) {
                    const float *kt = kc + ((size_t)l * n + t) * KV + kvh * HD;
                    double dot = 0;
                    for (int i = 0; i < HD; i++) dot += (double)q[h * HD + i] * kt[i];
                    scores[t] = dot / sqrt((double)HD);
                    if (scores[t] > mx) mx = scores[t];
                }
                for (int t = 0; t <= p; t++) sum += (scores[t] = exp(scores[t] - mx));
                for (int i = 0; i < HD; i++) {
                    double acc = 0;
                    for (int t = 0; t <= p; t++) acc += scores[t] / sum * vc[((size_t)l * n + t) * KV + kvh * HD + i];
                    att[h * HD + i] = (float)acc;
                }
            }
            rmsnorm(att, att, L->attn_sub_norm, D, m->eps);
            linear(o, L->w[3], L->out_scale[3], att, D, D, m->q8k);
            for (int i = 0; i < D; i++) x[i] += o[i];
            rmsnorm(a, x, L->ffn_norm, D, m->eps);
            linear(g, L->w[4], L->out_scale[4], a, F, D, m->q8k);
            linear(u, L->w[5], L->out_scale[5], a, F, D, m->q8k);
            for (int i = 0; i < F; i++) {
                float r = g[i] > 0 ? g[i] : 0;
                g[i] = m->silu ? (float)(g[i] / (1.0 + exp(-(double)g[i]))) * u[i] : r * r * u[i];
            }
            rmsnorm(g, g, L->ffn_sub_norm, F, m->eps);
            linear(o, L->w[6], L->out_scale[6], g, D, F, m->q8k);
            for (int i = 0; i < D; i++) x[i] += o[i];
        }
        rmsnorm(a, x, m->output_norm, D, m->eps);
        for (int r = 0; r < m->n_vocab; r++) {
            double acc = 0;
            for (int c = 0; c < D; c++) acc += (double)m->embd[(size_t)r * D + c] * a[c];
            logits[(size_t)p * m->n_vocab + r] = (float)acc;
        }
    }
    free(kc), free(vc), free(x), free(a), free(q), free(k), free(v), free(att), free(o), free(g), free(u);
    free(scores);
    return logits;
}

/* Copies a `bitnet` file adding a {1} F32 .scale tensor after each projection (0.5, 0.75, ...),
 * and dropping hidden_activation unless keep_activation (the file then means SiLU). */
static bool write_scaled_copy(const char *src, const char *dst, bool keep_activation) {
    static const float scales[7] = {0.5f, 0.75f, 1.25f, 1.5f, 0.625f, 1.75f, 0.875f};
    bn_gguf *g;
    bn_error err;
    if (bn_gguf_open(src, &g, &err) != BN_OK) return false;
    bn_gguf_writer *w = bn_gguf_writer_new();
    bn_status st = BN_OK;
    for (uint64_t i = 0; i < g->n_kv && st == BN_OK; i++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)g->kvs[i].key.len, g->kvs[i].key.data);
        if (!keep_activation && !strcmp(key, "bitnet.hidden_activation")) continue;
        st = bn_gguf_writer_add_value(w, key, &g->kvs[i].value, &err);
    }
    for (uint64_t i = 0; i < g->n_tensors && st == BN_OK; i++) {
        const bn_gguf_tensor *t = &g->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        st = bn_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, &err);
        for (int p = 0; p < 7 && st == BN_OK; p++) {
            char suffix[64];
            snprintf(suffix, sizeof suffix, ".%s.weight", PROJ[p]);
            char *at = strstr(name, suffix);
            if (!at || strlen(at) != strlen(suffix)) continue;
            snprintf(at, sizeof name - (size_t)(at - name), ".%s.scale", PROJ[p]);
            const uint64_t one[1] = {1};
            st = bn_gguf_writer_add_tensor(w, name, 0, 1, one, &scales[p], &err);
        }
    }
    if (st == BN_OK) st = bn_gguf_writer_write(w, dst, &err);
    if (st != BN_OK) fprintf(stderr, "scaled copy: %s\n", err.message);
    bn_gguf_writer_free(w);
    bn_gguf_close(g);
    return st == BN_OK;
}

/* ---- running bitnet ---- */

static const char *bin;
static char *dir;

static bool synth(const char *out, const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' synth '%s' %s", bin, out, args);
    return bn_test_run(cmd) == 0;
}

/* Runs bitnet eval; returns n x n_vocab logits or NULL. */
static float *eval(const char *model, const char *ids, int n, int n_vocab, const char *extra) {
    char *out = bn_test_path(dir, "eval.f32");
    char *cmd = malloc(strlen(ids) + 4096);
    sprintf(cmd, "'%s' eval -m '%s' --tokens %s --logits-out '%s' %s", bin, model, ids, out, extra);
    int rc = bn_test_run(cmd);
    free(cmd);
    size_t size = 0;
    float *logits = rc == 0 ? bn_test_read_file(out, &size) : NULL;
    if (logits && size != (size_t)n * n_vocab * sizeof(float)) {
        fprintf(stderr, "eval wrote %zu bytes, expected %zu\n", size, (size_t)n * n_vocab * sizeof(float));
        free(logits);
        logits = NULL;
    }
    free(out);
    return logits;
}

static void check_against_reference(const char *label, const float *got, const float *ref, int n, int n_vocab) {
    if (!got || !ref) {
        CHECKF(false, "%s: no logits", label);
        return;
    }
    bn_logits_diff d = bn_logits_compare(got, ref, n, n_vocab);
    bn_logits_print(label, &d, n);
    CHECKF(d.pos0_max_abs <= 1e-4 * fmax(1.0, d.pos0_max_logit), "%s: position 0 differs by %g", label,
           d.pos0_max_abs);
    CHECKF(d.min_cosine >= 0.9995, "%s: min cosine %f", label, d.min_cosine);
}

int main(void) {
    bin = bn_test_bitnet_bin();
    if (!bin) {
        fprintf(stderr, "BITNET_BIN is not set\n");
        return 77;
    }
    dir = bn_test_tmpdir("model_reference");
    /* GQA (8 heads over 4 KV heads), widths that every format's blocks divide */
    const char *shape = "--layers 2 --dim 512 --ffn 768 --heads 8 --kv-heads 4 --vocab 300 --seed 7";
    const char *formats[3] = {"i2_s", "tq2_0", "tq1_0"};
    enum { N = 24 };
    int tokens[N];
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 5);
    tokens[0] = 259;
    for (int i = 1; i < N; i++) tokens[i] = (int)bn_test_rng_range(&rng, 0, 299);
    char *ids = bn_test_join_ids(tokens, N);

    float *by_format[3] = {NULL, NULL, NULL};
    int n_vocab = 0;
    for (int f = 0; f < 3; f++) {
        char file[64], args[512], label[128];
        snprintf(file, sizeof file, "model-%s.gguf", formats[f]);
        char *path = bn_test_path(dir, file);
        snprintf(args, sizeof args, "%s --format %s", shape, formats[f]);
        CHECKF(synth(path, args), "bitnet synth %s", args);
        ref_model ref;
        bool loaded = ref_load(&ref, path);
        CHECKF(loaded, "reference loads %s", path);
        if (loaded) {
            n_vocab = ref.n_vocab;
            float *expect16 = ref_forward(&ref, tokens, N, true);
            float *expect32 = ref_forward(&ref, tokens, N, false);
            by_format[f] = eval(path, ids, N, n_vocab, "");
            snprintf(label, sizeof label, "%s vs reference (F16 KV)", formats[f]);
            check_against_reference(label, by_format[f], expect16, N, n_vocab);
            if (f == 0) {
                /* int8 LM head: an approximation of the F16 head, close in direction */
                float *int8 = eval(path, ids, N, n_vocab, "--int8-lm-head -t 2");
                if (int8 && by_format[0]) {
                    bn_logits_diff d = bn_logits_compare(int8, by_format[0], N, n_vocab);
                    bn_logits_print("i2_s int8 LM head vs F16 LM head", &d, N);
                    CHECKF(d.min_cosine >= 0.999 && d.max_abs < 0.1, "int8 LM head: min cosine %f", d.min_cosine);
                } else {
                    CHECK(!"int8 LM head eval");
                }
                free(int8);
            }
            float *got = eval(path, ids, N, n_vocab, "--kv-f32 -t 3");
            snprintf(label, sizeof label, "%s vs reference (F32 KV, 3 threads)", formats[f]);
            check_against_reference(label, got, expect32, N, n_vocab);
            free(got);
            free(expect16), free(expect32);
            ref_free(&ref);
        }
        free(path);
    }
    /* the same weights, but TQ quantizes activations per 256-block (Q8_K) and I2_S per token:
     * close in direction, not within section 8's position-0 rule (spec 9.3: ~3e-2) */
    for (int f = 1; f < 3; f++) {
        if (!by_format[f] || !by_format[0]) continue;
        bn_logits_diff d = bn_logits_compare(by_format[f], by_format[0], N, n_vocab);
        bn_logits_print(f == 1 ? "tq2_0 vs i2_s" : "tq1_0 vs i2_s", &d, N);
        CHECKF(d.min_cosine >= 0.99 && d.pos0_max_abs < 0.2, "%s vs i2_s: min cosine %f, pos0 %g", formats[f],
               d.min_cosine, d.pos0_max_abs);
    }
    if (by_format[1] && by_format[2])
        CHECKF(!memcmp(by_format[1], by_format[2], (size_t)N * n_vocab * sizeof(float)),
               "tq1_0 and tq2_0 (same weights, same block scales) give identical logits");
    for (int f = 0; f < 3; f++) free(by_format[f]);

    /* llama.cpp `bitnet` files: per-projection .scale tensors, and SiLU unless marked relu2 */
    char *tq2 = bn_test_path(dir, "model-tq2_0.gguf");
    for (int keep = 0; keep < 2; keep++) {
        char *scaled = bn_test_path(dir, keep ? "scaled-relu2.gguf" : "scaled-silu.gguf");
        ref_model ref;
        bool ok = write_scaled_copy(tq2, scaled, keep) && ref_load(&ref, scaled);
        CHECKF(ok, "scaled copy of %s", tq2);
        if (ok) {
            CHECK(ref.silu == !keep && ref.layers[1].out_scale[6] == 0.875f);
            float *expect = ref_forward(&ref, tokens, N, true);
            float *got = eval(scaled, ids, N, ref.n_vocab, "-t 2");
            check_against_reference(keep ? "bitnet + .scale, relu2" : "bitnet + .scale, silu", got, expect, N,
                                    ref.n_vocab);
            free(got), free(expect);
            ref_free(&ref);
        }
        free(scaled);
    }
    free(tq2);

    free(ids);
    free(dir);
    return bn_test_finish("test_model_reference");
}
