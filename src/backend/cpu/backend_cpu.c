/*
 * backend_cpu.c: the CPU backend. Each operation of backend.h maps onto the dispatching kernels
 * of kernels/ops.h (which pick the ISA path, count calls in the registry and split rows over the
 * thread pool). Attention is split over the batch's entries, one entry per thread at a time, so
 * each entry's result is computed by one thread in one order whatever the thread count.
 *
 * Weights (bind_weights): the ternary projections go through bn_ternary_matrix_prepare_in(),
 * which repacks I2_S into the kernels' row tiles, all of them in one huge-page arena; the file
 * pages of a repacked tensor are dropped (madvise MADV_DONTNEED on the page-aligned inner range)
 * so resident memory stays at about the file size. The LM head, read whole for every step, is
 * copied as it is into huge pages and its file pages dropped the same way. Norms, the embedding
 * and a head of any type (kernels/head.h) are read from the file's bytes where they lie; the
 * views' data outlives the backend.
 *
 * Scratch owned here: the int8 activations of the widest projection input for a chunk, one
 * attention score row (context length floats) per thread, and the RoPE angle tables of a chunk's
 * positions; all grow through reserve().
 */
#include "backend/cpu/backend_cpu.h"

#include "kernels/head.h"
#include "kernels/scratch.h"
#include "quant/quant_format.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A ternary projection in the kernels' layout and its optional output scale. */
typedef struct cpu_projection {
    bn_ternary_matrix matrix;
    bool has_out_scale;
    float out_scale;
} cpu_projection;

typedef struct cpu_layer {
    const float *norms[BN_NORM_LAYER_KINDS]; /* the views' (not owned) */
    cpu_projection linears[BN_LINEAR_KINDS];
} cpu_layer;

/* The weights as the kernels read them, owned by the backend. */
typedef struct cpu_weights {
    bn_head_matrix embd;        /* token_embd, n_vocab x dim, any head type (kernels/head.h) */
    bn_head_matrix head;        /* the LM head (embd's data when tied) */
    const uint16_t *token_embd; /* embd's data when it is F16, else NULL */
    const uint16_t *output;     /* the same for the head (also the int8 head's source) */
    const float *output_norm;   /* dim */
    const float *rope_freqs;    /* llama: rope_dim / 2 divisors, or NULL */
    void *output_copy;          /* owned (bn_large_alloc), output_copy_bytes: the head in huge pages */
    size_t output_copy_bytes;
    bool has_int8_output;
    bn_int8_matrix output_int8; /* config.int8_lm_head */
    int n_layers;               /* layers with prepared matrices (released in destroy) */
    cpu_layer *layers;          /* config.n_layers, owned */
    bn_large_arena arena;       /* the layers' repacked matrices, one huge-page region */
} cpu_weights;

typedef struct cpu_backend {
    cpu_weights weights;
    bn_threadpool *pool;
    int n_threads;
    /* activation quantization of one chunk */
    int quant_tokens;
    int8_t *q;
    float *scales;
    int32_t *sums;
    /* attention scores, n_threads rows of score_len floats */
    int score_len;
    float *scores;
    /* RoPE angle tables (rope_half cos and sin values) of up to rope_tokens chunk rows: row t
     * holds the angles of position rope_pos[t] when rope_valid[t]; every layer's q and k of a
     * chunk rotate at the same positions, so the angles are computed once per chunk */
    int rope_tokens, rope_half;
    int32_t *rope_pos;
    bool *rope_valid;
    float *rope_cos, *rope_sin;
} cpu_backend;

static cpu_backend *impl_of(bn_backend *backend) { return (cpu_backend *)backend->impl; }

static void *cpu_alloc(bn_backend *backend, size_t bytes) {
    (void)backend;
    if (bytes > SIZE_MAX - 64) return NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    return aligned_alloc(64, rounded ? rounded : 64);
}

static void cpu_release(bn_backend *backend, void *buffer) {
    (void)backend;
    free(buffer);
}

