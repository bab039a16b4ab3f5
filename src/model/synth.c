/*
 * synth.c: writes synthetic ternary models (see synth.h).
 *
 * Design: the GGUF writer lays out the header, metadata and tensor table with every tensor's data
 * left as a hole (no memory, no disk blocks); the file is then reopened with the reader to learn
 * each tensor's offset, and the data is generated and written into place one tensor at a time
 * (the embedding and head in slices of rows). Each tensor (each embedding row) draws from its own
 * seeded generator, so the content depends only on the seed and the shape, never on the slicing.
 *
 * Weights look like a trained model's in scale: ternary codes uniform over {-1, 0, +1} (about a
 * third zeros) with a per-tensor scale near 0.8 / sqrt(fan-in) rounded to a value fp16 represents
 * exactly (so the I2_S float32 scale and the TQ formats' fp16 block scales are the same number),
 * norms N(1, 0.05), embedding and head N(0, 0.02). Every embedding/head type stores the same drawn
 * floats: F32 exactly, F16 and BF16 rounded, Q8_0 / Q6_K / Q4_K through the simple block
 * quantizers of quant/float_encode.h (valid blocks in ggml's layouts, not llama-quantize's bytes).
 */
#include "model/synth.h"

#include "core/fp16.h"
#include "gguf/gguf.h"
#include "quant/float_encode.h"
#include "quant/quant_format.h"
#include "quant/ternary.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- seeded random numbers (splitmix64) ---- */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash_name(uint64_t seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    return splitmix64(&h);
}

/* Uniform in (0, 1). */
static double uniform(uint64_t *state) { return ((double)(splitmix64(state) >> 11) + 0.5) / 9007199254740992.0; }

/* Two independent N(0, 1) numbers (Box-Muller). */
static void gaussian_pair(uint64_t *state, double out[2]) {
    double r = sqrt(-2.0 * log(uniform(state))), angle = 6.283185307179586 * uniform(state);
    out[0] = r * cos(angle);
    out[1] = r * sin(angle);
}

static double gaussian(uint64_t *state) {
    double pair[2];
    gaussian_pair(state, pair);
    return pair[0];
}

/* ---- names, presets and checks ---- */

static const struct {
    const char *name;
    bn_synth_arch arch;
} arch_names[] = {{"bitnet-b1.58", BN_SYNTH_ARCH_BITNET_B158}, {"bitnet", BN_SYNTH_ARCH_BITNET}, {"llama", BN_SYNTH_ARCH_LLAMA}};

bool bn_synth_arch_from_name(const char *name, bn_synth_arch *out) {
    for (size_t i = 0; i < sizeof arch_names / sizeof arch_names[0]; i++)
        if (!strcmp(name, arch_names[i].name)) return *out = arch_names[i].arch, true;
    return false;
}

/* The types token_embd and output.weight can be written in, as the command line spells them. */
static const struct {
    const char *name;
    uint32_t type;
} float_types[] = {{"f32", BN_TYPE_F32},   {"f16", BN_TYPE_F16},   {"bf16", BN_TYPE_BF16},
                   {"q8_0", BN_TYPE_Q8_0}, {"q6_k", BN_TYPE_Q6_K}, {"q4_k", BN_TYPE_Q4_K}};

bool bn_synth_float_type_from_name(const char *name, uint32_t *out) {
    for (size_t i = 0; i < sizeof float_types / sizeof float_types[0]; i++)
        if (!strcmp(name, float_types[i].name)) return *out = float_types[i].type, true;
    return false;
}

static bool is_float_type(uint32_t type) {
    for (size_t i = 0; i < sizeof float_types / sizeof float_types[0]; i++)
        if (float_types[i].type == type) return true;
    return false;
}

/* BN_SYNTH_ARCH_DEFAULT resolved by the projection format (the files each format comes in). */
static bn_synth_arch resolved_arch(const bn_synth_options *o) {
    if (o->arch != BN_SYNTH_ARCH_DEFAULT) return o->arch;
    return o->format == BN_TYPE_I2_S ? BN_SYNTH_ARCH_BITNET_B158 : BN_SYNTH_ARCH_BITNET;
}

static const char *arch_name(bn_synth_arch arch) {
    for (size_t i = 0; i < sizeof arch_names / sizeof arch_names[0]; i++)
        if (arch_names[i].arch == arch) return arch_names[i].name;
    return "?";
}

