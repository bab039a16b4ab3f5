/*
 * safetensors.h: reading Hugging Face .safetensors files, alone or as a sharded set.
 *
 * A file is: an 8-byte little-endian header length N, N bytes of JSON, then the data area (the
 * rest of the file). The JSON is an object mapping each tensor name to
 *   {"dtype": "F16", "shape": [out, in], "data_offsets": [begin, end]}
 * (offsets relative to the data area, end one past the last byte), plus an optional
 * "__metadata__" object of string -> string.
 *
 * The reader maps the file read-only and validates everything before returning it, as the GGUF
 * reader does: N <= BN_SAFETENSORS_MAX_HEADER and inside the file, the JSON a well-formed object
 * with unique keys (jansson also guarantees valid UTF-8 and no NUL bytes), names 1 to
 * BN_SAFETENSORS_MAX_NAME bytes, exactly the fields dtype/shape/data_offsets in each entry, a known
 * dtype, at most BN_SAFETENSORS_MAX_DIMS non-negative integer dimensions whose element count and
 * byte size do not overflow, begin <= end, end - begin == elements x dtype size, end inside the
 * data area, and no two tensors overlapping. Unlike the Rust reference reader it accepts holes
 * between tensors and bytes after the last one (as GGUF readers accept padding); zero-size and
 * rank-0 tensors are legal (a zero-size tensor occupies no bytes, so it overlaps nothing). Every
 * error is one line: the file name, then the tensor and the field, with strings from the file
 * quoted (control bytes escaped), e.g.
 *   "model.safetensors: tensor 'lm_head.weight': field 'data_offsets' [0, 12] hold 12 bytes,
 *    but shape [2, 2] of F32 needs 16".
 *
 * Everything returned lives until bn_safetensors_close(): names and metadata are copies owned by
 * the object, data pointers point into the mapping and need not be aligned for their dtype (read
 * them with memcpy).
 *
 * A set is a directory holding either model.safetensors or model.safetensors.index.json plus the
 * shard files its "weight_map" names; it is opened as one table of tensors (see below).
 */
#ifndef BN_CONVERT_SAFETENSORS_H
#define BN_CONVERT_SAFETENSORS_H

#include "bitnet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BN_SAFETENSORS_MAX_HEADER 100000000ull /* the Rust reader's MAX_HEADER_SIZE */
#define BN_SAFETENSORS_MAX_NAME 512            /* bytes of a tensor name */
#define BN_SAFETENSORS_MAX_DIMS 8
#define BN_SAFETENSORS_INDEX_MAX (64u << 20)   /* bytes of model.safetensors.index.json */
#define BN_SAFETENSORS_SINGLE_FILE "model.safetensors"
#define BN_SAFETENSORS_INDEX_FILE "model.safetensors.index.json"

/* The dtypes the reader knows. F8_E4M3 and F8_E5M2 are read (sized and validated) but not
 * supported for conversion: bn_safetensors_dtype_supported() is false for them. Other dtypes of
 * the format (F4, F6_*, F8_E8M0, *FNUZ, C64) are refused at open as unsupported. */
typedef enum bn_safetensors_dtype {
    BN_SAFETENSORS_F64,
    BN_SAFETENSORS_F32,
    BN_SAFETENSORS_F16,
    BN_SAFETENSORS_BF16,
    BN_SAFETENSORS_I64,
    BN_SAFETENSORS_I32,
    BN_SAFETENSORS_I16,
    BN_SAFETENSORS_I8,
    BN_SAFETENSORS_U64,
    BN_SAFETENSORS_U32,
    BN_SAFETENSORS_U16,
    BN_SAFETENSORS_U8,
    BN_SAFETENSORS_BOOL,
    BN_SAFETENSORS_F8_E4M3,
    BN_SAFETENSORS_F8_E5M2,
    BN_SAFETENSORS_DTYPE_COUNT
} bn_safetensors_dtype;

/* The format's spelling ("BF16"); "invalid" out of range. */
const char *bn_safetensors_dtype_name(bn_safetensors_dtype dtype);
/* Bytes per element (1 for BOOL and the F8 types); 0 out of range. */
size_t bn_safetensors_dtype_size(bn_safetensors_dtype dtype);
/* Whether a converter can read the values (false for F8_E4M3 / F8_E5M2). */
bool bn_safetensors_dtype_supported(bn_safetensors_dtype dtype);
/* The dtype spelled name (exact, case-sensitive); false when unknown. */
bool bn_safetensors_dtype_parse(const char *name, bn_safetensors_dtype *out);

typedef struct bn_safetensors bn_safetensors;

