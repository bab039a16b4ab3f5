/*
 * safetensors.c: the .safetensors file reader (see safetensors.h for the format and the rules).
 *
 * Design: the file is mapped read-only; the header length is checked against a fixed limit and
 * the file size before the JSON is touched, and jansson parses the header (refusing duplicate
 * keys). Each entry is then checked field by field, with overflow-checked size arithmetic,
 * before anything points into the data area; a sort by offset finds overlaps. Messages are built
 * from the inside out, as in the GGUF reader: the field says what is wrong, the entry prefixes
 * "tensor 'NAME': ", and the open prefixes the file name. Names and metadata are copied into one
 * string arena so the JSON tree is released before open returns.
 */
#include "convert/safetensors.h"
#include "convert/convert_json.h"
#include "convert/safetensors_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long long ull;

#define METADATA_KEY "__metadata__"

struct bn_safetensors {
    char *path;                     /* owned copy; the name for open_memory */
    const uint8_t *base;            /* mapping or caller's buffer */
    size_t size;
    bool mapped;
    uint64_t header_size;           /* N */
    uint64_t data_size;             /* size - 8 - N */
    size_t n_tensors;
    bn_safetensors_tensor *tensors; /* file order */
    const bn_safetensors_tensor **by_name;
    size_t n_metadata;
    const char **metadata;          /* key, value, key, value, ... in file order */
    char *arena;                    /* every name, key and value, NUL-terminated */
};

/* ---- dtypes: one row each ---- */

static const struct {
    const char *name;
    size_t size;
    bool supported;
} dtype_table[BN_SAFETENSORS_DTYPE_COUNT] = {
    [BN_SAFETENSORS_F64] = {"F64", 8, true},
    [BN_SAFETENSORS_F32] = {"F32", 4, true},
    [BN_SAFETENSORS_F16] = {"F16", 2, true},
    [BN_SAFETENSORS_BF16] = {"BF16", 2, true},
    [BN_SAFETENSORS_I64] = {"I64", 8, true},
    [BN_SAFETENSORS_I32] = {"I32", 4, true},
    [BN_SAFETENSORS_I16] = {"I16", 2, true},
    [BN_SAFETENSORS_I8] = {"I8", 1, true},
    [BN_SAFETENSORS_U64] = {"U64", 8, true},
    [BN_SAFETENSORS_U32] = {"U32", 4, true},
    [BN_SAFETENSORS_U16] = {"U16", 2, true},
    [BN_SAFETENSORS_U8] = {"U8", 1, true},
    [BN_SAFETENSORS_BOOL] = {"BOOL", 1, true},
    [BN_SAFETENSORS_F8_E4M3] = {"F8_E4M3", 1, false},
    [BN_SAFETENSORS_F8_E5M2] = {"F8_E5M2", 1, false},
};

/* dtypes of the format this reader does not size (sub-byte, complex or exotic 8-bit floats) */
static const char *const foreign_dtypes[] = {"F4", "F6_E2M3", "F6_E3M2", "F8_E8M0", "F8_E4M3FNUZ",
                                             "F8_E5M2FNUZ", "C64"};

const char *bn_safetensors_dtype_name(bn_safetensors_dtype dtype) {
    return (unsigned)dtype < BN_SAFETENSORS_DTYPE_COUNT ? dtype_table[dtype].name : "invalid";
}

size_t bn_safetensors_dtype_size(bn_safetensors_dtype dtype) {
    return (unsigned)dtype < BN_SAFETENSORS_DTYPE_COUNT ? dtype_table[dtype].size : 0;
}

bool bn_safetensors_dtype_supported(bn_safetensors_dtype dtype) {
    return (unsigned)dtype < BN_SAFETENSORS_DTYPE_COUNT && dtype_table[dtype].supported;
}

bool bn_safetensors_dtype_parse(const char *name, bn_safetensors_dtype *out) {
    for (int i = 0; i < BN_SAFETENSORS_DTYPE_COUNT; i++) {
        if (!strcmp(name, dtype_table[i].name)) {
            *out = (bn_safetensors_dtype)i;
            return true;
        }
    }
    return false;
}