static bn_synth_activation resolved_activation(const bn_synth_options *o) {
    if (o->activation != BN_SYNTH_ACT_DEFAULT) return o->activation;
    return resolved_arch(o) == BN_SYNTH_ARCH_LLAMA ? BN_SYNTH_ACT_SILU : BN_SYNTH_ACT_RELU2;
}

static int head_size(const bn_synth_options *o) { return o->head_dim ? o->head_dim : o->dim / o->n_heads; }

/* True when the head size is not dim / heads, so the file must say it (llama key_length). */
static bool separate_head_size(const bn_synth_options *o) {
    return o->head_dim != 0 && (o->dim % o->n_heads || o->head_dim != o->dim / o->n_heads);
}

typedef struct synth_preset {
    const char *name;
    bn_synth_arch arch;
    int n_layers, dim, ffn_dim, n_heads, n_kv_heads, head_dim, n_vocab, n_ctx;
    float rope_base, rms_eps;
    bn_synth_activation activation;
} synth_preset;

static const synth_preset presets[] = {
    {"tiny", BN_SYNTH_ARCH_DEFAULT, 2, 256, 768, 4, 2, 0, 0, 4096, 500000.0f, 1e-5f, BN_SYNTH_ACT_DEFAULT},
    {"small", BN_SYNTH_ARCH_DEFAULT, 4, 512, 1536, 8, 2, 0, 0, 4096, 500000.0f, 1e-5f, BN_SYNTH_ACT_DEFAULT},
    {"2b4t", BN_SYNTH_ARCH_DEFAULT, 30, 2560, 6912, 20, 5, 0, 128256, 4096, 500000.0f, 1e-5f, BN_SYNTH_ACT_DEFAULT},
    /* tiiuae/Falcon3-{1B,3B}-Instruct-1.58bit, HF1BitLLM/Llama3-8B-1.58-100B-tokens */
    {"falcon3-1b", BN_SYNTH_ARCH_LLAMA, 18, 2048, 8192, 8, 4, 256, 131072, 8192, 1000042.0f, 1e-6f, BN_SYNTH_ACT_DEFAULT},
    {"falcon3-3b", BN_SYNTH_ARCH_LLAMA, 22, 3072, 9216, 12, 4, 256, 131072, 8192, 1000042.0f, 1e-6f, BN_SYNTH_ACT_DEFAULT},
    {"llama3-8b", BN_SYNTH_ARCH_LLAMA, 32, 4096, 14336, 32, 8, 0, 128256, 8192, 500000.0f, 1e-5f, BN_SYNTH_ACT_DEFAULT},
    /* 1bitLLM/bitnet_b1_58-large: SiLU-gated FFN, LLaMA-2 vocabulary size */
    {"bitnet-large", BN_SYNTH_ARCH_BITNET, 24, 1536, 4096, 16, 16, 0, 32002, 2048, 10000.0f, 1e-5f, BN_SYNTH_ACT_SILU},
};

bn_status bn_synth_preset(bn_synth_options *out, const char *name, bn_error *err) {
    memset(out, 0, sizeof *out);
    const synth_preset *p = NULL;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (!strcmp(name, presets[i].name)) p = &presets[i];
    if (!p) {
        char names[256] = "";
        for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", presets[i].name);
        return bn_error_set(err, BN_ERR_INVALID, "unknown preset '%s' (%s)", name, names);
    }
    out->arch = p->arch;
    out->n_layers = p->n_layers, out->dim = p->dim, out->ffn_dim = p->ffn_dim;
    out->n_heads = p->n_heads, out->n_kv_heads = p->n_kv_heads, out->head_dim = p->head_dim;
    out->n_vocab = p->n_vocab, out->n_ctx = p->n_ctx;
    out->rope_base = p->rope_base, out->rms_eps = p->rms_eps;
    out->activation = p->activation;
    out->seed = 1;
    out->format = BN_TYPE_I2_S;
    out->embd_type = BN_TYPE_F16;
    out->head_type = BN_SYNTH_TIED;
    return BN_OK;
}

