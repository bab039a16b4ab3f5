/*
 * seed_gen.c: writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/seed-*), so the
 * committed seeds can be regenerated and explained: `build-fuzz/fuzz/bitnet_fuzz_seeds DIR`
 * (scripts/fuzz.sh --seeds does it for fuzz/corpus).
 *
 * Design: GGUF seeds are written with the project's own writer (gguf/gguf.h): an empty file of
 * each version, the small example with every metadata type and tensor format, a one-layer
 * bitnet-b1.58 model small enough to mutate (dim 128, vocab 4, about 30 KB) and the tokenizer
 * metadata of tests/data/oracle-a without tensors. The other seeds are byte strings in the input
 * layout each target documents at its top (a choice byte, sizes, then data), one per edge case:
 * empty, maximal sizes, boundary values, special floats. Regression inputs from fuzzing are
 * named regress-* and are not touched here.
 */
#include "bitnet.h"
#include "core/fp16.h"
#include "gguf/gguf.h"
#include "gguf/gguf_example.h"
#include "quant/quant_format.h"
#include "quant/ternary.h"
#include "tokenizer/tokenizer.h"
#include "tools/receipt.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *out_dir;
static int failures;

/* A growable byte string for building one seed. */
typedef struct buf {
    uint8_t data[65536];
    size_t len;
} buf;

static void put(buf *b, const void *p, size_t n) {
    if (b->len + n > sizeof b->data) abort();
    memcpy(b->data + b->len, p, n);
    b->len += n;
}
static void put8(buf *b, uint8_t v) { put(b, &v, 1); }
static void put16(buf *b, uint16_t v) { put(b, &v, 2); }
static void put32(buf *b, uint32_t v) { put(b, &v, 4); }
static void putf(buf *b, float f) { /* bn_fuzz_float: selector 0 = raw bits */
    uint32_t bits;
    memcpy(&bits, &f, 4);
    put8(b, 0);
    put32(b, bits);
}
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }
static void chunk(buf *b, const char *s) { /* bn_fuzz_chunk: length byte, bytes */
    put8(b, (uint8_t)strlen(s));
    puts_(b, s);
}

static char *target_path(const char *target, const char *name) {
    static char path[4096];
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", out_dir, target);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "seed_gen: cannot create %s: %s\n", dir, strerror(errno));
        exit(1);
    }
    snprintf(path, sizeof path, "%s/seed-%s", dir, name);
    return path;
}

static void write_seed(const char *target, const char *name, const buf *b) {
    const char *path = target_path(target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0) {
        fprintf(stderr, "seed_gen: cannot write %s\n", path);
        exit(1);
    }
}

static void check(bn_status st, const bn_error *err, const char *what) {
    if (st != BN_OK) {
        fprintf(stderr, "seed_gen: %s: %s\n", what, err->message);
        failures++;
    }
}

/* ---- gguf_open ---- */

