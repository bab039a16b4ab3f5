/*
 * backend_cuda.c: the CUDA backend: fills the backend table (backend.h) with the kernels of
 * kernels/cuda/cuda_backend.h, so forward.c runs unchanged with every activation, the KV cache
 * and the weights in device memory; only token ids, positions and the logits cross the bus.
 *
 * Design: bind_weights uploads every weight the forward pass names once, straight from the file's
 * bytes (weight_views.h): ternary projections repacked from their file format into the GPU
 * layout of kernels/cuda/cuda_layout.h one tensor at a time through a transient host buffer, F32
 * norms and F16 tables as they are (a tied head shares the embedding's copy), the int8 head
 * built on the host from the F16 head and uploaded. The device copies live in this backend's own
 * per-layer table, which the operations index by layer and kind; no host copy of a weight stays
 * behind (host memory after binding is the mapped file's page cache plus this backend's small
 * scratch). Activation buffers and KV caches come from alloc() as device memory. The small
 * per-step host arrays (the RoPE angles of the chunk's positions, KV cache entries) are made and
 * copied only when their content changed since the last copy, so a decode step uploads them once
 * although every layer passes them again. The RoPE angles are computed here on the host with the
 * CPU reference's bn_ref_rope_angles (glibc cosf and sinf, which the device cannot reproduce), so
 * the rotation matches the CPU bit for bit.
 *
 * Errors: operations cannot fail in the backend table, so a failure inside one (a kernel launch,
 * the logits copy) is kept and reported by finish() at the end of the step, or by the next
 * reserve(). Without CUDA in the build, bn_backend_cuda_create() says so.
 */
#include "backend/cuda/backend_cuda.h"

#ifdef BITNET_HAVE_CUDA

#include "kernels/cpu/ref_ops.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_layout.h"
#include "kernels/ops.h"
#include "quant/quant_format.h"
#include "quant/ternary.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows of logits computed and copied back per LM head pass (bounds the device buffer). */
#define LOGIT_ROWS 64

/* A layer's weights on the device. */
typedef struct cuda_layer {
    float *norms[BN_NORM_LAYER_KINDS];        /* NULL for an absent sub-norm */
    bn_cuda_ternary linears[BN_LINEAR_KINDS]; /* codes and block_scales owned */
} cuda_layer;

typedef struct cuda_backend {
    bn_cuda_context *ctx;
    /* the weights on the device, owned */
    uint16_t *token_embd, *output; /* F16 tables; output == token_embd when tied */
    float *output_norm;
    bool has_int8_output;
    int8_t *output_int8;       /* n_vocab x dim */
    float *output_int8_scales; /* n_vocab */
    cuda_layer *layers;        /* config.n_layers */
    /* scratch for chunks of up to `tokens` tokens */
    int tokens, max_context;
    int8_t *q;
    float *scales, *attention_scratch, *logits;
    int32_t *tokens_dev, *rows_dev;
    bn_cuda_kv_entry *entries_dev;
    /* RoPE: rope_half pairs per head; rope_host / rope_dev hold `tokens` rows of rope_half cos
     * then rope_half sin values (bn_cuda_rope_neox's table) */
    int rope_half;
    float *rope_host, *rope_dev;
    /* the positions whose angles rope_dev holds, and what entries_dev holds (n < 0: nothing
     * valid) */
    int32_t *pos_shadow;
    int pos_shadow_n;
    bn_cuda_kv_entry *entries_host, *entries_shadow;
    int entries_shadow_n;
    /* the activations q/scales hold: quantized from quant_x (n x cols), NULL when stale; q, k and v
     * (and gate and up) read the same input, which is then quantized once */
    const float *quant_x;
    int quant_n, quant_cols;
    /* the first error of an operation, reported by finish() / reserve() */
    bn_error pending;
    char device_name[128];
} cuda_backend;

static cuda_backend *impl_of(bn_backend *backend) { return (cuda_backend *)backend->impl; }

