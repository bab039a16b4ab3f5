/*
 * backend_cuda.c: the CUDA backend: fills the backend table (backend.h) with the kernels of
 * kernels/cuda/cuda_backend.h, so forward.c runs unchanged with every activation, the KV cache
 * and the weights in device memory; only token ids, positions and the logits cross the bus.
 *
 * Design: at creation every weight the forward pass names is uploaded once (ternary projections
 * repacked into the GPU layout of kernels/cuda/cuda_layout.h, F32 norms and F16 tables as they
 * are) and remembered in a table keyed by its host address, which is what forward.c passes
 * (norm weight pointers, &layer->wq, weights->output ...). Activation buffers and KV caches come
 * from alloc() as device memory. The small per-step host arrays (the RoPE angles of the chunk's
 * positions, KV cache entries) are made and copied only when their content changed since the last
 * copy, so a decode step uploads them once although every layer passes them again. The RoPE
 * angles are computed here on the host with the CPU reference's bn_ref_rope_angles (glibc cosf
 * and sinf, which the device cannot reproduce), so the rotation matches the CPU bit for bit.
 *
 * Errors: operations cannot fail in the backend table, so a failure inside one (a kernel launch,
 * the logits copy) is kept and reported by finish() at the end of the step, or by the next
 * reserve(). Without CUDA in the build, bn_backend_cuda_create() says so.
 */
#include "model/backend.h"

#include "quant/quant_format.h"

#ifdef BITNET_HAVE_CUDA

#include "kernels/cpu/ref_ops.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_layout.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows of logits computed and copied back per LM head pass (bounds the device buffer). */
#define LOGIT_ROWS 64

/* A weight on the device, found by its host address. */
typedef struct device_weight {
    const void *host;
    void *device; /* F32 / F16 / int8 data, or the ternary codes */
    void *device_extra; /* TQ block scales or int8 row scales */
    bn_cuda_ternary ternary; /* ternary projections */
} device_weight;

