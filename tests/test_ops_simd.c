/*
 * test_ops_simd.c: every SIMD path of the non-matmul ops (AVX2, AVX-512, NEON, NEON + dotprod; forced with
 * bn_isa_set_active when the CPU supports it) against the scalar reference (ref_ops.h) on
 * randomized shapes that are not multiples of 8/16 and on extreme values (huge, tiny, denormal,
 * +-inf, NaN). Bit-identical where the reference is a plain float formula (add, relu2_mul,
 * ReLU/ReLU^2, embedding, RoPE, batchnorm, pooling, conv1d), and for softmax and attention (F32,
 * F16 and Q8_0 caches, mixed K/V types; a Q8_0 cache also against F32 attention over its
 * dequantized rows), which
 * follow the reference formula by formula with sums and exp in double (they could differ only
 * where a double result lies within a few double ulps of a float rounding boundary, about 1e-8
 * of the values: none does in these fixed-seed inputs). Otherwise within 1e-5 relative:
 *   - rmsnorm: reductions in double on every path, so 1e-5 relative per element holds with room;
 *   - SiLU/GELU: vector exp (about 2 ulp) vs libm and double; subnormal results keep
 *     fewer bits, so an absolute FLT_MIN is added to the tolerance. GELU of very negative x has
 *     a relative error of about 3 ulp * |2y| from rounding y in float (measured 1.3e-5 at
 *     x < -5, where results are below 1e-24 |x|), so its tolerance adds 1e-20 * |x|. Measured
 *     elsewhere: SiLU 5.5e-6 (at x < -87, where exp(x) is subnormal), GELU 1.7e-6, exp 2.4e-7;
 * Also checks batch invariance and determinism on each path and that the registry counts the
 * kernel that ran. Skips (77) on a CPU without any of them.
 */
#include "core/fp16.h"
#include "kernels/cpu/ref_ops.h"
#include "kernels/cpu_features.h"
#include "kernels/ops.h"
#include "kernels/registry.h"
#include "quant/quant_format.h"
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bn_test_rng rng;
static bn_isa isa;

static uint64_t calls_of(const char *id) {
    bn_kernel_stats stats[BN_KERNEL_MAX];
    size_t n = bn_kernel_snapshot(stats, BN_KERNEL_MAX);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(stats[i].id, id)) return stats[i].calls;
    return 0;
}

/* The id of the kernel that runs for op on the current path. */
/* Whether op has a NEON kernel (the neondot path runs it; ops without one run scalar there). */
static bool has_neon(const char *op) {
    static const char *const ops[] = {"rmsnorm", "rope_neox", "relu2_mul",      "add",
                                      "embedding_f16", "softmax", "attention", "attention_q8_0",
                                      "silu_mul"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!strcmp(ops[i], op)) return true;
    return false;
}

static const char *kernel_id(const char *op, bool has_avx512) {
    static char id[64];
    bn_isa path = isa == BN_ISA_AVX512 && !has_avx512 ? BN_ISA_AVX2 : isa;
    if (path == BN_ISA_NEONDOT) path = BN_ISA_NEON;
    if (path == BN_ISA_NEON && !has_neon(op)) path = BN_ISA_SCALAR;
    snprintf(id, sizeof id, "cpu.%s.%s", op, bn_isa_name(path));
    return id;
}

static float uniform(float lo, float hi) { return lo + (hi - lo) * bn_test_rng_float(&rng); }

/* Random value with an occasional extreme: huge, tiny, denormal, zero of either sign. */
static float wild(float range) {
    switch (bn_test_rng_range(&rng, 0, 15)) {
    case 0: return uniform(-1, 1) * 1e30f;
    case 1: return uniform(-1, 1) * 1e-30f;
    case 2: return uniform(-1, 1) * 1e-40f;
    case 3: return bn_test_rng_range(&rng, 0, 1) ? 0.0f : -0.0f;
    default: return uniform(-range, range);
    }
}

/* Bitwise equal, any NaN equal to any NaN. */
static bool same(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

static bool all_same(const float *a, const float *b, size_t n, size_t *where) {
    for (size_t i = 0; i < n; i++)
        if (!same(a[i], b[i])) {
            *where = i;
            return false;
        }
    return true;
}

static bool near(float got, float want, double rel, double abs_tol) {
    if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got)) return got == want;
    return fabs((double)got - want) <= rel * fabs((double)want) + abs_tol;
}

