/*
 * test_head_kernels.c: the LM head and embedding kernels of kernels/head.h.
 *
 * - Embedding rows: hand-packed Q8_0, Q4_K and Q6_K blocks (packed here the way ggml's
 *   quantizers pack them, with 6-bit scales whose high bits are set) dequantize to the values
 *   computed by hand; F32, F16 and BF16 rows convert exactly.
 * - Head products, every type: random rows, 1, 2, 3 and 17 tokens (so the kernels' passes of
 *   1, 2, 3 and 4 tokens all run), 1..3 threads and every ISA path
 *   this CPU has give the scalar path's bits; a token's result does not depend on the batch; the
 *   fallback that quantizes in place gives the same bits; and the result is close to a
 *   double-precision dot of the dequantized weights with the dequantized activations.
 * - An independent emulation of ggml's AVX2 lane arithmetic (written without the library's
 *   block steps) for Q8_0, Q6_K and Q4_K matches bn_head_matmul bit for bit.
 * - bn_head_matrix_init rejects unsupported types and bad shapes, naming the tensor.
 */
#include "core/fp16.h"
#include "kernels/cpu/act_blocks.h"
#include "kernels/cpu/head_ref.h"
#include "kernels/cpu/ref_matmul.h"
#include "kernels/cpu_features.h"
#include "kernels/head.h"
#include "kernels/registry.h"
#include "kernels/scratch.h"
#include "kernels/variants.h"
#include "quant/quant_format.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bn_test_rng rng;
static bn_threadpool *pools[4]; /* index = thread count; pools[1] = NULL (caller thread) */

static float rand_float(float range) { return (bn_test_rng_float(&rng) * 2.0f - 1.0f) * range; }
static uint8_t rand_byte(void) { return (uint8_t)bn_test_rng_next(&rng); }

/* ---- packing as ggml's quantizers write the blocks ---- */

/* quantize_row_q6_K_ref's packing of 256 codes L (0..63). */
static void pack_q6_k(bn_block_q6_k *b, const uint8_t L[256], const int8_t scales[16], float d) {
    uint8_t *ql = b->ql, *qh = b->qh;
    for (int j = 0; j < 256; j += 128) {
        for (int l = 0; l < 32; l++) {
            const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
            const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
            ql[l] = (uint8_t)(q1 | (q3 << 4));
            ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
            qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                              ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
        }
        ql += 64;
        qh += 32;
    }
    memcpy(b->scales, scales, 16);
    b->d = bn_fp32_to_fp16(d);
}

