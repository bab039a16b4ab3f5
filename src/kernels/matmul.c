/*
 * matmul.c: dispatch points of the matrix ops in kernels/ops.h (activation quantization, ternary
 * I2_S/TQ2_0/TQ1_0 matmul, F16 and int8 matmul) and ternary matrix preparation.
 *
 * Each call picks the active ISA (bn_isa_active), prepares the per-path activation view once
 * (kernels/cpu/matmul_isa.h), splits the output rows over the thread pool, and counts the call
 * in the kernel registry under the id of the kernel that ran ("cpu.i2s.gemv.avx512"; gemv for one
 * token, gemm for several). Kernels return exact integer sums and one shared float step
 * (ref_matmul.c) turns them into outputs, so every path, thread count and batch size yields the
 * same bits for a token.
 *
 * Preparation validates (I2_S code 3, the scale). I2_S is copied into row tiles of 8
 * (ref_matmul.h: BN_LAYOUT_I2S_TILE8) so that a GEMV reads one sequential stream; the copy is
 * the size of the file's packed bytes, and the model releases the file's pages of the tensor.
 * TQ2_0 and TQ1_0 are read in place. The AVX-512 path reorders the activations (q_pairs), not
 * the weights, to line up with the 2-bit fields.
 */
#include "kernels/ops.h"

#include "core/fp16.h"
#include "core/large_alloc.h"
#include "kernels/cpu/matmul_isa.h"
#include "kernels/cpu/ref_matmul.h"
#include "kernels/cpu_features.h"
#include "kernels/registry.h"
#include "quant/quant_format.h"
#include "quant/ternary.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows per chunk of a worker: a multiple of every kernel's row tile. */
#define ROW_CHUNK 16
/* Rows per kernel call of an I2_S GEMM (a multiple of ROW_CHUNK). */
#define GEMM_SPAN_ROWS 128

/* Activation copies the kernels read with 64-byte loads start on a cache line: from malloc
 * (16-byte aligned) every such load straddled two lines, and the 64-token GEMM at 2 threads took
 * 2.45 ms instead of 1.45 (6912 x 2560, same run). Rows of cols bytes stay aligned when cols is a
 * multiple of 64, as in every model shape. */
static void *alloc_line_aligned(size_t bytes) {
    if (bytes > SIZE_MAX - 64) return NULL;
    return aligned_alloc(64, bytes ? (bytes + 63) & ~(size_t)63 : 64);
}

/* ---- activation quantization ---- */

void bn_quantize_activations(int8_t *q, float *scales, int32_t *sums, const float *x, int n_tokens,
                             int cols) {
    static bn_kernel_slot slots[BN_ISA_COUNT];
    static const char *const ids[BN_ISA_COUNT] = {
        "cpu.quantize_act.scalar", "cpu.quantize_act.avx2", "cpu.quantize_act.avx512"};
    bn_isa isa = bn_isa_active();
    uint64_t t0 = bn_kernel_begin();
    switch (isa) {
    case BN_ISA_AVX512: bn_avx512_quantize_activations(q, scales, sums, x, n_tokens, cols); break;
    case BN_ISA_AVX2: bn_avx2_quantize_activations(q, scales, sums, x, n_tokens, cols); break;
    default: bn_ref_quantize_activations(q, scales, sums, x, n_tokens, cols); break;
    }
    bn_kernel_end(&slots[isa], ids[isa], t0);
}

/* ---- ternary matrices ---- */

static int format_index(uint32_t type) {
    return type == BN_TYPE_I2_S ? 0 : type == BN_TYPE_TQ2_0 ? 1 : 2;
}

