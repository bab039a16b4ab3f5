/*
 * test_ops.c: the scalar reference of every non-matmul op in kernels/ops.h, checked against
 * closed forms and independent loops written here: RMSNorm of a constant vector, RoPE identity
 * at position 0 and rotation by known angles (NEOX pairing) up to position INT32_MAX, softmax of
 * equal inputs and of every special input (NaN, +-inf, denormals, huge ranges), attention with one
 * position and with two (closed form) and against a double loop, conv1d against a naive loop on
 * dequantized weights, pooling by hand, batchnorm by formula, activations at known points, and
 * every error path (names the field / id). The scalar path is forced; the registry must count
 * the scalar kernel ids.
 */
#include "core/fp16.h"
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

static bool close_rel(double got, double want, double tol) {
    return fabs(got - want) <= tol * fabs(want) + 1e-30;
}

static uint64_t calls_of(const char *id) {
    bn_kernel_stats stats[BN_KERNEL_MAX];
    size_t n = bn_kernel_snapshot(stats, BN_KERNEL_MAX);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(stats[i].id, id)) return stats[i].calls;
    return 0;
}

static void test_rmsnorm(void) {
    /* constant vector c: mean(x^2) = c^2, so out = c / sqrt(c^2 + eps) * w */
    float x[7], w[7], out[7];
    for (int i = 0; i < 7; i++) {
        x[i] = -3.0f;
        w[i] = (float)(i + 1);
    }
    bn_rmsnorm(out, x, w, 1, 7, 1e-6f);
    for (int i = 0; i < 7; i++)
        CHECKF(close_rel(out[i], -3.0 / sqrt(9.0 + 1e-6) * (i + 1), 1e-6), "i=%d got %g", i,
               out[i]);
    /* known vector: x = (1, 2, 3, 4): mean square 7.5 */
    float y[4] = {1, 2, 3, 4}, ones[4] = {1, 1, 1, 1}, outy[4];
    bn_rmsnorm(outy, y, ones, 1, 4, 0.0f);
    for (int i = 0; i < 4; i++) CHECK(close_rel(outy[i], (i + 1) / sqrt(7.5), 1e-6));
    /* in place, and each token independent of the batch */
    float batch[3 * 5], alone[5], wts[5] = {0.5f, 1, 2, -1, 3};
    for (int i = 0; i < 15; i++) batch[i] = (float)((i * 37) % 11) - 5.0f;
    bn_rmsnorm(alone, batch + 5, wts, 1, 5, 1e-5f);
    bn_rmsnorm(batch, batch, wts, 3, 5, 1e-5f);
    CHECK(memcmp(alone, batch + 5, sizeof alone) == 0);
    /* huge values (spec 4.1, as bitnet.cpp): each square is rounded to float first, so 3e30^2
     * overflows to inf, the scale is 1 / sqrt(inf) = 0 and the outputs are zeros; 3e18 squares
     * to a finite 9e36 and normalizes as usual */
    float huge[2] = {3e30f, -4e30f}, outh[2];
    bn_rmsnorm(outh, huge, ones, 1, 2, 1e-6f);
    CHECKF(outh[0] == 0.0f && outh[1] == 0.0f, "got %g %g", outh[0], outh[1]);
    float large[2] = {3e18f, -4e18f};
    bn_rmsnorm(outh, large, ones, 1, 2, 1e-6f);
    CHECK(close_rel(outh[0], 3.0 / sqrt(12.5), 1e-6) &&
          close_rel(outh[1], -4.0 / sqrt(12.5), 1e-6));
    /* the squares are rounded to float before the double sum: 1 + 2^-12 squares to 1 + 2^-11
     * in float (the 2^-24 term is lost), so the mean is exactly 1 + 2^-11 and with eps 0 the
     * output is x / sqrtf(1 + 2^-11); a double square would keep the 2^-24 */
    float one_plus[1] = {1.0f + 0x1p-12f}, out1[1];
    bn_rmsnorm(out1, one_plus, ones, 1, 1, 0.0f);
    CHECKF(out1[0] == one_plus[0] * (1.0f / sqrtf(1.0f + 0x1p-11f)), "got %a", out1[0]);
    CHECK(calls_of("cpu.rmsnorm.scalar") >= 4);
}

