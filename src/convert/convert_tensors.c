/*
 * convert_tensors.c: one checkpoint tensor -> its GGUF bytes, written into place (see convert.h
 * for the rules).
 *
 * Design: every tensor is processed in slices of whole output rows (about 2 M elements), so the
 * buffers stay near 20 MB whatever the model: the source values of a slice are read from the
 * safetensors mapping (unaligned, so through memcpy) into floats or ternary values, encoded in the
 * output type and written with pwrite at the tensor's offset plus the slice's. The source pages
 * of a slice are dropped afterwards (madvise MADV_DONTNEED: the mapping is read-only, so they
 * stay in the page cache but leave this process's resident set); tensors whose rows are read out
 * of order (packed rows serve four output rows, permuted q/k rows) drop theirs at the end.
 * Output rows of a ternary tensor are whole I2_S / TQ blocks (the row length is a multiple of
 * 128 or 256, checked when planning), so slices pack independently; the I2_S tensor scale goes
 * after the last slice.
 */
#include "convert/convert_internal.h"

#include "core/fp16.h"
#include "quant/float_encode.h"
#include "quant/quant_format.h"
#include "quant/ternary.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef unsigned long long ull;

#define SLICE_ELEMENTS ((size_t)1 << 21)

void bn_convert_scratch_free(convert_scratch *s) {
    free(s->floats);
    free(s->values);
    free(s->bytes);
    memset(s, 0, sizeof *s);
}

/* Grows the buffers to hold elements floats / values and bytes output bytes. */
static bn_status scratch_reserve(convert_scratch *s, size_t elements, size_t bytes, bn_error *err) {
    if (elements > s->cap_elements) {
        float *f = realloc(s->floats, elements * sizeof *f);
        if (f) s->floats = f;
        int8_t *v = f ? realloc(s->values, elements) : NULL;
        if (v) s->values = v;
        if (!f || !v) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for a slice of %zu values", elements);
        s->cap_elements = elements;
    }
    if (bytes > s->cap_bytes) {
        uint8_t *b = realloc(s->bytes, bytes);
        if (!b) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for a slice of %zu bytes", bytes);
        s->bytes = b;
        s->cap_bytes = bytes;
    }
    return BN_OK;
}

/* Rows per slice for rows of n elements. */
static uint64_t slice_rows(uint64_t n) { return n >= SLICE_ELEMENTS ? 1 : SLICE_ELEMENTS / n; }

/* Drops the pages wholly inside [p, p + len) of a read-only file mapping from the resident set. */
static void release_pages(const void *p, uint64_t len) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || len == 0) return;
    uintptr_t begin = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t end = ((uintptr_t)p + (uintptr_t)len) & ~((uintptr_t)page - 1);
    if (end > begin) madvise((void *)begin, end - begin, MADV_DONTNEED);
}

static bn_status write_at(int fd, const void *data, size_t size, uint64_t offset, const char *path, bn_error *err) {
    const uint8_t *p = data;
    while (size > 0) {
        ssize_t k = pwrite(fd, p, size, (off_t)offset);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return bn_error_set(err, BN_ERR_IO, "%s: write at offset %llu failed: %s", path, (ull)offset,
                                k < 0 ? strerror(errno) : "no space written");
        p += k, size -= (size_t)k, offset += (uint64_t)k;
    }
    return BN_OK;
}

/* Elements [first, first + n) of a float tensor (F32, F16 or BF16, checked when planning). */
static void read_floats(const bn_safetensors_tensor *src, uint64_t first, size_t n, float *out) {
    switch (src->dtype) {
    case BN_SAFETENSORS_F32: memcpy(out, src->data + first * 4, n * 4); break;
    case BN_SAFETENSORS_F16:
    case BN_SAFETENSORS_BF16: {
        const uint8_t *p = src->data + first * 2;
        const bool bf16 = src->dtype == BN_SAFETENSORS_BF16;
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            out[i] = bf16 ? bn_bf16_to_fp32(h) : bn_fp16_to_fp32(h);
        }
        break;
    }
    default: memset(out, 0, n * sizeof *out); break; /* not reached: dtypes are checked first */
    }
}

/* The first value of x[0..n) that is NaN or infinite is an error naming its place in the source
 * tensor (elements first.. of rows of cols). */
static bn_status check_finite(const bn_safetensors_tensor *src, const float *x, size_t n, uint64_t first,
                              uint64_t cols, bn_error *err) {
    for (size_t i = 0; i < n; i++) {
        if (isfinite(x[i])) continue;
        uint64_t at = first + i;
        return bn_error_set(err, BN_ERR_FORMAT, "%s: value [%llu, %llu] is %s (weights must be finite)", src->name,
                            (ull)(at / cols), (ull)(at % cols), isnan(x[i]) ? "NaN" : x[i] > 0 ? "+inf" : "-inf");
    }
    return BN_OK;
}