static bn_status prepare(bn_ternary_matrix *matrix, const char *name, uint32_t file_type, int rows,
                         int cols, const void *file_data, int layout, bn_large_arena *arena,
                         bn_error *err) {
    memset(matrix, 0, sizeof *matrix);
    const bn_quant_format *format = bn_quant_format_get(file_type);
    if (!format || !format->ternary)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "tensor %s: type id %u is not ternary", name,
                            file_type);
    if (rows <= 0 || cols <= 0 || cols % (int)format->row_multiple != 0)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "tensor %s: shape %d x %d does not fit %s (row length a multiple "
                            "of %u)", name, rows, cols, format->name, format->row_multiple);
    if (cols / BN_TQ_BLOCK > 1024 || (size_t)rows > SIZE_MAX / (size_t)cols)
        return bn_error_set(err, BN_ERR_FORMAT, "tensor %s: shape %d x %d is too large", name,
                            rows, cols);
    if (!file_data) return bn_error_set(err, BN_ERR_INVALID, "tensor %s: no data", name);
    size_t n_elements = (size_t)rows * (size_t)cols;
    matrix->file_type = file_type;
    matrix->rows = rows;
    matrix->cols = cols;
    matrix->tensor_scale = 1.0f;
    matrix->data = file_data;
    matrix->layout = BN_LAYOUT_FILE;
    if (file_type == BN_TYPE_I2_S) {
        int64_t bad = bn_i2s_find_code3(file_data, n_elements);
        if (bad >= 0)
            return bn_error_set(err, BN_ERR_FORMAT,
                                "tensor %s: I2_S weight %lld (row %lld, column %lld) has the "
                                "invalid code 3", name, (long long)bad, (long long)(bad / cols),
                                (long long)(bad % cols));
        matrix->tensor_scale = bn_i2s_scale(file_data, n_elements);
        if (!isfinite(matrix->tensor_scale))
            return bn_error_set(err, BN_ERR_FORMAT, "tensor %s: I2_S scale is not finite", name);
        if (layout == BN_LAYOUT_I2S_TILE8) {
            /* page aligned (every pair load is one cache line), on huge pages where the system
             * allows: see core/large_alloc.h */
            const size_t bytes = (size_t)(n_elements / 4);
            uint8_t *tiles = bn_large_arena_take(arena, bytes);
            if (!tiles) {
                tiles = bn_large_alloc(bytes);
                if (!tiles)
                    return bn_error_set(err, BN_ERR_NOMEM, "tensor %s: cannot allocate %zu bytes "
                                        "for the kernel layout", name, bytes);
                matrix->owned = tiles;
                matrix->owned_bytes = bytes;
            }
            const size_t stride = (size_t)cols / 4, pairs = (size_t)cols / 256;
            const uint8_t *src = file_data;
            matrix->data = tiles;
            matrix->layout = BN_LAYOUT_I2S_TILE8;
            for (int r = 0; r < rows; r++) {
                bn_i2s_row where = bn_i2s_row_at(matrix, r);
                const uint8_t *row = src + (size_t)r * stride;
                for (size_t p = 0; p < pairs; p++)
                    memcpy((uint8_t *)where.first + p * where.pair_stride, row + 64 * p, 64);
                if (cols % 256) memcpy((uint8_t *)where.tail, row + 64 * pairs, 32);
            }
        }
    }
    return BN_OK;
}

bn_status bn_ternary_matrix_prepare_layout(bn_ternary_matrix *matrix, const char *name,
                                           uint32_t file_type, int rows, int cols,
                                           const void *file_data, int layout, bn_error *err) {
    return prepare(matrix, name, file_type, rows, cols, file_data, layout, NULL, err);
}

/* The layout the kernels read: I2S_TILE8 for I2_S, the file's for the others. */
static int kernel_layout(uint32_t file_type) {
    return file_type == BN_TYPE_I2_S ? BN_LAYOUT_I2S_TILE8 : BN_LAYOUT_FILE;
}

bn_status bn_ternary_matrix_prepare(bn_ternary_matrix *matrix, const char *name, uint32_t file_type,
                                    int rows, int cols, const void *file_data, bn_error *err) {
    return prepare(matrix, name, file_type, rows, cols, file_data, kernel_layout(file_type), NULL, err);
}

bn_status bn_ternary_matrix_prepare_in(bn_ternary_matrix *matrix, const char *name,
                                       uint32_t file_type, int rows, int cols,
                                       const void *file_data, bn_large_arena *arena,
                                       bn_error *err) {
    return prepare(matrix, name, file_type, rows, cols, file_data, kernel_layout(file_type), arena, err);
}

