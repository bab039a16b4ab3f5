/*
 * synth.c: writes synthetic BitNet b1.58 models (see synth.h).
 *
 * Design: the GGUF writer lays out the header, metadata and tensor table with every tensor's data
 * left as a hole (no memory, no disk blocks); the file is then reopened with the reader to learn
 * each tensor's offset, and the data is generated and written into place one tensor at a time
 * (the embedding in slices of rows). Each tensor (each embedding row) draws from its own seeded
 * generator, so the content depends only on the seed and the shape, never on the slicing.
 *
 * Weights look like a trained model's in scale: ternary codes uniform over {-1, 0, +1} (about a
 * third zeros) with a per-tensor scale near 0.8 / sqrt(fan-in) rounded to a value fp16 represents
 * exactly (so the I2_S float32 scale and the TQ formats' fp16 block scales are the same number),
 * norms N(1, 0.05), embedding N(0, 0.02).
 */
#include "model/synth.h"

#include "core/fp16.h"
#include "gguf/gguf.h"
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

/* ---- presets and checks ---- */

bn_status bn_synth_preset(bn_synth_options *out, const char *name, bn_error *err) {
    memset(out, 0, sizeof *out);
    out->n_ctx = 4096;
    out->rope_base = 500000.0f;
    out->seed = 1;
    out->format = BN_TYPE_I2_S;
    if (!strcmp(name, "tiny")) {
        out->n_layers = 2, out->dim = 256, out->ffn_dim = 768, out->n_heads = 4, out->n_kv_heads = 2;
    } else if (!strcmp(name, "small")) {
        out->n_layers = 4, out->dim = 512, out->ffn_dim = 1536, out->n_heads = 8, out->n_kv_heads = 2;
    } else if (!strcmp(name, "2b4t")) {
        out->n_layers = 30, out->dim = 2560, out->ffn_dim = 6912, out->n_heads = 20, out->n_kv_heads = 5;
        out->n_vocab = 128256;
    } else {
        return bn_error_set(err, BN_ERR_INVALID, "unknown preset '%s' (tiny, small, 2b4t)", name);
    }
    return BN_OK;
}

