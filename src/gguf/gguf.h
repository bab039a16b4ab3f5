/*
 * gguf.h: reading and writing GGUF files (versions 2 and 3, little-endian).
 *
 * The reader maps the file read-only and validates everything before anything is used: counts
 * against the file size, string and array lengths, tensor shapes, types, offsets, alignment,
 * overlap and duplicates. Strings point into the mapping (they are not NUL-terminated); arrays of
 * numbers point at their raw little-endian bytes in the mapping; arrays of strings and nested
 * arrays are decoded into arrays owned by the bn_gguf object. Everything returned by the reader
 * lives until bn_gguf_close().
 *
 * The writer collects metadata and tensors in memory (tensor data by pointer, or zero-filled
 * without allocating) and writes a file that the reader returns byte for byte.
 */
#ifndef BN_GGUF_H
#define BN_GGUF_H

#include "bitnet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BN_GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define BN_GGUF_DEFAULT_ALIGNMENT 32u
#define BN_GGUF_MAX_DIMS 4
#define BN_GGUF_MAX_ARRAY_DEPTH 64

typedef enum bn_gguf_type {
    BN_GGUF_UINT8 = 0,
    BN_GGUF_INT8 = 1,
    BN_GGUF_UINT16 = 2,
    BN_GGUF_INT16 = 3,
    BN_GGUF_UINT32 = 4,
    BN_GGUF_INT32 = 5,
    BN_GGUF_FLOAT32 = 6,
    BN_GGUF_BOOL = 7,
    BN_GGUF_STRING = 8,
    BN_GGUF_ARRAY = 9,
    BN_GGUF_UINT64 = 10,
    BN_GGUF_INT64 = 11,
    BN_GGUF_FLOAT64 = 12,
    BN_GGUF_TYPE_COUNT
} bn_gguf_type;

/* A string as stored in the file: not NUL-terminated. */
typedef struct bn_gguf_string {
    uint64_t len;
    const char *data;
} bn_gguf_string;

typedef struct bn_gguf_value bn_gguf_value;

typedef struct bn_gguf_array {
    bn_gguf_type elem_type;
    uint64_t count;
    const uint8_t *raw;          /* numeric and bool elements: count * size LE bytes (unaligned) */
    bn_gguf_string *strings;     /* elem_type == STRING: count strings */
    bn_gguf_value *items;        /* elem_type == ARRAY: count nested values (each an ARRAY) */
} bn_gguf_array;

struct bn_gguf_value {
    bn_gguf_type type;
    union {
        uint64_t u64;            /* UINT8/16/32/64 */
        int64_t i64;             /* INT8/16/32/64 */
        double f64;              /* FLOAT32 (exactly widened) / FLOAT64 */
        bool b;                  /* BOOL */
        bn_gguf_string str;      /* STRING */
        bn_gguf_array arr;       /* ARRAY */
    } as;
};

typedef struct bn_gguf_kv {
    bn_gguf_string key;
    bn_gguf_value value;
    uint64_t file_offset; /* where the key starts in the file */
} bn_gguf_kv;

typedef struct bn_gguf_tensor {
    bn_gguf_string name;
    uint32_t n_dims;
    uint64_t ne[BN_GGUF_MAX_DIMS]; /* unused dimensions are 1 */
    uint32_t type;                 /* ggml type id (see quant/quant_format.h) */
    uint64_t offset;               /* relative to the data section, as stored */
    uint64_t file_offset;          /* absolute offset of the data in the file */
    uint64_t n_elements;
    uint64_t size;                 /* bytes, from the format table */
    const uint8_t *data;           /* into the mapping */
} bn_gguf_tensor;

typedef struct bn_gguf {
    char *path;                    /* owned copy; "<memory>" for bn_gguf_open_memory */
    const uint8_t *base;           /* mapping (or caller's buffer) */
    size_t size;
    bool mapped;                   /* base is our mmap (unmapped by close) */
    uint32_t version;
    uint64_t n_kv;
    bn_gguf_kv *kvs;
    uint64_t n_tensors;
    bn_gguf_tensor *tensors;
    uint32_t alignment;
    uint64_t data_offset;          /* start of the tensor data section */
} bn_gguf;

/* Opens and validates a file. On success *out is owned by the caller (bn_gguf_close). */
bn_status bn_gguf_open(const char *path, bn_gguf **out, bn_error *err);
/* The same over a caller-owned buffer that must outlive the result (fuzzing, tests). */
bn_status bn_gguf_open_memory(const void *data, size_t size, const char *name, bn_gguf **out,
                              bn_error *err);
void bn_gguf_close(bn_gguf *gguf);

/* Lookups: NULL when absent. Keys and names are compared as NUL-terminated C strings. */
const bn_gguf_kv *bn_gguf_find_kv(const bn_gguf *gguf, const char *key);
const bn_gguf_tensor *bn_gguf_find_tensor(const bn_gguf *gguf, const char *name);

/* Typed getters. They fail with BN_ERR_FORMAT naming the key when it is missing or of a type that
 * cannot represent the request (integers of any width are accepted when the value fits). */