/* Every operation that writes device activations calls this: the quantized copy may be stale. */
static void activations_changed(cuda_backend *cuda) { cuda->quant_x = NULL; }

static void keep_error(cuda_backend *cuda, const bn_error *e) {
    if (cuda->pending.code == BN_OK) cuda->pending = *e;
}

/* A device copy of bytes at host (*out NULL when host is NULL: an absent weight). */
static bn_status upload_plain(cuda_backend *cuda, void **out, const void *host, size_t bytes, const char *what,
                              bn_error *err) {
    *out = NULL;
    if (!host) return BN_OK;
    bn_status st = bn_cuda_malloc(out, bytes, what, err);
    if (st == BN_OK) st = bn_cuda_upload(cuda->ctx, *out, host, bytes, err);
    if (st != BN_OK) {
        bn_cuda_free(*out);
        *out = NULL;
    }
    return st;
}

/* Checks a ternary tensor as bn_ternary_matrix_prepare does for the CPU (the same messages):
 * I2_S codes and a finite scale. */
static bn_status check_ternary(const bn_tensor_view *t, float *tensor_scale, bn_error *err) {
    *tensor_scale = 1.0f;
    if (t->type != BN_TYPE_I2_S) return BN_OK;
    const size_t n_elements = (size_t)t->rows * (size_t)t->cols;
    int64_t bad = bn_i2s_find_code3(t->data, n_elements);
    if (bad >= 0)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "tensor %s: I2_S weight %lld (row %lld, column %lld) has the invalid code 3", t->name,
                            (long long)bad, (long long)(bad / t->cols), (long long)(bad % t->cols));
    *tensor_scale = bn_i2s_scale(t->data, n_elements);
    if (!isfinite(*tensor_scale))
        return bn_error_set(err, BN_ERR_FORMAT, "tensor %s: I2_S scale is not finite", t->name);
    return BN_OK;
}

/* Uploads a ternary projection in the GPU layout, repacked from the file's bytes through a host
 * buffer freed before returning. */
static bn_status upload_linear(cuda_backend *cuda, const bn_linear_view *v, bn_cuda_ternary *out, bn_error *err) {
    const bn_tensor_view *t = &v->weight;
    const bn_cuda_layout_source source = {t->type, t->rows, t->cols, t->data};
    float tensor_scale;
    size_t n_words, n_scales;
    bn_status st = bn_cuda_layout_sizes(&n_words, &n_scales, &source, err);
    if (st != BN_OK) return bn_error_prefix(err, "%s: ", t->name);
    if ((st = check_ternary(t, &tensor_scale, err)) != BN_OK) return st;
    uint32_t *codes = malloc(n_words * sizeof *codes);
    float *block_scales = n_scales ? malloc(n_scales * sizeof *block_scales) : NULL;
    if (!codes || (n_scales && !block_scales)) {
        free(codes), free(block_scales);
        return bn_error_set(err, BN_ERR_NOMEM, "%s: out of host memory for the GPU layout", t->name);
    }
    bn_cuda_layout_repack(codes, block_scales, &source, 0, t->rows);
    void *device = NULL, *device_scales = NULL;
    st = upload_plain(cuda, &device, codes, n_words * sizeof *codes, t->name, err);
    if (st == BN_OK) st = upload_plain(cuda, &device_scales, block_scales, n_scales * sizeof *block_scales, t->name, err);
    free(codes), free(block_scales); /* reusable once bn_cuda_upload returns */
    if (st != BN_OK) {
        bn_cuda_free(device), bn_cuda_free(device_scales);
        return st;
    }
    *out = (bn_cuda_ternary){.file_type = t->type,
                             .rows = t->rows,
                             .cols = t->cols,
                             .codes = device,
                             .block_scales = device_scales,
                             .tensor_scale = tensor_scale,
                             .has_out_scale = v->has_out_scale,
                             .out_scale = v->out_scale};
    return BN_OK;
}