static const int sizes[] = {1,  2,  3,  7,  8,   9,   15,  16,   17,  31,
                            33, 63, 64, 65, 100, 127, 129, 2560, 2561};
#define N_SIZES ((int)(sizeof sizes / sizeof sizes[0]))

static void test_rmsnorm(void) {
    uint64_t before = calls_of(kernel_id("rmsnorm", true));
    for (int si = 0; si < N_SIZES; si++) {
        int cols = sizes[si], tokens = (int)bn_test_rng_range(&rng, 1, 3);
        size_t n = (size_t)cols * tokens;
        float *x = malloc(n * 4), *w = malloc((size_t)cols * 4), *got = malloc(n * 4),
              *want = malloc(n * 4);
        float scale = si % 3 == 0 ? 1e30f : si % 3 == 1 ? 1e-30f : 1.0f;
        for (size_t i = 0; i < n; i++) x[i] = uniform(-2, 2) * scale;
        for (int i = 0; i < cols; i++) w[i] = uniform(-2, 2);
        bn_ref_rmsnorm(want, x, w, tokens, cols, 1e-6f);
        bn_rmsnorm(got, x, w, tokens, cols, 1e-6f);
        size_t where = 0;
        CHECKF(all_same(got, want, n, &where), "%s rmsnorm cols=%d differs at %zu", bn_isa_name(isa), cols, where);
        /* batch invariance: the last token alone gives the same bits */
        float *alone = malloc((size_t)cols * 4);
        bn_rmsnorm(alone, x + (size_t)(tokens - 1) * cols, w, 1, cols, 1e-6f);
        CHECK(memcmp(alone, got + (size_t)(tokens - 1) * cols, (size_t)cols * 4) == 0);
        free(alone);
        free(x), free(w), free(got), free(want);
    }
    CHECK(calls_of(kernel_id("rmsnorm", true)) == before + 2 * N_SIZES);
}

/* A row whose sum of squares rounds differently in lanes than in order (spec 4.1 defines the
 * order): 1 and 2^-24 first make the sum 1 + 2^-24 exactly, the midpoint between two floats, and
 * each later square t (x = 2^-26.5 rounded, t just below 2^-53, half an ulp of the sum) is lost
 * against it in order, so the mean of the 512 values rounds to even (1/512). In any lane order
 * two or more t meet before they meet the 1 (256 of them, 16 lanes or fewer), their sum survives,
 * and the mean rounds up. A SIMD path must notice (bn_rmsnorm_mean_certain) and redo the sum in
 * order: without that fallback this test fails. */
static void test_rmsnorm_order(void) {
    enum { COLS = 512 };
    static float x[COLS], w[COLS], want[COLS], got[COLS];
    x[0] = 1.0f, x[1] = 0x1p-12f;
    for (int i = 2; i < COLS; i++) x[i] = i < 258 ? 0x1.6a09e6p-27f : 0.0f;
    for (int i = 0; i < COLS; i++) w[i] = 1.0f;
    /* the premise: in order the mean is 1/512, in 16 lanes it is not */
    double in_order = 0.0, lanes[16] = {0};
    for (int i = 0; i < COLS; i++) {
        in_order += (double)(x[i] * x[i]);
        lanes[i % 16] += (double)(x[i] * x[i]);
    }
    double lane_sum = 0.0;
    for (int l = 0; l < 16; l++) lane_sum += lanes[15 - l];
    CHECKF((float)(in_order / COLS) == 0x1p-9f && (float)(lane_sum / COLS) != 0x1p-9f,
           "premise: means %a (in order) %a (lanes)", (double)(float)(in_order / COLS),
           (double)(float)(lane_sum / COLS));
    bn_ref_rmsnorm(want, x, w, 1, COLS, 0.0f);
    CHECKF(want[0] == 1.0f / sqrtf(0x1p-9f), "reference %a", (double)want[0]);
    bn_rmsnorm(got, x, w, 1, COLS, 0.0f);
    size_t where = 0;
    CHECKF(all_same(got, want, COLS, &where), "%s rmsnorm order case differs at %zu (%a, reference %a)",
           bn_isa_name(isa), where, (double)got[where], (double)want[where]);
}

