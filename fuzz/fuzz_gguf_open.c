/*
 * fuzz_gguf_open.c: the whole GGUF load on arbitrary bytes: bn_gguf_open_memory's validation,
 * then, when it accepts the file, everything a model load does with it (the model's config and
 * tensor checks, the tokenizer from its metadata, the chat-format choice).
 *
 * Properties beyond "no crash, no sanitizer report":
 *   - a failure fills the error (same code, non-empty message) and returns no object;
 *   - an accepted file: version 2 or 3, power-of-two alignment, an aligned data section; every
 *     tensor has 1..4 dims with positive ne whose product is n_elements, the size the format
 *     table gives, an aligned offset, data inside the buffer and after the header, no two
 *     tensors overlap, names are unique and found by lookup; every key is unique and found,
 *     every string, array and nested array lies inside the buffer (all bytes are read, so ASan
 *     sees any escape), typed getters agree with the stored value;
 *   - the model's loader either accepts (then its config is consistent with the tensors) or
 *     returns an error, as does the tokenizer.
 */
#include "bitnet.h"
#include "chat/chat.h"
#include "fuzz_input.h"
#include "gguf/gguf.h"
#include "model/model_internal.h" /* the loader's config + tensor checks, without a file */
#include "quant/quant_format.h"
#include "tokenizer/tokenizer.h"

static const uint8_t *g_base;
static size_t g_size;
static volatile uint8_t g_sink;

/* Every byte of [p, p + n) lies in the input buffer; reads them all. */
static void touch(const void *p, uint64_t n, const char *what) {
    const uint8_t *b = p;
    if (n == 0) return;
    BN_FUZZ_CHECK(b >= g_base && (uint64_t)(b - g_base) <= g_size && n <= g_size - (uint64_t)(b - g_base),
                  "%s: [%p, +%llu) is outside the %zu-byte buffer", what, p, (unsigned long long)n,
                  g_size);
    uint8_t acc = 0;
    for (uint64_t i = 0; i < n; i++) acc ^= b[i];
    g_sink = acc;
}

static void check_value(const bn_gguf_value *v, unsigned depth) {
    BN_FUZZ_CHECK(depth <= BN_GGUF_MAX_ARRAY_DEPTH + 1, "array nesting %u", depth);
    BN_FUZZ_CHECK(v->type < BN_GGUF_TYPE_COUNT, "value type %d", (int)v->type);
    if (v->type == BN_GGUF_STRING) {
        touch(v->as.str.data, v->as.str.len, "string value");
        return;
    }
    if (v->type != BN_GGUF_ARRAY) return;
    const bn_gguf_array *a = &v->as.arr;
    BN_FUZZ_CHECK(a->elem_type < BN_GGUF_TYPE_COUNT, "array element type %d", (int)a->elem_type);
    if (a->elem_type == BN_GGUF_STRING) {
        BN_FUZZ_CHECK(a->count == 0 || a->strings, "string array without strings");
        /* each string costs at least its 8-byte length in the file */
        BN_FUZZ_CHECK(a->count <= g_size / 8, "string array count %llu", (unsigned long long)a->count);
        for (uint64_t i = 0; i < a->count; i++) touch(a->strings[i].data, a->strings[i].len, "array string");
    } else if (a->elem_type == BN_GGUF_ARRAY) {
        BN_FUZZ_CHECK(a->count == 0 || a->items, "nested array without items");
        BN_FUZZ_CHECK(a->count <= g_size / 12, "nested array count %llu", (unsigned long long)a->count);
        for (uint64_t i = 0; i < a->count; i++) {
            BN_FUZZ_CHECK(a->items[i].type == BN_GGUF_ARRAY, "nested item of type %d", (int)a->items[i].type);
            check_value(&a->items[i], depth + 1);
        }
    } else {
        size_t es = bn_gguf_type_size(a->elem_type);
        BN_FUZZ_CHECK(es > 0, "numeric array of element size 0");
        BN_FUZZ_CHECK(a->count <= g_size / es, "array count %llu", (unsigned long long)a->count);
        touch(a->raw, a->count * es, "array data");
        for (uint64_t i = 0; i < a->count; i++) {
            uint64_t u = bn_gguf_array_u64(a, i);
            int64_t s = bn_gguf_array_i64(a, i);
            double f = bn_gguf_array_f64(a, i);
            if (a->elem_type == BN_GGUF_UINT8) BN_FUZZ_CHECK(u == a->raw[i], "u8 element %llu", (unsigned long long)i);
            if (a->elem_type == BN_GGUF_BOOL) BN_FUZZ_CHECK(a->raw[i] <= 1, "bool element %u", a->raw[i]);
            (void)s;
            (void)f;
        }
    }
}

