/*
 * matmul.c: dispatch points of the matrix ops in kernels/ops.h (activation quantization, ternary
 * I2_S/TQ2_0/TQ1_0 matmul, F16 and int8 matmul) and ternary matrix preparation.
 *
 * Kernel tables, in the style of ggml's type traits: per format and path one entry (id, the path
 * it needs, its functions, the activation copies it reads, its registry counter). A call looks up
 * the variant its class is bound to (kernels/variants.h: the path and the knobs the tuner chose),
 * takes that path's entry, prepares the activation copies once in the calling thread's scratch
 * (kernels/scratch.h), splits the output rows over the thread pool and counts the call under the
 * entry's id ("cpu.i2s.gemv.avx512"; gemv for one token, gemm for several). A new format or path
 * is one entry. Kernels return exact integer sums and one shared float step (ref_matmul.c) turns
 * them into outputs, so every path, variant, thread count and batch size yields the same bits.
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
#include "kernels/cpu/act_blocks.h"
#include "kernels/cpu/amx_tiles.h"
#include "kernels/cpu/matmul_isa.h"
#include "kernels/cpu/neon_isa.h"
#include "kernels/cpu/ref_matmul.h"
#include "kernels/cpu_features.h"
#include "kernels/registry.h"
#include "kernels/scratch.h"
#include "kernels/variants.h"
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

/* Integer sums a worker holds at once (on its stack, 64 KiB): a chunk's rows x groups x tokens,
 * the tokens taken in passes that fit. Every row chunk of every format fits one token (16 rows x
 * at most 1024 TQ lanes = 128 blocks, the limit prepare checks); an I2_S GEMM span takes 128
 * tokens a pass, which is the kernels' own order (token tiles outermost), so passes cost nothing. */
#define WORKER_SUMS (ROW_CHUNK * 1024)

/* ---- activation quantization ---- */

typedef void (*quantize_fn)(int8_t *q, float *scales, int32_t *sums, const float *x,
                            int n_tokens, int cols);

static struct quantize_kernel {
    const char *id;
    quantize_fn run;
    bn_kernel_slot slot;
} quantize_kernels[BN_ISA_COUNT] = {
    {"cpu.quantize_act.scalar", bn_ref_quantize_activations, {0}},
    {"cpu.quantize_act.avx2", BN_X86_KERNEL(bn_avx2_quantize_activations), {0}},
    {"cpu.quantize_act.avx512", BN_X86_KERNEL(bn_avx512_quantize_activations), {0}},
    {"cpu.quantize_act.neon", BN_ARM_KERNEL(bn_neon_quantize_activations), {0}},
};

void bn_quantize_activations(int8_t *q, float *scales, int32_t *sums, const float *x, int n_tokens,
                             int cols) {
    bn_isa isa = bn_isa_active();
    while (!quantize_kernels[isa].run) isa = bn_isa_narrower(isa); /* neondot runs neon's */
    struct quantize_kernel *k = &quantize_kernels[isa];
    uint64_t t0 = bn_kernel_begin();
    k->run(q, scales, sums, x, n_tokens, cols);
    bn_kernel_end(&k->slot, k->id, t0);
}

/* Q8_K activations of the TQ formats (kernels/cpu/act_blocks.h): scalar on every path (one pass
 * over the activations); the lane sums are Q8_K's bsums in pairs. */
static bn_kernel_slot quantize_q8k_slot;

bool bn_ternary_type_uses_q8k(uint32_t file_type) {
    return file_type == BN_TYPE_TQ1_0 || file_type == BN_TYPE_TQ2_0;
}

void bn_quantize_activations_q8k(int8_t *q, float *block_scales, int32_t *lane_sums, const float *x,
                                 int n_tokens, int cols) {
    uint64_t t0 = bn_kernel_begin();
    const int blocks = cols / BN_Q8K_BLOCK;
    for (int t = 0; t < n_tokens; t++)
        for (int b = 0; b < blocks; b++) {
            bn_q8k_block block;
            const size_t at = (size_t)t * (size_t)blocks + (size_t)b;
            bn_quantize_row_q8k(&block, x + (size_t)t * cols + (size_t)b * BN_Q8K_BLOCK, BN_Q8K_BLOCK);
            memcpy(q + (size_t)t * cols + (size_t)b * BN_Q8K_BLOCK, block.qs, BN_Q8K_BLOCK);
            block_scales[at] = block.d;
            for (int l = 0; l < BN_TQ_LANES; l++)
                lane_sums[at * BN_TQ_LANES + l] = block.bsums[2 * l] + block.bsums[2 * l + 1];
        }
    bn_kernel_end(&quantize_q8k_slot, "cpu.quantize_q8k.scalar", t0);
}