static void test_rope(void) {
    const int dims[][2] = {{128, 128}, {64, 64}, {6, 4},       {34, 34},
                           {40, 18},   {3, 2},   {1030, 1030}, {16, 15}};
    const int32_t positions[] = {0, 1, 17, 4095, 131071, INT32_MAX, -5, INT32_MIN};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
        for (size_t pi = 0; pi < sizeof positions / sizeof positions[0]; pi++) {
            int head_dim = dims[di][0], rope_dim = dims[di][1],
                heads = (int)bn_test_rng_range(&rng, 1, 5);
            size_t n = (size_t)head_dim * heads;
            float *a = malloc(n * 4), *b = malloc(n * 4), *c = malloc(n * 4);
            for (size_t i = 0; i < n; i++) a[i] = b[i] = c[i] = wild(4);
            bn_ref_rope_neox(a, heads, head_dim, rope_dim, positions[pi], 500000.0f);
            bn_rope_neox(b, heads, head_dim, rope_dim, positions[pi], 500000.0f);
            size_t where = 0;
            CHECKF(all_same(b, a, n, &where), "%s rope dim %d/%d pos %d at %zu", bn_isa_name(isa),
                   head_dim, rope_dim, positions[pi], where);
            /* from a precomputed angle table (the model's path): the same bits */
            int half = (rope_dim < head_dim ? rope_dim : head_dim) / 2;
            float *cos_table = malloc((size_t)(half + 1) * 4), *sin_table = malloc((size_t)(half + 1) * 4);
            bn_rope_neox_angles(cos_table, sin_table, head_dim, rope_dim, positions[pi], 500000.0f);
            bn_rope_neox_table(c, heads, head_dim, rope_dim, cos_table, sin_table);
            CHECKF(all_same(c, a, n, &where), "%s rope table dim %d/%d pos %d at %zu",
                   bn_isa_name(isa), head_dim, rope_dim, positions[pi], where);
            free(a), free(b), free(c), free(cos_table), free(sin_table);
        }
    CHECK(calls_of(kernel_id("rope_neox", false)) >= 128);
}

static void check_softmax(const float *x, int n, const char *what) {
    float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
    memcpy(a, x, (size_t)n * 4);
    memcpy(b, x, (size_t)n * 4);
    bn_ref_softmax(a, n);
    bn_softmax(b, n);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += b[i];
    size_t where = 0;
    CHECKF(all_same(b, a, (size_t)n, &where), "%s softmax %s n=%d: differs from the reference at %zu",
           bn_isa_name(isa), what, n, where);
    CHECKF(isnan(a[0]) || fabs(sum - 1.0) < 1e-5, "%s softmax %s n=%d sum %g", bn_isa_name(isa),
           what, n, sum);
    free(a), free(b);
}

static void test_softmax(void) {
    const int ns[] = {1, 2, 5, 8, 13, 16, 17, 31, 33, 70, 1000, 4097};
    const float ranges[] = {1.0f, 30.0f, 100.0f, 1e30f};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        int n = ns[ni];
        float *x = malloc((size_t)n * 4);
        for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
            for (int i = 0; i < n; i++) x[i] = uniform(-ranges[r], ranges[r]);
            check_softmax(x, n, "uniform");
        }
        for (int i = 0; i < n; i++) x[i] = wild(50);
        check_softmax(x, n, "wild");
        for (int i = 0; i < n; i++) x[i] = uniform(-1, 1) * 1e-40f;
        check_softmax(x, n, "denormal");
        /* special inputs with the special entry in the SIMD body and in the tail */
        for (int i = 0; i < n; i++) x[i] = uniform(-3, 3);
        x[n - 1] = NAN;
        check_softmax(x, n, "nan tail");
        x[n - 1] = INFINITY;
        x[0] = INFINITY;
        check_softmax(x, n, "+inf");
        for (int i = 0; i < n; i++) x[i] = -INFINITY;
        check_softmax(x, n, "all -inf");
        x[n / 2] = 1.0f;
        check_softmax(x, n, "one finite");
        free(x);
    }
}