static bn_status cpu_reserve(bn_backend *backend, int n_tokens, int max_context, bn_error *err) {
    cpu_backend *cpu = impl_of(backend);
    const bn_backend_config *c = &backend->config;
    if (n_tokens > cpu->quant_tokens) {
        size_t width = (size_t)bn_backend_max_width(c);
        int8_t *q = cpu_alloc(backend, (size_t)n_tokens * width); /* SIMD rows start on a line */
        /* per token one scale and one sum (I2_S), or per 256-block one scale and 8 lane sums
         * (Q8_K of the TQ formats) */
        const size_t blocks = width / 256 + 1;
        float *scales = malloc((size_t)n_tokens * blocks * sizeof *scales);
        int32_t *sums = malloc((size_t)n_tokens * blocks * 8 * sizeof *sums);
        if (!q || !scales || !sums) {
            free(q), free(scales), free(sums);
            return bn_error_set(err, BN_ERR_NOMEM, "CPU backend: out of memory for %d tokens", n_tokens);
        }
        free(cpu->q), free(cpu->scales), free(cpu->sums);
        cpu->q = q, cpu->scales = scales, cpu->sums = sums;
        cpu->quant_tokens = n_tokens;
    }
    /* The matmuls' activation copies live in the decoding thread's scratch (kernels/scratch.h):
     * reserved here, where running out of memory can still be reported, so decoding allocates
     * nothing (a no-op once this thread holds enough). */
    {
        const size_t width = (size_t)bn_backend_max_width(c);
        if (bn_thread_scratch_reserve(BN_SCRATCH_ACTIVATIONS, (size_t)n_tokens * width, err) != BN_OK) {
            bn_error_prefix(err, "CPU backend: ");
            return BN_ERR_NOMEM;
        }
    }
    if (n_tokens > cpu->rope_tokens) {
        size_t table = (size_t)n_tokens * (size_t)(cpu->rope_half > 0 ? cpu->rope_half : 1);
        int32_t *pos = malloc((size_t)n_tokens * sizeof *pos);
        bool *valid = calloc((size_t)n_tokens, sizeof *valid);
        float *cos_table = malloc(table * sizeof *cos_table), *sin_table = malloc(table * sizeof *sin_table);
        if (!pos || !valid || !cos_table || !sin_table) {
            free(pos), free(valid), free(cos_table), free(sin_table);
            return bn_error_set(err, BN_ERR_NOMEM, "CPU backend: out of memory for RoPE tables of %d tokens",
                                n_tokens);
        }
        free(cpu->rope_pos), free(cpu->rope_valid), free(cpu->rope_cos), free(cpu->rope_sin);
        cpu->rope_pos = pos, cpu->rope_valid = valid, cpu->rope_cos = cos_table, cpu->rope_sin = sin_table;
        cpu->rope_tokens = n_tokens;
    }
    if (bn_head_reserve(&cpu->weights.head, n_tokens, err) != BN_OK) {
        bn_error_prefix(err, "CPU backend: ");
        return BN_ERR_NOMEM;
    }
    if (max_context > cpu->score_len) {
        float *scores = malloc((size_t)cpu->n_threads * (size_t)max_context * sizeof *scores);
        if (!scores)
            return bn_error_set(err, BN_ERR_NOMEM, "CPU backend: out of memory for attention over %d positions",
                                max_context);
        free(cpu->scores);
        cpu->scores = scores;
        cpu->score_len = max_context;
    }
    return BN_OK;
}

static void cpu_embed(bn_backend *backend, float *x, const int32_t *tokens, int n) {
    const bn_backend_config *c = &backend->config;
    const cpu_weights *weights = &impl_of(backend)->weights;
    for (int t = 0; t < n; t++) {
        if (weights->token_embd) /* F16: the dispatching lookup */
            bn_embedding_lookup_f16(x + (size_t)t * c->dim, weights->token_embd, c->n_vocab, c->dim,
                                    tokens[t], NULL);
        else
            bn_head_dequantize_row(x + (size_t)t * c->dim, &weights->embd, tokens[t]);
    }
}