/* ---- ternary matrices ---- */

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
    if ((file_type != BN_TYPE_I2_S && cols / BN_TQ_BLOCK * BN_TQ_LANES > 1024) ||
        (size_t)rows > SIZE_MAX / (size_t)cols)
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

typedef void (*ternary_sums_fn)(int32_t *out, const bn_ternary_matrix *matrix,
                                const bn_act_view *act, int row_begin, int row_end);
typedef void (*ternary_finish_i2s_fn)(float *y, int rows, float tensor_scale, const int32_t *sums,
                                      const float *scales, int n_tokens, int row_begin, int row_end);

/* One ternary kernel: a format's sums on one path, the activation copies it reads, its finish
 * (NULL: the shared bn_ternary_finish), and one registry counter per shape (gemv, gemm). */
typedef struct ternary_kernel {
    const char *ids[2];
    bn_isa needs;
    ternary_sums_fn sums;
    ternary_finish_i2s_fn finish_i2s;
    bool pairs;      /* reads q_pairs */
    bn_kernel_slot slots[2];
    bool tiles;      /* reads q_tiles (AMX) */
} ternary_kernel;

enum { FORMAT_I2S, FORMAT_TQ2, FORMAT_TQ1, FORMAT_COUNT };

static ternary_kernel ternary_kernels[FORMAT_COUNT][BN_ISA_COUNT] = {
    [FORMAT_I2S] = {
        {{"cpu.i2s.gemv.scalar", "cpu.i2s.gemm.scalar"}, BN_ISA_SCALAR, bn_ref_ternary_sums, NULL, false, {{0}}},
        {{"cpu.i2s.gemv.avx2", "cpu.i2s.gemm.avx2"}, BN_ISA_AVX2, BN_X86_KERNEL(bn_avx2_ternary_sums),
         BN_X86_KERNEL(bn_avx2_ternary_finish_i2s), false, {{0}}},
        {{"cpu.i2s.gemv.avx512", "cpu.i2s.gemm.avx512"}, BN_ISA_AVX512, BN_X86_KERNEL(bn_avx512_ternary_sums),
         BN_X86_KERNEL(bn_avx512_ternary_finish_i2s), true, {{0}}},
        {{"cpu.i2s.gemv.neon", "cpu.i2s.gemm.neon"}, BN_ISA_NEON, BN_ARM_KERNEL(bn_neon_ternary_sums),
         NULL, false, {{0}}},
        {{"cpu.i2s.gemv.neondot", "cpu.i2s.gemm.neondot"}, BN_ISA_NEONDOT,
         BN_ARM_KERNEL(bn_neondot_ternary_sums), NULL, false, {{0}}},
    },
    [FORMAT_TQ2] = {
        {{"cpu.tq2.gemv.scalar", "cpu.tq2.gemm.scalar"}, BN_ISA_SCALAR, bn_ref_ternary_sums, NULL, false, {{0}}},
        {{"cpu.tq2.gemv.avx2", "cpu.tq2.gemm.avx2"}, BN_ISA_AVX2, BN_X86_KERNEL(bn_avx2_ternary_sums), NULL, false, {{0}}},
        {{"cpu.tq2.gemv.avx512", "cpu.tq2.gemm.avx512"}, BN_ISA_AVX512, BN_X86_KERNEL(bn_avx512_ternary_sums), NULL, true, {{0}}},
        {{"cpu.tq2.gemv.neon", "cpu.tq2.gemm.neon"}, BN_ISA_NEON, BN_ARM_KERNEL(bn_neon_ternary_sums), NULL, false, {{0}}},
        {{"cpu.tq2.gemv.neondot", "cpu.tq2.gemm.neondot"}, BN_ISA_NEONDOT,
         BN_ARM_KERNEL(bn_neondot_ternary_sums), NULL, false, {{0}}},
    },
    [FORMAT_TQ1] = {
        {{"cpu.tq1.gemv.scalar", "cpu.tq1.gemm.scalar"}, BN_ISA_SCALAR, bn_ref_ternary_sums, NULL, false, {{0}}},
        {{"cpu.tq1.gemv.avx2", "cpu.tq1.gemm.avx2"}, BN_ISA_AVX2, BN_X86_KERNEL(bn_avx2_ternary_sums), NULL, false, {{0}}},
        {{"cpu.tq1.gemv.avx512", "cpu.tq1.gemm.avx512"}, BN_ISA_AVX512, BN_X86_KERNEL(bn_avx512_ternary_sums), NULL, true, {{0}}},
        {{"cpu.tq1.gemv.neon", "cpu.tq1.gemm.neon"}, BN_ISA_NEON, BN_ARM_KERNEL(bn_neon_ternary_sums), NULL, false, {{0}}},
        {{"cpu.tq1.gemv.neondot", "cpu.tq1.gemm.neondot"}, BN_ISA_NEONDOT,
         BN_ARM_KERNEL(bn_neondot_ternary_sums), NULL, false, {{0}}},
    },
};