/* The int8 head (config.int8_lm_head): made on the host from the F16 head, uploaded, and the host
 * copy freed. */
static bn_status upload_int8_head(cuda_backend *cuda, const bn_backend_config *c, const uint16_t *f16,
                                  bn_error *err) {
    bn_int8_matrix m;
    bn_status st = bn_int8_matrix_from_f16(&m, f16, c->n_vocab, c->dim, NULL, err);
    if (st != BN_OK) return bn_error_prefix(err, "int8 LM head: ");
    st = upload_plain(cuda, (void **)&cuda->output_int8, m.q, (size_t)m.rows * (size_t)m.cols, "int8 LM head", err);
    if (st == BN_OK)
        st = upload_plain(cuda, (void **)&cuda->output_int8_scales, m.row_scales, (size_t)m.rows * sizeof(float),
                          "int8 LM head scales", err);
    bn_int8_matrix_release(&m);
    cuda->has_int8_output = st == BN_OK;
    return st;
}

static void release_weights(cuda_backend *cuda, int n_layers) {
    if (cuda->output != cuda->token_embd) bn_cuda_free(cuda->output);
    bn_cuda_free(cuda->token_embd), bn_cuda_free(cuda->output_norm);
    bn_cuda_free(cuda->output_int8), bn_cuda_free(cuda->output_int8_scales);
    for (int l = 0; cuda->layers && l < n_layers; l++) {
        cuda_layer *layer = &cuda->layers[l];
        for (int i = 0; i < BN_NORM_LAYER_KINDS; i++) bn_cuda_free(layer->norms[i]);
        for (int i = 0; i < BN_LINEAR_KINDS; i++) {
            bn_cuda_free((void *)layer->linears[i].codes);
            bn_cuda_free((void *)layer->linears[i].block_scales);
        }
    }
    free(cuda->layers);
    cuda->token_embd = cuda->output = NULL;
    cuda->output_norm = cuda->output_int8_scales = NULL;
    cuda->output_int8 = NULL;
    cuda->has_int8_output = false;
    cuda->layers = NULL;
}

static bn_status cuda_bind_weights(bn_backend *backend, const bn_weight_views *views, bn_error *err) {
    cuda_backend *cuda = impl_of(backend);
    const bn_backend_config *c = &backend->config;
    /* What the CUDA kernels do not implement yet: refused with the reason, never run wrong. */
    for (int l = 0; l < views->n_layers; l++)
        for (int i = 0; i < BN_LINEAR_KINDS; i++) {
            uint32_t type = views->layers[l].linears[i].weight.type;
            if (type == BN_TYPE_TQ1_0 || type == BN_TYPE_TQ2_0)
                return bn_error_set(err, BN_ERR_UNSUPPORTED,
                                    "CUDA backend: TQ1_0 / TQ2_0 projections take Q8_K activations (spec 9.3), "
                                    "not in the CUDA kernels yet; use --device cpu");
        }
    if (views->token_embd.type != BN_TYPE_F16 || views->output.type != BN_TYPE_F16 || views->rope_freqs)
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "CUDA backend: needs an f16 embedding and head and no RoPE factors or scaling");
    release_weights(cuda, c->n_layers);
    cuda->layers = calloc((size_t)(views->n_layers > 0 ? views->n_layers : 1), sizeof *cuda->layers);
    if (!cuda->layers) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for the CUDA weight table");
    const size_t table_bytes = (size_t)c->n_vocab * (size_t)c->dim * sizeof(uint16_t);
    bn_status st = upload_plain(cuda, (void **)&cuda->token_embd, views->token_embd.data, table_bytes,
                                views->token_embd.name, err);
    if (st == BN_OK && views->output.data == views->token_embd.data)
        cuda->output = cuda->token_embd; /* tied */
    else if (st == BN_OK)
        st = upload_plain(cuda, (void **)&cuda->output, views->output.data, table_bytes, views->output.name, err);
    if (st == BN_OK)
        st = upload_plain(cuda, (void **)&cuda->output_norm, views->output_norm, (size_t)c->dim * sizeof(float),
                          "output_norm.weight", err);
    if (st == BN_OK && c->int8_lm_head) st = upload_int8_head(cuda, c, views->output.data, err);
    for (int l = 0; l < views->n_layers && st == BN_OK; l++) {
        const bn_layer_views *lv = &views->layers[l];
        cuda_layer *layer = &cuda->layers[l];
        const int norm_width[BN_NORM_LAYER_KINDS] = {c->dim, c->q_dim, c->dim, c->ffn_dim};
        char what[64];
        snprintf(what, sizeof what, "blk.%d norms", l);
        for (int i = 0; i < BN_NORM_LAYER_KINDS && st == BN_OK; i++)
            st = upload_plain(cuda, (void **)&layer->norms[i], lv->norms[i], (size_t)norm_width[i] * sizeof(float),
                              what, err);
        for (int i = 0; i < BN_LINEAR_KINDS && st == BN_OK; i++)
            st = upload_linear(cuda, &lv->linears[i], &layer->linears[i], err);
    }
    if (st == BN_OK) st = bn_cuda_sync(cuda->ctx, err);
    if (st != BN_OK) release_weights(cuda, c->n_layers);
    return st;
}

