/*
 * gguf_write.c: the GGUF writer.
 *
 * Design: metadata values are deep-copied into the writer as they are added and checked by the
 * same rules the reader enforces (valid UTF-8 keys, no duplicates, general.alignment a uint32
 * power of two, bounded nesting, known tensor types), so every file it writes is one the reader
 * accepts. The layout is the one ggml writes: header, key-value pairs, tensor infos, padding to
 * the alignment, then each tensor at the next aligned offset, with the file ending aligned.
 * Tensors without data are written as holes (the writer seeks over them and sets the final size
 * with ftruncate), so a 1.2 GB zero-filled model costs neither memory nor disk blocks. Reading a
 * file and writing it back through this writer reproduces it byte for byte.
 */
#include "gguf/gguf.h"
#include "gguf/gguf_internal.h"
#include "quant/quant_format.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef unsigned long long ull;

typedef struct writer_kv {
    char *key;
    bn_gguf_value value; /* owns its strings and arrays */
} writer_kv;

typedef struct writer_tensor {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[BN_GGUF_MAX_DIMS];
    uint64_t size;
    uint64_t offset; /* relative to the data section; set by bn_gguf_writer_write */
    const void *data;
} writer_tensor;

struct bn_gguf_writer {
    uint32_t version;
    uint32_t alignment;
    writer_kv *kvs;
    size_t n_kv, cap_kv;
    writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
};

bn_gguf_writer *bn_gguf_writer_new(void) {
    bn_gguf_writer *w = calloc(1, sizeof *w);
    if (w) {
        w->version = 3;
        w->alignment = BN_GGUF_DEFAULT_ALIGNMENT;
    }
    return w;
}

static void free_owned_value(bn_gguf_value *v) {
    if (v->type == BN_GGUF_STRING) {
        free((void *)v->as.str.data);
    } else if (v->type == BN_GGUF_ARRAY) {
        bn_gguf_array *a = &v->as.arr;
        free((void *)a->raw);
        if (a->strings) {
            for (uint64_t i = 0; i < a->count; i++) free((void *)a->strings[i].data);
            free(a->strings);
        }
        if (a->items) {
            for (uint64_t i = 0; i < a->count; i++) free_owned_value(&a->items[i]);
            free(a->items);
        }
    }
}

void bn_gguf_writer_free(bn_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free_owned_value(&w->kvs[i].value);
    }
    free(w->kvs);
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->tensors);
    free(w);
}

void bn_gguf_writer_set_version(bn_gguf_writer *w, uint32_t version) { w->version = version; }

/* A copy of len bytes (plus a NUL so keys and names also work as C strings); caller frees. */
static char *copy_bytes(const char *s, uint64_t len) {
    if (len >= SIZE_MAX) return NULL;
    char *p = malloc((size_t)len + 1);
    if (p) {
        if (len) memcpy(p, s, (size_t)len);
        p[len] = '\0';
    }
    return p;
}