/* The kernels of the knobs of kernels/variants.h: AVX-VNNI on the AVX2 path (every format),
 * AMX tiles on the AVX-512 path (I2_S prompts; TQ formats need eight sums per 256 columns, which
 * tiles do not give), real or, under BITNET_AMX_EMULATE, emulated (cpu/amx_tiles.h). */
static ternary_kernel ternary_vnni_kernels[FORMAT_COUNT] = {
    [FORMAT_I2S] = {{"cpu.i2s.gemv.avx2vnni", "cpu.i2s.gemm.avx2vnni"}, BN_ISA_AVX2,
                    BN_AVXVNNI_KERNEL(bn_avxvnni_ternary_sums), BN_X86_KERNEL(bn_avx2_ternary_finish_i2s),
                    false, {{0}}, false},
    [FORMAT_TQ2] = {{"cpu.tq2.gemv.avx2vnni", "cpu.tq2.gemm.avx2vnni"}, BN_ISA_AVX2,
                    BN_AVXVNNI_KERNEL(bn_avxvnni_ternary_sums), NULL, false, {{0}}, false},
    [FORMAT_TQ1] = {{"cpu.tq1.gemv.avx2vnni", "cpu.tq1.gemm.avx2vnni"}, BN_ISA_AVX2,
                    BN_AVXVNNI_KERNEL(bn_avxvnni_ternary_sums), NULL, false, {{0}}, false},
};
static ternary_kernel ternary_amx_kernels[2] = { /* real, emulated */
    {{"cpu.i2s.gemv.amx", "cpu.i2s.gemm.amx"}, BN_ISA_AVX512, BN_AMX_KERNEL(bn_amx_ternary_sums),
     BN_X86_KERNEL(bn_avx512_ternary_finish_i2s), false, {{0}}, true},
    {{"cpu.i2s.gemv.amx-emulated", "cpu.i2s.gemm.amx-emulated"}, BN_ISA_AVX512,
     BN_X86_KERNEL(bn_amx_emulated_ternary_sums), BN_X86_KERNEL(bn_avx512_ternary_finish_i2s), false,
     {{0}}, true},
};

typedef struct ternary_job {
    float *const *ys;
    const bn_ternary_matrix *const *matrices;
    int n_parts;
    long total_rows;
    const bn_act_view *act;
    const float *scales;
    const ternary_kernel *kernel;
} ternary_job;

/* The view of tokens [t0, t0 + n) of act. */
static bn_act_view act_slice(const bn_act_view *act, int t0, int n) {
    bn_act_view slice = *act;
    const size_t bytes = (size_t)t0 * (size_t)act->cols;
    slice.n_tokens = n;
    slice.q += bytes;
    slice.sums += t0;
    if (slice.q_pairs) slice.q_pairs += bytes;
    if (slice.q_unsigned) slice.q_unsigned += bytes;
    if (slice.q_tiles) slice.q_tiles += bytes; /* t0 a multiple of 16 (ternary_chunk) */
    if (slice.lane_sums) slice.lane_sums += (size_t)t0 * (size_t)(act->cols / BN_TQ_BLOCK) * BN_TQ_LANES;
    return slice;
}

/* Rows [r0, r1) of one matrix, the tokens in passes that fit `sums`: integer sums, then the
 * float finish (y and scales shifted so the pass's token 0 is token t0). */
