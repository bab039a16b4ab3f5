/*
 * logits_compare.h: the comparison rule of spec section 8 for two logit files (position-major
 * n_pos x n_vocab float32), plus helpers the model tests share for running the `bitnet` binary.
 * Header-only (static functions) so any test can include it without a build change.
 */
#ifndef BN_TEST_LOGITS_COMPARE_H
#define BN_TEST_LOGITS_COMPARE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

typedef struct bn_logits_diff {
    double pos0_max_abs;   /* max |a - b| at position 0 */
    double pos0_max_logit; /* max |b| at position 0 */
    double min_cosine, mean_cosine;
    double max_abs;        /* over all positions */
    int argmax_agree;      /* positions whose argmax agrees */
} bn_logits_diff;

static inline int bn_logits_argmax(const float *row, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

static inline bn_logits_diff bn_logits_compare(const float *a, const float *b, int n_pos, int n_vocab) {
    bn_logits_diff d = {0, 0, 1.0, 0, 0, 0};
    for (int p = 0; p < n_pos; p++) {
        const float *ra = a + (size_t)p * n_vocab, *rb = b + (size_t)p * n_vocab;
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < n_vocab; i++) {
            double diff = fabs((double)ra[i] - (double)rb[i]);
            if (diff > d.max_abs || diff != diff) d.max_abs = diff != diff ? INFINITY : diff;
            if (p == 0) {
                if (diff > d.pos0_max_abs || diff != diff) d.pos0_max_abs = diff != diff ? INFINITY : diff;
                if (fabs(rb[i]) > d.pos0_max_logit) d.pos0_max_logit = fabs(rb[i]);
            }
            dot += (double)ra[i] * rb[i], na += (double)ra[i] * ra[i], nb += (double)rb[i] * rb[i];
        }
        double cosine = (na > 0 && nb > 0) ? dot / sqrt(na * nb) : (na == nb ? 1.0 : 0.0);
        if (!(cosine >= d.min_cosine)) d.min_cosine = cosine != cosine ? -1.0 : cosine;
        d.mean_cosine += cosine / n_pos;
        d.argmax_agree += bn_logits_argmax(ra, n_vocab) == bn_logits_argmax(rb, n_vocab);
    }
    return d;
}

static inline void bn_logits_print(const char *label, const bn_logits_diff *d, int n_pos) {
    printf("%s: pos0 max|diff| %.3g (max|logit| %.3g), min cosine %.6f, mean cosine %.6f, "
           "max|diff| %.3g, argmax agree %d/%d\n",
           label, d->pos0_max_abs, d->pos0_max_logit, d->min_cosine, d->mean_cosine, d->max_abs,
           d->argmax_agree, n_pos);
}

/* Runs a shell command line; returns its exit status (-1 when it did not exit normally). */
static inline int bn_test_run(const char *cmd) {
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc)) return -1;
    return WEXITSTATUS(rc);
}

/* The bitnet binary under test ($BITNET_BIN), or NULL. */
static inline const char *bn_test_bitnet_bin(void) {
    const char *bin = getenv("BITNET_BIN");
    return bin && *bin ? bin : NULL;
}

/* "1,2,3" for ids (caller frees). */
static inline char *bn_test_join_ids(const int *ids, int n) {
    char *s = malloc((size_t)n * 12 + 1);
    if (!s) return NULL;
    size_t used = 0;
    s[0] = 0;
    for (int i = 0; i < n; i++) used += (size_t)sprintf(s + used, "%s%d", i ? "," : "", ids[i]);
    return s;
}

#endif