static void gguf_seeds(const char *source_dir) {
    bn_error err;
    for (uint32_t version = 2; version <= 3; version++) {
        bn_gguf_writer *w = bn_gguf_writer_new();
        bn_gguf_writer_set_version(w, version);
        if (version == 2) check(bn_gguf_writer_add_string(w, "general.name", "v2", &err), &err, "v2 key");
        check(bn_gguf_writer_write(w, target_path("gguf_open", version == 2 ? "v2-one-key.gguf" : "v3-empty.gguf"), &err),
              &err, "empty gguf");
        bn_gguf_writer_free(w);
    }
    check(bn_gguf_example_write_small(target_path("gguf_open", "example-small.gguf"), &err), &err, "example");

    /* a one-layer bitnet-b1.58 model: dim 128, 2 heads, 1 KV head, ffn 128, vocab 4 */
    enum { DIM = 128, FFN = 128, KV = 64, VOCAB = 4 };
    bn_gguf_writer *w = bn_gguf_writer_new();
    const char *a = "bitnet-b1.58";
    check(bn_gguf_writer_add_string(w, "general.architecture", a, &err), &err, "arch");
    check(bn_gguf_writer_add_u32(w, "bitnet-b1.58.embedding_length", DIM, &err), &err, "dim");
    check(bn_gguf_writer_add_u32(w, "bitnet-b1.58.block_count", 1, &err), &err, "layers");
    check(bn_gguf_writer_add_u32(w, "bitnet-b1.58.feed_forward_length", FFN, &err), &err, "ffn");
    check(bn_gguf_writer_add_u32(w, "bitnet-b1.58.attention.head_count", 2, &err), &err, "heads");
    check(bn_gguf_writer_add_u32(w, "bitnet-b1.58.attention.head_count_kv", 1, &err), &err, "kv heads");
    check(bn_gguf_writer_add_u32(w, "bitnet-b1.58.context_length", 64, &err), &err, "ctx");
    check(bn_gguf_writer_add_f32(w, "bitnet-b1.58.attention.layer_norm_rms_epsilon", 1e-5f, &err), &err, "eps");
    check(bn_gguf_writer_add_f32(w, "bitnet-b1.58.rope.freq_base", 500000.0f, &err), &err, "rope");
    static uint16_t embd[VOCAB * DIM];
    static float norm[FFN];
    for (int i = 0; i < VOCAB * DIM; i++) embd[i] = bn_fp32_to_fp16((float)((i * 7) % 13 - 6) / 8.0f);
    for (int i = 0; i < FFN; i++) norm[i] = 1.0f;
    static int8_t values[DIM * FFN];
    for (int i = 0; i < DIM * FFN; i++) values[i] = (int8_t)((i * 5) % 3 - 1);
    static uint8_t i2s_big[DIM * DIM / 4 + 32], i2s_kv[DIM * KV / 4 + 32];
    check(bn_ternary_pack(i2s_big, BN_TYPE_I2_S, values, DIM * DIM, 0.5f, NULL, &err), &err, "pack");
    check(bn_ternary_pack(i2s_kv, BN_TYPE_I2_S, values, DIM * KV, 0.25f, NULL, &err), &err, "pack");
    uint64_t ne_embd[2] = {DIM, VOCAB}, ne_norm[1] = {DIM}, ne_ffn_norm[1] = {FFN}, ne_sq[2] = {DIM, DIM},
             ne_kv[2] = {DIM, KV};
    check(bn_gguf_writer_add_tensor(w, "token_embd.weight", BN_TYPE_F16, 2, ne_embd, embd, &err), &err, "embd");
    check(bn_gguf_writer_add_tensor(w, "output_norm.weight", BN_TYPE_F32, 1, ne_norm, norm, &err), &err, "onorm");
    struct { const char *name; int kind; } layer[] = {
        {"attn_norm", 0}, {"attn_q", 2}, {"attn_k", 3}, {"attn_v", 3}, {"attn_sub_norm", 0}, {"attn_output", 2},
        {"ffn_norm", 0}, {"ffn_gate", 2}, {"ffn_up", 2}, {"ffn_sub_norm", 1}, {"ffn_down", 2}};
    for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "blk.0.%s.weight", layer[i].name);
        bn_status st;
        switch (layer[i].kind) {
        case 0: st = bn_gguf_writer_add_tensor(w, name, BN_TYPE_F32, 1, ne_norm, norm, &err); break;
        case 1: st = bn_gguf_writer_add_tensor(w, name, BN_TYPE_F32, 1, ne_ffn_norm, norm, &err); break;
        case 2: st = bn_gguf_writer_add_tensor(w, name, BN_TYPE_I2_S, 2, ne_sq, i2s_big, &err); break;
        default: st = bn_gguf_writer_add_tensor(w, name, BN_TYPE_I2_S, 2, ne_kv, i2s_kv, &err); break;
        }
        check(st, &err, name);
    }
    check(bn_gguf_writer_write(w, target_path("gguf_open", "tiny-model-i2s.gguf"), &err), &err, "tiny model");
    bn_gguf_writer_free(w);

    /* the oracle-a tokenizer metadata, no tensors */
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/oracle-a/model.gguf", source_dir);
    bn_gguf *g = NULL;
    check(bn_gguf_open(path, &g, &err), &err, path);
    if (!g) return;
    w = bn_gguf_writer_new();
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const bn_gguf_kv *kv = &g->kvs[i];
        if (kv->key.len < 10 || memcmp(kv->key.data, "tokenizer.", 10) != 0) continue;
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.data);
        check(bn_gguf_writer_add_value(w, key, &kv->value, &err), &err, key);
    }
    check(bn_gguf_writer_write(w, target_path("gguf_open", "tokenizer-oracle-a.gguf"), &err), &err, "tokenizer");
    bn_gguf_writer_free(w);
    bn_gguf_close(g);
}

