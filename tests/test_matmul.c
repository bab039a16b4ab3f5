/*
 * test_matmul.c: every ISA path of the matrix ops in kernels/ops.h against the scalar references
 * (kernels/cpu/ref_matmul.h): activation quantization (identical int8 values, half-to-even),
 * ternary I2_S/TQ2_0/TQ1_0 GEMV and GEMM, F16 and int8 matmul. Outputs must be bit-identical
 * (memcmp) to the reference on randomized shapes (block boundaries, odd row counts, 1..9 and 64
 * tokens, 1..4 threads) and extreme values; results per token must not depend on the batch; I2_S
 * equals a naive integer dot, and TQ2_0 / TQ1_0 (Q8_K activations, spec 9.3) equal each other and
 * an emulation of llama.cpp's AVX2 lane arithmetic written here from the ternary values; integer
 * results are exact; and the registry counts the kernel that ran.
 */
#include "core/fp16.h"
#include "kernels/cpu/ref_matmul.h"
#include "kernels/cpu_features.h"
#include "kernels/variants.h"
#include "kernels/ops.h"
#include "kernels/registry.h"
#include "quant/quant_format.h"
#include "quant/ternary.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bn_test_rng rng;
static bn_threadpool *pools[5]; /* index = thread count; pools[1] = NULL (caller thread) */

static float rand_float(float range) { return (bn_test_rng_float(&rng) * 2.0f - 1.0f) * range; }

static bool has_kernel(const char *id) {
    bn_kernel_stats stats[BN_KERNEL_MAX];
    size_t n = bn_kernel_snapshot(stats, BN_KERNEL_MAX);
    for (size_t i = 0; i < n; i++)
        if (strcmp(stats[i].id, id) == 0 && stats[i].calls > 0) return true;
    return false;
}

/* ---- activation quantization ---- */

static void check_quantize(const float *x, int n_tokens, int cols, const char *what) {
    size_t n = (size_t)n_tokens * cols;
    int8_t *q_ref = malloc(n), *q = malloc(n);
    float s_ref[64], s[64];
    int32_t sum_ref[64], sum[64];
    bn_ref_quantize_activations(q_ref, s_ref, sum_ref, x, n_tokens, cols);
    bn_quantize_activations(q, s, sum, x, n_tokens, cols);
    CHECKF(memcmp(q, q_ref, n) == 0, "%s isa %s cols %d: int8 values differ", what,
           bn_isa_name(bn_isa_active()), cols);
    CHECKF(memcmp(s, s_ref, (size_t)n_tokens * sizeof *s) == 0, "%s: scales differ", what);
    CHECKF(memcmp(sum, sum_ref, (size_t)n_tokens * sizeof *sum) == 0, "%s: sums differ", what);
    free(q_ref), free(q);
}

static void test_quantize(void) {
    const int col_list[] = {1, 7, 16, 31, 32, 33, 100, 128, 257, 2560};
    for (size_t k = 0; k < sizeof col_list / sizeof *col_list; k++) {
        int cols = col_list[k], n_tokens = 3;
        float *x = malloc((size_t)n_tokens * cols * sizeof *x);
        for (int i = 0; i < n_tokens * cols; i++) x[i] = rand_float(3.0f);
        check_quantize(x, n_tokens, cols, "random");
        for (int i = 0; i < n_tokens * cols; i++) x[i] = 0.0f;
        check_quantize(x, n_tokens, cols, "zeros");
        for (int i = 0; i < n_tokens * cols; i++) x[i] = rand_float(1e30f);
        check_quantize(x, n_tokens, cols, "huge");
        for (int i = 0; i < n_tokens * cols; i++) x[i] = rand_float(1e-30f);
        check_quantize(x, n_tokens, cols, "tiny");
        for (int i = 0; i < n_tokens * cols; i++) x[i] = i % 2 ? 3.4e38f : -3.4e38f;
        check_quantize(x, n_tokens, cols, "max float");
        free(x);
    }
    /* half-to-even: max 127 gives scale 1, so x.5 values land on even integers */
    float x[40];
    for (int i = 0; i < 40; i++) x[i] = (float)(i - 20) + 0.5f;
    x[0] = 127.0f;
    x[1] = -127.0f;
    int8_t q[40];
    float s;
    int32_t sum;
    bn_quantize_activations(q, &s, &sum, x, 1, 40);
    CHECK(s == 1.0f);
    CHECK(q[20] == 0 && q[21] == 2 && q[22] == 2 && q[19] == 0 && q[18] == -2 && q[17] == -2);
    int32_t expect = 0;
    for (int i = 0; i < 40; i++) expect += q[i];
    CHECK(sum == expect);
    check_quantize(x, 1, 40, "halves");
}

/* ---- ternary ---- */

typedef struct ternary_case {
    int rows, cols;
    int8_t *values;      /* rows x cols ternary */
    uint8_t *packed[3];  /* I2_S, TQ2_0, TQ1_0 */
    bn_ternary_matrix m[3];
} ternary_case;

