/*
 * convert.c: plans a conversion (architecture, flavour, every output tensor and its source,
 * checked before anything is written) and writes the GGUF (see convert.h).
 *
 * Design: bn_convert_open reads the small files and the safetensors headers only; the plan is a
 * list of output tensors in the official order, each naming its source tensor and how it is
 * converted (convert_internal.h). bn_convert_write lays the file out with the GGUF writer, every
 * tensor's data a hole, reopens it with the reader to learn the offsets, and fills the tensors one
 * by one (convert_tensors.c) into the temporary file, which is renamed into place only at the end.
 */
#include "convert/convert_internal.h"

#include "convert/convert_json.h"
#include "quant/float_encode.h"
#include "quant/quant_format.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long long ull;

void bn_convert_options_init(bn_convert_options *o) {
    memset(o, 0, sizeof *o);
    o->type = BN_TYPE_I2_S;
    o->embd_type = BN_TYPE_F16;
    o->head_type = BN_TYPE_F16;
}

/* ---- the parts of an architecture ---- */

typedef struct arch_layout {
    const char *gguf_arch;
    const char *attn_sub_norm, *ffn_sub_norm; /* HF names under model.layers.N.; NULL: none */
    bool permute_qk;                          /* NORM RoPE in the GGUF architecture */
} arch_layout;

static arch_layout layout_of(bn_hf_arch arch) {
    switch (arch) {
    case BN_HF_ARCH_BITNET: return (arch_layout){"bitnet-b1.58", "self_attn.attn_sub_norm", "mlp.ffn_sub_norm", false};
    case BN_HF_ARCH_BITNET_1BITLLM: return (arch_layout){"bitnet", "self_attn.inner_attn_ln", "mlp.ffn_layernorm", false};
    case BN_HF_ARCH_LLAMA: break;
    }
    return (arch_layout){"llama", NULL, NULL, true};
}

static bool is_float_dtype(bn_safetensors_dtype d) {
    return d == BN_SAFETENSORS_F32 || d == BN_SAFETENSORS_F16 || d == BN_SAFETENSORS_BF16;
}