/* quantize_row_q4_K_ref's packing of 256 codes L (0..15), 8 scales and mins (0..63). */
static void pack_q4_k(bn_block_q4_k *b, const uint8_t L[256], const uint8_t ls[8],
                      const uint8_t lm[8], float d, float dmin) {
    memset(b->scales, 0, sizeof b->scales);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            b->scales[j] = ls[j];
            b->scales[j + 4] = lm[j];
        } else {
            b->scales[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            b->scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            b->scales[j - 0] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
    uint8_t *q = b->qs;
    for (int j = 0; j < 256; j += 64, q += 32)
        for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    b->d = bn_fp32_to_fp16(d);
    b->dmin = bn_fp32_to_fp16(dmin);
}

static bn_head_matrix make_matrix(uint32_t type, int rows, int cols, const void *data) {
    bn_head_matrix m;
    bn_error err;
    CHECK_OK(bn_head_matrix_init(&m, "test.weight", type, rows, cols, data, &err), &err);
    return m;
}

/* ---- dequantization by hand ---- */

static void test_dequantize_blocks(void) {
    /* Q8_0: two blocks, codes -128..127 at both ends */
    bn_q8_0_block q8[2];
    for (int b = 0; b < 2; b++) {
        q8[b].d = bn_fp32_to_fp16(b ? -0.25f : 0.5f);
        for (int i = 0; i < 32; i++) q8[b].qs[i] = (int8_t)(i == 0 ? -128 : i == 31 ? 127 : 7 * i - 100 + b);
    }
    bn_head_matrix m = make_matrix(BN_TYPE_Q8_0, 1, 64, q8);
    float out[512];
    bn_head_dequantize_row(out, &m, 0);
    int bad = 0;
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 32; i++) bad += out[32 * b + i] != (float)q8[b].qs[i] * (b ? -0.25f : 0.5f);
    CHECKF(bad == 0, "q8_0 dequantize: %d wrong values", bad);

    /* Q6_K: two rows of one block; codes cover 0..63, scales negative and positive */
    bn_block_q6_k q6[2];
    uint8_t L6[2][256];
    int8_t sc6[2][16];
    for (int r = 0; r < 2; r++) {
        for (int v = 0; v < 256; v++) L6[r][v] = (uint8_t)((v * 7 + 3 + 11 * r) % 64);
        for (int s = 0; s < 16; s++) sc6[r][s] = (int8_t)(r ? 100 - 13 * s : s - 8);
        pack_q6_k(&q6[r], L6[r], sc6[r], r ? 0.125f : 0.25f);
    }
    m = make_matrix(BN_TYPE_Q6_K, 2, 256, q6);
    for (int r = 0; r < 2; r++) {
        bn_head_dequantize_row(out, &m, r);
        bad = 0;
        for (int v = 0; v < 256; v++) {
            const double want = (r ? 0.125 : 0.25) * sc6[r][v / 16] * ((int)L6[r][v] - 32);
            bad += out[v] != (float)want;
        }
        CHECKF(bad == 0, "q6_K dequantize row %d: %d wrong values", r, bad);
    }

    /* Q4_K: scales and mins above 15 (the 6-bit unpacking), every code 0..15 */
    bn_block_q4_k q4;
    uint8_t L4[256], ls[8], lm[8];
    for (int v = 0; v < 256; v++) L4[v] = (uint8_t)((v * 5 + v / 16) % 16);
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)(63 - 7 * j);
        lm[j] = (uint8_t)(5 + 8 * j);
    }
    pack_q4_k(&q4, L4, ls, lm, 0.5f, 0.25f);
    m = make_matrix(BN_TYPE_Q4_K, 1, 256, &q4);
    bn_head_dequantize_row(out, &m, 0);
    bad = 0;
    for (int v = 0; v < 256; v++) {
        const double want = 0.5 * ls[v / 32] * L4[v] - 0.25 * lm[v / 32];
        bad += out[v] != (float)want;
    }
    CHECKF(bad == 0, "q4_K dequantize: %d wrong values", bad);
    /* with scales of full fp16 precision: clang contracts `d1 * q - m1` into one fused
     * multiply-add (d1 * q is exact here, 11 + 6 + 4 significant bits, so this checks the
     * formula's operands, not the fusion) */
    const float d = 0.0123f, dmin = 0.00771f;
    pack_q4_k(&q4, L4, ls, lm, d, dmin);
    bn_head_dequantize_row(out, &m, 0);
    bad = 0;
    const float dh = bn_fp16_to_fp32(q4.d), mh = bn_fp16_to_fp32(q4.dmin);
    for (int v = 0; v < 256; v++)
        bad += out[v] != fmaf(dh * ls[v / 32], (float)L4[v], -(mh * lm[v / 32]));
    CHECKF(bad == 0, "q4_K dequantize (fused): %d wrong values", bad);

    /* the float types convert exactly */
    float f32[40];
    uint16_t f16[40], bf16[40];
    for (int c = 0; c < 40; c++) {
        f32[c] = rand_float(3.0f);
        f16[c] = bn_fp32_to_fp16(f32[c]);
        bf16[c] = bn_fp32_to_bf16(f32[c]);
    }
    m = make_matrix(BN_TYPE_F32, 2, 20, f32);
    bn_head_dequantize_row(out, &m, 1);
    CHECK(memcmp(out, f32 + 20, 20 * sizeof *out) == 0);
    m = make_matrix(BN_TYPE_F16, 2, 20, f16);
    bn_head_dequantize_row(out, &m, 1);
    bad = 0;
    for (int c = 0; c < 20; c++) bad += out[c] != bn_fp16_to_fp32(f16[20 + c]);
    CHECKF(bad == 0, "f16 row: %d wrong values", bad);
    m = make_matrix(BN_TYPE_BF16, 2, 20, bf16);
    bn_head_dequantize_row(out, &m, 1);
    bad = 0;
    for (int c = 0; c < 20; c++) {
        uint32_t bits;
        memcpy(&bits, &out[c], 4);
        bad += bits != (uint32_t)bf16[20 + c] << 16;
    }
    CHECKF(bad == 0, "bf16 row: %d wrong values", bad);
}

