/*
 * gguf_read.c: the GGUF reader (versions 2 and 3, little-endian).
 *
 * Design: the file is mapped read-only and parsed by a bounds-checked cursor; no byte is read
 * without first checking that it lies inside the mapping. Every count is checked against the
 * bytes left before anything is allocated for it (an element of any kind needs at least one byte,
 * so allocations stay proportional to the file size), nested arrays have a depth limit, and all
 * size arithmetic is overflow-checked. Errors are built from the inside out: the cursor names the
 * field and its byte offset, and each enclosing level prefixes its context (key or tensor, then the
 * file name), giving one line such as
 *   "model.gguf: tensor 'blk.0.attn_q.weight' (tensor info at offset 1234): n_dims 5 exceeds 4".
 */
#include "gguf/gguf.h"
#include "gguf/gguf_internal.h"
#include "quant/quant_format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_BYTES 24u    /* magic, version, n_tensors, n_kv */
#define MIN_KV_BYTES 13u    /* key length 8 + value type 4 + the smallest value 1 */
#define MIN_TENSOR_INFO 32u /* name length 8 + n_dims 4 + one ne 8 + type 4 + offset 8 */
#define QUOTE_MAX 96

typedef unsigned long long ull;

/* ---- shared helpers (declared in gguf_internal.h) ---- */

bool bn_gguf_utf8_valid(const char *s, uint64_t len, uint64_t *bad_at) {
    const unsigned char *p = (const unsigned char *)s;
    uint64_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        uint64_t n;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; }
        else goto bad;
        if (len - i <= n) goto bad;
        for (uint64_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) goto bad;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            goto bad;
        i += n + 1;
    }
    return true;
bad:
    if (bad_at) *bad_at = i;
    return false;
}

