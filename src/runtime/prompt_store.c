/*
 * prompt_store.c: the LRU store of saved KV caches (see prompt_store.h).
 */
#include "runtime/prompt_store.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    int32_t *ids;
    size_t n;
    void *kv;
    size_t bytes;
    uint64_t used; /* tick of the last save or restore */
} entry;

struct bn_prompt_store {
    entry *entries;
    size_t n_entries, cap;
    size_t bytes, limit;
    uint64_t tick;
};

size_t bn_tokens_common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

bn_status bn_prompt_store_create(bn_prompt_store **out, size_t limit_bytes, bn_error *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for the prompt store");
    (*out)->limit = limit_bytes;
    return BN_OK;
}

static void drop(bn_prompt_store *store, size_t i) {
    entry *e = &store->entries[i];
    store->bytes -= e->bytes;
    free(e->ids);
    free(e->kv);
    store->entries[i] = store->entries[--store->n_entries];
}

void bn_prompt_store_free(bn_prompt_store *store) {
    if (!store) return;
    while (store->n_entries) drop(store, store->n_entries - 1);
    free(store->entries);
    free(store);
}

int bn_prompt_store_find(const bn_prompt_store *store, const int32_t *ids, size_t n, size_t *common) {
    int best = -1;
    *common = 0;
    for (size_t i = 0; i < store->n_entries; i++) {
        const entry *e = &store->entries[i];
        size_t c = bn_tokens_common_prefix(e->ids, e->n, ids, n);
        if (c > *common || (c == *common && c > 0 && best >= 0 && e->used > store->entries[best].used)) {
            *common = c;
            best = (int)i;
        }
    }
    return best;
}

bn_status bn_prompt_store_save(bn_prompt_store *store, const bn_sequence *seq, const int32_t *ids,
                               size_t n, bn_error *err) {
    if (n == 0) return BN_OK;
    const size_t bytes = bn_sequence_state_bytes(seq, (int)n);
    if (bytes > store->limit) return BN_OK;
    for (size_t i = 0; i < store->n_entries;) {
        entry *e = &store->entries[i];
        size_t c = bn_tokens_common_prefix(e->ids, e->n, ids, n);
        if (c == n) { /* already stored, as this or a longer sequence */
            e->used = ++store->tick;
            return BN_OK;
        }
        if (c == e->n) drop(store, i); /* the new sequence extends it */
        else i++;
    }
    while (store->bytes + bytes > store->limit && store->n_entries) {
        size_t oldest = 0;
        for (size_t i = 1; i < store->n_entries; i++)
            if (store->entries[i].used < store->entries[oldest].used) oldest = i;
        drop(store, oldest);
    }
    if (store->n_entries == store->cap) {
        size_t cap = store->cap ? store->cap * 2 : 8;
        entry *grown = realloc(store->entries, cap * sizeof *grown);
        if (!grown) return BN_OK;
        store->entries = grown;
        store->cap = cap;
    }
    entry e = {malloc(n * sizeof *e.ids), n, malloc(bytes), bytes, ++store->tick};
    if (!e.ids || !e.kv) {
        free(e.ids);
        free(e.kv);
        return BN_OK;
    }
    memcpy(e.ids, ids, n * sizeof *ids);
    bn_status st = bn_sequence_save(seq, (int)n, e.kv, err);
    if (st != BN_OK) {
        free(e.ids);
        free(e.kv);
        return st;
    }
    store->entries[store->n_entries++] = e;
    store->bytes += bytes;
    return BN_OK;
}

bn_status bn_prompt_store_restore(bn_prompt_store *store, int index, bn_sequence *seq, size_t *n,
                                  bn_error *err) {
    *n = 0;
    if (index < 0 || (size_t)index >= store->n_entries)
        return bn_error_set(err, BN_ERR_RANGE, "prompt store: no entry %d", index);
    entry *e = &store->entries[index];
    if (e->n > (size_t)bn_sequence_capacity(seq) || bn_sequence_state_bytes(seq, (int)e->n) != e->bytes)
        return bn_error_set(err, BN_ERR_INVALID, "prompt store: entry %d does not fit this sequence", index);
    bn_status st = bn_sequence_restore(seq, e->kv, (int)e->n, err);
    if (st != BN_OK) return st;
    e->used = ++store->tick;
    *n = e->n;
    return BN_OK;
}

size_t bn_prompt_store_entries(const bn_prompt_store *store) { return store->n_entries; }
size_t bn_prompt_store_bytes(const bn_prompt_store *store) { return store->bytes; }
size_t bn_prompt_store_limit(const bn_prompt_store *store) { return store->limit; }
