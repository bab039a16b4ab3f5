/*
 * gguf_inspect.c: text and JSON reports of a GGUF file (see gguf_inspect.h). Both walk the same
 * validated bn_gguf; nothing here re-parses the file. Strings from the file are escaped so that
 * every metadata entry stays on one line, and long arrays show their element type, length and
 * first items.
 */
#include "tools/gguf_inspect.h"

#include "gguf/gguf_internal.h"
#include "quant/quant_format.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define STRING_PREVIEW 160

typedef unsigned long long ull;

typedef struct type_total {
    uint32_t type;
    uint64_t tensors, parameters, bytes;
} type_total;

/* Per-type totals in the order types first appear; returns the number of rows. */
static size_t totals_by_type(const bn_gguf *g, type_total *rows, size_t cap, uint64_t *params, uint64_t *bytes) {
    size_t n = 0;
    *params = *bytes = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const bn_gguf_tensor *t = &g->tensors[i];
        size_t r = 0;
        while (r < n && rows[r].type != t->type) r++;
        if (r == n) {
            if (n == cap) continue; /* cannot happen: the reader accepts only table types */
            rows[n++] = (type_total){t->type, 0, 0, 0};
        }
        rows[r].tensors++;
        rows[r].parameters += t->n_elements;
        rows[r].bytes += t->size;
        *params += t->n_elements;
        *bytes += t->size;
    }
    return n;
}

static const char *tensor_type_name(uint32_t type) {
    const bn_quant_format *f = bn_quant_format_get(type);
    return f ? f->name : "unknown";
}

/* ---- text ---- */

static void print_escaped(FILE *out, const char *s, uint64_t len, uint64_t limit) {
    bool utf8 = bn_gguf_utf8_valid(s, len, NULL);
    fputc('"', out);
    for (uint64_t i = 0; i < len && i < limit; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
        else if (c == '\n') fputs("\\n", out);
        else if (c == '\t') fputs("\\t", out);
        else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) fprintf(out, "\\x%02x", c);
        else fputc(c, out);
    }
    fputc('"', out);
    if (len > limit) fprintf(out, "... (%llu bytes)", (ull)len);
}

static void print_scalar(FILE *out, const bn_gguf_value *v) {
    switch (v->type) {
    case BN_GGUF_UINT8: case BN_GGUF_UINT16: case BN_GGUF_UINT32: case BN_GGUF_UINT64:
        fprintf(out, "%llu", (ull)v->as.u64);
        break;
    case BN_GGUF_INT8: case BN_GGUF_INT16: case BN_GGUF_INT32: case BN_GGUF_INT64:
        fprintf(out, "%lld", (long long)v->as.i64);
        break;
    case BN_GGUF_FLOAT32: fprintf(out, "%.9g", v->as.f64); break;
    case BN_GGUF_FLOAT64: fprintf(out, "%.17g", v->as.f64); break;
    case BN_GGUF_BOOL: fputs(v->as.b ? "true" : "false", out); break;
    case BN_GGUF_STRING: print_escaped(out, v->as.str.data, v->as.str.len, STRING_PREVIEW); break;
    default: break;
    }
}

/* Element i of an array of numbers or bools, as a value. */
static bn_gguf_value array_element(const bn_gguf_array *a, uint64_t i) {
    bn_gguf_value v;
    memset(&v, 0, sizeof v);
    v.type = a->elem_type;
    switch (a->elem_type) {
    case BN_GGUF_FLOAT32: case BN_GGUF_FLOAT64: v.as.f64 = bn_gguf_array_f64(a, i); break;
    case BN_GGUF_INT8: case BN_GGUF_INT16: case BN_GGUF_INT32: case BN_GGUF_INT64:
        v.as.i64 = bn_gguf_array_i64(a, i);
        break;
    case BN_GGUF_BOOL: v.as.b = a->raw[i] != 0; break;
    default: v.as.u64 = bn_gguf_array_u64(a, i); break;
    }
    return v;
}

static void print_value(FILE *out, const bn_gguf_value *v) {
    if (v->type != BN_GGUF_ARRAY) {
        fprintf(out, "%s ", bn_gguf_type_name(v->type));
        print_scalar(out, v);
        return;
    }
    const bn_gguf_array *a = &v->as.arr;
    fprintf(out, "array[%s] length %llu [", bn_gguf_type_name(a->elem_type), (ull)a->count);
    for (uint64_t i = 0; i < a->count && i < BN_INSPECT_ARRAY_ITEMS; i++) {
        if (i) fputs(", ", out);
        if (a->elem_type == BN_GGUF_STRING) {
            print_escaped(out, a->strings[i].data, a->strings[i].len, STRING_PREVIEW);
        } else if (a->elem_type == BN_GGUF_ARRAY) {
            print_value(out, &a->items[i]);
        } else {
            bn_gguf_value e = array_element(a, i);
            print_scalar(out, &e);
        }
    }
    if (a->count > BN_INSPECT_ARRAY_ITEMS) fprintf(out, ", ... %llu more", (ull)(a->count - BN_INSPECT_ARRAY_ITEMS));
    fputc(']', out);
}