bn_status bn_convert_packed_scale(const bn_safetensors_tensor *ws, bool multiplies, float *out, bn_error *err) {
    if (ws->dtype != BN_SAFETENSORS_F32 && ws->dtype != BN_SAFETENSORS_F16 && ws->dtype != BN_SAFETENSORS_BF16)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: dtype %s, expected one F32, F16 or BF16 value", ws->name,
                            bn_safetensors_dtype_name(ws->dtype));
    if (ws->n_elements != 1 || ws->n_dims > 1) {
        char shape[96] = "";
        for (uint32_t d = 0; d < ws->n_dims; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%llu", d ? ", " : "", (ull)ws->shape[d]);
        return bn_error_set(err, BN_ERR_FORMAT, "%s: shape [%s], expected [1] or [] (one scale per tensor)", ws->name,
                            shape);
    }
    float v;
    read_floats(ws, 0, 1, &v);
    if (!isfinite(v) || v <= 0.0f)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: %g is not a positive finite scale", ws->name, (double)v);
    *out = multiplies ? v : (float)(1.0 / (double)v);
    if (!isfinite(*out) || *out <= 0.0f)
        return bn_error_set(err, BN_ERR_FORMAT, "%s: 1 / %g is not a float scale", ws->name, (double)v);
    return BN_OK;
}

/* The source row of output row o: rows are permuted from rotate_half halves to NORM pairs for
 * llama's q and k (out row h*D + 2j + i <- source row h*D + i*D/2 + j). */
static uint64_t source_row(const convert_tensor *t, uint64_t o) {
    if (!t->permute_heads) return o;
    const uint64_t d = t->ne[1] / t->permute_heads, h = o / d, w = o % d;
    return h * d + (w % 2) * (d / 2) + w / 2;
}

/* Ternary values of source row s of a packed tensor: row s is bits 2i+1:2i of packed row s % R
 * (i = s / R). */
static bn_status unpack_row(const convert_tensor *t, uint64_t s, int8_t *out, bn_error *err) {
    const uint64_t in = t->ne[0], packed_rows = t->src->shape[0];
    const uint64_t r = s % packed_rows;
    const unsigned shift = (unsigned)(2 * (s / packed_rows));
    const uint8_t *p = t->src->data + r * in;
    for (uint64_t c = 0; c < in; c++) {
        const unsigned code = (p[c] >> shift) & 3u;
        if (code == 3)
            return bn_error_set(err, BN_ERR_FORMAT,
                                "%s: packed row %llu, column %llu, bits %u-%u (row %llu of the matrix) hold the 2-bit "
                                "code 3, which is not -1, 0 or +1: the packed tensor is corrupt",
                                t->src->name, (ull)r, (ull)c, shift + 1, shift, (ull)s);
        out[c] = (int8_t)((int)code - 1);
    }
    return BN_OK;
}

/* Master weights, first pass: m = mean |W| summed in double in file order, rounded to float once;
 * NaN and infinities are refused here. Returns inv = 1.0f / max(m, 1e-5f). */
static bn_status master_inverse_scale(const convert_tensor *t, convert_scratch *s, float *inv, bn_error *err) {
    const uint64_t n = t->src->n_elements, cols = t->ne[0];
    bn_status st = scratch_reserve(s, SLICE_ELEMENTS, 0, err);
    double sum = 0.0;
    for (uint64_t first = 0; st == BN_OK && first < n; first += SLICE_ELEMENTS) {
        const size_t k = n - first < SLICE_ELEMENTS ? (size_t)(n - first) : SLICE_ELEMENTS;
        read_floats(t->src, first, k, s->floats);
        if ((st = check_finite(t->src, s->floats, k, first, cols, err))) break;
        for (size_t i = 0; i < k; i++) sum += fabs((double)s->floats[i]);
        if (!t->permute_heads) {
            const size_t elem = bn_safetensors_dtype_size(t->src->dtype);
            release_pages(t->src->data + first * elem, (uint64_t)k * elem);
        }
    }
    if (st != BN_OK) return st;
    float m = (float)(sum / (double)n);
    if (!(m >= 1e-5f)) m = 1e-5f;
    *inv = 1.0f / m;
    return BN_OK;
}

/* Ternary values of output rows [row0, row0 + n) into s->values. */
static bn_status ternary_slice(const convert_tensor *t, uint64_t row0, uint64_t n, float inv, convert_scratch *s,
                               bn_error *err) {
    const uint64_t in = t->ne[0];
    for (uint64_t o = row0; o < row0 + n; o++) {
        const uint64_t src_row = source_row(t, o);
        int8_t *out = s->values + (o - row0) * in;
        if (t->kind == CONVERT_PACKED) {
            bn_status st = unpack_row(t, src_row, out, err);
            if (st != BN_OK) return st;
            continue;
        }
        float *x = s->floats;
        read_floats(t->src, src_row * in, (size_t)in, x);
        for (uint64_t c = 0; c < in; c++) {
            const float q = nearbyintf(x[c] * inv); /* half to even in the default rounding mode */
            out[c] = (int8_t)(q > 1.0f ? 1 : q < -1.0f ? -1 : (int)q);
        }
    }
    return BN_OK;
}

