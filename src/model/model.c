/*
 * model.c: the model's life cycle (load, free, accessors) and bn_model_decode() (and its
 * hidden-state twin). The load refuses a context_length over BN_MODEL_MAX_CTX unless the caller
 * asks for a smaller context. bn_model_decode validates a whole batch before touching any state
 * and then runs it through forward.c in chunks of at most ubatch entries. Chunking cannot change results: each
 * token's computation is independent of the other tokens of its chunk, and a chunk's K/V are in
 * the caches before the next chunk reads them.
 */
#include "backend/cpu/backend_cpu.h"
#include "backend/cuda/backend_cuda.h"
#include "kernels/head.h"
#include "model/model_internal.h"
#include "quant/quant_format.h"

#include <stdlib.h>
#include <string.h>

#define BN_DEFAULT_UBATCH 512

bn_model_options bn_model_options_default(void) {
    bn_model_options options = {.n_threads = 1, .kv_type_k = BN_TYPE_F16, .kv_type_v = BN_TYPE_F16,
                                .int8_lm_head = false, .ubatch = 0,
                                .device = BN_DEVICE_CPU, .tune = BN_TUNE_FROM_ENV};
    return options;
}

bn_status bn_device_parse(bn_device *out, int *index, const char *name, bn_error *err) {
    int at = 0;
    bn_device device = BN_DEVICE_CPU;
    bool ok = name && !strcmp(name, "cpu");
    if (!ok && name && !strncmp(name, "cuda", 4)) {
        device = BN_DEVICE_CUDA;
        const char *n = name + 4;
        ok = *n == '\0';
        if (*n == ':' && n[1] >= '0' && n[1] <= '9' && strlen(n + 1) <= 2) {
            char *end = NULL;
            long v = strtol(n + 1, &end, 10);
            ok = *end == '\0' && v >= 0 && v < 64;
            at = (int)v;
        }
    }
    if (!ok) return bn_error_set(err, BN_ERR_INVALID, "device \"%s\" is not cpu, cuda or cuda:N", name ? name : "");
    *out = device;
    if (index) *index = at;
    return BN_OK;
}

const char *bn_device_name(bn_device device) { return device == BN_DEVICE_CUDA ? "cuda" : "cpu"; }

/* What the backend needs of the config and options. */
static bn_backend_config backend_config(const bn_model_config *c, const bn_model_options *o) {
    return (bn_backend_config){.n_layers = c->n_layers,
                               .n_vocab = c->n_vocab,
                               .dim = c->dim,
                               .q_dim = c->q_dim,
                               .kv_dim = c->kv_dim,
                               .ffn_dim = c->ffn_dim,
                               .n_heads = c->n_heads,
                               .n_kv_heads = c->n_kv_heads,
                               .head_dim = c->head_dim,
                               .rope_dim = c->rope_dim,
                               .rope_base = c->rope_base,
                               .rope_freq_scale = c->rope_freq_scale,
                               .rope_norm = c->rope_norm,
                               .sub_norms = c->sub_norms,
                               .ffn_silu = c->ffn_activation == BN_FFN_SILU,
                               .int8_lm_head = o->int8_lm_head};
}