/* ---- gguf_metadata (layout: fuzz_gguf_metadata.c) ---- */

static void metadata_kv(buf *b, uint8_t type, const char *key) {
    put8(b, type);
    put8(b, (uint8_t)strlen(key)); /* bn_fuzz_range(0, 40): one byte */
    puts_(b, key);
}

static void metadata_seeds(void) {
    buf b = {.len = 0};
    write_seed("gguf_metadata", "empty", &b);
    put8(&b, 0); /* version 3 */
    for (uint8_t t = 0; t < 13; t++) {
        char key[32];
        snprintf(key, sizeof key, "general.type%u", t);
        metadata_kv(&b, t, key);
        if (t == 8) chunk(&b, "h\xc3\xa9llo\x00\xff");
        else if (t == 9) { put8(&b, 8); put8(&b, 3); chunk(&b, "a"); chunk(&b, ""); chunk(&b, "\xe6\x97\xa5"); }
        else for (int i = 0; i < 8; i++) put8(&b, (uint8_t)(0x80 + i * 17));
    }
    put8(&b, 0xff);
    write_seed("gguf_metadata", "every-type", &b);
    b.len = 0;
    put8(&b, 1); /* version 2 */
    metadata_kv(&b, 9, "nested");
    for (int depth = 0; depth < 6; depth++) { put8(&b, 9); put8(&b, 2); }
    put8(&b, 0xff);
    write_seed("gguf_metadata", "nested-arrays-v2", &b);
    b.len = 0;
    put8(&b, 0);
    metadata_kv(&b, 4, "general.alignment");
    put32(&b, 64);
    metadata_kv(&b, 7, "tokenizer.ggml.add_bos_token");
    put8(&b, 1);
    put8(&b, 0xff);
    put8(&b, 1); /* tensor */
    put8(&b, 4); /* I2_S */
    put8(&b, 1); put8(&b, 2);
    put8(&b, 1); /* with data */
    for (int i = 0; i < 96; i++) put8(&b, (uint8_t)(i * 37));
    write_seed("gguf_metadata", "alignment-64-tensor", &b);
}

/* ---- tokenizer targets ---- */

static void tokenizer_seeds(const char *source_dir) {
    static const char *texts[] = {
        "Hello, world! The quick brown fox jumps over the lazy dog.",
        "h\xc3\xa9llo w\xc3\xb6rld \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x99\x82",
        "\xff\xfe\xc3 \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf",
        "<|begin_of_text|>user<|eot_id|>I'm here, you'll see 12345 6789<|end_of_text|>",
        "\n\n\t   x  \r\n  ",
        "",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        buf b = {.len = 0};
        /* flags: add_bos, parse_special, pre-tokenizer (bits 6-7) */
        put8(&b, (uint8_t)((i == 3 ? 6 : i % 2 ? 2 : 0) | (i % 3) << 6));
        puts_(&b, texts[i]);
        char name[32];
        snprintf(name, sizeof name, "text-%zu", i);
        write_seed("tokenizer_encode", name, &b);
        b.len = 0;
        puts_(&b, texts[i]); /* fuzz_tokenizer.c takes the text as it is */
        write_seed("tokenizer", name, &b);
    }
    buf b = {.len = 0};
    put8(&b, 1 | (3 << 3)); /* code points, fixed list of 3 */
    uint32_t cps[] = {0x41, 0xE9, 0x65E5, 0x1F642, 0x10FFFF, 0xFFFD, 0x0, 0x300};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        put8(&b, cps[i] & 0xff);
        put8(&b, cps[i] >> 8 & 0xff);
        put8(&b, cps[i] >> 16 & 0xff);
    }
    write_seed("tokenizer_encode", "code-points", &b);

    /* decode: ids of split multi-byte characters, specials, out-of-range ids */
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/oracle-a/model.gguf", source_dir);
    bn_gguf *g = NULL;
    bn_tokenizer *tok = NULL;
    bn_error err;
    check(bn_gguf_open(path, &g, &err), &err, path);
    if (!g) return;
    check(bn_tokenizer_from_gguf(&tok, g, NULL, &err), &err, "tokenizer");
    bn_gguf_close(g);
    if (!tok) return;
    for (int v = 0; v < 4; v++) {
        b.len = 0;
        put8(&b, (uint8_t)v); /* skip_special, replace */
        bn_tokens ids = {0};
        check(bn_tokenizer_encode(tok, texts[v % 4], strlen(texts[v % 4]), true, true, &ids, &err), &err, "encode");
        for (size_t i = 0; i < ids.n; i++) put16(&b, (uint16_t)ids.ids[i]);
        bn_tokens_free(&ids);
        if (v == 3) {
            put16(&b, 0xF000);
            put32(&b, (uint32_t)INT32_MIN);
            put16(&b, 0xF000);
            put32(&b, 759);
            put16(&b, 758);
        }
        char name[32];
        snprintf(name, sizeof name, "ids-%d", v);
        write_seed("tokenizer_decode", name, &b);
    }
    bn_tokenizer_free(tok);
}

