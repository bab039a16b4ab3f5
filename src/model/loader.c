/*
 * loader.c: finds the file's tensors and describes them to the backend. Every required tensor is
 * checked for presence, type and shape, and an error names it ("blk.3.ffn_sub_norm.weight:
 * missing"). Before that, the file is checked against itself: the tokenizer's vocabulary against
 * token_embd's rows, and block_count against the blocks its tensors name (a hostile file was
 * otherwise accepted with tokens the model has no row for, or with layers it silently ignored);
 * norm weights must be finite and not all zero (either makes every output NaN or zero).
 *
 * Design: the loader repacks nothing. It fills bn_weight_views (backend/weight_views.h) with the
 * tensors as the file holds them (pointers into the read-only mapping), and the backend's
 * bind_weights builds its own layout from them (the CPU's repacked matrices and huge-page head:
 * backend/cpu/; the GPU's device copies: backend/cuda/). Only F16 norms get F32 copies, owned
 * here. Which tensors exist follows the architecture (spec 9): sub-norms for bitnet-b1.58 and
 * bitnet, none for llama; an optional output.weight (ignored by bitnet-b1.58, whose head is always
 * token_embd); llama's optional rope_freqs; the optional NAME.scale of `bitnet` projections.
 */
#include "model/model_internal.h"

#include "core/fp16.h"
#include "kernels/head.h"
#include "quant/quant_format.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void format_shape(char *buf, size_t size, const uint64_t *ne) {
    int dims = BN_GGUF_MAX_DIMS;
    while (dims > 1 && ne[dims - 1] == 1) dims--;
    size_t used = (size_t)snprintf(buf, size, "{");
    for (int i = 0; i < dims && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%" PRIu64, i ? ", " : "", ne[i]);
    if (used < size) snprintf(buf + used, size - used, "}");
}

static const char *type_name(uint32_t type) {
    const bn_quant_format *f = bn_quant_format_get(type);
    return f ? f->name : "unknown";
}

/* Finds name and checks its shape {ne0, ne1} (ne1 == 1 for vectors). *out is NULL (and BN_OK
 * returned) when the tensor is optional and absent. */
static bn_status find_checked(const bn_gguf *gguf, const char *name, uint64_t ne0, uint64_t ne1,
                              bool optional, const bn_gguf_tensor **out, bn_error *err) {
    *out = NULL;
    const bn_gguf_tensor *t = bn_gguf_find_tensor(gguf, name);
    if (!t) {
        if (optional) return BN_OK;
        return bn_error_set(err, BN_ERR_FORMAT, "%s: missing", name);
    }
    uint64_t want[BN_GGUF_MAX_DIMS] = {ne0, ne1, 1, 1};
    for (int i = 0; i < BN_GGUF_MAX_DIMS; i++) {
        if (t->ne[i] != want[i]) {
            char expected[96], found[96];
            format_shape(expected, sizeof expected, want);
            format_shape(found, sizeof found, t->ne);
            return bn_error_set(err, BN_ERR_FORMAT, "%s: wrong shape: expected %s, found %s", name,
                                expected, found);
        }
    }
    *out = t;
    return BN_OK;
}

static bn_status check_type(const bn_gguf_tensor *t, const char *name, uint32_t type, bn_error *err) {
    if (t->type != type)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "%s: type %s (%u), expected %s", name,
                            type_name(t->type), t->type, type_name(type));
    return BN_OK;
}

/* A norm weight must be finite (one NaN or infinity spreads to every later activation) and not
 * all zero (the normed vector would be all zero). */
static bn_status check_norm(const char *name, const float *v, uint64_t n, bn_error *err) {
    bool any_nonzero = false;
    for (uint64_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            return bn_error_set(err, BN_ERR_FORMAT, "%s: value %" PRIu64 " is %s (a norm weight must be finite)", name,
                                i, isnan(v[i]) ? "nan" : v[i] > 0 ? "inf" : "-inf");
        any_nonzero |= v[i] != 0.0f;
    }
    if (!any_nonzero) return bn_error_set(err, BN_ERR_FORMAT, "%s: all %" PRIu64 " values are zero", name, n);
    return BN_OK;
}

/* A norm-like vector of n floats: F32 is used in place; F16 is converted to an F32 copy owned
 * by the weights (w->converted). optional: absent gives *out NULL. */