static const uint32_t types[3] = {BN_TYPE_I2_S, BN_TYPE_TQ2_0, BN_TYPE_TQ1_0};

/* fill: 0 random, 1 all -1, 2 all 0, 3 all +1 */
static void make_case(ternary_case *tc, int rows, int cols, int fill, float scale) {
    bn_error err;
    tc->rows = rows, tc->cols = cols;
    size_t n = (size_t)rows * cols;
    tc->values = malloc(n);
    for (size_t i = 0; i < n; i++)
        tc->values[i] = (int8_t)(fill == 0 ? bn_test_rng_range(&rng, -1, 1) : fill - 2);
    for (int k = 0; k < 3; k++) {
        tc->packed[k] = NULL;
        memset(&tc->m[k], 0, sizeof tc->m[k]);
        if (types[k] != BN_TYPE_I2_S && cols % 256) continue;
        size_t bytes;
        CHECK_OK(bn_ternary_bytes(&bytes, types[k], n, &err), &err);
        tc->packed[k] = malloc(bytes);
        CHECK_OK(bn_ternary_pack(tc->packed[k], types[k], tc->values, n, scale, NULL, &err), &err);
        CHECK_OK(bn_ternary_matrix_prepare(&tc->m[k], "test.weight", types[k], rows, cols,
                                           tc->packed[k], &err), &err);
    }
}

static void free_case(ternary_case *tc) {
    for (int k = 0; k < 3; k++) {
        bn_ternary_matrix_release(&tc->m[k]);
        free(tc->packed[k]);
    }
    free(tc->values);
}

/* The path part of the registry id of what class c runs now on the ternary format (kernels/
 * matmul.c): the path, "avx2vnni" for AVX2 with AVX-VNNI, "amx" / "amx-emulated" for AMX tiles
 * (I2_S only). */
static const char *path_id(bn_kernel_class c, bool i2s) {
    const bn_kernel_variant v = bn_kernel_variant_of(c);
    if (v.amx && i2s) return bn_amx_emulated() ? "amx-emulated" : "amx";
    return v.vnni ? "avx2vnni" : bn_isa_name(v.isa);
}

/* Forces variant v of class c (its path, then the binding) and names it in `name`; checks that
 * dispatch now runs it. */
static void force_variant(bn_kernel_class c, bn_kernel_variant v, char name[BN_KERNEL_VARIANT_NAME_MAX]) {
    bn_kernel_variant_name(v, c, name, BN_KERNEL_VARIANT_NAME_MAX);
    bn_isa_set_active(v.isa);
    bn_kernel_bind(c, v);
    CHECKF(bn_kernel_variant_equal(bn_kernel_variant_of(c), v), "%s variant %s is not the one bound",
           bn_kernel_class_name(c), name);
}

/* Every supported path and thread count against the reference, bit for bit; returns the
 * reference output (caller frees). */
static float *check_ternary(const bn_ternary_matrix *m, const int8_t *q, const float *scales,
                            const int32_t *sums, int n_tokens, const char *what) {
    size_t n_out = (size_t)n_tokens * m->rows;
    float *ref = malloc(n_out * sizeof *ref), *y = malloc(n_out * sizeof *y);
    bn_ref_ternary_matmul(ref, m, q, scales, sums, n_tokens, 0, m->rows);
    /* every variant of the class (kernels/variants.h): each path, and on AVX-512 each prefetch
     * hint of the one-token GEMV with and without GFNI field decoding (where the CPU has it) */
    const bn_kernel_class class = bn_kernel_class_of_tokens(n_tokens);
    bn_kernel_variant variants[BN_KERNEL_VARIANTS_MAX];
    const int n_variants = bn_kernel_variants(class, variants);
    for (int v = 0; v < n_variants; v++) {
        char name[BN_KERNEL_VARIANT_NAME_MAX];
        force_variant(class, variants[v], name);
        for (int threads = 1; threads <= 4; threads++) {
            if (threads > 1 && (threads + n_tokens + m->rows) % 2) continue; /* keep it quick */
            memset(y, 0xff, n_out * sizeof *y);
            bn_ternary_matmul(pools[threads], y, m, q, scales, sums, n_tokens);
            CHECKF(memcmp(y, ref, n_out * sizeof *y) == 0,
                   "%s: type %u %dx%d tokens %d %s variant %s threads %d differs from reference",
                   what, m->file_type, m->rows, m->cols, n_tokens, bn_kernel_class_name(class), name,
                   threads);
        }
    }
    bn_kernel_unbind_all();
    free(y);
    return ref;
}

/* Activations as a ternary type takes them (ops.h): per token for I2_S, Q8_K for TQ formats. */
typedef struct acts {
    int8_t *q;
    float *scales;
    int32_t *sums;
} acts;

