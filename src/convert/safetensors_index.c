/*
 * safetensors_index.c: model.safetensors.index.json and a directory of shards opened as one set
 * (see safetensors.h).
 *
 * Design: the index is untrusted input that names files, so a shard name must be a plain file
 * name (no separator, not "." or "..") before it is joined to the directory: an index cannot make
 * the reader open anything outside it. The set is then cross-checked both ways: every tensor the
 * index lists is in the shard it names, and every tensor of a shard is listed for that shard, so
 * a name maps to exactly one tensor of the set whichever direction a caller looks from. All
 * shards named must exist before any is opened, so a missing file is reported as such (naming
 * it) and not as the first failure of a long open.
 */
#include "convert/convert_json.h"
#include "convert/safetensors.h"
#include "convert/safetensors_internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef unsigned long long ull;

#define SHARD_NAME_MAX 255 /* NAME_MAX of Linux file systems */

struct bn_safetensors_set {
    bool indexed;
    size_t n_files;
    bn_safetensors **files;
    size_t n_tensors;
    const bn_safetensors_tensor **by_name;
};

/* ---- the index ---- */

void bn_safetensors_index_free(bn_safetensors_index *index) {
    if (!index) return;
    for (size_t i = 0; i < index->n_entries; i++) {
        free(index->entries[i].tensor);
        free(index->entries[i].shard);
    }
    free(index->entries);
    for (size_t i = 0; i < index->n_shards; i++) free(index->shards[i]);
    free(index->shards);
    memset(index, 0, sizeof *index);
}

/* A shard name joined to a directory must stay in it. */
static bn_status check_shard_name(const char *shard, bn_error *err) {
    size_t len = strlen(shard);
    if (len == 0) return bn_error_set(err, BN_ERR_FORMAT, "empty shard file name");
    if (len > SHARD_NAME_MAX)
        return bn_error_set(err, BN_ERR_FORMAT, "shard file name of %llu bytes exceeds the limit of %d",
                            (ull)len, SHARD_NAME_MAX);
    char q[BN_CONVERT_QUOTE_MAX];
    if (strchr(shard, '/') || strchr(shard, '\\'))
        return bn_error_set(err, BN_ERR_FORMAT, "shard '%s' is not a plain file name (it contains a path separator)",
                            bn_convert_quote(shard, q, sizeof q));
    if (!strcmp(shard, ".") || !strcmp(shard, ".."))
        return bn_error_set(err, BN_ERR_FORMAT, "shard '%s' is not a plain file name (it names a directory)",
                            shard);
    return BN_OK;
}

static int entry_by_tensor(const void *a, const void *b) {
    return strcmp(((const bn_safetensors_index_entry *)a)->tensor, ((const bn_safetensors_index_entry *)b)->tensor);
}

static int string_order(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bn_status index_build(const json_t *map, bn_safetensors_index *out, bn_error *err) {
    size_t n = json_object_size(map);
    out->entries = calloc(n, sizeof *out->entries);
    out->shards = calloc(n, sizeof *out->shards);
    if (!out->entries || !out->shards) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %llu entries", (ull)n);
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)map, key, value) {
        char q[BN_CONVERT_QUOTE_MAX];
        bn_status st = bn_safetensors_check_name(key, err);
        if (!st && !json_is_string(value))
            st = bn_error_set(err, BN_ERR_FORMAT, "shard has JSON type %s, expected string",
                              bn_convert_json_type(value));
        if (!st) st = check_shard_name(json_string_value(value), err);
        if (st) return bn_error_prefix(err, "field 'weight_map': tensor '%s': ", bn_convert_quote(key, q, sizeof q));
        bn_safetensors_index_entry *e = &out->entries[out->n_entries];
        e->tensor = strdup(key);
        e->shard = strdup(json_string_value(value));
        out->n_entries++; /* counted before the NOMEM check, so a half-built entry is freed */
        if (!e->tensor || !e->shard) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    }
    qsort(out->entries, out->n_entries, sizeof *out->entries, entry_by_tensor);
    /* distinct shard names, sorted */
    char **names = malloc(n * sizeof *names);
    if (!names) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) names[i] = out->entries[i].shard;
    qsort(names, n, sizeof *names, string_order);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && !strcmp(names[i], names[i - 1])) continue;
        out->shards[out->n_shards] = strdup(names[i]);
        if (!out->shards[out->n_shards]) {
            free(names);
            return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        }
        out->n_shards++;
    }
    free(names);
    return BN_OK;
}