void bn_gguf_quote(char *dst, size_t cap, const char *s, uint64_t len) {
    static const char hex[] = "0123456789abcdef";
    bool utf8 = bn_gguf_utf8_valid(s, len, NULL);
    size_t o = 0;
    if (cap == 0) return;
    for (uint64_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool plain = c >= 0x20 && c != 0x7f && c != '\'' && c != '\\' && (c < 0x80 || utf8);
        if (o + (plain ? 1 : 4) + 4 >= cap) {
            if (o + 4 <= cap) memcpy(dst + o, "...", 3), o += 3;
            break;
        }
        if (plain) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
}

/* ---- the bounds-checked cursor ---- */

typedef struct cursor {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    bn_error *err;
} cursor;

static uint64_t left(const cursor *c) { return c->size - c->pos; }

static bn_status truncated(cursor *c, const char *field, uint64_t need) {
    return bn_error_set(c->err, BN_ERR_FORMAT,
                        "%s at offset %llu: file truncated (needs %llu bytes, %llu left)", field,
                        (ull)c->pos, (ull)need, (ull)left(c));
}

static uint64_t load_le(const uint8_t *p, unsigned bytes) {
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static bn_status read_u32(cursor *c, const char *field, uint32_t *out) {
    if (left(c) < 4) return truncated(c, field, 4);
    *out = (uint32_t)load_le(c->base + c->pos, 4);
    c->pos += 4;
    return BN_OK;
}

static bn_status read_u64(cursor *c, const char *field, uint64_t *out) {
    if (left(c) < 8) return truncated(c, field, 8);
    *out = load_le(c->base + c->pos, 8);
    c->pos += 8;
    return BN_OK;
}

/* A length-prefixed string; the bytes stay in the mapping. */
static bn_status read_string(cursor *c, const char *field, bn_gguf_string *out) {
    uint64_t at = c->pos;
    bn_status st = read_u64(c, field, &out->len);
    if (st) return st;
    if (out->len > left(c))
        return bn_error_set(c->err, BN_ERR_FORMAT,
                            "%s at offset %llu: string length %llu exceeds the %llu bytes left in "
                            "the file",
                            field, (ull)at, (ull)out->len, (ull)left(c));
    out->data = (const char *)c->base + c->pos;
    c->pos += out->len;
    return BN_OK;
}

/* Keys and tensor names: non-empty, valid UTF-8, no NUL (they are looked up as C strings). */
static bn_status check_name(cursor *c, const char *what, uint64_t at, bn_gguf_string s) {
    uint64_t bad = 0;
    if (s.len == 0)
        return bn_error_set(c->err, BN_ERR_FORMAT, "%s at offset %llu: empty %s", what, (ull)at,
                            what);
    if (!bn_gguf_utf8_valid(s.data, s.len, &bad))
        return bn_error_set(c->err, BN_ERR_FORMAT, "%s at offset %llu: invalid UTF-8 at byte %llu",
                            what, (ull)at, (ull)bad);
    if (memchr(s.data, '\0', s.len))
        return bn_error_set(c->err, BN_ERR_FORMAT, "%s at offset %llu: contains a NUL byte", what,
                            (ull)at);
    return BN_OK;
}

/* ---- metadata values ---- */

size_t bn_gguf_type_size(bn_gguf_type type) {
    switch (type) {
    case BN_GGUF_UINT8: case BN_GGUF_INT8: case BN_GGUF_BOOL: return 1;
    case BN_GGUF_UINT16: case BN_GGUF_INT16: return 2;
    case BN_GGUF_UINT32: case BN_GGUF_INT32: case BN_GGUF_FLOAT32: return 4;
    case BN_GGUF_UINT64: case BN_GGUF_INT64: case BN_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

const char *bn_gguf_type_name(bn_gguf_type type) {
    static const char *const names[BN_GGUF_TYPE_COUNT] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
        "bool", "string", "array", "uint64", "int64", "float64"};
    return (unsigned)type < BN_GGUF_TYPE_COUNT ? names[type] : "invalid";
}

/* The fewest bytes one element of this type occupies in a file. */
static uint64_t min_element_bytes(bn_gguf_type type) {
    if (type == BN_GGUF_STRING) return 8;
    if (type == BN_GGUF_ARRAY) return 12;
    return bn_gguf_type_size(type);
}

static void free_value(bn_gguf_value *v) {
    if (v->type != BN_GGUF_ARRAY) return;
    free(v->as.arr.strings);
    if (v->as.arr.items) {
        for (uint64_t i = 0; i < v->as.arr.count; i++) free_value(&v->as.arr.items[i]);
        free(v->as.arr.items);
    }
}

static bn_status read_type(cursor *c, const char *field, bn_gguf_type *out) {
    uint64_t at = c->pos;
    uint32_t t;
    bn_status st = read_u32(c, field, &t);
    if (st) return st;
    if (t >= BN_GGUF_TYPE_COUNT)
        return bn_error_set(c->err, BN_ERR_FORMAT, "%s at offset %llu: %u is not a GGUF value type",
                            field, (ull)at, t);
    *out = (bn_gguf_type)t;
    return BN_OK;
}

static bn_status parse_value(cursor *c, bn_gguf_type type, unsigned depth, bn_gguf_value *out);

static bn_status parse_array(cursor *c, unsigned depth, bn_gguf_array *arr) {
    uint64_t at = c->pos;
    if (depth > BN_GGUF_MAX_ARRAY_DEPTH)
        return bn_error_set(c->err, BN_ERR_FORMAT,
                            "array at offset %llu: nesting deeper than %d levels", (ull)at,
                            BN_GGUF_MAX_ARRAY_DEPTH);
    bn_status st = read_type(c, "array element type", &arr->elem_type);
    if (st) return st;
    uint64_t count_at = c->pos;
    if ((st = read_u64(c, "array count", &arr->count))) return st;
    uint64_t min = min_element_bytes(arr->elem_type);
    if (arr->count > left(c) / min)
        return bn_error_set(c->err, BN_ERR_FORMAT,
                            "array count at offset %llu: %llu elements of %s cannot fit in the "
                            "%llu bytes left (each needs at least %llu)",
                            (ull)count_at, (ull)arr->count, bn_gguf_type_name(arr->elem_type),
                            (ull)left(c), (ull)min);
    uint64_t count = arr->count;
    if (arr->elem_type == BN_GGUF_STRING) {
        arr->strings = calloc(count ? count : 1, sizeof *arr->strings);
        if (!arr->strings) return bn_error_set(c->err, BN_ERR_NOMEM, "out of memory for %llu strings", (ull)count);
        for (uint64_t i = 0; i < count; i++) {
            if ((st = read_string(c, "string", &arr->strings[i])))
                return bn_error_prefix(c->err, "element %llu: ", (ull)i);
        }
    } else if (arr->elem_type == BN_GGUF_ARRAY) {
        arr->items = calloc(count ? count : 1, sizeof *arr->items);
        if (!arr->items) return bn_error_set(c->err, BN_ERR_NOMEM, "out of memory for %llu arrays", (ull)count);
        for (uint64_t i = 0; i < count; i++) {
            /* no per-level prefix here: the innermost message carries the byte offset */
            if ((st = parse_value(c, BN_GGUF_ARRAY, depth, &arr->items[i]))) return st;
        }
    } else {
        uint64_t bytes = count * min; /* no overflow: count <= left / min */
        arr->raw = c->base + c->pos;
        if (arr->elem_type == BN_GGUF_BOOL) {
            for (uint64_t i = 0; i < count; i++)
                if (arr->raw[i] > 1)
                    return bn_error_set(c->err, BN_ERR_FORMAT,
                                        "element %llu: bool at offset %llu: value %u is not 0 or 1",
                                        (ull)i, (ull)(c->pos + i), arr->raw[i]);
        }
        c->pos += bytes;
    }
    return BN_OK;
}

static bn_status parse_value(cursor *c, bn_gguf_type type, unsigned depth, bn_gguf_value *out) {
    memset(out, 0, sizeof *out);
    out->type = type;
    size_t n = bn_gguf_type_size(type);
    if (type == BN_GGUF_STRING) return read_string(c, "string value", &out->as.str);
    if (type == BN_GGUF_ARRAY) return parse_array(c, depth + 1, &out->as.arr);
    if (left(c) < n) return truncated(c, bn_gguf_type_name(type), n);
    uint64_t raw = load_le(c->base + c->pos, (unsigned)n);
    switch (type) {
    case BN_GGUF_UINT8: case BN_GGUF_UINT16: case BN_GGUF_UINT32: case BN_GGUF_UINT64:
        out->as.u64 = raw;
        break;
    case BN_GGUF_INT8: out->as.i64 = (int8_t)raw; break;
    case BN_GGUF_INT16: out->as.i64 = (int16_t)raw; break;
    case BN_GGUF_INT32: out->as.i64 = (int32_t)raw; break;
    case BN_GGUF_INT64: out->as.i64 = (int64_t)raw; break;
    case BN_GGUF_FLOAT32: {
        uint32_t bits = (uint32_t)raw;
        float f;
        memcpy(&f, &bits, 4);
        out->as.f64 = f;
        break;
    }
    case BN_GGUF_FLOAT64: memcpy(&out->as.f64, &raw, 8); break;
    case BN_GGUF_BOOL:
        if (raw > 1)
            return bn_error_set(c->err, BN_ERR_FORMAT, "bool at offset %llu: value %u is not 0 or 1",
                                (ull)c->pos, (unsigned)raw);
        out->as.b = raw != 0;
        break;
    default: break;
    }
    c->pos += n;
    return BN_OK;
}

/* ---- duplicate detection: an open-addressing set of (bytes, length) ---- */

typedef struct name_set {
    const bn_gguf_string **slots;
    uint64_t mask;
} name_set;

static uint64_t hash_bytes(const char *s, uint64_t len) {
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static bool name_set_init(name_set *set, uint64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    set->slots = calloc(cap, sizeof *set->slots);
    set->mask = cap - 1;
    return set->slots != NULL;
}

/* Inserts s; returns the string already present with the same bytes, or NULL. */
static const bn_gguf_string *name_set_insert(name_set *set, const bn_gguf_string *s) {
    uint64_t i = hash_bytes(s->data, s->len) & set->mask;
    for (;; i = (i + 1) & set->mask) {
        const bn_gguf_string *e = set->slots[i];
        if (!e) {
            set->slots[i] = s;
            return NULL;
        }
        if (e->len == s->len && !memcmp(e->data, s->data, s->len)) return e;
    }
}

/* ---- the file ---- */

static bn_status parse_kvs(bn_gguf *g, cursor *c) {
    name_set set;
    if (!name_set_init(&set, g->n_kv)) return bn_error_set(c->err, BN_ERR_NOMEM, "out of memory");
    bn_status st = BN_OK;
    char q[QUOTE_MAX];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        bn_gguf_kv *kv = &g->kvs[i];
        kv->file_offset = c->pos;
        if ((st = read_string(c, "key", &kv->key)) || (st = check_name(c, "key", kv->file_offset, kv->key))) {
            bn_error_prefix(c->err, "key %llu of %llu: ", (ull)i, (ull)g->n_kv);
            break;
        }
        bn_gguf_quote(q, sizeof q, kv->key.data, kv->key.len);
        bn_gguf_type type;
        if ((st = read_type(c, "value type", &type)) ||
            (st = parse_value(c, type, 0, &kv->value))) {
            bn_error_prefix(c->err, "key '%s' (at offset %llu): ", q, (ull)kv->file_offset);
            break;
        }
        const bn_gguf_string *first = name_set_insert(&set, &kv->key);
        if (first) {
            const bn_gguf_kv *other = (const bn_gguf_kv *)((const char *)first - offsetof(bn_gguf_kv, key));
            st = bn_error_set(c->err, BN_ERR_FORMAT,
                              "key '%s' (at offset %llu): duplicate key (first at offset %llu)", q,
                              (ull)kv->file_offset, (ull)other->file_offset);
            break;
        }
    }
    free(set.slots);
    return st;
}

static bn_status check_alignment(bn_gguf *g, bn_error *err) {
    g->alignment = BN_GGUF_DEFAULT_ALIGNMENT;
    const bn_gguf_kv *kv = bn_gguf_find_kv(g, "general.alignment");
    if (!kv) return BN_OK;
    if (kv->value.type != BN_GGUF_UINT32)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "key 'general.alignment' (at offset %llu): type %s, expected uint32",
                            (ull)kv->file_offset, bn_gguf_type_name(kv->value.type));
    uint64_t a = kv->value.as.u64;
    if (a == 0 || (a & (a - 1)) != 0)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "key 'general.alignment' (at offset %llu): %llu is not a power of two",
                            (ull)kv->file_offset, (ull)a);
    g->alignment = (uint32_t)a;
    return BN_OK;
}

static bn_status parse_tensor_info(cursor *c, bn_gguf_tensor *t, uint64_t index, uint64_t *info_at) {
    uint64_t at = c->pos;
    char q[QUOTE_MAX];
    bn_status st;
    *info_at = at;
    if ((st = read_string(c, "name", &t->name)) || (st = check_name(c, "name", at, t->name)))
        return bn_error_prefix(c->err, "tensor %llu (tensor info at offset %llu): ", (ull)index, (ull)at);
    bn_gguf_quote(q, sizeof q, t->name.data, t->name.len);
    uint64_t field_at = c->pos;
    if ((st = read_u32(c, "n_dims", &t->n_dims))) goto fail;
    if (t->n_dims == 0 || t->n_dims > BN_GGUF_MAX_DIMS) {
        st = bn_error_set(c->err, BN_ERR_FORMAT, "n_dims %u at offset %llu %s", t->n_dims,
                          (ull)field_at, t->n_dims ? "exceeds 4" : "is 0 (at least 1 is needed)");
        goto fail;
    }
    t->n_elements = 1;
    for (uint32_t d = 0; d < BN_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        field_at = c->pos;
        if ((st = read_u64(c, "ne", &t->ne[d]))) goto fail;
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX) {
            st = bn_error_set(c->err, BN_ERR_FORMAT, "ne[%u] at offset %llu: %llu is %s", d,
                              (ull)field_at, (ull)t->ne[d], t->ne[d] ? "too large" : "not positive");
            goto fail;
        }
        if (t->n_elements > (uint64_t)INT64_MAX / t->ne[d]) {
            st = bn_error_set(c->err, BN_ERR_FORMAT,
                              "ne[%u] at offset %llu: element count overflows (product of ne "
                              "exceeds 2^63-1)",
                              d, (ull)field_at);
            goto fail;
        }
        t->n_elements *= t->ne[d];
    }
    field_at = c->pos;
    if ((st = read_u32(c, "type", &t->type))) goto fail;
    if ((st = bn_quant_tensor_bytes(t->type, t->n_elements, t->ne[0], &t->size, c->err))) {
        bn_error_prefix(c->err, "type at offset %llu: ", (ull)field_at);
        goto fail;
    }
    if ((st = read_u64(c, "data offset", &t->offset))) goto fail;
    return BN_OK;
fail:
    return bn_error_prefix(c->err, "tensor '%s' (tensor info at offset %llu): ", q, (ull)at);
}