bn_status bn_synth_validate(const bn_synth_options *o, bn_error *err) {
    if (o->format != BN_TYPE_I2_S && o->format != BN_TYPE_TQ2_0 && o->format != BN_TYPE_TQ1_0)
        return bn_error_set(err, BN_ERR_INVALID, "format %u is not i2_s, tq2_0 or tq1_0", o->format);
    int block = o->format == BN_TYPE_I2_S ? BN_I2S_BLOCK : BN_TQ_BLOCK;
    if (o->n_layers < 1 || o->n_layers > 1024) return bn_error_set(err, BN_ERR_INVALID, "layers %d out of range [1, 1024]", o->n_layers);
    if (o->dim < block || o->dim > (1 << 16) || o->dim % block)
        return bn_error_set(err, BN_ERR_INVALID, "dim %d must be a multiple of %d in [%d, 65536] for %s", o->dim,
                            block, block, bn_quant_format_get(o->format)->name);
    if (o->ffn_dim < block || o->ffn_dim > (1 << 17) || o->ffn_dim % block)
        return bn_error_set(err, BN_ERR_INVALID, "ffn %d must be a multiple of %d in [%d, 131072] for %s",
                            o->ffn_dim, block, block, bn_quant_format_get(o->format)->name);
    if (o->n_heads < 1 || o->dim % o->n_heads || (o->dim / o->n_heads) % 2)
        return bn_error_set(err, BN_ERR_INVALID, "heads %d must divide dim %d into an even head size",
                            o->n_heads, o->dim);
    if (o->n_kv_heads < 1 || o->n_heads % o->n_kv_heads)
        return bn_error_set(err, BN_ERR_INVALID, "kv-heads %d must divide heads %d", o->n_kv_heads, o->n_heads);
    int kv_dim = o->dim / o->n_heads * o->n_kv_heads;
    if (kv_dim % block)
        return bn_error_set(err, BN_ERR_INVALID, "the K/V width %d (kv-heads x head size) must be a multiple of %d",
                            kv_dim, block);
    if (o->n_ctx < 1 || o->n_ctx > (1 << 24)) return bn_error_set(err, BN_ERR_INVALID, "ctx %d out of range", o->n_ctx);
    if (o->n_vocab < 0 || o->n_vocab > (1 << 22))
        return bn_error_set(err, BN_ERR_INVALID, "vocab %d out of range [0, 4194304]", o->n_vocab);
    if (!o->vocab_json && o->n_vocab != 0 && o->n_vocab < BN_SYNTH_BYTE_VOCAB)
        return bn_error_set(err, BN_ERR_INVALID, "vocab %d is smaller than the byte vocabulary (%d tokens)",
                            o->n_vocab, BN_SYNTH_BYTE_VOCAB);
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

typedef enum { KIND_EMBED, KIND_NORM, KIND_PROJECTION } tensor_kind;

typedef struct synth_tensor {
    char name[64];
    tensor_kind kind;
    uint32_t type;
    uint64_t ne[2]; /* ne[0] row length (fan-in), ne[1] rows */
} synth_tensor;

/* The official order: token_embd, then per block the 11 tensors, then output_norm. */
static synth_tensor *list_tensors(const bn_synth_options *o, int n_vocab, int *count) {
    int n = 2 + 11 * o->n_layers;
    synth_tensor *list = calloc((size_t)n, sizeof *list);
    if (!list) return NULL;
    int i = 0;
    uint64_t dim = (uint64_t)o->dim, ffn = (uint64_t)o->ffn_dim;
    uint64_t kv = (uint64_t)(o->dim / o->n_heads * o->n_kv_heads);
#define ADD(kind_, type_, ne0, ne1, ...)                                         \
    do {                                                                          \
        snprintf(list[i].name, sizeof list[i].name, __VA_ARGS__);                 \
        list[i].kind = kind_, list[i].type = type_;                               \
        list[i].ne[0] = ne0, list[i].ne[1] = ne1;                                 \
        i++;                                                                      \
    } while (0)
    ADD(KIND_EMBED, BN_TYPE_F16, dim, (uint64_t)n_vocab, "token_embd.weight");
    for (int l = 0; l < o->n_layers; l++) {
        ADD(KIND_NORM, BN_TYPE_F32, dim, 1, "blk.%d.attn_norm.weight", l);
        ADD(KIND_PROJECTION, o->format, dim, dim, "blk.%d.attn_q.weight", l);
        ADD(KIND_PROJECTION, o->format, dim, kv, "blk.%d.attn_k.weight", l);
        ADD(KIND_PROJECTION, o->format, dim, kv, "blk.%d.attn_v.weight", l);
        ADD(KIND_NORM, BN_TYPE_F32, dim, 1, "blk.%d.attn_sub_norm.weight", l);
        ADD(KIND_PROJECTION, o->format, dim, dim, "blk.%d.attn_output.weight", l);
        ADD(KIND_NORM, BN_TYPE_F32, dim, 1, "blk.%d.ffn_norm.weight", l);
        ADD(KIND_PROJECTION, o->format, dim, ffn, "blk.%d.ffn_gate.weight", l);
        ADD(KIND_PROJECTION, o->format, dim, ffn, "blk.%d.ffn_up.weight", l);
        ADD(KIND_NORM, BN_TYPE_F32, ffn, 1, "blk.%d.ffn_sub_norm.weight", l);
        ADD(KIND_PROJECTION, o->format, ffn, dim, "blk.%d.ffn_down.weight", l);
    }
    ADD(KIND_NORM, BN_TYPE_F32, dim, 1, "output_norm.weight");
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

/* Generates tensor t and writes it at offset (its size is checked against expected). */
static bn_status fill_tensor(int fd, const char *path, const synth_tensor *t, uint64_t offset,
                             uint64_t expected, uint64_t seed, bn_error *err) {
    uint64_t state = hash_name(seed, t->name);
    bn_status st = BN_OK;
    if (t->kind == KIND_NORM) {
        float *v = malloc((size_t)t->ne[0] * sizeof *v);
        if (!v) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %s", t->name);
        for (uint64_t i = 0; i < t->ne[0]; i++) v[i] = (float)(1.0 + 0.05 * gaussian(&state));
        st = write_at(fd, v, (size_t)t->ne[0] * sizeof *v, offset, path, err);
        free(v);
        return st;
    }
    if (t->kind == KIND_EMBED) {
        const uint64_t slice = 1024; /* rows per write: memory stays small for any vocabulary */
        uint16_t *rows = malloc((size_t)(slice * t->ne[0]) * sizeof *rows);
        if (!rows) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %s", t->name);
        for (uint64_t r0 = 0; r0 < t->ne[1] && st == BN_OK; r0 += slice) {
            uint64_t n = t->ne[1] - r0 < slice ? t->ne[1] - r0 : slice;
            for (uint64_t r = 0; r < n; r++) {
                uint64_t row_state = state ^ splitmix64(&(uint64_t){r0 + r});
                uint16_t *row = rows + r * t->ne[0];
                for (uint64_t c = 0; c < t->ne[0]; c += 2) { /* ne[0] is a multiple of 128 */
                    double pair[2];
                    gaussian_pair(&row_state, pair);
                    row[c] = bn_fp32_to_fp16((float)(0.02 * pair[0]));
                    row[c + 1] = bn_fp32_to_fp16((float)(0.02 * pair[1]));
                }
            }
            st = write_at(fd, rows, (size_t)(n * t->ne[0]) * sizeof *rows,
                          offset + r0 * t->ne[0] * sizeof *rows, path, err);
        }
        free(rows);
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

static bn_status count_json_vocab(const char *path, int *out, bn_error *err) {
    bn_hf_vocab v;
    bn_status st = bn_hf_vocab_load(&v, path, err);
    if (st != BN_OK) return st;
    *out = (int)v.n_tokens;
    bn_hf_vocab_free(&v);
    return BN_OK;
}

static bn_status add_metadata(bn_gguf_writer *w, const bn_synth_options *o, int n_vocab, bn_error *err) {
    const char *arch = o->format == BN_TYPE_I2_S ? "bitnet-b1.58" : "bitnet";
    char key[128];
    bn_status st;
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", arch, suffix), key)
    /* llama.cpp file types: MOSTLY_TQ1_0 36, MOSTLY_TQ2_0 37; bitnet.cpp MOSTLY_I2_S 40 */
    uint32_t file_type = o->format == BN_TYPE_I2_S ? 40 : o->format == BN_TYPE_TQ1_0 ? 36 : 37;
    if ((st = bn_gguf_writer_add_string(w, "general.architecture", arch, err)) ||
        (st = bn_gguf_writer_add_string(w, "general.name", "synthetic-bitnet", err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("vocab_size"), (uint32_t)n_vocab, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("context_length"), (uint32_t)o->n_ctx, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("embedding_length"), (uint32_t)o->dim, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("block_count"), (uint32_t)o->n_layers, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("feed_forward_length"), (uint32_t)o->ffn_dim, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("rope.dimension_count"), (uint32_t)(o->dim / o->n_heads), err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("attention.head_count"), (uint32_t)o->n_heads, err)) ||
        (st = bn_gguf_writer_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)o->n_kv_heads, err)) ||
        (st = bn_gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f, err)) ||
        (st = bn_gguf_writer_add_f32(w, KEY("rope.freq_base"), o->rope_base, err)) ||
        (st = bn_gguf_writer_add_u32(w, "general.file_type", file_type, err)))
        return st;
    if (o->format != BN_TYPE_I2_S && (st = bn_gguf_writer_add_string(w, KEY("hidden_activation"), "relu2", err)))
        return st;
#undef KEY
    st = o->vocab_json ? bn_tokenizer_add_hf_json_metadata(w, o->vocab_json, err) : add_byte_vocab(w, n_vocab, err);
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