static void test_elementwise(void) {
    uint64_t relu2_before = calls_of(kernel_id("relu2_mul", false));
    uint64_t embedding_before = calls_of(kernel_id("embedding_f16", false));
    uint64_t silu_mul_before = calls_of(kernel_id("silu_mul", false));
    for (int si = 0; si < N_SIZES; si++) {
        int n = sizes[si];
        float *g = malloc((size_t)n * 4), *u = malloc((size_t)n * 4), *a = malloc((size_t)n * 4),
              *b = malloc((size_t)n * 4);
        for (int i = 0; i < n; i++) {
            g[i] = wild(20);
            u[i] = wild(5);
        }
        if (n > 3) g[1] = NAN, g[2] = INFINITY, g[3] = -INFINITY;
        size_t where = 0;
        bn_ref_relu2_mul(a, g, u, n);
        bn_relu2_mul(b, g, u, n);
        CHECKF(all_same(b, a, (size_t)n, &where), "%s relu2_mul n=%d at %zu", bn_isa_name(isa), n,
               where);
        memcpy(a, g, (size_t)n * 4);
        memcpy(b, g, (size_t)n * 4);
        bn_ref_add(a, u, n);
        bn_add(b, u, n);
        CHECKF(all_same(b, a, (size_t)n, &where), "%s add n=%d", bn_isa_name(isa), n);
        for (int act = BN_ACT_RELU; act <= BN_ACT_RELU2; act++) {
            bn_ref_activation_apply(a, g, n, (bn_activation)act);
            bn_activation_apply(b, g, n, (bn_activation)act);
            CHECKF(all_same(b, a, (size_t)n, &where), "%s act %d n=%d", bn_isa_name(isa), act, n);
        }
        bool ok = true;
        bn_ref_activation_apply(a, g, n, BN_ACT_SILU);
        bn_activation_apply(b, g, n, BN_ACT_SILU);
        for (int i = 0; i < n; i++) ok &= near(b[i], a[i], 1e-5, FLT_MIN);
        CHECKF(ok, "%s silu n=%d", bn_isa_name(isa), n);
        ok = true;
        bn_ref_activation_apply(a, g, n, BN_ACT_GELU);
        bn_activation_apply(b, g, n, BN_ACT_GELU);
        for (int i = 0; i < n; i++) {
            bool good = near(b[i], a[i], 1e-5, 1e-20 * fabs(g[i]) + FLT_MIN);
            ok &= good;
        }
        CHECKF(ok, "%s gelu n=%d", bn_isa_name(isa), n);
        ok = true;
        bn_ref_silu_mul(a, g, u, n);
        bn_silu_mul(b, g, u, n);
        CHECKF(all_same(b, a, (size_t)n, &where), "%s silu_mul n=%d differs at %zu", bn_isa_name(isa), n, where);
        /* embedding: every F16 bit pattern class (normals, subnormals, inf, NaN) */
        uint16_t *table = malloc((size_t)n * 3 * 2);
        for (int i = 0; i < n * 3; i++) table[i] = (uint16_t)bn_test_rng_next(&rng);
        bn_error err;
        bn_ref_embedding_row_f16(a, table + 2 * (size_t)n, n);
        CHECK_OK(bn_embedding_lookup_f16(b, table, 3, n, 2, &err), &err);
        CHECKF(all_same(b, a, (size_t)n, &where), "%s embedding n=%d", bn_isa_name(isa), n);
        free(table);
        free(g), free(u), free(a), free(b);
    }
    CHECK(calls_of(kernel_id("relu2_mul", false)) == relu2_before + N_SIZES);
    CHECK(calls_of(kernel_id("embedding_f16", false)) == embedding_before + N_SIZES);
    CHECK(calls_of(kernel_id("silu_mul", false)) == silu_mul_before + N_SIZES);
}

/* SiLU and GELU over a dense sweep through the ranges where exp under/overflows. */
static void test_activation_sweep(void) {
    enum { N = 14001 };
    float *x = malloc(N * 4), *a = malloc(N * 4), *b = malloc(N * 4);
    for (int i = 0; i < N; i++) x[i] = -110.0f + 0.01f * (float)i;
    bool ok = true;
    bn_ref_activation_apply(a, x, N, BN_ACT_SILU);
    bn_activation_apply(b, x, N, BN_ACT_SILU);
    for (int i = 0; i < N; i++) ok &= near(b[i], a[i], 1e-5, FLT_MIN);
    CHECKF(ok, "%s silu sweep", bn_isa_name(isa));
    ok = true;
    bn_ref_activation_apply(a, x, N, BN_ACT_GELU);
    bn_activation_apply(b, x, N, BN_ACT_GELU);
    for (int i = 0; i < N; i++) ok &= near(b[i], a[i], 1e-5, 1e-20 * fabs(x[i]) + FLT_MIN);
    CHECKF(ok, "%s gelu sweep", bn_isa_name(isa));
    free(x), free(a), free(b);
}

