/*
 * test_amx: the AMX int8 GEMM of I2_S prompts (kernels/cpu/amx_tiles.h) over the scalar
 * emulation of its tile instructions, bit for bit against the scalar reference, on any CPU with
 * AVX-512 (the path the AMX variant belongs to; skipped elsewhere):
 *   - the B-tile layout of the activations, byte by byte from its definition;
 *   - the emulated kernel called directly on odd shapes (rows not a multiple of 16 or 32, columns
 *     128 x 1..7, 1..40 tokens: partial row tiles, partial token groups, odd token groups);
 *   - the "avx512.amx" gemm variant through kernels/matmul.c under BITNET_AMX_EMULATE=1 (passes,
 *     row spans, 1-4 threads, several parts), with the registry counting the emulated id;
 *   - the emulator itself: a tile used without a configuration, or with shapes TDPBSSD refuses,
 *     counts a fault (the kernel's runs must count none).
 * Where the CPU and OS grant real AMX, test_matmul runs the real kernel as one more gemm variant.
 */
#include "kernels/cpu/amx_tiles.h"
#include "kernels/cpu/ref_matmul.h"
#include "kernels/cpu_features.h"
#include "kernels/ops.h"
#include "kernels/registry.h"
#include "kernels/variants.h"
#include "quant/quant_format.h"
#include "quant/ternary.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef BN_ARCH_X86 /* the emulated tiles are x86 code (amx_emulation_avx2.c) */
static bn_test_rng rng;
static bn_threadpool *pools[5];

typedef struct i2s_case {
    int rows, cols;
    uint8_t *packed;
    bn_ternary_matrix m;
} i2s_case;

static void make_case(i2s_case *tc, int rows, int cols) {
    bn_error err;
    const size_t n = (size_t)rows * cols;
    int8_t *values = malloc(n);
    for (size_t i = 0; i < n; i++) values[i] = (int8_t)bn_test_rng_range(&rng, -1, 1);
    size_t bytes;
    CHECK_OK(bn_ternary_bytes(&bytes, BN_TYPE_I2_S, n, &err), &err);
    tc->rows = rows, tc->cols = cols;
    tc->packed = malloc(bytes);
    CHECK_OK(bn_ternary_pack(tc->packed, BN_TYPE_I2_S, values, n, 0.75f, NULL, &err), &err);
    CHECK_OK(bn_ternary_matrix_prepare(&tc->m, "test.weight", BN_TYPE_I2_S, rows, cols, tc->packed,
                                       &err),
             &err);
    free(values);
}

static void free_case(i2s_case *tc) {
    bn_ternary_matrix_release(&tc->m);
    free(tc->packed);
}

/* n_tokens x cols activations, extremes included (-128 and 127 in every row). */
static int8_t *random_q(int n_tokens, int cols, int32_t *sums) {
    int8_t *q = malloc((size_t)n_tokens * cols);
    for (int t = 0; t < n_tokens; t++) {
        sums[t] = 0;
        for (int c = 0; c < cols; c++) {
            const int v = c == t % cols         ? -128
                          : c == (t + 1) % cols ? 127
                                                : (int)bn_test_rng_range(&rng, -128, 127);
            q[(size_t)t * cols + c] = (int8_t)v;
            sums[t] += v;
        }
    }
    return q;
}

static void test_tile_layout(void) {
    const int n_tokens = 19, cols = 192;
    int32_t sums[19];
    int8_t *q = random_q(n_tokens, cols, sums);
    const size_t bytes = bn_amx_act_tiles_bytes(n_tokens, cols);
    CHECK(bytes == (size_t)32 * cols);
    int8_t *tiles = malloc(bytes);
    memset(tiles, 0x55, bytes);
    bn_amx_emulated_tile_activations(tiles, q, n_tokens, cols);
    int bad = 0;
    for (int g = 0; g < 2; g++)
        for (int kb = 0; kb < cols / 64; kb++)
            for (int k = 0; k < 16; k++)
                for (int n = 0; n < 16; n++)
                    for (int j = 0; j < 4; j++) {
                        const int t = 16 * g + n, c = 64 * kb + 4 * k + j;
                        const int8_t want = t < n_tokens ? q[(size_t)t * cols + c] : 0;
                        bad += tiles[((size_t)g * (cols / 64) + kb) * 1024 + 64 * k + 4 * n + j] !=
                               want;
                    }
    CHECKF(bad == 0, "%d bytes of the B tiles are not where amx_tiles.h puts them", bad);
    free(q), free(tiles);
}