size_t bn_ternary_matrix_repack_bytes(uint32_t file_type, int rows, int cols) {
    if (kernel_layout(file_type) != BN_LAYOUT_I2S_TILE8 || rows <= 0 || cols <= 0) return 0;
    return (size_t)rows * (size_t)cols / 4;
}

void bn_ternary_matrix_release(bn_ternary_matrix *matrix) {
    if (!matrix) return;
    bn_large_free(matrix->owned, matrix->owned_bytes);
    memset(matrix, 0, sizeof *matrix);
}

#define MAX_PARTS 4

typedef struct ternary_job {
    float *const *ys;
    const bn_ternary_matrix *const *matrices;
    int n_parts;
    long total_rows;
    const bn_act_view *act;
    const float *scales;
    bn_isa isa;
} ternary_job;

/* Rows [r0, r1) of one matrix: integer sums, then the float finish. */
static void ternary_chunk(const ternary_job *job, const bn_ternary_matrix *m, float *y,
                          int32_t *sums, int r0, int r1) {
    const int n_tokens = job->act->n_tokens;
    switch (job->isa) {
    case BN_ISA_AVX512: bn_avx512_ternary_sums(sums, m, job->act, r0, r1); break;
    case BN_ISA_AVX2: bn_avx2_ternary_sums(sums, m, job->act, r0, r1); break;
    default: bn_ref_ternary_sums(sums, m, job->act, r0, r1); break;
    }
    if (m->file_type == BN_TYPE_I2_S && job->isa == BN_ISA_AVX512)
        bn_avx512_ternary_finish_i2s(y, m->rows, m->tensor_scale, sums, job->scales, n_tokens, r0, r1);
    else if (m->file_type == BN_TYPE_I2_S && job->isa == BN_ISA_AVX2)
        bn_avx2_ternary_finish_i2s(y, m->rows, m->tensor_scale, sums, job->scales, n_tokens, r0, r1);
    else
        bn_ternary_finish(y, m, sums, job->scales, n_tokens, r0, r1);
}

/* The rows of all parts, end to end, split among the threads in ROW_CHUNK granules (every part's
 * row count is a multiple of ROW_CHUNK when there are several, so no chunk straddles two). */
static void ternary_worker(void *context, int thread_index, int n_threads) {
    const ternary_job *job = context;
    const int n_tokens = job->act->n_tokens, groups = bn_ternary_groups(job->matrices[0]);
    long begin, end;
    bn_threadpool_split(job->total_rows, ROW_CHUNK, thread_index, n_threads, &begin, &end);
    if (begin >= end) return;
    /* An I2_S GEMM hands the kernel spans of GEMM_SPAN_ROWS rows: each token tile's activations
     * then serve more rows before the next tile's are loaded (64 tokens, 6912 x 2560, one thread:
     * 108 -> 119 MACs per cycle from 16- to 128-row spans). */
    const long span = n_tokens > 8 && job->matrices[0]->file_type == BN_TYPE_I2_S ? GEMM_SPAN_ROWS : ROW_CHUNK;
    int32_t *sums = malloc((size_t)span * (size_t)n_tokens * (size_t)groups * sizeof *sums);
    if (!sums) return; /* cannot happen for sane sizes; output stays as it was */
    long offset = 0; /* first global row of part p */
    for (int p = 0; p < job->n_parts && offset < end; p++) {
        const bn_ternary_matrix *m = job->matrices[p];
        long from = begin > offset ? begin - offset : 0, to = end - offset < m->rows ? end - offset : m->rows;
        for (long r0 = from; r0 < to; r0 += span)
            ternary_chunk(job, m, job->ys[p], sums, (int)r0, (int)(r0 + span < to ? r0 + span : to));
        offset += m->rows;
    }
    free(sums);
}

