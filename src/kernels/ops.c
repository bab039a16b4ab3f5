/*
 * ops.c: dispatch points of the non-matmul operations of kernels/ops.h (the matmul and
 * quantization ops live in kernels/matmul.c). Each op has a kernel table: per path (scalar, AVX2,
 * AVX-512) its stable id (receipts name it), its function (NULL where the op has no kernel on that
 * path) and its registry counter. A call validates what it can report, runs the entry of the
 * active path or, where that has none, of the next narrower one (AVX-512 CPUs run AVX2 code), and
 * counts one call under the id of the kernel that ran ("cpu.<op>.<path>"). Attention takes the
 * path its class is bound to (kernels/variants.h). A new path of an op is one entry.
 */
#include "kernels/ops.h"

#include "kernels/cpu/neon_isa.h"
#include "kernels/cpu/ops_isa.h"
#include "kernels/cpu/ref_ops.h"
#include "kernels/cpu_features.h"
#include "kernels/registry.h"
#include "kernels/variants.h"
#include "quant/quant_format.h"

#include <stdlib.h>
#include <string.h>

/* One op's table: entry i is path i (bn_isa). */
#define OP_TABLE(name, fn_type)            \
    static struct {                        \
        const char *id;                    \
        fn_type fn;                        \
        bn_kernel_slot slot;               \
    } name[BN_ISA_COUNT]

/* The path an op runs from `from` down (bn_isa_narrower): the first with a kernel (scalar always
 * has one). The mask has bit i set when path i has a kernel. */
#define OP_PATH(table, from)                                                                    \
    op_path_down((from), ((table)[BN_ISA_AVX2].fn != NULL) << BN_ISA_AVX2 |                     \
                             ((table)[BN_ISA_AVX512].fn != NULL) << BN_ISA_AVX512 |             \
                             ((table)[BN_ISA_NEON].fn != NULL) << BN_ISA_NEON |                 \
                             ((table)[BN_ISA_NEONDOT].fn != NULL) << BN_ISA_NEONDOT)

static bn_isa op_path_down(bn_isa isa, unsigned has) {
    while (isa != BN_ISA_SCALAR && !(has >> isa & 1u)) isa = bn_isa_narrower(isa);
    return isa;
}

/* Runs the entry of the active path (or the next narrower one with a kernel) and counts it. */
#define OP_RUN(table, ...)                                                 \
    do {                                                                   \
        uint64_t op_t0 = bn_kernel_begin();                                \
        bn_isa op_isa = OP_PATH(table, bn_isa_active());                   \
        (table)[op_isa].fn(__VA_ARGS__);                                   \
        bn_kernel_end(&(table)[op_isa].slot, (table)[op_isa].id, op_t0);   \
    } while (0)

typedef void (*rmsnorm_fn)(float *, const float *, const float *, int, int, float);
OP_TABLE(rmsnorm_kernels, rmsnorm_fn) = {{"cpu.rmsnorm.scalar", bn_ref_rmsnorm, {0}},
                                         {"cpu.rmsnorm.avx2", BN_X86_KERNEL(bn_avx2_rmsnorm), {0}},
                                         {"cpu.rmsnorm.avx512", BN_X86_KERNEL(bn_avx512_rmsnorm), {0}},
                                         {"cpu.rmsnorm.neon", BN_ARM_KERNEL(bn_neon_rmsnorm), {0}}};
typedef void (*rope_fn)(float *, int, int, int, int32_t, float);
OP_TABLE(rope_neox_kernels, rope_fn) = {{"cpu.rope_neox.scalar", bn_ref_rope_neox, {0}},
                                        {"cpu.rope_neox.avx2", BN_X86_KERNEL(bn_avx2_rope_neox), {0}},
                                        {NULL, NULL, {0}},
                                        {"cpu.rope_neox.neon", BN_ARM_KERNEL(bn_neon_rope_neox), {0}}};
typedef void (*rope_table_fn)(float *, int, int, int, const float *, const float *);
OP_TABLE(rope_neox_table_kernels, rope_table_fn) = {
    {"cpu.rope_neox.scalar", bn_ref_rope_neox_table, {0}},
    {"cpu.rope_neox.avx2", BN_X86_KERNEL(bn_avx2_rope_neox_table), {0}},
    {NULL, NULL, {0}},
    {"cpu.rope_neox.neon", BN_ARM_KERNEL(bn_neon_rope_neox_table), {0}}};
