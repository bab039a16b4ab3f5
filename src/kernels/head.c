/*
 * head.c: dispatch point of the LM head and embedding kernels (kernels/head.h).
 *
 * Like the F16 path of kernels/matmul.c: one table entry per weight type and path (its kernel
 * and one registry counter per shape, "cpu.head.q6_k.gemv.avx2" / ".gemm."). A call takes the
 * path of the head class's variant (kernels/variants.h, so --isa / BITNET_ISA force it),
 * quantizes the activations once on the calling thread into its scratch (Q8_0 blocks for a Q8_0
 * head, Q8_K for the K-quants, as ggml's vec_dot_type), splits the rows over the pool in chunks
 * of 16 and counts the call. When the scratch cannot grow, the scalar path quantizes each block
 * where it is used instead: same bits, nothing allocated (ops cannot fail). F16 heads go to
 * bn_f16_matmul, which owns that order.
 */
#include "kernels/head.h"

#include "core/fp16.h"
#include "kernels/cpu/act_blocks.h"
#include "kernels/cpu/head_ref.h"
#include "kernels/cpu/neon_isa.h"
#include "kernels/ops.h"
#include "kernels/registry.h"
#include "kernels/scratch.h"
#include "kernels/variants.h"
#include "quant/quant_format.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Rows per chunk of a worker (as kernels/matmul.c). */
#define ROW_CHUNK 16

enum { HEAD_F32, HEAD_BF16, HEAD_Q8_0, HEAD_Q4_K, HEAD_Q6_K, HEAD_FORMATS };

static struct head_kernel {
    const char *ids[2]; /* gemv, gemm */
    bn_head_kernel_fn run;
    bn_kernel_slot slots[2];
} head_kernels[HEAD_FORMATS][BN_ISA_COUNT] = {
    [HEAD_F32] = {
        {{"cpu.head.f32.gemv.scalar", "cpu.head.f32.gemm.scalar"}, bn_ref_head_f32, {{0}}},
        {{"cpu.head.f32.gemv.avx2", "cpu.head.f32.gemm.avx2"}, BN_X86_KERNEL(bn_avx2_head_f32), {{0}}},
        {{"cpu.head.f32.gemv.avx512", "cpu.head.f32.gemm.avx512"}, BN_X86_KERNEL(bn_avx512_head_f32), {{0}}},
        {{"cpu.head.f32.gemv.neon", "cpu.head.f32.gemm.neon"}, BN_ARM_KERNEL(bn_neon_head_f32), {{0}}},
    },
    [HEAD_BF16] = {
        {{"cpu.head.bf16.gemv.scalar", "cpu.head.bf16.gemm.scalar"}, bn_ref_head_bf16, {{0}}},
        {{"cpu.head.bf16.gemv.avx2", "cpu.head.bf16.gemm.avx2"}, BN_X86_KERNEL(bn_avx2_head_bf16), {{0}}},
        {{"cpu.head.bf16.gemv.avx512", "cpu.head.bf16.gemm.avx512"}, BN_X86_KERNEL(bn_avx512_head_bf16), {{0}}},
        {{"cpu.head.bf16.gemv.neon", "cpu.head.bf16.gemm.neon"}, BN_ARM_KERNEL(bn_neon_head_bf16), {{0}}},
    },
    [HEAD_Q8_0] = {
        {{"cpu.head.q8_0.gemv.scalar", "cpu.head.q8_0.gemm.scalar"}, bn_ref_head_q8_0, {{0}}},
        {{"cpu.head.q8_0.gemv.avx2", "cpu.head.q8_0.gemm.avx2"}, BN_X86_KERNEL(bn_avx2_head_q8_0), {{0}}},
        {{"cpu.head.q8_0.gemv.avx512", "cpu.head.q8_0.gemm.avx512"}, BN_X86_KERNEL(bn_avx512_head_q8_0), {{0}}},
        {{"cpu.head.q8_0.gemv.neon", "cpu.head.q8_0.gemm.neon"}, BN_ARM_KERNEL(bn_neon_head_q8_0), {{0}}},
    },
    [HEAD_Q4_K] = {
        {{"cpu.head.q4_k.gemv.scalar", "cpu.head.q4_k.gemm.scalar"}, bn_ref_head_q4_k, {{0}}},
        {{"cpu.head.q4_k.gemv.avx2", "cpu.head.q4_k.gemm.avx2"}, BN_X86_KERNEL(bn_avx2_head_q4_k), {{0}}},
        {{"cpu.head.q4_k.gemv.avx512", "cpu.head.q4_k.gemm.avx512"}, BN_X86_KERNEL(bn_avx512_head_q4_k), {{0}}},
        {{"cpu.head.q4_k.gemv.neon", "cpu.head.q4_k.gemm.neon"}, BN_ARM_KERNEL(bn_neon_head_q4_k), {{0}}},
    },
    [HEAD_Q6_K] = {
        {{"cpu.head.q6_k.gemv.scalar", "cpu.head.q6_k.gemm.scalar"}, bn_ref_head_q6_k, {{0}}},
        {{"cpu.head.q6_k.gemv.avx2", "cpu.head.q6_k.gemm.avx2"}, BN_X86_KERNEL(bn_avx2_head_q6_k), {{0}}},
        {{"cpu.head.q6_k.gemv.avx512", "cpu.head.q6_k.gemm.avx512"}, BN_X86_KERNEL(bn_avx512_head_q6_k), {{0}}},
        {{"cpu.head.q6_k.gemv.neon", "cpu.head.q6_k.gemm.neon"}, BN_ARM_KERNEL(bn_neon_head_q6_k), {{0}}},
    },
};