static void ternary_chunk(const ternary_job *job, const bn_ternary_matrix *m, float *y,
                          int32_t *sums, int r0, int r1) {
    const ternary_kernel *k = job->kernel;
    const int n_tokens = job->act->n_tokens;
    const long per_token = (long)(r1 - r0) * bn_ternary_groups(m);
    int pass = WORKER_SUMS / per_token < n_tokens ? (int)(WORKER_SUMS / per_token) : n_tokens;
    if (pass < n_tokens && pass > BN_AMX_TILE_TOKENS) pass -= pass % BN_AMX_TILE_TOKENS; /* AMX groups */
    /* scales per token: one (I2_S) or one per 256-block (Q8_K of the TQ formats) */
    const size_t scales_per_token = m->file_type == BN_TYPE_I2_S ? 1 : (size_t)(m->cols / BN_TQ_BLOCK);
    for (int t0 = 0; t0 < n_tokens; t0 += pass) {
        const int n = n_tokens - t0 < pass ? n_tokens - t0 : pass;
        const bn_act_view slice = t0 == 0 && n == n_tokens ? *job->act : act_slice(job->act, t0, n);
        float *y_pass = y + (size_t)t0 * (size_t)m->rows;
        k->sums(sums, m, &slice, r0, r1);
        if (m->file_type == BN_TYPE_I2_S && k->finish_i2s)
            k->finish_i2s(y_pass, m->rows, m->tensor_scale, sums, job->scales + t0, n, r0, r1);
        else
            bn_ternary_finish(y_pass, m, sums, job->scales + (size_t)t0 * scales_per_token, n, r0, r1);
    }
}

/* The rows of all parts, end to end, split among the threads in ROW_CHUNK granules (every part's
 * row count is a multiple of ROW_CHUNK when there are several, so no chunk straddles two). */
static void ternary_worker(void *context, int thread_index, int n_threads) {
    const ternary_job *job = context;
    const int n_tokens = job->act->n_tokens;
    long begin, end;
    bn_threadpool_split(job->total_rows, ROW_CHUNK, thread_index, n_threads, &begin, &end);
    if (begin >= end) return;
    /* An I2_S GEMM hands the kernel spans of GEMM_SPAN_ROWS rows: each token tile's activations
     * then serve more rows before the next tile's are loaded (64 tokens, 6912 x 2560, one thread:
     * 108 -> 119 MACs per cycle from 16- to 128-row spans). */
    const long span = n_tokens > 8 && job->matrices[0]->file_type == BN_TYPE_I2_S ? GEMM_SPAN_ROWS : ROW_CHUNK;
    int32_t sums[WORKER_SUMS];
    long offset = 0; /* first global row of part p */
    for (int p = 0; p < job->n_parts && offset < end; p++) {
        const bn_ternary_matrix *m = job->matrices[p];
        long from = begin > offset ? begin - offset : 0, to = end - offset < m->rows ? end - offset : m->rows;
        for (long r0 = from; r0 < to; r0 += span)
            ternary_chunk(job, m, job->ys[p], sums, (int)r0, (int)(r0 + span < to ? r0 + span : to));
        offset += m->rows;
    }
}

static int format_index(uint32_t type) {
    return type == BN_TYPE_I2_S ? FORMAT_I2S : type == BN_TYPE_TQ2_0 ? FORMAT_TQ2 : FORMAT_TQ1;
}