/* ---- random heads ---- */

static void *random_weights(uint32_t type, int rows, int cols) {
    const size_t row_bytes = bn_head_row_bytes(type, cols), bytes = row_bytes * (size_t)rows;
    uint8_t *data = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) data[i] = rand_byte();
    for (int r = 0; r < rows; r++) {
        uint8_t *row = data + (size_t)r * row_bytes;
        if (type == BN_TYPE_F32)
            for (int c = 0; c < cols; c++) ((float *)row)[c] = rand_float(1.0f);
        else if (type == BN_TYPE_F16)
            for (int c = 0; c < cols; c++) ((uint16_t *)row)[c] = bn_fp32_to_fp16(rand_float(1.0f));
        else if (type == BN_TYPE_BF16)
            for (int c = 0; c < cols; c++) ((uint16_t *)row)[c] = bn_fp32_to_bf16(rand_float(1.0f));
        else if (type == BN_TYPE_Q8_0)
            for (int b = 0; b < cols / 32; b++)
                ((bn_q8_0_block *)row)[b].d = bn_fp32_to_fp16(0.001f + fabsf(rand_float(0.02f)));
        else if (type == BN_TYPE_Q6_K)
            for (int b = 0; b < cols / 256; b++)
                ((bn_block_q6_k *)row)[b].d = bn_fp32_to_fp16(rand_float(0.002f));
        else if (type == BN_TYPE_Q4_K)
            for (int b = 0; b < cols / 256; b++) {
                ((bn_block_q4_k *)row)[b].d = bn_fp32_to_fp16(0.0005f + fabsf(rand_float(0.003f)));
                ((bn_block_q4_k *)row)[b].dmin = bn_fp32_to_fp16(fabsf(rand_float(0.003f)));
            }
    }
    return data;
}

/* Token t's activations as the Q types see them: the quantized values, dequantized (q * d). */
static void dequantized_activations(double *out, uint32_t type, const float *x, int cols) {
    if (type == BN_TYPE_Q8_0) {
        bn_q8_0_block blk;
        for (int b = 0; b < cols / 32; b++) {
            bn_quantize_row_q8_0(&blk, x + 32 * b, 32);
            for (int i = 0; i < 32; i++) out[32 * b + i] = (double)blk.qs[i] * bn_fp16_to_fp32(blk.d);
        }
    } else if (type == BN_TYPE_Q4_K || type == BN_TYPE_Q6_K) {
        bn_q8k_block blk;
        for (int b = 0; b < cols / 256; b++) {
            bn_quantize_row_q8k(&blk, x + 256 * b, 256);
            for (int i = 0; i < 256; i++) out[256 * b + i] = (double)blk.qs[i] * blk.d;
        }
    } else {
        for (int c = 0; c < cols; c++) out[c] = x[c];
    }
}