typedef void (*rope_angles_fn)(float *, float *, int, int, int32_t, float);
OP_TABLE(rope_angles_kernels, rope_angles_fn) = {{"cpu.rope_angles.scalar", bn_ref_rope_angles, {0}},
                                                 {NULL, NULL, {0}},
                                                 {NULL, NULL, {0}}};
typedef void (*rope_angles_scaled_fn)(float *, float *, int, int, int32_t, float, const float *, float);
OP_TABLE(rope_angles_scaled_kernels, rope_angles_scaled_fn) = {
    {"cpu.rope_angles_scaled.scalar", bn_ref_rope_angles_scaled, {0}}, {NULL, NULL, {0}}, {NULL, NULL, {0}}};
OP_TABLE(rope_norm_table_kernels, rope_table_fn) = {
    {"cpu.rope_norm.scalar", bn_ref_rope_norm_table, {0}}, {NULL, NULL, {0}}, {NULL, NULL, {0}}};
typedef void (*softmax_fn)(float *, int);
OP_TABLE(softmax_kernels, softmax_fn) = {{"cpu.softmax.scalar", bn_ref_softmax, {0}},
                                         {"cpu.softmax.avx2", BN_X86_KERNEL(bn_avx2_softmax), {0}},
                                         {"cpu.softmax.avx512", BN_X86_KERNEL(bn_avx512_softmax), {0}},
                                         {"cpu.softmax.neon", BN_ARM_KERNEL(bn_neon_softmax), {0}}};
typedef void (*gated_fn)(float *, const float *, const float *, int);
OP_TABLE(relu2_mul_kernels, gated_fn) = {{"cpu.relu2_mul.scalar", bn_ref_relu2_mul, {0}},
                                         {"cpu.relu2_mul.avx2", BN_X86_KERNEL(bn_avx2_relu2_mul), {0}},
                                         {NULL, NULL, {0}},
                                         {"cpu.relu2_mul.neon", BN_ARM_KERNEL(bn_neon_relu2_mul), {0}}};
OP_TABLE(silu_mul_kernels, gated_fn) = {{"cpu.silu_mul.scalar", bn_ref_silu_mul, {0}},
                                        {"cpu.silu_mul.avx2", BN_X86_KERNEL(bn_avx2_silu_mul), {0}},
                                        {NULL, NULL, {0}},
                                        {"cpu.silu_mul.neon", BN_ARM_KERNEL(bn_neon_silu_mul), {0}}};
typedef void (*add_fn)(float *, const float *, int);
OP_TABLE(add_kernels, add_fn) = {{"cpu.add.scalar", bn_ref_add, {0}},
                                 {"cpu.add.avx2", BN_X86_KERNEL(bn_avx2_add), {0}},
                                 {NULL, NULL, {0}},
                                 {"cpu.add.neon", BN_ARM_KERNEL(bn_neon_add), {0}}};
typedef void (*embedding_fn)(float *, const uint16_t *, int);
OP_TABLE(embedding_f16_kernels, embedding_fn) = {
    {"cpu.embedding_f16.scalar", bn_ref_embedding_row_f16, {0}},
    {"cpu.embedding_f16.avx2", BN_X86_KERNEL(bn_avx2_embedding_row_f16), {0}},
    {NULL, NULL, {0}},
    {"cpu.embedding_f16.neon", BN_ARM_KERNEL(bn_neon_embedding_row_f16), {0}}};
typedef void (*activation_fn)(float *, const float *, int, bn_activation);
OP_TABLE(activation_kernels, activation_fn) = {{"cpu.activation.scalar", bn_ref_activation_apply, {0}},
                                               {"cpu.activation.avx2", BN_X86_KERNEL(bn_avx2_activation_apply), {0}},
                                               {NULL, NULL, {0}}};
typedef void (*attention_fn)(float *, const float *, const void *, const void *, uint32_t, uint32_t,
                             int, int, int, int32_t, float *, int, int);
typedef bool (*attention_supports_fn)(int head_dim);
OP_TABLE(attention_kernels, attention_fn) = {{"cpu.attention.scalar", bn_ref_attention, {0}},
                                             {"cpu.attention.avx2", BN_X86_KERNEL(bn_avx2_attention), {0}},
                                             {"cpu.attention.avx512", BN_X86_KERNEL(bn_avx512_attention), {0}},
                                             {"cpu.attention.neon", BN_ARM_KERNEL(bn_neon_attention), {0}}};
