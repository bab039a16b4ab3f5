/*
 * ops.c: dispatch points of the non-matmul operations of kernels/ops.h (the matmul and
 * quantization ops live in kernels/matmul.c). Each op validates what it can report, picks the
 * active ISA path (falling back to AVX2 where an op has no AVX-512 kernel, since AVX-512 CPUs run
 * AVX2 code), runs it, and counts one call in the registry under the id of the kernel that ran
 * ("cpu.<op>.<path>").
 */
#include "kernels/ops.h"

#include "kernels/cpu/ops_isa.h"
#include "kernels/cpu/ref_ops.h"
#include "kernels/cpu_features.h"
#include "kernels/registry.h"

#include <stdlib.h>
#include <string.h>

/* One op's registry entries, one per path. */
typedef struct op_kernels {
    const char *ids[BN_ISA_COUNT];
    bn_kernel_slot slots[BN_ISA_COUNT];
} op_kernels;

/* The stable kernel ids (receipts name them); NULL where the op has no AVX-512 kernel. */
static op_kernels rmsnorm_kernels = {
    {"cpu.rmsnorm.scalar", "cpu.rmsnorm.avx2", "cpu.rmsnorm.avx512"}, {{0}}};
static op_kernels rope_neox_kernels = {{"cpu.rope_neox.scalar", "cpu.rope_neox.avx2", NULL}, {{0}}};
static op_kernels rope_angles_kernels = {{"cpu.rope_angles.scalar", NULL, NULL}, {{0}}};
static op_kernels softmax_kernels = {
    {"cpu.softmax.scalar", "cpu.softmax.avx2", "cpu.softmax.avx512"}, {{0}}};
static op_kernels relu2_mul_kernels = {{"cpu.relu2_mul.scalar", "cpu.relu2_mul.avx2", NULL}, {{0}}};
static op_kernels silu_mul_kernels = {{"cpu.silu_mul.scalar", "cpu.silu_mul.avx2", NULL}, {{0}}};
static op_kernels add_kernels = {{"cpu.add.scalar", "cpu.add.avx2", NULL}, {{0}}};
static op_kernels embedding_f16_kernels = {
    {"cpu.embedding_f16.scalar", "cpu.embedding_f16.avx2", NULL}, {{0}}};
static op_kernels activation_kernels = {{"cpu.activation.scalar", "cpu.activation.avx2", NULL},
                                        {{0}}};
static op_kernels attention_kernels = {
    {"cpu.attention.scalar", "cpu.attention.avx2", "cpu.attention.avx512"}, {{0}}};
static op_kernels conv1d_kernels = {{"cpu.conv1d.scalar", "cpu.conv1d.avx2", NULL}, {{0}}};
static op_kernels max_pool1d_kernels = {{"cpu.max_pool1d.scalar", "cpu.max_pool1d.avx2", NULL},
                                        {{0}}};
static op_kernels avg_pool1d_kernels = {{"cpu.avg_pool1d.scalar", "cpu.avg_pool1d.avx2", NULL},
                                        {{0}}};
static op_kernels batchnorm_kernels = {{"cpu.batchnorm.scalar", "cpu.batchnorm.avx2", NULL}, {{0}}};

/* The path an op runs: the active one, or AVX2 for ops without an AVX-512 kernel. */
static bn_isa path(bool has_avx512) {
    bn_isa isa = bn_isa_active();
    if (isa == BN_ISA_AVX512 && !has_avx512) isa = BN_ISA_AVX2;
    return isa;
}

static void count(op_kernels *kernels, bn_isa isa, uint64_t t0) {
    bn_kernel_end(&kernels->slots[isa], kernels->ids[isa], t0);
}

void bn_rmsnorm(float *out, const float *x, const float *weight, int n_tokens, int cols,
                float eps) {
    if (cols <= 0) return;
    uint64_t t0 = bn_kernel_begin();
    bn_isa isa = path(true);
    switch (isa) {
    case BN_ISA_AVX512: bn_avx512_rmsnorm(out, x, weight, n_tokens, cols, eps); break;
    case BN_ISA_AVX2: bn_avx2_rmsnorm(out, x, weight, n_tokens, cols, eps); break;
    default: bn_ref_rmsnorm(out, x, weight, n_tokens, cols, eps); break;
    }
    count(&rmsnorm_kernels, isa, t0);
}

void bn_rope_neox(float *x, int n_heads, int head_dim, int rope_dim, int32_t pos, float freq_base) {
    uint64_t t0 = bn_kernel_begin();
    bn_isa isa = path(false);
    if (isa == BN_ISA_AVX2)
        bn_avx2_rope_neox(x, n_heads, head_dim, rope_dim, pos, freq_base);
    else
        bn_ref_rope_neox(x, n_heads, head_dim, rope_dim, pos, freq_base);
    count(&rope_neox_kernels, isa, t0);
}