static void test_type(uint32_t type, int rows, int cols) {
    const char *name = bn_quant_format_get(type)->name;
    void *w = random_weights(type, rows, cols);
    bn_head_matrix m = make_matrix(type, rows, cols, w);
    const int token_list[] = {1, 2, 3, 17};
    float *wrow = malloc((size_t)cols * sizeof *wrow);
    double *xd = malloc((size_t)cols * sizeof *xd);
    for (size_t k = 0; k < sizeof token_list / sizeof *token_list; k++) {
        const int n_tokens = token_list[k];
        const size_t n_out = (size_t)n_tokens * rows;
        float *x = malloc((size_t)n_tokens * cols * sizeof *x);
        for (int i = 0; i < n_tokens * cols; i++) x[i] = i % 97 == 5 ? rand_float(40.0f) : rand_float(2.0f);
        float *ref = malloc(n_out * sizeof *ref), *y = malloc(n_out * sizeof *y);
        bn_isa_set_active(BN_ISA_SCALAR);
        memset(ref, 0xff, n_out * sizeof *ref);
        bn_head_matmul(NULL, ref, &m, x, n_tokens);
        for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
            if (!bn_isa_supported((bn_isa)isa)) continue;
            bn_isa_set_active((bn_isa)isa);
            for (int threads = 1; threads <= 3; threads++) {
                memset(y, 0xff, n_out * sizeof *y);
                bn_head_matmul(pools[threads], y, &m, x, n_tokens);
                CHECKF(memcmp(y, ref, n_out * sizeof *y) == 0,
                       "%s %dx%d tokens %d path %s threads %d differs from scalar", name, rows,
                       cols, n_tokens, bn_isa_name((bn_isa)isa), threads);
            }
            /* a token's result does not depend on the batch */
            if (n_tokens > 1) {
                const int t = n_tokens - 1;
                bn_head_matmul(NULL, y, &m, x + (size_t)t * cols, 1);
                CHECKF(memcmp(y, ref + (size_t)t * rows, (size_t)rows * sizeof *y) == 0,
                       "%s tokens %d path %s: the last token alone differs", name, n_tokens,
                       bn_isa_name((bn_isa)isa));
            }
        }
        bn_isa_set_active(bn_isa_best_supported());
        /* the in-place fallback (no scratch) gives the same bits */
        if (type == BN_TYPE_Q8_0 || type == BN_TYPE_Q4_K || type == BN_TYPE_Q6_K) {
            memset(y, 0xff, n_out * sizeof *y);
            bn_ref_head_unbuffered(y, &m, x, n_tokens, 0, rows);
            CHECKF(memcmp(y, ref, n_out * sizeof *y) == 0, "%s tokens %d: unbuffered differs",
                   name, n_tokens);
        }
        /* close to a double dot of the dequantized weights and activations (relative to the sum
         * of the products' magnitudes: the integer part and the scales are right) */
        int far = 0;
        double worst = 0;
        for (int t = 0; t < n_tokens; t++) {
            dequantized_activations(xd, type, x + (size_t)t * cols, cols);
            for (int r = 0; r < rows; r++) {
                bn_head_dequantize_row(wrow, &m, r);
                double dot = 0, mag = 0;
                for (int c = 0; c < cols; c++) {
                    dot += (double)wrow[c] * xd[c];
                    mag += fabs((double)wrow[c] * xd[c]);
                }
                const double rel = fabs(ref[(size_t)t * rows + r] - dot) / (mag + 1e-30);
                if (rel > worst) worst = rel;
                far += !(rel <= 1e-3);
            }
        }
        CHECKF(far == 0, "%s tokens %d: %d outputs off the double dot (worst %g)", name, n_tokens,
               far, worst);
        free(x), free(ref), free(y);
    }
    free(wrow), free(xd), free(w);
}

static void test_f16_head(void) {
    const int rows = 21, cols = 72, n_tokens = 3;
    uint16_t *w = random_weights(BN_TYPE_F16, rows, cols);
    bn_head_matrix m = make_matrix(BN_TYPE_F16, rows, cols, w);
    float x[3 * 72], ref[3 * 21], y[3 * 21];
    for (int i = 0; i < n_tokens * cols; i++) x[i] = rand_float(2.0f);
    bn_ref_f16_matmul(ref, w, x, rows, cols, n_tokens, 0, rows, BN_PREFETCH_T0);
    bn_head_matmul(pools[2], y, &m, x, n_tokens);
    CHECK(memcmp(y, ref, sizeof y) == 0);
    free(w);
}