static bn_status bind_vector(bn_model_weights *w, const bn_gguf *gguf, const char *name, uint64_t n,
                             bool optional, const float **out, bn_error *err) {
    const bn_gguf_tensor *t;
    *out = NULL;
    bn_status st = find_checked(gguf, name, n, 1, optional, &t, err);
    if (st != BN_OK || !t) return st;
    if (t->type == BN_TYPE_F32) {
        *out = (const float *)t->data;
        return BN_OK;
    }
    if (t->type != BN_TYPE_F16)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "%s: type %s (%u), expected f32 or f16", name,
                            type_name(t->type), t->type);
    float **grown = realloc(w->converted, (size_t)(w->n_converted + 1) * sizeof *grown);
    if (!grown) return bn_error_set(err, BN_ERR_NOMEM, "%s: out of memory", name);
    w->converted = grown;
    float *copy = malloc((size_t)n * sizeof *copy);
    if (!copy) return bn_error_set(err, BN_ERR_NOMEM, "%s: out of memory", name);
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, (const uint8_t *)t->data + 2 * i, 2);
        copy[i] = bn_fp16_to_fp32(h);
    }
    w->converted[w->n_converted++] = copy;
    *out = copy;
    return BN_OK;
}

static void view_of(bn_tensor_view *view, const bn_gguf_tensor *t, const char *name, int rows, int cols) {
    snprintf(view->name, sizeof view->name, "%s", name);
    view->type = t->type;
    view->rows = rows;
    view->cols = cols;
    view->data = t->data;
    view->bytes = t->size;
}

/* A head-like table (token_embd, output): n_vocab rows of dim in one of the head types (checked
 * by bn_head_matrix_init, whose errors name the tensor). */
static bn_status bind_table(const bn_gguf *gguf, const bn_model_config *config, const char *name,
                            bool optional, bn_tensor_view *view, bool *present, bn_error *err) {
    const bn_gguf_tensor *t;
    bn_status st = find_checked(gguf, name, (uint64_t)config->dim, (uint64_t)config->n_vocab, optional, &t, err);
    *present = t != NULL;
    if (st != BN_OK || !t) return st;
    bn_head_matrix check;
    st = bn_head_matrix_init(&check, name, t->type, config->n_vocab, config->dim, t->data, err);
    if (st == BN_OK) view_of(view, t, name, config->n_vocab, config->dim);
    return st;
}

static bn_status bind_linear(const bn_gguf *gguf, const bn_model_config *config, int layer,
                             const char *part, uint64_t in, uint64_t out, bn_linear_view *linear,
                             bn_error *err) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s.weight", layer, part);
    const bn_gguf_tensor *t;
    bn_status st = find_checked(gguf, name, in, out, false, &t, err);
    if (st != BN_OK) return st;
    if (t->type != BN_TYPE_I2_S && t->type != BN_TYPE_TQ2_0 && t->type != BN_TYPE_TQ1_0)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "%s: type %s (%u), expected i2_s, tq2_0 or tq1_0",
                            name, type_name(t->type), t->type);
    view_of(&linear->weight, t, name, (int)out, (int)in);
    linear->has_out_scale = false;
    linear->out_scale = 1.0f;
    if (config->arch == BN_ARCH_BITNET) { /* llama.cpp's `bitnet` only (spec 9.2) */
        snprintf(name, sizeof name, "blk.%d.%s.scale", layer, part);
        const bn_gguf_tensor *s;
        st = find_checked(gguf, name, 1, 1, true, &s, err);
        if (st == BN_OK && s) st = check_type(s, name, BN_TYPE_F32, err);
        if (st != BN_OK) return st;
        if (s) {
            memcpy(&linear->out_scale, s->data, sizeof(float));
            linear->has_out_scale = true;
        }
    }
    return BN_OK;
}

/* The projections of a layer: tensor name part, input and output widths. */
typedef struct linear_spec {
    const char *part;
    int in, out;
} linear_spec;

static void layer_linears(const bn_model_config *c, linear_spec specs[BN_LINEAR_KINDS]) {
    const linear_spec all[BN_LINEAR_KINDS] = {
        [BN_LINEAR_Q] = {"attn_q", c->dim, c->q_dim},
        [BN_LINEAR_K] = {"attn_k", c->dim, c->kv_dim},
        [BN_LINEAR_V] = {"attn_v", c->dim, c->kv_dim},
        [BN_LINEAR_O] = {"attn_output", c->q_dim, c->dim},
        [BN_LINEAR_GATE] = {"ffn_gate", c->dim, c->ffn_dim},
        [BN_LINEAR_UP] = {"ffn_up", c->dim, c->ffn_dim},
        [BN_LINEAR_DOWN] = {"ffn_down", c->ffn_dim, c->dim}};
    memcpy(specs, all, sizeof all);
}

