/*
 * test_tuner.c: kernel classes and variants (kernels/variants.h), the tuner (kernels/tuner.h) and
 * the per-thread scratch (kernels/scratch.h).
 *   - every variant of every class this CPU lists has a name that parses back to it; names of
 *     other classes' knobs, unknown names and (where the CPU lacks them) unsupported ones fail
 *     with the right code;
 *   - a binding is what dispatch runs until unbound; forcing the path (bn_isa_set_active) wins
 *     over a binding (checked last: the forcing stays for the process);
 *   - the tuner on a small set of matrices, a head and an attention shape: every measured class
 *     chose one of its candidates after at least 3 rounds with positive timings, the scalar path
 *     is not a candidate where SIMD exists, and the bindings are as before the run; off measures
 *     nothing; bn_tune_apply binds the choice;
 *   - scratch: 64-byte aligned, grows, is kept, and reserve reports its size.
 */
#include "core/fp16.h"
#include "kernels/cpu_features.h"
#include "kernels/ops.h"
#include "kernels/scratch.h"
#include "kernels/tuner.h"
#include "kernels/variants.h"
#include "quant/quant_format.h"
#include "quant/ternary.h"
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_names(void) {
    for (int c = 0; c < BN_KCLASS_COUNT; c++) {
        bn_kernel_variant list[BN_KERNEL_VARIANTS_MAX];
        const int n = bn_kernel_variants((bn_kernel_class)c, list);
        CHECKF(n >= 1 && n <= BN_KERNEL_VARIANTS_MAX, "class %d: %d variants", c, n);
        CHECK(list[0].isa == BN_ISA_SCALAR);
        for (int i = 0; i < n; i++) {
            char name[BN_KERNEL_VARIANT_NAME_MAX];
            bn_kernel_variant_name(list[i], (bn_kernel_class)c, name, sizeof name);
            bn_kernel_variant back;
            bn_error err;
            CHECK_OK(bn_kernel_variant_parse(&back, name, (bn_kernel_class)c, &err), &err);
            CHECKF(bn_kernel_variant_equal(back, list[i]), "%s %s does not parse back",
                   bn_kernel_class_name((bn_kernel_class)c), name);
            for (int j = 0; j < i; j++) CHECKF(!bn_kernel_variant_equal(list[j], list[i]), "%s listed twice", name);
        }
    }
    bn_error err;
    bn_kernel_variant v;
    CHECK(bn_kernel_variant_parse(&v, "avx512.t0.gfni", BN_KCLASS_HEAD, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "unknown head variant 'avx512.t0.gfni'");
    CHECK(bn_kernel_variant_parse(&v, "avx512.t0", BN_KCLASS_GEMM, &err) == BN_ERR_INVALID);
    CHECK(bn_kernel_variant_parse(&v, "avx3", BN_KCLASS_GEMV, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "avx512.t0|nta|none[.gfni]");
    if (!bn_isa_supported(BN_ISA_AVX512)) {
        CHECK(bn_kernel_variant_parse(&v, "avx512.nta", BN_KCLASS_GEMV, &err) == BN_ERR_UNSUPPORTED);
        CHECK_STR_CONTAINS(err.message, "cannot run");
    }
    CHECK(!strcmp(bn_kernel_class_name(bn_kernel_class_of_tokens(1)), "gemv"));
    CHECK(bn_kernel_class_of_tokens(BN_KCLASS_FEW_TOKENS_MAX) == BN_KCLASS_GEMM_FEW);
    CHECK(bn_kernel_class_of_tokens(BN_KCLASS_FEW_TOKENS_MAX + 1) == BN_KCLASS_GEMM);
}

static void test_binding(void) {
    bn_kernel_unbind_all();
    const bn_kernel_variant before = bn_kernel_variant_of(BN_KCLASS_GEMV);
    CHECK(before.isa == bn_isa_active());
    CHECK(before.prefetch == BN_PREFETCH_T0);
    bn_kernel_variant list[BN_KERNEL_VARIANTS_MAX];
    const int n = bn_kernel_variants(BN_KCLASS_GEMV, list);
    for (int i = 0; i < n; i++) {
        bn_kernel_bind(BN_KCLASS_GEMV, list[i]);
        CHECK(bn_kernel_variant_equal(bn_kernel_variant_of(BN_KCLASS_GEMV), list[i]));
        bn_kernel_variant bound;
        CHECK(bn_kernel_bound(BN_KCLASS_GEMV, &bound) && bn_kernel_variant_equal(bound, list[i]));
        /* other classes stay unbound */
        CHECK(!bn_kernel_bound(BN_KCLASS_HEAD, &bound));
    }
    bn_kernel_unbind(BN_KCLASS_GEMV);
    CHECK(bn_kernel_variant_equal(bn_kernel_variant_of(BN_KCLASS_GEMV), before));
    /* knobs a class does not have are normalized away */
    bn_kernel_bind(BN_KCLASS_ATTENTION, (bn_kernel_variant){.isa = bn_isa_best_supported(), .prefetch = BN_PREFETCH_NTA, .gfni = true});
    const bn_kernel_variant att = bn_kernel_variant_of(BN_KCLASS_ATTENTION);
    CHECK(att.prefetch == BN_PREFETCH_T0 && !att.gfni);
    bn_kernel_unbind_all();
}

/* A few I2_S matrices, an F16 head and an attention shape: the tuner's workload. */
static void test_tuner_runs(void) {
    enum { N = 4 };
    const int shapes[N][2] = {{256, 512}, {512, 256}, {96, 512}, {256, 768}};
    bn_ternary_matrix m[N];
    const bn_ternary_matrix *list[N];
    void *packed[N];
    bn_error err;
    uint32_t seed = 7;
    for (int i = 0; i < N; i++) {
        const size_t n = (size_t)shapes[i][0] * (size_t)shapes[i][1];
        int8_t *values = malloc(n);
        for (size_t k = 0; k < n; k++) {
            seed = seed * 1103515245u + 12345u;
            values[k] = (int8_t)((seed >> 16) % 3) - 1;
        }
        size_t bytes;
        CHECK_OK(bn_ternary_bytes(&bytes, BN_TYPE_I2_S, n, &err), &err);
        packed[i] = malloc(bytes);
        CHECK_OK(bn_ternary_pack(packed[i], BN_TYPE_I2_S, values, n, 0.5f, NULL, &err), &err);
        CHECK_OK(bn_ternary_matrix_prepare(&m[i], "t.weight", BN_TYPE_I2_S, shapes[i][0], shapes[i][1], packed[i], &err), &err);
        list[i] = &m[i];
        free(values);
    }
    const int head_rows = 1000, head_cols = 256;
    uint16_t *head = malloc((size_t)head_rows * head_cols * sizeof *head);
    for (int i = 0; i < head_rows * head_cols; i++) head[i] = bn_fp32_to_fp16((float)(i % 17) * 0.01f);
    bn_threadpool *pool = NULL;
    CHECK_OK(bn_threadpool_create(2, &pool, &err), &err);
    bn_tune_workload w = {.pool = pool, .matrices = list, .n_matrices = N, .head = head,
                          .head_rows = head_rows, .head_cols = head_cols, .n_heads = 4,
                          .n_kv_heads = 2, .head_dim = 64, .kv_type_k = BN_TYPE_F16,
                          .kv_type_v = BN_TYPE_F16, .prompt_tokens = 16};
    bn_kernel_unbind_all();
    bn_kernel_bind(BN_KCLASS_GEMM, (bn_kernel_variant){.isa = BN_ISA_SCALAR});
    bn_tune_result r;
    CHECK_OK(bn_tune_run(&w, BN_TUNE_QUICK, &r, &err), &err);
    printf("tuner: %.1f ms\n", r.elapsed_ms);
    CHECK(r.elapsed_ms > 0);
    for (int c = 0; c < BN_KCLASS_COUNT; c++) {
        const bn_tune_class_result *cr = &r.classes[c];
        bn_kernel_variant expected[BN_KERNEL_VARIANTS_MAX];
        const int n = bn_tune_candidates((bn_kernel_class)c, expected);
        CHECKF(cr->n_candidates == n, "class %s: %d candidates, expected %d",
               bn_kernel_class_name((bn_kernel_class)c), cr->n_candidates, n);
        bool chosen_listed = false;
        for (int i = 0; i < cr->n_candidates; i++) {
            chosen_listed |= bn_kernel_variant_equal(cr->chosen, cr->candidates[i]);
            if (bn_isa_supported(BN_ISA_AVX2)) CHECK(cr->candidates[i].isa != BN_ISA_SCALAR);
            if (cr->n_candidates > 1) CHECKF(cr->ns_per_kweight[i] > 0, "class %d candidate %d: no timing", c, i);
        }
        CHECK(chosen_listed);
        if (cr->n_candidates > 1) CHECKF(cr->rounds >= 3, "class %d: %d rounds", c, cr->rounds);
    }
    /* the bindings are as they were */
    bn_kernel_variant bound;
    CHECK(bn_kernel_bound(BN_KCLASS_GEMM, &bound) && bound.isa == BN_ISA_SCALAR);
    CHECK(!bn_kernel_bound(BN_KCLASS_GEMV, &bound));
    bn_tune_apply(&r);
    for (int c = 0; c < BN_KCLASS_COUNT; c++)
        CHECK(bn_kernel_variant_equal(bn_kernel_variant_of((bn_kernel_class)c), r.classes[c].chosen));
    bn_kernel_unbind_all();
    /* off measures nothing */
    CHECK_OK(bn_tune_run(&w, BN_TUNE_OFF, &r, &err), &err);
    for (int c = 0; c < BN_KCLASS_COUNT; c++) CHECK(r.classes[c].n_candidates == 0);
    bn_tune_mode mode;
    CHECK(bn_tune_mode_parse(&mode, "full", &err) == BN_OK && mode == BN_TUNE_FULL);
    CHECK(bn_tune_mode_parse(&mode, "fast", &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "'fast' is not off, quick or full");
    bn_threadpool_free(pool);
    free(head);
    for (int i = 0; i < N; i++) {
        bn_ternary_matrix_release(&m[i]);
        free(packed[i]);
    }
}

static void test_forcing_wins(void) {
    bn_kernel_variant list[BN_KERNEL_VARIANTS_MAX];
    const int n = bn_kernel_variants(BN_KCLASS_GEMV, list);
    bn_kernel_bind(BN_KCLASS_GEMV, list[n - 1]);
    bn_isa_set_active(BN_ISA_SCALAR);
    CHECK(bn_isa_forced());
    CHECK(bn_kernel_variant_of(BN_KCLASS_GEMV).isa == BN_ISA_SCALAR);
    /* with the path forced, the tuner's candidates collapse to that path */
    bn_kernel_variant candidates[BN_KERNEL_VARIANTS_MAX];
    CHECK(bn_tune_candidates(BN_KCLASS_GEMM, candidates) == 1 && candidates[0].isa == BN_ISA_SCALAR);
    bn_kernel_unbind_all();
}

static void test_scratch(void) {
    bn_error err;
    void *a = bn_thread_scratch(BN_SCRATCH_ACTIVATIONS, 100);
    CHECK(a != NULL && (uintptr_t)a % 64 == 0);
    CHECK(bn_thread_scratch(BN_SCRATCH_ACTIVATIONS, 64) == a); /* kept: no smaller copy */
    CHECK_OK(bn_thread_scratch_reserve(BN_SCRATCH_ACTIVATIONS, 1 << 20, &err), &err);
    CHECK(bn_thread_scratch_size(BN_SCRATCH_ACTIVATIONS) >= (1u << 20));
    void *b = bn_thread_scratch(BN_SCRATCH_ACTIVATIONS, 1000);
    CHECK(b != NULL && (uintptr_t)b % 64 == 0);
    memset(b, 1, 1 << 20);
    CHECK(bn_thread_scratch(BN_SCRATCH_BLOCK_SUMS, 8) != b);
    CHECK(bn_thread_scratch(BN_SCRATCH_SLOTS, 8) == NULL);
    CHECK(bn_thread_scratch_reserve(BN_SCRATCH_ACTIVATIONS, SIZE_MAX, &err) == BN_ERR_NOMEM);
    CHECK_STR_CONTAINS(err.message, "cannot reserve");
}

int main(void) {
    test_names();
    test_binding();
    test_tuner_runs();
    test_scratch();
    test_forcing_wins();
    return bn_test_finish("test_tuner");
}