static acts acts_of(uint32_t type, const float *x, int n_tokens, int cols) {
    const size_t blocks = (size_t)cols / 256 + 1;
    acts a = {malloc((size_t)n_tokens * cols), malloc((size_t)n_tokens * blocks * sizeof(float)),
              malloc((size_t)n_tokens * blocks * 8 * sizeof(int32_t))};
    if (type == BN_TYPE_I2_S)
        bn_quantize_activations(a.q, a.scales, a.sums, x, n_tokens, cols);
    else
        bn_quantize_activations_q8k(a.q, a.scales, a.sums, x, n_tokens, cols);
    return a;
}

static void acts_free(acts *a) { free(a->q), free(a->scales), free(a->sums); }

static float *random_x(int n_tokens, int cols) {
    float *x = malloc((size_t)n_tokens * cols * sizeof *x);
    for (int i = 0; i < n_tokens * cols; i++) x[i] = rand_float(2.0f);
    return x;
}

/* Per-token (I2_S) quantization of random activations. */
static void quantize_random(int8_t *q, float *scales, int32_t *sums, int n_tokens, int cols) {
    float *x = random_x(n_tokens, cols);
    bn_ref_quantize_activations(q, scales, sums, x, n_tokens, cols);
    free(x);
}

/* check_ternary on activations x quantized the way the matrix's type takes them. */
static float *check_ternary_x(const bn_ternary_matrix *m, const float *x, int n_tokens, const char *what);

/* llama.cpp's AVX2 TQ dot (ref_matmul.h) written from the ternary values w (one row) and Q8_K
 * activations of one token: lane L of block b = sum over its columns i with (i % 32) / 4 == L of
 * (w_i + 1) * q_i, less sum q[32L .. 32L + 31]; 8 float lanes, then hsum_float_8. */
static float tq_emulated(const int8_t *w, const acts *a, int t, int cols, float d_w) {
    const int blocks = cols / 256;
    float lanes[8] = {0};
    for (int b = 0; b < blocks; b++) {
        const int8_t *q = a->q + (size_t)t * cols + (size_t)b * 256;
        int32_t lane[8] = {0};
        for (int i = 0; i < 256; i++) lane[(i % 32) / 4] += (w[b * 256 + i] + 1) * q[i];
        for (int l = 0; l < 8; l++)
            for (int i = 32 * l; i < 32 * l + 32; i++) lane[l] -= q[i];
        const float dd = a->scales[(size_t)t * blocks + b] * d_w;
        for (int l = 0; l < 8; l++) {
            const float term = (float)lane[l] * dd;
            lanes[l] = lanes[l] + term;
        }
    }
    const float h0 = lanes[0] + lanes[4], h1 = lanes[1] + lanes[5], h2 = lanes[2] + lanes[6], h3 = lanes[3] + lanes[7];
    return (h0 + h2) + (h1 + h3);
}

static void test_ternary_random(void) {
    /* 300 rows: GEMM spans of 128 rows and their partial last span; 6912 and 3456 columns: the
     * GEMM's column blocks (3072 columns), the last one short, with and without an odd 128-block;
     * 16 x 128: full tiles with no 256-column pair block (5-8 tokens once divided by zero there) */
    const int shapes[][2] = {{1, 128}, {3, 256}, {5, 384}, {17, 512}, {33, 640}, {16, 768},
                             {7, 1280}, {21, 2560}, {300, 256}, {18, 6912}, {6, 3456}, {16, 128}};
    const int token_list[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 23, 64}; /* 23: a partial 16-token block */
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        ternary_case tc;
        make_case(&tc, shapes[s][0], shapes[s][1], 0, 0.5f);
        for (size_t k = 0; k < sizeof token_list / sizeof *token_list; k++) {
            int n_tokens = token_list[k];
            if (n_tokens == 64 && tc.cols > 768) continue;
            float *x = random_x(n_tokens, tc.cols);
            acts a[3];
            float *ref[3] = {NULL, NULL, NULL};
            for (int f = 0; f < 3; f++) {
                a[f] = acts_of(types[f], x, n_tokens, tc.cols);
                if (tc.packed[f]) ref[f] = check_ternary(&tc.m[f], a[f].q, a[f].scales, a[f].sums, n_tokens, "random");
            }
            /* the references themselves: I2_S against a naive dot of the unpacked values, TQ
             * against the lane emulation */
            int naive_wrong = 0, lanes_wrong = 0;
            for (int t = 0; t < n_tokens; t++)
                for (int r = 0; r < tc.rows; r++) {
                    int32_t acc = 0;
                    for (int c = 0; c < tc.cols; c++)
                        acc += tc.values[(size_t)r * tc.cols + c] * a[0].q[(size_t)t * tc.cols + c];
                    naive_wrong += ref[0][(size_t)t * tc.rows + r] != (float)acc / a[0].scales[t] * 0.5f;
                    if (ref[1])
                        lanes_wrong += ref[1][(size_t)t * tc.rows + r] !=
                                       tq_emulated(tc.values + (size_t)r * tc.cols, &a[1], t, tc.cols, 0.5f);
                }
            CHECKF(naive_wrong == 0, "I2_S reference differs from the naive dot in %d outputs", naive_wrong);
            CHECKF(lanes_wrong == 0, "TQ2_0 reference differs from the lane emulation in %d outputs", lanes_wrong);
            /* the same matrix as TQ2_0 and TQ1_0 (scale 0.5 is exact in fp16): the same products */
            if (ref[2])
                CHECKF(memcmp(ref[2], ref[1], (size_t)n_tokens * tc.rows * sizeof(float)) == 0,
                       "TQ1_0 differs from TQ2_0 (%dx%d)", tc.rows, tc.cols);
            /* batch invariance: each token alone gives the same bits as inside the batch */
            if (n_tokens > 1) {
                bn_isa_set_active(bn_isa_best_supported());
                float *one = malloc((size_t)tc.rows * sizeof *one);
                for (int f = 0; f < 3; f++) {
                    if (!ref[f]) continue;
                    for (int t = 0; t < n_tokens; t += 3) {
                        acts alone = acts_of(types[f], x + (size_t)t * tc.cols, 1, tc.cols);
                        bn_ternary_matmul(pools[2], one, &tc.m[f], alone.q, alone.scales, alone.sums, 1);
                        CHECKF(memcmp(one, ref[f] + (size_t)t * tc.rows, tc.rows * sizeof *one) == 0,
                               "type %u token %d alone differs from the batch of %d", types[f], t, n_tokens);
                        acts_free(&alone);
                    }
                }
                free(one);
            }
            for (int f = 0; f < 3; f++) free(ref[f]), acts_free(&a[f]);
            free(x);
        }
        free_case(&tc);
    }
}