bn_status bn_model_load(const char *path, const bn_model_options *options, bn_model **out,
                        bn_error *err) {
    *out = NULL;
    bn_model_options opts = options ? *options : bn_model_options_default();
    if (opts.n_threads < 1 || opts.n_threads > 1024)
        return bn_error_set(err, BN_ERR_INVALID, "thread count %d is out of range [1, 1024]", opts.n_threads);
    if (opts.n_ctx < 0)
        return bn_error_set(err, BN_ERR_INVALID, "context size %d is negative", opts.n_ctx);
    if (opts.ubatch < 0 || opts.ubatch > (1 << 20))
        return bn_error_set(err, BN_ERR_INVALID, "ubatch %d is out of range [0, %d]", opts.ubatch, 1 << 20);
    if (opts.ubatch == 0) opts.ubatch = BN_DEFAULT_UBATCH;
    if (opts.device != BN_DEVICE_CPU && opts.device != BN_DEVICE_CUDA)
        return bn_error_set(err, BN_ERR_INVALID, "device %d is not cpu or cuda", (int)opts.device);
    if (!bn_kv_type_supported(opts.kv_type_k) || !bn_kv_type_supported(opts.kv_type_v))
        return bn_error_set(err, BN_ERR_INVALID, "KV cache types %u/%u: each must be f16, f32 or q8_0",
                            (unsigned)opts.kv_type_k, (unsigned)opts.kv_type_v);

    bn_model *model = calloc(1, sizeof *model);
    if (!model) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for a model");
    model->options = opts;
    bn_status st = bn_gguf_open(path, &model->gguf, err);
    if (st == BN_OK && (st = bn_model_config_read(&model->config, model->gguf, err)) != BN_OK)
        bn_error_prefix(err, "%s: ", path);
    const int n_ctx_train = model->config.n_ctx_train;
    if (st == BN_OK && n_ctx_train > BN_MODEL_MAX_CTX && (opts.n_ctx <= 0 || opts.n_ctx > BN_MODEL_MAX_CTX))
        st = bn_error_set(err, BN_ERR_FORMAT,
                          "%s: metadata %s.context_length %d is over the limit of %d tokens (2^20); pass -c N "
                          "(context size, N <= %d) to load it with a smaller context",
                          path, model->config.arch_name, n_ctx_train, BN_MODEL_MAX_CTX, BN_MODEL_MAX_CTX);
    /* a q8_0 row is a whole number of 32-value blocks (kernels/ops.h) */
    const int kv_block = bn_kv_type_block(opts.kv_type_k) > bn_kv_type_block(opts.kv_type_v)
                             ? bn_kv_type_block(opts.kv_type_k)
                             : bn_kv_type_block(opts.kv_type_v);
    if (st == BN_OK && model->config.kv_dim % kv_block)
        st = bn_error_set(err, BN_ERR_UNSUPPORTED,
                          "%s: a q8_0 KV cache needs rows of a multiple of %d values; this model's are %d "
                          "(use -ctk/-ctv f16)",
                          path, kv_block, model->config.kv_dim);
    if (st == BN_OK && opts.n_threads > 1) st = bn_threadpool_create(opts.n_threads, &model->pool, err);
    if (st == BN_OK) {
        st = bn_model_weights_load(&model->weights, &model->config, model->gguf, &model->options, err);
        if (st != BN_OK) bn_error_prefix(err, "%s: ", path);
    }
    /* the backend builds its own copy of the weights from the file's (bind_weights) */
    const bn_backend_config bc = backend_config(&model->config, &opts);
    if (st == BN_OK && opts.device == BN_DEVICE_CUDA)
        st = bn_backend_cuda_create(&bc, opts.device_index, &model->backend, err);
    else if (st == BN_OK)
        st = bn_backend_cpu_create(&bc, model->pool, &model->backend, err);
    if (st == BN_OK && (st = model->backend->bind_weights(model->backend, &model->weights.views, err)) != BN_OK)
        bn_error_prefix(err, "%s: ", path);
    if (st == BN_OK && opts.progress) opts.progress(opts.progress_user, "tuning kernels", 0, 1);
    if (st == BN_OK) st = bn_model_tune(model, err);
    if (st == BN_OK && opts.progress) opts.progress(opts.progress_user, "tuning kernels", 1, 1);
    if (st != BN_OK) {
        bn_model_free(model);
        return st;
    }
    model->options.progress = NULL; /* the caller's reporter does not outlive the load */
    model->options.progress_user = NULL;
    *out = model;
    return BN_OK;
}

void bn_model_free(bn_model *model) {
    if (!model) return;
    if (model->backend) {
        bn_forward_state_release(&model->state, model->backend);
        model->backend->destroy(model->backend);
    }
    bn_model_weights_release(&model->weights);
    bn_threadpool_free(model->pool);
    bn_gguf_close(model->gguf);
    free(model);
}

const bn_model_config *bn_model_get_config(const bn_model *model) { return &model->config; }
const bn_model_options *bn_model_get_options(const bn_model *model) { return &model->options; }

bn_status bn_model_set_observer(bn_model *model, bn_tensor_observer fn, void *context,
                                bn_error *err) {
    if (fn && strcmp(model->backend->name, "cpu") != 0)
        return bn_error_set(err, BN_ERR_INVALID,
                            "intermediate results can be observed on the CPU backend only (not %s)",
                            model->backend->name);
    model->observer = fn;
    model->observer_context = context;
    return BN_OK;
}
const bn_gguf *bn_model_get_gguf(const bn_model *model) { return model->gguf; }
const char *bn_model_backend_name(const bn_model *model) { return model->backend->name; }
const char *bn_model_gpu_name(const bn_model *model) { return bn_backend_cuda_device(model->backend); }