bn_status bn_safetensors_index_parse(const char *json, size_t len, const char *name, bn_safetensors_index *out,
                                     bn_error *err) {
    memset(out, 0, sizeof *out);
    if (!name) name = "<memory>";
    json_t *root = NULL;
    bn_status st = bn_convert_parse_object(json, len, JSON_REJECT_DUPLICATES, "index JSON", 0, &root, err);
    if (st) return bn_error_prefix(err, "%s: ", name);
    const json_t *map = json_object_get(root, "weight_map");
    if (!map)
        st = bn_error_set(err, BN_ERR_FORMAT, "field 'weight_map' is missing");
    else if (!json_is_object(map))
        st = bn_error_set(err, BN_ERR_FORMAT, "field 'weight_map' has JSON type %s, expected object",
                          bn_convert_json_type(map));
    else if (json_object_size(map) == 0)
        st = bn_error_set(err, BN_ERR_FORMAT, "field 'weight_map' is empty (no tensor is listed)");
    else
        st = index_build(map, out, err);
    json_decref(root);
    if (st) {
        bn_safetensors_index_free(out);
        return bn_error_prefix(err, "%s: ", name);
    }
    return BN_OK;
}

static const bn_safetensors_index_entry *index_find(const bn_safetensors_index *index, const char *tensor) {
    bn_safetensors_index_entry key = {(char *)tensor, NULL};
    return bsearch(&key, index->entries, index->n_entries, sizeof key, entry_by_tensor);
}

/* ---- the set ---- */

void bn_safetensors_set_close(bn_safetensors_set *set) {
    if (!set) return;
    for (size_t i = 0; i < set->n_files; i++) bn_safetensors_close(set->files[i]);
    free(set->files);
    free(set->by_name);
    free(set);
}

static char *join(const char *dir, const char *file) {
    size_t a = strlen(dir), b = strlen(file);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, file, b + 1);
    return p;
}

/* 0 when path exists, else the errno of stat. */
static int missing(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? 0 : errno;
}

static int tensor_by_name(const void *a, const void *b) {
    return strcmp((*(const bn_safetensors_tensor *const *)a)->name, (*(const bn_safetensors_tensor *const *)b)->name);
}

/* Both directions of the index <-> shard agreement, for shard s (index->shards[s]). */
static bn_status cross_check(const bn_safetensors_index *index, size_t s, const bn_safetensors *file,
                             bn_error *err) {
    const char *shard = index->shards[s];
    char q[BN_CONVERT_QUOTE_MAX], q2[BN_CONVERT_QUOTE_MAX];
    for (size_t i = 0; i < bn_safetensors_count(file); i++) {
        const bn_safetensors_tensor *t = bn_safetensors_at(file, i);
        const bn_safetensors_index_entry *e = index_find(index, t->name);
        if (!e)
            return bn_error_set(err, BN_ERR_FORMAT, "shard '%s' holds tensor '%s', which the index does not list",
                                bn_convert_quote(shard, q2, sizeof q2), bn_convert_quote(t->name, q, sizeof q));
        if (strcmp(e->shard, shard) != 0) {
            char q3[BN_CONVERT_QUOTE_MAX];
            return bn_error_set(err, BN_ERR_FORMAT, "shard '%s' holds tensor '%s', which the index places in shard '%s'",
                                bn_convert_quote(shard, q2, sizeof q2), bn_convert_quote(t->name, q, sizeof q),
                                bn_convert_quote(e->shard, q3, sizeof q3));
        }
    }
    for (size_t i = 0; i < index->n_entries; i++) {
        const bn_safetensors_index_entry *e = &index->entries[i];
        if (strcmp(e->shard, shard) == 0 && !bn_safetensors_find(file, e->tensor))
            return bn_error_set(err, BN_ERR_FORMAT, "tensor '%s' is not in its shard '%s'",
                                bn_convert_quote(e->tensor, q, sizeof q), bn_convert_quote(shard, q2, sizeof q2));
    }
    return BN_OK;
}