/* NULL on failure: the callers (forward.c, kv_cache.c) report out-of-memory with their sizes. */
static void *cuda_alloc(bn_backend *backend, size_t bytes) {
    (void)backend;
    void *p;
    return bn_cuda_malloc(&p, bytes, "activations / KV cache", NULL) == BN_OK ? p : NULL;
}

static void cuda_release(bn_backend *backend, void *buffer) {
    (void)backend;
    bn_cuda_free(buffer);
}

static bn_status cuda_to_host(bn_backend *backend, void *host_dst, const void *device_src, size_t bytes,
                              bn_error *err) {
    return bn_cuda_download(impl_of(backend)->ctx, host_dst, device_src, bytes, err);
}

static bn_status cuda_from_host(bn_backend *backend, void *device_dst, const void *host_src, size_t bytes,
                                bn_error *err) {
    cuda_backend *cuda = impl_of(backend);
    bn_status st = bn_cuda_upload(cuda->ctx, device_dst, host_src, bytes, err);
    return st == BN_OK ? bn_cuda_sync(cuda->ctx, err) : st;
}

static void free_scratch(cuda_backend *cuda) {
    bn_cuda_free(cuda->q), bn_cuda_free(cuda->scales), bn_cuda_free(cuda->attention_scratch);
    bn_cuda_free(cuda->logits), bn_cuda_free(cuda->tokens_dev), bn_cuda_free(cuda->rope_dev);
    bn_cuda_free(cuda->rows_dev), bn_cuda_free(cuda->entries_dev);
    free(cuda->pos_shadow), free(cuda->rope_host), free(cuda->entries_host), free(cuda->entries_shadow);
    cuda->q = NULL, cuda->scales = cuda->attention_scratch = cuda->logits = NULL;
    cuda->tokens_dev = cuda->rows_dev = NULL;
    cuda->rope_dev = cuda->rope_host = NULL;
    cuda->entries_dev = NULL;
    cuda->pos_shadow = NULL, cuda->entries_host = cuda->entries_shadow = NULL;
    cuda->tokens = cuda->max_context = 0;
    activations_changed(cuda);
}