static void format_shape(char *buf, size_t cap, const uint64_t *shape, uint32_t n_dims) {
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (uint32_t d = 0; d < n_dims && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%llu", d ? ", " : "", (ull)shape[d]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

/* ---- planning ---- */

typedef struct planner {
    bn_convert *c;
    size_t cap;
    const bn_safetensors_tensor **used; /* sources consumed (weights and their scales) */
    size_t n_used, cap_used;
} planner;

static bn_status mark_used(planner *p, const bn_safetensors_tensor *t, bn_error *err) {
    if (p->n_used == p->cap_used) {
        size_t cap = p->cap_used ? 2 * p->cap_used : 64;
        const bn_safetensors_tensor **grown = realloc(p->used, cap * sizeof *grown);
        if (!grown) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        p->used = grown, p->cap_used = cap;
    }
    p->used[p->n_used++] = t;
    return BN_OK;
}

static convert_tensor *new_tensor(planner *p, bn_error *err) {
    bn_convert *c = p->c;
    if (c->n_tensors == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        convert_tensor *grown = realloc(c->tensors, cap * sizeof *grown);
        if (!grown) return bn_error_set(err, BN_ERR_NOMEM, "out of memory"), NULL;
        c->tensors = grown, p->cap = cap;
    }
    convert_tensor *t = &c->tensors[c->n_tensors++];
    memset(t, 0, sizeof *t);
    return t;
}

/* The source tensor `name`, or an error saying which output needs it. */
static bn_status find_source(planner *p, const char *name, const char *gguf_name, const bn_safetensors_tensor **out,
                             bn_error *err) {
    *out = bn_safetensors_set_find(p->c->set, name);
    if (!*out)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: missing from the checkpoint (it becomes %s)", name, gguf_name);
    return mark_used(p, *out, err);
}

static bn_status check_shape(const bn_safetensors_tensor *src, uint32_t n_dims, uint64_t d0, uint64_t d1,
                             const char *what, bn_error *err) {
    const uint64_t want[2] = {d0, d1};
    bool ok = src->n_dims == n_dims;
    for (uint32_t d = 0; ok && d < n_dims; d++) ok = src->shape[d] == want[d];
    if (ok) return BN_OK;
    char found[96], expected[96];
    format_shape(found, sizeof found, src->shape, src->n_dims);
    format_shape(expected, sizeof expected, want, n_dims);
    return bn_error_set(err, BN_ERR_FORMAT, "%s: shape %s, expected %s (%s)", src->name, found, expected, what);
}

static bn_status check_float(const bn_safetensors_tensor *src, const char *what, bn_error *err) {
    if (is_float_dtype(src->dtype)) return BN_OK;
    return bn_error_set(err, BN_ERR_FORMAT, "%s: dtype %s, expected F32, F16 or BF16 (%s)", src->name,
                        bn_safetensors_dtype_name(src->dtype), what);
}

static bn_status set_bytes(convert_tensor *t, bn_error *err) {
    bn_status st = bn_quant_tensor_bytes(t->type, t->ne[0] * t->ne[1], t->ne[0], &t->bytes, err);
    return st ? bn_error_prefix(err, "%s: ", t->name) : BN_OK;
}

/* A norm: source [n] -> F32 {n}. */
static bn_status plan_vector(planner *p, const char *src_name, uint64_t n, const char *gguf_name, bn_error *err) {
    convert_tensor *t = new_tensor(p, err);
    if (!t) return BN_ERR_NOMEM;
    snprintf(t->name, sizeof t->name, "%s", gguf_name);
    t->kind = CONVERT_VECTOR, t->type = BN_TYPE_F32, t->n_dims = 1, t->ne[0] = n, t->ne[1] = 1;
    bn_status st = find_source(p, src_name, gguf_name, &t->src, err);
    if (!st) st = check_float(t->src, "a norm weight", err);
    if (!st) st = check_shape(t->src, 1, n, 0, "a norm weight", err);
    return st ? st : set_bytes(t, err);
}

/* token_embd / output: source [rows, cols] -> type {cols, rows}. */
static bn_status plan_table(planner *p, const char *src_name, uint64_t rows, uint64_t cols, uint32_t type,
                            const char *gguf_name, bn_error *err) {
    convert_tensor *t = new_tensor(p, err);
    if (!t) return BN_ERR_NOMEM;
    snprintf(t->name, sizeof t->name, "%s", gguf_name);
    t->kind = CONVERT_TABLE, t->type = type, t->n_dims = 2, t->ne[0] = cols, t->ne[1] = rows;
    bn_status st = find_source(p, src_name, gguf_name, &t->src, err);
    if (!st) st = check_float(t->src, "embedding or head weights", err);
    if (!st) st = check_shape(t->src, 2, rows, cols, "vocab_size x hidden_size", err);
    return st ? st : set_bytes(t, err);
}

/* Whether modules_to_not_convert keeps `module` in full precision (transformers' rule: any entry
 * that is a substring of the module's name). */
static bool kept_in_full_precision(const bn_hf_quantization *q, const char *module) {
    for (uint32_t i = 0; i < q->n_modules_to_not_convert; i++)
        if (q->modules_to_not_convert[i][0] && strstr(module, q->modules_to_not_convert[i])) return true;
    return false;
}

/* A projection of layer l: module (e.g. "self_attn.q_proj") [out, in] -> the ternary type {in, out}. */
static bn_status plan_projection(planner *p, int l, const char *module, const char *part, uint64_t out, uint64_t in,
                                 uint32_t permute_heads, bn_error *err) {
    bn_convert *c = p->c;
    const bn_hf_quantization *q = &c->config.quantization;
    char base[160], weight[192], scale_name[192], gguf_name[BN_CONVERT_NAME_MAX];
    snprintf(base, sizeof base, "model.layers.%d.%s", l, module);
    snprintf(weight, sizeof weight, "%s.weight", base);
    snprintf(scale_name, sizeof scale_name, "%s.weight_scale", base);
    snprintf(gguf_name, sizeof gguf_name, "blk.%d.%s.weight", l, part);
    if (kept_in_full_precision(q, base))
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "config.json: quantization_config.modules_to_not_convert keeps %s in full precision; "
                            "every projection must be ternary",
                            base);
    convert_tensor *t = new_tensor(p, err);
    if (!t) return BN_ERR_NOMEM;
    snprintf(t->name, sizeof t->name, "%s", gguf_name);
    t->kind = c->info.packed ? CONVERT_PACKED : CONVERT_MASTER;
    t->type = c->options.type, t->n_dims = 2, t->ne[0] = in, t->ne[1] = out;
    t->permute_heads = permute_heads;
    bn_status st = find_source(p, weight, gguf_name, &t->src, err);
    if (st) return st;
    const bn_quant_format *f = bn_quant_format_get(t->type);
    if (in % f->row_multiple)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "%s: rows of %llu weights are not a multiple of %u, as %s needs",
                            weight, (ull)in, f->row_multiple, f->name);
    const bn_safetensors_tensor *ws = bn_safetensors_set_find(c->set, scale_name);
    if (c->info.packed) {
        if (t->src->dtype != BN_SAFETENSORS_U8)
            return bn_error_set(err, BN_ERR_FORMAT,
                                "%s: dtype %s, expected U8 (packed ternary: config.json's quantization_config is "
                                "offline)",
                                weight, bn_safetensors_dtype_name(t->src->dtype));
        if ((st = check_shape(t->src, 2, (out + 3) / 4, in, "U8, four ternary values per byte along the rows", err)))
            return st;
        if (!ws)
            return bn_error_set(err, BN_ERR_FORMAT, "%s: missing from the checkpoint (the scale of packed %s)",
                                scale_name, weight);
        if ((st = mark_used(p, ws, err)) ||
            (st = bn_convert_packed_scale(ws, c->config.quantization.scale_multiplies, &t->scale, err)))
            return st;
    } else {
        if ((st = check_float(t->src, "full-precision master weights", err)) ||
            (st = check_shape(t->src, 2, out, in, "out_features x in_features", err)))
            return st;
        if (ws)
            return bn_error_set(err, BN_ERR_FORMAT,
                                "%s: a weight_scale beside full-precision weights (config.json's quantization_config "
                                "does not say the weights are packed)",
                                scale_name);
    }
    return set_bytes(t, err);
}