/* The embedding or head type must be one synth writes, and dim a whole number of its blocks. */
static bn_status check_float_type(uint32_t type, int dim, const char *what, bn_error *err) {
    const bn_quant_format *f = bn_quant_format_get(type);
    if (!is_float_type(type) || !f)
        return bn_error_set(err, BN_ERR_INVALID, "%s type %u is not f32, f16, bf16, q8_0, q6_k or q4_k", what, type);
    if (dim % (int)f->row_multiple)
        return bn_error_set(err, BN_ERR_INVALID, "%s type %s needs dim %d to be a multiple of %u (its block size)",
                            what, f->name, dim, f->row_multiple);
    return BN_OK;
}

bn_status bn_synth_validate(const bn_synth_options *o, bn_error *err) {
    if (o->format != BN_TYPE_I2_S && o->format != BN_TYPE_TQ2_0 && o->format != BN_TYPE_TQ1_0)
        return bn_error_set(err, BN_ERR_INVALID, "format %u is not i2_s, tq2_0 or tq1_0", o->format);
    if (o->arch < BN_SYNTH_ARCH_DEFAULT || o->arch > BN_SYNTH_ARCH_LLAMA)
        return bn_error_set(err, BN_ERR_INVALID, "architecture %d is not bitnet-b1.58, bitnet or llama", (int)o->arch);
    bn_synth_arch arch = resolved_arch(o);
    const char *format_name = bn_quant_format_get(o->format)->name;
    int block = o->format == BN_TYPE_I2_S ? BN_I2S_BLOCK : BN_TQ_BLOCK;
    if (o->n_layers < 1 || o->n_layers > 1024) return bn_error_set(err, BN_ERR_INVALID, "layers %d out of range [1, 1024]", o->n_layers);
    if (o->dim < block || o->dim > (1 << 16) || o->dim % block)
        return bn_error_set(err, BN_ERR_INVALID, "dim %d must be a multiple of %d in [%d, 65536] for %s", o->dim,
                            block, block, format_name);
    if (o->ffn_dim < block || o->ffn_dim > (1 << 17) || o->ffn_dim % block)
        return bn_error_set(err, BN_ERR_INVALID, "ffn %d must be a multiple of %d in [%d, 131072] for %s",
                            o->ffn_dim, block, block, format_name);
    if (o->head_dim == 0) {
        if (o->n_heads < 1 || o->dim % o->n_heads || (o->dim / o->n_heads) % 2)
            return bn_error_set(err, BN_ERR_INVALID, "heads %d must divide dim %d into an even head size",
                                o->n_heads, o->dim);
    } else {
        if (o->head_dim < 2 || o->head_dim > 4096 || o->head_dim % 2)
            return bn_error_set(err, BN_ERR_INVALID, "head-dim %d must be even, in [2, 4096]", o->head_dim);
        if (o->n_heads < 1 || o->n_heads > 1024)
            return bn_error_set(err, BN_ERR_INVALID, "heads %d out of range [1, 1024]", o->n_heads);
        if (separate_head_size(o) && arch != BN_SYNTH_ARCH_LLAMA)
            return bn_error_set(err, BN_ERR_INVALID,
                                "head-dim %d is not dim / heads (%d / %d): only llama has a separate head size",
                                o->head_dim, o->dim, o->n_heads);
    }
    if (o->n_kv_heads < 1 || o->n_heads % o->n_kv_heads)
        return bn_error_set(err, BN_ERR_INVALID, "kv-heads %d must divide heads %d", o->n_kv_heads, o->n_heads);
    int kv_dim = head_size(o) * o->n_kv_heads, q_dim = head_size(o) * o->n_heads;
    if (kv_dim % block)
        return bn_error_set(err, BN_ERR_INVALID, "the K/V width %d (kv-heads x head size) must be a multiple of %d",
                            kv_dim, block);
    if (q_dim % block || q_dim > (1 << 17))
        return bn_error_set(err, BN_ERR_INVALID,
                            "the attention width %d (heads x head size) must be a multiple of %d, at most 131072",
                            q_dim, block);
    if (o->n_ctx < 1 || o->n_ctx > (1 << 24)) return bn_error_set(err, BN_ERR_INVALID, "ctx %d out of range", o->n_ctx);
    if (o->n_vocab < 0 || o->n_vocab > (1 << 22))
        return bn_error_set(err, BN_ERR_INVALID, "vocab %d out of range [0, 4194304]", o->n_vocab);
    if (!o->vocab_json && o->n_vocab != 0 && o->n_vocab < BN_SYNTH_BYTE_VOCAB)
        return bn_error_set(err, BN_ERR_INVALID, "vocab %d is smaller than the byte vocabulary (%d tokens)",
                            o->n_vocab, BN_SYNTH_BYTE_VOCAB);
    if (!(o->rope_base > 0.0f && isfinite(o->rope_base)))
        return bn_error_set(err, BN_ERR_INVALID, "rope base %g must be positive", (double)o->rope_base);
    if (!(o->rms_eps > 0.0f && o->rms_eps < 1.0f))
        return bn_error_set(err, BN_ERR_INVALID, "rms epsilon %g must be in (0, 1)", (double)o->rms_eps);
    bn_status st = check_float_type(o->embd_type, o->dim, "embedding", err);
    if (st != BN_OK) return st;
    if (o->head_type != BN_SYNTH_TIED && (st = check_float_type((uint32_t)o->head_type, o->dim, "head", err)))
        return st;
    bn_synth_activation activation = resolved_activation(o);
    if (activation != BN_SYNTH_ACT_RELU2 && activation != BN_SYNTH_ACT_SILU)
        return bn_error_set(err, BN_ERR_INVALID, "activation %d is not relu2 or silu", (int)o->activation);
    if (arch == BN_SYNTH_ARCH_BITNET_B158 && activation != BN_SYNTH_ACT_RELU2)
        return bn_error_set(err, BN_ERR_INVALID,
                            "bitnet-b1.58 always uses squared ReLU (SiLU needs the bitnet or llama architecture)");
    if (arch == BN_SYNTH_ARCH_LLAMA && activation != BN_SYNTH_ACT_SILU)
        return bn_error_set(err, BN_ERR_INVALID, "llama always uses SiLU (squared ReLU needs bitnet or bitnet-b1.58)");
    if (o->proj_scales && arch != BN_SYNTH_ARCH_BITNET)
        return bn_error_set(err, BN_ERR_INVALID, "per-projection scale tensors belong to the bitnet architecture, not %s",
                            arch_name(arch));
    if (o->rope_freqs && arch != BN_SYNTH_ARCH_LLAMA)
        return bn_error_set(err, BN_ERR_INVALID, "rope_freqs belongs to the llama architecture, not %s", arch_name(arch));
    return BN_OK;
}