static void cpu_rmsnorm(bn_backend *backend, float *out, const float *x, bn_norm_ref weight, int n,
                        int cols, float eps) {
    const cpu_weights *w = &impl_of(backend)->weights;
    bn_rmsnorm(out, x,
               weight.kind == BN_NORM_OUTPUT ? w->output_norm : w->layers[weight.layer].norms[weight.kind],
               n, cols, eps);
}

/* The activation quantization the matrix's type takes (spec section 9.3): per token for I2_S,
 * Q8_K blocks for TQ1_0 / TQ2_0. */
static void quantize_for(cpu_backend *cpu, const bn_ternary_matrix *m, const float *x, int n) {
    if (bn_ternary_type_uses_q8k(m->file_type))
        bn_quantize_activations_q8k(cpu->q, cpu->scales, cpu->sums, x, n, m->cols);
    else
        bn_quantize_activations(cpu->q, cpu->scales, cpu->sums, x, n, m->cols);
}

static const cpu_projection *linear_of(const cpu_backend *cpu, bn_linear_ref ref) {
    return &cpu->weights.layers[ref.layer].linears[ref.kind];
}

static void cpu_linear(bn_backend *backend, float *y, bn_linear_ref ref, const float *x, int n) {
    cpu_backend *cpu = impl_of(backend);
    const cpu_projection *w = linear_of(cpu, ref);
    quantize_for(cpu, &w->matrix, x, n);
    bn_ternary_matmul(cpu->pool, y, &w->matrix, cpu->q, cpu->scales, cpu->sums, n);
    if (w->has_out_scale) {
        size_t total = (size_t)n * (size_t)w->matrix.rows;
        for (size_t i = 0; i < total; i++) y[i] *= w->out_scale;
    }
}

static void cpu_linear_parts(bn_backend *backend, float *const *ys, const bn_linear_ref *refs,
                             int n_parts, const float *x, int n) {
    cpu_backend *cpu = impl_of(backend);
    const bn_ternary_matrix *matrices[4];
    const cpu_projection *ws[4] = {0};
    bool one_quantization = n_parts <= 4;
    for (int p = 0; one_quantization && p < n_parts; p++) ws[p] = linear_of(cpu, refs[p]);
    for (int p = 1; one_quantization && p < n_parts; p++)
        one_quantization = bn_ternary_type_uses_q8k(ws[p]->matrix.file_type) ==
                           bn_ternary_type_uses_q8k(ws[0]->matrix.file_type);
    if (!one_quantization) {
        for (int p = 0; p < n_parts; p++) cpu_linear(backend, ys[p], refs[p], x, n);
        return;
    }
    for (int p = 0; p < n_parts; p++) matrices[p] = &ws[p]->matrix;
    quantize_for(cpu, &ws[0]->matrix, x, n);
    bn_ternary_matmul_parts(cpu->pool, ys, matrices, n_parts, cpu->q, cpu->scales, cpu->sums, n);
    for (int p = 0; p < n_parts; p++) {
        if (!ws[p]->has_out_scale) continue;
        size_t total = (size_t)n * (size_t)ws[p]->matrix.rows;
        for (size_t i = 0; i < total; i++) ys[p][i] *= ws[p]->out_scale;
    }
}

static bn_status cpu_copy(bn_backend *backend, void *dst, const void *src, size_t bytes, bn_error *err) {
    (void)backend, (void)err;
    memmove(dst, src, bytes);
    return BN_OK;
}