static float *check_ternary_x(const bn_ternary_matrix *m, const float *x, int n_tokens, const char *what) {
    acts a = acts_of(m->file_type, x, n_tokens, m->cols);
    float *ref = check_ternary(m, a.q, a.scales, a.sums, n_tokens, what);
    acts_free(&a);
    return ref;
}

/* Extreme weights and activations: the exact integer result is known. */
/* More tokens than a worker's sums hold at once (matmul.c: WORKER_SUMS): the tokens go in passes.
 * An I2_S GEMM span of 128 rows holds 128 tokens a pass (130 tokens: a pass of 2 after one of
 * 128); a TQ chunk of 16 rows over 6912 columns (27 blocks of 8 lanes) holds 4 (40 tokens: ten
 * passes). Every variant and thread count against the reference. */
static void test_ternary_token_passes(void) {
    const struct { int rows, cols, tokens; } cases[] = {{300, 256, 130}, {32, 6912, 40}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ternary_case tc;
        make_case(&tc, cases[i].rows, cases[i].cols, 0, 0.5f);
        const int n_tokens = cases[i].tokens;
        float *x = random_x(n_tokens, tc.cols);
        for (int f = 0; f < 3; f++)
            if (tc.packed[f]) free(check_ternary_x(&tc.m[f], x, n_tokens, "token passes"));
        free(x);
        free_case(&tc);
    }
}

static void test_ternary_extremes(void) {
    const int rows = 9, cols = 768;
    const int act_values[] = {127, -128, 0, 1};
    for (int fill = 1; fill <= 3; fill++) {
        ternary_case tc;
        make_case(&tc, rows, cols, fill, 1.0f);
        for (size_t a = 0; a < sizeof act_values / sizeof *act_values; a++) {
            int n_tokens = 3;
            int8_t *q = malloc((size_t)n_tokens * cols);
            /* I2_S: one scale and sum per token; TQ: one scale per block and 8 lane sums */
            float scales[3 * 3] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
            int32_t sums[3], lane_sums[3 * 3 * 8] = {0};
            memset(q, act_values[a], (size_t)n_tokens * cols);
            /* token 2 alternates -128 / +127 */
            for (int c = 0; c < cols; c++) q[2 * cols + c] = (int8_t)(c % 2 ? 127 : -128);
            for (int t = 0; t < n_tokens; t++) {
                sums[t] = 0;
                for (int c = 0; c < cols; c++) {
                    sums[t] += q[t * cols + c];
                    lane_sums[(t * cols + c) / 32] += q[t * cols + c]; /* (token, block, lane) */
                }
            }
            for (int f = 0; f < 3; f++) {
                float *ref = check_ternary(&tc.m[f], q, scales, f == 0 ? sums : lane_sums, n_tokens, "extreme");
                int w = fill - 2;
                for (int t = 0; t < n_tokens; t++) {
                    float expect = (float)(w * sums[t]);
                    CHECKF(ref[t * rows] == expect, "fill %d act %d token %d: %g != %g", fill,
                           act_values[a], t, ref[t * rows], expect);
                }
                free(ref);
            }
            free(q);
        }
        free_case(&tc);
    }
    /* activations quantized from huge and tiny floats go through the same path */
    ternary_case tc;
    make_case(&tc, 5, 256, 0, 3.0e-3f);
    float x[2 * 256];
    for (int i = 0; i < 256; i++) x[i] = rand_float(1e35f), x[256 + i] = rand_float(1e-35f);
    for (int f = 0; f < 3; f++) free(check_ternary_x(&tc.m[f], x, 2, "huge/tiny"));
    free_case(&tc);
}

