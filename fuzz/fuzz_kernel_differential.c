/*
 * fuzz_kernel_differential.c: every SIMD path of the CPU kernels against the scalar reference,
 * on fuzz-chosen shapes and values. The first byte picks the op; the rest gives the shape and
 * the data (floats include NaN, infinities, denormals and huge values unless noted). Each op is
 * run through its public dispatch point (kernels/ops.h) once per supported path, forced with
 * bn_isa_set_active, and compared with the scalar run.
 *
 * Properties (the contracts of kernels/cpu/ops_isa.h and matmul_isa.h):
 *   - bit-identical (NaN matches NaN): activation quantization (int8 values, scales, sums), the
 *     ternary matmul (I2_S, TQ2_0, TQ1_0), F16 and int8 matmuls, RoPE, relu2_mul, add, ReLU,
 *     embedding rows, batchnorm, and the ops of spec section 4.1: rmsnorm, softmax, silu_mul,
 *     attention;
 *   - within 1e-5 relative: the auxiliary SiLU/GELU activations (bn_activation_apply);
 *   - the ternary matmul gives each token the same bits whether it runs alone or in a batch, and
 *     with a 2-thread pool as on the calling thread (batch and thread invariance, ops.h).
 */
#include "bitnet.h"
#include "fuzz_kernels_common.h"
#include "quant/quant_format.h"
#include "quant/ternary.h"

#define TOL 1e-5f

static bn_isa isas[BN_ISA_COUNT];
static int n_isas;
static bn_threadpool *pool2;

static void fill(float *x, size_t n, bn_fuzz_input *in, bool finite) {
    for (size_t i = 0; i < n; i++) x[i] = finite ? bn_fuzz_finite_float(in) : bn_fuzz_float(in);
}

/* Inputs of the reducing ops (rmsnorm, attention): any value, NaN and infinities included, but
 * finite ones scaled to |x| <= 1e15, so most float squares and q.k products stay finite and the
 * inputs exercise the sums rather than overflow. */
static float reduction_value(bn_fuzz_input *in) {
    float f = bn_fuzz_float(in);
    return isfinite(f) && fabsf(f) > 1e15f ? f * 1e-24f : f;
}

static void compare(const float *ref, const float *got, size_t n, float tol, const char *op, bn_isa isa) {
    for (size_t i = 0; i < n; i++)
        BN_FUZZ_CHECK(tol == 0 ? bn_fuzz_same_float(ref[i], got[i]) : bn_fuzz_close(ref[i], got[i], tol),
                      "%s on %s: element %zu is %a, scalar gives %a", op, bn_isa_name(isa), i, (double)got[i],
                      (double)ref[i]);
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) abort();
    return p;
}

static void op_quantize(bn_fuzz_input *in) {
    int n_tokens = (int)bn_fuzz_range(in, 1, 4), cols = (int)bn_fuzz_range(in, 1, 600);
    size_t n = (size_t)n_tokens * cols;
    float *x = xcalloc(n, sizeof *x);
    fill(x, n, in, bn_fuzz_bool(in));
    int8_t *q0 = xcalloc(n, 1), *q1 = xcalloc(n, 1);
    float s0[4], s1[4];
    int32_t u0[4], u1[4];
    bn_isa_set_active(BN_ISA_SCALAR);
    bn_quantize_activations(q0, s0, u0, x, n_tokens, cols);
    for (int k = 1; k < n_isas; k++) {
        bn_isa_set_active(isas[k]);
        bn_quantize_activations(q1, s1, u1, x, n_tokens, cols);
        BN_FUZZ_CHECK(memcmp(q0, q1, n) == 0, "quantize on %s: int8 values differ", bn_isa_name(isas[k]));
        for (int t = 0; t < n_tokens; t++)
            BN_FUZZ_CHECK(bn_fuzz_same_float(s0[t], s1[t]) && u0[t] == u1[t], "quantize on %s: token %d scale %a/%a sum %d/%d",
                          bn_isa_name(isas[k]), t, (double)s1[t], (double)s0[t], u1[t], u0[t]);
    }
    free(x), free(q0), free(q1);
}

