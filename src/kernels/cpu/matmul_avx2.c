/*
 * matmul_avx2.c: AVX2 (+FMA, F16C) matrix kernels; contracts in ref_matmul.h / matmul_isa.h.
 *
 * Ternary: codes are used unsigned (0, 1, 2 = w + 1) as the u8 operand of maddubs against the
 * int8 activations, and the activation sum is subtracted afterwards (spec section 4). An I2_S
 * block is one 32-byte load whose 2-bit field n (bits 7-2n..6-2n) lines up with activations
 * 32n..32n+31, so shifts and a mask give four code vectors; TQ2_0 is the same per half block
 * with field n at bits 2n+1..2n; TQ1_0 is decoded per block to 256 codes (base-3 digits by a
 * byte multiply and two unsigned compares). maddubs pairs stay within int16 (2 * 2 * 128 per
 * pair, four pairs per block). GEMV runs over the I2S_TILE8 layout one tile of 8 rows at a time
 * (one sequential stream, software prefetch) sharing the activation loads; GEMM reuses each
 * decoded weight block across 4 tokens, token tiles outside and rows inside.
 *
 * F16: 16 lanes (two 8-float accumulators) per output, one fused multiply-add per product, as
 * the reference defines; GEMV reads two sequential row streams with a short prefetch, GEMM converts a
 * weight chunk once per 4 tokens.
 * Int8: maddubs(|q|, w * sign(q)) (weights are within -127..127, so negation is exact).
 * The ternary and int8 kernels live in matmul_avx2_body.h, which matmul_avxvnni.c compiles a
 * second time with AVX-VNNI's vpdpbusd; this file holds the rest of the AVX2 path.
 */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#include "kernels/cpu/matmul_isa.h"

#include "quant/quant_format.h"
#include "quant/ternary.h"

#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

/* ---- activation quantization ---- */

void bn_avx2_quantize_activations(int8_t *q, float *scales, int32_t *sums, const float *x,
                                  int n_tokens, int cols) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int t = 0; t < n_tokens; t++) {
        const float *xt = x + (size_t)t * cols;
        int8_t *qt = q + (size_t)t * cols;
        __m256 vmax = _mm256_setzero_ps();
        int c = 0;
        /* max(abs, acc) keeps acc for a NaN element, as the reference's `a > max` does */
        for (; c + 8 <= cols; c += 8)
            vmax = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(xt + c), abs_mask), vmax);
        float lanes[8];
        _mm256_storeu_ps(lanes, vmax);
        float max_abs = 0.0f;
        for (int i = 0; i < 8; i++)
            if (lanes[i] > max_abs) max_abs = lanes[i];
        for (; c < cols; c++)
            if (fabsf(xt[c]) > max_abs) max_abs = fabsf(xt[c]);
        double denominator = max_abs > 1e-5f ? (double)max_abs : 1e-5;
        float scale = (float)(127.0 / denominator);
        const __m256 vs = _mm256_set1_ps(scale);
        c = 0;
        for (; c + 32 <= cols; c += 32) {
            __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xt + c), vs));
            __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xt + c + 8), vs));
            __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xt + c + 16), vs));
            __m256i e = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xt + c + 24), vs));
            __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(d, e));
            _mm256_storeu_si256((__m256i *)(qt + c), _mm256_permutevar8x32_epi32(packed, order));
        }
        for (; c < cols; c++) {
            float v = nearbyintf(xt[c] * scale);
            qt[c] = (int8_t)(!(v >= -128.0f) ? -128 : v > 127.0f ? 127 : (int)v);
        }
        int32_t sum = 0;
        for (c = 0; c < cols; c++) sum += qt[c];
        scales[t] = scale;
        sums[t] = sum;
    }
}

/* ---- float finish of I2_S sums: 8 rows of one token per vector (see matmul_avx512.c) ---- */

void bn_avx2_ternary_finish_i2s(float *y, int rows, float tensor_scale, const int32_t *sums,
                                const float *scales, int n_tokens, int row_begin, int row_end) {
    const __m256 ts = _mm256_set1_ps(tensor_scale);
    const __m256i index =
        _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(n_tokens));
    int r0 = row_begin;
    for (; r0 + 8 <= row_end; r0 += 8) {
        const int32_t *block = sums + (size_t)(r0 - row_begin) * (size_t)n_tokens;
        for (int t = 0; t < n_tokens; t++) {
            __m256i s = _mm256_i32gather_epi32(block + t, index, 4);
            __m256 v = _mm256_div_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(scales[t]));
            _mm256_storeu_ps(y + (size_t)t * (size_t)rows + (size_t)r0, _mm256_mul_ps(v, ts));
        }
    }
    for (int t = 0; t < n_tokens; t++)
        for (int r = r0; r < row_end; r++)
            y[(size_t)t * (size_t)rows + (size_t)r] =
                (float)sums[(size_t)(r - row_begin) * (size_t)n_tokens + (size_t)t] / scales[t] *
                tensor_scale;
}

/* ---- F16 ---- */

/* One output from its two 8-lane accumulators: the scalar tail (columns from..cols-1) joins
 * its lanes, then the shared pairwise reduction. */