/* The table row of a type; -1 for F16 (bn_f16_matmul) and types this module does not take. */
static int format_of(uint32_t type) {
    switch (type) {
    case BN_TYPE_F32: return HEAD_F32;
    case BN_TYPE_BF16: return HEAD_BF16;
    case BN_TYPE_Q8_0: return HEAD_Q8_0;
    case BN_TYPE_Q4_K: return HEAD_Q4_K;
    case BN_TYPE_Q6_K: return HEAD_Q6_K;
    default: return -1;
    }
}

static bool is_head_type(uint32_t type) { return type == BN_TYPE_F16 || format_of(type) >= 0; }

/* Bytes of one token's activation blocks (0 for the float types). */
static size_t act_token_bytes(uint32_t type, int cols) {
    if (type == BN_TYPE_Q8_0) return (size_t)(cols / BN_Q8_0_BLOCK) * sizeof(bn_q8_0_block);
    if (type == BN_TYPE_Q4_K || type == BN_TYPE_Q6_K)
        return (size_t)(cols / BN_Q8K_BLOCK) * sizeof(bn_q8k_block);
    return 0;
}

size_t bn_head_row_bytes(uint32_t type, int cols) {
    const bn_quant_format *format = bn_quant_format_get(type);
    if (!format || !is_head_type(type) || cols <= 0 || cols % (int)format->block_elements != 0)
        return 0;
    return (size_t)(cols / (int)format->block_elements) * format->block_bytes;
}

bn_status bn_head_matrix_init(bn_head_matrix *m, const char *name, uint32_t type, int rows, int cols,
                              const void *data, bn_error *err) {
    memset(m, 0, sizeof *m);
    const bn_quant_format *format = bn_quant_format_get(type);
    if (!is_head_type(type))
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "tensor %s: type %s (id %u) is not supported for a head or embedding "
                            "(f32, f16, bf16, q8_0, q4_K, q6_K)", name,
                            format ? format->name : "unknown", type);
    if (rows <= 0 || cols <= 0 || cols % (int)format->row_multiple != 0)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "tensor %s: shape %d x %d does not fit %s (row length a multiple of %u)",
                            name, rows, cols, format->name, format->row_multiple);
    if ((size_t)rows > SIZE_MAX / bn_head_row_bytes(type, cols))
        return bn_error_set(err, BN_ERR_FORMAT, "tensor %s: shape %d x %d is too large", name, rows,
                            cols);
    if (!data) return bn_error_set(err, BN_ERR_INVALID, "tensor %s: no data", name);
    m->type = type;
    m->rows = rows;
    m->cols = cols;
    m->data = data;
    return BN_OK;
}