static void op_ternary(bn_fuzz_input *in) {
    static const uint32_t types[] = {BN_TYPE_I2_S, BN_TYPE_TQ2_0, BN_TYPE_TQ1_0};
    uint32_t type = types[bn_fuzz_u8(in) % 3];
    int block = type == BN_TYPE_I2_S ? BN_I2S_BLOCK : BN_TQ_BLOCK;
    int rows = (int)bn_fuzz_range(in, 1, 24), cols = block * (int)bn_fuzz_range(in, 1, 4);
    int n_tokens = (int)bn_fuzz_range(in, 1, 4);
    size_t nw = (size_t)rows * cols, nx = (size_t)n_tokens * cols;
    int8_t *w = xcalloc(nw, 1);
    for (size_t i = 0; i < nw; i += 4) {
        uint8_t b = bn_fuzz_u8(in);
        for (size_t k = 0; k < 4 && i + k < nw; k++) w[i + k] = (int8_t)((b >> (2 * k) & 3) % 3) - 1;
    }
    float scale = bn_fuzz_float(in);
    size_t n_blocks = nw / BN_TQ_BLOCK + 1;
    float *block_scales = xcalloc(n_blocks, sizeof(float));
    bool per_block = bn_fuzz_bool(in);
    for (size_t b = 0; b < n_blocks; b++) block_scales[b] = bn_fuzz_float(in);
    size_t bytes;
    BN_FUZZ_CHECK(bn_ternary_bytes(&bytes, type, nw, NULL) == BN_OK, "ternary bytes");
    uint8_t *packed = xcalloc(bytes, 1);
    bn_error err;
    BN_FUZZ_CHECK(bn_ternary_pack(packed, type, w, nw, scale, per_block ? block_scales : NULL, &err) == BN_OK,
                  "pack: %s", err.message);
    bn_ternary_matrix m;
    bn_status st = bn_ternary_matrix_prepare(&m, "fuzz", type, rows, cols, packed, &err);
    if (st != BN_OK) {
        BN_FUZZ_CHECK(type == BN_TYPE_I2_S && !isfinite(scale), "prepare rejected valid data: %s", err.message);
        goto out;
    }
    float *x = xcalloc(nx, sizeof *x);
    fill(x, nx, in, true);
    int8_t *q = xcalloc(nx, 1);
    /* I2_S: a scale and a sum per token; TQ formats: Q8_K, a scale per token and 256-block and
     * 8 lane sums per block (kernels/ops.h) */
    const bool q8k = bn_ternary_type_uses_q8k(type);
    const size_t per_token = q8k ? (size_t)cols / BN_TQ_BLOCK : 1;
    float *sc = xcalloc((size_t)n_tokens * per_token, sizeof(float));
    int32_t *sums = xcalloc((size_t)n_tokens * per_token * 8, sizeof(int32_t));
    bn_isa_set_active(BN_ISA_SCALAR);
    if (q8k)
        bn_quantize_activations_q8k(q, sc, sums, x, n_tokens, cols);
    else
        bn_quantize_activations(q, sc, sums, x, n_tokens, cols);
    size_t ny = (size_t)n_tokens * rows;
    float *y0 = xcalloc(ny, sizeof(float)), *y1 = xcalloc(ny, sizeof(float));
    bn_ternary_matmul(NULL, y0, &m, q, sc, sums, n_tokens);
    for (int k = 0; k < n_isas; k++) {
        bn_isa_set_active(isas[k]);
        if (k > 0) {
            bn_ternary_matmul(NULL, y1, &m, q, sc, sums, n_tokens);
            compare(y0, y1, ny, 0, "ternary matmul", isas[k]);
        }
        if (pool2) {
            bn_ternary_matmul(pool2, y1, &m, q, sc, sums, n_tokens);
            compare(y0, y1, ny, 0, "ternary matmul, 2 threads", isas[k]);
        }
        for (int t = 0; t < n_tokens; t++) {
            bn_ternary_matmul(NULL, y1, &m, q + (size_t)t * cols, sc + (size_t)t * per_token,
                              sums + (size_t)t * per_token * (q8k ? 8 : 1), 1);
            compare(y0 + (size_t)t * rows, y1, (size_t)rows, 0, "ternary matmul, token alone", isas[k]);
        }
    }
    bn_ternary_matrix_release(&m);
    free(x), free(q), free(y0), free(y1), free(sc), free(sums);
out:
    free(w), free(block_scales), free(packed);
}