/* ---- tokenizer metadata ---- */

/* UTF-8 of the GPT-2 byte-to-unicode character for byte b. */
static void byte_token_text(char out[4], int b) {
    unsigned cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
        cp = (unsigned)b;
    } else { /* the others map to 256 + their rank among the unprintable bytes */
        unsigned rank = 0;
        for (int c = 0; c < b; c++)
            if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) rank++;
        cp = 256 + rank;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

static bool byte_printable(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); }

static bn_status add_byte_vocab(bn_gguf_writer *w, int n_vocab, bn_error *err) {
    char **tokens = calloc((size_t)n_vocab, sizeof *tokens);
    int32_t *types = calloc((size_t)n_vocab, sizeof *types);
    bn_status st = BN_OK;
    if (!tokens || !types) {
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory for %d tokens", n_vocab);
        goto done;
    }
    int id = 0;
    /* 256 byte tokens in GPT-2's order: printable bytes first, then the rest */
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++) {
            if (byte_printable(b) != (pass == 0)) continue;
            char text[4];
            byte_token_text(text, b);
            tokens[id] = strdup(text);
            types[id++] = 1;
        }
    static const char *const merged[] = {"\xC4\xA0t", "he", "\xC4\xA0the"};
    static const char *const specials[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"};
    for (int i = 0; i < 3; i++) tokens[id] = strdup(merged[i]), types[id++] = 1;
    for (int i = 0; i < 3; i++) tokens[id] = strdup(specials[i]), types[id++] = 3;
    for (int r = 0; id < n_vocab; r++) {
        char text[64];
        snprintf(text, sizeof text, "<|reserved_special_token_%d|>", r);
        tokens[id] = strdup(text);
        types[id++] = 3;
    }
    for (int i = 0; i < n_vocab; i++)
        if (!tokens[i]) {
            st = bn_error_set(err, BN_ERR_NOMEM, "out of memory for token texts");
            goto done;
        }
    static const char *const merges[] = {"\xC4\xA0 t", "h e", "\xC4\xA0t he"};
    if ((st = bn_gguf_writer_add_string(w, "tokenizer.ggml.model", "gpt2", err)) ||
        (st = bn_gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", (const char *const *)tokens,
                                              (uint64_t)n_vocab, err)) ||
        (st = bn_gguf_writer_add_array(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, types,
                                       (uint64_t)n_vocab, err)) ||
        (st = bn_gguf_writer_add_string_array(w, "tokenizer.ggml.merges", merges, 3, err)) ||
        (st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", BN_SYNTH_BOS, err)) ||
        (st = bn_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", BN_SYNTH_EOS, err)) ||
        (st = bn_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true, err)))
        goto done;
done:
    if (tokens)
        for (int i = 0; i < n_vocab; i++) free(tokens[i]);
    free(tokens);
    free(types);
    return st;
}