/* The ids the attention kernels count under when a cache is q8_0 (receipts show its reads). */
static struct {
    const char *id;
    bn_kernel_slot slot;
} attention_q8_0_ids[BN_ISA_COUNT] = {{"cpu.attention_q8_0.scalar", {0}},
                                      {"cpu.attention_q8_0.avx2", {0}},
                                      {"cpu.attention_q8_0.avx512", {0}},
                                      {"cpu.attention_q8_0.neon", {0}}};
/* The head sizes each attention kernel takes (NULL: all). */
static const attention_supports_fn attention_supports[BN_ISA_COUNT] = {
    NULL, BN_X86_KERNEL(bn_avx2_attention_supports), BN_X86_KERNEL(bn_avx512_attention_supports),
    BN_ARM_KERNEL(bn_neon_attention_supports)};
typedef void (*conv1d_fn)(float *, const int8_t *, const int8_t *, float, float,
                          const bn_conv1d_shape *, const bn_conv1d_plan *, int8_t *);
OP_TABLE(conv1d_kernels, conv1d_fn) = {{"cpu.conv1d.scalar", NULL, {0}},
                                       {"cpu.conv1d.avx2", BN_X86_KERNEL(bn_avx2_conv1d_core), {0}},
                                       {NULL, NULL, {0}}};
typedef void (*pool_fn)(float *, const float *, const bn_pool1d_shape *, int);
OP_TABLE(max_pool1d_kernels, pool_fn) = {{"cpu.max_pool1d.scalar", bn_ref_max_pool1d, {0}},
                                         {"cpu.max_pool1d.avx2", BN_X86_KERNEL(bn_avx2_max_pool1d), {0}},
                                         {NULL, NULL, {0}}};
OP_TABLE(avg_pool1d_kernels, pool_fn) = {{"cpu.avg_pool1d.scalar", bn_ref_avg_pool1d, {0}},
                                         {"cpu.avg_pool1d.avx2", BN_X86_KERNEL(bn_avx2_avg_pool1d), {0}},
                                         {NULL, NULL, {0}}};
typedef void (*batchnorm_fn)(float *, const float *, const float *, const float *, const float *,
                             const float *, int, int, float);
OP_TABLE(batchnorm_kernels, batchnorm_fn) = {{"cpu.batchnorm.scalar", bn_ref_batchnorm, {0}},
                                             {"cpu.batchnorm.avx2", BN_X86_KERNEL(bn_avx2_batchnorm), {0}},
                                             {NULL, NULL, {0}}};

void bn_rmsnorm(float *out, const float *x, const float *weight, int n_tokens, int cols,
                float eps) {
    if (cols <= 0) return;
    OP_RUN(rmsnorm_kernels, out, x, weight, n_tokens, cols, eps);
}

void bn_rope_neox(float *x, int n_heads, int head_dim, int rope_dim, int32_t pos, float freq_base) {
    OP_RUN(rope_neox_kernels, x, n_heads, head_dim, rope_dim, pos, freq_base);
}

void bn_rope_neox_angles(float *cos_table, float *sin_table, int head_dim, int rope_dim, int32_t pos,
                         float freq_base) {
    if (rope_dim > head_dim) rope_dim = head_dim;
    OP_RUN(rope_angles_kernels, cos_table, sin_table, rope_dim / 2, rope_dim / 2 * 2, pos, freq_base);
}

void bn_rope_neox_table(float *x, int n_heads, int head_dim, int rope_dim, const float *cos_table,
                        const float *sin_table) {
    OP_RUN(rope_neox_table_kernels, x, n_heads, head_dim, rope_dim, cos_table, sin_table);
}

void bn_rope_angles_scaled(float *cos_table, float *sin_table, int head_dim, int rope_dim, int32_t pos,
                           float freq_base, const float *freq_factors, float freq_scale) {
    if (rope_dim > head_dim) rope_dim = head_dim;
    OP_RUN(rope_angles_scaled_kernels, cos_table, sin_table, rope_dim / 2, rope_dim / 2 * 2, pos, freq_base,
           freq_factors, freq_scale);
}

void bn_rope_norm_table(float *x, int n_heads, int head_dim, int rope_dim, const float *cos_table,
                        const float *sin_table) {
    OP_RUN(rope_norm_table_kernels, x, n_heads, head_dim, rope_dim, cos_table, sin_table);
}