static void cpu_rope(bn_backend *backend, float *x, int n_heads, const int32_t *pos, int n) {
    cpu_backend *cpu = impl_of(backend);
    const bn_backend_config *c = &backend->config;
    size_t width = (size_t)n_heads * (size_t)c->head_dim;
    for (int t = 0; t < n; t++) {
        float *cos_table = cpu->rope_cos + (size_t)t * (size_t)cpu->rope_half;
        float *sin_table = cpu->rope_sin + (size_t)t * (size_t)cpu->rope_half;
        if (!cpu->rope_valid[t] || cpu->rope_pos[t] != pos[t]) {
            if (cpu->weights.rope_freqs || c->rope_freq_scale != 1.0f)
                bn_rope_angles_scaled(cos_table, sin_table, c->head_dim, c->rope_dim, pos[t], c->rope_base,
                                      cpu->weights.rope_freqs, c->rope_freq_scale);
            else
                bn_rope_neox_angles(cos_table, sin_table, c->head_dim, c->rope_dim, pos[t], c->rope_base);
            cpu->rope_pos[t] = pos[t];
            cpu->rope_valid[t] = true;
        }
        if (c->rope_norm)
            bn_rope_norm_table(x + (size_t)t * width, n_heads, c->head_dim, c->rope_dim, cos_table, sin_table);
        else
            bn_rope_neox_table(x + (size_t)t * width, n_heads, c->head_dim, c->rope_dim, cos_table, sin_table);
    }
}

static void cpu_kv_store(bn_backend *backend, const bn_batch_view *batch, int layer, const float *k,
                         const float *v) {
    int kv_dim = backend->config.kv_dim;
    for (int t = 0; t < batch->n; t++) {
        const bn_kv_cache *cache = batch->caches[t];
        const size_t pos = (size_t)batch->pos[t];
        bn_kv_encode_row((uint8_t *)bn_kv_cache_layer_k(cache, layer) + bn_kv_cache_k_bytes(cache, pos),
                         cache->k_type, k + (size_t)t * kv_dim, kv_dim);
        bn_kv_encode_row((uint8_t *)bn_kv_cache_layer_v(cache, layer) + bn_kv_cache_v_bytes(cache, pos),
                         cache->v_type, v + (size_t)t * kv_dim, kv_dim);
    }
}

typedef struct attention_job {
    cpu_backend *cpu;
    const bn_backend_config *config;
    float *out;
    const float *q;
    const bn_batch_view *batch;
    int layer;
} attention_job;

/* Work items are (entry, query head) pairs, so a one-token decode still uses every thread; each
 * head's result depends only on its own inputs, whatever the split. */
static void attention_worker(void *context, int thread_index, int n_threads) {
    attention_job *job = context;
    const bn_backend_config *c = job->config;
    long begin, end;
    bn_threadpool_split((long)job->batch->n * c->n_heads, 1, thread_index, n_threads, &begin, &end);
    float *scores = job->cpu->scores + (size_t)thread_index * (size_t)job->cpu->score_len;
    long item = begin;
    while (item < end) {
        long t = item / c->n_heads;
        int head_begin = (int)(item % c->n_heads);
        long items_left_in_entry = c->n_heads - head_begin;
        int head_end = (int)(end - item < items_left_in_entry ? head_begin + (end - item) : c->n_heads);
        const bn_kv_cache *cache = job->batch->caches[t];
        bn_attention_heads(job->out + (size_t)t * c->q_dim, job->q + (size_t)t * c->q_dim,
                           bn_kv_cache_layer_k(cache, job->layer),
                           bn_kv_cache_layer_v(cache, job->layer), cache->k_type, cache->v_type,
                           c->n_heads, c->n_kv_heads, c->head_dim, job->batch->pos[t], scores,
                           head_begin, head_end);
        item += head_end - head_begin;
    }
}

static void cpu_attention(bn_backend *backend, float *out, const float *q, const bn_batch_view *batch,
                          int layer) {
    attention_job job = {impl_of(backend), &backend->config, out, q, batch, layer};
    bn_threadpool_run(job.cpu->pool, attention_worker, &job);
}