/* A cache of rows of row_len values in type from the float values x (n_rows rows), with one
 * more row whose values are all NaN (positions after pos must not be read). */
static void *make_cache(uint32_t type, const float *x, size_t n_rows, int row_len) {
    const size_t row_bytes = bn_kv_type_bytes(type, (size_t)row_len);
    uint8_t *cache = malloc((n_rows + 1) * row_bytes);
    for (size_t r = 0; r < n_rows; r++) bn_kv_encode_row(cache + r * row_bytes, type, x + r * row_len, row_len);
    uint8_t *last = cache + n_rows * row_bytes;
    if (type == BN_TYPE_Q8_0) {
        for (size_t i = 0; i < row_bytes; i++) last[i] = i % 34 == 1 ? 0x7e : 1; /* d = NaN, q = 1 */
    } else if (type == BN_TYPE_F16) {
        for (int i = 0; i < row_len; i++) ((uint16_t *)last)[i] = 0x7e00;
    } else {
        for (int i = 0; i < row_len; i++) ((float *)last)[i] = NAN;
    }
    return cache;
}

static void test_attention(void) {
    const int dims[] = {1, 5, 8, 16, 17, 33, 64, 100, 128, 130};
    const int32_t positions[] = {0, 1, 7, 16, 100, 300};
    const int groups[][2] = {{1, 1}, {4, 2}, {8, 2}, {5, 5}, {20, 5}};
    /* K/V types: as before, q8_0 (llama.cpp's -ctk/-ctv q8_0) and the mixed pairs */
    const uint32_t types[][2] = {{BN_TYPE_F32, BN_TYPE_F32},
                                 {BN_TYPE_F16, BN_TYPE_F16},
                                 {BN_TYPE_Q8_0, BN_TYPE_Q8_0},
                                 {BN_TYPE_Q8_0, BN_TYPE_F16},
                                 {BN_TYPE_F16, BN_TYPE_Q8_0}};
    uint64_t before = calls_of(kernel_id("attention", true));
    uint64_t before_q8_0 = calls_of(kernel_id("attention_q8_0", true));
    uint64_t before_scalar = calls_of("cpu.attention.scalar");
    uint64_t before_q8_0_scalar = calls_of("cpu.attention_q8_0.scalar");
    /* head sizes the SIMD kernels do not take run the reference */
    int runs = 0, scalar_runs = 0, q8_0_runs = 0, q8_0_scalar_runs = 0;
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
        for (size_t pi = 0; pi < sizeof positions / sizeof positions[0]; pi++) {
            int hd = dims[di];
            int32_t pos = positions[pi];
            int n_heads = groups[(di + pi) % 5][0], n_kv = groups[(di + pi) % 5][1];
            const int row_len = n_kv * hd;
            float qscale = (di + pi) % 3 == 0 ? 8.0f : 1.0f; /* peaky softmax sometimes */
            size_t nq = (size_t)n_heads * hd, nkv = (size_t)(pos + 1) * row_len;
            float *q = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4);
            float *a = malloc(nq * 4), *b = malloc(nq * 4), *b2 = malloc(nq * 4);
            float *scratch = malloc((size_t)(pos + 1) * 4);
            for (size_t i = 0; i < nq; i++) q[i] = uniform(-1, 1) * qscale;
            for (size_t i = 0; i < nkv; i++) k[i] = uniform(-2, 2), v[i] = uniform(-3, 3);
            for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
                const uint32_t kt = types[ti][0], vt = types[ti][1];
                const bool q8_0 = kt == BN_TYPE_Q8_0 || vt == BN_TYPE_Q8_0;
                if (row_len % bn_kv_type_block(kt) || row_len % bn_kv_type_block(vt)) continue;
                void *kc = make_cache(kt, k, (size_t)pos + 1, row_len);
                void *vc = make_cache(vt, v, (size_t)pos + 1, row_len);
                bn_ref_attention(a, q, kc, vc, kt, vt, n_heads, n_kv, hd, pos, scratch, 0, n_heads);
                bn_attention(b, q, kc, vc, kt, vt, n_heads, n_kv, hd, pos, scratch);
                bn_attention(b2, q, kc, vc, kt, vt, n_heads, n_kv, hd, pos, scratch);
                const bool simd = hd % 16 == 0 && hd <= 256;
                *(q8_0 ? (simd ? &q8_0_runs : &q8_0_scalar_runs) : (simd ? &runs : &scalar_runs)) += 2;
                size_t where = 0;
                CHECKF(all_same(b, a, nq, &where),
                       "%s attention k %u v %u hd=%d pos=%d heads=%d/%d: differs from the reference "
                       "at %zu (%.9g, reference %.9g)",
                       bn_isa_name(isa), (unsigned)kt, (unsigned)vt, hd, pos, n_heads, n_kv, where, b[where],
                       a[where]);
                CHECK(memcmp(b, b2, nq * 4) == 0); /* deterministic */
                if (kt == BN_TYPE_Q8_0 && vt == BN_TYPE_Q8_0) {
                    /* q8_0 attention is the F32 attention of the dequantized rows, bit for bit */
                    float *kd = malloc(nkv * 4), *vd = malloc(nkv * 4);
                    bn_kv_decode_row(kd, kt, kc, (int)nkv);
                    bn_kv_decode_row(vd, vt, vc, (int)nkv);
                    bn_attention(b2, q, kd, vd, BN_TYPE_F32, BN_TYPE_F32, n_heads, n_kv, hd, pos, scratch);
                    *(simd ? &runs : &scalar_runs) += 1;
                    CHECKF(all_same(b, b2, nq, &where),
                           "%s q8_0 attention hd=%d pos=%d: not the F32 attention of its values at %zu",
                           bn_isa_name(isa), hd, pos, where);
                    free(kd), free(vd);
                }
                free(kc), free(vc);
            }
            free(q), free(k), free(v), free(a), free(b), free(b2), free(scratch);
        }
    CHECK(q8_0_runs + q8_0_scalar_runs > 0);
    if (!strcmp(kernel_id("attention", true), "cpu.attention.scalar")) { /* scalar, NEON */
        CHECK(calls_of("cpu.attention.scalar") == before_scalar + (uint64_t)(runs + scalar_runs));
    } else {
        CHECK(calls_of(kernel_id("attention", true)) == before + (uint64_t)runs);
        CHECK(calls_of(kernel_id("attention_q8_0", true)) == before_q8_0 + (uint64_t)q8_0_runs);
        CHECK(calls_of("cpu.attention.scalar") == before_scalar + (uint64_t)scalar_runs);
        CHECK(calls_of("cpu.attention_q8_0.scalar") == before_q8_0_scalar + (uint64_t)q8_0_scalar_runs);
    }
}