void bn_rope_neox_angles(float *cos_table, float *sin_table, int head_dim, int rope_dim, int32_t pos,
                         float freq_base) {
    uint64_t t0 = bn_kernel_begin();
    if (rope_dim > head_dim) rope_dim = head_dim;
    bn_ref_rope_angles(cos_table, sin_table, rope_dim / 2, rope_dim / 2 * 2, pos, freq_base);
    count(&rope_angles_kernels, BN_ISA_SCALAR, t0);
}

void bn_rope_neox_table(float *x, int n_heads, int head_dim, int rope_dim, const float *cos_table,
                        const float *sin_table) {
    uint64_t t0 = bn_kernel_begin();
    bn_isa isa = path(false);
    if (isa == BN_ISA_AVX2)
        bn_avx2_rope_neox_table(x, n_heads, head_dim, rope_dim, cos_table, sin_table);
    else
        bn_ref_rope_neox_table(x, n_heads, head_dim, rope_dim, cos_table, sin_table);
    count(&rope_neox_kernels, isa, t0);
}

void bn_softmax(float *x, int n) {
    uint64_t t0 = bn_kernel_begin();
    bn_isa isa = path(true);
    switch (isa) {
    case BN_ISA_AVX512: bn_avx512_softmax(x, n); break;
    case BN_ISA_AVX2: bn_avx2_softmax(x, n); break;
    default: bn_ref_softmax(x, n); break;
    }
    count(&softmax_kernels, isa, t0);
}

void bn_relu2_mul(float *out, const float *gate, const float *up, int n) {
    uint64_t t0 = bn_kernel_begin();
    bn_isa isa = path(false);
    if (isa == BN_ISA_AVX2)
        bn_avx2_relu2_mul(out, gate, up, n);
    else
        bn_ref_relu2_mul(out, gate, up, n);
    count(&relu2_mul_kernels, isa, t0);
}

void bn_silu_mul(float *out, const float *gate, const float *up, int n) {
    uint64_t t0 = bn_kernel_begin();
    bn_isa isa = path(false);
    if (isa == BN_ISA_AVX2)
        bn_avx2_silu_mul(out, gate, up, n);
    else
        bn_ref_silu_mul(out, gate, up, n);
    count(&silu_mul_kernels, isa, t0);
}

void bn_add(float *x, const float *y, int n) {
    uint64_t t0 = bn_kernel_begin();
    bn_isa isa = path(false);
    if (isa == BN_ISA_AVX2)
        bn_avx2_add(x, y, n);
    else
        bn_ref_add(x, y, n);
    count(&add_kernels, isa, t0);
}

bn_status bn_embedding_lookup_f16(float *out, const uint16_t *table, int n_rows, int cols,
                                  int32_t id, bn_error *err) {
    if (id < 0 || id >= n_rows)
        return bn_error_set(err, BN_ERR_RANGE,
                            "token id %d out of range (embedding table has %d rows)", (int)id,
                            n_rows);
    if (cols < 0)
        return bn_error_set(err, BN_ERR_INVALID, "embedding: cols = %d must be >= 0", cols);
    uint64_t t0 = bn_kernel_begin();
    bn_isa isa = path(false);
    const uint16_t *row = table + (size_t)id * (size_t)cols;
    if (isa == BN_ISA_AVX2)
        bn_avx2_embedding_row_f16(out, row, cols);
    else
        bn_ref_embedding_row_f16(out, row, cols);
    count(&embedding_f16_kernels, isa, t0);
    return BN_OK;
}

void bn_attention(float *out, const float *q, const void *k_cache, const void *v_cache, bool kv_f16,
                  int n_heads, int n_kv_heads, int head_dim, int32_t pos, float *scratch) {
    bn_attention_heads(out, q, k_cache, v_cache, kv_f16, n_heads, n_kv_heads, head_dim, pos, scratch,
                       0, n_heads);
}

void bn_attention_heads(float *out, const float *q, const void *k_cache, const void *v_cache,
                        bool kv_f16, int n_heads, int n_kv_heads, int head_dim, int32_t pos,
                        float *scratch, int head_begin, int head_end) {
    uint64_t t0 = bn_kernel_begin();
    bn_isa isa = path(true);
    /* heads the SIMD kernels do not take run the reference (and are counted as such) */
    if ((isa == BN_ISA_AVX512 && !bn_avx512_attention_supports(head_dim)) ||
        (isa == BN_ISA_AVX2 && !bn_avx2_attention_supports(head_dim)))
        isa = BN_ISA_SCALAR;
    switch (isa) {
    case BN_ISA_AVX512:
        bn_avx512_attention(out, q, k_cache, v_cache, kv_f16, n_heads, n_kv_heads, head_dim, pos,
                            scratch, head_begin, head_end);
        break;
    case BN_ISA_AVX2:
        bn_avx2_attention(out, q, k_cache, v_cache, kv_f16, n_heads, n_kv_heads, head_dim, pos,
                          scratch, head_begin, head_end);
        break;
    default:
        bn_ref_attention(out, q, k_cache, v_cache, kv_f16, n_heads, n_kv_heads, head_dim, pos,
                         scratch, head_begin, head_end);
        break;
    }
    count(&attention_kernels, isa, t0);
}