static bn_status cuda_reserve(bn_backend *backend, int n_tokens, int max_context, bn_error *err) {
    cuda_backend *cuda = impl_of(backend);
    const bn_backend_config *c = &backend->config;
    if (cuda->pending.code != BN_OK) {
        /* an earlier step failed on the device: report it, then start clean */
        bn_status code = cuda->pending.code;
        if (err) *err = cuda->pending;
        bn_error_clear(&cuda->pending);
        cuda->pending.code = BN_OK;
        return code;
    }
    if (n_tokens <= cuda->tokens && max_context <= cuda->max_context) return BN_OK;
    if (n_tokens < cuda->tokens) n_tokens = cuda->tokens;
    if (max_context < cuda->max_context) max_context = cuda->max_context;
    free_scratch(cuda);
    const size_t nt = (size_t)n_tokens;
    const size_t width = (size_t)(c->dim > c->ffn_dim ? c->dim : c->ffn_dim);
    const size_t logit_rows = nt < LOGIT_ROWS ? nt : LOGIT_ROWS;
    const size_t attention = bn_cuda_attention_scratch_floats(n_tokens, c->n_heads, max_context);
    const size_t rope_floats = nt * 2 * (size_t)(cuda->rope_half > 0 ? cuda->rope_half : 1);
    bn_status st = bn_cuda_malloc((void **)&cuda->q, nt * width, "quantized activations", err);
    if (st == BN_OK)
        st = bn_cuda_malloc((void **)&cuda->scales, nt * sizeof(float), "activation scales", err);
    if (st == BN_OK)
        st = bn_cuda_malloc((void **)&cuda->attention_scratch, attention * sizeof(float), "attention scores", err);
    if (st == BN_OK)
        st = bn_cuda_malloc((void **)&cuda->logits, logit_rows * (size_t)c->n_vocab * sizeof(float), "logits",
                            err);
    if (st == BN_OK) st = bn_cuda_malloc((void **)&cuda->tokens_dev, nt * sizeof(int32_t), "token ids", err);
    if (st == BN_OK)
        st = bn_cuda_malloc((void **)&cuda->rope_dev, rope_floats * sizeof(float), "RoPE angles", err);
    if (st == BN_OK) st = bn_cuda_malloc((void **)&cuda->rows_dev, nt * sizeof(int32_t), "logit rows", err);
    if (st == BN_OK)
        st = bn_cuda_malloc((void **)&cuda->entries_dev, nt * sizeof(bn_cuda_kv_entry), "KV cache entries",
                            err);
    if (st == BN_OK) {
        cuda->pos_shadow = malloc(nt * sizeof *cuda->pos_shadow);
        cuda->rope_host = malloc(rope_floats * sizeof *cuda->rope_host);
        cuda->entries_host = malloc(nt * sizeof *cuda->entries_host);
        cuda->entries_shadow = malloc(nt * sizeof *cuda->entries_shadow);
        if (!cuda->pos_shadow || !cuda->rope_host || !cuda->entries_host || !cuda->entries_shadow)
            st = bn_error_set(err, BN_ERR_NOMEM, "CUDA backend: out of host memory for %d tokens", n_tokens);
    }
    if (st != BN_OK) {
        free_scratch(cuda);
        return st;
    }
    cuda->tokens = n_tokens;
    cuda->max_context = max_context;
    cuda->pos_shadow_n = cuda->entries_shadow_n = -1;
    return BN_OK;
}

static void upload_or_keep(cuda_backend *cuda, void *device, const void *host, size_t bytes) {
    bn_error e = {0};
    if (bn_cuda_upload(cuda->ctx, device, host, bytes, &e) != BN_OK) keep_error(cuda, &e);
}

/* rope_dev holds the angles of pos[0..n) afterwards: row t = bn_ref_rope_angles of pos[t] (the
 * CPU backend's tables, bn_rope_neox_angles, are the same call). */