uint64_t bn_model_bytes_per_token(const bn_model *model) {
    uint64_t bytes = 0;
    const bn_gguf *g = model->gguf;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const bn_gguf_tensor *t = &g->tensors[i];
        if (!strncmp(t->name.data, "blk.", t->name.len < 4 ? t->name.len : 4) &&
            t->ne[1] > 1) /* projections; norms and scales are vectors */
            bytes += t->size;
    }
    const bn_model_config *c = &model->config;
    bytes += model->options.int8_lm_head
                 ? (uint64_t)c->n_vocab * ((uint64_t)c->dim + sizeof(float))
                 : (uint64_t)c->n_vocab * bn_head_row_bytes(c->head_type, c->dim);
    return bytes;
}

/* Checks every entry against its sequence (walking positions with seq->next); changes nothing
 * observable. */
static bn_status validate_batch(const bn_model *model, const bn_batch_entry *entries, int n,
                                const float *out, bn_error *err) {
    for (int i = 0; i < n; i++) {
        bn_sequence *seq = entries[i].seq;
        if (!seq) return bn_error_set(err, BN_ERR_INVALID, "batch entry %d: no sequence", i);
        if (seq->model != model)
            return bn_error_set(err, BN_ERR_INVALID, "batch entry %d: the sequence belongs to another model", i);
        seq->next = seq->length;
    }
    for (int i = 0; i < n; i++) {
        const bn_batch_entry *e = &entries[i];
        bn_sequence *seq = e->seq;
        if (e->token < 0 || e->token >= model->config.n_vocab)
            return bn_error_set(err, BN_ERR_RANGE, "batch entry %d: token id %d is outside the vocabulary [0, %d)",
                                i, e->token, model->config.n_vocab);
        if (e->pos >= seq->cache.capacity)
            return bn_error_set(err, BN_ERR_RANGE,
                                "batch entry %d: context full: position %d >= sequence capacity %d", i,
                                e->pos, seq->cache.capacity);
        if (e->pos != seq->next)
            return bn_error_set(err, BN_ERR_INVALID,
                                "batch entry %d: position %d, expected %d (the sequence's next position)",
                                i, e->pos, seq->next);
        seq->next++;
        if (e->want_logits && !out)
            return bn_error_set(err, BN_ERR_INVALID, "batch entry %d wants output but no output buffer was given", i);
    }
    return BN_OK;
}

/* One step for bn_model_decode (logits_out) or bn_model_decode_hidden (hidden_out, logits_out
 * NULL): rows of n_vocab or dim floats per entry that wants output. */
static bn_status decode(bn_model *model, const bn_batch_entry *entries, int n, float *logits_out,
                        float *hidden_out, bn_error *err) {
    if (n < 0 || (n > 0 && !entries))
        return bn_error_set(err, BN_ERR_INVALID, "invalid batch (%d entries)", n);
    bn_status st = validate_batch(model, entries, n, logits_out ? logits_out : hidden_out, err);
    if (st != BN_OK) return st;

    float *out = logits_out ? logits_out : hidden_out;
    size_t row = (size_t)(logits_out ? model->config.n_vocab : model->config.dim);
    for (int begin = 0; begin < n; begin += model->options.ubatch) {
        int count = n - begin < model->options.ubatch ? n - begin : model->options.ubatch;
        st = bn_model_forward(model, entries + begin, count, logits_out ? out : NULL, logits_out ? NULL : out, err);
        if (st != BN_OK) return st;
        for (int i = begin; i < begin + count; i++)
            if (entries[i].want_logits) out += row;
    }
    for (int i = 0; i < n; i++) entries[i].seq->length = entries[i].seq->next;
    return BN_OK;
}

bn_status bn_model_decode(bn_model *model, const bn_batch_entry *entries, int n, float *logits_out,
                          bn_error *err) {
    return decode(model, entries, n, logits_out, NULL, err);
}

bn_status bn_model_decode_hidden(bn_model *model, const bn_batch_entry *entries, int n, float *hidden_out,
                                 bn_error *err) {
    return decode(model, entries, n, NULL, hidden_out, err);
}
