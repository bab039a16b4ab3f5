/*
 * model.c: the model's life cycle (load, free, accessors) and bn_model_decode() (and its
 * hidden-state twin). The load refuses a context_length over BN_MODEL_MAX_CTX unless the caller
 * asks for a smaller context. bn_model_decode validates a whole batch before touching any state
 * and then runs it through forward.c in chunks of at most ubatch entries. Chunking cannot change results: each
 * token's computation is independent of the other tokens of its chunk, and a chunk's K/V are in
 * the caches before the next chunk reads them.
 */
#include "model/backend.h"

#include <stdlib.h>
#include <string.h>

#define BN_DEFAULT_UBATCH 512

bn_model_options bn_model_options_default(void) {
    bn_model_options options = {.n_threads = 1, .kv_f16 = true, .int8_lm_head = false, .ubatch = 0,
                                .device = BN_DEVICE_CPU, .tune = BN_TUNE_FROM_ENV};
    return options;
}

bn_status bn_device_parse(bn_device *out, const char *name, bn_error *err) {
    if (name && !strcmp(name, "cpu")) {
        *out = BN_DEVICE_CPU;
        return BN_OK;
    }
    if (name && !strcmp(name, "cuda")) {
        *out = BN_DEVICE_CUDA;
        return BN_OK;
    }
    return bn_error_set(err, BN_ERR_INVALID, "device \"%s\" is not cpu or cuda", name ? name : "");
}

const char *bn_device_name(bn_device device) { return device == BN_DEVICE_CUDA ? "cuda" : "cpu"; }

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
    if (st == BN_OK && opts.n_threads > 1) st = bn_threadpool_create(opts.n_threads, &model->pool, err);
    if (st == BN_OK) {
        st = bn_model_weights_load(&model->weights, &model->config, model->gguf, &model->options,
                                   model->pool, err);
        if (st != BN_OK) {
            bn_error_prefix(err, "%s: ", path);
            model->config.n_layers = 0;
        }
    }
    if (st == BN_OK && opts.device == BN_DEVICE_CUDA)
        st = bn_backend_cuda_create(&model->config, &model->weights, &model->backend, err);
    else if (st == BN_OK)
        st = bn_backend_cpu_create(&model->config, &model->weights, model->pool, &model->backend, err);
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
    if (model->weights.layers) bn_model_weights_release(&model->weights, model->config.n_layers);
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
    const bn_head_matrix *head = &model->weights.head;
    bytes += model->weights.has_int8_output
                 ? (uint64_t)c->n_vocab * ((uint64_t)c->dim + sizeof(float))
                 : (uint64_t)head->rows * bn_head_row_bytes(head->type, head->cols);
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