static void format_shape(char *buf, size_t cap, const bn_gguf_tensor *t) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (uint32_t d = 0; d < t->n_dims && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, d ? ", %llu" : "%llu", (ull)t->ne[d]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

static bn_status output_status(FILE *out, bn_error *err) {
    if (fflush(out) != 0 || ferror(out)) return bn_error_set(err, BN_ERR_IO, "cannot write the report");
    return BN_OK;
}

bn_status bn_gguf_inspect_text(FILE *out, const bn_gguf *g, bn_error *err) {
    fprintf(out, "file: %s\n", g->path);
    fprintf(out, "gguf version: %u\n", g->version);
    fprintf(out, "file size: %llu bytes\n", (ull)g->size);
    fprintf(out, "alignment: %u\n", g->alignment);
    fprintf(out, "data offset: %llu\n", (ull)g->data_offset);
    fprintf(out, "\nmetadata: %llu keys\n", (ull)g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        char key[256];
        bn_gguf_quote(key, sizeof key, g->kvs[i].key.data, g->kvs[i].key.len);
        fprintf(out, "  %s: ", key);
        print_value(out, &g->kvs[i].value);
        fputc('\n', out);
    }
    fprintf(out, "\ntensors: %llu\n", (ull)g->n_tensors);
    fprintf(out, "  %-32s %-6s %-18s %12s %12s\n", "name", "type", "shape", "bytes", "offset");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const bn_gguf_tensor *t = &g->tensors[i];
        char name[256], shape[128];
        bn_gguf_quote(name, sizeof name, t->name.data, t->name.len);
        format_shape(shape, sizeof shape, t);
        fprintf(out, "  %-32s %-6s %-18s %12llu %12llu\n", name, tensor_type_name(t->type), shape,
                (ull)t->size, (ull)t->file_offset);
    }
    type_total rows[64];
    uint64_t params, bytes;
    size_t n = totals_by_type(g, rows, 64, &params, &bytes);
    fprintf(out, "\ntotals: %llu tensors, %llu parameters, %llu bytes of tensor data\n",
            (ull)g->n_tensors, (ull)params, (ull)bytes);
    for (size_t r = 0; r < n; r++)
        fprintf(out, "  %-6s %6llu tensors %14llu parameters %14llu bytes\n", tensor_type_name(rows[r].type),
                (ull)rows[r].tensors, (ull)rows[r].parameters, (ull)rows[r].bytes);
    return output_status(out, err);
}

/* ---- JSON ---- */

/* A JSON string from file bytes; bytes that are not valid UTF-8 become U+FFFD. */
static json_t *json_bytes(const char *s, uint64_t len) {
    if (bn_gguf_utf8_valid(s, len, NULL)) return json_stringn(s, (size_t)len);
    char *copy = malloc((size_t)len * 3 + 1);
    if (!copy) return NULL;
    size_t o = 0;
    for (uint64_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) copy[o++] = (char)c;
        else memcpy(copy + o, "\xef\xbf\xbd", 3), o += 3;
    }
    json_t *j = json_stringn(copy, o);
    free(copy);
    return j;
}

/* Integers beyond int64 (uint64 above 2^63-1) are emitted as decimal strings. */
static json_t *json_u64(uint64_t v) {
    if (v <= (uint64_t)INT64_MAX) return json_integer((json_int_t)v);
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (ull)v);
    return json_string(buf);
}

static json_t *json_scalar(const bn_gguf_value *v) {
    switch (v->type) {
    case BN_GGUF_UINT8: case BN_GGUF_UINT16: case BN_GGUF_UINT32: case BN_GGUF_UINT64: return json_u64(v->as.u64);
    case BN_GGUF_INT8: case BN_GGUF_INT16: case BN_GGUF_INT32: case BN_GGUF_INT64: return json_integer(v->as.i64);
    case BN_GGUF_FLOAT32: case BN_GGUF_FLOAT64:
        /* JSON has no NaN or infinity: those print as strings */
        if (v->as.f64 != v->as.f64) return json_string("nan");
        if (v->as.f64 > 1.7976931348623157e308) return json_string("inf");
        if (v->as.f64 < -1.7976931348623157e308) return json_string("-inf");
        return json_real(v->as.f64);
    case BN_GGUF_BOOL: return json_boolean(v->as.b);
    case BN_GGUF_STRING: return json_bytes(v->as.str.data, v->as.str.len);
    default: return json_null();
    }
}