static void ternary_run(bn_threadpool *pool, float *const *ys, const bn_ternary_matrix *const *matrices,
                        int n_parts, const int8_t *q, const float *scales, const int32_t *sums,
                        int n_tokens) {
    static bn_kernel_slot slots[3][2][BN_ISA_COUNT];
    static const char *const ids[3][2][BN_ISA_COUNT] = {
        {{"cpu.i2s.gemv.scalar", "cpu.i2s.gemv.avx2", "cpu.i2s.gemv.avx512"},
         {"cpu.i2s.gemm.scalar", "cpu.i2s.gemm.avx2", "cpu.i2s.gemm.avx512"}},
        {{"cpu.tq2.gemv.scalar", "cpu.tq2.gemv.avx2", "cpu.tq2.gemv.avx512"},
         {"cpu.tq2.gemm.scalar", "cpu.tq2.gemm.avx2", "cpu.tq2.gemm.avx512"}},
        {{"cpu.tq1.gemv.scalar", "cpu.tq1.gemv.avx2", "cpu.tq1.gemv.avx512"},
         {"cpu.tq1.gemm.scalar", "cpu.tq1.gemm.avx2", "cpu.tq1.gemm.avx512"}}};
    if (n_tokens <= 0) return;
    const bn_ternary_matrix *matrix = matrices[0];
    bn_isa isa = bn_isa_active();
    uint64_t t0 = bn_kernel_begin();
    const int cols = matrix->cols;
    bn_act_view act = {.q = q, .sums = sums, .n_tokens = n_tokens, .cols = cols};
    /* Per-path activation copies: small next to the weights (n_tokens x cols bytes). */
    int8_t *pairs = NULL;
    int32_t *block_sums = NULL;
    bool ok = true;
    if (isa != BN_ISA_SCALAR && matrix->file_type != BN_TYPE_I2_S) {
        int blocks = cols / BN_TQ_BLOCK;
        block_sums = malloc((size_t)n_tokens * (size_t)blocks * sizeof *block_sums);
        ok = block_sums != NULL;
        for (int t = 0; ok && t < n_tokens; t++)
            for (int b = 0; b < blocks; b++) {
                const int8_t *qb = q + (size_t)t * cols + (size_t)b * BN_TQ_BLOCK;
                int32_t s = 0;
                for (int c = 0; c < BN_TQ_BLOCK; c++) s += qb[c];
                block_sums[(size_t)t * blocks + b] = s;
            }
        act.block_sums = block_sums;
    }
    if (ok && isa == BN_ISA_AVX512) {
        pairs = alloc_line_aligned((size_t)n_tokens * (size_t)cols);
        ok = pairs != NULL;
        if (ok) bn_avx512_pair_activations(pairs, q, n_tokens, cols);
        act.q_pairs = pairs;
    }
    if (!ok) isa = BN_ISA_SCALAR; /* out of memory for the copies: the reference needs none */
    long total_rows = 0;
    for (int p = 0; p < n_parts; p++) total_rows += matrices[p]->rows;
    ternary_job job = {.ys = ys, .matrices = matrices, .n_parts = n_parts, .total_rows = total_rows,
                       .act = &act, .scales = scales, .isa = isa};
    bn_threadpool_run(pool, ternary_worker, &job);
    free(pairs);
    free(block_sums);
    bn_kernel_end_n(&slots[format_index(matrix->file_type)][n_tokens > 1][isa],
                    ids[format_index(matrix->file_type)][n_tokens > 1][isa], t0, (uint64_t)n_parts);
}

void bn_ternary_matmul(bn_threadpool *pool, float *y, const bn_ternary_matrix *matrix,
                       const int8_t *q, const float *scales, const int32_t *sums, int n_tokens) {
    ternary_run(pool, &y, &matrix, 1, q, scales, sums, n_tokens);
}