/* ---- independent emulation of ggml's AVX2 lanes ---- */

/* hsum_float_8 written out: (l0+l4) + (l2+l6), (l1+l5) + (l3+l7), then their sum. */
static float emulate_hsum8(const float l[8]) {
    const float a = l[0] + l[4], b = l[1] + l[5], c = l[2] + l[6], e = l[3] + l[7];
    return (a + c) + (b + e);
}

static float emulate_q8_0(const bn_q8_0_block *w, const float *x, int cols) {
    float lanes[8] = {0};
    for (int b = 0; b < cols / 32; b++) {
        bn_q8_0_block a;
        bn_quantize_row_q8_0(&a, x + 32 * b, 32);
        const float d = bn_fp16_to_fp32(w[b].d) * bn_fp16_to_fp32(a.d);
        int32_t ints[8] = {0};
        for (int i = 0; i < 32; i++) ints[i >> 2] += w[b].qs[i] * a.qs[i]; /* a is never -128 */
        for (int l = 0; l < 8; l++) lanes[l] = fmaf(d, (float)ints[l], lanes[l]);
    }
    return emulate_hsum8(lanes);
}

/* The 256 codes of a Q6_K block as ggml's generic kernel unpacks them (aux8 - 32). */
static void unpack_q6_k(int8_t out[256], const bn_block_q6_k *x) {
    const uint8_t *q4 = x->ql, *qh = x->qh;
    for (int j = 0; j < 256; j += 128, q4 += 64, qh += 32)
        for (int l = 0; l < 32; l++) {
            out[j + l + 0] = (int8_t)(((q4[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            out[j + l + 32] = (int8_t)(((q4[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            out[j + l + 64] = (int8_t)(((q4[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            out[j + l + 96] = (int8_t)(((q4[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
}

static float emulate_q6_k(const bn_block_q6_k *w, const float *x, int cols) {
    float lanes[8] = {0};
    for (int b = 0; b < cols / 256; b++) {
        bn_q8k_block a;
        bn_quantize_row_q8k(&a, x + 256 * b, 256);
        int8_t q[256];
        unpack_q6_k(q, &w[b]);
        int32_t ints[8] = {0};
        for (int v = 0; v < 256; v++) ints[(v % 32) / 4] += w[b].scales[v / 16] * q[v] * a.qs[v];
        const float d = a.d * bn_fp16_to_fp32(w[b].d);
        for (int l = 0; l < 8; l++) lanes[l] = fmaf(d, (float)ints[l], lanes[l]);
    }
    return emulate_hsum8(lanes);
}

static float emulate_q4_k(const bn_block_q4_k *w, const float *x, int cols) {
    float lanes[8] = {0}, mins[4] = {0};
    for (int b = 0; b < cols / 256; b++) {
        bn_q8k_block a;
        bn_quantize_row_q8k(&a, x + 256 * b, 256);
        /* ggml's utmp shuffle of the 12 scale bytes: scales 0..7 then mins 0..7 */
        uint32_t u[4];
        memcpy(u, w[b].scales, 12);
        u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
        const uint32_t uaux = u[1] & 0x3f3f3f3f;
        u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
        u[2] = uaux;
        u[0] &= 0x3f3f3f3f;
        uint8_t sm[16];
        memcpy(sm, u, 16);
        for (int i = 0; i < 4; i++) {
            int32_t p = 0;
            for (int k = 2 * i; k < 2 * i + 2; k++) p += sm[8 + k] * (a.bsums[2 * k] + a.bsums[2 * k + 1]);
            mins[i] = fmaf(-a.d * bn_fp16_to_fp32(w[b].dmin), (float)p, mins[i]);
        }
        int32_t ints[8] = {0};
        for (int v = 0; v < 256; v++) {
            const uint8_t byte = w[b].qs[32 * (v / 64) + v % 32];
            const int code = (v % 64) < 32 ? byte & 0xF : byte >> 4;
            ints[(v % 32) / 4] += sm[v / 32] * code * a.qs[v];
        }
        const float d = a.d * bn_fp16_to_fp32(w[b].d);
        for (int l = 0; l < 8; l++) lanes[l] = fmaf(d, (float)ints[l], lanes[l]);
    }
    return emulate_hsum8(lanes) + ((mins[0] + mins[2]) + (mins[1] + mins[3]));
}

static void test_emulation(void) {
    enum { rows = 16, n_tokens = 2 };
    const uint32_t types[] = {BN_TYPE_Q8_0, BN_TYPE_Q6_K, BN_TYPE_Q4_K};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        const int cols = types[i] == BN_TYPE_Q8_0 ? 3200 : 2560;
        void *w = random_weights(types[i], rows, cols);
        bn_head_matrix m = make_matrix(types[i], rows, cols, w);
        float *x = malloc((size_t)n_tokens * cols * sizeof *x), y[n_tokens * rows];
        for (int j = 0; j < n_tokens * cols; j++) x[j] = rand_float(3.0f);
        const size_t row_bytes = bn_head_row_bytes(types[i], cols);
        for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
            if (!bn_isa_supported((bn_isa)isa)) continue;
            bn_isa_set_active((bn_isa)isa);
            bn_head_matmul(NULL, y, &m, x, n_tokens);
            int bad = 0;
            for (int t = 0; t < n_tokens; t++)
                for (int r = 0; r < rows; r++) {
                    const void *wr = (const uint8_t *)w + (size_t)r * row_bytes;
                    const float *xt = x + (size_t)t * cols;
                    const float want = types[i] == BN_TYPE_Q8_0   ? emulate_q8_0(wr, xt, cols)
                                       : types[i] == BN_TYPE_Q6_K ? emulate_q6_k(wr, xt, cols)
                                                                  : emulate_q4_k(wr, xt, cols);
                    bad += memcmp(&want, &y[(size_t)t * rows + r], sizeof want) != 0;
                }
            CHECKF(bad == 0, "%s path %s: %d outputs differ from the emulation",
                   bn_quant_format_get(types[i])->name, bn_isa_name((bn_isa)isa), bad);
        }
        bn_isa_set_active(bn_isa_best_supported());
        free(x), free(w);
    }
}

/* ---- errors, scratch, registry ---- */

static void test_init_errors(void) {
    bn_head_matrix m;
    bn_error err;
    static uint8_t data[4096];
    CHECK(bn_head_matrix_init(&m, "output.weight", 2 /* Q4_0 */, 4, 32, data, &err) == BN_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.message, "output.weight");
    CHECK_STR_CONTAINS(err.message, "id 2");
    CHECK(bn_head_matrix_init(&m, "token_embd.weight", BN_TYPE_I2_S, 4, 128, data, &err) == BN_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.message, "token_embd.weight");
    CHECK(bn_head_matrix_init(&m, "output.weight", 99, 4, 32, data, &err) == BN_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.message, "99");
    CHECK(bn_head_matrix_init(&m, "output.weight", BN_TYPE_Q6_K, 4, 320, data, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "output.weight");
    CHECK(bn_head_matrix_init(&m, "output.weight", BN_TYPE_Q4_K, 4, 128, data, &err) == BN_ERR_FORMAT);
    CHECK(bn_head_matrix_init(&m, "output.weight", BN_TYPE_Q8_0, 4, 48, data, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "output.weight");
    CHECK(bn_head_matrix_init(&m, "output.weight", BN_TYPE_F32, 0, 48, data, &err) == BN_ERR_FORMAT);
    CHECK(bn_head_matrix_init(&m, "output.weight", BN_TYPE_F32, 2, 48, NULL, &err) == BN_ERR_INVALID);
    CHECK_OK(bn_head_matrix_init(&m, "output.weight", BN_TYPE_Q8_0, 4, 96, data, &err), &err);
    CHECK(m.rows == 4 && m.cols == 96 && m.type == BN_TYPE_Q8_0 && m.data == data);
    CHECK(bn_head_row_bytes(BN_TYPE_Q8_0, 96) == 3 * 34);
    CHECK(bn_head_row_bytes(BN_TYPE_Q4_K, 512) == 2 * 144);
    CHECK(bn_head_row_bytes(BN_TYPE_Q6_K, 256) == 210);
    CHECK(bn_head_row_bytes(BN_TYPE_BF16, 7) == 14);
    CHECK(bn_head_row_bytes(BN_TYPE_Q6_K, 100) == 0);
}

static void test_reserve_and_registry(void) {
    bn_error err;
    void *w = random_weights(BN_TYPE_Q6_K, 16, 512);
    bn_head_matrix m = make_matrix(BN_TYPE_Q6_K, 16, 512, w);
    CHECK_OK(bn_head_reserve(&m, 9, &err), &err);
    CHECK(bn_thread_scratch_size(BN_SCRATCH_HEAD_BLOCKS) >= 9 * 2 * sizeof(bn_q8k_block));
    float x[3 * 512], y[3 * 16];
    for (int i = 0; i < 3 * 512; i++) x[i] = rand_float(1.0f);
    for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
        if (!bn_isa_supported((bn_isa)isa)) continue;
        bn_isa_set_active((bn_isa)isa);
        bn_kernel_reset_counts();
        bn_head_matmul(NULL, y, &m, x, 1);
        bn_head_matmul(NULL, y, &m, x, 3);
        bn_kernel_stats stats[BN_KERNEL_MAX];
        const size_t n = bn_kernel_snapshot(stats, BN_KERNEL_MAX);
        char gemv[64], gemm[64];
        /* the neondot path runs (and counts) the neon kernel */
        const char *path = bn_isa_name(isa == BN_ISA_NEONDOT ? BN_ISA_NEON : (bn_isa)isa);
        snprintf(gemv, sizeof gemv, "cpu.head.q6_k.gemv.%s", path);
        snprintf(gemm, sizeof gemm, "cpu.head.q6_k.gemm.%s", path);
        bool seen_gemv = false, seen_gemm = false;
        for (size_t i = 0; i < n; i++) {
            seen_gemv |= strcmp(stats[i].id, gemv) == 0 && stats[i].calls == 1;
            seen_gemm |= strcmp(stats[i].id, gemm) == 0 && stats[i].calls == 1;
        }
        CHECKF(seen_gemv && seen_gemm, "%s and %s counted once", gemv, gemm);
    }
    bn_isa_set_active(bn_isa_best_supported());
    free(w);
}

int main(void) {
    bn_error err;
    bn_test_rng_seed(&rng, 4321);
    for (int t = 2; t <= 3; t++) CHECK_OK(bn_threadpool_create(t, &pools[t], &err), &err);
    printf("paths:");
    for (int isa = 0; isa < BN_ISA_COUNT; isa++)
        if (bn_isa_supported((bn_isa)isa)) printf(" %s", bn_isa_name((bn_isa)isa));
    printf("\n");
    test_dequantize_blocks();
    test_type(BN_TYPE_F32, 37, 100);
    test_type(BN_TYPE_F32, 20, 64);
    test_type(BN_TYPE_BF16, 37, 100);
    test_type(BN_TYPE_BF16, 3, 16);
    test_type(BN_TYPE_Q8_0, 37, 96);
    test_type(BN_TYPE_Q8_0, 4, 2560);
    test_type(BN_TYPE_Q6_K, 37, 512);
    test_type(BN_TYPE_Q6_K, 3, 2560);
    test_type(BN_TYPE_Q4_K, 37, 512);
    test_type(BN_TYPE_Q4_K, 3, 2560);
    test_f16_head();
    test_emulation();
    test_init_errors();
    test_reserve_and_registry();
    for (int t = 2; t <= 3; t++) bn_threadpool_free(pools[t]);
    return bn_test_finish("test_head_kernels");
}