static void test_rope(void) {
    /* position 0 is the identity, bit for bit */
    float x[2 * 6], orig[2 * 6];
    for (int i = 0; i < 12; i++) x[i] = orig[i] = (float)i * 0.37f - 2.0f;
    bn_rope_neox(x, 2, 6, 6, 0, 10000.0f);
    CHECK(memcmp(x, orig, sizeof x) == 0);
    /* head_dim 4, rope_dim 4, base 100: pairs (0,2) and (1,3), theta_0 = pos, theta_1 = pos/10 */
    float v[4] = {1.0f, 2.0f, 3.0f, -1.0f};
    bn_rope_neox(v, 1, 4, 4, 3, 100.0f);
    double t0 = 3.0, t1 = 0.3;
    CHECK(close_rel(v[0], 1.0 * cos(t0) - 3.0 * sin(t0), 1e-6));
    CHECK(close_rel(v[2], 1.0 * sin(t0) + 3.0 * cos(t0), 1e-6));
    CHECK(close_rel(v[1], 2.0 * cos(t1) + 1.0 * sin(t1), 1e-6));
    CHECK(close_rel(v[3], 2.0 * sin(t1) - 1.0 * cos(t1), 1e-6));
    /* dims >= rope_dim untouched: head_dim 6, rope_dim 4 */
    float w[6] = {1, 2, 3, 4, 5, 6};
    bn_rope_neox(w, 1, 6, 4, 7, 10000.0f);
    CHECK(w[4] == 5.0f && w[5] == 6.0f);
    CHECK(close_rel(w[0], 1.0 * cos(7.0) - 3.0 * sin(7.0), 1e-6));
    /* INT32_MAX: the angle is (float)INT32_MAX = 2^31 (spec 4.1: theta starts as the float
     * position), cos(2^31) = 0.23781619..., sin(2^31) = -0.97131017...; finite output, norm of
     * every pair preserved */
    float big[4] = {1.0f, 0.0f, 0.0f, 0.0f};
    bn_rope_neox(big, 1, 4, 4, INT32_MAX, 500000.0f);
    CHECKF(close_rel(big[0], 0.23781619457280337, 1e-6), "got %.9g", big[0]);
    CHECKF(close_rel(big[2], -0.9713101757929392, 1e-6), "got %.9g", big[2]);
    /* the angles of later pairs are iterated in float: pair 1 of head_dim 4, base 100 at pos 3
     * is (float)3 * powf(100, -0.5f), and pair 2 of head_dim 8 at pos 7, base 10000, is
     * (7 * ts) * ts with ts = powf(10000, -0.25f), each product rounded */
    float p8[8] = {0, 0, 1.0f, 0, 0, 0, 0, 0};
    bn_rope_neox(p8, 1, 8, 8, 7, 10000.0f);
    const float ts = powf(10000.0f, -0.25f), theta2 = (7.0f * ts) * ts;
    CHECKF(p8[2] == fmaf(1.0f, cosf(theta2), -(0.0f * sinf(theta2))) && p8[6] == sinf(theta2),
           "got %a %a", p8[2], p8[6]);
    float r[2 * 128];
    for (int i = 0; i < 256; i++) r[i] = sinf((float)i) * 3.0f;
    double norms[128];
    for (int i = 0; i < 64; i++)
        for (int h = 0; h < 2; h++) {
            float a = r[h * 128 + i], b = r[h * 128 + i + 64];
            norms[h * 64 + i] = sqrt((double)a * a + (double)b * b);
        }
    bn_rope_neox(r, 2, 128, 128, INT32_MAX, 500000.0f);
    bool ok = true;
    for (int i = 0; i < 64; i++)
        for (int h = 0; h < 2; h++) {
            float a = r[h * 128 + i], b = r[h * 128 + i + 64];
            ok &= isfinite(a) && isfinite(b) &&
                  close_rel(sqrt((double)a * a + (double)b * b), norms[h * 64 + i], 1e-6);
        }
    CHECK(ok);
    CHECK(calls_of("cpu.rope_neox.scalar") >= 5);
}