bn_status bn_safetensors_check_name(const char *name, bn_error *err) {
    size_t len = strlen(name);
    if (len == 0) return bn_error_set(err, BN_ERR_FORMAT, "empty name");
    if (len > BN_SAFETENSORS_MAX_NAME)
        return bn_error_set(err, BN_ERR_FORMAT, "name of %llu bytes exceeds the limit of %d", (ull)len,
                            BN_SAFETENSORS_MAX_NAME);
    return BN_OK;
}

/* ---- one header entry ---- */

/* "[2, 3]" into buf. */
static const char *format_shape(const bn_safetensors_tensor *t, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (uint32_t d = 0; d < t->n_dims && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%llu", d ? ", " : "", (ull)t->shape[d]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}

/* A non-negative JSON integer; what names it in the message ("shape[1]", "data_offsets end"). */
static bn_status get_count(const json_t *v, const char *field, const char *what, uint64_t *out, bn_error *err) {
    if (!json_is_integer(v))
        return bn_error_set(err, BN_ERR_FORMAT, "field '%s': %s has JSON type %s, expected a non-negative integer",
                            field, what, bn_convert_json_type(v));
    json_int_t i = json_integer_value(v);
    if (i < 0)
        return bn_error_set(err, BN_ERR_FORMAT, "field '%s': %s = %lld is negative", field, what, (long long)i);
    *out = (uint64_t)i;
    return BN_OK;
}

static bn_status parse_dtype(const json_t *v, bn_safetensors_tensor *t, bn_error *err) {
    if (!json_is_string(v))
        return bn_error_set(err, BN_ERR_FORMAT, "field 'dtype' has JSON type %s, expected string",
                            bn_convert_json_type(v));
    const char *s = json_string_value(v);
    if (bn_safetensors_dtype_parse(s, &t->dtype)) return BN_OK;
    char q[BN_CONVERT_QUOTE_MAX];
    for (size_t i = 0; i < sizeof foreign_dtypes / sizeof foreign_dtypes[0]; i++)
        if (!strcmp(s, foreign_dtypes[i]))
            return bn_error_set(err, BN_ERR_UNSUPPORTED, "field 'dtype': dtype '%s' is not supported", s);
    return bn_error_set(err, BN_ERR_UNSUPPORTED, "field 'dtype': unknown dtype '%s'",
                        bn_convert_quote(s, q, sizeof q));
}

static bn_status parse_shape(const json_t *v, bn_safetensors_tensor *t, bn_error *err) {
    if (!json_is_array(v))
        return bn_error_set(err, BN_ERR_FORMAT, "field 'shape' has JSON type %s, expected array",
                            bn_convert_json_type(v));
    size_t n = json_array_size(v);
    if (n > BN_SAFETENSORS_MAX_DIMS)
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "field 'shape': %llu dimensions exceed the limit of %d",
                            (ull)n, BN_SAFETENSORS_MAX_DIMS);
    t->n_dims = (uint32_t)n;
    t->n_elements = 1;
    bool overflow = false;
    uint32_t overflow_at = 0;
    for (size_t d = 0; d < n; d++) {
        char what[32];
        snprintf(what, sizeof what, "shape[%u]", (unsigned)d);
        bn_status st = get_count(json_array_get(v, d), "shape", what, &t->shape[d], err);
        if (st) return st;
        /* a zero anywhere makes the product 0, as in the reference reader's checked_mul chain */
        if (!overflow && t->shape[d] != 0 && t->n_elements > UINT64_MAX / t->shape[d]) {
            overflow = true;
            overflow_at = (uint32_t)d;
        }
        if (!overflow) t->n_elements *= t->shape[d];
    }
    if (overflow)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "field 'shape': element count overflows at shape[%u] (product exceeds 2^64-1)",
                            overflow_at);
    size_t es = dtype_table[t->dtype].size;
    if (t->n_elements > UINT64_MAX / es)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "field 'shape': %llu elements of %s (%zu bytes each) overflow a 64-bit byte size",
                            (ull)t->n_elements, dtype_table[t->dtype].name, es);
    return BN_OK;
}

