/*
 * config.c: the model's hyper-parameters from GGUF metadata (keys of spec sections 1 and 9,
 * prefixed by general.architecture: bitnet-b1.58 / bitnet-25, bitnet, llama). Required keys fail with an error naming them; optional keys take the
 * defaults llama.cpp uses. Shapes of tensors are checked later against this config (loader.c).
 */
#include "model/model_internal.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define BN_MODEL_MAX_DIM (1 << 20)

static bn_status read_int(const bn_gguf *gguf, const char *arch, const char *suffix, bool required,
                          int fallback, int lo, int hi, int *out, bn_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (!bn_gguf_find_kv(gguf, key)) {
        if (required) return bn_error_set(err, BN_ERR_FORMAT, "metadata %s: missing", key);
        *out = fallback;
        return BN_OK;
    }
    uint64_t v = 0;
    bn_status st = bn_gguf_get_u64(gguf, key, &v, err);
    if (st != BN_OK) return st;
    if (v < (uint64_t)lo || v > (uint64_t)hi)
        return bn_error_set(err, BN_ERR_FORMAT, "metadata %s: %llu is out of range [%d, %d]", key,
                            (unsigned long long)v, lo, hi);
    *out = (int)v;
    return BN_OK;
}

static bn_status read_float(const bn_gguf *gguf, const char *arch, const char *suffix, bool required,
                            float fallback, float *out, bn_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (!bn_gguf_find_kv(gguf, key)) {
        if (required) return bn_error_set(err, BN_ERR_FORMAT, "metadata %s: missing", key);
        *out = fallback;
        return BN_OK;
    }
    bn_status st = bn_gguf_get_f32(gguf, key, out, err);
    if (st != BN_OK) return st;
    if (!isfinite(*out) || *out <= 0.0f)
        return bn_error_set(err, BN_ERR_FORMAT, "metadata %s: %g must be a positive number", key,
                            (double)*out);
    return BN_OK;
}