/* The emulated kernel on its own, against bn_ref_ternary_sums, over row spans as kernels/matmul.c
 * hands them out (any start, up to 128 rows). */
static void test_direct(void) {
    const int shapes[][2] = {{1, 128}, {16, 256}, {40, 384}, {77, 640}, {130, 896}, {33, 128}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        i2s_case tc;
        make_case(&tc, shapes[s][0], shapes[s][1]);
        for (int n_tokens = 1; n_tokens <= 40; n_tokens += n_tokens < 18 ? 1 : 7) {
            int32_t *sums = malloc((size_t)n_tokens * sizeof *sums);
            int8_t *q = random_q(n_tokens, tc.cols, sums);
            int8_t *tiles = malloc(bn_amx_act_tiles_bytes(n_tokens, tc.cols));
            bn_amx_emulated_tile_activations(tiles, q, n_tokens, tc.cols);
            const bn_act_view act = {
                .q = q, .sums = sums, .q_tiles = tiles, .n_tokens = n_tokens, .cols = tc.cols};
            const size_t n_out = (size_t)tc.rows * n_tokens;
            int32_t *want = malloc(n_out * sizeof *want), *got = malloc(n_out * sizeof *got);
            bn_ref_ternary_sums(want, &tc.m, &act, 0, tc.rows);
            const int spans[][2] = {
                {0, tc.rows}, {tc.rows / 3, tc.rows}, {0, tc.rows < 128 ? tc.rows : 128}};
            for (int sp = 0; sp < 3; sp++) {
                const int r0 = spans[sp][0], r1 = spans[sp][1];
                memset(got, 0x77, n_out * sizeof *got);
                bn_amx_emulated_ternary_sums(got, &tc.m, &act, r0, r1);
                CHECKF(!memcmp(got, want + (size_t)r0 * n_tokens,
                               (size_t)(r1 - r0) * n_tokens * sizeof *got),
                       "emulated AMX sums %dx%d rows %d..%d tokens %d differ from the reference",
                       tc.rows, tc.cols, r0, r1, n_tokens);
                /* nothing past the span is written */
                CHECK(r1 - r0 == tc.rows || got[(size_t)(r1 - r0) * n_tokens] == 0x77777777);
            }
            free(q), free(sums), free(tiles), free(want), free(got);
        }
        free_case(&tc);
    }
}

static uint64_t calls_of(const char *id) {
    bn_kernel_stats stats[BN_KERNEL_MAX];
    const size_t n = bn_kernel_snapshot(stats, BN_KERNEL_MAX);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(stats[i].id, id)) return stats[i].calls;
    return 0;
}