static bn_status open_indexed(bn_safetensors_set *set, const char *dir, const char *index_path, bn_error *err) {
    char *text = NULL;
    size_t len = 0;
    bn_status st = bn_convert_read_file(index_path, BN_SAFETENSORS_INDEX_MAX, &text, &len, err);
    if (st) return st;
    bn_safetensors_index index;
    st = bn_safetensors_index_parse(text, len, index_path, &index, err);
    free(text);
    if (st) return st;
    set->indexed = true;
    set->files = calloc(index.n_shards, sizeof *set->files);
    set->by_name = calloc(index.n_entries, sizeof *set->by_name);
    if (!set->files || !set->by_name) {
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t s = 0; s < index.n_shards; s++) {
        char *path = join(dir, index.shards[s]);
        if (!path) {
            st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
            goto done;
        }
        int e = missing(path);
        if (e) {
            char q[BN_CONVERT_QUOTE_MAX];
            st = bn_error_set(err, BN_ERR_IO, "%s: shard '%s' named by the index is missing (%s: %s)", index_path,
                              bn_convert_quote(index.shards[s], q, sizeof q), path, strerror(e));
        }
        free(path);
        if (st) goto done;
    }
    for (size_t s = 0; s < index.n_shards; s++) {
        char *path = join(dir, index.shards[s]);
        if (!path) {
            st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
            goto done;
        }
        st = bn_safetensors_open(path, &set->files[s], err);
        free(path);
        if (st) goto done;
        set->n_files++;
        if ((st = cross_check(&index, s, set->files[s], err))) {
            bn_error_prefix(err, "%s: ", index_path);
            goto done;
        }
    }
    /* cross_check made the shards' tensors and the index the same set of names */
    for (size_t s = 0; s < set->n_files; s++)
        for (size_t i = 0; i < bn_safetensors_count(set->files[s]); i++)
            set->by_name[set->n_tensors++] = bn_safetensors_at(set->files[s], i);
    qsort(set->by_name, set->n_tensors, sizeof *set->by_name, tensor_by_name);
done:
    bn_safetensors_index_free(&index);
    return st;
}

static bn_status open_single(bn_safetensors_set *set, const char *path, bn_error *err) {
    set->files = calloc(1, sizeof *set->files);
    if (!set->files) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    bn_status st = bn_safetensors_open(path, &set->files[0], err);
    if (st) return st;
    set->n_files = 1;
    const bn_safetensors *f = set->files[0];
    set->n_tensors = bn_safetensors_count(f);
    set->by_name = calloc(set->n_tensors ? set->n_tensors : 1, sizeof *set->by_name);
    if (!set->by_name) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < set->n_tensors; i++) set->by_name[i] = bn_safetensors_at_sorted(f, i);
    return BN_OK;
}

bn_status bn_safetensors_set_open(const char *dir, bn_safetensors_set **out, bn_error *err) {
    *out = NULL;
    bn_safetensors_set *set = calloc(1, sizeof *set);
    char *index_path = join(dir, BN_SAFETENSORS_INDEX_FILE);
    char *single_path = join(dir, BN_SAFETENSORS_SINGLE_FILE);
    bn_status st;
    if (!set || !index_path || !single_path)
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    else if (!missing(index_path))
        st = open_indexed(set, dir, index_path, err);
    else if (!missing(single_path))
        st = open_single(set, single_path, err);
    else
        st = bn_error_set(err, BN_ERR_IO, "%s: neither %s nor %s is there", dir, BN_SAFETENSORS_INDEX_FILE,
                          BN_SAFETENSORS_SINGLE_FILE);
    free(index_path);
    free(single_path);
    if (st) {
        bn_safetensors_set_close(set);
        return st;
    }
    *out = set;
    return BN_OK;
}

size_t bn_safetensors_set_n_files(const bn_safetensors_set *set) { return set->n_files; }

const bn_safetensors *bn_safetensors_set_file(const bn_safetensors_set *set, size_t i) {
    return i < set->n_files ? set->files[i] : NULL;
}

bool bn_safetensors_set_indexed(const bn_safetensors_set *set) { return set->indexed; }
size_t bn_safetensors_set_count(const bn_safetensors_set *set) { return set->n_tensors; }

const bn_safetensors_tensor *bn_safetensors_set_at(const bn_safetensors_set *set, size_t i) {
    return i < set->n_tensors ? set->by_name[i] : NULL;
}

const bn_safetensors_tensor *bn_safetensors_set_find(const bn_safetensors_set *set, const char *name) {
    size_t lo = 0, hi = set->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(set->by_name[mid]->name, name);
        if (c == 0) return set->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}