static void sync_rope_angles(cuda_backend *cuda, float rope_base, const int32_t *pos, int n) {
    const int half = cuda->rope_half;
    size_t bytes = (size_t)n * sizeof *pos;
    if (cuda->pos_shadow_n == n && !memcmp(cuda->pos_shadow, pos, bytes)) return;
    for (int t = 0; t < n; t++) {
        float *row = cuda->rope_host + (size_t)t * 2 * (size_t)half;
        if (t > 0 && pos[t] == pos[t - 1])
            memcpy(row, row - 2 * (size_t)half, 2 * (size_t)half * sizeof *row);
        else
            bn_ref_rope_angles(row, row + half, half, 2 * half, pos[t], rope_base);
    }
    upload_or_keep(cuda, cuda->rope_dev, cuda->rope_host, (size_t)n * 2 * (size_t)half * sizeof(float));
    memcpy(cuda->pos_shadow, pos, bytes);
    cuda->pos_shadow_n = n;
}

/* entries_dev describes the batch's caches afterwards. */
static void sync_entries(cuda_backend *cuda, const bn_batch_view *batch) {
    for (int t = 0; t < batch->n; t++) {
        const bn_kv_cache *cache = batch->caches[t];
        bn_cuda_kv_entry *e = &cuda->entries_host[t];
        memset(e, 0, sizeof *e);
        e->k = cache->k;
        e->v = cache->v;
        e->capacity = cache->capacity;
        e->pos = batch->pos[t];
    }
    size_t bytes = (size_t)batch->n * sizeof(bn_cuda_kv_entry);
    if (cuda->entries_shadow_n == batch->n && !memcmp(cuda->entries_shadow, cuda->entries_host, bytes))
        return;
    upload_or_keep(cuda, cuda->entries_dev, cuda->entries_host, bytes);
    memcpy(cuda->entries_shadow, cuda->entries_host, bytes);
    cuda->entries_shadow_n = batch->n;
}

static void cuda_embed(bn_backend *backend, float *x, const int32_t *tokens, int n) {
    cuda_backend *cuda = impl_of(backend);
    activations_changed(cuda);
    upload_or_keep(cuda, cuda->tokens_dev, tokens, (size_t)n * sizeof *tokens);
    bn_cuda_embed(cuda->ctx, x, cuda->token_embd, cuda->tokens_dev, n, backend->config.dim);
}

static void cuda_rmsnorm(bn_backend *backend, float *out, const float *x, bn_norm_ref weight, int n,
                         int cols, float eps) {
    cuda_backend *cuda = impl_of(backend);
    activations_changed(cuda);
    const float *w =
        weight.kind == BN_NORM_OUTPUT ? cuda->output_norm : cuda->layers[weight.layer].norms[weight.kind];
    bn_cuda_rmsnorm(cuda->ctx, out, x, w, n, cols, eps);
}

static void cuda_linear(bn_backend *backend, float *y, bn_linear_ref w, const float *x, int n) {
    cuda_backend *cuda = impl_of(backend);
    const bn_cuda_ternary *t = &cuda->layers[w.layer].linears[w.kind];
    if (x != cuda->quant_x || n != cuda->quant_n || t->cols != cuda->quant_cols) {
        bn_cuda_quantize(cuda->ctx, cuda->q, cuda->scales, x, n, t->cols);
        cuda->quant_x = x, cuda->quant_n = n, cuda->quant_cols = t->cols;
    }
    bn_cuda_ternary_matmul(cuda->ctx, y, t, cuda->q, cuda->scales, n);
    if (y == x) activations_changed(cuda); /* forward.c never does this; stay correct if it did */
}

static void cuda_rope(bn_backend *backend, float *x, int n_heads, const int32_t *pos, int n) {
    cuda_backend *cuda = impl_of(backend);
    const bn_backend_config *c = &backend->config;
    activations_changed(cuda);
    if (n <= 0 || cuda->rope_half <= 0) return; /* nothing rotates */
    sync_rope_angles(cuda, c->rope_base, pos, n);
    bn_cuda_rope_neox(cuda->ctx, x, n_heads, c->head_dim, c->rope_dim, cuda->rope_dev, n);
}