static int compare_by_offset(const void *a, const void *b) {
    const bn_gguf_tensor *x = *(const bn_gguf_tensor *const *)a, *y = *(const bn_gguf_tensor *const *)b;
    if (x->file_offset != y->file_offset) return x->file_offset < y->file_offset ? -1 : 1;
    return x < y ? -1 : x > y; /* ties in file order, so the message names the later tensor */
}

/* Data offsets: aligned, inside the file, not wrapping into the header, not overlapping. */
static bn_status place_tensors(bn_gguf *g, const uint64_t *info_at, bn_error *err) {
    char q[QUOTE_MAX], q2[QUOTE_MAX];
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        bn_gguf_tensor *t = &g->tensors[i];
        bn_gguf_quote(q, sizeof q, t->name.data, t->name.len);
        uint64_t field_at = info_at[i] + 8 + t->name.len + 4 + 8ull * t->n_dims + 4;
        if (t->offset % g->alignment != 0)
            return bn_error_set(err, BN_ERR_FORMAT,
                                "tensor '%s' (tensor info at offset %llu): data offset at offset %llu: "
                                "%llu is not a multiple of the alignment %u",
                                q, (ull)info_at[i], (ull)field_at, (ull)t->offset, g->alignment);
        if (t->offset > UINT64_MAX - g->data_offset)
            return bn_error_set(err, BN_ERR_FORMAT,
                                "tensor '%s' (tensor info at offset %llu): data offset at offset %llu: "
                                "%llu wraps around to file offset %llu, inside the header",
                                q, (ull)info_at[i], (ull)field_at, (ull)t->offset,
                                (ull)(g->data_offset + t->offset));
        t->file_offset = g->data_offset + t->offset;
        if (t->file_offset > g->size || t->size > g->size - t->file_offset)
            return bn_error_set(err, BN_ERR_FORMAT,
                                "tensor '%s' (tensor info at offset %llu): data offset at offset %llu: "
                                "data [%llu, %llu) extends past the end of the file (%llu bytes)",
                                q, (ull)info_at[i], (ull)field_at, (ull)t->file_offset,
                                (ull)t->file_offset + (ull)t->size, (ull)g->size);
        t->data = g->base + t->file_offset;
    }
    if (g->n_tensors < 2) return BN_OK;
    bn_gguf_tensor **order = malloc(g->n_tensors * sizeof *order);
    if (!order) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < g->n_tensors; i++) order[i] = &g->tensors[i];
    qsort(order, g->n_tensors, sizeof *order, compare_by_offset);
    bn_status st = BN_OK;
    for (uint64_t i = 1; i < g->n_tensors; i++) {
        const bn_gguf_tensor *a = order[i - 1], *b = order[i];
        if (b->file_offset < a->file_offset + a->size) {
            bn_gguf_quote(q, sizeof q, b->name.data, b->name.len);
            bn_gguf_quote(q2, sizeof q2, a->name.data, a->name.len);
            st = bn_error_set(err, BN_ERR_FORMAT,
                              "tensor '%s' (tensor info at offset %llu): data [%llu, %llu) "
                              "overlaps tensor '%s' data [%llu, %llu)",
                              q, (ull)info_at[b - g->tensors], (ull)b->file_offset,
                              (ull)(b->file_offset + b->size), q2, (ull)a->file_offset,
                              (ull)(a->file_offset + a->size));
            break;
        }
    }
    free(order);
    return st;
}