static double sum_of(const float *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s;
}

static void test_softmax(void) {
    float eq[5] = {2.5f, 2.5f, 2.5f, 2.5f, 2.5f};
    bn_softmax(eq, 5);
    for (int i = 0; i < 5; i++) CHECK(close_rel(eq[i], 0.2, 1e-7));
    float two[2] = {0.0f, (float)log(2.0)};
    bn_softmax(two, 2);
    CHECK(close_rel(two[0], 1.0 / 3.0, 1e-6) && close_rel(two[1], 2.0 / 3.0, 1e-6));
    /* shift invariance far from 0 */
    float shifted[2] = {1000.0f, 1000.0f + (float)log(2.0)};
    bn_softmax(shifted, 2);
    CHECK(close_rel(shifted[0], 1.0 / 3.0, 1e-4));
    /* NaN anywhere: all NaN */
    float nan_in[3] = {1.0f, NAN, 2.0f};
    bn_softmax(nan_in, 3);
    CHECK(isnan(nan_in[0]) && isnan(nan_in[1]) && isnan(nan_in[2]));
    /* +inf entries share the mass */
    float pinf[4] = {INFINITY, 1.0f, INFINITY, -INFINITY};
    bn_softmax(pinf, 4);
    CHECK(pinf[0] == 0.5f && pinf[1] == 0.0f && pinf[2] == 0.5f && pinf[3] == 0.0f);
    /* all -inf: uniform */
    float ninf[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    bn_softmax(ninf, 4);
    for (int i = 0; i < 4; i++) CHECK(ninf[i] == 0.25f);
    /* some -inf: those get 0 */
    float some[3] = {-INFINITY, 0.0f, -INFINITY};
    bn_softmax(some, 3);
    CHECK(some[0] == 0.0f && some[1] == 1.0f && some[2] == 0.0f);
    /* huge range: x - max overflows to -inf, giving 0 */
    float range[3] = {-3e38f, 3e38f, FLT_MAX};
    bn_softmax(range, 3);
    CHECK(range[0] == 0.0f && !isnan(range[1]) && close_rel(sum_of(range, 3), 1.0, 1e-6));
    CHECK(close_rel(range[1], 1.0 / (1.0 + exp(FLT_MAX - 3e38f)), 1e-6) || range[1] == 0.0f);
    /* denormals behave like 0 */
    float den[2] = {1e-40f, 0.0f};
    bn_softmax(den, 2);
    CHECK(close_rel(den[0], 0.5, 1e-6) && close_rel(den[1], 0.5, 1e-6));
    /* long vector sums to 1 */
    float *big = malloc(10007 * sizeof *big);
    for (int i = 0; i < 10007; i++) big[i] = (float)((i * 7919) % 2001) * 0.01f - 10.0f;
    bn_softmax(big, 10007);
    bool finite = true;
    for (int i = 0; i < 10007; i++) finite &= isfinite(big[i]) && big[i] >= 0.0f;
    CHECK(finite && close_rel(sum_of(big, 10007), 1.0, 1e-5));
    free(big);
    bn_softmax(NULL, 0); /* no-op */
    CHECK(calls_of("cpu.softmax.scalar") >= 9);
}

static void test_elementwise(void) {
    float gate[6] = {-2.0f, -0.0f, 0.5f, 3.0f, NAN, INFINITY};
    float up[6] = {5.0f, 5.0f, 2.0f, -1.0f, 1.0f, 2.0f};
    float out[6];
    bn_relu2_mul(out, gate, up, 6);
    CHECK(out[0] == 0.0f && out[1] == 0.0f && out[2] == 0.5f && out[3] == -9.0f);
    CHECK(isnan(out[4]) && out[5] == INFINITY);
    float sg[4] = {1.0f, -1.0f, 0.0f, 3.0f}, su[4] = {1.0f, 2.0f, 7.0f, -1.0f}, so[4];
    bn_silu_mul(so, sg, su, 4);
    CHECK(close_rel(so[0], 0.7310585786300049, 1e-6));
    CHECK(close_rel(so[1], 2 * -0.2689414213699951, 1e-6));
    CHECK(so[2] == 0.0f && close_rel(so[3], -2.8577223804672998, 1e-6));
    float a[3] = {1.0f, 2.0f, -3.0f}, b[3] = {0.5f, -2.0f, 1e30f};
    bn_add(a, b, 3);
    CHECK(a[0] == 1.5f && a[1] == 0.0f && a[2] == 1e30f);

    /* activations at known points */
    float x[9] = {1.0f, -1.0f, 3.0f, -3.0f, 0.5f, 0.0f, -10.0f, -INFINITY, INFINITY};
    const double gelu[9] = {0.8411919906082768,
                            -0.15880800939172324,
                            2.996362607918227,
                            -0.0036373920817729943,
                            0.34571400982514394,
                            0.0,
                            -1.2040923482098023e-37,
                            0.0,
                            INFINITY};
    const double silu[9] = {0.7310585786300049,
                            -0.2689414213699951,
                            2.8577223804672998,
                            -0.14227761953270035,
                            0.3112296656009273,
                            0.0,
                            -0.0004539786870243439,
                            0.0,
                            INFINITY};
    float y[9];
    bn_activation_apply(y, x, 9, BN_ACT_GELU);
    for (int i = 0; i < 9; i++)
        CHECKF(y[i] == gelu[i] || close_rel(y[i], gelu[i], 1e-6), "gelu(%g) = %g", x[i], y[i]);
    bn_activation_apply(y, x, 9, BN_ACT_SILU);
    for (int i = 0; i < 9; i++)
        CHECKF(y[i] == silu[i] || close_rel(y[i], silu[i], 1e-6), "silu(%g) = %g", x[i], y[i]);
    bn_activation_apply(y, x, 9, BN_ACT_RELU);
    CHECK(y[0] == 1.0f && y[1] == 0.0f && y[5] == 0.0f && y[7] == 0.0f && y[8] == INFINITY);
    bn_activation_apply(y, x, 9, BN_ACT_RELU2);
    CHECK(y[0] == 1.0f && y[2] == 9.0f && y[3] == 0.0f && y[4] == 0.25f);
    float n[1] = {NAN}, yn[1];
    bn_activation_apply(yn, n, 1, BN_ACT_GELU);
    CHECK(isnan(yn[0]));
    bn_activation_apply(yn, n, 1, BN_ACT_RELU);
    CHECK(isnan(yn[0]));
    CHECK(calls_of("cpu.activation.scalar") >= 6 && calls_of("cpu.add.scalar") >= 1);
}

static void test_embedding(void) {
    const uint16_t table[3 * 4] = {0x3c00, 0xc000, 0x3800, 0x7bff, /* 1, -2, 0.5, 65504 */
                                   0x0001, 0x8000, 0x7c00, 0x3555, /* 2^-24, -0, inf, ~1/3 */
                                   0,      0,      0,      0};
    float out[4];
    bn_error err;
    CHECK_OK(bn_embedding_lookup_f16(out, table, 3, 4, 0, &err), &err);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0.5f && out[3] == 65504.0f);
    CHECK_OK(bn_embedding_lookup_f16(out, table, 3, 4, 1, &err), &err);
    CHECK(out[0] == ldexpf(1.0f, -24) && out[1] == 0.0f && signbit(out[1]) && out[2] == INFINITY);
    CHECK(close_rel(out[3], 0.333251953125, 0));
    CHECK(bn_embedding_lookup_f16(out, table, 3, 4, 3, &err) == BN_ERR_RANGE);
    CHECK_STR_CONTAINS(err.message, "3");
    CHECK_STR_CONTAINS(err.message, "3 rows");
    CHECK(bn_embedding_lookup_f16(out, table, 3, 4, -7, &err) == BN_ERR_RANGE);
    CHECK_STR_CONTAINS(err.message, "-7");
    /* every F16 value converts exactly as core/fp16 does */
    uint16_t *all = malloc(65536 * sizeof *all);
    float *got = malloc(65536 * sizeof *got);
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    CHECK_OK(bn_embedding_lookup_f16(got, all, 1, 65536, 0, &err), &err);
    int wrong = 0;
    for (int i = 0; i < 65536; i++) {
        float want = bn_fp16_to_fp32((uint16_t)i);
        wrong += memcmp(&got[i], &want, sizeof want) != 0;
    }
    CHECKF(wrong == 0, "%d F16 values convert differently", wrong);
    free(all);
    free(got);
    CHECK(calls_of("cpu.embedding_f16.scalar") == 3);
}