typedef struct cuda_backend {
    bn_cuda_context *ctx;
    /* open-addressing table of weights, capacity a power of two */
    device_weight *weights;
    size_t capacity, count;
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
    const bn_model_config *config;
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

static size_t hash_pointer(const void *p, size_t capacity) {
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (capacity - 1);
}

/* The slot of host (an empty slot when absent). */
static device_weight *find_slot(cuda_backend *cuda, const void *host) {
    size_t i = hash_pointer(host, cuda->capacity);
    while (cuda->weights[i].host && cuda->weights[i].host != host) i = (i + 1) & (cuda->capacity - 1);
    return &cuda->weights[i];
}

/* The device copy of a weight that creation uploaded (forward.c passes nothing else; an unknown
 * address is kept as an error and yields an empty entry). */
static const device_weight *lookup(cuda_backend *cuda, const void *host) {
    const device_weight *slot = find_slot(cuda, host);
    if (!slot->host) {
        bn_error e = {0};
        bn_error_set(&e, BN_ERR_STATE, "CUDA backend: a weight at %p was never uploaded", host);
        keep_error(cuda, &e);
    }
    return slot;
}

/* Uploads bytes at host once (a second call with the same host address is a no-op). */
static bn_status upload_plain(cuda_backend *cuda, const void *host, size_t bytes, const char *what,
                              bn_error *err) {
    device_weight *slot = find_slot(cuda, host);
    if (slot->host) return BN_OK;
    void *device;
    bn_status st = bn_cuda_malloc(&device, bytes, what, err);
    if (st == BN_OK) st = bn_cuda_upload(cuda->ctx, device, host, bytes, err);
    if (st != BN_OK) {
        bn_cuda_free(device);
        return st;
    }
    slot->host = host;
    slot->device = device;
    cuda->count++;
    return BN_OK;
}

static bn_status upload_linear(cuda_backend *cuda, const bn_linear *linear, const char *what, bn_error *err) {
    device_weight *slot = find_slot(cuda, linear);
    if (slot->host) return BN_OK;
    const bn_ternary_matrix *m = &linear->matrix;
    size_t n_words, n_scales;
    bn_status st = bn_cuda_layout_sizes(&n_words, &n_scales, m, err);
    if (st != BN_OK) return bn_error_prefix(err, "%s: ", what);
    uint32_t *codes = malloc(n_words * sizeof *codes);
    float *block_scales = n_scales ? malloc(n_scales * sizeof *block_scales) : NULL;
    if (!codes || (n_scales && !block_scales)) {
        free(codes), free(block_scales);
        return bn_error_set(err, BN_ERR_NOMEM, "%s: out of host memory for the GPU layout", what);
    }
    bn_cuda_layout_repack(codes, block_scales, m, 0, m->rows);
    void *device = NULL, *device_scales = NULL;
    st = bn_cuda_malloc(&device, n_words * sizeof *codes, what, err);
    if (st == BN_OK) st = bn_cuda_upload(cuda->ctx, device, codes, n_words * sizeof *codes, err);
    if (st == BN_OK && n_scales) {
        st = bn_cuda_malloc(&device_scales, n_scales * sizeof *block_scales, what, err);
        if (st == BN_OK)
            st = bn_cuda_upload(cuda->ctx, device_scales, block_scales, n_scales * sizeof *block_scales, err);
    }
    free(codes), free(block_scales);
    if (st != BN_OK) {
        bn_cuda_free(device), bn_cuda_free(device_scales);
        return st;
    }
    slot->host = linear;
    slot->device = device;
    slot->device_extra = device_scales;
    slot->ternary = (bn_cuda_ternary){.file_type = m->file_type,
                                      .rows = m->rows,
                                      .cols = m->cols,
                                      .codes = device,
                                      .block_scales = device_scales,
                                      .tensor_scale = m->tensor_scale,
                                      .has_out_scale = linear->has_out_scale,
                                      .out_scale = linear->out_scale};
    cuda->count++;
    return BN_OK;
}

static bn_status upload_weights(cuda_backend *cuda, const bn_model_config *c, const bn_model_weights *w,
                                bn_error *err) {
    const size_t dim_bytes = (size_t)c->dim * sizeof(float);
    const size_t table_bytes = (size_t)c->n_vocab * (size_t)c->dim * sizeof(uint16_t);
    bn_status st = upload_plain(cuda, w->token_embd, table_bytes, "token_embd.weight", err);
    if (st == BN_OK) st = upload_plain(cuda, w->output, table_bytes, "output.weight", err);
    if (st == BN_OK) st = upload_plain(cuda, w->output_norm, dim_bytes, "output_norm.weight", err);
    if (st == BN_OK && w->has_int8_output) {
        const bn_int8_matrix *m = &w->output_int8;
        st = upload_plain(cuda, m->q, (size_t)m->rows * (size_t)m->cols, "int8 LM head", err);
        if (st == BN_OK)
            st = upload_plain(cuda, m->row_scales, (size_t)m->rows * sizeof(float), "int8 LM head scales",
                              err);
    }
    for (int l = 0; l < c->n_layers && st == BN_OK; l++) {
        const bn_layer_weights *lw = &w->layers[l];
        char what[64];
        snprintf(what, sizeof what, "blk.%d norms", l);
        const float *norms[] = {lw->attn_norm, lw->attn_sub_norm, lw->ffn_norm};
        for (int i = 0; i < 3 && st == BN_OK; i++) st = upload_plain(cuda, norms[i], dim_bytes, what, err);
        if (st == BN_OK)
            st = upload_plain(cuda, lw->ffn_sub_norm, (size_t)c->ffn_dim * sizeof(float), what, err);
        const bn_linear *linears[] = {&lw->wq,     &lw->wk,   &lw->wv,    &lw->wo,
                                      &lw->w_gate, &lw->w_up, &lw->w_down};
        static const char *const names[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                            "ffn_gate", "ffn_up", "ffn_down"};
        for (int i = 0; i < 7 && st == BN_OK; i++) {
            snprintf(what, sizeof what, "blk.%d.%s.weight", l, names[i]);
            st = upload_linear(cuda, linears[i], what, err);
        }
    }
    if (st == BN_OK) st = bn_cuda_sync(cuda->ctx, err);
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
    const bn_model_config *c = backend->config;
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
static void sync_rope_angles(cuda_backend *cuda, const int32_t *pos, int n) {
    const bn_model_config *c = cuda->config;
    const int half = cuda->rope_half;
    size_t bytes = (size_t)n * sizeof *pos;
    if (cuda->pos_shadow_n == n && !memcmp(cuda->pos_shadow, pos, bytes)) return;
    for (int t = 0; t < n; t++) {
        float *row = cuda->rope_host + (size_t)t * 2 * (size_t)half;
        if (t > 0 && pos[t] == pos[t - 1])
            memcpy(row, row - 2 * (size_t)half, 2 * (size_t)half * sizeof *row);
        else
            bn_ref_rope_angles(row, row + half, half, 2 * half, pos[t], c->rope_base);
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

static void cuda_embed(bn_backend *backend, float *x, const bn_model_weights *weights, const int32_t *tokens,
                       int n) {
    cuda_backend *cuda = impl_of(backend);
    activations_changed(cuda);
    upload_or_keep(cuda, cuda->tokens_dev, tokens, (size_t)n * sizeof *tokens);
    bn_cuda_embed(cuda->ctx, x, lookup(cuda, weights->token_embd)->device, cuda->tokens_dev, n,
                  backend->config->dim);
}

static void cuda_rmsnorm(bn_backend *backend, float *out, const float *x, const float *weight, int n,
                         int cols, float eps) {
    cuda_backend *cuda = impl_of(backend);
    activations_changed(cuda);
    bn_cuda_rmsnorm(cuda->ctx, out, x, lookup(cuda, weight)->device, n, cols, eps);
}

static void cuda_linear(bn_backend *backend, float *y, const bn_linear *w, const float *x, int n) {
    cuda_backend *cuda = impl_of(backend);
    const bn_cuda_ternary *t = &lookup(cuda, w)->ternary;
    if (x != cuda->quant_x || n != cuda->quant_n || t->cols != cuda->quant_cols) {
        bn_cuda_quantize(cuda->ctx, cuda->q, cuda->scales, x, n, t->cols);
        cuda->quant_x = x, cuda->quant_n = n, cuda->quant_cols = t->cols;
    }
    bn_cuda_ternary_matmul(cuda->ctx, y, t, cuda->q, cuda->scales, n);
    if (y == x) activations_changed(cuda); /* forward.c never does this; stay correct if it did */
}

static void cuda_rope(bn_backend *backend, float *x, int n_heads, const int32_t *pos, int n) {
    cuda_backend *cuda = impl_of(backend);
    const bn_model_config *c = backend->config;
    activations_changed(cuda);
    if (n <= 0 || cuda->rope_half <= 0) return; /* nothing rotates */
    sync_rope_angles(cuda, pos, n);
    bn_cuda_rope_neox(cuda->ctx, x, n_heads, c->head_dim, c->rope_dim, cuda->rope_dev, n);
}

static void cuda_kv_store(bn_backend *backend, const bn_batch_view *batch, int layer, const float *k,
                          const float *v) {
    cuda_backend *cuda = impl_of(backend);
    if (batch->n <= 0) return;
    sync_entries(cuda, batch);
    bn_cuda_kv_store(cuda->ctx, cuda->entries_dev, batch->n, layer, backend->config->kv_dim,
                     batch->caches[0]->f16, k, v);
}

static void cuda_attention(bn_backend *backend, float *out, const float *q, const bn_batch_view *batch,
                           int layer) {
    cuda_backend *cuda = impl_of(backend);
    const bn_model_config *c = backend->config;
    if (batch->n <= 0) return;
    activations_changed(cuda);
    sync_entries(cuda, batch);
    int max_pos = 0;
    for (int t = 0; t < batch->n; t++)
        if (batch->pos[t] > max_pos) max_pos = batch->pos[t];
    bn_cuda_attention(cuda->ctx, out, q, cuda->entries_dev, batch->n, layer, c->n_heads, c->n_kv_heads,
                      c->head_dim, batch->caches[0]->f16, max_pos, cuda->attention_scratch);
}

static void cuda_ffn_activation(bn_backend *backend, float *out, const float *gate, const float *up,
                                size_t n_values, bn_ffn_activation activation) {
    activations_changed(impl_of(backend));
    /* SiLU's arithmetic depends on the place in the row (spec 4.1): rows of the FFN width */
    bn_cuda_ffn_activation(impl_of(backend)->ctx, out, gate, up, n_values, (size_t)backend->config->ffn_dim,
                           activation == BN_FFN_RELU2);
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
static void cuda_lm_head(bn_backend *backend, float *logits, const bn_model_weights *weights, const float *x,
                         int n) {
    cuda_backend *cuda = impl_of(backend);
    const bn_model_config *c = backend->config;
    activations_changed(cuda); /* the int8 head quantizes into the same scratch */
    for (int begin = 0; begin < n; begin += LOGIT_ROWS) {
        int count = n - begin < LOGIT_ROWS ? n - begin : LOGIT_ROWS;
        const float *xb = x + (size_t)begin * (size_t)c->dim;
        if (weights->has_int8_output) {
            const bn_int8_matrix *m = &weights->output_int8;
            bn_cuda_quantize(cuda->ctx, cuda->q, cuda->scales, xb, count, c->dim);
            bn_cuda_int8_matmul(cuda->ctx, cuda->logits, lookup(cuda, m->q)->device,
                                lookup(cuda, m->row_scales)->device, m->rows, m->cols, cuda->q, cuda->scales,
                                count);
        } else {
            bn_cuda_f16_matmul(cuda->ctx, cuda->logits, lookup(cuda, weights->output)->device, xb, c->n_vocab,
                               c->dim, count);
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
        for (size_t i = 0; i < cuda->capacity; i++) {
            bn_cuda_free(cuda->weights[i].device);
            bn_cuda_free(cuda->weights[i].device_extra);
        }
        free(cuda->weights);
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

bn_status bn_backend_cuda_create(const bn_model_config *config, const bn_model_weights *weights,
                                 bn_backend **out, bn_error *err) {
    *out = NULL;
    /* What the CUDA kernels do not implement yet: refused with the reason, never run wrong. */
    if (config->arch == BN_ARCH_LLAMA)
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "CUDA backend: the llama architecture (NORM RoPE, no sub-norms) is CPU-only for now");
    if (config->projection_type == BN_TYPE_TQ1_0 || config->projection_type == BN_TYPE_TQ2_0)
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "CUDA backend: TQ1_0 / TQ2_0 projections take Q8_K activations (spec 9.3), "
                            "not in the CUDA kernels yet; use --device cpu");
    if (!weights->token_embd || !weights->output || weights->rope_freqs || config->rope_freq_scale != 1.0f)
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
    backend->config = config;
    backend->destroy = cuda_destroy;
    cuda->config = config;
    cuda->rope_half = bn_cuda_rope_half(config->head_dim, config->rope_dim);
    /* weights: 4 norms and 7 projections per layer, 5 tables and norms; table at most half full */
    size_t needed = (size_t)config->n_layers * 11 + 8;
    cuda->capacity = 16;
    while (cuda->capacity < 2 * needed) cuda->capacity *= 2;
    cuda->weights = calloc(cuda->capacity, sizeof *cuda->weights);
    bn_status st =
        cuda->weights ? BN_OK : bn_error_set(err, BN_ERR_NOMEM, "out of memory for the CUDA weight table");
    if (st == BN_OK) st = bn_cuda_device_info(cuda->device_name, sizeof cuda->device_name, err);
    if (st == BN_OK) st = bn_cuda_context_create(&cuda->ctx, err);
    if (st == BN_OK) st = upload_weights(cuda, config, weights, err);
    if (st != BN_OK) {
        cuda_destroy(backend);
        return st;
    }
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

bn_status bn_backend_cuda_create(const bn_model_config *config, const bn_model_weights *weights,
                                 bn_backend **out, bn_error *err) {
    (void)config, (void)weights;
    *out = NULL;
    return bn_error_set(err, BN_ERR_DEVICE,
                        "this build has no CUDA backend (rebuild with nvcc installed, or use --device cpu)");
}

const char *bn_backend_cuda_device(const bn_backend *backend) {
    (void)backend;
    return NULL;
}

#endif
