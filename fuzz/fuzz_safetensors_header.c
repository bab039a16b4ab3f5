/*
 * fuzz_safetensors_header.c: the safetensors reader (convert/safetensors.h) on arbitrary bytes,
 * taken as a whole .safetensors file (bn_safetensors_open_memory; libFuzzer's buffer has the
 * input's exact size, so ASan sees any read past it), and the same bytes as a
 * model.safetensors.index.json document (bn_safetensors_index_parse).
 *
 * Properties beyond "no crash, no sanitizer report":
 *   - a failure fills the error (same code, a one-line message starting with the file name and
 *     free of control bytes) and returns no object (an empty index);
 *   - an accepted file: 8 + N + data size is the input size and N is within the limit; every
 *     tensor has a non-empty name within the limit, a known dtype, at most 8 dims whose product
 *     is n_elements (recomputed without overflow), size = n_elements x dtype size = end - begin,
 *     end inside the data area, file offset and data pointer where the offsets say (all bytes
 *     are read), and is found by lookup; file order is by offset with no two non-empty tensors
 *     overlapping; name order is strictly increasing (names unique) and holds the same tensors;
 *     metadata entries are found by their key;
 *   - an accepted index: entries strictly increasing by tensor name, every shard a plain file
 *     name that appears in the sorted, distinct shard list.
 */
#include "bitnet.h"
#include "convert/safetensors.h"
#include "fuzz_input.h"

static const uint8_t *g_base;
static size_t g_size;
static volatile uint8_t g_sink;

static void touch(const void *p, uint64_t n, const char *what) {
    const uint8_t *b = p;
    BN_FUZZ_CHECK(b >= g_base && (uint64_t)(b - g_base) <= g_size && n <= g_size - (uint64_t)(b - g_base),
                  "%s: [%p, +%llu) is outside the %zu-byte buffer", what, p, (unsigned long long)n, g_size);
    uint8_t acc = 0;
    for (uint64_t i = 0; i < n; i++) acc ^= b[i];
    g_sink = acc;
}

static void check_message(bn_status st, const bn_error *err, const char *name) {
    BN_FUZZ_CHECK(err->code == st && memchr(err->message, 0, sizeof err->message), "error not filled (status %d)",
                  (int)st);
    BN_FUZZ_CHECK(!strncmp(err->message, name, strlen(name)) && err->message[strlen(name)] == ':',
                  "message does not start with the name: %s", err->message);
    for (const char *p = err->message; *p; p++)
        BN_FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte 0x%02x in message: %s",
                      (unsigned char)*p, err->message);
}