void bn_head_dequantize_row(float *out, const bn_head_matrix *m, int row) {
    const size_t row_bytes = bn_head_row_bytes(m->type, m->cols);
    const void *w = (const uint8_t *)m->data + (size_t)row * row_bytes;
    switch (m->type) {
    case BN_TYPE_F32: memcpy(out, w, row_bytes); break;
    case BN_TYPE_F16:
        for (int c = 0; c < m->cols; c++) out[c] = bn_fp16_to_fp32(((const uint16_t *)w)[c]);
        break;
    case BN_TYPE_BF16:
        for (int c = 0; c < m->cols; c++) out[c] = bn_bf16_to_fp32(((const uint16_t *)w)[c]);
        break;
    case BN_TYPE_Q8_0: bn_ref_dequantize_q8_0(out, w, m->cols); break;
    case BN_TYPE_Q4_K: bn_ref_dequantize_q4_k(out, w, m->cols); break;
    case BN_TYPE_Q6_K: bn_ref_dequantize_q6_k(out, w, m->cols); break;
    default: break;
    }
}

/* Scratch bytes of n_tokens' activation blocks; 0 when the product overflows. */
static size_t act_bytes(const bn_head_matrix *m, int n_tokens) {
    const size_t per_token = act_token_bytes(m->type, m->cols);
    if (per_token == 0 || n_tokens <= 0 || (size_t)n_tokens > SIZE_MAX / per_token) return 0;
    return (size_t)n_tokens * per_token;
}

bn_status bn_head_reserve(const bn_head_matrix *m, int n_tokens, bn_error *err) {
    if (act_token_bytes(m->type, m->cols) == 0) return BN_OK;
    const size_t bytes = act_bytes(m, n_tokens);
    if (bytes == 0)
        return bn_error_set(err, BN_ERR_NOMEM, "head scratch for %d tokens overflows", n_tokens);
    return bn_thread_scratch_reserve(BN_SCRATCH_HEAD_BLOCKS, bytes, err);
}

typedef struct head_job {
    float *y;
    const bn_head_matrix *m;
    const bn_head_act *act;
    bn_head_kernel_fn run; /* NULL: bn_ref_head_unbuffered */
} head_job;

static void head_worker(void *context, int thread_index, int n_threads) {
    const head_job *job = context;
    long begin, end;
    bn_threadpool_split(job->m->rows, ROW_CHUNK, thread_index, n_threads, &begin, &end);
    if (begin >= end) return;
    if (job->run)
        job->run(job->y, job->m, job->act, (int)begin, (int)end);
    else
        bn_ref_head_unbuffered(job->y, job->m, job->act->x, job->act->n_tokens, (int)begin, (int)end);
}

void bn_head_matmul(bn_threadpool *pool, float *y, const bn_head_matrix *m, const float *x,
                    int n_tokens) {
    if (n_tokens <= 0 || m->rows <= 0 || m->cols <= 0) return;
    if (m->type == BN_TYPE_F16) {
        bn_f16_matmul(pool, y, m->data, x, m->rows, m->cols, n_tokens);
        return;
    }
    const int format = format_of(m->type);
    if (format < 0) return; /* bn_head_matrix_init admits no other type */
    bn_isa isa = bn_kernel_variant_of(BN_KCLASS_HEAD).isa;
    while (!head_kernels[format][isa].run) isa = bn_isa_narrower(isa); /* no kernel on the path */
    struct head_kernel *k = &head_kernels[format][isa];
    uint64_t t0 = bn_kernel_begin();
    bn_head_act act = {.x = x, .n_tokens = n_tokens};
    head_job job = {.y = y, .m = m, .act = &act, .run = k->run};
    const size_t per_token = act_token_bytes(m->type, m->cols);
    if (per_token > 0) {
        const size_t bytes = act_bytes(m, n_tokens);
        uint8_t *blocks = bytes ? bn_thread_scratch(BN_SCRATCH_HEAD_BLOCKS, bytes) : NULL;
        for (int t = 0; blocks && t < n_tokens; t++) {
            const float *xt = x + (size_t)t * m->cols;
            void *row = blocks + (size_t)t * per_token;
            if (m->type == BN_TYPE_Q8_0)
                bn_quantize_row_q8_0(row, xt, m->cols);
            else
                bn_quantize_row_q8k(row, xt, m->cols);
        }
        act.blocks = blocks;
        act.token_bytes = per_token;
        if (!blocks) { /* quantize where used: needs no scratch */
            k = &head_kernels[format][BN_ISA_SCALAR];
            job.run = NULL;
        }
    }
    bn_threadpool_run(pool, head_worker, &job);
    bn_kernel_end(&k->slots[n_tokens > 1], k->ids[n_tokens > 1], t0);
}