static bn_status parse_file(bn_gguf *g, bn_error *err) {
    cursor c = {g->base, g->size, 0, err};
    uint32_t magic;
    bn_status st;
    if ((st = read_u32(&c, "magic", &magic))) return st;
    if (magic != BN_GGUF_MAGIC)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "magic at offset 0: bytes %02x %02x %02x %02x are not \"GGUF\"",
                            g->base[0], g->base[1], g->base[2], g->base[3]);
    if ((st = read_u32(&c, "version", &g->version))) return st;
    if (g->version != 2 && g->version != 3) {
        bool swapped = g->version == 0x02000000u || g->version == 0x03000000u;
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "version at offset 4: unsupported GGUF version %u%s", g->version,
                            swapped ? " (a big-endian file)" : " (2 and 3 are supported)");
    }
    if ((st = read_u64(&c, "n_tensors", &g->n_tensors))) return st;
    if ((st = read_u64(&c, "n_kv", &g->n_kv))) return st;
    if (g->n_tensors > left(&c) / MIN_TENSOR_INFO)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "n_tensors at offset 8: %llu tensor infos cannot fit in the %llu bytes "
                            "after the header (each needs at least %u)",
                            (ull)g->n_tensors, (ull)left(&c), MIN_TENSOR_INFO);
    if (g->n_kv > left(&c) / MIN_KV_BYTES)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "n_kv at offset 16: %llu key-value pairs cannot fit in the %llu bytes "
                            "after the header (each needs at least %u)",
                            (ull)g->n_kv, (ull)left(&c), MIN_KV_BYTES);
    g->kvs = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kvs);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kvs || !g->tensors) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for the header tables");
    if ((st = parse_kvs(g, &c))) return st;
    if ((st = check_alignment(g, err))) return st;
    if (g->n_tensors > left(&c) / MIN_TENSOR_INFO)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "n_tensors at offset 8: %llu tensor infos cannot fit in the %llu bytes "
                            "after the metadata (at offset %llu; each needs at least %u)",
                            (ull)g->n_tensors, (ull)left(&c), (ull)c.pos, MIN_TENSOR_INFO);
    uint64_t *info_at = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof *info_at);
    name_set set = {0};
    if (!info_at || !name_set_init(&set, g->n_tensors)) {
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory for the tensor table");
        goto done;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if ((st = parse_tensor_info(&c, &g->tensors[i], i, &info_at[i]))) goto done;
        const bn_gguf_string *first = name_set_insert(&set, &g->tensors[i].name);
        if (first) {
            const bn_gguf_tensor *other = (const bn_gguf_tensor *)((const char *)first - offsetof(bn_gguf_tensor, name));
            char q[QUOTE_MAX];
            bn_gguf_quote(q, sizeof q, first->data, first->len);
            st = bn_error_set(err, BN_ERR_FORMAT,
                              "tensor '%s' (tensor info at offset %llu): duplicate name (first at "
                              "tensor info offset %llu)",
                              q, (ull)info_at[i], (ull)info_at[other - g->tensors]);
            goto done;
        }
    }
    g->data_offset = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    st = place_tensors(g, info_at, err);