/* ---- chat_render (layout: fuzz_chat_render.c) ---- */

static void chat_seeds(void) {
    for (uint8_t f = 0; f < 4; f++) {
        buf b = {.len = 0};
        put8(&b, (uint8_t)(f | 0x80));
        put8(&b, 4);
        put8(&b, 0); chunk(&b, "  You are helpful.\n");
        put8(&b, 1); chunk(&b, "Hi <|eot_id|> there");
        put8(&b, 2); chunk(&b, "Hello!");
        put8(&b, 3); chunk(&b, "{\"x\": 1}");
        chunk(&b, f == 1 ? "llama-3.1" : "chatml");
        char name[32];
        snprintf(name, sizeof name, "conversation-%u", f);
        write_seed("chat_render", name, &b);
    }
    buf b = {.len = 0};
    put8(&b, 0);
    put8(&b, 2);
    put8(&b, 1); chunk(&b, "ok");
    put8(&b, 250); put8(&b, 4); puts_(&b, "user"); chunk(&b, "wrong case");
    chunk(&b, "nope");
    write_seed("chat_render", "unknown-role", &b);
}

/* ---- sampler (layout: fuzz_sampler.c) ---- */

static void sampler_seeds(void) {
    buf b = {.len = 0};
    put8(&b, 1); /* temperature set */
    put16(&b, 7); /* n_vocab 8 */
    putf(&b, 0.0f);
    put8(&b, 1); put8(&b, 3); put8(&b, 0); put8(&b, 0); put8(&b, 0);
    for (int i = 0; i < 8; i++) putf(&b, (float)(i % 3));
    write_seed("sampler", "greedy-ties", &b);
    b.len = 0;
    put8(&b, 31); put16(&b, 15);
    putf(&b, 0.8f); put8(&b, 5); putf(&b, 0.9f); putf(&b, 0.05f);
    putf(&b, 1.1f); putf(&b, 0.5f); putf(&b, -0.5f); put8(&b, 10);
    put8(&b, 42); put8(&b, 6); put8(&b, 2);
    put8(&b, 3); putf(&b, -INFINITY); put8(&b, 5); putf(&b, INFINITY);
    put8(&b, 3); put8(&b, 1); put8(&b, 2); put8(&b, 1);
    put8(&b, 1); for (int i = 0; i < 8; i++) put8(&b, 0xA5);
    for (int i = 0; i < 16; i++) putf(&b, i % 4 == 0 ? NAN : i % 4 == 1 ? -INFINITY : (float)i);
    write_seed("sampler", "full-pipeline-nan-inf", &b);
    b.len = 0;
    put8(&b, 0xE0);
    put8(&b, 2); put8(&b, 5); puts_(&b, "<|eot"); put8(&b, 3); puts_(&b, "END");
    puts_(&b, "some text then <|eo");
    write_seed("sampler", "stop-scan", &b);
}

/* ---- receipt_verify ---- */

