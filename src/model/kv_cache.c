/*
 * kv_cache.c: per-sequence KV caches and the sequence objects that own them.
 *
 * Design: one allocation for K and one for V per sequence, layer-major, rows of kv_dim values in
 * the storage type (F16 by default, F32 on request), made by the model's backend (device memory
 * for a GPU backend). Rows are never read before they are written, so the memory is left
 * uninitialised and only the rows a sequence actually writes become resident. A sequence's length is the next position it accepts; clearing
 * only resets the length (stale rows are never read: attention reads rows 0..pos).
 */
#include "model/backend.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t bn_kv_cache_element_size(const bn_kv_cache *cache) {
    return cache->f16 ? sizeof(uint16_t) : sizeof(float);
}

bn_status bn_kv_cache_init(bn_kv_cache *cache, bn_backend *backend, int n_layers, int capacity,
                           int kv_dim, bool f16, bn_error *err) {
    memset(cache, 0, sizeof *cache);
    cache->backend = backend;
    if (n_layers <= 0 || capacity <= 0 || kv_dim <= 0)
        return bn_error_set(err, BN_ERR_INVALID, "KV cache: invalid size (%d layers, %d positions, %d wide)",
                            n_layers, capacity, kv_dim);
    cache->n_layers = n_layers;
    cache->capacity = capacity;
    cache->kv_dim = kv_dim;
    cache->f16 = f16;
    size_t elt = bn_kv_cache_element_size(cache);
    size_t rows = (size_t)n_layers * (size_t)capacity; /* both < 2^31: no overflow in size_t */
    if ((size_t)kv_dim > SIZE_MAX / elt / rows)
        return bn_error_set(err, BN_ERR_NOMEM, "KV cache: size of %d x %d x %d overflows", n_layers,
                            capacity, kv_dim);
    cache->k = backend->alloc(backend, rows * (size_t)kv_dim * elt);
    cache->v = backend->alloc(backend, rows * (size_t)kv_dim * elt);
    if (!cache->k || !cache->v) {
        bn_kv_cache_release(cache);
        return bn_error_set(err, BN_ERR_NOMEM, "KV cache: out of memory for %d positions x %d layers",
                            capacity, n_layers);
    }
    return BN_OK;
}

void bn_kv_cache_release(bn_kv_cache *cache) {
    if (cache->k) cache->backend->release(cache->backend, cache->k);
    if (cache->v) cache->backend->release(cache->backend, cache->v);
    cache->k = cache->v = NULL;
}

void *bn_kv_cache_layer_k(const bn_kv_cache *cache, int layer) {
    return (uint8_t *)cache->k +
           (size_t)layer * (size_t)cache->capacity * (size_t)cache->kv_dim * bn_kv_cache_element_size(cache);
}

void *bn_kv_cache_layer_v(const bn_kv_cache *cache, int layer) {
    return (uint8_t *)cache->v +
           (size_t)layer * (size_t)cache->capacity * (size_t)cache->kv_dim * bn_kv_cache_element_size(cache);
}

bn_status bn_sequence_create(bn_model *model, int capacity, bn_sequence **out, bn_error *err) {
    *out = NULL;
    if (capacity < 0) return bn_error_set(err, BN_ERR_INVALID, "sequence capacity %d is negative", capacity);
    if (capacity == 0) capacity = model->config.n_ctx_train;
    bn_sequence *seq = calloc(1, sizeof *seq);
    if (!seq) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for a sequence");
    bn_status st = bn_kv_cache_init(&seq->cache, model->backend, model->config.n_layers, capacity,
                                    model->config.kv_dim, model->options.kv_f16, err);
    if (st != BN_OK) {
        free(seq);
        return st;
    }
    seq->model = model;
    seq->length = 0;
    *out = seq;
    return BN_OK;
}

void bn_sequence_free(bn_sequence *seq) {
    if (!seq) return;
    bn_kv_cache_release(&seq->cache);
    free(seq);
}

void bn_sequence_clear(bn_sequence *seq) { seq->length = 0; }

void bn_sequence_truncate(bn_sequence *seq, int length) {
    /* Rows past the new length are simply overwritten by the next decode. */
    if (length >= 0 && length < seq->length) seq->length = length;
}

int bn_sequence_length(const bn_sequence *seq) { return seq->length; }

int bn_sequence_capacity(const bn_sequence *seq) { return seq->cache.capacity; }