/* Block-scaled formats with per-block scales: reference vs SIMD bit for bit. */
static void test_block_scales(void) {
    bn_error err;
    const int rows = 11, cols = 1024;
    size_t n = (size_t)rows * cols;
    int8_t *values = malloc(n);
    for (size_t i = 0; i < n; i++) values[i] = (int8_t)bn_test_rng_range(&rng, -1, 1);
    float block_scales[11 * 4];
    for (int b = 0; b < rows * cols / 256; b++) block_scales[b] = 0.001f + bn_test_rng_float(&rng);
    for (int f = 1; f < 3; f++) {
        size_t bytes;
        CHECK_OK(bn_ternary_bytes(&bytes, types[f], n, &err), &err);
        uint8_t *packed = malloc(bytes);
        CHECK_OK(bn_ternary_pack(packed, types[f], values, n, 0, block_scales, &err), &err);
        bn_ternary_matrix m;
        CHECK_OK(bn_ternary_matrix_prepare(&m, "blocks", types[f], rows, cols, packed, &err), &err);
        float *x = random_x(5, cols);
        free(check_ternary_x(&m, x, 5, "block scales"));
        free(check_ternary_x(&m, x, 1, "block scales gemv"));
        free(x);
        bn_ternary_matrix_release(&m);
        free(packed);
    }
    free(values);
}

/* The repacked I2_S layout (row tiles of 8) against the file layout: same products on every
 * path, for row counts around the tile height and odd block counts. */
static void test_i2s_layouts(void) {
    bn_error err;
    const int shapes[][2] = {{1, 128}, {7, 384}, {8, 256}, {9, 640}, {16, 128}, {17, 2560},
                             {33, 384}, {40, 1152}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        ternary_case tc;
        make_case(&tc, shapes[s][0], shapes[s][1], 0, 0.25f);
        CHECK(tc.m[0].layout == BN_LAYOUT_I2S_TILE8 && tc.m[0].owned != NULL);
        bn_ternary_matrix file_form;
        CHECK_OK(bn_ternary_matrix_prepare_layout(&file_form, "file", BN_TYPE_I2_S, tc.rows, tc.cols,
                                                  tc.packed[0], BN_LAYOUT_FILE, &err), &err);
        CHECK(file_form.owned == NULL && file_form.data == tc.packed[0]);
        /* every row's bytes land where bn_i2s_row_at says */
        int misplaced = 0;
        for (int r = 0; r < tc.rows; r++) {
            bn_i2s_row a = bn_i2s_row_at(&tc.m[0], r), b = bn_i2s_row_at(&file_form, r);
            for (int p = 0; p < tc.cols / 256; p++)
                misplaced += memcmp(a.first + p * a.pair_stride, b.first + p * b.pair_stride, 64) != 0;
            if (tc.cols % 256) misplaced += memcmp(a.tail, b.tail, 32) != 0;
        }
        CHECK(misplaced == 0);
        for (int n_tokens = 1; n_tokens <= 9; n_tokens += 8) {
            int8_t *q = malloc((size_t)n_tokens * tc.cols);
            float scales[9];
            int32_t sums[9];
            quantize_random(q, scales, sums, n_tokens, tc.cols);
            float *from_file = check_ternary(&file_form, q, scales, sums, n_tokens, "file layout");
            float *from_tiles = check_ternary(&tc.m[0], q, scales, sums, n_tokens, "tile layout");
            CHECKF(memcmp(from_file, from_tiles, (size_t)n_tokens * tc.rows * sizeof(float)) == 0,
                   "layouts differ (%dx%d, %d tokens)", tc.rows, tc.cols, n_tokens);
            free(from_file), free(from_tiles), free(q);
        }
        bn_ternary_matrix_release(&file_form);
        free_case(&tc);
    }
}

/* Matrices prepared in a bn_large_arena: placed end to end on 4 KiB boundaries inside it while it
 * has room (owning nothing), on their own once it is full, and giving the same bits either way;
 * the loader sizes its arena with bn_ternary_matrix_repack_bytes. Under AddressSanitizer no arena
 * is made and every matrix takes its own allocation. */