done:
    free(set.slots);
    free(info_at);
    return st;
}

static bn_status open_common(bn_gguf *g, bn_gguf **out, bn_error *err) {
    bn_status st = parse_file(g, err);
    if (st) {
        bn_error_prefix(err, "%s: ", g->path);
        bn_gguf_close(g);
        return st;
    }
    *out = g;
    return BN_OK;
}

bn_status bn_gguf_open_memory(const void *data, size_t size, const char *name, bn_gguf **out,
                              bn_error *err) {
    *out = NULL;
    bn_gguf *g = calloc(1, sizeof *g);
    if (!g) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    g->path = strdup(name ? name : "<memory>");
    if (!g->path) {
        free(g);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    }
    static const uint8_t empty[1];
    g->base = data ? data : empty;
    g->size = data ? size : 0;
    return open_common(g, out, err);
}

bn_status bn_gguf_open(const char *path, bn_gguf **out, bn_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bn_error_set(err, BN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return bn_error_set(err, BN_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return bn_error_set(err, BN_ERR_IO, "%s: not a regular file", path);
    }
    bn_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        free(g);
        close(fd);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    }
    g->size = (size_t)sb.st_size;
    if (g->size == 0) {
        static const uint8_t empty[1];
        g->base = empty;
    } else {
        void *map = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            free(g->path);
            free(g);
            return bn_error_set(err, BN_ERR_IO, "%s: cannot map %llu bytes: %s", path,
                                (ull)sb.st_size, strerror(e));
        }
        g->base = map;
        g->mapped = true;
    }
    close(fd);
    return open_common(g, out, err);
}