/* A norm weight: bound (bind_vector), then checked (check_norm). */
static bn_status bind_norm(bn_model_weights *w, const bn_gguf *gguf, const char *name, uint64_t n, const float **out,
                           bn_error *err) {
    bn_status st = bind_vector(w, gguf, name, n, false, out, err);
    return st != BN_OK ? st : check_norm(name, *out, n, err);
}

static bn_status load_layer(bn_model_weights *weights, const bn_gguf *gguf, const bn_model_config *c,
                            int l, bn_layer_views *w, bn_error *err) {
    char name[96];
    bn_status st;
#define NORM(kind, part, n)                                                                       \
    snprintf(name, sizeof name, "blk.%d.%s.weight", l, part);                                     \
    if ((st = bind_norm(weights, gguf, name, (uint64_t)(n), &w->norms[kind], err))) return st;
    NORM(BN_NORM_ATTN, "attn_norm", c->dim)
    NORM(BN_NORM_FFN, "ffn_norm", c->dim)
    if (c->sub_norms) { /* bitnet-b1.58 and bitnet; llama has none */
        NORM(BN_NORM_ATTN_SUB, "attn_sub_norm", c->q_dim)
        NORM(BN_NORM_FFN_SUB, "ffn_sub_norm", c->ffn_dim)
    }
#undef NORM
    linear_spec specs[BN_LINEAR_KINDS];
    layer_linears(c, specs);
    for (int i = 0; i < BN_LINEAR_KINDS; i++)
        if ((st = bind_linear(gguf, c, l, specs[i].part, (uint64_t)specs[i].in, (uint64_t)specs[i].out,
                              &w->linears[i], err)))
            return st;
    return BN_OK;
}

/* The block number of a tensor named "blk.N. ...", saturated at BLOCK_CAP; false for other names. */
#define BLOCK_CAP 1000000000ull
static bool block_of(bn_gguf_string name, uint64_t *block) {
    if (name.len < 6 || memcmp(name.data, "blk.", 4) != 0) return false;
    uint64_t i = 4, n = 0;
    while (i < name.len && name.data[i] >= '0' && name.data[i] <= '9') {
        n = n * 10 + (uint64_t)(name.data[i++] - '0');
        if (n > BLOCK_CAP) n = BLOCK_CAP;
    }
    if (i == 4 || i >= name.len || name.data[i] != '.') return false;
    *block = n;
    return true;
}

/* ARCH.block_count against the blocks the tensors name: a tensor of a block past the count (which
 * the model would silently ignore) or a block below it with no tensor at all. */
static bn_status check_block_count(const bn_gguf *gguf, const bn_model_config *c, bn_error *err) {
    bool *seen = calloc((size_t)c->n_layers, sizeof *seen);
    if (!seen) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %d layers", c->n_layers);
    const bn_gguf_tensor *beyond = NULL;
    uint64_t beyond_block = 0;
    for (uint64_t i = 0; i < gguf->n_tensors; i++) {
        uint64_t b;
        if (!block_of(gguf->tensors[i].name, &b)) continue;
        if (b < (uint64_t)c->n_layers) seen[b] = true;
        else if (!beyond || b > beyond_block) beyond = &gguf->tensors[i], beyond_block = b;
    }
    int present = 0, first_missing = -1;
    for (int l = 0; l < c->n_layers; l++) {
        if (seen[l]) present++;
        else if (first_missing < 0) first_missing = l;
    }
    free(seen);
    if (beyond) {
        char quoted[BN_GGUF_QUOTE_MAX];
        return bn_error_set(err, BN_ERR_FORMAT,
                            "metadata %s.block_count is %d but the file has tensors of at least %" PRIu64
                            " blocks ('%s' is in block %" PRIu64 ")",
                            c->arch_name, c->n_layers, beyond_block + 1,
                            bn_gguf_string_quote(beyond->name, quoted, sizeof quoted), beyond_block);
    }
    if (first_missing >= 0)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "metadata %s.block_count is %d but block %d has no tensors (the file has tensors of %d of "
                            "the %d blocks)",
                            c->arch_name, c->n_layers, first_missing, present, c->n_layers);
    return BN_OK;
}

/* The tokenizer's vocabulary (tokenizer.ggml.tokens, when the file has one) against token_embd's
 * rows: a token without a row would be read past the table, a row without a token is a sign of a
 * file stitched from two models. */
