/*
 * kv_cache.c: the sequence objects and what they do with their KV cache (the cache's storage is
 * backend/kv_cache.c's: made by the model's backend, device memory for a GPU backend): saving and
 * restoring rows, and the context shift. A sequence's length is the next position it accepts;
 * clearing only resets the length (stale rows are never read: attention reads rows 0..pos).
 */
#include "model/model_internal.h"

#include "kernels/ops.h"
#include "quant/quant_format.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bn_status bn_sequence_create(bn_model *model, int capacity, bn_sequence **out, bn_error *err) {
    *out = NULL;
    if (capacity < 0) return bn_error_set(err, BN_ERR_INVALID, "sequence capacity %d is negative", capacity);
    if (capacity == 0) capacity = model->config.n_ctx_train;
    bn_sequence *seq = calloc(1, sizeof *seq);
    if (!seq) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for a sequence");
    bn_status st = bn_kv_cache_init(&seq->cache, model->backend, model->config.n_layers, capacity,
                                    model->config.kv_dim, model->options.kv_type_k,
                                    model->options.kv_type_v, err);
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
    return (size_t)seq->cache.n_layers *
           (bn_kv_cache_k_bytes(&seq->cache, (size_t)n) + bn_kv_cache_v_bytes(&seq->cache, (size_t)n));
}

/* Layout of a saved state: per layer, the K bytes of rows 0..n-1, then the V bytes. */
bn_status bn_sequence_save(const bn_sequence *seq, int n, void *host, bn_error *err) {
    const bn_kv_cache *cache = &seq->cache;
    if (n < 0 || n > seq->length)
        return bn_error_set(err, BN_ERR_RANGE, "sequence save: %d positions of %d", n, seq->length);
    bn_backend *be = cache->backend;
    const size_t k_bytes = bn_kv_cache_k_bytes(cache, (size_t)n), v_bytes = bn_kv_cache_v_bytes(cache, (size_t)n);
    uint8_t *out = host;
    for (int l = 0; l < cache->n_layers && n > 0; l++) {
        bn_status st = be->to_host(be, out, bn_kv_cache_layer_k(cache, l), k_bytes, err);
        if (st == BN_OK) st = be->to_host(be, out + k_bytes, bn_kv_cache_layer_v(cache, l), v_bytes, err);
        if (st != BN_OK) return st;
        out += k_bytes + v_bytes;
    }
    return BN_OK;
}

bn_status bn_sequence_restore(bn_sequence *seq, const void *host, int n, bn_error *err) {
    bn_kv_cache *cache = &seq->cache;
    if (n < 0 || n > cache->capacity)
        return bn_error_set(err, BN_ERR_RANGE, "sequence restore: %d positions for a capacity of %d", n,
                            cache->capacity);
    bn_backend *be = cache->backend;
    const size_t k_bytes = bn_kv_cache_k_bytes(cache, (size_t)n), v_bytes = bn_kv_cache_v_bytes(cache, (size_t)n);
    const uint8_t *in = host;
    seq->length = 0; /* a failed copy leaves an empty sequence, never a half-written one */
    for (int l = 0; l < cache->n_layers && n > 0; l++) {
        bn_status st = be->from_host(be, bn_kv_cache_layer_k(cache, l), in, k_bytes, err);
        if (st == BN_OK) st = be->from_host(be, bn_kv_cache_layer_v(cache, l), in + k_bytes, v_bytes, err);
        if (st != BN_OK) return st;
        in += k_bytes + v_bytes;
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
    const size_t k_row = bn_kv_cache_k_bytes(cache, 1), v_row = bn_kv_cache_v_bytes(cache, 1);
    const size_t row_max = k_row > v_row ? k_row : v_row;
    const int half = (c->rope_dim < c->head_dim ? c->rope_dim : c->head_dim) / 2;
    uint8_t *rows = malloc(moved > 0 ? (size_t)moved * row_max : 1);
    float *k = malloc((size_t)cache->kv_dim * sizeof *k);
    float *cos_table = malloc((size_t)(half > 0 ? half : 1) * sizeof *cos_table);
    float *sin_table = malloc((size_t)(half > 0 ? half : 1) * sizeof *sin_table);
    bn_status st = BN_OK;
    if (!rows || !k || !cos_table || !sin_table)
        st = bn_error_set(err, BN_ERR_NOMEM, "context shift: out of memory for %d rows", moved);
    bn_backend *be = cache->backend;
    /* K rows hold RoPE(p) k; rotating by -n_discard makes them RoPE(p - n_discard) k. A row is
     * read back as float, rotated and stored again in its type: F16 rounds once more, as it did
     * before this existed, and a q8_0 row is dequantized, rotated and quantized again (new block
     * scales from the rotated values; llama.cpp's shift does the same through its F32 copy). */
    if (!st) bn_rope_neox_angles(cos_table, sin_table, c->head_dim, c->rope_dim, -n_discard, c->rope_base);
    for (int l = 0; l < cache->n_layers && !st && moved > 0; l++) {
        uint8_t *k_layer = bn_kv_cache_layer_k(cache, l), *v_layer = bn_kv_cache_layer_v(cache, l);
        st = be->to_host(be, rows, k_layer + (size_t)(keep + n_discard) * k_row, (size_t)moved * k_row, err);
        for (int r = 0; !st && r < moved; r++) {
            uint8_t *src = rows + (size_t)r * k_row;
            bn_kv_decode_row(k, cache->k_type, src, cache->kv_dim);
            bn_rope_neox_table(k, c->n_kv_heads, c->head_dim, c->rope_dim, cos_table, sin_table);
            bn_kv_encode_row(src, cache->k_type, k, cache->kv_dim);
        }
        if (!st) st = be->from_host(be, k_layer + (size_t)keep * k_row, rows, (size_t)moved * k_row, err);
        if (!st) st = be->to_host(be, rows, v_layer + (size_t)(keep + n_discard) * v_row, (size_t)moved * v_row, err);
        if (!st) st = be->from_host(be, v_layer + (size_t)keep * v_row, rows, (size_t)moved * v_row, err);
    }
    free(rows), free(k), free(cos_table), free(sin_table);
    if (st != BN_OK) {
        seq->length = 0; /* some layers moved, others not: nothing in it can be trusted */
        return st;
    }
    seq->length -= n_discard;
    return BN_OK;
}