/* Deep copy of a value into writer-owned memory, with the reader's nesting limit. */
static bn_status copy_value(bn_gguf_value *dst, const bn_gguf_value *src, unsigned depth, bn_error *err) {
    memset(dst, 0, sizeof *dst);
    if ((unsigned)src->type >= BN_GGUF_TYPE_COUNT)
        return bn_error_set(err, BN_ERR_INVALID, "value type %u is not a GGUF type", (unsigned)src->type);
    dst->type = src->type;
    if (src->type == BN_GGUF_STRING) {
        dst->as.str.len = src->as.str.len;
        if (!(dst->as.str.data = copy_bytes(src->as.str.data, src->as.str.len)))
            return bn_error_set(err, BN_ERR_NOMEM, "out of memory copying a string");
        return BN_OK;
    }
    if (src->type != BN_GGUF_ARRAY) {
        dst->as = src->as;
        if (src->type == BN_GGUF_FLOAT32) dst->as.f64 = (float)src->as.f64;
        return BN_OK;
    }
    if (depth >= BN_GGUF_MAX_ARRAY_DEPTH)
        return bn_error_set(err, BN_ERR_INVALID, "arrays nested deeper than %d levels", BN_GGUF_MAX_ARRAY_DEPTH);
    const bn_gguf_array *s = &src->as.arr;
    bn_gguf_array *d = &dst->as.arr;
    if ((unsigned)s->elem_type >= BN_GGUF_TYPE_COUNT)
        return bn_error_set(err, BN_ERR_INVALID, "array element type %u is not a GGUF type",
                            (unsigned)s->elem_type);
    d->elem_type = s->elem_type;
    uint64_t n = s->count;
    if (s->elem_type == BN_GGUF_STRING) {
        if (n > SIZE_MAX / sizeof *d->strings || !(d->strings = calloc(n ? n : 1, sizeof *d->strings)))
            return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %llu strings", (ull)n);
        d->count = n;
        for (uint64_t i = 0; i < n; i++) {
            d->strings[i].len = s->strings[i].len;
            if (!(d->strings[i].data = copy_bytes(s->strings[i].data, s->strings[i].len)))
                return bn_error_set(err, BN_ERR_NOMEM, "out of memory copying a string");
        }
    } else if (s->elem_type == BN_GGUF_ARRAY) {
        if (n > SIZE_MAX / sizeof *d->items || !(d->items = calloc(n ? n : 1, sizeof *d->items)))
            return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %llu arrays", (ull)n);
        d->count = n;
        for (uint64_t i = 0; i < n; i++) {
            if (s->items[i].type != BN_GGUF_ARRAY)
                return bn_error_set(err, BN_ERR_INVALID, "element %llu of an array of arrays is a %s",
                                    (ull)i, bn_gguf_type_name(s->items[i].type));
            bn_status st = copy_value(&d->items[i], &s->items[i], depth + 1, err);
            if (st) return st;
        }
    } else {
        size_t size = bn_gguf_type_size(s->elem_type);
        if (n > SIZE_MAX / size) return bn_error_set(err, BN_ERR_NOMEM, "array of %llu elements is too large", (ull)n);
        uint8_t *raw = malloc(n ? n * size : 1);
        if (!raw) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %llu elements", (ull)n);
        if (n) memcpy(raw, s->raw, n * size);
        d->raw = raw;
        d->count = n;
        if (s->elem_type == BN_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (raw[i] > 1) return bn_error_set(err, BN_ERR_INVALID, "bool element %llu is %u, not 0 or 1", (ull)i, raw[i]);
    }
    return BN_OK;
}

/* Room for one more element: returns `items` (n in use, *cap allocated, elem_size bytes each)
 * grown by doubling from `first` when full, or NULL when out of memory (items stays valid). The
 * caller owns the result (free). */
static void *reserve_one(void *items, size_t n, size_t *cap, size_t first, size_t elem_size) {
    if (n < *cap) return items;
    size_t grown_cap = *cap ? 2 * *cap : first;
    if (grown_cap < *cap || grown_cap > SIZE_MAX / elem_size) return NULL; /* Catch size_t overflow */
    void *grown = realloc(items, grown_cap * elem_size);
    if (grown) *cap = grown_cap;
    return grown;
}

static bn_status check_name(const char *what, const char *name, bn_error *err) {
    size_t len = strlen(name);
    if (len == 0) return bn_error_set(err, BN_ERR_INVALID, "empty %s", what);
    if (!bn_gguf_utf8_valid(name, len, NULL)) {
        char q[96];
        bn_gguf_quote(q, sizeof q, name, len);
        return bn_error_set(err, BN_ERR_INVALID, "%s '%s' is not valid UTF-8", what, q);
    }
    return BN_OK;
}

bn_status bn_gguf_writer_add_value(bn_gguf_writer *w, const char *key, const bn_gguf_value *value,
                                   bn_error *err) {
    bn_status st = check_name("key", key, err);
    if (st) return st;
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kvs[i].key, key)) return bn_error_set(err, BN_ERR_INVALID, "duplicate key '%s'", key);
    uint32_t alignment = w->alignment;
    if (!strcmp(key, "general.alignment")) {
        if (value->type != BN_GGUF_UINT32)
            return bn_error_set(err, BN_ERR_INVALID, "general.alignment must be a uint32, not %s",
                                bn_gguf_type_name(value->type));
        uint64_t a = value->as.u64;
        if (a == 0 || a > UINT32_MAX || (a & (a - 1)))
            return bn_error_set(err, BN_ERR_INVALID, "general.alignment %llu is not a power of two", (ull)a);
        alignment = (uint32_t)a;
    }
    writer_kv *kvs = reserve_one(w->kvs, w->n_kv, &w->cap_kv, 16, sizeof *kvs);
    if (!kvs) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    w->kvs = kvs;
    writer_kv *kv = &w->kvs[w->n_kv];
    if (!(kv->key = copy_bytes(key, strlen(key)))) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    if ((st = copy_value(&kv->value, value, 0, err))) {
        free(kv->key);
        free_owned_value(&kv->value);
        return bn_error_prefix(err, "key '%s': ", key);
    }
    w->n_kv++;
    w->alignment = alignment;
    return BN_OK;
}