void bn_gguf_close(bn_gguf *g) {
    if (!g) return;
    if (g->kvs)
        for (uint64_t i = 0; i < g->n_kv; i++) free_value(&g->kvs[i].value);
    free(g->kvs);
    free(g->tensors);
    if (g->mapped) munmap((void *)g->base, g->size);
    free(g->path);
    free(g);
}

/* ---- lookups and typed getters ---- */

bool bn_gguf_string_eq(bn_gguf_string s, const char *cstr) {
    size_t n = strlen(cstr);
    return s.len == n && !memcmp(s.data, cstr, n);
}

const bn_gguf_kv *bn_gguf_find_kv(const bn_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (bn_gguf_string_eq(g->kvs[i].key, key)) return &g->kvs[i];
    return NULL;
}

const bn_gguf_tensor *bn_gguf_find_tensor(const bn_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (bn_gguf_string_eq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

static bn_status find_typed(const bn_gguf *g, const char *key, const bn_gguf_kv **kv, bn_error *err) {
    *kv = bn_gguf_find_kv(g, key);
    if (!*kv) return bn_error_set(err, BN_ERR_FORMAT, "%s: key '%s' is missing", g->path, key);
    return BN_OK;
}

static bn_status wrong_type(const bn_gguf *g, const bn_gguf_kv *kv, const char *key, const char *want,
                            bn_error *err) {
    return bn_error_set(err, BN_ERR_FORMAT, "%s: key '%s' (at offset %llu): %s value cannot be read as %s",
                        g->path, key, (ull)kv->file_offset, bn_gguf_type_name(kv->value.type), want);
}

static bool is_unsigned(bn_gguf_type t) {
    return t == BN_GGUF_UINT8 || t == BN_GGUF_UINT16 || t == BN_GGUF_UINT32 || t == BN_GGUF_UINT64;
}

static bool is_signed(bn_gguf_type t) {
    return t == BN_GGUF_INT8 || t == BN_GGUF_INT16 || t == BN_GGUF_INT32 || t == BN_GGUF_INT64;
}

bn_status bn_gguf_get_u64(const bn_gguf *g, const char *key, uint64_t *out, bn_error *err) {
    const bn_gguf_kv *kv;
    bn_status st = find_typed(g, key, &kv, err);
    if (st) return st;
    if (is_unsigned(kv->value.type)) {
        *out = kv->value.as.u64;
        return BN_OK;
    }
    if (is_signed(kv->value.type) && kv->value.as.i64 >= 0) {
        *out = (uint64_t)kv->value.as.i64;
        return BN_OK;
    }
    return wrong_type(g, kv, key, "an unsigned integer", err);
}

bn_status bn_gguf_get_u32(const bn_gguf *g, const char *key, uint32_t *out, bn_error *err) {
    uint64_t v;
    bn_status st = bn_gguf_get_u64(g, key, &v, err);
    if (st) return st;
    if (v > UINT32_MAX)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: key '%s': value %llu does not fit in uint32",
                            g->path, key, (ull)v);
    *out = (uint32_t)v;
    return BN_OK;
}

bn_status bn_gguf_get_i64(const bn_gguf *g, const char *key, int64_t *out, bn_error *err) {
    const bn_gguf_kv *kv;
    bn_status st = find_typed(g, key, &kv, err);
    if (st) return st;
    if (is_signed(kv->value.type)) {
        *out = kv->value.as.i64;
        return BN_OK;
    }
    if (is_unsigned(kv->value.type) && kv->value.as.u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)kv->value.as.u64;
        return BN_OK;
    }
    return wrong_type(g, kv, key, "a signed integer", err);
}