bn_status bn_gguf_get_u64(const bn_gguf *gguf, const char *key, uint64_t *out, bn_error *err);
bn_status bn_gguf_get_u32(const bn_gguf *gguf, const char *key, uint32_t *out, bn_error *err);
bn_status bn_gguf_get_i64(const bn_gguf *gguf, const char *key, int64_t *out, bn_error *err);
bn_status bn_gguf_get_f32(const bn_gguf *gguf, const char *key, float *out, bn_error *err);
bn_status bn_gguf_get_bool(const bn_gguf *gguf, const char *key, bool *out, bn_error *err);
bn_status bn_gguf_get_string(const bn_gguf *gguf, const char *key, bn_gguf_string *out, bn_error *err);
/* Fails unless the value is an array whose elements have elem_type (BN_GGUF_TYPE_COUNT: any). */
bn_status bn_gguf_get_array(const bn_gguf *gguf, const char *key, bn_gguf_type elem_type,
                            const bn_gguf_array **out, bn_error *err);

/* Element access for numeric arrays (the index must be < count; the caller checks). */
uint64_t bn_gguf_array_u64(const bn_gguf_array *arr, uint64_t index);
int64_t bn_gguf_array_i64(const bn_gguf_array *arr, uint64_t index);
double bn_gguf_array_f64(const bn_gguf_array *arr, uint64_t index);

/* Compares a GGUF string with a C string. */
bool bn_gguf_string_eq(bn_gguf_string s, const char *cstr);
/* s made safe to show in a message: control bytes, DEL and backslash as C escapes (\n, \t, \r,
 * \\, \xNN), everything else as is, cut with "..." to fit cap bytes with the NUL. Writes buf
 * and returns it (for use as a %s argument). Every message that prints a string read from a
 * file prints it through this. */
#define BN_GGUF_QUOTE_MAX 96 /* a buffer size that suits a message */
const char *bn_gguf_string_quote(bn_gguf_string s, char *buf, size_t cap);
/* Size in bytes of one scalar element of a type (0 for STRING/ARRAY). */
size_t bn_gguf_type_size(bn_gguf_type type);
const char *bn_gguf_type_name(bn_gguf_type type);

/* ---- writer ---- */

typedef struct bn_gguf_writer bn_gguf_writer;

bn_gguf_writer *bn_gguf_writer_new(void);   /* NULL on out-of-memory */
void bn_gguf_writer_free(bn_gguf_writer *writer);
void bn_gguf_writer_set_version(bn_gguf_writer *writer, uint32_t version); /* 3 by default */

/* Metadata, in the order added. Keys and string values are copied. A writer reports duplicate
 * keys as BN_ERR_INVALID. general.alignment set here is also used to lay out the tensors. */
bn_status bn_gguf_writer_add_u8(bn_gguf_writer *w, const char *key, uint8_t v, bn_error *err);
bn_status bn_gguf_writer_add_i8(bn_gguf_writer *w, const char *key, int8_t v, bn_error *err);
bn_status bn_gguf_writer_add_u16(bn_gguf_writer *w, const char *key, uint16_t v, bn_error *err);
bn_status bn_gguf_writer_add_i16(bn_gguf_writer *w, const char *key, int16_t v, bn_error *err);
bn_status bn_gguf_writer_add_u32(bn_gguf_writer *w, const char *key, uint32_t v, bn_error *err);
bn_status bn_gguf_writer_add_i32(bn_gguf_writer *w, const char *key, int32_t v, bn_error *err);
bn_status bn_gguf_writer_add_u64(bn_gguf_writer *w, const char *key, uint64_t v, bn_error *err);
bn_status bn_gguf_writer_add_i64(bn_gguf_writer *w, const char *key, int64_t v, bn_error *err);
bn_status bn_gguf_writer_add_f32(bn_gguf_writer *w, const char *key, float v, bn_error *err);
bn_status bn_gguf_writer_add_f64(bn_gguf_writer *w, const char *key, double v, bn_error *err);
bn_status bn_gguf_writer_add_bool(bn_gguf_writer *w, const char *key, bool v, bn_error *err);
bn_status bn_gguf_writer_add_string(bn_gguf_writer *w, const char *key, const char *v, bn_error *err);
/* Numeric/bool array: count elements of elem_type, raw little-endian bytes (copied). */
bn_status bn_gguf_writer_add_array(bn_gguf_writer *w, const char *key, bn_gguf_type elem_type,
                                   const void *data, uint64_t count, bn_error *err);
bn_status bn_gguf_writer_add_string_array(bn_gguf_writer *w, const char *key,
                                          const char *const *strings, uint64_t count, bn_error *err);
/* Any value, including nested arrays (deep-copied). */
bn_status bn_gguf_writer_add_value(bn_gguf_writer *w, const char *key, const bn_gguf_value *value,
                                   bn_error *err);

/* Tensors, in the order added. data == NULL writes zeros without allocating them; otherwise data
 * must stay valid until bn_gguf_writer_write() returns and hold the type's size for ne. */
bn_status bn_gguf_writer_add_tensor(bn_gguf_writer *w, const char *name, uint32_t type,
                                    uint32_t n_dims, const uint64_t *ne, const void *data,
                                    bn_error *err);

/* Writes the file (to a temporary name, then renamed into place). */
bn_status bn_gguf_writer_write(bn_gguf_writer *w, const char *path, bn_error *err);

#endif