static void ternary_run(bn_threadpool *pool, float *const *ys, const bn_ternary_matrix *const *matrices,
                        int n_parts, const int8_t *q, const float *scales, const int32_t *sums,
                        int n_tokens) {
    if (n_tokens <= 0) return;
    const bn_ternary_matrix *matrix = matrices[0];
    const int cols = matrix->cols, format = format_index(matrix->file_type);
    const bn_kernel_variant variant = bn_kernel_variant_of(bn_kernel_class_of_tokens(n_tokens));
    bn_isa isa = variant.isa;
    while (!ternary_kernels[format][isa].sums) isa = bn_isa_narrower(isa); /* no kernel on the path */
    ternary_kernel *k = &ternary_kernels[format][isa];
    if (variant.vnni && ternary_vnni_kernels[format].sums) k = &ternary_vnni_kernels[format];
    if (variant.amx && format == FORMAT_I2S && ternary_amx_kernels[bn_amx_emulated()].sums)
        k = &ternary_amx_kernels[bn_amx_emulated()];
    uint64_t t0 = bn_kernel_begin();
    bn_act_view act = {.q = q, .sums = sums, .n_tokens = n_tokens, .cols = cols,
                       .prefetch = variant.prefetch, .gfni = variant.gfni};
    if (format != FORMAT_I2S) act.lane_sums = sums; /* Q8_K's, from bn_quantize_activations_q8k */
    /* Per-path activation copies in this thread's scratch: small next to the weights. */
    if (k->pairs) {
        int8_t *pairs = bn_thread_scratch(BN_SCRATCH_ACTIVATIONS, (size_t)n_tokens * (size_t)cols);
#ifdef BN_ARCH_X86
        if (pairs) bn_avx512_pair_activations(pairs, q, n_tokens, cols);
#endif
        act.q_pairs = pairs;
        if (!pairs) k = &ternary_kernels[format][BN_ISA_SCALAR];
    }
#ifdef BN_ARCH_X86
    if (k->tiles) { /* the B tiles of the AMX GEMM, once per call */
        int8_t *tiles = bn_thread_scratch(BN_SCRATCH_ACTIVATIONS, bn_amx_act_tiles_bytes(n_tokens, cols));
        if (tiles && bn_amx_emulated()) bn_amx_emulated_tile_activations(tiles, q, n_tokens, cols);
#ifdef BITNET_HAVE_AMX
        else if (tiles) bn_amx_tile_activations(tiles, q, n_tokens, cols);
#endif
        act.q_tiles = tiles;
        if (!tiles) k = &ternary_kernels[format][BN_ISA_SCALAR];
    }
#endif
    long total_rows = 0;
    for (int p = 0; p < n_parts; p++) total_rows += matrices[p]->rows;
    ternary_job job = {.ys = ys, .matrices = matrices, .n_parts = n_parts, .total_rows = total_rows,
                       .act = &act, .scales = scales, .kernel = k};
    bn_threadpool_run(pool, ternary_worker, &job);
    bn_kernel_end_n(&k->slots[n_tokens > 1], k->ids[n_tokens > 1], t0, (uint64_t)n_parts);
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

typedef void (*f16_fn)(float *y, const uint16_t *w, const float *x, int rows, int cols,
                       int n_tokens, int row_begin, int row_end, bn_prefetch_hint hint);

static struct f16_kernel {
    const char *ids[2]; /* gemv, gemm */
    f16_fn run;
    bn_kernel_slot slots[2];
} f16_kernels[BN_ISA_COUNT] = {
    {{"cpu.f16.gemv.scalar", "cpu.f16.gemm.scalar"}, bn_ref_f16_matmul, {{0}}},
    {{"cpu.f16.gemv.avx2", "cpu.f16.gemm.avx2"}, BN_X86_KERNEL(bn_avx2_f16_matmul), {{0}}},
    {{"cpu.f16.gemv.avx512", "cpu.f16.gemm.avx512"}, BN_X86_KERNEL(bn_avx512_f16_matmul), {{0}}},
    {{"cpu.f16.gemv.neon", "cpu.f16.gemm.neon"}, BN_ARM_KERNEL(bn_neon_f16_matmul), {{0}}},
};

typedef struct f16_job {
    float *y;
    const uint16_t *w;
    const float *x;
    int rows, cols, n_tokens;
    f16_fn run;
    bn_prefetch_hint hint;
} f16_job;

static void f16_worker(void *context, int thread_index, int n_threads) {
    const f16_job *job = context;
    long begin, end;
    bn_threadpool_split(job->rows, ROW_CHUNK, thread_index, n_threads, &begin, &end);
    if (begin < end)
        job->run(job->y, job->w, job->x, job->rows, job->cols, job->n_tokens, (int)begin, (int)end, job->hint);
}

void bn_f16_matmul(bn_threadpool *pool, float *y, const uint16_t *w, const float *x, int rows,
                   int cols, int n_tokens) {
    if (n_tokens <= 0 || rows <= 0 || cols <= 0) return;
    const bn_kernel_variant variant = bn_kernel_variant_of(BN_KCLASS_HEAD);
    bn_isa isa = variant.isa;
    while (!f16_kernels[isa].run) isa = bn_isa_narrower(isa); /* neondot runs neon's */
    struct f16_kernel *k = &f16_kernels[isa];
    uint64_t t0 = bn_kernel_begin();
    f16_job job = {y, w, x, rows, cols, n_tokens, k->run, variant.prefetch};
    bn_threadpool_run(pool, f16_worker, &job);
    bn_kernel_end(&k->slots[n_tokens > 1], k->ids[n_tokens > 1], t0);
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

typedef void (*int8_sums_fn)(int32_t *out, const bn_int8_matrix *matrix, const bn_act_view *act,
                             int row_begin, int row_end);

/* The helper copy of q each path reads (act->q_unsigned): none, |q|, q + 128. */
enum { HELPER_NONE, HELPER_ABS, HELPER_PLUS_128 };

static struct int8_kernel {
    const char *ids[2]; /* gemv, gemm */
    int8_sums_fn sums;
    int helper;
    bn_kernel_slot slots[2];
} int8_kernels[BN_ISA_COUNT] = {
    {{"cpu.int8.gemv.scalar", "cpu.int8.gemm.scalar"}, bn_ref_int8_sums, HELPER_NONE, {{0}}},
    {{"cpu.int8.gemv.avx2", "cpu.int8.gemm.avx2"}, BN_X86_KERNEL(bn_avx2_int8_sums), HELPER_ABS, {{0}}},
    {{"cpu.int8.gemv.avx512", "cpu.int8.gemm.avx512"}, BN_X86_KERNEL(bn_avx512_int8_sums), HELPER_PLUS_128, {{0}}},
    {{"cpu.int8.gemv.neon", "cpu.int8.gemm.neon"}, BN_ARM_KERNEL(bn_neon_int8_sums), HELPER_NONE, {{0}}},
    {{"cpu.int8.gemv.neondot", "cpu.int8.gemm.neondot"}, BN_ARM_KERNEL(bn_neondot_int8_sums), HELPER_NONE, {{0}}},
};

/* The AVX2 path with AVX-VNNI (the "avx2.vnni" head variant): AVX2's helper copy. */
static struct int8_kernel int8_vnni_kernel = {{"cpu.int8.gemv.avx2vnni", "cpu.int8.gemm.avx2vnni"},
                                              BN_AVXVNNI_KERNEL(bn_avxvnni_int8_sums), HELPER_ABS, {{0}}};

typedef struct int8_job {
    float *y;
    const bn_int8_matrix *matrix;
    const bn_act_view *act;
    const float *scales;
    int8_sums_fn sums;
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
            const bn_act_view slice = act_slice(job->act, t0, n_tokens - t0 < 64 ? n_tokens - t0 : 64);
            job->sums(sums, job->matrix, &slice, (int)r0, r1);
            /* finish indexes y by token: shift the base so slice token 0 is token t0 */
            bn_int8_finish(job->y + (size_t)t0 * job->matrix->rows, job->matrix, sums,
                           job->scales + t0, slice.n_tokens, (int)r0, r1);
        }
    }
}