static bn_status parse_offsets(const json_t *v, uint64_t data_size, bn_safetensors_tensor *t, bn_error *err) {
    if (!json_is_array(v))
        return bn_error_set(err, BN_ERR_FORMAT, "field 'data_offsets' has JSON type %s, expected array",
                            bn_convert_json_type(v));
    if (json_array_size(v) != 2)
        return bn_error_set(err, BN_ERR_FORMAT, "field 'data_offsets' has %llu entries, expected 2 (begin, end)",
                            (ull)json_array_size(v));
    bn_status st;
    if ((st = get_count(json_array_get(v, 0), "data_offsets", "begin", &t->begin, err)) ||
        (st = get_count(json_array_get(v, 1), "data_offsets", "end", &t->end, err)))
        return st;
    if (t->begin > t->end)
        return bn_error_set(err, BN_ERR_FORMAT, "field 'data_offsets' [%llu, %llu]: begin is past end",
                            (ull)t->begin, (ull)t->end);
    t->size = t->end - t->begin;
    uint64_t need = t->n_elements * dtype_table[t->dtype].size; /* no overflow: parse_shape checked */
    if (t->size != need) {
        char shape[BN_SAFETENSORS_MAX_DIMS * 22 + 4];
        return bn_error_set(err, BN_ERR_FORMAT,
                            "field 'data_offsets' [%llu, %llu] hold %llu bytes, but shape %s of %s needs %llu",
                            (ull)t->begin, (ull)t->end, (ull)t->size, format_shape(t, shape, sizeof shape),
                            dtype_table[t->dtype].name, (ull)need);
    }
    if (t->end > data_size)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "field 'data_offsets' [%llu, %llu]: end is past the %llu-byte data area (file "
                            "truncated?)",
                            (ull)t->begin, (ull)t->end, (ull)data_size);
    return BN_OK;
}

/* Checks one entry into *t (name and pointers are set by the caller). */
static bn_status parse_entry(const json_t *entry, uint64_t data_size, bn_safetensors_tensor *t, bn_error *err) {
    if (!json_is_object(entry))
        return bn_error_set(err, BN_ERR_FORMAT, "entry has JSON type %s, expected object",
                            bn_convert_json_type(entry));
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)entry, key, value) {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets")) {
            char q[BN_CONVERT_QUOTE_MAX];
            return bn_error_set(err, BN_ERR_FORMAT, "unknown field '%s' (expected dtype, shape, data_offsets)",
                                bn_convert_quote(key, q, sizeof q));
        }
    }
    static const char *const fields[] = {"dtype", "shape", "data_offsets"};
    for (size_t i = 0; i < 3; i++)
        if (!json_object_get(entry, fields[i]))
            return bn_error_set(err, BN_ERR_FORMAT, "field '%s' is missing", fields[i]);
    bn_status st;
    if ((st = parse_dtype(json_object_get(entry, "dtype"), t, err)) ||
        (st = parse_shape(json_object_get(entry, "shape"), t, err)) ||
        (st = parse_offsets(json_object_get(entry, "data_offsets"), data_size, t, err)))
        return st;
    return BN_OK;
}

/* ---- the file ---- */