void bn_ternary_matmul_parts(bn_threadpool *pool, float *const *ys,
                             const bn_ternary_matrix *const *matrices, int n_parts,
                             const int8_t *q, const float *scales, const int32_t *sums,
                             int n_tokens) {
    bool together = n_parts >= 1 && n_parts <= MAX_PARTS;
    for (int p = 0; together && p < n_parts; p++)
        together = matrices[p]->cols == matrices[0]->cols &&
                   matrices[p]->file_type == matrices[0]->file_type &&
                   matrices[p]->rows % ROW_CHUNK == 0;
    if (together) {
        ternary_run(pool, ys, matrices, n_parts, q, scales, sums, n_tokens);
        return;
    }
    for (int p = 0; p < n_parts; p++)
        ternary_run(pool, &ys[p], &matrices[p], 1, q, scales, sums, n_tokens);
}

/* ---- F16 matmul ---- */

typedef struct f16_job {
    float *y;
    const uint16_t *w;
    const float *x;
    int rows, cols, n_tokens;
    bn_isa isa;
} f16_job;

static void f16_worker(void *context, int thread_index, int n_threads) {
    const f16_job *job = context;
    long begin, end;
    bn_threadpool_split(job->rows, ROW_CHUNK, thread_index, n_threads, &begin, &end);
    if (begin >= end) return;
    switch (job->isa) {
    case BN_ISA_AVX512:
        bn_avx512_f16_matmul(job->y, job->w, job->x, job->rows, job->cols, job->n_tokens,
                             (int)begin, (int)end);
        break;
    case BN_ISA_AVX2:
        bn_avx2_f16_matmul(job->y, job->w, job->x, job->rows, job->cols, job->n_tokens,
                           (int)begin, (int)end);
        break;
    default:
        bn_ref_f16_matmul(job->y, job->w, job->x, job->rows, job->cols, job->n_tokens,
                          (int)begin, (int)end);
        break;
    }
}

void bn_f16_matmul(bn_threadpool *pool, float *y, const uint16_t *w, const float *x, int rows,
                   int cols, int n_tokens) {
    static bn_kernel_slot slots[2][BN_ISA_COUNT];
    static const char *const ids[2][BN_ISA_COUNT] = {
        {"cpu.f16.gemv.scalar", "cpu.f16.gemv.avx2", "cpu.f16.gemv.avx512"},
        {"cpu.f16.gemm.scalar", "cpu.f16.gemm.avx2", "cpu.f16.gemm.avx512"}};
    if (n_tokens <= 0 || rows <= 0 || cols <= 0) return;
    bn_isa isa = bn_isa_active();
    uint64_t t0 = bn_kernel_begin();
    f16_job job = {y, w, x, rows, cols, n_tokens, isa};
    bn_threadpool_run(pool, f16_worker, &job);
    bn_kernel_end(&slots[n_tokens > 1][isa], ids[n_tokens > 1][isa], t0);
}

/* ---- int8 matrices ---- */

typedef struct int8_convert_job {
    bn_int8_matrix *matrix;
    const uint16_t *w;
} int8_convert_job;

static void int8_convert_worker(void *context, int thread_index, int n_threads) {
    const int8_convert_job *job = context;
    bn_int8_matrix *m = job->matrix;
    long begin, end;
    bn_threadpool_split(m->rows, 1, thread_index, n_threads, &begin, &end);
    for (long r = begin; r < end; r++)
        bn_ref_int8_quantize_row(m->q + (size_t)r * m->cols, &m->row_scales[r],
                                 job->w + (size_t)r * m->cols, m->cols);
}

bn_status bn_int8_matrix_from_f16(bn_int8_matrix *matrix, const uint16_t *w, int rows, int cols,
                                  bn_threadpool *pool, bn_error *err) {
    memset(matrix, 0, sizeof *matrix);
    if (rows <= 0 || cols <= 0 || (size_t)rows > SIZE_MAX / (size_t)cols)
        return bn_error_set(err, BN_ERR_INVALID, "int8 matrix: invalid shape %d x %d", rows, cols);
    matrix->q = malloc((size_t)rows * (size_t)cols);
    matrix->row_scales = malloc((size_t)rows * sizeof *matrix->row_scales);
    if (!matrix->q || !matrix->row_scales) {
        bn_int8_matrix_release(matrix);
        return bn_error_set(err, BN_ERR_NOMEM, "int8 matrix: cannot allocate %d x %d", rows, cols);
    }
    matrix->rows = rows;
    matrix->cols = cols;
    int8_convert_job job = {matrix, w};
    bn_threadpool_run(pool, int8_convert_worker, &job);
    return BN_OK;
}