static bn_status add_scalar(bn_gguf_writer *w, const char *key, bn_gguf_type type, uint64_t u,
                            int64_t i, double f, bn_error *err) {
    bn_gguf_value v;
    memset(&v, 0, sizeof v);
    v.type = type;
    if (type == BN_GGUF_FLOAT32 || type == BN_GGUF_FLOAT64) v.as.f64 = f;
    else if (type == BN_GGUF_BOOL) v.as.b = u != 0;
    else if (type == BN_GGUF_INT8 || type == BN_GGUF_INT16 || type == BN_GGUF_INT32 || type == BN_GGUF_INT64) v.as.i64 = i;
    else v.as.u64 = u;
    return bn_gguf_writer_add_value(w, key, &v, err);
}

bn_status bn_gguf_writer_add_u8(bn_gguf_writer *w, const char *key, uint8_t v, bn_error *err) { return add_scalar(w, key, BN_GGUF_UINT8, v, 0, 0, err); }
bn_status bn_gguf_writer_add_i8(bn_gguf_writer *w, const char *key, int8_t v, bn_error *err) { return add_scalar(w, key, BN_GGUF_INT8, 0, v, 0, err); }
bn_status bn_gguf_writer_add_u16(bn_gguf_writer *w, const char *key, uint16_t v, bn_error *err) { return add_scalar(w, key, BN_GGUF_UINT16, v, 0, 0, err); }
bn_status bn_gguf_writer_add_i16(bn_gguf_writer *w, const char *key, int16_t v, bn_error *err) { return add_scalar(w, key, BN_GGUF_INT16, 0, v, 0, err); }
bn_status bn_gguf_writer_add_u32(bn_gguf_writer *w, const char *key, uint32_t v, bn_error *err) { return add_scalar(w, key, BN_GGUF_UINT32, v, 0, 0, err); }
bn_status bn_gguf_writer_add_i32(bn_gguf_writer *w, const char *key, int32_t v, bn_error *err) { return add_scalar(w, key, BN_GGUF_INT32, 0, v, 0, err); }
bn_status bn_gguf_writer_add_u64(bn_gguf_writer *w, const char *key, uint64_t v, bn_error *err) { return add_scalar(w, key, BN_GGUF_UINT64, v, 0, 0, err); }
bn_status bn_gguf_writer_add_i64(bn_gguf_writer *w, const char *key, int64_t v, bn_error *err) { return add_scalar(w, key, BN_GGUF_INT64, 0, v, 0, err); }
bn_status bn_gguf_writer_add_f32(bn_gguf_writer *w, const char *key, float v, bn_error *err) { return add_scalar(w, key, BN_GGUF_FLOAT32, 0, 0, v, err); }
bn_status bn_gguf_writer_add_f64(bn_gguf_writer *w, const char *key, double v, bn_error *err) { return add_scalar(w, key, BN_GGUF_FLOAT64, 0, 0, v, err); }
bn_status bn_gguf_writer_add_bool(bn_gguf_writer *w, const char *key, bool v, bn_error *err) { return add_scalar(w, key, BN_GGUF_BOOL, v, 0, 0, err); }

bn_status bn_gguf_writer_add_string(bn_gguf_writer *w, const char *key, const char *v, bn_error *err) {
    bn_gguf_value value;
    memset(&value, 0, sizeof value);
    value.type = BN_GGUF_STRING;
    value.as.str.data = v;
    value.as.str.len = strlen(v);
    return bn_gguf_writer_add_value(w, key, &value, err);
}

bn_status bn_gguf_writer_add_array(bn_gguf_writer *w, const char *key, bn_gguf_type elem_type,
                                   const void *data, uint64_t count, bn_error *err) {
    if (bn_gguf_type_size(elem_type) == 0)
        return bn_error_set(err, BN_ERR_INVALID, "key '%s': bn_gguf_writer_add_array takes numeric or bool elements, not %s",
                            key, bn_gguf_type_name(elem_type));
    bn_gguf_value value;
    memset(&value, 0, sizeof value);
    value.type = BN_GGUF_ARRAY;
    value.as.arr.elem_type = elem_type;
    value.as.arr.count = count;
    value.as.arr.raw = data;
    return bn_gguf_writer_add_value(w, key, &value, err);
}