static void op_f16_int8(bn_fuzz_input *in, bool int8) {
    int rows = (int)bn_fuzz_range(in, 1, 16), cols = (int)bn_fuzz_range(in, 1, 200);
    int n_tokens = (int)bn_fuzz_range(in, 1, 4);
    size_t nw = (size_t)rows * cols, nx = (size_t)n_tokens * cols, ny = (size_t)n_tokens * rows;
    uint16_t *w = xcalloc(nw, sizeof *w);
    for (size_t i = 0; i < nw; i++) w[i] = bn_fuzz_f16(in);
    float *x = xcalloc(nx, sizeof *x), *y0 = xcalloc(ny, sizeof(float)), *y1 = xcalloc(ny, sizeof(float));
    fill(x, nx, in, int8);
    if (!int8) {
        bn_isa_set_active(BN_ISA_SCALAR);
        bn_f16_matmul(NULL, y0, w, x, rows, cols, n_tokens);
        for (int k = 1; k < n_isas; k++) {
            bn_isa_set_active(isas[k]);
            bn_f16_matmul(NULL, y1, w, x, rows, cols, n_tokens);
            compare(y0, y1, ny, 0, "f16 matmul", isas[k]);
        }
    } else {
        int8_t *q = xcalloc(nx, 1);
        float sc[4];
        int32_t sums[4];
        bn_isa_set_active(BN_ISA_SCALAR);
        bn_quantize_activations(q, sc, sums, x, n_tokens, cols);
        bn_int8_matrix m0, m1;
        bn_error err;
        BN_FUZZ_CHECK(bn_int8_matrix_from_f16(&m0, w, rows, cols, NULL, &err) == BN_OK, "int8 matrix: %s", err.message);
        bn_int8_matmul(NULL, y0, &m0, q, sc, sums, n_tokens);
        for (int k = 1; k < n_isas; k++) {
            bn_isa_set_active(isas[k]);
            BN_FUZZ_CHECK(bn_int8_matrix_from_f16(&m1, w, rows, cols, NULL, &err) == BN_OK, "int8 matrix: %s", err.message);
            BN_FUZZ_CHECK(memcmp(m0.q, m1.q, nw) == 0, "int8 matrix on %s: values differ", bn_isa_name(isas[k]));
            compare(m0.row_scales, m1.row_scales, (size_t)rows, 0, "int8 row scales", isas[k]);
            bn_int8_matmul(NULL, y1, &m1, q, sc, sums, n_tokens);
            compare(y0, y1, ny, 0, "int8 matmul", isas[k]);
            bn_int8_matrix_release(&m1);
        }
        bn_int8_matrix_release(&m0);
        free(q);
    }
    free(w), free(x), free(y0), free(y1);
}

static void op_elementwise(bn_fuzz_input *in, uint8_t which) {
    int n = (int)bn_fuzz_range(in, 0, 300);
    size_t sz = (size_t)n + 1;
    float *a = xcalloc(sz, sizeof(float)), *b = xcalloc(sz, sizeof(float));
    float *r0 = xcalloc(sz, sizeof(float)), *r1 = xcalloc(sz, sizeof(float));
    fill(a, (size_t)n, in, false);
    fill(b, (size_t)n, in, false);
    bn_activation act = (bn_activation)(bn_fuzz_u8(in) % 4);
    const char *names[] = {"relu2_mul", "silu_mul", "add", "activation", "softmax"};
    float tol = 0;
    for (int k = 0; k < n_isas; k++) {
        bn_isa_set_active(isas[k]);
        float *r = k == 0 ? r0 : r1;
        switch (which) {
        case 0: bn_relu2_mul(r, a, b, n); break;
        case 1: bn_silu_mul(r, a, b, n); tol = 0; break;
        case 2: memcpy(r, a, (size_t)n * sizeof(float)); bn_add(r, b, n); break;
        case 3: bn_activation_apply(r, a, n, act); tol = act == BN_ACT_SILU || act == BN_ACT_GELU ? TOL : 0; break;
        default: memcpy(r, a, (size_t)n * sizeof(float)); bn_softmax(r, n); tol = 0; break;
        }
        if (k > 0) compare(r0, r1, (size_t)n, tol, names[which], isas[k]);
    }
    free(a), free(b), free(r0), free(r1);
}