/* Random shapes; the conv1d SIMD path must equal the scalar one bit for bit. */
static void test_conv1d(void) {
    bn_error err;
    for (int trial = 0; trial < 40; trial++) {
        bn_conv1d_shape s;
        s.in_channels = (int)bn_test_rng_range(&rng, 1, 40);
        s.kernel = (int)bn_test_rng_range(&rng, 1, 7);
        s.stride = (int)bn_test_rng_range(&rng, 1, 3);
        s.dilation = (int)bn_test_rng_range(&rng, 1, 3);
        s.padding = (int)bn_test_rng_range(&rng, 0, 4);
        s.length = (int)bn_test_rng_range(&rng, 1, 60);
        /* out_channels so the weight count is a multiple of 128 */
        int row = s.in_channels * s.kernel, oc = 1;
        while ((oc * row) % 128) oc++;
        s.out_channels = oc * (int)bn_test_rng_range(&rng, 1, 2);
        int len;
        if (bn_conv1d_output_length(&s, &len, &err) != BN_OK) continue;
        size_t nw = (size_t)s.out_channels * row, nx = (size_t)s.in_channels * s.length;
        uint8_t *w = malloc(nw / 4 + 32);
        for (size_t i = 0; i < nw / 4; i++) {
            uint8_t byte = 0;
            for (int j = 0; j < 4; j++) byte = (uint8_t)(byte << 2 | bn_test_rng_range(&rng, 0, 2));
            w[i] = byte;
        }
        float s_w = uniform(0.1f, 2.0f);
        memcpy(w + nw / 4, &s_w, 4);
        float *x = malloc(nx * 4);
        for (size_t i = 0; i < nx; i++) x[i] = uniform(-5, 5);
        if (trial % 5 == 0) x[0] = 1e30f; /* the rest quantize to 0 */
        size_t no = (size_t)s.out_channels * len;
        float *a = malloc(no * 4), *b = malloc(no * 4);
        bn_isa_set_active(BN_ISA_SCALAR);
        CHECK_OK(bn_conv1d_ternary(a, w, x, &s, &err), &err);
        bn_isa_set_active(isa);
        CHECK_OK(bn_conv1d_ternary(b, w, x, &s, &err), &err);
        size_t where = 0;
        CHECKF(all_same(b, a, no, &where), "%s conv1d trial %d at %zu", bn_isa_name(isa), trial,
               where);
        free(w), free(x), free(a), free(b);
    }
    CHECK(calls_of(kernel_id("conv1d", false)) > 0);
}