bn_status bn_gguf_writer_add_string_array(bn_gguf_writer *w, const char *key,
                                          const char *const *strings, uint64_t count, bn_error *err) {
    if (count > SIZE_MAX / sizeof(bn_gguf_string)) return bn_error_set(err, BN_ERR_NOMEM, "too many strings");
    bn_gguf_string *views = malloc((count ? count : 1) * sizeof *views);
    if (!views) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %llu strings", (ull)count);
    for (uint64_t i = 0; i < count; i++) {
        views[i].data = strings[i];
        views[i].len = strlen(strings[i]);
    }
    bn_gguf_value value;
    memset(&value, 0, sizeof value);
    value.type = BN_GGUF_ARRAY;
    value.as.arr.elem_type = BN_GGUF_STRING;
    value.as.arr.count = count;
    value.as.arr.strings = views;
    bn_status st = bn_gguf_writer_add_value(w, key, &value, err);
    free(views);
    return st;
}

bn_status bn_gguf_writer_add_tensor(bn_gguf_writer *w, const char *name, uint32_t type,
                                    uint32_t n_dims, const uint64_t *ne, const void *data,
                                    bn_error *err) {
    bn_status st = check_name("tensor name", name, err);
    if (st) return st;
    for (size_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return bn_error_set(err, BN_ERR_INVALID, "duplicate tensor name '%s'", name);
    if (n_dims == 0 || n_dims > BN_GGUF_MAX_DIMS)
        return bn_error_set(err, BN_ERR_INVALID, "tensor '%s': n_dims %u is not in 1..4", name, n_dims);
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX / n)
            return bn_error_set(err, BN_ERR_INVALID, "tensor '%s': ne[%u] = %llu is zero or overflows",
                                name, d, (ull)ne[d]);
        n *= ne[d];
    }
    uint64_t size;
    if ((st = bn_quant_tensor_bytes(type, n, ne[0], &size, err)))
        return bn_error_prefix(err, "tensor '%s': ", name);
    writer_tensor *tensors = reserve_one(w->tensors, w->n_tensors, &w->cap_tensors, 64, sizeof *tensors);
    if (!tensors) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    w->tensors = tensors;
    writer_tensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    if (!(t->name = copy_bytes(name, strlen(name)))) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < BN_GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->size = size;
    t->data = data;
    w->n_tensors++;
    return BN_OK;
}

/* ---- serialisation ---- */

typedef struct out_file {
    FILE *f;
    const char *path;
    uint64_t pos;
    bn_error *err;
} out_file;

static bn_status put(out_file *o, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, o->f) != n)
        return bn_error_set(o->err, BN_ERR_IO, "%s: write failed at offset %llu: %s", o->path,
                            (ull)o->pos, strerror(errno));
    o->pos += n;
    return BN_OK;
}

static bn_status put_le(out_file *o, uint64_t v, unsigned bytes) {
    uint8_t b[8];
    for (unsigned i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * i));
    return put(o, b, bytes);
}

static bn_status put_string(out_file *o, const char *s, uint64_t len) {
    bn_status st = put_le(o, len, 8);
    return st ? st : put(o, s, (size_t)len);
}

static bn_status put_value(out_file *o, const bn_gguf_value *v) {
    size_t n = bn_gguf_type_size(v->type);
    switch (v->type) {
    case BN_GGUF_STRING: return put_string(o, v->as.str.data, v->as.str.len);
    case BN_GGUF_FLOAT32: {
        float f = (float)v->as.f64;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        return put_le(o, bits, 4);
    }
    case BN_GGUF_FLOAT64: {
        uint64_t bits;
        memcpy(&bits, &v->as.f64, 8);
        return put_le(o, bits, 8);
    }
    case BN_GGUF_BOOL: return put_le(o, v->as.b ? 1 : 0, 1);
    case BN_GGUF_ARRAY: {
        const bn_gguf_array *a = &v->as.arr;
        bn_status st;
        if ((st = put_le(o, a->elem_type, 4)) || (st = put_le(o, a->count, 8))) return st;
        if (a->elem_type == BN_GGUF_STRING) {
            for (uint64_t i = 0; i < a->count; i++)
                if ((st = put_string(o, a->strings[i].data, a->strings[i].len))) return st;
        } else if (a->elem_type == BN_GGUF_ARRAY) {
            for (uint64_t i = 0; i < a->count; i++)
                if ((st = put_value(o, &a->items[i]))) return st;
        } else {
            return put(o, a->raw, (size_t)(a->count * bn_gguf_type_size(a->elem_type)));
        }
        return BN_OK;
    }
    default: /* integers: the low n bytes of the two's-complement value */
        return put_le(o, (v->type == BN_GGUF_INT8 || v->type == BN_GGUF_INT16 || v->type == BN_GGUF_INT32 ||
                          v->type == BN_GGUF_INT64) ? (uint64_t)v->as.i64 : v->as.u64, (unsigned)n);
    }
}