static bn_status fill_ternary(const convert_tensor *t, int fd, uint64_t offset, const char *path, convert_scratch *s,
                              bn_error *err) {
    const uint64_t in = t->ne[0], rows = t->ne[1];
    const bool i2s = t->type == BN_TYPE_I2_S;
    const bn_quant_format *f = bn_quant_format_get(t->type);
    const uint64_t row_bytes = in / f->block_elements * f->block_bytes;
    const uint64_t step = slice_rows(in);
    bn_status st = scratch_reserve(s, (size_t)(step * in), (size_t)(step * row_bytes + f->tensor_extra_bytes), err);
    if (st != BN_OK) return st;
    float scale = t->scale, inv = 0.0f;
    if (t->kind == CONVERT_MASTER) {
        if ((st = master_inverse_scale(t, s, &inv, err))) return st;
        scale = 1.0f / inv; /* each weight is t / inv, exactly as HF computes it */
    }
    const size_t elem = bn_safetensors_dtype_size(t->src->dtype);
    for (uint64_t row0 = 0; row0 < rows && st == BN_OK; row0 += step) {
        const uint64_t n = rows - row0 < step ? rows - row0 : step;
        if ((st = ternary_slice(t, row0, n, inv, s, err))) break;
        if ((st = bn_ternary_pack(s->bytes, t->type, s->values, (size_t)(n * in), scale, NULL, err)))
            return bn_error_prefix(err, "%s: ", t->name);
        const bool last = row0 + n == rows;
        const uint64_t bytes = n * row_bytes + (i2s && last ? f->tensor_extra_bytes : 0);
        st = write_at(fd, s->bytes, (size_t)bytes, offset + row0 * row_bytes, path, err);
        if (t->kind == CONVERT_MASTER && !t->permute_heads) release_pages(t->src->data + row0 * in * elem, n * in * elem);
    }
    release_pages(t->src->data, t->src->size);
    return st;
}

/* token_embd / output: rows of floats encoded in an embedding/head type. */
static bn_status fill_table(const convert_tensor *t, int fd, uint64_t offset, const char *path, convert_scratch *s,
                            bn_error *err) {
    const uint64_t cols = t->ne[0], rows = t->ne[1];
    uint64_t row_bytes = 0;
    bn_status st = bn_quant_tensor_bytes(t->type, cols, cols, &row_bytes, err);
    if (st != BN_OK) return bn_error_prefix(err, "%s: ", t->name);
    const uint64_t step = slice_rows(cols);
    if ((st = scratch_reserve(s, (size_t)(step * cols), (size_t)(step * row_bytes), err))) return st;
    const size_t elem = bn_safetensors_dtype_size(t->src->dtype);
    for (uint64_t row0 = 0; row0 < rows && st == BN_OK; row0 += step) {
        const uint64_t n = rows - row0 < step ? rows - row0 : step;
        read_floats(t->src, row0 * cols, (size_t)(n * cols), s->floats);
        if ((st = check_finite(t->src, s->floats, (size_t)(n * cols), row0 * cols, cols, err))) break;
        if (t->type == BN_TYPE_F16)
            for (uint64_t i = 0; i < n * cols; i++)
                if (fabsf(s->floats[i]) >= 65520.0f) /* rounds to infinity in F16 */
                    return bn_error_set(err, BN_ERR_FORMAT,
                                        "%s: value [%llu, %llu] = %g does not fit in f16 (choose bf16 or f32 for %s)",
                                        t->src->name, (ull)(row0 + i / cols), (ull)(i % cols),
                                        (double)s->floats[i], t->name);
        for (uint64_t r = 0; r < n; r++)
            bn_quant_encode_row(s->bytes + r * row_bytes, t->type, s->floats + r * cols, (size_t)cols);
        st = write_at(fd, s->bytes, (size_t)(n * row_bytes), offset + row0 * row_bytes, path, err);
        release_pages(t->src->data + row0 * cols * elem, n * cols * elem);
    }
    return st;
}

bn_status bn_convert_fill(const convert_tensor *t, const float *rope_freqs, int fd, uint64_t offset,
                          const char *path, convert_scratch *s, bn_error *err) {
    bn_status st;
    switch (t->kind) {
    case CONVERT_PACKED:
    case CONVERT_MASTER: return fill_ternary(t, fd, offset, path, s, err);
    case CONVERT_TABLE: return fill_table(t, fd, offset, path, s, err);
    case CONVERT_ROPE_FREQS: return write_at(fd, rope_freqs, (size_t)t->ne[0] * sizeof(float), offset, path, err);
    case CONVERT_VECTOR:
        if ((st = scratch_reserve(s, (size_t)t->ne[0], 0, err))) return st;
        read_floats(t->src, 0, (size_t)t->ne[0], s->floats);
        if ((st = check_finite(t->src, s->floats, (size_t)t->ne[0], 0, t->ne[0], err))) return st;
        return write_at(fd, s->floats, (size_t)t->ne[0] * sizeof(float), offset, path, err);
    }
    return bn_error_set(err, BN_ERR_INVALID, "%s: unknown conversion", t->name);
}