/* ---- tensors ---- */

typedef enum {
    KIND_EMBED,      /* token_embd, output: rows of N(0, 0.02) in a float or block type */
    KIND_NORM,       /* F32 N(1, 0.05) */
    KIND_PROJECTION, /* ternary */
    KIND_PROJ_SCALE, /* F32 {1} in [0.5, 2] */
    KIND_ROPE_FREQS  /* F32 in [1, 8] */
} tensor_kind;

typedef struct synth_tensor {
    char name[64];
    tensor_kind kind;
    uint32_t type;
    uint64_t ne[2]; /* ne[0] row length (fan-in), ne[1] rows */
} synth_tensor;

/* The official order: token_embd, then per block its tensors, then output_norm; around them the
 * optional rope_freqs (after token_embd) and output (last). Llama has no sub-norms; bitnet's
 * projection scales follow their projections. */
static synth_tensor *list_tensors(const bn_synth_options *o, int n_vocab, int *count) {
    int n = 4 + 18 * o->n_layers;
    synth_tensor *list = calloc((size_t)n, sizeof *list);
    if (!list) return NULL;
    int i = 0;
    uint64_t dim = (uint64_t)o->dim, ffn = (uint64_t)o->ffn_dim;
    uint64_t q_dim = (uint64_t)head_size(o) * (uint64_t)o->n_heads;
    uint64_t kv = (uint64_t)head_size(o) * (uint64_t)o->n_kv_heads;
    bool sub_norms = resolved_arch(o) != BN_SYNTH_ARCH_LLAMA;
#define ADD(kind_, type_, ne0, ne1, ...)                                         \
    do {                                                                          \
        snprintf(list[i].name, sizeof list[i].name, __VA_ARGS__);                 \
        list[i].kind = kind_, list[i].type = type_;                               \
        list[i].ne[0] = ne0, list[i].ne[1] = ne1;                                 \
        i++;                                                                      \
    } while (0)
#define PROJECTION(ne0, ne1, l, proj)                                                     \
    do {                                                                                  \
        ADD(KIND_PROJECTION, o->format, ne0, ne1, "blk.%d.%s.weight", l, proj);           \
        if (o->proj_scales) ADD(KIND_PROJ_SCALE, BN_TYPE_F32, 1, 1, "blk.%d.%s.scale", l, proj); \
    } while (0)
    ADD(KIND_EMBED, o->embd_type, dim, (uint64_t)n_vocab, "token_embd.weight");
    if (o->rope_freqs) ADD(KIND_ROPE_FREQS, BN_TYPE_F32, (uint64_t)head_size(o) / 2, 1, "rope_freqs.weight");
    for (int l = 0; l < o->n_layers; l++) {
        ADD(KIND_NORM, BN_TYPE_F32, dim, 1, "blk.%d.attn_norm.weight", l);
        PROJECTION(dim, q_dim, l, "attn_q");
        PROJECTION(dim, kv, l, "attn_k");
        PROJECTION(dim, kv, l, "attn_v");
        if (sub_norms) ADD(KIND_NORM, BN_TYPE_F32, dim, 1, "blk.%d.attn_sub_norm.weight", l);
        PROJECTION(q_dim, dim, l, "attn_output");
        ADD(KIND_NORM, BN_TYPE_F32, dim, 1, "blk.%d.ffn_norm.weight", l);
        PROJECTION(dim, ffn, l, "ffn_gate");
        PROJECTION(dim, ffn, l, "ffn_up");
        if (sub_norms) ADD(KIND_NORM, BN_TYPE_F32, ffn, 1, "blk.%d.ffn_sub_norm.weight", l);
        PROJECTION(ffn, dim, l, "ffn_down");
    }
    ADD(KIND_NORM, BN_TYPE_F32, dim, 1, "output_norm.weight");
    if (o->head_type != BN_SYNTH_TIED) ADD(KIND_EMBED, (uint32_t)o->head_type, dim, (uint64_t)n_vocab, "output.weight");
#undef PROJECTION
#undef ADD
    *count = i;
    return list;
}