static void cpu_ffn_activation(bn_backend *backend, float *out, const float *gate, const float *up,
                               size_t n_values) {
    if (backend->config.ffn_silu) {
        /* SiLU's arithmetic depends on the place in the row (spec 4.1): one call per row */
        const size_t width = (size_t)backend->config.ffn_dim;
        for (size_t done = 0; done < n_values; done += width)
            bn_silu_mul(out + done, gate + done, up + done, (int)(n_values - done < width ? n_values - done : width));
        return;
    }
    /* The kernels take int counts: go in slices. */
    const size_t slice = (size_t)1 << 30;
    for (size_t done = 0; done < n_values; done += slice) {
        int count = (int)(n_values - done < slice ? n_values - done : slice);
        bn_relu2_mul(out + done, gate + done, up + done, count);
    }
}

static void cpu_add(bn_backend *backend, float *x, const float *y, size_t n_values) {
    (void)backend;
    const size_t slice = (size_t)1 << 30;
    for (size_t done = 0; done < n_values; done += slice)
        bn_add(x + done, y + done, (int)(n_values - done < slice ? n_values - done : slice));
}

static void cpu_gather_rows(bn_backend *backend, float *dst, const float *src, const int32_t *rows,
                            int n, int cols) {
    (void)backend;
    for (int i = 0; i < n; i++)
        memmove(dst + (size_t)i * cols, src + (size_t)rows[i] * cols, (size_t)cols * sizeof(float));
}

static void cpu_lm_head(bn_backend *backend, float *logits, const float *x, int n) {
    cpu_backend *cpu = impl_of(backend);
    const cpu_weights *weights = &cpu->weights;
    const bn_backend_config *c = &backend->config;
    if (weights->has_int8_output) {
        bn_quantize_activations(cpu->q, cpu->scales, cpu->sums, x, n, c->dim);
        bn_int8_matmul(cpu->pool, logits, &weights->output_int8, cpu->q, cpu->scales, cpu->sums, n);
    } else if (weights->output) { /* F16: the tuned head kernels */
        bn_f16_matmul(cpu->pool, logits, weights->output, x, c->n_vocab, c->dim, n);
    } else {
        bn_head_matmul(cpu->pool, logits, &weights->head, x, n);
    }
}

/* Drops the file pages wholly inside [data, data + size) of the mapping (the backend holds its
 * own copy of them). */
static void release_file_pages(const void *data, uint64_t size) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return;
    uintptr_t begin = ((uintptr_t)data + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t end = ((uintptr_t)data + (uintptr_t)size) & ~((uintptr_t)page - 1);
    if (end > begin) madvise((void *)begin, end - begin, MADV_DONTNEED);
}

/* The LM head (and the embedding when tied) is streamed whole for every decode step: its file
 * pages are 4 KiB pages (a TLB miss every 4 KiB). A copy in huge pages (bn_large_alloc, the same
 * layout) took the 2B-4T head at 2 threads from 13.8-14.1 to 12.7-13.6 ms for one token and from
 * 19.3-19.6 to 18.3-18.9 ms for 8 (bench_decode_batch, paired runs at about 50 GB/s). Only for a
 * mapped file, whose pages can be dropped after the copy (a file read into memory would be held
 * twice); without the copy (out of memory) the head stays in the mapping. */
static void copy_head_to_large_pages(cpu_weights *w, bool file_mapped) {
    if (!file_mapped) return;
    const size_t bytes = (size_t)w->head.rows * bn_head_row_bytes(w->head.type, w->head.cols);
    uint8_t *copy = bn_large_alloc(bytes);
    if (!copy) return;
    /* in pieces, each piece's file pages dropped after it (and the page straddling the piece
     * before it), so resident memory grows by one piece, not by the whole head, during the copy */
    const size_t piece = (size_t)64 << 20;
    const uint8_t *from = (const uint8_t *)w->head.data;
    for (size_t done = 0, previous = 0; done < bytes; previous = done, done += piece) {
        const size_t n = bytes - done < piece ? bytes - done : piece;
        memcpy(copy + done, from + done, n);
        release_file_pages(from + previous, done + n - previous);
    }
    if (w->embd.data == w->head.data) {
        w->embd.data = copy;
        if (w->token_embd) w->token_embd = (const uint16_t *)copy;
    }
    w->head.data = copy;
    if (w->output) w->output = (const uint16_t *)copy;
    w->output_copy = copy;
    w->output_copy_bytes = bytes;
}