static bn_status plan_layer(planner *p, int l, const arch_layout *a, bn_error *err) {
    const bn_hf_config *cfg = &p->c->config;
    const uint64_t dim = cfg->hidden_size, ffn = cfg->intermediate_size;
    const uint64_t q_dim = (uint64_t)cfg->head_dim * cfg->num_attention_heads;
    const uint64_t kv_dim = (uint64_t)cfg->head_dim * cfg->num_key_value_heads;
    const uint32_t permute_q = a->permute_qk ? cfg->num_attention_heads : 0;
    const uint32_t permute_k = a->permute_qk ? cfg->num_key_value_heads : 0;
    char src[160], dst[BN_CONVERT_NAME_MAX];
    bn_status st;
#define VECTOR(hf, part, n)                                                   \
    snprintf(src, sizeof src, "model.layers.%d.%s.weight", l, hf);            \
    snprintf(dst, sizeof dst, "blk.%d.%s.weight", l, part);                   \
    if ((st = plan_vector(p, src, n, dst, err))) return st;
    VECTOR("input_layernorm", "attn_norm", dim)
    if ((st = plan_projection(p, l, "self_attn.q_proj", "attn_q", q_dim, dim, permute_q, err)) ||
        (st = plan_projection(p, l, "self_attn.k_proj", "attn_k", kv_dim, dim, permute_k, err)) ||
        (st = plan_projection(p, l, "self_attn.v_proj", "attn_v", kv_dim, dim, 0, err)))
        return st;
    if (a->attn_sub_norm) {
        VECTOR(a->attn_sub_norm, "attn_sub_norm", q_dim)
    }
    if ((st = plan_projection(p, l, "self_attn.o_proj", "attn_output", dim, q_dim, 0, err))) return st;
    VECTOR("post_attention_layernorm", "ffn_norm", dim)
    if ((st = plan_projection(p, l, "mlp.gate_proj", "ffn_gate", ffn, dim, 0, err)) ||
        (st = plan_projection(p, l, "mlp.up_proj", "ffn_up", ffn, dim, 0, err)))
        return st;
    if (a->ffn_sub_norm) {
        VECTOR(a->ffn_sub_norm, "ffn_sub_norm", ffn)
    }
#undef VECTOR
    return plan_projection(p, l, "mlp.down_proj", "ffn_down", dim, ffn, 0, err);
}