/* Typed getters must agree with the value they read. */
static void check_getters(const bn_gguf *g, const bn_gguf_kv *kv, const char *key) {
    uint64_t u;
    int64_t s;
    float f;
    bool b;
    bn_gguf_string str;
    const bn_gguf_array *arr;
    bn_error err;
    const bn_gguf_value *v = &kv->value;
    bool is_u = v->type == BN_GGUF_UINT8 || v->type == BN_GGUF_UINT16 || v->type == BN_GGUF_UINT32 ||
                v->type == BN_GGUF_UINT64;
    bool is_s = v->type == BN_GGUF_INT8 || v->type == BN_GGUF_INT16 || v->type == BN_GGUF_INT32 ||
                v->type == BN_GGUF_INT64;
    if (bn_gguf_get_u64(g, key, &u, &err) == BN_OK) {
        BN_FUZZ_CHECK(is_u || is_s, "get_u64 accepted type %d", (int)v->type);
        BN_FUZZ_CHECK(is_u ? u == v->as.u64 : (v->as.i64 >= 0 && u == (uint64_t)v->as.i64),
                      "get_u64 of '%s' gave %llu", key, (unsigned long long)u);
    }
    uint32_t u32;
    if (bn_gguf_get_u32(g, key, &u32, &err) == BN_OK)
        BN_FUZZ_CHECK(is_u ? u32 == v->as.u64 : (is_s && v->as.i64 >= 0 && (int64_t)u32 == v->as.i64),
                      "get_u32 of '%s' gave %u", key, u32);
    if (bn_gguf_get_i64(g, key, &s, &err) == BN_OK)
        BN_FUZZ_CHECK(is_s ? s == v->as.i64 : (is_u && s >= 0 && (uint64_t)s == v->as.u64),
                      "get_i64 of '%s' gave %lld", key, (long long)s);
    if (bn_gguf_get_f32(g, key, &f, &err) == BN_OK && v->type == BN_GGUF_FLOAT32)
        BN_FUZZ_CHECK(bn_fuzz_same_float(f, (float)v->as.f64), "get_f32 of '%s'", key);
    if (bn_gguf_get_bool(g, key, &b, &err) == BN_OK)
        BN_FUZZ_CHECK(v->type == BN_GGUF_BOOL && b == v->as.b, "get_bool of '%s'", key);
    if (bn_gguf_get_string(g, key, &str, &err) == BN_OK)
        BN_FUZZ_CHECK(v->type == BN_GGUF_STRING && str.data == v->as.str.data && str.len == v->as.str.len,
                      "get_string of '%s'", key);
    if (bn_gguf_get_array(g, key, BN_GGUF_TYPE_COUNT, &arr, &err) == BN_OK)
        BN_FUZZ_CHECK(v->type == BN_GGUF_ARRAY && arr == &v->as.arr, "get_array of '%s'", key);
}

static char *cstring(bn_gguf_string s) {
    char *c = malloc(s.len + 1);
    if (!c) abort();
    memcpy(c, s.data, s.len);
    c[s.len] = '\0';
    return c;
}

static int by_offset(const void *a, const void *b) {
    const bn_gguf_tensor *x = *(const bn_gguf_tensor *const *)a, *y = *(const bn_gguf_tensor *const *)b;
    return x->file_offset < y->file_offset ? -1 : x->file_offset > y->file_offset;
}