/* Attention computed here in double: the independent check of the reference. */
static void naive_attention(double *out, const float *q, const float *k, const float *v,
                            int n_heads, int n_kv, int hd, int pos) {
    int row = n_kv * hd;
    double *s = malloc((size_t)(pos + 1) * sizeof *s);
    for (int h = 0; h < n_heads; h++) {
        int g = h / (n_heads / n_kv);
        double max = -INFINITY, sum = 0;
        for (int t = 0; t <= pos; t++) {
            double d = 0;
            for (int i = 0; i < hd; i++) d += (double)q[h * hd + i] * k[t * row + g * hd + i];
            s[t] = d / sqrt(hd);
            if (s[t] > max) max = s[t];
        }
        for (int t = 0; t <= pos; t++) sum += s[t] = exp(s[t] - max);
        for (int i = 0; i < hd; i++) {
            double o = 0;
            for (int t = 0; t <= pos; t++) o += s[t] / sum * v[t * row + g * hd + i];
            out[h * hd + i] = o;
        }
    }
    free(s);
}

static void test_attention(void) {
    /* one position: the output of head h is v of KV head h / 2 (4 heads, 2 KV heads) */
    enum { H = 4, KV = 2, D = 5 };
    float q[H * D], k[KV * D], v[KV * D], out[H * D], scratch[1];
    uint16_t k16[KV * D], v16[KV * D];
    for (int i = 0; i < H * D; i++) q[i] = (float)i * 0.1f - 1.0f;
    for (int i = 0; i < KV * D; i++) {
        k[i] = (float)i * 0.25f;
        v[i] = (float)(i + 1) * 0.5f; /* exact in F16 */
        k16[i] = bn_fp32_to_fp16(k[i]);
        v16[i] = bn_fp32_to_fp16(v[i]);
    }
    bn_attention(out, q, k, v, BN_TYPE_F32, BN_TYPE_F32, H, KV, D, 0, scratch);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < D; i++) CHECK(out[h * D + i] == v[(h / 2) * D + i]);
    bn_attention(out, q, k16, v16, BN_TYPE_F16, BN_TYPE_F16, H, KV, D, 0, scratch);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < D; i++) CHECK(out[h * D + i] == v[(h / 2) * D + i]);

    /* two positions, one head, head_dim 2: scores (q.k0, q.k1)/sqrt(2) = (2/sqrt2, 0) */
    float q2[2] = {2.0f, 0.0f}, k2[4] = {1.0f, 0.0f, 0.0f, 5.0f}, v2[4] = {1.0f, 3.0f, -1.0f, 7.0f};
    float o2[2], s2[2];
    bn_attention(o2, q2, k2, v2, BN_TYPE_F32, BN_TYPE_F32, 1, 1, 2, 1, s2);
    double p0 = 1.0 / (1.0 + exp(-sqrt(2.0)));
    CHECK(close_rel(o2[0], p0 * 1.0 + (1 - p0) * -1.0, 1e-6));
    CHECK(close_rel(o2[1], p0 * 3.0 + (1 - p0) * 7.0, 1e-6));

    /* random, against the double loop here */
    enum { H2 = 6, KV2 = 3, D2 = 37, POS = 40 };
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 7);
    float *qq = malloc(H2 * D2 * sizeof(float)), *kk = malloc((POS + 1) * KV2 * D2 * sizeof(float));
    float *vv = malloc((POS + 1) * KV2 * D2 * sizeof(float)), *oo = malloc(H2 * D2 * sizeof(float));
    double *want = malloc(H2 * D2 * sizeof(double));
    float sc[POS + 1];
    for (int i = 0; i < H2 * D2; i++) qq[i] = bn_test_rng_float(&rng) * 2 - 1;
    for (int i = 0; i < (POS + 1) * KV2 * D2; i++) {
        kk[i] = bn_test_rng_float(&rng) * 2 - 1;
        vv[i] = bn_test_rng_float(&rng) * 2 - 1;
    }
    naive_attention(want, qq, kk, vv, H2, KV2, D2, POS);
    bn_attention(oo, qq, kk, vv, BN_TYPE_F32, BN_TYPE_F32, H2, KV2, D2, POS, sc);
    bool ok = true;
    for (int i = 0; i < H2 * D2; i++) ok &= fabs(oo[i] - want[i]) <= 1e-6;
    CHECK(ok);
    free(qq);
    free(kk);
    free(vv);
    free(oo);
    free(want);
    CHECK(calls_of("cpu.attention.scalar") == 4);
}

