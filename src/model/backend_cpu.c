/*
 * backend_cpu.c: the CPU backend. Each operation of backend.h maps onto the dispatching kernels
 * of kernels/ops.h (which pick the ISA path, count calls in the registry and split rows over the
 * thread pool). Attention is split over the batch's entries, one entry per thread at a time, so
 * each entry's result is computed by one thread in one order whatever the thread count.
 *
 * Scratch owned here: the int8 activations of the widest projection input for a chunk, one
 * attention score row (context length floats) per thread, and the RoPE angle tables of a chunk's
 * positions; all grow through reserve().
 */
#include "model/backend.h"

#include "core/fp16.h"
#include "kernels/scratch.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct cpu_backend {
    const bn_model_weights *weights;
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
    const bn_model_config *c = backend->config;
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
    if (bn_head_reserve(&cpu->weights->head, n_tokens, err) != BN_OK) {
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

static void cpu_embed(bn_backend *backend, float *x, const bn_model_weights *weights,
                      const int32_t *tokens, int n) {
    const bn_model_config *c = backend->config;
    for (int t = 0; t < n; t++) {
        if (weights->token_embd) /* F16: the dispatching lookup */
            bn_embedding_lookup_f16(x + (size_t)t * c->dim, weights->token_embd, c->n_vocab, c->dim,
                                    tokens[t], NULL);
        else
            bn_head_dequantize_row(x + (size_t)t * c->dim, &weights->embd, tokens[t]);
    }
}

static void cpu_rmsnorm(bn_backend *backend, float *out, const float *x, const float *weight, int n,
                        int cols, float eps) {
    (void)backend;
    bn_rmsnorm(out, x, weight, n, cols, eps);
}

/* The activation quantization the matrix's type takes (spec section 9.3): per token for I2_S,
 * Q8_K blocks for TQ1_0 / TQ2_0. */
static void quantize_for(cpu_backend *cpu, const bn_ternary_matrix *m, const float *x, int n) {
    if (bn_ternary_type_uses_q8k(m->file_type))
        bn_quantize_activations_q8k(cpu->q, cpu->scales, cpu->sums, x, n, m->cols);
    else
        bn_quantize_activations(cpu->q, cpu->scales, cpu->sums, x, n, m->cols);
}

static void cpu_linear(bn_backend *backend, float *y, const bn_linear *w, const float *x, int n) {
    cpu_backend *cpu = impl_of(backend);
    quantize_for(cpu, &w->matrix, x, n);
    bn_ternary_matmul(cpu->pool, y, &w->matrix, cpu->q, cpu->scales, cpu->sums, n);
    if (w->has_out_scale) {
        size_t total = (size_t)n * (size_t)w->matrix.rows;
        for (size_t i = 0; i < total; i++) y[i] *= w->out_scale;
    }
}

static void cpu_linear_parts(bn_backend *backend, float *const *ys, const bn_linear *const *ws,
                             int n_parts, const float *x, int n) {
    cpu_backend *cpu = impl_of(backend);
    const bn_ternary_matrix *matrices[4];
    bool one_quantization = n_parts <= 4;
    for (int p = 1; one_quantization && p < n_parts; p++)
        one_quantization = bn_ternary_type_uses_q8k(ws[p]->matrix.file_type) ==
                           bn_ternary_type_uses_q8k(ws[0]->matrix.file_type);
    if (!one_quantization) {
        for (int p = 0; p < n_parts; p++) cpu_linear(backend, ys[p], ws[p], x, n);
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
    const bn_model_config *c = backend->config;
    size_t width = (size_t)n_heads * (size_t)c->head_dim;
    for (int t = 0; t < n; t++) {
        float *cos_table = cpu->rope_cos + (size_t)t * (size_t)cpu->rope_half;
        float *sin_table = cpu->rope_sin + (size_t)t * (size_t)cpu->rope_half;
        if (!cpu->rope_valid[t] || cpu->rope_pos[t] != pos[t]) {
            if (cpu->weights->rope_freqs || c->rope_freq_scale != 1.0f)
                bn_rope_angles_scaled(cos_table, sin_table, c->head_dim, c->rope_dim, pos[t], c->rope_base,
                                      cpu->weights->rope_freqs, c->rope_freq_scale);
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
    int kv_dim = backend->config->kv_dim;
    for (int t = 0; t < batch->n; t++) {
        const bn_kv_cache *cache = batch->caches[t];
        size_t row = (size_t)batch->pos[t] * (size_t)kv_dim;
        const float *kt = k + (size_t)t * kv_dim, *vt = v + (size_t)t * kv_dim;
        if (cache->f16) {
            uint16_t *kd = (uint16_t *)bn_kv_cache_layer_k(cache, layer) + row;
            uint16_t *vd = (uint16_t *)bn_kv_cache_layer_v(cache, layer) + row;
            for (int i = 0; i < kv_dim; i++) {
                kd[i] = bn_fp32_to_fp16(kt[i]);
                vd[i] = bn_fp32_to_fp16(vt[i]);
            }
        } else {
            memcpy((float *)bn_kv_cache_layer_k(cache, layer) + row, kt, (size_t)kv_dim * sizeof(float));
            memcpy((float *)bn_kv_cache_layer_v(cache, layer) + row, vt, (size_t)kv_dim * sizeof(float));
        }
    }
}

typedef struct attention_job {
    cpu_backend *cpu;
    const bn_model_config *config;
    float *out;
    const float *q;
    const bn_batch_view *batch;
    int layer;
} attention_job;

/* Work items are (entry, query head) pairs, so a one-token decode still uses every thread; each
 * head's result depends only on its own inputs, whatever the split. */
static void attention_worker(void *context, int thread_index, int n_threads) {
    attention_job *job = context;
    const bn_model_config *c = job->config;
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
                           bn_kv_cache_layer_v(cache, job->layer), cache->f16, c->n_heads,
                           c->n_kv_heads, c->head_dim, job->batch->pos[t], scores, head_begin,
                           head_end);
        item += head_end - head_begin;
    }
}

static void cpu_attention(bn_backend *backend, float *out, const float *q, const bn_batch_view *batch,
                          int layer) {
    attention_job job = {impl_of(backend), backend->config, out, q, batch, layer};
    bn_threadpool_run(job.cpu->pool, attention_worker, &job);
}

static void cpu_ffn_activation(bn_backend *backend, float *out, const float *gate, const float *up,
                               size_t n_values, bn_ffn_activation activation) {
    if (activation == BN_FFN_SILU) {
        /* SiLU's arithmetic depends on the place in the row (spec 4.1): one call per row */
        const size_t width = (size_t)backend->config->ffn_dim;
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

static void cpu_lm_head(bn_backend *backend, float *logits, const bn_model_weights *weights,
                        const float *x, int n) {
    cpu_backend *cpu = impl_of(backend);
    const bn_model_config *c = backend->config;
    if (weights->has_int8_output) {
        bn_quantize_activations(cpu->q, cpu->scales, cpu->sums, x, n, c->dim);
        bn_int8_matmul(cpu->pool, logits, &weights->output_int8, cpu->q, cpu->scales, cpu->sums, n);
    } else if (weights->output) { /* F16: the tuned head kernels */
        bn_f16_matmul(cpu->pool, logits, weights->output, x, c->n_vocab, c->dim, n);
    } else {
        bn_head_matmul(cpu->pool, logits, &weights->head, x, n);
    }
}

static void cpu_destroy(bn_backend *backend) {
    if (!backend) return;
    cpu_backend *cpu = impl_of(backend);
    if (cpu) {
        free(cpu->q), free(cpu->scales), free(cpu->sums), free(cpu->scores);
        free(cpu->rope_pos), free(cpu->rope_valid), free(cpu->rope_cos), free(cpu->rope_sin);
        free(cpu);
    }
    free(backend);
}

bn_status bn_backend_cpu_create(const bn_model_config *config, const bn_model_weights *weights,
                                bn_threadpool *pool, bn_backend **out, bn_error *err) {
    *out = NULL;
    bn_backend *backend = calloc(1, sizeof *backend);
    cpu_backend *cpu = calloc(1, sizeof *cpu);
    if (!backend || !cpu) {
        free(backend), free(cpu);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory for the CPU backend");
    }
    cpu->weights = weights;
    cpu->pool = pool;
    cpu->n_threads = bn_threadpool_size(pool);
    cpu->rope_half = (config->rope_dim < config->head_dim ? config->rope_dim : config->head_dim) / 2;
    backend->name = "cpu";
    backend->impl = cpu;
    backend->config = config;
    backend->destroy = cpu_destroy;
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