static bn_status put_zeros(out_file *o, uint64_t n) {
    static const uint8_t zeros[4096];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        bn_status st = put(o, zeros, k);
        if (st) return st;
        n -= k;
    }
    return BN_OK;
}

/* Skips n zero bytes by seeking (a hole in the file); the final ftruncate fixes the size. */
static bn_status skip_zeros(out_file *o, uint64_t n) {
    if (n > (uint64_t)INT64_MAX - o->pos || fseeko(o->f, (off_t)(o->pos + n), SEEK_SET) != 0)
        return bn_error_set(o->err, BN_ERR_IO, "%s: seek to offset %llu failed: %s", o->path,
                            (ull)(o->pos + n), strerror(errno));
    o->pos += n;
    return BN_OK;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static bn_status write_body(bn_gguf_writer *w, out_file *o) {
    bn_status st;
    if ((st = put_le(o, BN_GGUF_MAGIC, 4)) || (st = put_le(o, w->version, 4)) ||
        (st = put_le(o, w->n_tensors, 8)) || (st = put_le(o, w->n_kv, 8)))
        return st;
    for (size_t i = 0; i < w->n_kv; i++) {
        const writer_kv *kv = &w->kvs[i];
        if ((st = put_string(o, kv->key, strlen(kv->key))) || (st = put_le(o, kv->value.type, 4)) ||
            (st = put_value(o, &kv->value)))
            return st;
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        writer_tensor *t = &w->tensors[i];
        offset = align_up(offset, w->alignment);
        t->offset = offset;
        offset += t->size;
        if ((st = put_string(o, t->name, strlen(t->name))) || (st = put_le(o, t->n_dims, 4))) return st;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if ((st = put_le(o, t->ne[d], 8))) return st;
        if ((st = put_le(o, t->type, 4)) || (st = put_le(o, t->offset, 8))) return st;
    }
    uint64_t data_offset = align_up(o->pos, w->alignment);
    if ((st = put_zeros(o, data_offset - o->pos))) return st;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const writer_tensor *t = &w->tensors[i];
        uint64_t at = data_offset + t->offset;
        if ((st = put_zeros(o, at - o->pos))) return st;
        st = t->data ? put(o, t->data, (size_t)t->size) : skip_zeros(o, t->size);
        if (st) return st;
    }
    uint64_t end = align_up(o->pos, w->alignment);
    if (end > o->pos && (st = skip_zeros(o, end - o->pos))) return st;
    if (fflush(o->f) != 0 || ftruncate(fileno(o->f), (off_t)o->pos) != 0)
        return bn_error_set(o->err, BN_ERR_IO, "%s: cannot set the file size to %llu: %s", o->path,
                            (ull)o->pos, strerror(errno));
    return BN_OK;
}

bn_status bn_gguf_writer_write(bn_gguf_writer *w, const char *path, bn_error *err) {
    if (w->version != 2 && w->version != 3)
        return bn_error_set(err, BN_ERR_INVALID, "%s: GGUF version %u cannot be written (2 or 3)", path, w->version);
    size_t len = strlen(path);
    char *tmp = malloc(len + 8);
    if (!tmp) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    snprintf(tmp, len + 8, "%s.tmp", path);
    out_file o = {fopen(tmp, "wb"), path, 0, err};
    if (!o.f) {
        bn_status st = bn_error_set(err, BN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    setvbuf(o.f, NULL, _IOFBF, 1 << 20);
    bn_status st = write_body(w, &o);
    if (fclose(o.f) != 0 && !st)
        st = bn_error_set(err, BN_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (!st && rename(tmp, path) != 0)
        st = bn_error_set(err, BN_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
    if (st) unlink(tmp);
    free(tmp);
    return st;
}