/* I2_S packing written from the spec (section 2): 128-weight blocks of 32 bytes, byte j holds
 * weights j, 32+j, 64+j, 96+j in bits 7:6, 5:4, 3:2, 1:0; codes w + 1; scale at n/4. */
static uint8_t *pack_i2s(const int8_t *w, size_t n, float scale) {
    uint8_t *data = calloc(n / 4 + 32, 1);
    for (size_t i = 0; i < n; i++) {
        size_t block = i / 128, within = i % 128;
        data[block * 32 + within % 32] |= (uint8_t)((w[i] + 1) << (6 - 2 * (within / 32)));
    }
    memcpy(data + n / 4, &scale, sizeof scale);
    return data;
}

static void test_conv1d(void) {
    bn_error err;
    int len = 0;
    bn_conv1d_shape s = {.in_channels = 1,
                         .out_channels = 1,
                         .length = 10,
                         .kernel = 3,
                         .stride = 2,
                         .padding = 1,
                         .dilation = 2};
    CHECK_OK(bn_conv1d_output_length(&s, &len, &err), &err);
    CHECK(len == 4); /* span 5, padded 12: (12 - 5) / 2 + 1 */

    /* invalid shapes name the field */
    struct {
        bn_conv1d_shape shape;
        const char *field;
    } bad[] = {
        {{0, 1, 10, 3, 1, 0, 1}, "in_channels"},
        {{1, 0, 10, 3, 1, 0, 1}, "out_channels"},
        {{1, 1, 0, 3, 1, 0, 1}, "length"},
        {{1, 1, 10, 0, 1, 0, 1}, "kernel"},
        {{1, 1, 10, 3, 0, 0, 1}, "stride"},
        {{1, 1, 10, 3, 1, -1, 1}, "padding"},
        {{1, 1, 10, 3, 1, 0, -2}, "dilation"},
        {{1, 1, 4, 6, 1, 0, 1}, "kernel 6"},
        {{1, 1, 4, 3, 1, 0, 3}, "dilation 3"},
        {{1 << 20, 1, 4, 1 << 10, 1, 2000, 1}, "in_channels"},
        {{1, 1, INT32_MAX, 1, 1, 1, 1}, "padded length"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECKF(bn_conv1d_output_length(&bad[i].shape, &len, &err) == BN_ERR_INVALID, "case %zu", i);
        CHECK_STR_CONTAINS(err.message, bad[i].field);
    }

    /* random shapes against a naive loop on dequantized weights and input */
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 11);
    const bn_conv1d_shape shapes[] = {
        {32, 4, 17, 1, 1, 0, 1}, {8, 16, 23, 4, 1, 1, 1}, {16, 8, 31, 3, 2, 2, 2},
        {5, 128, 9, 3, 3, 4, 1}, {64, 2, 50, 5, 1, 0, 3}, {1, 32, 7, 4, 1, 3, 2},
    };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const bn_conv1d_shape *sh = &shapes[si];
        size_t nw = (size_t)sh->out_channels * sh->in_channels * sh->kernel;
        size_t nx = (size_t)sh->in_channels * sh->length;
        int8_t *w = malloc(nw);
        float *x = malloc(nx * sizeof *x);
        for (size_t i = 0; i < nw; i++) w[i] = (int8_t)bn_test_rng_range(&rng, -1, 1);
        for (size_t i = 0; i < nx; i++) x[i] = (bn_test_rng_float(&rng) * 2 - 1) * 3.0f;
        float s_w = 0.37f;
        uint8_t *packed = pack_i2s(w, nw, s_w);
        CHECK_OK(bn_conv1d_output_length(sh, &len, &err), &err);
        float *out = malloc((size_t)sh->out_channels * len * sizeof *out);
        CHECK_OK(bn_conv1d_ternary(out, packed, x, sh, &err), &err);
        double absmax = 0;
        for (size_t i = 0; i < nx; i++) absmax = fmax(absmax, fabs(x[i]));
        float s_x = (float)(127.0 / fmax(absmax, 1e-5));
        bool ok = true;
        for (int o = 0; o < sh->out_channels; o++)
            for (int l = 0; l < len; l++) {
                double want = 0, mag = 0;
                for (int c = 0; c < sh->in_channels; c++)
                    for (int k = 0; k < sh->kernel; k++) {
                        long p = (long)l * sh->stride - sh->padding + (long)k * sh->dilation;
                        if (p < 0 || p >= sh->length) continue;
                        double xq =
                            fmin(fmax(nearbyintf(x[c * sh->length + p] * s_x), -128), 127) / s_x;
                        double wd =
                            w[((size_t)o * sh->in_channels + c) * sh->kernel + k] * (double)s_w;
                        want += wd * xq;
                        mag += fabs(wd * xq);
                    }
                ok &= fabs(out[(size_t)o * len + l] - want) <= 1e-5 * mag + 1e-30;
            }
        CHECKF(ok, "shape %zu", si);
        free(w);
        free(x);
        free(packed);
        free(out);
    }
    /* weights total not a multiple of 128, code 3, non-finite input */
    float x[4 * 32] = {0};
    float out[32 * 4];
    uint8_t data[32 + 32] = {0};
    bn_conv1d_shape odd = {3, 1, 4, 1, 1, 0, 1};
    CHECK(bn_conv1d_ternary(out, data, x, &odd, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "128");
    bn_conv1d_shape one = {32, 4, 4, 1, 1, 0, 1};
    memset(data, 0x55, 32); /* all code 1 (0) */
    data[5] = 0x5d;         /* bits 3:2 = 3: weight 64 + 5 */
    CHECK(bn_conv1d_ternary(out, data, x, &one, &err) == BN_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.message, "weight 69");
    data[5] = 0x55;
    x[7] = INFINITY;
    CHECK(bn_conv1d_ternary(out, data, x, &one, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "input[7]");
    x[7] = 0;
    CHECK_OK(bn_conv1d_ternary(out, data, x, &one, &err), &err); /* all-zero input: s_x = 127e5 */
    CHECK(out[0] == 0.0f && out[15] == 0.0f);
    CHECK(calls_of("cpu.conv1d.scalar") == 7);
}

static void test_pooling(void) {
    bn_error err;
    float in[2 * 5] = {1, 3, 2, 5, 4, -1, -3, NAN, -2, -4};
    bn_pool1d_shape s = {.channels = 2, .length = 5, .kernel = 2, .stride = 2, .padding = 1};
    int len = 0;
    CHECK_OK(bn_pool1d_output_length(&s, &len, &err), &err);
    CHECK(len == 3);
    float out[6];
    CHECK_OK(bn_max_pool1d(out, in, &s, &err), &err);
    CHECK(out[0] == 1 && out[1] == 3 && out[2] == 5);
    CHECK(out[3] == -1 && isnan(out[4]) && out[5] == -2); /* padding ignored, not 0 */
    CHECK_OK(bn_avg_pool1d(out, in, &s, &err), &err);
    CHECK(out[0] == 1 && out[1] == 2.5f && out[2] == 4.5f); /* divided by the valid count */
    CHECK(out[3] == -1 && isnan(out[4]) && out[5] == -3);
    bn_pool1d_shape s3 = {1, 5, 3, 1, 0};
    CHECK_OK(bn_avg_pool1d(out, in, &s3, &err), &err);
    CHECK(out[0] == 2 && close_rel(out[1], 10.0 / 3, 1e-7) && close_rel(out[2], 11.0 / 3, 1e-7));
    struct {
        bn_pool1d_shape shape;
        const char *field;
    } bad[] = {
        {{0, 5, 2, 1, 0}, "channels"}, {{1, 0, 2, 1, 0}, "length"},
        {{1, 5, 0, 1, 0}, "kernel"},   {{1, 5, 2, 0, 0}, "stride"},
        {{1, 5, 2, 1, -1}, "padding"}, {{1, 5, 2, 1, 2}, "padding 2"},
        {{1, 3, 9, 1, 2}, "kernel 9"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECKF(bn_max_pool1d(out, in, &bad[i].shape, &err) == BN_ERR_INVALID, "case %zu", i);
        CHECK_STR_CONTAINS(err.message, bad[i].field);
        CHECK(bn_avg_pool1d(out, in, &bad[i].shape, &err) == BN_ERR_INVALID);
    }
    CHECK(calls_of("cpu.max_pool1d.scalar") == 1 && calls_of("cpu.avg_pool1d.scalar") == 2);
}

static void test_batchnorm(void) {
    bn_error err;
    float x[2 * 3] = {1, 2, 3, -4, 0, 4};
    float mean[2] = {2, 0}, var[2] = {4, 0.25f}, gamma[2] = {1, -2}, beta[2] = {0.5f, 1};
    float out[6];
    CHECK_OK(bn_batchnorm(out, x, mean, var, gamma, beta, 2, 3, 1e-5f, &err), &err);
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 3; i++) {
            double scaled = (x[c * 3 + i] - mean[c]) / sqrt((double)var[c] + 1e-5f) * gamma[c];
            /* float rounding relative to the terms (the sum may cancel) */
            CHECKF(fabs(out[c * 3 + i] - (scaled + beta[c])) <=
                       1e-6 * (fabs(scaled) + fabs(beta[c])),
                   "c=%d i=%d", c, i);
        }
    float neg[2] = {4, -1};
    CHECK(bn_batchnorm(out, x, mean, neg, gamma, beta, 2, 3, 0.5f, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "var[1]");
    CHECK(bn_batchnorm(out, x, mean, var, gamma, beta, 0, 3, 1e-5f, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "channels");
    CHECK(bn_batchnorm(out, x, mean, var, gamma, beta, 2, -1, 1e-5f, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "length");
    CHECK(bn_batchnorm(out, x, mean, var, gamma, beta, 2, 3, NAN, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "eps");
    CHECK(calls_of("cpu.batchnorm.scalar") == 1);
}

int main(void) {
    bn_isa_set_active(BN_ISA_SCALAR);
    test_rmsnorm();
    test_rope();
    test_softmax();
    test_elementwise();
    test_embedding();
    test_attention();
    test_conv1d();
    test_pooling();
    test_batchnorm();
    return bn_test_finish("test_ops");
}