/* Bytes of every layer's repacked projections, for the arena. */
static size_t repack_bytes(const bn_weight_views *views) {
    size_t total = 0;
    for (int l = 0; l < views->n_layers; l++)
        for (int i = 0; i < BN_LINEAR_KINDS; i++) {
            const bn_tensor_view *t = &views->layers[l].linears[i].weight;
            size_t bytes = bn_ternary_matrix_repack_bytes(t->type, t->rows, t->cols);
            bytes = (bytes + 4095) & ~(size_t)4095; /* the arena's alignment */
            if (bytes > SIZE_MAX / 2 - total) return 0;
            total += bytes;
        }
    return total;
}

static void release_weights(cpu_weights *w) {
    for (int l = 0; l < w->n_layers; l++)
        for (int i = 0; i < BN_LINEAR_KINDS; i++) bn_ternary_matrix_release(&w->layers[l].linears[i].matrix);
    free(w->layers);
    bn_large_arena_release(&w->arena);
    bn_large_free(w->output_copy, w->output_copy_bytes);
    if (w->has_int8_output) bn_int8_matrix_release(&w->output_int8);
    memset(w, 0, sizeof *w);
}

static bn_status bind_layer(cpu_weights *w, const bn_layer_views *views, cpu_layer *layer, bool file_mapped,
                            bn_error *err) {
    memcpy(layer->norms, views->norms, sizeof layer->norms);
    for (int i = 0; i < BN_LINEAR_KINDS; i++) {
        const bn_linear_view *v = &views->linears[i];
        cpu_projection *linear = &layer->linears[i];
        bn_status st = bn_ternary_matrix_prepare_in(&linear->matrix, v->weight.name, v->weight.type, v->weight.rows,
                                                    v->weight.cols, v->weight.data, &w->arena, err);
        if (st != BN_OK) {
            for (int j = 0; j <= i; j++) bn_ternary_matrix_release(&layer->linears[j].matrix);
            return st;
        }
        if (file_mapped && linear->matrix.data != v->weight.data) /* repacked */
            release_file_pages(v->weight.data, v->weight.bytes);
        linear->has_out_scale = v->has_out_scale;
        linear->out_scale = v->out_scale;
    }
    return BN_OK;
}

static bn_status cpu_bind_weights(bn_backend *backend, const bn_weight_views *views, bn_error *err) {
    cpu_backend *cpu = impl_of(backend);
    cpu_weights *w = &cpu->weights;
    const bn_backend_config *c = &backend->config;
    release_weights(w);
    bn_status st = bn_head_matrix_init(&w->embd, views->token_embd.name, views->token_embd.type,
                                       views->token_embd.rows, views->token_embd.cols, views->token_embd.data, err);
    if (st == BN_OK)
        st = bn_head_matrix_init(&w->head, views->output.name, views->output.type, views->output.rows,
                                 views->output.cols, views->output.data, err);
    if (st != BN_OK) return st;
    w->token_embd = w->embd.type == BN_TYPE_F16 ? (const uint16_t *)w->embd.data : NULL;
    w->output = w->head.type == BN_TYPE_F16 ? (const uint16_t *)w->head.data : NULL;
    w->output_norm = views->output_norm;
    w->rope_freqs = views->rope_freqs;
    if (c->int8_lm_head && !w->output)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "the int8 LM head needs an f16 head (this one is %s)",
                            bn_quant_format_get(w->head.type) ? bn_quant_format_get(w->head.type)->name : "unknown");
    copy_head_to_large_pages(w, views->file_mapped);

    w->layers = calloc((size_t)(views->n_layers > 0 ? views->n_layers : 1), sizeof *w->layers);
    if (!w->layers) {
        release_weights(w);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %d layers", views->n_layers);
    }
    /* one huge-page region for every repacked matrix (see core/large_alloc.h); without it each
     * matrix gets its own allocation */
    (void)bn_large_arena_init(&w->arena, repack_bytes(views));
    for (int l = 0; l < views->n_layers; l++) {
        if ((st = bind_layer(w, &views->layers[l], &w->layers[l], views->file_mapped, err)) != BN_OK) {
            release_weights(w);
            return st;
        }
        w->n_layers = l + 1;
    }
    if (c->int8_lm_head) {
        st = bn_int8_matrix_from_f16(&w->output_int8, w->output, c->n_vocab, c->dim, cpu->pool, err);
        if (st != BN_OK) {
            release_weights(w);
            return bn_error_prefix(err, "int8 LM head: ");
        }
        w->has_int8_output = true;
    }
    return BN_OK;
}