static bn_status write_at(int fd, const void *data, size_t size, uint64_t offset, const char *path,
                          bn_error *err) {
    const uint8_t *p = data;
    while (size > 0) {
        ssize_t k = pwrite(fd, p, size, (off_t)offset);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return bn_error_set(err, BN_ERR_IO, "%s: write at offset %llu failed: %s", path,
                                (unsigned long long)offset, strerror(errno));
        p += k, size -= (size_t)k, offset += (uint64_t)k;
    }
    return BN_OK;
}

/* token_embd or output: each row's floats from its own generator, encoded in the tensor's type,
 * written a slice of rows at a time. */
static bn_status fill_rows(int fd, const char *path, const synth_tensor *t, uint64_t offset, uint64_t expected,
                           uint64_t state, bn_error *err) {
    uint64_t row_bytes = 0;
    bn_status st = bn_quant_tensor_bytes(t->type, t->ne[0], t->ne[0], &row_bytes, err);
    if (st != BN_OK) return bn_error_prefix(err, "%s: ", t->name);
    if (row_bytes * t->ne[1] != expected)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: %llu bytes of rows but the file has %llu", t->name,
                            (unsigned long long)(row_bytes * t->ne[1]), (unsigned long long)expected);
    const uint64_t slice = 1024; /* rows per write: memory stays small for any vocabulary */
    float *values = malloc((size_t)(slice * t->ne[0]) * sizeof *values);
    uint8_t *rows = malloc((size_t)(slice * row_bytes));
    if (!values || !rows) {
        free(values), free(rows);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %s", t->name);
    }
    for (uint64_t r0 = 0; r0 < t->ne[1] && st == BN_OK; r0 += slice) {
        uint64_t n = t->ne[1] - r0 < slice ? t->ne[1] - r0 : slice;
        for (uint64_t r = 0; r < n; r++) {
            uint64_t row_state = state ^ splitmix64(&(uint64_t){r0 + r});
            float *row = values + r * t->ne[0];
            for (uint64_t c = 0; c < t->ne[0]; c += 2) { /* ne[0] is a multiple of 32 */
                double pair[2];
                gaussian_pair(&row_state, pair);
                row[c] = (float)(0.02 * pair[0]);
                row[c + 1] = (float)(0.02 * pair[1]);
            }
            bn_quant_encode_row(rows + r * row_bytes, t->type, row, (size_t)t->ne[0]);
        }
        st = write_at(fd, rows, (size_t)(n * row_bytes), offset + r0 * row_bytes, path, err);
    }
    free(values), free(rows);
    return st;
}

/* Generates tensor t and writes it at offset (its size is checked against expected). */
static bn_status fill_tensor(int fd, const char *path, const synth_tensor *t, uint64_t offset,
                             uint64_t expected, uint64_t seed, bn_error *err) {
    uint64_t state = hash_name(seed, t->name);
    bn_status st = BN_OK;
    if (t->kind == KIND_EMBED) return fill_rows(fd, path, t, offset, expected, state, err);
    if (t->kind != KIND_PROJECTION) { /* F32 vectors */
        if (t->ne[0] * sizeof(float) != expected)
            return bn_error_set(err, BN_ERR_FORMAT, "%s: %llu floats but the file has %llu bytes", t->name,
                                (unsigned long long)t->ne[0], (unsigned long long)expected);
        float *v = malloc((size_t)t->ne[0] * sizeof *v);
        if (!v) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %s", t->name);
        for (uint64_t i = 0; i < t->ne[0]; i++)
            v[i] = t->kind == KIND_NORM        ? (float)(1.0 + 0.05 * gaussian(&state))
                   : t->kind == KIND_PROJ_SCALE ? (float)(0.5 + 1.5 * uniform(&state))
                                                : (float)(1.0 + 7.0 * uniform(&state));
        st = write_at(fd, v, (size_t)t->ne[0] * sizeof *v, offset, path, err);
        free(v);
        return st;
    }
    size_t n = (size_t)(t->ne[0] * t->ne[1]);
    size_t bytes = 0;
    if ((st = bn_ternary_bytes(&bytes, t->type, n, err))) return bn_error_prefix(err, "%s: ", t->name);
    if (bytes != expected)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: %zu bytes packed but the file has %llu", t->name,
                            bytes, (unsigned long long)expected);
    int8_t *values = malloc(n);
    uint8_t *packed = malloc(bytes);
    if (!values || !packed) {
        free(values), free(packed);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %s", t->name);
    }
    for (size_t i = 0; i < n; i++) values[i] = (int8_t)((int)(((splitmix64(&state) >> 32) * 3) >> 32) - 1);
    float scale = (float)(0.8 / sqrt((double)t->ne[0]) * (0.9 + 0.2 * uniform(&state)));
    scale = bn_fp16_to_fp32(bn_fp32_to_fp16(scale)); /* the same number in fp16 and float32 */
    st = bn_ternary_pack(packed, t->type, values, n, scale, NULL, err);
    if (st == BN_OK) st = write_at(fd, packed, bytes, offset, path, err);
    else bn_error_prefix(err, "%s: ", t->name);
    free(values), free(packed);
    return st;
}