static void check_file(const bn_safetensors *f) {
    uint64_t n = bn_safetensors_header_size(f);
    BN_FUZZ_CHECK(n <= BN_SAFETENSORS_MAX_HEADER, "header size %llu", (unsigned long long)n);
    BN_FUZZ_CHECK(8 + n + bn_safetensors_data_size(f) == g_size, "sizes do not add up");
    uint64_t data_size = bn_safetensors_data_size(f);
    size_t count = bn_safetensors_count(f);
    BN_FUZZ_CHECK(count <= g_size / 8, "%zu tensors in %zu bytes", count, g_size);
    uint64_t reach = 0;
    for (size_t i = 0; i < count; i++) {
        const bn_safetensors_tensor *t = bn_safetensors_at(f, i);
        BN_FUZZ_CHECK(t && t->name && t->file == f, "tensor %zu", i);
        size_t len = strlen(t->name);
        BN_FUZZ_CHECK(len > 0 && len <= BN_SAFETENSORS_MAX_NAME, "name length %zu", len);
        BN_FUZZ_CHECK((unsigned)t->dtype < BN_SAFETENSORS_DTYPE_COUNT, "dtype %d", (int)t->dtype);
        BN_FUZZ_CHECK(t->n_dims <= BN_SAFETENSORS_MAX_DIMS, "n_dims %u", t->n_dims);
        uint64_t elements = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            BN_FUZZ_CHECK(t->shape[d] == 0 || elements <= UINT64_MAX / t->shape[d], "accepted an overflowing shape");
            elements *= t->shape[d];
        }
        for (uint32_t d = t->n_dims; d < BN_SAFETENSORS_MAX_DIMS; d++) BN_FUZZ_CHECK(t->shape[d] == 0, "unused dim");
        size_t es = bn_safetensors_dtype_size(t->dtype);
        BN_FUZZ_CHECK(elements == t->n_elements && elements <= UINT64_MAX / es, "n_elements %llu",
                      (unsigned long long)t->n_elements);
        BN_FUZZ_CHECK(t->size == elements * es && t->begin <= t->end && t->end - t->begin == t->size,
                      "size %llu for [%llu, %llu)", (unsigned long long)t->size, (unsigned long long)t->begin,
                      (unsigned long long)t->end);
        BN_FUZZ_CHECK(t->end <= data_size, "end %llu past the data area", (unsigned long long)t->end);
        BN_FUZZ_CHECK(t->file_offset == 8 + n + t->begin && t->data == g_base + t->file_offset, "data pointer");
        touch(t->data, t->size, "tensor data");
        BN_FUZZ_CHECK(bn_safetensors_find(f, t->name) == t, "'%s' not found by lookup", t->name);
        if (i > 0) BN_FUZZ_CHECK(bn_safetensors_at(f, i - 1)->begin <= t->begin, "file order");
        if (t->size > 0) {
            BN_FUZZ_CHECK(t->begin >= reach, "'%s' overlaps an earlier tensor", t->name);
            reach = t->end;
        }
    }
    BN_FUZZ_CHECK(bn_safetensors_at(f, count) == NULL && bn_safetensors_at_sorted(f, count) == NULL, "past the end");
    for (size_t i = 0; i < count; i++) {
        const bn_safetensors_tensor *t = bn_safetensors_at_sorted(f, i);
        BN_FUZZ_CHECK(t && t->file == f && t >= bn_safetensors_at(f, 0) && t <= bn_safetensors_at(f, count - 1),
                      "sorted entry %zu is not one of the tensors", i);
        if (i > 0) BN_FUZZ_CHECK(strcmp(bn_safetensors_at_sorted(f, i - 1)->name, t->name) < 0, "name order");
    }
    for (size_t i = 0; i < bn_safetensors_metadata_count(f); i++) {
        const char *k = NULL, *v = NULL;
        BN_FUZZ_CHECK(bn_safetensors_metadata_at(f, i, &k, &v) && k && v, "metadata %zu", i);
        const char *got = bn_safetensors_metadata_get(f, k);
        BN_FUZZ_CHECK(got != NULL, "metadata key not found");
        g_sink = (uint8_t)(strlen(k) + strlen(v) + strlen(got));
    }
}

static void check_index(const uint8_t *data, size_t size) {
    bn_safetensors_index index;
    bn_error err;
    bn_error_clear(&err);
    bn_status st = bn_safetensors_index_parse((const char *)data, size, "<index>", &index, &err);
    if (st != BN_OK) {
        BN_FUZZ_CHECK(index.n_entries == 0 && index.entries == NULL && index.shards == NULL, "failed index not empty");
        check_message(st, &err, "<index>");
        return;
    }
    BN_FUZZ_CHECK(index.n_entries > 0 && index.n_shards > 0 && index.n_shards <= index.n_entries, "counts");
    for (size_t i = 0; i < index.n_shards; i++) {
        const char *s = index.shards[i];
        BN_FUZZ_CHECK(*s && !strchr(s, '/') && !strchr(s, '\\') && strcmp(s, ".") && strcmp(s, ".."),
                      "shard '%s' is not a plain file name", s);
        if (i > 0) BN_FUZZ_CHECK(strcmp(index.shards[i - 1], s) < 0, "shard order");
    }
    for (size_t i = 0; i < index.n_entries; i++) {
        const bn_safetensors_index_entry *e = &index.entries[i];
        size_t len = strlen(e->tensor);
        BN_FUZZ_CHECK(len > 0 && len <= BN_SAFETENSORS_MAX_NAME, "tensor name length %zu", len);
        if (i > 0) BN_FUZZ_CHECK(strcmp(index.entries[i - 1].tensor, e->tensor) < 0, "entry order");
        bool listed = false;
        for (size_t s = 0; s < index.n_shards && !listed; s++) listed = !strcmp(index.shards[s], e->shard);
        BN_FUZZ_CHECK(listed, "shard '%s' of an entry is not in the shard list", e->shard);
    }
    bn_safetensors_index_free(&index);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    g_base = data;
    g_size = size;
    bn_safetensors *f = NULL;
    bn_error err;
    bn_error_clear(&err);
    bn_status st = bn_safetensors_open_memory(data, size, "<fuzz>", &f, &err);
    if (st != BN_OK) {
        BN_FUZZ_CHECK(f == NULL, "failed open returned an object");
        check_message(st, &err, "<fuzz>");
    } else {
        BN_FUZZ_CHECK(f != NULL, "open returned OK without an object");
        check_file(f);
        bn_safetensors_close(f);
    }
    check_index(data, size);
    return 0;
}