static int compare_by_offset(const void *a, const void *b) {
    const bn_safetensors_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int compare_by_name(const void *a, const void *b) {
    const bn_safetensors_tensor *x = *(const bn_safetensors_tensor *const *)a;
    const bn_safetensors_tensor *y = *(const bn_safetensors_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static char *arena_put(char **cursor, const char *s) {
    size_t n = strlen(s) + 1;
    char *at = *cursor;
    memcpy(at, s, n);
    *cursor += n;
    return at;
}

static bn_status parse_metadata(bn_safetensors *f, const json_t *meta, char **cursor, bn_error *err) {
    if (!json_is_object(meta))
        return bn_error_set(err, BN_ERR_FORMAT, "field '" METADATA_KEY "' has JSON type %s, expected object",
                            bn_convert_json_type(meta));
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)meta, key, value) {
        if (!json_is_string(value)) {
            char q[BN_CONVERT_QUOTE_MAX];
            return bn_error_set(err, BN_ERR_FORMAT,
                                "field '" METADATA_KEY "': value of '%s' has JSON type %s, expected string",
                                bn_convert_quote(key, q, sizeof q), bn_convert_json_type(value));
        }
        f->metadata[2 * f->n_metadata] = arena_put(cursor, key);
        f->metadata[2 * f->n_metadata + 1] = arena_put(cursor, json_string_value(value));
        f->n_metadata++;
    }
    return BN_OK;
}

/* Bytes the arena needs for every name, key and value (each with its NUL). */
static size_t arena_bytes(const json_t *root) {
    size_t n = 0;
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)root, key, value) {
        if (!strcmp(key, METADATA_KEY) && json_is_object(value)) {
            const char *mk;
            const json_t *mv;
            json_object_foreach((json_t *)value, mk, mv) {
                n += strlen(mk) + 1 + (json_is_string(mv) ? strlen(json_string_value(mv)) + 1 : 0);
            }
        } else {
            n += strlen(key) + 1;
        }
    }
    return n;
}

static bn_status check_overlaps(const bn_safetensors *f, bn_error *err) {
    const bn_safetensors_tensor *reach = NULL; /* the tensor with the largest end so far */
    for (size_t i = 0; i < f->n_tensors; i++) {
        const bn_safetensors_tensor *t = &f->tensors[i];
        if (reach && t->begin < reach->end && t->end > t->begin) {
            char q[BN_CONVERT_QUOTE_MAX], q2[BN_CONVERT_QUOTE_MAX];
            return bn_error_set(err, BN_ERR_FORMAT,
                                "tensor '%s': field 'data_offsets' [%llu, %llu] overlaps tensor '%s' [%llu, %llu]",
                                bn_convert_quote(t->name, q, sizeof q), (ull)t->begin, (ull)t->end,
                                bn_convert_quote(reach->name, q2, sizeof q2), (ull)reach->begin, (ull)reach->end);
        }
        if (!reach || t->end > reach->end) reach = t;
    }
    return BN_OK;
}

/* Parses and validates f->base[0..size); errors are not yet prefixed with the file name. */
static bn_status parse_file(bn_safetensors *f, bn_error *err) {
    if (f->size < 8)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "header length at offset 0: file truncated (needs 8 bytes, %llu in the file)",
                            (ull)f->size);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)f->base[i] << (8 * i);
    f->header_size = n;
    if (n > BN_SAFETENSORS_MAX_HEADER)
        return bn_error_set(err, BN_ERR_FORMAT, "header length %llu exceeds the limit of %llu bytes", (ull)n,
                            (ull)BN_SAFETENSORS_MAX_HEADER);
    if (n > f->size - 8)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "header length %llu exceeds the %llu bytes after it (file truncated?)", (ull)n,
                            (ull)(f->size - 8));
    f->data_size = f->size - 8 - n;
    const uint8_t *data_area = f->base + 8 + n;

    json_t *root = NULL;
    bn_status st = bn_convert_parse_object((const char *)f->base + 8, (size_t)n, JSON_REJECT_DUPLICATES,
                                           "header JSON", 8, &root, err);
    if (st) return st;
    const json_t *meta = json_object_get(root, METADATA_KEY);
    size_t n_meta = json_is_object(meta) ? json_object_size(meta) : 0;
    f->n_tensors = json_object_size(root) - (meta ? 1 : 0);
    f->tensors = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *f->tensors);
    f->by_name = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *f->by_name);
    f->metadata = calloc(n_meta ? 2 * n_meta : 1, sizeof *f->metadata);
    f->arena = malloc(arena_bytes(root) + 1);
    if (!f->tensors || !f->by_name || !f->metadata || !f->arena) {
        json_decref(root);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %llu tensors", (ull)f->n_tensors);
    }
    char *cursor = f->arena;
    size_t i = 0;
    const char *key;
    const json_t *value;
    json_object_foreach(root, key, value) {
        if (!strcmp(key, METADATA_KEY)) {
            if ((st = parse_metadata(f, value, &cursor, err))) break;
            continue;
        }
        char q[BN_CONVERT_QUOTE_MAX];
        bn_safetensors_tensor *t = &f->tensors[i++];
        if ((st = bn_safetensors_check_name(key, err)) || (st = parse_entry(value, f->data_size, t, err))) {
            bn_error_prefix(err, "tensor '%s': ", bn_convert_quote(key, q, sizeof q));
            break;
        }
        t->name = arena_put(&cursor, key);
        t->file_offset = 8 + n + t->begin;
        t->data = data_area + t->begin;
        t->file = f;
    }
    json_decref(root);
    if (st) return st;
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, compare_by_offset);
    if ((st = check_overlaps(f, err))) return st;
    for (size_t k = 0; k < f->n_tensors; k++) f->by_name[k] = &f->tensors[k];
    qsort(f->by_name, f->n_tensors, sizeof *f->by_name, compare_by_name);
    return BN_OK;
}