bn_status bn_model_config_read(bn_model_config *config, const bn_gguf *gguf, bn_error *err) {
    memset(config, 0, sizeof *config);
    bn_gguf_string arch;
    bn_status st = bn_gguf_get_string(gguf, "general.architecture", &arch, err);
    if (st != BN_OK) return st;
    if (bn_gguf_string_eq(arch, "bitnet-b1.58") || bn_gguf_string_eq(arch, "bitnet-25"))
        config->arch = BN_ARCH_BITNET_B158;
    else if (bn_gguf_string_eq(arch, "bitnet"))
        config->arch = BN_ARCH_BITNET;
    else if (bn_gguf_string_eq(arch, "llama"))
        config->arch = BN_ARCH_LLAMA;
    else {
        char quoted[BN_GGUF_QUOTE_MAX];
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "general.architecture '%s' is not a BitNet b1.58 model (expected "
                            "bitnet-b1.58, bitnet-25, bitnet or llama)",
                            bn_gguf_string_quote(arch, quoted, sizeof quoted));
    }
    snprintf(config->arch_name, sizeof config->arch_name, "%.*s", (int)arch.len, arch.data);
    const char *a = config->arch_name;

    if ((st = read_int(gguf, a, "embedding_length", true, 0, 1, BN_MODEL_MAX_DIM, &config->dim, err)) ||
        (st = read_int(gguf, a, "block_count", true, 0, 1, 4096, &config->n_layers, err)) ||
        (st = read_int(gguf, a, "feed_forward_length", true, 0, 1, BN_MODEL_MAX_DIM, &config->ffn_dim,
                       err)) ||
        (st = read_int(gguf, a, "attention.head_count", true, 0, 1, 4096, &config->n_heads, err)) ||
        (st = read_int(gguf, a, "attention.head_count_kv", false, config->n_heads, 1, 4096,
                       &config->n_kv_heads, err)) ||
        (st = read_int(gguf, a, "context_length", true, 0, 1, INT_MAX, &config->n_ctx_train, err)) ||
        (st = read_float(gguf, a, "attention.layer_norm_rms_epsilon", true, 0.0f, &config->rms_eps,
                         err)) ||
        (st = read_float(gguf, a, "rope.freq_base", false, 10000.0f, &config->rope_base, err)))
        return st;

    if (config->n_heads % config->n_kv_heads != 0)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "metadata %s.attention.head_count %d is not a multiple of head_count_kv %d",
                            a, config->n_heads, config->n_kv_heads);
    /* head size: attention.key_length when given (llama), else embedding_length / head_count */
    int key_length = 0, value_length = 0;
    if ((st = read_int(gguf, a, "attention.key_length", false, 0, 1, 4096, &key_length, err)) ||
        (st = read_int(gguf, a, "attention.value_length", false, key_length, 1, 4096, &value_length, err)))
        return st;
    if (key_length != value_length)
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "metadata %s.attention.key_length %d differs from value_length %d", a,
                            key_length, value_length);
    if (key_length == 0 && config->dim % config->n_heads != 0)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "metadata %s.embedding_length %d is not a multiple of head_count %d", a,
                            config->dim, config->n_heads);
    if ((int64_t)key_length * config->n_heads > BN_MODEL_MAX_DIM)
        return bn_error_set(err, BN_ERR_FORMAT, "metadata %s.attention.key_length %d x head_count %d is too large",
                            a, key_length, config->n_heads);
    config->head_dim = key_length ? key_length : config->dim / config->n_heads;
    config->q_dim = config->n_heads * config->head_dim;
    config->kv_dim = config->n_kv_heads * config->head_dim;
    if ((st = read_int(gguf, a, "rope.dimension_count", false, config->head_dim, 2, config->head_dim,
                       &config->rope_dim, err)))
        return st;
    if (config->rope_dim % 2 != 0)
        return bn_error_set(err, BN_ERR_FORMAT, "metadata %s.rope.dimension_count %d is odd", a,
                            config->rope_dim);
    if (config->arch == BN_ARCH_LLAMA && config->rope_dim != config->head_dim)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "metadata %s.rope.dimension_count %d differs from the head size %d",
                            a, config->rope_dim, config->head_dim);
    config->rope_norm = config->arch == BN_ARCH_LLAMA;
    config->sub_norms = config->arch != BN_ARCH_LLAMA;

    /* rope scaling: none, or linear (theta times 1 / factor); converters of `bitnet` files write
     * linear with factor 1 */
    config->rope_freq_scale = 1.0f;
    char scaling_key[128];
    snprintf(scaling_key, sizeof scaling_key, "%s.rope.scaling.type", a);
    if (bn_gguf_find_kv(gguf, scaling_key)) {
        bn_gguf_string type;
        if ((st = bn_gguf_get_string(gguf, scaling_key, &type, err))) return st;
        if (bn_gguf_string_eq(type, "linear")) {
            float factor = 1.0f;
            if ((st = read_float(gguf, a, "rope.scaling.factor", false, 1.0f, &factor, err))) return st;
            config->rope_freq_scale = 1.0f / factor;
        } else if (!bn_gguf_string_eq(type, "none")) {
            char quoted[BN_GGUF_QUOTE_MAX];
            return bn_error_set(err, BN_ERR_UNSUPPORTED, "metadata %s: rope scaling '%s' is not none or linear",
                                scaling_key, bn_gguf_string_quote(type, quoted, sizeof quoted));
        }
    }

    /* The vocabulary size comes from token_embd (checked there); the key, when present, must agree. */
    config->n_vocab = 0;
    if ((st = read_int(gguf, a, "vocab_size", false, 0, 1, 1 << 30, &config->n_vocab, err))) return st;

    config->ffn_activation = config->arch == BN_ARCH_LLAMA ? BN_FFN_SILU : BN_FFN_RELU2;
    if (config->arch == BN_ARCH_BITNET) {
        /* Upstream llama.cpp's `bitnet` uses SiLU; 2B-4T conversions mark squared ReLU (spec 3). */
        char key[128];
        snprintf(key, sizeof key, "%s.hidden_activation", a);
        config->ffn_activation = BN_FFN_SILU;
        if (bn_gguf_find_kv(gguf, key)) {
            bn_gguf_string act;
            if ((st = bn_gguf_get_string(gguf, key, &act, err))) return st;
            if (bn_gguf_string_eq(act, "relu2"))
                config->ffn_activation = BN_FFN_RELU2;
            else if (!bn_gguf_string_eq(act, "silu")) {
                char quoted[BN_GGUF_QUOTE_MAX];
                return bn_error_set(err, BN_ERR_UNSUPPORTED, "metadata %s: activation '%s' is not relu2 or silu",
                                    key, bn_gguf_string_quote(act, quoted, sizeof quoted));
            }
        }
    }
    return BN_OK;
}