/* Tensors a checkpoint may carry that the GGUF does not need. */
static bool ignorable(const bn_convert *c, const char *name) {
    const size_t n = strlen(name), suffix = strlen(".rotary_emb.inv_freq");
    if (n > suffix && !strcmp(name + n - suffix, ".rotary_emb.inv_freq")) return true; /* recomputed from rope_theta */
    return c->info.tied && !strcmp(name, "lm_head.weight"); /* tied: the head is the embedding */
}

/* Every checkpoint tensor must be used or known to be unneeded. */
static bn_status check_unused(planner *p, bn_error *err) {
    const bn_convert *c = p->c;
    for (size_t i = 0; i < bn_safetensors_set_count(c->set); i++) {
        const bn_safetensors_tensor *t = bn_safetensors_set_at(c->set, i);
        bool used = ignorable(c, t->name);
        for (size_t k = 0; !used && k < p->n_used; k++) used = p->used[k] == t;
        if (!used) {
            char q[BN_CONVERT_QUOTE_MAX];
            return bn_error_set(err, BN_ERR_UNSUPPORTED,
                                "tensor '%s' is not part of a %s checkpoint as the converter knows it (%u layers)",
                                bn_convert_quote(t->name, q, sizeof q), c->info.hf_class, c->config.num_hidden_layers);
        }
    }
    return BN_OK;
}

static bn_status plan_tensors(bn_convert *c, const arch_layout *a, bn_error *err) {
    planner p = {.c = c};
    const bn_hf_config *cfg = &c->config;
    bn_status st = plan_table(&p, "model.embed_tokens.weight", cfg->vocab_size, cfg->hidden_size,
                              c->options.embd_type, "token_embd.weight", err);
    if (!st && c->rope_freqs) {
        convert_tensor *t = new_tensor(&p, err);
        if (!t) st = BN_ERR_NOMEM;
        else {
            snprintf(t->name, sizeof t->name, "rope_freqs.weight");
            t->kind = CONVERT_ROPE_FREQS, t->type = BN_TYPE_F32, t->n_dims = 1;
            t->ne[0] = cfg->head_dim / 2, t->ne[1] = 1;
            st = set_bytes(t, err);
        }
    }
    for (uint32_t l = 0; !st && l < cfg->num_hidden_layers; l++) st = plan_layer(&p, (int)l, a, err);
    if (!st) st = plan_vector(&p, "model.norm.weight", cfg->hidden_size, "output_norm.weight", err);
    if (!st && !c->info.tied)
        st = plan_table(&p, "lm_head.weight", cfg->vocab_size, cfg->hidden_size, c->options.head_type,
                        "output.weight", err);
    if (!st) st = check_unused(&p, err);
    free(p.used);
    return st;
}

/* ---- the model as a whole ---- */

/* llama.cpp's factors for Llama 3.1 rope scaling (its converter's rope_freqs): theta_i is divided
 * by 1 for short wavelengths, by factor for long ones, and smoothly between. */
