/*
 * forward.c: the BitNet b1.58 forward pass (spec sections 4 and 9), for one chunk of batch entries.
 *
 * It reads like the paper: embedding; per layer attention (norm, q/k/v, RoPE, KV cache,
 * attention, sub-norm, output projection, residual) and FFN (norm, gate/up, squared ReLU or SiLU,
 * sub-norm, down projection, residual); final norm; LM head (or, for embeddings, the final norm's
 * rows). The architectures differ only in data the backend and the weights carry: RoPE pairs
 * (NEOX, or NORM for llama), the activation, and whether the sub-norms exist (not for llama).
 * Every operation goes through the backend (backend/backend.h), which holds its own copy of the
 * weights: a projection or norm is named by layer and kind, not by a host pointer. Its kernels
 * compute each token
 * independently of the others, so a token's result does not depend on which chunk or batch it
 * runs in. All entries' tokens go through each projection together (one GEMM per weight
 * matrix); attention runs per entry over its own sequence's cache, reading back this chunk's K/V
 * from the cache in its storage type too.
 */
#include "model/model_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bn_forward_state_release(bn_forward_state *s, bn_backend *backend) {
    float **buffers[] = {&s->x, &s->xb, &s->q, &s->k, &s->v, &s->att, &s->hb, &s->hb2, &s->out};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) {
        if (*buffers[i]) backend->release(backend, *buffers[i]);
        *buffers[i] = NULL;
    }
    free(s->pos), free(s->tokens), free(s->caches), free(s->logit_rows);
    memset(s, 0, sizeof *s);
}

/* Grows the chunk buffers to n tokens. */
static bn_status state_reserve(bn_forward_state *s, bn_backend *backend, const bn_model_config *c,
                               int n, bn_error *err) {
    if (n <= s->capacity) return BN_OK;
    bn_forward_state grown = {0};
    size_t nt = (size_t)n; /* n <= ubatch <= 2^20 and widths <= 2^20: no overflow in 64 bits */
    size_t dim = nt * (size_t)c->dim * sizeof(float);
    size_t qd = nt * (size_t)c->q_dim * sizeof(float);
    size_t kv = nt * (size_t)c->kv_dim * sizeof(float);
    size_t ffn = nt * (size_t)c->ffn_dim * sizeof(float);
    grown.capacity = n;
    grown.x = backend->alloc(backend, dim);
    grown.xb = backend->alloc(backend, dim);
    grown.q = backend->alloc(backend, qd);
    grown.k = backend->alloc(backend, kv);
    grown.v = backend->alloc(backend, kv);
    grown.att = backend->alloc(backend, qd);
    grown.hb = backend->alloc(backend, ffn);
    grown.hb2 = backend->alloc(backend, ffn);
    grown.out = backend->alloc(backend, dim);
    grown.pos = malloc(nt * sizeof *grown.pos);
    grown.tokens = malloc(nt * sizeof *grown.tokens);
    grown.caches = malloc(nt * sizeof *grown.caches);
    grown.logit_rows = malloc(nt * sizeof *grown.logit_rows);
    if (!grown.x || !grown.xb || !grown.q || !grown.k || !grown.v || !grown.att || !grown.hb ||
        !grown.hb2 || !grown.out || !grown.pos || !grown.tokens || !grown.caches || !grown.logit_rows) {
        bn_forward_state_release(&grown, backend);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory for activations of %d tokens", n);
    }
    bn_forward_state_release(s, backend);
    *s = grown;
    return BN_OK;
}

/* Hands the result of an op to the model's observer (bn_model_set_observer), under the name
 * bitnet.cpp's graph gives it ("<name>-<layer>", or just name for layer -1) and ggml's op. */
static void observe(const bn_model *model, const char *name, int layer, const char *op,
                    const float *rows, int n, int width) {
    if (!model->observer) return;
    char full[64];
    if (layer >= 0)
        snprintf(full, sizeof full, "%s-%d", name, layer);
    else
        snprintf(full, sizeof full, "%s", name);
    model->observer(model->observer_context, full, op, rows, model->state.pos, n, width);
}

/* ys[i] = ws[i] x for projections of the same input (Q, K, V; gate, up), together where the
 * backend can (one quantization of x, one dispatch), else one by one; the results are the same. */
static void linear_parts(bn_backend *be, float *const *ys, const bn_linear_ref *ws, int n_parts,
                         const float *x, int n) {
    if (be->linear_parts) {
        be->linear_parts(be, ys, ws, n_parts, x, n);
        return;
    }
    for (int i = 0; i < n_parts; i++) be->linear(be, ys[i], ws[i], x, n);
}