static void cuda_kv_store(bn_backend *backend, const bn_batch_view *batch, int layer, const float *k,
                          const float *v) {
    cuda_backend *cuda = impl_of(backend);
    if (batch->n <= 0) return;
    sync_entries(cuda, batch);
    bn_cuda_kv_store(cuda->ctx, cuda->entries_dev, batch->n, layer, backend->config.kv_dim,
                     batch->caches[0]->k_type, batch->caches[0]->v_type, k, v);
}

static void cuda_attention(bn_backend *backend, float *out, const float *q, const bn_batch_view *batch,
                           int layer) {
    cuda_backend *cuda = impl_of(backend);
    const bn_backend_config *c = &backend->config;
    if (batch->n <= 0) return;
    activations_changed(cuda);
    sync_entries(cuda, batch);
    int max_pos = 0;
    for (int t = 0; t < batch->n; t++)
        if (batch->pos[t] > max_pos) max_pos = batch->pos[t];
    bn_cuda_attention(cuda->ctx, out, q, cuda->entries_dev, batch->n, layer, c->n_heads, c->n_kv_heads,
                      c->head_dim, batch->caches[0]->k_type, batch->caches[0]->v_type, max_pos,
                      cuda->attention_scratch);
}

static void cuda_ffn_activation(bn_backend *backend, float *out, const float *gate, const float *up,
                                size_t n_values) {
    activations_changed(impl_of(backend));
    /* SiLU's arithmetic depends on the place in the row (spec 4.1): rows of the FFN width */
    bn_cuda_ffn_activation(impl_of(backend)->ctx, out, gate, up, n_values, (size_t)backend->config.ffn_dim,
                           !backend->config.ffn_silu);
}

static void cuda_add(bn_backend *backend, float *x, const float *y, size_t n_values) {
    activations_changed(impl_of(backend));
    bn_cuda_add(impl_of(backend)->ctx, x, y, n_values);
}

static void cuda_gather_rows(bn_backend *backend, float *dst, const float *src, const int32_t *rows, int n,
                             int cols) {
    cuda_backend *cuda = impl_of(backend);
    activations_changed(cuda);
    upload_or_keep(cuda, cuda->rows_dev, rows, (size_t)n * sizeof *rows);
    bn_cuda_gather_rows(cuda->ctx, dst, src, cuda->rows_dev, n, cols);
}

/* LOGIT_ROWS rows at a time: product on the device, then copied into the host logits. */
static void cuda_lm_head(bn_backend *backend, float *logits, const float *x, int n) {
    cuda_backend *cuda = impl_of(backend);
    const bn_backend_config *c = &backend->config;
    activations_changed(cuda); /* the int8 head quantizes into the same scratch */
    for (int begin = 0; begin < n; begin += LOGIT_ROWS) {
        int count = n - begin < LOGIT_ROWS ? n - begin : LOGIT_ROWS;
        const float *xb = x + (size_t)begin * (size_t)c->dim;
        if (cuda->has_int8_output) {
            bn_cuda_quantize(cuda->ctx, cuda->q, cuda->scales, xb, count, c->dim);
            bn_cuda_int8_matmul(cuda->ctx, cuda->logits, cuda->output_int8, cuda->output_int8_scales, c->n_vocab,
                                c->dim, cuda->q, cuda->scales, count);
        } else {
            bn_cuda_f16_matmul(cuda->ctx, cuda->logits, cuda->output, xb, c->n_vocab, c->dim, count);
        }
        bn_error e = {0};
        if (bn_cuda_download(cuda->ctx, logits + (size_t)begin * (size_t)c->n_vocab, cuda->logits,
                             (size_t)count * (size_t)c->n_vocab * sizeof(float), &e) != BN_OK) {
            keep_error(cuda, &e);
            return;
        }
    }
}