static void test_pooling(void) {
    bn_error err;
    for (int trial = 0; trial < 60; trial++) {
        bn_pool1d_shape s;
        s.channels = (int)bn_test_rng_range(&rng, 1, 4);
        s.length = (int)bn_test_rng_range(&rng, 1, 90);
        s.kernel = (int)bn_test_rng_range(&rng, 1, 9);
        s.stride = (int)bn_test_rng_range(&rng, 1, 4);
        s.padding = (int)bn_test_rng_range(&rng, 0, s.kernel - 1);
        int len;
        if (bn_pool1d_output_length(&s, &len, &err) != BN_OK) continue;
        size_t nx = (size_t)s.channels * s.length, no = (size_t)s.channels * len;
        float *x = malloc(nx * 4), *a = malloc(no * 4), *b = malloc(no * 4);
        for (size_t i = 0; i < nx; i++) x[i] = wild(10);
        if (trial % 4 == 0) x[bn_test_rng_range(&rng, 0, (int64_t)nx - 1)] = NAN;
        if (trial % 3 == 0) x[bn_test_rng_range(&rng, 0, (int64_t)nx - 1)] = -INFINITY;
        size_t where = 0;
        bn_ref_max_pool1d(a, x, &s, len);
        CHECK_OK(bn_max_pool1d(b, x, &s, &err), &err);
        CHECKF(all_same(b, a, no, &where), "%s max_pool trial %d at %zu", bn_isa_name(isa), trial,
               where);
        bn_ref_avg_pool1d(a, x, &s, len);
        CHECK_OK(bn_avg_pool1d(b, x, &s, &err), &err);
        CHECKF(all_same(b, a, no, &where), "%s avg_pool trial %d at %zu", bn_isa_name(isa), trial,
               where);
        free(x), free(a), free(b);
    }
    CHECK(calls_of(kernel_id("max_pool1d", false)) > 0);
}

static void test_batchnorm(void) {
    bn_error err;
    for (int si = 0; si < N_SIZES; si++) {
        int channels = (int)bn_test_rng_range(&rng, 1, 5), length = sizes[si];
        size_t n = (size_t)channels * length;
        float *x = malloc(n * 4), *a = malloc(n * 4), *b = malloc(n * 4);
        float mean[5], var[5], gamma[5], beta[5];
        for (int c = 0; c < channels; c++) {
            mean[c] = uniform(-1, 1);
            var[c] = uniform(0, 3);
            gamma[c] = uniform(-2, 2);
            beta[c] = uniform(-1, 1);
        }
        for (size_t i = 0; i < n; i++) x[i] = wild(4);
        bn_ref_batchnorm(a, x, mean, var, gamma, beta, channels, length, 1e-5f);
        CHECK_OK(bn_batchnorm(b, x, mean, var, gamma, beta, channels, length, 1e-5f, &err), &err);
        size_t where = 0;
        CHECKF(all_same(b, a, n, &where), "%s batchnorm length %d", bn_isa_name(isa), length);
        free(x), free(a), free(b);
    }
}

int main(void) {
    bn_test_rng_seed(&rng, 20261126);
    int tested = 0;
    for (int i = BN_ISA_AVX2; i < BN_ISA_COUNT; i++) { /* every SIMD path, x86 and NEON */
        isa = (bn_isa)i;
        if (!bn_isa_supported(isa)) {
            printf("%s not supported on this CPU: skipped\n", bn_isa_name(isa));
            continue;
        }
        tested++;
        bn_isa_set_active(isa);
        test_rmsnorm();
        test_rmsnorm_order();
        test_rope();
        test_softmax();
        test_elementwise();
        test_activation_sweep();
        test_attention();
        test_conv1d();
        test_pooling();
        test_batchnorm();
    }
    if (!tested) return 77;
    return bn_test_finish("test_ops_simd");
}
