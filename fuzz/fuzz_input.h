/*
 * fuzz_input.h: what every fuzz target shares: a reader that turns libFuzzer's byte string into
 * typed choices (sizes, floats, flags, strings), and the assertion that reports a violated
 * property.
 *
 * Design: the reader never fails. When the bytes run out it returns zeros, so every input, the
 * empty one included, is a complete test case, and a short input means "the smallest choices".
 * Sizes come from bn_fuzz_range (uniform over [lo, hi] by modulo); floats from bn_fuzz_float
 * pick, by one selector byte, either raw bits (any NaN payload, denormals, infinities) or one of
 * a list of edge values, so the fuzzer reaches the special cases without guessing bit patterns.
 *
 * BN_FUZZ_CHECK(cond, fmt, ...) prints the property and the detail, then abort()s: libFuzzer
 * treats that as a crash and saves the input as a reproducer (crash-<sha1>).
 */
#ifndef BN_FUZZ_INPUT_H
#define BN_FUZZ_INPUT_H

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BN_FUZZ_CHECK(cond, ...)                                                              \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: property violated: %s\n  ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fprintf(stderr, "\n");                                                            \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

typedef struct bn_fuzz_input {
    const uint8_t *data;
    size_t size;
} bn_fuzz_input;

static inline bn_fuzz_input bn_fuzz_input_make(const uint8_t *data, size_t size) {
    bn_fuzz_input in = {data, size};
    return in;
}

static inline size_t bn_fuzz_left(const bn_fuzz_input *in) { return in->size; }

static inline uint8_t bn_fuzz_u8(bn_fuzz_input *in) {
    if (in->size == 0) return 0;
    uint8_t v = in->data[0];
    in->data++;
    in->size--;
    return v;
}

static inline uint16_t bn_fuzz_u16(bn_fuzz_input *in) {
    uint16_t lo = bn_fuzz_u8(in);
    return (uint16_t)(lo | (uint16_t)bn_fuzz_u8(in) << 8);
}

static inline uint32_t bn_fuzz_u32(bn_fuzz_input *in) {
    uint32_t lo = bn_fuzz_u16(in);
    return lo | (uint32_t)bn_fuzz_u16(in) << 16;
}

static inline uint64_t bn_fuzz_u64(bn_fuzz_input *in) {
    uint64_t lo = bn_fuzz_u32(in);
    return lo | (uint64_t)bn_fuzz_u32(in) << 32;
}

static inline bool bn_fuzz_bool(bn_fuzz_input *in) { return bn_fuzz_u8(in) & 1; }

/* Uniform-ish integer in [lo, hi] (lo <= hi): one byte when the range fits in one, else four. */
static inline int64_t bn_fuzz_range(bn_fuzz_input *in, int64_t lo, int64_t hi) {
    uint64_t span = (uint64_t)(hi - lo) + 1;
    if (span == 0) return (int64_t)bn_fuzz_u64(in); /* the whole int64 range */
    uint64_t raw = span <= 256 ? bn_fuzz_u8(in) : span <= 65536 ? bn_fuzz_u16(in) : bn_fuzz_u64(in);
    return lo + (int64_t)(raw % span);
}

static inline float bn_fuzz_bits_to_float(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Raw bits a quarter of the time, an edge value a quarter, else a "normal" value in [-8, 8]. */
static inline float bn_fuzz_float(bn_fuzz_input *in) {
    static const float edges[] = {0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, NAN,
                                  FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN, 1e-45f, -1e-45f,
                                  1e-30f, 1e30f, -1e30f, 65504.0f, 1e-5f, 127.0f, -128.0f};
    uint8_t sel = bn_fuzz_u8(in);
    if (sel < 64) return bn_fuzz_bits_to_float(bn_fuzz_u32(in));
    if (sel < 128) return edges[bn_fuzz_u8(in) % (sizeof edges / sizeof edges[0])];
    return (float)((int16_t)bn_fuzz_u16(in)) / 4096.0f;
}

/* A finite float: bn_fuzz_float with non-finite values replaced by zero. */
static inline float bn_fuzz_finite_float(bn_fuzz_input *in) {
    float f = bn_fuzz_float(in);
    return isfinite(f) ? f : 0.0f;
}

/* Up to max_len bytes taken from the input as they are; *len gets how many. */
static inline const uint8_t *bn_fuzz_bytes(bn_fuzz_input *in, size_t max_len, size_t *len) {
    size_t n = max_len < in->size ? max_len : in->size;
    const uint8_t *p = in->data;
    in->data += n;
    in->size -= n;
    *len = n;
    return p;
}

/* A length-prefixed byte string (length byte, then the bytes). */
static inline const uint8_t *bn_fuzz_chunk(bn_fuzz_input *in, size_t *len) {
    size_t want = bn_fuzz_u8(in);
    return bn_fuzz_bytes(in, want, len);
}

/* Exact float equality that treats two NaNs as equal and tells -0 from +0. */
static inline bool bn_fuzz_same_float(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    uint32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    return x == y;
}

/* Whether |a - b| <= tol * max(1, |a|, |b|) (NaN only equals NaN, infinities only themselves). */
static inline bool bn_fuzz_close(float a, float b, float tol) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b)) return a == b;
    double m = fmax(1.0, fmax(fabs((double)a), fabs((double)b)));
    return fabs((double)a - (double)b) <= (double)tol * m;
}

#endif