static float *llama3_rope_freqs(const bn_hf_config *cfg) {
    const uint32_t n = cfg->head_dim / 2;
    float *f = malloc(n * sizeof *f);
    if (!f) return NULL;
    const bn_hf_rope_scaling *r = &cfg->rope_scaling;
    const double old_ctx = r->original_max_position_embeddings;
    const double low_wavelen = old_ctx / r->low_freq_factor, high_wavelen = old_ctx / r->high_freq_factor;
    for (uint32_t i = 0; i < n; i++) {
        const double freq = 1.0 / pow(cfg->rope_theta, (double)(2 * i) / (double)cfg->head_dim);
        const double wavelen = 2.0 * M_PI / freq;
        double factor;
        if (wavelen < high_wavelen) factor = 1.0;
        else if (wavelen > low_wavelen) factor = r->factor;
        else {
            const double smooth = (old_ctx / wavelen - r->low_freq_factor) / (r->high_freq_factor - r->low_freq_factor);
            factor = 1.0 / ((1.0 - smooth) / r->factor + smooth);
        }
        f[i] = (float)factor;
    }
    return f;
}

/* The architecture's requirements on config.json. */
static bn_status check_config(const bn_convert *c, bn_error *err) {
    const bn_hf_config *cfg = &c->config;
    const bn_hf_quantization *q = &cfg->quantization;
    const char *arch = c->info.arch, *cls = c->info.hf_class;
    if (cfg->arch == BN_HF_ARCH_BITNET && cfg->hidden_act != BN_HF_ACT_RELU2)
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "config.json: %s with hidden_act silu: %s always uses squared ReLU (relu2)", cls, arch);
    if (cfg->arch == BN_HF_ARCH_LLAMA && cfg->hidden_act != BN_HF_ACT_SILU)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "config.json: %s with hidden_act relu2: %s always uses SiLU", cls,
                            arch);
    if (cfg->arch == BN_HF_ARCH_LLAMA && !q->present)
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "config.json: %s without quantization_config (quant_method bitnet) is not a ternary "
                            "BitNet b1.58 checkpoint",
                            cls);
    if (q->use_rms_norm)
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "config.json: quantization_config.use_rms_norm (a norm inside every linear) is not supported");
    if (cfg->rope_scaling.type == BN_HF_ROPE_LLAMA3 && cfg->arch != BN_HF_ARCH_LLAMA)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "config.json: rope_scaling llama3 is supported for %s only, not %s",
                            "LlamaForCausalLM", cls);
    if (cfg->num_attention_heads % cfg->num_key_value_heads)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "config.json: num_attention_heads %u is not a multiple of num_key_value_heads %u",
                            cfg->num_attention_heads, cfg->num_key_value_heads);
    if (cfg->vocab_size > (1u << 30)) return bn_error_set(err, BN_ERR_FORMAT, "config.json: vocab_size too large");
    return BN_OK;
}

static void describe_flavour(bn_convert *c, const char *master_dtype) {
    const bn_hf_config *cfg = &c->config;
    if (c->info.packed)
        snprintf(c->flavour, sizeof c->flavour,
                 "packed ternary (U8, 4 values per byte, per-tensor weight_scale): W = t %s weight_scale "
                 "(linear_class %s)",
                 cfg->quantization.scale_multiplies ? "*" : "/",
                 cfg->quantization.autobitlinear ? "autobitlinear" : "bitlinear");
    else
        snprintf(c->flavour, sizeof c->flavour, "%s master weights, ternarized per tensor (absmean, %s)", master_dtype,
                 cfg->quantization.online                    ? "quantization_mode online"
                 : cfg->arch == BN_HF_ARCH_BITNET_1BITLLM    ? "1bitLLM weight_quant"
                                                             : "no quantization_config");
    c->info.flavour = c->flavour;
}

static void set_name(bn_convert *c) {
    if (c->options.name) {
        snprintf(c->name, sizeof c->name, "%s", c->options.name);
        return;
    }
    const char *slash = strrchr(c->dir, '/');
    snprintf(c->name, sizeof c->name, "%s", slash && slash[1] ? slash + 1 : c->dir);
}