static bn_status open_common(bn_safetensors *f, bn_safetensors **out, bn_error *err) {
    bn_status st = parse_file(f, err);
    if (st) {
        bn_error_prefix(err, "%s: ", f->path);
        bn_safetensors_close(f);
        return st;
    }
    *out = f;
    return BN_OK;
}

bn_status bn_safetensors_open_memory(const void *data, size_t size, const char *name, bn_safetensors **out,
                                     bn_error *err) {
    *out = NULL;
    bn_safetensors *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(name ? name : "<memory>"))) {
        free(f);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    }
    static const uint8_t empty[1];
    f->base = data ? data : empty;
    f->size = data ? size : 0;
    return open_common(f, out, err);
}

bn_status bn_safetensors_open(const char *path, bn_safetensors **out, bn_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bn_error_set(err, BN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return bn_error_set(err, BN_ERR_IO, "%s: not a regular file", path);
    }
    bn_safetensors *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        close(fd);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    }
    f->size = (size_t)sb.st_size;
    if (f->size == 0) {
        static const uint8_t empty[1];
        f->base = empty;
    } else {
        void *map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            free(f->path);
            free(f);
            return bn_error_set(err, BN_ERR_IO, "%s: cannot map %llu bytes: %s", path, (ull)sb.st_size,
                                strerror(e));
        }
        f->base = map;
        f->mapped = true;
    }
    close(fd);
    return open_common(f, out, err);
}

void bn_safetensors_close(bn_safetensors *f) {
    if (!f) return;
    if (f->mapped) munmap((void *)f->base, f->size);
    free(f->tensors);
    free(f->by_name);
    free(f->metadata);
    free(f->arena);
    free(f->path);
    free(f);
}

/* ---- accessors ---- */

const char *bn_safetensors_path(const bn_safetensors *f) { return f->path; }
uint64_t bn_safetensors_header_size(const bn_safetensors *f) { return f->header_size; }
uint64_t bn_safetensors_data_size(const bn_safetensors *f) { return f->data_size; }
size_t bn_safetensors_count(const bn_safetensors *f) { return f->n_tensors; }

const bn_safetensors_tensor *bn_safetensors_at(const bn_safetensors *f, size_t i) {
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const bn_safetensors_tensor *bn_safetensors_at_sorted(const bn_safetensors *f, size_t i) {
    return i < f->n_tensors ? f->by_name[i] : NULL;
}

const bn_safetensors_tensor *bn_safetensors_find(const bn_safetensors *f, const char *name) {
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->by_name[mid]->name, name);
        if (c == 0) return f->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

size_t bn_safetensors_metadata_count(const bn_safetensors *f) { return f->n_metadata; }

bool bn_safetensors_metadata_at(const bn_safetensors *f, size_t i, const char **key, const char **value) {
    if (i >= f->n_metadata) return false;
    *key = f->metadata[2 * i];
    *value = f->metadata[2 * i + 1];
    return true;
}

const char *bn_safetensors_metadata_get(const bn_safetensors *f, const char *key) {
    for (size_t i = 0; i < f->n_metadata; i++)
        if (!strcmp(f->metadata[2 * i], key)) return f->metadata[2 * i + 1];
    return NULL;
}