/* The "avx512.amx" gemm variant through the dispatcher: float outputs equal the reference's. */
static void test_dispatch(void) {
    bn_error err;
    bn_kernel_variant amx;
    CHECK_OK(bn_kernel_variant_parse(&amx, "avx512.amx", BN_KCLASS_GEMM, &err), &err);
    bn_isa_set_active(BN_ISA_AVX512);
    bn_kernel_bind(BN_KCLASS_GEMM, amx);
    const int shapes[][2] = {{300, 640}, {48, 256}, {37, 2560}};
    const int token_counts[] = {9, 16, 17, 33, 40, 200};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        i2s_case tc;
        make_case(&tc, shapes[s][0], shapes[s][1]);
        for (size_t k = 0; k < sizeof token_counts / sizeof token_counts[0]; k++) {
            const int n_tokens = token_counts[k];
            if (tc.cols > 1000 && n_tokens > 40) continue; /* keep the emulation quick */
            float *x = malloc((size_t)n_tokens * tc.cols * sizeof *x);
            for (int i = 0; i < n_tokens * tc.cols; i++)
                x[i] = (bn_test_rng_float(&rng) * 2.0f - 1.0f) * 3.0f;
            int8_t *q = malloc((size_t)n_tokens * tc.cols);
            float *scales = malloc((size_t)n_tokens * sizeof *scales);
            int32_t *sums = malloc((size_t)n_tokens * sizeof *sums);
            bn_quantize_activations(q, scales, sums, x, n_tokens, tc.cols);
            const size_t n_out = (size_t)n_tokens * tc.rows;
            float *want = malloc(n_out * sizeof *want), *got = malloc(n_out * sizeof *got);
            bn_ref_ternary_matmul(want, &tc.m, q, scales, sums, n_tokens, 0, tc.rows);
            for (int threads = 1; threads <= 4; threads++) {
                bn_kernel_reset_counts();
                memset(got, 0xff, n_out * sizeof *got);
                bn_ternary_matmul(pools[threads], got, &tc.m, q, scales, sums, n_tokens);
                CHECKF(
                    !memcmp(got, want, n_out * sizeof *got),
                    "avx512.amx (emulated) %dx%d tokens %d threads %d differs from the reference",
                    tc.rows, tc.cols, n_tokens, threads);
                CHECKF(calls_of("cpu.i2s.gemm.amx-emulated") == 1, "%s",
                       "cpu.i2s.gemm.amx-emulated not counted once");
                CHECK(calls_of("cpu.i2s.gemm.amx") == 0);
            }
            free(x), free(q), free(scales), free(sums), free(want), free(got);
        }
        free_case(&tc);
    }
    /* several parts in one call (q, k, v): 32-row parts, rows split across parts and threads */
    i2s_case parts[3];
    const int rows[3] = {64, 32, 96};
    for (int i = 0; i < 3; i++) make_case(&parts[i], rows[i], 384);
    const int n_tokens = 21;
    float *x = malloc((size_t)n_tokens * 384 * sizeof *x);
    for (int i = 0; i < n_tokens * 384; i++) x[i] = (bn_test_rng_float(&rng) * 2.0f - 1.0f);
    int8_t q[21 * 384];
    float scales[21];
    int32_t sums[21];
    bn_quantize_activations(q, scales, sums, x, n_tokens, 384);
    float *want[3], *got[3];
    const bn_ternary_matrix *ms[3];
    for (int i = 0; i < 3; i++) {
        want[i] = malloc((size_t)n_tokens * rows[i] * sizeof(float));
        got[i] = malloc((size_t)n_tokens * rows[i] * sizeof(float));
        bn_ref_ternary_matmul(want[i], &parts[i].m, q, scales, sums, n_tokens, 0, rows[i]);
        ms[i] = &parts[i].m;
    }
    bn_ternary_matmul_parts(pools[3], got, ms, 3, q, scales, sums, n_tokens);
    for (int i = 0; i < 3; i++) {
        CHECKF(!memcmp(got[i], want[i], (size_t)n_tokens * rows[i] * sizeof(float)),
               "avx512.amx (emulated) part %d differs", i);
        free(want[i]), free(got[i]);
        free_case(&parts[i]);
    }
    free(x);
    bn_kernel_unbind_all();
}

static void test_emulator_faults(void) {
    const long before = bn_amx_emu_faults();
    int32_t c[256];
    bn_amx_emu_release();
    bn_amx_emu_zero(0); /* no configuration */
    CHECK(bn_amx_emu_faults() == before + 1);
    bn_amx_tile_config config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    for (int t = 0; t < 8; t++) config.rows[t] = 16, config.colsb[t] = 64;
    config.rows[6] = 8; /* B with K / 4 = 8 rows against A with 64-byte rows: TDPBSSD refuses */
    bn_amx_emu_loadconfig(&config);
    bn_amx_emu_zero(0);
    bn_amx_emu_dpbssd(0, 4, 6);
    CHECK(bn_amx_emu_faults() == before + 2);
    bn_amx_emu_store(0, c, 64);
    CHECK(bn_amx_emu_faults() == before + 2);
    bn_amx_emu_release();
}

int main(void) {
    bn_error err;
    if (!bn_isa_supported(BN_ISA_AVX512)) {
        printf("test_amx: skipped (the AMX variant belongs to the AVX-512 path, which this CPU "
               "lacks)\n");
        return 77;
    }
    setenv("BITNET_AMX_EMULATE", "1", 1); /* read once, at the first call below */
    CHECK(bn_amx_emulated() && bn_amx_supported());
    bn_test_rng_seed(&rng, 4321);
    for (int t = 2; t <= 4; t++) CHECK_OK(bn_threadpool_create(t, &pools[t], &err), &err);
    test_tile_layout();
    test_direct();
    test_dispatch();
    CHECKF(bn_amx_emu_faults() == 0,
           "the kernel used the tiles as the hardware would refuse (%ld faults)",
           bn_amx_emu_faults());
    test_emulator_faults();
    for (int t = 2; t <= 4; t++) bn_threadpool_free(pools[t]);
    return bn_test_finish("test_amx");
}
#else
int main(void) {
    printf("test_amx: skipped (AMX is an x86 path; this build is not x86-64)\n");
    return 77;
}
#endif