static bn_status check_options(const bn_convert_options *o, bn_error *err) {
    if (o->type != BN_TYPE_I2_S && o->type != BN_TYPE_TQ2_0 && o->type != BN_TYPE_TQ1_0)
        return bn_error_set(err, BN_ERR_INVALID, "projection type %u is not i2_s, tq2_0 or tq1_0", o->type);
    if (!bn_quant_encodable(o->embd_type) || !bn_quant_encodable(o->head_type))
        return bn_error_set(err, BN_ERR_INVALID, "embedding and head types are f32, f16, bf16, q8_0, q6_k or q4_k");
    return BN_OK;
}

char *bn_convert_path(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, file);
    return p;
}

bn_status bn_convert_open(bn_convert **out, const char *hf_dir, const bn_convert_options *options, bn_error *err) {
    *out = NULL;
    bn_status st = check_options(options, err);
    if (st != BN_OK) return st;
    struct stat sb;
    if (stat(hf_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return bn_error_set(err, BN_ERR_IO, "%s: not a directory (a Hugging Face checkpoint folder)", hf_dir);
    bn_convert *c = calloc(1, sizeof *c);
    if (!c || !(c->dir = strdup(hf_dir))) {
        free(c);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    }
    for (size_t n = strlen(c->dir); n > 1 && c->dir[n - 1] == '/'; n--) c->dir[n - 1] = '\0';
    c->options = *options;
    c->info.bos = c->info.eos = c->info.eot = -1;

    char *path = bn_convert_path(c->dir, "config.json");
    if (!path) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    if (!st) st = bn_hf_config_load(path, &c->config, err);
    free(path);
    if (!st) {
        path = bn_convert_path(c->dir, "generation_config.json");
        st = path ? bn_hf_generation_config_load(path, &c->generation, err) : BN_ERR_NOMEM;
        free(path);
    }
    if (!st) {
        path = bn_convert_path(c->dir, "tokenizer_config.json");
        st = path ? bn_hf_tokenizer_config_load(path, &c->tokenizer_config, err) : BN_ERR_NOMEM;
        free(path);
    }
    if (st) goto fail;

    const bn_hf_config *cfg = &c->config;
    const arch_layout layout = layout_of(cfg->arch);
    bn_convert_info *info = &c->info;
    info->hf_class = bn_hf_arch_name(cfg->arch);
    info->arch = layout.gguf_arch;
    info->packed = cfg->quantization.present && !cfg->quantization.online;
    info->scale_multiplies = cfg->quantization.scale_multiplies;
    info->permuted = layout.permute_qk;
    info->n_layers = cfg->num_hidden_layers;
    info->n_vocab = cfg->vocab_size;
    if ((st = check_config(c, err))) goto fail;
    if ((st = bn_safetensors_set_open(c->dir, &c->set, err))) goto fail;
    info->n_files = bn_safetensors_set_n_files(c->set);

    /* bitnet-b1.58 and bitnet always take token_embd as the head: an untied lm_head cannot be kept */
    const bool has_lm_head = bn_safetensors_set_find(c->set, "lm_head.weight") != NULL;
    info->tied = cfg->tie_word_embeddings || (cfg->arch != BN_HF_ARCH_LLAMA && !has_lm_head);
    if (!info->tied && cfg->arch != BN_HF_ARCH_LLAMA) {
        st = bn_error_set(err, BN_ERR_UNSUPPORTED,
                          "config.json: tie_word_embeddings is false and the checkpoint has lm_head.weight, but %s "
                          "always uses token_embd as the LM head",
                          info->arch);
        goto fail;
    }
    if (cfg->rope_scaling.type == BN_HF_ROPE_LLAMA3 && !(c->rope_freqs = llama3_rope_freqs(cfg))) {
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = plan_tensors(c, &layout, err))) goto fail;
    const char *master_dtype = "float";
    for (size_t i = 0; i < c->n_tensors; i++)
        if (c->tensors[i].kind == CONVERT_MASTER) {
            master_dtype = bn_safetensors_dtype_name(c->tensors[i].src->dtype);
            break;
        }
    describe_flavour(c, master_dtype);
    if ((st = bn_convert_vocab_load(c, err))) goto fail;
    set_name(c);
    info->n_tensors = c->n_tensors;
    for (size_t i = 0; i < c->n_tensors; i++) {
        info->output_bytes += c->tensors[i].bytes;
        if (c->tensors[i].src) info->input_bytes += c->tensors[i].src->size;
    }
    *out = c;
    return BN_OK;
fail:
    bn_convert_close(c);
    return st;
}

void bn_convert_close(bn_convert *c) {
    if (!c) return;
    bn_hf_config_free(&c->config);
    bn_hf_tokenizer_config_free(&c->tokenizer_config);
    bn_safetensors_set_close(c->set);
    bn_hf_vocab_free(&c->vocab);
    free(c->chat_template);
    free(c->tensors);
    free(c->rope_freqs);
    free(c->dir);
    free(c);
}

const bn_convert_info *bn_convert_get_info(const bn_convert *c) { return &c->info; }

bn_convert_tensor bn_convert_tensor_at(const bn_convert *c, size_t i) {
    const convert_tensor *t = &c->tensors[i];
    return (bn_convert_tensor){t->name, t->src ? t->src->name : NULL, t->type, t->n_dims, {t->ne[0], t->ne[1]},
                               t->bytes};
}

const char *bn_convert_temp_path(const bn_convert *c) { return c->temp_path; }

/* ---- writing ---- */

static bn_status add_metadata(const bn_convert *c, bn_gguf_writer *w, bn_error *err) {
    const bn_hf_config *cfg = &c->config;
    const char *a = c->info.arch;
    char key[128];
    bn_status st;
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", a, suffix), key)
    /* llama.cpp file types: MOSTLY_TQ1_0 36, MOSTLY_TQ2_0 37; bitnet.cpp MOSTLY_I2_S 40 */
    const uint32_t type = c->options.type;
    const uint32_t file_type = type == BN_TYPE_I2_S ? 40 : type == BN_TYPE_TQ1_0 ? 36 : 37;
    if ((st = bn_gguf_writer_add_string(w, "general.architecture", a, err)) ||
        (st = bn_gguf_writer_add_string(w, "general.name", c->name, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("vocab_size"), cfg->vocab_size, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("context_length"), cfg->max_position_embeddings, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("embedding_length"), cfg->hidden_size, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("block_count"), cfg->num_hidden_layers, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("feed_forward_length"), cfg->intermediate_size, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("rope.dimension_count"), cfg->head_dim, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("attention.head_count"), cfg->num_attention_heads, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("attention.head_count_kv"), cfg->num_key_value_heads, err)))
        return st;
    const bool separate_head_size = cfg->hidden_size % cfg->num_attention_heads != 0 ||
                                    cfg->head_dim != cfg->hidden_size / cfg->num_attention_heads;
    if (separate_head_size && ((st = bn_gguf_writer_add_u32(w, KEY("attention.key_length"), cfg->head_dim, err)) ||
                               (st = bn_gguf_writer_add_u32(w, KEY("attention.value_length"), cfg->head_dim, err))))
        return st;
    if ((st = bn_gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)cfg->rms_norm_eps, err)) ||
        (st = bn_gguf_writer_add_f32(w, KEY("rope.freq_base"), (float)cfg->rope_theta, err)))
        return st;
    /* linear scaling as llama.cpp writes it; `bitnet` files carry linear x1 by its converter's habit */
    const bool linear = cfg->rope_scaling.type == BN_HF_ROPE_LINEAR;
    if ((linear || cfg->arch == BN_HF_ARCH_BITNET_1BITLLM) &&
        ((st = bn_gguf_writer_add_string(w, KEY("rope.scaling.type"), "linear", err)) ||
         (st = bn_gguf_writer_add_f32(w, KEY("rope.scaling.factor"), linear ? (float)cfg->rope_scaling.factor : 1.0f,
                                      err))))
        return st;
    if (cfg->arch == BN_HF_ARCH_BITNET_1BITLLM &&
        (st = bn_gguf_writer_add_string(w, KEY("hidden_activation"),
                                        cfg->hidden_act == BN_HF_ACT_RELU2 ? "relu2" : "silu", err)))
        return st;
