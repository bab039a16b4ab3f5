/*
 * auth.c: constant-time key comparison and token buckets (see auth.h).
 */
#include "server/auth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool bn_auth_init(bn_auth *a, const char *const *keys, size_t n_keys, double rpm, double tpm) {
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->mu, NULL);
    a->rpm = rpm, a->tpm = tpm;
    size_t n_buckets = n_keys ? n_keys : 1;
    a->keys = calloc(n_buckets, sizeof *a->keys);
    a->req = calloc(n_buckets, sizeof *a->req);
    a->tok = calloc(n_buckets, sizeof *a->tok);
    if (!a->keys || !a->req || !a->tok) return false;
    for (size_t i = 0; i < n_keys; i++) {
        if (!(a->keys[i] = strdup(keys[i]))) return false;
        a->n_keys = i + 1;
    }
    for (size_t i = 0; i < n_buckets; i++) {
        a->req[i].level = rpm, a->req[i].last_s = -1;
        a->tok[i].level = tpm, a->tok[i].last_s = -1;
    }
    return true;
}

void bn_auth_destroy(bn_auth *a) {
    for (size_t i = 0; i < a->n_keys; i++) {
        /* keys are secrets: wipe before freeing */
        volatile char *p = a->keys[i];
        for (size_t k = 0; p[k]; k++) p[k] = 0;
        free(a->keys[i]);
    }
    free(a->keys);
    free(a->req);
    free(a->tok);
    pthread_mutex_destroy(&a->mu);
}

/* Compares a (len la) with b (len lb) touching every byte of b whatever the content. */
static bool equal_ct(const char *a, size_t la, const char *b, size_t lb) {
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < lb; i++) diff |= (unsigned char)(b[i] ^ (i < la ? a[i] : 0));
    return diff == 0;
}

int bn_auth_check(const bn_auth *a, const char *authorization) {
    if (a->n_keys == 0) return 0;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) return -1;
    const char *given = authorization + 7;
    while (*given == ' ') given++;
    size_t len = strlen(given);
    int match = -1;
    for (size_t i = 0; i < a->n_keys; i++) {
        bool eq = equal_ct(given, len, a->keys[i], strlen(a->keys[i]));
        if (eq && match < 0) match = (int)i;
    }
    return match;
}

static void refill(bn_bucket *b, double per_minute, double now_s) {
    if (b->last_s >= 0) {
        b->level += (now_s - b->last_s) * per_minute / 60.0;
        if (b->level > per_minute) b->level = per_minute;
    }
    b->last_s = now_s;
}

static bool take(bn_auth *a, bn_bucket *b, double per_minute, double n, double now_s, int *retry_after) {
    if (per_minute <= 0) return true;
    pthread_mutex_lock(&a->mu);
    refill(b, per_minute, now_s);
    bool ok = b->level >= n || (n > per_minute && b->level >= per_minute);
    if (ok) {
        b->level -= n;
    } else if (retry_after) {
        double need = (n > per_minute ? per_minute : n) - b->level;
        *retry_after = (int)ceil(need * 60.0 / per_minute);
        if (*retry_after < 1) *retry_after = 1;
    }
    pthread_mutex_unlock(&a->mu);
    return ok;
}

bool bn_auth_take_request(bn_auth *a, int key, double now_s, int *retry_after) {
    return take(a, &a->req[key], a->rpm, 1, now_s, retry_after);
}

bool bn_auth_take_tokens(bn_auth *a, int key, double n, double now_s, int *retry_after) {
    return take(a, &a->tok[key], a->tpm, n, now_s, retry_after);
}

void bn_auth_refund_tokens(bn_auth *a, int key, double n, double now_s) {
    if (a->tpm <= 0 || n <= 0) return;
    pthread_mutex_lock(&a->mu);
    refill(&a->tok[key], a->tpm, now_s);
    a->tok[key].level += n;
    if (a->tok[key].level > a->tpm) a->tok[key].level = a->tpm;
    pthread_mutex_unlock(&a->mu);
}

void bn_auth_set_fail_limit(bn_auth *a, double per_minute) { a->fail_per_minute = per_minute; }

/* The client's failure bucket (created full, replacing the oldest entry when the table is full);
 * called with a->mu held. */
static bn_bucket *fail_bucket(bn_auth *a, const char *client) {
    for (size_t i = 0; i < a->n_fails; i++)
        if (!strcmp(a->fails[i].addr, client)) return &a->fails[i].bucket;
    size_t slot = a->n_fails < BN_AUTH_FAIL_CLIENTS ? a->n_fails++ : a->next_fail++ % BN_AUTH_FAIL_CLIENTS;
    bn_auth_client *c = &a->fails[slot];
    size_t n = strlen(client);
    if (n >= sizeof c->addr) n = sizeof c->addr - 1;
    memcpy(c->addr, client, n);
    c->addr[n] = '\0';
    c->bucket.level = a->fail_per_minute;
    c->bucket.last_s = -1;
    return &c->bucket;
}

bool bn_auth_fail_allowed(bn_auth *a, const char *client, double now_s, int *retry_after) {
    if (a->fail_per_minute <= 0) return true;
    pthread_mutex_lock(&a->mu);
    bn_bucket *b = fail_bucket(a, client);
    refill(b, a->fail_per_minute, now_s);
    bool ok = b->level >= 1;
    if (!ok && retry_after) {
        *retry_after = (int)ceil((1 - b->level) * 60.0 / a->fail_per_minute);
        if (*retry_after < 1) *retry_after = 1;
    }
    pthread_mutex_unlock(&a->mu);
    return ok;
}

void bn_auth_fail_record(bn_auth *a, const char *client, double now_s) {
    if (a->fail_per_minute <= 0) return;
    pthread_mutex_lock(&a->mu);
    bn_bucket *b = fail_bucket(a, client);
    refill(b, a->fail_per_minute, now_s);
    b->level = b->level >= 1 ? b->level - 1 : 0;
    pthread_mutex_unlock(&a->mu);
}