void bn_int8_matrix_release(bn_int8_matrix *matrix) {
    if (!matrix) return;
    free(matrix->q);
    free(matrix->row_scales);
    memset(matrix, 0, sizeof *matrix);
}

typedef struct int8_job {
    float *y;
    const bn_int8_matrix *matrix;
    const bn_act_view *act;
    const float *scales;
    bn_isa isa;
} int8_job;

static void int8_worker(void *context, int thread_index, int n_threads) {
    const int8_job *job = context;
    const int n_tokens = job->act->n_tokens;
    long begin, end;
    bn_threadpool_split(job->matrix->rows, ROW_CHUNK, thread_index, n_threads, &begin, &end);
    int32_t sums[ROW_CHUNK * 64];
    for (long r0 = begin; r0 < end; r0 += ROW_CHUNK) {
        int r1 = (int)(r0 + ROW_CHUNK < end ? r0 + ROW_CHUNK : end);
        /* Tokens in slices of 64 keep the sums buffer on the stack. */
        for (int t0 = 0; t0 < n_tokens; t0 += 64) {
            bn_act_view slice = *job->act;
            slice.n_tokens = n_tokens - t0 < 64 ? n_tokens - t0 : 64;
            slice.q += (size_t)t0 * slice.cols;
            if (slice.q_unsigned) slice.q_unsigned += (size_t)t0 * slice.cols;
            switch (job->isa) {
            case BN_ISA_AVX512: bn_avx512_int8_sums(sums, job->matrix, &slice, (int)r0, r1); break;
            case BN_ISA_AVX2: bn_avx2_int8_sums(sums, job->matrix, &slice, (int)r0, r1); break;
            default: bn_ref_int8_sums(sums, job->matrix, &slice, (int)r0, r1); break;
            }
            /* finish indexes y by token: shift the base so slice token 0 is token t0 */
            bn_int8_finish(job->y + (size_t)t0 * job->matrix->rows, job->matrix, sums,
                           job->scales + t0, slice.n_tokens, (int)r0, r1);
        }
    }
}

void bn_int8_matmul(bn_threadpool *pool, float *y, const bn_int8_matrix *matrix, const int8_t *q,
                    const float *scales, const int32_t *sums, int n_tokens) {
    static bn_kernel_slot slots[2][BN_ISA_COUNT];
    static const char *const ids[2][BN_ISA_COUNT] = {
        {"cpu.int8.gemv.scalar", "cpu.int8.gemv.avx2", "cpu.int8.gemv.avx512"},
        {"cpu.int8.gemm.scalar", "cpu.int8.gemm.avx2", "cpu.int8.gemm.avx512"}};
    if (n_tokens <= 0) return;
    bn_isa isa = bn_isa_active();
    uint64_t t0 = bn_kernel_begin();
    const int cols = matrix->cols;
    bn_act_view act = {.q = q, .sums = sums, .n_tokens = n_tokens, .cols = cols};
    uint8_t *helper = NULL;
    if (isa != BN_ISA_SCALAR) {
        helper = alloc_line_aligned((size_t)n_tokens * (size_t)cols);
        if (!helper) isa = BN_ISA_SCALAR;
        for (size_t i = 0; helper && i < (size_t)n_tokens * (size_t)cols; i++)
            helper[i] = isa == BN_ISA_AVX512 ? (uint8_t)(q[i] + 128) : (uint8_t)abs(q[i]);
        act.q_unsigned = helper;
    }
    int8_job job = {.y = y, .matrix = matrix, .act = &act, .scales = scales, .isa = isa};
    bn_threadpool_run(pool, int8_worker, &job);
    free(helper);
    bn_kernel_end(&slots[n_tokens > 1][isa], ids[n_tokens > 1][isa], t0);
}