static inline float f16_finish(__m256 lo, __m256 hi, const uint16_t *w, const float *x, int from,
                               int cols) {
    if (from == cols) { /* no tail: the halving tree of bn_f16_reduce_lanes in registers */
        __m256 half = _mm256_add_ps(lo, hi);
        __m128 quarter = _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
        __m128 eighth = _mm_add_ps(quarter, _mm_movehl_ps(quarter, quarter));
        return _mm_cvtss_f32(_mm_add_ss(eighth, _mm_movehdup_ps(eighth)));
    }
    float lanes[BN_F16_LANES];
    _mm256_storeu_ps(lanes, lo);
    _mm256_storeu_ps(lanes + 8, hi);
    for (int c = from; c < cols; c++)
        lanes[c % BN_F16_LANES] = fmaf(_cvtsh_ss(w[c]), x[c], lanes[c % BN_F16_LANES]);
    return bn_f16_reduce_lanes(lanes);
}

static inline __m256 load_f16(const uint16_t *w) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w));
}

/* One F16 row against n tokens (a constant after inlining, so the accumulators stay in
 * registers), prefetching the next row; the same per-lane order as the one-token path. */
static inline __attribute__((always_inline)) void f16_row_tokens(float *y, int rows,
                                                                 const uint16_t *wr, const float *x,
                                                                 const int n, int cols, int cols16) {
    __m256 lo[4], hi[4];
#pragma GCC unroll 4
    for (int t = 0; t < n; t++) lo[t] = hi[t] = _mm256_setzero_ps();
    for (int c = 0; c < cols16; c += 16) {
        _mm_prefetch((const char *)(wr + cols + c), _MM_HINT_T0);
        __m256 w0 = load_f16(wr + c), w1 = load_f16(wr + c + 8);
#pragma GCC unroll 4
        for (int t = 0; t < n; t++) {
            const float *xt = x + (size_t)t * cols + c;
            lo[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xt), lo[t]);
            hi[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xt + 8), hi[t]);
        }
    }
    for (int t = 0; t < n; t++)
        y[(size_t)t * rows] = f16_finish(lo[t], hi[t], wr, x + (size_t)t * cols, cols16, cols);
}

/* One token: two sequential row streams with a short software prefetch, as in matmul_avx512.c. */
static void f16_gemv_two_streams(float *y, const uint16_t *w, const float *x, int cols, int cols16,
                                 int row_begin, int row_end) {
    const int half = (row_end - row_begin) / 2;
    for (int i = 0; i < half; i++) {
        const int ra = row_begin + i, rb = row_begin + half + i;
        const uint16_t *wa = w + (size_t)ra * cols, *wb = w + (size_t)rb * cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
        for (int c = 0; c < cols16; c += 16) {
            __m256 x0 = _mm256_loadu_ps(x + c), x1 = _mm256_loadu_ps(x + c + 8);
            _mm_prefetch((const char *)(wa + c + BN_F16_PREFETCH_AHEAD), _MM_HINT_T0);
            _mm_prefetch((const char *)(wb + c + BN_F16_PREFETCH_AHEAD), _MM_HINT_T0);
            a0 = _mm256_fmadd_ps(load_f16(wa + c), x0, a0);
            a1 = _mm256_fmadd_ps(load_f16(wa + c + 8), x1, a1);
            b0 = _mm256_fmadd_ps(load_f16(wb + c), x0, b0);
            b1 = _mm256_fmadd_ps(load_f16(wb + c + 8), x1, b1);
        }
        y[ra] = f16_finish(a0, a1, wa, x, cols16, cols);
        y[rb] = f16_finish(b0, b1, wb, x, cols16, cols);
    }
    for (int r = row_begin + 2 * half; r < row_end; r++) {
        const uint16_t *wr = w + (size_t)r * cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (int c = 0; c < cols16; c += 16) {
            a0 = _mm256_fmadd_ps(load_f16(wr + c), _mm256_loadu_ps(x + c), a0);
            a1 = _mm256_fmadd_ps(load_f16(wr + c + 8), _mm256_loadu_ps(x + c + 8), a1);
        }
        y[r] = f16_finish(a0, a1, wr, x, cols16, cols);
    }
}

void bn_avx2_f16_matmul(float *y, const uint16_t *w, const float *x, int rows, int cols,
                        int n_tokens, int row_begin, int row_end, bn_prefetch_hint hint) {
    (void)hint; /* the hardware prefetchers follow its streams */
    const int cols16 = cols / 16 * 16;
    if (n_tokens == 1) {
        f16_gemv_two_streams(y, w, x, cols, cols16, row_begin, row_end);
        return;
    }
    int r = row_begin;
    for (; r < row_end; r++) {
        const uint16_t *wr = w + (size_t)r * cols;
        for (int t0 = 0; t0 < n_tokens; t0 += 4) {
            int n = n_tokens - t0 < 4 ? n_tokens - t0 : 4;
            const float *xt = x + (size_t)t0 * cols;
            float *yt = y + (size_t)t0 * rows + r;
            switch (n) {
            case 1: f16_row_tokens(yt, rows, wr, xt, 1, cols, cols16); break;
            case 2: f16_row_tokens(yt, rows, wr, xt, 2, cols, cols16); break;
            case 3: f16_row_tokens(yt, rows, wr, xt, 3, cols, cols16); break;
            default: f16_row_tokens(yt, rows, wr, xt, 4, cols, cols16); break;
            }
        }
    }
}

#define AVX2_BODY_VNNI 0
#define AVX2_BODY_FN(name) bn_avx2_##name
#include "kernels/cpu/matmul_avx2_body.h"