const char *bn_synth_chat_template(const char *name) {
    static const struct {
        const char *name, *text;
    } templates[] = {
        {"bitnet", "{#- BITNET chat format (as Microsoft's BitNet b1.58 reference code renders it) -#}"
                   "{{ bos_token }}{% for message in messages %}"
                   "{% if message['role'] == 'system' %}{{ 'System: ' + message['content'] + '<|eot_id|>' }}"
                   "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '<|eot_id|>' }}"
                   "{% else %}{{ 'Assistant: ' + message['content'] + '<|eot_id|>' }}{% endif %}{% endfor %}"
                   "{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}"},
        {"llama3", "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
                   "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
                   "{% endif %}"},
        {"chatml", "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                   "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
                   "{% endif %}"},
        {"falcon3", "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\\n' + "
                    "message['content'] + '\\n' }}{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + "
                    "message['content'] + '\\n' }}{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\\n' + "
                    "message['content'] + '</s>\\n' }}{% endif %}{% if loop.last and add_generation_prompt %}"
                    "{{ '<|assistant|>\\n' }}{% endif %}{% endfor %}"},
    };
    for (size_t i = 0; name && i < sizeof templates / sizeof templates[0]; i++)
        if (!strcmp(name, templates[i].name)) return templates[i].text;
    return NULL;
}

static bn_status count_json_vocab(const char *path, int *out, bn_error *err) {
    bn_hf_vocab v;
    bn_status st = bn_hf_vocab_load(&v, path, err);
    if (st != BN_OK) return st;
    *out = (int)v.n_tokens;
    bn_hf_vocab_free(&v);
    return BN_OK;
}

static bn_status add_metadata(bn_gguf_writer *w, const bn_synth_options *o, int n_vocab, bn_error *err) {
    bn_synth_arch arch_id = resolved_arch(o);
    const char *arch = arch_name(arch_id);
    char key[128];
    bn_status st;
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", arch, suffix), key)
    /* llama.cpp file types: MOSTLY_TQ1_0 36, MOSTLY_TQ2_0 37; bitnet.cpp MOSTLY_I2_S 40 */
    uint32_t file_type = o->format == BN_TYPE_I2_S ? 40 : o->format == BN_TYPE_TQ1_0 ? 36 : 37;
    uint32_t head = (uint32_t)head_size(o);
    const char *name = o->name ? o->name : arch_id == BN_SYNTH_ARCH_LLAMA ? "synthetic-llama" : "synthetic-bitnet";
    const char *chat_template = o->chat_template                     ? o->chat_template
                                : arch_id == BN_SYNTH_ARCH_BITNET_B158 ? bn_synth_chat_template("bitnet")
                                                                       : "";
    if ((st = bn_gguf_writer_add_string(w, "general.architecture", arch, err)) ||
        (st = bn_gguf_writer_add_string(w, "general.name", name, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("vocab_size"), (uint32_t)n_vocab, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("context_length"), (uint32_t)o->n_ctx, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("embedding_length"), (uint32_t)o->dim, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("block_count"), (uint32_t)o->n_layers, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("feed_forward_length"), (uint32_t)o->ffn_dim, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("rope.dimension_count"), head, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("attention.head_count"), (uint32_t)o->n_heads, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)o->n_kv_heads, err)))
        return st;
    if (separate_head_size(o) && ((st = bn_gguf_writer_add_u32(w, KEY("attention.key_length"), head, err)) ||
                                  (st = bn_gguf_writer_add_u32(w, KEY("attention.value_length"), head, err))))
        return st;
    if ((st = bn_gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), o->rms_eps, err)) ||
        (st = bn_gguf_writer_add_f32(w, KEY("rope.freq_base"), o->rope_base, err)) ||
        (st = bn_gguf_writer_add_u32(w, "general.file_type", file_type, err)))
        return st;
    if (arch_id == BN_SYNTH_ARCH_BITNET &&
        (st = bn_gguf_writer_add_string(w, KEY("hidden_activation"),
                                        resolved_activation(o) == BN_SYNTH_ACT_SILU ? "silu" : "relu2", err)))
        return st;