static void receipt_seeds(void) {
    bn_receipt_kernel kernels[] = {{"cpu.i2s.gemv.avx2", 100, 1.5}, {"cpu.rmsnorm.avx2", 20, 0.1}};
    bn_receipt_tensor_type types[] = {{"i2_s", 7}, {"f16", 1}, {"f32", 4}};
    bn_receipt r;
    memset(&r, 0, sizeof r);
    r.timestamp = "2026-11-26T12:00:00Z";
    r.engine_version = "0.1.0";
    r.git_commit = "badd1aa";
    r.model_path = "tests/data/oracle-a/model.gguf";
    r.model_sha256 = "dcf915ce7dc09ae02b5c39911bc2c9106524202ab0afb78761fb08020927bc47";
    r.architecture = "bitnet-b1.58";
    r.parameter_count = 1600000;
    r.model_file_bytes = 819648;
    r.tensor_types = types;
    r.n_tensor_types = 3;
    r.backend = "cpu";
    r.compute_path = "real";
    r.cpu_features = "avx2 fma f16c";
    r.isa = "avx2";
    r.threads = 2;
    r.kernels = kernels;
    r.n_kernels = 2;
    r.pp = (bn_receipt_result){true, 64, 3, 900.0, 12.5};
    r.tg = (bn_receipt_result){true, 32, 3, 80.0, 1.5};
    r.peak_rss_bytes = 50000000;
    r.seed = 1;
    r.bandwidth = (bn_receipt_bandwidth){true, 500000, 0.04, 10.0, 1 << 28};
    char *json = NULL;
    bn_error err;
    check(bn_receipt_to_json(&json, &r, &err), &err, "receipt");
    if (json) {
        buf b = {.len = 0};
        puts_(&b, json);
        write_seed("receipt_verify", "valid-cpu.json", &b);
        free(json);
    }
    buf b = {.len = 0};
    puts_(&b, "{\"schema_version\": \"1.0.0\", \"kernels\": [{\"id\": \"cuda.x\", \"calls\": 1e400}]");
    write_seed("receipt_verify", "truncated.json", &b);
    b.len = 0;
    put8(&b, 0xC0);
    for (int i = 0; i < 64; i++) put8(&b, (uint8_t)(i * 29 + 3));
    write_seed("receipt_verify", "structured", &b);
}

/* ---- kernels ---- */

static void quant_seeds(void) {
    for (uint8_t t = 0; t < 3; t++)
        for (int mode = 0; mode < 2; mode++) {
            buf b = {.len = 0};
            put8(&b, t);
            put8(&b, mode ? 1 : 7); /* 2 or 8 blocks */
            put8(&b, mode ? 0x81 : 0x01);
            for (int i = 0; i < 8 * 66; i++) put8(&b, (uint8_t)(mode ? i * 91 : i * 13));
            char name[32];
            snprintf(name, sizeof name, "%s-%s", t == 0 ? "i2s" : t == 1 ? "tq2" : "tq1", mode ? "bytes" : "values");
            write_seed("quant_roundtrip", name, &b);
        }
}

static void kernel_seeds(void) {
    static const char *ops[] = {"quantize", "ternary-i2s", "ternary-tq", "f16-matmul", "int8-matmul", "rmsnorm",
                                "rope", "relu2-mul", "silu-mul", "add", "activation", "softmax", "attention",
                                "embedding-batchnorm"};
    for (uint8_t op = 0; op < 14; op++) {
        buf b = {.len = 0};
        put8(&b, op);
        if (op == 1 || op == 2) put8(&b, op == 1 ? 0 : 1);
        for (int i = 0; i < 600; i++) put8(&b, (uint8_t)(i * 97 + op));
        write_seed("kernel_differential", ops[op], &b);
    }
}