/* {"type": ..., "value": ...} or, for arrays, {"type": "array", "element_type", "count", "items"}. */
static json_t *json_value(const bn_gguf_value *v, const bn_gguf_string *key) {
    json_t *o = json_object();
    if (!o) return NULL;
    if (key) json_object_set_new(o, "key", json_bytes(key->data, key->len));
    json_object_set_new(o, "type", json_string(bn_gguf_type_name(v->type)));
    if (v->type != BN_GGUF_ARRAY) {
        json_object_set_new(o, "value", json_scalar(v));
        return o;
    }
    const bn_gguf_array *a = &v->as.arr;
    json_object_set_new(o, "element_type", json_string(bn_gguf_type_name(a->elem_type)));
    json_object_set_new(o, "count", json_u64(a->count));
    json_t *items = json_array();
    for (uint64_t i = 0; i < a->count && i < BN_INSPECT_ARRAY_ITEMS; i++) {
        if (a->elem_type == BN_GGUF_STRING) {
            json_array_append_new(items, json_bytes(a->strings[i].data, a->strings[i].len));
        } else if (a->elem_type == BN_GGUF_ARRAY) {
            json_array_append_new(items, json_value(&a->items[i], NULL));
        } else {
            bn_gguf_value e = array_element(a, i);
            json_array_append_new(items, json_scalar(&e));
        }
    }
    json_object_set_new(o, "items", items);
    json_object_set_new(o, "truncated", json_boolean(a->count > BN_INSPECT_ARRAY_ITEMS));
    return o;
}

bn_status bn_gguf_inspect_json(FILE *out, const bn_gguf *g, bn_error *err) {
    json_t *root = json_object();
    if (!root) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    json_object_set_new(root, "file", json_bytes(g->path, strlen(g->path)));
    json_object_set_new(root, "version", json_integer(g->version));
    json_object_set_new(root, "file_size", json_u64(g->size));
    json_object_set_new(root, "alignment", json_integer(g->alignment));
    json_object_set_new(root, "data_offset", json_u64(g->data_offset));
    json_t *meta = json_array();
    for (uint64_t i = 0; i < g->n_kv; i++) {
        json_array_append_new(meta, json_value(&g->kvs[i].value, &g->kvs[i].key));
    }
    json_object_set_new(root, "metadata", meta);
    json_t *tensors = json_array();
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const bn_gguf_tensor *t = &g->tensors[i];
        json_t *shape = json_array();
        for (uint32_t d = 0; d < t->n_dims; d++) json_array_append_new(shape, json_u64(t->ne[d]));
        json_t *o = json_object();
        json_object_set_new(o, "name", json_bytes(t->name.data, t->name.len));
        json_object_set_new(o, "type", json_string(tensor_type_name(t->type)));
        json_object_set_new(o, "type_id", json_integer(t->type));
        json_object_set_new(o, "shape", shape);
        json_object_set_new(o, "parameters", json_u64(t->n_elements));
        json_object_set_new(o, "bytes", json_u64(t->size));
        json_object_set_new(o, "offset", json_u64(t->offset));
        json_object_set_new(o, "file_offset", json_u64(t->file_offset));
        json_array_append_new(tensors, o);
    }
    json_object_set_new(root, "tensors", tensors);
    type_total rows[64];
    uint64_t params, bytes;
    size_t n = totals_by_type(g, rows, 64, &params, &bytes);
    json_t *totals = json_object(), *by_type = json_object();
    json_object_set_new(totals, "tensors", json_u64(g->n_tensors));
    json_object_set_new(totals, "parameters", json_u64(params));
    json_object_set_new(totals, "bytes", json_u64(bytes));
    for (size_t r = 0; r < n; r++) {
        json_t *row = json_object();
        json_object_set_new(row, "tensors", json_u64(rows[r].tensors));
        json_object_set_new(row, "parameters", json_u64(rows[r].parameters));
        json_object_set_new(row, "bytes", json_u64(rows[r].bytes));
        json_object_set_new(by_type, tensor_type_name(rows[r].type), row);
    }
    json_object_set_new(totals, "by_type", by_type);
    json_object_set_new(root, "totals", totals);
    int rc = json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    fputc('\n', out);
    if (rc != 0) return bn_error_set(err, BN_ERR_IO, "cannot write the JSON report");
    return output_status(out, err);
}