static void test_i2s_arena(void) {
    bn_error err;
    const int shapes[][2] = {{9, 640}, {40, 1152}, {17, 2560}};
    size_t need = 0;
    for (int i = 0; i < 2; i++) /* room for the first two only */
        need += (bn_ternary_matrix_repack_bytes(BN_TYPE_I2_S, shapes[i][0], shapes[i][1]) + 4095) & ~(size_t)4095;
    CHECK(bn_ternary_matrix_repack_bytes(BN_TYPE_I2_S, 40, 1152) == 40 * 1152 / 4);
    CHECK(bn_ternary_matrix_repack_bytes(BN_TYPE_TQ2_0, 40, 1152) == 0); /* read in place */
    bn_large_arena arena;
    const bool have_arena = bn_large_arena_init(&arena, need);
    CHECK(have_arena == (arena.base != NULL));
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        ternary_case tc;
        make_case(&tc, shapes[s][0], shapes[s][1], 0, 0.25f);
        bn_ternary_matrix in_arena;
        CHECK_OK(bn_ternary_matrix_prepare_in(&in_arena, "arena", BN_TYPE_I2_S, tc.rows, tc.cols,
                                              tc.packed[0], &arena, &err), &err);
        const bool inside = have_arena && in_arena.data >= arena.base && in_arena.data < arena.base + arena.size;
        CHECKF(inside == (have_arena && s < 2), "matrix %zu inside the arena: %d", s, inside);
        CHECK(inside ? in_arena.owned == NULL && ((uintptr_t)in_arena.data & 4095) == 0
                     : in_arena.owned != NULL);
        CHECK(in_arena.layout == BN_LAYOUT_I2S_TILE8);
        for (int n_tokens = 1; n_tokens <= 9; n_tokens += 8) {
            int8_t *q = malloc((size_t)n_tokens * tc.cols);
            float scales[9];
            int32_t sums[9];
            quantize_random(q, scales, sums, n_tokens, tc.cols);
            float *own = check_ternary(&tc.m[0], q, scales, sums, n_tokens, "own allocation");
            float *shared = check_ternary(&in_arena, q, scales, sums, n_tokens, "arena");
            CHECKF(memcmp(own, shared, (size_t)n_tokens * tc.rows * sizeof(float)) == 0,
                   "arena matrix differs (%dx%d, %d tokens)", tc.rows, tc.cols, n_tokens);
            free(own), free(shared), free(q);
        }
        bn_ternary_matrix_release(&in_arena);
        free_case(&tc);
    }
    if (have_arena) CHECK(arena.used <= arena.size && arena.size - arena.used < 4096 + 4096);
    CHECK(bn_large_arena_take(&arena, 1 << 20) == NULL); /* full (or none) */
    CHECK(bn_large_arena_take(NULL, 64) == NULL);
    bn_large_arena_release(&arena);
    CHECK(arena.base == NULL && bn_large_arena_take(&arena, 64) == NULL);
}

/* ---- F16 ---- */

/* bn_ternary_matmul_parts: several matrices of one input (Q/K/V-like row counts, all multiples of
 * 16, run together; one of 40 rows or of other columns, run one by one) give exactly what
 * bn_ternary_matmul gives each, for every path, thread count and a GEMV and a GEMM; the registry
 * counts one call per matrix. */
static void test_ternary_parts(void) {
    const int cols = 512, rows[3] = {64, 16, 48};
    for (int variant = 0; variant < 3; variant++) {
        ternary_case tc[3];
        for (int i = 0; i < 3; i++) {
            int r = variant == 1 && i == 1 ? 40 : rows[i];
            int c = variant == 2 && i == 2 ? 256 : cols;
            make_case(&tc[i], r, c, 0, 0.5f + (float)i);
        }
        for (int k = 0; k < 3; k++) {
            const int token_counts[2] = {1, 9};
            for (int ti = 0; ti < 2; ti++) {
                int n_tokens = token_counts[ti];
                float *x = random_x(n_tokens, cols);
                acts a = acts_of(types[k], x, n_tokens, cols);
                const int8_t *q = a.q;
                const float *scales = a.scales;
                const int32_t *sums = a.sums;
                float *want[3], *got[3];
                const bn_ternary_matrix *ms[3];
                for (int i = 0; i < 3; i++) {
                    ms[i] = &tc[i].m[k];
                    size_t n_out = (size_t)n_tokens * tc[i].rows;
                    want[i] = malloc(n_out * sizeof(float));
                    got[i] = malloc(n_out * sizeof(float));
                }
                if (!tc[0].packed[k] || !tc[1].packed[k] || !tc[2].packed[k]) goto next;
                for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
                    if (!bn_isa_supported((bn_isa)isa)) continue;
                    bn_isa_set_active((bn_isa)isa);
                    for (int i = 0; i < 3; i++)
                        bn_ternary_matmul(NULL, want[i], ms[i], q, scales, sums, n_tokens);
                    for (int threads = 1; threads <= 4; threads++) {
                        char id[64];
                        snprintf(id, sizeof id, "cpu.%s.%s.%s", k == 0 ? "i2s" : k == 1 ? "tq2" : "tq1",
                                 n_tokens > 1 ? "gemm" : "gemv",
                                 path_id(bn_kernel_class_of_tokens(n_tokens), k == 0));
                        bn_kernel_reset_counts();
                        for (int i = 0; i < 3; i++)
                            memset(got[i], 0xff, (size_t)n_tokens * tc[i].rows * sizeof(float));
                        bn_ternary_matmul_parts(pools[threads], got, ms, 3, q, scales, sums, n_tokens);
                        for (int i = 0; i < 3; i++)
                            CHECKF(!memcmp(got[i], want[i], (size_t)n_tokens * tc[i].rows * sizeof(float)),
                                   "parts variant %d type %u part %d tokens %d isa %s threads %d differs",
                                   variant, types[k], i, n_tokens, bn_isa_name((bn_isa)isa), threads);
                        bn_kernel_stats stats[BN_KERNEL_MAX];
                        size_t n_stats = bn_kernel_snapshot(stats, BN_KERNEL_MAX);
                        uint64_t calls = 0;
                        for (size_t j = 0; j < n_stats; j++)
                            if (!strcmp(stats[j].id, id)) calls = stats[j].calls;
                        CHECKF(calls == 3, "parts: %s counted %llu calls, expected 3", id,
                               (unsigned long long)calls);
                    }
                }
            next:
                for (int i = 0; i < 3; i++) free(want[i]), free(got[i]);
                acts_free(&a), free(x);
            }
        }
        for (int i = 0; i < 3; i++) free_case(&tc[i]);
    }
}

