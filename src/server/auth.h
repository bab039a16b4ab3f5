/*
 * auth.h: API keys (Bearer tokens, compared in constant time) and per-key rate limits (token
 * buckets for requests per minute and tokens per minute).
 *
 * Design: a bucket holds up to one minute's allowance and refills continuously; a request takes
 * one request-token, and its prompt tokens plus max_tokens are taken from the token bucket when
 * it is admitted (the unused part is given back when it ends). A bucket that cannot pay says how
 * many seconds until it can (Retry-After). Keys are never copied into logs; buckets are keyed by
 * the index of the key that matched (or one shared bucket when no keys are configured).
 *
 * Failed authentications are limited per client address (a bucket of fail_per_minute failures
 * per client, for the BN_AUTH_FAIL_CLIENTS most recently failing clients), so keys cannot be
 * guessed at line rate.
 */
#ifndef BN_SERVER_AUTH_H
#define BN_SERVER_AUTH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct bn_bucket {
    double level;
    double last_s;
} bn_bucket;

#define BN_AUTH_FAIL_CLIENTS 256

typedef struct bn_auth_client {
    char addr[64];
    bn_bucket bucket;
} bn_auth_client;

typedef struct bn_auth {
    char **keys; /* owned copies */
    size_t n_keys;
    double rpm, tpm; /* 0: unlimited */
    pthread_mutex_t mu;
    bn_bucket *req, *tok; /* n_keys (or 1) buckets each */
    double fail_per_minute; /* <= 0: failures unlimited */
    bn_auth_client fails[BN_AUTH_FAIL_CLIENTS];
    size_t n_fails, next_fail; /* next_fail: the slot reused when the table is full (round robin) */
} bn_auth;

/* Copies keys. false on out-of-memory. */
bool bn_auth_init(bn_auth *a, const char *const *keys, size_t n_keys, double rpm, double tpm);
void bn_auth_destroy(bn_auth *a);

/* Checks an Authorization header value ("Bearer KEY"; may be NULL). Returns the matching key's
 * index (0 when no keys are configured) or -1. Every configured key is compared in full, in
 * constant time for keys of equal length. */
int bn_auth_check(const bn_auth *a, const char *authorization);

/* Takes one request from the key's bucket; false and *retry_after (seconds) when empty. */
bool bn_auth_take_request(bn_auth *a, int key, double now_s, int *retry_after);
/* Takes n tokens; false and *retry_after when the bucket cannot pay (a request larger than the
 * whole minute's allowance is admitted when the bucket is full). */
bool bn_auth_take_tokens(bn_auth *a, int key, double n, double now_s, int *retry_after);
/* Failed authentications: allowed says whether client may try again (false and *retry_after when
 * its bucket is empty); record takes one failure from its bucket. */
void bn_auth_set_fail_limit(bn_auth *a, double per_minute);
bool bn_auth_fail_allowed(bn_auth *a, const char *client, double now_s, int *retry_after);
void bn_auth_fail_record(bn_auth *a, const char *client, double now_s);
/* Gives back tokens reserved but not used. */
void bn_auth_refund_tokens(bn_auth *a, int key, double n, double now_s);

#endif
