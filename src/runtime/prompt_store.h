/*
 * prompt_store.h: a bounded host-memory store of KV caches keyed by their token ids, the second
 * level of the server's prompt cache (the first is the idle slots themselves; see
 * server/engine.h). A request whose prompt starts like a stored sequence gets those positions
 * copied into its slot instead of prefilled.
 *
 * Design: entries are (ids, the KV rows of those positions as bn_sequence_save wrote them);
 * their bytes never exceed the limit given at creation: saving evicts the least recently used
 * entries first, and a sequence larger than the whole limit is not stored. A saved sequence that
 * extends a stored one replaces it; one that a stored entry already extends only refreshes that
 * entry. One thread at a time (the engine's).
 */
#ifndef BN_RUNTIME_PROMPT_STORE_H
#define BN_RUNTIME_PROMPT_STORE_H

#include "bitnet.h"
#include "model/model.h"

#include <stddef.h>
#include <stdint.h>

typedef struct bn_prompt_store bn_prompt_store;

/* limit_bytes 0 gives a store that keeps nothing. Caller frees with bn_prompt_store_free. */
bn_status bn_prompt_store_create(bn_prompt_store **out, size_t limit_bytes, bn_error *err);
void bn_prompt_store_free(bn_prompt_store *store);

/* The entry sharing the longest prefix with ids[0..n) (the most recently used among equals);
 * -1 when none shares a token. *common receives the shared length. */
int bn_prompt_store_find(const bn_prompt_store *store, const int32_t *ids, size_t n, size_t *common);

/* Stores positions [0, n) of seq under ids[0..n). Out of memory leaves the store as it was and is
 * not an error (the cache is an optimisation); a backend copy failure is. */
bn_status bn_prompt_store_save(bn_prompt_store *store, const bn_sequence *seq, const int32_t *ids,
                               size_t n, bn_error *err);

/* Copies entry `index` into seq (which then holds its positions) and marks it used; *n receives
 * how many positions that is. */
bn_status bn_prompt_store_restore(bn_prompt_store *store, int index, bn_sequence *seq, size_t *n,
                                  bn_error *err);

size_t bn_prompt_store_entries(const bn_prompt_store *store);
size_t bn_prompt_store_bytes(const bn_prompt_store *store);
size_t bn_prompt_store_limit(const bn_prompt_store *store);

/* Length of the longest common prefix of a[0..na) and b[0..nb). */
size_t bn_tokens_common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb);

#endif