bn_status bn_gguf_get_f32(const bn_gguf *g, const char *key, float *out, bn_error *err) {
    const bn_gguf_kv *kv;
    bn_status st = find_typed(g, key, &kv, err);
    if (st) return st;
    if (kv->value.type != BN_GGUF_FLOAT32 && kv->value.type != BN_GGUF_FLOAT64)
        return wrong_type(g, kv, key, "float", err);
    *out = (float)kv->value.as.f64;
    return BN_OK;
}

bn_status bn_gguf_get_bool(const bn_gguf *g, const char *key, bool *out, bn_error *err) {
    const bn_gguf_kv *kv;
    bn_status st = find_typed(g, key, &kv, err);
    if (st) return st;
    if (kv->value.type != BN_GGUF_BOOL) return wrong_type(g, kv, key, "bool", err);
    *out = kv->value.as.b;
    return BN_OK;
}

bn_status bn_gguf_get_string(const bn_gguf *g, const char *key, bn_gguf_string *out, bn_error *err) {
    const bn_gguf_kv *kv;
    bn_status st = find_typed(g, key, &kv, err);
    if (st) return st;
    if (kv->value.type != BN_GGUF_STRING) return wrong_type(g, kv, key, "string", err);
    *out = kv->value.as.str;
    return BN_OK;
}