static void test_f16(void) {
    /* 48 and 600: column blocks ending in a 16-column step; 37 and 70 rows: one and two full
     * groups of 32 rows and an odd tail (AVX-512 batched path) */
    const int shapes[][2] = {{1, 1}, {3, 15}, {5, 16}, {4, 17}, {9, 33}, {17, 100}, {8, 2560},
                             {6, 48}, {37, 600}, {70, 600}};
    const int token_list[] = {1, 2, 3, 5, 8, 9, 64};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int rows = shapes[s][0], cols = shapes[s][1];
        uint16_t *w = malloc((size_t)rows * cols * sizeof *w);
        for (int i = 0; i < rows * cols; i++) w[i] = bn_fp32_to_fp16(rand_float(2.0f));
        if (s == 3) { /* extremes: fp16 max, subnormals, zeros */
            w[0] = 0x7bff, w[1] = 0x0001, w[2] = 0x8000, w[3] = 0xfbff;
        }
        for (size_t k = 0; k < sizeof token_list / sizeof *token_list; k++) {
            int n_tokens = token_list[k];
            size_t n_out = (size_t)n_tokens * rows;
            float *x = malloc((size_t)n_tokens * cols * sizeof *x);
            for (int i = 0; i < n_tokens * cols; i++)
                x[i] = i % 13 == 0 ? rand_float(1e30f) : i % 17 == 0 ? rand_float(1e-30f) : rand_float(4.0f);
            float *ref = malloc(n_out * sizeof *ref), *y = malloc(n_out * sizeof *y);
            bn_ref_f16_matmul(ref, w, x, rows, cols, n_tokens, 0, rows, BN_PREFETCH_T0);
            /* every variant of the head class: each path, each prefetch hint on AVX-512 */
            bn_kernel_variant variants[BN_KERNEL_VARIANTS_MAX];
            const int n_variants = bn_kernel_variants(BN_KCLASS_HEAD, variants);
            for (int v = 0; v < n_variants; v++) {
                char name[BN_KERNEL_VARIANT_NAME_MAX];
                force_variant(BN_KCLASS_HEAD, variants[v], name);
                for (int threads = 1; threads <= 4; threads += (n_tokens % 2) + 1) {
                    memset(y, 0xff, n_out * sizeof *y);
                    bn_f16_matmul(pools[threads], y, w, x, rows, cols, n_tokens);
                    CHECKF(memcmp(y, ref, n_out * sizeof *y) == 0,
                           "f16 %dx%d tokens %d variant %s threads %d differs", rows, cols,
                           n_tokens, name, threads);
                }
            }
            bn_kernel_unbind_all();
            /* the lane order is a fixed summation: check it against a double sum */
            double exact = 0;
            for (int c = 0; c < cols; c++) exact += (double)bn_fp16_to_fp32(w[c]) * x[c];
            if (s != 3 && cols > 1 && fabs(exact) < 1e20)
                CHECKF(fabs(ref[0] - exact) <= 1e-4 * (1 + fabs(exact)), "f16 dot %g vs %g", ref[0],
                       exact);
            free(x), free(ref), free(y);
        }
        free(w);
    }
}

/* ---- int8 ---- */