typedef struct bn_safetensors_tensor {
    const char *name;               /* NUL-terminated, valid UTF-8 */
    bn_safetensors_dtype dtype;
    uint32_t n_dims;                /* 0 for a scalar */
    uint64_t shape[BN_SAFETENSORS_MAX_DIMS]; /* as stored (row-major, outermost first); unused are 0 */
    uint64_t n_elements;            /* product of shape (1 for a scalar) */
    uint64_t begin, end;            /* data_offsets, relative to the data area */
    uint64_t file_offset;           /* 8 + N + begin */
    uint64_t size;                  /* bytes: end - begin == n_elements x dtype size */
    const uint8_t *data;            /* into the mapping (unaligned) */
    const bn_safetensors *file;     /* the file (shard) that holds it */
} bn_safetensors_tensor;

/* Opens and validates a file. On success *out is owned by the caller (bn_safetensors_close). */
bn_status bn_safetensors_open(const char *path, bn_safetensors **out, bn_error *err);
/* The same over a caller-owned buffer that must outlive the result (fuzzing, tests); name is
 * used in messages ("<memory>" when NULL). */
bn_status bn_safetensors_open_memory(const void *data, size_t size, const char *name,
                                     bn_safetensors **out, bn_error *err);
void bn_safetensors_close(bn_safetensors *file);

/* The path (or the name given to open_memory). */
const char *bn_safetensors_path(const bn_safetensors *file);
/* N, the JSON header's length, and the data area's size (file size - 8 - N). */
uint64_t bn_safetensors_header_size(const bn_safetensors *file);
uint64_t bn_safetensors_data_size(const bn_safetensors *file);

/* Tensors: count; the i-th in file order (by data offset; ties by end, then name), the i-th in
 * name order (byte-wise strcmp), and lookup by name (NULL when absent or i >= count). */
size_t bn_safetensors_count(const bn_safetensors *file);
const bn_safetensors_tensor *bn_safetensors_at(const bn_safetensors *file, size_t i);
const bn_safetensors_tensor *bn_safetensors_at_sorted(const bn_safetensors *file, size_t i);
const bn_safetensors_tensor *bn_safetensors_find(const bn_safetensors *file, const char *name);

/* __metadata__: its entries in file order, and lookup (NULL when absent). */
size_t bn_safetensors_metadata_count(const bn_safetensors *file);
bool bn_safetensors_metadata_at(const bn_safetensors *file, size_t i, const char **key,
                                const char **value);
const char *bn_safetensors_metadata_get(const bn_safetensors *file, const char *key);

/* ---- model.safetensors.index.json ---- */

typedef struct bn_safetensors_index_entry {
    char *tensor;                   /* weight_map key */
    char *shard;                    /* weight_map value: a plain file name */
} bn_safetensors_index_entry;

typedef struct bn_safetensors_index {
    size_t n_entries;
    bn_safetensors_index_entry *entries; /* sorted by tensor name */
    size_t n_shards;
    char **shards;                  /* the distinct shard names, sorted */
} bn_safetensors_index;

/* Parses an index document: a JSON object with a "weight_map" object of tensor name -> shard file
 * name (other top-level keys, such as "metadata", are ignored). Tensor names follow the rules of
 * the safetensors reader; shard names must be plain file names: 1..255 bytes, no '/' or '\\',
 * not "." or "..". Duplicate keys are refused. On success *out owns its strings
 * (bn_safetensors_index_free); on failure *out is empty. name is used in messages. */
bn_status bn_safetensors_index_parse(const char *json, size_t len, const char *name,
                                     bn_safetensors_index *out, bn_error *err);
void bn_safetensors_index_free(bn_safetensors_index *index);

/* ---- a directory of shards as one set ---- */

typedef struct bn_safetensors_set bn_safetensors_set;

/* Opens dir/model.safetensors.index.json when it exists: every shard it names must exist (an
 * error names the missing file) and open, every tensor it lists must be in the shard it names,
 * and every tensor of a shard must be listed for that shard (no tensor is in two shards).
 * Otherwise opens dir/model.safetensors alone. Neither present: BN_ERR_IO naming both. On
 * success *out is owned by the caller (bn_safetensors_set_close). */
bn_status bn_safetensors_set_open(const char *dir, bn_safetensors_set **out, bn_error *err);
void bn_safetensors_set_close(bn_safetensors_set *set);

/* Files of the set (the single file, or the shards in name order). */
size_t bn_safetensors_set_n_files(const bn_safetensors_set *set);
const bn_safetensors *bn_safetensors_set_file(const bn_safetensors_set *set, size_t i);
/* Whether the set came from an index file. */
bool bn_safetensors_set_indexed(const bn_safetensors_set *set);
/* All tensors of all files: count, the i-th in name order, lookup by name. */
size_t bn_safetensors_set_count(const bn_safetensors_set *set);
const bn_safetensors_tensor *bn_safetensors_set_at(const bn_safetensors_set *set, size_t i);
const bn_safetensors_tensor *bn_safetensors_set_find(const bn_safetensors_set *set, const char *name);

#endif
