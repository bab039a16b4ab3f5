/*
 * tuner.h: the per-machine kernel tuner. Given a model's own matrices (and the shape of its
 * head and attention), it times every variant of each kernel class (kernels/variants.h) this CPU
 * runs and finds the fastest:
 *   gemv      one token through the ternary projections, in model order;
 *   gemm_few  4 tokens through them (a decode batch);
 *   gemm      a prompt chunk (up to 64 tokens) through row slices of them;
 *   head      one token through row slices of the F16 head;
 *   attention one token over a 256-position cache of the model's head shape.
 * Units are row slices of at most a few MB walked in model order, so consecutive timings read
 * different memory (as decoding does: a layer's weights were last read a whole token ago) and a
 * large matrix never blows the budget. Candidates are interleaved within each round (rotating
 * which goes first) and repeated; a class's score is the median time per weight over the rounds.
 * Forcing (variants.h) narrows the candidates: what the forcing makes equal is measured once, and
 * a class left with one candidate is not measured. The scalar path is not a candidate where a
 * SIMD path exists (it never wins; tests force it).
 *
 * The tuner reports; bn_tune_apply binds. model/tune.h runs it at model load and caches it.
 */
#ifndef BN_KERNELS_TUNER_H
#define BN_KERNELS_TUNER_H

#include "bitnet.h"
#include "kernels/ops.h"
#include "kernels/threadpool.h"
#include "kernels/variants.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum bn_tune_mode {
    BN_TUNE_FROM_ENV = -1, /* model options: BITNET_TUNE, else quick (model/tune.h) */
    BN_TUNE_OFF = 0,   /* bind nothing: the defaults of variants.h */
    BN_TUNE_QUICK = 1, /* about 300 ms at load; a cached result when there is one */
    BN_TUNE_FULL = 2,  /* about 3 s, more repetitions; measures even when a result is cached */
} bn_tune_mode;

/* "off", "quick", "full". */
const char *bn_tune_mode_name(bn_tune_mode mode);
bn_status bn_tune_mode_parse(bn_tune_mode *out, const char *name, bn_error *err);

typedef struct bn_tune_workload {
    bn_threadpool *pool;                      /* the model's (NULL: one thread) */
    const bn_ternary_matrix *const *matrices; /* the ternary projections in model order */
    int n_matrices;
    const uint16_t *head; /* F16 LM head, head_rows x head_cols; NULL when there is none */
    int head_rows, head_cols;
    int n_heads, n_kv_heads, head_dim; /* attention shape (n_heads 0: not measured) */
    uint32_t kv_type_k, kv_type_v; /* the cache types (kernels/ops.h) */
    int prompt_tokens; /* the gemm unit's tokens (the model's ubatch, at most 64) */
} bn_tune_workload;

typedef struct bn_tune_class_result {
    int n_candidates;                                  /* 0: not measured (nothing to run) */
    bn_kernel_variant candidates[BN_KERNEL_VARIANTS_MAX];
    double ns_per_kweight[BN_KERNEL_VARIANTS_MAX];     /* median of the rounds (attention: ns per
                                                          call); 0 when not measured */
    int rounds;
    bn_kernel_variant chosen;                          /* the fastest (or the only) candidate */
} bn_tune_class_result;

typedef struct bn_tune_result {
    bn_tune_class_result classes[BN_KCLASS_COUNT];
    double elapsed_ms;
} bn_tune_result;

/* Times the candidates of every class on the workload. BN_ERR_NOMEM when the scratch for the
 * activations or the attention cache cannot be allocated (nothing is bound either way). Leaves
 * the bindings as they were. */
bn_status bn_tune_run(const bn_tune_workload *workload, bn_tune_mode mode, bn_tune_result *out,
                      bn_error *err);
/* Binds each class with at least one candidate to its chosen variant. */
void bn_tune_apply(const bn_tune_result *result);
/* The candidates bn_tune_run would time for the class on this CPU under the current forcing;
 * returns the count. */
int bn_tune_candidates(bn_kernel_class c, bn_kernel_variant *out);

#endif