static void test_int8(void) {
    bn_error err;
    const int shapes[][2] = {{1, 1}, {3, 31}, {5, 64}, {7, 65}, {16, 200}, {9, 2560}};
    const int token_list[] = {1, 2, 4, 7, 9, 64};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int rows = shapes[s][0], cols = shapes[s][1];
        uint16_t *w = malloc((size_t)rows * cols * sizeof *w);
        for (int i = 0; i < rows * cols; i++) w[i] = bn_fp32_to_fp16(rand_float(0.1f));
        if (rows > 2)
            for (int c = 0; c < cols; c++) w[cols + c] = 0; /* an all-zero row */
        bn_int8_matrix m;
        CHECK_OK(bn_int8_matrix_from_f16(&m, w, rows, cols, pools[2], &err), &err);
        int8_t *qw = malloc((size_t)cols);
        for (int r = 0; r < rows; r++) {
            float scale;
            bn_ref_int8_quantize_row(qw, &scale, w + (size_t)r * cols, cols);
            CHECK(memcmp(qw, m.q + (size_t)r * cols, (size_t)cols) == 0 && scale == m.row_scales[r]);
        }
        free(qw);
        for (size_t k = 0; k < sizeof token_list / sizeof *token_list; k++) {
            int n_tokens = token_list[k];
            size_t n_out = (size_t)n_tokens * rows;
            int8_t *q = malloc((size_t)n_tokens * cols);
            float *scales = malloc((size_t)n_tokens * sizeof *scales);
            int32_t *sums = malloc((size_t)n_tokens * sizeof *sums);
            quantize_random(q, scales, sums, n_tokens, cols);
            if (k == 1) memset(q, -128, (size_t)cols); /* activations at the int8 minimum */
            if (k == 2) memset(q, 127, (size_t)cols);
            bn_act_view act = {.q = q, .n_tokens = n_tokens, .cols = cols};
            int32_t *ref_sums = malloc(n_out * sizeof *ref_sums);
            bn_ref_int8_sums(ref_sums, &m, &act, 0, rows);
            float *ref = malloc(n_out * sizeof *ref), *y = malloc(n_out * sizeof *y);
            bn_int8_finish(ref, &m, ref_sums, scales, n_tokens, 0, rows);
            if (k == 1) { /* exact integer: -128 * sum of the row's weights */
                int32_t expect = 0;
                for (int c = 0; c < cols; c++) expect += -128 * m.q[c];
                CHECK(ref_sums[0] == expect);
            }
            /* every variant of the head class: each path, AVX2 with and without AVX-VNNI */
            bn_kernel_variant variants[BN_KERNEL_VARIANTS_MAX];
            const int n_variants = bn_kernel_variants(BN_KCLASS_HEAD, variants);
            for (int v = 0; v < n_variants; v++) {
                if (variants[v].prefetch != BN_PREFETCH_T0) continue; /* no knob of int8's */
                char name[BN_KERNEL_VARIANT_NAME_MAX];
                force_variant(BN_KCLASS_HEAD, variants[v], name);
                for (int threads = 1; threads <= 4; threads += 1 + (int)(k % 2)) {
                    memset(y, 0xff, n_out * sizeof *y);
                    bn_int8_matmul(pools[threads], y, &m, q, scales, sums, n_tokens);
                    CHECKF(memcmp(y, ref, n_out * sizeof *y) == 0,
                           "int8 %dx%d tokens %d variant %s threads %d differs", rows, cols, n_tokens,
                           name, threads);
                }
            }
            bn_kernel_unbind_all();
            free(q), free(scales), free(sums), free(ref_sums), free(ref), free(y);
        }
        bn_int8_matrix_release(&m);
        free(w);
    }
}

static void test_registry(void) {
    ternary_case tc;
    make_case(&tc, 4, 256, 0, 1.0f);
    int8_t q[2 * 256] = {0};
    float scales[2] = {1, 1};      /* I2_S: per token; TQ2_0: per token and 256-block (1 here) */
    int32_t sums[2 * 8] = {0};     /* TQ2_0: 8 lane sums per token and block */
    float y[8];
    for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
        if (!bn_isa_supported((bn_isa)isa)) continue;
        bn_isa_set_active((bn_isa)isa);
        bn_kernel_reset_counts();
        bn_ternary_matmul(NULL, y, &tc.m[0], q, scales, sums, 1);
        bn_ternary_matmul(NULL, y, &tc.m[1], q, scales, sums, 2);
        char id[64];
        snprintf(id, sizeof id, "cpu.i2s.gemv.%s", path_id(BN_KCLASS_GEMV, true));
        CHECKF(has_kernel(id), "%s counted", id);
        snprintf(id, sizeof id, "cpu.tq2.gemm.%s", path_id(BN_KCLASS_GEMM_FEW, false));
        CHECKF(has_kernel(id), "%s counted", id);
        snprintf(id, sizeof id, "cpu.i2s.gemm.%s", path_id(BN_KCLASS_GEMM_FEW, true));
        CHECKF(!has_kernel(id), "%s not counted", id);
    }
    free_case(&tc);
}

int main(void) {
    bn_error err;
    bn_test_rng_seed(&rng, 1234);
    for (int t = 2; t <= 4; t++) CHECK_OK(bn_threadpool_create(t, &pools[t], &err), &err);
    printf("paths:");
    for (int isa = 0; isa < BN_ISA_COUNT; isa++)
        if (bn_isa_supported((bn_isa)isa)) printf(" %s", bn_isa_name((bn_isa)isa));
    printf("\n");
    for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
        if (!bn_isa_supported((bn_isa)isa)) continue;
        bn_isa_set_active((bn_isa)isa);
        test_quantize();
    }
    test_ternary_random();
    test_ternary_token_passes();
    test_ternary_extremes();
    test_block_scales();
    test_i2s_layouts();
    test_i2s_arena();
    test_ternary_parts();
    test_f16();
    test_int8();
    test_registry();
    for (int t = 2; t <= 4; t++) bn_threadpool_free(pools[t]);
    return bn_test_finish("test_matmul");
}