#undef KEY
    if ((st = bn_gguf_writer_add_u32(w, "general.file_type", file_type, err)) ||
        (st = bn_convert_vocab_write(c, w, err)))
        return st;
    return bn_gguf_writer_add_u32(w, "general.quantization_version", 2, err);
}

/* Lays out the file at path: metadata and tensor table, the data as holes; returns each tensor's
 * absolute offset (caller frees). */
static bn_status write_layout(const bn_convert *c, const char *path, uint64_t **offsets, bn_error *err) {
    *offsets = NULL;
    bn_gguf_writer *w = bn_gguf_writer_new();
    if (!w) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    bn_status st = add_metadata(c, w, err);
    for (size_t i = 0; st == BN_OK && i < c->n_tensors; i++) {
        const convert_tensor *t = &c->tensors[i];
        st = bn_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, NULL, err);
    }
    if (st == BN_OK) st = bn_gguf_writer_write(w, path, err);
    bn_gguf_writer_free(w);
    if (st != BN_OK) return st;

    bn_gguf *g = NULL;
    if ((st = bn_gguf_open(path, &g, err))) return st;
    uint64_t *at = calloc(c->n_tensors ? c->n_tensors : 1, sizeof *at);
    if (!at) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == BN_OK && i < c->n_tensors; i++) {
        const bn_gguf_tensor *t = bn_gguf_find_tensor(g, c->tensors[i].name);
        if (!t || t->size != c->tensors[i].bytes)
            st = bn_error_set(err, BN_ERR_FORMAT, "%s: tensor %s was not laid out as planned", path,
                              c->tensors[i].name);
        else at[i] = t->file_offset;
    }
    bn_gguf_close(g);
    if (st != BN_OK) free(at);
    else *offsets = at;
    return st;
}