bn_status bn_gguf_get_array(const bn_gguf *g, const char *key, bn_gguf_type elem_type,
                            const bn_gguf_array **out, bn_error *err) {
    const bn_gguf_kv *kv;
    bn_status st = find_typed(g, key, &kv, err);
    if (st) return st;
    if (kv->value.type != BN_GGUF_ARRAY) return wrong_type(g, kv, key, "array", err);
    if (elem_type != BN_GGUF_TYPE_COUNT && kv->value.as.arr.elem_type != elem_type)
        return bn_error_set(err, BN_ERR_FORMAT,
                            "%s: key '%s' (at offset %llu): array of %s, expected array of %s",
                            g->path, key, (ull)kv->file_offset,
                            bn_gguf_type_name(kv->value.as.arr.elem_type), bn_gguf_type_name(elem_type));
    *out = &kv->value.as.arr;
    return BN_OK;
}

/* ---- numeric array elements ---- */

uint64_t bn_gguf_array_u64(const bn_gguf_array *arr, uint64_t index) {
    size_t n = bn_gguf_type_size(arr->elem_type);
    if (!arr->raw || n == 0) return 0;
    uint64_t raw = load_le(arr->raw + index * n, (unsigned)n);
    if (is_signed(arr->elem_type)) return (uint64_t)bn_gguf_array_i64(arr, index);
    return raw;
}

int64_t bn_gguf_array_i64(const bn_gguf_array *arr, uint64_t index) {
    size_t n = bn_gguf_type_size(arr->elem_type);
    if (!arr->raw || n == 0) return 0;
    uint64_t raw = load_le(arr->raw + index * n, (unsigned)n);
    switch (arr->elem_type) {
    case BN_GGUF_INT8: return (int8_t)raw;
    case BN_GGUF_INT16: return (int16_t)raw;
    case BN_GGUF_INT32: return (int32_t)raw;
    case BN_GGUF_FLOAT32: case BN_GGUF_FLOAT64: {
        double d = bn_gguf_array_f64(arr, index); /* clamped: out-of-range casts are undefined */
        if (!(d > -9.2e18)) return d != d ? 0 : INT64_MIN;
        return d < 9.2e18 ? (int64_t)d : INT64_MAX;
    }
    default: return (int64_t)raw;
    }
}

double bn_gguf_array_f64(const bn_gguf_array *arr, uint64_t index) {
    size_t n = bn_gguf_type_size(arr->elem_type);
    if (!arr->raw || n == 0) return 0;
    uint64_t raw = load_le(arr->raw + index * n, (unsigned)n);
    if (arr->elem_type == BN_GGUF_FLOAT32) {
        uint32_t bits = (uint32_t)raw;
        float f;
        memcpy(&f, &bits, 4);
        return f;
    }
    if (arr->elem_type == BN_GGUF_FLOAT64) {
        double d;
        memcpy(&d, &raw, 8);
        return d;
    }
    if (is_signed(arr->elem_type)) return (double)bn_gguf_array_i64(arr, index);
    return (double)raw;
}