static void op_rmsnorm(bn_fuzz_input *in) {
    int n_tokens = (int)bn_fuzz_range(in, 1, 3), cols = (int)bn_fuzz_range(in, 1, 300);
    size_t n = (size_t)n_tokens * cols;
    float *x = xcalloc(n, sizeof(float)), *w = xcalloc((size_t)cols, sizeof(float));
    float *r0 = xcalloc(n, sizeof(float)), *r1 = xcalloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = reduction_value(in);
    for (int i = 0; i < cols; i++) w[i] = reduction_value(in);
    float eps = fabsf(bn_fuzz_float(in));
    for (int k = 0; k < n_isas; k++) {
        bn_isa_set_active(isas[k]);
        bn_rmsnorm(k ? r1 : r0, x, w, n_tokens, cols, eps);
        if (k > 0) compare(r0, r1, n, 0, "rmsnorm", isas[k]);
    }
    free(x), free(w), free(r0), free(r1);
}

static void op_rope(bn_fuzz_input *in) {
    int n_heads = (int)bn_fuzz_range(in, 1, 4), head_dim = 2 * (int)bn_fuzz_range(in, 1, 64);
    int rope_dim = (int)bn_fuzz_range(in, 0, head_dim + 2);
    int32_t pos = (int32_t)bn_fuzz_u32(in);
    float base = bn_fuzz_bool(in) ? 10000.0f : bn_fuzz_float(in);
    size_t n = (size_t)n_heads * head_dim;
    float *x = xcalloc(n, sizeof(float)), *r0 = xcalloc(n, sizeof(float)), *r1 = xcalloc(n, sizeof(float));
    fill(x, n, in, false);
    for (int k = 0; k < n_isas; k++) {
        bn_isa_set_active(isas[k]);
        float *r = k ? r1 : r0;
        memcpy(r, x, n * sizeof(float));
        bn_rope_neox(r, n_heads, head_dim, rope_dim, pos, base);
        if (k > 0) compare(r0, r1, n, 0, "rope_neox", isas[k]);
    }
    free(x), free(r0), free(r1);
}

static void op_attention(bn_fuzz_input *in) {
    int n_kv_heads = (int)bn_fuzz_range(in, 1, 3), group = (int)bn_fuzz_range(in, 1, 3);
    int n_heads = n_kv_heads * group, head_dim = (int)bn_fuzz_range(in, 1, 80);
    int32_t pos = (int32_t)bn_fuzz_range(in, 0, 40);
    bool kv_f16 = bn_fuzz_bool(in);
    size_t kv_dim = (size_t)n_kv_heads * head_dim, n_cache = kv_dim * (size_t)(pos + 1);
    size_t nq = (size_t)n_heads * head_dim;
    float *q = xcalloc(nq, sizeof(float)), *r0 = xcalloc(nq, sizeof(float)), *r1 = xcalloc(nq, sizeof(float));
    float *scratch = xcalloc((size_t)pos + 1, sizeof(float));
    void *kc = xcalloc(n_cache, sizeof(float)), *vc = xcalloc(n_cache, sizeof(float));
    bool finite = bn_fuzz_bool(in);
    for (size_t i = 0; i < nq; i++) {
        q[i] = reduction_value(in);
        if (finite && !isfinite(q[i])) q[i] = 0;
    }
    for (size_t i = 0; i < n_cache; i++) {
        if (kv_f16) {
            ((uint16_t *)kc)[i] = bn_fuzz_f16(in);
            ((uint16_t *)vc)[i] = bn_fuzz_f16(in);
        } else {
            float kv[2] = {reduction_value(in), reduction_value(in)};
            for (int j = 0; j < 2; j++)
                if (finite && !isfinite(kv[j])) kv[j] = 0;
            ((float *)kc)[i] = kv[0];
            ((float *)vc)[i] = kv[1];
        }
    }
    for (int k = 0; k < n_isas; k++) {
        bn_isa_set_active(isas[k]);
        const uint32_t kv_type = kv_f16 ? BN_TYPE_F16 : BN_TYPE_F32;
        bn_attention(k ? r1 : r0, q, kc, vc, kv_type, kv_type, n_heads, n_kv_heads, head_dim, pos, scratch);
        if (k == 0) continue;
        for (size_t i = 0; i < nq; i++)
            BN_FUZZ_CHECK(bn_fuzz_same_float(r0[i], r1[i]), "attention on %s: element %zu is %a, scalar gives %a",
                          bn_isa_name(isas[k]), i, (double)r1[i], (double)r0[i]);
    }
    free(q), free(r0), free(r1), free(scratch), free(kc), free(vc);
}