bn_status bn_model_forward(bn_model *model, const bn_batch_entry *entries, int n, float *logits,
                           float *hidden, bn_error *err) {
    const bn_model_config *c = &model->config;
    bn_backend *be = model->backend;
    bn_forward_state *s = &model->state;
    const float eps = c->rms_eps;

    int max_context = 0;
    for (int t = 0; t < n; t++)
        if (entries[t].seq->cache.capacity > max_context) max_context = entries[t].seq->cache.capacity;
    bn_status st = state_reserve(s, be, c, n, err);
    if (st == BN_OK) st = be->reserve(be, n, max_context, err);
    if (st != BN_OK) return st;

    int n_out = 0;
    for (int t = 0; t < n; t++) {
        s->pos[t] = entries[t].pos;
        s->tokens[t] = entries[t].token;
        s->caches[t] = &entries[t].seq->cache;
        if (entries[t].want_logits) s->logit_rows[n_out++] = t;
    }
    const bn_batch_view batch = {n, s->pos, s->tokens, s->caches};
    const size_t n_dim = (size_t)n * (size_t)c->dim;

    /* token embedding */
    be->embed(be, s->x, s->tokens, n);
    observe(model, "inp_embd", -1, "GET_ROWS", s->x, n, c->dim);

    for (int l = 0; l < c->n_layers; l++) {
#define NORM(kind) ((bn_norm_ref){l, kind})
#define LINEAR(kind) ((bn_linear_ref){l, kind})

        /* attention: q, k, v from the normed residual */
        be->rmsnorm(be, s->xb, s->x, NORM(BN_NORM_ATTN), n, c->dim, eps);
        observe(model, "attn_norm", l, "MUL", s->xb, n, c->dim);
        linear_parts(be, (float *const[]){s->q, s->k, s->v},
                     (const bn_linear_ref[]){LINEAR(BN_LINEAR_Q), LINEAR(BN_LINEAR_K), LINEAR(BN_LINEAR_V)}, 3,
                     s->xb, n);
        observe(model, "Qcur", l, "MUL_MAT", s->q, n, c->q_dim);
        observe(model, "Kcur", l, "MUL_MAT", s->k, n, c->kv_dim);
        observe(model, "Vcur", l, "MUL_MAT", s->v, n, c->kv_dim);

        /* rotary position embedding on q and k */
        be->rope(be, s->q, c->n_heads, s->pos, n);
        be->rope(be, s->k, c->n_kv_heads, s->pos, n);
        observe(model, "Qcur", l, "ROPE", s->q, n, c->q_dim);
        observe(model, "Kcur", l, "ROPE", s->k, n, c->kv_dim);

        /* K/V into each sequence's cache, then causal attention reading them back */
        be->kv_store(be, &batch, l, s->k, s->v);
        be->attention(be, s->att, s->q, &batch, l);
        observe(model, "kqv_out", l, "CONT", s->att, n, c->q_dim);

        /* sub-norm (not in llama), output projection, residual */
        if (c->sub_norms) {
            be->rmsnorm(be, s->att, s->att, NORM(BN_NORM_ATTN_SUB), n, c->q_dim, eps);
            observe(model, "attn_sub_norm", l, "MUL", s->att, n, c->q_dim);
        }
        be->linear(be, s->xb, LINEAR(BN_LINEAR_O), s->att, n);
        observe(model, "attn_o_out", l, "MUL_MAT", s->xb, n, c->dim);
        be->add(be, s->x, s->xb, n_dim);
        observe(model, "ffn_inp", l, "ADD", s->x, n, c->dim);

        /* FFN: act(gate) * up, sub-norm, down projection, residual */
        be->rmsnorm(be, s->xb, s->x, NORM(BN_NORM_FFN), n, c->dim, eps);
        observe(model, "ffn_norm", l, "MUL", s->xb, n, c->dim);
        linear_parts(be, (float *const[]){s->hb, s->hb2},
                     (const bn_linear_ref[]){LINEAR(BN_LINEAR_GATE), LINEAR(BN_LINEAR_UP)}, 2, s->xb, n);
        observe(model, "ffn_gate", l, "MUL_MAT", s->hb, n, c->ffn_dim);
        observe(model, "ffn_up", l, "MUL_MAT", s->hb2, n, c->ffn_dim);
        be->ffn_activation(be, s->hb, s->hb, s->hb2, (size_t)n * (size_t)c->ffn_dim);
        observe(model, "ffn_out", l, "MUL", s->hb, n, c->ffn_dim);
        if (c->sub_norms) {
            be->rmsnorm(be, s->hb, s->hb, NORM(BN_NORM_FFN_SUB), n, c->ffn_dim, eps);
            observe(model, "ffn_sub_norm", l, "MUL", s->hb, n, c->ffn_dim);
        }
        be->linear(be, s->xb, LINEAR(BN_LINEAR_DOWN), s->hb, n);
        observe(model, "ffn_down", l, "MUL_MAT", s->xb, n, c->dim);
        be->add(be, s->x, s->xb, n_dim);
        observe(model, "l_out", l, "ADD", s->x, n, c->dim);
#undef NORM
#undef LINEAR
    }

    /* final norm, then the LM head (or, without logits, the normed rows themselves), only for the
     * entries that want output */
    if (n_out > 0) {
        be->gather_rows(be, s->out, s->x, s->logit_rows, n_out, c->dim);
        be->rmsnorm(be, s->out, s->out, (bn_norm_ref){-1, BN_NORM_OUTPUT}, n_out, c->dim, eps);
        if (logits)
            be->lm_head(be, logits, s->out, n_out);
        else if ((st = be->to_host(be, hidden, s->out, (size_t)n_out * (size_t)c->dim * sizeof(float), err)) != BN_OK)
            return st;
        if (model->observer)
            for (int i = 0; i < n_out; i++) {
                const int32_t *pos = &s->pos[s->logit_rows[i]];
                model->observer(model->observer_context, "result_norm", "MUL",
                                s->out + (size_t)i * (size_t)c->dim, pos, 1, c->dim);
                if (logits)
                    model->observer(model->observer_context, "result_output", "MUL_MAT",
                                    logits + (size_t)i * (size_t)c->n_vocab, pos, 1, c->n_vocab);
            }
    }
    /* a device backend reports here what failed in its queued work */
    return be->finish ? be->finish(be, err) : BN_OK;
}