static void check_file(const bn_gguf *g) {
    BN_FUZZ_CHECK(g->version == 2 || g->version == 3, "version %u", g->version);
    BN_FUZZ_CHECK(g->alignment > 0 && (g->alignment & (g->alignment - 1)) == 0, "alignment %u", g->alignment);
    BN_FUZZ_CHECK(g->data_offset % g->alignment == 0, "data offset %llu", (unsigned long long)g->data_offset);
    BN_FUZZ_CHECK(g->base == g_base && g->size == g_size, "object does not describe the input");
    /* each kv costs at least key length (8) + key (1) + type (4) bytes */
    BN_FUZZ_CHECK(g->n_kv <= g_size / 13, "n_kv %llu", (unsigned long long)g->n_kv);
    BN_FUZZ_CHECK(g->n_tensors <= g_size / 8, "n_tensors %llu", (unsigned long long)g->n_tensors);

    for (uint64_t i = 0; i < g->n_kv; i++) {
        const bn_gguf_kv *kv = &g->kvs[i];
        touch(kv->key.data, kv->key.len, "key");
        BN_FUZZ_CHECK(kv->key.len > 0 && !memchr(kv->key.data, 0, kv->key.len), "key %llu", (unsigned long long)i);
        BN_FUZZ_CHECK(kv->file_offset < g->data_offset, "key %llu file offset", (unsigned long long)i);
        char *key = cstring(kv->key);
        BN_FUZZ_CHECK(bn_gguf_find_kv(g, key) == kv, "key '%s' not found by lookup (duplicate?)", key);
        check_value(&kv->value, 0);
        check_getters(g, kv, key);
        free(key);
    }

    const bn_gguf_tensor **order = malloc((g->n_tensors + 1) * sizeof *order);
    if (!order) abort();
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const bn_gguf_tensor *t = &g->tensors[i];
        touch(t->name.data, t->name.len, "tensor name");
        BN_FUZZ_CHECK(t->name.len > 0 && !memchr(t->name.data, 0, t->name.len), "tensor %llu name", (unsigned long long)i);
        BN_FUZZ_CHECK(t->n_dims >= 1 && t->n_dims <= BN_GGUF_MAX_DIMS, "n_dims %u", t->n_dims);
        uint64_t n = 1;
        for (unsigned d = 0; d < BN_GGUF_MAX_DIMS; d++) {
            BN_FUZZ_CHECK(t->ne[d] >= 1, "ne[%u] = 0", d);
            BN_FUZZ_CHECK(d < t->n_dims || t->ne[d] == 1, "unused ne[%u] = %llu", d, (unsigned long long)t->ne[d]);
            BN_FUZZ_CHECK(n <= UINT64_MAX / t->ne[d], "element count overflows");
            n *= t->ne[d];
        }
        BN_FUZZ_CHECK(n == t->n_elements, "n_elements %llu, product %llu", (unsigned long long)t->n_elements,
                      (unsigned long long)n);
        uint64_t bytes = 0;
        BN_FUZZ_CHECK(bn_quant_tensor_bytes(t->type, t->n_elements, t->ne[0], &bytes, NULL) == BN_OK &&
                          bytes == t->size && bytes > 0,
                      "tensor size %llu, table says %llu", (unsigned long long)t->size, (unsigned long long)bytes);
        BN_FUZZ_CHECK(t->offset % g->alignment == 0, "tensor offset %llu unaligned", (unsigned long long)t->offset);
        BN_FUZZ_CHECK(t->file_offset == g->data_offset + t->offset, "file offset");
        BN_FUZZ_CHECK(t->data == g->base + t->file_offset, "data pointer");
        touch(t->data, t->size, "tensor data");
        char *name = cstring(t->name);
        BN_FUZZ_CHECK(bn_gguf_find_tensor(g, name) == t, "tensor '%s' not found by lookup", name);
        free(name);
        order[i] = t;
    }
    qsort(order, g->n_tensors, sizeof *order, by_offset);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        BN_FUZZ_CHECK(order[i]->file_offset >= order[i - 1]->file_offset + order[i - 1]->size,
                      "tensors overlap at %llu", (unsigned long long)order[i]->file_offset);
    free(order);
}