static bn_status cuda_finish(bn_backend *backend, bn_error *err) {
    cuda_backend *cuda = impl_of(backend);
    activations_changed(cuda); /* the next step's buffers hold other values at the same addresses */
    bn_error e = {0};
    if (bn_cuda_sync(cuda->ctx, &e) != BN_OK) keep_error(cuda, &e);
    if (cuda->pending.code == BN_OK) return BN_OK;
    bn_status code = cuda->pending.code;
    if (err) *err = cuda->pending;
    bn_error_clear(&cuda->pending);
    cuda->pending.code = BN_OK;
    return code;
}

static void cuda_destroy(bn_backend *backend) {
    if (!backend) return;
    cuda_backend *cuda = impl_of(backend);
    if (cuda) {
        if (cuda->ctx) bn_cuda_sync(cuda->ctx, NULL);
        free_scratch(cuda);
        release_weights(cuda, backend->config.n_layers);
        bn_cuda_context_free(cuda->ctx);
        free(cuda);
    }
    free(backend);
}

const char *bn_backend_cuda_device(const bn_backend *backend) {
    return backend && backend->impl && !strcmp(backend->name, "cuda")
               ? ((const cuda_backend *)backend->impl)->device_name
               : NULL;
}

bn_status bn_backend_cuda_create(const bn_backend_config *config, int device_index, bn_backend **out,
                                 bn_error *err) {
    *out = NULL;
    /* What the CUDA kernels do not implement yet: refused with the reason, never run wrong. */
    if (config->rope_norm || !config->sub_norms)
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "CUDA backend: the llama architecture (NORM RoPE, no sub-norms) is CPU-only for now");
    if (config->rope_freq_scale != 1.0f)
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "CUDA backend: needs an f16 embedding and head and no RoPE factors or scaling");
    if (config->dim % 16 != 0 || config->ffn_dim % 16 != 0)
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "CUDA backend: widths must be multiples of 16 (dim %d, ffn %d)", config->dim,
                            config->ffn_dim);
    bn_backend *backend = calloc(1, sizeof *backend);
    cuda_backend *cuda = calloc(1, sizeof *cuda);
    if (!backend || !cuda) {
        free(backend), free(cuda);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory for the CUDA backend");
    }
    backend->name = "cuda";
    backend->impl = cuda;
    backend->config = *config;
    backend->destroy = cuda_destroy;
    cuda->rope_half = bn_cuda_rope_half(config->head_dim, config->rope_dim);
    bn_status st = bn_cuda_device_info(device_index, cuda->device_name, sizeof cuda->device_name, err);
    if (st == BN_OK) st = bn_cuda_context_create(device_index, &cuda->ctx, err);
    if (st != BN_OK) {
        cuda_destroy(backend);
        return st;
    }
    backend->bind_weights = cuda_bind_weights;
    backend->alloc = cuda_alloc;
    backend->release = cuda_release;
    backend->reserve = cuda_reserve;
    backend->finish = cuda_finish;
    backend->to_host = cuda_to_host;
    backend->from_host = cuda_from_host;
    backend->embed = cuda_embed;
    backend->rmsnorm = cuda_rmsnorm;
    backend->linear = cuda_linear;
    backend->rope = cuda_rope;
    backend->kv_store = cuda_kv_store;
    backend->attention = cuda_attention;
    backend->ffn_activation = cuda_ffn_activation;
    backend->add = cuda_add;
    backend->gather_rows = cuda_gather_rows;
    backend->lm_head = cuda_lm_head;
    *out = backend;
    return BN_OK;
}

#else /* no CUDA in this build */

bn_status bn_backend_cuda_create(const bn_backend_config *config, int device_index, bn_backend **out,
                                 bn_error *err) {
    (void)config, (void)device_index;
    *out = NULL;
    return bn_error_set(err, BN_ERR_DEVICE,
                        "this build has no CUDA backend (rebuild with nvcc installed, or use --device cpu)");
}

const char *bn_backend_cuda_device(const bn_backend *backend) {
    (void)backend;
    return NULL;
}

#endif