static void conv_pool_seeds(void) {
    /* conv1d: a whole-block shape (4 in x 8 out x kernel 4 = 128 weights), and boundary shapes */
    int shapes[][7] = {{4, 8, 16, 4, 1, 0, 1}, {4, 8, 5, 4, 2, 3, 2}, {2, 4, 1, 1, 1, 0, 1}, {8, 8, 64, 8, 4, 4, 4}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        buf b = {.len = 0};
        put8(&b, 0);
        int lo[7] = {1, 1, 1, 1, 1, 0, 1};
        for (int k = 0; k < 7; k++) put8(&b, (uint8_t)(shapes[s][k] - lo[k]));
        for (int i = 0; i < 32; i++) put8(&b, (uint8_t)(i * 45));
        putf(&b, 0.75f);
        put8(&b, 0);
        for (int i = 0; i < 512; i++) put8(&b, (uint8_t)(i * 7 + 200));
        char name[32];
        snprintf(name, sizeof name, "shape-%zu", s);
        write_seed("conv1d_quantized", name, &b);
    }
    buf b = {.len = 0};
    put8(&b, 0xF0);
    for (int k = 0; k < 7; k++) { put8(&b, 0); put8(&b, (uint8_t)(k + 3)); }
    write_seed("conv1d_quantized", "extreme-sizes", &b);

    /* pooling: kernel = padded input, padding = kernel - 1, stride past the end, max and avg */
    int pools[][5] = {{2, 5, 7, 1, 1}, {3, 10, 4, 3, 3}, {1, 3, 3, 6, 0}, {6, 80, 12, 1, 6}};
    for (size_t s = 0; s < sizeof pools / sizeof pools[0]; s++)
        for (int avg = 0; avg < 2; avg++) {
            b.len = 0;
            put8(&b, (uint8_t)avg);
            int lo[5] = {1, 1, 1, 1, 0};
            for (int k = 0; k < 5; k++) put8(&b, (uint8_t)(pools[s][k] - lo[k]));
            for (int i = 0; i < 300; i++) put8(&b, (uint8_t)(i * 53 + 1));
            char name[32];
            snprintf(name, sizeof name, "%s-%zu", avg ? "avg" : "max", s);
            write_seed("pooling_ops", name, &b);
        }
    b.len = 0;
    put8(&b, 0xF1);
    for (int k = 0; k < 5; k++) { put8(&b, 0); put8(&b, (uint8_t)(k + 4)); }
    write_seed("pooling_ops", "extreme-sizes", &b);
}

static void embedding_softmax_rope_seeds(void) {
    uint8_t sels[] = {0, 1, 2, 33, 70, 200};
    const char *names[] = {"id-minus-1", "id-int32-min", "id-int32-max", "id-one-past", "id-raw", "id-in-range"};
    for (size_t s = 0; s < sizeof sels; s++) {
        buf b = {.len = 0};
        put8(&b, 7); put8(&b, 16); put8(&b, sels[s]);
        if (sels[s] >= 64 && sels[s] < 96) put32(&b, 0x80000005u);
        else if (sels[s] >= 96) put8(&b, 5);
        put8(&b, 0);
        for (int i = 0; i < 8 * 16; i++) { put8(&b, i % 5 == 0 ? 0 : 100); put16(&b, (uint16_t)(0x7C00 + i * 3)); }
        write_seed("embedding_table_lookup", names[s], &b);
    }
    for (uint8_t style = 0; style < 4; style++) {
        buf b = {.len = 0};
        put8(&b, style);
        put16(&b, 37);
        for (int i = 0; i < 600; i++) put8(&b, (uint8_t)(i * 61 + style));
        char name[32];
        snprintf(name, sizeof name, "style-%u", style);
        write_seed("softmax_extreme_values", name, &b);
    }
    for (uint8_t p = 0; p < 10; p++) {
        buf b = {.len = 0};
        put8(&b, p); /* edge position p */
        put8(&b, 1); put8(&b, 63); put8(&b, 0); put8(&b, p & 1 ? 150 : 50); put8(&b, p < 5 ? 0 : 200);
        for (int i = 0; i < 600; i++) put8(&b, (uint8_t)(i * 29 + p));
        char name[32];
        snprintf(name, sizeof name, "position-%u", p);
        write_seed("rope_extreme_positions", name, &b);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bitnet_fuzz_seeds CORPUS_DIR SOURCE_DIR\n");
        return 2;
    }
    out_dir = argv[1];
    mkdir(out_dir, 0755);
    gguf_seeds(argv[2]);
    metadata_seeds();
    tokenizer_seeds(argv[2]);
    chat_seeds();
    sampler_seeds();
    receipt_seeds();
    quant_seeds();
    kernel_seeds();
    conv_pool_seeds();
    embedding_softmax_rope_seeds();
    if (failures) fprintf(stderr, "seed_gen: %d seeds failed\n", failures);
    return failures ? 1 : 0;
}