/* What a model load does with an accepted file, minus the mapping. */
static void check_model(const bn_gguf *g) {
    bn_error err;
    bn_model_config config;
    bn_status st = bn_model_config_read(&config, g, &err);
    if (st == BN_OK) {
        BN_FUZZ_CHECK(config.dim > 0 && config.n_heads > 0 && config.dim % config.n_heads == 0,
                      "config dim %d heads %d", config.dim, config.n_heads);
        BN_FUZZ_CHECK(config.rope_dim >= 2 && config.rope_dim <= config.head_dim, "rope_dim %d", config.rope_dim);
        bn_model_options options = bn_model_options_default();
        bn_model_weights weights;
        st = bn_model_weights_load(&weights, &config, g, &options, &err);
        if (st == BN_OK) {
            const bn_gguf_tensor *embd = bn_gguf_find_tensor(g, "token_embd.weight");
            BN_FUZZ_CHECK(embd && embd->type == BN_TYPE_F16 && (uint64_t)config.n_vocab == embd->ne[1] &&
                              (uint64_t)config.dim == embd->ne[0],
                          "accepted model without a matching token_embd");
            bn_model_weights_release(&weights);
        }
    }
    if (st != BN_OK) BN_FUZZ_CHECK(err.code == st && err.message[0], "model error without a message");

    bn_tokenizer *tok = NULL;
    st = bn_tokenizer_from_gguf(&tok, g, NULL, &err);
    if (st == BN_OK) {
        BN_FUZZ_CHECK(tok, "tokenizer OK without an object");
        uint32_t n = bn_tokenizer_n_vocab(tok);
        int32_t bos = bn_tokenizer_bos(tok), eos = bn_tokenizer_eos(tok);
        BN_FUZZ_CHECK(bos >= -1 && bos < (int64_t)n && eos >= -1 && eos < (int64_t)n, "special ids out of range");
        bn_tokens ids = {0};
        static const char text[] = "Hello, world! 123 <|eot_id|>";
        if (bn_tokenizer_encode(tok, text, sizeof text - 1, true, true, &ids, &err) == BN_OK)
            for (size_t i = 0; i < ids.n; i++)
                BN_FUZZ_CHECK(ids.ids[i] >= 0 && (uint32_t)ids.ids[i] < n, "encoded id %d of %u", ids.ids[i], n);
        bn_tokens_free(&ids);
        bn_tokenizer_free(tok);
    } else {
        BN_FUZZ_CHECK(err.code == st && err.message[0], "tokenizer error without a message");
    }

    bn_chat_choice choice;
    if (bn_chat_format_for_gguf(&choice, g, &err) == BN_OK)
        BN_FUZZ_CHECK(choice.format != NULL && (choice.source == BN_CHAT_FROM_TEMPLATE) == (choice.note == NULL),
                      "chat format choice");
    else
        BN_FUZZ_CHECK(err.code == BN_ERR_NOMEM, "chat format choice failed with %d", (int)err.code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    g_base = data;
    g_size = size;
    bn_gguf *g = NULL;
    bn_error err;
    bn_error_clear(&err);
    bn_status st = bn_gguf_open_memory(data, size, "<fuzz>", &g, &err);
    if (st != BN_OK) {
        BN_FUZZ_CHECK(g == NULL, "failed open returned an object");
        BN_FUZZ_CHECK(err.code == st && err.message[0] && memchr(err.message, 0, sizeof err.message),
                      "error not filled (status %d)", (int)st);
        return 0;
    }
    BN_FUZZ_CHECK(g != NULL, "open returned OK without an object");
    check_file(g);
    check_model(g);
    bn_gguf_close(g);
    return 0;
}