void bn_softmax(float *x, int n) { OP_RUN(softmax_kernels, x, n); }

void bn_relu2_mul(float *out, const float *gate, const float *up, int n) {
    OP_RUN(relu2_mul_kernels, out, gate, up, n);
}

void bn_silu_mul(float *out, const float *gate, const float *up, int n) {
    OP_RUN(silu_mul_kernels, out, gate, up, n);
}

void bn_add(float *x, const float *y, int n) { OP_RUN(add_kernels, x, y, n); }

bn_status bn_embedding_lookup_f16(float *out, const uint16_t *table, int n_rows, int cols,
                                  int32_t id, bn_error *err) {
    if (id < 0 || id >= n_rows)
        return bn_error_set(err, BN_ERR_RANGE,
                            "token id %d out of range (embedding table has %d rows)", (int)id,
                            n_rows);
    if (cols < 0)
        return bn_error_set(err, BN_ERR_INVALID, "embedding: cols = %d must be >= 0", cols);
    OP_RUN(embedding_f16_kernels, out, table + (size_t)id * (size_t)cols, cols);
    return BN_OK;
}

void bn_attention(float *out, const float *q, const void *k_cache, const void *v_cache,
                  uint32_t k_type, uint32_t v_type, int n_heads, int n_kv_heads, int head_dim,
                  int32_t pos, float *scratch) {
    bn_attention_heads(out, q, k_cache, v_cache, k_type, v_type, n_heads, n_kv_heads, head_dim, pos,
                       scratch, 0, n_heads);
}

void bn_attention_heads(float *out, const float *q, const void *k_cache, const void *v_cache,
                        uint32_t k_type, uint32_t v_type, int n_heads, int n_kv_heads,
                        int head_dim, int32_t pos, float *scratch, int head_begin, int head_end) {
    uint64_t t0 = bn_kernel_begin();
    bn_isa isa = OP_PATH(attention_kernels, bn_kernel_variant_of(BN_KCLASS_ATTENTION).isa);
    /* heads the SIMD kernels do not take run the reference (and are counted as such) */
    if (attention_supports[isa] && !attention_supports[isa](head_dim)) isa = BN_ISA_SCALAR;
    attention_kernels[isa].fn(out, q, k_cache, v_cache, k_type, v_type, n_heads, n_kv_heads, head_dim,
                              pos, scratch, head_begin, head_end);
    if ((k_type == BN_TYPE_Q8_0 || v_type == BN_TYPE_Q8_0) && attention_q8_0_ids[isa].id)
        bn_kernel_end(&attention_q8_0_ids[isa].slot, attention_q8_0_ids[isa].id, t0);
    else
        bn_kernel_end(&attention_kernels[isa].slot, attention_kernels[isa].id, t0);
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
        /* (the scalar kernel needs no column scratch: its entry has no function) */
        uint64_t t0 = bn_kernel_begin();
        bn_isa isa = OP_PATH(conv1d_kernels, bn_isa_active());
        if (conv1d_kernels[isa].fn)
            conv1d_kernels[isa].fn(out, w, q, s_x, s_w, shape, &plan, column);
        else
            bn_ref_conv1d_core(out, w, q, s_x, s_w, shape, &plan);
        bn_kernel_end(&conv1d_kernels[isa].slot, conv1d_kernels[isa].id, t0);
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
    OP_RUN(max_pool1d_kernels, out, input, shape, out_length);
    return BN_OK;
}

bn_status bn_avg_pool1d(float *out, const float *input, const bn_pool1d_shape *shape,
                        bn_error *err) {
    int out_length;
    bn_status status = bn_ref_pool1d_plan(&out_length, shape, err);
    if (status != BN_OK) return status;
    OP_RUN(avg_pool1d_kernels, out, input, shape, out_length);
    return BN_OK;
}

bn_status bn_batchnorm(float *out, const float *x, const float *mean, const float *var,
                       const float *gamma, const float *beta, int channels, int length, float eps,
                       bn_error *err) {
    bn_status status = bn_ref_batchnorm_check(var, channels, length, eps, err);
    if (status != BN_OK) return status;
    OP_RUN(batchnorm_kernels, out, x, mean, var, gamma, beta, channels, length, eps);
    return BN_OK;
}

void bn_activation_apply(float *out, const float *x, int n, bn_activation act) {
    OP_RUN(activation_kernels, out, x, n, act);
}
