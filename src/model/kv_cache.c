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

#include "core/fp16.h"
#include "kernels/ops.h"

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

size_t bn_sequence_state_bytes(const bn_sequence *seq, int n) {
    if (n <= 0) return 0;
    return (size_t)2 * (size_t)seq->cache.n_layers * (size_t)n * (size_t)seq->cache.kv_dim *
           bn_kv_cache_element_size(&seq->cache);
}

/* Rows [first, first + n) of one layer's K or V as a byte range. */
static size_t row_bytes(const bn_kv_cache *cache, int n) {
    return (size_t)n * (size_t)cache->kv_dim * bn_kv_cache_element_size(cache);
}

bn_status bn_sequence_save(const bn_sequence *seq, int n, void *host, bn_error *err) {
    const bn_kv_cache *cache = &seq->cache;
    if (n < 0 || n > seq->length)
        return bn_error_set(err, BN_ERR_RANGE, "sequence save: %d positions of %d", n, seq->length);
    bn_backend *be = cache->backend;
    const size_t bytes = row_bytes(cache, n);
    uint8_t *out = host;
    for (int l = 0; l < cache->n_layers && n > 0; l++) {
        bn_status st = be->to_host(be, out, bn_kv_cache_layer_k(cache, l), bytes, err);
        if (st == BN_OK) st = be->to_host(be, out + bytes, bn_kv_cache_layer_v(cache, l), bytes, err);
        if (st != BN_OK) return st;
        out += 2 * bytes;
    }
    return BN_OK;
}

bn_status bn_sequence_restore(bn_sequence *seq, const void *host, int n, bn_error *err) {
    bn_kv_cache *cache = &seq->cache;
    if (n < 0 || n > cache->capacity)
        return bn_error_set(err, BN_ERR_RANGE, "sequence restore: %d positions for a capacity of %d", n,
                            cache->capacity);
    bn_backend *be = cache->backend;
    const size_t bytes = row_bytes(cache, n);
    const uint8_t *in = host;
    seq->length = 0; /* a failed copy leaves an empty sequence, never a half-written one */
    for (int l = 0; l < cache->n_layers && n > 0; l++) {
        bn_status st = be->from_host(be, bn_kv_cache_layer_k(cache, l), in, bytes, err);
        if (st == BN_OK) st = be->from_host(be, bn_kv_cache_layer_v(cache, l), in + bytes, bytes, err);
        if (st != BN_OK) return st;
        in += 2 * bytes;
    }
    seq->length = n;
    return BN_OK;
}

bn_status bn_sequence_shift(bn_sequence *seq, int keep, int n_discard, bn_error *err) {
    bn_kv_cache *cache = &seq->cache;
    const bn_model_config *c = &seq->model->config;
    if (keep < 0 || n_discard <= 0 || keep > seq->length - n_discard)
        return bn_error_set(err, BN_ERR_RANGE, "context shift: keep %d, discard %d of %d positions", keep,
                            n_discard, seq->length);
    const int moved = seq->length - keep - n_discard;
    const size_t elt = bn_kv_cache_element_size(cache);
    const size_t row = (size_t)cache->kv_dim * elt;
    const size_t bytes = (size_t)moved * row;
    const int half = (c->rope_dim < c->head_dim ? c->rope_dim : c->head_dim) / 2;
    uint8_t *rows = malloc(bytes ? bytes : 1);
    float *k = malloc((size_t)cache->kv_dim * sizeof *k);
    float *cos_table = malloc((size_t)(half > 0 ? half : 1) * sizeof *cos_table);
    float *sin_table = malloc((size_t)(half > 0 ? half : 1) * sizeof *sin_table);
    bn_status st = BN_OK;
    if (!rows || !k || !cos_table || !sin_table)
        st = bn_error_set(err, BN_ERR_NOMEM, "context shift: out of memory for %d rows", moved);
    bn_backend *be = cache->backend;
    /* K rows hold RoPE(p) k; rotating by -n_discard makes them RoPE(p - n_discard) k. */
    if (!st) bn_rope_neox_angles(cos_table, sin_table, c->head_dim, c->rope_dim, -n_discard, c->rope_base);
    for (int l = 0; l < cache->n_layers && !st && moved > 0; l++) {
        uint8_t *k_layer = bn_kv_cache_layer_k(cache, l), *v_layer = bn_kv_cache_layer_v(cache, l);
        const size_t from = (size_t)(keep + n_discard) * row, to = (size_t)keep * row;
        st = be->to_host(be, rows, k_layer + from, bytes, err);
        for (int r = 0; !st && r < moved; r++) {
            uint8_t *src = rows + (size_t)r * row;
            for (int i = 0; i < cache->kv_dim; i++)
                k[i] = cache->f16 ? bn_fp16_to_fp32(((uint16_t *)src)[i]) : ((float *)src)[i];
            bn_rope_neox_table(k, c->n_kv_heads, c->head_dim, c->rope_dim, cos_table, sin_table);
            for (int i = 0; i < cache->kv_dim; i++) {
                if (cache->f16) ((uint16_t *)src)[i] = bn_fp32_to_fp16(k[i]);
                else ((float *)src)[i] = k[i];
            }
        }
        if (!st) st = be->from_host(be, k_layer + to, rows, bytes, err);
        if (!st) st = be->to_host(be, rows, v_layer + from, bytes, err);
        if (!st) st = be->from_host(be, v_layer + to, rows, bytes, err);
    }
    free(rows), free(k), free(cos_table), free(sin_table);
    if (st != BN_OK) {
        seq->length = 0; /* some layers moved, others not: nothing in it can be trusted */
        return st;
    }
    seq->length -= n_discard;
    return BN_OK;
}