bn_status bn_conv1d_output_length(const bn_conv1d_shape *shape, int *out_length, bn_error *err) {
    bn_conv1d_plan plan;
    bn_status status = bn_ref_conv1d_plan(&plan, shape, false, err);
    if (status == BN_OK) *out_length = plan.out_length;
    return status;
}

/* Unpacks the weights and quantizes the input into temporary buffers (freed here; this
 * auxiliary op has no prepared-weights object, so it unpacks on every call), then runs the
 * convolution on the active path. */
bn_status bn_conv1d_ternary(float *out, const uint8_t *w_data, const float *input,
                            const bn_conv1d_shape *shape, bn_error *err) {
    bn_conv1d_plan plan;
    bn_status status = bn_ref_conv1d_plan(&plan, shape, true, err);
    if (status != BN_OK) return status;
    int8_t *w = malloc(plan.n_weights);
    int8_t *q = malloc(plan.n_input);
    int8_t *column = malloc((size_t)plan.row_length);
    if (!w || !q || !column) {
        free(w);
        free(q);
        free(column);
        return bn_error_set(err, BN_ERR_NOMEM,
                            "conv1d: out of memory for %zu weights and %zu inputs", plan.n_weights,
                            plan.n_input);
    }
    float s_x = 0.0f, s_w;
    status = bn_ref_i2s_unpack(w, w_data, plan.n_weights, err);
    if (status == BN_OK) status = bn_ref_quantize_block(q, &s_x, input, plan.n_input, err);
    if (status == BN_OK) {
        memcpy(&s_w, w_data + plan.n_weights / 4, sizeof s_w);
        uint64_t t0 = bn_kernel_begin();
        bn_isa isa = path(false);
        if (isa == BN_ISA_AVX2)
            bn_avx2_conv1d_core(out, w, q, s_x, s_w, shape, &plan, column);
        else
            bn_ref_conv1d_core(out, w, q, s_x, s_w, shape, &plan);
        count(&conv1d_kernels, isa, t0);
    }
    free(w);
    free(q);
    free(column);
    return status;
}

bn_status bn_pool1d_output_length(const bn_pool1d_shape *shape, int *out_length, bn_error *err) {
    return bn_ref_pool1d_plan(out_length, shape, err);
}

bn_status bn_max_pool1d(float *out, const float *input, const bn_pool1d_shape *shape,
                        bn_error *err) {
    int out_length;
    bn_status status = bn_ref_pool1d_plan(&out_length, shape, err);
    if (status != BN_OK) return status;
    uint64_t t0 = bn_kernel_begin();
    bn_isa isa = path(false);
    if (isa == BN_ISA_AVX2)
        bn_avx2_max_pool1d(out, input, shape, out_length);
    else
        bn_ref_max_pool1d(out, input, shape, out_length);
    count(&max_pool1d_kernels, isa, t0);
    return BN_OK;
}

bn_status bn_avg_pool1d(float *out, const float *input, const bn_pool1d_shape *shape,
                        bn_error *err) {
    int out_length;
    bn_status status = bn_ref_pool1d_plan(&out_length, shape, err);
    if (status != BN_OK) return status;
    uint64_t t0 = bn_kernel_begin();
    bn_isa isa = path(false);
    if (isa == BN_ISA_AVX2)
        bn_avx2_avg_pool1d(out, input, shape, out_length);
    else
        bn_ref_avg_pool1d(out, input, shape, out_length);
    count(&avg_pool1d_kernels, isa, t0);
    return BN_OK;
}

bn_status bn_batchnorm(float *out, const float *x, const float *mean, const float *var,
                       const float *gamma, const float *beta, int channels, int length, float eps,
                       bn_error *err) {
    bn_status status = bn_ref_batchnorm_check(var, channels, length, eps, err);
    if (status != BN_OK) return status;
    uint64_t t0 = bn_kernel_begin();
    bn_isa isa = path(false);
    if (isa == BN_ISA_AVX2)
        bn_avx2_batchnorm(out, x, mean, var, gamma, beta, channels, length, eps);
    else
        bn_ref_batchnorm(out, x, mean, var, gamma, beta, channels, length, eps);
    count(&batchnorm_kernels, isa, t0);
    return BN_OK;
}

void bn_activation_apply(float *out, const float *x, int n, bn_activation act) {
    uint64_t t0 = bn_kernel_begin();
    bn_isa isa = path(false);
    if (isa == BN_ISA_AVX2)
        bn_avx2_activation_apply(out, x, n, act);
    else
        bn_ref_activation_apply(out, x, n, act);
    count(&activation_kernels, isa, t0);
}