static bn_status check_vocabulary(const bn_gguf *gguf, const bn_gguf_tensor *embd, bn_error *err) {
    const bn_gguf_kv *tokens = bn_gguf_find_kv(gguf, "tokenizer.ggml.tokens");
    if (!tokens || tokens->value.type != BN_GGUF_ARRAY) return BN_OK; /* the tokenizer reports it */
    const uint64_t n = tokens->value.as.arr.count;
    if (n != embd->ne[1])
        return bn_error_set(err, BN_ERR_FORMAT,
                            "tokenizer.ggml.tokens has %" PRIu64 " tokens but token_embd.weight has %" PRIu64
                            " rows (one per token)",
                            n, embd->ne[1]);
    return BN_OK;
}

bn_status bn_model_weights_load(bn_model_weights *w, bn_model_config *config, const bn_gguf *gguf,
                                const bn_model_options *options, bn_error *err) {
    memset(w, 0, sizeof *w);
    bn_weight_views *v = &w->views;
    const char *name = "token_embd.weight";
    const bn_gguf_tensor *embd = bn_gguf_find_tensor(gguf, name);
    bool present = false;
    bn_status st = check_block_count(gguf, config, err);
    if (st != BN_OK) return st;
    if (!embd) return bn_error_set(err, BN_ERR_FORMAT, "%s: missing", name);
    if (embd->ne[1] > (uint64_t)1 << 30 || embd->ne[1] == 0)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: vocabulary size %" PRIu64 " is out of range",
                            name, embd->ne[1]);
    if (config->n_vocab != 0 && (uint64_t)config->n_vocab != embd->ne[1])
        return bn_error_set(err, BN_ERR_FORMAT, "%s: %" PRIu64 " rows but %s.vocab_size is %d", name,
                            embd->ne[1], config->arch_name, config->n_vocab);
    if ((st = check_vocabulary(gguf, embd, err)) != BN_OK) return st;
    config->n_vocab = (int)embd->ne[1];
    st = bind_table(gguf, config, name, false, &v->token_embd, &present, err);
    if (st != BN_OK) return st;

    if ((st = bind_norm(w, gguf, "output_norm.weight", (uint64_t)config->dim, &v->output_norm, err)))
        goto fail;
    /* llama: optional RoPE frequency divisors (spec 9.1) */
    if (config->arch == BN_ARCH_LLAMA &&
        (st = bind_vector(w, gguf, "rope_freqs.weight", (uint64_t)(config->rope_dim / 2), true, &v->rope_freqs, err)))
        goto fail;

    /* The LM head: output.weight when present, else the tied embedding; bitnet-b1.58 always
     * takes token_embd, even when a file carries an output tensor (spec 9.2 note). */
    v->output = v->token_embd;
    present = false;
    if (config->arch != BN_ARCH_BITNET_B158 &&
        (st = bind_table(gguf, config, "output.weight", true, &v->output, &present, err)))
        goto fail;
    config->tied_output = !present;
    config->embd_type = v->token_embd.type;
    config->head_type = v->output.type;
    if (options->int8_lm_head && v->output.type != BN_TYPE_F16) {
        st = bn_error_set(err, BN_ERR_UNSUPPORTED, "the int8 LM head needs an f16 head (this one is %s)",
                          type_name(v->output.type));
        goto fail;
    }

    w->layers = calloc((size_t)config->n_layers, sizeof *w->layers);
    if (!w->layers) {
        bn_model_weights_release(w);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %d layers", config->n_layers);
    }
    for (int l = 0; l < config->n_layers; l++) {
        if ((st = load_layer(w, gguf, config, l, &w->layers[l], err))) goto fail;
        if (options->progress)
            options->progress(options->progress_user, "loading model", (uint64_t)l + 1, (uint64_t)config->n_layers);
    }
    config->projection_type = w->layers[0].linears[BN_LINEAR_Q].weight.type;
    v->n_layers = config->n_layers;
    v->layers = w->layers;
    v->file_mapped = gguf->mapped;

    config->n_params = 0;
    for (uint64_t i = 0; i < gguf->n_tensors; i++) config->n_params += gguf->tensors[i].n_elements;
    return BN_OK;
fail:
    bn_model_weights_release(w);
    return st;
}

void bn_model_weights_release(bn_model_weights *w) {
    free(w->layers);
    for (int i = 0; i < w->n_converted; i++) free(w->converted[i]);
    free(w->converted);
    memset(w, 0, sizeof *w);
}