static bn_status fill_all(bn_convert *c, const char *path, const uint64_t *offsets, bn_error *err) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return bn_error_set(err, BN_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    convert_scratch scratch = {0};
    bn_status st = BN_OK;
    uint64_t done = 0;
    for (size_t i = 0; st == BN_OK && i < c->n_tensors; i++) {
        st = bn_convert_fill(&c->tensors[i], c->rope_freqs, fd, offsets[i], path, &scratch, err);
        done += c->tensors[i].bytes;
        if (st == BN_OK && c->options.progress)
            c->options.progress(c->options.progress_user, i + 1, c->n_tensors, c->tensors[i].name, done,
                                c->info.output_bytes);
    }
    bn_convert_scratch_free(&scratch);
    if (st == BN_OK && fsync(fd) != 0) st = bn_error_set(err, BN_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && st == BN_OK) st = bn_error_set(err, BN_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    return st;
}

bn_status bn_convert_write(bn_convert *c, const char *out_path, bn_error *err) {
    if (c->written) return bn_error_set(err, BN_ERR_STATE, "bn_convert_write: already written");
    c->written = true;
    if ((size_t)snprintf(c->temp_path, sizeof c->temp_path, "%s.tmp-XXXXXX", out_path) >= sizeof c->temp_path - 4) {
        c->temp_path[0] = '\0';
        return bn_error_set(err, BN_ERR_INVALID, "%s: path too long", out_path);
    }
    int fd = mkstemp(c->temp_path);
    if (fd < 0) {
        bn_status st = bn_error_set(err, BN_ERR_IO, "%s: cannot create: %s", c->temp_path, strerror(errno));
        c->temp_path[0] = '\0';
        return st;
    }
    close(fd);
    uint64_t *offsets = NULL;
    bn_status st = write_layout(c, c->temp_path, &offsets, err);
    if (st == BN_OK) st = fill_all(c, c->temp_path, offsets, err);
    if (st == BN_OK && rename(c->temp_path, out_path) != 0)
        st = bn_error_set(err, BN_ERR_IO, "%s: cannot rename %s into place: %s", out_path, c->temp_path,
                          strerror(errno));
    if (st != BN_OK) unlink(c->temp_path);
    c->temp_path[0] = '\0';
    free(offsets);
    return st;
}