#undef KEY
    st = o->vocab_json ? bn_tokenizer_add_hf_json_metadata(w, o->vocab_json, err) : add_byte_vocab(w, n_vocab, err);
    if (st == BN_OK && chat_template[0])
        st = bn_gguf_writer_add_string(w, "tokenizer.chat_template", chat_template, err);
    if (st != BN_OK) return st;
    return bn_gguf_writer_add_u32(w, "general.quantization_version", 2, err);
}

bn_status bn_synth_write(const char *path, const bn_synth_options *o, bn_error *err) {
    bn_status st = bn_synth_validate(o, err);
    if (st != BN_OK) return st;
    int n_vocab = o->n_vocab;
    if (o->vocab_json) {
        int json_vocab = 0;
        if ((st = count_json_vocab(o->vocab_json, &json_vocab, err))) return st;
        if (n_vocab != 0 && n_vocab != json_vocab)
            return bn_error_set(err, BN_ERR_INVALID, "vocab %d differs from the %d tokens of %s", n_vocab,
                                json_vocab, o->vocab_json);
        n_vocab = json_vocab;
    } else if (n_vocab == 0) {
        n_vocab = BN_SYNTH_BYTE_VOCAB;
    }

    int n_tensors = 0;
    synth_tensor *list = list_tensors(o, n_vocab, &n_tensors);
    bn_gguf_writer *w = bn_gguf_writer_new();
    uint64_t *offsets = calloc((size_t)n_tensors, sizeof *offsets);
    uint64_t *sizes = calloc((size_t)n_tensors, sizeof *sizes);
    bn_gguf *written = NULL;
    int fd = -1;
    if (!list || !w || !offsets || !sizes) {
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory for the model's tensor list");
        goto done;
    }
    if ((st = add_metadata(w, o, n_vocab, err))) goto done;
    for (int i = 0; i < n_tensors; i++) {
        if (o->omit_tensor && !strcmp(list[i].name, o->omit_tensor)) continue;
        uint32_t dims = list[i].ne[1] == 1 ? 1 : 2;
        if ((st = bn_gguf_writer_add_tensor(w, list[i].name, list[i].type, dims, list[i].ne, NULL, err)))
            goto done;
    }
    if ((st = bn_gguf_writer_write(w, path, err))) goto done;

    /* Where the writer put each tensor, then the data into place. */
    if ((st = bn_gguf_open(path, &written, err))) goto done;
    for (int i = 0; i < n_tensors; i++) {
        const bn_gguf_tensor *t = bn_gguf_find_tensor(written, list[i].name);
        offsets[i] = t ? t->file_offset : 0;
        sizes[i] = t ? t->size : 0;
    }
    bn_gguf_close(written);
    fd = open(path, O_WRONLY);
    if (fd < 0) {
        st = bn_error_set(err, BN_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
        goto done;
    }
    for (int i = 0; i < n_tensors; i++) {
        if (sizes[i] == 0) continue; /* omitted on purpose */
        if ((st = fill_tensor(fd, path, &list[i], offsets[i], sizes[i], o->seed, err))) goto done;
        if (o->progress) o->progress(o->progress_user, (uint64_t)i + 1, (uint64_t)n_tensors);
    }
done:
    if (fd >= 0 && close(fd) != 0 && st == BN_OK)
        st = bn_error_set(err, BN_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    bn_gguf_writer_free(w);
    free(list), free(offsets), free(sizes);
    return st;
}