int bn_backend_cpu_matrices(const bn_backend *backend, const bn_ternary_matrix **out, int max) {
    const cpu_weights *w = &((const cpu_backend *)backend->impl)->weights;
    int k = 0;
    for (int l = 0; l < w->n_layers; l++)
        for (int i = 0; i < BN_LINEAR_KINDS && k < max; i++)
            if (w->layers[l].linears[i].matrix.data) out[k++] = &w->layers[l].linears[i].matrix;
    return k;
}

const uint16_t *bn_backend_cpu_f16_head(const bn_backend *backend) {
    const cpu_weights *w = &((const cpu_backend *)backend->impl)->weights;
    return w->has_int8_output ? NULL : w->output;
}

const bn_large_arena *bn_backend_cpu_arena(const bn_backend *backend) {
    return &((const cpu_backend *)backend->impl)->weights.arena;
}

static void cpu_destroy(bn_backend *backend) {
    if (!backend) return;
    cpu_backend *cpu = impl_of(backend);
    if (cpu) {
        release_weights(&cpu->weights);
        free(cpu->q), free(cpu->scales), free(cpu->sums), free(cpu->scores);
        free(cpu->rope_pos), free(cpu->rope_valid), free(cpu->rope_cos), free(cpu->rope_sin);
        free(cpu);
    }
    free(backend);
}

bn_status bn_backend_cpu_create(const bn_backend_config *config, bn_threadpool *pool,
                                bn_backend **out, bn_error *err) {
    *out = NULL;
    bn_backend *backend = calloc(1, sizeof *backend);
    cpu_backend *cpu = calloc(1, sizeof *cpu);
    if (!backend || !cpu) {
        free(backend), free(cpu);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory for the CPU backend");
    }
    cpu->pool = pool;
    cpu->n_threads = bn_threadpool_size(pool);
    cpu->rope_half = (config->rope_dim < config->head_dim ? config->rope_dim : config->head_dim) / 2;
    backend->name = "cpu";
    backend->impl = cpu;
    backend->config = *config;
    backend->destroy = cpu_destroy;
    backend->bind_weights = cpu_bind_weights;
    backend->alloc = cpu_alloc;
    backend->release = cpu_release;
    backend->reserve = cpu_reserve;
    backend->embed = cpu_embed;
    backend->rmsnorm = cpu_rmsnorm;
    backend->linear = cpu_linear;
    backend->linear_parts = cpu_linear_parts;
    backend->rope = cpu_rope;
    backend->to_host = cpu_copy;
    backend->from_host = cpu_copy;
    backend->kv_store = cpu_kv_store;
    backend->attention = cpu_attention;
    backend->ffn_activation = cpu_ffn_activation;
    backend->add = cpu_add;
    backend->gather_rows = cpu_gather_rows;
    backend->lm_head = cpu_lm_head;
    *out = backend;
    return BN_OK;
}