static void op_embedding_batchnorm(bn_fuzz_input *in, bool batchnorm) {
    int channels = (int)bn_fuzz_range(in, 1, 8), length = (int)bn_fuzz_range(in, 1, 100);
    size_t n = (size_t)channels * length;
    float *r0 = xcalloc(n, sizeof(float)), *r1 = xcalloc(n, sizeof(float));
    bn_error err;
    if (!batchnorm) {
        uint16_t *table = xcalloc(n, sizeof(uint16_t));
        for (size_t i = 0; i < n; i++) table[i] = bn_fuzz_f16(in);
        int32_t id = (int32_t)bn_fuzz_range(in, 0, channels - 1);
        for (int k = 0; k < n_isas; k++) {
            bn_isa_set_active(isas[k]);
            BN_FUZZ_CHECK(bn_embedding_lookup_f16(k ? r1 : r0, table, channels, length, id, &err) == BN_OK, "embedding");
            if (k > 0) compare(r0, r1, (size_t)length, 0, "embedding", isas[k]);
        }
        free(table);
    } else {
        float *x = xcalloc(n, sizeof(float)), *p[4];
        fill(x, n, in, false);
        for (int i = 0; i < 4; i++) {
            p[i] = xcalloc((size_t)channels, sizeof(float));
            fill(p[i], (size_t)channels, in, false);
        }
        float eps = bn_fuzz_float(in);
        for (int k = 0; k < n_isas; k++) {
            bn_isa_set_active(isas[k]);
            bn_status st = bn_batchnorm(k ? r1 : r0, x, p[0], p[1], p[2], p[3], channels, length, eps, &err);
            if (st != BN_OK) {
                BN_FUZZ_CHECK(st == BN_ERR_INVALID && err.message[0], "batchnorm status %d", (int)st);
                break;
            }
            if (k > 0) compare(r0, r1, n, 0, "batchnorm", isas[k]);
        }
        free(x);
        for (int i = 0; i < 4; i++) free(p[i]);
    }
    free(r0), free(r1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (n_isas == 0) {
        n_isas = bn_fuzz_isas(isas);
        bn_error err;
        if (bn_threadpool_create(2, &pool2, &err) != BN_OK) pool2 = NULL;
    }
    bn_fuzz_input in = bn_fuzz_input_make(data, size);
    uint8_t op = bn_fuzz_u8(&in) % 14;
    switch (op) {
    case 0: op_quantize(&in); break;
    case 1: case 2: op_ternary(&in); break;
    case 3: op_f16_int8(&in, false); break;
    case 4: op_f16_int8(&in, true); break;
    case 5: op_rmsnorm(&in); break;
    case 6: op_rope(&in); break;
    case 7: op_elementwise(&in, 0); break;
    case 8: op_elementwise(&in, 1); break;
    case 9: op_elementwise(&in, 2); break;
    case 10: op_elementwise(&in, 3); break;
    case 11: op_elementwise(&in, 4); break;
    case 12: op_attention(&in); break;
    default: op_embedding_batchnorm(&in, bn_fuzz_bool(&in)); break;
    }
    bn_fuzz_isa_restore();
    return 0;
}