void bn_int8_matmul(bn_threadpool *pool, float *y, const bn_int8_matrix *matrix, const int8_t *q,
                    const float *scales, const int32_t *sums, int n_tokens) {
    if (n_tokens <= 0) return;
    const bn_kernel_variant variant = bn_kernel_variant_of(BN_KCLASS_HEAD);
    bn_isa isa = variant.isa;
    while (!int8_kernels[isa].sums) isa = bn_isa_narrower(isa); /* no kernel on the path */
    struct int8_kernel *k = &int8_kernels[isa];
    if (variant.vnni && int8_vnni_kernel.sums) k = &int8_vnni_kernel;
    uint64_t t0 = bn_kernel_begin();
    const int cols = matrix->cols;
    bn_act_view act = {.q = q, .sums = sums, .n_tokens = n_tokens, .cols = cols};
    if (k->helper != HELPER_NONE) {
        const size_t n = (size_t)n_tokens * (size_t)cols;
        uint8_t *helper = bn_thread_scratch(BN_SCRATCH_ACTIVATIONS, n);
        if (!helper) k = &int8_kernels[BN_ISA_SCALAR]; /* needs no copy */
        for (size_t i = 0; helper && i < n; i++)
            helper[i] = k->helper == HELPER_PLUS_128 ? (uint8_t)(q[i] + 128) : (uint8_t)abs(q[i]);
        act.q_unsigned = helper;
    }
    int8_job job = {.y = y, .matrix = matrix, .act = &act, .scales = scales, .sums = k->sums};
    bn_threadpool_run(pool, int8_worker, &job);
    bn_kernel_end(&k->slots[n_tokens > 1], k->ids[n_tokens > 1], t0);
}
