/*
 * kv_cache.c: the KV cache storage of one sequence (backend.h): one allocation for K and one for
 * V, layer-major, rows of kv_dim values in the storage types (F16 by default, F32 or llama.cpp's
 * Q8_0 blocks on request, K and V each their own: kernels/ops.h), made by the backend (device
 * memory for a GPU backend). Rows are never read before they are written, so the memory is left
 * uninitialised and only the rows a sequence actually writes become resident. The sequences that
 * own caches are the model's (model/kv_cache.c).
 */
#include "backend/backend.h"

#include "kernels/ops.h"

#include <stdint.h>
#include <string.h>

size_t bn_kv_cache_k_bytes(const bn_kv_cache *cache, size_t n_rows) {
    return bn_kv_type_bytes(cache->k_type, n_rows * (size_t)cache->kv_dim);
}

size_t bn_kv_cache_v_bytes(const bn_kv_cache *cache, size_t n_rows) {
    return bn_kv_type_bytes(cache->v_type, n_rows * (size_t)cache->kv_dim);
}

bn_status bn_kv_cache_init(bn_kv_cache *cache, bn_backend *backend, int n_layers, int capacity,
                           int kv_dim, uint32_t k_type, uint32_t v_type, bn_error *err) {
    memset(cache, 0, sizeof *cache);
    cache->backend = backend;
    if (n_layers <= 0 || capacity <= 0 || kv_dim <= 0)
        return bn_error_set(err, BN_ERR_INVALID,
                            "KV cache: invalid size (%d layers, %d positions, %d wide)", n_layers,
                            capacity, kv_dim);
    if (!bn_kv_type_supported(k_type) || !bn_kv_type_supported(v_type) ||
        kv_dim % bn_kv_type_block(k_type) || kv_dim % bn_kv_type_block(v_type))
        return bn_error_set(err, BN_ERR_INVALID,
                            "KV cache: types %u/%u do not take rows of %d values", (unsigned)k_type,
                            (unsigned)v_type, kv_dim);
    cache->n_layers = n_layers;
    cache->capacity = capacity;
    cache->kv_dim = kv_dim;
    cache->k_type = k_type;
    cache->v_type = v_type;
    size_t rows = (size_t)n_layers * (size_t)capacity; /* both < 2^31: no overflow in size_t */
    /* 4 bytes per value bounds every type */
    if ((size_t)kv_dim > SIZE_MAX / sizeof(float) / rows)
        return bn_error_set(err, BN_ERR_NOMEM, "KV cache: size of %d x %d x %d overflows", n_layers,
                            capacity, kv_dim);
    cache->k = backend->alloc(backend, bn_kv_cache_k_bytes(cache, rows));
    cache->v = backend->alloc(backend, bn_kv_cache_v_bytes(cache, rows));
    if (!cache->k || !cache->v) {
        bn_kv_cache_release(cache);
        return bn_error_set(err, BN_ERR_NOMEM,
                            "KV cache: out of memory for %d positions x %d layers", capacity,
                            n_layers);
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
           bn_kv_cache_k_bytes(cache, (size_t)layer * (size_t)cache->capacity);
}

void *bn_kv_cache_layer_v(const bn_kv_cache *cache, int layer) {
    return (uint8_t *)cache->v +
           bn_kv_cache_v_bytes(cache, (size_t)layer * (size_t)cache->capacity);
}
